r"""Canaries outside the decision benchmark's families: an error rate that drifts, or fails now and then.

Usage::

    .venv/bin/python bench/drift.py [--runs N] [--jobs J] [--markdown FILE]

The benchmark's bad canaries are worse by a fixed factor from some interval on. Here the
canary's error rate follows a shape over the 40 intervals of a 20-minute analysis instead: a
linear drift from the baseline's rate to 2 or 3 times it, a drift to 4 times that starts half-way,
or x5 in a random fifth of the intervals (each interval on its own). Everything else is the
decision benchmark's plain family at 10 and 50 req/s per track (`bench.scenarios`, 1 % errors,
the latency like the baseline's), judged by the product's defaults
(`bench.decisions.PRODUCT_SETTINGS`, +50 % errors tolerated) with the warm-up learned from the
stable's history; the canary's error counts are drawn again from its shape (binomial, the
scenario's own request counts). For each cell it counts promotions, and of them those that came
while the canary's current error rate was beyond the tolerance (more than 1.5 times the
baseline's: what a drift should not get through), rollbacks and inconclusive runs (rolled back
at the end under the default policy). Scenario ``i`` uses seed ``90000 + i`` and the shape's
draws seed ``77000 + i``, the same in every cell. Deterministic.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.backtest import judge_log
from analysis.logs import ObservationLog
from analysis.observations import RatioCounts
from bench.decisions import PRODUCT_SETTINGS
from bench.output import cell_arguments, emit
from bench.scenarios import BASE_ERROR_RATE, MAX_INTERVALS, generate

RATES = (10.0, 50.0)
TOLERANCE = 1.5
#: A shape: the canary's error factor at 0-based interval i, given a uniform draw per interval.
Shape = Callable[[int, np.ndarray], float]
SHAPES: dict[str, Shape] = {
    "drift to x2": lambda i, u: 1.0 + i / (MAX_INTERVALS - 1),
    "drift to x3": lambda i, u: 1.0 + 2.0 * i / (MAX_INTERVALS - 1),
    "x1, then from half-way a drift to x4": lambda i, u: (
        1.0 if i < MAX_INTERVALS // 2 else 1.0 + 3.0 * (i - MAX_INTERVALS // 2) / (MAX_INTERVALS // 2 - 1)
    ),
    "x5 in a random fifth of the intervals": lambda i, u: 5.0 if u[i] < 0.2 else 1.0,
}


@dataclass(frozen=True)
class Cell:
    shape: str
    rps: float
    runs: int


def _reshape(log: ObservationLog, factors: Sequence[float], rng: np.random.Generator) -> ObservationLog:
    """`log` with the canary's error counts drawn again at the baseline's rate times `factors`."""
    rows = []
    for row, factor in zip(log.intervals, factors, strict=True):
        pair = row.get("error-rate")
        if pair is not None and isinstance(pair.canary, RatioCounts):
            total = pair.canary.total
            bad = float(rng.binomial(int(total), min(1.0, BASE_ERROR_RATE * factor)))
            row = {
                **row,
                "error-rate": dataclasses.replace(pair, canary=RatioCounts(bad, total)),
            }
        rows.append(row)
    return dataclasses.replace(log, intervals=tuple(rows))


def judge_cell(cell: Cell) -> tuple[Cell, dict[str, int], list[int]]:
    counts = {"promoted": 0, "promoted beyond": 0, "rolled back": 0, "inconclusive": 0}
    promoted_at: list[int] = []
    shape = SHAPES[cell.shape]
    for i in range(cell.runs):
        rng = np.random.default_rng(77_000 + i)
        draws = rng.random(MAX_INTERVALS)
        factors = [shape(k, draws) for k in range(MAX_INTERVALS)]
        log = _reshape(generate("plain", cell.rps, 90_000 + i).log, factors, rng)
        final = list(judge_log(log, PRODUCT_SETTINGS))[-1]
        if final.decision == "promote":
            counts["promoted"] += 1
            counts["promoted beyond"] += factors[final.interval - 1] > TOLERANCE
            promoted_at.append(final.interval)
        elif final.decision == "rollback":
            counts["rolled back"] += 1
        else:
            counts["inconclusive"] += 1
    return cell, counts, promoted_at


def table(results: Sequence[tuple[Cell, dict[str, int], list[int]]]) -> list[str]:
    lines = [
        "| error rate of the canary | req/s | runs | promoted | of them beyond +50 % then "
        "| median interval of promotion | rolled back | inconclusive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell, c, at in results:
        median = f"{statistics.median(at):g}" if at else "-"
        lines.append(
            f"| {cell.shape} | {cell.rps:g} | {cell.runs} | {c['promoted']} | {c['promoted beyond']} "
            f"| {median} | {c['rolled back']} | {c['inconclusive']} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = cell_arguments(__doc__, runs=100).parse_args(argv)
    cells = [Cell(shape, rps, args.runs) for shape in SHAPES for rps in RATES]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(judge_cell, cells))
    return emit("\n".join(table(results)), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
