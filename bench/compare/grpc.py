#!/usr/bin/env python3
"""The 5.x (gRPC) API compared: FerroMQ's gRPC front and Apache RocketMQ 5.5.0's proxy in local
mode (the broker inside the proxy's JVM), one after the other on this machine, with the official
5.x clients. Writes bench/GRPC.md and bench/grpc.json.

- Sends: N producers of 1 KiB sync sends for a fixed time after an unmeasured warm-up of the same
  load in the same process, with the Go v5 client (bench/compare/v5go) and the Java 5 client
  (bench/compare/v5java/GrpcBench.java) over gRPC; for reference the 4.x Go client
  (interop/go/bench) over each system's remoting port.
- Receive + ack: a backlog of 1,000,000 × 1 KiB (stored over remoting by `ferromq bench produce`,
  not measured), drained by Go v5 SimpleConsumers (batch 32), after an unmeasured warm-up on
  another topic and group.

Called by `bench/compare/run --grpc`, which builds the load generators and fetches Apache's
proxy first. Shares compare.py's servers and helpers. Standard library only. Every client
connects to 127.0.0.1; the servers bind 127.0.0.1, except Apache's proxy, which has no setting
for the address of its gRPC and remoting listeners and binds them on all interfaces.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import compare as c
from compare import log

GO_V5 = c.ROOT / "target" / "bench" / "gobench-v5"
JAVA_CP = c.ROOT / "target" / "bench" / "v5java.classpath"
JAVA_SRC = c.ROOT / "bench" / "compare" / "v5java" / "GrpcBench.java"
PROXY_LIB = c.PEERS / f"apache-{c.APACHE_VERSION}-proxy" / "lib"
TOPIC = "GrpcCompare"
WARM_TOPIC = "GrpcCompareWarm"
GROUP = "grpc-bench"
WARM_GROUP = "grpc-bench-warm"
SIZE = 1024
# Apache's proxy refuses invisible durations under 10 s on receive; every message here is acked
# within milliseconds of its receipt, so none should come back.
INVISIBLE = "60s"
# The Go client sends no long-polling timeout; Apache's proxy then needs awaitDuration above ~2 s
# (interop/v5/NOTES-java-go.md). 5 s is the client's own example.
AWAIT = "5s"
GO_V5_LABEL = "Go v5 client (gRPC)"
JAVA_V5_LABEL = "Java 5 client (gRPC)"
GO_4X_LABEL = "Go 4.x client (remoting)"
CLIENTS = {
    GO_V5_LABEL: "github.com/apache/rocketmq-clients/golang/v5 v5.1.4 (bench/compare/v5go)",
    JAVA_V5_LABEL: "org.apache.rocketmq:rocketmq-client-java 5.2.0 (bench/compare/v5java/GrpcBench.java)",
    GO_4X_LABEL: "github.com/apache/rocketmq-client-go/v2 v2.1.2 (interop/go/bench), to the broker's remoting port",
}


# ---- the systems --------------------------------------------------------------------------

def broker_conf_common(flush):
    """The broker.conf lines both systems get."""
    return f"brokerIP1=127.0.0.1\nflushDiskType={flush}\n"


class FerroMQ(c.System):
    name = "FerroMQ"
    namesrv_port, broker_port, grpc_port = 17876, 18911, 18981

    @property
    def grpc(self):
        return f"127.0.0.1:{self.grpc_port}"

    def ports(self):
        # A broker also binds listenPort − 2 (Apache's VIP channel, which FerroMQ serves too).
        return {self.namesrv_port, self.broker_port, self.broker_port - 2, self.grpc_port}

    def launch(self, flush):
        conf = self.work / "broker.conf"
        conf.write_text(broker_conf_common(flush))
        s = c.Server([str(c.FERROMQ), "standalone", "--data-dir", str(self.work / "data"), "-c", str(conf),
                      "--namesrv-listen", self.namesrv, "--broker-listen", f"127.0.0.1:{self.broker_port}",
                      "--grpc-listen", self.grpc, "--no-dashboard", "--log-level", "warn"],
                     self.work / "ferromq.log")
        self.servers = [s]
        self.broker_pid = s.proc.pid

    def start(self, flush):
        super().start(flush)
        c.wait_port(self.grpc_port)


class Apache(c.System):
    name = "Apache RocketMQ"
    namesrv_port, broker_port, grpc_port, proxy_remoting_port = 15876, 16911, 16981, 16980

    @property
    def grpc(self):
        return f"127.0.0.1:{self.grpc_port}"

    def ports(self):
        # The broker binds listenPort − 2 (VIP channel) and + 1 (HA) too.
        return {self.namesrv_port, self.broker_port, self.broker_port - 2, self.broker_port + 1,
                self.grpc_port, self.proxy_remoting_port}

    def java(self, main_class, args, log_name):
        home = self.work / "home"
        (home / "conf").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, ROCKETMQ_HOME=str(home))
        return c.Server(["java", *c.APACHE_JVM, f"-Duser.home={home}", "-cp", f"{PROXY_LIB}/*", main_class, *args],
                        self.work / log_name, env=env)

    def launch(self, flush):
        (self.work / "namesrv.conf").write_text(f"listenPort={self.namesrv_port}\nbindAddress=127.0.0.1\n")
        ns = self.java("org.apache.rocketmq.namesrv.NamesrvStartup", ["-c", str(self.work / "namesrv.conf")],
                       "namesrv.log")
        store = self.work / "store"
        # As compare.apache_broker writes it, for the broker inside the proxy.
        (self.work / "broker.conf").write_text(
            f"brokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerId=0\n"
            f"bindAddress=127.0.0.1\nnamesrvAddr={self.namesrv}\nlistenPort={self.broker_port}\n"
            f"storePathRootDir={store}\nstorePathCommitLog={store}/commitlog\n" + broker_conf_common(flush))
        (self.work / "rmq-proxy.json").write_text(json.dumps({
            "rocketMQClusterName": "DefaultCluster",
            "namesrvAddr": self.namesrv,
            "grpcServerPort": self.grpc_port,
            "remotingListenPort": self.proxy_remoting_port,
            "localServeAddr": "127.0.0.1",
            "metricsExporterType": "DISABLE",
        }, indent=2))
        proxy = self.java("org.apache.rocketmq.proxy.ProxyStartup",
                          ["-pm", "local", "-bc", str(self.work / "broker.conf"), "-pc", str(self.work / "rmq-proxy.json")],
                          "proxy.log")
        self.servers = [ns, proxy]
        # The broker runs in the proxy's JVM: CPU and RSS are that process's.
        self.broker_pid = proxy.proc.pid

    def start(self, flush):
        super().start(flush)
        c.wait_port(self.grpc_port)


KINDS = {k.name: k for k in (FerroMQ, Apache)}


# ---- topics, groups, backlog --------------------------------------------------------------

def admin(system, args, what, timeout=90):
    """`ferromq admin …` against the system's name server, retried: a broker opens its port
    before it has registered with its name server."""
    deadline = time.time() + timeout
    while True:
        r = subprocess.run([str(c.FERROMQ), "admin", *args, "-n", system.namesrv],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            return r.stdout
        if time.time() > deadline:
            raise RuntimeError(f"{what} on {system.name} failed: {r.stdout}{r.stderr}")
        time.sleep(0.5)


def create_resources(system):
    """The topics (8 queues, message.type NORMAL, as the 5.x clients expect) and the consumer
    groups: Apache's proxy refuses a SimpleConsumer of a group that does not exist."""
    for t in (TOPIC, WARM_TOPIC):
        admin(system, ["updateTopic", "-t", t, "-r", str(c.QUEUES), "-w", str(c.QUEUES),
                       "-a", "+message.type=NORMAL"], f"creating {t}")
    for g in (GROUP, WARM_GROUP):
        admin(system, ["updateSubGroup", "-g", g], f"creating group {g}")
    time.sleep(1)  # brokers register the new routes with their name server


def stored(system, topic):
    """Messages in the topic's consume queues (the sum of max − min offsets)."""
    out = admin(system, ["topicStatus", "-t", topic, "--json"], f"topicStatus {topic}")
    return sum(int(q["maxOffset"]) - int(q["minOffset"]) for q in json.loads(out))


def fill(system, topic, count):
    """Stores at least `count` 1 KiB messages with `ferromq bench produce` (async sends over
    remoting, 2 producers: the fastest producer at hand; not measured), topping up what failed
    (Apache, cold, answers some of a burst of async sends with an error), until the consume
    queues hold them. Returns what they hold and how many sends failed on the way."""
    t0 = time.monotonic()
    failed = 0
    have = stored(system, topic)
    for _ in range(10):
        if have >= count:
            break
        r = subprocess.run([str(c.FERROMQ), "bench", "produce", "-n", system.namesrv, "--topic", topic,
                            "--mode", "async", "--producers", "2", "--size", str(SIZE),
                            "--messages", str(count - have), "--seconds", "1800"],
                           capture_output=True, text=True, timeout=2000)
        if r.returncode != 0:
            raise RuntimeError(f"filling {topic}: {r.stdout[-1000:]}{r.stderr[-1000:]}")
        failed += c.parse_result_line(r.stdout).get("failed", 0)
        # Until the consume queues stop growing (dispatch may trail the last answer).
        last, deadline = -1, time.time() + 120
        while (have := stored(system, topic)) != last and have < count and time.time() < deadline:
            last = have
            time.sleep(1)
    log(f"{topic}: {have:,} messages stored in {time.monotonic() - t0:.1f} s ({failed:,} sends failed and were made up)")
    if have < count:
        raise RuntimeError(f"{topic}: only {have:,} of {count:,} messages stored")
    return have, failed


# ---- load generators ------------------------------------------------------------------------

def go_v5_send(system, producers, args):
    return GO_V5_LABEL, [str(GO_V5), "-mode", "send", "-endpoint", system.grpc, "-topic", TOPIC,
                         "-producers", str(producers), "-size", str(SIZE), "-seconds", str(args.seconds),
                         "-warmup", str(args.warm_up), "-log-dir", str(system.work / "client-logs")]


def java_v5_send(system, producers, args):
    cp = JAVA_CP.read_text().strip()
    logs = system.work / "client-logs"
    return JAVA_V5_LABEL, ["java", "-Xms1g", "-Xmx1g", f"-Drocketmq.log.root={logs}", "-Drocketmq.log.level=WARN",
                           "-Dmq.consoleAppender.enabled=false", "-cp", cp, str(JAVA_SRC),
                           "--endpoint", system.grpc, "--topic", TOPIC, "--producers", str(producers),
                           "--size", str(SIZE), "--seconds", str(args.seconds), "--warmup", str(args.warm_up)]


def go_4x_send(system, producers, seconds):
    return GO_4X_LABEL, [str(c.GO_BENCH), "-mode", "sync", "-namesrv", system.namesrv, "-topic", TOPIC,
                         "-producers", str(producers), "-size", str(SIZE), "-seconds", str(seconds)]


def go_v5_receive(system, topic, group, messages, seconds, consumers, batch):
    return GO_V5_LABEL, [str(GO_V5), "-mode", "receive", "-endpoint", system.grpc, "-topic", topic,
                         "-group", group, "-consumers", str(consumers), "-batch", str(batch),
                         "-messages", str(messages), "-seconds", str(seconds), "-invisible", INVISIBLE,
                         "-await", AWAIT, "-log-dir", str(system.work / "client-logs")]


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_client(system, client, timeout):
    """Runs one load generator. The server's CPU time is read when the generator prints
    `PHASE measure` and `PHASE done` (the measured window; without them, over its whole run);
    peak RSS over its whole run."""
    label, args = client
    (system.work / "client-logs").mkdir(exist_ok=True)
    pid = system.broker_pid
    sampler = c.RssSampler(pid)
    sampler.start()
    cpu = {"start": c.cpu_seconds(pid)}
    err_path = system.work / "client-stderr.log"
    with open(err_path, "w") as err:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=system.work,
                             start_new_session=True)
        give_up = threading.Timer(timeout, kill_group, (p,))
        give_up.start()
        lines = []
        try:
            for line in p.stdout:
                lines.append(line)
                if line.startswith("PHASE measure"):
                    cpu["measure"] = c.cpu_seconds(pid)
                elif line.startswith("PHASE done"):
                    cpu["done"] = c.cpu_seconds(pid)
            p.wait()
        finally:
            give_up.cancel()
            sampler.stop.set()
            sampler.join()
            if p.poll() is None:
                kill_group(p)
                p.wait()
    cpu["end"] = c.cpu_seconds(pid) if system.alive() else cpu["start"]
    out = "".join(lines)
    try:
        r = c.parse_result_line(out)
    except RuntimeError as e:
        raise RuntimeError(f"{e}\nexit {p.returncode}; its errors:\n{err_path.read_text()[-1500:]}") from None
    if p.returncode != 0:
        r["exit_code"] = p.returncode
    window = cpu.get("done", cpu["end"]) - cpu.get("measure", cpu["start"])
    r["client"] = label
    r["cpu_s_per_million"] = window / max(r.get("messages", 0), 1) * 1e6
    r["peak_rss_mb"] = sampler.peak_kb / 1024
    return r


def describe(r):
    if "error" in r:
        return "failed: " + r["error"]
    return (f"{r['msgs_per_sec']:,.0f} msgs/s, {r.get('failed', 0)} failed"
            + (f", p99 {r['p99_us'] / 1000:.2f} ms" if r.get("p99_us") else "")
            + f", {r['cpu_s_per_million']:.1f} CPU s/M, RSS {r['peak_rss_mb']:.0f} MB")


# ---- one system ---------------------------------------------------------------------------

def record(results, sid, title, system, r):
    results["runs"].setdefault(sid, {"title": title, "by": {}})["by"].setdefault(r["client"], {})[system.name] = r
    log(f"{sid} {r['client']}: {describe(r)}")


def attempt(system, client, timeout):
    try:
        r = run_client(system, client, timeout)
    except Exception as e:  # one failed run is reported, the comparison goes on
        r = {"client": client[0], "error": str(e).splitlines()[0][:300], "detail": str(e)[-2000:]}
    if not system.alive():
        r["error"] = "the server exited during the run"
    return r


def send_scenarios(system, args, results):
    system.start(args.flush)
    create_resources(system)
    for n in args.producers:
        sid, title = f"send-{n}p", f"1 KiB sync send, {n} producer{'s' if n > 1 else ''}"
        for label in args.clients:
            if label == GO_V5_LABEL:
                r = attempt(system, go_v5_send(system, n, args), args.warm_up + args.seconds + 120)
            elif label == JAVA_V5_LABEL:
                r = attempt(system, java_v5_send(system, n, args), args.warm_up + args.seconds + 120)
            else:
                # The 4.x load generator has no warm-up phase: an unmeasured run of the same load first.
                warm = attempt(system, go_4x_send(system, n, args.warm_up), args.warm_up + 120)
                r = attempt(system, go_4x_send(system, n, args.seconds), args.seconds + 120)
                r["warmup_messages"], r["warmup_failed"] = warm.get("messages"), warm.get("failed")
                if "error" in warm or warm.get("first_error"):
                    r["warmup_error"] = warm.get("error") or warm.get("first_error")
            record(results, sid, title, system, r)
            if not system.alive():
                system.stop()
                return
    system.stop()


def receive_scenario(system, args, results):
    sid = "receive-backlog"
    title = (f"Receive + ack a backlog of {args.backlog:,} × 1 KiB: Go v5 SimpleConsumer, {args.consumers}"
             f" consumers, batch {args.batch}")
    label = GO_V5_LABEL
    try:
        system.start(args.flush)
        create_resources(system)
        log(f"filling a backlog of {args.backlog:,} messages (and {args.warm_backlog:,} for the warm-up)")
        backlog, fill_failed = fill(system, TOPIC, args.backlog)
        warm_backlog, _ = fill(system, WARM_TOPIC, args.warm_backlog)
        # Unmeasured: the same consumers on another topic and group, for at most --warm-up seconds.
        warm = attempt(system, go_v5_receive(system, WARM_TOPIC, WARM_GROUP, warm_backlog, max(args.warm_up, 1),
                                             args.consumers, args.batch), args.warm_up + 120)
        r = attempt(system, go_v5_receive(system, TOPIC, GROUP, backlog, args.receive_limit,
                                          args.consumers, args.batch), args.receive_limit + 120)
        r["backlog_stored"] = backlog
        r["backlog_fill_failed"] = fill_failed
        r["warmup_messages"] = warm.get("messages")
        r["warmup_failed"] = warm.get("failed")
        if "error" in warm or warm.get("first_error"):
            r["warmup_error"] = warm.get("error") or warm.get("first_error")
        if "error" not in r and r.get("messages", 0) < backlog:
            r["incomplete"] = f"{r.get('messages', 0):,} of {backlog:,} acked within {args.receive_limit} s"
        if "error" not in r:
            r["mb_per_sec"] = r["msgs_per_sec"] * SIZE / 1e6
    except Exception as e:
        r = {"client": label, "error": str(e).splitlines()[0][:300]}
    finally:
        system.stop()
    record(results, sid, title, system, r)


# ---- report -------------------------------------------------------------------------------

def fmt(v, digits=0):
    return c.fmt(v, digits)


def ms(r, key):
    return fmt(r[key] / 1000, 2) if r.get(key) else "–"


def ratio(ours, theirs, key, higher_better):
    a, b = (ours or {}).get(key), (theirs or {}).get(key)
    if not a or not b or "error" in ours or "error" in theirs:
        return None
    return a / b


def summary(results, systems):
    """The headline figures: the most producers measured, and the backlog."""
    def get(sid, client, system, key):
        r = results["runs"].get(sid, {}).get("by", {}).get(client, {}).get(system)
        return None if not r or "error" in r else r.get(key)

    n = max(results["settings"]["producers"])
    sid = f"send-{n}p"
    rows = []
    for client in CLIENTS:
        rows.append((f"{client}, {n} producers: msgs/s", sid, client, "msgs_per_sec", 1, 0))
        rows.append((f"{client}, {n} producers: p99 ms", sid, client, "p99_us", 1000, 2))
    rows.append(("Receive + ack from the backlog: msgs/s", "receive-backlog", GO_V5_LABEL, "msgs_per_sec", 1, 0))
    out = ["## Summary", "", "| | " + " | ".join(systems) + " | FerroMQ ÷ Apache |", "|---" * (len(systems) + 2) + "|"]
    for what, sid_, client, key, scale, digits in rows:
        vals = [get(sid_, client, s, key) for s in systems]
        if not any(vals):
            continue
        ours, theirs = get(sid_, client, "FerroMQ", key), get(sid_, client, "Apache RocketMQ", key)
        rel = f"{ours / theirs:.2f} ×" if ours and theirs else ""
        out.append(f"| {what} | " + " | ".join(fmt(v / scale, digits) if v else "–" for v in vals) + f" | {rel} |")
    # What the gRPC path costs each system against its own remoting port, same producers.
    grpc_vs = [get(sid, GO_V5_LABEL, s, "msgs_per_sec") for s in systems]
    remoting = [get(sid, GO_4X_LABEL, s, "msgs_per_sec") for s in systems]
    if any(g and r for g, r in zip(grpc_vs, remoting)):
        out.append(f"| Go v5 over gRPC ÷ Go 4.x over remoting, {n} producers | "
                   + " | ".join(f"{g / r:.2f} ×" if g and r else "–" for g, r in zip(grpc_vs, remoting)) + " | |")
    return out + [""]


def write_report(results, path):
    systems = [s for s in KINDS if s in results["systems"]]
    meta = results["settings"]
    lines = [
        "# The 5.x (gRPC) API: FerroMQ's gRPC front and Apache RocketMQ's proxy",
        "",
        f"Run {results['date']} on {results['machine']}. Generated by `bench/compare/run --grpc`"
        f" ({meta['seconds']} s measured per send load after {meta['warm_up']} s of unmeasured warm-up;"
        " every client connects to 127.0.0.1; clients and servers share the machine).",
        "",
        *(["Measured (UTC): " + "; ".join(f"{s} {t}" for s, t in results["measured"].items()) + ".", ""]
          if results.get("measured") else []),
        *([f"**FerroMQ ran from `{meta['ferromq_bin']}`, not a `target/release` path: unless that is a release"
           " build, its figures say nothing about FerroMQ's speed.**", ""]
          if "/release/" not in meta["ferromq_bin"] else []),
        "## Method",
        "",
        f"- Both systems: {meta['flush']}, one broker, a name server beside it, the same broker.conf lines"
        f" (`brokerIP1=127.0.0.1`, `flushDiskType={meta['flush']}`), a fresh store for the send loads and"
        f" another for the backlog; topics of {c.QUEUES} queues with `message.type=NORMAL`, consumer groups"
        " created beforehand (`ferromq admin` against each name server). Clients connect in plaintext (both"
        " servers serve TLS on the same port; TLS is not measured).",
        f"- FerroMQ: `ferromq standalone --grpc-listen 127.0.0.1:{FerroMQ.grpc_port}` (name server, broker and"
        f" gRPC front in one process), from `{meta['ferromq_bin']}`.",
        f"- Apache RocketMQ {c.APACHE_VERSION} from Maven Central (`bench/compare/apache-proxy/pom.xml`):"
        " `NamesrvStartup` and `ProxyStartup -pm local` (the broker runs inside the proxy's JVM, and the"
        f" proxy calls it in-process), {c.APACHE_HEAP}, the JVM flags of its runbroker.sh, otherwise its"
        " defaults (`rmq-proxy.json`: cluster, name server, ports, `localServeAddr=127.0.0.1`,"
        " `metricsExporterType=DISABLE`). The proxy has no bind-address setting: its gRPC and remoting"
        " listeners bind all interfaces.",
        "- Load generators, each a separate process on this machine:",
        *[f"  - {k}: {v}" for k, v in CLIENTS.items()],
        f"- Sends: each producer its own client and connection, one thread or goroutine each, sync sends of"
        f" {SIZE} B bodies without tag or keys. {meta['warm_up']} s of the same load in the same process first"
        " (unmeasured: it warms the clients' and Apache's JITs), then the measured window; a send counts when it"
        " starts inside the window. Throughput: successful sends ÷ the time from the window's start to the"
        " last of them answered. Percentiles: nearest rank over every successful send's own latency (the"
        " send call, retries included). The 4.x generator has no warm-up phase: it runs the same load"
        f" for {meta['warm_up']} s first as a separate, unmeasured run.",
        "- Errors: *failed* counts sends the client reported as failed in the window. The Go v5 client"
        " retries a failed attempt itself (up to the maxAttempts the server's settings give it); a gRPC"
        " interceptor counts every attempt and every non-OK answer on the wire (*wire failed / attempts*)."
        " The Java client keeps its own maxAttempts, set to 1: every failed attempt is a failed send. The 4.x"
        " Go client retries twice (`WithRetry(2)`); its retries are not visible. Warm-up sends and their"
        " failures are reported apart.",
        f"- Receive + ack: {meta['backlog']:,} × {SIZE} B stored over remoting by `ferromq bench"
        " produce` (async, 2 producers; not measured) and confirmed in the consume queues (`topicStatus`), then"
        f" {meta['consumers']} Go v5 SimpleConsumers of one group (each its own client and connection), each a"
        f" loop of `Receive(maxMessageNum {meta['batch']}, invisibleDuration {INVISIBLE})` and one `Ack` per"
        " message, the batch's acks side by side, the next receive once all are answered; awaitDuration"
        f" {AWAIT}. First, unmeasured, the same consumers drain another topic ({meta['warm_backlog']:,}"
        f" messages, another group) for at most {meta['warm_up']} s. Throughput: distinct messages acked ÷ the"
        " time from the consumers' first receive to the last of them acked. *Duplicates*: messages received"
        " again (by message id); *redelivered*: deliveries with attempt > 1; ack failures include non-OK answers"
        " the client hides (v5.1.4's `Ack` returns nil whatever the answer's status; the interceptor sees it);"
        " latencies are the acks'.",
        "- CPU: the server process's user+system seconds per million messages over the measured window"
        " (read when the load generator enters and leaves it; for the 4.x generator, over its whole measured"
        " run); for Apache the proxy's JVM, which holds the"
        " broker (the name servers are not counted). RSS: that process's peak resident memory during the load.",
        "",
    ]
    lines += summary(results, systems)
    for sid, run in results["runs"].items():
        if sid.startswith("send-"):
            lines += [f"## {run['title']}", "",
                      "| client | system | msgs/s | MB/s | p50 ms | p99 ms | p99.9 ms | failed | wire failed / attempts |"
                      " warm-up sends (failed) | server CPU s / M | server peak RSS MB | FerroMQ ÷ Apache |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for client, by in run["by"].items():
                for s in systems:
                    r = by.get(s)
                    if r is None:
                        continue
                    if "error" in r:
                        lines.append(f"| {client} | {s} | failed: {r['error']} |" + " |" * 10)
                        continue
                    rel = ""
                    if s == "FerroMQ":
                        x = ratio(r, by.get("Apache RocketMQ"), "msgs_per_sec", True)
                        y = ratio(r, by.get("Apache RocketMQ"), "p99_us", False)
                        rel = ", ".join(p for p in (f"{x:.2f} ×" if x else "", f"p99 {y:.2f} ×" if y else "") if p)
                    wire = (f"{fmt(r.get('wire_failed'))} / {fmt(r.get('wire_attempts'))}"
                            if r.get("wire_attempts") is not None and client != GO_4X_LABEL else "–")
                    warm = (f"{fmt(r.get('warmup_messages'))} ({fmt(r.get('warmup_failed'))})"
                            if r.get("warmup_messages") is not None else r.get("warmup_error", "–"))
                    lines.append(f"| {client} | {s} | {fmt(r['msgs_per_sec'])} | {fmt(r.get('mb_per_sec'), 1)} | "
                                 f"{ms(r, 'p50_us')} | {ms(r, 'p99_us')} | {ms(r, 'p999_us')} | {fmt(r.get('failed'))} | "
                                 f"{wire} | {warm} | {fmt(r['cpu_s_per_million'], 1)} | {fmt(r['peak_rss_mb'])} | {rel} |")
            lines.append("")
        else:
            lines += [f"## {run['title']}", "",
                      "| system | msgs/s | MB/s | seconds | acked (of stored) | duplicates | redelivered |"
                      " receive errors | ack failures | empty receives | messages per receive | ack p50 ms |"
                      " ack p99 ms | warm-up acked (failed) | server CPU s / M | server peak RSS MB | FerroMQ ÷ Apache |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for client, by in run["by"].items():
                for s in systems:
                    r = by.get(s)
                    if r is None:
                        continue
                    if "error" in r:
                        lines.append(f"| {s} | failed: {r['error']} |" + " |" * 15)
                        continue
                    x = ratio(r, by.get("Apache RocketMQ"), "msgs_per_sec", True) if s == "FerroMQ" else None
                    lines.append(
                        f"| {s} | {fmt(r['msgs_per_sec'])} | {fmt(r.get('mb_per_sec'), 1)} | {fmt(r.get('seconds'), 1)} | "
                        f"{fmt(r.get('messages'))} ({fmt(r.get('backlog_stored'))}) | {fmt(r.get('duplicates'))} | "
                        f"{fmt(r.get('redelivered'))} | {fmt(r.get('receive_errors'))} | {fmt(r.get('ack_failed'))} | "
                        f"{fmt(r.get('empty_receives'))} | {fmt(r.get('avg_batch'), 1)} | {ms(r, 'p50_us')} | {ms(r, 'p99_us')} | "
                        f"{fmt(r.get('warmup_messages'))} ({fmt(r.get('warmup_failed'))}) | {fmt(r['cpu_s_per_million'], 1)} | {fmt(r['peak_rss_mb'])} | {f'{x:.2f} ×' if x else ''} |")
                    if r.get("backlog_fill_failed"):
                        lines.append(f"| | *{r['backlog_fill_failed']:,} sends failed while the backlog was stored"
                                     " and were made up by more sends* |" + " |" * 15)
                    if r.get("incomplete"):
                        lines.append(f"| | *incomplete: {r['incomplete']}* |" + " |" * 15)
            lines.append("")
    errors = [(sid, cl, s, what, r[key]) for sid, run in results["runs"].items()
              for cl, by in run["by"].items() for s, r in by.items()
              for key, what in (("error", "run"), ("first_error", "measured"), ("warmup_error", "warm-up"))
              if r.get(key)]
    if errors:
        lines += ["## Errors", "", "The first error of each run (or warm-up) that had any.", ""]
        lines += [f"- {sid}, {cl}, {s} ({what}): `{e[:300]}`" for sid, cl, s, what, e in errors]
        lines.append("")
    Path(path).write_text("\n".join(lines))


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="FerroMQ,Apache RocketMQ")
    ap.add_argument("--producers", default="1,8", help="producer counts of the send loads, comma-separated")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="send load generators, comma-separated")
    ap.add_argument("--seconds", type=int, default=15, help="measured seconds of each send load")
    ap.add_argument("--warm-up", type=int, default=10, help="unmeasured seconds before each load")
    ap.add_argument("--backlog", type=int, default=1_000_000, help="messages stored before the receive test")
    ap.add_argument("--warm-backlog", type=int, default=100_000, help="messages for the receive warm-up")
    ap.add_argument("--consumers", type=int, default=4, help="SimpleConsumers draining the backlog")
    ap.add_argument("--batch", type=int, default=32, help="maxMessageNum of each receive")
    ap.add_argument("--receive-limit", type=int, default=900, help="seconds the backlog may take at most")
    ap.add_argument("--flush", default="ASYNC_FLUSH", choices=["ASYNC_FLUSH", "SYNC_FLUSH"])
    ap.add_argument("--no-receive", dest="receive", action="store_false", help="skip the receive test")
    ap.add_argument("--no-send", dest="send", action="store_false", help="skip the send loads")
    ap.add_argument("--out", help="the report (default bench/GRPC.md; with --smoke target/compare-grpc/GRPC.md)")
    ap.add_argument("--work", default=str(c.ROOT / "target" / "compare-grpc"), help="data directories (one disk for all)")
    ap.add_argument("--resume", action="store_true", help="keep the systems already in the results JSON")
    ap.add_argument("--smoke", action="store_true", help="FerroMQ only, a few seconds, tiny counts; checks the harness")
    ap.add_argument("--grpc", action="store_true", help=argparse.SUPPRESS)  # from bench/compare/run
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    if args.smoke:
        args.systems, args.seconds, args.warm_up, args.producers = "FerroMQ", 2, 1, "2"
        args.backlog, args.warm_backlog, args.consumers, args.receive_limit = 2_000, 500, 2, 120
    args.producers = [int(n) for n in args.producers.split(",") if n.strip()]
    args.clients = [s.strip() for s in args.clients.split(",") if s.strip()]
    for cl in args.clients:
        if cl not in CLIENTS:
            sys.exit(f"unknown client {cl!r}; known: {', '.join(CLIENTS)}")
    out = Path(args.out or (Path(args.work) / "GRPC.md" if args.smoke else c.ROOT / "bench" / "GRPC.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = out.with_name("grpc.json")
    settings = {"seconds": args.seconds, "warm_up": args.warm_up, "flush": args.flush, "producers": args.producers,
                "backlog": args.backlog, "warm_backlog": args.warm_backlog, "consumers": args.consumers,
                "batch": args.batch, "size": SIZE, "ferromq_bin": str(c.FERROMQ)}
    results = {"date": datetime.date.today().isoformat(), "machine": c.machine(), "settings": settings,
               "systems": [], "runs": {}}
    if args.resume and saved.exists():
        results = json.loads(saved.read_text())
        mismatch = {k: (results["settings"].get(k), v) for k, v in settings.items()
                    if k != "ferromq_bin" and results["settings"].get(k) != v}
        if mismatch:
            sys.exit(f"{saved} was measured with other settings {mismatch}; resume with the same")
        log(f"resuming: {', '.join(results['systems']) or 'nothing'} already measured")
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    for n in names:
        if n not in KINDS:
            sys.exit(f"unknown system {n!r}; known: {', '.join(KINDS)}")
        if n in results["systems"]:
            continue
        system = KINDS[n](Path(args.work))
        began = time.strftime("%H:%M")
        log(f"== {n}")
        try:
            if args.send:
                send_scenarios(system, args, results)
            if args.receive:
                receive_scenario(system, args, results)
        finally:
            system.stop()
        results.setdefault("measured", {})[n] = f"{began}–{time.strftime('%H:%M')}"
        results["systems"].append(n)
        # Saved after each system, so an interrupted comparison can resume (--resume).
        saved.write_text(json.dumps(results, indent=1))
    write_report(results, out)
    log(f"wrote {out} and {saved.name}")
    if args.smoke:
        bad = [f"{sid}/{cl}/{s}: {r.get('error') or r.get('incomplete') or r.get('first_error') or 'no messages'}"
               for sid, run in results["runs"].items() for cl, by in run["by"].items() for s, r in by.items()
               if "error" in r or r.get("incomplete") or not r.get("messages") or r.get("failed")
               or r.get("wire_failed") or r.get("duplicates")]
        if bad:
            print(out.read_text())
            sys.exit("smoke run failed: " + "; ".join(bad))
        print(out.read_text())


if __name__ == "__main__":
    main()
