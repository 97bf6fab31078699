#!/usr/bin/env bash
# The whole test suite, the one command CI runs (.ci/run) and the README names:
#   formatting and lints, Rust unit + integration tests (both storage backends), the Socket.io
#   client suites (socket.io-client 4.x and 2.x, python-socketio) on SQLite, PostgreSQL and a
#   Redis cluster (with fault, security and fuzz tests), a 60-second soak, the REST API fuzzed
#   against its OpenAPI description (schemathesis, SQLite and PostgreSQL), the web client's
#   lint/unit/build, its browser end-to-end tests, the launcher test and a benchmark smoke run.
# It uses the PostgreSQL and Redis already running (TEST_DATABASE_URL, TEST_REDIS_URL) or starts
# throwaway ones. Every test creates its own database and Redis prefix, so runs can overlap.
#   A Redis Cluster (scripts/redis-cluster.sh) runs the cluster suites and a failover test; the release
#   binary, started alone in an empty folder, must serve the web client it embeds.
# Skip parts while iterating with SKIP_LINT=1, SKIP_JS=1, SKIP_FUZZ=1, SKIP_WEB=1, SKIP_E2E=1,
# SKIP_BENCH=1, SKIP_REDIS_CLUSTER=1, SKIP_RELEASE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/services.sh

STARTED=$SECONDS
SERVER_PIDS=()
cleanup() {
  local status=$?
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -n ${REDIS_CLUSTER_DIR:-} ]]; then bash scripts/redis-cluster.sh stop >/dev/null 2>&1 || true; fi
  services_cleanup
  exit "$status"
}
trap cleanup EXIT

step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - STARTED))" "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required: $2" >&2; exit 1; }; }

need cargo "install Rust from https://rustup.rs"
need node "install Node.js 20 or newer"
need npm "install Node.js 20 or newer"
need python3 "install Python 3"
need curl "install curl"

step "Services"
ensure_postgres
ensure_redis
export PG_ADMIN_URL="$TEST_DATABASE_URL"
export TEST_DATABASE_URL TEST_REDIS_URL

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export NEXUS_BIN="$TARGET_DIR/debug/nexus-chat"

if [[ -z "${SKIP_LINT:-}" ]]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy (warnings are errors)"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "cargo test (unit, storage conformance on SQLite and PostgreSQL, HTTP)"
cargo build --workspace --locked
cargo test --workspace --locked

# Starts the debug server in the background: start_server <port> [VAR=value ...]
start_server() {
  local port=$1; shift
  env PORT="$port" HOST=127.0.0.1 WEB_DIR="$ROOT/web/dist" BCRYPT_COST=4 RUST_LOG=warn "$@" \
    "$NEXUS_BIN" >"$LOG_DIR/server-$port.log" 2>&1 &
  SERVER_PIDS+=($!)
  for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "error: server on port $port did not become ready; its log:" >&2
  tail -n 40 "$LOG_DIR/server-$port.log" >&2
  exit 1
}
stop_servers() {
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVER_PIDS=()
}
fresh_db() {
  local name="nexus_e2e_$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')"
  psql_admin -c "CREATE DATABASE $name" >/dev/null
  echo "${TEST_DATABASE_URL%/*}/$name"
}
psql_admin() {
  node -e '
    const { Client } = require(process.argv[1]);
    const c = new Client({ connectionString: process.env.TEST_DATABASE_URL });
    c.connect().then(() => c.query(process.argv[3])).then(() => c.end()).catch(e => { console.error(e.message); process.exit(1); });
  ' "$ROOT/tests/js/node_modules/pg" "$@"
}
LOG_DIR=$(mktemp -d)

if [[ -z "${SKIP_JS:-}" ]]; then
  step "Socket.io client suites (socket.io-client 4.x/2.x; SQLite, PostgreSQL, 3-node cluster)"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  (cd tests/js && TEST_CLUSTER=1 npm test)

  if [[ -z "${SKIP_REDIS_CLUSTER:-}" ]]; then
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
      step "Redis Cluster (3 masters + 3 replicas): the three-instance suites on it"
      export REDIS_CLUSTER_DIR="$LOG_DIR/redis-cluster"
      CLUSTER_URL=$(bash scripts/redis-cluster.sh start)
      echo "REDIS_URL=$CLUSTER_URL"
      (cd tests/js && TEST_REDIS_URL="$CLUSTER_URL" TEST_CLUSTER=1 TEST_MODES=postgres node --test \
        --test-concurrency=1 --test-timeout=600000 --test-name-pattern='three instances' \
        test/cluster.test.mjs test/rooms.test.mjs test/read-state.test.mjs)
      step "Redis Cluster failover: a master killed under traffic"
      (cd tests/js && TEST_REDIS_URL="$CLUSTER_URL" TEST_REDIS_CLUSTER=1 node --test --test-timeout=300000 \
        test/redis-cluster-failover.test.mjs)
      bash scripts/redis-cluster.sh stop >/dev/null
      unset REDIS_CLUSTER_DIR
    else
      echo "SKIPPED: the Redis Cluster suite and failover test need redis-server and redis-cli 7+" \
        "(apt-get install redis-server); they did not run"
    fi
  fi

  step "60-second churn soak on a 3-node cluster (RSS, fds and Redis keys stay flat)"
  (cd tests/js && npm run soak)

  step "python-socketio client"
  VENV="${NEXUS_CACHE_DIR:-$HOME/.cache/nexus-chat}/venv"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt
  PORT_PY=$(free_port)
  start_server "$PORT_PY" DATA_DIR="$LOG_DIR/py-data" JWT_SECRET=python-suite-secret
  "$VENV/bin/python" tests/python/test_client.py "http://127.0.0.1:$PORT_PY"
  stop_servers
fi

if [[ -z "${SKIP_FUZZ:-}" ]]; then
  step "REST API fuzzed against /api/openapi.json (schemathesis --checks all; SQLite, PostgreSQL)"
  VENV="${NEXUS_CACHE_DIR:-$HOME/.cache/nexus-chat}/venv"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements-fuzz.txt
  [[ -d tests/js/node_modules ]] || (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  # 25 examples an operation: 25–35 s a backend; FUZZ_SEED=<seed> replays a run.
  (cd tests/js && SCHEMATHESIS="$VENV/bin/schemathesis" FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-25}" node rest-fuzz.mjs)
fi

if [[ -z "${SKIP_WEB:-}" ]]; then
  step "web client: lint, unit tests, production build"
  (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run lint && npm test && npm run build)

  if [[ -z "${SKIP_E2E:-}" ]]; then
    if [[ ! -x /usr/bin/chromium && -z "${CHROMIUM_PATH:-}" ]]; then
      if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        step "installing Debian's chromium for the browser tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
      else
        echo "error: browser tests need Chromium: sudo apt-get install chromium (or set CHROMIUM_PATH)," >&2
        echo "       or skip them with SKIP_E2E=1" >&2
        exit 1
      fi
    fi
    [[ -d tests/js/node_modules ]] || (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)

    step "browser end-to-end: embedded default (SQLite, one node)"
    P1=$(free_port)
    start_server "$P1" DATA_DIR="$LOG_DIR/e2e-data"
    (cd web && E2E_BASE_URLS="http://127.0.0.1:$P1" npm run e2e)
    stop_servers

    step "browser end-to-end: 2-node cluster (PostgreSQL + Redis)"
    DB_URL=$(fresh_db)
    PREFIX="e2e-$RANDOM$RANDOM"
    P1=$(free_port); P2=$(free_port)
    for p in "$P1" "$P2"; do
      start_server "$p" DATABASE_URL="$DB_URL" REDIS_URL="$TEST_REDIS_URL" REDIS_PREFIX="$PREFIX" \
        JWT_SECRET=e2e-cluster-secret INSTANCE_ID="node-$p"
    done
    (cd web && E2E_BASE_URLS="http://127.0.0.1:$P1,http://127.0.0.1:$P2" npm run e2e)
    stop_servers
    if command -v redis-cli >/dev/null; then
      for pattern in "$PREFIX:*" "{$PREFIX:*"; do
        redis-cli -u "$TEST_REDIS_URL" --scan --pattern "$pattern" | xargs -r redis-cli -u "$TEST_REDIS_URL" del >/dev/null || true
      done
    fi
    psql_admin -c "DROP DATABASE IF EXISTS ${DB_URL##*/} WITH (FORCE)" >/dev/null

    if [[ -z "${SKIP_RELEASE:-}" ]]; then
      # After the web build above, so build.rs finds web/dist fresh and embeds it as it is.
      step "release binary: build (embeds web/dist), start it alone in an empty folder, headers, Chromium"
      cargo build --release --locked -p nexus-chat
      bash scripts/test-release.sh "$TARGET_DIR/release/nexus-chat"
    fi
  fi
fi

if [[ -x tests/launcher/test_start_multi.sh ]]; then
  step "start-multi.sh launcher"
  NEXUS_BIN="$NEXUS_BIN" bash tests/launcher/test_start_multi.sh
fi

if [[ -z "${SKIP_BENCH:-}" && -x bench/run.sh ]]; then
  step "benchmark smoke run (tiny parameters)"
  bash bench/run.sh --quick --debug
fi

step "all tests passed"
