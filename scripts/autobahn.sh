#!/usr/bin/env bash
# scripts/autobahn.sh - Autobahn|TestSuite fuzzingserver conformance run of the wsstream client.
#
# Usage: scripts/autobahn.sh [--update]
#
# Builds `cargo build --release --locked -p wsstream-bench --bin autobahn_client`, runs it
# against the fuzzingserver through ../shared/autobahn/run-client-suite.sh (beside the repo;
# it installs the Python 2.7 suite into a cached venv on first use, ~1 min) and judges the
# report strictly with autobahn/check.py: every case must be OK or INFORMATIONAL (NON-STRICT
# and UNIMPLEMENTED fail) and must match autobahn/expected-client.json.  `--update` rewrites
# that file from this run instead of comparing (commit the result).
# The last line printed is `autobahn: N passed, M failed`; reports go to target/autobahn-reports.
#
# Environment (all optional):
#   AUTOBAHN_CASES    case patterns (default "1.* ... 13.*", including permessage-deflate)
#   AUTOBAHN_PROFILE  full (default, includes 9.* with its 16 MiB messages) | fast (no 9.*)
#   AUTOBAHN_PORT     server port (default: a free one chosen now)
#   AUTOBAHN_AGENT    agent name in the report (default wsstream)
#   AUTOBAHN_RUNNER   path to run-client-suite.sh (default ../shared/autobahn/ beside the repo)
#   AUTOBAHN_CLIENT   client command to run instead of building the client (debugging)
# Other AUTOBAHN_* variables are passed through to the runner (see its README).

set -euo pipefail

log() { printf 'autobahn.sh: %s\n' "$*" >&2; }
die() { printf 'autobahn.sh: error: %s\n' "$*" >&2; exit 2; }

UPDATE=()
for arg in "$@"; do
  case "$arg" in
    --update) UPDATE=(--update) ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (usage: scripts/autobahn.sh [--update])" ;;
  esac
done

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null) || ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RUNNER=${AUTOBAHN_RUNNER:-$ROOT/../shared/autobahn/run-client-suite.sh}
[ -f "$RUNNER" ] || die "Autobahn runner not found at $RUNNER
  The repo is expected to be cloned with shared/ beside it (shared/autobahn/run-client-suite.sh);
  set AUTOBAHN_RUNNER=/path/to/run-client-suite.sh otherwise."
command -v python3 >/dev/null 2>&1 || die "python3 is needed"

export AUTOBAHN_AGENT=${AUTOBAHN_AGENT:-wsstream}
export AUTOBAHN_CASES=${AUTOBAHN_CASES:-1.* 2.* 3.* 4.* 5.* 6.* 7.* 8.* 9.* 10.* 12.* 13.*}
export AUTOBAHN_PROFILE=${AUTOBAHN_PROFILE:-full}
if [ -z "${AUTOBAHN_PORT:-}" ]; then
  # The fuzzingserver binds 0.0.0.0, so ask for a port that is free on every address.
  AUTOBAHN_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
fi
export AUTOBAHN_PORT

REPORTS=${CARGO_TARGET_DIR:-$ROOT/target}/autobahn-reports
mkdir -p "$REPORTS"
rm -f "$REPORTS/index.json" "$REPORTS/fuzzingserver.log"   # never judge a stale run

if [ -n "${AUTOBAHN_CLIENT:-}" ]; then
  read -r -a CLIENT <<<"$AUTOBAHN_CLIENT"
  log "using AUTOBAHN_CLIENT=$AUTOBAHN_CLIENT (no build)"
else
  log "building the client: cargo build --release --locked -p wsstream-bench --bin autobahn_client"
  cargo build --release --locked -p wsstream-bench --bin autobahn_client
  CLIENT=("${CARGO_TARGET_DIR:-$ROOT/target}/release/autobahn_client")
fi

log "cases '$AUTOBAHN_CASES', profile $AUTOBAHN_PROFILE, agent $AUTOBAHN_AGENT, port $AUTOBAHN_PORT, reports $REPORTS"
T0=$(date +%s)
# The runner's own verdict counts NON-STRICT as passed; rename its closing line so that ours,
# from check.py, is the only `autobahn: N passed, M failed`.
set +e
"$RUNNER" -r "$REPORTS" -p "$AUTOBAHN_PROFILE" -- "${CLIENT[@]}" </dev/null |
  sed -u 's/^autobahn: \([0-9]* passed, [0-9]* failed\)$/autobahn: runner (lenient) verdict: \1/'
RUNNER_RC=${PIPESTATUS[0]}
set -e
log "runner finished with status $RUNNER_RC after $(( $(date +%s) - T0 ))s"

case "$RUNNER_RC" in
  0) ;;
  130|143) log "interrupted" ;;
  2) log "setup problem in the runner (Python 2.7 / install / port / server start): see its messages above" ;;
  *) log "the runner's verdict failed (client exit status, missing or failed cases): see above" ;;
esac

set +e
python3 "$ROOT/autobahn/check.py" --agent "$AUTOBAHN_AGENT" --cases "$AUTOBAHN_CASES" "${UPDATE[@]}" "$REPORTS"
CHECK_RC=$?
set -e
[ "$RUNNER_RC" -eq 0 ] || exit "$RUNNER_RC"
exit "$CHECK_RC"
