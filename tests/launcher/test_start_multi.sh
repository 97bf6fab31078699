#!/usr/bin/env bash
# Tests of start-multi.sh against a real PostgreSQL and Redis.
#
#   tests/launcher/test_start_multi.sh
#
# Needs: a built release binary (NEXUS_BIN, else <cargo target dir>/release/nexus-chat, built when
# missing), curl, psql, PostgreSQL reachable as TEST_PG_USER (default postgres) at TEST_PG_HOST:
# TEST_PG_PORT (default 127.0.0.1:5432) without a password prompt, and Redis at TEST_REDIS_URL
# (default redis://127.0.0.1:6379). Every database, Redis prefix, run directory and port it uses
# is its own and is removed at the end; it only ever stops the processes it started.
# Ends with 'N passed, N failed' and exits non-zero when anything failed.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd) || exit 1
LAUNCHER=$ROOT/start-multi.sh

PG_HOST=${TEST_PG_HOST:-127.0.0.1}
PG_PORT=${TEST_PG_PORT:-5432}
PG_USER=${TEST_PG_USER:-postgres}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379}

PASSED=0
FAILED=0
pass() {
    PASSED=$((PASSED + 1))
    printf 'ok    %s\n' "$1"
}
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL  %s\n' "$1"
    [[ $# -gt 1 ]] && printf '%s\n' "$2" | sed 's/^/      /'
    return 0
}
check() { # check NAME COMMAND...: passes when the command succeeds
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
finish() {
    printf '\n%s passed, %s failed\n' "$PASSED" "$FAILED"
    [[ $FAILED -eq 0 ]]
    exit $?
}

# The launcher's own settings must come from this test alone.
unset DATABASE_URL DB_HOST DB_PORT DB_USERNAME DB_PASSWORD DB_NAME DB_DATABASE \
    REDIS_URL REDIS_HOST REDIS_PORT REDIS_PREFIX JWT_SECRET INSTANCE_ID PORT HOST NEXUS_RUN_DIR

have() { command -v "$1" >/dev/null 2>&1; }
for tool in curl psql; do
    if ! have "$tool"; then
        fail "prerequisite: $tool is installed"
        finish
    fi
done

psql_admin() { PGCONNECT_TIMEOUT=5 psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }
if ! out=$(psql_admin -c 'select 1' 2>&1); then
    fail "prerequisite: PostgreSQL at $PG_HOST:$PG_PORT accepts $PG_USER" "$out"
    finish
fi
redis_hostport=${REDIS#*://}
redis_hostport=${redis_hostport%%/*}
redis_hostport=${redis_hostport##*@}
if ! (exec 3<>"/dev/tcp/${redis_hostport%:*}/${redis_hostport##*:}") 2>/dev/null; then
    fail "prerequisite: Redis reachable at $REDIS"
    finish
fi

# The server binary.
if [[ -z ${NEXUS_BIN:-} ]]; then
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    NEXUS_BIN=${target_dir:-${CARGO_TARGET_DIR:-$ROOT/target}}/release/nexus-chat
    if [[ ! -x $NEXUS_BIN ]]; then
        echo "building the release binary (no $NEXUS_BIN yet)"
        (cd "$ROOT" && cargo build --release --bin nexus-chat) || {
            fail "prerequisite: cargo build --release"
            finish
        }
    fi
fi
if [[ ! -x $NEXUS_BIN ]]; then
    fail "prerequisite: server binary at $NEXUS_BIN"
    finish
fi
export NEXUS_BIN

# Own run directory, databases, Redis prefix.
TAG=launcher_$$_$RANDOM
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexus-launcher-test.XXXXXX")
export NEXUS_RUN_DIR=$WORK/run
DB=nx_${TAG}
DB_AUTO=nx_${TAG}_auto # created by the launcher itself
PREFIX=nxtest_${TAG}
ENV_FILE=$WORK/test.env

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    # Only what this test started: the launcher's pid files live in our own run directory.
    [[ -d $NEXUS_RUN_DIR ]] && NEXUS_STOP_TIMEOUT=10 "$LAUNCHER" stop >/dev/null 2>&1
    [[ -n ${FG_PID:-} ]] && kill "$FG_PID" 2>/dev/null
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB_AUTO\" WITH (FORCE)" >/dev/null 2>&1
    if have redis-cli; then
        # Keys are "<prefix>:…" or, with a hash tag, "{<prefix>:…}…".
        for pattern in "${PREFIX}:*" "{${PREFIX}:*"; do
            redis-cli -u "$REDIS" --scan --pattern "$pattern" 2>/dev/null |
                xargs -r redis-cli -u "$REDIS" del >/dev/null 2>&1
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# alive PID: running (an exited process not yet reaped by its new parent, a zombie, is not).
alive() { kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Two consecutive free ports above 4000.
free_ports() {
    local tries base
    for ((tries = 0; tries < 50; tries++)); do
        base=$((4100 + RANDOM % 5800))
        if ! port_open "$base" && ! port_open $((base + 1)); then
            printf '%s' "$base"
            return 0
        fi
    done
    return 1
}

with_timeout() { # with_timeout SECONDS COMMAND...
    if have timeout; then timeout "$@"; else
        shift
        "$@"
    fi
}

# json_field JSON NAME: the string value of a top-level or nested "NAME":"..." (first match).
json_field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"; }

psql_admin -c "CREATE DATABASE \"$DB\"" >/dev/null || {
    fail "prerequisite: create database $DB"
    finish
}
cat >"$ENV_FILE" <<EOF
# written by test_start_multi.sh
DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB
REDIS_URL="$REDIS"
REDIS_PREFIX=$PREFIX   # own prefix, so other clusters on this Redis are not disturbed
RUST_LOG=info
EOF

# ---------------------------------------------------------------------------------------------
echo "== usage"
out=$("$LAUNCHER" --help 2>&1)
check "--help exits 0 and documents --detach" grep -q -- '--detach' <<<"$out"
"$LAUNCHER" -n abc >/dev/null 2>&1
rc=$?
check "a bad --count is a usage error (exit 2, got $rc)" test "$rc" -eq 2
"$LAUNCHER" --what >/dev/null 2>&1
rc=$?
check "an unknown option is a usage error (exit 2, got $rc)" test "$rc" -eq 2

# ---------------------------------------------------------------------------------------------
echo "== unreachable services"
P=$(free_ports) || {
    fail "find free ports"
    finish
}
out=$(REDIS_URL=redis://127.0.0.1:1 with_timeout 60 "$LAUNCHER" --detach -n 1 -p "$P" --no-build -e "$ENV_FILE" 2>&1)
rc=$?
check "unreachable Redis: exits non-zero (got $rc)" test "$rc" -ne 0
if grep -q 'Redis is not reachable at 127.0.0.1:1' <<<"$out"; then pass "unreachable Redis: the message names Redis and its address"; else fail "unreachable Redis: the message names Redis and its address" "$out"; fi
check "unreachable Redis: nothing was started" bash -c "! ls '$NEXUS_RUN_DIR'/instance-*.pid >/dev/null 2>&1"
out=$(DATABASE_URL=postgres://postgres@127.0.0.1:1/x with_timeout 60 "$LAUNCHER" --detach -n 1 -p "$P" --no-build -e "$ENV_FILE" 2>&1)
rc=$?
check "unreachable PostgreSQL: exits non-zero (got $rc)" test "$rc" -ne 0
if grep -q 'PostgreSQL is not reachable' <<<"$out"; then pass "unreachable PostgreSQL: the message names PostgreSQL"; else fail "unreachable PostgreSQL: the message names PostgreSQL" "$out"; fi

# ---------------------------------------------------------------------------------------------
echo "== --detach with 2 instances on ports $P-$((P + 1))"
A=http://127.0.0.1:$P
B=http://127.0.0.1:$((P + 1))
# Run from another directory: the launcher must find its way by itself.
out=$(cd "$WORK" && with_timeout 180 "$LAUNCHER" --detach -n 2 -p "$P" --no-build -e "$ENV_FILE" 2>&1)
rc=$?
if [[ $rc -eq 0 ]]; then pass "start --detach exits 0"; else fail "start --detach exits 0 (got $rc)" "$out"; fi
check "the summary prints both URLs" bash -c "grep -q 'http://localhost:$P' <<<\"\$0\" && grep -q 'http://localhost:$((P + 1))' <<<\"\$0\"" "$out"
check "JWT_SECRET missing: the launcher warns it generated one" grep -q 'JWT_SECRET is not set' <<<"$out"
check "log files are written" test -s "$NEXUS_RUN_DIR/instance-$P.log" -a -e "$NEXUS_RUN_DIR/instance-$((P + 1)).log"
PIDS=$(cat "$NEXUS_RUN_DIR"/instance-*.pid 2>/dev/null | tr '\n' ' ')
check "two pid files are written ($PIDS)" test "$(wc -w <<<"$PIDS")" -eq 2
# The two instances split the machine's cores: each runs cores / 2 worker threads, at least 1.
WANT_WORKERS=$(( $(getconf _NPROCESSORS_ONLN) / 2 )); ((WANT_WORKERS >= 1)) || WANT_WORKERS=1
for pid in $PIDS; do
  got=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep '^WORKER_THREADS=' || echo none)
  check "instance $pid runs WORKER_THREADS=$WANT_WORKERS (has $got)" test "$got" = "WORKER_THREADS=$WANT_WORKERS"
done

ready_a=$(curl -s -o /dev/null -w '%{http_code}' "$A/ready")
ready_b=$(curl -s -o /dev/null -w '%{http_code}' "$B/ready")
check "GET /ready is 200 on both ($ready_a, $ready_b)" test "$ready_a$ready_b" = 200200
id_a=$(json_field "$(curl -s "$A/api/instance")" instanceId)
id_b=$(json_field "$(curl -s "$B/api/instance")" instanceId)
check "instance ids are node-<port> and differ ($id_a, $id_b)" test "$id_a" = "node-$P" -a "$id_b" = "node-$((P + 1))"

user=u$RANDOM$RANDOM
reg=$(curl -s -w '\n%{http_code}' -H 'content-type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"secret-pass-1\"}" "$A/auth/register")
check "register on instance A (201)" test "${reg##*$'\n'}" = 201
login=$(curl -s -w '\n%{http_code}' -H 'content-type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"secret-pass-1\"}" "$B/auth/login")
check "log in on instance B (201)" test "${login##*$'\n'}" = 201
token=$(json_field "${login%$'\n'*}" access_token)
me=$(curl -s -H "authorization: Bearer $token" "$A/api/me")
check "B's token is accepted by A: the generated JWT_SECRET is shared" test "$(json_field "$me" username)" = "$user"

out=$("$LAUNCHER" status 2>&1)
rc=$?
if [[ $rc -eq 0 ]] && grep -q "node-$P" <<<"$out" && grep -q "node-$((P + 1))" <<<"$out"; then
    pass "status lists both instances as ready"
else
    fail "status lists both instances as ready (exit $rc)" "$out"
fi

out=$(with_timeout 60 "$LAUNCHER" --detach -n 2 -p "$P" --no-build -e "$ENV_FILE" 2>&1)
rc=$?
if [[ $rc -ne 0 ]] && grep -q 'still running' <<<"$out"; then pass "a second start is refused while they run"; else fail "a second start is refused while they run (exit $rc)" "$out"; fi

out=$(with_timeout 60 "$LAUNCHER" stop 2>&1)
rc=$?
check "stop exits 0 (got $rc)" test "$rc" -eq 0
gone=1
for pid in $PIDS; do alive "$pid" && gone=0; done
check "stop: the processes are gone" test "$gone" -eq 1
check "stop: the ports are closed" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$P) 2>/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/$((P + 1))) 2>/dev/null"
check "stop: the pid files are removed" bash -c "! ls '$NEXUS_RUN_DIR'/instance-*.pid >/dev/null 2>&1"
check "stop: the instances stopped gracefully" grep -q stopped "$NEXUS_RUN_DIR/instance-$P.log"
"$LAUNCHER" status >/dev/null 2>&1
rc=$?
check "status after stop exits 3 (got $rc)" test "$rc" -eq 3

# ---------------------------------------------------------------------------------------------
echo "== foreground, missing database created, SIGTERM stops everything"
P=$(free_ports) || {
    fail "find free ports"
    finish
}
FG_LOG=$WORK/foreground.out
DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_AUTO JWT_SECRET=test-secret-0123456789 \
    "$LAUNCHER" -n 1 -p "$P" --no-build -e "$ENV_FILE" >"$FG_LOG" 2>&1 &
FG_PID=$!
ready=0
for ((i = 0; i < 120; i++)); do
    grep -q 'Press Ctrl-C' "$FG_LOG" && {
        ready=1
        break
    }
    kill -0 "$FG_PID" 2>/dev/null || break
    sleep 0.5
done
if ((ready)); then pass "foreground start reaches 'Press Ctrl-C'"; else fail "foreground start reaches 'Press Ctrl-C'" "$(cat "$FG_LOG")"; fi
check "the missing database was created" grep -q "database '$DB_AUTO' does not exist: creating it" "$FG_LOG"
check "JWT_SECRET set: no generated-secret warning" bash -c "! grep -q 'JWT_SECRET is not set' '$FG_LOG'"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/ready")
check "foreground instance is ready ($code)" test "$code" = 200
server_pid=$(cat "$NEXUS_RUN_DIR/instance-$P.pid" 2>/dev/null)
kill -TERM "$FG_PID" 2>/dev/null
rc=
for ((i = 0; i < 60; i++)); do
    if ! kill -0 "$FG_PID" 2>/dev/null; then
        wait "$FG_PID"
        rc=$?
        break
    fi
    sleep 0.5
done
FG_PID=
check "the launcher exits 0 after stopping on SIGTERM (got ${rc:-still running})" test "${rc:-x}" = 0
if ! alive "${server_pid:-0}" && ! port_open "$P"; then pass "the instance is gone"; else fail "the instance is gone"; fi
check "its pid file is removed" test ! -e "$NEXUS_RUN_DIR/instance-$P.pid"

# ---------------------------------------------------------------------------------------------
echo "== foreground, then '$(basename "$LAUNCHER") stop' from another shell; then a crash"
# start_foreground LOG: starts a 1-instance foreground launcher on fresh ports; sets FG_PID and P.
start_foreground() {
    P=$(free_ports) || return 1
    JWT_SECRET=test-secret-0123456789 "$LAUNCHER" -n 1 -p "$P" --no-build -e "$ENV_FILE" >"$1" 2>&1 &
    FG_PID=$!
    for ((i = 0; i < 120; i++)); do
        grep -q 'Press Ctrl-C' "$1" && return 0
        kill -0 "$FG_PID" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}
# wait_foreground: waits (bounded) for the launcher to exit; sets rc (empty if still running).
wait_foreground() {
    rc=
    for ((i = 0; i < 60; i++)); do
        if ! kill -0 "$FG_PID" 2>/dev/null; then
            wait "$FG_PID"
            rc=$?
            break
        fi
        sleep 0.5
    done
    FG_PID=
}
FG_LOG=$WORK/foreground-stop.out
if start_foreground "$FG_LOG"; then pass "foreground start (for stop)"; else fail "foreground start (for stop)" "$(cat "$FG_LOG")"; fi
out=$(with_timeout 60 "$LAUNCHER" stop 2>&1)
check "stop from another shell exits 0" test $? -eq 0
wait_foreground
if [[ ${rc:-x} == 0 ]]; then pass "the foreground launcher exits 0 after a deliberate stop"; else fail "the foreground launcher exits 0 after a deliberate stop (got ${rc:-still running})" "$(cat "$FG_LOG")"; fi
if ! grep -q 'every instance has exited' "$FG_LOG" && grep -q 'stopped by' "$FG_LOG"; then
    pass "it reports the deliberate stop, not an error"
else
    fail "it reports the deliberate stop, not an error" "$(cat "$FG_LOG")"
fi

FG_LOG=$WORK/foreground-crash.out
if start_foreground "$FG_LOG"; then pass "foreground start (for a crash)"; else fail "foreground start (for a crash)" "$(cat "$FG_LOG")"; fi
server_pid=$(cat "$NEXUS_RUN_DIR/instance-$P.pid" 2>/dev/null)
[[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
wait_foreground
check "a crashed instance still ends the launcher with exit 1 (got ${rc:-still running})" test "${rc:-x}" = 1
check "and says every instance has exited" grep -q 'every instance has exited' "$FG_LOG"

finish
