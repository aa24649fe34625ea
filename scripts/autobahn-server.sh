#!/usr/bin/env bash
# scripts/autobahn-server.sh - Autobahn|TestSuite fuzzingclient conformance run of the wsstream
# *server*: the suite's client connects to `wsstream serve` (/echo, the server-role
# WebSocketStream through the public API, permessage-deflate on) and runs cases 1.* to 13.*.
#
# Usage: scripts/autobahn-server.sh
#
# Builds `cargo build --release --locked -p wsstream-cli`, starts `wsstream serve` on a free
# loopback port, runs ../shared/autobahn/run-server-suite.sh (beside the repo; it installs the
# Python 2.7 suite into a cached venv on first use) and stops the server it started. Strict:
# a case passes only when its behavior and its behaviorClose are OK or INFORMATIONAL.
# The last line printed is `autobahn-server: N passed, M failed`; reports go to
# target/autobahn-server-reports.
#
# Environment (all optional): AUTOBAHN_CASES (default "1.* ... 13.*"), AUTOBAHN_SERVER_RUNNER
# (path to run-server-suite.sh), other AUTOBAHN_* variables are passed to the runner.
set -euo pipefail

log() { printf 'autobahn-server.sh: %s\n' "$*" >&2; }
die() { printf 'autobahn-server.sh: error: %s\n' "$*" >&2; exit 2; }

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null) || ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RUNNER=${AUTOBAHN_SERVER_RUNNER:-$ROOT/../shared/autobahn/run-server-suite.sh}
[ -f "$RUNNER" ] || die "Autobahn runner not found at $RUNNER (clone the repo with shared/ beside it)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed"

export AUTOBAHN_CASES=${AUTOBAHN_CASES:-1.* 2.* 3.* 4.* 5.* 6.* 7.* 8.* 9.* 10.* 12.* 13.*}
export AUTOBAHN_AGENT=${AUTOBAHN_AGENT:-wsstream-server}

log "building the wsstream CLI (release)"
cargo build --release --locked -p wsstream-cli
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/wsstream

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
LOG=$ROOT/target/autobahn-server-reports/serve.log
mkdir -p "$(dirname "$LOG")"
"$BIN" serve --addr "127.0.0.1:$PORT" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
    break
  fi
  kill -0 "$SERVER" 2>/dev/null || die "wsstream serve exited (see $LOG)"
  sleep 0.1
done
log "wsstream serve is listening on 127.0.0.1:$PORT (pid $SERVER); cases: $AUTOBAHN_CASES"
"$RUNNER" -r "$ROOT/target/autobahn-server-reports" "ws://127.0.0.1:$PORT/echo"
