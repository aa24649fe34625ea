#!/usr/bin/env bash
# Builds wsstream-bench (fat LTO, one codegen unit) and runs the whole matrix: every
# scenario × client, WSB_REPS repetitions (default 3) with clients interleaved, each run in
# its own process against the near-zero-cost server in a child process. Prints markdown
# tables (medians, ratio to the raw-TCP limit, ratio to the best peer) on stdout; progress
# goes to stderr. Fails if any client fails its correctness checks.
#
#   WSB_SCALE=0.25 bench/run.sh                 # quarter counts
#   WSB_SCENARIOS=recv-16-bin,echo-32 WSB_CLIENTS=wsstream,raw bench/run.sh
#
# On a 2-core machine the server (one thread) and the measured client (one current-thread
# runtime) each get a core; nothing is pinned. The server-role scenarios (server-echo-*,
# server-idle*) turn it around: each library's echo server in a child process (one worker,
# or two for -mt) against one raw load client; they add about 2 minutes. The streams-1000-*
# scenarios open 1,000 WebSocketStreams to one origin over HTTP/2 and over HTTP/1.1
# (wsstream on both sides, the server a hyper one in a child process):
#
#   WSB_SCENARIOS=streams-1000-h2,streams-1000-h1,streams-1000-ws WSB_CLIENTS=wsstream bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# 10,000 idle connections need two descriptors each on loopback (client and server side;
# `idle` and `server-idle` alike, one per process). streams-1000-h1 needs 1,000 in each
# process, close to the usual soft limit of 1,024 with the runtime's own.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then
    ulimit -n 65536
else
    ulimit -n "$hard"
fi

cargo build --quiet --profile bench-lto -p wsstream-bench --bin wsstream-bench --bin wsstream-bench-heap
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="${target_dir:-target}/bench-lto/wsstream-bench"

echo "## wsstream-bench"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), Linux $(uname -r), $(rustc --version | cut -d' ' -f1-2)."
echo "Load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (anything well above 0 means other work shared the cores: trust the CPU columns more than the rates)."
status=0
"$bin" matrix || status=$?
echo
echo "Load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)."
exit "$status"
