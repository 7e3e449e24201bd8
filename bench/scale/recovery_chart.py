#!/usr/bin/env python3
"""The chart of bench/scale/recovery-20gib.json (FerroMQ beside Apache RocketMQ restarting with
a 20 GiB log): seconds until the first send and pull are served after SIGKILL and after a clean
stop, and the broker's RSS before the kill. Writes bench/scale/recovery-20gib.svg.

    python3 bench/scale/recovery_chart.py
"""
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "compare"))
import compare as c  # noqa: E402

NAMES = {"ferromq": "FerroMQ", "apache": "Apache RocketMQ"}


def leading_number(value):
    """`80 (49 anonymous + 32 file)` -> 80.0; numbers pass through."""
    if isinstance(value, (int, float)):
        return float(value)
    m = re.match(r"\s*([\d.]+)", str(value))
    return float(m.group(1)) if m else None


def main():
    source = HERE / "recovery-20gib.json"
    data = json.loads(source.read_text())
    runs = {NAMES[r["system"]]: r for r in data["runs"]}
    systems = [s for s in ("Apache RocketMQ", "FerroMQ") if s in runs]
    queues = next(iter(runs.values()))["queues"]
    panels = []
    for title, keys, text_of in (
            ("seconds until served after SIGKILL", ("after_sigkill_send_s", "after_sigkill_pull_s"),
             lambda v: f"{v:.2f}"),
            ("seconds until served after a clean stop", ("after_clean_stop_send_s", "after_clean_stop_pull_s"),
             lambda v: f"{v:.2f}"),
            ("broker RSS before the kill (MB)", ("rss_before_kill_mb",), lambda v: f"{v:,.0f}")):
        groups = []
        for key in keys:
            label = "first pull" if key.endswith("pull_s") else "first send" if key.endswith("send_s") else "RSS"
            groups.append((label, [(s, leading_number(runs[s].get(key))) for s in systems]))
        panels.append((f"{queues:,} queues, 20 GiB log: {title}", groups, text_of))
    out = HERE / "recovery-20gib.svg"
    c.write_bars(out, systems, panels, panel_h=200)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
