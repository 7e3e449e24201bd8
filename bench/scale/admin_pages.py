#!/usr/bin/env python3
"""How long the admin tool and the dashboard take to answer with many topics and groups.

Starts `ferromq standalone` on free 127.0.0.1 ports in a temporary directory, creates the
topics and consumer groups with `ferromq admin updateTopicList` / `updateSubGroupList` (one
request per thousand), sends a few messages, then times each admin command and each dashboard
page's API call (best of three, wall clock). Prints a Markdown table.

    python3 bench/scale/admin_pages.py [--bin target/release/ferromq] [--topics 10000] [--groups 2000]
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
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn, runs=3):
    best = None
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("FERROMQ_BIN", "target/release/ferromq"))
    ap.add_argument("--topics", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=2000)
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

        rows = []
        for name, cmd in [
            ("ferromq admin topicList", ["topicList"]),
            ("ferromq admin topicList -c", ["topicList", "-c"]),
            ("ferromq admin clusterList", ["clusterList"]),
            ("ferromq admin topicStatus (one topic)", ["topicStatus", "-t", "ScaleAdmin7"]),
            ("ferromq admin consumerProgress -g (one group)", ["consumerProgress", "-g", "ScaleAdminGroup7"]),
            ("ferromq admin consumerProgress (every group)", ["consumerProgress"]),
        ]:
            secs, out = timed(lambda c=cmd: admin(*c, check=False))
            rows.append((name, secs, len(out.splitlines())))

        def get(path):
            with urllib.request.urlopen(f"http://{dash}{path}", timeout=600) as r:
                return r.read()
        for path in ["/api/cluster", "/api/topics", "/api/topics?kind=normal&search=ScaleAdmin99",
                     "/api/topics/ScaleAdmin7", "/api/groups", "/api/groups/ScaleAdminGroup7",
                     "/api/producers", "/api/delayed", "/api/transactions", "/api/access"]:
            secs, body = timed(lambda p=path: get(p))
            rows.append((f"dashboard GET {path}", secs, len(body)))

        print(f"{args.topics:,} topics of 8 queues (created in {create_topics:.1f} s), "
              f"{args.groups:,} groups (created in {create_groups:.1f} s); {args.bin}\n")
        print("| request | seconds (best of 3) | output lines / bytes |")
        print("|---|---|---|")
        for name, secs, size in rows:
            print(f"| {name} | {secs:.3f} | {size:,} |")
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
