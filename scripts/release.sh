#!/usr/bin/env bash
# Builds the release archives in dist/: ferromq-<version>-<target>.tar.gz for each Linux
# target this machine can build (x86_64 and aarch64), each holding the static binary, a
# sample broker.conf and controller.conf, the licence, the README, shell completions and
# the manual page; and SHA256SUMS beside them.
# With --image, also the container image of the host's binary (scripts/image.sh) as
# ferromq-image-<version>-<arch>.tar (uncompressed: podman 4 loads no gzip), for machines that have a container runtime and
# no registry to pull from: `podman load -i ...` (or `docker load -i ...`).
#   scripts/release.sh [--profile dist] [--out dist] [--image]
# A target is skipped, with the reason, when its standard library is not installed
# (`rustup target add aarch64-unknown-linux-gnu`) or no linker for it is found
# (Debian's gcc-aarch64-linux-gnu).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=dist
out=dist
image=false
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --image) image=true; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
host=$(rustc -vV | sed -n 's/^host: //p')
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/ferromq-"$version"-*.tar.gz "$out"/ferromq-image-"$version"-*.tar "$out/SHA256SUMS"

# Completions and the manual page come from the host's binary: the CLI is the same on
# every target, and a foreign binary cannot run here.
host_bin=$(scripts/build-static.sh --profile "$profile" --target "$host")

can_build() {
    local target=$1
    [ "$target" = "$host" ] && return 0
    if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$target/lib" ]; then
        echo "skipping $target: its standard library is not installed (rustup target add $target)" >&2
        return 1
    fi
    local arch=${target%%-*}
    local var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_LINKER"
    if [ -z "${!var:-}" ]; then
        if command -v "$arch-linux-gnu-gcc" >/dev/null; then
            export "$var=$arch-linux-gnu-gcc"
        else
            echo "skipping $target: no linker ($arch-linux-gnu-gcc; Debian's gcc-${arch/_/-}-linux-gnu)" >&2
            return 1
        fi
    fi
}

built=0
for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; do
    can_build "$target" || continue
    if [ "$target" = "$host" ]; then
        bin=$host_bin
    else
        bin=$(scripts/build-static.sh --profile "$profile" --target "$target")
    fi
    name="ferromq-$version-$target"
    stage=$(mktemp -d)
    dir="$stage/$name"
    mkdir -p "$dir/conf" "$dir/completions" "$dir/man"
    install -m 0755 "$bin" "$dir/ferromq"
    cp conf/broker.conf conf/controller.conf "$dir/conf/"
    cp LICENSE README.md "$dir/"
    "$host_bin" completions bash > "$dir/completions/ferromq.bash"
    "$host_bin" completions zsh > "$dir/completions/_ferromq"
    "$host_bin" completions fish > "$dir/completions/ferromq.fish"
    "$host_bin" man > "$dir/man/ferromq.1"
    # Owner and times fixed, so the same inputs give the same archive.
    tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name \
        --mtime="@${SOURCE_DATE_EPOCH:-0}" -czf "$out/$name.tar.gz" "$name"
    rm -rf "$stage"
    echo "built $out/$name.tar.gz" >&2
    built=$((built + 1))
done
[ "$built" -gt 0 ] || { echo "no target could be built" >&2; exit 1; }
if $image; then
    runtime=${CONTAINER_RUNTIME:-$(command -v podman || command -v docker || true)}
    [ -n "$runtime" ] || { echo "--image needs podman or docker" >&2; exit 1; }
    tag="ferromq:$version"
    scripts/image.sh --binary "$host_bin" --tag "$tag"
    # docker-archive: the format both podman and docker load.
    save=("$runtime" save)
    [ "$(basename "$runtime")" = podman ] && save+=(--format docker-archive)
    "${save[@]}" -o "$out/ferromq-image-$version-${host%%-*}.tar" "$tag"
    echo "built $out/ferromq-image-$version-${host%%-*}.tar" >&2
fi
(cd "$out" && sha256sum ferromq-*"$version"-*.tar* > SHA256SUMS)
cat "$out/SHA256SUMS"
