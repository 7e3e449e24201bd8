#!/usr/bin/env bash
# A slave 1 GiB behind its master catches up while the master takes a steady load, then
# holds the master's commit log byte for byte. CI runs the same test with a 64 MiB backlog.
#   scripts/catchup-soak.sh [backlog MiB, default 1024] [live msgs/s, default 5000]
set -euo pipefail
cd "$(dirname "$0")/.."
FERROMQ_CATCHUP_MIB="${1:-1024}" FERROMQ_CATCHUP_RATE="${2:-5000}" \
    cargo test --release --locked -p ferromq --test it catchup -- --nocapture 2>&1 |
    grep -E 'CATCH-UP FIGURES|test result|panicked|^test '
