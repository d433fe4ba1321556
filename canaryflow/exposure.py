"""Adaptive exposure: how far an analyze step raises the canary's weight to decide in time.

An analyze step with ``maxWeight`` may raise the canary's weight (and the baseline's with it: both
tracks are the same size) while its analysis would not decide by ``maxDuration`` at the traffic
seen, so that a service with ordinary traffic gets a decision instead of an inconclusive end.
`next_weight` decides, from the judge's latest verdict, pure and in one place:

1. **Need.** Every undecided metric's evidence plan (`analysis.outlook`) says how many intervals of
   data its final look needs, at the traffic seen so far, to show a canary like its baseline
   within tolerance with 80 % power. The intervals still missing, ``needed - judged``, are
   collected over the intervals left, ``final - judged``; traffic grows with the weight, so the
   weight that collects them is ``weight * MARGIN * (needed - judged) / left``. ``MARGIN`` (1.6)
   is the sample size that takes the plan's 80 % power to about 95 % (the ratio of
   :math:`(z_{1-a} + z_{0.95})^2` to :math:`(z_{1-a} + z_{0.80})^2` at the final look's level),
   and also covers some of the plan's optimism under overdispersion (it assumes binomial
   traffic). Nothing is raised before the step's ``minIntervals`` of data, or when a metric
   regressed or leans to a regression (its change detector blocks promotion): a canary under
   suspicion never gets more traffic.
2. **Risk.** The weight is capped so that, were the canary as bad as the worst value still
   plausible, the extra failed requests expected over the intervals left stay within the step's
   ``riskBudget``: for every ratio metric, ``(U - 1) * r_b * n_c(w) * left``, with ``U`` the upper
   end of the rate ratio's confidence sequence, ``r_b`` the baseline's rate and ``n_c(w)`` the
   canary's requests per interval at weight ``w``. While ``U`` is unbounded (too little data),
   nothing is raised.

The weight never falls here (a lower weight would waste the evidence the plan counts on) and never
exceeds ``maxWeight``. Whether the cluster can split its pods at that weight is the caller's to
check (`canaryflow.replicas.reachable_weights`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.verdicts import Verdict

__all__ = ["MARGIN", "Exposure", "next_weight"]

#: How much more traffic than the plan (80 % power) a raise aims for: about 95 % power.
MARGIN = 1.6


@dataclass(frozen=True, slots=True)
class Exposure:
    """A raise of the canary's weight to `weight` percent, and why (one sentence)."""

    weight: int
    reason: str


def next_weight(verdict: Verdict, *, weight: int, max_weight: int, risk_budget: float) -> Exposure | None:
    """The raise the analysis needs now (see the module), or None.

    Parameters
    ----------
    verdict
        The judge's latest verdict (``continue``: undecided).
    weight
        The canary's weight in percent now.
    max_weight
        The highest weight the step allows.
    risk_budget
        The most extra failed requests expected, were the canary as bad as still plausible.
    """
    if verdict.final or weight >= max_weight or weight <= 0:
        return None
    undecided = [m for m in verdict.metrics.values() if m.status not in ("within", "no_data")]
    if any(m.status in ("regressed", "insufficient") or m.leans_worse for m in undecided):
        return None
    plans = [m.plan for m in undecided if m.plan is not None]
    if not plans:
        return None
    judged = verdict.interval
    left = plans[0].final_interval - judged
    if left <= 0:
        return None
    missing = max(
        (p.needed_intervals if p.needed_intervals is not None else math.inf) - judged for p in plans
    )
    wanted = max_weight if math.isinf(missing) else math.ceil(weight * MARGIN * missing / left)
    wanted = min(max_weight, wanted)
    if wanted <= weight:
        return None
    safe = _riskless_weight(verdict, weight=weight, left=left, risk_budget=risk_budget)
    chosen = min(wanted, safe)
    if chosen <= weight:
        return None
    longest = max(plans, key=lambda p: math.inf if p.needed_intervals is None else p.needed_intervals)
    need = "more than any" if longest.needed_intervals is None else f"{longest.needed_intervals}"
    capped = (
        "" if chosen == wanted else f" (capped at {chosen} % by the risk budget of {risk_budget:g} requests)"
    )
    return Exposure(
        chosen,
        f"the analysis needs {need} intervals of data at {weight} %, {left} are left before maxDuration: "
        f"raising the canary to {chosen} %{capped}",
    )


def _riskless_weight(verdict: Verdict, *, weight: int, left: int, risk_budget: float) -> int:
    """The highest weight whose extra failures, at the worst plausible ratio, stay within budget."""
    worst = 0.0  # extra failed requests per interval per percent of weight
    for metric in verdict.metrics.values():
        if metric.type != "ratio" or metric.intervals <= 0:
            continue
        upper, rate = metric.interval[1], metric.baseline_rate
        if not (math.isfinite(upper) and math.isfinite(rate)):
            return weight  # unbounded: nothing is known yet of how bad it may be
        per_interval = metric.canary_count / metric.intervals / weight
        worst += max(0.0, upper - 1.0) * rate * per_interval
    if worst <= 0.0 or math.isinf(risk_budget):
        return 100
    return math.floor(min(100.0, risk_budget / (worst * left)))
