#!/usr/bin/env bash
# The v5 (gRPC) interop suite for the official RocketMQ 5 Go client
# (github.com/apache/rocketmq-clients/golang/v5, through the Go module proxy).
#
#   interop/v5/go/run.sh                  against FerroMQ: $FERROMQ_BIN, else target/debug/ferromq
#   TARGET=apache interop/v5/go/run.sh    against Apache RocketMQ 5.5.0 (../apache-local.sh starts it)
#
# Extra arguments go to go test, e.g. -run Fifo. V5_APACHE_STATE=DIR uses an Apache that
# `apache-local.sh start DIR` already started (and leaves it running).
set -euo pipefail
cd "$(dirname "$0")"
command -v go >/dev/null || { echo "run.sh needs Go 1.25+" >&2; exit 1; }
if [ "${TARGET:-ferromq}" = apache ]; then
    for tool in java mvn python3; do
        command -v "$tool" >/dev/null || { echo "TARGET=apache needs $tool (apache-local.sh)" >&2; exit 1; }
    done
fi
go mod download
exec go test -count=1 -timeout 8m -v "$@" .
