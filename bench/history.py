"""A/A analyses whose stable's history says less about the tracks' dispersion than it should.

Usage::

    .venv/bin/python bench/history.py [--runs N] [--seed S]

The judge learns its warm-up dispersion bound from an hour of the stable's counts
(`analysis.dispersion`), scaled by the spread for the step's weight, and that bound also caps the
analysis's own running estimate until the analysis contradicts it (`analysis.counts`). Here the
stable's error rate jitters less from interval to interval than each track's does, by more than
the spread allows for: the history understates the tracks' dispersion, which is outside what the
judge is calibrated for. Each cell draws an hour of the stable (80 % of the traffic) and then an
A/A analysis of 40 looks of 30 s (each track 10 %, 1 % errors, log-normal jitter per interval),
with the error-rate metric alone, and reports how many runs were rolled back (all false) or
promoted. Each run has its own seed, so two versions of the judge see the same runs. Simulated
traffic; no cluster or Prometheus. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
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


def _counts(rng: np.random.Generator, n: float, sigma: float) -> tuple[float, float]:
    factor = rng.lognormal(-sigma * sigma / 2, sigma) if sigma else 1.0
    return float(rng.binomial(int(n), min(0.01 * factor, 1.0))), float(n)


def analysis(rng: np.random.Generator, rps: float, sigma: float, stable_sigma: float) -> str:
    """One A/A analysis after an hour of the stable's history: its decision."""
    stable = rps * 30 * (100 - 2 * WEIGHT) / WEIGHT
    bad, total = zip(*(_counts(rng, stable, stable_sigma) for _ in range(HISTORY)), strict=True)
    spread = spread_for_weight(WEIGHT)
    bound = stable_dispersion(bad, total, spread=(spread, spread))
    judge = SequentialJudge(
        SETTINGS, interval_seconds=30, dispersion={"errors": bound.kappa} if bound.learned else {}
    )
    for _ in range(LOOKS):
        baseline, canary = _counts(rng, rps * 30, sigma), _counts(rng, rps * 30, sigma)
        verdict = judge.update(
            {"errors": PairedObservation(baseline=RatioCounts(*baseline), canary=RatioCounts(*canary))}
        )
        if verdict.final:
            return verdict.decision
    return judge.finish().decision


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print("| req/s per track | track jitter sd | stable jitter sd | runs | rolled back | promoted |")
    print("|---|---|---|---|---|---|")
    for number, (rps, sigma, stable_sigma) in enumerate(CELLS):
        decisions = Counter(
            analysis(np.random.default_rng([args.seed, number, run]), rps, sigma, stable_sigma)
            for run in range(args.runs)
        )
        rolled, promoted = (100.0 * decisions[d] / args.runs for d in ("rollback", "promote"))
        print(f"| {rps:g} | {sigma:g} | {stable_sigma:g} | {args.runs} | {rolled:.1f} % | {promoted:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
