"""Benchmark: warm start time and memory of the local control plane.

    .venv/bin/python bench/controlplane.py [--runs 3]

Starts the control plane from cached binaries `--runs` times (each in a fresh directory), reports
the time until the API is ready and the kwok nodes are Ready, then the resident memory of every
process after a Deployment of 10 replicas has rolled out.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from canaryflow.dev.kube import LocalControlPlane, find_binaries


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binaries = find_binaries()
    assert binaries is not None
    starts = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            plane = LocalControlPlane(Path(tmp), binaries=binaries, nodes=3, die_with_parent=True)
            began = time.perf_counter()
            running = plane.up(timeout=120)
            starts.append(time.perf_counter() - began)
            try:
                if run == args.runs - 1:
                    kubectl = [str(binaries / "kubectl"), "--kubeconfig", str(running.kubeconfig)]
                    subprocess.run(
                        [*kubectl, "create", "deployment", "web", "--image=nginx", "--replicas=10"],
                        check=True,
                        capture_output=True,
                    )
                    subprocess.run(
                        [*kubectl, "rollout", "status", "deployment/web", "--timeout=120s"],
                        check=True,
                        capture_output=True,
                    )
                    rss = {name: rss_mib(pid) for name, pid in running.pids.items()}
            finally:
                plane.down()
    print(
        f"warm start (API ready, 3 nodes Ready): median {statistics.median(starts):.2f} s, "
        f"min {min(starts):.2f} s, max {max(starts):.2f} s over {len(starts)} runs"
    )
    print("resident memory after a 10-replica Deployment rolled out (MiB):")
    for name, mib in rss.items():
        print(f"  {name:<24} {mib:7.1f}")
    print(f"  {'total':<24} {sum(rss.values()):7.1f}")


if __name__ == "__main__":
    main()
