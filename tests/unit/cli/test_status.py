"""``canaryflow status``: identifiers are never cut at 80 columns, ``--json`` gives scripts the same
facts, and a rollout under way is read from the cluster too (here a simulated one)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from canaryflow.cli.statusview import _describe_state, render_status
from canaryflow.clock import ManualClock
from canaryflow.cluster.port import RolloutId
from canaryflow.dev.stacks import GOOD_IMAGE, simulated_stack
from canaryflow.replicas import plan_split
from canaryflow.reports import write_status
from canaryflow.status import RolloutPhase, RolloutStatus

LONG_ID = "checkout-frontend-9f8e7d6c"
LONG_IMAGE = "registry.example.com/platform/checkout-frontend:2026.12.01-build.4711"


def _status(rollout_id: str = LONG_ID, phase: RolloutPhase = RolloutPhase.PROGRESSING) -> RolloutStatus:
    return RolloutStatus(
        rollout_id=rollout_id,
        target="payments/checkout-frontend",
        container="web",
        service="web",
        image=LONG_IMAGE,
        spec="config/rollouts/web.yaml",
        triggered_by="test",
        steps=5,
        step=2,
        phase=phase,
        weight=10,
        effective_weight=10.0,
        reason="a long explanation of what happened " * 4,
        updated_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_identifiers_are_never_cut_at_80_columns() -> None:
    out = io.StringIO()
    render_status([_status()], {}, Console(file=out, width=80), title="rollouts", evidence=False)
    text = out.getvalue()
    assert LONG_ID in text
    assert "payments/checkout-frontend" in text
    assert LONG_IMAGE in text


def test_json_lists_the_same_facts_for_scripts(tmp_path: Path) -> None:
    write_status(tmp_path / LONG_ID, _status())
    write_status(tmp_path / "web-1", _status("web-1", RolloutPhase.PROMOTED))
    done = subprocess.run(
        [sys.executable, "-m", "canaryflow", "status", "--json"],
        capture_output=True,
        text=True,
        env={"CANARYFLOW_REPORTS_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["rollout_id"]: r["phase"] for r in rows} == {LONG_ID: "progressing", "web-1": "promoted"}
    assert all(r["cluster"] is None for r in rows)  # no cluster configured: nothing read, nothing said
    assert RolloutStatus.model_validate(rows[0]).image == LONG_IMAGE


def test_a_rollout_under_way_is_described_from_the_cluster() -> None:
    stack = simulated_stack(ManualClock())
    mine = _status("web-1")
    assert _describe_state(mine, stack.cluster.read(stack.target).state).startswith(
        "no rollout on the target"
    )
    stack.cluster.apply_split(
        stack.target,
        plan_split(10, 20, baseline=True),
        rollout_id=RolloutId("web-1"),
        image=GOOD_IMAGE,
        step=0,
        progress_deadline=timedelta(minutes=1),
    )
    state = stack.cluster.read(stack.target).state
    assert _describe_state(mine, state) == "progressing at step 1, weight 20%"
    assert _describe_state(_status("web-2"), state) == "the target is in another rollout: web-1"


def _status_command(reports: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``canaryflow status ARGS`` in a new process on `reports`, with a home of no kubeconfig."""
    base = {"CANARYFLOW_REPORTS_DIR": str(reports), "HOME": str(reports.parent), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", "status", *args],
        capture_output=True, text=True, env={**base, "COLUMNS": "300", **env}, check=False,
    )  # fmt: skip


def test_a_kubeconfig_given_but_missing_is_said_for_each_rollout_under_way(tmp_path: Path) -> None:
    reports, missing = tmp_path / "reports", tmp_path / "missing-kubeconfig"
    write_status(reports / "web-aaaa1111", _status("web-aaaa1111"))
    result = _status_command(reports, "--json", KUBECONFIG=str(missing))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["cluster"] == (
        f"cannot read the cluster: cannot load kubeconfig {missing}: no such file {missing}; point "
        "KUBECONFIG at a valid kubeconfig"
    )
    quiet = _status_command(reports, "--json")  # no kubeconfig anywhere: nothing to say of a cluster
    assert json.loads(quiet.stdout)[0]["cluster"] is None
    # A release cell's rollout runs in the cell's cluster, not this shell's: left to its report.
    write_status(reports / "web-aaaa1111", _status("web-aaaa1111").model_copy(update={"cell": "eu-1"}))
    cell = _status_command(reports, "--json", KUBECONFIG=str(missing))
    assert json.loads(cell.stdout)[0]["cluster"] is None


def test_an_unreadable_report_is_named_and_the_others_are_still_shown(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    write_status(reports / "web-aaaa1111", _status("web-aaaa1111"))
    torn = write_status(reports / "web-bbbb2222", _status("web-bbbb2222"))
    torn.write_text(torn.read_text()[:40])  # truncated
    table, rows = _status_command(reports, "--no-cluster"), _status_command(reports, "--json", "--no-cluster")
    one = _status_command(reports, "web-bbbb2222")

    assert (table.returncode, rows.returncode) == (0, 0), table.stderr + rows.stderr
    problem = f"{torn}: not a rollout status (the document: Invalid JSON: "
    for listed in (table, rows):
        (warning,) = listed.stderr.splitlines()
        assert warning.startswith(f"canaryflow: warning: {problem}")
    assert "web-aaaa1111" in table.stdout
    assert "web-bbbb2222" not in table.stdout
    assert [r["rollout_id"] for r in json.loads(rows.stdout)] == ["web-aaaa1111"]

    assert one.returncode == 1  # the unreadable one itself still fails, naming its file
    (error,) = one.stderr.splitlines()
    assert error.startswith(f"canaryflow: error: {problem}")
    assert "Traceback" not in table.stderr + rows.stderr + one.stderr


def test_a_reports_directory_with_only_unreadable_reports_says_so_once_each(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "web-cccc3333").mkdir(parents=True)
    (reports / "web-cccc3333" / "status.json").write_text("{}")  # JSON, but not a status
    done = _status_command(reports, "--no-cluster")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"canaryflow: warning: {reports / 'web-cccc3333' / 'status.json'}: not a rollout status "
        "(rollout_id: Field required)"
    ]


def test_a_paused_rollout_says_who_paused_it_and_how_it_goes_on_not_the_judges_last_line() -> None:
    from canaryflow.status import VerdictReport

    held = _status(phase=RolloutPhase.PAUSED).model_copy(
        update={
            "reason": None,
            "next": "paused by grace (a dashboard): the split holds until canaryflow resume web-1",
            "verdict": VerdictReport(interval=4, decision="continue", final=False, reason="not enough data"),
        }
    )
    out = io.StringIO()

    render_status([held], {}, Console(file=out, width=400), title="Rollouts", evidence=False)

    assert "paused by grace (a dashboard): the split holds until canaryflow resume web-1" in out.getvalue()
    assert "not enough data" not in out.getvalue()


def test_a_release_cell_s_rollout_shows_its_cell_in_status_get_and_history(tmp_path: Path) -> None:
    from canaryflow.cli.getview import render_rollout
    from canaryflow.history import HistoryRecord, append_history

    cell = _status().model_copy(
        update={"cell": "eu-west-1", "result": "promoted", "phase": RolloutPhase.PROMOTED}
    )
    out = io.StringIO()
    render_status([cell, _status("web-1")], {}, Console(file=out, width=80), title="rollouts", evidence=False)
    rows = [line for line in out.getvalue().splitlines() if "payments/checkout-frontend" in line]
    assert "payments/checkout-frontend (cell eu-west-1)" in rows[0]
    assert "(cell" not in rows[1]  # a plain rollout has no cell
    from canaryflow.cli.output import target_in_cell

    assert target_in_cell("shop/web", "") == "shop/web"  # an empty name from odd run parameters
    assert "Cell:      eu-west-1 (a release's)" in render_rollout(cell)
    assert not any(line.startswith("Cell:") for line in render_rollout(_status("web-1")))
    finished = datetime.now(UTC)
    record = HistoryRecord(
        rollout_id=LONG_ID, target=cell.target, cell="eu-west-1", image=LONG_IMAGE, result="promoted",
        reason="judged", triggered_by="release r-1", started_at=finished - timedelta(minutes=5),
        finished_at=finished,
    )  # fmt: skip
    append_history(tmp_path, record)
    shown = subprocess.run(
        [sys.executable, "-m", "canaryflow", "history"],
        capture_output=True, text=True, check=False,
        env={"CANARYFLOW_REPORTS_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert "payments/checkout-frontend (cell eu-west-1)" in shown.stdout, shown.stderr
