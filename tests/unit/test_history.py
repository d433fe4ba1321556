"""The rollout history: one line per ended rollout, read back whatever else is in the file, and the
delivery figures computed from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from canaryflow.history import HISTORY_FILE, HistoryRecord, append_history, figures, read_history

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _record(
    result: str, *, minutes: float, at: float = 0.0, target: str = "shop/web", rid: str = "web-1"
) -> HistoryRecord:
    start = T0 + timedelta(hours=at)
    return HistoryRecord(
        rollout_id=rid,
        target=target,
        image="shop/web:2",
        result=result,  # type: ignore[arg-type]
        reason=f"{result} because",
        triggered_by="github push abc1234",
        started_at=start,
        finished_at=start + timedelta(minutes=minutes),
    )


def test_records_are_appended_and_read_back_oldest_first(tmp_path: Path) -> None:
    late, early = _record("promoted", minutes=12, at=5), _record("rolled-back", minutes=3, at=1, rid="web-2")
    append_history(tmp_path, late)
    append_history(tmp_path, early)
    append_history(tmp_path, _record("promoted", minutes=9, at=2, target="shop/api", rid="api-1"))

    assert read_history(tmp_path, target="shop/web").records == (early, late)
    assert [r.rollout_id for r in read_history(tmp_path).records] == ["web-2", "api-1", "web-1"]
    assert read_history(tmp_path, since=T0 + timedelta(hours=3)).records == (late,)
    assert read_history(tmp_path / "nowhere").records == ()


def test_a_torn_or_foreign_line_is_counted_not_fatal(tmp_path: Path) -> None:
    append_history(tmp_path, _record("promoted", minutes=10))
    with (tmp_path / HISTORY_FILE).open("a") as out:
        out.write('{"rollout_id": "half\n{}\nnot json at all\n')
    append_history(tmp_path, _record("aborted", minutes=2, at=1, rid="web-3"))

    found = read_history(tmp_path)
    assert [r.result for r in found.records] == ["promoted", "aborted"]
    assert found.unreadable == 3


def test_a_long_reason_keeps_the_line_short_enough_to_append_atomically(tmp_path: Path) -> None:
    long = _record("rolled-back", minutes=4).model_copy(
        update={"reason": "x" * 50_000, "triggered_by": "y" * 5_000}
    )
    path = append_history(tmp_path, long)
    (line,) = path.read_text().splitlines()
    assert len(line.encode()) < 4096
    (back,) = read_history(tmp_path).records
    assert back.reason == "x" * 200


def test_delivery_figures() -> None:
    records = [
        _record("promoted", minutes=10, at=0),
        _record("promoted", minutes=20, at=1),
        _record("promoted", minutes=30, at=2),
        _record("rolled-back", minutes=4, at=3),
        _record("superseded", minutes=1, at=4),
        _record("undone", minutes=60, at=5),
    ]
    numbers = figures(records, days=2.0)
    assert (numbers.ended, numbers.promotions, numbers.failed) == (5, 3, 2)
    assert numbers.per_day == pytest.approx(1.5)
    assert numbers.lead_time == timedelta(minutes=20)
    # the rollback and the undo, over the four rollouts that were not superseded
    assert numbers.change_failure_rate == pytest.approx(2 / 4)
    assert numbers.time_to_restore == timedelta(minutes=32)
    empty = figures([], days=30.0)
    assert (empty.lead_time, empty.change_failure_rate, empty.time_to_restore) == (None, None, None)


def test_lead_time_from_the_commit_and_time_to_detect_count_where_they_are_known() -> None:
    pushed = _record("promoted", minutes=10, at=1).model_copy(
        update={"committed_at": T0 + timedelta(minutes=30)}  # 30 min of build and queue before it
    )
    by_hand = _record("promoted", minutes=20, at=2)  # no commit time: not in the commit lead time
    caught = _record("rolled-back", minutes=6, at=3).model_copy(
        update={"detected_at": T0 + timedelta(hours=3, minutes=4)}
    )
    unknown = _record("rolled-back", minutes=9, at=4)

    numbers = figures([pushed, by_hand, caught, unknown], days=1.0)

    assert numbers.lead_time_from_commit == timedelta(minutes=40)  # committed 12:30, promoted 13:10
    assert numbers.lead_time == timedelta(minutes=15)
    assert numbers.time_to_detect == timedelta(minutes=4)
    assert figures([by_hand, unknown], days=1.0).lead_time_from_commit is None
