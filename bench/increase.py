"""Benchmark: the absolute tolerance (``maxIncrease``) of an error-rate metric, at its margin and for
good canaries of services with few errors.

    .venv/bin/python bench/increase.py [--runs 200]

`run` simulates one analysis of the error-rate metric alone (30 s intervals, Poisson traffic per
track, each track's rate jittered on its own by a mean-one log-normal factor, optionally a
shared x5 incident in 5 % of intervals) with the judge's defaults and a given ``maxIncrease``.
The first table puts the canary exactly at the margin (the boundary of the null) with rollbacks
switched off, so every promotion is an error (the bound is beta, 0.05); the second gives good
canaries (the canary's rate equal to the baseline's) with and without the absolute tolerance,
inconclusive counting as not promoted, as under the default failure policy; the third gives good
canaries on uneven traffic (doubling twice, one burst x20), each track jittering on its own. Prints
Markdown tables. ``tests/unit/analysis/test_increase.py`` runs the same simulation.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Sequence

import numpy as np

from analysis.judge import SequentialJudge
from analysis.observations import PairedObservation, RatioCounts
from analysis.settings import AnalysisSettings, MetricSettings
from analysis.verdicts import Verdict
from bench.scenarios import SPIKE, UNEVEN_STEPS

#: (baseline rate, margin, req/s per track, jitter sd, shared incidents, intervals)
BOUNDARY = (
    (0.01, 0.005, 50.0, 0.5, False, 40),
    (0.0005, 0.002, 10.0, 0.0, False, 40),
    (0.002, 0.002, 500.0, 0.3, True, 40),
    (0.0005, 0.002, 2.0, 0.5, False, 240),
)
#: Uneven traffic: doubling at the 11th and the 21st interval (as adaptive exposure raises it) and
#: x20 in the 26th (a burst), as in the decision benchmark's uneven-traffic family.
UNEVEN = tuple(
    2.0 ** sum(i >= step for step in UNEVEN_STEPS) * (SPIKE if i == 25 else 1.0) for i in range(240)
)
#: Good canaries on uneven traffic, each track's rate jittering on its own with this sd:
#: (baseline rate, margin, req/s per track at the start, intervals).
UNEVEN_JITTER = 0.3
UNEVEN_GOOD = (
    (0.0005, 0.005, 10.0, 40),
    (0.0005, 0.002, 2.0, 120),
    (0.002, 0.002, 10.0, 40),
    (0.002, 0.002, 2.0, 120),
    (0.01, 0.005, 10.0, 40),
    (0.01, 0.005, 50.0, 40),
)
#: (baseline rate, margin, req/s per track, intervals)
GOOD = (
    (0.0005, 0.002, 10.0, 40),
    (0.0005, 0.002, 2.0, 120),
    (0.001, 0.005, 2.0, 120),
    (0.01, 0.005, 10.0, 40),
    (0.01, 0.005, 50.0, 40),
)


def settings(max_increase: float | None, *, alpha: float = 0.05, intervals: int = 40) -> AnalysisSettings:
    """The judge's defaults for one error-rate metric over `intervals` 30 s intervals."""
    metric = MetricSettings(name="error-rate", type="ratio", max_increase=max_increase)
    return AnalysisSettings(metrics=(metric,), alpha=alpha, max_duration_seconds=30.0 * intervals)


def run(
    judged: AnalysisSettings,
    *,
    baseline_rate: float,
    canary_rate: float,
    rps: float,
    seed: int,
    jitter: float = 0.0,
    incidents: bool = False,
    intervals: int = 40,
    traffic: Sequence[float] | None = None,
) -> Verdict:
    """One analysis (see the module notes); the final verdict. `traffic`, one factor per interval,
    scales both tracks' requests (steady without it)."""
    rng = np.random.default_rng(seed)
    judge = SequentialJudge(judged, interval_seconds=30.0)

    def rate(base: float, shared: float) -> float:
        factor = rng.lognormal(-(jitter**2) / 2, jitter) if jitter else 1.0
        return min(1.0, base * factor * shared)

    for i in range(intervals):
        shared = 5.0 if incidents and rng.random() < 0.05 else 1.0
        per_interval = rps * 30 * (traffic[i] if traffic is not None else 1.0)
        nb, nc = int(rng.poisson(per_interval)), int(rng.poisson(per_interval))
        yb = float(rng.binomial(nb, rate(baseline_rate, shared)))
        yc = float(rng.binomial(nc, rate(canary_rate, shared)))
        pair = PairedObservation(baseline=RatioCounts(yb, float(nb)), canary=RatioCounts(yc, float(nc)))
        verdict = judge.update({"error-rate": pair})
        if verdict.final:
            return verdict
    return judge.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    began = time.perf_counter()
    print(f"{platform.machine()}, Python {platform.python_version()}, {args.runs} runs per row")
    print()
    print(
        "| baseline rate | margin | req/s | jitter sd | shared incidents | looks | promoted at the margin |"
    )
    print("|---|---|---|---|---|---|---|")
    for rb, margin, rps, jitter, incidents, looks in BOUNDARY:
        runs = args.runs if looks <= 40 else max(1, args.runs // 4)
        judged = settings(margin, alpha=1e-9, intervals=looks)
        promoted = sum(
            run(
                judged, baseline_rate=rb, canary_rate=rb + margin, rps=rps, seed=900 + i, jitter=jitter,
                incidents=incidents, intervals=looks,
            ).decision
            == "promote"
            for i in range(runs)
        )  # fmt: skip
        cells = [
            f"{100 * rb:g} %",
            f"{100 * margin:g} pp",
            f"{rps:g}",
            f"{jitter:g}",
            "yes" if incidents else "no",
        ]
        print("| " + " | ".join([*cells, str(looks), f"{promoted} of {runs}"]) + " |", flush=True)
    print()
    print("| baseline rate | req/s | minutes | maxIncrease | promoted | median minutes to promote |")
    print("|---|---|---|---|---|---|")
    for rb, margin, rps, looks in GOOD:
        for chosen in (margin, None):
            judged = settings(chosen, intervals=looks)
            verdicts = [
                run(judged, baseline_rate=rb, canary_rate=rb, rps=rps, seed=2000 + i, intervals=looks)
                for i in range(args.runs)
            ]
            when = [v.interval / 2 for v in verdicts if v.decision == "promote"]
            median = f"{statistics.median(when):.1f}" if when else "-"
            label = "-" if chosen is None else f"{100 * chosen:g} pp"
            row = [
                f"{100 * rb:g} %",
                f"{rps:g}",
                f"{looks / 2:g}",
                label,
                f"{len(when)} of {args.runs}",
                median,
            ]
            print("| " + " | ".join(row) + " |", flush=True)
    print()
    print(f"Uneven traffic (x2 at the 11th and 21st interval, x20 in the 26th), jitter sd {UNEVEN_JITTER}:")
    print()
    print("| baseline rate | margin | req/s at the start | minutes | promoted | median minutes to promote |")
    print("|---|---|---|---|---|---|")
    for rb, margin, rps, looks in UNEVEN_GOOD:
        judged = settings(margin, intervals=looks)
        verdicts = [
            run(
                judged, baseline_rate=rb, canary_rate=rb, rps=rps, seed=3000 + i, jitter=UNEVEN_JITTER,
                intervals=looks, traffic=UNEVEN,
            )
            for i in range(args.runs)
        ]  # fmt: skip
        when = [v.interval / 2 for v in verdicts if v.decision == "promote"]
        median = f"{statistics.median(when):.1f}" if when else "-"
        row = [f"{100 * rb:g} %", f"{100 * margin:g} pp", f"{rps:g}", f"{looks / 2:g}"]
        print("| " + " | ".join([*row, f"{len(when)} of {args.runs}", median]) + " |", flush=True)
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
