#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each) over its committed seed
# corpus, with cargo-fuzz (nightly, or stable with RUSTC_BOOTSTRAP=1). New crashes land in fuzz/artifacts/.
#   scripts/fuzz.sh [seconds-per-target]
# With 0 seconds it only replays the corpus (a deterministic regression check).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-30}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes nightly-only -Z flags. A fresh machine has only stable, whose rust-std
# ships the same sanitizer runtime, so stable is told to accept them.
toolchain=+nightly
if ! rustup toolchain list | grep -q '^nightly'; then
    toolchain=+stable
    export RUSTC_BOOTSTRAP=1
fi
for target in frame message sql config; do
    mkdir -p "corpus/$target"
    # Work on a copy so the committed corpus only changes on purpose.
    work=$(mktemp -d)
    cp -r "corpus/$target/." "$work/"
    if [ "$secs" = 0 ]; then
        cargo $toolchain fuzz run "$target" "$work" -- -runs=0
    else
        cargo $toolchain fuzz run "$target" "$work" -- -max_total_time="$secs" -print_final_stats=1 2>&1 | tail -12
    fi
    rm -rf "$work"
done
