#!/usr/bin/env python3
"""How long the admin tool and the dashboard take to answer with many topics and groups.

Starts `ferromq standalone` on free 127.0.0.1 ports in a temporary directory, creates the
topics and consumer groups with `ferromq admin updateTopicList` / `updateSubGroupList` (one
request per thousand), sends a few messages, then times each admin command and each dashboard
page's API call (best of three, wall clock). Prints a Markdown table.

With `--live` every group also has a live consumer (one client's heartbeat names them all, each
subscribed to `--topics-per-group` topics) and a committed offset on each of those topics'
queues, so consumerProgress and the group pages read offsets and connections, not empty tables.

    python3 bench/scale/admin_pages.py [--bin target/release/ferromq] [--topics 10000] [--groups 2000] [--live]
"""

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remoting import Remoting, free_port  # noqa: E402

HEARTBEAT, UPDATE_CONSUMER_OFFSET = 34, 15
QUEUES = 8


def timed(fn, runs=3):
    best = None
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None else min(best, elapsed)
    return best, result


class LiveConsumers:
    """One client whose heartbeat names every group; it stays registered while this runs.

    The broker may write to the connection (NOTIFY_CONSUMER_IDS_CHANGED), so a thread reads
    everything that arrives and heartbeats again every 20 s."""

    def __init__(self, broker, subscriptions):
        self.remote = Remoting(broker)
        self.body = json.dumps({"clientID": "127.0.0.1@scale-admin-live", "producerDataSet": [],
                                "consumerDataSet": [{
                                    "groupName": group, "consumeType": "CONSUME_PASSIVELY",
                                    "messageModel": "CLUSTERING",
                                    "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "unitMode": False,
                                    "subscriptionDataSet": [{"topic": t, "subString": "*", "tagsSet": [],
                                                             "codeSet": [], "subVersion": 1,
                                                             "expressionType": "TAG"} for t in topics]}
                                    for group, topics in subscriptions.items()]}).encode()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answered = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self._heartbeat()
        self.reader.start()
        if not self.answered.wait(60):
            raise RuntimeError("no answer to the heartbeat")
        self.beater = threading.Thread(target=self._beat, daemon=True)
        self.beater.start()

    def _heartbeat(self):
        with self.lock:
            self.remote.s.sendall(self.remote._frame(HEARTBEAT, {}, self.body))

    def _read(self):
        while not self.stop.is_set():
            try:
                hdr, _ = self.remote._response()
            except (OSError, RuntimeError, struct.error):
                return
            if hdr.get("flag", 0) & 1 and hdr.get("code") == 0:
                self.answered.set()

    def _beat(self):
        while not self.stop.wait(20):
            self._heartbeat()

    def close(self):
        self.stop.set()
        self.remote.close()


def check_live_answers(outputs, subscriptions):
    """What the timed answers must show when every group is live: each group beside each
    topic it consumes in `topicList -c`, and in the every-group consumerProgress and the
    dashboard's group list."""
    pairs = {(t, g) for g, topics in subscriptions.items() for t in topics}
    listed = {(cols[1], cols[2]) for line in outputs["ferromq admin topicList -c"].splitlines()
              for cols in [line.split()] if len(cols) == 3}
    missing = pairs - listed
    progress = set(outputs["ferromq admin consumerProgress (every group)"].split())
    groups = outputs["/api/groups"]
    absent = [g for g in subscriptions if g not in progress or f'"{g}"' not in groups]
    if missing or absent:
        sys.exit(f"topicList -c lacks {len(missing)} of {len(pairs)} topic/group rows (e.g. {sorted(missing)[:3]}); "
                 f"{len(absent)} groups missing from consumerProgress or /api/groups (e.g. {absent[:3]})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("FERROMQ_BIN", "target/release/ferromq"))
    ap.add_argument("--topics", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=2000)
    ap.add_argument("--live", action="store_true", help="a live consumer and offsets for every group")
    ap.add_argument("--topics-per-group", type=int, default=4)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ferromq-admin-scale-")
    ns, broker, dash = (f"127.0.0.1:{free_port()}" for _ in range(3))
    log = open(os.path.join(work, "ferromq.log"), "w")
    proc = subprocess.Popen(
        [args.bin, "standalone", "--data-dir", os.path.join(work, "data"),
         "--namesrv-listen", ns, "--broker-listen", broker, "--dashboard-listen", dash],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(os.path.join(work, "ferromq.log")) as f:
                if "FerroMQ is ready" in f.read():
                    break
            time.sleep(0.2)
        else:
            sys.exit("ferromq did not start")

        def admin(*a, check=True):
            out = subprocess.run([args.bin, "admin", "-n", ns, *a], capture_output=True, text=True, timeout=600)
            if check and out.returncode != 0:
                sys.exit(f"ferromq admin {' '.join(a)} failed: {out.stderr}")
            return out.stdout

        t0 = time.perf_counter()
        for start in range(0, args.topics, 1000):
            path = os.path.join(work, f"topics-{start}.json")
            with open(path, "w") as f:
                json.dump([{"topicName": f"ScaleAdmin{i}", "readQueueNums": 8, "writeQueueNums": 8, "perm": 6}
                           for i in range(start, min(start + 1000, args.topics))], f)
            admin("updateTopicList", "-b", broker, "-f", path)
        create_topics = time.perf_counter() - t0
        t0 = time.perf_counter()
        for start in range(0, args.groups, 1000):
            path = os.path.join(work, f"groups-{start}.json")
            with open(path, "w") as f:
                json.dump([{"groupName": f"ScaleAdminGroup{i}"} for i in range(start, min(start + 1000, args.groups))], f)
            admin("updateSubGroupList", "-b", broker, "-f", path)
        create_groups = time.perf_counter() - t0
        for i in range(20):
            admin("sendMessage", "-t", f"ScaleAdmin{i}", "-p", "x")
        live = None
        live_setup = ""
        if args.live:
            t0 = time.perf_counter()
            subscriptions = {f"ScaleAdminGroup{g}": [f"ScaleAdmin{(g * args.topics_per_group + k) % args.topics}"
                                                     for k in range(args.topics_per_group)]
                             for g in range(args.groups)}
            live = LiveConsumers(broker, subscriptions)
            commits = Remoting(broker)
            answers = commits.pipelined(
                (UPDATE_CONSUMER_OFFSET, {"consumerGroup": g, "topic": t, "queueId": q, "commitOffset": 1}, b"")
                for g, topics in subscriptions.items() for t in topics for q in range(QUEUES))
            commits.close()
            refused = [a for a in answers if a.get("code") != 0]
            if refused:
                sys.exit(f"{len(refused)} offset commits refused, first: {refused[0]}")
            live_setup = (f"; every group live (one client's heartbeat) and subscribed to {args.topics_per_group} "
                          f"topics with {len(answers):,} committed offsets (set up in {time.perf_counter() - t0:.1f} s)")

        rows = []
        outputs = {}
        for name, cmd in [
            ("ferromq admin topicList", ["topicList"]),
            ("ferromq admin topicList -c", ["topicList", "-c"]),
            ("ferromq admin clusterList", ["clusterList"]),
            ("ferromq admin topicStatus (one topic)", ["topicStatus", "-t", "ScaleAdmin7"]),
            ("ferromq admin consumerProgress -g (one group)", ["consumerProgress", "-g", "ScaleAdminGroup7"]),
            ("ferromq admin consumerProgress (every group)", ["consumerProgress"]),
        ]:
            secs, out = timed(lambda c=cmd: admin(*c))
            rows.append((name, secs, len(out.splitlines())))
            outputs[name] = out

        def get(path):
            with urllib.request.urlopen(f"http://{dash}{path}", timeout=600) as r:
                return r.read()
        for path in ["/api/cluster", "/api/topics", "/api/topics?kind=normal&search=ScaleAdmin99",
                     "/api/topics/ScaleAdmin7", "/api/groups", "/api/groups/ScaleAdminGroup7",
                     "/api/producers", "/api/delayed", "/api/transactions", "/api/access"]:
            secs, body = timed(lambda p=path: get(p))
            rows.append((f"dashboard GET {path}", secs, len(body)))
            outputs[path] = body.decode()
        if args.live:
            check_live_answers(outputs, subscriptions)

        print(f"{args.topics:,} topics of 8 queues (created in {create_topics:.1f} s), "
              f"{args.groups:,} groups (created in {create_groups:.1f} s){live_setup}; {args.bin}\n")
        print("| request | seconds (best of 3) | output lines / bytes |")
        print("|---|---|---|")
        for name, secs, size in rows:
            print(f"| {name} | {secs:.3f} | {size:,} |")
        if live:
            live.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
