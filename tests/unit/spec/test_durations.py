"""Durations: ``30s``, ``5m``, ``1h30m``; bare numbers refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.spec import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
        (" 2m ", timedelta(minutes=2)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", "", "5 m", "m5", "1d", "-5s", "0s", "1h-30m"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["8785h", "99999999999h", "1" + "0" * 400 + "s"])
def test_longer_than_a_year_is_refused_before_it_overflows(text: str) -> None:
    assert parse_duration("8784h") == timedelta(days=366)
    with pytest.raises(ValueError, match=r"must be at most 8784h, a year"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(hours=2, seconds=5), "2h5s"),
        (timedelta(milliseconds=1500), "1500ms"),
    ],
)
def test_format(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@given(st.integers(min_value=1, max_value=10**9))
def test_format_then_parse_round_trips(millis: int) -> None:
    value = timedelta(milliseconds=millis)
    assert parse_duration(format_duration(value)) == value
