"""``canaryflow get``'s detail view: the judge's evidence plan, as the real judge reports it."""

from __future__ import annotations

from analysis.backtest import judge_log
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import generate
from canaryflow.cli.getview import render_rollout
from canaryflow.status import RolloutStatus, VerdictReport


def _status(verdict: VerdictReport) -> RolloutStatus:
    return RolloutStatus(
        rollout_id="web-v2",
        target="shop/web",
        image="web:2",
        spec="config/rollouts/none.yaml",
        triggered_by="test",
        steps=3,
        step=2,
        weight=20,
        verdict=verdict,
    )


def _plan_lines(verdict: VerdictReport) -> list[str]:
    return [line for line in render_rollout(_status(verdict)) if line.startswith("Plan:")]


def test_the_plan_says_early_that_two_requests_per_second_cannot_decide_in_twenty_minutes() -> None:
    verdicts = list(judge_log(generate("plain", 2.0, 5).log, PRODUCT_SETTINGS))
    report = VerdictReport.of(verdicts[5])
    plan = report.metrics["error-rate"].plan
    assert plan is not None
    assert plan.final_interval == 40
    assert plan.needed_intervals is not None
    assert plan.needed_intervals > 40

    assert plan.chance is not None
    assert 0.05 < plan.chance < 0.8  # too little to plan on, too much to give up
    assert _plan_lines(report) == [
        f"Plan:      error-rate needs about {plan.needed_intervals} intervals at this traffic, more than "
        f"the 40 of the maximum duration (chance of a promotion at most {round(100 * plan.chance)} %): "
        "expect an inconclusive end (raise maxDuration or the canary's weight)"
    ]


def test_the_plan_names_the_metric_that_needs_the_most_and_goes_once_all_are_decided() -> None:
    verdicts = list(judge_log(generate("plain", 50.0, 5).log, PRODUCT_SETTINGS))
    report = VerdictReport.of(verdicts[3])
    needed = {name: m.plan.needed_intervals for name, m in report.metrics.items() if m.plan is not None}
    assert needed
    longest = max(needed, key=lambda name: needed[name] or 0)
    (line,) = _plan_lines(report)
    assert line.startswith(f"Plan:      at this traffic about {needed[longest]} of the 40 intervals")
    assert line.endswith(f"({longest} needs the most)")

    last = VerdictReport.of(verdicts[-1])
    assert last.decision == "promote"
    assert _plan_lines(last) == []
