#!/usr/bin/env python3
"""Runs the same load against Apache RocketMQ, rocketmq-rust, FerroMQ and a null broker, one
system after the other on this machine, and writes bench/RESULTS.md with the ratios.

Called by bench/compare/run, which fetches the peers and builds the load generators first.
Standard library only. Every server binds and every client connects to 127.0.0.1.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "bench" / ".peers"
APACHE_VERSION = "5.5.0"
APACHE_LIB = PEERS / f"apache-{APACHE_VERSION}" / "lib"
RUST_PEER_BIN = PEERS / "rocketmq-rust" / "bin"
FERROMQ = Path(os.environ.get("FERROMQ_BIN", ROOT / "target" / "release" / "ferromq"))
GO_BENCH = ROOT / "target" / "bench" / "gobench"
TOPIC = "CompareTest"  # Apache reserves "BenchmarkTest" as a system topic
QUEUES = 8
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Apache's runbroker.sh flags for Java 9+, with the heap stated here instead of 8 GiB.
APACHE_JVM = [
    "-server", "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:G1HeapRegionSize=16m",
    "-XX:G1ReservePercent=25", "-XX:InitiatingHeapOccupancyPercent=30",
    "-XX:SoftRefLRUPolicyMSPerMB=0", "-XX:-OmitStackTraceInFastThrow", "-XX:+AlwaysPreTouch",
    "-XX:MaxDirectMemorySize=15g", "-XX:-UseLargePages",
]
APACHE_HEAP = "-Xms1g -Xmx1g (broker and name server)"


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def wait_port(port, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Peak resident memory of one process while a load runs, and its CPU time as it goes
    (100 ms samples)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.stop = pid, 0, threading.Event()
        self.cpu = []  # (time.monotonic(), CPU seconds)

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
                self.cpu.append((time.monotonic(), cpu_seconds(self.pid)))
            except OSError:
                return
            self.stop.wait(0.1)

    def cpu_at(self, when):
        """CPU seconds at monotonic time `when`, from the nearest sample."""
        return min(self.cpu, key=lambda s: abs(s[0] - when))[1]


class Server:
    """A process of a system under test, with its output in a log file."""

    def __init__(self, args, log_path, env=None, cwd=None):
        self.log_path = log_path
        self.out = open(log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, start_new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()


class System:
    """One system under test. Its ports lie below Linux's ephemeral range (32768 and up):
    a client retrying a port there while the server starts can be handed that very port
    for its own end, connect to itself and keep the server from binding."""
    name = ""
    stores = True
    # Load generators that cannot talk to this system, and why.
    incompatible = {}

    def __init__(self, work):
        self.work = work / self.name.lower().replace(" ", "-")
        self.servers = []
        self.broker_pid = None

    @property
    def namesrv(self):
        return f"127.0.0.1:{self.namesrv_port}"

    def ports(self):
        """The ports its servers bind, checked free before each start."""
        return {self.namesrv_port, self.broker_port}

    def start(self, flush):
        for port in self.ports():
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(f"127.0.0.1:{port} is already in use; stop what holds it")
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.launch(flush)
        wait_port(self.broker_port)

    def stop(self):
        for s in reversed(self.servers):
            s.stop()
        self.servers = []

    def alive(self):
        return all(s.proc.poll() is None for s in self.servers)


class FerroMQ(System):
    name = "FerroMQ"
    namesrv_port, broker_port = 29876, 30911
    # Its gRPC front (5.x clients) is on unless told otherwise, by default on 0.0.0.0:8081:
    # kept on, on the loopback, on a port of its own.
    grpc_port = 30981

    def ports(self):
        return {self.namesrv_port, self.broker_port, self.grpc_port}

    def launch(self, flush):
        conf = self.work / "broker.conf"
        conf.write_text(f"brokerIP1=127.0.0.1\nflushDiskType={flush}\n")
        s = Server([str(FERROMQ), "standalone", "--data-dir", str(self.work / "data"), "-c", str(conf),
                    "--namesrv-listen", self.namesrv, "--broker-listen", f"127.0.0.1:{self.broker_port}",
                    "--grpc-listen", f"127.0.0.1:{self.grpc_port}", "--no-dashboard", "--log-level", "warn"],
                   self.work / "ferromq.log")
        self.servers = [s]
        self.broker_pid = s.proc.pid


class Apache(System):
    name = "Apache RocketMQ"
    namesrv_port, broker_port = 21876, 22911

    def launch(self, flush):
        ns = apache_namesrv(self.work, self.namesrv_port)
        br = apache_broker(self.work, self.namesrv, self.broker_port, flush)
        self.servers = [ns, br]
        self.broker_pid = br.proc.pid


def apache_server(main_class, conf, log_path, home):
    """An Apache RocketMQ process (`main_class -c conf`) with its ROCKETMQ_HOME and user.home
    in `home`, which holds its logs."""
    home.mkdir(exist_ok=True)
    env = dict(os.environ, ROCKETMQ_HOME=str(home))
    java = ["java", *APACHE_JVM, f"-Duser.home={home}", "-cp", f"{APACHE_LIB}/*"]
    return Server([*java, main_class, "-c", str(conf)], log_path, env=env)


def apache_namesrv(work, port):
    """Apache's name server on 127.0.0.1:`port`; its files in `work`."""
    (work / "namesrv.conf").write_text(f"listenPort={port}\nbindAddress=127.0.0.1\n")
    return apache_server("org.apache.rocketmq.namesrv.NamesrvStartup", work / "namesrv.conf",
                         work / "namesrv.log", work / "home")


def apache_broker(work, namesrv, port, flush, broker_id=0, extra=""):
    """An Apache broker of group broker-a on 127.0.0.1:`port` (it binds port − 2 too), its
    store, broker.conf, log and home in `work`; `extra`: more broker.conf lines."""
    store = work / "store"
    (work / "broker.conf").write_text(
        f"brokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerId={broker_id}\n"
        f"brokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nnamesrvAddr={namesrv}\n"
        f"listenPort={port}\nstorePathRootDir={store}\n"
        f"storePathCommitLog={store}/commitlog\nflushDiskType={flush}\n{extra}")
    return apache_server("org.apache.rocketmq.broker.BrokerStartup", work / "broker.conf",
                         work / "broker.log", work / "home")


class RocketmqRust(System):
    name = "rocketmq-rust"
    namesrv_port, broker_port = 23876, 24911
    incompatible = {"Go client": "rocketmq-rust 1.0.0 closes connections whose JSON header lacks "
                                 "serializeTypeCurrentRPC, which the official Go client v2.1.2 never sends"}

    def launch(self, flush):
        store = self.work / "store"
        # Its TLS mode defaults to "permissive"; plain TCP is what the other systems serve.
        (self.work / "namesrv.toml").write_text(
            f'rocketmqHome = "{self.work}"\n'
            f'kvConfigPath = "{self.work}/namesrv/kvConfig.json"\n'
            f'configStorePath = "{self.work}/namesrv/rocketmq-namesrv.properties"\n'
            f"listenPort = {self.namesrv_port}\n"
            'bindAddress = "127.0.0.1"\n'
            'tls.server.mode = "disabled"\n')
        (self.work / "broker.toml").write_text(
            "[broker]\n"
            f"listenPort = {self.broker_port}\n"
            'brokerIp1 = "127.0.0.1"\n'
            'brokerIp2 = "127.0.0.1"\n'
            f'namesrvAddr = "{self.namesrv}"\n'
            f'storePathRootDir = "{store}"\n'
            "[broker.brokerServerConfig]\n"
            'bindAddress = "127.0.0.1"\n'
            "[broker.brokerServerConfig.tlsConfig]\n"
            "enable = false\n"
            "[broker.brokerServerConfig.tlsConfig.server]\n"
            'mode = "disabled"\n'
            "[broker.brokerIdentity]\n"
            'brokerName = "broker-a"\nbrokerClusterName = "DefaultCluster"\nbrokerId = 0\n'
            "[store]\n"
            f'storePathRootDir = "{store}"\n'
            'haListenAddress = "127.0.0.1"\n'
            f"haListenPort = {self.broker_port + 1}\n"
            f'flushDiskType = "{flush}"\n'
            # Without this its sync sends wait on a batching timer.
            "commitLogMicroBatchMaxWaitMicros = 0\n"
            '[logging]\nfilter = "warn"\n')
        env = dict(os.environ, ROCKETMQ_HOME=str(self.work))
        ns = Server([str(RUST_PEER_BIN / "rocketmq-namesrv-rust"), "-c", str(self.work / "namesrv.toml")],
                    self.work / "namesrv.log", env=env, cwd=self.work)
        wait_port(self.namesrv_port)
        br = Server([str(RUST_PEER_BIN / "rocketmq-broker-rust"), "-c", str(self.work / "broker.toml")],
                    self.work / "broker.log", env=env, cwd=self.work)
        self.servers = [ns, br]
        self.broker_pid = br.proc.pid


class NullBroker(System):
    name = "null broker"
    stores = False
    namesrv_port = broker_port = 19876

    def launch(self, flush):
        s = Server([str(FERROMQ), "bench", "null-broker", "--listen", self.namesrv], self.work / "null.log")
        self.servers = [s]
        self.broker_pid = s.proc.pid


# ---- load generators -------------------------------------------------------------------------

def parse_result_line(out):
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError("no RESULT line in the load generator's output:\n" + out[-2000:])


def go_client(mode, producers=1, size=1024, seconds=10, **extra):
    args = [str(GO_BENCH), "-mode", mode, "-producers", str(producers), "-size", str(size),
            "-seconds", str(seconds), "-topic", TOPIC]
    for k, v in extra.items():
        args += [f"-{k.replace('_', '-')}", str(v)]
    return "Go client", args, parse_result_line, size


def rust_client(mode, producers=1, size=1024, seconds=10, **extra):
    if mode == "consume":
        args = [str(FERROMQ), "bench", "consume", "--topic", TOPIC, "--seconds", str(seconds),
                "--messages", str(extra.get("messages", 1_000_000)), "--group", extra["group"]]
    else:
        args = [str(FERROMQ), "bench", "produce", "--topic", TOPIC, "--mode", mode,
                "--producers", str(producers), "--size", str(size), "--seconds", str(seconds)]
        for key in ("rate", "topics", "groups", "group"):
            if extra.get(key):
                args += [f"--{key}", str(extra[key])]
    return "ferromq bench (Rust client)", args, parse_result_line, size


APACHE_TOOL_ROW = re.compile(r"Send TPS: *(\d+) \| Max RT\(ms\): *(\d+) \| Average RT\(ms\): *([\d.]+)"
                             r" \| Send Failed: *(\d+)")
# Apache's benchmark Producer snapshots its counters every second from t = 1 s and, once it
# holds ten, prints the rate over them each report interval: row k (from 0, printed at
# t = 10 + k s) covers t = 1 + k … 10 + k s. Its first rows therefore include JVM start and
# JIT warm-up: against any broker they climb for about ten rows (by a third: 19.4k → 29.5k
# msgs/s with 8 threads against FerroMQ, 25.3k → 33.9k against the null broker) before they
# settle, and a window inside that climb swung FerroMQ's figure by ±25 % between runs.
# The row taken is the first whose window starts after this much warm-up.
APACHE_TOOL_WARMUP_S = 14
APACHE_TOOL_WINDOW_S = 9


def parse_apache_tool(out):
    """The row whose 9-second window begins after the warm-up."""
    rows = APACHE_TOOL_ROW.findall(out)
    k = APACHE_TOOL_WARMUP_S - 1
    if len(rows) <= k:
        raise RuntimeError("Apache's benchmark Producer reported too little:\n" + out[-2000:])
    tps, max_ms, avg_ms, failed = rows[k]
    return {"msgs_per_sec": float(tps), "avg_us": 1000 * float(avg_ms), "max_us": 1000 * int(max_ms),
            "failed": int(failed), "seconds": APACHE_TOOL_WINDOW_S}


def run_apache_tool(args, env, cwd, sampler):
    """Runs the tool until it prints the row `parse_apache_tool` takes, then stops it.
    Returns its output and the broker CPU seconds spent during that row's window."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env, cwd=cwd, start_new_session=True)
    lines, rows, printed_at = [], 0, None
    # A tool that stops printing is killed, which ends the read loop below.
    give_up = threading.Timer(APACHE_TOOL_WINDOW_S + APACHE_TOOL_WARMUP_S + 60, p.kill)
    give_up.start()
    try:
        for line in p.stdout:
            lines.append(line)
            if APACHE_TOOL_ROW.search(line):
                rows += 1
                if rows == APACHE_TOOL_WARMUP_S:
                    printed_at = time.monotonic()
                    break
    finally:
        give_up.cancel()
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the whole group, as before the row was read
        except ProcessLookupError:
            pass
        p.wait()
    if printed_at is None:
        return "".join(lines), 0.0
    # The window closes at the last snapshot, up to a second before the row is printed.
    end = printed_at - 0.5
    return "".join(lines), sampler.cpu_at(end) - sampler.cpu_at(end - APACHE_TOOL_WINDOW_S)


def apache_tool(threads, size=1024, seconds=10, asynchronous=False):
    args = ["java", "-Xms1g", "-Xmx1g", "-cp", f"{APACHE_LIB}/*",
            "org.apache.rocketmq.example.benchmark.Producer", "-t", TOPIC, "-w", str(threads),
            "-s", str(size), "-ri", "1000", "-y", str(asynchronous).lower()]
    return "Apache benchmark Producer (Java)", args, parse_apache_tool, size


def run_load(system, client, seconds):
    label, args, parse, size = client
    if args[0] == "java":
        args = args + ["-n", system.namesrv]
    else:
        args = args + (["-namesrv", system.namesrv] if args[0] == str(GO_BENCH) else ["-n", system.namesrv])
    sampler = RssSampler(system.broker_pid)
    cpu0 = cpu_seconds(system.broker_pid)
    sampler.start()
    timed_by_us = args[0] == "java"
    env = dict(os.environ, ROCKETMQ_HOME=str(system.work))
    errors = ""
    try:
        if timed_by_us:
            # Apache's tool runs until stopped and times itself.
            out, window_cpu = run_apache_tool(args, env, system.work, sampler)
        else:
            done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 180,
                                  env=env, cwd=system.work)
            out, errors = done.stdout, done.stderr
    finally:
        sampler.stop.set()
        sampler.join()
    cpu = window_cpu if timed_by_us else cpu_seconds(system.broker_pid) - cpu0
    try:
        r = parse(out)
    except RuntimeError as e:
        raise RuntimeError(f"{e}\nits errors:\n{errors[-1500:]}") from None
    if timed_by_us:
        r["messages"] = r["msgs_per_sec"] * r["seconds"]
        r["mb_per_sec"] = r["msgs_per_sec"] * size / 1e6
    r["client"] = label
    r["cpu_s_per_million"] = cpu / max(r.get("messages", 0), 1) * 1e6
    r["peak_rss_mb"] = sampler.peak_kb / 1024
    return r


# Timed starts per system; the median is reported (one start is a few milliseconds for the
# fast systems, where a single sample mostly measures the machine's mood).
START_SAMPLES = 5


def first_send_ms(system):
    """Median over START_SAMPLES timed starts, after one untimed start that warms the page
    cache with the binaries (and jars), so the timed ones measure start-up rather than disk
    reads. Returns the median and the samples; the last start is left running."""
    system.start("ASYNC_FLUSH")
    system.stop()
    samples = []
    for i in range(START_SAMPLES):
        if i:
            system.stop()
        samples.append(timed_first_send_ms(system))
    return statistics.median(samples), samples


def timed_first_send_ms(system, attempts=3):
    """`one_first_send_ms`, tried again when a server could not start (seen with a port
    still held by a socket of the previous start)."""
    for attempt in range(1, attempts + 1):
        try:
            return one_first_send_ms(system)
        except RuntimeError as e:
            if attempt == attempts or system.alive():
                raise
            log(f"a server did not start (attempt {attempt}); trying again: {str(e)[:200]}")
            system.stop()
            time.sleep(5)


def one_first_send_ms(system):
    """Starts the system on an empty store and times the first successful send from the
    moment of spawning."""
    shutil.rmtree(system.work, ignore_errors=True)
    system.work.mkdir(parents=True)
    since = int(time.time() * 1000)
    system.launch("ASYNC_FLUSH")
    out = subprocess.run([str(FERROMQ), "bench", "first-send", "-n", system.namesrv, "--topic", "FirstSend",
                          "--since-ms", str(since), "--seconds", "180"],
                         capture_output=True, text=True, timeout=240).stdout
    return parse_result_line(out)["first_send_ms"]


def create_topic(system):
    """Creates the benchmark topic with the same queue count everywhere. Retried: a broker
    opens its port before it has registered with its name server."""
    deadline = time.time() + 90
    while True:
        r = subprocess.run([str(FERROMQ), "admin", "updateTopic", "-n", system.namesrv, "-t", TOPIC,
                            "-r", str(QUEUES)], capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            break
        if time.time() > deadline:
            raise RuntimeError(f"creating {TOPIC} on {system.name} failed: {r.stdout}{r.stderr}")
        time.sleep(0.5)
    time.sleep(1)  # brokers register the new route with their name server


# ---- scenarios --------------------------------------------------------------------------------

def scenarios(seconds, backlog):
    """(id, title, flush, needs a store, [load generator per client])."""
    def produce(mode, producers, size=1024, **extra):
        out = [go_client(mode, producers, size, seconds, **extra)]
        if mode in ("sync", "async"):
            out.append(rust_client(mode, producers, size, seconds, **extra))
        if mode == "sync" and not extra.get("rate"):
            out.append(apache_tool(producers, size, seconds))
        if mode == "async":
            out.append(apache_tool(producers, size, seconds, asynchronous=True))
        return out

    return [
        ("sync-1k-1p", "1 KiB SendSync, 1 producer", "ASYNC_FLUSH", False, produce("sync", 1)),
        ("sync-1k-8p", "1 KiB SendSync, 8 producers", "ASYNC_FLUSH", False, produce("sync", 8)),
        ("async-1k", "1 KiB async send, 1 producer", "ASYNC_FLUSH", False, produce("async", 1)),
        ("sync-128b-8p", "128 B SendSync, 8 producers", "ASYNC_FLUSH", False, produce("sync", 8, 128)),
        ("sync-16k-8p", "16 KiB SendSync, 8 producers", "ASYNC_FLUSH", False, produce("sync", 8, 16384)),
        ("batch-32", "1 KiB batch of 32, 8 producers", "ASYNC_FLUSH", False, [go_client("batch", 8, 1024, seconds, batch=32)]),
        ("latency-5000", "1 KiB SendSync at a fixed 5,000 msgs/s (4 producers)", "ASYNC_FLUSH", False,
         [go_client("sync", 4, 1024, seconds, rate=5000), rust_client("sync", 4, 1024, seconds, rate=5000)]),
        ("consume-backlog", f"consume a backlog of {backlog:,} × 1 KiB", "ASYNC_FLUSH", True,
         [go_client("consume", seconds=180, messages=backlog, group="bench-go"),
          rust_client("consume", seconds=180, messages=backlog, group="bench-rust")]),
        ("syncflush-8p", "SYNC_FLUSH, 1 KiB SendSync, 8 producers", "SYNC_FLUSH", True, produce("sync", 8)),
        ("syncflush-64p", "SYNC_FLUSH, 1 KiB SendSync, 64 producers", "SYNC_FLUSH", True, produce("sync", 64)),
        # Large messages against the disk (see disk_write_rate): SYNC_FLUSH, so that what is
        # counted is on the disk. Apache's benchmark Producer compresses bodies over 4 KiB.
        *[(sid, f"SYNC_FLUSH, {title}", "SYNC_FLUSH", True, clients) for sid, title, clients in large_scenarios(seconds)],
    ]


LARGE = {"large-64k": 65536, "large-1m": 1 << 20, "batch-256": 256 * 1024}


def large_scenarios(seconds):
    """(id, title, clients) of the large-message rows; LARGE gives each one's bytes per send."""
    return [
        ("large-64k", "64 KiB SendSync, 16 producers",
         [go_client("sync", 16, 65536, seconds), rust_client("sync", 16, 65536, seconds)]),
        ("large-1m", "1 MiB SendSync, 8 producers",
         [go_client("sync", 8, 1 << 20, seconds), rust_client("sync", 8, 1 << 20, seconds)]),
        ("batch-256", "1 KiB batches of 256, 8 producers", [go_client("batch", 8, 1024, seconds, batch=256)]),
    ]


def disk_write_rate(work, mib=1024, samples=3):
    """MB/s of writing `mib` MiB sequentially in 1 MiB blocks to a file in `work`, one
    fdatasync at the end included: the disk's rate that SYNC_FLUSH throughput is held to.
    The median of `samples` runs, and the runs (a virtual disk's rate swings between runs)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "disk-rate.tmp"
    block = os.urandom(1 << 20)
    rates = []
    for _ in range(samples):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            start = time.monotonic()
            for _ in range(mib):
                os.write(fd, block)
            os.fdatasync(fd)
            seconds = time.monotonic() - start
        finally:
            os.close(fd)
            path.unlink()
        rates.append(mib * (1 << 20) / seconds / 1e6)
    return statistics.median(rates), rates


def warm_up(system, seconds):
    """An unmeasured load after each start, so a JIT-compiled broker is measured warm."""
    if seconds > 0:
        subprocess.run([str(FERROMQ), "bench", "produce", "-n", system.namesrv, "--topic", TOPIC,
                        "--producers", "4", "--seconds", str(seconds)],
                       check=True, capture_output=True, timeout=seconds + 120)


def fill_backlog(system, count):
    """Stores `count` 1 KiB messages with the Rust client's async sends (not measured)."""
    subprocess.run([str(FERROMQ), "bench", "produce", "-n", system.namesrv, "--topic", TOPIC, "--mode", "async",
                    "--producers", "2", "--messages", str(count), "--seconds", "900"],
                   check=True, capture_output=True, timeout=1000)


def run_system(system, args, results):
    log(f"== {system.name}")
    if system.stores and not args.merge:
        try:
            ms, samples = first_send_ms(system)
            results["first_send_ms"][system.name] = ms
            results.setdefault("first_send_samples_ms", {})[system.name] = samples
            results["idle_rss_mb"][system.name] = status_kb(system.broker_pid, "VmRSS") / 1024
            log(f"first send {ms} ms after start (median of {samples})")
        finally:
            system.stop()
    flush = None
    for sid, title, want_flush, needs_store, clients in scenarios(args.seconds, args.backlog):
        if args.only and sid not in args.only:
            continue
        if needs_store and not system.stores:
            continue
        if flush != want_flush or sid == "consume-backlog" or sid in LARGE:
            system.stop()
            system.start(want_flush)
            flush = want_flush
            create_topic(system)
            warm_up(system, args.warm_up)
            if sid == "consume-backlog":
                log(f"filling a backlog of {args.backlog:,} messages")
                fill_backlog(system, args.backlog)
        for k, client in enumerate(clients):
            if client[1][0] == "java" and not args.apache_tool:
                continue
            if sid in LARGE and k > 0:
                # A large run writes gigabytes: each client starts on an empty disk.
                system.stop()
                system.start(want_flush)
                create_topic(system)
            if client[0] in system.incompatible:
                r = {"client": client[0], "error": system.incompatible[client[0]]}
                results["runs"].setdefault(sid, {"title": title, "by": {}})["by"].setdefault(r["client"], {})[system.name] = r
                continue
            try:
                r = run_load(system, client, args.seconds)
            except Exception as e:  # one failed run is reported, the comparison goes on
                r = {"client": client[0], "error": str(e).splitlines()[0][:200]}
            if not system.alive():
                r["error"] = "the server exited during the run"
            results["runs"].setdefault(sid, {"title": title, "by": {}})["by"].setdefault(r["client"], {})[system.name] = r
            log(f"{sid} {r['client']}: " + (r.get("error") or
                f"{r['msgs_per_sec']:.0f} msgs/s, p99 {r.get('p99_us', 0) / 1000:.2f} ms, "
                f"{r['cpu_s_per_million']:.1f} CPU s/M, RSS {r['peak_rss_mb']:.0f} MB"))
            if not system.alive():
                system.stop()
                flush = None
    system.stop()


# ---- report -----------------------------------------------------------------------------------

def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def metric(results, sid, client, system, key):
    r = results["runs"].get(sid, {}).get("by", {}).get(client, {}).get(system)
    if not r or "error" in r:
        return None
    return r.get(key)


CLIENTS = {"Go client": "Go", "ferromq bench (Rust client)": "Rust", "Apache benchmark Producer (Java)": "Java"}
TARGETS = [
    # scenario, metric, higher is better, bar, what, against the null broker
    ("sync-1k-8p", "msgs_per_sec", True, 2.0, "Throughput, 1 KiB SendSync, 8 producers", False),
    ("sync-1k-8p", "msgs_per_sec", True, 0.7, "… as a share of the null broker's", True),
    ("latency-5000", "p99_us", False, 0.33, "Send latency p99 at 5,000 msgs/s", False),
    ("consume-backlog", "msgs_per_sec", True, 2.0, "Consume throughput from the backlog", False),
    ("sync-1k-8p", "peak_rss_mb", False, 0.1, "Broker peak RSS under the 8-producer load", False),
    ("syncflush-64p", "msgs_per_sec", True, 2.0, "SYNC_FLUSH, 64 producers", False),
]


def targets(results, peers):
    """One row per target and client: FerroMQ against the better peer measured with that client."""
    rows = []
    for sid, key, higher, bar, what, vs_null in TARGETS:
        bar_text = ("≥ " if higher else "≤ ") + f"{bar} ×"
        for client, short in CLIENTS.items():
            ours = metric(results, sid, client, "FerroMQ", key)
            if ours is None:
                continue
            candidates = ["null broker"] if vs_null else peers
            vals = [(metric(results, sid, client, p, key), p) for p in candidates]
            vals = [v for v in vals if v[0]]
            if not vals:
                continue
            theirs, peer = (max if higher else min)(vals)
            x = ours / theirs
            met = x >= bar if higher else x <= bar
            rows.append((what, short, f"{x:.2f} ×", peer, bar_text, "met" if met else "**missed**"))
    ours = results["first_send_ms"].get("FerroMQ")
    theirs = [(results["first_send_ms"][p], p) for p in peers if p in results["first_send_ms"]]
    if ours is not None and theirs:
        best = min(theirs)
        x = ours / best[0]
        rows.append(("Start to first successful send", "Rust", f"{x:.3f} ×", best[1], "≤ 0.05 ×",
                     "met" if x <= 0.05 else "**missed**"))
    return rows


def write_report(results, path, systems):
    peers = [s for s in systems if s not in ("FerroMQ", "null broker")]
    lines = [
        "# FerroMQ compared with Apache RocketMQ and rocketmq-rust",
        "",
        f"Run {results['date']} on {results['machine']}. Generated by `bench/compare/run`"
        f" ({results['seconds']} s per load; every server on 127.0.0.1; clients and servers share the machine).",
        "",
        "Other reports: [SCALE.md](SCALE.md) (many topics, restarts with a 20 GiB log, the admin tool at 10,000"
        " topics), [SCALE-rust.md](SCALE-rust.md) (many topics, load from the Rust client), [GRPC.md](GRPC.md) (the 5.x clients), [REPLICATION.md](REPLICATION.md),"
        " [OBSERVABILITY.md](OBSERVABILITY.md).",
        "",
        *([("Measured (UTC): " + "; ".join(f"{s} {t}" for s, t in results["measured"].items() if s in systems)
            + ". Systems measured in separate sittings (`--resume`) may differ by the machine's drift as well."), ""]
          if results.get("measured") else []),
        *([("Measured later and merged in (`--merge`): " + "; ".join(f"{k} {v}" for k, v in results["merged"].items())
            + "."), ""] if results.get("merged") else []),
        f"- Apache RocketMQ {APACHE_VERSION} from Maven Central, {APACHE_HEAP}, the JVM flags of its"
        " runbroker.sh, otherwise its defaults (ASYNC_FLUSH unless stated).",
        "- rocketmq-rust 1.0.0 (`cargo install --locked rocketmq-namesrv rocketmq-broker`), with"
        " `[store] commitLogMicroBatchMaxWaitMicros = 0`: without it its sync sends wait on a 1 ms timer.",
        "- FerroMQ: `ferromq standalone` (name server and broker in one process), release build, from the commit checked out.",
        "- null broker: `ferromq bench null-broker`, which decodes every request and answers success without"
        " storing: the ceiling of this machine for the protocol with these clients.",
        "- Load: the official Go client (`interop/go/bench`), Apache's own benchmark Producer"
        " (`org.apache.rocketmq.example.benchmark.Producer`, average latency only; its rate and the broker's CPU are"
        f" taken over the 9 s window of report {APACHE_TOOL_WARMUP_S}, t = {APACHE_TOOL_WARMUP_S}–"
        f"{APACHE_TOOL_WARMUP_S + APACHE_TOOL_WINDOW_S} s, once the JIT has settled: its earlier reports"
        " climb by a third) and"
        " `ferromq bench` (Rust client).",
        "- CPU is the broker process's user+system seconds per million messages; RSS the broker"
        " process's peak resident memory during the load (FerroMQ's includes its name server).",
        "",
        "## Targets",
        "",
        "| target | client | FerroMQ ÷ better peer | better peer | bar | |",
        "|---|---|---|---|---|---|",
    ]
    for row in targets(results, peers):
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Start-up", "",
              f"Start to first successful send: the median of {START_SAMPLES} starts on an empty store, timed from"
              " spawning the servers; the samples follow it.", "",
              "| system | start to first successful send | samples | RSS when idle |", "|---|---|---|---|"]
    for s in systems:
        if s in results["first_send_ms"]:
            samples = ", ".join(f"{v:,}" for v in results.get("first_send_samples_ms", {}).get(s, []))
            lines.append(f"| {s} | {results['first_send_ms'][s]:,} ms | {samples} | "
                         f"{fmt(results['idle_rss_mb'].get(s), 1)} MB |")
    for sid, run in results["runs"].items():
        lines += ["", f"## {run['title']}", "",
                  "| client | system | msgs/s | MB/s | p50 ms | p99 ms | p99.9 ms | broker CPU s / M msgs | broker peak RSS MB | FerroMQ ÷ this |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for client, by in run["by"].items():
            ours = by.get("FerroMQ", {}).get("msgs_per_sec")
            for s in systems:
                r = by.get(s)
                if r is None:
                    continue
                if "error" in r:
                    lines.append(f"| {client} | {s} | failed: {r['error']} | | | | | | | |")
                    continue
                ms = lambda k: fmt(r[k] / 1000, 2) if r.get(k) else "–"
                rel = f"{ours / r['msgs_per_sec']:.2f} ×" if ours and s != "FerroMQ" and r["msgs_per_sec"] else ""
                p50 = ms("p50_us") if "p50_us" in r else (f"avg {ms('avg_us')}" if "avg_us" in r else "–")
                lines.append(f"| {client} | {s} | {fmt(r['msgs_per_sec'])} | {fmt(r.get('mb_per_sec'), 1)} | {p50} | "
                             f"{ms('p99_us')} | {ms('p999_us')} | {fmt(r['cpu_s_per_million'], 1)} | {fmt(r['peak_rss_mb'], 0)} | {rel} |")
    large = [(sid, run) for sid, run in results["runs"].items() if sid in LARGE]
    if large and results.get("disk_write_mb_s"):
        disk = results["disk_write_mb_s"]
        lines += ["", "## Large messages against the disk", "",
                  f"The disk under the data directories wrote {disk:,.0f} MB/s in the same run (median of "
                  + ", ".join(f"{r:,.0f}" for r in results.get("disk_write_samples_mb_s", [disk]))
                  + " MB/s: 1 GiB in 1 MiB blocks, one fdatasync at the end). The rows above are SYNC_FLUSH: a send is answered once its "
                  "bytes are on the disk. Share of the disk's rate (bodies only; records add about 200 B each):", "",
                  "| scenario | client | " + " | ".join(systems) + " |", "|---|---|" + "---|" * len(systems)]
        for sid, run in large:
            for client, by in run["by"].items():
                cells = []
                for s in systems:
                    r = by.get(s, {})
                    cells.append(f"{r['mb_per_sec']:,.0f} MB/s ({100 * r['mb_per_sec'] / disk:.0f} %)"
                                 if r.get("mb_per_sec") else "–")
                lines.append(f"| {run['title']} | {client} | " + " | ".join(cells) + " |")
    lines += ["", "![throughput and latency](compare.svg)", ""]
    Path(path).write_text("\n".join(lines))


COLORS = {"FerroMQ": "#d9480f", "Apache RocketMQ": "#1c7ed6", "rocketmq-rust": "#2f9e44", "null broker": "#adb5bd"}


def write_chart(results, path, systems):
    """Grouped bars: Go-client throughput per scenario, and p99 send latency."""
    panels = []
    for key, label, scale in (("msgs_per_sec", "Go client: messages per second", 1),
                              ("p99_us", "Go client: p99 send latency (ms)", 1000)):
        groups = []
        for sid, run in results["runs"].items():
            by = run["by"].get("Go client", {})
            vals = [(s, by[s][key] / scale) for s in systems if s in by and "error" not in by[s] and by[s].get(key)]
            if vals:
                groups.append((sid, vals))
        panels.append((label, groups, kilo if key == "msgs_per_sec" else one_decimal))
    write_bars(path, systems, panels)


def kilo(v):
    return f"{v / 1000:.1f}k"


def one_decimal(v):
    return f"{v:.1f}"


def write_bars(path, systems, panels, width=980, panel_h=300):
    """An SVG of grouped bar panels, one colour per system. `panels`: (title, groups, label
    of a value) with groups [(group name, [(system, value or None for a failed run)])]."""
    top = 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + len(panels) * (panel_h + 60) + 30}" '
           'font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>']
    x = 60
    for s in systems:
        out.append(f'<rect x="{x}" y="12" width="12" height="12" fill="{COLORS.get(s, "#888")}"/>'
                   f'<text x="{x + 16}" y="22">{s}</text>')
        x += 150
    for i, (label, groups, text_of) in enumerate(panels):
        y0 = top + i * (panel_h + 60)
        out.append(f'<text x="10" y="{y0 + 12}" font-size="13" font-weight="bold">{label}</text>')
        vmax = max((v for _, vals in groups for _, v in vals if v is not None), default=1) or 1
        gw = (width - 80) / max(len(groups), 1)
        base = y0 + panel_h
        out.append(f'<line x1="50" y1="{base}" x2="{width - 20}" y2="{base}" stroke="#333"/>')
        for g, (sid, vals) in enumerate(groups):
            bw = (gw - 10) / len(systems)
            for s, v in vals:
                k = systems.index(s)
                if v is None:  # a run without a result
                    out.append(f'<text x="{55 + g * gw + k * bw + bw / 2:.1f}" y="{base - 4}" text-anchor="middle" '
                               f'font-size="10" fill="{COLORS.get(s, "#888")}">failed</text>')
                    continue
                h = (panel_h - 30) * v / vmax
                bx = 55 + g * gw + k * bw
                out.append(f'<rect x="{bx:.1f}" y="{base - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
                           f'fill="{COLORS.get(s, "#888")}"/>')
                out.append(f'<text x="{bx + bw / 2 - 1:.1f}" y="{base - h - 3:.1f}" text-anchor="middle" '
                           f'font-size="9">{text_of(v)}</text>')
            out.append(f'<text x="{55 + g * gw + gw / 2:.1f}" y="{base + 14}" text-anchor="middle">{sid}</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out))


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    total = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            total = int(line.split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} cores ({cpu}), {total} GiB RAM, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--systems", default="Apache RocketMQ,rocketmq-rust,FerroMQ,null broker")
    ap.add_argument("--seconds", type=int, default=15, help="length of each load")
    ap.add_argument("--warm-up", type=int, default=10, help="seconds of unmeasured load after each start")
    ap.add_argument("--backlog", type=int, default=1_000_000, help="messages stored before the consume test")
    ap.add_argument("--only", nargs="*", help="scenario ids to run (default: all)")
    ap.add_argument("--no-apache-tool", dest="apache_tool", action="store_false",
                    help="skip Apache's Java benchmark Producer")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--work", default=str(ROOT / "target" / "compare"), help="data directories (same disk for all)")
    ap.add_argument("--resume", action="store_true", help="keep the systems already in results.json")
    ap.add_argument("--smoke", action="store_true", help="FerroMQ only, a few seconds per load; checks the harness")
    ap.add_argument("--merge", action="store_true",
                    help="with --only: measure those scenarios again for --systems and put them into the saved "
                         "results.json beside everything else it holds (start-up is not measured again)")
    args = ap.parse_args()
    # Stopped from outside: still stop the servers (the `finally` blocks below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    if args.smoke:
        args.systems, args.seconds, args.backlog, args.warm_up = "FerroMQ", 2, 20_000, 1
        args.only = args.only or ["sync-1k-1p", "latency-5000", "consume-backlog", "large-1m", "batch-256"]
        args.apache_tool = False
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    kinds = {c.name: c for c in (Apache, RocketmqRust, FerroMQ, NullBroker)}
    work = Path(args.work)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = out.with_name("results.json")
    results = {"date": datetime.date.today().isoformat(), "machine": machine(), "seconds": args.seconds,
               "first_send_ms": {}, "idle_rss_mb": {}, "done": [], "runs": {}}
    if args.merge:
        if not (args.only and saved.exists()):
            sys.exit("--merge needs --only and a saved results.json")
        results = json.loads(saved.read_text())
        results["done"] = [n for n in results.get("done", []) if n not in names]
        results.setdefault("merged", {})
    elif args.resume and saved.exists():
        results = json.loads(saved.read_text())
        log(f"resuming: {', '.join(results.get('done', [])) or 'nothing'} already measured")
    if any(sid in LARGE for sid in (args.only or LARGE)):
        # Measured again by every run that measures the large rows, on the data directories' disk.
        results["disk_write_mb_s"], results["disk_write_samples_mb_s"] = disk_write_rate(
            work, 64 if args.smoke else 1024)
        log(f"disk: {results['disk_write_mb_s']:.0f} MB/s sequential write with fdatasync "
            f"(median of {', '.join(f'{r:.0f}' for r in results['disk_write_samples_mb_s'])})")
    for n in names:
        if n in results.get("done", []):
            continue
        system = kinds[n](work)
        began = time.strftime("%H:%M")
        try:
            run_system(system, args, results)
        finally:
            system.stop()
            # The next system gets the disk; the logs stay.
            for child in system.work.glob("*"):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
        if args.merge:
            for sid in args.only:
                results["merged"][f"{sid} / {n}"] = f"{datetime.date.today().isoformat()} {began}–{time.strftime('%H:%M')}"
        else:
            results.setdefault("measured", {})[n] = f"{began}–{time.strftime('%H:%M')}"
        results.setdefault("done", []).append(n)
        # Saved after each system, so an interrupted comparison can resume (--resume).
        saved.write_text(json.dumps(results, indent=1))
    # Every system measured so far: with --resume, those of earlier runs too.
    shown = [n for n in kinds if n in results.get("done", [])]
    write_report(results, out, shown)
    write_chart(results, out.with_name("compare.svg"), shown)
    log(f"wrote {out}")
    if args.smoke:
        failed = [f"{sid}/{c}" for sid, run in results["runs"].items() for c, by in run["by"].items()
                  for r in by.values() if "error" in r or not r.get("messages")]
        if failed or "FerroMQ" not in results["first_send_ms"]:
            sys.exit(f"smoke run failed: {failed or 'no first send'}")
        print(out.read_text())


if __name__ == "__main__":
    main()
