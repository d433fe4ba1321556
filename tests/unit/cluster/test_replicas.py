"""Replica math: properties checked against a brute-force search over every allowed split."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canaryflow.errors import WeightError
from canaryflow.replicas import (
    CLOSE_ENOUGH,
    DEFAULT_TOLERANCE,
    Split,
    hpa_has_room,
    hpa_maximum,
    plan_split,
    raisable_splits,
    reachable_weights,
)


def _allowed(capacity: int, baseline: bool) -> list[tuple[int, int, int]]:
    """Every (canary, baseline, stable) the rules allow, by enumeration."""
    splits = []
    for canary in range(1, capacity + 1):
        base = canary if baseline else 0
        for stable in range(capacity + 1):
            if canary + base + stable >= capacity:
                splits.append((canary, base, stable))
    return splits


def _error(canary: int, total: int, weight: int) -> Fraction:
    return abs(Fraction(100 * canary, total) - weight)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 24),
    weight=st.integers(1, 100),
    baseline=st.booleans(),
)
def test_the_plan_is_the_fewest_pods_near_the_closest_allowed_split_or_an_error(
    capacity: int, weight: int, baseline: bool
) -> None:
    allowed = _allowed(capacity, baseline)
    best = min(_error(c, c + b + s, weight) for c, b, s in allowed)
    if best > DEFAULT_TOLERANCE:
        with pytest.raises(WeightError, match="reachable weights"):
            plan_split(capacity, weight, baseline=baseline)
        assert weight not in reachable_weights(capacity, baseline=baseline)
        return
    split = plan_split(capacity, weight, baseline=baseline)
    assert (split.canary, split.baseline, split.stable) in allowed
    assert split.total >= capacity
    assert split.canary >= 1
    assert split.baseline == (split.canary if baseline else 0)
    assert split.stable <= capacity
    assert abs(split.effective_weight - weight) <= DEFAULT_TOLERANCE
    reach = min(best + CLOSE_ENOUGH, Fraction(DEFAULT_TOLERANCE))
    near = [(c, b, s) for c, b, s in allowed if _error(c, c + b + s, weight) <= reach]
    fewest = min(c + b + s for c, b, s in near)
    assert split.total == fewest
    assert _error(split.canary, split.total, weight) == min(
        _error(c, c + b + s, weight) for c, b, s in near if c + b + s == fewest
    )


def test_a_split_a_little_closer_is_not_worth_many_more_pods() -> None:
    # 19 + 19 + 20 pods would reach 32.8 %, 0.09 points closer to 33 % than 7 + 7 + 7 pods.
    split = plan_split(20, 33, baseline=True)
    assert (split.canary, split.baseline, split.stable) == (7, 7, 7)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 400), weight=st.integers(0, 100), baseline=st.booleans())
def test_invariants_hold_at_any_capacity(capacity: int, weight: int, baseline: bool) -> None:
    try:
        split = plan_split(capacity, weight, baseline=baseline)
    except WeightError:
        assert weight > 0
        return
    assert split.total >= capacity
    assert split.stable <= capacity
    assert (split.canary >= 1) == (weight > 0)
    assert split.requested_weight == weight
    assert abs(split.effective_weight - weight) <= DEFAULT_TOLERANCE


@settings(max_examples=25, deadline=None)
@given(capacity=st.integers(1, 20), baseline=st.booleans())
def test_reachable_weights_are_exactly_the_ones_plan_accepts(capacity: int, baseline: bool) -> None:
    reachable = set(reachable_weights(capacity, baseline=baseline))
    for weight in range(1, 101):
        try:
            plan_split(capacity, weight, baseline=baseline)
        except WeightError:
            assert weight not in reachable
        else:
            assert weight in reachable


@pytest.mark.parametrize(
    ("capacity", "weight", "baseline", "expected"),
    [
        (10, 10, True, (1, 1, 8)),
        (10, 50, True, (5, 5, 0)),
        (5, 50, True, (3, 3, 0)),  # capacity 6 >= 5: odd sizes round up, never down
        (10, 90, False, (9, 0, 1)),
        (1, 100, False, (1, 0, 0)),
        (4, 25, True, (1, 1, 2)),
    ],
)
def test_known_splits(capacity: int, weight: int, baseline: bool, expected: tuple[int, int, int]) -> None:
    split = plan_split(capacity, weight, baseline=baseline)
    assert (split.canary, split.baseline, split.stable) == expected


def test_the_effective_weight_is_reported_next_to_the_requested_one() -> None:
    split = plan_split(5, 10, baseline=True)  # 10 % of 5 pods is not a pod
    assert (split.canary, split.baseline, split.stable) == (1, 1, 5)
    assert split.requested_weight == 10
    assert split.effective_weight == pytest.approx(100 / 7)
    assert split.describe() == "canary 1, baseline 1, stable 5: 14.3% (requested 10%)"


def test_an_unreachable_weight_says_which_weights_are_reachable() -> None:
    with pytest.raises(WeightError) as caught:
        plan_split(5, 10, baseline=False)
    assert str(caught.value) == (
        "weight 10% cannot be reached within 5 points with 5 stable replica(s) "
        "(nearest: canary 1, baseline 0, stable 5: 16.7% (requested 10%)); reachable weights: 12-88, 95-100"
    )


def test_a_raise_keeps_the_room_an_hpa_has_and_only_that() -> None:
    every = raisable_splits(20, 10, baseline=True, hpa_own_maximum=None)
    assert [s.requested_weight for s in every] == reachable_weights(20, baseline=True)
    kept = raisable_splits(20, 10, baseline=True, hpa_own_maximum=40)
    assert kept  # the own split (2 + 2 + 16, at most 32) has room: only splits with room stay
    assert all(0 < s.stable < hpa_maximum(s.stable, s.total, 40) for s in kept)
    assert [s for s in every if hpa_has_room(s, 40)] == kept
    top = max(kept, key=lambda s: s.effective_weight)
    assert (top.requested_weight, top.canary, top.baseline, top.stable) == (46, 10, 10, 2)  # README
    # No room to take away: the HPA at or below the capacity, or just above it (10 pods, at most
    # 11: the 10 % split, 1 + 1 + 8, is lent at most 8), or a weight this capacity cannot reach.
    for capacity, own, maximum in ((20, 10, 20), (20, 10, 15), (10, 10, 11), (3, 10, 40)):
        assert raisable_splits(capacity, own, baseline=True, hpa_own_maximum=maximum) == raisable_splits(
            capacity, own, baseline=True, hpa_own_maximum=None
        )


@pytest.mark.parametrize(
    ("stable", "canary", "baseline", "room"),
    [(0, 10, 10, False), (1, 19, 0, True), (1, 10, 10, False), (2, 10, 10, True), (3, 16, 16, False)],
)
def test_an_hpa_has_room_when_its_lent_maximum_is_above_the_stable(
    stable: int, canary: int, baseline: int, room: bool
) -> None:
    # An HPA whose own maximum is 40: at 0 it leaves the stable alone; else it is lent 40 s / T.
    split = Split(stable=stable, canary=canary, baseline=baseline, requested_weight=0)
    assert hpa_has_room(split, 40) is room
