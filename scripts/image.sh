#!/usr/bin/env bash
# Builds the container image `ferromq:latest` from the Containerfile, with podman or
# docker (whichever is installed; CONTAINER_RUNTIME picks one).
#   scripts/image.sh [--tag ferromq:latest] [--binary PATH] [--profile dist]
# Without --binary it builds the static binary first (scripts/build-static.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=ferromq:latest
binary=""
profile=dist
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
runtime=${CONTAINER_RUNTIME:-}
if [ -z "$runtime" ]; then
    for candidate in podman docker; do
        if command -v "$candidate" >/dev/null; then runtime=$candidate; break; fi
    done
fi
[ -n "$runtime" ] || { echo "neither podman nor docker is installed" >&2; exit 1; }
[ -n "$binary" ] || binary=$(scripts/build-static.sh --profile "$profile")
# (Read whole before grep -q: under pipefail an early exit would fail the pipe.)
if grep -q '(NEEDED)' <<< "$(readelf -d "$binary" 2>/dev/null)"; then
    echo "$binary needs shared libraries; the image has none (build it with scripts/build-static.sh)" >&2
    exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/etc" "$context/data"
cp "$binary" "$context/ferromq"
chmod 0755 "$context/ferromq"
echo 'ferromq:x:65532:65532:FerroMQ:/data:/ferromq' > "$context/etc/passwd"
echo 'ferromq:x:65532:' > "$context/etc/group"
cp Containerfile "$context/"
format=()
# podman writes OCI images by default, whose format has no HEALTHCHECK.
[ "$(basename "$runtime")" = podman ] && format=(--format docker)
"$runtime" build "${format[@]}" --build-arg VERSION="$version" -t "$tag" -f "$context/Containerfile" "$context" >&2
size=$("$runtime" image inspect "$tag" --format '{{.Size}}')
echo "built $tag ($version): $((size / 1024 / 1024)) MiB" >&2
