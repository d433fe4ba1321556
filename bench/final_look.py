r"""The final look's level alone where traffic is uneven and each track jitters on its own.

Usage::

    .venv/bin/python bench/final_look.py [--runs N]

The final look (`analysis.counts.CountState.final_log_pvalue`) is a fixed-horizon test whose
variance comes from the intervals' own scores. Canaries exactly at +50 % errors, 40 intervals of
30 s: the traffic of both tracks doubles at the 11th and the 21st interval (as adaptive exposure
raises it) and one interval may carry 20 times as much (a burst), as in the decision benchmark's
uneven-traffic family (`bench.scenarios.UNEVEN_STEPS`, `SPIKE`); the baseline is as large as
the canary or three times larger; each track's rate jitters on its own every interval by a
mean-one log-normal factor. Each cell prints the share shown within tolerance at level 0.025:
the test's level, which should be at most 2.5 % up to sampling noise (at 4,000 runs one standard
error is 0.25 points). ``tests/unit/analysis/test_counts.py`` runs
32 of these cells with fewer runs. Deterministic (cell ``k`` uses seed ``k``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.checks import CountDirection
from analysis.counts import CountState, count_step
from bench.scenarios import SPIKE, UNEVEN_STEPS

LEVEL = 0.025
TOLERANCE = 0.5
INTERVALS = 40
#: (error rate, req/s per track at the start, baseline size / canary size, jitter sigma,
#: 0-based interval of the x20 burst or -1).
CELLS = list(itertools.product((0.01, 0.05), (10.0, 50.0, 500.0), (1.0, 3.0), (0.0, 0.3, 0.5), (-1, 5, 25)))


def final_look_level(
    rate: float,
    rps: float,
    sizes: float,
    sigma: float,
    burst: int,
    *,
    runs: int,
    seed: int,
    ratio: float | None = None,
    direction: CountDirection = "increase",
) -> float:
    """Share of `runs` canaries that the final look alone shows within tolerance at `LEVEL` (one
    cell of `CELLS`): its level for canaries exactly at the tolerance (the default `ratio`:
    ``1 + TOLERANCE`` times the baseline's rate, or ``1 / (1 + TOLERANCE)`` where fewer events
    are worse), its power for better ones (`ratio` 1: like the baseline)."""
    if ratio is None:
        ratio = 1.0 + TOLERANCE if direction == "increase" else 1.0 / (1.0 + TOLERANCE)
    rng = np.random.default_rng(seed)
    state = CountState.initial(runs, tolerance=TOLERANCE, direction=direction)
    for i in range(INTERVALS):
        n = int(rps * 30 * 2.0 ** sum(i >= step for step in UNEVEN_STEPS) * (SPIKE if i == burst else 1.0))
        m = int(n * sizes)
        canary, baseline = rng.lognormal(-(sigma**2) / 2, sigma, (2, runs))
        x = rng.binomial(n, np.minimum(1.0, rate * ratio * canary)).astype(float)
        y = rng.binomial(m, np.minimum(1.0, rate * baseline)).astype(float)
        state = count_step(state, x, y, float(n), float(m))
    return float(np.mean(state.final_log_pvalue() <= math.log(LEVEL)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000, help="canaries per cell (default 4000)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    print("| errors | req/s | baseline / canary | jitter sigma | burst at | shown within tolerance |")
    print("|---|---|---|---|---|---|")
    levels = []
    for seed, cell in enumerate(CELLS):
        level = final_look_level(*cell, runs=args.runs, seed=seed)
        levels.append(level)
        rate, rps, sizes, sigma, burst = cell
        where = "-" if burst < 0 else str(burst + 1)
        print(f"| {rate:.0%} | {rps:g} | {sizes:g} | {sigma:g} | {where} | {level:.2%} |", flush=True)
    above = sum(level > LEVEL for level in levels)
    print(
        f"\n{len(CELLS)} cells of {args.runs} runs: mean {np.mean(levels):.2%}, "
        f"largest {max(levels):.2%}, {above} above {LEVEL:.1%}; {time.monotonic() - start:.0f} s wall"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
