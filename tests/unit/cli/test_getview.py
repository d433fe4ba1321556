"""``canaryflow get``'s detail view: the judge's evidence plan, as the real judge reports it; and
from a separate process, over real report files: an unknown or malformed id is invalid input, and
``--watch`` waits for a report that is not there only as long as ``--wait-for`` says."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from analysis.backtest import judge_log
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import generate
from canaryflow.cli.getview import render_rollout
from canaryflow.reports import write_status
from canaryflow.status import RolloutPhase, RolloutStatus, VerdictReport


def _status(verdict: VerdictReport) -> RolloutStatus:
    return RolloutStatus(
        rollout_id="web-v2",
        target="shop/web",
        image="web:2",
        spec="config/rollouts/none.yaml",
        triggered_by="test",
        steps=3,
        step=2,
        weight=20,
        verdict=verdict,
    )


def _plan_lines(verdict: VerdictReport) -> list[str]:
    return [line for line in render_rollout(_status(verdict)) if line.startswith("Plan:")]


def test_the_plan_says_early_that_two_requests_per_second_cannot_decide_in_twenty_minutes() -> None:
    verdicts = list(judge_log(generate("plain", 2.0, 5).log, PRODUCT_SETTINGS))
    report = VerdictReport.of(verdicts[5])
    plan = report.metrics["error-rate"].plan
    assert plan is not None
    assert plan.final_interval == 40
    assert plan.needed_intervals is not None
    assert plan.needed_intervals > 40

    assert plan.chance is not None
    assert 0.05 < plan.chance < 0.8  # too little to plan on, too much to give up
    assert _plan_lines(report) == [
        f"Plan:      error-rate: at this traffic it needs about {plan.needed_intervals} intervals, more "
        f"than the 40 of the maximum duration (chance of a promotion by then at most "
        f"{round(100 * plan.chance)} %): expect an inconclusive end unless the maximum duration, the "
        "canary's traffic or the tolerance grows"
    ]


def test_the_plan_names_the_metric_that_needs_the_most_and_goes_once_all_are_decided() -> None:
    verdicts = list(judge_log(generate("plain", 50.0, 5).log, PRODUCT_SETTINGS))
    report = VerdictReport.of(verdicts[3])
    needed = {name: m.plan.needed_intervals for name, m in report.metrics.items() if m.plan is not None}
    assert needed
    longest = max(needed, key=lambda name: needed[name] or 0)
    (line,) = _plan_lines(report)
    assert line == (
        f"Plan:      {longest}: at this traffic a canary like its baseline is shown within tolerance by "
        f"interval 40 at the latest (the final look needs about {needed[longest]} intervals of data; the "
        "running evidence may promote it earlier)"
    )

    last = VerdictReport.of(verdicts[-1])
    assert last.decision == "promote"
    assert _plan_lines(last) == []


def _run(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", *args],
        capture_output=True, text=True, env=_env(reports), timeout=60, check=False,
    )  # fmt: skip


def _watch(reports: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "canaryflow", "get", *args, "--watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(reports),
    )  # fmt: skip


def _env(reports: Path) -> dict[str, str]:
    return {"CANARYFLOW_REPORTS_DIR": str(reports), "HOME": str(reports.parent), "PATH": "/usr/bin:/bin"}


def _report(rollout_id: str, phase: RolloutPhase, minute: int) -> RolloutStatus:
    return RolloutStatus(
        rollout_id=rollout_id, target="shop/web", image="web:2", spec="config/rollouts/none.yaml",
        triggered_by="test", steps=3, step=3, phase=phase, weight=100,
        result="promoted" if phase is RolloutPhase.PROMOTED else None,
        updated_at=datetime(2026, 12, 1, 3, minute, tzinfo=UTC),
    )  # fmt: skip


def test_an_unknown_rollout_or_release_is_invalid_input_that_says_where_the_ids_are(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()

    rollout = _run(reports, "get", "web-nope")
    status = _run(reports, "status", "web-nope")
    release = _run(reports, "get", "release", "demo-nope")

    assert (rollout.returncode, status.returncode, release.returncode) == (1, 1, 1)
    line = (
        f"canaryflow: error: no report of rollout 'web-nope' in {reports} (CANARYFLOW_REPORTS_DIR): "
        "check the id (`canaryflow status` lists the rollouts)"
    )
    assert rollout.stderr.splitlines() == [line]
    assert status.stderr.splitlines() == [line]
    assert release.stderr.splitlines() == [
        f"canaryflow: error: no report of release 'demo-nope' in {reports / 'releases'} "
        "(CANARYFLOW_REPORTS_DIR): check the id (`canaryflow release` prints it first, "
        "`canaryflow history --releases` lists those that ended)"
    ]


def test_an_id_that_is_a_path_is_refused_before_any_file_is_read(tmp_path: Path) -> None:
    """A report outside the reports directory that the id would reach is never shown."""
    reports = tmp_path / "reports"
    reports.mkdir()
    write_status(tmp_path / "outside", _report("outside", RolloutPhase.PROMOTED, 1))
    (tmp_path / "outside" / "release.json").write_text("{}")  # `releases/../../outside`

    refused = [
        _run(reports, "get", "../outside"),
        _run(reports, "status", "../outside"),
        _run(reports, "get", "../outside", "--watch"),
        _run(reports, "get", "release", "../../outside"),
    ]

    assert [done.returncode for done in refused] == [1, 1, 1, 1]
    assert all(done.stdout == "" for done in refused)
    rollout = (
        "canaryflow: error: '../outside' is not a rollout id (lowercase letters, digits and '-', at most "
        "63, like web-c455c59c): `canaryflow status` lists the rollouts"
    )
    assert [done.stderr.splitlines() for done in refused[:3]] == [[rollout]] * 3
    assert refused[3].stderr.splitlines() == [
        "canaryflow: error: '../../outside' is not a release id (lowercase letters, digits and '-', at "
        "most 63, like demo-1a2b3c4d): `canaryflow release` prints it first, `canaryflow history "
        "--releases` lists those that ended"
    ]


def test_watch_waits_for_a_report_that_never_comes_only_as_long_as_it_is_told(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    rollout = _watch(reports, "web-nope", "--wait-for", "1s")
    release = _watch(reports, "release", "demo-nope", "--wait-for", "500ms")
    try:
        rollout_out, rollout_err = rollout.communicate(timeout=60)
        release_out, release_err = release.communicate(timeout=60)
    finally:
        rollout.kill()
        release.kill()

    assert (rollout.returncode, release.returncode) == (1, 1)
    assert rollout_out.splitlines() == [f"waiting for rollout web-nope to report in {reports} (up to 1s) ..."]
    assert rollout_err.splitlines() == [
        f"canaryflow: error: no report of rollout 'web-nope' in {reports} (CANARYFLOW_REPORTS_DIR) after "
        "waiting 1s: check the id (`canaryflow status` lists the rollouts), or wait longer with --wait-for"
    ]
    assert release_out.splitlines() == [
        f"waiting for release demo-nope to report in {reports / 'releases'} (up to 500ms) ..."
    ]
    assert release_err.splitlines() == [
        f"canaryflow: error: no report of release 'demo-nope' in {reports / 'releases'} "
        "(CANARYFLOW_REPORTS_DIR) after waiting 500ms: check the id (`canaryflow release` prints it "
        "first, `canaryflow history --releases` lists those that ended), or wait longer with --wait-for"
    ]


def test_a_report_that_stays_unreadable_is_waited_for_aloud_and_then_named(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    torn = write_status(reports / "web-torn", _report("web-torn", RolloutPhase.PROGRESSING, 1))
    torn.write_text(torn.read_text()[:40])
    watcher = _watch(reports, "web-torn", "--wait-for", "1s")
    try:
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 1
    assert out.splitlines() == [f"waiting for rollout web-torn to be readable: {torn} (up to 1s) ..."]
    (error,) = err.splitlines()
    assert error.startswith(f"canaryflow: error: {torn}: not a rollout status")


def test_a_report_that_comes_within_the_wait_is_followed_to_its_end(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    watcher = _watch(reports, "web-late", "--wait-for", "1m")
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert first == f"waiting for rollout web-late to report in {reports} (up to 1m) ...\n"
        write_status(reports / "web-late", _report("web-late", RolloutPhase.PROMOTED, 2))
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert out.splitlines() == ["03:02:00 web-late promoted, step 3/3, weight 100% (0.0% effective)"]


def test_once_the_report_is_there_the_wait_no_longer_limits_the_watch(tmp_path: Path) -> None:
    """With a wait of 1 ms the report is read after the wait ended (a look every half second):
    a rollout that has reported is followed until it ends, however long that takes."""
    reports = tmp_path / "reports"
    write_status(reports / "web-slow", _report("web-slow", RolloutPhase.PROGRESSING, 1))
    watcher = _watch(reports, "web-slow", "--wait-for", "1ms")
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert first == "03:01:00 web-slow progressing, step 3/3, weight 100% (0.0% effective)\n"
        write_status(reports / "web-slow", _report("web-slow", RolloutPhase.PROMOTED, 5))
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert out.splitlines() == ["03:05:00 web-slow promoted, step 3/3, weight 100% (0.0% effective)"]


def test_wait_for_is_a_duration_and_goes_with_watch(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    bad = _run(reports, "get", "web-1", "--watch", "--wait-for", "5")
    zero = _run(reports, "get", "web-1", "--watch", "--wait-for", "0s")
    alone = _run(reports, "get", "web-1", "--wait-for", "5m")
    assert (bad.returncode, zero.returncode, alone.returncode) == (1, 1, 2)
    assert bad.stderr.splitlines() == [
        "canaryflow: error: --wait-for '5': give a duration like 30s, 5m or 1h"
    ]
    assert zero.stderr.splitlines() == [
        "canaryflow: error: --wait-for '0s': the wait must be longer than zero, like 30s, 5m or 1h"
    ]
    assert alone.stderr.splitlines() == [
        "canaryflow: error: --wait-for is how long --watch waits for the report: give --watch too"
    ]


def test_a_watch_line_in_a_pipe_names_the_interval_its_verdict_is_of() -> None:
    from canaryflow.cli.getview import _line

    verdicts = list(judge_log(generate("plain", 50.0, 5).log, PRODUCT_SETTINGS))
    second, third = (_line(_status(VerdictReport.of(v))) for v in verdicts[1:3])
    assert ": interval 2: continue: " in second
    assert ": interval 3: continue: " in third
    assert second != third  # the same words a look later are still a new line
