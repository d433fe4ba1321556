"""Ctrl-C during ``canaryflow demo --cells``: one line, 130, and nothing it started left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from canaryflow.dev.processes import alive, wait_until
from canaryflow.dev.workers import descendants
from tests.fixtures.kube import kube_binaries_or_skip
from tests.fixtures.newmachine import new_machine_env

pytestmark = [pytest.mark.slow, pytest.mark.prometheus, pytest.mark.kube, pytest.mark.timeout(600)]


def test_ctrl_c_while_a_release_runs_stops_everything_and_says_so(tmp_path: Path) -> None:
    from tests.fixtures.prometheus import prometheus_binary

    prometheus_binary()
    kube_binaries_or_skip()
    env = new_machine_env(tmp_path)
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        demo = subprocess.Popen(
            [sys.executable, "-m", "canaryflow", "demo", "--cells", "2"],
            cwd=tmp_path, env=env, stdout=stdout, stderr=stderr, text=True, start_new_session=True,
        )  # fmt: skip
        try:

            def releasing() -> bool:
                assert demo.poll() is None, out.read_text() + err.read_text()
                return "wave 1: cell-1 rolling out" in out.read_text()

            wait_until(releasing, timeout=400, what="the first release's first wave")
            started = descendants(demo.pid)  # Prefect, control planes, Prometheus, workers, cell runs
            os.killpg(demo.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            code = demo.wait(timeout=120)
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
    said = out.read_text() + err.read_text()
    assert code == 130, said
    assert "canaryflow: interrupted: the demo's clusters, their Prometheus and the workers are stopped" in (
        err.read_text()
    )
    assert "Traceback" not in said
    assert len(started) >= 5, started
    wait_until(lambda: not any(alive(pid) for pid in started), timeout=30, what="the demo's processes gone")
