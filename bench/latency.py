"""Benchmark: the absolute latency tolerance (``maxIncrease`` on a histogram metric, in its unit).

    .venv/bin/python bench/latency.py [--runs 100]

Judges the latency metric alone (the product's default latency histogram, its default relative
tolerance +20 %) on the decision benchmark's scenarios (`bench.scenarios`: log-normal latency, median 100 ms,
30 s intervals, 20 minutes), with and without an absolute tolerance. The first table gives good
canaries (inconclusive counts as not promoted, as under the default failure policy); the second
canaries exactly at the absolute tolerance (every request that much slower), where a promotion
would be an error (the bound is beta, 0.05). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from analysis.backtest import judge_log
from analysis.settings import AnalysisSettings
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import INTERVAL_SECONDS, Truth, generate

#: (family, req/s per track)
GOOD = (
    ("plain", 2.0),
    ("plain", 10.0),
    ("independent-overdispersion", 10.0),
    ("strong-independent-overdispersion", 50.0),
    ("shared-incident", 10.0),
)
SHIFTS = (None, 0.02, 0.05)
#: (family, req/s per track, shift in seconds)
BOUNDARY = (("plain", 2.0, 0.02), ("plain", 50.0, 0.02), ("independent-overdispersion", 500.0, 0.05))


def settings(shift: float | None) -> AnalysisSettings:
    """The product's latency metric alone, with the absolute tolerance `shift` (seconds)."""
    (latency,) = (m for m in PRODUCT_SETTINGS.metrics if m.name == "latency")
    return AnalysisSettings(metrics=(latency.model_copy(update={"max_increase": shift}),))


def outcomes(
    family: str, rps: float, shift: float | None, truth: Truth, runs: int
) -> tuple[float, float, float]:
    """(share promoted, share rolled back, median minutes to the decision)."""
    decisions, minutes = [], []
    for seed in range(runs):
        final = list(judge_log(generate(family, rps, 40_000 + seed, truth=truth).log, settings(shift)))[-1]
        decisions.append(final.decision)
        minutes.append(final.interval * INTERVAL_SECONDS / 60)
    return decisions.count("promote") / runs, decisions.count("rollback") / runs, statistics.median(minutes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    runs = parser.parse_args().runs
    start = time.perf_counter()
    print(f"{platform.machine()}, Python {platform.python_version()}, {runs} runs per row\n")
    print("| good canary | req/s per track | maxIncrease | promoted | rolled back | median minutes |")
    print("|---|---|---|---|---|---|")
    for family, rps in GOOD:
        for shift in SHIFTS:
            promoted, rolled, minutes = outcomes(family, rps, shift, Truth(), runs)
            label = "-" if shift is None else f"{shift * 1000:g} ms"
            print(
                f"| {family} | {rps:g} | {label} | {promoted:.0%} | {rolled:.0%} | {minutes:.1f} |",
                flush=True,
            )
    print("\n| at the tolerance | req/s per track | maxIncrease | promoted (an error) | rolled back |")
    print("|---|---|---|---|---|")
    for family, rps, shift in BOUNDARY:
        promoted, rolled, _ = outcomes(family, rps, shift, Truth(latency_shift=shift), runs)
        print(f"| {family} | {rps:g} | {shift * 1000:g} ms | {promoted:.1%} | {rolled:.0%} |", flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
