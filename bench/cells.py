"""Benchmark of ``canaryflow demo --cells N``: its time, where a release's time goes, and memory.

Runs the demo as a new user would (a fresh Prefect home, state and reports directory), samples the
resident memory of its processes every 2 s by kind (the control planes, Prometheus, the Prefect
server, the workers and their flow runs, the demo's own process), then reads the flow runs from
the Prefect server's database (SQLite, kept in the state directory) and the releases' reports:

- each release's time from its start to its end (``release.json``);
- each wave's rollouts: from the first cell run's scheduled start to the last one's end, and how
  long a run waited for its worker (scheduled to running: polling and the process start);
- each bake (the first wave's last run's end to the second wave's first scheduled start);
- the overhead beyond the rollouts and bakes: what is left of the release's time.

Usage: ``.venv/bin/python bench/cells.py [--cells 3]`` (needs ``make kube-build`` and Prometheus).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

KINDS = {
    "control planes": ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "/etcd ", "/kwok "),
    "prometheus": ("/prometheus ",),
    "prefect server": ("prefect server start",),
    "workers": ("prefect worker start",),
    "flow runs": ("prefect.engine", "flow_engine"),
    "demo process": ("canaryflow demo --cells",),
}


def _memory() -> dict[str, float]:
    """Resident MiB by kind, now."""
    out = subprocess.run(["ps", "-eo", "rss=,args="], capture_output=True, text=True, check=True).stdout
    totals: dict[str, float] = defaultdict(float)
    for line in out.splitlines():
        rss, _, args = line.strip().partition(" ")
        for kind, needles in KINDS.items():
            if any(needle in f"{args} " for needle in needles):
                totals[kind] += int(rss) / 1024
                break
    return totals


def _at(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cells-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CANARYFLOW_"))}
    env.update(
        PREFECT_HOME=str(root / "prefect-home"),
        CANARYFLOW_STATE_DIR=str(root / "state"),
        CANARYFLOW_REPORTS_DIR=str(root / "reports"),
        COLUMNS="200",
    )
    peak: dict[str, float] = defaultdict(float)
    peak_total = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_total
        while not done.wait(2.0):
            now = _memory()
            peak_total = max(peak_total, sum(now.values()))
            for kind, mib in now.items():
                peak[kind] = max(peak[kind], mib)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    demo = subprocess.run(
        [sys.executable, "-m", "canaryflow", "demo", "--cells", str(args.cells)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    print(f"demo --cells {args.cells}: exit {demo.returncode} in {seconds:.0f} s")
    if demo.returncode != 0:
        print(demo.stdout[-3000:], demo.stderr[-3000:])
    print("peak resident memory (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
    print(f"peak of the sum: {peak_total:.0f} MiB")
    _timings(root)


def _timings(root: Path) -> None:
    database = sqlite3.connect(root / "state" / "prefect" / "prefect.db")
    rows = database.execute(
        "select tags, expected_start_time, start_time, end_time from flow_run"
        " where tags like '%canaryflow-release:%'"
    ).fetchall()
    runs: dict[str, list[tuple[str, str, datetime, datetime, datetime]]] = defaultdict(list)
    for tags, expected, start, end in rows:
        labels = dict(tag.split(":", 1) for tag in json.loads(tags) if tag.startswith("canaryflow-"))
        runs[labels["canaryflow-release"]].append(
            (labels["canaryflow-cell"], labels["canaryflow-kind"], _at(expected), _at(start), _at(end))
        )
    for path in sorted((root / "reports" / "releases").glob("*/release.json")):
        report = json.loads(path.read_text())
        release = report["release_id"]
        began, ended = _at(report["started_at"]), _at(report["updated_at"])
        total = (ended - began).total_seconds()
        print(f"release {release} {report['image']}: {report['outcome']} in {total:.0f} s")
        busy = 0.0
        previous_end: datetime | None = None
        for index, wave in enumerate(report["waves"]):
            mine = [r for r in runs[release] if r[0] in wave and r[1] == "rollout"]
            if not mine:
                continue
            first, last = min(r[2] for r in mine), max(r[4] for r in mine)
            waits = [(r[3] - r[2]).total_seconds() for r in mine]
            span = (last - first).total_seconds()
            busy += span
            bake = (first - previous_end).total_seconds() if previous_end is not None else None
            if bake is not None:
                busy += bake
            said = f", bake before it {bake:.0f} s" if bake is not None else ""
            print(
                f"  wave {index + 1}: rollouts {span:.0f} s, "
                f"waiting for a worker {max(waits):.1f} s at most{said}"
            )
            previous_end = last
        undos = [r for r in runs[release] if r[1] == "undo"]
        if undos:
            first, last = min(r[2] for r in undos), max(r[4] for r in undos)
            busy += (last - first).total_seconds()
            print(f"  undos: {(last - first).total_seconds():.0f} s")
        print(f"  overhead beyond the rollouts, bakes and undos: {total - busy:.0f} s")


if __name__ == "__main__":
    main()
