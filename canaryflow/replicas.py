"""Replica math of a replica-weight canary: how many pods each track gets for a requested weight.

Pure functions, no I/O. With a stable capacity of ``N`` pods and a requested weight ``w`` (percent),
`plan_split` chooses canary ``c``, baseline ``b`` and stable ``s`` replicas such that

- the canary's share ``c / (c + b + s)`` is within half a point of the closest to ``w`` that
  integers allow (and within the tolerance), with the fewest pods among such splits,
- capacity never drops: ``c + b + s >= N``,
- ``c >= 1`` whenever ``w > 0``, and ``b == c`` when a baseline runs (``b == 0`` otherwise),
- the stable never grows (``s <= N``) and the canary is never larger than the stable was (``c <= N``).

An HPA on the stable changes nothing here: its capacity is shared the same way (the cluster adapter
lends the HPA bounds around the stable's share, `canaryflow.cluster.actuation`), so the weights a
spec may ask for do not depend on whether an HPA scales the target.

Among splits within half a point of the closest (`CLOSE_ENOUGH`) the one with the fewest pods
wins: a split nearer by a tenth of a point is not worth twice the pods. The weight actually reached
is reported as `Split.effective_weight` next to the requested one; a weight farther than the
tolerance (5 points) from anything reachable raises `WeightError` naming the reachable weights,
never a silent change.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from canaryflow.errors import WeightError

__all__ = [
    "CLOSE_ENOUGH",
    "DEFAULT_TOLERANCE",
    "Split",
    "hpa_has_room",
    "hpa_maximum",
    "plan_split",
    "raisable_splits",
    "reachable_weights",
]

#: How far (in percentage points) the effective weight may be from the requested one.
DEFAULT_TOLERANCE = 5.0
#: Splits this close (in percentage points) to the closest one count as equally close: the one with
#: the fewest pods wins (at 20 pods and 33 %, 7 + 7 + 7 pods for 33.3 % rather than 19 + 19 + 20
#: for 32.8 %).
CLOSE_ENOUGH = Fraction(1, 2)


@dataclass(frozen=True, slots=True)
class Split:
    """Replicas per track for one weight; `effective_weight` is what the pods really give."""

    stable: int
    canary: int
    baseline: int
    requested_weight: int

    def __post_init__(self) -> None:
        if min(self.stable, self.canary, self.baseline) < 0 or self.total < 1:
            raise ValueError(f"replica counts must be >= 0 with at least one pod: {self}")

    @property
    def total(self) -> int:
        return self.stable + self.canary + self.baseline

    @property
    def effective_weight(self) -> float:
        """The canary's share of all pods, in percent (once all of them are ready)."""
        return 100.0 * self.canary / self.total

    def describe(self) -> str:
        """E.g. ``canary 1, baseline 1, stable 8: 10.0% (requested 10%)``."""
        return (
            f"canary {self.canary}, baseline {self.baseline}, stable {self.stable}: "
            f"{self.effective_weight:.1f}% (requested {self.requested_weight}%)"
        )


def plan_split(
    capacity: int,
    weight: int,
    *,
    baseline: bool,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Split:
    """The split for `weight` percent at a stable capacity of `capacity` pods.

    Parameters
    ----------
    capacity
        ``N``: the pods the target serves with (the stable's replicas before the rollout, with a
        person's or an HPA's scale since taken in).
    weight
        Requested canary weight in percent, 0 to 100 (0: no canary, the stable at full size).
    baseline
        Whether a baseline of the canary's size runs next to it.
    tolerance
        Largest accepted distance, in percentage points, between requested and effective weight.

    Raises
    ------
    WeightError
        No split comes within `tolerance` of `weight`; the message lists the reachable weights.
    ValueError
        `weight` outside 0..100.
    """
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be between 0 and 100, not {weight}")
    if capacity < 1:
        raise WeightError(f"cannot split a stable of {capacity} replicas: it needs at least one")
    if weight == 0:
        return Split(stable=capacity, canary=0, baseline=0, requested_weight=0)
    best = _best(capacity, weight, baseline=baseline, tolerance=tolerance)
    if best is None or abs(best.effective_weight - weight) > tolerance:
        raise WeightError(_unreachable(capacity, weight, best, baseline, tolerance))
    return best


def hpa_maximum(stable: int, total: int, own_maximum: int) -> int:
    """The ``maxReplicas`` lent to the stable's HPA while the stable holds `stable` of `total` pods:
    the stable's share of the HPA's own maximum, ``floor(M s / T)``, and never below ``max(1, s)``
    (`canaryflow.cluster.actuation` lends it). The HPA can grow the stable while it is above `stable`."""
    return max(max(1, stable), own_maximum * stable // max(1, total))


def hpa_has_room(split: Split, own_maximum: int) -> bool:
    """Whether the stable's HPA, whose own ``maxReplicas`` is `own_maximum`, may still grow the
    stable of `split` by at least a pod: ``0 < s < floor(M s / T)`` (an HPA leaves a Deployment at
    zero replicas alone)."""
    return 0 < split.stable < hpa_maximum(split.stable, split.total, own_maximum)


def raisable_splits(
    capacity: int, own_weight: int, *, baseline: bool, hpa_own_maximum: int | None
) -> list[Split]:
    """The splits of every reachable whole weight that an analysis may raise its canary to from a
    setWeight of `own_weight`: all of them, unless an HPA scales the stable (`hpa_own_maximum`: its
    own ``maxReplicas``) and the split of `own_weight` leaves it room to grow the stable
    (`hpa_has_room`); then only those that leave it that room too. A raise is the flow's own
    choice, and must not take away the HPA's answer to rising load (at 20 pods and a maximum of
    40, with a baseline, the highest is 46 %: canary 10, baseline 10, stable 2)."""
    weights = reachable_weights(capacity, baseline=baseline)
    splits = [plan_split(capacity, w, baseline=baseline) for w in weights]
    if hpa_own_maximum is None or own_weight not in weights:
        return splits
    if not hpa_has_room(plan_split(capacity, own_weight, baseline=baseline), hpa_own_maximum):
        return splits
    return [s for s in splits if hpa_has_room(s, hpa_own_maximum)]


def reachable_weights(capacity: int, *, baseline: bool, tolerance: float = DEFAULT_TOLERANCE) -> list[int]:
    """Every whole weight 1..100 that `plan_split` accepts at this capacity."""
    reachable = []
    for weight in range(1, 101):
        best = _best(capacity, weight, baseline=baseline, tolerance=tolerance)
        if best is not None and abs(best.effective_weight - weight) <= tolerance:
            reachable.append(weight)
    return reachable


def _best(capacity: int, weight: int, *, baseline: bool, tolerance: float) -> Split | None:
    """The split with the fewest pods among those within `CLOSE_ENOUGH` points of the closest and
    within `tolerance` of `weight` (the closest among those; the closest when it is not within
    `tolerance`), or None when none is allowed.

    Exact, in integers: a split's distance is ``|100 c / T - w| = |100 c - w T| / T``, and with the
    window ``R = p / q`` points, ``w - R <= 100 c / T <= w + R`` is
    ``(w q - p) T <= 100 c q <= (w q + p) T``.
    """
    closest: tuple[int, int] | None = None  # (|100c - wT|, T)
    for canary in range(1, capacity + 1):
        base = canary if baseline else 0
        low = max(0, capacity - canary - base)
        for stable in _stable_candidates(canary, base, weight, low, capacity):
            total = canary + base + stable
            gap = abs(100 * canary - weight * total)
            if closest is None or gap * closest[1] < closest[0] * total:
                closest = (gap, total)
    if closest is None:
        return None
    nearest = Fraction(*closest)
    reach = max(nearest, min(nearest + CLOSE_ENOUGH, Fraction(tolerance)))
    p, q = reach.numerator, reach.denominator
    best: tuple[int, int, int, int] | None = None  # (T, |100c - wT|, canary, stable)
    for canary in range(1, capacity + 1):
        base = canary if baseline else 0
        low = max(0, capacity - canary - base)
        # the fewest stable pods that keep the canary's share at or below w + R
        stable = max(low, -(-100 * canary * q // (weight * q + p)) - canary - base)
        total = canary + base + stable
        if stable > capacity or (weight * q - p) * total > 100 * canary * q:
            continue
        candidate = (total, abs(100 * canary - weight * total), canary, stable)
        best = candidate if best is None else min(best, candidate)
    if best is None:  # pragma: no cover - the closest split itself lies within the window
        return None
    _, _, canary, stable = best
    return Split(stable=stable, canary=canary, baseline=canary if baseline else 0, requested_weight=weight)


def _stable_candidates(canary: int, base: int, weight: int, low: int, high: int) -> set[int]:
    """Stable counts around the exact solution of ``100 c / (c + b + s) = w``, clamped to [low, high]."""
    floor = (100 * canary) // weight - canary - base
    return {min(high, max(low, s)) for s in (floor, floor + 1)}


def _unreachable(capacity: int, weight: int, best: Split | None, baseline: bool, tolerance: float) -> str:
    setting = f"{capacity} stable replica(s)" + (" and a baseline" if baseline else "")
    nearest = f" (nearest: {best.describe()})" if best is not None else ""
    reachable = _ranges(reachable_weights(capacity, baseline=baseline, tolerance=tolerance))
    return (
        f"weight {weight}% cannot be reached within {tolerance:g} points with {setting}{nearest}; "
        f"reachable weights: {reachable or 'none'}"
    )


def _ranges(values: list[int]) -> str:
    """[1, 2, 3, 5, 10, 11] -> "1-3, 5, 10-11"."""
    parts: list[str] = []
    start = previous = None
    for value in [*values, None]:
        if value is not None and previous is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            parts.append(f"{start}" if start == previous else f"{start}-{previous}")
        start = previous = value
    return ", ".join(parts)
