#!/usr/bin/env python3
"""Many queues and a large log (issue 21): a fresh `ferromq standalone` (FERROMQ_BIN) on free
127.0.0.1 ports; TOPICS topics of QUEUES queues created by UPDATE_AND_CREATE_TOPIC_LIST; one
1 KiB message sent to every queue and pulled back by one group; the log grown to --log-gib
with 1 MiB messages; then the broker killed (SIGKILL) and started again, and stopped (SIGTERM)
and started again, timing each start until the first send and the first pull are served.
Prints the broker's RSS and open descriptors along the way and one JSON line at the end.

With `--system apache` the same run goes to Apache RocketMQ 5.5 (bench/.peers, fetched by
bench/compare/run): its name server and broker with a 1 GiB heap. Apache maps every
consume-queue file and keeps it open, so the run first checks `vm.max_map_count` and the
descriptor limit (the JVM raises its soft limit to the hard one) against the queue count.

  queues.py [--system ferromq|apache] [--topics 12500] [--queues 8] [--log-gib 0] [--mappings]
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compare"))
import compare  # noqa: E402  (Apache's JVM flags and jars, as bench/compare runs them)
from remoting import (PULL_MESSAGE, SEND_MESSAGE, UPDATE_AND_CREATE_TOPIC_LIST, Remoting,  # noqa: E402
                      free_port, pull_fields, send_fields, topic_list_body)

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("FERROMQ_BIN", str(ROOT / "target" / "release" / "ferromq"))


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


def largest_mappings(pid, top=12):
    """The mappings holding most resident memory (/proc/<pid>/smaps), largest first: where
    the RSS goes (heap arenas, thread stacks, mapped log and queue files)."""
    rows, name = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else "[anonymous]"
                # one row per file; a data directory's segments are told apart by their folder
                name = "/".join(Path(name).parts[-2:]) if name.startswith("/") else name
            elif head[0] == "Rss:":
                rows[name] = rows.get(name, 0) + int(head[1])
    return [f"{kb / 1024:.0f} MB {name}" for name, kb in sorted(rows.items(), key=lambda kv: -kv[1])[:top]]


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

    ready_line = "FerroMQ is ready"
    pull_sys_flag = 0

    @property
    def commit_log(self):
        return self.data / "commitlog"

    def close(self):
        pass


class ApacheBroker(Broker):
    """Apache's broker (restarted by start/stop) beside its name server (started once)."""

    ready_line = "boot success"
    # Apache serves a pull from a group without a live consumer only with the subscription
    # in the request (FLAG_SUBSCRIPTION).
    pull_sys_flag = 4

    def __init__(self, data, log):
        super().__init__(data, log)
        data.mkdir(parents=True)
        home = data / "home"
        home.mkdir()
        self.env = dict(os.environ, ROCKETMQ_HOME=str(home))
        self.java = ["java", *compare.APACHE_JVM, f"-Duser.home={home}", "-cp", f"{compare.APACHE_LIB}/*"]
        (data / "namesrv.conf").write_text(f"listenPort={self.ns}\nbindAddress=127.0.0.1\n")
        (data / "broker.conf").write_text(
            f"brokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerId=0\n"
            f"brokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nnamesrvAddr=127.0.0.1:{self.ns}\n"
            f"listenPort={self.bp}\nstorePathRootDir={data}/store\n"
            f"storePathCommitLog={data}/store/commitlog\nautoCreateSubscriptionGroup=true\n")
        self.namesrv = subprocess.Popen(
            [*self.java, "org.apache.rocketmq.namesrv.NamesrvStartup", "-c", str(data / "namesrv.conf")],
            stdout=open(data / "namesrv.log", "w"), stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True)

    def start(self):
        out = open(self.log, "a")
        self.proc = subprocess.Popen(
            [*self.java, "org.apache.rocketmq.broker.BrokerStartup", "-c", str(self.data / "broker.conf")],
            stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        return time.monotonic()

    @property
    def commit_log(self):
        return self.data / "store" / "commitlog"

    def close(self):
        if self.namesrv.poll() is None:
            self.namesrv.kill()
            self.namesrv.wait()


def served_after(broker, started, topic):
    """Seconds from `started` until a send, then a pull of offset 0 of `topic` queue 0, are
    served (polling every 5 ms, for at most SERVE_WAIT_S)."""
    deadline = started + SERVE_WAIT_S
    send_at = pull_at = None
    conn = None
    last = "no connection"
    while time.monotonic() < deadline and pull_at is None:
        try:
            conn = conn or Remoting(broker.addr, timeout=10)
            if send_at is None:
                hdr, _ = conn.call(SEND_MESSAGE, send_fields(topic, 0), b"after restart")
                last = f"send: {hdr['code']} {hdr.get('remark')}"
                if hdr["code"] == 0:
                    send_at = time.monotonic() - started
            if send_at is not None:
                hdr, _ = conn.call(PULL_MESSAGE, dict(pull_fields("scale-restart", topic, 0, 0),
                                                      sysFlag=broker.pull_sys_flag))
                last = f"pull: {hdr['code']} {hdr.get('remark')}"
                if hdr["code"] == 0:
                    pull_at = time.monotonic() - started
        except OSError as e:
            last = f"connection: {e}"
            conn = None
        if pull_at is None:
            time.sleep(0.005)
    if pull_at is None:
        raise SystemExit(f"not served within {SERVE_WAIT_S} s (last answer: {last}); see {broker.log}")
    conn.close()
    return round(send_at, 3), round(pull_at, 3)


SYSTEM_BUSY = 2
# Apache with a 20 GiB log can take minutes to serve again after a SIGKILL.
SERVE_WAIT_S = 900


def sent_all(conn, sends, window):
    """Sends every (topic, queue, body), again for those refused as busy (Apache's flow
    control answers SYSTEM_BUSY when its queue of sends waited too long), as clients do;
    any other refusal ends the run."""
    deadline = time.monotonic() + 1800
    while sends:
        answers = conn.pipelined(((SEND_MESSAGE, send_fields(t, q), b) for t, q, b in sends), window=window)
        failed = [h for h in answers if h["code"] not in (0, SYSTEM_BUSY)]
        if failed:
            raise SystemExit(f"sends refused: {failed[:3]}")
        sends = [s for s, h in zip(sends, answers) if h["code"] == SYSTEM_BUSY]
        if sends and time.monotonic() > deadline:
            raise SystemExit(f"{len(sends)} sends still refused as busy")
        if sends:
            time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topics", type=int, default=12500)
    ap.add_argument("--queues", type=int, default=8)
    ap.add_argument("--log-gib", type=float, default=0.0, help="grow the commit log to this size first")
    ap.add_argument("--system", choices=["ferromq", "apache"], default="ferromq")
    ap.add_argument("--mappings", action="store_true", help="also list the largest mappings after the pulls")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferromq-queues-"))
    r = {"system": args.system, "topics": args.topics, "queues": args.topics * args.queues}
    if args.system == "apache":
        maps = int(Path("/proc/sys/vm/max_map_count").read_text())
        if maps < 2 * r["queues"]:
            raise SystemExit(f"vm.max_map_count is {maps}: Apache maps every consume-queue file; "
                             f"raise it past {2 * r['queues']} (sysctl -w vm.max_map_count=...)")
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if files != resource.RLIM_INFINITY and files < r["queues"] + 2000:
            raise SystemExit(f"the hard descriptor limit is {files}: Apache keeps every consume-queue file open; "
                             f"{r['queues']} queues need more (ulimit -Hn)")
        broker = ApacheBroker(work / "data", work / "broker.log")
    else:
        broker = Broker(work / "data", work / "broker.log")
    try:
        broker.start()
        deadline = time.monotonic() + 120
        while broker.ready_line not in Path(broker.log).read_text():
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
        sent_all(conn, [(n, q, body) for n in names for q in range(args.queues)], window=256)
        r["send_every_queue_s"] = round(time.monotonic() - t0, 2)
        r["rss_after_sends_mb"] = status_mb(broker.proc.pid)
        t0 = time.monotonic()
        # Apache puts messages into the consume queues a moment after the send's answer
        # (its reput service): queues not yet showing their message are asked again.
        todo = [(n, q) for n in names for q in range(args.queues)]
        while todo:
            answers = conn.pipelined((PULL_MESSAGE, dict(pull_fields("scale-g", n, q, 0), sysFlag=broker.pull_sys_flag),
                                      b"") for n, q in todo)
            missing = [nq for nq, h in zip(todo, answers) if h["code"] != 0]
            if missing and time.monotonic() - t0 > 120:
                raise SystemExit(f"{len(missing)} queues still without their message, e.g. {answers[0]}")
            todo = missing
        r["pull_every_queue_s"] = round(time.monotonic() - t0, 2)
        r["rss_after_pulls_mb"] = status_mb(broker.proc.pid)
        if args.mappings:
            r["largest_mappings_after_pulls"] = largest_mappings(broker.proc.pid)
        r["open_fds"] = open_fds(broker.proc.pid)
        if args.log_gib > 0:
            big = b"y" * (1 << 20)
            want = int(args.log_gib * (1 << 30))
            t0 = time.monotonic()
            n = want // (len(big) + 300)
            sent_all(conn, [(names[i % len(names)], i % args.queues, big) for i in range(n)], window=16)
            r["log_fill_mb_per_s"] = round(n / (time.monotonic() - t0), 1)
        # Written bytes, not file sizes: Apache's segments are 1 GiB from their creation.
        log_bytes = sum(min(f.stat().st_size, f.stat().st_blocks * 512) for f in broker.commit_log.iterdir())
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
        if recovered:
            r["recovery_log_lines"] = recovered[-2:]
    finally:
        if broker.proc and broker.proc.poll() is None:
            broker.stop(signal.SIGKILL)
        broker.close()
        if not os.environ.get("KEEP_WORK"):
            subprocess.run(["rm", "-rf", str(work)])
    for k, v in r.items():
        print(f"{k}: {v}")
    print("RESULT " + json.dumps(r))


if __name__ == "__main__":
    main()
