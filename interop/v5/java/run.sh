#!/usr/bin/env bash
# The v5 (gRPC) interop suite for the official RocketMQ 5 Java client
# (org.apache.rocketmq:rocketmq-client-java, from Maven Central).
#
#   interop/v5/java/run.sh                  against FerroMQ: $FERROMQ_BIN, else target/debug/ferromq
#   TARGET=apache interop/v5/java/run.sh    against Apache RocketMQ 5.5.0 (../apache-local.sh starts it)
#
# Extra arguments go to Maven, e.g. -Dtest=FifoTest. V5_APACHE_STATE=DIR uses an Apache that
# `apache-local.sh start DIR` already started (and leaves it running).
set -euo pipefail
cd "$(dirname "$0")"
for tool in java mvn; do
    command -v "$tool" >/dev/null || { echo "run.sh needs $tool (JDK 17+ and Maven)" >&2; exit 1; }
done
if [ "${TARGET:-ferromq}" = apache ]; then
    command -v python3 >/dev/null || { echo "TARGET=apache needs python3 (apache-local.sh)" >&2; exit 1; }
fi
exec mvn -B -ntp test "$@"
