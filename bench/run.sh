#!/usr/bin/env bash
# Runs the whole benchmark suite: builds Nexus Chat, the load generator and the Node.js baseline,
# creates a fresh PostgreSQL database per side, starts 3 instances of each (sharing the local
# Redis under distinct key prefixes), runs every scenario against both sides in the same run,
# then the dm scenario again on 1, 2 and 4 fresh instances of each side (scale), and writes the
# report. Everything it starts is stopped, and its databases dropped, on exit.
#
#   bench/run.sh            full run (~12 minutes), writes docs/benchmarks.md and bench/report/
#   bench/run.sh --quick    every scenario with tiny parameters (~1.5 minutes on 2 cores after the build);
#                           writes the report to a temporary folder unless --out is given
#
# Options: --out FILE (report path), --skip-build, --keep (leave databases and logs for
# debugging), --no-single (skip the one-instance connection-limit run of the full mode),
# --debug (use debug builds: what CI's smoke run does, to skip a release build).
# Environment: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_REDIS_URL
# (default redis://127.0.0.1:6379), BENCH_SCALE_INSTANCES ("1 2 4"; "" skips the scale runs).
# Only loopback addresses are ever targeted.
set -euo pipefail

ORIGINAL_ARGS="$*"
MODE=full
OUT=""
BUILD=1
PROFILE=release
KEEP=0
SINGLE=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) MODE=quick ;;
    --out) OUT="$2"; shift ;;
    --skip-build) BUILD=0 ;;
    --debug) PROFILE=debug ;;
    --keep) KEEP=1 ;;
    --no-single) SINGLE=0 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="$ROOT/bench"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
RUN_ID="$(date +%s)$((RANDOM % 1000))"
WORK="$(mktemp -d "/tmp/nexus-bench-$RUN_ID.XXXX")"
RESULTS="$WORK/results.jsonl"
PIDS=()
DBS=()
PREFIXES=()

log() { printf '\n== %s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [[ $KEEP == 0 ]]; then
    for db in "${DBS[@]}"; do
      psql "$PG/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    for p in "${PREFIXES[@]}"; do
      # Keys are "<prefix>:…" or, with a Redis Cluster hash tag, "{<prefix>:…}…".
      for pattern in "$p:*" "{$p:*"; do
        redis-cli -u "$REDIS_URL" --scan --pattern "$pattern" 2>/dev/null | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
      done
    done
    if [[ $status == 0 ]]; then rm -rf "$WORK"; else echo "run.sh: failed ($status); logs kept in $WORK" >&2; fi
  else
    echo "run.sh: kept $WORK and databases ${DBS[*]}" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Scenario parameters; any of them can be overridden from the environment (BENCH_STORM=10000 ...).
if [[ $MODE == quick ]]; then
  D_USERS=60 D_CONN=300 D_CONN_USERS=20 D_CONN_RATE=1000
  D_DM_RATE=200 D_DM_SECS=3 D_DM_WARMUP=1 D_SENDERS=30
  D_RAMP_START=200 D_RAMP_FACTOR=2 D_RAMP_MAX=800 D_RAMP_STEP=1
  D_STORM=50 D_STORM_WITHIN=2
  D_HIST_MSGS=5000 D_HIST_CONVS=10 D_HIST_REQS=200
  D_ROOMS=3 D_ROOM_SIZE=20 D_ROOM_RATE=30 D_ROOM_SECS=2
  D_READERS=15 D_READ_RATE=200 D_READ_SECS=2
  D_TYPISTS=40 D_TYPING_ROOM_SIZE=10 D_TYPING_RATE=3 D_TYPING_SECS=2
  D_SOURCE_IPS=2
  D_SCALE_INSTANCES="1 2" D_SCALE_RATE=200 D_SCALE_SECS=2 D_SCALE_WARMUP=0.5 D_SCALE_SENDERS=30
else
  D_USERS=4000 D_CONN=9000 D_CONN_USERS=100 D_CONN_RATE=600
  D_DM_RATE=1000 D_DM_SECS=15 D_DM_WARMUP=3 D_SENDERS=300
  D_RAMP_START=200 D_RAMP_FACTOR=1.5 D_RAMP_MAX=200000 D_RAMP_STEP=4
  D_STORM=3000 D_STORM_WITHIN=10
  D_HIST_MSGS=1000000 D_HIST_CONVS=100 D_HIST_REQS=3000
  D_ROOMS=10 D_ROOM_SIZE=100 D_ROOM_RATE=100 D_ROOM_SECS=10
  D_READERS=150 D_READ_RATE=1000 D_READ_SECS=10
  D_TYPISTS=1000 D_TYPING_ROOM_SIZE=10 D_TYPING_RATE=3 D_TYPING_SECS=10
  D_SOURCE_IPS=4
  D_SCALE_INSTANCES="1 2 4" D_SCALE_RATE=1000 D_SCALE_SECS=10 D_SCALE_WARMUP=3 D_SCALE_SENDERS=300
fi
for p in USERS CONN CONN_USERS CONN_RATE DM_RATE DM_SECS DM_WARMUP SENDERS RAMP_START RAMP_FACTOR \
         RAMP_MAX RAMP_STEP STORM STORM_WITHIN HIST_MSGS HIST_CONVS HIST_REQS SOURCE_IPS \
         ROOMS ROOM_SIZE ROOM_RATE ROOM_SECS READERS READ_RATE READ_SECS \
         TYPISTS TYPING_ROOM_SIZE TYPING_RATE TYPING_SECS \
         SCALE_INSTANCES SCALE_RATE SCALE_SECS SCALE_WARMUP SCALE_SENDERS; do
  def="D_$p"; env="BENCH_$p"
  printf -v "$p" '%s' "${!env:-${!def}}"
done
# An empty BENCH_SCALE_INSTANCES is meant: no scale runs.
[[ -v BENCH_SCALE_INSTANCES ]] && SCALE_INSTANCES="$BENCH_SCALE_INSTANCES"
(( USERS >= STORM && USERS >= SENDERS + 2 * HIST_CONVS && USERS >= ROOM_SIZE && USERS >= 2 * READERS \
   && USERS >= TYPISTS && USERS >= SCALE_SENDERS )) || { echo "run.sh: BENCH_USERS too small" >&2; exit 2; }
for n in $SCALE_INSTANCES; do
  [[ $n =~ ^[1-9][0-9]?$ ]] || { echo "run.sh: BENCH_SCALE_INSTANCES: '$n' is not an instance count" >&2; exit 2; }
done

# Sockets need descriptors on both ends; raise the soft limit as far as this machine allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"

if [[ $BUILD == 1 ]]; then
  log "building ($PROFILE: cargo build -p nexus-chat -p nexus-bench; npm ci)"
  if [[ $PROFILE == release ]]; then
    (cd "$ROOT" && cargo build --release -p nexus-chat -p nexus-bench)
  else
    (cd "$ROOT" && cargo build -p nexus-chat -p nexus-bench)
  fi
  (cd "$BENCH_DIR/baseline-node" && npm ci --no-audit --no-fund --loglevel=error)
fi
TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
NEXUS_BIN="$TARGET_DIR/$PROFILE/nexus-chat"
NB="$TARGET_DIR/$PROFILE/nexus-bench"
[[ -x $NEXUS_BIN && -x $NB ]] || { echo "run.sh: binaries missing in $TARGET_DIR/$PROFILE (build first)" >&2; exit 1; }
[[ -d $BENCH_DIR/baseline-node/node_modules ]] || { echo "run.sh: run npm ci in bench/baseline-node" >&2; exit 1; }

JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DB_OURS="nexus_bench_ours_$RUN_ID"
DB_NODE="nexus_bench_node_$RUN_ID"
PREFIX_OURS="nbench_ours_$RUN_ID"
PREFIX_NODE="nbench_node_$RUN_ID"
for db in "$DB_OURS" "$DB_NODE"; do
  psql "$PG/postgres" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
  DBS+=("$db")
done
PREFIXES+=("$PREFIX_OURS" "$PREFIX_NODE")

mapfile -t PORTS < <("$NB" free-ports 6)
OURS_PIDS=(); NODE_PIDS=(); OURS_URLS=(); NODE_URLS=()
# Small pools: PostgreSQL here allows 100 connections for both sides and everyone else.
POOL=10

CORES="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
# Instances packed on one machine share its cores, as start-multi.sh sets them up: each of ours
# gets cores / instances worker threads (at least 1). Node is one thread per instance anyway.
OURS_WORKERS=1
workers_for() { # instances -> WORKER_THREADS for each
  local w=$((CORES / $1))
  echo $((w >= 1 ? w : 1))
}
start_ours_at() { # index port (WORKER_THREADS: $OURS_WORKERS)
  local i=$1 port=$2
  mkdir -p "$WORK/ours-$i"
  (cd "$WORK/ours-$i" && exec env WORKER_THREADS="$OURS_WORKERS" PORT="$port" HOST=127.0.0.1 DATABASE_URL="$PG/$DB_OURS" \
    REDIS_URL="$REDIS_URL" REDIS_PREFIX="$PREFIX_OURS" JWT_SECRET="$JWT_SECRET" INSTANCE_ID="nexus-$i" \
    BCRYPT_COST=4 RATE_LIMIT_BURST=1000000 RATE_LIMIT_PER_SEC=1000000 USER_RATE_LIMIT_BURST=0 DB_POOL_SIZE=$POOL \
    MAX_HANDSHAKES_PER_IP=1000000 MAX_SOCKETS_PER_USER=1000 MAX_CONNECTIONS_PER_IP=0 MAX_CONNECTIONS=$((FD_LIMIT - 500)) \
    DATA_DIR="$WORK/ours-$i" WEB_DIR="$WORK/ours-$i/no-web" RUST_LOG="${BENCH_RUST_LOG:-warn}" \
    "$NEXUS_BIN" serve >>"$WORK/nexus-$i.log" 2>&1) &
  PIDS+=($!)
}
start_ours() { # index
  start_ours_at "$1" "${PORTS[$1]}"
  OURS_PIDS+=($!); OURS_URLS+=("http://127.0.0.1:${PORTS[$1]}")
}
start_node_at() { # index port
  local i=$1 port=$2
  (cd "$BENCH_DIR/baseline-node" && exec env PORT="$port" HOST=127.0.0.1 DATABASE_URL="$PG/$DB_NODE" \
    REDIS_URL="$REDIS_URL" REDIS_PREFIX="$PREFIX_NODE" JWT_SECRET="$JWT_SECRET" INSTANCE_ID="node-$i" \
    BCRYPT_COST=4 DB_POOL_SIZE=$POOL NODE_ENV=production \
    node --expose-gc server.js >>"$WORK/node-$i.log" 2>&1) &
  PIDS+=($!)
}
start_node() { # index
  local port=${PORTS[$((3 + $1))]}
  start_node_at "$1" "$port"
  NODE_PIDS+=($!); NODE_URLS+=("http://127.0.0.1:$port")
}
stop_pids() { # pid... : stops these servers (TERM, KILL after 30 s), reaps them, forgets them
  local pid alive keep=()
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 300); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do [[ " $* " == *" $pid "* ]] || keep+=("$pid"); done
  PIDS=("${keep[@]}")
}

log "starting 3 Nexus Chat and 3 Node baseline instances"
# The first instance of each side creates the schema; the others start once it is ready.
OURS_WORKERS="$(workers_for 3)"
start_ours 0; start_node 0
"$NB" wait-ready --urls "${OURS_URLS[0]},${NODE_URLS[0]}" --timeout 60
for i in 1 2; do start_ours "$i"; start_node "$i"; done
join() { local IFS=,; echo "$*"; }
OURS_URL_LIST="$(join "${OURS_URLS[@]}")"; NODE_URL_LIST="$(join "${NODE_URLS[@]}")"
OURS_PID_LIST="$(join "${OURS_PIDS[@]}")"; NODE_PID_LIST="$(join "${NODE_PIDS[@]}")"
"$NB" wait-ready --urls "$OURS_URL_LIST,$NODE_URL_LIST" --timeout 60

side_args() { # side -> common options
  if [[ $1 == nexus ]]; then
    echo --side nexus --urls "$OURS_URL_LIST" --pids "$OURS_PID_LIST" --users "$WORK/users-nexus.json"
  else
    echo --side node --urls "$NODE_URL_LIST" --pids "$NODE_PID_LIST" --users "$WORK/users-node.json"
  fi
}
side_db() { # side -> its database URL
  if [[ $1 == nexus ]]; then echo "$PG/$DB_OURS"; else echo "$PG/$DB_NODE"; fi
}
both_db() { # scenario args... (as both, with --database-url of the side)
  for side in nexus node; do
    # shellcheck disable=SC2046
    "$NB" "$@" $(side_args $side) --database-url "$(side_db $side)" --results "$RESULTS" >/dev/null
  done
}
both() { # scenario args... (run against each side, ours first)
  for side in nexus node; do
    # shellcheck disable=SC2046
    "$NB" "$@" $(side_args $side) --results "$RESULTS" >/dev/null
  done
}

log "creating $USERS users per side over REST"
"$NB" users --urls "$OURS_URL_LIST" --count "$USERS" --prefix "n${RUN_ID: -6}_" --out "$WORK/users-nexus.json"
"$NB" users --urls "$NODE_URL_LIST" --count "$USERS" --prefix "b${RUN_ID: -6}_" --out "$WORK/users-node.json"

log "connections: $CONN idle sockets ($CONN_USERS users) at $CONN_RATE/s"
both connections --count "$CONN" --users-limit "$CONN_USERS" --rate "$CONN_RATE" --source-ips "$SOURCE_IPS"

log "dm: $DM_RATE msg/s for $DM_SECS s, $SENDERS users"
both_db dm --rate "$DM_RATE" --duration "$DM_SECS" --warmup "$DM_WARMUP" --senders "$SENDERS" --redis-url "$REDIS_URL"

log "ramp: from $RAMP_START msg/s x$RAMP_FACTOR per ${RAMP_STEP}s step"
both ramp --start "$RAMP_START" --factor "$RAMP_FACTOR" --max "$RAMP_MAX" --step-secs "$RAMP_STEP" --senders "$SENDERS"

WARM="$([[ $MODE == quick ]] && echo 1 || echo 2)"
log "rooms: $ROOMS rooms of $ROOM_SIZE members, $ROOM_RATE msg/s for $ROOM_SECS s"
both_db rooms --rooms "$ROOMS" --room-size "$ROOM_SIZE" --rate "$ROOM_RATE" --duration "$ROOM_SECS" --warmup "$WARM"

log "read: $READERS readers marking each of $READ_RATE msg/s for $READ_SECS s"
both_db read --readers "$READERS" --rate "$READ_RATE" --duration "$READ_SECS" --warmup "$WARM"

log "typing: $TYPISTS typists at $TYPING_RATE/s (rooms of $TYPING_ROOM_SIZE and pairs) for $TYPING_SECS s"
both_db typing --typists "$TYPISTS" --room-size "$TYPING_ROOM_SIZE" --per-typist "$TYPING_RATE" \
  --duration "$TYPING_SECS" --warmup "$WARM"

log "storm: $STORM users within $STORM_WITHIN s"
both storm --count "$STORM" --within "$STORM_WITHIN" --source-ips "$SOURCE_IPS"

log "history: $HIST_MSGS messages seeded per side"
"$NB" history --database-url "$PG/$DB_OURS" --schema nexus --messages "$HIST_MSGS" \
  --conversations "$HIST_CONVS" --requests "$HIST_REQS" $(side_args nexus) --results "$RESULTS" >/dev/null
"$NB" history --database-url "$PG/$DB_NODE" --schema node --messages "$HIST_MSGS" \
  --conversations "$HIST_CONVS" --requests "$HIST_REQS" $(side_args node) --results "$RESULTS" >/dev/null

NOTES=()
STORM_BIG="${BENCH_STORM_BIG:-$([[ $MODE == full ]] && echo 10000 || echo 0)}"
if (( STORM_BIG > 0 )); then
  # The full-size storm only for Nexus: N²/2 presence frames (50M at 10,000 users) would keep
  # the baseline busy for many minutes on this machine; the side-by-side ratio comes from the
  # smaller storm above.
  log "storm (Nexus only): $STORM_BIG users within 10 s"
  if (( USERS < STORM_BIG )); then
    "$NB" users --urls "$OURS_URL_LIST" --count "$STORM_BIG" --prefix "n${RUN_ID: -6}_" --out "$WORK/users-nexus-big.json"
  else
    cp "$WORK/users-nexus.json" "$WORK/users-nexus-big.json"
  fi
  "$NB" storm --count "$STORM_BIG" --within 10 --source-ips "$SOURCE_IPS" --max-settle 240 \
    --side nexus --urls "$OURS_URL_LIST" --pids "$OURS_PID_LIST" --users "$WORK/users-nexus-big.json" \
    --tag full-size --results "$RESULTS" >/dev/null || NOTES+=("The full-size storm run failed.")
fi
if [[ -n ${SCALE_INSTANCES// /} ]]; then
  # The same DM load on 1, 2, 4 instances of one side at a time, alone on the machine (the main
  # instances stop first; the sides take turns), so CPU per message can be compared across
  # instance counts and Redis's CPU is that side's. Same databases, prefixes and users.
  log "scale: dm at $SCALE_RATE msg/s for $SCALE_SECS s, $SCALE_SENDERS users, on $SCALE_INSTANCES instances of each side"
  stop_pids "${OURS_PIDS[@]}" "${NODE_PIDS[@]}"
  OURS_PIDS=(); NODE_PIDS=()
  for n in $SCALE_INSTANCES; do
    for side in nexus node; do
      mapfile -t SCALE_PORTS < <("$NB" free-ports "$n")
      SCALE_PIDS=(); SCALE_URLS=(); OURS_WORKERS="$(workers_for "$n")"
      for ((i = 0; i < n; i++)); do
        if [[ $side == nexus ]]; then start_ours_at "scale$n-$i" "${SCALE_PORTS[$i]}"; else start_node_at "scale$n-$i" "${SCALE_PORTS[$i]}"; fi
        SCALE_PIDS+=($!); SCALE_URLS+=("http://127.0.0.1:${SCALE_PORTS[$i]}")
      done
      "$NB" wait-ready --urls "$(join "${SCALE_URLS[@]}")" --timeout 60
      log "scale: $side on $n instance(s)"
      if ! "$NB" dm --rate "$SCALE_RATE" --duration "$SCALE_SECS" --warmup "$SCALE_WARMUP" --senders "$SCALE_SENDERS" \
        --side "$side" --urls "$(join "${SCALE_URLS[@]}")" --pids "$(join "${SCALE_PIDS[@]}")" \
        --users "$WORK/users-$side.json" --database-url "$(side_db "$side")" --redis-url "$REDIS_URL" \
        --tag "scale-$n" --results "$RESULTS" >/dev/null; then
        # The quick run is CI's smoke test: there a failure fails; a full run keeps the rest.
        [[ $MODE == quick ]] && { echo "run.sh: the scale run of $side on $n instances failed" >&2; exit 1; }
        NOTES+=("The scale run of $side on $n instances failed; see its log.")
      fi
      stop_pids "${SCALE_PIDS[@]}"
    done
  done
fi
if [[ $MODE == full && $PROFILE == release ]] && command -v valgrind >/dev/null; then
  # Instructions per message (callgrind): repeatable where CPU seconds are noisy. One instance of
  # its own, after the others have stopped; the figures go in the report's notes.
  log "instructions per message (callgrind, one instance)"
  stop_pids "${OURS_PIDS[@]}" "${NODE_PIDS[@]}"
  OURS_PIDS=(); NODE_PIDS=()
  if IR_OUT="$(BENCH_PG="$PG" BENCH_REDIS_URL="$REDIS_URL" bash "$BENCH_DIR/instructions/run.sh" --bin "$NEXUS_BIN" 2>/dev/null)"; then
    IR_LINE="$(echo "$IR_OUT" | awk '{printf "%s%s %s", (NR > 1 ? "; " : ""), $1, $2}')"
    NOTES+=("Instructions the server executes per direct message (\`bench/instructions/run.sh\`, callgrind, one instance in cluster mode, 500 messages, the default log level): $IR_LINE. They count the server's own work, not the kernel's: compare them between commits, and the CPU seconds above between sides.")
  else
    NOTES+=("The callgrind instructions-per-message run failed.")
  fi
fi
if [[ $MODE == full && $SINGLE == 1 ]]; then
  # 100,000 sockets on one instance need 100,000 descriptors in the server and in the generator.
  SINGLE_COUNT=$(( FD_LIMIT >= 101000 ? 100000 : FD_LIMIT - 1000 ))
  log "one instance: $SINGLE_COUNT sockets (open-file limit $FD_LIMIT)"
  # A fresh process, so that memory freed by earlier scenarios is not reused and hidden, alone on
  # the machine: the other instances stop first (after the storm they would still be sending
  # ~N²/2 user:offline frames for the storm's departing users).
  # (Already done when the scale runs ran.)
  stop_pids "${OURS_PIDS[@]}" "${NODE_PIDS[@]}"
  OURS_PIDS=(); NODE_PIDS=()
  OURS_WORKERS="$(workers_for 1)"
  start_ours_at 0 "${PORTS[0]}"; SINGLE_PID=$!
  "$NB" wait-ready --urls "${OURS_URLS[0]}" --timeout 60
  "$NB" connections --count "$SINGLE_COUNT" --users-limit "$CONN_USERS" --rate 4000 --source-ips 8 \
    --side nexus --urls "${OURS_URLS[0]}" --pids "$SINGLE_PID" --users "$WORK/users-nexus.json" \
    --tag single-instance --results "$RESULTS" >/dev/null || NOTES+=("The one-instance connection run failed; see its log.")
  if (( FD_LIMIT < 101000 )); then
    NOTES+=("100,000 sockets on one instance were not attempted in full: this sandbox's hard open-file limit is $FD_LIMIT descriptors per process (no CAP_SYS_RESOURCE to raise it), so one server process can hold at most ~$((FD_LIMIT - 100)) sockets. The run used $SINGLE_COUNT from 8 loopback source addresses; on a host with \`ulimit -n 1048576\` the same command with \`--count 100000\` applies.")
  fi
fi

if [[ $MODE == quick ]]; then
  REPORT_DIR="${OUT:+$(dirname "$OUT")}"
  REPORT_DIR="${REPORT_DIR:-$(mktemp -d /tmp/nexus-bench-report.XXXX)}"
  OUT="${OUT:-$REPORT_DIR/benchmarks.md}"
  PLOTS="$REPORT_DIR"; LINK="."
else
  OUT="${OUT:-$ROOT/docs/benchmarks.md}"
  PLOTS="$BENCH_DIR/report"; LINK="$(realpath --relative-to="$(dirname "$OUT")" "$PLOTS")"
fi
mkdir -p "$PLOTS"
cp "$RESULTS" "$PLOTS/results.jsonl"
ENV_NOTE="nexus-chat $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') ($PROFILE build), Node $(node --version), socket.io $(node -p "require('$BENCH_DIR/baseline-node/node_modules/socket.io/package.json').version"), PostgreSQL $(psql "$PG/postgres" -tAc 'show server_version' | cut -d' ' -f1), Redis $(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | sed -n 's/^redis_version://p')"
NOTES+=("Raw results of this run: \`$(realpath --relative-to="$ROOT" "$PLOTS" 2>/dev/null || echo "$PLOTS")/results.jsonl\`.")
note_args=()
for n in "${NOTES[@]}"; do note_args+=(--note "$n"); done
"$NB" report --results "$RESULTS" --out "$OUT" --plots-dir "$PLOTS" --plots-link "$LINK" \
  --command "bench/run.sh${ORIGINAL_ARGS:+ $ORIGINAL_ARGS}" --env-note "$ENV_NOTE" "${note_args[@]}"
log "report written to $OUT"
