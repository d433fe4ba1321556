"""Metric entries of a rollout spec: the judge's `MetricSettings` plus Prometheus query templates.

One class per metric type, told apart by ``type``:

- ``ratio``: ``bad`` and ``total``, each a template that returns one number (events in the window);
- ``histogram``: ``query`` returns series by ``le`` (cumulative bucket counts in the window);
- ``samples``: ``query`` returns a vector, one value per series (e.g. per pod).

Templates use ``{namespace} {app} {track} {interval} {cell}`` (see `canaryflow.querytemplates`); an unknown
variable is an error, and so is a template without ``{track}``, which could not tell the canary from
the baseline. Nothing here queries anything.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from analysis.settings import MetricSettings
from canaryflow.querytemplates import VARIABLES, unknown_variables, variables

__all__ = [
    "DEFAULT_ERROR_CEILING",
    "DEFAULT_METRICS",
    "HistogramMetric",
    "MetricSpec",
    "QueryTemplate",
    "RatioMetric",
    "SamplesMetric",
]


def _check_template(template: str) -> str:
    unknown = unknown_variables(template)
    if unknown:
        names = ", ".join("{" + name + "}" for name in unknown)
        allowed = " ".join("{" + name + "}" for name in sorted(VARIABLES))
        raise ValueError(f"unknown template variable {names} (allowed: {allowed})")
    if "track" not in variables(template):
        raise ValueError("must select by {track}, or canary and baseline cannot be told apart")
    return template


#: A PromQL template; its variables are checked when the spec is loaded.
QueryTemplate = Annotated[str, Field(min_length=1), AfterValidator(_check_template)]

_CONFIG = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)


class RatioMetric(MetricSettings):
    """``bad`` events out of ``total`` events per window (e.g. 5xx responses out of all responses)."""

    model_config = _CONFIG

    type: Literal["ratio"]
    bad: QueryTemplate
    total: QueryTemplate

    def templates(self) -> dict[str, str]:
        """Role -> query template (``bad``, ``total``)."""
        return {"bad": self.bad, "total": self.total}


class HistogramMetric(MetricSettings):
    """Cumulative bucket counts per ``le`` in the window (e.g. request latency)."""

    model_config = _CONFIG

    type: Literal["histogram"]
    query: QueryTemplate
    unit: str = Field(default="seconds", min_length=1, max_length=32)

    def templates(self) -> dict[str, str]:
        """Role -> query template (``query``)."""
        return {"query": self.query}

    @model_validator(mode="after")
    def _latency_shift_in_its_unit(self) -> HistogramMetric:
        """A latency's absolute tolerance is in the metric's unit: ``maxIncrease: 20`` meant as
        20 ms on a histogram in seconds would be 20 s and promote nearly any canary, so a second
        or more is refused for a unit of time."""
        per_second = _PER_SECOND.get(self.unit.lower())
        if self.max_increase is None or per_second is None or self.max_increase < per_second:
            return self
        raise ValueError(
            f"maxIncrease {self.max_increase:g} on a histogram in {self.unit} is "
            f"{self.max_increase / per_second:g} s, which lets nearly any canary through: give it in "
            f"{self.unit}, below a second (20 ms is {0.02 * per_second:g})"
        )


class SamplesMetric(MetricSettings):
    """A few values per window, one per series (e.g. CPU seconds per second of each pod)."""

    model_config = _CONFIG

    type: Literal["samples"]
    query: QueryTemplate

    def templates(self) -> dict[str, str]:
        """Role -> query template (``query``)."""
        return {"query": self.query}


#: Units of time a histogram may be in, and how many of them make a second.
_PER_SECOND = {
    "seconds": 1.0,
    "second": 1.0,
    "s": 1.0,
    "milliseconds": 1000.0,
    "millisecond": 1000.0,
    "ms": 1000.0,
}

#: One metric entry of a spec, chosen by its ``type``.
MetricSpec: TypeAlias = Annotated[RatioMetric | HistogramMetric | SamplesMetric, Field(discriminator="type")]

_SELECTOR = 'namespace="{namespace}", app="{app}", track="{track}"{cell}'

#: The default error-rate metric's ceiling: a canary shown below 0.1 % errors is within tolerance
#: whatever its baseline's rate, so that a service without errors can promote (`analysis.ceiling`).
DEFAULT_ERROR_CEILING = 0.001

#: The metrics every app instrumented like the example app (and the traffic simulator) exposes.
DEFAULT_METRICS: tuple[RatioMetric | HistogramMetric | SamplesMetric, ...] = (
    RatioMetric.model_validate(
        {
            "name": "error-rate",
            "type": "ratio",
            "critical": True,
            "maxRate": DEFAULT_ERROR_CEILING,
            "bad": f'sum(increase(http_requests_total{{{_SELECTOR}, code=~"5.."}}[{{interval}}]))',
            "total": f"sum(increase(http_requests_total{{{_SELECTOR}}}[{{interval}}]))",
        }
    ),
    HistogramMetric(
        name="latency",
        type="histogram",
        query=f"sum by (le) (increase(http_request_duration_seconds_bucket{{{_SELECTOR}}}[{{interval}}]))",
    ),
)
