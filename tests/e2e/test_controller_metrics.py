"""``canaryflow metrics serve``: the controller's metrics, computed from what real rollouts recorded
(the flow under the Prefect test harness on the simulated stack), scraped by a real Prometheus;
the alerting rules pass ``promtool`` and the dashboard asks only for metrics that exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from canaryflow.dev.processes import free_port
from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE
from canaryflow.reports import write_status
from canaryflow.status import RolloutPhase, RolloutStatus
from tests.fixtures.debian import debian_program

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

MONITORING = Path(__file__).resolve().parents[2] / "deployments" / "monitoring"
EXPOSED = (
    "canaryflow_rollouts_ended_total",
    "canaryflow_rollout_duration_seconds_bucket",
    "canaryflow_rollouts_in_progress",
    "canaryflow_rollout_weight_percent",
    "canaryflow_rollout_phase",
    "canaryflow_judge_metric_status",
    "canaryflow_history_unreadable_lines",
)


def test_prometheus_scrapes_outcomes_and_durations_of_real_rollouts(
    rollout_of: Callable[..., Any], runtime: Any, prometheus: Any
) -> None:
    assert rollout_of(GOOD_IMAGE, rollout_id="web-m1").result().result == "promoted"
    assert rollout_of(BAD_IMAGE, rollout_id="web-m2").result().result == "rolled-back"
    assert rollout_of(BAD_IMAGE, rollout_id="web-m3").result().result == "rolled-back"
    # and one under way, as its run reports it
    open_ = RolloutStatus(
        rollout_id="web-open", target="shop/api", image="shop/api:7", spec="api.yaml", triggered_by="ana",
        steps=4, step=2, phase=RolloutPhase.PROGRESSING, weight=20, effective_weight=18.2,
    )  # fmt: skip
    write_status(runtime.reports_dir / "web-open", open_)
    port = free_port()
    env = {**os.environ, "CANARYFLOW_REPORTS_DIR": str(runtime.reports_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "canaryflow", "metrics", "serve", "--port", str(port)],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        assert "/metrics" in server.stderr.readline()  # it listens
        prometheus.add_targets("canaryflow-controller", [f"127.0.0.1:{port}"])
        prometheus.wait_for_samples("canaryflow_rollouts_ended_total", 1)
        ended = {
            r["metric"]["result"]: float(r["value"][1])
            for r in prometheus.query('canaryflow_rollouts_ended_total{target="shop/web"}')
        }
        assert ended == {"promoted": 1.0, "rolled-back": 2.0}
        count = prometheus.query('canaryflow_rollout_duration_seconds_count{result="rolled-back"}')
        assert float(count[0]["value"][1]) == 2.0
        (progress,) = prometheus.query("canaryflow_rollouts_in_progress")
        assert (progress["metric"]["target"], progress["value"][1]) == ("shop/api", "1")
        weights = {
            r["metric"]["kind"]: float(r["value"][1])
            for r in prometheus.query('canaryflow_rollout_weight_percent{rollout="web-open"}')
        }
        assert weights == {"requested": 20.0, "effective": 18.2}
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_the_alerting_rules_pass_promtool_and_use_only_exposed_metrics() -> None:
    promtool = debian_program("promtool", "prometheus", "the alerting rules' check")
    checked = subprocess.run(
        [promtool, "check", "rules", str(MONITORING / "alerts.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    used = set(re.findall(r"canaryflow_[a-z_]+", (MONITORING / "alerts.yaml").read_text()))
    assert used <= set(EXPOSED)


def test_every_dashboard_panel_asks_for_exposed_metrics() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(expressions) == 6
    for expr in expressions:
        names = set(re.findall(r"canaryflow_[a-z_]+", expr))
        assert names, expr
        assert names <= set(EXPOSED), expr
