#!/usr/bin/env bash
# Soak test: echo at a steady message rate for DURATION seconds (default 600) through a
# wsstream client and server in one process; every echo checked byte for byte; RSS sampled
# every 10 s; fails unless the RSS at the end is within 10 % of the RSS after the warm-up,
# with no error and every connection closed cleanly.
#
#   scripts/soak.sh                          # 600 s, 2000 msg/s over 16 connections
#   DURATION=3600 RATE=5000 scripts/soak.sh
#   SOAK_ARGS="--connections 64 --max-size 65536" scripts/soak.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration="${DURATION:-600}"
rate="${RATE:-2000}"
warmup="${WARMUP:-60}"

cargo build --release --locked -q -p wsstream-bench --bin soak
exec "${CARGO_TARGET_DIR:-$root/target}/release/soak" \
    --duration "$duration" --warmup "$warmup" --rate "$rate" ${SOAK_ARGS:-}
