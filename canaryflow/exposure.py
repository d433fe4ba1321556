"""Adaptive exposure: how far an analyze step raises the canary's weight to decide in time.

An analyze step with ``maxWeight`` may raise the canary's weight (and the baseline's with it: both
tracks are the same size) while its analysis would not decide by ``maxDuration`` at the traffic
seen, so that a service with ordinary traffic gets a decision instead of an inconclusive end.
`next_weight` decides, from the judge's latest verdict, pure and in one place:

1. **Need.** Every undecided metric's evidence plan (`analysis.outlook`) says how many intervals of
   data, at the analysis's average traffic so far, its final look needs to show a canary like its
   baseline within tolerance with 80 % power. ``MARGIN`` (2) times that, in requests, aims at
   about 95 %: by the normal approximation 1.6 would do (the ratio of
   :math:`(z_{1-a} + z_{0.95})^2` to :math:`(z_{1-a} + z_{0.80})^2` at the final look's level),
   but the plan is optimistic (the final look refers to Student's t on an estimated variance),
   and with the default metrics at 10 req/s per track 1.6
   reached 92.5 % of good canaries promoted, 2 reached 97.5 % (BENCHMARKS.md; 97.5 % again on
   seeds it was not chosen on; measured with the plan before it counted the dispersion and every
   latency bound, which made it a little longer: 97.5-98.5 % since; all with the final look's
   share of beta at 0.5, before it became 0.8, which shortens the plan). What is missing
   of it must come in the intervals left, ``final - judged``; the traffic per percent of weight,
   measured on the latest interval, turns that into a weight. Nothing is raised on an interval
   where some metric had no data, before the step's ``minIntervals``, when a metric regressed or
   leans to a regression (its change detector blocks promotion), while a samples metric is not
   yet within tolerance, or when no amount of traffic decides (a plan without end): a canary
   under suspicion or unknown never gets more traffic. Metrics without a plan are not counted:
   samples metrics, and metrics with an absolute tolerance (``maxIncrease``), whose plan counts
   that tolerance's final look, on which raising was not measured (`EvidencePlan.absolute`); a
   step whose only undecided metrics are such is not raised.
2. **Risk.** The budget is for what the raises add to the step's own weight ``w_0`` (the exposure
   the spec chose is not the raise's to account for). The weight is capped so that, were the canary
   as bad as the worst value still plausible, the extra failed requests of the raised traffic over
   the whole analysis, that served so far above ``w_0`` and that of the intervals left, stay within
   the step's ``riskBudget``: summed over the ratio metrics,
   ``(U - 1) * r_b * (R + n_1 * (w - w_0) * left)``, with ``U`` the upper end of the rate ratio's
   confidence sequence, ``r_b`` the
   baseline's rate, ``R`` the canary's count (the metric's total) served above ``w_0`` so far and
   ``n_1`` its count per interval per percent of weight, both from the step's `RaiseAccount` (every
   interval; one without data charged at the latest ``n_1``, and the count read back over such
   intervals at the next look divided by the intervals it covers). The account is taken again at each
   raise with what the data say then (``U`` narrows as data come), and once the raised traffic has
   spent the budget nothing more is raised. While ``U`` is unbounded (too little data), nothing is
   raised; an analysis without a ratio metric is never raised (its risk cannot be counted in failed
   requests).

The weight never falls here (a lower weight would waste the evidence the plan counts on) and never
exceeds ``maxWeight``. The rollout flow (`flows.rollout.expose`) checks that the pods can split at
it, records the raised split as the step's last setWeight's (a resumed run starts again at that
setWeight's own weight, with a new account), and puts the weight back when the step ends without a
promotion and the rollout goes on or holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeGuard

from analysis.outlook import EvidencePlan
from analysis.verdicts import Verdict

__all__ = ["MARGIN", "Exposure", "RaiseAccount", "next_weight"]

#: How much more traffic than the plan (80 % power) a raise aims for: about 95 % power, measured.
MARGIN = 2.0


@dataclass(frozen=True, slots=True)
class Exposure:
    """A raise of the canary's weight to `weight` percent, and why (one sentence)."""

    weight: int
    reason: str


@dataclass(slots=True)
class RaiseAccount:
    """One analyze step's account of its canary's traffic, per metric: the step's own (effective)
    weight `base`, the canary's count per interval per percent of weight on the latest interval
    with data (`per_percent`), its count served above `base`'s share so far (`raised`), and the
    points above `base` of the intervals without data before its count per percent was known
    (`uncharged`, charged at the first one measured)."""

    base: float
    per_percent: dict[str, float] = field(default_factory=dict)
    raised: dict[str, float] = field(default_factory=dict)
    uncharged: dict[str, float] = field(default_factory=dict)  # points above base, not yet charged

    def record(
        self, served: Mapping[str, float | None], weight: float, *, spans: Mapping[str, float] | None = None
    ) -> None:
        """One interval served at `weight` percent: the canary's count per metric (requests for a
        ratio's total or a histogram), ``None`` where the metric had no data (then the latest
        count per percent stands in, so that raised traffic is charged through a gap too; before
        any is known, the gap is charged at the first one measured). `spans` gives, for a metric
        whose count covers more than this interval (read back over the looks before it that had
        no data, charged already), how many intervals it covers: its count per interval is that
        count over its span."""
        for name, count in served.items():
            span = (spans or {}).get(name, 1.0)
            if count is not None and count > 0 and weight > 0 and span > 0:
                self.per_percent[name] = count / span / weight
            per = self.per_percent.get(name)
            above = max(0.0, weight - self.base)
            if per is None:
                if above > 0:
                    self.uncharged[name] = self.uncharged.get(name, 0.0) + above
            elif above > 0 or name in self.uncharged:
                charge = per * (above + self.uncharged.pop(name, 0.0))
                self.raised[name] = self.raised.get(name, 0.0) + charge


def next_weight(
    verdict: Verdict,
    *,
    weight: float,
    max_weight: int,
    risk_budget: float,
    account: RaiseAccount,
) -> Exposure | None:
    """The raise the analysis needs now (see the module), or None.

    Parameters
    ----------
    verdict
        The judge's latest verdict (``continue``: undecided), on an interval where every metric
        had data (the caller checks: no raise on stale evidence).
    weight
        The canary's weight in percent now (the effective one: its share of the Ready pods).
    max_weight
        The highest weight the step allows.
    risk_budget
        The most extra failed requests the raised traffic may bring over the whole analysis (served
        and to come), were the canary as bad as still plausible.
    account
        The step's account of its canary's traffic, with the latest interval recorded.
    """
    if verdict.final or weight >= max_weight or weight <= 0:
        return None
    metrics = list(verdict.metrics.values())
    if not any(m.type == "ratio" for m in metrics):
        return None  # the risk is counted in failed requests: it needs an error-rate metric
    if any(m.status in ("no_data", "regressed", "insufficient") or m.leans_worse for m in metrics):
        return None
    if any(m.type == "samples" and m.status != "within" for m in metrics):
        return None  # no change detector, no plan: an undecided samples metric is not cleared
    undecided = [m for m in metrics if m.status != "within"]
    plans = [m.plan for m in undecided if _raises_on(m.plan)]
    if not plans or any(p.needed_intervals is None for p in plans):
        return None  # nothing to plan on, or no amount of this traffic decides
    judged = verdict.interval
    left = plans[0].final_interval - judged
    if left <= 0:
        return None
    # Each plan counts intervals at the analysis's average traffic so far; in the metric's own
    # count, the final look wants MARGIN times that, and the intervals left must bring what is
    # missing at the metric's count per percent of weight.
    wanted = 0.0
    for metric in undecided:
        if not _raises_on(metric.plan) or metric.plan.needed_intervals is None or not metric.covered >= 1:
            continue
        per_percent = account.per_percent.get(metric.name, 0.0)
        if not per_percent > 0:
            return None  # its traffic per percent is not known: no raise sized in the dark
        average = metric.canary_count / metric.covered  # its count per interval so far
        missing = (MARGIN * metric.plan.needed_intervals - judged) * average
        wanted = max(wanted, missing / left / per_percent)
    riskless = _riskless_weight(verdict, left=left, risk_budget=risk_budget, account=account)
    cap = min(float(max_weight), riskless)
    chosen = math.floor(min(wanted, cap)) if wanted > weight else 0
    if chosen <= weight:
        return None
    longest = max(p.needed_intervals or 0 for p in plans)
    held = (
        f" (held there by maxWeight or the risk budget of {risk_budget:g} requests)" if wanted > cap else ""
    )
    return Exposure(
        chosen,
        f"the analysis needs {longest} intervals of data at the traffic seen, {left} are left before "
        f"maxDuration: raising the canary to {chosen} %{held}",
    )


def _riskless_weight(verdict: Verdict, *, left: int, risk_budget: float, account: RaiseAccount) -> float:
    """The highest weight at which the raised traffic's extra failures, those of the count each
    error-rate metric's canary served above the base weight so far and those over the `left`
    intervals to come, were its ratio at the upper end of its confidence sequence and its
    baseline's rate at the rate seen, stay within `risk_budget` (0 while some ratio is unbounded
    above or its traffic unknown; the base weight once the budget is spent)."""
    worst = 0.0  # extra failed requests per interval per percent of weight
    spent = 0.0  # extra failed requests of the raised traffic served so far
    for metric in verdict.metrics.values():
        if metric.type != "ratio":
            continue
        upper, rate = metric.interval[1], metric.baseline_rate
        per_percent = account.per_percent.get(metric.name, 0.0)
        if not (math.isfinite(upper) and math.isfinite(rate) and per_percent > 0):
            return 0.0  # unbounded, or its traffic unknown: nothing is known of how bad it may be
        excess = max(0.0, upper - 1.0) * rate
        worst += excess * per_percent
        spent += excess * account.raised.get(metric.name, 0.0)
    if worst <= 0.0 or math.isinf(risk_budget):
        return 100.0
    return min(100.0, account.base + max(0.0, risk_budget - spent) / (worst * left))


def _raises_on(plan: EvidencePlan | None) -> TypeGuard[EvidencePlan]:
    """Whether a metric's plan is one a raise is sized on: not an absolute tolerance's."""
    return plan is not None and not plan.absolute
