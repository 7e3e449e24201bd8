#!/usr/bin/env bash
# FerroMQ as a user without a Rust toolchain gets it, checked end to end:
#   1. the release archive (scripts/release.sh, then scripts/check-release.sh);
#   2. the container image (scripts/image.sh) and every compose layout under deploy/
#      (deploy/check.sh: the tutorial's Go programs, SIGTERM, slave reads, failover);
#   3. the Go test-broker example, against the binary and against the image.
#   scripts/packaging-check.sh [--profile dist|static-check]
# CI passes --profile static-check: the same static binary, unoptimised, built quickly.
# Needs podman (or docker); it installs podman-compose from PyPI. The layouts take the
# default ports.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=dist
[ "${1:-}" = --profile ] && profile=$2
step() { printf '\n--> [%s] %s\n' "$(date +%T)" "$*"; }

step "the static binary ($profile profile)"
bin=$(scripts/build-static.sh --profile "$profile")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step "release archives"
scripts/release.sh --profile "$profile" --out "$work/dist" --image
scripts/check-release.sh "$work/dist"

step "the container image"
export FERROMQ_IMAGE=ferromq:check
scripts/image.sh --binary "$bin" --tag "$FERROMQ_IMAGE"

step "the compose layouts"
if [ -z "${COMPOSE:-}" ] && command -v podman >/dev/null; then
    # PyPI's podman-compose, as Debian 12's (1.0.3) cannot run these layouts (deploy/check.sh).
    venv="${CARGO_TARGET_DIR:-$root/target}/podman-compose"
    [ -x "$venv/bin/podman-compose" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q podman-compose==1.6.0; }
    export COMPOSE="$venv/bin/podman-compose"
fi
deploy/check.sh

step "the Go test-broker example, against the binary and against the image"
(cd examples/go-test-broker && go vet ./... \
    && FERROMQ_IMAGE= FERROMQ_BIN="$bin" go test ./... -count=1 \
    && FERROMQ_IMAGE="$FERROMQ_IMAGE" go test ./... -count=1)
step "packaging checks passed"
