#!/usr/bin/env bash
# Package check: builds the .crate files of the three published crates (wsstream-proto,
# wsstream, wsstream-cli) as `cargo publish` would, and checks that each carries its
# README.md, LICENSE-MIT and LICENSE-APACHE (as files, not symlinks).
#
#   scripts/package-check.sh                  # the committed tree; fails on uncommitted changes
#   scripts/package-check.sh --allow-dirty    # include uncommitted changes
#   scripts/package-check.sh --no-verify      # do not build the packaged sources
#
# wsstream depends on wsstream-proto and wsstream-cli on wsstream, by version: until those
# are on crates.io, a dependent can be packaged and verified only together with what it
# depends on. Cargo 1.90 and later do that (`cargo package -p A -p B`, the packaged crates
# served from a local registry overlay), and so does this script; with an older cargo it
# verifies wsstream-proto alone and lists the files of the other two (`cargo package
# --list`, no build). Extra arguments go to `cargo package`. Works offline
# (CARGO_NET_OFFLINE=true) once the dependencies are in the local cache.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

crates=(wsstream-proto wsstream wsstream-cli)
args=(--locked "$@")
target_dir="${CARGO_TARGET_DIR:-$root/target}"

cargo_minor=$(cargo --version | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
echo "== $(cargo --version)"
rm -f "$target_dir"/package/{wsstream-proto,wsstream,wsstream-cli}-*.crate
# Cargo unpacks a crate of the overlay registry into $CARGO_HOME/registry/src/-<hash>/ once
# and never again for the same version: a later run would verify the sources of the first
# one (seen with cargo 1.95). Those unpacked copies of our three crates come only from such
# overlays (the crates.io ones live in registry/src/index.crates.io-*/): remove them.
for unpacked in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/; do
    [ -d "$unpacked" ] || continue
    rm -rf "$unpacked"wsstream-proto-[0-9]* "$unpacked"wsstream-cli-[0-9]* "$unpacked"wsstream-[0-9]*
done
if [ "${cargo_minor:-0}" -ge 90 ]; then
    echo "== cargo package ${args[*]} -p wsstream-proto -p wsstream -p wsstream-cli"
    cargo package "${args[@]}" -p wsstream-proto -p wsstream -p wsstream-cli
else
    echo "== cargo older than 1.90: wsstream-proto packaged alone, the others listed"
    cargo package "${args[@]}" -p wsstream-proto
    for crate in wsstream wsstream-cli; do
        cargo package "${args[@]}" --list -p "$crate" >/dev/null
    done
fi

status=0
for crate in "${crates[@]}"; do
    files=$(cargo package "${args[@]}" --list -p "$crate" 2>/dev/null)
    for needed in Cargo.toml README.md LICENSE-MIT LICENSE-APACHE; do
        if ! grep -qx "$needed" <<<"$files"; then
            echo "package-check: $crate: $needed is not in the package" >&2
            status=1
        fi
    done
    # The .crate itself (when built): the license files must be regular, non-empty files.
    crate_file=$(ls "$target_dir"/package/"$crate"-[0-9]*.crate 2>/dev/null | head -n 1 || true)
    if [ -n "$crate_file" ]; then
        listing=$(tar -tvzf "$crate_file")
        for license in LICENSE-MIT LICENSE-APACHE README.md; do
            if ! grep -Eq "^-[^ ]+ +[^ ]+ +[1-9][0-9]* .*/$license\$" <<<"$listing"; then
                echo "package-check: $crate_file: $license is not a regular non-empty file" >&2
                status=1
            fi
        done
    fi
    echo "package-check: $crate: $(wc -l <<<"$files") files${crate_file:+, $(basename "$crate_file")}"
done
[ "$status" -eq 0 ] && echo "package-check: OK"
exit "$status"
