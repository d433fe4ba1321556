"""Synthetic canary analyses for the decision benchmark, written as ``canaryflow/observations@1`` logs.

Each scenario is one canary analysis: a baseline and a canary Deployment of equal size share the
traffic, and every 30 s interval records three metrics for both tracks:

- ``error-rate`` (ratio): 5xx responses out of requests, baseline 1 % (5 % in the independent
  overdispersion families, none in the error-free ones);
- ``latency`` (histogram): request durations, log-normal with median 100 ms and sigma 0.5, in
  Prometheus' default buckets;
- optionally (``with_cpu=True``) ``cpu`` (samples): CPU seconds per second of each of the two
  pods per track. The benchmark families are about errors and latency, so the benchmark leaves
  it out (every metric takes a share of the error budget).

Families: good canaries (the canary behaves like the baseline) and bad ones (the canary is
worse from its first request, turns worse in the middle of the analysis, or crashes for one
interval). See `FAMILIES` for what each one does. Everything is drawn from the numpy
``Generator`` passed in, so a seed fixes the scenario.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from analysis.dispersion import bucket_dispersion, spread_for_weight, stable_dispersion
from analysis.logs import MetricHeader, ObservationLog
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts, Samples, TrackObservation

__all__ = [
    "ADDED_GOOD", "BAD", "ERROR_FREE", "FAMILIES", "GOOD", "LE", "Scenario", "Truth", "caught_up", "generate",
    "read_back",
]  # fmt: skip

#: The longest window, in intervals, a rollout reads a ratio or histogram metric over after looks
#: without its data (``flows.judging.CATCH_UP_INTERVALS``).
CATCH_UP_INTERVALS = 10
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
#: Independent overdispersion: each track's error rate and latency scale vary on their own, every
#: interval, by a mean-one log-normal factor with these sigmas (pod heterogeneity), nothing shared;
#: the base error rate is 5 %.
INDEPENDENT_ERROR_SIGMA = 0.3
INDEPENDENT_LATENCY_SIGMA = 0.1
INDEPENDENT_BASE_ERROR_RATE = 0.05
#: A canary of an error-free service that fails half a percent of its requests.
ERROR_FREE_CANARY_RATE = 0.005
#: The strong variant: the largest jitter the judge is built for (50 % on the error rate, 20 % on
#: the latency scale).
STRONG_ERROR_SIGMA = 0.5
STRONG_LATENCY_SIGMA = 0.2
#: Read through Prometheus's ``increase()``: with a 15 s scrape and a 30 s interval the window
#: holds two samples of each series, 15 s apart, and the increase between them is extrapolated to
#: the window's 30 s. Each count is twice a count of half the interval: twice the variance of a
#: count of the whole interval (the demo's 1 s scrape over 5 s gives 1.25).
EXTRAPOLATION = 2.0
#: Bad from the middle: the canary behaves like the baseline for this many intervals (4 minutes).
MIDWAY_INTERVAL = 8
#: The stable's history the rollout flow reads before an analysis (an hour of 30 s intervals;
#: `flows.judging`), drawn with the family's noise; the stable serves 80 % of the traffic and each
#: track `WEIGHT` percent.
HISTORY_INTERVALS = 120
WEIGHT = 10.0
#: Uneven traffic: both tracks' traffic doubles at each of these intervals (0-based), as when
#: adaptive exposure raises the weights, and one interval drawn at random carries `SPIKE` times the
#: traffic (a burst, a retry storm); each track jitters on its own as in independent overdispersion.
UNEVEN_STEPS = (10, 20)
SPIKE = 20.0


@dataclass(frozen=True)
class Truth:
    """What the canary really does, per interval (the scenario's ground truth)."""

    error_factor: float = 1.0
    error_rate: float | None = None
    latency_factor: float = 1.0
    tail_share: float = 0.0
    tail_seconds: float = 0.6
    #: Seconds added to every request's latency (an absolute slowdown).
    latency_shift: float = 0.0
    #: The interval (0-based) from which the canary is bad (0: from its first request).
    from_interval: int = 0
    #: Bad for one interval only, drawn between 3 and 8 (0-based 2..7): a crash loop.
    one_interval: bool = False


@dataclass
class _Interval:
    """One interval's conditions for one track."""

    rate: float
    error_rate: float
    latency_scale: float
    tail_share: float = 0.0
    tail_seconds: float = 0.6
    cpu: float = 0.1
    latency_shift: float = 0.0


@dataclass(frozen=True)
class Scenario:
    """A generated scenario: its labels and its log."""

    family: str
    rps: float
    seed: int
    bad: bool
    log: ObservationLog
    truth: Truth = field(default_factory=Truth)
    #: The first interval (0-based) in which the canary is bad; None for a good canary.
    bad_from: int | None = None


GOOD = (
    "plain",
    "overdispersed",
    "independent-overdispersion",
    "strong-independent-overdispersion",
    "shared-incident",
    "scrape-gaps",
    "extrapolated",
    "error-free",
    "uneven-traffic",
)
#: Good families added after the first tables: the decision benchmark seeds them after every other
#: family, so that the others keep their seeds.
ADDED_GOOD = ("uneven-traffic",)
BAD = (
    "errors-x2",
    "errors-x5",
    "latency+25%",
    "latency+50%",
    "tail-only",
    "outage",
    "errors-x5-midway",
    "one-interval-crash",
    "errors-on-error-free",
)

#: Family -> the canary's truth (good families share the baseline's truth).
FAMILIES: dict[str, Truth] = {
    "plain": Truth(),
    "overdispersed": Truth(),
    "independent-overdispersion": Truth(),
    "strong-independent-overdispersion": Truth(),
    "shared-incident": Truth(),
    "scrape-gaps": Truth(),
    # Not a family of the decision benchmark: the scrape-gaps family's gaps where Prometheus kept
    # scraping and only its answers failed, so a gap's counts come back at the metric's next look
    # with data (the rollout reads a counter's increase over the gap: `flows.judging`).
    "query-gaps": Truth(),
    "extrapolated": Truth(),
    "uneven-traffic": Truth(),
    "errors-x2": Truth(error_factor=2.0),
    "errors-x5": Truth(error_factor=5.0),
    "latency+25%": Truth(latency_factor=1.25),
    "latency+50%": Truth(latency_factor=1.5),
    "tail-only": Truth(tail_share=0.05, tail_seconds=0.6),
    "outage": Truth(error_rate=0.5),
    "errors-x5-midway": Truth(error_factor=5.0, from_interval=MIDWAY_INTERVAL),
    "one-interval-crash": Truth(error_rate=1.0, one_interval=True),
    "error-free": Truth(),
    "errors-on-error-free": Truth(error_rate=ERROR_FREE_CANARY_RATE),
}
#: Families of a service without errors: the baseline has none.
ERROR_FREE = ("error-free", "errors-on-error-free")
#: Families whose tracks jitter on their own (base error rate 5 %), and the sigmas of each.
INDEPENDENT = {
    "independent-overdispersion": (INDEPENDENT_ERROR_SIGMA, INDEPENDENT_LATENCY_SIGMA),
    "strong-independent-overdispersion": (STRONG_ERROR_SIGMA, STRONG_LATENCY_SIGMA),
    "uneven-traffic": (INDEPENDENT_ERROR_SIGMA, INDEPENDENT_LATENCY_SIGMA),
}


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    result: np.ndarray = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
    return result


def bucket_probabilities(
    scale: float, tail_share: float = 0.0, tail_seconds: float = 0.6, shift: float = 0.0
) -> np.ndarray:
    """Cumulative probabilities at `LE` of the latency mixture (log-normal, plus a shifted tail),
    every request `shift` seconds slower."""
    le = np.array(LE[:-1]) - shift
    body = np.where(
        le > 0,
        _normal_cdf((np.log(np.maximum(le, 1e-300)) - math.log(MEDIAN_LATENCY * scale)) / LATENCY_SIGMA),
        0.0,
    )
    shifted = np.where(le > tail_seconds, le - tail_seconds, 1e-300)
    tail = np.where(
        le > tail_seconds,
        _normal_cdf((np.log(shifted) - math.log(MEDIAN_LATENCY * scale)) / LATENCY_SIGMA),
        0.0,
    )
    cumulative = (1.0 - tail_share) * body + tail_share * tail
    return np.append(cumulative, 1.0)


def _observe(
    rng: np.random.Generator, track: _Interval, *, scale: float = 1.0
) -> tuple[RatioCounts, HistogramCounts, Samples]:
    """One track's interval; with `scale` > 1, counts of ``1/scale`` of the interval times
    `scale` (what ``increase()`` extrapolates)."""
    requests = int(rng.poisson(track.rate * INTERVAL_SECONDS / scale))
    errors = int(rng.binomial(requests, min(1.0, track.error_rate)))
    cumulative = bucket_probabilities(
        track.latency_scale, track.tail_share, track.tail_seconds, track.latency_shift
    )
    cells = rng.multinomial(requests, np.diff(np.concatenate([[0.0], cumulative])))
    counts = tuple(scale * float(c) for c in np.cumsum(cells))
    cpu = tuple(float(v) for v in track.cpu * rng.lognormal(0.0, 0.1, PODS))
    return (
        RatioCounts(bad=scale * errors, total=scale * requests),
        HistogramCounts(le=LE, counts=counts),
        Samples(values=cpu),
    )


def _conditions(
    family: str, rps: float, rng: np.random.Generator, truth: Truth
) -> tuple[list[tuple[_Interval, _Interval]], int | None]:
    """Each interval's conditions for (baseline, canary), and the first interval the canary is bad."""
    rows: list[tuple[_Interval, _Interval]] = []
    incident = int(rng.integers(4, MAX_INTERVALS - 6))
    crash = int(rng.integers(2, 8))
    spike = int(rng.integers(0, MAX_INTERVALS)) if family == "uneven-traffic" else -1
    independent = family in INDEPENDENT
    base_error = INDEPENDENT_BASE_ERROR_RATE if independent else BASE_ERROR_RATE
    if family in ERROR_FREE:
        base_error = 0.0
    for i in range(MAX_INTERVALS):
        load = rps * (1.0 + 0.1 * math.sin(2 * math.pi * i / MAX_INTERVALS + rng.uniform(0, 0.3)))
        if family == "uneven-traffic":
            load *= 2.0 ** sum(i >= step for step in UNEVEN_STEPS) * (SPIKE if i == spike else 1.0)
        shared_error, shared_latency = 1.0, 1.0
        own = [(1.0, 1.0), (1.0, 1.0)]
        if family == "overdispersed":
            shared_error, shared_latency = float(rng.gamma(4.0, 0.25)), float(rng.lognormal(0.0, 0.1))
            own = [
                (float(rng.gamma(OWN_SHAPE, 1.0 / OWN_SHAPE)), float(rng.lognormal(0.0, OWN_LATENCY)))
                for _ in range(2)
            ]
        if independent:
            e, lat = INDEPENDENT[family]
            own = [
                (float(rng.lognormal(-e * e / 2, e)), float(rng.lognormal(-lat * lat / 2, lat)))
                for _ in range(2)
            ]
        if family == "shared-incident" and incident <= i < incident + 4:
            shared_error, shared_latency, load = 8.0, 1.8, load * 1.3
        cpu = 0.05 + 0.004 * load
        base = _Interval(load, base_error * shared_error * own[0][0], shared_latency * own[0][1], cpu=cpu)
        bad_now = i == crash if truth.one_interval else i >= truth.from_interval
        effect = truth if bad_now else Truth()
        error = (
            effect.error_rate
            if effect.error_rate is not None
            else base_error * effect.error_factor * shared_error
        )
        canary = _Interval(
            load,
            error * own[1][0],
            shared_latency * own[1][1] * effect.latency_factor,
            tail_share=effect.tail_share,
            tail_seconds=effect.tail_seconds,
            cpu=cpu,
            latency_shift=effect.latency_shift,
        )
        rows.append((base, canary))
    if truth == Truth():
        return rows, None
    return rows, crash if truth.one_interval else truth.from_interval


def _stable_history(
    family: str, rps: float, rng: np.random.Generator
) -> tuple[list[float], list[float], list[tuple[float, ...]]]:
    """The stable's error counts, requests and latency histograms (cumulative at `LE`) per history
    interval, with the family's noise (its own jitter as large as a track's; for shared-incident,
    one incident somewhere in the hour)."""
    independent = family in INDEPENDENT
    base_error = (
        0.0 if family in ERROR_FREE else INDEPENDENT_BASE_ERROR_RATE if independent else BASE_ERROR_RATE
    )
    sigma, latency_sigma = INDEPENDENT.get(family, (0.0, 0.0))
    scale = EXTRAPOLATION if family == "extrapolated" else 1.0
    incident = int(rng.integers(0, HISTORY_INTERVALS - 4))
    bad: list[float] = []
    total: list[float] = []
    histograms: list[tuple[float, ...]] = []
    for j in range(HISTORY_INTERVALS):
        load = rps * (100.0 - 2 * WEIGHT) / WEIGHT * (1.0 + 0.1 * math.sin(2 * math.pi * j / MAX_INTERVALS))
        factor, latency = 1.0, 1.0
        if family == "overdispersed":
            factor = float(rng.gamma(4.0, 0.25)) * float(rng.gamma(OWN_SHAPE, 1.0 / OWN_SHAPE))
            latency = float(rng.lognormal(0.0, 0.1)) * float(rng.lognormal(0.0, OWN_LATENCY))
        if independent:
            factor = float(rng.lognormal(-sigma * sigma / 2, sigma))
            latency = float(rng.lognormal(-latency_sigma * latency_sigma / 2, latency_sigma))
        if family == "shared-incident" and incident <= j < incident + 4:
            factor, latency, load = 8.0, 1.8, load * 1.3
        requests = int(rng.poisson(load * INTERVAL_SECONDS / scale))
        bad.append(scale * int(rng.binomial(requests, min(1.0, base_error * factor))))
        total.append(scale * requests)
        cells = rng.multinomial(requests, np.diff(np.concatenate([[0.0], bucket_probabilities(latency)])))
        histograms.append(tuple(scale * float(c) for c in np.cumsum(cells)))
    return bad, total, histograms


_NAMES = ("error-rate", "latency", "cpu")


def _gaps(family: str, rng: np.random.Generator) -> Callable[[int, str], bool]:
    """Whether a metric has no data in an interval: in the scrape-gaps and query-gaps families 15 %
    of the values at random and three intervals in a row."""
    if family not in ("scrape-gaps", "query-gaps"):
        return lambda _i, _m: False
    dropped = rng.random((MAX_INTERVALS, 3)) < 0.15
    start = int(rng.integers(2, MAX_INTERVALS - 4))
    dropped[start : start + 3, :] = True
    return lambda i, m: bool(dropped[i, _NAMES.index(m)])


def caught_up(seen: list[PairedObservation]) -> PairedObservation:
    """One look over the intervals in `seen` (counts added: counters' increases over their span)."""
    if len(seen) == 1:
        return seen[0]

    def added(tracks: list[TrackObservation]) -> TrackObservation:
        ratios = [t for t in tracks if isinstance(t, RatioCounts)]
        if len(ratios) == len(tracks):
            return RatioCounts(bad=sum(t.bad for t in ratios), total=sum(t.total for t in ratios))
        counts = np.sum([t.counts for t in tracks if isinstance(t, HistogramCounts)], axis=0)
        return HistogramCounts(le=LE, counts=tuple(float(v) for v in counts))

    return PairedObservation(
        baseline=added([p.baseline for p in seen]), canary=added([p.canary for p in seen]), span=len(seen)
    )


def read_back(
    log: ObservationLog, looks: int, names: tuple[str, ...] = ("error-rate", "latency")
) -> ObservationLog:
    """`log` as the rollout would have recorded it had `names` had no data at the first `looks`
    looks but the last and been read back over them there (`caught_up`)."""
    rows = [dict(row) for row in log.intervals]
    for name in names:
        seen = [rows[i][name] for i in range(looks)]
        if any(pair is None for pair in seen):
            raise ValueError(f"{name}: read_back needs data in each of the first {looks} intervals")
        merged = caught_up([pair for pair in seen if pair is not None])
        for row in rows[: looks - 1]:
            row[name] = None
        rows[looks - 1][name] = merged
    return replace(log, intervals=tuple(rows))


def generate(
    family: str,
    rps: float,
    seed: int,
    *,
    with_cpu: bool = False,
    truth: Truth | None = None,
    history: bool = True,
) -> Scenario:
    """One scenario of `family` at `rps` requests per second per track, fixed by `seed`; `truth`
    replaces the family's canary (the family then only sets the noise: overdispersion, incidents,
    gaps), e.g. a canary exactly at the tolerance. With `history` the headers of the error rate and
    the latency carry the warm-up dispersion the flow would learn from the stable's last hour
    (drawn from its own generator, so the analysis's intervals are the same either way)."""
    truth = FAMILIES[family] if truth is None else truth
    rng = np.random.default_rng(seed)
    gap = _gaps(family, rng)
    names = _NAMES if with_cpu else _NAMES[:2]
    intervals = []
    conditions, bad_from = _conditions(family, rps, rng, truth)
    scale = EXTRAPOLATION if family == "extrapolated" else 1.0
    missed: dict[str, list[PairedObservation]] = {}
    for i, (base, canary) in enumerate(conditions):
        b, c = _observe(rng, base, scale=scale), _observe(rng, canary, scale=scale)
        row: dict[str, PairedObservation | None] = {}
        for k, name in enumerate(names):
            seen = PairedObservation(baseline=b[k], canary=c[k])
            if gap(i, name):
                row[name] = None
                if family == "query-gaps" and name != "cpu":  # a count: read over the gap at its next look
                    missed.setdefault(name, []).append(seen)
                continue
            row[name] = caught_up([*missed.pop(name, [])[-(CATCH_UP_INTERVALS - 1) :], seen])
        intervals.append(row)
    learned: float | None = None
    buckets: tuple[tuple[float, float], ...] | None = None
    if history:
        spread = (spread_for_weight(WEIGHT),) * 2
        bad, total, histograms = _stable_history(family, rps, np.random.default_rng([seed, 1]))
        bound = stable_dispersion(bad, total, spread=spread)
        learned = bound.kappa if bound.learned else None
        found = bucket_dispersion(LE, histograms, spread=spread)
        buckets = tuple((b, f.kappa) for b, f in found.items() if f.learned) or None
    headers = {
        "error-rate": MetricHeader(type="ratio", dispersion=learned),
        "latency": MetricHeader(type="histogram", unit="seconds", le=LE, dispersion=buckets),
        "cpu": MetricHeader(type="samples", unit="cores"),
    }
    headers = {name: headers[name] for name in names}
    log = ObservationLog(interval_seconds=INTERVAL_SECONDS, metrics=headers, intervals=tuple(intervals))
    return Scenario(
        family=family, rps=rps, seed=seed, bad=bad_from is not None, log=log, truth=truth,
        bad_from=bad_from,
    )  # fmt: skip
