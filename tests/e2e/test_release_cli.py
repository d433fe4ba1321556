"""``canaryflow release SPEC --image IMAGE`` against the real Prefect API (the test run's harness):
the command runs the release flow, each cell's rollout and undo are flow runs of the cell pool's
deployments (stand-in flows named ``rollout`` and ``undo``), and a thread of this test plays the
cells' workers through the API: it ends each new run as the cell's script says.

A good release exits 0 with every cell promoted, the waves in order; a release whose second wave
has a rollback exits 6 and the first wave's cell is undone by a run of its pool's undo deployment.
Bad input is refused in one line before Prefect is asked for anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cellpools import deploy_stand_ins

IMAGE = "registry.example.com/shop/demo:2.0.0"
POOL = "release-cli"
RELEASE = f"""\
apiVersion: canaryflow/v1
kind: Release
metadata: {{name: demo}}
spec:
  rollout: config/rollouts/demo.yaml
  prometheus: http://prometheus.monitoring:9090
  cells:
    - {{name: eu-1, context: eu-1, workPool: {POOL}, labels: {{cluster: eu-1}}}}
    - {{name: eu-2, context: eu-2, workPool: {POOL}, labels: {{cluster: eu-2}}}}
  waves:
    - {{cells: [eu-1]}}
    - {{cells: [eu-2]{{bake}}}}
"""


@pytest.fixture(scope="module")
def deployed(prefect_harness: Any) -> None:
    deploy_stand_ins(POOL)


class Workers:
    """Ends every new run of the release's cells through the API: a rollout as `ends` says for its
    cell (default: Completed, i.e. promoted), an undo Completed. `seen` lists (kind, cell) in the
    order the runs were found."""

    def __init__(self, release_id: str, ends: dict[str, str]) -> None:
        self.release_id = release_id
        self.ends = ends
        self.seen: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
        from prefect.states import Completed, Failed, Running

        where = FlowRunFilter(tags=FlowRunFilterTags(all_=[f"canaryflow-release:{self.release_id}"]))
        with get_client(sync_client=True) as client:
            while not self.stop.wait(0.2):
                for run in client.read_flow_runs(flow_run_filter=where):
                    if run.state is None or not run.state.is_scheduled():
                        continue
                    kind = next(t.split(":", 1)[1] for t in run.tags if t.startswith("canaryflow-kind:"))
                    cell = next(t.split(":", 1)[1] for t in run.tags if t.startswith("canaryflow-cell:"))
                    self.seen.append((kind, cell))
                    end = self.ends.get(cell, "Completed") if kind == "rollout" else "Completed"
                    final = Completed() if end == "Completed" else Failed(name=end, message="rolled-back")
                    client.set_flow_run_state(run.id, Running(), force=True)
                    client.set_flow_run_state(run.id, final, force=True)


@pytest.fixture
def workers() -> Iterator[list[Workers]]:
    started: list[Workers] = []
    yield started
    for each in started:
        each.stop.set()
        each.thread.join(timeout=10)


def _canaryflow(api_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "CANARYFLOW_REPORTS_DIR": str(tmp_path / "reports"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _spec(tmp_path: Path, *, bake: bool = False) -> str:
    """The release spec; with `bake`, its last wave bakes against later waves (which it cannot)."""
    path = tmp_path / "release.yaml"
    baked = ", bake: {minDuration: 1m, against: later-waves}"
    path.write_text(RELEASE.replace("{bake}", baked if bake else ""))
    return str(path)


def _release(
    prefect_harness: Any, tmp_path: Path, workers: list[Workers], ends: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], Workers, str]:
    release_id = f"demo-{uuid.uuid4().hex[:8]}"
    cells = Workers(release_id, ends)
    workers.append(cells)
    cells.thread.start()
    done = _canaryflow(
        str(prefect_harness.api.url),
        tmp_path,
        "release",
        _spec(tmp_path),
        "--image",
        IMAGE,
        "--id",
        release_id,
    )
    return done, cells, release_id


def test_a_release_reaches_every_cell_wave_by_wave(
    prefect_harness: Any, deployed: None, tmp_path: Path, workers: list[Workers]
) -> None:
    done, cells, release_id = _release(prefect_harness, tmp_path, workers, {})

    assert done.returncode == 0, done.stderr
    assert cells.seen == [("rollout", "eu-1"), ("rollout", "eu-2")]
    assert done.stdout.splitlines()[-2:] == ["  eu-1: promoted", "  eu-2: promoted"]
    assert "starting the rollout of eu-1" in done.stdout
    assert done.stderr == ""  # Prefect's own console logs stay off the terminal (they go to its API)

    api = str(prefect_harness.api.url)
    shown = _canaryflow(api, tmp_path, "get", "release", release_id)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == f"Release:   {release_id}"
    assert shown.stdout.splitlines()[-2:] == ["  1  eu-1 promoted", "  2  eu-2 promoted"]
    assert "Result:    released: every wave of 2 promoted" in shown.stdout
    watched = _canaryflow(api, tmp_path, "get", "release", release_id, "--watch")
    assert watched.returncode == 0
    assert f"{release_id} released: every wave of 2 promoted" in watched.stdout
    history = _canaryflow(api, tmp_path, "history", "--releases", "--since", "1d")
    assert history.returncode == 0, history.stderr
    (row,) = [line.split() for line in history.stdout.splitlines() if release_id in line]
    assert row[2:5] + row[7:12] == [
        release_id,
        IMAGE,
        "released",
        "2/2",
        "promoted",
        "canaryflow",
        "release",
        "every",
    ]
    assert "releases: 1 in 1d (1.00 a day)" in history.stdout
    assert "change failure rate: 0 % (0 of 1)" in history.stdout


def test_a_rollback_in_the_second_wave_undoes_the_first(
    prefect_harness: Any, deployed: None, tmp_path: Path, workers: list[Workers]
) -> None:
    done, cells, release_id = _release(prefect_harness, tmp_path, workers, {"eu-2": "RolledBack"})

    assert done.returncode == 6, done.stderr
    assert cells.seen == [("rollout", "eu-1"), ("rollout", "eu-2"), ("undo", "eu-1")]
    assert done.stdout.splitlines()[-2:] == ["  eu-1: undone", "  eu-2: rolled-back"]
    assert "rolled-back: wave 2: eu-2 rolled back" in done.stdout
    watched = _canaryflow(str(prefect_harness.api.url), tmp_path, "get", "release", release_id, "--watch")
    assert watched.returncode == 6
    assert "[eu-1 undone, eu-2 rolled-back]" in watched.stdout.splitlines()[-1]


def test_bad_input_is_refused_in_one_line_before_prefect_is_asked(tmp_path: Path) -> None:
    nowhere = "http://127.0.0.1:9/api"  # nothing listens: a command that asked would exit 5

    bake = _canaryflow(nowhere, tmp_path, "release", _spec(tmp_path, bake=True), "--image", IMAGE)
    image = _canaryflow(nowhere, tmp_path, "release", _spec(tmp_path), "--image", "Not An Image")
    missing = _canaryflow(nowhere, tmp_path, "release", str(tmp_path / "none.yaml"), "--image", IMAGE)
    release_id = _canaryflow(nowhere, tmp_path, "release", _spec(tmp_path), "--image", IMAGE, "--id", "A_B")

    assert (bake.returncode, image.returncode, missing.returncode, release_id.returncode) == (1, 1, 1, 1)
    assert bake.stderr.splitlines() == [
        f"canaryflow: error: {_spec(tmp_path, bake=True)}:12 spec.waves[1].bake.against: the last wave has "
        "no later waves to compare with: use history (its cells before the release), or remove the bake"
    ]
    assert image.stderr.splitlines() == [
        "canaryflow: error: image 'Not An Image' is not a valid image reference "
        "(like registry.example.com/shop/web:1.2.0)"
    ]
    assert missing.stderr.splitlines() == [
        f"canaryflow: error: {tmp_path / 'none.yaml'}: no such release spec (give the path of one; "
        "examples are in config/releases/)"
    ]
    assert release_id.stderr.splitlines() == [
        "canaryflow: error: release id 'A_B': use lowercase letters, digits and '-' (at most 63)"
    ]
    assert "Traceback" not in bake.stderr + image.stderr + missing.stderr + release_id.stderr


def test_get_release_refuses_in_one_line(tmp_path: Path) -> None:
    nowhere = "http://127.0.0.1:9/api"

    unknown = _canaryflow(nowhere, tmp_path, "get", "release", "demo-none")
    no_id = _canaryflow(nowhere, tmp_path, "get", "release")

    assert (unknown.returncode, no_id.returncode) == (1, 2)  # as `get ROLLOUT` for a missing report
    assert unknown.stderr.splitlines() == [
        f"canaryflow: error: no report of release 'demo-none' in {tmp_path / 'reports' / 'releases'} "
        "(CANARYFLOW_REPORTS_DIR): check the id (`canaryflow release` prints it first, "
        "`canaryflow history --releases` lists those that ended)"
    ]
    assert no_id.stderr.splitlines() == [
        "canaryflow: error: give the release's id: canaryflow get release ID"
    ]


def test_a_release_whose_cell_pool_has_no_deployments_is_refused_before_any_cell_starts(
    prefect_harness: Any, deployed: None, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterTags

    path = tmp_path / "release.yaml"
    eu2 = "{name: eu-2, context: eu-2, workPool: "
    path.write_text(RELEASE.replace("{bake}", "").replace(eu2 + POOL, eu2 + "nowhere"))

    def refused() -> list[str]:
        api = str(prefect_harness.api.url)
        done = _canaryflow(api, tmp_path, "release", str(path), "--image", IMAGE, "--id", "demo-nowhere")
        assert done.returncode == 1
        return done.stderr.splitlines()

    assert refused() == [
        f"canaryflow: error: {path}: cannot run its cells: the work pool 'nowhere' has no deployment "
        "rollout/nowhere, undo/nowhere, cleanup/nowhere: deploy the rollout, undo, cleanup flow(s) to it "
        "(deployments/prefect.yaml ends with a cell pool's template)"
    ]
    # Pools that lack the same deployments are named in one short clause, not one each.
    eu1 = "{name: eu-1, context: eu-1, workPool: "
    path.write_text(path.read_text().replace(eu1 + POOL, eu1 + "elsewhere"))
    assert refused() == [
        f"canaryflow: error: {path}: cannot run its cells: the work pools 'elsewhere', 'nowhere' have no "
        "deployment rollout/<pool>, undo/<pool>, cleanup/<pool>: deploy the rollout, undo, cleanup flow(s) "
        "to each (deployments/prefect.yaml ends with a cell pool's template)"
    ]
    with get_client(sync_client=True) as client:
        where = FlowRunFilter(tags=FlowRunFilterTags(all_=["canaryflow-release:demo-nowhere"]))
        assert client.read_flow_runs(flow_run_filter=where) == []  # no cell started
        named = FlowRunFilter(name=FlowRunFilterName(any_=["demo-nowhere"]))
        assert client.read_flow_runs(flow_run_filter=named) == []  # nor the release's own run
