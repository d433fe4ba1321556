r"""One-interval crashes amid every kind of noise of the decision benchmark: is any promoted?

Usage::

    .venv/bin/python bench/crash_noise.py [--runs N] [--jobs J] [--markdown FILE]

The decision benchmark's ``one-interval-crash`` family crashes on plain traffic: every request of
the canary fails for one interval between the 3rd and the 8th. Here the same crash comes amid the
noise of each good family of the benchmark and of query gaps (`bench.scenarios`): independent and
strong independent overdispersion (the crash's failure rate is then jittered like any other rate, so a
crash may fail only part of the requests), a shared incident, scrape gaps (the crash may fall in a
gap, and Prometheus never scraped it), query gaps (the same gaps where Prometheus kept scraping and
only its answers failed: the rollout reads the counters over the gap at the metric's next look with
data, `flows.judging`), extrapolated counts; at 10, 50 and 500 req/s per track, judged by
the product's defaults (`bench.decisions.PRODUCT_SETTINGS`) with the warm-up learned from the
stable's history. For each cell it counts the runs promoted (the error this measures), rolled
back (and of those, within 2 intervals of the crash) and inconclusive (rolled back at the end
under the default policy). Seeds are ``900000 + i`` for run ``i``, the same in every cell.
Simulated traffic; deterministic.
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
from bench.scenarios import FAMILIES, generate

NOISES = (
    "plain",
    "independent-overdispersion",
    "strong-independent-overdispersion",
    "shared-incident",
    "scrape-gaps",
    "query-gaps",
    "extrapolated",
)
RATES = (10.0, 50.0, 500.0)
CRASH = FAMILIES["one-interval-crash"]


@dataclass(frozen=True)
class Cell:
    noise: str
    rps: float
    runs: int


def judge_cell(cell: Cell) -> tuple[Cell, Counter[str]]:
    counts: Counter[str] = Counter()
    for i in range(cell.runs):
        scenario = generate(cell.noise, cell.rps, 900_000 + i, truth=CRASH)
        assert scenario.bad_from is not None
        final = list(judge_log(scenario.log, PRODUCT_SETTINGS))[-1]
        if final.decision == "rollback":
            counts["rolled back"] += 1
            counts["within 2"] += final.interval - scenario.bad_from <= 2  # 1: on the crash itself
        else:
            counts["promoted" if final.decision == "promote" else "inconclusive"] += 1
    return cell, counts


def table(results: Sequence[tuple[Cell, Counter[str]]]) -> list[str]:
    lines = [
        "| noise | req/s | runs | promoted | rolled back (within 2 intervals) | inconclusive |",
        "|---|---|---|---|---|---|",
    ]
    for cell, c in results:
        lines.append(
            f"| {cell.noise} | {cell.rps:g} | {cell.runs} | {c['promoted']} "
            f"| {c['rolled back']} ({c['within 2']}) | {c['inconclusive']} |"
        )
    promoted = sum(c["promoted"] for _, c in results)
    runs = sum(cell.runs for cell, _ in results)
    lines += ["", f"Promoted: {promoted} of {runs}."]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = cell_arguments(__doc__, runs=200).parse_args(argv)
    cells = [Cell(noise, rps, args.runs) for noise in NOISES for rps in RATES]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(judge_cell, cells))
    return emit("\n".join(table(results)), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
