"""Benchmark: what the controller and Prefect cost per step, per task, and for 20 rollouts at once.

    .venv/bin/python bench/flows.py [--runs 5] [--tasks 200] [--concurrent 20]

Everything runs on simulated stacks with manual clocks, so no wait takes real time: what is left is
the controller's own work (cluster reads and writes, the polling loop while pods start, metric
queries, the judge, report files) and Prefect's (task and flow runs, API calls for variables, the
slot and artifacts). Prefect runs against a temporary server (`prefect_test_harness`, a separate
process; its CPU is not in this process's figures, its memory not in the RSS).

1. Controller overhead per step: the demo spec (setWeight 20, analyze, setWeight 50, analyze,
   promote) with the good image, `--runs` times. "Direct" does the step's work with plain calls
   (no Prefect); "flow" is the rollout flow itself, timed around its step functions.
2. Prefect overhead per task: a trivial task run `--tasks` times inside one flow, against the same
   function called directly; and an empty flow run.
3. `--concurrent` rollouts of different targets in one process, one thread each (each target its
   own simulated stack and manual clock): wall time and peak RSS (``VmRSS`` sampled every 20 ms);
   then as many rollouts one after the other, for comparison.

Prints a Markdown section (medians over the runs).
"""

from __future__ import annotations

import argparse
import contextvars
import dataclasses
import functools
import importlib
import itertools
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from analysis.judge import SequentialJudge
from canaryflow.clock import ManualClock
from canaryflow.cluster.port import TargetRef
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.dev.stacks import DEMO_SPEC, GOOD_IMAGE, PROFILES, STABLE_IMAGE
from canaryflow.metrics import MetricsSource, ObservationRecorder, create_metrics_source, observe_interval
from canaryflow.replicas import plan_split
from canaryflow.requests import RolloutRequest
from canaryflow.simulation import AppRef, TrafficSimulator

# Run as a script, this file's directory comes first on sys.path, and this file's name would hide
# the `flows` package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

SPEC = DEMO_SPEC.read_text()


class Stack:
    """One target ``shop/<name>`` (10 stable replicas) with its traffic, on its own manual clock."""

    def __init__(self, name: str, directory: Path) -> None:
        self.clock = ManualClock()
        self.target = TargetRef(namespace="shop", deployment=name, container=name, service=name)
        world = SimulatedWorld(clock=self.clock, pod_ready_delay=1.0)
        world.add_deployment(
            "shop", name, image=STABLE_IMAGE, replicas=10, labels={"app": name, "track": "stable"}
        )
        world.add_service("shop", name, {"app": name})
        self.cluster = SimulatedCluster(world, poll_interval=0.25)
        simulator = TrafficSimulator(
            self.cluster,
            [AppRef("shop", name)],
            clock=self.clock,
            seed=7,
            rate_per_pod=1000.0,  # the demo's rate: a good canary is shown within tolerance in a minute
            profiles=PROFILES,
            default_profile=PROFILES[STABLE_IMAGE],
        )
        self.metrics: MetricsSource = create_metrics_source("simulated", simulator=simulator)
        self.clock.advance(60.0)  # the target has served for a minute: the preflight sees its traffic
        self.spec = directory / f"{name}.yaml"
        text = SPEC.replace(
            "{namespace: shop, deployment: web, container: web, service: web}",
            f"{{namespace: shop, deployment: {name}, container: {name}, service: {name}}}",
        )
        assert text != SPEC, "the demo spec's target line changed; update this benchmark"
        self.spec.write_text(text)
        self.reports = directory / "reports"

    def runtime(self) -> Any:
        from flows.runtime import Runtime

        return Runtime(
            cluster=self.cluster,
            metrics=self.metrics,
            clock=self.clock,
            reports_dir=self.reports,
            retry_delays=(0.0,),
            slot_lease_seconds=60.0,
        )


# -- 1. per step ------------------------------------------------------------------------------------


def direct_rollout(stack: Stack, times: dict[str, list[float]]) -> None:
    """The demo rollout's work with plain calls: no Prefect, no reports (the judge's log is written)."""
    from canaryflow.plan import plan_rollout

    plan = plan_rollout(RolloutRequest(spec=str(stack.spec), image=GOOD_IMAGE))
    deadline = plan.spec.spec.progress_deadline
    queries = plan.queries()
    for index, step in enumerate(plan.spec.steps):
        if step.set_weight is not None:
            began = time.perf_counter()
            status = stack.cluster.read(plan.target)
            split = plan_split(status.capacity, step.set_weight, baseline=plan.spec.spec.baseline)
            stack.cluster.apply_split(
                plan.target, split, rollout_id=plan.rollout_id, image=plan.image, step=index,
                progress_deadline=deadline,
            )  # fmt: skip
            times["setWeight"].append(time.perf_counter() - began)
        elif step.analyze is not None:
            analyze = plan.analyze_step(index)
            interval = analyze.interval.total_seconds()
            units = {q.name: q.unit for q in queries if q.unit}
            judge = SequentialJudge(
                plan.spec.analysis_settings(analyze), interval_seconds=interval, units=units
            )
            recorder = ObservationRecorder(queries, interval_seconds=interval)
            log = stack.reports / f"direct-step{index}.json"
            for _ in range(round(analyze.max_duration.total_seconds() / interval)):
                began = time.perf_counter()
                stack.clock.sleep(interval)
                observed = observe_interval(
                    stack.metrics, queries, namespace="shop", app=plan.target.app, end=stack.clock.now(),
                    window=analyze.interval,
                )  # fmt: skip
                recorder.record(observed)
                recorder.write(log)
                verdict = judge.update(observed)
                times["analyze interval"].append(time.perf_counter() - began)
                if verdict.final:
                    break
            assert verdict.decision == "promote", verdict.reason
    began = time.perf_counter()
    stack.cluster.promote(plan.target, rollout_id=plan.rollout_id, progress_deadline=deadline)
    times["promote"].append(time.perf_counter() - began)


@contextmanager
def timed_flow_steps(times: dict[str, list[float]]) -> Iterator[None]:
    """Time the rollout flow's step functions (module globals of `flows.rollout`) and its intervals."""
    judging = importlib.import_module("flows.judging")
    rollout = importlib.import_module("flows.rollout")  # `flows.rollout` is also the flow's name

    def timer(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                times[label].append(time.perf_counter() - began)

        return timed

    patched = [
        (rollout, "apply_weight", "setWeight"),
        (rollout, "promote", "promote"),
        (rollout, "analysis", "analyze step"),
        (judging, "_judge", "judge"),
    ]
    originals = [(module, name, getattr(module, name)) for module, name, _ in patched]
    for module, name, label in patched:
        setattr(module, name, timer(label, getattr(module, name)))
    try:
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


def flow_rollout(stack: Stack, times: dict[str, list[float]]) -> None:
    from flows.rollout import rollout
    from flows.runtime import use_runtime

    def on_event(rollout_id: str, event: str, details: Any) -> None:
        if event == "verdict":
            verdicts.append((int(details["interval"]), time.perf_counter()))

    verdicts: list[tuple[int, float]] = []
    runtime = dataclasses.replace(stack.runtime(), events=on_event)
    began = time.perf_counter()
    with use_runtime(runtime), timed_flow_steps(times):
        outcome = rollout(RolloutRequest(spec=str(stack.spec), image=GOOD_IMAGE))
    times["whole rollout"].append(time.perf_counter() - began)
    # An analysis interval in the flow: from one verdict to the next of the same step.
    times["analyze interval"] += [b - a for (n, a), (m, b) in itertools.pairwise(verdicts) if m == n + 1]
    times["intervals per rollout"].append(float(len(verdicts)))
    assert outcome.result == "promoted", outcome.reason  # type: ignore[union-attr]


def per_step(runs: int, directory: Path) -> dict[str, dict[str, float]]:
    direct: dict[str, list[float]] = defaultdict(list)
    in_flow: dict[str, list[float]] = defaultdict(list)
    for run in range(runs):
        direct_rollout(Stack(f"direct-{run}", directory), direct)
        stack = Stack(f"flow-{run}", directory)
        times: dict[str, list[float]] = defaultdict(list)
        flow_rollout(stack, times)
        for label, values in times.items():
            in_flow[label] += values
    return {
        "direct": {k: statistics.median(v) for k, v in direct.items()},
        "flow": {k: statistics.median(v) for k, v in in_flow.items()},
    }


# -- 2. per task ------------------------------------------------------------------------------------


def per_task(count: int) -> dict[str, float]:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    def add(x: int) -> int:
        return x + 1

    add_task = task(name="add", cache_policy=NO_CACHE, persist_result=False)(add)

    @flow(name="bench-tasks", persist_result=False)
    def many(n: int) -> int:
        total = 0
        for _ in range(n):
            total = add_task(total)
        return total

    @flow(name="bench-empty", persist_result=False)
    def empty() -> int:
        return 0

    began = time.perf_counter()
    total = 0
    for _ in range(count):
        total = add(total)
    plain = (time.perf_counter() - began) / count
    many(5)  # warm up: flow and task registration
    began = time.perf_counter()
    assert many(count) == count
    in_flow = time.perf_counter() - began
    empties = []
    for _ in range(5):
        began = time.perf_counter()
        empty()
        empties.append(time.perf_counter() - began)
    flow_alone = statistics.median(empties)
    return {
        "plain": plain,
        "task": (in_flow - flow_alone) / count,
        "empty flow": flow_alone,
        "flow with tasks": in_flow,
    }


# -- 3. concurrent rollouts -----------------------------------------------------------------------


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def concurrent(count: int, directory: Path) -> dict[str, float]:
    from flows.rollout import rollout
    from flows.runtime import use_runtime

    stacks = [Stack(f"web-{index:02d}", directory) for index in range(count)]
    results: list[Any] = [None] * count
    peak = [rss_kib()]
    before = peak[0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_kib())

    def one(index: int) -> None:
        stack = stacks[index]
        with use_runtime(stack.runtime()):
            results[index] = rollout(
                RolloutRequest(spec=str(stack.spec), image=GOOD_IMAGE), return_state=True
            )

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(one, index)) for index in range(count)
    ]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    done.set()
    sampler.join()
    promoted = sum(1 for state in results if state is not None and state.result().result == "promoted")
    # The same number of rollouts one after the other, for comparison (fresh targets).
    began = time.perf_counter()
    for index in range(count):
        stack = Stack(f"seq-{index:02d}", directory)
        with use_runtime(stack.runtime()):
            rollout(RolloutRequest(spec=str(stack.spec), image=GOOD_IMAGE))
    sequential = time.perf_counter() - began
    return {
        "rollouts": count,
        "promoted": promoted,
        "wall": wall,
        "sequential": sequential,
        "rss before": before,
        "rss peak": peak[0],
    }


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args()
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory() as tmp,
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={"flows.heartbeat_frequency": None}),
    ):
        directory = Path(tmp)
        single = Stack("alone", directory)
        alone: dict[str, list[float]] = defaultdict(list)
        flow_rollout(single, alone)  # warm up (imports, first flow run); also one rollout alone
        steps = per_step(args.runs, directory)
        tasks = per_task(args.tasks)
        together = concurrent(args.concurrent, directory)
    load_after = os.getloadavg()
    report(args, steps, tasks, together, alone["whole rollout"][0], load_before, load_after)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(
    args: argparse.Namespace,
    steps: dict[str, dict[str, float]],
    tasks: dict[str, float],
    together: dict[str, float],
    alone: float,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    direct, flow = steps["direct"], steps["flow"]
    print(f"### Rollout flow overhead (`bench/flows.py --runs {args.runs} --tasks {args.tasks}`)\n")
    print(
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}; "
        "load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} (1 min) / {load_after[1]:.2f} (5 min) after.\n"
    )
    print(f"Per step, median of {args.runs} rollouts of the demo spec (manual clock: no waits):\n")
    print("| step | direct (no Prefect) | in the flow | difference |")
    print("| --- | ---: | ---: | ---: |")
    for label in ("setWeight", "analyze interval", "promote"):
        print(f"| {label} | {ms(direct[label])} | {ms(flow[label])} | {ms(flow[label] - direct[label])} |")
    print(
        f"| analyze step (median {flow['intervals per rollout'] / 2:.0f} intervals) | | "
        f"{ms(flow['analyze step'])} | |"
    )
    print(f"| judge + observation log, per interval | | {ms(flow['judge'])} | |")
    print(f"| whole rollout (5 steps) | | {ms(flow['whole rollout'])} | |\n")
    print(f"Prefect per task ({args.tasks} runs of a trivial task in one flow):\n")
    print("| what | time |")
    print("| --- | ---: |")
    print(f"| plain function call | {tasks['plain'] * 1e6:.2f} µs |")
    print(f"| task run in a flow, per task | {ms(tasks['task'])} |")
    print(f"| empty flow run | {ms(tasks['empty flow'])} |\n")
    print(f"{together['rollouts']:.0f} rollouts of different targets at once, one thread each:\n")
    print("| what | value |")
    print("| --- | ---: |")
    print(f"| one rollout alone (first run, warm-up included) | {alone:.2f} s |")
    print(f"| {together['rollouts']:.0f} concurrent, wall time | {together['wall']:.2f} s |")
    print(f"| promoted | {together['promoted']:.0f} of {together['rollouts']:.0f} |")
    print(f"| the same number one after the other, wall time | {together['sequential']:.2f} s |")
    print(
        f"| RSS before / peak | {together['rss before'] / 1024:.0f} / {together['rss peak'] / 1024:.0f} MiB |"
    )


if __name__ == "__main__":
    main()
