#!/usr/bin/env bash
# Documentation checks: the docs build without a warning (broken intra-doc links, missing
# docs and bare URLs are errors), every doctest passes, and no doc comment cites the
# internal behaviour checklist by item number (B12, G4, spec.md, …): the crate explains
# behaviour in words and cites RFC 6455 / RFC 7692 sections or web-platform test names.
#
#   scripts/docs-check.sh
#   CARGO_TARGET_DIR=/tmp/t scripts/docs-check.sh    # another target directory
#
# Fails on the first failing step.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() {
    echo "==> $*" >&2
    "$@"
}

# 1. rustdoc, all features (the hyper/axum/webpki-roots items and their links) and the
#    default features (what a user of the defaults sees: no link may point at a gated item).
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" \
    step cargo doc --locked -p wsstream -p wsstream-proto --no-deps --all-features
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" \
    step cargo doc --locked -p wsstream --no-deps

# 2. Doctests (the crate docs, the manual, the item examples; many start a server).
step cargo test --locked -q -p wsstream --doc --all-features
step cargo test --locked -q -p wsstream-proto --doc

# 3. No internal spec item numbers (B12, G4, spec.md) in the sources, tests and manual.
echo "==> no internal spec item numbers in comments" >&2
if grep -rnE --include='*.rs' --include='*.md' '(//|^).*(\b[BG][0-9]{1,2}\b|spec\.md)' \
    crates/*/src crates/*/tests; then
    echo "error: internal spec item numbers above; explain the behaviour in words (cite RFC sections or WPT test names)" >&2
    exit 1
fi

# 4. Formatting (doc examples are not formatted by rustfmt, the code around them is).
step cargo fmt --all --check

echo "docs-check: OK" >&2
