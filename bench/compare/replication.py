#!/usr/bin/env python3
"""Replication compared: FerroMQ and Apache RocketMQ, each as a name server, a master and one
slave on this machine, under 8 producers of 1 KiB sync sends. Records throughput, send
latency and, every 200 ms, how many bytes of commit log the slave is behind its master;
writes bench/REPLICATION.md and bench/replication.json.

Called by `bench/compare/run --replication`, which fetches Apache RocketMQ and builds the
load generator first. Shares compare.py's servers, clients and report helpers. Standard
library only. Every server binds (Apache's HA port aside) and every client connects to
127.0.0.1.
"""

import argparse
import datetime
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import compare as c
from compare import log

PRODUCERS = 8
SIZE = 1024
GET_BROKER_RUNTIME_INFO = 28
GET_BROKER_HA_STATUS = 907
GET_BROKER_CLUSTER_INFO = 106
# What each system waits for before answering a send under SYNC_MASTER: one slave.
# FerroMQ's inSyncReplicas defaults to 2 under SYNC_MASTER; Apache's to 1 (its SYNC_MASTER
# then answers at once, like an ASYNC_MASTER), so Apache is given 2.
SYNC_WAIT = "inSyncReplicas=2 (the master and one slave), slaveTimeout 3000 ms"

# (id, title, brokerRole, with a slave)
SETUPS = [
    ("async-alone", "ASYNC_MASTER, no slave (baseline)", "ASYNC_MASTER", False),
    ("async-slave", "ASYNC_MASTER + slave", "ASYNC_MASTER", True),
    ("sync-slave", "SYNC_MASTER + slave", "SYNC_MASTER", True),
]


# ---- a minimal remoting client (RocketMQ's JSON-header frames) ---------------------------

class Remoting:
    """One connection to a broker, for its admin requests."""

    def __init__(self, addr, timeout=5.0):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opaque = 0

    def close(self):
        self.sock.close()

    def send(self, code):
        self.opaque += 1
        header = json.dumps({"code": code, "language": "JAVA", "version": 0, "opaque": self.opaque,
                             "flag": 0, "extFields": {}, "serializeTypeCurrentRPC": "JSON"}).encode()
        self.sock.sendall(struct.pack(">ii", 4 + len(header), len(header)) + header)

    def _read(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed")
            buf += chunk
        return bytes(buf)

    def receive(self, raw=False):
        """The next answer's body as JSON (`raw`: as bytes); raises unless it says success."""
        total, mark = struct.unpack(">ii", self._read(8))
        frame = self._read(total - 4)
        header_len = mark & 0xFFFFFF
        header = json.loads(frame[:header_len])
        if header.get("code") != 0:
            raise RuntimeError(f"request answered {header.get('code')}: {header.get('remark')}")
        body = frame[header_len:]
        if raw:
            return body
        return json.loads(body) if body else {}

    def call(self, code):
        self.send(code)
        return self.receive()


def registered(namesrv, addr):
    """Whether the name server lists the broker at `addr` (GET_BROKER_CLUSTER_INFO)."""
    r = Remoting(namesrv)
    try:
        r.send(GET_BROKER_CLUSTER_INFO)
        return f'"{addr}"'.encode() in r.receive(raw=True)
    finally:
        r.close()


def log_end(addr):
    """A broker's commit-log end (GET_BROKER_RUNTIME_INFO's commitLogMaxOffset)."""
    r = Remoting(addr)
    try:
        return int(r.call(GET_BROKER_RUNTIME_INFO)["table"]["commitLogMaxOffset"])
    finally:
        r.close()


def until(what, timeout, check):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if check():
                return
        except (OSError, RuntimeError, ValueError, KeyError) as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not after {timeout:.0f} s" + (f" ({last})" if last else ""))


class LagSampler(threading.Thread):
    """Every `period` s, GET_BROKER_HA_STATUS (code 907) of the master and of the slave, both
    asked before either answer is read. The master's answer gives the lag as it sees it: its
    commit-log end minus the offset the slave last acknowledged, one reading in one process
    (GET_BROKER_RUNTIME_INFO, code 28, has the same ends but takes Apache's broker tens of
    milliseconds to compute under load: too slow to pair two brokers' readings). With the
    slave's answer (`haClientRuntimeInfo.maxOffset`, its own end) it gives the ends' difference
    too, which is subject to the two brokers reading their ends at different moments."""

    def __init__(self, master, slave, period=0.2):
        super().__init__(daemon=True)
        self.master, self.slave, self.period = master, slave, period
        # (monotonic s, master end, master's view of the lag, slave end, seconds both took)
        self.samples = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self):
        m = s = None
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                if m is None:
                    m, s = Remoting(self.master), Remoting(self.slave)
                m.send(GET_BROKER_HA_STATUS)
                s.send(GET_BROKER_HA_STATUS)
                ha, hs = m.receive(), s.receive()
                took = time.monotonic() - t
                diffs = [int(x["diff"]) for x in ha.get("haConnectionInfo") or []]
                if diffs:
                    self.samples.append((t, int(ha["masterCommitLogMaxOffset"]), max(diffs),
                                         int(hs["haClientRuntimeInfo"]["maxOffset"]), took))
            except (OSError, RuntimeError, ValueError, KeyError, TypeError):
                self.errors += 1
                for r in (m, s):
                    if r:
                        r.close()
                m = s = None
            self.stop.wait(max(0.0, self.period - (time.monotonic() - t)))
        for r in (m, s):
            if r:
                r.close()

    def under_load(self):
        """The samples from the first to the last in which the master's log grew."""
        grew = [i for i in range(1, len(self.samples)) if self.samples[i][1] > self.samples[i - 1][1]]
        return self.samples[grew[0]:grew[-1] + 1] if grew else []


def pct(values, p):
    """Nearest rank, as the Go load generator computes its latencies."""
    v = sorted(values)
    return v[int((len(v) - 1) * p)] if v else None


# ---- the systems --------------------------------------------------------------------------

class Replicated(c.System):
    """A name server, a master and (`with_slave`) one slave, each its own process, data
    directories side by side under one work directory (one disk)."""
    family = ""

    def __init__(self, work, role, with_slave):
        self.name = self.family
        super().__init__(work)
        self.role, self.with_slave = role, with_slave
        self.slave_pid = None

    @property
    def master_addr(self):
        return f"127.0.0.1:{self.broker_port}"

    @property
    def slave_addr(self):
        return f"127.0.0.1:{self.slave_port}"

    def master_conf(self):
        conf = f"brokerRole={self.role}\nhaListenPort={self.ha_port}\n"
        if self.role == "SYNC_MASTER":
            conf += "inSyncReplicas=2\n"
        return conf

    def slave_conf(self):
        # No haMasterAddress: the slave learns the master's HA address from the name server
        # when it registers (Apache 5.5 drops a static haMasterAddress: it hands it to its
        # replication client before creating it).
        return f"brokerRole=SLAVE\nhaListenPort={self.slave_ha_port}\n"

    def ports(self):
        # A broker also binds listenPort − 2 (Apache's VIP channel, which FerroMQ serves too).
        ports = {self.namesrv_port, self.broker_port, self.broker_port - 2, self.ha_port}
        if self.with_slave:
            ports |= {self.slave_port, self.slave_port - 2, self.slave_ha_port}
        return ports

    def launch(self, flush):
        ns = self.namesrv_server()
        self.servers = [ns]
        c.wait_port(self.namesrv_port)
        master = self.broker_server("master", self.broker_port, 0, flush, self.master_conf())
        self.servers.append(master)
        self.broker_pid = master.proc.pid
        if self.with_slave:
            # The slave registers after the master, so the name server has the master's HA
            # address to give it.
            c.wait_port(self.broker_port)
            until(f"{self.name}: the master registers", 90, lambda: registered(self.namesrv, self.master_addr))
            slave = self.broker_server("slave", self.slave_port, 1, flush, self.slave_conf())
            self.servers.append(slave)
            self.slave_pid = slave.proc.pid

    def start(self, flush="ASYNC_FLUSH"):
        super().start(flush)
        if self.with_slave:
            c.wait_port(self.slave_port)

    def stop(self):
        # All asked to stop at once: Apache's brokers take seconds each to shut down.
        for s in self.servers:
            if s.proc.poll() is None:
                try:
                    os.killpg(s.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        super().stop()


class FerroMQ(Replicated):
    family = "FerroMQ"
    namesrv_port, broker_port, ha_port = 25876, 26911, 26912
    slave_port, slave_ha_port = 26921, 26922

    def namesrv_server(self):
        return c.Server([str(c.FERROMQ), "namesrv", "--listen", self.namesrv, "--log-level", "warn"],
                        self.work / "namesrv.log")

    def broker_server(self, role, port, broker_id, flush, conf):
        d = self.work / role
        d.mkdir()
        (d / "broker.conf").write_text(f"brokerClusterName=DefaultCluster\nbrokerName=broker-a\n"
                                       f"brokerId={broker_id}\nbrokerIP1=127.0.0.1\nflushDiskType={flush}\n{conf}")
        return c.Server([str(c.FERROMQ), "broker", "-c", str(d / "broker.conf"), "--data-dir", str(d / "data"),
                         "-n", self.namesrv, "--listen", f"127.0.0.1:{port}", "--log-level", "warn"], d / "broker.log")


class Apache(Replicated):
    family = "Apache RocketMQ"
    namesrv_port, broker_port, ha_port = 27876, 28911, 28912
    slave_port, slave_ha_port = 28921, 28922

    def namesrv_server(self):
        return c.apache_namesrv(self.work, self.namesrv_port)

    def broker_server(self, role, port, broker_id, flush, conf):
        d = self.work / role
        d.mkdir()
        return c.apache_broker(d, self.namesrv, port, flush, broker_id=broker_id, extra="brokerIP2=127.0.0.1\n" + conf)


FAMILIES = {k.family: k for k in (FerroMQ, Apache)}


# ---- one setup ----------------------------------------------------------------------------

def slave_connected(system):
    conns = Remoting(system.master_addr)
    try:
        return bool(conns.call(GET_BROKER_HA_STATUS).get("haConnectionInfo"))
    finally:
        conns.close()


def caught_up(system, timeout=120):
    """Waits until the slave's commit log ends where the master's does (and is not empty);
    returns the seconds it took."""
    t0 = time.monotonic()
    until(f"{system.name}: the slave holds the master's log", timeout,
          lambda: log_end(system.slave_addr) == log_end(system.master_addr) > 0)
    return time.monotonic() - t0


def clients(seconds, rust):
    out = [c.go_client("sync", PRODUCERS, SIZE, seconds)]
    if rust:
        out.append(c.rust_client("sync", PRODUCERS, SIZE, seconds))
    return out


def measure(system, client, seconds):
    """One load, with the slave's lag sampled beside it."""
    sampler = LagSampler(system.master_addr, system.slave_addr) if system.with_slave else None
    slave_cpu0 = c.cpu_seconds(system.slave_pid) if system.with_slave else 0
    end0 = log_end(system.master_addr)
    if sampler:
        sampler.start()
    try:
        r = c.run_load(system, client, seconds)
    finally:
        if sampler:
            sampler.stop.set()
            sampler.join()
    # Every send is stored, whatever its answer, and each producer sends one before the clock.
    sends = r.get("messages", 0) + r.get("failed", 0) + PRODUCERS
    r["log_bytes_per_msg"] = round((log_end(system.master_addr) - end0) / sends)
    if system.with_slave:
        r["slave_cpu_s_per_million"] = (c.cpu_seconds(system.slave_pid) - slave_cpu0) / max(r.get("messages", 0), 1) * 1e6
        window = sampler.under_load()
        lags = [lag for _, _, lag, _, _ in window]
        ends = [m - s for _, m, _, s, _ in window]
        r["lag_samples"] = len(lags)
        r["lag_sample_errors"] = sampler.errors
        if lags:
            r.update(lag_p50=pct(lags, 0.5), lag_p99=pct(lags, 0.99), lag_max=max(lags),
                     ends_lag_p50=pct(ends, 0.5), ends_lag_p99=pct(ends, 0.99), ends_lag_max=max(ends),
                     sample_ms_p99=round(1000 * pct([w[4] for w in window], 0.99), 1),
                     replicated_mb_per_sec=(window[-1][3] - window[0][3]) / max(window[-1][0] - window[0][0], 1e-9) / 1e6)
        # How long the slave took to hold everything once the load stopped.
        r["catch_up_s"] = round(caught_up(system), 2)
    return r


def run_setup(kind, setup, args, results):
    sid, title, role, with_slave = setup
    system = kind(Path(args.work), role, with_slave)
    log(f"== {system.name}: {title}")
    by = results["runs"].setdefault(sid, {"title": title, "by": {}})["by"]
    try:
        t0 = time.monotonic()
        system.start()
        c.create_topic(system)
        if with_slave:
            until(f"{system.name}: the slave connects to its master", 90, lambda: slave_connected(system))
        log(f"up in {time.monotonic() - t0:.1f} s; warming up for {args.warm_up} s")
        c.warm_up(system, args.warm_up)
        if with_slave:
            caught_up(system)
        for client in clients(args.seconds, args.rust):
            try:
                r = measure(system, client, args.seconds)
            except Exception as e:  # one failed run is reported, the comparison goes on
                r = {"client": client[0], "error": str(e).splitlines()[0][:200]}
            if not system.alive():
                r["error"] = "a server exited during the run"
            by.setdefault(r["client"], {})[system.name] = r
            log(f"{sid} {r['client']}: " + (r.get("error") or
                f"{r['msgs_per_sec']:.0f} msgs/s ({r.get('failed', 0)} failed), p50 {r['p50_us'] / 1000:.2f} ms, "
                f"p99 {r['p99_us'] / 1000:.2f} ms" +
                (f", lag p50/p99/max {r['lag_p50']:,}/{r['lag_p99']:,}/{r['lag_max']:,} B" if "lag_p50" in r else "")))
            if not system.alive():
                break
    except Exception as e:
        for client in clients(args.seconds, args.rust):
            by.setdefault(client[0], {}).setdefault(system.name, {"client": client[0], "error": str(e).splitlines()[0][:200]})
        log(f"{sid} on {system.name} failed: {e}")
    finally:
        system.stop()


# ---- report -------------------------------------------------------------------------------

def b(v):
    return "–" if v is None else f"{v:,}"


def ms(r, key):
    return c.fmt(r[key] / 1000, 2) if r.get(key) is not None else "–"


def write_report(results, path):
    fam = [f for f in FAMILIES if f in results["systems"]]
    lines = [
        "# Replication: FerroMQ and Apache RocketMQ, master and slave",
        "",
        f"Run {results['date']} on {results['machine']}. Generated by `bench/compare/run --replication`"
        f" ({results['seconds']} s per load after {results['warm_up']} s of warm-up; every process on this machine).",
        "",
        "## Method",
        "",
        f"Each setup starts afresh on empty stores: a name server, a master and, where stated, one slave"
        f" (brokerId=1, brokerRole=SLAVE, started once the master is registered with the name server, which gives"
        f" it the master's HA address), each its own process,"
        f" on 127.0.0.1 with their data directories side by side on one disk; ASYNC_FLUSH throughout."
        f" The topic gets {c.QUEUES} queues; the harness waits until the master lists the slave's connection,"
        f" runs an unmeasured warm-up (the Rust client, 4 producers), waits until the slave holds the master's whole"
        f" log, then runs {PRODUCERS} producers of {SIZE} B sync sends for the stated time with the official Go client"
        + (" and then with `ferromq bench produce`" if results.get("rust") else "") + "."
        f" Every 200 ms during the load it asks the master and the slave for GET_BROKER_HA_STATUS (code 907), both"
        f" requests written before either answer is read. *Lag* is the master's view: its commit-log end minus the"
        f" offset the slave last acknowledged, read at one moment inside one process; it exceeds the bytes the"
        f" slave lacks only by what the slave has appended but whose acknowledgement is still on its way (both"
        f" slaves acknowledge after every append). *Ends' difference*: the master's commit-log end minus the"
        f" slave's own (`haClientRuntimeInfo.maxOffset`, which equals GET_BROKER_RUNTIME_INFO's"
        f" `commitLogMaxOffset`); the two brokers read their ends when each gets to the request, so a broker"
        f" slow to answer adds the bytes written meanwhile, either way (GET_BROKER_RUNTIME_INFO itself took"
        f" Apache's broker tens of milliseconds under load in trials, too slow to pair two readings)."
        f" Percentiles cover the samples from the first to the last in which the master's log grew. Under"
        f" SYNC_MASTER the master's view cannot exceed the {PRODUCERS} sends in flight."
        + bytes_per_msg(results),
        "",
        f"- SYNC_MASTER on both systems: {SYNC_WAIT}: a send is answered once the message is in the master's"
        " commit log (page cache) and the slave has acknowledged bytes up to its end (both slaves acknowledge"
        " what they have appended, not flushed). FerroMQ's default under SYNC_MASTER is already 2; Apache's"
        " `inSyncReplicas` defaults to 1, under which its SYNC_MASTER answers without waiting for any slave, so"
        " its broker.conf sets `inSyncReplicas=2`. With no slave connected FerroMQ answers SLAVE_NOT_AVAILABLE (11)"
        " at once and Apache FLUSH_SLAVE_TIMEOUT (12) after slaveTimeout; both store the message. The harness"
        " measures only once the slave holds the master's log, so neither answer is expected in these runs.",
        "- ASYNC_MASTER: a send is answered once in the master's commit log; the slave follows as fast as it can.",
        f"- Apache RocketMQ {c.APACHE_VERSION} from Maven Central, as in RESULTS.md: {c.APACHE_HEAP}, the JVM flags of"
        " its runbroker.sh. FerroMQ: `ferromq namesrv` and two `ferromq broker` processes, release build.",
        "- Failed: sends the client saw fail or answered other than SEND_OK (the Go client counts"
        " FLUSH_SLAVE_TIMEOUT and SLAVE_NOT_AVAILABLE as failed; `ferromq bench` counts them as sent)."
        " CPU: user+system seconds per million messages of the master and of the slave process."
        " FerroMQ ÷ Apache: the two systems' throughputs (above 1: FerroMQ sends more) and p99 latencies"
        " (below 1: FerroMQ answers sooner) in the same setup with the same client.",
        "",
    ]
    for client, short in c.CLIENTS.items():
        rows = []
        for sid, run in results["runs"].items():
            by = run["by"].get(client, {})
            for f in fam:
                r = by.get(f)
                if r is None:
                    continue
                if "error" in r:
                    rows.append(f"| {run['title']} | {f} | failed: {r['error']} |" + " |" * 8)
                    continue
                ratio = ""
                other = by.get("Apache RocketMQ")
                if f == "FerroMQ" and other and "error" not in other and other.get("msgs_per_sec"):
                    ratio = f"{r['msgs_per_sec'] / other['msgs_per_sec']:.2f} ×"
                    if other.get("p99_us") and r.get("p99_us"):
                        ratio += f", p99 {r['p99_us'] / other['p99_us']:.2f} ×"
                lag = " / ".join(b(r.get(k)) for k in ("lag_p50", "lag_p99", "lag_max")) if "lag_p50" in r else "–"
                ends = " / ".join(b(r.get(k)) for k in ("ends_lag_p50", "ends_lag_p99", "ends_lag_max")) if "lag_p50" in r else "–"
                rows.append(f"| {run['title']} | {f} | {c.fmt(r['msgs_per_sec'])} | {c.fmt(r.get('failed'))} | "
                            f"{ms(r, 'p50_us')} | {ms(r, 'p99_us')} | {lag} | {ends} | "
                            f"{c.fmt(r.get('cpu_s_per_million'), 1)} | {c.fmt(r.get('slave_cpu_s_per_million'), 1)} | {ratio} |")
        if rows:
            lines += [f"## {PRODUCERS} producers, {SIZE} B sync sends: {client}", "",
                      "| setup | system | msgs/s | failed | p50 ms | p99 ms | lag p50 / p99 / max B |"
                      " ends' difference p50 / p99 / max B | master CPU s / M | slave CPU s / M | FerroMQ ÷ Apache |",
                      "|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
    cost = []
    for client, short in c.CLIENTS.items():
        for f in fam:
            base = results["runs"].get("async-alone", {}).get("by", {}).get(client, {}).get(f, {})
            for sid in ("async-slave", "sync-slave"):
                r = results["runs"].get(sid, {}).get("by", {}).get(client, {}).get(f, {})
                if base.get("msgs_per_sec") and r.get("msgs_per_sec") and "error" not in r and "error" not in base:
                    p99 = f"{r['p99_us'] / base['p99_us']:.2f} ×" if base.get("p99_us") and r.get("p99_us") else "–"
                    cost.append(f"| {short} | {f} | {results['runs'][sid]['title']} | "
                                f"{r['msgs_per_sec'] / base['msgs_per_sec']:.2f} × | {p99} |")
    if cost:
        lines += ["## What a slave costs each system", "",
                  "Against the same system's ASYNC_MASTER without a slave.", "",
                  "| client | system | setup | msgs/s ÷ alone | p99 ÷ alone |", "|---|---|---|---|---|", *cost, ""]
    Path(path).write_text("\n".join(lines))


def bytes_per_msg(results):
    """What one message takes in each system's commit log, from the Go client's runs."""
    seen = {}
    for run in results["runs"].values():
        for system, r in run["by"].get("Go client", {}).items():
            if r.get("log_bytes_per_msg"):
                seen.setdefault(system, r["log_bytes_per_msg"])
    if not seen:
        return ""
    return (f" A {SIZE} B message from the Go client takes "
            + " and ".join(f"{v:,} B of {k}'s commit log" for k, v in seen.items()) + ".")


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="FerroMQ,Apache RocketMQ")
    ap.add_argument("--setups", default=",".join(s[0] for s in SETUPS), help="setup ids, comma-separated")
    ap.add_argument("--seconds", type=int, default=30, help="length of each load")
    ap.add_argument("--warm-up", type=int, default=10, help="seconds of unmeasured load after each start")
    ap.add_argument("--no-rust", dest="rust", action="store_false", help="skip `ferromq bench produce`")
    ap.add_argument("--out", help="the report (default bench/REPLICATION.md; "
                                  "with --smoke target/compare-replication/REPLICATION.md)")
    ap.add_argument("--work", default=str(c.ROOT / "target" / "compare-replication"),
                    help="data directories (one disk for all)")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in the results JSON")
    ap.add_argument("--smoke", action="store_true", help="FerroMQ only, a few seconds per load; checks the harness")
    ap.add_argument("--replication", action="store_true", help=argparse.SUPPRESS)  # from bench/compare/run
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    if args.smoke:
        args.systems, args.seconds, args.warm_up = "FerroMQ", 3, 1
    out = Path(args.out or (Path(args.work) / "REPLICATION.md" if args.smoke else c.ROOT / "bench" / "REPLICATION.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = out.with_name("replication.json")
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    wanted = [s for s in SETUPS if s[0] in args.setups.split(",")]
    results = {"date": datetime.date.today().isoformat(), "machine": c.machine(), "seconds": args.seconds,
               "warm_up": args.warm_up, "rust": args.rust, "systems": [], "runs": {}}
    if args.resume and saved.exists():
        results = json.loads(saved.read_text())
        if (results["seconds"], results["warm_up"], results["rust"]) != (args.seconds, args.warm_up, args.rust):
            sys.exit(f"{saved} was measured with other --seconds, --warm-up or --no-rust; resume with the same")
    for n in names:
        if n not in FAMILIES:
            sys.exit(f"unknown system {n!r}; known: {', '.join(FAMILIES)}")
        for setup in wanted:
            done = results["runs"].get(setup[0], {}).get("by", {})
            if args.resume and all(n in by and "error" not in by[n] for by in done.values()) and done:
                continue
            run_setup(FAMILIES[n], setup, args, results)
            if n not in results["systems"]:
                results["systems"].append(n)
            results.setdefault("measured", {}).setdefault(n, []).append(f"{setup[0]} {time.strftime('%H:%M')}")
            saved.write_text(json.dumps(results, indent=1))
    write_report(results, out)
    log(f"wrote {out} and {saved.name}")
    if args.smoke:
        bad = [f"{sid}/{cl}/{s}" for sid, run in results["runs"].items() for cl, by in run["by"].items()
               for s, r in by.items()
               if "error" in r or not r.get("messages") or (sid != "async-alone" and not r.get("lag_samples"))]
        if bad:
            sys.exit(f"smoke run failed: {bad}")
        print(out.read_text())


if __name__ == "__main__":
    main()
