"""The sequential judge: decisions, minimum evidence, missing data, critical metrics, purity."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from analysis.evidence import FINAL_SHARE
from analysis.judge import JudgeState, SequentialJudge, advance, plan_for
from analysis.observations import (
    HistogramCounts,
    IntervalObservations,
    PairedObservation,
    RatioCounts,
    Samples,
)
from analysis.settings import AnalysisSettings, MetricSettings
from analysis.verdicts import Verdict

LE = (0.05, 0.1, 0.25, 0.5, 1.0, math.inf)
ERRORS = MetricSettings(name="errors", type="ratio")
LATENCY = MetricSettings(name="latency", type="histogram")


def _ratio(
    rng: np.random.Generator, requests: int, canary_rate: float, rate: float = 0.01
) -> PairedObservation:
    return PairedObservation(
        baseline=RatioCounts(bad=float(rng.binomial(requests, rate)), total=float(requests)),
        canary=RatioCounts(bad=float(rng.binomial(requests, canary_rate)), total=float(requests)),
    )


def _histogram(rng: np.random.Generator, requests: int, slower: float = 1.0) -> PairedObservation:
    def draw(scale: float) -> HistogramCounts:
        latencies = rng.lognormal(math.log(0.1 * scale), 0.5, requests)
        counts = tuple(float(np.sum(latencies <= b)) for b in LE)
        return HistogramCounts(le=LE, counts=counts)

    return PairedObservation(baseline=draw(1.0), canary=draw(slower))


def _run(judge: SequentialJudge, rows: Iterator[IntervalObservations]) -> list[Verdict]:
    verdicts = []
    for row in rows:
        verdicts.append(judge.update(row))
        if verdicts[-1].final:
            return verdicts
    verdicts.append(judge.finish())
    return verdicts


def _settings(*metrics: MetricSettings, **fields: object) -> AnalysisSettings:
    return AnalysisSettings(metrics=metrics, **fields)  # type: ignore[arg-type]


def test_an_outage_is_rolled_back_without_waiting_for_a_minimum_with_its_evidence() -> None:
    """A rollback needs no minimum of intervals (the e-processes are valid from the first look):
    half the canary's requests failing is decided within two intervals."""
    rng = np.random.default_rng(1)
    judge = SequentialJudge(_settings(ERRORS, LATENCY), interval_seconds=30)
    verdicts = _run(
        judge, ({"errors": _ratio(rng, 300, 0.5), "latency": _histogram(rng, 300)} for _ in range(40))
    )
    final = verdicts[-1]
    assert final.decision == "rollback"
    assert final.interval <= 2
    errors = final.metrics["errors"]
    assert errors.status == "regressed"
    # 0.05 for two metrics: 0.025 each, 70 % of it for the cumulative test (30 % for the detector).
    assert errors.evalue >= errors.rollback_threshold == pytest.approx(1 / (0.025 * 0.7))
    assert errors.interval[0] > 1  # the interval excludes "no worse than the baseline"
    assert errors.interval[0] <= errors.estimate <= errors.interval[1]
    assert errors.pvalue <= 0.025 * 0.7
    assert errors.intervals == final.interval
    assert errors.canary_count == 300 * final.interval
    assert "errors" in final.reason
    assert "regression" in errors.reason


def test_a_good_canary_at_high_traffic_is_promoted_but_not_before_the_minimum_exposure() -> None:
    rng = np.random.default_rng(2)
    judge = SequentialJudge(_settings(ERRORS, LATENCY), interval_seconds=30)
    verdicts = _run(
        judge, ({"errors": _ratio(rng, 3000, 0.01), "latency": _histogram(rng, 1500)} for _ in range(40))
    )
    assert verdicts[-1].decision == "promote"
    assert verdicts[-1].interval >= 10  # min_exposure_seconds 300 / 30 s
    assert all(v.decision == "continue" for v in verdicts[:-1])


def test_no_data_at_all_ends_inconclusive_never_promoted() -> None:
    judge = SequentialJudge(_settings(ERRORS, LATENCY), interval_seconds=30)
    verdicts = _run(judge, ({"errors": None, "latency": None} for _ in range(40)))
    assert [v.decision for v in verdicts[:-1]] == ["continue"] * 39
    assert verdicts[-1].decision == "inconclusive"
    assert verdicts[-1].interval == 40
    assert all(e.status == "no_data" for e in verdicts[-1].metrics.values())


def test_zero_traffic_is_no_data() -> None:
    judge = SequentialJudge(_settings(ERRORS), interval_seconds=30)
    empty = PairedObservation(baseline=RatioCounts(0, 0), canary=RatioCounts(0, 0))
    verdicts = _run(judge, ({"errors": empty} for _ in range(40)))
    assert verdicts[-1].decision == "inconclusive"


def test_a_scrape_gap_gives_no_verdict_and_promotion_waits_for_data() -> None:
    rng = np.random.default_rng(3)
    judge = SequentialJudge(_settings(ERRORS, LATENCY, min_exposure_seconds=600), interval_seconds=30)

    def good() -> IntervalObservations:
        return {"errors": _ratio(rng, 3000, 0.01), "latency": _histogram(rng, 1500)}

    verdicts = [judge.update(good()) for _ in range(19)]  # the minimum exposure is 20 intervals
    assert [v.decision for v in verdicts] == ["continue"] * 19
    assert all(e.status == "within" for e in verdicts[-1].metrics.values())  # shown, waiting for exposure
    gap = judge.update({"errors": _ratio(rng, 3000, 0.01), "latency": None})  # interval 20: a gap
    assert gap.decision == "continue"
    assert "missing data" in gap.reason
    assert judge.update(good()).decision == "promote"


def test_a_regressed_non_critical_metric_below_the_share_blocks_promotion_and_rolls_back_at_the_end() -> None:
    rng = np.random.default_rng(4)
    names = [f"m{i}" for i in range(5)]
    settings = _settings(*(MetricSettings(name=n, type="ratio") for n in names), max_duration_seconds=600)
    rates = {"m0": 0.05}
    judge = SequentialJudge(settings, interval_seconds=30)
    rows = ({n: _ratio(rng, 3000, rates.get(n, 0.01)) for n in names} for _ in range(40))
    verdicts = _run(judge, rows)
    assert [v.decision for v in verdicts[:-1]] == ["continue"] * 19  # 1/5 of the weight < rollback_share 1/4
    assert verdicts[-1].decision == "rollback"
    assert verdicts[-1].interval == 20
    assert verdicts[-1].metrics["m0"].status == "regressed"


def test_a_critical_metric_rolls_back_at_once() -> None:
    rng = np.random.default_rng(4)
    names = [f"m{i}" for i in range(5)]
    metrics = [MetricSettings(name=n, type="ratio", critical=(n == "m0")) for n in names]
    judge = SequentialJudge(_settings(*metrics), interval_seconds=30)
    verdicts = _run(
        judge, ({n: _ratio(rng, 3000, 0.05 if n == "m0" else 0.01) for n in names} for _ in range(40))
    )
    assert verdicts[-1].decision == "rollback"
    assert verdicts[-1].interval <= 5


def test_weights_split_alpha() -> None:
    plan = plan_for(
        _settings(
            MetricSettings(name="a", type="ratio", weight=3.0), MetricSettings(name="b", type="samples")
        ),
        interval_seconds=30,
    )
    assert [m.alpha for m in plan.metrics] == pytest.approx([0.0375, 0.0125])
    assert plan.min_exposure_intervals == 10
    assert plan.max_intervals == 40


def test_samples_metrics_are_judged() -> None:
    rng = np.random.default_rng(5)
    cpu = MetricSettings(name="cpu", type="samples")
    judge = SequentialJudge(_settings(cpu), interval_seconds=30)

    def row() -> IntervalObservations:
        level = float(rng.lognormal(-1.5, 0.3))
        values = lambda f: Samples(values=tuple(level * f * rng.lognormal(0, 0.1, 2)))  # noqa: E731
        return {"cpu": PairedObservation(baseline=values(1.0), canary=values(1.6))}

    assert _run(judge, (row() for _ in range(40)))[-1].decision == "rollback"


def test_advance_is_pure_and_the_judge_refuses_to_go_on_after_a_decision() -> None:
    rng = np.random.default_rng(6)
    plan = plan_for(_settings(ERRORS), interval_seconds=30)
    state = JudgeState.initial(plan)
    row: IntervalObservations = {"errors": _ratio(rng, 300, 0.5)}
    first, verdict = advance(plan, state, row)
    assert state.interval == 0
    assert state.histories[0].process is None
    again, verdict_again = advance(plan, state, row)
    assert again == first
    assert verdict_again.to_dict() == verdict.to_dict()
    judge = SequentialJudge(_settings(ERRORS), interval_seconds=30)
    while not judge.update({"errors": _ratio(rng, 300, 0.5)}).final:
        pass
    with pytest.raises(ValueError, match="the analysis is over"):
        judge.update({"errors": _ratio(rng, 300, 0.5)})


def test_mismatched_observations_are_refused() -> None:
    judge = SequentialJudge(_settings(ERRORS), interval_seconds=30)
    with pytest.raises(ValueError, match="errors"):
        judge.update({"errors": PairedObservation(baseline=Samples((1.0,)), canary=Samples((1.0,)))})


def test_settings_for_a_log_take_the_header_or_must_match_it() -> None:
    from analysis.backtest import settings_for_log
    from analysis.logs import LogFormatError, MetricHeader, ObservationLog

    log = ObservationLog(
        interval_seconds=30,
        metrics={"errors": MetricHeader(type="ratio"), "latency": MetricHeader(type="histogram", le=LE)},
        intervals=(),
    )
    filled = settings_for_log(AnalysisSettings(), log)
    assert [(m.name, m.type) for m in filled.metrics] == [("errors", "ratio"), ("latency", "histogram")]
    with pytest.raises(LogFormatError, match=r"^metrics\.cpu: judged by the settings but not in the log$"):
        settings_for_log(_settings(MetricSettings(name="cpu", type="samples")), log)
    with pytest.raises(LogFormatError, match=r"^metrics\.errors\.type: the log has ratio"):
        settings_for_log(_settings(MetricSettings(name="errors", type="samples")), log)


def _steady(canary_bad: float, baseline_bad: float, requests: float = 300.0) -> IntervalObservations:
    return {
        "errors": PairedObservation(
            baseline=RatioCounts(bad=baseline_bad, total=requests),
            canary=RatioCounts(bad=canary_bad, total=requests),
        )
    }


def test_a_canary_shown_within_tolerance_only_by_the_end_is_promoted_at_the_final_look() -> None:
    """2 errors in 300 requests on both tracks for 20 minutes: too little for the anytime bound,
    enough for the fixed-horizon test at the one pre-set final look (its own share of beta)."""
    judge = SequentialJudge(_settings(ERRORS), interval_seconds=30)
    verdicts = [judge.update(_steady(2, 2)) for _ in range(40)]
    assert [v.decision for v in verdicts[:-1]] == ["continue"] * 39
    before = verdicts[-2].metrics["errors"]
    assert before.status == "undecided"
    assert before.final_pvalue is None  # no final look before the maximum duration
    # beta 0.05: FINAL_SHARE of it for the final look, the rest for the anytime bound
    assert before.promote_evalue < before.promote_threshold == pytest.approx(1 / (0.05 * (1 - FINAL_SHARE)))
    final = verdicts[-1]
    assert (final.decision, final.interval) == ("promote", 40)
    errors = final.metrics["errors"]
    assert errors.status == "within"
    assert errors.promote_evalue < errors.promote_threshold  # the anytime test alone would not
    assert errors.final_pvalue is not None
    assert errors.final_pvalue <= 0.05 * FINAL_SHARE
    assert "final look" in errors.reason
    assert errors.to_dict()["final_pvalue"] == pytest.approx(errors.final_pvalue)


def test_the_final_look_does_not_promote_a_canary_at_its_tolerance_nor_an_analysis_cut_short() -> None:
    at_tolerance = SequentialJudge(_settings(ERRORS), interval_seconds=30)  # 3 vs 2: exactly +50 %
    verdicts = [at_tolerance.update(_steady(3, 2)) for _ in range(40)]
    assert verdicts[-1].decision == "inconclusive"
    assert verdicts[-1].metrics["errors"].final_pvalue == pytest.approx(0.5, abs=0.01)
    cut_short = SequentialJudge(_settings(ERRORS), interval_seconds=30)
    for _ in range(39):
        assert cut_short.update(_steady(2, 2)).decision == "continue"
    ended = cut_short.finish()  # the log ended before the maximum duration: no final look
    assert ended.decision == "inconclusive"
    assert ended.metrics["errors"].final_pvalue is None


def test_no_promotion_at_the_final_look_on_a_scrape_gap() -> None:
    judge = SequentialJudge(_settings(ERRORS), interval_seconds=30)
    for _ in range(39):
        judge.update(_steady(2, 2))
    last = judge.update({"errors": None})
    assert last.decision == "inconclusive"
    assert last.metrics["errors"].final_pvalue is not None  # the final look happened ...
    assert "missing data" in last.reason  # ... but a gap in the last interval blocks the promotion
