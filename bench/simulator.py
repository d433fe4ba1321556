"""Traffic simulator benchmark: simulated requests per second per core, and the cost of a scrape.

    .venv/bin/python bench/simulator.py [--seconds 600] [--repeat 3]

Runs the simulator on a manual clock (faster than real time), single-threaded, and divides the
requests it drew by the CPU time of the process (`time.process_time`), so the figure is per core.
Scenarios vary pods, rate per pod and step length (the demo's real-time driver steps every 0.1 s).
The scrape scenario renders ``/metrics`` (prometheus_client text format, 158 buckets per pod) for
the given pods without HTTP. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest

from canaryflow.clock import ManualClock
from canaryflow.cluster.port import PodInfo
from canaryflow.simulation import (
    AppRef,
    BehaviourProfile,
    SimulatorCollector,
    TrafficSimulator,
)


@dataclass(frozen=True)
class Scenario:
    pods: int
    rate_per_pod: float
    step: float


class Pods:
    def __init__(self, count: int) -> None:
        tracks = ["stable"] * (count - 2) + ["baseline", "canary"]
        self._pods = [
            PodInfo(f"web-{i}", track, "web:v2" if track == "canary" else "web:v1", True)  # type: ignore[arg-type]
            for i, track in enumerate(tracks)
        ]

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        return list(self._pods)


def simulator(scenario: Scenario) -> tuple[ManualClock, TrafficSimulator]:
    clock = ManualClock()
    sim = TrafficSimulator(
        Pods(scenario.pods),
        [AppRef("shop", "web")],
        clock=clock,
        seed=1,
        rate_per_pod=scenario.rate_per_pod,
        profiles={
            "web:v2": BehaviourProfile(error_rate=0.02, overdispersion=0.01, tail_fraction=0.01, tail_delay=1)
        },
        max_step=scenario.step,
    )
    return clock, sim


def run(scenario: Scenario, seconds: float) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and simulated requests for `seconds` of simulated time."""
    clock, sim = simulator(scenario)
    cpu, wall = time.process_time(), time.perf_counter()
    clock.advance(seconds)
    sim.sync()
    return time.process_time() - cpu, time.perf_counter() - wall, sim.simulated_requests


def scrape_cost(pods: int, repeat: int) -> tuple[float, int]:
    clock, sim = simulator(Scenario(pods, 100.0, 1.0))
    clock.advance(10.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SimulatorCollector(sim))
    size = len(generate_latest(registry))
    begun = time.perf_counter()
    for _ in range(repeat):
        generate_latest(registry)
    return (time.perf_counter() - begun) / repeat, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="simulated seconds per scenario")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (best is reported)")
    args = parser.parse_args()
    scenarios = [
        Scenario(10, 100.0, 1.0),
        Scenario(10, 1000.0, 1.0),
        Scenario(100, 100.0, 1.0),
        Scenario(10, 100.0, 0.1),
    ]
    print("## Traffic simulator\n")
    print(
        f"`python bench/simulator.py --seconds {args.seconds:g} --repeat {args.repeat}`; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at the start.\n"
    )
    print("| pods | requests/s per pod | step | simulated s per CPU s | simulated requests/s per core |")
    print("|---:|---:|---:|---:|---:|")
    for sc in scenarios:
        best = min((run(sc, args.seconds) for _ in range(args.repeat)), key=lambda r: r[0])
        cpu, _, requests = best
        print(
            f"| {sc.pods} | {sc.rate_per_pod:g} | {sc.step:g} s "
            f"| {args.seconds / cpu:,.0f} | {requests / cpu:,.0f} |"
        )
    print("\n| pods | /metrics size | render time per scrape |")
    print("|---:|---:|---:|")
    for pods in (10, 100):
        seconds, size = scrape_cost(pods, 20)
        print(f"| {pods} | {size / 1024:,.0f} KiB | {seconds * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
