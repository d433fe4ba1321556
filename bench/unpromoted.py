r"""Where the good canaries the judge does not promote stop: what to work on for more promotions.

Usage::

    .venv/bin/python bench/unpromoted.py [--replications R] [--seed N] [--jobs J] [--markdown FILE]

The decision benchmark's good scenarios at >= 10 req/s per track (the same seeds as
``bench/decisions.py``, so the promoted shares are its table's), judged by the product's
defaults. Each run that ends without a promotion is put under the first of these that applies,
for the first metric (in the settings' order) that kept it back:

- ``rolled back``: a false rollback;
- ``gave up``: the evidence plan ended the analysis early (`analysis.judge.GAVE_UP`);
- ``last interval missing``: every metric was within tolerance at the maximum duration, but the
  last interval had missing data (no promotion on missing data);
- ``<metric>: detector``: the metric was shown within tolerance, but its change detector (or its
  guard) leaned towards a regression at the end (`analysis.detection.BLOCK`, ``LAST_BLOCK``);
- ``<metric>: not shown``: neither the anytime test nor the final look showed it within tolerance.

Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.backtest import sequential_judge_for
from analysis.judge import GAVE_UP
from bench.decisions import PRODUCT_SETTINGS, Case, generated_cases
from bench.output import emit
from bench.scenarios import generate

COLUMNS = ("rolled back", "gave up", "last interval missing")


def why(case: Case) -> tuple[str, float, str]:
    """The case's family, traffic and what kept it from a promotion (``promoted`` if nothing)."""
    log = generate(case.family, case.rps, case.seed, history=case.history).log
    judge = sequential_judge_for(log, PRODUCT_SETTINGS)
    verdict = None
    for observations in log.intervals:
        verdict = judge.update(observations)
        if verdict.final:
            break
    if verdict is None or not verdict.final:
        verdict = judge.finish()
    if verdict.decision == "promote":
        return case.family, case.rps, "promoted"
    if verdict.decision == "rollback":
        return case.family, case.rps, "rolled back"
    if verdict.reason.startswith(GAVE_UP):
        return case.family, case.rps, "gave up"
    metrics = list(zip(judge.plan.metrics, judge.state.histories, strict=True))
    open_ = [(m, h) for m, h in metrics if verdict.metrics[m.name].status != "within"]
    if not open_:
        return case.family, case.rps, "last interval missing"
    metric, history = open_[0]
    shown = history.within and history.leans_worse
    return case.family, case.rps, f"{metric.name}: {'detector' if shown else 'not shown'}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replications", type=int, default=150, help="per family and traffic level")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    cases = [c for c in generated_cases(args.replications, args.seed) if not c.bad and c.rps >= 10.0]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(why, cases, chunksize=8))
    cells: dict[tuple[str, float], Counter[str]] = {}
    for family, rps, reason in results:
        cells.setdefault((family, rps), Counter())[reason] += 1
    kinds = sorted({r for _, _, r in results} - {"promoted", *COLUMNS})
    header = ["family", "req/s", "runs", "promoted", *COLUMNS, *kinds]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (family, rps), c in cells.items():
        runs = sum(c.values())
        row = [family, f"{rps:g}", str(runs), f"{100 * c['promoted'] / runs:.1f} %"]
        row += [str(c[k]) for k in (*COLUMNS, *kinds)]
        lines.append("| " + " | ".join(row) + " |")
    total = Counter(r for _, _, r in results)
    runs = len(results)
    lines.append("")
    lines.append(
        f"Over these {runs} runs: promoted {100 * total['promoted'] / runs:.1f} %; "
        + "; ".join(f"{k} {100 * total[k] / runs:.1f} %" for k in (*COLUMNS, *kinds) if total[k])
        + "."
    )
    text = "\n".join(lines)
    return emit(text, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
