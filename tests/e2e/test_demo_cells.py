"""``canaryflow demo --cells 3`` on a machine that never ran Prefect: three local control planes,
three Prometheus, a Prefect server with a work pool and a worker per cell. The good release is
promoted wave by wave in every cell; the release that is bad only in the later cells is promoted
in the first, rolled back in the second wave and undone in the first. Checked from the reports the
release and each cell's rollout run (in the workers' processes) wrote, and from the bakes' logs
(their judge learned its warm-up from the cells' history)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from canaryflow.dev.prefectserver import running_server
from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE
from tests.fixtures.kube import kube_binaries_or_skip
from tests.fixtures.newmachine import new_machine_env

pytestmark = [pytest.mark.slow, pytest.mark.prometheus, pytest.mark.kube, pytest.mark.timeout(1800)]


def test_a_release_goes_through_waves_of_local_clusters_and_a_bad_one_is_rolled_back_everywhere(
    tmp_path: Path,
) -> None:
    from tests.fixtures.prometheus import prometheus_binary

    prometheus_binary()
    kube_binaries_or_skip()
    env = new_machine_env(tmp_path)
    reports = tmp_path / "reports"

    demo = subprocess.run(
        [sys.executable, "-m", "canaryflow", "demo", "--cells", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )

    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output + _cells_said(reports)
    assert "Traceback" not in output
    releases = {}
    for path in (reports / "releases").glob("*/release.json"):
        report = json.loads(path.read_text())
        releases[report["image"]] = report
    assert set(releases) == {GOOD_IMAGE, BAD_IMAGE}, output
    good, bad = releases[GOOD_IMAGE], releases[BAD_IMAGE]
    assert good["outcome"] == "released", good
    assert good["waves"] == [["cell-1"], ["cell-2", "cell-3"]]
    assert good["cells"] == {"cell-1": "promoted", "cell-2": "promoted", "cell-3": "promoted"}
    assert bad["outcome"] == "rolled-back", bad
    assert bad["cells"] == {"cell-1": "undone", "cell-2": "rolled-back", "cell-3": "rolled-back"}
    # Both bakes learned their judge's warm-up from the cells' history before the wave began (the
    # demo waits for that history before its first release): the logs' headers carry it.
    for path in (reports / "releases").glob("*/bake-wave1.json"):
        headers = json.loads(path.read_text())["metrics"]
        assert {name: "dispersion" in header for name, header in headers.items()} == {
            "error-rate": True,
            "latency": True,
        }, path
    assert len(list((reports / "releases").glob("*/bake-wave1.json"))) == 2
    # Each cell's rollout ran in a worker's process and wrote its own report.
    results = Counter(
        (status["image"], status["result"])
        for status in (json.loads(p.read_text()) for p in reports.glob("*/status.json"))
    )
    # The first of wave 2 to roll back makes the release abort the other (its canary rolled back too).
    assert results[(GOOD_IMAGE, "promoted")] == 3
    assert results[(BAD_IMAGE, "promoted")] == 1
    assert results[(BAD_IMAGE, "rolled-back")] + results[(BAD_IMAGE, "aborted")] == 2
    assert results[(BAD_IMAGE, "rolled-back")] >= 1
    assert sum(results.values()) == 6
    cells = Counter(json.loads(p.read_text())["cell"] for p in reports.glob("*/status.json"))
    assert cells == {"cell-1": 2, "cell-2": 2, "cell-3": 2}  # each report names its cell
    assert running_server(tmp_path / "state" / "prefect") is None  # the demo stopped its server
    # Each cell's rollout was a flow run of its own cell's work pool, run by a worker's process.
    with closing(sqlite3.connect(tmp_path / "state" / "prefect" / "prefect.db")) as database:
        rows = database.execute(
            "select fr.tags, pool.name, fr.infrastructure_pid from flow_run fr"
            " join work_queue queue on fr.work_queue_id = queue.id"
            " join work_pool pool on queue.work_pool_id = pool.id"
        ).fetchall()
    rollouts = [
        (json.loads(tags), pool, pid) for tags, pool, pid in rows if "canaryflow-kind:rollout" in tags
    ]
    assert len(rollouts) == 6
    for tags, pool, pid in rollouts:
        assert f"canaryflow-cell:{pool}" in tags
        assert pid is not None
    assert (reports / "cells-demo" / "release.yaml").is_file()  # kept, with the workers' logs
    # Nothing the demo started is left: planes (in canaryflow-cells-* directories) and workers.
    left = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True, check=True).stdout
    assert not [line for line in left.splitlines() if "canaryflow-cells-" in line or "--pool cell-" in line]


def _cells_said(reports: Path) -> str:
    """Each cell rollout's result and why, from its report (the release says only which cell)."""
    lines = []
    for path in sorted(reports.glob("*/status.json")):
        said = json.loads(path.read_text())
        lines.append(f"{said.get('cell')} {said.get('image')}: {said.get('result')}: {said.get('reason')}")
    return "\nCells' rollouts:\n" + "\n".join(lines)
