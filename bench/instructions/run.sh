#!/usr/bin/env bash
# Instructions the server executes per direct message, counted by callgrind (repeatable on a
# shared machine, unlike CPU seconds), at the default log level. One release instance in cluster
# mode (PostgreSQL + Redis, so the bus and the history cache are on the path) runs under
# valgrind; the driver registers two users, warms up and sends N messages (8 in flight), acked
# and delivered; a run with 100 messages is subtracted, so start-up, sign-up and connects cancel
# out (every thread counts; timers that tick per second add a little). Prints, per message:
#   plain (message:send → ack → message:new), +reads (every message marked read), +typing.
#
#   bench/instructions/run.sh [--messages N] [--bin PATH]
# Needs valgrind, node (tests/js's node_modules for socket.io-client), PostgreSQL and Redis.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MESSAGES=500
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/nexus-chat"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --messages) MESSAGES="$2"; shift ;;
    --bin) BIN="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command -v valgrind >/dev/null || { echo "error: valgrind is required (apt-get install valgrind)" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "error: no release binary at $BIN (cargo build --release)" >&2; exit 1; }
[[ -d "$ROOT/tests/js/node_modules" ]] || (cd "$ROOT/tests/js" && npm ci --no-audit --no-fund --loglevel=error >&2)
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
WORK=$(mktemp -d /tmp/nexus-instructions.XXXX)
DB="nexus_ir_$RANDOM$RANDOM"
PREFIX="ir$RANDOM$RANDOM"
SERVER=""
cleanup() {
  [[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  psql "$PG/postgres" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "*$PREFIX:*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Runs one server under callgrind through the driver with `$1` messages; prints the instructions
# the whole process executed, start-up to exit.
run_once() {
  local count=$1; shift
  psql "$PG/postgres" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null 2>&1
  local port=$((20000 + RANDOM % 20000))
  PORT=$port HOST=127.0.0.1 DATABASE_URL="$PG/$DB" REDIS_URL="$REDIS_URL" REDIS_PREFIX="$PREFIX$count" \
    JWT_SECRET=instructions-secret-0123456789 BCRYPT_COST=4 RUST_LOG=info \
    RATE_LIMIT_BURST=100000 RATE_LIMIT_PER_SEC=100000 USER_RATE_LIMIT_BURST=0 \
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 900); do curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { tail -20 "$WORK/server.log" >&2; exit 1; }
  yes go | CLIENT_MODULES="$ROOT/tests/js/package.json" node "$ROOT/bench/instructions/driver.mjs" \
    --url "http://127.0.0.1:$port" --messages "$count" "$@" >/dev/null
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  awk '/^summary:|^totals:/ {print $2; exit}' "$WORK/cg.out"
}

# Instructions per message: the difference between a run of SMALL and one of SMALL + MESSAGES
# messages, so that start-up, sign-up and connects cancel out.
SMALL=100
measure() {
  local label=$1; shift
  local base more
  base=$(run_once "$SMALL" "$@")
  more=$(run_once "$((SMALL + MESSAGES))" "$@")
  printf '%-8s %12.0f instructions / message\n' "$label" "$(awk -v a="$base" -v b="$more" -v n="$MESSAGES" 'BEGIN {print (b - a) / n}')"
}

echo "instructions per message, $MESSAGES messages, $(basename "$BIN") $(git -C "$ROOT" rev-parse --short HEAD)" >&2
measure plain
measure reads --reads
measure typing --typing
