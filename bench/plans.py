"""Benchmark: how the outcomes of good canaries follow the evidence plan made early in the analysis.

    .venv/bin/python bench/plans.py [--runs 100] [--look 6]

For each good family of `bench.scenarios` and each traffic level, judges ``--runs`` scenarios with
the product's defaults (`bench.decisions.PRODUCT_SETTINGS`) and reads the evidence plan of every
undecided metric at interval ``--look`` (`analysis.outlook`): the longest plan, whether every plan
fits the maximum duration, and how the analysis then ended (inconclusive counts as not promoted,
as under the default failure policy). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from analysis.backtest import judge_log
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import generate

FAMILIES = ("plain", "overdispersed", "independent-overdispersion", "shared-incident", "error-free")
TRAFFIC = (2.0, 10.0, 50.0)


def _row(family: str, rps: float, runs: int, look: int) -> str:
    longest: list[float] = []
    ended: dict[bool, list[bool]] = {True: [], False: []}
    decided_first = 0
    for seed in range(runs):
        verdicts = list(judge_log(generate(family, rps, 70_000 + seed).log, PRODUCT_SETTINGS))
        if len(verdicts) < look:
            decided_first += 1
            continue
        plans = [m.plan for m in verdicts[look - 1].metrics.values() if m.plan is not None]
        needed = [float("inf") if p.needed_intervals is None else p.needed_intervals for p in plans]
        longest.append(max(needed, default=0.0))
        ended[all(p.fits for p in plans)].append(verdicts[-1].decision == "promote")

    def share(values: list[bool]) -> str:
        return f"{100 * sum(values) / len(values):.0f} % of {len(values)}" if values else "-"

    median = statistics.median(longest) if longest else float("nan")
    cells = [family, f"{rps:g}", f"{median:.0f}", share(ended[True]), share(ended[False]), str(decided_first)]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--look", type=int, default=6)
    args = parser.parse_args()
    began = time.perf_counter()
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    print(f"{machine}, {args.runs} runs per row, plan at interval {args.look}")
    print()
    print(
        "| family | req/s | median plan (intervals; max 40) | promoted when the plan fits "
        "| promoted when it does not | decided before the look |"
    )
    print("|---|---|---|---|---|---|")
    for family in FAMILIES:
        for rps in TRAFFIC:
            print(_row(family, rps, args.runs, args.look), flush=True)
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
