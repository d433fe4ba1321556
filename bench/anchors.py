"""The anchors of the decision benchmark: other tools' decision rules, re-implemented on the same data.

Each anchor reads the same `ObservationLog` as our judges and returns a `Decision`:
``rollback``/``promote``/``inconclusive`` and the interval (1-based) it was taken at.

- `flagger`: every one-minute check, the canary's success rate must be >= 99 % and its p99
  latency <= 500 ms (Flagger's built-in ``request-success-rate`` and ``request-duration``
  metrics); a check without data fails (Flagger counts "no values found" as a failed check);
  5 failed checks roll back; 10 passed checks promote (``stepWeight: 5, maxWeight: 50``).
- `argo`: every minute one measurement of the canary's error rate, successful when <= 1 %;
  ``failureLimit: 3`` (the 4th failure fails the AnalysisRun and aborts the rollout); a
  measurement without data is an error, and ``consecutiveErrorLimit: 4`` (the 5th consecutive
  error fails it); ``count: 10`` measurements promote.
- `sprt`: Wald's sequential probability ratio test knowing the true rates: the likelihood ratio of
  the canary's share of each interval's errors and of each latency bucket (conditional on the
  pooled counts, so it uses the live baseline as our judge must) between "the canary is the
  baseline" and the true canary (for good canaries: the alternative "error rate x2"), with
  alpha 0.05 and power 0.8. It is the information floor: no test using the same data decides
  faster on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.logs import ObservationLog
from analysis.observations import HistogramCounts, RatioCounts
from bench.scenarios import Truth, bucket_probabilities

__all__ = ["AnchorDecision", "argo", "flagger", "sprt"]

CHECK_INTERVALS = 2  # one-minute checks over 30 s intervals


@dataclass(frozen=True)
class AnchorDecision:
    """What an anchor decided, and after how many intervals."""

    decision: str
    interval: int


def _window(log: ObservationLog, end: int) -> tuple[RatioCounts | None, HistogramCounts | None]:
    """The canary's error counts and latency histogram summed over the check ending at `end`."""
    bad = total = 0.0
    counts: np.ndarray | None = None
    le: tuple[float, ...] = ()
    seen_ratio = False
    for row in log.intervals[max(0, end - CHECK_INTERVALS) : end]:
        pair = row.get("error-rate")
        if pair is not None and isinstance(pair.canary, RatioCounts):
            bad, total, seen_ratio = bad + pair.canary.bad, total + pair.canary.total, True
        hist = row.get("latency")
        if hist is not None and isinstance(hist.canary, HistogramCounts):
            le = hist.canary.le
            add = np.asarray(hist.canary.counts)
            counts = add if counts is None else counts + add
    ratio = RatioCounts(bad, total) if seen_ratio and total > 0 else None
    histogram = HistogramCounts(le, tuple(counts.tolist())) if counts is not None and counts[-1] > 0 else None
    return ratio, histogram


def flagger(log: ObservationLog, *, max_intervals: int = 40) -> AnchorDecision:
    """Flagger's analysis: success rate >= 99 % and p99 <= 500 ms per check; 5 failures roll back."""
    failed = passed = 0
    for end in range(CHECK_INTERVALS, min(max_intervals, len(log.intervals)) + 1, CHECK_INTERVALS):
        ratio, histogram = _window(log, end)
        ok = (
            ratio is not None
            and histogram is not None
            and 1.0 - ratio.bad / ratio.total >= 0.99
            and histogram.quantile(0.99) <= 0.5
        )
        failed, passed = failed + (not ok), passed + ok
        if failed >= 5:
            return AnchorDecision("rollback", end)
        if passed >= 10:
            return AnchorDecision("promote", end)
    return AnchorDecision("inconclusive", min(max_intervals, len(log.intervals)))


def argo(log: ObservationLog, *, max_intervals: int = 40) -> AnchorDecision:
    """Argo Rollouts' AnalysisRun: error rate <= 1 % per minute, failureLimit 3, count 10."""
    failures = errors = consecutive = measured = 0
    for end in range(CHECK_INTERVALS, min(max_intervals, len(log.intervals)) + 1, CHECK_INTERVALS):
        ratio, _ = _window(log, end)
        if ratio is None:
            errors, consecutive = errors + 1, consecutive + 1
            if consecutive > 4:
                return AnchorDecision("rollback", end)
            continue
        consecutive = 0
        measured += 1
        failures += ratio.bad / ratio.total > 0.01
        if failures > 3:
            return AnchorDecision("rollback", end)
        if measured >= 10:
            return AnchorDecision("promote", end)
    return AnchorDecision("inconclusive", min(max_intervals, len(log.intervals)))


def _binomial_llr(x: float, k: float, p1: float, p0: float) -> float:
    p1 = min(max(p1, 1e-12), 1 - 1e-12)
    p0 = min(max(p0, 1e-12), 1 - 1e-12)
    return x * math.log(p1 / p0) + (k - x) * math.log((1 - p1) / (1 - p0))


def _interval_llr(row: dict[str, object], alternative: Truth, base_rate: float) -> float:
    llr = 0.0
    pair = row.get("error-rate")
    if pair is not None:
        c, b = pair.canary, pair.baseline  # type: ignore[attr-defined]
        if c.total > 0 and b.total > 0:
            rate = (
                alternative.error_rate
                if alternative.error_rate is not None
                else base_rate * alternative.error_factor
            )
            rho = rate / base_rate
            p0 = c.total / (c.total + b.total)
            p1 = c.total * rho / (c.total * rho + b.total)
            llr += _binomial_llr(c.bad, c.bad + b.bad, p1, p0)
    hist = row.get("latency")
    if hist is not None:
        c, b = hist.canary, hist.baseline  # type: ignore[attr-defined]
        if c.total > 0 and b.total > 0:
            q1 = np.diff(
                np.concatenate(
                    [[0.0], bucket_probabilities(alternative.latency_factor, alternative.tail_share)]
                )
            )
            q0 = np.diff(np.concatenate([[0.0], bucket_probabilities(1.0)]))
            cc = np.diff(np.concatenate([[0.0], c.counts]))
            bc = np.diff(np.concatenate([[0.0], b.counts]))
            p0 = c.total / (c.total + b.total)
            for x, y, a, z in zip(cc, bc, q1, q0, strict=True):
                if x + y > 0 and z > 0:
                    p1 = c.total * a / (c.total * a + b.total * z)
                    llr += _binomial_llr(float(x), float(x + y), p1, p0)
    return llr


def sprt(
    log: ObservationLog,
    truth: Truth,
    *,
    bad: bool,
    base_rate: float = 0.01,
    alpha: float = 0.05,
    power: float = 0.8,
    max_intervals: int = 40,
) -> AnchorDecision:
    """Wald's SPRT between "canary = baseline" and the true canary (good canaries: errors x2)."""
    alternative = truth if bad else Truth(error_factor=2.0)
    upper = math.log(power / alpha)
    lower = math.log((1 - power) / (1 - alpha))
    llr = 0.0
    for index, row in enumerate(log.intervals[:max_intervals], start=1):
        llr += _interval_llr(dict(row), alternative, base_rate)
        if llr >= upper:
            return AnchorDecision("rollback", index)
        if llr <= lower:
            return AnchorDecision("promote", index)
    return AnchorDecision("inconclusive", min(max_intervals, len(log.intervals)))
