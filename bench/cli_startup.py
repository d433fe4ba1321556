"""Benchmark: how fast the `canaryflow` command answers (interpreter start included).

    .venv/bin/python bench/cli_startup.py [--runs 15] [--kubeconfig PATH]

Runs each command `--runs` times as a fresh process and reports the median and the maximum wall
time. ``status`` reads a reports directory of 20 rollouts written here (2 of them under way);
without ``--kubeconfig`` no cluster is configured, so it reads the reports alone; with it, it also
reads the two rollouts under way from that cluster (the targets need not exist: a missing one is
reported, not raised). Commands that do real work are measured by their own benchmarks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from canaryflow.reports import write_status
from canaryflow.status import RolloutPhase, RolloutStatus

COMMANDS = [
    ["version"],
    ["--help"],
    ["rollout", "--help"],
    ["replay", "--help"],
    ["status"],
    ["status", "--json"],
    ["status", "web-07"],
]


def _reports(directory: Path) -> None:
    now = datetime.now(UTC)
    for i in range(20):
        phase = RolloutPhase.PROGRESSING if i < 2 else RolloutPhase.PROMOTED
        status = RolloutStatus(
            rollout_id=f"web-{i:02d}",
            target=f"shop-{i % 4}/web",
            container="web",
            service="web",
            image=f"registry.example.com/shop/web:1.{i}.0",
            spec="config/rollouts/web.yaml",
            triggered_by="bench",
            steps=5,
            step=2 if i < 2 else 5,
            phase=phase,
            weight=10,
            effective_weight=10.0,
            result=None if i < 2 else "promoted",
            reason=None if i < 2 else "analysis at step 2: every metric is within its tolerance",
            updated_at=now - timedelta(minutes=i),
        )
        write_status(directory / status.rollout_id, status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--kubeconfig", default=None)
    args = parser.parse_args()
    exe = shutil.which("canaryflow", path=str(Path(sys.executable).parent)) or "canaryflow"
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        _reports(home / "reports")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARYFLOW_", "KUBECONFIG"))}
        env.update({"HOME": str(home), "CANARYFLOW_REPORTS_DIR": str(home / "reports"), "COLUMNS": "120"})
        if args.kubeconfig:
            env["KUBECONFIG"] = args.kubeconfig
        for command in COMMANDS:
            times = []
            for _ in range(args.runs):
                began = time.perf_counter()
                subprocess.run([exe, *command], check=True, capture_output=True, env=env)
                times.append(time.perf_counter() - began)
            label = "canaryflow " + " ".join(command)
            median, worst = statistics.median(times) * 1000, max(times) * 1000
            print(f"{label:<32} median {median:6.0f} ms   max {worst:6.0f} ms")


if __name__ == "__main__":
    main()
