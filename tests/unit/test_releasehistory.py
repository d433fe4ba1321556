"""The release history: one line per ended release, read back oldest first (a torn line counted,
not fatal), and the release figures (superseded releases count neither way)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from canaryflow.releasehistory import (
    RELEASE_HISTORY,
    ReleaseRecord,
    append_release,
    read_releases,
    release_figures,
)

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _record(name: str, outcome: str, minutes: float, *, at: float = 0.0) -> ReleaseRecord:
    started = START + timedelta(hours=at)
    return ReleaseRecord.model_validate(
        {
            "release_id": name,
            "release": "web",
            "image": "r.io/web:1",
            "outcome": outcome,
            "reason": "why " * 400,
            "triggered_by": "github push 1a2b3c4",
            "started_at": started,
            "finished_at": started + timedelta(minutes=minutes),
            "cells": {"eu-1": "promoted", "eu-2": "pending"},
        }
    )


def test_releases_are_appended_and_read_back_oldest_first(tmp_path: Path) -> None:
    append_release(tmp_path, _record("b", "rolled-back", 20, at=2))
    append_release(tmp_path, _record("a", "released", 40, at=1))
    with (tmp_path / RELEASE_HISTORY).open("a") as torn:
        torn.write('{"release_id": "c", "outcome": "rel\n')

    records, unreadable = read_releases(tmp_path)
    recent, _ = read_releases(tmp_path, since=START + timedelta(hours=2))

    assert [r.release_id for r in records] == ["a", "b"]
    assert unreadable == 1
    assert len(records[0].reason) == 600  # the free text is cut, the line stays short
    assert [r.release_id for r in recent] == ["b"]
    assert read_releases(tmp_path / "none") == ([], 0)


def test_the_release_figures() -> None:
    records = [
        _record("a", "released", 40),
        _record("b", "released", 60),
        _record("c", "rolled-back", 20),
        _record("d", "held", 10),
        _record("e", "superseded", 5),
    ]

    figures = release_figures(records, days=2.0)

    assert (figures.ended, figures.released, figures.failed, figures.per_day) == (5, 2, 2, 1.0)
    assert figures.lead_time == timedelta(minutes=50)
    assert figures.change_failure_rate == 2 / 4  # the superseded release counts neither way
    assert figures.time_to_restore == timedelta(minutes=20)
    empty = release_figures([], days=1.0)
    assert (empty.lead_time, empty.change_failure_rate, empty.time_to_restore) == (None, None, None)
