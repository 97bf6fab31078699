#!/usr/bin/env bash
# start-multi.sh: run several Nexus Chat instances as one local cluster (PostgreSQL + Redis).
#
#   ./start-multi.sh                 3 instances on ports 3000-3002, in the foreground; Ctrl-C stops them
#   ./start-multi.sh -n 2 -p 4000    2 instances on ports 4000-4001
#   ./start-multi.sh --detach        return once all are ready, leave them running
#   ./start-multi.sh status          what a --detach run left running
#   ./start-multi.sh stop            stop the instances a --detach run started
#
# start-multi.ps1 is the PowerShell twin of this script: keep the two in step.
# Works with bash 3.2 (macOS) and later. Run ./start-multi.sh --help for every option.

set -u

# ----------------------------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------------------------

if [[ -t 2 ]]; then
    C_RED=$'\033[31m' C_YELLOW=$'\033[33m' C_GREEN=$'\033[32m' C_BOLD=$'\033[1m' C_OFF=$'\033[0m'
else
    C_RED='' C_YELLOW='' C_GREEN='' C_BOLD='' C_OFF=''
fi

say() { printf '%s\n' "$*"; }
step() { printf '%s==>%s %s\n' "$C_BOLD" "$C_OFF" "$*"; }
warn() { printf '%swarning:%s %s\n' "$C_YELLOW" "$C_OFF" "$*" >&2; }
err() { printf '%serror:%s %s\n' "$C_RED" "$C_OFF" "$*" >&2; }
die() {
    err "$*"
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

usage() {
    cat <<EOF
Usage: $0 [start] [options]
       $0 stop
       $0 status

Starts N Nexus Chat instances sharing one PostgreSQL database and one Redis, waits until each
answers GET /ready, prints their URLs and keeps their logs in files.

Actions:
  start (default)        start the instances
  stop                   stop the instances a --detach run started (SIGTERM, then SIGKILL after
                         \${NEXUS_STOP_TIMEOUT:-20} s)
  status                 show each recorded instance, its pid and its /ready answer
                         (exit 0: all ready, 1: some not, 3: none recorded)

Options (start):
  -n, --count N          number of instances (default 3)
  -p, --port FIRST       port of the first instance; the others follow (default 3000)
  -e, --env-file FILE    settings file loaded into the instances' environment
                         (default: .env next to this script, when present)
      --no-build         do not run 'cargo build --release' first
      --foreground       stay in the foreground; Ctrl-C stops every instance (default)
      --detach           return once all are ready and leave them running
  -h, --help             this help

Settings: variables already in the environment win over the env file (as the server's own .env
loading does). When no database is configured, DATABASE_URL=$DEFAULT_DATABASE_URL is used;
when no Redis is configured, REDIS_URL=$DEFAULT_REDIS_URL. Legacy DB_HOST/DB_PORT/DB_USERNAME/
DB_PASSWORD/DB_NAME and REDIS_HOST/REDIS_PORT are understood too. Without JWT_SECRET one is
generated for this run and shared by all instances. Each instance gets PORT=<its port> and
INSTANCE_ID=node-<its port>; NO_COLOR=1 keeps colour codes out of the log files unless NO_COLOR
is set already. Unless WORKER_THREADS is set, each instance gets cores / instances worker
threads (at least 1), so that together they use the machine's cores once.

Before starting, the script checks that PostgreSQL and Redis accept TCP connections, and, when
psql is installed, creates the PostgreSQL database if it does not exist yet. It then applies the
migrations once ('nexus-chat migrate') and starts the instances.

Environment:
  NEXUS_BIN              server binary to run (default: <cargo target dir>/release/nexus-chat)
  NEXUS_RUN_DIR          logs (instance-<port>.log) and pid files (default: .run next to this script)
  NEXUS_READY_TIMEOUT    seconds to wait for each instance's /ready (default 60)
  NEXUS_STOP_TIMEOUT     seconds to wait for a graceful stop before SIGKILL (default 20)
EOF
}

# ----------------------------------------------------------------------------------------------
# Defaults and command line
# ----------------------------------------------------------------------------------------------

DEFAULT_DATABASE_URL='postgres://postgres@127.0.0.1:5432/nexus_chat'
DEFAULT_REDIS_URL='redis://127.0.0.1:6379'

ORIG_PWD=$(pwd)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 1
SELF=$0

ACTION=start
COUNT=3
FIRST_PORT=3000
ENV_FILE=
ENV_FILE_GIVEN=0
BUILD=1
DETACH=0

# An absolute path for a path the user typed relative to where they ran the script.
from_caller() {
    case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$ORIG_PWD" "$1" ;;
    esac
}

need_value() {
    if [[ $# -lt 2 || -z $2 ]]; then
        err "option $1 needs a value"
        usage >&2
        exit 2
    fi
}

while [[ $# -gt 0 ]]; do
    case $1 in
    start | stop | status) ACTION=$1 ;;
    -n | --count)
        need_value "$@"
        COUNT=$2
        shift
        ;;
    --count=*) COUNT=${1#*=} ;;
    -p | --port)
        need_value "$@"
        FIRST_PORT=$2
        shift
        ;;
    --port=*) FIRST_PORT=${1#*=} ;;
    -e | --env-file)
        need_value "$@"
        ENV_FILE=$2
        ENV_FILE_GIVEN=1
        shift
        ;;
    --env-file=*)
        ENV_FILE=${1#*=}
        ENV_FILE_GIVEN=1
        ;;
    --no-build) BUILD=0 ;;
    --foreground) DETACH=0 ;;
    --detach) DETACH=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        err "unknown argument: $1"
        usage >&2
        exit 2
        ;;
    esac
    shift
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

if ! is_uint "$COUNT" || ((COUNT < 1 || COUNT > 100)); then
    err "--count must be a whole number from 1 to 100, got '$COUNT'"
    exit 2
fi
if ! is_uint "$FIRST_PORT" || ((FIRST_PORT < 1 || FIRST_PORT + COUNT - 1 > 65535)); then
    err "--port must be a port number such that all $COUNT ports fit below 65536, got '$FIRST_PORT'"
    exit 2
fi
READY_TIMEOUT=${NEXUS_READY_TIMEOUT:-60}
STOP_TIMEOUT=${NEXUS_STOP_TIMEOUT:-20}
is_uint "$READY_TIMEOUT" || die "NEXUS_READY_TIMEOUT must be a whole number of seconds"
is_uint "$STOP_TIMEOUT" || die "NEXUS_STOP_TIMEOUT must be a whole number of seconds"

if [[ -n $ENV_FILE ]]; then ENV_FILE=$(from_caller "$ENV_FILE"); fi
if [[ -n ${NEXUS_BIN:-} ]]; then NEXUS_BIN=$(from_caller "$NEXUS_BIN"); fi
if [[ -n ${NEXUS_RUN_DIR:-} ]]; then
    RUN_DIR=$(from_caller "$NEXUS_RUN_DIR")
else
    RUN_DIR=$SCRIPT_DIR/.run
fi

# Everything else (cargo, the server's own .env, ./data, ./web/dist) is relative to the project.
cd "$SCRIPT_DIR" || die "cannot enter $SCRIPT_DIR"

# The command that reaches this run directory again, for the hints we print.
if [[ -n ${NEXUS_RUN_DIR:-} ]]; then
    AGAIN="NEXUS_RUN_DIR=$RUN_DIR $SELF"
else
    AGAIN=$SELF
fi

# ----------------------------------------------------------------------------------------------
# Small tools: TCP probe, HTTP status, URL parsing, env file
# ----------------------------------------------------------------------------------------------

# tcp_open HOST PORT [SECONDS]: succeeds when something accepts a TCP connection there.
# shellcheck disable=SC2016 # the inner bash expands $0 and $1
tcp_open() {
    local host=$1 port=$2 secs=${3:-3}
    host=${host#[}
    host=${host%]}
    if have timeout; then
        timeout "$secs" "$BASH" -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
        return
    fi
    # No coreutils timeout (stock macOS): a watchdog subshell does the same job.
    ("$BASH" -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null) &
    local probe=$!
    (sleep "$secs" && kill "$probe" 2>/dev/null) 2>/dev/null &
    local watchdog=$!
    wait "$probe"
    local rc=$?
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    return $rc
}

# http_status URL: prints the HTTP status code (000 when nothing answers).
# shellcheck disable=SC2016 # the inner bash expands its own arguments
http_status() {
    local url=$1 code
    if have curl; then
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null)
        printf '%s' "${code:-000}"
        return
    fi
    # Fallback without curl: a bare HTTP/1.0 request over /dev/tcp.
    local rest=${url#http://} hostport path host port
    hostport=${rest%%/*}
    path=/${rest#*/}
    host=${hostport%:*}
    port=${hostport##*:}
    code=$(
        "$BASH" -c '
            exec 3<>"/dev/tcp/$0/$1" || exit 1
            printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$0" >&3
            IFS=" " read -r -t 2 _ status _ <&3 && printf "%s" "$status"
        ' "${host#[}" "$port" "$path" 2>/dev/null
    )
    printf '%s' "${code:-000}"
}

# Percent-decoding for the parts of a URL we print or pass on.
urldecode() {
    local s=$1
    printf '%b' "${s//%/\\x}"
}

# parse_url URL: sets U_USER U_PASS U_HOST U_PORT U_PATH U_QUERY (first host only).
parse_url() {
    local url=$1 rest authority userinfo hostport
    rest=${url#*://}
    U_QUERY=
    if [[ $rest == *\?* ]]; then
        U_QUERY=${rest#*\?}
        rest=${rest%%\?*}
    fi
    rest=${rest%%#*}
    if [[ $rest == */* ]]; then
        authority=${rest%%/*}
        U_PATH=${rest#*/}
    else
        authority=$rest
        U_PATH=
    fi
    U_USER='' U_PASS=''
    if [[ $authority == *@* ]]; then
        userinfo=${authority%@*}
        hostport=${authority##*@}
        U_USER=$(urldecode "${userinfo%%:*}")
        [[ $userinfo == *:* ]] && U_PASS=$(urldecode "${userinfo#*:}")
    else
        hostport=$authority
    fi
    hostport=${hostport%%,*}
    U_PORT=
    if [[ $hostport == \[* ]]; then
        U_HOST=${hostport%%]*}
        U_HOST=${U_HOST#[}
        [[ $hostport == *]:* ]] && U_PORT=${hostport##*]:}
    else
        U_HOST=${hostport%%:*}
        [[ $hostport == *:* ]] && U_PORT=${hostport##*:}
    fi
    U_HOST=$(urldecode "$U_HOST")
    U_PATH=$(urldecode "$U_PATH")
}

# query_param NAME: the value of NAME in U_QUERY, if any.
query_param() {
    local pair
    local IFS='&'
    for pair in $U_QUERY; do
        if [[ ${pair%%=*} == "$1" ]]; then
            urldecode "${pair#*=}"
            return 0
        fi
    done
    return 1
}

# hostport HOST PORT: host:port, with brackets around an IPv6 address.
hostport() {
    case $1 in
    *:*) printf '[%s]:%s' "$1" "$2" ;;
    *) printf '%s:%s' "$1" "$2" ;;
    esac
}

trim() {
    local s=$1
    s=${s#"${s%%[![:space:]]*}"}
    s=${s%"${s##*[![:space:]]}"}
    printf '%s' "$s"
}

# load_env_file FILE: KEY=VALUE lines (dotenv syntax: comments, 'export ', quotes, ${VAR}) are
# exported, except keys already in the environment, which win as with the server's own loading.
load_env_file() {
    local file=$1 line key val n=0 loaded=0 name guard
    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        line=${line%$'\r'}
        line=$(trim "$line")
        [[ -z $line || $line == \#* ]] && continue
        if [[ $line == export[[:space:]]* ]]; then line=$(trim "${line#export}"); fi
        if [[ $line != *=* ]]; then
            warn "$file:$n: ignored (no '=')"
            continue
        fi
        key=$(trim "${line%%=*}")
        val=$(trim "${line#*=}")
        if ! [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
            warn "$file:$n: ignored (invalid name '$key')"
            continue
        fi
        case $val in
        \'*)
            val=${val#\'}
            val=${val%%\'*}
            ;;
        \"*)
            val=${val#\"}
            val=${val%\"*}
            val=${val//\\n/$'\n'}
            ;;
        *)
            # An unquoted value ends at ' #'.
            val=${val%%[[:space:]]#*}
            val=$(trim "$val")
            ;;
        esac
        if [[ ${line#*=} != \'* ]]; then
            guard=0
            while [[ $val =~ \$\{([A-Za-z_][A-Za-z0-9_]*)\} ]] && ((guard++ < 20)); do
                name=${BASH_REMATCH[1]}
                val=${val//"\${$name}"/${!name:-}}
            done
        fi
        if [[ -z ${!key+set} ]]; then
            export "$key=$val"
            loaded=$((loaded + 1))
        fi
    done <"$file"
    say "    loaded $loaded setting(s) from $file"
}

# ----------------------------------------------------------------------------------------------
# Processes and pid files
# ----------------------------------------------------------------------------------------------

pid_file() { printf '%s/instance-%s.pid' "$RUN_DIR" "$1"; }
# Written by `stop` before it signals the instances; removed by the next start.
stop_marker() { printf '%s/stopping' "$RUN_DIR"; }
log_file() { printf '%s/instance-%s.log' "$RUN_DIR" "$1"; }

# is_ours PID: alive and still a 'nexus-chat serve' (guards against a recycled pid).
is_ours() {
    local pid=$1 args
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    args=$(ps -p "$pid" -o args= 2>/dev/null) || return 1
    [[ -z $args ]] && return 1
    # A zombie (exited, not yet reaped) no longer counts as running.
    [[ $(ps -p "$pid" -o stat= 2>/dev/null) == Z* ]] && return 1
    [[ $args == *" serve" || $args == *" serve "* ]]
}

# recorded_ports: the ports that have a pid file in the run directory, sorted.
recorded_ports() {
    local f p
    for f in "$RUN_DIR"/instance-*.pid; do
        [[ -e $f ]] || continue
        p=${f##*/instance-}
        p=${p%.pid}
        is_uint "$p" && printf '%s\n' "$p"
    done | sort -n
}

read_pid() { head -n 1 "$(pid_file "$1")" 2>/dev/null; }

# stop_pids PORT:PID...: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL what is left.
# Returns 1 when something had to be killed.
stop_pids() {
    local item port pid left waited=0 forced=0
    for item in "$@"; do
        pid=${item#*:}
        is_ours "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    while :; do
        left=()
        for item in "$@"; do
            pid=${item#*:}
            is_ours "$pid" && left+=("$item")
        done
        [[ ${#left[@]} -eq 0 ]] && break
        if ((waited >= STOP_TIMEOUT * 5)); then
            for item in "${left[@]}"; do
                port=${item%%:*}
                pid=${item#*:}
                warn "node-$port (pid $pid) did not stop within ${STOP_TIMEOUT}s: killing it"
                kill -KILL "$pid" 2>/dev/null
            done
            forced=1
            sleep 0.5
            break
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    for item in "$@"; do
        port=${item%%:*}
        pid=${item#*:}
        wait "$pid" 2>/dev/null # reap our own children; a no-op for others
        rm -f "$(pid_file "$port")"
        say "    stopped node-$port (pid $pid)"
    done
    return $forced
}

# The host to probe an instance on: HOST, with wildcards replaced by loopback.
probe_host() {
    local h=${HOST:-0.0.0.0}
    case $h in
    '' | 0.0.0.0) printf '127.0.0.1' ;;
    :: | '[::]') printf '[::1]' ;;
    *:*)
        h=${h#[}
        printf '[%s]' "${h%]}"
        ;;
    *) printf '%s' "$h" ;;
    esac
}

# The address we print for people: localhost unless HOST names one specific interface.
public_host() {
    case ${HOST:-0.0.0.0} in
    '' | 0.0.0.0 | :: | '[::]' | 127.0.0.1 | ::1 | localhost) printf 'localhost' ;;
    *) probe_host ;;
    esac
}

# ----------------------------------------------------------------------------------------------
# stop / status
# ----------------------------------------------------------------------------------------------

do_stop() {
    local port pid items=() stale=0
    for port in $(recorded_ports); do
        pid=$(read_pid "$port")
        if is_ours "$pid"; then
            items+=("$port:$pid")
        else
            rm -f "$(pid_file "$port")"
            stale=$((stale + 1))
        fi
    done
    if [[ ${#items[@]} -eq 0 ]]; then
        if ((stale > 0)); then
            say "No instance recorded in $RUN_DIR is running (removed $stale stale pid file(s))."
        else
            say "No instance recorded in $RUN_DIR: nothing to stop."
        fi
        return 0
    fi
    step "Stopping ${#items[@]} instance(s)"
    # Tells a foreground launcher watching these instances that they are being stopped on
    # purpose (it reports that and exits 0, instead of "every instance has exited").
    : >"$(stop_marker)"
    if stop_pids "${items[@]}"; then
        say "All stopped."
    else
        warn "some instances had to be killed; see their logs in $RUN_DIR"
    fi
    return 0
}

do_status() {
    local port pid code ports n=0 bad=0 host
    ports=$(recorded_ports)
    if [[ -z $ports ]]; then
        say "No instance recorded in $RUN_DIR (start some with: $SELF --detach)."
        return 3
    fi
    host=$(probe_host)
    printf '%-12s %-8s %-9s %-10s %-24s %s\n' INSTANCE PID PROCESS READY URL LOG
    for port in $ports; do
        n=$((n + 1))
        pid=$(read_pid "$port")
        if is_ours "$pid"; then
            code=$(http_status "http://$host:$port/ready")
            case $code in
            200) printf '%-12s %-8s %-9s %-10s %-24s %s\n' "node-$port" "$pid" running yes "http://$(public_host):$port" "$(log_file "$port")" ;;
            *)
                printf '%-12s %-8s %-9s %-10s %-24s %s\n' "node-$port" "$pid" running "no ($code)" "http://$(public_host):$port" "$(log_file "$port")"
                bad=$((bad + 1))
                ;;
            esac
        else
            printf '%-12s %-8s %-9s %-10s %-24s %s\n' "node-$port" "${pid:--}" gone - - "$(log_file "$port")"
            bad=$((bad + 1))
        fi
    done
    ((bad == 0))
}

case $ACTION in
stop)
    do_stop
    exit $?
    ;;
status)
    do_status
    exit $?
    ;;
esac

# ----------------------------------------------------------------------------------------------
# start: settings
# ----------------------------------------------------------------------------------------------

step "Settings"
if [[ -z $ENV_FILE && -f .env ]]; then ENV_FILE=$SCRIPT_DIR/.env; fi
if [[ -n $ENV_FILE ]]; then
    [[ -f $ENV_FILE && -r $ENV_FILE ]] || die "env file not found or not readable: $ENV_FILE"
    load_env_file "$ENV_FILE"
    if ((ENV_FILE_GIVEN)) && [[ -f .env && $ENV_FILE != "$SCRIPT_DIR/.env" ]]; then
        warn "$SCRIPT_DIR/.env exists too: the server reads it itself for any setting that neither the environment nor $ENV_FILE sets"
    fi
else
    say "    no env file (no .env next to the script, no --env-file): using the environment"
fi

if [[ -z ${DATABASE_URL:-} && -z ${DB_HOST:-} ]]; then
    export DATABASE_URL=$DEFAULT_DATABASE_URL
    say "    DATABASE_URL not set: using the default $DEFAULT_DATABASE_URL"
fi
if [[ -z ${REDIS_URL:-} && -z ${REDIS_HOST:-} ]]; then
    export REDIS_URL=$DEFAULT_REDIS_URL
    say "    REDIS_URL not set: using the default $DEFAULT_REDIS_URL"
fi
if [[ -z ${JWT_SECRET:-} ]]; then
    if have od; then
        JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    else
        JWT_SECRET=$(openssl rand -hex 32)
    fi
    export JWT_SECRET
    warn "JWT_SECRET is not set: generated one for this run, shared by all instances. Sign-ins will not survive a restart of the cluster unless you set JWT_SECRET (e.g. in .env)."
fi

# The logs go to files: no colour codes in them, unless asked for.
[[ -z ${NO_COLOR+set} ]] && export NO_COLOR=1

# The instances share this machine's cores: each gets its share of worker threads (at least 1)
# unless WORKER_THREADS is set. Measured on 2 cores, 3 instances with 1 worker each spent about
# a fifth less CPU per message than with tokio's default of one per core, at lower latency.
if [[ -z ${WORKER_THREADS:-} ]]; then
    cores=$( (getconf _NPROCESSORS_ONLN || sysctl -n hw.ncpu || echo 1) 2>/dev/null | head -n 1)
    [[ $cores =~ ^[0-9]+$ ]] || cores=1
    WORKER_THREADS=$((cores / COUNT))
    ((WORKER_THREADS >= 1)) || WORKER_THREADS=1
    export WORKER_THREADS
    say "    WORKER_THREADS not set: $WORKER_THREADS per instance ($cores cores, $COUNT instances)"
fi

# Where PostgreSQL is, from DATABASE_URL or the legacy DB_* variables (as the server reads them).
if [[ -n ${DATABASE_URL:-} ]]; then
    case $DATABASE_URL in
    postgres://* | postgresql://*) ;;
    *) die "DATABASE_URL must be a postgres:// or postgresql:// URL" ;;
    esac
    parse_url "$DATABASE_URL"
    PG_HOST=${U_HOST:-localhost}
    PG_HOST=$(query_param host || printf '%s' "$PG_HOST")
    PG_PORT=${U_PORT:-5432}
    PG_USER=${U_USER:-${USER:-postgres}}
    PG_PASS=$U_PASS
    PG_DB=${U_PATH:-$PG_USER}
    PG_SSLMODE=$(query_param sslmode || true)
    PG_FROM=DATABASE_URL
else
    PG_HOST=$DB_HOST
    PG_PORT=${DB_PORT:-5432}
    PG_USER=${DB_USERNAME:-postgres}
    PG_PASS=${DB_PASSWORD:-}
    PG_DB=${DB_NAME:-${DB_DATABASE:-postgres}}
    PG_SSLMODE=
    PG_FROM=DB_HOST/DB_PORT
fi
# Where Redis is, from REDIS_URL or REDIS_HOST/REDIS_PORT.
if [[ -n ${REDIS_URL:-} ]]; then
    parse_url "$REDIS_URL"
    REDIS_CHECK_HOST=${U_HOST:-127.0.0.1}
    REDIS_CHECK_PORT=${U_PORT:-6379}
    REDIS_FROM=REDIS_URL
else
    REDIS_CHECK_HOST=$REDIS_HOST
    REDIS_CHECK_PORT=${REDIS_PORT:-6379}
    REDIS_FROM=REDIS_HOST/REDIS_PORT
fi
is_uint "$PG_PORT" || die "PostgreSQL port '$PG_PORT' (from $PG_FROM) is not a number"
is_uint "$REDIS_CHECK_PORT" || die "Redis port '$REDIS_CHECK_PORT' (from $REDIS_FROM) is not a number"

# ----------------------------------------------------------------------------------------------
# start: PostgreSQL and Redis reachable?
# ----------------------------------------------------------------------------------------------

step "Checking PostgreSQL and Redis"
unreachable=0
if [[ $PG_HOST == /* ]]; then
    say "    PostgreSQL  unix socket $PG_HOST (not probed)"
elif tcp_open "$PG_HOST" "$PG_PORT" 3; then
    say "    PostgreSQL  $(hostport "$PG_HOST" "$PG_PORT")  ${C_GREEN}reachable${C_OFF}"
else
    say "    PostgreSQL  $(hostport "$PG_HOST" "$PG_PORT")  ${C_RED}NOT REACHABLE${C_OFF}"
    err "PostgreSQL is not reachable at $(hostport "$PG_HOST" "$PG_PORT") (from $PG_FROM)."
    cat >&2 <<EOF
  Start it, for example:
      sudo systemctl start postgresql            (or: sudo service postgresql start; brew services start postgresql)
      docker run -d --name nexus-postgres -e POSTGRES_HOST_AUTH_METHOD=trust -p $PG_PORT:5432 postgres:17
  or point DATABASE_URL (in the environment or the env file) at a running server.
EOF
    unreachable=1
fi
if tcp_open "$REDIS_CHECK_HOST" "$REDIS_CHECK_PORT" 3; then
    say "    Redis       $(hostport "$REDIS_CHECK_HOST" "$REDIS_CHECK_PORT")  ${C_GREEN}reachable${C_OFF}"
else
    say "    Redis       $(hostport "$REDIS_CHECK_HOST" "$REDIS_CHECK_PORT")  ${C_RED}NOT REACHABLE${C_OFF}"
    err "Redis is not reachable at $(hostport "$REDIS_CHECK_HOST" "$REDIS_CHECK_PORT") (from $REDIS_FROM)."
    cat >&2 <<EOF
  Start it, for example:
      redis-server --port $REDIS_CHECK_PORT --daemonize yes   (or: sudo systemctl start redis-server; brew services start redis)
      docker run -d --name nexus-redis -p $REDIS_CHECK_PORT:6379 redis:7
  or point REDIS_URL (in the environment or the env file) at a running server.
EOF
    unreachable=1
fi
((unreachable)) && exit 1

# The database itself: create it when missing (needs psql; otherwise the migration step below
# reports a missing database with the command to run).
CREATEDB_CMD="createdb -h $PG_HOST -p $PG_PORT -U $PG_USER $PG_DB"
if have psql; then
    pg_env=(PGCONNECT_TIMEOUT=5 PGHOST="$PG_HOST" PGPORT="$PG_PORT" PGUSER="$PG_USER")
    [[ -n $PG_PASS ]] && pg_env+=(PGPASSWORD="$PG_PASS")
    [[ -n $PG_SSLMODE ]] && pg_env+=(PGSSLMODE="$PG_SSLMODE")
    exists=
    for maint_db in postgres template1; do
        if exists=$(printf '%s\n' "SELECT count(*) FROM pg_database WHERE datname = :'dbname';" |
            env "${pg_env[@]}" PGDATABASE="$maint_db" psql -X -q -t -A -v ON_ERROR_STOP=1 -v dbname="$PG_DB" 2>/dev/null); then
            break
        fi
        exists=
    done
    case $exists in
    1) say "    database '$PG_DB' exists" ;;
    0)
        say "    database '$PG_DB' does not exist: creating it ($CREATEDB_CMD)"
        if ! printf '%s\n' 'CREATE DATABASE :"dbname";' |
            env "${pg_env[@]}" PGDATABASE="$maint_db" psql -X -q -v ON_ERROR_STOP=1 -v dbname="$PG_DB" >/dev/null; then
            die "could not create the database '$PG_DB'. Create it yourself: $CREATEDB_CMD"
        fi
        ;;
    *) say "    could not check whether database '$PG_DB' exists with psql; going on" ;;
    esac
fi

# ----------------------------------------------------------------------------------------------
# start: binary
# ----------------------------------------------------------------------------------------------

if [[ -n ${NEXUS_BIN:-} ]]; then
    BIN=$NEXUS_BIN
else
    target_dir=
    if have cargo; then
        target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
            sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' | sed 's/\\\\/\\/g')
    fi
    [[ -z $target_dir ]] && target_dir=${CARGO_TARGET_DIR:-$SCRIPT_DIR/target}
    BIN=$target_dir/release/nexus-chat
    if ((BUILD)); then
        have cargo || die "cargo is not installed: install Rust (https://rustup.rs), or pass --no-build with NEXUS_BIN=/path/to/nexus-chat"
        step "Building the release binary (cargo build --release)"
        cargo build --release --bin nexus-chat || die "the build failed (see above)"
    fi
fi
[[ ! -x $BIN && -x $BIN.exe ]] && BIN=$BIN.exe
if [[ ! -x $BIN ]]; then
    if [[ -n ${NEXUS_BIN:-} ]]; then
        die "NEXUS_BIN=$BIN is not an executable file"
    fi
    die "no server binary at $BIN: build it (cargo build --release), drop --no-build, or set NEXUS_BIN"
fi
say "    binary: $BIN"

# ----------------------------------------------------------------------------------------------
# start: run directory, ports
# ----------------------------------------------------------------------------------------------

mkdir -p "$RUN_DIR" || die "cannot create the run directory $RUN_DIR"
running=()
for port in $(recorded_ports); do
    pid=$(read_pid "$port")
    if is_ours "$pid"; then
        running+=("node-$port (pid $pid)")
    else
        rm -f "$(pid_file "$port")"
    fi
done
if [[ ${#running[@]} -gt 0 ]]; then
    die "instances from an earlier run are still running: ${running[*]}. Stop them first: $AGAIN stop"
fi

HOST_PROBE=$(probe_host)
HOST_PUBLIC=$(public_host)
LAST_PORT=$((FIRST_PORT + COUNT - 1))
for ((port = FIRST_PORT; port <= LAST_PORT; port++)); do
    if tcp_open "${HOST_PROBE}" "$port" 1; then
        die "port $port is already in use. Pick another first port with -p (this run needs $FIRST_PORT-$LAST_PORT)."
    fi
done

# ----------------------------------------------------------------------------------------------
# start: migrations once, then the instances
# ----------------------------------------------------------------------------------------------

step "Applying database migrations"
MIGRATE_LOG=$RUN_DIR/migrate.log
if ! "$BIN" migrate </dev/null >"$MIGRATE_LOG" 2>&1; then
    err "'nexus-chat migrate' failed. Last lines of $MIGRATE_LOG:"
    tail -n 20 "$MIGRATE_LOG" | sed 's/^/    /' >&2
    if grep -q 'does not exist' "$MIGRATE_LOG"; then
        say "  If the database is missing, create it: $CREATEDB_CMD" >&2
    fi
    exit 1
fi

PORTS=()
PIDS=()

all_items() {
    local i
    for ((i = 0; i < ${#PORTS[@]}; i++)); do printf '%s:%s\n' "${PORTS[$i]}" "${PIDS[$i]}"; done
}

stop_started() {
    trap '' INT TERM HUP
    [[ ${#PORTS[@]} -eq 0 ]] && return 0
    step "Stopping ${#PORTS[@]} instance(s)"
    # shellcheck disable=SC2046
    stop_pids $(all_items)
}

# Ctrl-C (or SIGTERM/SIGHUP): stop what we started. Exit 0 when the cluster was up and stopped
# cleanly (the normal way to end a foreground run), 130 when start-up was interrupted.
STARTED=0
on_signal() {
    printf '\n'
    trap '' INT TERM HUP
    if ((STARTED)); then
        if stop_started; then
            say "All stopped."
            exit 0
        fi
        exit 1
    fi
    say "Interrupted during start-up."
    stop_started
    exit 130
}
trap on_signal INT TERM HUP

rm -f "$(stop_marker)"
step "Starting $COUNT instance(s) on ports $FIRST_PORT-$LAST_PORT (logs in $RUN_DIR)"
for ((port = FIRST_PORT; port <= LAST_PORT; port++)); do
    log=$(log_file "$port")
    if ((DETACH)) && have setsid; then
        # Own session: survives the terminal closing. setsid execs in place (we are not a group
        # leader), so $! is the server's pid.
        PORT=$port INSTANCE_ID=node-$port setsid "$BIN" serve </dev/null >"$log" 2>&1 &
    else
        (
            trap '' HUP
            PORT=$port INSTANCE_ID=node-$port exec "$BIN" serve
        ) </dev/null >"$log" 2>&1 &
    fi
    pid=$!
    PORTS+=("$port")
    PIDS+=("$pid")
    printf '%s\n' "$pid" >"$(pid_file "$port")"
    say "    node-$port  pid $pid"
done

step "Waiting for each instance's /ready (up to ${READY_TIMEOUT}s each)"
for ((i = 0; i < COUNT; i++)); do
    port=${PORTS[$i]}
    url="http://$HOST_PROBE:$port/ready"
    printf '    node-%s ' "$port"
    started=$SECONDS
    failure=
    failed_port=$port
    while :; do
        code=$(http_status "$url")
        if [[ $code == 200 ]]; then
            printf ' %sready%s (%ss)\n' "$C_GREEN" "$C_OFF" "$((SECONDS - started))"
            break
        fi
        # Any instance that died (not only this one) ends the wait at once.
        for ((j = 0; j < COUNT; j++)); do
            if ! is_ours "${PIDS[$j]}"; then
                wait "${PIDS[$j]}" 2>/dev/null
                failure="exited (status $?) before it was ready"
                failed_port=${PORTS[$j]}
                break
            fi
        done
        [[ -n $failure ]] && break
        if ((SECONDS - started >= READY_TIMEOUT)); then
            failure="not ready after ${READY_TIMEOUT}s (last answer from $url: $code)"
            break
        fi
        printf '.'
        sleep 1
    done
    if [[ -n $failure ]]; then
        printf ' %sfailed%s\n' "$C_RED" "$C_OFF"
        err "node-$failed_port $failure. Last lines of $(log_file "$failed_port"):"
        tail -n 30 "$(log_file "$failed_port")" | sed 's/^/    /' >&2
        stop_started
        exit 1
    fi
done

summary() {
    local i
    say ""
    say "${C_BOLD}Nexus Chat: $COUNT instance(s) ready${C_OFF} (PostgreSQL $(hostport "$PG_HOST" "$PG_PORT")/$PG_DB, Redis $(hostport "$REDIS_CHECK_HOST" "$REDIS_CHECK_PORT"))"
    for ((i = 0; i < COUNT; i++)); do
        printf '    node-%-6s http://%s:%-6s pid %-8s log %s\n' "${PORTS[$i]}" "$HOST_PUBLIC" "${PORTS[$i]}" "${PIDS[$i]}" "$(log_file "${PORTS[$i]}")"
    done
    say ""
}
summary

if ((DETACH)); then
    trap - INT TERM HUP
    say "Running in the background. Status: $AGAIN status    Stop: $AGAIN stop"
    exit 0
fi

STARTED=1
say "Press Ctrl-C to stop all instances."
# Foreground: watch the instances until a signal arrives.
reported=()
crashed=0
while :; do
    alive=0
    for ((i = 0; i < COUNT; i++)); do
        pid=${PIDS[$i]}
        if is_ours "$pid"; then
            alive=$((alive + 1))
        elif [[ -z ${reported[$i]:-} ]]; then
            reported[i]=1
            wait "$pid" 2>/dev/null
            rc=$?
            # Stopped on purpose: `stop` left its marker (or already removed the pid file).
            if [[ -e $(stop_marker) || ! -e $(pid_file "${PORTS[$i]}") ]]; then
                say "    node-${PORTS[$i]} (pid $pid) stopped by '$AGAIN stop' (status $rc)"
            else
                crashed=$((crashed + 1))
                warn "node-${PORTS[$i]} (pid $pid) exited on its own (status $rc). Last lines of $(log_file "${PORTS[$i]}"):"
                tail -n 15 "$(log_file "${PORTS[$i]}")" | sed 's/^/    /' >&2
            fi
            rm -f "$(pid_file "${PORTS[$i]}")"
        fi
    done
    if ((alive == 0)); then
        if ((crashed == 0)); then
            say "All instances were stopped."
            exit 0
        fi
        err "every instance has exited"
        exit 1
    fi
    # Interruptible sleep: a trapped signal ends the wait at once.
    sleep 1 &
    wait $! 2>/dev/null
done
