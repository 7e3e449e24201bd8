#!/usr/bin/env python3
"""Many topics (issue 21): FerroMQ beside Apache RocketMQ with 1, 100, 1,000 and 10,000
topics of 8 queues. For each system and topic count, on a fresh start:

- the topics are created with UPDATE_AND_CREATE_TOPIC_LIST (1,000 per request) and the
  time until the last one is routed by the name server is taken;
- the whole topic table as a broker registers it is measured (bytes), and a stand-in
  broker registers a table of that size with the system's name server (median of 3, ms);
- 8 producers of the official Go client send 1 KiB messages synchronously, spread over all
  the topics, while up to 100 push consumer groups consume them (topic t in group t mod 100,
  so every message is consumed once): throughput, p99, broker peak RSS, broker CPU per
  message, and whether every message reached its group.

Writes bench/SCALE.md and bench/scale.json. Called by `bench/compare/run --scale`; `--smoke`
checks the harness on FerroMQ alone with 1 and 20 topics. Every server binds and every client
connects to 127.0.0.1.
"""

import argparse
import datetime
import json
import shutil
import signal
import sys
import time
from pathlib import Path

import compare as c
from compare import log

sys.path.insert(0, str(c.ROOT / "bench" / "scale"))
from remoting import Remoting, topic_list_body  # noqa: E402

TOPIC = "ScaleTopic"
QUEUES = 8
PRODUCERS = 8
GROUPS = 100
SIZE = 1024
LIST_CHUNK = 1000
FAMILIES = {"FerroMQ": c.FerroMQ, "Apache RocketMQ": c.Apache}


def topic_name(n, t):
    return TOPIC if n == 1 else f"{TOPIC}-{t:05d}"


def create_topics(system, n):
    """Creates the n topics in lists of LIST_CHUNK; returns seconds until the last is routed."""
    broker = Remoting(f"127.0.0.1:{system.broker_port}")
    ns = Remoting(system.namesrv)
    t0 = time.monotonic()
    for start in range(0, n, LIST_CHUNK):
        names = [topic_name(n, t) for t in range(start, min(n, start + LIST_CHUNK))]
        hdr, _ = broker.call(18, body=topic_list_body(names, QUEUES))
        if hdr["code"] != 0:
            raise RuntimeError(f"creating topics failed: {hdr}")
    last = topic_name(n, n - 1)
    deadline = time.monotonic() + 120
    while ns.call(105, {"topic": last})[0]["code"] != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{last} not routed within 120 s")
        time.sleep(0.01)
    seconds = time.monotonic() - t0
    broker.close()
    ns.close()
    return seconds


def registration(system):
    """The whole topic table's size as the broker registers it, and the name server's time
    to take a table of that size from a stand-in broker (median of 3)."""
    broker = Remoting(f"127.0.0.1:{system.broker_port}")
    _, table = broker.call(21)
    broker.close()
    wrapper = json.loads(table)
    ns = Remoting(system.namesrv)
    times, size = [], 0
    for k in range(3):
        wrapper["dataVersion"] = {"timestamp": int(time.time() * 1000), "counter": k + 1, "stateVersion": 0}
        body = json.dumps({"topicConfigSerializeWrapper": wrapper, "filterServerList": []}).encode()
        size = len(body)
        a = time.monotonic()
        hdr, _ = ns.call(103, {"brokerName": "scale-stand-in", "brokerAddr": "127.0.0.1:1",
                               "clusterName": "ScaleStandIn", "haServerAddr": "127.0.0.1:2", "brokerId": "0",
                               "compressed": "false"}, body)
        times.append((time.monotonic() - a) * 1000)
        if hdr["code"] != 0:
            raise RuntimeError(f"the stand-in's registration was refused: {hdr}")
    hdr, _ = ns.call(104, {"brokerName": "scale-stand-in", "brokerAddr": "127.0.0.1:1",
                           "clusterName": "ScaleStandIn", "brokerId": "0"})
    ns.close()
    return size, sorted(times)[1]


def run_one(family, n, args):
    system = family(Path(args.work))
    log(f"{system.name}: {n} topics")
    r = {}
    try:
        system.start("ASYNC_FLUSH")
        r["create_s"] = create_topics(system, n)
        r["registration_bytes"], r["registration_ms"] = registration(system)
        r["idle_rss_mb"] = c.status_kb(system.broker_pid, "VmRSS") / 1024
        make_client = c.rust_client if args.client == "rust" else c.go_client
        client = make_client("sync", producers=PRODUCERS, size=SIZE, seconds=args.seconds,
                             topics=n, groups=GROUPS, group=f"scale-{n}")
        label, argv, parse, size = client
        argv = [a if a != c.TOPIC else TOPIC for a in argv]
        r.update(c.run_load(system, (label, argv, parse, size), args.seconds))
        if not system.alive():
            raise RuntimeError("the broker died under the load")
    except Exception as e:  # reported, and the other runs go on
        log(f"  failed: {e}")
        r["error"] = str(e)[:500]
    finally:
        system.stop()
        set_aside(system.work, Path(args.work))
    log("  " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                         if k in ("create_s", "registration_bytes", "registration_ms", "msgs_per_sec", "p99_us",
                                  "peak_rss_mb", "consumed", "error")))
    return r


def set_aside(data, work):
    """Moves a finished run's data out of the next run's way; `main` deletes it at the end.
    Deleting it before the next start would slow that run: ext4 skips inodes freed in the
    last 30 s when it allocates new ones, and 10,000 topics are ~90,000 files and directories
    (the broker spent 40 % of its CPU in that scan when its predecessor's data had just gone)."""
    if data.exists():
        data.rename(work / f".done-{time.time_ns()}")


def delete_set_aside(work):
    for old in Path(work).glob(".done-*"):
        shutil.rmtree(old, ignore_errors=True)


KEPT_MARK = "<!-- measured by bench/scale; kept when the table above is regenerated -->"


def write_report(results, path):
    fmt, ms = c.fmt, lambda r, k: c.fmt(r.get(k, 0) / 1000, 2) if r.get(k) else "–"
    lines = [
        "# Many topics: FerroMQ beside Apache RocketMQ",
        "",
        f"Measured {results['date']} on {results['machine']}. `bench/compare/run --scale` "
        f"(`--seconds {results['seconds']}`); bench/compare/scale.py says what each column is.",
        "",
        f"Topics of {QUEUES} queues, created in lists of {LIST_CHUNK} (UPDATE_AND_CREATE_TOPIC_LIST). "
        f"Load: {PRODUCERS} producers of {client_label(results)}, {SIZE} B sync sends spread over all topics, "
        f"consumed meanwhile by min(topics, {GROUPS}) push consumer groups (each message once). "
        "Registration: the whole topic table as the broker registers it, and the name server's time to "
        f"take one of that size. Apache's JVMs: {c.APACHE_HEAP}.",
        "",
        "| topics | system | create s | registration KB | registration ms | idle RSS MB | msgs/s | p99 ms "
        "| peak RSS MB | CPU s / M msgs | consumed | vs 1 topic | FerroMQ ÷ Apache |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in results["topic_counts"]:
        for system in results["systems"]:
            r = results["runs"].get(system, {}).get(str(n))
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {n:,} | {system} | failed: {r['error']} |" + " |" * 10)
                continue
            base = results["runs"][system].get("1", {})
            vs1 = (f"{r['msgs_per_sec'] / base['msgs_per_sec']:.2f} ×"
                   if base.get("msgs_per_sec") and n != 1 else "")
            other = results["runs"].get("Apache RocketMQ", {}).get(str(n), {})
            ratio = (f"{r['msgs_per_sec'] / other['msgs_per_sec']:.2f} ×"
                     if system == "FerroMQ" and other.get("msgs_per_sec") else "")
            # the measured sends and the warm-up's (one per producer and topic)
            sent = r.get("messages", 0) + PRODUCERS * n
            consumed = f"{r['consumed']:,}" if "consumed" in r else "–"
            if "consumed" in r and "drain_s" in r:
                consumed += f" (drain {r['drain_s']:.1f} s)"
            lines.append(
                f"| {n:,} | {system} | {fmt(r.get('create_s'), 2)} | {fmt(r.get('registration_bytes', 0) / 1024)} | "
                f"{fmt(r.get('registration_ms'), 1)} | {fmt(r.get('idle_rss_mb'))} | {fmt(r['msgs_per_sec'])} | "
                f"{ms(r, 'p99_us')} | {fmt(r.get('peak_rss_mb'))} | {fmt(r.get('cpu_s_per_million'), 1)} | "
                f"{consumed} of {sent:,} | {vs1} | {ratio} |")
    lines += ["", "`consumed … of …`: what the groups received of everything sent, the measured sends and the "
              "warm-up's (every producer sends once to every topic first, so that route lookups fall outside "
              "the measurement).", "", f"![many topics]({outputs(path)[1].name})", ""]
    write_chart(results, outputs(path)[1])
    # Sections measured by the scripts in bench/scale are kept when the table is regenerated.
    old = Path(path).read_text() if Path(path).exists() else ""
    kept = old[old.index(KEPT_MARK):] if KEPT_MARK in old else ""
    Path(path).write_text("\n".join(lines) + ("\n" + kept if kept else ""))


def client_label(results):
    """Who made the load: the official Go client, or FerroMQ's Rust client (`--client rust`)."""
    return "FerroMQ's Rust client" if results.get("client") == "rust" else "the official Go client"


def outputs(report):
    """The JSON and chart beside a report: SCALE.md -> scale.json, scale.svg."""
    stem = Path(report).stem.lower()
    return Path(report).with_name(stem + ".json"), Path(report).with_name(stem + ".svg")


def write_chart(results, path):
    """Throughput, p99 and peak RSS per topic count, one bar per system."""
    panels = []
    for key, title, scale, text_of in (("msgs_per_sec", "messages per second", 1, c.kilo),
                                       ("p99_us", "p99 send latency (ms)", 1000, c.one_decimal),
                                       ("peak_rss_mb", "broker peak RSS (MB)", 1, lambda v: f"{v:,.0f}")):
        groups = []
        for n in results["topic_counts"]:
            vals = [(s, r[key] / scale if r.get(key) else None) for s in results["systems"]
                    for r in [results["runs"].get(s, {}).get(str(n))] if r is not None]
            groups.append((f"{n:,} topic{'s' if n != 1 else ''}", vals))
        panels.append((f"{client_label(results)}, {PRODUCERS} producers: {title}", groups, text_of))
    c.write_bars(path, results["systems"], panels, panel_h=220)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="FerroMQ,Apache RocketMQ")
    ap.add_argument("--topics", default="1,100,1000,10000", help="topic counts, comma-separated")
    ap.add_argument("--seconds", type=int, default=20, help="length of each load")
    ap.add_argument("--out", help="the report (default bench/SCALE.md; with --smoke target/compare-scale/SCALE.md)")
    ap.add_argument("--work", default=str(c.ROOT / "target" / "compare-scale"), help="data directories")
    ap.add_argument("--smoke", action="store_true", help="FerroMQ only, 1 and 20 topics, 3 s loads")
    ap.add_argument("--client", choices=["go", "rust"], default="go",
                    help="the load generator: the official Go client, or FerroMQ's Rust client (lighter on the "
                         "machine the broker shares; report bench/SCALE-rust.md)")
    ap.add_argument("--scale", action="store_true", help=argparse.SUPPRESS)  # from bench/compare/run
    ap.add_argument("--report-only", action="store_true", help="rewrite the report and chart from scale.json")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    if args.smoke:
        args.systems, args.topics, args.seconds = "FerroMQ", "1,20", 3
    report_name = "SCALE-rust.md" if args.client == "rust" else "SCALE.md"
    out = Path(args.out or (Path(args.work) / report_name if args.smoke else c.ROOT / "bench" / report_name))
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        write_report(json.loads(outputs(out)[0].read_text()), out)
        log(f"wrote {out}")
        return
    counts = [int(t) for t in args.topics.split(",")]
    results = {"date": datetime.date.today().isoformat(), "machine": c.machine(), "seconds": args.seconds,
               "topic_counts": counts, "systems": [], "runs": {}, "client": args.client}
    for name in [s.strip() for s in args.systems.split(",") if s.strip()]:
        if name not in FAMILIES:
            sys.exit(f"unknown system {name!r}; known: {', '.join(FAMILIES)}")
        results["systems"].append(name)
        for n in counts:
            results["runs"].setdefault(name, {})[str(n)] = run_one(FAMILIES[name], n, args)
            outputs(out)[0].write_text(json.dumps(results, indent=1))
    delete_set_aside(args.work)
    write_report(results, out)
    log(f"wrote {out}")
    if args.smoke:
        bad = [f"{s}/{n}" for s, runs in results["runs"].items() for n, r in runs.items()
               if "error" in r or not r.get("messages")
               or r.get("consumed", 0) < r["messages"] + PRODUCERS * int(n)]
        if bad:
            sys.exit(f"smoke run failed: {bad}")
        print(out.read_text())


if __name__ == "__main__":
    main()
