#!/usr/bin/env bash
# scripts/feature-matrix.sh - every cargo feature of wsstream compiles on its own and out
# cleanly: clippy (warnings denied) on the library with no default features and with each
# feature alone, then the test suites of the minimal builds (wsstream without TLS,
# proxies, compression or tracing; wsstream-proto without permessage-deflate). The default
# and the full feature sets are covered by the main `cargo test --workspace --all-features`.
set -euo pipefail
cd "$(dirname "$0")/.."

features=(tls rustls-aws-lc-rs rustls-ring webpki-roots proxy deflate tracing hyper axum http2)

echo "feature-matrix: wsstream --no-default-features"
cargo clippy -q --locked -p wsstream --no-default-features --lib -- -D warnings
for feature in "${features[@]}"; do
  echo "feature-matrix: wsstream --no-default-features --features $feature"
  cargo clippy -q --locked -p wsstream --no-default-features --features "$feature" --lib -- -D warnings
done
echo "feature-matrix: wsstream-proto --no-default-features (lib, tests)"
cargo clippy -q --locked -p wsstream-proto --no-default-features --all-targets -- -D warnings
cargo test -q --locked -p wsstream-proto --no-default-features --lib --tests
# Unit and integration tests (tests that need a feature are skipped by `required-features`).
# Not the doctests: the manual's examples use TLS, proxies and hyper, and run with every
# feature on in scripts/docs-check.sh.
echo "feature-matrix: wsstream --no-default-features (tests)"
cargo test -q --locked -p wsstream --no-default-features --lib --tests
echo "feature-matrix: ok"
