#!/usr/bin/env bash
# The v5 (gRPC) interop suite with the official Python client (rocketmq-python-client, pinned in
# requirements.txt). Against FerroMQ by default ($FERROMQ_BIN, default target/release/ferromq),
# or TARGET=apache for Apache RocketMQ 5.5.0 (../apache-local.sh; APACHE_STATE=dir reuses one
# already started with `apache-local.sh start dir`). Extra arguments go to pytest, e.g.
#   ./run.sh -k fifo        TARGET=apache ./run.sh        PYTEST_WORKERS=1 ./run.sh
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# (Re)install when requirements.txt changed since the last install.
if [ ! -f .venv/.installed ] || ! cmp -s requirements.txt .venv/.installed; then
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
    cp requirements.txt .venv/.installed
fi

export TARGET=${TARGET:-ferromq}
# The tests mostly wait (invisible times, timers, check-backs): run them side by side.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-4}" --dist loadfile --durations=0 "$@"
