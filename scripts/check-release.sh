#!/usr/bin/env bash
# Checks the archives scripts/release.sh wrote: checksums, contents, a static binary of
# the right version that starts from the archive with its sample broker.conf and answers
# `ferromq health`, completions bash can load, and the manual page.
#   scripts/check-release.sh [dist]
set -euo pipefail
cd "$(dirname "$0")/.."
dist=$(cd "${1:-dist}" && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
fail() { echo "FAILED: $*" >&2; exit 1; }

(cd "$dist" && sha256sum -c SHA256SUMS) || fail "checksums"
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
host=$(rustc -vV | sed -n 's/^host: //p')
archive="$dist/ferromq-$version-$host.tar.gz"
[ -f "$archive" ] || fail "no archive for this machine ($archive)"
tar -C "$work" -xzf "$archive"
dir="$work/ferromq-$version-$host"
for f in ferromq LICENSE README.md conf/broker.conf conf/controller.conf \
         completions/ferromq.bash completions/_ferromq completions/ferromq.fish man/ferromq.1; do
    [ -s "$dir/$f" ] || fail "$f is missing from the archive"
done
[ -x "$dir/ferromq" ] || fail "the binary is not executable"
! grep -q '(NEEDED)' <<< "$(readelf -d "$dir/ferromq")" || fail "the binary needs shared libraries"
[ "$("$dir/ferromq" --version)" = "ferromq $version" ] || fail "the binary says $("$dir/ferromq" --version)"
grep -q '^\.TH ferromq 1' "$dir/man/ferromq.1" || fail "the manual page has no .TH header"
bash -c "source '$dir/completions/ferromq.bash' && complete -p ferromq" > /dev/null \
    || fail "bash cannot load the completions"

# The sample configuration as shipped, on free ports.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
np=$(free_port); bp=$(free_port)
"$dir/ferromq" standalone -c "$dir/conf/broker.conf" --data-dir "$work/data" \
    --namesrv-listen "127.0.0.1:$np" --broker-listen "127.0.0.1:$bp" --no-dashboard --no-grpc \
    > "$work/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "FerroMQ is ready" "$work/out" && break; sleep 0.1; done
grep -q "FerroMQ is ready" "$work/out" || fail "the archive's binary did not start: $(cat "$work/out")"
"$dir/ferromq" health --namesrv "127.0.0.1:$np" --broker "127.0.0.1:$bp" || fail "health"
kill -TERM "$pid"
wait "$pid" || fail "the archive's binary did not stop cleanly on SIGTERM"
pid=""
echo "the archive for $host is complete and its binary runs"

image_archive="$dist/ferromq-image-$version-${host%%-*}.tar"
if [ -f "$image_archive" ]; then
    runtime=${CONTAINER_RUNTIME:-$(command -v podman || command -v docker)}
    loaded=$("$runtime" load -i "$image_archive" 2>&1) || fail "loading the image archive: $loaded"
    got=$("$runtime" run --rm "ferromq:$version" --version) || fail "running the loaded image"
    [ "$got" = "ferromq $version" ] || fail "the loaded image says $got"
    echo "the image archive loads and its image runs ($got)"
fi
