#!/usr/bin/env python3
"""Many queues and a large log (issue 21): a fresh `ferromq standalone` (FERROMQ_BIN) on free
127.0.0.1 ports; TOPICS topics of QUEUES queues created by UPDATE_AND_CREATE_TOPIC_LIST; one
1 KiB message sent to every queue and pulled back by one group; the log grown to --log-gib
with 1 MiB messages; then the broker killed (SIGKILL) and started again, and stopped (SIGTERM)
and started again, timing each start until the first send and the first pull are served.
Prints the broker's RSS and open descriptors along the way and one JSON line at the end.

  queues.py [--topics 12500] [--queues 8] [--log-gib 0]
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from remoting import (PULL_MESSAGE, SEND_MESSAGE, UPDATE_AND_CREATE_TOPIC_LIST, Remoting,  # noqa: E402
                      pull_fields, send_fields, topic_list_body)

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("FERROMQ_BIN", str(ROOT / "target" / "release" / "ferromq"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_mb(pid):
    """Resident memory in MB, "total (anonymous + file pages)": file pages are the commit
    log's mapped segments a read touched, page cache the kernel takes back under pressure."""
    kb = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                kb[key] = int(rest.split()[0])
    return f"{kb['VmRSS'] / 1024:.0f} ({kb['RssAnon'] / 1024:.0f} anonymous + {kb['RssFile'] / 1024:.0f} file)"


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Broker:
    def __init__(self, data, log):
        self.data, self.log = data, log
        self.ns, self.bp = free_port(), free_port()
        self.proc = None

    def start(self):
        out = open(self.log, "a")
        self.proc = subprocess.Popen(
            [BIN, "standalone", "--data-dir", str(self.data), "--namesrv-listen", f"127.0.0.1:{self.ns}",
             "--broker-listen", f"127.0.0.1:{self.bp}", "--no-dashboard", "--no-grpc", "--log-level", "info"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return time.monotonic()

    @property
    def addr(self):
        return f"127.0.0.1:{self.bp}"

    def stop(self, sig):
        os.kill(self.proc.pid, sig)
        self.proc.wait(120)


def served_after(broker, started, topic):
    """Seconds from `started` until a send, then a pull of offset 0 of `topic` queue 0, are
    served (polling every 5 ms, for at most 120 s)."""
    deadline = started + 120
    send_at = pull_at = None
    conn = None
    while time.monotonic() < deadline and pull_at is None:
        try:
            conn = conn or Remoting(broker.addr, timeout=10)
            if send_at is None:
                hdr, _ = conn.call(SEND_MESSAGE, send_fields(topic, 0), b"after restart")
                if hdr["code"] == 0:
                    send_at = time.monotonic() - started
            if send_at is not None:
                hdr, _ = conn.call(PULL_MESSAGE, pull_fields("scale-restart", topic, 0, 0))
                if hdr["code"] == 0:
                    pull_at = time.monotonic() - started
        except OSError:
            conn = None
        if pull_at is None:
            time.sleep(0.005)
    if pull_at is None:
        raise SystemExit(f"not served within 120 s; see {broker.log}")
    conn.close()
    return round(send_at, 3), round(pull_at, 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topics", type=int, default=12500)
    ap.add_argument("--queues", type=int, default=8)
    ap.add_argument("--log-gib", type=float, default=0.0, help="grow the commit log to this size first")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferromq-queues-"))
    broker = Broker(work / "data", work / "broker.log")
    r = {"topics": args.topics, "queues": args.topics * args.queues}
    try:
        broker.start()
        deadline = time.monotonic() + 60
        while "FerroMQ is ready" not in Path(broker.log).read_text():
            if time.monotonic() > deadline:
                raise SystemExit("the broker did not start")
            time.sleep(0.05)
        names = [f"q-topic-{t:05d}" for t in range(args.topics)]
        conn = Remoting(broker.addr)
        t0 = time.monotonic()
        for i in range(0, len(names), 1000):
            hdr, _ = conn.call(UPDATE_AND_CREATE_TOPIC_LIST, body=topic_list_body(names[i:i + 1000], args.queues))
            assert hdr["code"] == 0, hdr
        r["create_s"] = round(time.monotonic() - t0, 2)
        body = b"x" * 1024
        t0 = time.monotonic()
        answers = conn.pipelined((SEND_MESSAGE, send_fields(n, q), body) for n in names for q in range(args.queues))
        failed = [h for h in answers if h["code"] != 0]
        assert not failed, failed[:3]
        r["send_every_queue_s"] = round(time.monotonic() - t0, 2)
        r["rss_after_sends_mb"] = status_mb(broker.proc.pid)
        t0 = time.monotonic()
        answers = conn.pipelined((PULL_MESSAGE, pull_fields("scale-g", n, q, 0), b"")
                                 for n in names for q in range(args.queues))
        assert all(h["code"] == 0 for h in answers), [h for h in answers if h["code"] != 0][:3]
        r["pull_every_queue_s"] = round(time.monotonic() - t0, 2)
        r["rss_after_pulls_mb"] = status_mb(broker.proc.pid)
        r["open_fds"] = open_fds(broker.proc.pid)
        if args.log_gib > 0:
            big = b"y" * (1 << 20)
            want = int(args.log_gib * (1 << 30))
            t0 = time.monotonic()
            n = want // (len(big) + 300)
            answers = conn.pipelined(((SEND_MESSAGE, send_fields(names[i % len(names)], i % args.queues), big)
                                      for i in range(n)), window=16)
            assert all(h["code"] == 0 for h in answers)
            r["log_fill_mb_per_s"] = round(n / (time.monotonic() - t0), 1)
        log_bytes = sum(f.stat().st_size for f in (work / "data" / "commitlog").iterdir())
        r["log_gib"] = round(log_bytes / (1 << 30), 2)
        r["rss_before_kill_mb"] = status_mb(broker.proc.pid)
        conn.close()
        broker.stop(signal.SIGKILL)
        r["after_sigkill_send_s"], r["after_sigkill_pull_s"] = served_after(broker, broker.start(), names[-1])
        r["rss_after_restart_mb"] = status_mb(broker.proc.pid)
        broker.stop(signal.SIGTERM)
        r["after_clean_stop_send_s"], r["after_clean_stop_pull_s"] = served_after(broker, broker.start(), names[0])
        broker.stop(signal.SIGTERM)
        recovered = [line for line in Path(broker.log).read_text().splitlines() if "store recovered" in line]
        r["recovery_log_lines"] = recovered[-2:]
    finally:
        if broker.proc and broker.proc.poll() is None:
            broker.stop(signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(work)])
    for k, v in r.items():
        print(f"{k}: {v}")
    print("RESULT " + json.dumps(r))


if __name__ == "__main__":
    main()
