#!/usr/bin/env bash
# Builds a statically linked `ferromq` (glibc's static libraries, +crt-static), which runs
# on any Linux of the same architecture and in a `FROM scratch` image. Prints its path.
#   scripts/build-static.sh [--profile dist] [--target x86_64-unknown-linux-gnu]
# The `dist` profile is release without debug information, stripped. CI passes
# `--profile static-check`, a quick unoptimised build of the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=dist
target=$(rustc -vV | sed -n 's/^host: //p')
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --target) target=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
# With --target given, RUSTFLAGS reach only the binary's crates, not build scripts and
# proc-macros (which must stay dynamic libraries). A RUSTFLAGS of the caller's is kept.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked -p ferromq --profile "$profile" --target "$target" >&2
dir=$profile
[ "$profile" = dev ] && dir=debug
bin="${CARGO_TARGET_DIR:-target}/$target/$dir/ferromq"
if grep -q '(NEEDED)' <<< "$(readelf -d "$bin" 2>/dev/null)"; then
    echo "$bin is not statically linked:" >&2
    readelf -d "$bin" | grep '(NEEDED)' >&2
    exit 1
fi
echo "$(cd "$(dirname "$bin")" && pwd)/ferromq"
