#!/usr/bin/env bash
# scripts/browser-test.sh - the demo page of `wsstream serve` in headless Debian chromium.
#
# Usage: scripts/browser-test.sh
#
# 1. Installs Debian's `chromium` with apt if /usr/bin/chromium is missing (`apt-get update`
#    only when there are no package lists yet or the install fails on stale ones).
# 2. Installs playwright-core, pinned by tests/browser/package-lock.json, into
#    tests/browser/node_modules with `npm ci` (skipped when that version is there already).
#    playwright-core downloads no browser; it drives /usr/bin/chromium.
# 3. Builds `cargo build --locked -p wsstream-cli`.
# 4. Twice, each time with a fresh `target/debug/wsstream serve --addr 127.0.0.1:0` (log:
#    target/browser-test-server-NAME.log), runs `node tests/browser/demo.mjs URL PNG`: it
#    waits for CONNECTED and `RECEIVED: pong`, clicks Close, and checks the page shows
#    `DISCONNECTED: code 1000, reason "closed from the page"`.
#    - http1: the page at http://, the WebSocket over HTTP/1.1;
#    - http2: `serve --tls-cert/--tls-key` with a self-signed certificate made with openssl
#      (installed with apt if missing), the page at https:// over HTTP/2, and the server's
#      log must show the WebSocket opened over HTTP/2 (RFC 8441 extended CONNECT).
#
# The last line printed is `browser: 2 passed, 0 failed` (exit 0), or the counts with a
# failure (exit 1). The servers are stopped by their PIDs.
#
# Environment (all optional): CHROMIUM (default /usr/bin/chromium; when set, nothing is
# installed with apt), BROWSER_TEST_TIMEOUT_MS (each wait on the page, default 30000),
# CARGO_TARGET_DIR.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

T0=$(date +%s)
log() { printf 'browser-test.sh: [%3ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() {
  printf 'browser-test.sh: error: %s\n' "$*" >&2
  echo "browser: 0 passed, 1 failed"
  exit 1
}

case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) printf 'browser-test.sh: error: unknown argument %s\n' "$1" >&2; exit 2 ;;
esac

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
SERVER_LOG=$TARGET/browser-test-server.log
SERVER_PID=

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. chromium ---------------------------------------------------------------------------
apt_install() {
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    "${sudo[@]}" apt-get update -q
  fi
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@" </dev/null ||
    { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@" </dev/null; }
}

export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  [ "$CHROMIUM" = /usr/bin/chromium ] || fail "CHROMIUM=$CHROMIUM is not an executable"
  log "installing Debian's chromium with apt"
  apt_install chromium || fail "apt-get install chromium failed"
  [ -x "$CHROMIUM" ] || fail "$CHROMIUM is still missing after installing chromium"
fi
log "$("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM --version failed")"

# --- 2. playwright-core --------------------------------------------------------------------
command -v node >/dev/null 2>&1 || fail "node is needed"
command -v npm >/dev/null 2>&1 || fail "npm is needed"
want=$(node -p 'require("./tests/browser/package-lock.json").packages["node_modules/playwright-core"].version')
have=$(node -p 'try { require("./tests/browser/node_modules/playwright-core/package.json").version } catch { "" }')
if [ "$want" != "$have" ]; then
  log "installing playwright-core $want with npm ci (tests/browser/node_modules)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error </dev/null) ||
    fail "npm ci in tests/browser failed"
else
  log "playwright-core $have already in tests/browser/node_modules"
fi

# --- 3. build and start the server --------------------------------------------------------
log "cargo build --locked -p wsstream-cli"
cargo build --locked -p wsstream-cli || fail "cargo build failed"
BIN=$TARGET/debug/wsstream
[ -x "$BIN" ] || fail "$BIN was not built"

mkdir -p "$TARGET"

# --- 4. the browser test, over HTTP/1.1 and over HTTP/2 -----------------------------------
# serve_and_drive NAME URL_SCHEME [serve args...]: starts the server, drives the page, and
# stops the server; returns demo.mjs's status.
serve_and_drive() {
  local name=$1 scheme=$2 addr= line status=0 out=$TARGET/browser-test-$1.out
  shift 2
  SERVER_LOG=$TARGET/browser-test-server-$name.log
  "$BIN" serve --addr 127.0.0.1:0 "$@" </dev/null >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do   # up to 30 s
    line=$(head -n 1 "$SERVER_LOG" 2>/dev/null || true)
    case "$line" in
      "listening on ws://"*) addr=${line#listening on ws://}; break ;;
      "listening on wss://"*) addr=${line#listening on wss://}; break ;;
    esac
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$addr" ]; then
    cat "$SERVER_LOG" >&2 || true
    echo "browser-test.sh: wsstream serve did not print 'listening on ws(s)://ADDR'" >&2
    stop_server
    return 1
  fi
  local url="$scheme://$addr/"
  log "[$name] wsstream serve (pid $SERVER_PID) at $url; log: $SERVER_LOG"
  log "[$name] node tests/browser/demo.mjs $url $TARGET/browser-test-$name.png"
  node tests/browser/demo.mjs "$url" "$TARGET/browser-test-$name.png" </dev/null 2>&1 | tee "$out" || status=${PIPESTATUS[0]}
  stop_server
  if [ "$status" -ne 0 ]; then
    # demo.mjs printed its verdict already unless node itself failed (say, a missing
    # module); show the server's side.
    echo "browser-test.sh: [$name] demo.mjs exited $status; server log ($SERVER_LOG):"
    sed 's/^/  | /' "$SERVER_LOG" || true
    return 1
  fi
  tail -n 1 "$out" | grep -qx 'browser: 1 passed, 0 failed' || {
    echo "browser-test.sh: [$name] demo.mjs exited 0 without a passing verdict" >&2
    return 1
  }
}

passed=0
failed=0

# Pass 1: the page over http://, its WebSocketStream over HTTP/1.1.
if serve_and_drive http1 http; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

# Pass 2: the page over https:// (a self-signed certificate made here with openssl; chromium
# is told to accept it), on an HTTP/2 connection (ALPN h2). Chromium opens its WebSocket as
# an extended CONNECT stream on that connection (RFC 8441) when the server's SETTINGS allow
# it, which `wsstream serve` does: the server's log must say the /pingpong WebSocket came
# over HTTP/2.
command -v openssl >/dev/null 2>&1 || { log "installing openssl with apt"; apt_install openssl || fail "apt-get install openssl failed"; }
CERT_DIR=$TARGET/browser-test-tls
mkdir -p "$CERT_DIR"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$CERT_DIR/key.pem" -out "$CERT_DIR/cert.pem" >/dev/null 2>&1 || fail "openssl could not make a certificate"
if serve_and_drive http2 https --tls-cert "$CERT_DIR/cert.pem" --tls-key "$CERT_DIR/key.pem"; then
  if grep -q '/pingpong: connected over HTTP/2' "$SERVER_LOG"; then
    log "[http2] the server log shows the WebSocket over HTTP/2"
    passed=$((passed + 1))
  else
    echo "browser-test.sh: [http2] the page passed but its WebSocket did not come over HTTP/2; server log:" >&2
    sed 's/^/  | /' "$SERVER_LOG" >&2 || true
    failed=$((failed + 1))
  fi
else
  failed=$((failed + 1))
fi

echo "browser: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
