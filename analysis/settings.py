"""Settings of the judge: per-metric direction, tolerance, weight, and the overall error budget.

These are pydantic models so that a rollout spec can embed them (the spec's metric entries extend
`MetricSettings` with their queries) and `canaryflow replay --config` can reuse them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from analysis.observations import MetricType

__all__ = ["AnalysisSettings", "Direction", "MetricSettings"]

#: Which change on the canary is bad: an ``increase`` (errors, latency), a ``decrease``
#: (throughput, conversions) or ``either``.
Direction = Literal["increase", "decrease", "either"]


class MetricSettings(BaseModel):
    """How the judge treats one metric.

    ``tolerance`` is relative: 0.2 means the canary may be up to 20 % worse than the baseline
    (in the metric's bad direction) and still count as within tolerance. ``None`` takes the
    default for the metric's type from `AnalysisSettings`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=63)
    type: MetricType
    direction: Direction = "increase"
    tolerance: float | None = Field(default=None, ge=0.0, le=10.0)
    critical: bool = False
    weight: float = Field(default=1.0, gt=0.0)


class AnalysisSettings(BaseModel):
    """The judge's settings for one analysis (all metrics together)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    metrics: tuple[MetricSettings, ...] = ()
