#!/usr/bin/env bash
# scripts/msrv-check.sh - the published crates build with the rust-version they declare
# (the workspace's `rust-version`), with the locked dependencies: installs that toolchain
# (rustup, minimal profile) if missing, then `cargo check` with every feature on, and with
# none, in a target directory of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ -n "$msrv" ] || { echo "msrv-check: no rust-version in Cargo.toml" >&2; exit 1; }
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$msrv" --profile minimal
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/msrv"
echo "msrv-check: Rust $msrv, all features"
cargo "+$msrv" check --locked -p wsstream-proto -p wsstream -p wsstream-cli --all-features
echo "msrv-check: Rust $msrv, no default features"
cargo "+$msrv" check --locked -p wsstream-proto -p wsstream --no-default-features
echo "msrv-check: ok"
