"""Record what an analysis saw as a ``canaryflow/observations@1`` log (DESIGN.md §4).

`ObservationRecorder` collects one mapping per interval (metric name -> `PairedObservation`, or
``None`` without data, as `observe_interval` returns it) and writes the log that
``canaryflow replay`` re-judges::

    {"format": "canaryflow/observations@1", "interval_seconds": 30,
     "metrics": {"latency": {"type": "histogram", "unit": "seconds", "le": [0.05, ..., "+Inf"]}, ...},
     "intervals": [{"error-rate": {"baseline": {"bad": 3, "total": 600}, "canary": {...}},
                    "latency": {"baseline": {"counts": [...]}, "canary": {...}},
                    "cpu": {"baseline": [0.21, 0.25], "canary": [...]}}, {"error-rate": null, ...}]}

Counts are written as they were observed (integers when whole, fractions from ``increase()`` as they
are); a value read back over looks without its data also says ``"span": k``, the intervals it
covers. A histogram's ``le`` is taken from its first observation and must stay the same for both
tracks and every interval (the format has one ``le`` per metric); a different layout is an
`ObservationLogError` rather than a silently misaligned log. A histogram that never had data has
no layout to report and is declared with ``"le": ["+Inf"]`` (all its intervals are ``null``).

The JSON itself is produced by the judge's own writer (`analysis.logs.dump_log`) and read back with
`analysis.logs.parse_log` before it is returned, so the recorder cannot write a log that
``canaryflow replay`` would reject.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis.dispersion import Warmup
from analysis.logs import FORMAT, LogFormatError, MetricHeader, ObservationLog, dump_log, parse_log
from analysis.observations import HistogramCounts, PairedObservation, TrackObservation
from canaryflow.errors import ObservationLogError
from canaryflow.files import write_atomic
from canaryflow.metrics.port import MetricQuery

__all__ = ["FORMAT", "ObservationRecorder"]


class ObservationRecorder:
    """Collects the observations of one analysis and writes them as a ``canaryflow/observations@1`` log."""

    def __init__(
        self,
        queries: Sequence[MetricQuery],
        *,
        interval_seconds: float,
        dispersion: Mapping[str, Warmup] | None = None,
    ) -> None:
        """`dispersion`: metric name -> the warm-up dispersion the judge was given (a number for a
        ratio, bound -> number for a histogram; recorded in the header, so that a replay judges
        the same way)."""
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be > 0, got {interval_seconds}")
        names = [q.name for q in queries]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must be unique, got {names}")
        self._queries = {q.name: q for q in queries}
        self._interval_seconds = interval_seconds
        self._dispersion = dict(dispersion or {})
        self._le: dict[str, tuple[float, ...]] = {}
        self._intervals: list[dict[str, PairedObservation | None]] = []

    def __len__(self) -> int:
        """How many intervals have been recorded."""
        return len(self._intervals)

    def record(self, interval: Mapping[str, PairedObservation | None]) -> None:
        """Add the next interval. Metrics missing from `interval` are recorded as ``null``."""
        unknown = sorted(set(interval) - set(self._queries))
        if unknown:
            raise ValueError(f"interval {len(self) + 1}: metric(s) not declared to the recorder: {unknown}")
        entry: dict[str, PairedObservation | None] = {}
        for name in self._queries:
            paired = interval.get(name)
            if paired is not None:
                self._check(name, paired.baseline, "baseline")
                self._check(name, paired.canary, "canary")
                paired = PairedObservation(
                    paired.baseline.as_floats(), paired.canary.as_floats(), paired.span
                )
            entry[name] = paired
        self._intervals.append(entry)

    def _check(self, name: str, obs: TrackObservation, track: str) -> None:
        place = f"intervals[{len(self)}].{name}.{track}"
        kind = self._queries[name].type
        if obs.kind != kind:
            raise ObservationLogError(f"{place}: a {type(obs).__name__} for a {kind} metric")
        if not obs.finite:
            raise ObservationLogError(f"{place}: a recorded value must be finite, got {list(obs.row)}")
        if isinstance(obs, HistogramCounts):
            known = self._le.setdefault(name, obs.le)
            if obs.le != known:
                raise ObservationLogError(
                    f"{place}: le {list(obs.le)} differs from {list(known)} recorded before "
                    "(the log has one bucket layout per metric)"
                )

    def _header(self, query: MetricQuery) -> MetricHeader:
        le = self._le.get(query.name, (math.inf,)) if query.type == "histogram" else None
        warmup = self._dispersion.get(query.name)
        dispersion: float | tuple[tuple[float, float], ...] | None = None
        if query.type == "ratio" and isinstance(warmup, int | float):
            dispersion = float(warmup)
        elif query.type == "histogram" and warmup is not None and not isinstance(warmup, int | float):
            dispersion = tuple(sorted((float(b), float(k)) for b, k in warmup.items()))
        return MetricHeader(type=query.type, unit=query.unit, le=le, dispersion=dispersion)

    def log(self) -> ObservationLog:
        """What was recorded, as the judge's `ObservationLog`."""
        return ObservationLog(
            interval_seconds=float(self._interval_seconds),
            metrics={name: self._header(q) for name, q in self._queries.items()},
            intervals=tuple(dict(entry) for entry in self._intervals),
        )

    def to_dict(self) -> dict[str, Any]:
        """The log as JSON-ready data, validated by the judge's parser."""
        document = dump_log(self.log())
        try:
            parse_log(document)
        except LogFormatError as exc:
            raise ObservationLogError(f"the recorded log would not parse: {exc}") from exc
        return document

    def dumps(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the log to `path` atomically (a temporary file next to it, then a rename)."""
        return write_atomic(path, self.dumps(indent=1) + "\n")
