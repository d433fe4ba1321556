"""The ceiling test: valid at its boundary under the jitter it allows, quick when the canary is clean,
and what it changes in the judge (a service without errors can promote; a canary above the
ceiling cannot promote through it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from analysis.backtest import judge_log
from analysis.ceiling import JITTER_VARIANCE, CeilingState, ceiling_log_factor
from analysis.judge import SequentialJudge
from analysis.settings import AnalysisSettings, MetricSettings
from bench.scenarios import LATENCY_SIGMA, MEDIAN_LATENCY, Truth, generate

BETA = 0.05
THRESHOLD = math.log(1 / 0.005)  # the judge's default: CEILING_SHARE (0.1) of beta 0.05


def _crossings(
    rate: float, requests: int, jitter_sd: float, *, runs: int, looks: int, seed: int
) -> list[int]:
    """For each run, the look at which the e-value first reached 1/0.005 (0: never)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        state, crossed = CeilingState(0.01), 0
        factors = rng.lognormal(-(jitter_sd**2) / 2, jitter_sd, looks) if jitter_sd else np.ones(looks)
        for look in range(1, looks + 1):
            n = int(rng.poisson(requests))
            state = state.step(float(rng.binomial(n, min(1.0, rate * factors[look - 1]))), float(n))
            if state.log_evalue >= THRESHOLD:
                crossed = look
                break
        out.append(crossed)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("requests", "jitter_sd", "looks"),
    [(60, 0.0, 40), (300, 0.3, 40), (1_500, 0.5, 40), (15_000, 0.5, 40), (300, 0.5, 240)],
    ids=["2 rps binomial", "10 rps jitter 0.3", "50 rps jitter 0.5", "500 rps jitter 0.5", "240 looks"],
)
def test_a_canary_at_the_ceiling_is_shown_below_it_in_at_most_its_share_of_beta(
    requests: int, jitter_sd: float, looks: int
) -> None:
    # The boundary of the null (the canary's mean rate exactly at the ceiling), with the largest
    # jitter the allowance covers: the crossing rate must stay below the test's level, 0.005.
    runs = 2_000
    crossed = _crossings(0.01, requests, jitter_sd, runs=runs, looks=looks, seed=7)
    rate = sum(c > 0 for c in crossed) / runs
    # the level is 0.005; allow the binomial noise of 2,000 runs (3 standard errors)
    assert rate <= 0.005 + 3 * math.sqrt(0.005 * 0.995 / runs), rate


def test_a_canary_well_below_the_ceiling_is_shown_below_it_within_minutes() -> None:
    # Without a single error at 10 req/s, five intervals; at a tenth of the ceiling, a few more.
    clean = _crossings(0.0, 300, 0.3, runs=50, looks=40, seed=8)
    assert all(0 < c <= 5 for c in clean), clean
    low = _crossings(0.001, 300, 0.3, runs=50, looks=40, seed=9)
    assert all(c > 0 for c in low), low
    assert float(np.median(low)) <= 8, low


def test_no_interval_counts_for_more_than_the_jitter_allows() -> None:
    # A jitter of variance v may zero the rate for v/(1+v) of the intervals: one clean interval
    # proves at most (1+v)/v, however many requests it had.
    most = math.exp(ceiling_log_factor(0, 10**9, ceiling=0.01, bet=12.0))
    assert most == pytest.approx((1 + JITTER_VARIANCE) / JITTER_VARIANCE, rel=1e-6)


def test_a_rate_at_or_above_the_ceiling_makes_no_bet_and_errors_lower_the_evalue() -> None:
    state = CeilingState(0.01).step(50.0, 1_000.0)  # 5 %: far above the ceiling
    assert state.bet(1_000.0) == 0.0
    assert state.step(50.0, 1_000.0).log_evalue == state.log_evalue
    clean = CeilingState(0.01).step(0.0, 1_000.0)
    assert clean.log_evalue > 0
    assert clean.step(30.0, 1_000.0).log_evalue < clean.log_evalue


@pytest.mark.parametrize("ceiling", [0.0, 1.0, -0.1, math.nan])
def test_the_ceiling_must_be_a_rate(ceiling: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        CeilingState(ceiling)


def test_max_rate_is_refused_where_a_ceiling_means_nothing() -> None:
    with pytest.raises(ValidationError, match="applies to ratio and histogram metrics, not to samples"):
        MetricSettings(name="cpu", type="samples", max_rate=0.01)
    with pytest.raises(ValidationError, match="needs direction increase"):
        MetricSettings(name="conversions", type="ratio", direction="decrease", max_rate=0.01)


def _settings(max_rate: float | None) -> AnalysisSettings:
    return AnalysisSettings(
        metrics=(
            MetricSettings(name="error-rate", type="ratio", max_rate=max_rate),
            MetricSettings(name="latency", type="histogram"),
        )
    )


def test_a_service_without_errors_promotes_with_a_ceiling_and_never_without() -> None:
    # No bad event on either track: a relative tolerance can never be shown; the ceiling can.
    with_ceiling, without = [], []
    for seed in range(10):
        log = generate("error-free", 10.0, 500 + seed).log
        with_ceiling.append(list(judge_log(log, _settings(0.001)))[-1])
        without.append(list(judge_log(log, _settings(None)))[-1].decision)
    assert [v.decision for v in with_ceiling] == ["promote"] * 10
    assert set(without) == {"inconclusive"}
    evidence = with_ceiling[0].metrics["error-rate"]
    assert evidence.ceiling_evalue is not None
    assert evidence.ceiling_evalue >= 200
    assert "below the 0.10 % ceiling" in evidence.reason
    assert evidence.to_dict()["ceiling_evalue"] == pytest.approx(evidence.ceiling_evalue)


def test_a_canary_above_the_ceiling_of_an_error_free_service_is_never_promoted() -> None:
    decisions = [
        list(judge_log(generate("errors-on-error-free", rps, 600 + seed).log, _settings(0.001)))[-1].decision
        for rps in (2.0, 10.0, 50.0)
        for seed in range(15)
    ]
    assert "promote" not in decisions
    assert decisions.count("rollback") >= 30, decisions


def test_without_a_ceiling_the_evidence_carries_none() -> None:
    log = generate("plain", 10.0, 1).log
    evidence = list(judge_log(log, _settings(None)))[-1].metrics["error-rate"]
    assert evidence.ceiling_evalue is None
    assert "ceiling_evalue" not in evidence.to_dict()


# -- a latency SLO: a histogram's share of slow requests ----------------------------------------

SLOW = 0.25  # a Prometheus default bucket bound, in seconds


def _slow_share(latency_factor: float, jitter_sd: float) -> float:
    """The mean share of requests slower than `SLOW` in the benchmark's latency model (log-normal,
    median 100 ms, sigma 0.5) when each interval's scale is a mean-one log-normal with `jitter_sd`."""
    from scipy import integrate, stats

    def share(log_scale: float) -> float:
        median = MEDIAN_LATENCY * latency_factor * math.exp(log_scale)
        return float(stats.norm.sf((math.log(SLOW) - math.log(median)) / LATENCY_SIGMA))

    if jitter_sd == 0:
        return share(0.0)
    density = stats.norm(-(jitter_sd**2) / 2, jitter_sd)
    value, _ = integrate.quad(lambda z: share(z) * density.pdf(z), -8 * jitter_sd, 8 * jitter_sd)
    return float(value)


def _latency_slo(max_rate: float | None) -> AnalysisSettings:
    # A relative tolerance of +10 % beside the ceiling: tighter than the default +20 %.
    return AnalysisSettings(
        metrics=(
            MetricSettings(name="error-rate", type="ratio", max_rate=0.001),
            MetricSettings(
                name="latency",
                type="histogram",
                tolerance=0.1,
                max_rate=max_rate,
                slower_than=None if max_rate is None else SLOW,
            ),
        )
    )


def test_a_latency_slo_shows_what_a_noisy_baseline_cannot() -> None:
    # Each track's latency scale jitters by 20 % every interval: a +10 % relative tolerance is
    # shown in 20 minutes at 10 req/s in about half of the runs; "at most 8 % slower than 250 ms"
    # (the truth is about 3.5 %) in nearly all.
    def latency(settings: AnalysisSettings | None) -> list[str]:
        logs = [generate("strong-independent-overdispersion", 10.0, 700 + i).log for i in range(12)]
        return [list(judge_log(log, settings))[-1].metrics["latency"].status for log in logs]

    relative = latency(_latency_slo(None))
    with_slo = latency(_latency_slo(0.08))
    assert with_slo.count("within") >= 9, with_slo
    assert with_slo.count("within") >= relative.count("within") + 3, (relative, with_slo)
    log = generate("strong-independent-overdispersion", 10.0, 703).log
    evidence = list(judge_log(log, _latency_slo(0.08)))[-1].metrics["latency"]
    assert evidence.status == "within"
    assert "below the 8.00 % of requests slower than 0.25 seconds ceiling" in evidence.reason


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "rps", "jitter_sd"), [("plain", 10.0, 0.0), ("independent-overdispersion", 50.0, 0.1)]
)
def test_a_canary_at_its_latency_slo_and_tolerance_is_promoted_in_at_most_beta_of_runs(
    family: str, rps: float, jitter_sd: float
) -> None:
    # The boundary for both routes: +10 % latency (the relative tolerance) and a ceiling set to
    # exactly that canary's mean share of slow requests.
    truth = Truth(latency_factor=1.1)
    settings = _latency_slo(_slow_share(1.1, jitter_sd))
    runs = 200
    decisions = [
        list(judge_log(generate(family, rps, 95_000 + i, truth=truth).log, settings))[-1].decision
        for i in range(runs)
    ]
    assert decisions.count("promote") / runs <= BETA, decisions.count("promote")


def test_a_histogram_ceiling_needs_its_latency_and_counts_conservatively() -> None:
    with pytest.raises(ValidationError, match="needs slowerThan"):
        MetricSettings(name="latency", type="histogram", max_rate=0.01)
    with pytest.raises(ValidationError, match="slowerThan goes with maxRate"):
        MetricSettings(name="error-rate", type="ratio", slower_than=0.5)
    # 0.3 s is not a bucket bound: requests are counted above 0.25 s, so more count as slow
    from analysis.evidence import _slow_requests
    from analysis.observations import HistogramCounts

    counts = HistogramCounts(le=(0.1, 0.25, 0.5, math.inf), counts=(50.0, 80.0, 95.0, 100.0))
    assert _slow_requests(counts, 0.3) == 20.0
    assert _slow_requests(counts, 0.25) == 20.0
    assert _slow_requests(counts, 0.05) is None


# -- the ceiling as an SLO: objective and burn rate ---------------------------------------------


def test_an_slo_with_a_burn_rate_is_the_ceiling_it_implies() -> None:
    slo = MetricSettings(name="error-rate", type="ratio", objective=0.999, max_burn_rate=2.0)
    assert slo.ceiling == pytest.approx(0.002)
    assert MetricSettings(name="error-rate", type="ratio", objective=0.999).ceiling == pytest.approx(0.001)
    assert MetricSettings(name="error-rate", type="ratio", max_rate=0.003).ceiling == 0.003
    settings = AnalysisSettings(metrics=(slo, MetricSettings(name="latency", type="histogram")))
    plan = SequentialJudge(settings, interval_seconds=30.0).plan.metrics[0]
    assert plan.max_rate == pytest.approx(0.002)
    assert plan.ceiling_beta == pytest.approx(BETA * 0.1)


def test_a_service_without_errors_promotes_with_an_slo_as_with_its_ceiling() -> None:
    slo = AnalysisSettings(
        metrics=(
            MetricSettings(name="error-rate", type="ratio", objective=0.9995, max_burn_rate=2.0),
            MetricSettings(name="latency", type="histogram"),
        )
    )
    for seed in range(5):
        log = generate("error-free", 10.0, 500 + seed).log
        with_slo = list(judge_log(log, slo))[-1]
        with_ceiling = list(judge_log(log, _settings(0.001)))[-1]
        assert (with_slo.decision, with_slo.interval) == (with_ceiling.decision, with_ceiling.interval)
        assert with_slo.decision == "promote"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "ratio", "max_burn_rate": 2.0}, "maxBurnRate needs objective"),
        ({"type": "ratio", "objective": 0.999, "max_rate": 0.01}, "give maxRate, or objective"),
        ({"type": "samples", "objective": 0.999}, "applies to ratio and histogram metrics"),
        ({"type": "ratio", "direction": "decrease", "objective": 0.999}, "direction increase"),
        ({"type": "ratio", "objective": 0.5, "max_burn_rate": 3.0}, "it must be below 1"),
        ({"type": "histogram", "objective": 0.99}, "needs slowerThan"),
    ],
)
def test_an_slo_ceiling_is_refused_where_it_means_nothing(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MetricSettings.model_validate({"name": "m", **fields})
