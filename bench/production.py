"""Scale benchmark of the production-shaped stack: pushes for many targets through the receiver to
finished rollouts on Prefect server with PostgreSQL, two process workers, the local control plane
and Prometheus (`tests.fixtures.production`; nothing in it is a fake but the pods, which kwok
makes Ready without running containers, and their traffic, which is simulated).

    .venv/bin/python bench/production.py [--targets 50] [--workers 2]

Measures:

- **starts per second**: signed pushes sent one after the other, from the first push until the
  receiver's dispatcher has created every flow run on the real Prefect API (the workers start
  only then, so that this measures the receiver and Prefect); and the receiver's reply latency
  (p50, p99);
- **rollouts per hour**: targets divided by the time from the workers' start until every rollout
  run has ended (with the stack's spec: one analysis of at least 3 intervals of 10 s);
- **memory per running rollout**: the resident set size of each flow-run process (the workers'
  children), sampled every 2 s while it runs: median and maximum of each process' peak; and the
  workers' own;
- **API requests per rollout**: the Kubernetes API server's ``apiserver_request_total`` over the
  run, divided by the targets, by verb and resource; the traffic simulator's pod lists (one per
  second, not part of a rollout) are left out.

Prints a Markdown section. Needs the local control plane (``tools/kube/build.sh``), Debian's
``prometheus`` and ``postgresql``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canaryflow.dev.kube import LocalControlPlane, find_binaries
from canaryflow.dev.localprometheus import LocalPrometheus
from tests.fixtures.production import ProductionStack, production_stack

_FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def _api_requests(kubeconfig: Path) -> Counter[tuple[str, str]]:
    """``apiserver_request_total`` by (verb, resource), summed over codes and scopes."""
    from kubernetes import config

    api = config.new_client_from_config(str(kubeconfig))
    try:
        method, url, headers, body, _ = api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
        response = api.call_api(method, url, header_params=headers, body=body)
        response.read()
        text = response.data.decode()
    finally:
        api.close()
    counts: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        resource = labels.get("resource", "") + (
            f"/{labels['subresource']}" if labels.get("subresource") else ""
        )
        counts[(labels.get("verb", ""), resource)] += int(float(match["value"]))
    return counts


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _is_flow_run(pid: int) -> bool:
    try:
        return b"prefect.engine" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class _MemorySampler(threading.Thread):
    """Peak RSS of every flow-run process (``prefect.engine`` under a worker) and of the workers,
    every 2 s."""

    def __init__(self, stack: ProductionStack) -> None:
        super().__init__(daemon=True)
        self._workers = [w.pid for w in stack.workers]
        self.runs: dict[int, float] = {}
        self.workers: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(2.0):
            for worker in self._workers:
                if (rss := _rss_mib(worker)) is not None:
                    self.workers[worker] = max(self.workers.get(worker, 0.0), rss)
                for child in _descendants(worker):
                    if _is_flow_run(child) and (rss := _rss_mib(child)) is not None:
                        self.runs[child] = max(self.runs.get(child, 0.0), rss)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(targets: int, workers: int) -> str:
    binaries = find_binaries(required=True)
    with tempfile.TemporaryDirectory(prefix="canaryflow-bench-production-") as directory:
        root = Path(directory)
        plane = LocalControlPlane(root / "kube", binaries=binaries, nodes=3, die_with_parent=True)
        running = plane.up(timeout=180)
        try:
            with (
                LocalPrometheus.start() as prometheus,
                production_stack(
                    running.kubeconfig,
                    prometheus,
                    root / "stack",
                    targets=targets,
                    workers=workers,
                    workers_at_start=False,
                ) as stack,
            ):
                # Phase 1: pushes through the receiver until every flow run exists (no worker yet).
                latencies = []
                images = set()
                started = time.monotonic()
                for number, target in enumerate(stack.targets):
                    sha = f"{number:04d}" + "cd" * 18
                    sent = time.monotonic()
                    reply = stack.push(target.deployment, sha=sha)
                    latencies.append(time.monotonic() - sent)
                    assert reply.status_code == 202, reply.text
                    images.add(stack.image(target.deployment, sha))

                def ours() -> list[dict[str, Any]]:
                    runs = stack.flow_runs()
                    return [r for r in runs if r["parameters"].get("request", {}).get("image") in images]

                while len(ours()) < targets:
                    time.sleep(0.2)
                all_created = time.monotonic() - started
                # Phase 2: the workers run them all.
                before = _api_requests(running.kubeconfig)
                started = time.monotonic()
                stack.start_workers()
                sampler = _MemorySampler(stack)
                sampler.start()
                runs = ours()
                while not all(r["state_type"] in _FINAL for r in runs):
                    time.sleep(1.0)
                    runs = ours()
                all_ended = time.monotonic() - started
                sampler.done.set()
                sampler.join()
                after = _api_requests(running.kubeconfig)
        finally:
            plane.down()

    delta = after - before
    delta.pop(("LIST", "pods"), None)
    per_rollout = {key: value / targets for key, value in delta.items() if value}
    states = Counter(r["state_name"] for r in runs)
    run_rss = list(sampler.runs.values())
    lines = [
        f"### Production-shaped stack: {targets} targets, {workers} process workers",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        "Prefect server on PostgreSQL, receiver, workers, local control plane (kwok nodes) and "
        "Prometheus on this one machine. Command: "
        f"`.venv/bin/python bench/production.py --targets {targets} --workers {workers}`.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| pushes sent (one after the other) | {targets}, reply p50 "
        f"{_percentile(latencies, 0.5) * 1000:.0f} ms, p99 {_percentile(latencies, 0.99) * 1000:.0f} ms |",
        f"| starts per second (first push to every flow run created; no worker running) | "
        f"{targets / all_created:.2f} |",
        f"| every rollout ended after (from the workers' start) | {all_ended:.0f} s |",
        f"| rollouts per hour at this concurrency | {targets / all_ended * 3600:.0f} |",
        f"| outcomes | {', '.join(f'{k} {v}' for k, v in sorted(states.items()))} |",
        "| memory per running rollout (peak RSS of a flow-run process) | "
        f"median {statistics.median(run_rss):.0f} MiB, max {max(run_rss):.0f} MiB ({len(run_rss)} runs) |"
        if run_rss
        else "| memory per running rollout | n/a |",
        f"| worker process (peak RSS) | {', '.join(f'{v:.0f} MiB' for v in sampler.workers.values())} |",
        f"| API-server requests per rollout | {sum(per_rollout.values()):.0f} |",
        "",
        "| verb | resource | requests per rollout |",
        "| --- | --- | --- |",
    ]
    for (verb, resource), value in sorted(per_rollout.items(), key=lambda kv: -kv[1]):
        if value >= 0.5:
            lines.append(f"| {verb} | {resource} | {value:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(run(args.targets, args.workers))


if __name__ == "__main__":
    main()
