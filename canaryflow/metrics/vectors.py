"""Turn Prometheus query results into observations, or into the error that says why not.

Pure functions over the ``data.result`` of an instant query (a list of ``{"metric", "value"}``
entries for a vector, ``[time, "value"]`` for a scalar). No HTTP, no client library.

Rules (each one is tested):

- Empty results and NaN are `NoDataError`; so is a window without events (total 0).
- Counts may be fractional (``increase()`` extrapolates) and are kept as they are. Counter resets
  are handled by ``increase()`` in Prometheus; a negative or infinite count is a `QueryError`.
- Ratio: ``bad`` and ``total`` must each return at most one series (aggregate with ``sum``). An empty
  ``bad`` with a non-empty ``total`` means no bad events: Prometheus has no series for a status code
  that never occurred. ``increase()`` extrapolates the two independently, so ``bad`` may exceed
  ``total`` by a fraction of an event when almost every request fails; up to 1 % + 1 event it is
  capped at ``total``, beyond that the templates do not select a subset and it is a `QueryError`.
- Histogram: one series per ``le`` (``+Inf`` required, no duplicates). Per-bucket extrapolation can
  make cumulative counts dip by a fraction; like ``histogram_quantile`` does, counts are made
  monotonic by a running maximum.
- Samples: one value per series, ordered by the series' labels; NaN and infinite values are dropped
  (a series without a value), and none left is `NoDataError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from analysis.observations import HistogramCounts, RatioCounts, Samples
from canaryflow.errors import NoDataError, QueryError

__all__ = ["histogram_from_result", "ratio_from_results", "samples_from_result"]

_BAD_OVER_TOTAL_TOLERANCE = (0.01, 1.0)  # relative, absolute


def _value(raw: Any, query: str) -> float:
    try:
        return float(raw[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise QueryError(f"unexpected sample {raw!r} in the answer to {query}", query=query) from exc


def _series(result: Any, query: str) -> list[tuple[Mapping[str, str], float]]:
    """(labels, value) per series of a vector, or one unlabelled value for a scalar."""
    if not isinstance(result, list):
        raise QueryError(f"unexpected result {result!r} for {query}", query=query)
    if len(result) == 2 and not isinstance(result[0], dict):  # a scalar: [time, "value"]
        return [({}, _value(result, query))]
    series: list[tuple[Mapping[str, str], float]] = []
    for entry in result:
        if not isinstance(entry, dict) or "value" not in entry:
            raise QueryError(
                f"the query must return an instant vector (wrap a range selector in increase()): {query}",
                query=query,
            )
        series.append((dict(entry.get("metric") or {}), _value(entry["value"], query)))
    return series


def _count(value: float, what: str, query: str) -> float:
    if math.isnan(value):
        raise NoDataError(f"NaN for {what}: {query}", query=query)
    if math.isinf(value) or value < 0:
        raise QueryError(f"{what} must be a finite count >= 0, got {value}: {query}", query=query)
    return value


def _single(result: Any, what: str, query: str) -> float | None:
    series = _series(result, query)
    if not series:
        return None
    if len(series) > 1:
        raise QueryError(
            f"the {what} query must return one series, got {len(series)} (aggregate with sum()): {query}",
            query=query,
        )
    return _count(series[0][1], what, query)


def ratio_from_results(bad: Any, total: Any, *, bad_query: str, total_query: str) -> RatioCounts:
    """Bad events out of all events, from the results of the ``bad`` and ``total`` queries."""
    total_value = _single(total, "total", total_query)
    if total_value is None:
        raise NoDataError(f"no samples for total: {total_query}", query=total_query)
    if total_value == 0:
        raise NoDataError(f"no events in the window (total is 0): {total_query}", query=total_query)
    bad_value = _single(bad, "bad", bad_query)
    if bad_value is None:
        bad_value = 0.0
    if bad_value > total_value:
        relative, absolute = _BAD_OVER_TOTAL_TOLERANCE
        if bad_value > total_value * (1 + relative) + absolute:
            raise QueryError(
                f"bad ({bad_value}) exceeds total ({total_value}): the bad template must select a subset "
                f"of total: {bad_query}",
                query=bad_query,
            )
        bad_value = total_value
    return RatioCounts(bad=bad_value, total=total_value)


def histogram_from_result(result: Any, *, query: str) -> HistogramCounts:
    """Cumulative bucket counts by ``le`` (ascending, ``+Inf`` last)."""
    series = _series(result, query)
    if not series:
        raise NoDataError(f"no samples: {query}", query=query)
    by_le: dict[float, float] = {}
    for labels, value in series:
        if "le" not in labels:
            raise QueryError(f"a histogram series without an le label {dict(labels)}: {query}", query=query)
        try:
            le = float(labels["le"])
        except ValueError as exc:
            raise QueryError(f"le={labels['le']!r} is not a number: {query}", query=query) from exc
        if le in by_le:
            raise QueryError(
                f"two series with le={labels['le']} (aggregate with sum by (le)): {query}", query=query
            )
        by_le[le] = _count(value, f"bucket le={labels['le']}", query)
    if math.inf not in by_le:
        raise QueryError(f"no +Inf bucket among {len(by_le)} series: {query}", query=query)
    bounds = sorted(by_le)
    counts: list[float] = []
    for le in bounds:
        counts.append(max(by_le[le], counts[-1]) if counts else by_le[le])
    if counts[-1] == 0:
        raise NoDataError(f"no events in the window (+Inf bucket is 0): {query}", query=query)
    return HistogramCounts(le=tuple(bounds), counts=tuple(counts))


def _sort_key(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    return sorted(labels.items())


def samples_from_result(result: Any, *, query: str) -> Samples:
    """One finite value per series, in the order of the series' labels."""
    series = sorted(_series(result, query), key=lambda s: _sort_key(s[0]))
    values = tuple(v for _, v in series if math.isfinite(v))
    if not values:
        raise NoDataError(f"no finite samples ({len(series)} series): {query}", query=query)
    return Samples(values=values)
