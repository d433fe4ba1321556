"""The evidence plan: the formula against a simulation of the test it plans for, and on the
benchmark's scenarios, what the default judge says of it while it runs and how its outcomes follow
the plan."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from analysis.backtest import judge_log
from analysis.outlook import EvidencePlan, required_intervals
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import generate

#: 1 % errors, 10 req/s per track (300 requests per 30 s interval), +50 %, the final look's level.
ORDINARY: dict[str, float] = {
    "rate": 0.01,
    "canary_per_interval": 300.0,
    "baseline_per_interval": 300.0,
    "tolerance": 0.5,
    "level": 0.025,
}


def _needed(**changes: Any) -> float | None:
    return required_intervals(**(ORDINARY | changes))


def test_the_plan_shrinks_with_traffic_and_grows_with_a_tighter_tolerance() -> None:
    at_10 = _needed()
    assert at_10 is not None
    assert _needed(canary_per_interval=1200.0, baseline_per_interval=1200.0) == pytest.approx(at_10 / 4)
    tighter = _needed(tolerance=0.2)
    assert tighter is not None
    assert tighter > 4 * at_10
    assert 25 < at_10 < 40  # about a quarter of an hour


def test_without_events_only_a_ceiling_can_decide() -> None:
    assert _needed(rate=0.0) is None
    with_ceiling = _needed(rate=0.0, ceiling=0.001, ceiling_level=0.005)
    assert with_ceiling is not None
    assert 20 < with_ceiling < 30  # about 6,600 requests: under 0.1 % at level 0.005


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("rate", 1.5, "rate"),
        ("canary_per_interval", 0.0, "requests per interval"),
        ("tolerance", 0.0, "tolerance"),
        ("level", 1.0, "level"),
        ("dispersion", 0.5, "dispersion"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(name: str, value: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _needed(**{name: value})


@pytest.mark.parametrize(("rate", "rps"), [(0.01, 10.0), (0.05, 2.0), (0.5, 10.0)])
def test_after_the_planned_intervals_the_test_shows_an_equal_canary_within_tolerance_four_times_in_five(
    rate: float, rps: float
) -> None:
    """The fixed-horizon test the plan is for (the log ratio of two binomial rates against
    ``log(1 + tol)`` at level 0.025), simulated after the planned number of intervals for a canary
    exactly like its baseline: it rejects "worse than the tolerance" with about the plan's 80 %."""
    per_interval = 30 * rps
    planned = required_intervals(
        rate=rate,
        canary_per_interval=per_interval,
        baseline_per_interval=per_interval,
        tolerance=0.5,
        level=0.025,
    )
    assert planned is not None
    n = round(planned * per_interval)  # (the plan's fraction of an interval too)
    rng = np.random.default_rng(7)
    runs = 20_000
    x, y = rng.binomial(n, rate, runs) + 0.5, rng.binomial(n, rate, runs) + 0.5
    log_ratio = np.log(x / y)
    se = np.sqrt((1 - rate) / x + (1 - rate) / y)
    shown = np.mean((math.log(1.5) - log_ratio) / se >= 1.959964)
    assert 0.77 <= shown <= 0.86, shown


def test_an_undecided_metric_carries_its_plan_and_says_it_and_a_decided_one_does_not() -> None:
    verdicts = list(judge_log(generate("plain", 10.0, 3).log, PRODUCT_SETTINGS))
    early = verdicts[5].metrics["error-rate"]
    assert early.status in ("undecided", "insufficient")
    assert isinstance(early.plan, EvidencePlan)
    assert early.plan.final_interval == 40
    assert early.plan.needed_intervals is not None
    assert f"about {early.plan.needed_intervals} of the 40 intervals" in early.reason
    assert early.to_dict()["plan"] == {"needed_intervals": early.plan.needed_intervals, "final_interval": 40}
    decided = [m for v in verdicts for m in v.metrics.values() if m.status in ("within", "regressed")]
    assert decided
    assert all(m.plan is None and "plan" not in m.to_dict() for m in decided)


def test_at_two_requests_per_second_the_plan_says_at_once_that_twenty_minutes_are_too_short() -> None:
    verdicts = list(judge_log(generate("plain", 2.0, 5).log, PRODUCT_SETTINGS))
    plan = verdicts[5].metrics["error-rate"].plan
    assert plan is not None
    assert not plan.fits
    assert "expect an inconclusive end" in verdicts[5].metrics["error-rate"].reason


@pytest.mark.slow
def test_outcomes_follow_the_plan_made_after_three_minutes() -> None:
    """On good canaries (plain, 2-50 req/s per track, 100 runs each) the plan made at interval 6:
    analyses whose plan fits the 20 minutes end promoted far more often than those whose plan
    does not, and an error-free service at 2 req/s, which the plan says cannot decide, never is."""
    outcomes: dict[bool, list[bool]] = {True: [], False: []}
    for rps in (2.0, 10.0, 50.0):
        for seed in range(100):
            verdicts = list(judge_log(generate("plain", rps, 5_000 + seed).log, PRODUCT_SETTINGS))
            if len(verdicts) < 6:
                continue
            plans = [m.plan for m in verdicts[5].metrics.values() if m.plan is not None]
            fits = all(p.fits for p in plans)
            outcomes[fits].append(verdicts[-1].decision == "promote")
    fitting, long = outcomes[True], outcomes[False]
    assert len(fitting) >= 100
    assert len(long) >= 80
    assert sum(fitting) / len(fitting) >= 0.8
    assert sum(long) / len(long) <= 0.4
    for seed in range(30):
        verdicts = list(judge_log(generate("error-free", 2.0, 6_000 + seed).log, PRODUCT_SETTINGS))
        plan = verdicts[5].metrics["error-rate"].plan
        assert plan is not None
        assert not plan.fits
        assert verdicts[-1].decision != "promote"
