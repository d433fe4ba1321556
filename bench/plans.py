"""Benchmark: how the outcomes of good canaries follow the evidence plan made early in the analysis.

    .venv/bin/python bench/plans.py [--runs 100] [--look 6]

For each good family of `bench.scenarios` and each traffic level, judges ``--runs`` scenarios with
the product's defaults (`bench.decisions.PRODUCT_SETTINGS`) and reads the evidence plan of every
undecided metric at interval ``--look`` (`analysis.outlook`): the longest plan, the smallest
chance of a decision, whether every plan fits the maximum duration, and how the analysis then
ended (inconclusive counts as not promoted, as under the default failure policy). A second table
gives the judge's early give-up (``min_chance``): how often it ended an analysis early, when, and
how many of those analyses would have ended promoted had it waited, under the defaults and under
a +20 % tolerance on errors without ceiling. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

from analysis.backtest import judge_log
from analysis.judge import GAVE_UP
from analysis.settings import AnalysisSettings
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import generate

FAMILIES = ("plain", "overdispersed", "independent-overdispersion", "shared-incident", "error-free")
TRAFFIC = (2.0, 10.0, 50.0)


def _row(family: str, rps: float, runs: int, look: int) -> str:
    longest: list[float] = []
    chances: list[float] = []
    ended: dict[bool, list[bool]] = {True: [], False: []}
    decided_first = 0
    for seed in range(runs):
        verdicts = list(judge_log(generate(family, rps, 70_000 + seed).log, PRODUCT_SETTINGS))
        if len(verdicts) < look:
            decided_first += 1
            continue
        plans = [m.plan for m in verdicts[look - 1].metrics.values() if m.plan is not None]
        needed = [float("inf") if p.needed_intervals is None else p.needed_intervals for p in plans]
        if needed:  # no metric undecided at the look: no plan to count
            longest.append(max(needed))
        chances.append(min((p.chance for p in plans if p.chance is not None), default=1.0))
        ended[all(p.fits for p in plans)].append(verdicts[-1].decision == "promote")

    def share(values: list[bool]) -> str:
        return f"{100 * sum(values) / len(values):.0f} % of {len(values)}" if values else "-"

    median = f"{statistics.median(longest):.0f}" if longest else "-"
    chance = f"{100 * statistics.median(chances):.0f} %" if chances else "-"
    outcomes = [share(ended[True]), share(ended[False]), str(decided_first)]
    cells = [family, f"{rps:g}", median, chance, *outcomes]
    return "| " + " | ".join(cells) + " |"


def tight(min_chance: float | None = None) -> AnalysisSettings:
    """The product's defaults with +20 % on errors and no ceiling (the example spec's tolerance)."""
    metrics = tuple(
        m.model_copy(update={"tolerance": 0.2, "max_rate": None}) if m.type == "ratio" else m
        for m in PRODUCT_SETTINGS.metrics
    )
    update: dict[str, Any] = {"metrics": metrics}
    if min_chance is not None:
        update["min_chance"] = min_chance
    return PRODUCT_SETTINGS.model_copy(update=update)


def _give_up_row(family: str, rps: float, runs: int, name: str) -> str:
    quick, patient = (
        (PRODUCT_SETTINGS, PRODUCT_SETTINGS.model_copy(update={"min_chance": 0.0}))
        if name == "defaults"
        else (tight(), tight(min_chance=0.0))
    )
    when: list[int] = []
    would_have = 0
    for seed in range(runs):
        log = generate(family, rps, 70_000 + seed).log
        last = list(judge_log(log, quick))[-1]
        if last.decision == "inconclusive" and last.reason.startswith(GAVE_UP):
            when.append(last.interval)
            would_have += list(judge_log(log, patient))[-1].decision == "promote"
    median = f"{statistics.median(when):.0f}" if when else "-"
    cells = [name, family, f"{rps:g}", f"{len(when)} of {runs}", median, str(would_have)]
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
        "| family | req/s | median plan (intervals; max 40) | median chance | promoted when the plan fits "
        "| promoted when it does not | decided before the look |"
    )
    print("|---|---|---|---|---|---|---|")
    for family in FAMILIES:
        for rps in TRAFFIC:
            print(_row(family, rps, args.runs, args.look), flush=True)
    print()
    print("| settings | family | req/s | ended early | median interval | would have been promoted |")
    print("|---|---|---|---|---|---|")
    for name in ("defaults", "+20 % errors, no ceiling"):
        for family in FAMILIES:
            for rps in TRAFFIC[:2]:
                print(_give_up_row(family, rps, args.runs, name), flush=True)
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
