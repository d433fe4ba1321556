"""``canaryflow demo`` on a machine that never ran Prefect: a new ``PREFECT_HOME`` and a new state
directory. Prefect's database is prepared before the server starts (never raced against a
start-up timeout), the good image is promoted, the bad one rolled back, and the server the demo
started is gone afterwards. This is the first command of the README; it must not break again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from canaryflow.dev.prefectserver import running_server
from tests.fixtures.newmachine import new_machine_env

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]


def test_the_demo_works_where_prefect_never_ran(tmp_path: Path) -> None:
    from tests.fixtures.prometheus import prometheus_binary

    prometheus_binary()  # the demo scrapes through a real Prometheus: CI must have it
    env = new_machine_env(tmp_path)

    demo = subprocess.run(
        [sys.executable, "-m", "canaryflow", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "Traceback" not in output
    assert "Preparing Prefect's database" in output  # before the server, not raced against it
    assert "promoted" in output
    assert "rolled-back" in output
    # The summary starts on a line of its own (piped here), after a line per thing each rollout did.
    summary = re.search(r"^\s*canaryflow demo: \d+ s", demo.stdout, flags=re.M)
    assert summary, demo.stdout
    started = re.findall(r"^\d\d:\d\d:\d\d (\S+): starting the rollout", demo.stdout[: summary.start()], re.M)
    assert len(set(started)) == 2, demo.stdout  # both rollouts, as they ran
    home = tmp_path / "state" / "prefect"
    assert (home / "prefect.db").is_file()
    assert running_server(home) is None  # the demo stopped the server it started
    assert sorted(p.name for p in (tmp_path / "reports").iterdir() if p.is_dir())  # two reports


def test_ctrl_c_rolls_the_demo_back_and_exits_130(tmp_path: Path) -> None:
    """Ctrl-C in the terminal reaches the whole process group (Prometheus too): the running
    rollout is rolled back, the next one is not started (its checks would find Prometheus gone),
    and the demo says "interrupted" with 130, not a Prometheus failure with 5."""
    from canaryflow.dev.processes import wait_until
    from canaryflow.reports import read_status
    from tests.fixtures.prometheus import prometheus_binary

    prometheus_binary()
    env = new_machine_env(tmp_path)
    reports = tmp_path / "reports"
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "canaryflow", "demo"],
            cwd=tmp_path, env=env, stdout=out, stderr=err, text=True, start_new_session=True,
        )  # fmt: skip
        try:

            def analysing() -> list[Path]:
                assert demo.poll() is None, (tmp_path / "err").read_text()
                found = list(reports.glob("*/observations-step*.json"))  # the canary is up and looked at
                return found

            (log,) = wait_until(analysing, timeout=600, what="the first rollout's analysis")

            def told() -> bool:  # off a terminal the demo says what it does as it does it
                return (
                    re.search(r"^\d\d:\d\d:\d\d .*analyze", (tmp_path / "out").read_text(), re.M) is not None
                )

            wait_until(told, timeout=60, what="a line of the rollout's progress in the demo's output")
            os.killpg(demo.pid, signal.SIGINT)
            code = demo.wait(timeout=300)
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
    said = (tmp_path / "out").read_text() + (tmp_path / "err").read_text()
    assert code == 130, said
    assert "canaryflow: interrupted: rolling the canary back; the demo ends after that" in said
    assert "Prometheus did not answer" not in said
    assert "Traceback" not in said
    (report,) = [p for p in reports.iterdir() if p.is_dir()]  # the bad image's rollout never started
    assert report == log.parent
    assert read_status(report / "status.json").phase == "aborted"
