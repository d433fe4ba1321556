r"""Wrong promotions: how often the default judge promotes a canary exactly at its tolerance.

Usage::

    .venv/bin/python bench/tolerance.py [--runs N] [--seed S] [--jobs J] [--final-share F]

A canary exactly at the default tolerance (+50 % errors, every latency quantile +20 %) in the
noise of the decision benchmark's hard families (``bench/scenarios.py``), and exactly at the
default error ceiling (0.1 %) beside a baseline without errors, is what a wrong promotion would
be: the judge promises to promote it in at most ``beta`` (5 %) of runs, by every route together
(the anytime e-value, the final look at 20 minutes, the ceiling). Each cell runs ``--runs``
analyses of the product's default settings (`bench.decisions.PRODUCT_SETTINGS`, the warm-up
bound learned from the stable's history included) and reports the promoted share with the upper
end of its two-sided 95 % Clopper-Pearson interval. ``--final-share`` replaces the final look's
share of the relative tests' promotion budget (`analysis.evidence.FINAL_SHARE`, as the judge
reads it) for a comparison.
``tests/unit/analysis/test_calibration.py`` runs the same cells with fewer runs. Deterministic
for a given seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from scipy import stats

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import analysis.evidence
import analysis.judge
from analysis.backtest import judge_log
from analysis.judge import SequentialJudge
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import Truth, generate

#: The default tolerances of the product's metrics: the canary is put exactly there.
ERROR_TOLERANCE, LATENCY_TOLERANCE = (
    PRODUCT_SETTINGS.tolerance_for(next(m for m in PRODUCT_SETTINGS.metrics if m.type == kind))
    for kind in ("ratio", "histogram")
)
ERRORS_AT, LATENCY_AT = f"errors+{ERROR_TOLERANCE:.0%}", f"latency+{LATENCY_TOLERANCE:.0%}"
#: The canary exactly at the tolerance, by what it is at.
AT_TOLERANCE = {
    ERRORS_AT: Truth(error_factor=1.0 + ERROR_TOLERANCE),
    LATENCY_AT: Truth(latency_factor=1.0 + LATENCY_TOLERANCE),
    "errors at the ceiling": Truth(error_rate=0.001),
}
#: (what the canary is at, the family that sets the noise, req/s per track).
BOUNDARY_CELLS = (
    [("errors at the ceiling", "error-free", rps) for rps in (10.0, 50.0, 500.0)]
    + [
        (which, family, rps)
        for which in (ERRORS_AT, LATENCY_AT)
        for family, rps in (
            ("plain", 2.0),
            ("plain", 10.0),
            ("overdispersed", 10.0),
            ("independent-overdispersion", 50.0),
            ("independent-overdispersion", 500.0),
            ("shared-incident", 10.0),
            # the traffic doubles twice and bursts x20 once: intervals of very unequal weight
            ("uneven-traffic", 10.0),
            ("uneven-traffic", 50.0),
        )
    ]
    # A canary 20 % slower is rolled back in the cells above before its promotion could be tried
    # (the rollback test has no tolerance); where each track's latency scale wanders by 20 % from
    # interval to interval most such canaries reach the final look, which is what is tested here.
    + [(LATENCY_AT, "strong-independent-overdispersion", rps) for rps in (10.0, 50.0, 500.0)]
)


def decision(cell: tuple[str, str, float], seed: int) -> str:
    """The default judge's final decision on one run of `cell`."""
    which, family, rps = cell
    log = generate(family, rps, seed, truth=AT_TOLERANCE[which]).log
    return list(judge_log(log, PRODUCT_SETTINGS))[-1].decision


def use_final_share(share: float) -> None:
    """Make the judge plan its analyses with `share` for the final look, and check that it does."""
    # The name the judge reads when it plans (imported there from analysis.evidence).
    analysis.judge.FINAL_SHARE = share  # type: ignore[attr-defined]
    plan = SequentialJudge(PRODUCT_SETTINGS, interval_seconds=30.0).plan
    latency = next(m for m in plan.metrics if m.type == "histogram")  # no ceiling: all of beta
    if abs(latency.final_beta - latency.beta * share) > 1e-12:
        raise RuntimeError(f"the judge did not take the final look's share {share:g}")


def _outcomes(job: tuple[tuple[str, str, float], int, int, float | None]) -> tuple[int, int]:
    """Promoted and rolled-back runs of one chunk of a cell."""
    cell, first, runs, share = job
    if share is not None:
        use_final_share(share)
    decided = [decision(cell, first + i) for i in range(runs)]
    return decided.count("promote"), decided.count("rollback")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=194_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--final-share", type=float, help="the final look's share (default: FINAL_SHARE)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.jobs < 1:
        parser.error("--runs and --jobs must be at least 1")
    if args.final_share is not None and not 0.0 < args.final_share < 1.0:
        parser.error("--final-share must be between 0 and 1")
    share = args.final_share if args.final_share is not None else analysis.evidence.FINAL_SHARE
    use_final_share(share)  # fails here, not in the workers, if the judge no longer reads it
    start = time.monotonic()
    chunk = max(1, args.runs // 4)
    jobs = [
        (cell, args.seed + first, min(chunk, args.runs - first), args.final_share)
        for cell in BOUNDARY_CELLS
        for first in range(0, args.runs, chunk)
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        counts = list(pool.map(_outcomes, jobs))
    per_cell = len(range(0, args.runs, chunk))
    print(f"final look's share {share:g}, {args.runs} runs per cell, seed {args.seed}\n")
    # "rolled back": runs that never reached a promotion's chance at the end, since the rollback
    # test (no tolerance) caught the canary; a cell where nearly all are says little about beta.
    print("| canary at | noise | req/s per track | promoted | upper end of its 95 % interval | rolled back |")
    print("|---|---|---|---|---|---|")
    for i, (which, family, rps) in enumerate(BOUNDARY_CELLS):
        chunks = counts[i * per_cell : (i + 1) * per_cell]
        promoted, rolled_back = sum(c[0] for c in chunks), sum(c[1] for c in chunks)
        upper = (
            float(stats.beta.ppf(0.975, promoted + 1, args.runs - promoted)) if promoted < args.runs else 1.0
        )
        print(
            f"| {which} | {family} | {rps:g} | {promoted / args.runs:.1%} | {upper:.1%} "
            f"| {rolled_back / args.runs:.1%} |"
        )
    print(f"\n{time.monotonic() - start:.0f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
