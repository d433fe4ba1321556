"""Input validation shared by the tests and judges: one place that names the allowed values."""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

__all__ = ["DIRECTIONS", "CountDirection", "check_fraction", "check_tolerance", "sides"]

#: One side of a test: the canary's value going up, or going down, is the bad change.
CountDirection: TypeAlias = Literal["increase", "decrease"]

#: What a metric's ``direction`` may say (``either``: both sides are bad).
DIRECTIONS: tuple[str, ...] = ("increase", "decrease", "either")


def sides(direction: str) -> tuple[CountDirection, ...]:
    """The one or two sides that `direction` tests (ValueError naming the allowed values)."""
    if direction == "increase":
        return ("increase",)
    if direction == "decrease":
        return ("decrease",)
    if direction == "either":
        return ("increase", "decrease")
    raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")


def check_tolerance(tolerance: float) -> float:
    """A relative tolerance: finite and not negative."""
    if not (math.isfinite(tolerance) and tolerance >= 0.0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    return tolerance


def check_fraction(name: str, value: float) -> float:
    """An error level such as alpha or beta: strictly between 0 and 1."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return value
