#!/usr/bin/env bash
# The v5 (gRPC) interop suite with the official Node.js client (rocketmq-client-nodejs, pinned in
# package.json / package-lock.json). Against FerroMQ by default ($FERROMQ_BIN, default
# target/release/ferromq), or TARGET=apache for Apache RocketMQ 5.5.0 (../apache-local.sh;
# APACHE_STATE=dir reuses one already started with `apache-local.sh start dir`). Extra arguments
# go to `node --test`, e.g. ./run.sh test/fifo.test.mjs   or   ./run.sh --test-name-pattern=FIFO
set -euo pipefail
cd "$(dirname "$0")"
# (Re)install when package-lock.json changed since the last install.
if [ ! -f node_modules/.installed-lock ] || ! cmp -s package-lock.json node_modules/.installed-lock; then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.installed-lock
fi
export TARGET=${TARGET:-ferromq}
exec node runner.mjs "$@"
