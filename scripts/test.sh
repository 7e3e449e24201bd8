#!/usr/bin/env bash
# Runs every FerroMQ test suite: Rust (format, lints, unit and black-box tests), the Go
# interop suite with the official Go client, and the Java interop suite with the official
# Java client. Installs what they need from the package registries (Go modules, Maven
# artefacts) on the way.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo build"
cargo build --workspace --locked
step "cargo test"
cargo test --workspace --locked

export FERROMQ_BIN="$root/target/debug/ferromq"

step "Go interop suite (official rocketmq-client-go)"
(cd interop/go && go vet ./... && go test ./... -count=1 -timeout 20m)

step "Java interop suite (official rocketmq-client)"
(cd interop/java && mvn -B -ntp test)

printf '\nAll suites passed.\n'
