r"""Canaries that turn bad later than the decision benchmark's: is any promoted after its change?

Usage::

    .venv/bin/python bench/late_changes.py [--runs N] [--jobs J] [--markdown FILE]

The decision benchmark's ``errors-x5-midway`` turns bad after 4 minutes. Here the canary is good,
then from a later interval on worse: errors x5 from the 5th, 13th, 21st, 29th, 35th, 38th or 39th
interval of 40 (the last two leave 90 and 60 seconds of a 20-minute analysis), errors x3 or latency
+50 % from the 13th; on the benchmark's plain and independently overdispersed traffic at 10 and
50 req/s per track (`bench.scenarios`), judged by the product's defaults
(`bench.decisions.PRODUCT_SETTINGS`) with the warm-up learned from the stable's history, as in the
decision benchmark. For each cell it counts the runs promoted before the change (a promotion
that came before anything went wrong: not an error of the judge), promoted on or after the first
bad interval (the error this measures), rolled back (and of those, within 2 intervals of the
change: the first bad interval counts as 1) and inconclusive (under the default policy: rolled
back at the end). A rollback before the change is a false rollback and is counted apart.
Seeds are ``500000 + 1000 * k + i`` for a change at 0-based interval ``k`` and run ``i``, the
same in every cell. Deterministic.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.backtest import judge_log
from bench.decisions import PRODUCT_SETTINGS
from bench.output import cell_arguments, emit
from bench.scenarios import MAX_INTERVALS, Truth, generate

FAMILIES = ("plain", "independent-overdispersion")
RATES = (10.0, 50.0)
#: (0-based interval of the change, error factor, latency factor)
CHANGES = (
    (4, 5.0, 1.0),
    (12, 5.0, 1.0),
    (20, 5.0, 1.0),
    (28, 5.0, 1.0),
    (34, 5.0, 1.0),
    (37, 5.0, 1.0),
    (38, 5.0, 1.0),
    (12, 3.0, 1.0),
    (12, 1.0, 1.5),
)
OUTCOMES = ("promoted before", "promoted after", "rolled back", "within 2", "false rollback", "inconclusive")


@dataclass(frozen=True)
class Cell:
    family: str
    rps: float
    start: int
    error_factor: float
    latency_factor: float
    runs: int

    @property
    def change(self) -> str:
        if self.latency_factor != 1.0:
            return f"latency +{100 * (self.latency_factor - 1):.0f} %"
        return f"errors x{self.error_factor:g}"


def judge_cell(cell: Cell) -> tuple[Cell, Counter[str]]:
    counts: Counter[str] = Counter()
    first_bad = cell.start + 1  # 1-based
    truth = Truth(
        error_factor=cell.error_factor, latency_factor=cell.latency_factor, from_interval=cell.start
    )
    for i in range(cell.runs):
        log = generate(cell.family, cell.rps, 500_000 + 1000 * cell.start + i, truth=truth).log
        final = list(judge_log(log, PRODUCT_SETTINGS))[-1]
        if final.decision == "promote":
            counts["promoted after" if final.interval >= first_bad else "promoted before"] += 1
        elif final.decision == "rollback" and final.interval < first_bad:
            counts["false rollback"] += 1
        elif final.decision == "rollback":
            counts["rolled back"] += 1
            counts["within 2"] += final.interval - first_bad + 1 <= 2
        else:
            counts["inconclusive"] += 1
    return cell, counts


def table(results: Sequence[tuple[Cell, Counter[str]]]) -> list[str]:
    lines = [
        "| family | req/s | change | from interval | runs | promoted before it | promoted after it "
        "| rolled back (within 2 intervals) | false rollback | inconclusive |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, c in results:
        lines.append(
            f"| {cell.family} | {cell.rps:g} | {cell.change} | {cell.start + 1} of {MAX_INTERVALS} "
            f"| {cell.runs} | {c['promoted before']} | {c['promoted after']} "
            f"| {c['rolled back']} ({c['within 2']}) | {c['false rollback']} | {c['inconclusive']} |"
        )
    after = sum(c["promoted after"] for _, c in results)
    changed = sum(cell.runs - c["promoted before"] - c["false rollback"] for cell, c in results)
    lines.append("")
    lines.append(f"Promoted after their change: {after} of the {changed} runs still open when it came.")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = cell_arguments(__doc__, runs=100).parse_args(argv)
    cells = [
        Cell(family, rps, start, errors, latency, args.runs)
        for family in FAMILIES
        for rps in RATES
        for start, errors, latency in CHANGES
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(judge_cell, cells))
    text = "\n".join(table(results))
    return emit(text, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
