#!/usr/bin/env python3
"""Checks deploy/grafana/ferromq-dashboard.json against real series: starts `ferromq
standalone` (SYNC_FLUSH) under a producer and a consumer, has a real Prometheus (Debian's)
scrape its /metrics every second, then runs every panel query and template query through
Prometheus' HTTP API. Each must be accepted, and return data unless it only reads a series
that appears on an event this load does not cause (dead letters, transactions, slaves).
Every metric a query names must also be in the broker's own exposition.

    deploy/grafana/check.py            (FERROMQ_BIN, default target/debug/ferromq)

No Grafana package can be had here (Debian has none, registries are out of reach), so the
queries are checked where Grafana would send them: to Prometheus.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "ferromq-dashboard.json")
BIN = os.environ.get("FERROMQ_BIN", os.path.join(ROOT, "target", "debug", "ferromq"))
# Series that exist once their event happened (and not before, as Apache's).
EVENT_SERIES = {
    "rocketmq_send_to_dlq_messages_total",
    "rocketmq_half_messages",
    "rocketmq_commit_messages_total",
    "rocketmq_rollback_messages_total",
    "ferromq_replica_lag_bytes",
}
SCRAPE_SECONDS = 15


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read().decode()


def wait_for(what, check, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"FAILED: {what} within {seconds} s")


def main():
    prometheus = shutil.which("prometheus")
    if not prometheus:
        sys.exit("FAILED: prometheus is not installed (Debian: apt-get install prometheus)")
    dashboard = json.load(open(DASHBOARD))
    work = tempfile.mkdtemp(prefix="ferromq-grafana-")
    procs = []
    try:
        ns, broker, http = free_port(), free_port(), free_port()
        conf = os.path.join(work, "broker.conf")
        with open(conf, "w") as f:
            f.write("flushDiskType=SYNC_FLUSH\n")
        server = subprocess.Popen(
            [BIN, "standalone", "-c", conf, "--data-dir", os.path.join(work, "data"),
             "--namesrv-listen", f"127.0.0.1:{ns}", "--broker-listen", f"127.0.0.1:{broker}",
             "--dashboard-listen", f"127.0.0.1:{http}", "--no-grpc", "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "ferromq.log"), "w"))
        procs.append(server)
        wait_for("ferromq answering /metrics",
                 lambda: "rocketmq_broker_permission" in get(f"http://127.0.0.1:{http}/metrics"))
        namesrv = f"127.0.0.1:{ns}"
        load = SCRAPE_SECONDS + 15
        procs.append(subprocess.Popen(
            [BIN, "bench", "produce", "-n", namesrv, "--topic", "GrafanaCheck", "--producers", "4",
             "--rate", "400", "--seconds", str(load), "--size", "512", "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [BIN, "bench", "consume", "-n", namesrv, "--topic", "GrafanaCheck", "--group",
             "grafana-check", "--messages", "100000000", "--seconds", str(load), "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        prom_port = free_port()
        prom_conf = os.path.join(work, "prometheus.yml")
        with open(prom_conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: ferromq\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{http}']\n")
        procs.append(subprocess.Popen(
            [prometheus, f"--config.file={prom_conf}", f"--storage.tsdb.path={work}/tsdb",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w")))
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        wait_for("Prometheus scraping ferromq",
                 lambda: any(t["health"] == "up" for t in
                             json.loads(get(f"{api}/targets"))["data"]["activeTargets"]))
        time.sleep(SCRAPE_SECONDS)

        exposition = get(f"http://127.0.0.1:{http}/metrics")
        exposed = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines()
                   if line and not line.startswith("#")}

        failures = []
        checked = 0
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.match(r"label_values\((.*),\s*(\w+)\)$", var["definition"])
            selector = m.group(1).replace("$cluster", ".*")
            values = json.loads(get(f"{api}/label/{m.group(2)}/values?" +
                                    urllib.parse.urlencode({"match[]": selector})))["data"]
            checked += 1
            if not values:
                failures.append(f"variable {var['name']}: {var['definition']} gives no values")
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$cluster", ".*").replace("$broker", ".*")
                names = set(re.findall(r"\b((?:rocketmq|ferromq)_\w+)", expr))
                base = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
                missing = {n for n in names if n not in exposed and not any(
                    e.startswith(b) for b in base for e in exposed)} - EVENT_SERIES
                if missing:
                    failures.append(f"{panel['title']}: {sorted(missing)} not in the exposition")
                answer = json.loads(get(f"{api}/query?" + urllib.parse.urlencode({"query": expr})))
                checked += 1
                if answer.get("status") != "success":
                    failures.append(f"{panel['title']}: Prometheus refused {expr}: {answer}")
                    continue
                result = answer["data"]["result"]
                has_data = any(r["value"][1] not in ("NaN", "0") for r in result) or (
                    result and not expr.startswith(("histogram_quantile", "sum(rate")))
                if not has_data and not (names & EVENT_SERIES):
                    failures.append(f"{panel['title']}: no data for {expr}: {result}")
        if failures:
            print("\n".join(failures))
            sys.exit(f"FAILED: {len(failures)} of {checked} dashboard queries")
        print(f"all {checked} dashboard queries accepted by Prometheus "
              f"{json.loads(get(f'{api}/status/buildinfo'))['data']['version']}, "
              f"each with data unless it reads an event series ({', '.join(sorted(EVENT_SERIES))})")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
