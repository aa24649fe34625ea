#!/usr/bin/env bash
# Load test: 10 000 concurrent WebSocket connections to a wsstream echo server, one message
# exchanged on each (twice), then all closed; prints the time to open them, the resident
# memory per idle connection (client, server, both) and whether every close was clean.
#
#   scripts/load.sh                         # 10 000 connections, server in a child process
#   CONNECTIONS=20000 scripts/load.sh
#   LOAD_ARGS="--in-process" CONNECTIONS=9000 scripts/load.sh   # one process, 2 fds/connection
#
# The code never raises the file descriptor limit: this script does, as far as the hard
# limit allows (each process needs about one descriptor per connection, two in-process).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

connections="${CONNECTIONS:-10000}"
if ! ulimit -n 65536 2>/dev/null; then
    ulimit -n "$(ulimit -Hn)"
fi
echo "== open file limit: $(ulimit -n)"

cargo build --release --locked -q -p wsstream-bench --bin load
exec "${CARGO_TARGET_DIR:-$root/target}/release/load" --connections "$connections" ${LOAD_ARGS:-}
