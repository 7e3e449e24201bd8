"""Session setup: one server for the whole run, started by the pytest process that owns the session
(the xdist controller with -n, else the only process), with every topic and group created up front
in one admin call. Workers find it through V5_TARGET in their environment."""
import json
import os
import pathlib
import tempfile
import uuid

import pytest

# The TLS test trusts the certificate the server presents: the client builds its TLS channel with
# grpc.ssl_channel_credentials() (default roots, no way to pass others), and gRPC reads this
# variable when it first needs the default roots, so it is set before anything imports grpc.
SESSION_DIR = pathlib.Path(tempfile.mkdtemp(prefix="v5-python-"))
TLS_ROOTS = SESSION_DIR / "server-roots.pem"
os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(TLS_ROOTS)

# The client writes its log under ~/logs/rocketmq_python (computed when it is imported).
_home = os.environ.get("HOME")
os.environ["HOME"] = str(SESSION_DIR)
import rocketmq  # noqa: E402,F401
if _home is None:
    del os.environ["HOME"]
else:
    os.environ["HOME"] = _home

from target import Attached, describe, start_target  # noqa: E402

# Shared by the controller and its workers (which inherit the environment).
SUFFIX = os.environ.setdefault("V5_SUFFIX", uuid.uuid4().hex[:8])

# Every topic and group the suite uses.
TOPICS = {
    "normal": "NORMAL",
    "fifo": "FIFO",
    "fifo_hold": "FIFO",
    "delay": "DELAY",
    "tx": "TRANSACTION",
    "invisible": "NORMAL",
    "redeliver": "NORMAL",
    "dlq": "NORMAL",
    "tls": "NORMAL",
}
GROUPS = {
    "normal": {"retries": 16},
    "fifo": {"orderly": True, "retries": 2},
    "fifo_hold": {"orderly": True, "retries": 2},
    "delay": {"retries": 16},
    "tx": {"retries": 16},
    "invisible": {"retries": 16},
    "redeliver": {"retries": 16},
    "dlq": {"retries": 2},
    "dlq_reader": {"retries": 16},
    "tls_plain": {"retries": 16},
    "tls_tls": {"retries": 16},
}


class Names:
    def topic(self, key):
        assert key in TOPICS, key
        return f"PyV5_{key}_{SUFFIX}"

    def group(self, key):
        assert key in GROUPS, key
        return f"PyV5G_{key}_{SUFFIX}"


def pytest_configure(config):
    if hasattr(config, "workerinput") or "V5_TARGET" in os.environ:
        return  # an xdist worker: the controller started the server
    if config.option.collectonly or config.option.help:
        return
    try:
        t = start_target()
    except Exception as e:  # a clear message rather than an INTERNALERROR traceback
        pytest.exit(f"could not start the {os.environ.get('TARGET', 'ferromq')} target: {e}", returncode=3)
    config._v5_target = t
    try:
        names = Names()
        t.create(topics={names.topic(k): v for k, v in TOPICS.items()},
                 groups={names.group(k): v for k, v in GROUPS.items()})
    except BaseException:
        t.stop()
        raise
    os.environ["V5_TARGET"] = json.dumps(describe(t))


def pytest_unconfigure(config):
    t = getattr(config, "_v5_target", None)
    if t is not None:
        os.environ.pop("V5_TARGET", None)
        t.stop()


@pytest.fixture(scope="session")
def target():
    return Attached(json.loads(os.environ["V5_TARGET"]))


@pytest.fixture(scope="session")
def names(target):
    return Names()


@pytest.fixture(scope="session")
def tls_roots():
    return TLS_ROOTS


def pytest_report_header(config):
    return [f"v5 target: {os.environ.get('TARGET', 'ferromq')}; client logs: {SESSION_DIR}/logs/rocketmq_python"]
