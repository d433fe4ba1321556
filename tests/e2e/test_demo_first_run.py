"""``canaryflow demo`` on a machine that never ran Prefect: a new ``PREFECT_HOME`` and a new state
directory. Prefect's database is prepared before the server starts (never raced against a
start-up timeout), the good image is promoted, the bad one rolled back, and the server the demo
started is gone afterwards. This is the first command of the README; it must not break again."""

from __future__ import annotations

import re
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
    # The summary starts on a line of its own, not after the live board's last frame (piped here).
    assert re.search(r"^\s*canaryflow demo: \d+ s", demo.stdout, flags=re.M), demo.stdout
    home = tmp_path / "state" / "prefect"
    assert (home / "prefect.db").is_file()
    assert running_server(home) is None  # the demo stopped the server it started
    assert sorted(p.name for p in (tmp_path / "reports").iterdir() if p.is_dir())  # two reports
