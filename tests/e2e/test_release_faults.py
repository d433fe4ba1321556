"""Releases across two real local control planes, under the faults a release must ride out.

Two cells (``fault-1`` then ``fault-2``, a wave each), each a local control plane of its own with
the example app, its simulated traffic scraped by its own Prometheus, and a work pool with a real
``prefect worker`` on the test run's Prefect API (`canaryflow.cli.cellsdemo.start_cells`, as the
cells demo). Every cell's rollout and undo is a real flow run in its worker's process, against its
cell's API server and Prometheus. The release runs in a process of its own
(`tests.fixtures.releaserun`), so that a test can kill it.

What could fail and is checked, each from what Prefect and the clusters say afterwards:

- the release killed (SIGKILL) during its bake, then run again with its id: it bakes again and
  reaches every cell, each cell's rollout run started once;
- the release killed while it undoes the first wave (the second rolled back), then run again: the
  first cell is undone once and ends on its old image;
- a freeze on the second cell: its rollout starts only after the freeze ends;
- a blocked cell (its stable serves errors above the release's health limit): its wave waits, says
  why, and starts once the stable is healthy again;
- a cell whose API server is down: its rollout run fails before it changes anything, nothing is
  promoted there, and the first wave is rolled back by the default ``rollback-all``;
- a cell whose worker dies with its flow-run process mid-rollout (its machine gone): the run's
  heartbeats stop, the release's automation marks it Crashed, the release rolls the first wave
  back, and the cell's cleanup run converges it once a worker is back.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from canaryflow.cli.cellsdemo import DemoCell, cell_rollout_spec_text, start_cells, wait_for_traffic
from canaryflow.dev.kube.controlplane import LocalControlPlane
from canaryflow.dev.stacks import BAD_IMAGE
from canaryflow.simulation import BehaviourProfile
from tests.fixtures.kube import kube_binaries_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.kube, pytest.mark.prometheus, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
CELLS = ["fault-1", "fault-2"]


@dataclass
class Cells:
    """The two running cells, the rollout spec they run, and the environment of the releases."""

    running: dict[str, DemoCell]
    planes: dict[str, LocalControlPlane]
    rollout: Path
    workdir: Path
    env: dict[str, str]
    worker_env: dict[str, str]
    workers: dict[str, subprocess.Popen[bytes]]
    spares: list[subprocess.Popen[bytes]]

    def kill_worker(self, cell: str) -> None:
        """SIGKILL the cell's worker and its flow-run processes, as when its machine dies."""
        from canaryflow.dev.workers import descendants

        worker = self.workers[cell]
        processes = [worker.pid, *descendants(worker.pid)]
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=30)

    def start_worker(self, cell: str) -> None:
        """A new worker for the cell's pool (stopped with the others)."""
        from canaryflow.dev.workers import spawn

        command = [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            cell,
            "--name",
            f"{cell}-again",
        ]
        self.workers[cell] = spawn(command, self.worker_env, self.workdir / f"worker-{cell}-again.log")
        self.spares.append(self.workers[cell])

    def image(self, cell: str) -> str:
        """The image the cell's stable runs now (from its API server)."""
        status = self.running[cell].stack.cluster.read(self.running[cell].stack.target)
        assert (status.canary, status.baseline) == (None, None), status
        return status.stable.image

    def spec(self, name: str, *, bake: str = "", extra: str = "", rollout: Path | None = None) -> Path:
        """A release spec `name` of the two cells in two waves (`bake` after the first), each cell
        running `rollout` (the module's one analysis unless given)."""
        lines = ["apiVersion: canaryflow/v1", "kind: Release", f"metadata: {{name: {name}}}", "spec:"]
        lines += [f"  rollout: {rollout or self.rollout}", "  cells:"]
        for cell in CELLS:
            url = self.running[cell].prometheus
            lines += [f"    - {{name: {cell}, context: {cell}, workPool: {cell}, prometheus: '{url}'}}"]
        lines += ["  waves:", f"    - cells: [{CELLS[0]}]"]
        lines += [f"      bake: {bake}"] if bake else []
        lines += [f"    - cells: [{CELLS[1]}]"]
        path = self.workdir / f"{name}.yaml"
        path.write_text("\n".join(lines) + "\n" + extra)
        return path

    def ready(self) -> None:
        """Wait until each cell's stable has metrics to judge (after a promotion its pods are new)."""
        wait_for_traffic(self.spec("ready"), self.running, say=lambda _: None)


@pytest.fixture(scope="module")
def cells(prefect_harness: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cells]:
    from canaryflow.dev.workers import cell_workers, stop_all
    from canaryflow.triggers.unresponsive import AUTOMATION
    from tests.fixtures.prometheus import prometheus_binary

    binaries = kube_binaries_or_skip()
    prometheus = prometheus_binary()
    workdir = tmp_path_factory.mktemp("release-faults")
    with ExitStack() as stack:
        kubeconfig, running = start_cells(
            stack, CELLS, binaries=binaries, prometheus_binary=prometheus, say=lambda _: None
        )
        rollout = workdir / "rollout.yaml"
        rollout.write_text(cell_rollout_spec_text())
        worker_env = {
            **os.environ,
            "PREFECT_API_URL": str(prefect_harness.api.url),
            "PREFECT_HOME": str(workdir / "prefect-home"),
            "KUBECONFIG": str(kubeconfig),
            "CANARYFLOW_REPORTS_DIR": str(workdir / "reports"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
        # The releases send heartbeats every 30 s (Prefect's least) and their automation marks a
        # cell run Crashed after 90 s without one. The workers keep Prefect's 180 s: a release gives
        # its cell runs its own interval, else every run longer than 90 s would be marked.
        env = {**worker_env, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
        worker_env.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
        workers = stack.enter_context(cell_workers(CELLS, env=worker_env, workdir=workdir))
        # The automation's window only grows: one an earlier release on this API made (at 180 s
        # heartbeats) would hold the lost worker's run for 9 minutes instead of 90 s.
        _delete_automation(AUTOMATION)
        # Each cell's plane as a handle to stop and start its API server (kept until the planes stop).
        planes = {
            cell: LocalControlPlane(running[cell].plane.directory, binaries=binaries, die_with_parent=True)
            for cell in CELLS
        }
        spares: list[subprocess.Popen[bytes]] = []
        yield Cells(
            running=running,
            planes=planes,
            rollout=rollout,
            workdir=workdir,
            env=env,
            worker_env=worker_env,
            workers=dict(zip(CELLS, workers, strict=True)),
            spares=spares,
        )
        stop_all(spares, grace=15.0)
        _delete_automation(AUTOMATION)  # the session's other releases have other heartbeats
    for plane in planes.values():
        plane.down()  # stopped with the others: reaps the API servers this handle started again


class Release:
    """A release run in a process of its own: its lines as they come (read by a thread, so a
    wait has a deadline even while the release says nothing), killed or awaited."""

    def __init__(self, cells: Cells, spec: Path, image: str, release_id: str) -> None:
        command = [sys.executable, "-m", "tests.fixtures.releaserun", str(spec), image, release_id]
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=cells.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._said: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self._said.put(line.rstrip("\n"))
        self._said.put(None)  # the release's output ended

    def _next(self, deadline: float) -> str | None:
        try:
            line = self._said.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("no such line in time:\n" + "\n".join(self.lines[-30:])) from None
        if line is not None:
            self.lines.append(line)
        return line

    def until(self, said: Callable[[str], bool], timeout: float = 400.0) -> str:
        """Wait for the first line (from now on) that satisfies `said`; that line."""
        deadline = time.monotonic() + timeout
        while (line := self._next(deadline)) is not None:
            if said(line):
                return line
        raise AssertionError("the release ended first:\n" + "\n".join(self.lines[-30:]))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)

    def outcome(self, timeout: float = 600.0) -> dict[str, Any]:
        """Wait for its end; its outcome (the JSON of its last line)."""
        deadline = time.monotonic() + timeout
        while self._next(deadline) is not None:
            pass
        assert self.process.wait(timeout=30) == 0, "\n".join(self.lines[-40:])
        outcome: dict[str, Any] = json.loads(self.lines[-1])
        return outcome


@pytest.fixture
def releases(cells: Cells) -> Iterator[Callable[[Path, str, str], Release]]:
    """Start a `Release`; each one still running when the test ends is killed (a failed test
    leaves no release starting cell runs under the next one)."""
    started: list[Release] = []

    def start(spec: Path, image: str, release_id: str) -> Release:
        started.append(Release(cells, spec, image, release_id))
        return started[-1]

    yield start
    for release in started:
        release.kill()


def _cell_runs(release_id: str) -> list[dict[str, Any]]:
    """The release's cell runs on Prefect, oldest first: kind, cell, state name, created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    where = FlowRunFilter(tags=FlowRunFilterTags(all_=[f"canaryflow-release:{release_id}"]))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=where, sort=FlowRunSort.EXPECTED_START_TIME_ASC)
    found = []
    for run in runs:
        tags = dict(tag.split(":", 1) for tag in run.tags if tag.startswith("canaryflow-"))
        state = run.state.name if run.state is not None else None
        found.append(
            {"kind": tags["canaryflow-kind"], "cell": tags["canaryflow-cell"], "state": state, "run": run}
        )
    return found


def _delete_automation(name: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for automation in client.read_automations_by_name(name):
            client.delete_automation(automation.id)


def _new_image() -> str:
    """An image none of the cells ran yet (it behaves as the stable does)."""
    return f"registry.example.com/shop/web:2.{uuid.uuid4().int % 10**6}.0"


def test_a_release_killed_during_its_bake_is_run_again_and_reaches_every_cell(
    cells: Cells, releases: Callable[[Path, str, str], Release]
) -> None:
    cells.ready()
    image, release_id = _new_image(), f"baked-{uuid.uuid4().hex[:6]}"
    spec = cells.spec("baked", bake="{minDuration: 10s, maxDuration: 3m, readLag: 3s}")

    first = releases(spec, image, release_id)
    first.until(lambda line: re.search(r": wave 1 bake: [1-9]\d* of ", line) is not None)
    first.kill()
    assert cells.image(CELLS[0]) == image  # wave 1 was promoted before the kill
    again = releases(spec, image, release_id)
    outcome = again.outcome()

    assert outcome["outcome"] == "released", again.lines
    assert outcome["cells"] == {CELLS[0]: "promoted", CELLS[1]: "promoted"}
    assert any(": wave 1 bake: " in line for line in again.lines), again.lines  # it baked again
    runs = _cell_runs(release_id)
    assert [(r["kind"], r["cell"], r["state"]) for r in runs] == [
        ("rollout", CELLS[0], "Completed"),
        ("rollout", CELLS[1], "Completed"),
    ]
    assert [cells.image(cell) for cell in CELLS] == [image, image]


def test_a_release_killed_while_undoing_the_first_wave_undoes_it_once_when_run_again(
    cells: Cells, releases: Callable[[Path, str, str], Release]
) -> None:
    cells.ready()
    before = [cells.image(cell) for cell in CELLS]
    release_id = f"undone-{uuid.uuid4().hex[:6]}"
    spec = cells.spec("undone")  # BAD_IMAGE fails only in the second cell (`cell_profiles`)

    first = releases(spec, BAD_IMAGE, release_id)
    first.until(lambda line: f": undoing {CELLS[0]}: " in line)
    first.kill()
    again = releases(spec, BAD_IMAGE, release_id)
    outcome = again.outcome()

    assert outcome["outcome"] == "rolled-back", again.lines
    assert outcome["cells"] == {CELLS[0]: "undone", CELLS[1]: "rolled-back"}
    runs = _cell_runs(release_id)
    assert [(r["kind"], r["cell"], r["state"]) for r in runs] == [
        ("rollout", CELLS[0], "Completed"),
        ("rollout", CELLS[1], "RolledBack"),
        ("undo", CELLS[0], "Completed"),
    ]
    assert [cells.image(cell) for cell in CELLS] == before


def _freeze(ends: datetime) -> str:
    start = (ends - timedelta(hours=2)).isoformat()
    return (
        f"  freezes:\n    - {{start: '{start}', end: '{ends.isoformat()}', cells: [{CELLS[1]}], "
        "reason: end of quarter}\n"
    )


def test_a_freeze_on_the_second_cell_holds_its_wave_until_the_freeze_ends(
    cells: Cells, releases: Callable[[Path, str, str], Release]
) -> None:
    cells.ready()
    image, release_id = _new_image(), f"frozen-{uuid.uuid4().hex[:6]}"
    long = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    spec = cells.spec("frozen", extra=_freeze(long))

    first = releases(spec, image, release_id)
    held = first.until(lambda line: "wave 2 waits: " in line)
    assert [(r["kind"], r["cell"]) for r in _cell_runs(release_id)] == [("rollout", CELLS[0])]
    first.kill()
    # The freeze is shortened (to end in 20 s) and the release run again.
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    cells.spec("frozen", extra=_freeze(ends))
    again = releases(spec, image, release_id)
    outcome = again.outcome()

    assert f"{CELLS[1]}: frozen until {long:%Y-%m-%d %H:%M} UTC (end of quarter)" in held, held
    assert outcome["outcome"] == "released", again.lines
    runs = {r["cell"]: r["run"] for r in _cell_runs(release_id)}
    assert runs[CELLS[1]].created >= ends
    assert [cells.image(cell) for cell in CELLS] == [image, image]


def test_a_cell_whose_stable_is_unhealthy_holds_its_wave_until_it_is_healthy(
    cells: Cells, releases: Callable[[Path, str, str], Release]
) -> None:
    cells.ready()
    image, release_id = _new_image(), f"blocked-{uuid.uuid4().hex[:6]}"
    health = "  health: {window: 15s, maxRates: {error-rate: 0.03}}\n"
    spec = cells.spec("blocked", extra=health)
    second = cells.running[CELLS[1]].stack.simulator
    stable = cells.image(CELLS[1])
    healthy = second.profile_for(stable)
    second.set_profile(stable, BehaviourProfile(error_rate=0.2))  # a dependency of its stable fails
    try:
        release = releases(spec, image, release_id)
        held = release.until(lambda line: "wave 2 waits: " in line)
    finally:
        healed = datetime.now(UTC)
        second.set_profile(stable, healthy)
    outcome = release.outcome()

    assert f"{CELLS[1]}: its stable is unhealthy (error-rate " in held, held
    assert outcome["outcome"] == "released", release.lines
    runs = {r["cell"]: r["run"] for r in _cell_runs(release_id)}
    # Not before the errors left the health window (15 s): at 20 %, the rate is above 3 % for
    # about 13 s after the stable heals.
    assert runs[CELLS[1]].created >= healed + timedelta(seconds=5)
    assert [cells.image(cell) for cell in CELLS] == [image, image]


def test_a_cell_whose_api_server_is_down_is_not_released_and_the_first_wave_is_rolled_back(
    cells: Cells, releases: Callable[[Path, str, str], Release]
) -> None:
    cells.ready()
    before = [cells.image(cell) for cell in CELLS]
    image, release_id = _new_image(), f"down-{uuid.uuid4().hex[:6]}"
    spec = cells.spec("down")
    plane = cells.planes[CELLS[1]]
    release = releases(spec, image, release_id)
    release.until(lambda line: f"starting the rollout of {CELLS[1]}" in line)
    plane.stop_apiserver()
    try:
        outcome = release.outcome()
    finally:
        plane.start_apiserver()

    assert outcome["outcome"] == "rolled-back", release.lines
    assert outcome["cells"] == {CELLS[0]: "undone", CELLS[1]: "failed"}, outcome
    # The cell's cleanup run (started by the release, not awaited) converges it once it answers.
    deadline = time.monotonic() + 240
    runs = _cell_runs(release_id)
    while not all(r["run"].state is not None and r["run"].state.is_final() for r in runs):
        assert time.monotonic() < deadline, runs
        time.sleep(2.0)  # another process's runs on the Prefect API: no event to await
        runs = _cell_runs(release_id)
    assert [(r["kind"], r["cell"], r["state"]) for r in runs] == [
        ("rollout", CELLS[0], "Completed"),
        ("rollout", CELLS[1], "Failed"),
        ("cleanup", CELLS[1], "Completed"),
        ("undo", CELLS[0], "Completed"),
    ], release.lines
    assert runs[1]["run"].name.endswith("-refused")  # its preflight stopped it before any change
    assert [cells.image(cell) for cell in CELLS] == before


def test_a_cell_whose_worker_dies_mid_rollout_is_marked_crashed_and_the_first_wave_rolled_back(
    cells: Cells, releases: Callable[[Path, str, str], Release]
) -> None:
    cells.ready()
    before = [cells.image(cell) for cell in CELLS]
    image, release_id = _new_image(), f"lost-{uuid.uuid4().hex[:6]}"
    # Each cell's run outlasts the automation's 90 s: the first one's, alive on a worker of 180 s
    # heartbeats, must not be marked (the release gives its runs its own 30 s).
    analysis = "    - analyze: {interval: 5s, maxDuration: 2m}\n"
    text = cell_rollout_spec_text()
    assert analysis in text
    longer = cells.workdir / "rollout-longer.yaml"
    longer.write_text(text.replace(analysis, analysis + "    - pause: {duration: 100s}\n"))
    spec = cells.spec("lost", rollout=longer)
    second = cells.running[CELLS[1]].stack
    release = releases(spec, image, release_id)
    release.until(lambda line: f"starting the rollout of {CELLS[1]}" in line)
    deadline = time.monotonic() + 120
    while second.cluster.read(second.target).canary is None:  # its run is splitting the traffic
        assert time.monotonic() < deadline, release.lines
        time.sleep(0.5)  # another process's writes to the API server: no event to await here
    cells.kill_worker(CELLS[1])
    killed = time.monotonic()
    outcome = release.outcome()
    crashed_after = time.monotonic() - killed
    cells.start_worker(CELLS[1])  # the cell's cleanup run waits for a worker on its pool

    assert outcome["outcome"] == "rolled-back", release.lines
    assert outcome["cells"] == {CELLS[0]: "undone", CELLS[1]: "failed"}, outcome
    assert crashed_after >= 60  # not before the heartbeats were missed (90 s after the last)
    deadline = time.monotonic() + 240
    runs = _cell_runs(release_id)
    while not all(r["run"].state is not None and r["run"].state.is_final() for r in runs):
        assert time.monotonic() < deadline, runs
        time.sleep(2.0)  # another process's runs on the Prefect API: no event to await
        runs = _cell_runs(release_id)
    assert [(r["kind"], r["cell"], r["state"]) for r in runs] == [
        ("rollout", CELLS[0], "Completed"),
        ("rollout", CELLS[1], "Crashed"),
        ("cleanup", CELLS[1], "Completed"),
        ("undo", CELLS[0], "Completed"),
    ], release.lines
    assert "no heartbeat" in (runs[1]["run"].state.message or ""), runs[1]["run"].state
    assert [cells.image(cell) for cell in CELLS] == before  # the canary of cell 2 rolled back too
