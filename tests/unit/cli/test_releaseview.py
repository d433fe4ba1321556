"""An interrupted release (Ctrl-C of ``canaryflow release``) says so in its report: ``get release``
shows when it stopped and how to carry it on, and ``get release --watch`` stops there instead of
waiting for an end that no process is working towards."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from canaryflow.cli.releaseview import render_release
from canaryflow.releasereport import (
    ReleaseStatus,
    mark_interrupted,
    read_release_status,
    release_report,
    write_release_status,
)

RESUME = "canaryflow release release.yaml --image web:2 --id web-1a2b3c4d"
NOW = datetime(2026, 12, 6, 3, 40, tzinfo=UTC)


def _running(reports: Path, **changes: object) -> ReleaseStatus:
    status = ReleaseStatus(
        release_id="web-1a2b3c4d",
        image="web:2",
        spec="release.yaml",
        waves=[["eu-1"], ["eu-2"]],
        cells={"eu-1": "promoted", "eu-2": "running"},
        step="wave 2: waiting for eu-2",
        started_at=NOW,
        updated_at=NOW,
    ).model_copy(update=changes)
    write_release_status(reports, status)
    return status


def test_an_interrupted_release_says_when_it_stopped_and_how_to_carry_it_on(tmp_path: Path) -> None:
    _running(tmp_path)

    marked = mark_interrupted(tmp_path, "web-1a2b3c4d", RESUME, NOW)

    assert marked == read_release_status(release_report(tmp_path, "web-1a2b3c4d"))
    assert marked is not None
    assert marked.interrupted == f"interrupted at 2026-12-06 03:40:00 UTC: `{RESUME}` carries it on"
    assert f"Stopped:   {marked.interrupted}" in render_release(marked)


def test_watching_an_interrupted_release_ends_at_once_and_exits_6(tmp_path: Path) -> None:
    _running(tmp_path)
    mark_interrupted(tmp_path, "web-1a2b3c4d", RESUME, NOW)

    watched = subprocess.run(
        [sys.executable, "-m", "canaryflow", "get", "release", "web-1a2b3c4d", "--watch"],
        capture_output=True,
        text=True,
        env={**os.environ, "CANARYFLOW_REPORTS_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )

    assert watched.returncode == 6, watched.stderr
    assert f"`{RESUME}` carries it on" in watched.stdout


def test_a_release_that_ended_or_never_reported_is_not_marked(tmp_path: Path) -> None:
    ended = _running(tmp_path, outcome="released", step="every wave of 2 promoted")

    assert mark_interrupted(tmp_path, "web-1a2b3c4d", RESUME, NOW) is None
    assert read_release_status(release_report(tmp_path, "web-1a2b3c4d")) == ended
    assert mark_interrupted(tmp_path, "web-00000000", RESUME, NOW) is None
    assert not release_report(tmp_path, "web-00000000").exists()


def test_get_of_a_release_id_points_to_get_release(tmp_path: Path) -> None:
    _running(tmp_path)

    shown = subprocess.run(
        [sys.executable, "-m", "canaryflow", "get", "web-1a2b3c4d"],
        capture_output=True,
        text=True,
        env={**os.environ, "CANARYFLOW_REPORTS_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )

    assert shown.returncode == 1
    assert shown.stderr.strip() == (
        "canaryflow: error: 'web-1a2b3c4d' is a release's id, not a rollout's: "
        "canaryflow get release web-1a2b3c4d"
    )
