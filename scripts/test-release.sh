#!/usr/bin/env bash
# The release binary on its own (issue 16): copied into an empty temporary folder and started there
# with no WEB_DIR, no .env and no database settings (so embedded SQLite in ./data of that folder),
# it must serve the web client it carries: header checks with curl, then web/e2e/served.e2e.mjs
# loads / in Chromium under the server's own Content-Security-Policy.
#
#   scripts/test-release.sh [BINARY]   default: <cargo target dir>/release/nexus-chat (build it
#                                      first: cargo build --release --locked)
# Needs curl, Node.js with web/node_modules (npm --prefix web ci) and Chromium (CHROMIUM_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [[ $# -gt 0 ]]; then
  BIN=$1
else
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  BIN="$TARGET_DIR/release/nexus-chat"
fi
[[ -x $BIN ]] || { echo "test-release.sh: no binary at $BIN (cargo build --release --locked)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/nexus-release.XXXXXX)
PID=""
cleanup() {
  local status=$?
  [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  if [[ $status -eq 0 ]]; then rm -rf "$WORK"; else echo "test-release.sh: failed; the folder and log are in $WORK" >&2; fi
  exit "$status"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cp "$BIN" "$WORK/nexus-chat"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
(
  cd "$WORK"
  exec env -u WEB_DIR -u DATA_DIR -u DATABASE_URL -u DB_HOST -u REDIS_URL -u REDIS_HOST -u JWT_SECRET \
    PORT="$PORT" HOST=127.0.0.1 BCRYPT_COST=4 RUST_LOG=info LOG_FORMAT=text ./nexus-chat
) >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 300); do
  curl -fsS "$BASE/ready" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; fail "the server exited"; }
  sleep 0.1
done
curl -fsS "$BASE/ready" >/dev/null || { tail -n 40 "$WORK/server.log" >&2; fail "not ready within 30 s"; }

grep -q 'embedded (' "$WORK/server.log" || { cat "$WORK/server.log" >&2; fail "the server does not say it serves the embedded client"; }
[[ -f "$WORK/data/nexus-chat.sqlite3" ]] || fail "no embedded SQLite database in the folder it was started in"

# header NAME VALUE-REGEX URL [curl args...]
header() {
  local name=$1 want=$2 url=$3; shift 3
  local got
  got=$(curl -fsS -o /dev/null -D - "$@" "$url" | tr -d '\r' | grep -i "^$name:" | head -n1 | cut -d' ' -f2-)
  if [[ $want == =* ]]; then
    [[ $got == "${want#=}" ]] || fail "$url: $name is '$got', expected '${want#=}'"
  else
    [[ $got =~ $want ]] || fail "$url: $name is '$got', expected /$want/"
  fi
  echo "ok: $url $* → $name: $got"
}
CSP="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
header content-type '^text/html' "$BASE/"
header cache-control '^no-cache$' "$BASE/"
header content-security-policy "=$CSP" "$BASE/"
header x-content-type-options '^nosniff$' "$BASE/"
header referrer-policy '^no-referrer$' "$BASE/"
SCRIPT=$(curl -fsS "$BASE/" | grep -o '/assets/[^"]*\.js' | head -n1)
[[ -n $SCRIPT ]] || fail "index.html names no /assets/*.js"
header cache-control '^public, max-age=31536000, immutable$' "$BASE$SCRIPT"
header content-encoding '^br$' "$BASE$SCRIPT" -H 'Accept-Encoding: gzip, deflate, br'
header content-encoding '^gzip$' "$BASE$SCRIPT" -H 'Accept-Encoding: gzip'
RAW=$(curl -fsS -o /dev/null -w '%{size_download}' "$BASE$SCRIPT")
BR=$(curl -fsS -o /dev/null -w '%{size_download}' -H 'Accept-Encoding: br' "$BASE$SCRIPT")
echo "ok: $SCRIPT is $RAW bytes, $BR as Brotli"
ETAG=$(curl -fsS -o /dev/null -D - "$BASE/" | tr -d '\r' | grep -i '^etag:' | cut -d' ' -f2)
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $ETAG" "$BASE/") == 304 ]] || fail "If-None-Match: $ETAG did not answer 304"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/no-such-route") == 404 ]] || fail "/api/no-such-route is not a 404"
curl -s "$BASE/api/no-such-route" | grep -q '"statusCode":404' || fail "/api/no-such-route has no NestJS body"
curl -fsS "$BASE/some/app/path" | grep -q '<div id="root">' || fail "an app path does not get index.html"
echo "ok: 304 on a matching ETag, JSON 404 under /api, index.html for app paths"

(cd "$ROOT/web" && E2E_BASE_URLS="$BASE" npm run --silent e2e:file -- e2e/served.e2e.mjs)
echo "release binary from an empty folder: all checks passed"
