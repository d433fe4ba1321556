r"""What the metrics source saw for one metric, one track, one interval.

These are the values the judge consumes and the observation log (``canaryflow/observations@1``)
records. Counts are what happened *within* the interval (they may be fractional: Prometheus'
``increase()`` extrapolates). Histogram counts are cumulative over ``le`` like Prometheus buckets,
so the last count is the total.

Each type answers the questions every consumer asks in one place, so that nobody switches on the
type: its `kind` (the metric type it serves), whether it `has_data`, the `row` of numbers the
judge keeps per interval, whether those are `finite`, the same observation with float numbers
(`as_floats`), a short description for people (`describe`), and the points a chart plots
(`chart_points`). `HistogramCounts.quantile` is the project's one histogram quantile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

__all__ = [
    "HistogramCounts",
    "IntervalObservations",
    "MetricType",
    "PairedObservation",
    "RatioCounts",
    "Samples",
    "TrackObservation",
    "percent",
]

MetricType: TypeAlias = Literal["ratio", "histogram", "samples"]


def percent(rate: float) -> str:
    """`rate` (a fraction) in percent, e.g. ``0.93 %``; below 0.1 % to two significant digits
    (``0.0037 %``, never ``0.00 %`` for a rate that is not 0); ``n/a`` when not finite."""
    if not math.isfinite(rate):
        return "n/a"
    p = 100 * rate
    if p == 0 or abs(p) >= 0.1:
        return f"{p:.2f} %"
    digits = 1 - math.floor(math.log10(abs(p)))
    return f"{p:.{digits}f} %" if digits <= 12 else f"{p:.1e} %"


def _count(value: float) -> str:
    """An event count: whole from 100 on (``2,491,000``), one decimal below when not whole
    (``0.4``: a low-traffic interval's extrapolated count rounds to a misleading 0)."""
    return f"{value:,.0f}" if abs(value) >= 100 or value == round(value) else f"{value:.1f}"


def _g(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "-"


@dataclass(frozen=True, slots=True)
class RatioCounts:
    """``bad`` events out of ``total`` within one interval, or the window of a look read back over
    looks without data (`PairedObservation.span`); e.g. 5xx responses out of requests."""

    kind: ClassVar[MetricType] = "ratio"

    bad: float
    total: float

    @property
    def rate(self) -> float:
        """``bad / total`` (nan without events)."""
        return self.bad / self.total if self.total > 0 else math.nan

    @property
    def has_data(self) -> bool:
        return self.total > 0

    @property
    def row(self) -> tuple[float, ...]:
        return (self.bad, self.total)

    @property
    def finite(self) -> bool:
        return math.isfinite(self.bad) and math.isfinite(self.total)

    def as_floats(self) -> RatioCounts:
        return RatioCounts(bad=float(self.bad), total=float(self.total))

    def describe(self) -> str:
        """E.g. ``3/600 (0.50 %)``; the counts to the nearest whole one (Prometheus's ``increase()``
        extrapolates them to the window's edges)."""
        return f"{_count(self.bad)}/{_count(self.total)} ({percent(self.rate)})"

    def chart_points(self) -> dict[str, float]:
        return {"rate": self.rate}


@dataclass(frozen=True, slots=True)
class HistogramCounts:
    """Cumulative counts per upper bound ``le`` (ascending, last is ``math.inf``) within one interval
    (or a look's window read back over looks without data: `PairedObservation.span`)."""

    kind: ClassVar[MetricType] = "histogram"

    le: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return self.counts[-1] if self.counts else 0.0

    @property
    def has_data(self) -> bool:
        return self.total > 0

    @property
    def row(self) -> tuple[float, ...]:
        return self.counts

    @property
    def finite(self) -> bool:
        return all(math.isfinite(c) for c in self.counts)

    def as_floats(self) -> HistogramCounts:
        return HistogramCounts(le=tuple(map(float, self.le)), counts=tuple(map(float, self.counts)))

    def quantile(self, q: float) -> float:
        r"""The `q`-quantile as PromQL's ``histogram_quantile`` computes it (nan without data).

        Notes
        -----
        With rank :math:`r = qN`, the first bucket :math:`(\ell_{j-1}, \ell_j]` whose cumulative
        count :math:`C_j` reaches :math:`r` gives
        :math:`\ell_{j-1} + (\ell_j - \ell_{j-1})(r - C_{j-1})/(C_j - C_{j-1})`, with
        :math:`\ell_{-1} = 0` and :math:`C_{-1} = 0`; a quantile in the ``+Inf`` bucket is the
        last finite bound (nan when there is none) [1]_.

        References
        ----------
        .. [1] Prometheus documentation, "Query functions: histogram_quantile()".

        Examples
        --------
        >>> round(HistogramCounts(le=(0.1, 0.25, 0.5, math.inf), counts=(50, 80, 95, 100)).quantile(0.65), 6)
        0.175
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be within [0, 1], got {q}")
        total = self.total
        if total <= 0:
            return math.nan
        rank = q * total
        lower, below = 0.0, 0.0
        for j, (bound, count) in enumerate(zip(self.le, self.counts, strict=True)):
            if count >= rank:
                if math.isinf(bound):
                    return lower if j > 0 else math.nan
                width = count - below
                return bound if width <= 0 else lower + (bound - lower) * (rank - below) / width
            lower, below = bound, count
        return math.nan

    def describe(self) -> str:
        """E.g. ``p50 0.08, p99 0.4``."""
        return f"p50 {_g(self.quantile(0.5))}, p99 {_g(self.quantile(0.99))}"

    def chart_points(self) -> dict[str, float]:
        return {"p50": self.quantile(0.5), "p99": self.quantile(0.99)}


@dataclass(frozen=True, slots=True)
class Samples:
    """A few values seen within one interval (e.g. per-pod CPU seconds per second)."""

    kind: ClassVar[MetricType] = "samples"

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        """The mean of the values (nan without any)."""
        return sum(self.values) / len(self.values) if self.values else math.nan

    @property
    def has_data(self) -> bool:
        return bool(self.values)

    @property
    def row(self) -> tuple[float, ...]:
        return self.values

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in self.values)

    def as_floats(self) -> Samples:
        return Samples(values=tuple(map(float, self.values)))

    def describe(self) -> str:
        """E.g. ``mean 0.21 of 5``."""
        return f"mean {_g(self.mean)} of {len(self.values)}" if self.values else "-"

    def chart_points(self) -> dict[str, float]:
        return {"mean": self.mean}


TrackObservation: TypeAlias = RatioCounts | HistogramCounts | Samples


@dataclass(frozen=True, slots=True)
class PairedObservation:
    """The same metric over the same window for the baseline and the canary (of one kind).

    `span` is how many intervals the window covers: 1, or more for counts read back over looks that
    had no data for the metric (their rows hold ``None``), whose increases the window then holds.
    The anytime tests weigh the counts as one look's, by the dispersion factor their whole level
    predicts (capped like any look's): at least what the jitter of `span` independent intervals
    adds, so the error rates are kept at some power. The running dispersion estimate, the final
    look's weights (any that the traffic and the gaps fix before the counts keep its level) and
    what reads the counts per interval (the evidence plan's traffic, a rate per second) divide by
    `span`.
    """

    baseline: TrackObservation
    canary: TrackObservation
    span: float = 1.0

    def __post_init__(self) -> None:
        if self.baseline.kind != self.canary.kind:
            raise ValueError(
                f"baseline and canary must be of one kind, got {self.baseline.kind}/{self.canary.kind}"
            )
        if not (math.isfinite(self.span) and self.span >= 1):
            raise ValueError(f"span must be a finite number of intervals >= 1, got {self.span}")
        if self.span != 1 and self.baseline.kind == "samples":
            raise ValueError("samples are values at the end of an interval: they cover no span")

    @property
    def kind(self) -> MetricType:
        return self.baseline.kind

    @property
    def has_data(self) -> bool:
        """Both tracks saw something (requests, or at least one sample)."""
        return self.baseline.has_data and self.canary.has_data


#: One interval: metric name -> paired observation, or ``None`` when there was no data.
IntervalObservations: TypeAlias = Mapping[str, PairedObservation | None]
