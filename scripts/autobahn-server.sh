#!/usr/bin/env bash
# scripts/autobahn-server.sh - Autobahn|TestSuite fuzzingclient conformance run of the wsstream
# *server*: the suite's client connects to `wsstream serve` (/echo, the server-role
# WebSocketStream through the public API, permessage-deflate on) and runs cases 1.* to 13.*.
#
# Usage: scripts/autobahn-server.sh [--update]
#
# Builds `cargo build --release --locked -p wsstream-cli`, starts `wsstream serve` on a free
# loopback port, runs ../shared/autobahn/run-server-suite.sh (beside the repo; it installs the
# Python 2.7 suite into a cached venv on first use) and stops the server it started. Strict:
# a case passes only when its behavior and its behaviorClose are OK or INFORMATIONAL, and
# every case's behavior and behaviorClose must match autobahn/expected-server.json (`--update`
# rewrites that file from this run instead; commit the result).
# The runner prints `autobahn-server: N passed, M failed`; the last line is the comparison
# with the expectations. Reports go to target/autobahn-server-reports.
#
# Environment (all optional): AUTOBAHN_CASES (default "1.* ... 13.*"), AUTOBAHN_SERVER_RUNNER
# (path to run-server-suite.sh), other AUTOBAHN_* variables are passed to the runner.
set -euo pipefail

UPDATE=0
for arg in "$@"; do
  case "$arg" in
    --update) UPDATE=1 ;;
    *) printf 'autobahn-server.sh: unknown argument %s (usage: scripts/autobahn-server.sh [--update])\n' "$arg" >&2; exit 2 ;;
  esac
done

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
status=0
"$RUNNER" -r "$ROOT/target/autobahn-server-reports" "ws://127.0.0.1:$PORT/echo" || status=$?
# Compare with the committed expectations (or rewrite them with --update).
python3 - "$ROOT/target/autobahn-server-reports/index.json" "$ROOT/autobahn/expected-server.json" \
  "$AUTOBAHN_AGENT" "$UPDATE" <<'PY' || status=1
import json, sys
report, expected_path, agent, update = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
cases = json.load(open(report)).get(agent, {})
got = {cid: {"behavior": v["behavior"], "behaviorClose": v["behaviorClose"]} for cid, v in cases.items()}
key = lambda c: tuple(int(p) if p.isdigit() else p for p in c.split("."))
if update:
    json.dump({k: got[k] for k in sorted(got, key=key)}, open(expected_path, "w"), indent=1)
    print(f"autobahn-server: wrote {len(got)} cases to {expected_path}")
    sys.exit(0)
expected = json.load(open(expected_path))
diff = [c for c in sorted(set(got) | set(expected), key=key) if got.get(c) != expected.get(c)]
for c in diff[:50]:
    print(f"autobahn-server: {c}: expected {expected.get(c)}, got {got.get(c)}")
print(f"autobahn-server: {len(got) - len(diff)} of {len(expected)} cases match autobahn/expected-server.json")
sys.exit(1 if diff else 0)
PY
exit "$status"
