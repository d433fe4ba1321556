r"""How fast the judge's detector construction could catch a mid-analysis change if it knew everything.

Usage::

    .venv/bin/python bench/change_floor.py [--runs N] [--seed S]

The decision benchmark's family ``errors-x5-midway``: both tracks at 1 % errors for 8 intervals of
30 s, then the canary at 5 %. The detector here is an oracle version of the judge's
(`analysis.detection`, whose alarm is now a Shiryaev-Roberts sum over windows of the latest
intervals, which at the same level alarms a little earlier than a CUSUM): Page's CUSUM on the exact
log-likelihood ratio of each interval (the canary's share of the interval's errors,
binomial, 1/2 against 5/6: the true rates and the true size of the change, no overdispersion allowed
for), alarming at the judge's level :math:`\log(T/\alpha_d)` for :math:`T = 40` intervals. That
level is a sufficient one, not a tight one (the oracle's false alarms stay far below
:math:`\alpha_d`); detectors with a threshold calibrated by simulation for binomial traffic, or a
test of the last two intervals alone, can do better at the same false-alarm rate, but only for the
traffic model they were calibrated on. It reports how often the oracle alarms within 2 intervals of
the change (an alarm in the first bad interval counts as 1; alarms before the change are reported
apart, where ``bench/decisions.py`` would count them as within 2), the share of runs that alarm
before it, and the median number of intervals after it. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence

import numpy as np

INTERVAL_SECONDS = 30
LOOKS = 40
BAD_FROM = 8  # intervals before the change
RATIO = 5.0
RATE = 0.01
#: alpha_d: the judge's detector share for one of the two default metrics (0.05 / 2 * 0.3),
#: the metric's whole alpha (0.05 / 2), and the whole judge's (0.05).
SHARES = (0.0075, 0.025, 0.05)


def first_alarm(rng: np.random.Generator, rps: float, threshold: float) -> int | None:
    """The interval (0-based) of the oracle's first alarm, None without one."""
    n = int(rps * INTERVAL_SECONDS)
    p1, p0 = RATIO / (1.0 + RATIO), 0.5
    up, down = math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))
    w = -math.inf
    for i in range(LOOKS):
        canary = rng.binomial(n, RATE * (RATIO if i >= BAD_FROM else 1.0))
        baseline = rng.binomial(n, RATE)
        w = max(w, 0.0) + canary * up + baseline * down
        if w >= threshold:
            return i
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    print(
        "| req/s per track | alpha_d | alarm level | within 2 intervals | before the change "
        "| median intervals after |"
    )
    print("|---|---|---|---|---|---|")
    for rps in (10.0, 50.0):
        for share in SHARES:
            rng = np.random.default_rng(args.seed)
            threshold = math.log(LOOKS / share)
            alarms = [first_alarm(rng, rps, threshold) for _ in range(args.runs)]
            after = [a - BAD_FROM + 1 for a in alarms if a is not None and a >= BAD_FROM]
            early = sum(a is not None and a < BAD_FROM for a in alarms) / args.runs
            within = sum(a <= 2 for a in after) / args.runs
            median = statistics.median(after) if after else math.nan
            print(
                f"| {rps:g} | {share:g} | {threshold:.2f} | {100 * within:.1f} % | {100 * early:.2f} % "
                f"| {median:g} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
