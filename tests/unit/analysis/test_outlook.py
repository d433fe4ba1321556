"""The evidence plan: the formula against a simulation of the test it plans for, and on the
benchmark's scenarios, what the default judge says of it while it runs and how its outcomes follow
the plan; the chance of a decision, and the judge giving up on an analysis that has none."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from analysis.backtest import judge_log
from analysis.counts import CountState, count_step
from analysis.judge import GAVE_UP
from analysis.logs import ObservationLog
from analysis.outlook import EvidencePlan, chance_within, rate_bounds, required_intervals
from analysis.settings import AnalysisSettings
from bench.decisions import PRODUCT_SETTINGS
from bench.plans import tight
from bench.scenarios import generate, read_back

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


@pytest.mark.parametrize(("rate", "rps"), [(0.01, 10.0), (0.05, 2.0), (0.5, 0.2)])
def test_after_the_planned_intervals_the_test_shows_an_equal_canary_within_tolerance_four_times_in_five(
    rate: float, rps: float
) -> None:
    """The fixed-horizon test the plan is for (the log ratio of two binomial rates against
    ``log(1 + tol)`` at level 0.025), simulated after the planned number of intervals for a canary
    exactly like its baseline: it rejects "worse than the tolerance" with about the plan's 80 %.
    (The cells plan more intervals than the floor of a studentized look, 7 at this level, which
    a high rate at ordinary traffic would not.)"""
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
    needs = early.plan.needed_intervals
    assert f"by interval 40 at the latest (the final look needs about {needs} " in early.reason
    assert early.plan.chance is not None
    assert early.to_dict()["plan"] == {
        "needed_intervals": early.plan.needed_intervals,
        "final_interval": 40,
        "chance": early.plan.chance,
    }
    decided = [m for v in verdicts for m in v.metrics.values() if m.status in ("within", "regressed")]
    assert decided
    assert all(m.plan is None and "plan" not in m.to_dict() for m in decided)


def test_a_look_read_back_over_looks_without_data_plans_on_the_traffic_per_interval_it_covers() -> None:
    """The same counts with the first four intervals read at the fourth look (three rows without
    data, then one with their sum and ``span`` 4): the plan divides the counts by the intervals they
    cover, as if every look had had its data; counted as one interval, the traffic per interval
    looked higher (4 times at the fourth look, then less) and the plan shorter."""
    log = generate("plain", 10.0, 3).log
    spanned = read_back(log, 4)
    rows = spanned.intervals
    assert [row["error-rate"] is None for row in rows[:5]] == [True, True, True, False, False]
    assert [row["error-rate"].span for row in rows[3:5] if row["error-rate"]] == [4, 1]
    flat = replace(
        log,
        intervals=tuple({n: p if p is None else replace(p, span=1.0) for n, p in r.items()} for r in rows),
    )

    def plans(judged: ObservationLog) -> list[int | None]:
        verdicts = list(judge_log(judged, PRODUCT_SETTINGS))[3:9]
        return [p.needed_intervals if (p := v.metrics["error-rate"].plan) else None for v in verdicts]

    assert None not in plans(log)
    assert plans(spanned) == plans(log)
    assert all(
        f is not None and s is not None and f < s for f, s in zip(plans(flat), plans(log), strict=True)
    )


@pytest.mark.parametrize(("bad", "total"), [(5e-324, 1e-300), (1e-310, 1e-310)])
def test_counts_near_the_smallest_float_get_no_plan_rather_than_a_crash(bad: float, total: float) -> None:
    from analysis.logs import parse_log

    log = parse_log({
        "format": "canaryflow/observations@1", "interval_seconds": 30, "metrics": {"e": {"type": "ratio"}},
        "intervals": [{"e": {"baseline": {"bad": bad, "total": total}, "canary": {"bad": 1, "total": 100}}}],
    })  # fmt: skip
    (verdict,) = judge_log(log)
    plan = verdict.metrics["e"].plan
    assert plan is not None
    assert plan.needed_intervals is None


def test_a_margin_whose_square_underflows_needs_unboundedly_many_intervals() -> None:
    from analysis.outlook import increase_intervals

    need = increase_intervals(
        rate=0.01, canary_per_interval=300, baseline_per_interval=300, margin=5e-324, level=0.02
    )
    assert need == math.inf


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
    does not (measured: 94 % of 170 against 41 % of 130, most of those at 2 req/s), and an
    error-free service at 2 req/s, which the plan says cannot decide, never is."""
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
    assert sum(long) / len(long) <= 0.5
    for seed in range(30):
        verdicts = list(judge_log(generate("error-free", 2.0, 6_000 + seed).log, PRODUCT_SETTINGS))
        plan = verdicts[5].metrics["error-rate"].plan
        assert plan is not None
        assert not plan.fits
        assert verdicts[-1].decision != "promote"


# -- the chance of a decision, and giving up ---------------------------------------------------------


@pytest.mark.parametrize("events", [0, 1, 3, 10, 100, 2_000])
def test_the_rate_bounds_follow_the_exact_poisson_limits_and_err_on_the_favourable_side(events: int) -> None:
    from scipy import stats

    low, high = rate_bounds(events, 1e6)
    exact_high = stats.chi2.ppf(0.95, 2 * (events + 1)) / 2 / 1e6
    assert high == pytest.approx(exact_high, rel=0.015)
    if events == 0:
        assert low == 0.0
    else:
        exact_low = stats.chi2.ppf(0.05, 2 * events) / 2 / 1e6
        assert exact_low * 0.75 <= low <= exact_low * 1.001  # never above: the ceiling's favourable side


def test_at_the_planned_duration_the_chance_is_a_little_under_the_plans_power() -> None:
    """The plan's 80 % is for a normal test of the log ratio; the final test itself (Student's t,
    its uncentred squares) shows an equal canary 70 % of the time there (simulated, 5,000 runs),
    and the chance follows the final test."""
    planned = _needed()
    assert planned is not None
    at_plan = chance_within(**(ORDINARY | {"intervals": math.ceil(planned)}))
    assert 0.65 <= at_plan <= 0.8
    assert _final_test_succeeds(0.01, 300, 300, math.ceil(planned), 0.5, 5_000, 5) == pytest.approx(
        at_plan, abs=0.05
    )
    shorter = chance_within(**(ORDINARY | {"intervals": 10}))
    assert shorter < 0.5 < at_plan


def test_a_final_look_too_short_to_pass_gets_no_chance_and_no_plan_under_its_floor() -> None:
    """The final test's statistic is at most the square root of its intervals: at level 0.025 it
    cannot pass before 7 intervals whatever the traffic. At 500 req/s the normal approximation
    alone would plan 1 interval and give 6 intervals a chance; the simulated test never passes."""
    busy = {"canary_per_interval": 15_000.0, "baseline_per_interval": 15_000.0}
    assert _needed(**busy) == 7
    assert chance_within(**(ORDINARY | busy | {"intervals": 6})) == 0.0
    assert _final_test_succeeds(0.01, 15_000, 15_000, 6, 0.5, 2_000, 6) == 0.0
    assert chance_within(**(ORDINARY | busy | {"intervals": 7})) > 0.5
    assert _final_test_succeeds(0.01, 15_000, 15_000, 7, 0.5, 2_000, 7) > 0.5


def _final_test_succeeds(
    rate: float, canary: int, baseline: int, intervals: int, tolerance: float, runs: int, seed: int
) -> float:
    """How often the final look's fixed-horizon test (`analysis.counts.CountState.final_log_pvalue`,
    as the judge runs it without a learned dispersion bound: each run one unit of the state) shows
    a canary exactly like its baseline within tolerance at level 0.025, simulated."""
    rng = np.random.default_rng(seed)
    state = CountState.initial(runs, tolerance=tolerance, direction="increase")
    for _ in range(intervals):
        x = rng.binomial(canary, rate, runs).astype(float)
        y = rng.binomial(baseline, rate, runs).astype(float)
        state = count_step(state, x, y, float(canary), float(baseline))
    return float(np.mean(state.final_log_pvalue() <= math.log(0.025)))


@pytest.mark.parametrize("rate", [0.001, 0.01, 0.3])
def test_the_chance_follows_a_simulation_of_the_final_test_and_errs_hopeful_where_it_is_small(
    rate: float,
) -> None:
    """Over traffic from 2 to 50 req/s, unequal tracks, 3 to 40 intervals and tolerances from +20 %
    to +100 %, `chance_within` stays within 0.25 of the simulated final test, and wherever it is
    below 15 % it is not below the simulation (beyond its noise): the judge, which gives up below
    ``min_chance``, never gives up on more than it says."""
    gaps, small = [], []
    for canary, baseline in ((60, 60), (300, 1200), (1500, 1500)):
        for intervals in (3, 10, 40):
            for tolerance in (0.2, 1.0):
                shown = _final_test_succeeds(rate, canary, baseline, intervals, tolerance, 3_000, 3)
                chance = chance_within(
                    rate=rate, canary_per_interval=canary, baseline_per_interval=baseline,
                    intervals=intervals, tolerance=tolerance, level=0.025,
                )  # fmt: skip
                gaps.append(chance - shown)
                if chance < 0.15:
                    small.append(chance - shown)
    assert max(abs(gap) for gap in gaps) <= 0.25, gaps
    assert small
    assert min(small) >= -0.015, small


def test_without_events_a_ceiling_is_certain_with_enough_requests_and_hopeless_without() -> None:
    ceiling = {"ceiling": 0.001, "ceiling_level": 0.005}
    # 2 req/s (60 a track per interval): 40 intervals are 2,400 requests, too few to show < 0.1 %
    # at level 0.005 even without a single error (n c must exceed z^2 = 6.6)
    few = {"canary_per_interval": 60.0, "baseline_per_interval": 60.0, "intervals": 40}
    assert chance_within(**(ORDINARY | few | ceiling | {"rate": (0.0, 0.0)})) == 0.0
    assert chance_within(**(ORDINARY | few | ceiling | {"rate": (0.0, 0.0), "intervals": 120})) == 1.0
    # and with the rate's bounds the relative test keeps the chance the upper bound gives it
    relative = chance_within(**(ORDINARY | few | {"rate": 3 / 360}))
    assert chance_within(**(ORDINARY | few | ceiling | {"rate": (0.0, 3 / 360)})) == relative > 0.0


def test_bad_chance_input_is_refused_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="intervals"):
        chance_within(**(ORDINARY | {"intervals": 0}))
    with pytest.raises(ValueError, match="events"):
        rate_bounds(-1, 10)


def test_an_analysis_that_cannot_decide_ends_inconclusive_early_and_says_why() -> None:
    """No errors on either track at 2 req/s with +20 %: a relative tolerance cannot be shown, and
    the judge says so long before the 20 minutes (the default ``min_chance``), but waits the whole
    analysis with ``min_chance`` 0."""
    assert AnalysisSettings().min_chance == 0.05
    log = generate("error-free", 2.0, 3).log
    early = list(judge_log(log, tight()))[-1]
    assert early.decision == "inconclusive"
    assert early.interval < 30
    assert early.reason.startswith("Inconclusive early: at the traffic seen")
    assert "error-rate" in early.reason
    assert "(no events on the baseline and no ceiling" in early.reason
    patient = list(judge_log(log, tight(min_chance=0.0)))
    assert patient[-1].decision == "inconclusive"
    assert patient[-1].interval == 40
    assert all(v.decision == "continue" for v in patient[:-1])


@pytest.mark.slow
def test_the_analyses_the_judge_gives_up_on_would_seldom_have_been_promoted() -> None:
    """Good canaries (plain, error-free, independent overdispersion, shared incident; 2 and 10
    req/s per track; 25 runs each), judged with and without giving up, under the +20 % tolerance
    without ceiling (where giving up happens) and under the product's defaults: of the analyses
    the judge gave up on, fewer than ``min_chance`` would have ended promoted, none at all under
    the defaults, and the rule did fire."""
    gave_up, would_have = 0, 0
    for family in ("plain", "error-free", "independent-overdispersion", "shared-incident"):
        for rps in (2.0, 10.0):
            for seed in range(25):
                log = generate(family, rps, 8_000 + seed).log
                for settings, patient in (
                    (tight(), tight(min_chance=0.0)),
                    (PRODUCT_SETTINGS, PRODUCT_SETTINGS.model_copy(update={"min_chance": 0.0})),
                ):
                    quick = list(judge_log(log, settings))[-1]
                    if quick.decision == "inconclusive" and quick.reason.startswith(GAVE_UP):
                        gave_up += 1
                        promoted = list(judge_log(log, patient))[-1].decision == "promote"
                        would_have += promoted
                        assert not (promoted and settings is PRODUCT_SETTINGS), (family, rps, seed)
    assert gave_up >= 40
    assert would_have / gave_up < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("intervals", [4, 5, 8])
def test_short_analyses_at_high_traffic_lose_no_promotion_to_giving_up(intervals: int) -> None:
    """At high traffic the final look of a short analysis (4 or 5 intervals) cannot show anything
    (its statistic is at most the square root of its intervals, below Student's t quantile on so
    few degrees of freedom), and the judge gives up on it at once; the anytime test cannot promote
    there either (without a stable's history its dispersion bound is still the one fixed in
    advance), so no promotion is lost; at 8 intervals the final look can decide and the judge
    waits."""
    outcomes: dict[tuple[str, str], int] = {}
    for family in ("plain", "independent-overdispersion"):
        for rps in (50.0, 500.0):
            for seed in range(10):
                log = generate(family, rps, 9_000 + seed, history=False).log
                short = PRODUCT_SETTINGS.model_copy(
                    update={"max_duration_seconds": 30.0 * intervals, "min_exposure_seconds": 60.0}
                )
                last = list(judge_log(log, short))[-1]
                quick = last.decision
                if intervals < 8:
                    assert last.reason.startswith(GAVE_UP), last.reason
                    assert last.interval == 3  # the minimum intervals
                patient = list(judge_log(log, short.model_copy(update={"min_chance": 0.0})))[-1].decision
                outcomes[(quick, patient)] = outcomes.get((quick, patient), 0) + 1
    assert outcomes.get(("inconclusive", "promote"), 0) == 0, outcomes
    if intervals == 8:
        assert outcomes.get(("promote", "promote"), 0) >= 10, outcomes


def test_a_latency_plan_counts_every_bound_and_a_share_near_one_keeps_its_chance() -> None:
    """A good canary at 2 req/s: after 3 minutes the latency plan is the longest of its resolved
    bounds' (one has about 92 % of requests slower than it), and that bound's chance is not 0 (its
    most favourable share taken all the way to 1 left the approximation without spread)."""
    verdicts = list(judge_log(generate("plain", 2.0, 70_000).log, PRODUCT_SETTINGS))
    latency = verdicts[5].metrics["latency"]
    assert latency.status == "undecided"
    assert latency.plan is not None
    assert latency.plan.fits
    assert latency.plan.chance is not None
    assert latency.plan.chance > 0.5


def test_each_plan_is_the_longest_of_its_counts_at_their_own_dispersion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A good canary with each track's error rate jittered on its own (10 req/s): at interval 8 the
    error rate's plan is `required_intervals` at the dispersion its counts showed (above 1), and
    the latency's is the longest over the bounds its promotion needs, one call each."""
    import analysis.evidence as evidence

    calls: list[tuple[dict[str, Any], float | None]] = []

    def spy(**kwargs: Any) -> float | None:
        needed = required_intervals(**kwargs)
        calls.append((kwargs, needed))
        return needed

    monkeypatch.setattr(evidence, "required_intervals", spy)
    judged = judge_log(generate("independent-overdispersion", 10.0, 70_001).log, PRODUCT_SETTINGS)
    verdicts, rounds = [], []
    for _ in range(8):
        calls.clear()
        verdicts.append(next(judged))
        rounds.append(list(calls))
    # judge_log yields a verdict once it has judged the next interval (its last one is final), so
    # the plans of verdict 8 were made during the seventh call.
    verdict, calls[:] = verdicts[7], rounds[6]

    error, latency = verdict.metrics["error-rate"].plan, verdict.metrics["latency"].plan
    assert error is not None
    assert latency is not None
    errors = [(kw, n) for kw, n in calls if kw["ceiling"] is not None]
    bounds = [(kw, n) for kw, n in calls if kw["ceiling"] is None]
    assert len(errors) == 1
    assert errors[0][0]["dispersion"] > 1.0
    assert error.needed_intervals == math.ceil(errors[0][1])
    assert len(bounds) >= 2
    assert latency.needed_intervals == math.ceil(max(n for _, n in bounds))
    assert len({kw["tolerance"] for kw, _ in bounds}) == len(bounds)  # each bound its own


def test_the_judge_hands_each_looks_span_to_the_final_look_of_both_count_metrics() -> None:
    spanned = read_back(generate("overdispersed", 50.0, 3).log, 4)
    flat = replace(
        spanned,
        intervals=tuple(
            {n: p if p is None else replace(p, span=1.0) for n, p in r.items()} for r in spanned.intervals
        ),
    )

    def final_pvalues(judged: ObservationLog) -> dict[str, float | None]:
        *_, last = judge_log(judged, PRODUCT_SETTINGS.model_copy(update={"min_chance": 0.0}))
        assert last.interval == 40
        return {name: m.final_pvalue for name, m in last.metrics.items()}

    with_spans, without = final_pvalues(spanned), final_pvalues(flat)
    assert None not in with_spans.values()
    assert with_spans["error-rate"] != without["error-rate"]
    assert with_spans["latency"] != without["latency"]
