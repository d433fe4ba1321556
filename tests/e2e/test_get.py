"""``canaryflow get ROLLOUT [--watch]``: one rollout in detail from its report, and followed live
until it ends, from a separate process while the real flow runs here (Prefect test harness,
simulated stack)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE


def _env(reports: Path) -> dict[str, str]:
    return {**os.environ, "CANARYFLOW_REPORTS_DIR": str(reports), "COLUMNS": "80"}


def _get(reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", "get", *args],
        capture_output=True, text=True, env=_env(reports), timeout=60, check=False,
    )  # fmt: skip


def test_get_shows_the_steps_the_evidence_and_the_result(
    rollout_of: Callable[..., Any], runtime: Any
) -> None:
    outcome = rollout_of(GOOD_IMAGE, rollout_id="web-get").result()
    assert outcome.result == "promoted"

    shown = _get(runtime.reports_dir, "web-get")

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:3] == [
        "Rollout:   web-get",
        "Target:    shop/web (container web)",
        f"Image:     {GOOD_IMAGE}",
    ]
    assert "Phase:     promoted" in lines
    steps = [line for line in lines if line.startswith("  + step ")]
    assert steps  # every step done, from the spec
    assert all("/" in line for line in steps)
    assert any(line.startswith("Judge:     after interval ") for line in lines)
    assert any(line.startswith("  error-rate") and "within" in line for line in lines)
    assert f"Result:    promoted: {outcome.reason}" in lines

    missing = _get(runtime.reports_dir, "web-nothing")
    assert missing.returncode == 1  # a rollout id that names no rollout: invalid input
    reports = runtime.reports_dir
    assert missing.stderr.splitlines() == [
        f"canaryflow: error: no report of rollout 'web-nothing' in {reports} (CANARYFLOW_REPORTS_DIR): "
        "check the id (`canaryflow status` lists the rollouts)"
    ]


def test_watch_follows_a_rollout_from_before_it_starts_to_its_end(
    rollout_of: Callable[..., Any], runtime: Any
) -> None:
    watcher = subprocess.Popen(
        [sys.executable, "-m", "canaryflow", "get", "web-watched", "--watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(runtime.reports_dir),
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()  # it is looking before the rollout exists
        reports = runtime.reports_dir
        assert first == f"waiting for rollout web-watched to report in {reports} (up to 10m) ...\n"
        outcome = rollout_of(BAD_IMAGE, rollout_id="web-watched").result()
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 6, err  # not promoted, like `canaryflow rollout`
    lines = out.splitlines()
    assert lines, err
    assert all(" web-watched " in line for line in lines)  # one line per change, never a screen
    assert lines[-1].endswith(
        f"web-watched rolled back, step 2/4, weight 0% (0.0% effective): {outcome.reason}"
    )


def test_get_shows_the_pods_per_track_and_what_comes_next_while_the_rollout_runs(
    rollout_of: Callable[..., Any], runtime: Any
) -> None:
    """At each verdict (an event of the run, not a timer) the view is read from another process:
    it gives the pods of every track and the next analysis interval with its time."""
    import dataclasses

    seen: list[list[str]] = []
    weights: list[list[str]] = []

    def on_event(rollout_id: str, event: str, details: dict[str, Any]) -> None:
        if event == "verdict" and len(seen) < 2:
            shown = _get(runtime.reports_dir, rollout_id)
            assert shown.returncode == 0, shown.stderr
            seen.append(shown.stdout.splitlines())
        if event == "weight" and details.get("requested") == 50:  # step 3, after the first analysis
            weights.append(_get(runtime.reports_dir, rollout_id).stdout.splitlines())

    watched = dataclasses.replace(runtime, events=on_event)
    from canaryflow.requests import RolloutRequest
    from flows import rollout, use_runtime
    from tests.e2e.conftest import DEMO_SPEC

    with use_runtime(watched):
        rollout(RolloutRequest(spec=DEMO_SPEC, image=GOOD_IMAGE, rollout_id="web-next"), return_state=True)

    assert seen
    lines = seen[0]
    pods = [line for line in lines if line.startswith("Pods:      ")]
    assert len(pods) == 1
    assert "stable " in pods[0]
    assert "canary " in pods[0]
    assert " ready" in pods[0]
    nexts = [line for line in lines if line.startswith("Next:      ")]
    assert len(nexts) == 1
    assert nexts[0].startswith("Next:      analysis interval ")
    assert nexts[0].endswith(" UTC")

    assert len(weights) == 1
    assert not any(line.startswith("Next:      analysis") for line in weights[0])  # not the last step's

    done = _get(runtime.reports_dir, "web-next").stdout.splitlines()
    assert not any(line.startswith("Next:") for line in done)  # it ended: nothing comes next
    (after,) = [line for line in done if line.startswith("Pods:      ")]
    assert "canary" not in after  # promoted: only the stable is left
