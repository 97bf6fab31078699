#!/usr/bin/env bash
# A throwaway Redis Cluster on loopback: 3 masters and 3 replicas, nothing kept on disk.
#
#   scripts/redis-cluster.sh start   start it (free ports), wait until every node says
#                                    cluster_state:ok, print its REDIS_URL (redis-cluster://…)
#   scripts/redis-cluster.sh url     print the REDIS_URL of the running cluster
#   scripts/redis-cluster.sh status  the URL, then each node's role and slots
#   scripts/redis-cluster.sh revive  start again the nodes that died (they rejoin as replicas)
#   scripts/redis-cluster.sh stop    stop every node and remove the folder
#
# The folder (REDIS_CLUSTER_DIR, default .run/redis-cluster) holds each node's config, log and pid
# file. REDIS_CLUSTER_NODE_TIMEOUT (ms, default 3000) is how long a master may be silent before its
# replica takes over: the failover test relies on it being short. Needs redis-server and redis-cli 7+.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${REDIS_CLUSTER_DIR:-$PWD/.run/redis-cluster}
NODE_TIMEOUT=${REDIS_CLUSTER_NODE_TIMEOUT:-3000}
NODES=6

die() { echo "redis-cluster.sh: $*" >&2; exit 1; }

ports() { [[ -f "$DIR/ports" ]] && cat "$DIR/ports"; }

url() {
  local first="" rest="" p
  for p in $(ports); do
    if [[ -z $first ]]; then first="127.0.0.1:$p"; else rest+="${rest:+&}node=127.0.0.1:$p"; fi
  done
  [[ -n $first ]] || die "no cluster is running in $DIR (start one first)"
  echo "redis-cluster://$first?$rest"
}

# Ports P such that P and its cluster bus port P+10000 are both free on 127.0.0.1.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
want, found = int(sys.argv[1]), []
def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False
while len(found) < want:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
    if p + 10000 < 65536 and p not in found and free(p) and free(p + 10000):
        found.append(p)
print(" ".join(map(str, found)))
EOF
}

every_node_ok() {
  local p
  for p in $(ports); do
    redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
  # Every master has its replica attached, and every replica has synced (a replica that never did
  # cannot take over).
  [[ $(redis-cli -p "$(ports | cut -d' ' -f1)" cluster nodes 2>/dev/null | grep -c 'slave') -eq 3 ]] || return 1
  local info
  for p in $(ports); do
    info=$(redis-cli -p "$p" info replication 2>/dev/null | tr -d '\r')
    if grep -q '^role:slave' <<<"$info"; then
      grep -q '^master_link_status:up' <<<"$info" || return 1
    fi
  done
}

start_node() {
  mkdir -p "$DIR/$1"
  redis-server --port "$1" --bind 127.0.0.1 --daemonize yes \
    --cluster-enabled yes --cluster-config-file "$DIR/$1/nodes.conf" \
    --cluster-node-timeout "$NODE_TIMEOUT" --dir "$DIR/$1" \
    --pidfile "$DIR/$1/redis.pid" --logfile "$DIR/$1/redis.log" \
    --save '' --appendonly no >/dev/null
}

wait_node() {
  for _ in $(seq 100); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "node $1 did not start; see $DIR/$1/redis.log"
}

# Starts again every node that is not running (a killed master comes back as a replica).
revive() {
  local p pid revived=()
  for p in $(ports); do
    pid=$(cat "$DIR/$p/redis.pid" 2>/dev/null || true)
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
      start_node "$p"
      revived+=("$p")
    fi
  done
  for p in "${revived[@]}"; do wait_node "$p"; done
  for _ in $(seq 300); do
    every_node_ok && { echo "revived: ${revived[*]:-none}"; return; }
    sleep 0.1
  done
  die "the cluster did not recover cluster_state:ok with 3 replicas in 30 s; see $DIR"
}

start() {
  command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
  command -v redis-cli >/dev/null || die "redis-cli is not installed (apt-get install redis-tools)"
  if [[ -f "$DIR/ports" ]]; then
    if every_node_ok; then url; return; fi
    stop >/dev/null
  fi
  mkdir -p "$DIR"
  local list p
  list=$(free_ports "$NODES")
  echo "$list" >"$DIR/ports"
  for p in $list; do start_node "$p"; done
  for p in $list; do wait_node "$p"; done
  local addrs=()
  for p in $list; do addrs+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 \
    || { cat "$DIR/create.log" >&2; die "redis-cli --cluster create failed"; }
  for _ in $(seq 300); do
    every_node_ok && { url; return; }
    sleep 0.1
  done
  die "the cluster did not reach cluster_state:ok with 3 replicas in 30 s; see $DIR"
}

stop() {
  local p pid
  for p in $(ports); do
    pid=$(cat "$DIR/$p/redis.pid" 2>/dev/null || true)
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  done
  for p in $(ports); do
    pid=$(cat "$DIR/$p/redis.pid" 2>/dev/null || true)
    for _ in $(seq 50); do
      [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done
  rm -rf "$DIR"
  echo "stopped"
}

status() {
  url
  redis-cli -p "$(ports | cut -d' ' -f1)" cluster nodes | awk '{print $2, $3, $9, $10, $11}'
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  status) status ;;
  revive) revive ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
