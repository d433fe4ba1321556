"""A rollout's report directory keeps every attempt that ended: a new attempt moves the files of
the one before into ``attempt-<K>/``; an attempt that did not end is left for its resume. A report
directory is named by an id that a request would take; reading them all, an unreadable one is set
aside with its error."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.reports import (
    REPORT_ID,
    STATUS_FILE,
    archive_attempt,
    is_report_id,
    read_status,
    scan_statuses,
    write_status,
)
from canaryflow.requests import ReleaseRequest, RolloutRequest
from canaryflow.status import RolloutPhase, RolloutStatus


def _status(phase: RolloutPhase, run: str) -> RolloutStatus:
    return RolloutStatus(
        rollout_id="web-1", target="shop/web", image="shop/web:2", spec="web.yaml",
        triggered_by="test", flow_run_id=run, steps=2, phase=phase,
    )  # fmt: skip


def test_attempts_that_ended_are_kept_one_directory_each(tmp_path: Path) -> None:
    report = tmp_path / "web-1"
    assert archive_attempt(report) is None  # nothing yet
    write_status(report, _status(RolloutPhase.ROLLED_BACK, "run-1"))
    (report / "observations-step2.json").write_text("{}")

    assert archive_attempt(report) == report / "attempt-1"
    assert sorted(p.name for p in (report / "attempt-1").iterdir()) == [
        "observations-step2.json",
        STATUS_FILE,
    ]
    assert not (report / STATUS_FILE).exists()

    write_status(report, _status(RolloutPhase.PROMOTED, "run-2"))
    assert archive_attempt(report) == report / "attempt-2"
    assert read_status(report / "attempt-2" / STATUS_FILE).flow_run_id == "run-2"
    assert read_status(report / "attempt-1" / STATUS_FILE).flow_run_id == "run-1"


def test_an_attempt_that_did_not_end_stays_for_its_resume(tmp_path: Path) -> None:
    report = tmp_path / "web-1"
    write_status(report, _status(RolloutPhase.PROGRESSING, "run-1"))
    assert archive_attempt(report) is None
    assert read_status(report / STATUS_FILE).flow_run_id == "run-1"


def test_an_unreadable_status_is_set_aside_not_mixed_with_the_new_attempt(tmp_path: Path) -> None:
    report = tmp_path / "web-1"
    report.mkdir()
    (report / STATUS_FILE).write_text("{torn")
    assert archive_attempt(report) == report / "attempt-1"
    assert (report / "attempt-1" / STATUS_FILE).read_text() == "{torn"


def test_a_report_id_is_what_a_request_takes_as_a_rollout_or_release_id() -> None:
    for model, field in ((RolloutRequest, "rollout_id"), (ReleaseRequest, "release_id")):
        taken = model.model_json_schema()["properties"][field]["anyOf"]
        assert {"pattern": REPORT_ID, "type": "string"} in taken


@pytest.mark.parametrize("value", ["web-c455c59c", "checkout-frontend-9f8e7d6c", "demo-1a2b3c4d", "a" * 63])
def test_ids_of_rollouts_and_releases_are_report_ids(value: str) -> None:
    assert is_report_id(value)


@pytest.mark.parametrize("value", ["", "../x", "..", "web/1", "Web-1", "-web", "web-", "web_1", "a" * 64])
def test_paths_and_other_strings_are_not(value: str) -> None:
    assert not is_report_id(value)


def test_every_readable_status_is_read_and_each_unreadable_one_is_named(tmp_path: Path) -> None:
    write_status(tmp_path / "web-1", _status(RolloutPhase.PROGRESSING, "run-1"))
    (tmp_path / "web-2").mkdir()
    (tmp_path / "web-2" / STATUS_FILE).write_text('{"rollout_id": "web-2", ')
    (tmp_path / "web-3").mkdir()  # no report yet

    scanned = scan_statuses(tmp_path)

    assert [s.flow_run_id for s in scanned.found] == ["run-1"]
    (problem,) = scanned.unreadable
    assert str(problem).startswith(f"{tmp_path / 'web-2' / STATUS_FILE}: not a rollout status (")
