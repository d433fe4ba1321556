"""End to end: the default judge on the benchmark's scenarios (fixed seeds), A/A and bad canaries.

False rollbacks under continuous monitoring (one look per 30 s interval, 20 minutes) for
canaries that behave like their baseline, including overdispersed tracks, shared incidents and
scrape gaps; and the power on known effects. Slow: about 400 analyses.
"""

from __future__ import annotations

import pytest

from analysis.backtest import judge_log
from bench.scenarios import generate

pytestmark = pytest.mark.slow


def _decisions(family: str, rps: float, runs: int, seed: int) -> list[tuple[str, int]]:
    out = []
    for i in range(runs):
        final = list(judge_log(generate(family, rps, seed + i).log))[-1]
        out.append((final.decision, final.interval))
    return out


@pytest.mark.parametrize("family", ["plain", "overdispersed", "shared-incident", "scrape-gaps"])
def test_aa_false_rollbacks_stay_below_alpha(family: str) -> None:
    decisions = [d for rps in (10.0, 50.0) for d, _ in _decisions(family, rps, 40, seed=90_000)]
    rate = decisions.count("rollback") / len(decisions)
    assert rate <= 0.05, f"{family}: {rate:.3f} false rollbacks"
    assert "promote" in decisions  # and good canaries do get promoted at these traffic levels


@pytest.mark.parametrize(
    ("family", "rps", "within"),
    [
        ("outage", 2.0, 4),
        ("errors-x5", 10.0, 6),
        ("errors-x2", 10.0, 40),
        ("tail-only", 10.0, 6),
        ("latency+25%", 10.0, 6),
    ],
)
def test_bad_canaries_are_rolled_back(family: str, rps: float, within: int) -> None:
    results = _decisions(family, rps, 25, seed=91_000)
    assert all(d == "rollback" and t <= within for d, t in results), results
