#!/usr/bin/env bash
# The long form of the controller-mode failover test: the master of a three-broker group is
# SIGKILLed 20 times (FERROMQ_FAILOVER_KILLS) and paused past the election 6 times
# (FERROMQ_FAILOVER_PAUSES, default kills/3) under load from the official Go client; every
# acknowledged message must be consumed. CI runs the same test with 3 kills and 1 pause.
# Prints the FAILOVER FIGURES line (failover times p50/max, acknowledged, lost, duplicates).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked
cd interop/go
FERROMQ_FAILOVER_KILLS="${FERROMQ_FAILOVER_KILLS:-20}" \
    go test -run TestControllerModeFailoverUnderLoad -v -count=1 -timeout 60m . | tee /dev/stderr | grep "FAILOVER FIGURES"
