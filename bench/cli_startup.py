"""Benchmark: how fast the `canaryflow` command starts (interpreter start included).

    .venv/bin/python bench/cli_startup.py [--runs 15]

Runs each command `--runs` times as a fresh process and reports the median and the maximum wall
time. Commands that do real work are measured by their own benchmarks.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [["version"], ["--help"], ["replay", "--help"], ["dev", "kube", "--help"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("canaryflow", path=str(Path(sys.executable).parent)) or "canaryflow"
    for command in COMMANDS:
        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            subprocess.run([exe, *command], check=True, capture_output=True)
            times.append(time.perf_counter() - began)
        label = "canaryflow " + " ".join(command)
        print(
            f"{label:<32} median {statistics.median(times) * 1000:6.0f} ms   max {max(times) * 1000:6.0f} ms"
        )


if __name__ == "__main__":
    main()
