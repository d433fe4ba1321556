"""``canaryflow history``: rollouts that ended, written by the real flow (Prefect test harness,
simulated stack), read by the command in a separate process, with the delivery figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE
from canaryflow.history import read_history
from canaryflow.reports import read_status


def test_every_ended_rollout_is_in_the_history_and_the_figures(
    rollout_of: Callable[..., Any], runtime: Any
) -> None:
    committed = runtime.clock.now() - timedelta(minutes=25)  # the push's commit, built for 25 minutes
    good = rollout_of(
        GOOD_IMAGE, rollout_id="web-good", triggered_by="github push 1a2b3c4", committed_at=committed
    ).result()
    bad = rollout_of(BAD_IMAGE, rollout_id="web-bad", triggered_by="alice@laptop").result()
    again = rollout_of(BAD_IMAGE, rollout_id="web-bad", triggered_by="alice@laptop").result()  # same id

    records = read_history(runtime.reports_dir).records
    assert [(r.rollout_id, r.result, r.triggered_by) for r in records] == [
        ("web-good", "promoted", "github push 1a2b3c4"),
        ("web-bad", "rolled-back", "alice@laptop"),
        ("web-bad", "rolled-back", "alice@laptop"),  # a re-run does not overwrite the first
    ]
    assert records[0].reason == good.reason
    assert (records[1].reason, records[2].reason) == (bad.reason, again.reason)
    assert all(r.target == "shop/web" and r.duration.total_seconds() > 0 for r in records)
    assert (records[0].committed_at, records[0].detected_at) == (committed, None)
    # each attempt keeps its report: the first run of web-bad was moved aside by the second
    first = read_status(runtime.reports_dir / "web-bad" / "attempt-1" / "status.json")
    latest = read_status(runtime.reports_dir / "web-bad" / "status.json")
    assert first.flow_run_id == records[1].flow_run_id != latest.flow_run_id == records[2].flow_run_id
    assert (runtime.reports_dir / "web-bad" / "attempt-1" / "observations-step2.json").is_file()
    assert not (runtime.reports_dir / "web-bad" / "attempt-2").exists()
    for rolled_back in records[1:]:  # the decision to roll back came before the rollback ended
        assert rolled_back.detected_at is not None
        assert rolled_back.started_at < rolled_back.detected_at <= rolled_back.finished_at

    env = {**os.environ, "CANARYFLOW_REPORTS_DIR": str(runtime.reports_dir), "COLUMNS": "250"}
    shown = subprocess.run(
        [sys.executable, "-m", "canaryflow", "history", "shop/web", "--since", "3650d", "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    newest_first = ["rolled-back", "rolled-back", "promoted"]
    assert [r["result"] for r in data["records"]] == newest_first
    assert data["figures"]["promotions"] == 1
    assert data["figures"]["change_failure_rate"] == 2 / 3
    lead = (records[0].finished_at - committed).total_seconds()
    assert data["figures"]["lead_time_from_commit_seconds"] == lead
    assert lead > 25 * 60
    assert 0 < data["figures"]["time_to_detect_seconds"] <= data["figures"]["time_to_restore_seconds"]
    table = subprocess.run(
        [sys.executable, "-m", "canaryflow", "history", "--since", "3650d"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "web-good" in table.stdout
    assert GOOD_IMAGE in table.stdout  # identifiers are never cut
    assert "change failure rate: 67 % (2 of 3)" in table.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "canaryflow", "history", "web"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines() == [
        "canaryflow: error: target 'web': give it as namespace/deployment (e.g. shop/web)"
    ]


def test_the_prefect_api_keeps_the_history_when_the_reports_directory_is_lost(
    rollout_of: Callable[..., Any], runtime: Any, prefect_harness: Any, tmp_path: Any
) -> None:
    good = rollout_of(GOOD_IMAGE, rollout_id="web-kept-good", triggered_by="github push 9f8e7d6").result()
    bad = rollout_of(BAD_IMAGE, rollout_id="web-kept-bad", triggered_by="bob@laptop").result()
    elsewhere = tmp_path / "another-machine"  # a worker's disk gone, or another worker's machine
    env = {
        **os.environ,
        "CANARYFLOW_REPORTS_DIR": str(elsewhere),
        "PREFECT_API_URL": str(prefect_harness.api.url),
    }

    local = subprocess.run(
        [sys.executable, "-m", "canaryflow", "history", "shop/web", "--since", "1d", "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    shown = subprocess.run(
        [sys.executable, "-m", "canaryflow", "history", "shop/web", "--since", "1d", "--json", "--prefect"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip

    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["records"] == []
    assert shown.returncode == 0, shown.stderr
    kept = {r["rollout_id"]: r for r in json.loads(shown.stdout)["records"]}
    assert {
        k: (v["result"], v["image"], v["triggered_by"], v["reason"]) for k, v in kept.items() if "kept" in k
    } == {
        "web-kept-good": ("promoted", GOOD_IMAGE, "github push 9f8e7d6", good.reason),
        "web-kept-bad": ("rolled-back", BAD_IMAGE, "bob@laptop", bad.reason),
    }
    assert all(
        kept[k]["target"] == "shop/web" and kept[k]["flow_run_id"] for k in ("web-kept-good", "web-kept-bad")
    )
    assert kept["web-kept-bad"]["detected_at"] is not None  # the labels carry the detection too
