"""Settings of the judge: per-metric direction, tolerance, weight, and the overall error budget.

These are pydantic models so that a rollout spec can embed them (the spec's metric entries extend
`MetricSettings` with their queries) and `canaryflow replay --config` can reuse them. Every field
has a default; the defaults are the ones users get, chosen so that the decision benchmark in
``bench/decisions.py`` meets its targets (see ``BENCHMARKS.md``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from analysis.observations import MetricType

__all__ = ["AnalysisSettings", "Direction", "KayentaSettings", "MetricSettings"]

#: Which change on the canary is bad: an ``increase`` (errors, latency), a ``decrease``
#: (throughput, conversions) or ``either``.
Direction = Literal["increase", "decrease", "either"]


class MetricSettings(BaseModel):
    """How the judge treats one metric.

    ``tolerance`` is relative: 0.2 means the canary may be up to 20 % worse than the baseline
    (in the metric's bad direction) and still count as within tolerance. ``None`` takes the
    default for the metric's type from `AnalysisSettings`. What "20 % worse" measures depends on
    the type: the rate for ``ratio`` metrics, every well-resolved quantile (a scale shift of the
    distribution) for ``histogram`` metrics, the mean for ``samples`` metrics. For ``decrease``
    the bound is symmetric on the log scale: within tolerance means at least baseline / (1 + tol).

    ``critical``: a regression on this metric rolls back at once. A regression on a non-critical
    metric rolls back once the regressed non-critical metrics carry at least
    `AnalysisSettings.rollback_share` of the total weight (and in any case blocks promotion).
    ``weight`` is the metric's share of the error budget ``alpha`` (weighted Bonferroni) and of
    that weight sum. ``min_intervals`` and ``min_count`` are the minimum evidence before the metric
    can count as within tolerance (a promotion): intervals with data, and the total of the
    per-track denominators (requests for ``ratio`` and ``histogram``, observations for
    ``samples``) on each track. A regression needs no minimum: the tests are valid at every look.

    ``max_rate`` is an absolute ceiling, such as an SLO's budget. For a ``ratio`` metric it bounds
    the canary's rate: 0.001 means "at most 0.1 % errors is within tolerance, whatever the
    baseline's rate". For a ``histogram`` metric it bounds the share of the canary's requests
    slower than ``slower_than`` (in the metric's unit): ``max_rate: 0.01, slower_than: 0.5`` is
    "at most 1 % of requests slower than 500 ms"; the count is taken above the largest bucket
    bound at or below ``slower_than`` (more requests count as slow, never fewer). The metric is
    then within tolerance when it is shown within the relative tolerance *or* below the ceiling
    (`analysis.ceiling`), each with its share of ``beta``. This is what lets a service with few or
    no errors promote (with no bad events on either track a relative tolerance can never be
    shown), and a latency judged against an SLO rather than against a noisy baseline. A
    regression against the baseline still rolls back.

    ``objective`` and ``max_burn_rate`` give the ceiling as an SLO does: the canary may burn the
    error budget ``1 - objective`` at most ``max_burn_rate`` times as fast as the SLO allows
    (default 1), so ``objective: 0.999, max_burn_rate: 2`` is the ceiling 0.002. Give either
    ``max_rate`` or ``objective``, not both; `ceiling` is the ceiling either way.

    ``max_increase`` is an absolute tolerance for a ``ratio`` metric, a difference of rates:
    0.005 means "at most half a percentage point more bad events than the baseline". The metric
    is then also within tolerance once the largest increase the data allow is below it, or at
    the maximum duration when a fixed-horizon test of the difference rejects "worse than it"
    (`analysis.increase`), the two at their own share of ``beta``. It suits services whose rate is so low
    that a relative tolerance takes hours to show. For a ``histogram`` metric it is a latency in
    the metric's unit: 0.02 (seconds) means "every well-resolved quantile at most 20 ms slower than
    the baseline's", where that allows more than the relative tolerance (`analysis.histogram`:
    the promotion test counts the canary above the larger of the two; no share of ``beta``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=63)
    type: MetricType
    direction: Direction = "increase"
    tolerance: float | None = Field(default=None, ge=0.0, le=10.0)
    critical: bool = False
    weight: float = Field(default=1.0, gt=0.0)
    min_intervals: int | None = Field(default=None, ge=1, le=10_000)
    min_count: float = Field(default=0.0, ge=0.0)
    max_rate: float | None = Field(default=None, gt=0.0, lt=1.0)
    slower_than: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    max_increase: float | None = Field(default=None, ge=1e-9, allow_inf_nan=False)
    objective: float | None = Field(default=None, gt=0.0, lt=1.0)
    max_burn_rate: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)

    @field_validator("max_rate")
    @classmethod
    def _ceiling_for_rates(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind, direction = info.data.get("type"), info.data.get("direction")
        if value is not None and kind not in ("ratio", "histogram"):
            raise ValueError(f"a ceiling applies to ratio and histogram metrics, not to {kind} metrics")
        if value is not None and direction != "increase":
            raise ValueError("a ceiling bounds the canary's rate from above: it needs direction increase")
        return value

    @field_validator("max_increase")
    @classmethod
    def _increase_of_rates(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind, direction = info.data.get("type"), info.data.get("direction")
        if value is None:
            return value
        if kind not in ("ratio", "histogram"):
            raise ValueError(
                f"an absolute tolerance applies to ratio and histogram metrics, not to {kind} metrics"
            )
        if direction != "increase":
            raise ValueError("an absolute tolerance bounds an increase: it needs direction increase")
        if kind == "ratio" and value >= 1.0:
            raise ValueError(f"a ratio's absolute tolerance is a difference of rates, below 1: got {value:g}")
        return value

    @property
    def ceiling(self) -> float | None:
        """The ceiling on the canary's rate: ``max_rate``, or the SLO's budget times its burn rate."""
        if self.objective is not None:
            return (1.0 - self.objective) * (self.max_burn_rate if self.max_burn_rate is not None else 1.0)
        return self.max_rate

    @model_validator(mode="after")
    def _service_level(self) -> MetricSettings:
        if self.max_burn_rate is not None and self.objective is None:
            raise ValueError("maxBurnRate needs objective: the SLO's target share of good events, e.g. 0.999")
        if self.objective is None:
            return self
        if self.max_rate is not None:
            raise ValueError("give maxRate, or objective (with maxBurnRate), not both: both set the ceiling")
        if self.type not in ("ratio", "histogram") or self.direction != "increase":
            raise ValueError(
                "an SLO ceiling (objective) applies to ratio and histogram metrics with direction increase"
            )
        ceiling = self.ceiling
        if ceiling is not None and ceiling >= 1.0:
            raise ValueError(
                f"the SLO ceiling (1 - objective) * maxBurnRate is {ceiling:g}: it must be below 1"
            )
        return self

    @model_validator(mode="after")
    def _slow_requests(self) -> MetricSettings:
        histogram = self.type == "histogram"
        if histogram and self.ceiling is not None and self.slower_than is None:
            raise ValueError(
                "a histogram's ceiling (maxRate) needs slowerThan: the latency above which requests count"
            )
        if self.slower_than is not None and not (histogram and self.ceiling is not None):
            raise ValueError("slowerThan goes with maxRate (or objective), on a histogram metric")
        return self


class KayentaSettings(BaseModel):
    """Settings of the ``kayenta`` judge (a re-implementation of Spinnaker Kayenta's NetflixACAJudge).

    The defaults are Kayenta's: Mann-Whitney with the Hodges-Lehmann interval at 98 % and a
    tolerance of 25 % of the estimate, effect size ``meanRatio`` with allowed increase and decrease
    1.0, and score thresholds marginal 75 / pass 95. ``checkpoint_seconds`` is how often the
    canary stage asks the judge (Spinnaker's interval); ``histogram_quantile`` is the per-interval
    point taken from a histogram (``histogram_quantile()`` in PromQL).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    confidence: float = Field(default=0.98, gt=0.5, lt=1.0)
    tolerance: float = Field(default=0.25, ge=0.0)
    allowed_increase: float = Field(default=1.0, ge=1.0)
    allowed_decrease: float = Field(default=1.0, gt=0.0, le=1.0)
    marginal_score: float = Field(default=75.0, ge=0.0, le=100.0)
    pass_score: float = Field(default=95.0, ge=0.0, le=100.0)
    checkpoint_seconds: float = Field(default=300.0, gt=0.0)
    histogram_quantile: float = Field(default=0.99, gt=0.0, lt=1.0)


class AnalysisSettings(BaseModel):
    """The judge's settings for one analysis (all metrics together).

    ``alpha`` bounds the probability of rolling back a canary that behaves like its baseline,
    over the whole analysis, all metrics and all looks together. ``beta`` bounds, per metric, the
    probability of calling a metric within tolerance when it is worse than its tolerance (so the
    probability of promoting such a canary). ``max_duration_seconds`` ends the analysis
    (inconclusive unless decided); ``min_exposure_seconds`` is the earliest promotion.
    ``metrics`` may be empty: then the metrics come from the observation log's header with the
    per-type defaults below. ``min_chance``: the analysis ends inconclusive as soon as some ratio
    metric's chance of being shown within tolerance by ``max_duration_seconds`` (for a canary
    like its baseline, at the most favourable rate the data allow: `analysis.outlook`) is below
    it; 0 never gives up.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, ge=1e-12, lt=0.5)
    metrics: tuple[MetricSettings, ...] = ()
    beta: float = Field(default=0.05, ge=1e-12, lt=0.5)
    max_duration_seconds: float = Field(default=1200.0, gt=0.0)
    min_exposure_seconds: float = Field(default=300.0, ge=0.0)
    min_intervals: int = Field(default=3, ge=1, le=10_000)
    ratio_tolerance: float = Field(default=0.5, ge=0.0, le=10.0)
    #: +20 % at every well-resolved quantile: at +10 % the judge could not show a latency whose scale
    #: wanders on each track from minute to minute (the benchmark's independent overdispersion)
    #: within tolerance in 20 minutes for a quarter to two thirds of good canaries at any traffic,
    #: and no valid judge could for a third of the noisiest; a canary measurably slower is still
    #: rolled back, since the rollback test has no tolerance (BENCHMARKS.md).
    histogram_tolerance: float = Field(default=0.2, ge=0.0, le=10.0)
    samples_tolerance: float = Field(default=0.2, ge=0.0, le=10.0)
    rollback_share: float = Field(default=0.25, gt=0.0, le=1.0)
    min_chance: float = Field(default=0.05, ge=0.0, lt=1.0)
    kayenta: KayentaSettings = KayentaSettings()

    def tolerance_for(self, metric: MetricSettings) -> float:
        """The metric's tolerance, or the default for its type."""
        if metric.tolerance is not None:
            return metric.tolerance
        defaults = {
            "ratio": self.ratio_tolerance,
            "histogram": self.histogram_tolerance,
            "samples": self.samples_tolerance,
        }
        return defaults[metric.type]

    def min_intervals_for(self, metric: MetricSettings) -> int:
        """The metric's minimum number of intervals with data before it can count as within tolerance."""
        return metric.min_intervals if metric.min_intervals is not None else self.min_intervals
