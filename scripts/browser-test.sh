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
# 3. Builds `cargo build --locked -p wsstream-cli` and starts
#    `target/debug/wsstream serve --addr 127.0.0.1:0` (log: target/browser-test-server.log).
# 4. Runs `node tests/browser/demo.mjs http://127.0.0.1:PORT/ target/browser-test.png`: it
#    waits for CONNECTED and `RECEIVED: pong`, clicks Close, and checks the page shows
#    `DISCONNECTED: code 1000, reason "closed from the page"`.
#
# The last line printed is `browser: 1 passed, 0 failed` (exit 0) or
# `browser: 0 passed, 1 failed` (exit 1). The server is stopped by its PID on exit.
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
SCREENSHOT=$TARGET/browser-test.png
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
"$BIN" serve --addr 127.0.0.1:0 </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
ADDR=
for _ in $(seq 1 300); do   # up to 30 s
  line=$(head -n 1 "$SERVER_LOG" 2>/dev/null || true)
  case "$line" in
    "listening on ws://"*) ADDR=${line#listening on ws://}; break ;;
  esac
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ADDR" ]; then
  cat "$SERVER_LOG" >&2 || true
  fail "wsstream serve did not print 'listening on ws://ADDR'"
fi
URL="http://$ADDR/"
log "wsstream serve (pid $SERVER_PID) at $URL; log: $SERVER_LOG"

# --- 4. the browser test ------------------------------------------------------------------
log "node tests/browser/demo.mjs $URL $SCREENSHOT"
OUT=$TARGET/browser-test.out
status=0
node tests/browser/demo.mjs "$URL" "$SCREENSHOT" </dev/null 2>&1 | tee "$OUT" || status=${PIPESTATUS[0]}
stop_server
if [ "$status" -ne 0 ]; then
  # demo.mjs printed its verdict already unless node itself failed (say, a missing module);
  # show the server's side and end on the verdict line either way.
  echo "browser-test.sh: demo.mjs exited $status; server log ($SERVER_LOG):"
  sed 's/^/  | /' "$SERVER_LOG" || true
  echo "browser: 0 passed, 1 failed"
  exit 1
fi
tail -n 1 "$OUT" | grep -qx 'browser: 1 passed, 0 failed' || fail "demo.mjs exited 0 without a passing verdict"
