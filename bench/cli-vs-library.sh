#!/usr/bin/env bash
# `wsstream bench` against `wsstream serve`, side by side with bench/'s raw load client
# (hand-written handshake, frames masked by hand) in the same minutes:
#   - the raw client against the same `wsstream serve` (`WSB_SERVER=ADDR:PID`): the two
#     clients compared on one server;
#   - the raw client against an echo server on `wsstream::server` with two workers (the
#     `server-echo-C-mt` scenarios): what bench/ measures for the library's server role.
# All load one message in flight per connection, 32-byte binary messages, on 127.0.0.1.
#
#   bench/cli-vs-library.sh                # 5 rounds, 1 and 100 connections
#   ROUNDS=3 SECONDS_PER_RUN=5 bench/cli-vs-library.sh
#
# The runs alternate, round after round, and the medians are compared: one connection in
# flight makes the round trip mostly the kernel's loopback path and the wake-up of the
# other side (a sleeping core takes tens of microseconds to wake, a busy one a few), so a
# figure means something only next to one taken at the same moment. Besides round trips
# per second, it prints the CPU time per round trip of the `wsstream bench` process and of
# the `wsstream serve` process (from getrusage and /proc), which do not depend on wake-ups.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${ROUNDS:-5}"
seconds="${SECONDS_PER_RUN:-8}"

cargo build --quiet --locked --profile bench-lto -p wsstream-bench --bin wsstream-bench
cargo build --quiet --locked --release -p wsstream-cli
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir="${target_dir:-target}"
lib_bench="$target_dir/bench-lto/wsstream-bench"
cli="$target_dir/release/wsstream"

work=$(mktemp -d)
serve_pid=
cleanup() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$cli" serve --addr 127.0.0.1:0 2>"$work/serve.err" &
serve_pid=$!
url=
for _ in $(seq 100); do
    url=$(sed -n 's/^listening on \(ws:[^ ]*\).*/\1/p' "$work/serve.err")
    [ -n "$url" ] && break
    sleep 0.05
done
[ -n "$url" ] || { echo "wsstream serve did not start" >&2; cat "$work/serve.err" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# cli CONNS: one `wsstream bench` run; prints "rate client_us server_us".
cli_run() {
    local conns=$1 before after
    before=$(cpu_ticks "$serve_pid")
    # The child's CPU time, from getrusage (no dependency on the `time` package).
    python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w"), check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime, r.ru_stime)' "$work/cli.json" \
        "$cli" bench "$url/echo" -c "$conns" -s 32 --binary -d "${seconds}s" -q --json >"$work/time"
    after=$(cpu_ticks "$serve_pid")
    python3 - "$work/cli.json" "$work/time" "$before" "$after" "$hz" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
user, system = map(float, open(sys.argv[2]).read().split())
n = d["received"]
assert d["ok"] and d["unanswered"] == 0 and d["mismatched"] == 0, d
server = (float(sys.argv[4]) - float(sys.argv[3])) / float(sys.argv[5])
print(d["received_per_s"], (user + system) / n * 1e6, server / n * 1e6)
EOF
}

# lib CONNS [SERVER]: one bench/ server-echo-CONNS-mt run, against a serve-echo child with
# the wsstream server or, with SERVER (ADDR:PID), against that server; prints the rate.
lib_run() {
    local conns=$1
    # About as many round trips as the CLI run makes, so both last a few seconds.
    env ${2:+WSB_SERVER=$2} WSB_SCALE=$(( conns == 1 ? 20 : 15 )) \
        "$lib_bench" "server-echo-$conns-mt" wsstream |
        sed -n 's/^RESULT rate=\([0-9.]*\) .*/\1/p'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "## wsstream bench vs bench/ (library server role)"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $rounds rounds of ${seconds}s, load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| connections | \`wsstream bench\` → \`wsstream serve\` | raw client → \`wsstream serve\` | ratio | raw client → library echo server (bench/) | ratio | CLI client CPU/round trip | \`serve\` CPU/round trip |"
echo "|---|---|---|---|---|---|---|---|"
host_port=${url#ws://}
for conns in 1 100; do
    : >"$work/cli.$conns"
    : >"$work/raw.$conns"
    : >"$work/lib.$conns"
    for _ in $(seq "$rounds"); do
        cli_run "$conns" >>"$work/cli.$conns"
        lib_run "$conns" "$host_port:$serve_pid" >>"$work/raw.$conns"
        lib_run "$conns" >>"$work/lib.$conns"
    done
    cli_rate=$(cut -d' ' -f1 "$work/cli.$conns" | median)
    raw_rate=$(median <"$work/raw.$conns")
    lib_rate=$(median <"$work/lib.$conns")
    client_cpu=$(cut -d' ' -f2 "$work/cli.$conns" | median)
    server_cpu=$(cut -d' ' -f3 "$work/cli.$conns" | median)
    printf '| %s | %.0f | %.0f | %.2f× | %.0f | %.2f× | %.2f µs | %.2f µs |\n' "$conns" \
        "$cli_rate" "$raw_rate" "$(python3 -c "print($cli_rate / $raw_rate)")" \
        "$lib_rate" "$(python3 -c "print($cli_rate / $lib_rate)")" "$client_cpu" "$server_cpu"
done
echo
for c in 1 100; do
    echo "Every round, $c connection(s), round trips/s:" \
        "CLI $(cut -d' ' -f1 "$work/cli.$c" | xargs printf '%.0f ')|" \
        "raw → serve $(xargs printf '%.0f ' <"$work/raw.$c")|" \
        "raw → library server $(xargs printf '%.0f ' <"$work/lib.$c")"
done
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
