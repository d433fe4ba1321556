"""The observation log, format ``canaryflow/observations@1`` (a public contract, DESIGN.md §4).

`parse_log` turns the decoded JSON (or its text) into an `ObservationLog`; `dump_log` does the
reverse. Parsing is strict about what the judge relies on and lenient about the rest:

- unknown keys are ignored (at every level), so later versions can add fields;
- a metric missing from an interval, a ``null`` metric and a ``null`` track mean "no data";
- a ratio or histogram value may say ``"span": k`` beside its tracks: its counts cover this
  interval and the time of the looks before it that had no data for the metric (read back over
  them, ``k`` intervals in all; 1 when absent);
- ``null`` entries inside a samples list are missing samples and are dropped;
- everything else that is wrong raises `LogFormatError` naming the place, e.g.
  ``intervals[3].latency.canary.counts: not cumulative`` (indices are 0-based, as in JSON paths);
- values the judge could not use are rejected here, at the edge, rather than becoming NaN or
  infinity later: a count above :data:`MAX_COUNT`, an ``interval_seconds`` outside
  [:data:`MIN_INTERVAL_SECONDS`, :data:`MAX_INTERVAL_SECONDS`], a sample beyond
  :data:`MAX_SAMPLE` in magnitude, histogram data under an ``le``
  without a finite bound (``["+Inf"]`` alone declares a histogram that never had data), a log
  without metrics, and a track whose own ``le`` differs from the header's.

`cross_checks` finds what is well-formed but suspicious (two metrics that disagree about how many
requests a track served, a span over an interval with data); the caller decides whether to warn.

Pure: no file access here (the caller reads the file), no logging.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from analysis.observations import (
    HistogramCounts,
    IntervalObservations,
    MetricType,
    PairedObservation,
    RatioCounts,
    Samples,
    TrackObservation,
)

__all__ = [
    "FORMAT",
    "MAX_COUNT",
    "MAX_INTERVAL_SECONDS",
    "MAX_SAMPLE",
    "MIN_INTERVAL_SECONDS",
    "LogFormatError",
    "MetricHeader",
    "ObservationLog",
    "cross_checks",
    "dump_log",
    "parse_log",
]

#: The format identifier this module reads and writes.
FORMAT = "canaryflow/observations@1"

#: The largest count accepted (2**53: beyond it float64 no longer counts by ones, and the
#: judge's sums of squares would come near overflow).
MAX_COUNT = float(2**53)
#: The largest magnitude of a sample accepted: far above any measurement (bytes, seconds, cores),
#: far enough below float's range (about 1.8e308) that sums, means and differences of samples stay
#: finite in every judge.
MAX_SAMPLE = 1e100
#: The shortest and longest interval accepted (a millisecond, a day).
MIN_INTERVAL_SECONDS = 0.001
MAX_INTERVAL_SECONDS = 86_400.0
#: `cross_checks` reports two metrics whose totals for one track differ by more than this factor.
CROSS_CHECK_FACTOR = 2.0
#: ... once both have at least this many requests over the log.
CROSS_CHECK_MIN_REQUESTS = 100.0

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TYPES: tuple[MetricType, ...] = ("ratio", "histogram", "samples")
_TRACKS = ("baseline", "canary")


class LogFormatError(ValueError):
    """A malformed observation log. ``path`` names the place, ``problem`` says what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class MetricHeader:
    """A metric as declared in the log header: its type, unit, (histograms) bucket bounds and the
    warm-up dispersion learned from the stable's history before the analysis (a number for a
    ratio; (bound, number) pairs for a histogram's finite bounds; written ``"dispersion": 0.02``
    and ``"dispersion": [[0.1, 0.3], [0.25, 0.2]]``)."""

    type: MetricType
    unit: str | None = None
    le: tuple[float, ...] | None = None
    dispersion: float | tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True, slots=True)
class ObservationLog:
    """A parsed log: the interval length, the metric headers and one mapping per interval."""

    interval_seconds: float
    metrics: Mapping[str, MetricHeader]
    intervals: tuple[IntervalObservations, ...]


def _integer(text: str) -> int | float:
    """A JSON integer: as an int up to 20 digits (beyond every bound here), else as the float it
    rounds to (``inf`` past float's range), which the checks then refuse by name; Python's own
    int parsing would raise on 4,300 digits, and ``float()`` of a longer int overflows."""
    return int(text) if len(text.lstrip("-")) <= 20 else float(text)


#: The largest integer ``float()`` converts (an already decoded log may hold any Python int).
_LARGEST_FLOAT_INT = int(sys.float_info.max)


def _is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number that converts to float (an integer beyond float's range is not one)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_LARGEST_FLOAT_INT <= value <= _LARGEST_FLOAT_INT
    return isinstance(value, float)


def _count(value: object, path: str) -> float:
    if not _is_number(value):
        raise LogFormatError(path, f"expected a number, got {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise LogFormatError(path, "not a finite number")
    if number < 0:
        raise LogFormatError(path, "negative count")
    # An integer is compared as written: 2^53 + 1 would round to 2^53 as a float.
    if (value if isinstance(value, int) else number) > MAX_COUNT:
        raise LogFormatError(path, f"{number:.3g} is more than 2^53: not a count of requests in a look")
    return number


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and not _is_number(value):
        return "an integer beyond float's range"
    if isinstance(value, dict):
        return "an object"
    if _is_number(value):
        return f"the number {value!r}" if isinstance(value, int) else f"the number {value:.6g}"
    return type(value).__name__


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise LogFormatError(path, f"expected an object, got {_describe(value)}")
    return value


def _le(value: object, path: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise LogFormatError(path, 'expected a non-empty list of bucket bounds ending with "+Inf"')
    bounds: list[float] = []
    for index, item in enumerate(value):
        if isinstance(item, str) and item.strip().lower() in {"+inf", "inf"}:
            bounds.append(math.inf)
        elif _is_number(item) and not math.isnan(float(item)):
            bounds.append(float(item))
        else:
            raise LogFormatError(f"{path}[{index}]", f'expected a number or "+Inf", got {_describe(item)}')
    if bounds[-1] != math.inf:
        raise LogFormatError(path, 'must end with "+Inf"')
    if any(b >= a for a, b in zip(bounds[1:], bounds[:-1], strict=True)):
        raise LogFormatError(path, "bucket bounds must be strictly increasing")
    if bounds[0] < 0:
        raise LogFormatError(path, "bucket bounds must not be negative")
    return tuple(bounds)


def _header(name: str, value: object) -> MetricHeader:
    path = f"metrics.{name}"
    if not _NAME.fullmatch(name) or len(name) > 63:
        raise LogFormatError(path, "invalid metric name (letters, digits, '_', '.', '-'; at most 63)")
    spec = _object(value, path)
    kind = spec.get("type")
    if kind not in _TYPES:
        raise LogFormatError(
            f"{path}.type", f"expected one of ratio, histogram, samples, got {_describe(kind)}"
        )
    unit = spec.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise LogFormatError(f"{path}.unit", f"expected a string, got {_describe(unit)}")
    le = _le(spec.get("le"), f"{path}.le") if kind == "histogram" else None
    return MetricHeader(
        type=kind, unit=unit, le=le, dispersion=_dispersion(spec.get("dispersion"), kind, path)
    )


def _dispersion(value: object, kind: str, path: str) -> float | tuple[tuple[float, float], ...] | None:
    path = f"{path}.dispersion"
    if value is None:
        return None
    if kind == "ratio":
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            raise LogFormatError(path, f"expected a number >= 0, got {_describe(value)}")
        return float(value)
    if kind != "histogram":
        raise LogFormatError(path, "only ratio and histogram metrics have a warm-up dispersion")
    if not isinstance(value, list):
        raise LogFormatError(path, f"expected a list of [bound, number] pairs, got {_describe(value)}")
    pairs = []
    for i, pair in enumerate(value):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in pair)
        ):
            raise LogFormatError(f"{path}[{i}]", "expected a pair [bound, number] of finite numbers >= 0")
        pairs.append((float(pair[0]), float(pair[1])))
    if len({bound for bound, _ in pairs}) != len(pairs):
        raise LogFormatError(path, "a bucket bound is given twice")
    return tuple(pairs)


def _ratio(value: object, path: str) -> RatioCounts:
    track = _object(value, path)
    for key in ("bad", "total"):
        if key not in track:
            raise LogFormatError(path, f'missing "{key}"')
    bad = _count(track["bad"], f"{path}.bad")
    total = _count(track["total"], f"{path}.total")
    if bad > total * (1 + 1e-9) + 1e-9:
        raise LogFormatError(path, "bad exceeds total")
    return RatioCounts(bad=min(bad, total), total=total)


def _histogram(value: object, path: str, le: tuple[float, ...]) -> HistogramCounts:
    track = _object(value, path)
    if len(le) < 2:  # the recorder declares ["+Inf"] for a histogram that never had data
        raise LogFormatError(path, 'data, but the header\'s le has no finite bound before "+Inf" to compare')
    raw = track.get("counts")
    if not isinstance(raw, list):
        raise LogFormatError(f"{path}.counts", f"expected a list of cumulative counts, got {_describe(raw)}")
    if len(raw) != len(le):
        raise LogFormatError(f"{path}.counts", f"expected {len(le)} counts (one per le), got {len(raw)}")
    if "le" in track and _le(track["le"], f"{path}.le") != le:
        raise LogFormatError(f"{path}.le", "differs from the header's bucket bounds (one set per metric)")
    counts = tuple(_count(item, f"{path}.counts[{i}]") for i, item in enumerate(raw))
    for previous, current in itertools.pairwise(counts):
        if current < previous - 1e-9 * max(1.0, previous):
            raise LogFormatError(f"{path}.counts", "not cumulative")
    return HistogramCounts(le=le, counts=counts)


def _samples(value: object, path: str) -> Samples:
    if not isinstance(value, list):
        raise LogFormatError(path, f"expected a list of numbers, got {_describe(value)}")
    values: list[float] = []
    for index, item in enumerate(value):
        if item is None:
            continue
        if not _is_number(item):
            raise LogFormatError(f"{path}[{index}]", f"expected a number, got {_describe(item)}")
        number = float(item)
        if math.isnan(number):
            continue
        if math.isinf(number):
            raise LogFormatError(f"{path}[{index}]", "not a finite number")
        if abs(number) > MAX_SAMPLE:
            raise LogFormatError(f"{path}[{index}]", f"{number:.3g} is beyond 1e100: not a measurement")
        values.append(number)
    return Samples(values=tuple(values))


def _track(value: object, path: str, header: MetricHeader) -> TrackObservation | None:
    if value is None:
        return None
    if header.type == "ratio":
        return _ratio(value, path)
    if header.type == "histogram":
        assert header.le is not None
        return _histogram(value, path, header.le)
    samples = _samples(value, path)
    return samples if samples.values else None


def _pair(value: object, path: str, header: MetricHeader) -> PairedObservation | None:
    if value is None:
        return None
    pair = _object(value, path)
    tracks: dict[str, TrackObservation | None] = {}
    for track in _TRACKS:
        if track not in pair:
            raise LogFormatError(path, f'missing "{track}"')
        tracks[track] = _track(pair[track], f"{path}.{track}", header)
    baseline, canary = tracks["baseline"], tracks["canary"]
    span = _span(pair.get("span", 1), f"{path}.span", header)
    if baseline is None or canary is None:
        return None
    return PairedObservation(baseline=baseline, canary=canary, span=span)


def _span(value: object, path: str, header: MetricHeader) -> float:
    """How many intervals a value's counts cover (``"span"``, 1 when absent)."""
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) < 1:
        raise LogFormatError(path, f"expected a number of intervals >= 1, got {_describe(value)}")
    if float(value) != 1 and header.type == "samples":
        raise LogFormatError(path, "samples are values at the end of an interval: they cover no span")
    return float(value)


def _interval(value: object, index: int, headers: Mapping[str, MetricHeader]) -> IntervalObservations:
    path = f"intervals[{index}]"
    if value is None:
        return dict.fromkeys(headers)
    row = _object(value, path)
    return {name: _pair(row.get(name), f"{path}.{name}", header) for name, header in headers.items()}


def parse_log(source: str | bytes | Mapping[str, Any]) -> ObservationLog:
    """Parse and validate a ``canaryflow/observations@1`` log.

    Parameters
    ----------
    source
        The log's JSON text, or the already decoded JSON object.

    Returns
    -------
    ObservationLog
        Every header metric appears in every interval (``None`` when it had no data).

    Raises
    ------
    LogFormatError
        When the log is malformed; the message names the place.
    """
    if isinstance(source, str | bytes):
        try:
            source = json.loads(source, parse_int=_integer)
        except json.JSONDecodeError as exc:
            raise LogFormatError("", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        except UnicodeDecodeError as exc:
            raise LogFormatError("", "not JSON: not even UTF-8 text (is it an observation log?)") from exc
        except RecursionError as exc:
            raise LogFormatError("", "not an observation log: arrays or objects nested too deeply") from exc
    document = _object(source, "$")
    if document.get("format") != FORMAT:
        raise LogFormatError("format", f'expected "{FORMAT}", got {_describe(document.get("format"))}')
    seconds = document.get("interval_seconds")
    if not _is_number(seconds) or not math.isfinite(float(seconds)) or float(seconds) <= 0:
        raise LogFormatError("interval_seconds", f"expected a positive number, got {_describe(seconds)}")
    if not MIN_INTERVAL_SECONDS <= float(seconds) <= MAX_INTERVAL_SECONDS:
        raise LogFormatError(
            "interval_seconds",
            f"{float(seconds):.3g} is outside {MIN_INTERVAL_SECONDS:g}-{MAX_INTERVAL_SECONDS:g} seconds",
        )
    declared = _object(document.get("metrics"), "metrics")
    if not declared:
        raise LogFormatError("metrics", "the log declares no metrics: nothing to judge")
    headers = {name: _header(name, value) for name, value in declared.items()}
    rows = document.get("intervals")
    if not isinstance(rows, list):
        raise LogFormatError("intervals", f"expected a list, got {_describe(rows)}")
    intervals = tuple(_interval(row, index, headers) for index, row in enumerate(rows))
    return ObservationLog(interval_seconds=float(seconds), metrics=headers, intervals=intervals)


def _spans_over_data(log: ObservationLog, name: str) -> list[str]:
    """The values of metric `name` whose span covers an earlier interval that has data for it (the
    latest such interval named; one pass over the log)."""
    found = []
    previous = -1  # the latest interval before this one with data for the metric
    for index, row in enumerate(log.intervals):
        pair = row.get(name)
        if pair is None:
            continue
        reach = index - (math.floor(pair.span + 1e-9) - 1)  # the first interval the span covers
        if pair.span != 1 and previous >= max(reach, 0):
            found.append(
                f"intervals[{index}].{name}: its span {pair.span:g} covers intervals[{previous}], which has "
                "data for it too: are its requests counted twice?"
            )
        previous = index
    return found


def _requests(pair: PairedObservation, track: str) -> float | None:
    observation = pair.canary if track == "canary" else pair.baseline
    return None if isinstance(observation, Samples) else observation.total


def cross_checks(log: ObservationLog) -> tuple[str, ...]:
    """What is well-formed but suspicious in `log`, one sentence each naming the place.

    Today: two request-counting metrics (ratio totals, histogram totals) whose totals over the
    log differ by more than :data:`CROSS_CHECK_FACTOR` for one track, counted over the intervals
    where both have data over the same span, once both reach :data:`CROSS_CHECK_MIN_REQUESTS`.
    Metrics that count different requests on purpose (latency of one route, errors of all) trip it
    too, which is why it warns instead of rejecting: the live judge accepted the same data. And a
    value whose ``span`` reaches back over intervals that have data for its metric too (their
    requests counted twice); a look that came more than an interval late may do it legitimately.
    """
    names = [name for name, header in log.metrics.items() if header.type != "samples"]
    found = [problem for name in names for problem in _spans_over_data(log, name)]
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            for track in _TRACKS:
                a = b = 0.0
                for row in log.intervals:
                    pa, pb = row.get(first), row.get(second)
                    if pa is None or pb is None or pa.span != pb.span:  # not the same window
                        continue
                    ra, rb = _requests(pa, track), _requests(pb, track)
                    if ra is not None and rb is not None:
                        a, b = a + ra, b + rb
                if min(a, b) >= CROSS_CHECK_MIN_REQUESTS and max(a, b) > CROSS_CHECK_FACTOR * min(a, b):
                    found.append(
                        f"metrics.{first} and metrics.{second} disagree on the {track}'s requests "
                        f"({a:.6g} vs {b:.6g} over the log): do they count the same requests?"
                    )
    return tuple(found)


def _number_out(value: float) -> float | int | str:
    value = float(value)
    if math.isinf(value):
        return "+Inf"
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _track_out(track: TrackObservation) -> object:
    if isinstance(track, RatioCounts):
        return {"bad": _number_out(track.bad), "total": _number_out(track.total)}
    if isinstance(track, HistogramCounts):
        return {"counts": [_number_out(c) for c in track.counts]}
    return [_number_out(v) for v in track.values]


def _header_out(header: MetricHeader) -> dict[str, object]:
    out: dict[str, object] = {"type": header.type}
    if header.unit is not None:
        out["unit"] = header.unit
    if header.le is not None:
        out["le"] = [_number_out(b) for b in header.le]
    if isinstance(header.dispersion, float):
        out["dispersion"] = header.dispersion
    elif header.dispersion is not None:
        out["dispersion"] = [[_number_out(b), _number_out(k)] for b, k in header.dispersion]
    return out


def dump_log(log: ObservationLog) -> dict[str, object]:
    """The JSON object of `log` (``json.dumps`` it to write the file); `parse_log` reads it back."""
    intervals: list[dict[str, object]] = []
    for row in log.intervals:
        out: dict[str, object] = {}
        for name in log.metrics:
            pair = row.get(name)
            value: dict[str, object] | None = None
            if pair is not None:
                value = {"baseline": _track_out(pair.baseline), "canary": _track_out(pair.canary)}
                if pair.span != 1:
                    value["span"] = _number_out(pair.span)
            out[name] = value
        intervals.append(out)
    return {
        "format": FORMAT,
        "interval_seconds": _number_out(log.interval_seconds),
        "metrics": {name: _header_out(header) for name, header in log.metrics.items()},
        "intervals": intervals,
    }
