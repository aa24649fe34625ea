#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target in fuzz/ for a short time and fails on the
# first crash, hang or invariant violation.
#
#   scripts/fuzz-smoke.sh                      # each target 30 s
#   FUZZ_SECONDS=300 scripts/fuzz-smoke.sh     # longer
#   FUZZ_TARGETS="decoder_client" scripts/fuzz-smoke.sh
#   FUZZ_SANITIZER=none scripts/fuzz-smoke.sh  # faster, no AddressSanitizer
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sancov passes). On a stable
# toolchain RUSTC_BOOTSTRAP=1 lets rustc accept them; on nightly it is harmless.
# Each target starts from its committed seeds (fuzz/corpus/seed-<target>/) and grows a
# local, git-ignored corpus in fuzz/corpus/<target>/. A crash leaves its input in
# fuzz/artifacts/<target>/ and the script prints how to reproduce it.
set -euo pipefail

seconds="${FUZZ_SECONDS:-30}"
targets="${FUZZ_TARGETS:-decoder_client decoder_server handshake_response handshake_request connection inflate}"
sanitizer="${FUZZ_SANITIZER:-address}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd "$fuzz_dir"

echo "== building targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
summary=()
status=0
for target in $targets; do
    seeds="corpus/seed-$target"
    work="corpus/$target"
    mkdir -p "$work"
    [[ -d "$seeds" ]] || seeds=""
    echo "== $target: ${seconds}s"
    log="$logs/$target.log"
    # -timeout: an input that takes 10 s is a hang; -print_final_stats for the execution count.
    if cargo fuzz run --sanitizer "$sanitizer" "$target" "$work" $seeds -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        result="ok"
    else
        result="FAILED"
        status=1
        tail -n 60 "$log"
        echo "-- reproduce with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $target artifacts/$target/<crash-file>)"
    fi
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)"
    execs="${execs:-?}"
    rate="?"
    if [[ "$execs" =~ ^[0-9]+$ ]] && ((seconds > 0)); then
        rate=$((execs / seconds))
    fi
    corpus_size="$(find "$work" -type f | wc -l | tr -d ' ')"
    line="$(printf '%-20s %-7s %12s execs %10s exec/s  corpus %s' "$target" "$result" "$execs" "$rate" "$corpus_size")"
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$status"
