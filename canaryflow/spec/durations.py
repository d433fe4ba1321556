"""Durations in specs: ``30s``, ``5m``, ``1h30m``, ``500ms``, read as `datetime.timedelta`.

A bare number is refused: ``30`` could be seconds or minutes, and a spec should not make the reader
guess. JSON output (and the JSON schema) use the same notation.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "DURATION_PATTERN",
    "MAX_HOURS",
    "Duration",
    "format_duration",
    "is_zero_duration",
    "parse_duration",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: The longest duration anything takes: a year (longer ones are typing mistakes, and overflow).
MAX_HOURS = 8784
_PART = r"(\d+(?:\.\d+)?)(ms|h|m|s)"
#: What a duration looks like: one or more number-unit pairs, e.g. ``90s``, ``1h30m``, ``0.5s``.
DURATION_PATTERN = rf"^(?:{_PART})+$"
_WHOLE = re.compile(DURATION_PATTERN)
_PARTS = re.compile(_PART)


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``.

    Raises
    ------
    ValueError
        When `text` is not one or more number-unit pairs (units ``ms s m h``), is zero or is
        longer than ``MAX_HOURS``.
    """
    value = text.strip()
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"must be a duration like 30s, 5m or 1h (got {text!r})")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PARTS.findall(value))
    if seconds <= 0:
        raise ValueError(f"must be longer than zero (got {text!r})")
    if seconds > MAX_HOURS * 3600.0:
        raise ValueError(f"must be at most {MAX_HOURS}h, a year (got {text!r})")
    return timedelta(seconds=seconds)


_ZERO = re.compile(r"(?:0+(?:\.0*)?(?:ms|s|m|h|d))+|0+(?:\.0*)?")


def is_zero_duration(text: str) -> bool:
    """Whether `text` writes a duration of zero (``0``, ``0s``, ``0h0m``, ``0d``): what a person
    who means "no time" writes, which `parse_duration` refuses, so that a message can say why."""
    return _ZERO.fullmatch(text.strip()) is not None


def format_duration(value: timedelta) -> str:
    """The shortest spec notation of `value`: ``timedelta(minutes=90)`` -> ``"1h30m"``."""
    millis = round(value.total_seconds() * 1000)
    if millis % 1000:
        return f"{millis}ms"
    seconds = millis // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


def _validate(value: object) -> timedelta:
    if isinstance(value, timedelta):
        if value.total_seconds() <= 0:
            raise PydanticCustomError("duration", "must be longer than zero")
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
    raise PydanticCustomError("duration", "must be a duration like 30s, 5m or 1h, with its unit")


#: A positive duration written ``30s``, ``5m``, ``1h`` (combinations like ``1h30m`` allowed).
Duration = Annotated[
    timedelta,
    PlainValidator(_validate),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m", "1h"]}),
]
