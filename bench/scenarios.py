"""Synthetic canary analyses for the decision benchmark, written as ``canaryflow/observations@1`` logs.

Each scenario is one canary analysis: a baseline and a canary Deployment of equal size share the
traffic, and every 30 s interval records three metrics for both tracks:

- ``error-rate`` (ratio): 5xx responses out of requests, baseline 1 %;
- ``latency`` (histogram): request durations, log-normal with median 100 ms and sigma 0.5, in
  Prometheus' default buckets;
- optionally (``with_cpu=True``) ``cpu`` (samples): CPU seconds per second of each of the two
  pods per track. The benchmark families are about errors and latency, so the benchmark leaves
  it out (every metric takes a share of the error budget).

Families: good canaries (the canary behaves like the baseline) and bad ones (the canary is
worse from its first request). See `FAMILIES` for what each one does. Everything is drawn from
the numpy ``Generator`` passed in, so a seed fixes the scenario.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analysis.logs import MetricHeader, ObservationLog
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts, Samples

__all__ = ["BAD", "FAMILIES", "GOOD", "LE", "Scenario", "Truth", "generate"]

#: Prometheus' default histogram buckets (seconds).
LE = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
INTERVAL_SECONDS = 30.0
MAX_INTERVALS = 40
BASE_ERROR_RATE = 0.01
MEDIAN_LATENCY = 0.1
LATENCY_SIGMA = 0.5
PODS = 2
#: Overdispersed family: each track's own per-interval error-rate factor is Gamma with this shape
#: (coefficient of variation 1/sqrt(shape) = 0.3) and its own latency factor log-normal with
#: this sigma, on top of factors both tracks share (error CV 0.5, latency sigma 0.1).
OWN_SHAPE = 1.0 / 0.3**2
OWN_LATENCY = 0.03


@dataclass(frozen=True)
class Truth:
    """What the canary really does, per interval (the scenario's ground truth)."""

    error_factor: float = 1.0
    error_rate: float | None = None
    latency_factor: float = 1.0
    tail_share: float = 0.0
    tail_seconds: float = 0.6


@dataclass
class _Interval:
    """One interval's conditions for one track."""

    rate: float
    error_rate: float
    latency_scale: float
    tail_share: float = 0.0
    tail_seconds: float = 0.6
    cpu: float = 0.1


@dataclass(frozen=True)
class Scenario:
    """A generated scenario: its labels and its log."""

    family: str
    rps: float
    seed: int
    bad: bool
    log: ObservationLog
    truth: Truth = field(default_factory=Truth)


GOOD = ("plain", "overdispersed", "shared-incident", "scrape-gaps")
BAD = ("errors-x2", "errors-x5", "latency+25%", "latency+50%", "tail-only", "outage")

#: Family -> the canary's truth (good families share the baseline's truth).
FAMILIES: dict[str, Truth] = {
    "plain": Truth(),
    "overdispersed": Truth(),
    "shared-incident": Truth(),
    "scrape-gaps": Truth(),
    "errors-x2": Truth(error_factor=2.0),
    "errors-x5": Truth(error_factor=5.0),
    "latency+25%": Truth(latency_factor=1.25),
    "latency+50%": Truth(latency_factor=1.5),
    "tail-only": Truth(tail_share=0.05, tail_seconds=0.6),
    "outage": Truth(error_rate=0.5),
}


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    result: np.ndarray = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
    return result


def bucket_probabilities(scale: float, tail_share: float = 0.0, tail_seconds: float = 0.6) -> np.ndarray:
    """Cumulative probabilities at `LE` of the latency mixture (log-normal, plus a shifted tail)."""
    le = np.array(LE[:-1])
    body = _normal_cdf((np.log(le) - math.log(MEDIAN_LATENCY * scale)) / LATENCY_SIGMA)
    shifted = np.where(le > tail_seconds, le - tail_seconds, 1e-300)
    tail = np.where(
        le > tail_seconds,
        _normal_cdf((np.log(shifted) - math.log(MEDIAN_LATENCY * scale)) / LATENCY_SIGMA),
        0.0,
    )
    cumulative = (1.0 - tail_share) * body + tail_share * tail
    return np.append(cumulative, 1.0)


def _observe(rng: np.random.Generator, track: _Interval) -> tuple[RatioCounts, HistogramCounts, Samples]:
    requests = int(rng.poisson(track.rate * INTERVAL_SECONDS))
    errors = int(rng.binomial(requests, min(1.0, track.error_rate)))
    cumulative = bucket_probabilities(track.latency_scale, track.tail_share, track.tail_seconds)
    cells = rng.multinomial(requests, np.diff(np.concatenate([[0.0], cumulative])))
    counts = tuple(float(c) for c in np.cumsum(cells))
    cpu = tuple(float(v) for v in track.cpu * rng.lognormal(0.0, 0.1, PODS))
    return (
        RatioCounts(bad=float(errors), total=float(requests)),
        HistogramCounts(le=LE, counts=counts),
        Samples(values=cpu),
    )


def _conditions(family: str, rps: float, rng: np.random.Generator) -> list[tuple[_Interval, _Interval]]:
    truth = FAMILIES[family]
    rows: list[tuple[_Interval, _Interval]] = []
    incident = int(rng.integers(4, MAX_INTERVALS - 6))
    for i in range(MAX_INTERVALS):
        load = rps * (1.0 + 0.1 * math.sin(2 * math.pi * i / MAX_INTERVALS + rng.uniform(0, 0.3)))
        shared_error, shared_latency = 1.0, 1.0
        own = [(1.0, 1.0), (1.0, 1.0)]
        if family == "overdispersed":
            shared_error, shared_latency = float(rng.gamma(4.0, 0.25)), float(rng.lognormal(0.0, 0.1))
            own = [
                (float(rng.gamma(OWN_SHAPE, 1.0 / OWN_SHAPE)), float(rng.lognormal(0.0, OWN_LATENCY)))
                for _ in range(2)
            ]
        if family == "shared-incident" and incident <= i < incident + 4:
            shared_error, shared_latency, load = 8.0, 1.8, load * 1.3
        cpu = 0.05 + 0.004 * load
        base = _Interval(
            load, BASE_ERROR_RATE * shared_error * own[0][0], shared_latency * own[0][1], cpu=cpu
        )
        error = (
            truth.error_rate
            if truth.error_rate is not None
            else BASE_ERROR_RATE * truth.error_factor * shared_error
        )
        canary = _Interval(
            load,
            error * own[1][0],
            shared_latency * own[1][1] * truth.latency_factor,
            tail_share=truth.tail_share,
            tail_seconds=truth.tail_seconds,
            cpu=cpu,
        )
        rows.append((base, canary))
    return rows


_NAMES = ("error-rate", "latency", "cpu")


def _gaps(family: str, rng: np.random.Generator) -> Callable[[int, str], bool]:
    if family != "scrape-gaps":
        return lambda _i, _m: False
    dropped = rng.random((MAX_INTERVALS, 3)) < 0.15
    start = int(rng.integers(2, MAX_INTERVALS - 4))
    dropped[start : start + 3, :] = True
    return lambda i, m: bool(dropped[i, _NAMES.index(m)])


def generate(family: str, rps: float, seed: int, *, with_cpu: bool = False) -> Scenario:
    """One scenario of `family` at `rps` requests per second per track, fixed by `seed`."""
    rng = np.random.default_rng(seed)
    gap = _gaps(family, rng)
    names = _NAMES if with_cpu else _NAMES[:2]
    intervals = []
    for i, (base, canary) in enumerate(_conditions(family, rps, rng)):
        b, c = _observe(rng, base), _observe(rng, canary)
        row: dict[str, PairedObservation | None] = {}
        for k, name in enumerate(names):
            row[name] = None if gap(i, name) else PairedObservation(baseline=b[k], canary=c[k])
        intervals.append(row)
    headers = {
        "error-rate": MetricHeader(type="ratio"),
        "latency": MetricHeader(type="histogram", unit="seconds", le=LE),
        "cpu": MetricHeader(type="samples", unit="cores"),
    }
    headers = {name: headers[name] for name in names}
    log = ObservationLog(interval_seconds=INTERVAL_SECONDS, metrics=headers, intervals=tuple(intervals))
    return Scenario(family=family, rps=rps, seed=seed, bad=family in BAD, log=log, truth=FAMILIES[family])
