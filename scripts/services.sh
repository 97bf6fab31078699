# shellcheck shell=bash
# Makes sure PostgreSQL and Redis answer, for the test suite. Sourced by scripts/test.sh.
#
# Uses the running servers (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres;
# TEST_REDIS_URL, default redis://127.0.0.1:6379). When one does not answer and its binaries are
# installed, starts a throwaway server on a free port in a temp folder (stopped on exit);
# otherwise stops with a message saying how to install it.

: "${TEST_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
: "${TEST_REDIS_URL:=redis://127.0.0.1:6379}"
SERVICES_TMP=""
THROWAWAY_PIDS=()

services_cleanup() {
  for pid in "${THROWAWAY_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -n "$SERVICES_TMP" && -d "$SERVICES_TMP/pg" ]]; then
    "$(pg_bin pg_ctl)" -D "$SERVICES_TMP/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [[ -n "$SERVICES_TMP" ]]; then rm -rf "$SERVICES_TMP"; fi
  # An EXIT trap's last status becomes the script's: never let cleanup turn a pass into a failure.
  return 0
}

# host and port of a URL like scheme://user@host:port/db
url_host() { local u="${1#*://}"; u="${u#*@}"; u="${u%%/*}"; echo "${u%%:*}"; }
url_port() { local u="${1#*://}"; u="${u#*@}"; u="${u%%/*}"; [[ "$u" == *:* ]] && echo "${u##*:}" || echo "$2"; }

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$found" ]] && echo "$found"
}

ensure_postgres() {
  local host port
  host=$(url_host "$TEST_DATABASE_URL"); port=$(url_port "$TEST_DATABASE_URL" 5432)
  if tcp_open "$host" "$port"; then
    echo "  PostgreSQL: using $host:$port"
    return
  fi
  local initdb pg_ctl
  initdb=$(pg_bin initdb); pg_ctl=$(pg_bin pg_ctl)
  if [[ -z "$initdb" || -z "$pg_ctl" ]]; then
    echo "error: PostgreSQL does not answer at $host:$port and no initdb/pg_ctl is installed." >&2
    echo "       Install it (Debian/Ubuntu: sudo apt-get install postgresql) or set TEST_DATABASE_URL." >&2
    exit 1
  fi
  SERVICES_TMP=${SERVICES_TMP:-$(mktemp -d)}
  port=$(free_port)
  echo "  PostgreSQL: none at $host:$port; starting a throwaway server on 127.0.0.1:$port"
  local runas=()
  if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres "$SERVICES_TMP" 2>/dev/null || true
    chmod 755 "$SERVICES_TMP"
    runas=(runuser -u postgres --)
  fi
  "${runas[@]}" "$initdb" -D "$SERVICES_TMP/pg" -U postgres --auth=trust >/dev/null
  "${runas[@]}" "$pg_ctl" -D "$SERVICES_TMP/pg" -o "-p $port -k $SERVICES_TMP -c listen_addresses=127.0.0.1" \
    -l "$SERVICES_TMP/pg.log" -w start >/dev/null
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

ensure_redis() {
  local host port
  host=$(url_host "$TEST_REDIS_URL"); port=$(url_port "$TEST_REDIS_URL" 6379)
  if tcp_open "$host" "$port"; then
    echo "  Redis: using $host:$port"
    return
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "error: Redis does not answer at $host:$port and redis-server is not installed." >&2
    echo "       Install it (Debian/Ubuntu: sudo apt-get install redis-server) or set TEST_REDIS_URL." >&2
    exit 1
  fi
  SERVICES_TMP=${SERVICES_TMP:-$(mktemp -d)}
  port=$(free_port)
  echo "  Redis: none at $host:$port; starting a throwaway server on 127.0.0.1:$port"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$SERVICES_TMP" \
    >"$SERVICES_TMP/redis.log" 2>&1 &
  THROWAWAY_PIDS+=($!)
  for _ in $(seq 50); do tcp_open 127.0.0.1 "$port" && break; sleep 0.1; done
  export TEST_REDIS_URL="redis://127.0.0.1:$port"
}
