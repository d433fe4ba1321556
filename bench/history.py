"""A/A analyses whose stable's history says less about the tracks' dispersion than it should.

Usage::

    .venv/bin/python bench/history.py [--runs N] [--seed S]

The judge learns its warm-up dispersion bound from an hour of the stable's counts
(`analysis.dispersion`), scaled by the spread for the step's weight, and that bound also caps the
analysis's own running estimate except while the analysis contradicts it (`analysis.counts`).
Here the stable's error rate jitters less from interval to interval than each track's does, by
more than the spread allows for: the history understates the tracks' dispersion, which is
outside what the judge is calibrated for. Each cell draws an hour of the stable (80 % of the
traffic) and then an A/A analysis of 40 looks of 30 s (each track 10 %, 1 % errors, log-normal
jitter per interval), with the error-rate metric alone, and reports how many runs were rolled
back (all false) or promoted. `analysis` is also the model of the A/A tests of
``tests/unit/analysis/test_dispersion.py`` (there the stable jitters as much as a track, or per
pod). Each run has its own seed, so two versions of the judge see the same runs. Simulated
traffic; no cluster or Prometheus. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.dispersion import spread_for_weight, stable_dispersion
from analysis.judge import SequentialJudge
from analysis.observations import PairedObservation, RatioCounts
from analysis.settings import AnalysisSettings, MetricSettings

SETTINGS = AnalysisSettings(
    metrics=[MetricSettings(name="errors", type="ratio", critical=True)], max_duration_seconds=1200
)
WEIGHT = 10.0
HISTORY = 120
LOOKS = 40
#: (req/s per track, each track's jitter sd, the stable's jitter sd)
CELLS = ((500.0, 0.5, 0.0), (500.0, 0.3, 0.05), (500.0, 0.3, 0.1), (50.0, 0.3, 0.05))


def counts(
    rng: np.random.Generator, n: float, rate: float, sigma: float, inflation: float
) -> tuple[float, float]:
    """(bad, total) of `n` requests at `rate` times a mean-one log-normal factor of sd `sigma`;
    `inflation` > 1: read through ``increase()``, a count of part of the interval, extrapolated."""
    factor = rng.lognormal(-sigma * sigma / 2, sigma) if sigma else 1.0
    p = min(rate * factor, 1.0)
    if inflation > 1:
        return inflation * float(rng.binomial(int(n / inflation), p)), float(n)
    return float(rng.binomial(int(n), p)), float(n)


def analysis(
    rng: np.random.Generator,
    rps: float,
    *,
    sigma: float = 0.0,
    inflation: float = 1.0,
    incidents: bool = False,
    factor: float = 1.0,
    learn: bool = True,
    per_pod: bool = False,
    stable_sigma: float | None = None,
) -> tuple[str, int]:
    """One analysis of 40 looks of 30 s at 1 % errors, after an hour of the stable's history: the
    decision and its look. The stable serves 80 %, each track 10 %. `factor`: the canary's error
    rate over the baseline's; `incidents`: shared x8 incidents of 4 intervals, one in the history
    and one in the analysis; `per_pod`: the jitter is each pod's, so the stable (8 times a track's
    pods) varies 8 times less than a track; `stable_sigma`: the stable's own jitter instead (a
    history that may say less than it should); `learn`: start from the learned bound."""
    stable = rps * 30 * (100 - 2 * WEIGHT) / WEIGHT
    at = int(rng.integers(0, HISTORY)) if incidents else -99
    quieter = sigma / math.sqrt((100 - 2 * WEIGHT) / WEIGHT) if per_pod else sigma
    if stable_sigma is not None:
        quieter = stable_sigma
    bad, total = zip(
        *(
            counts(rng, stable, 0.01 * (8.0 if at <= j < at + 4 else 1.0), quieter, inflation)
            for j in range(HISTORY)
        ),
        strict=True,
    )
    spread = spread_for_weight(WEIGHT)
    bound = stable_dispersion(bad, total, spread=(spread, spread))
    judge = SequentialJudge(
        SETTINGS, interval_seconds=30, dispersion={"errors": bound.kappa} if learn and bound.learned else {}
    )
    at = int(rng.integers(4, LOOKS - 6)) if incidents else -99
    for i in range(LOOKS):
        shared = 8.0 if at <= i < at + 4 else 1.0
        baseline = counts(rng, rps * 30, 0.01 * shared, sigma, inflation)
        canary = counts(rng, rps * 30, 0.01 * shared * factor, sigma, inflation)
        verdict = judge.update(
            {"errors": PairedObservation(baseline=RatioCounts(*baseline), canary=RatioCounts(*canary))}
        )
        if verdict.final:
            return verdict.decision, i + 1
    return judge.finish().decision, LOOKS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print("| req/s per track | track jitter sd | stable jitter sd | runs | rolled back | promoted |")
    print("|---|---|---|---|---|---|")
    for number, (rps, sigma, stable_sigma) in enumerate(CELLS):
        decisions = Counter(
            analysis(
                np.random.default_rng([args.seed, number, run]), rps, sigma=sigma, stable_sigma=stable_sigma
            )[0]
            for run in range(args.runs)
        )
        rolled, promoted = (100.0 * decisions[d] / args.runs for d in ("rollback", "promote"))
        print(f"| {rps:g} | {sigma:g} | {stable_sigma:g} | {args.runs} | {rolled:.1f} % | {promoted:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
