"""The release flow on the real Prefect API (the test run's harness), its cells' runs in memory
(`InMemoryCellRuns`, held to the same contract as the Prefect adapter by
tests/integration/triggers/test_cell_runs_contract.py). Each cell's run ends as the test scripts it
the next time the release asks where its cells are, the way a worker's run would end meanwhile.

What it shows: the waves go in order (a wave starts only once the one before is promoted); a
rollback in a later wave aborts that wave's running cells and undoes every promoted cell (the
default ``rollback-all``); a release run again with the id of an interrupted one carries on without
starting a cell twice; a Prefect that cannot be reached delays the release and loses nothing; a
wave's bake (its cell's simulated stable traffic against the cells not updated yet, on a manual
clock) lets the next wave start only once it shows the release within tolerance, and a bake that
finds the release worse undoes the baked wave before any later cell starts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analysis.backtest import judge_log
from analysis.logs import parse_log
from canaryflow.cells import CellRun
from canaryflow.cli.releaseview import render_release
from canaryflow.clock import ManualClock
from canaryflow.errors import TriggerUnavailableError
from canaryflow.releasehistory import read_releases
from canaryflow.releasereport import ReleaseStatus, bake_log, read_release_status, release_report
from canaryflow.requests import ReleaseRequest
from canaryflow.simulation import BehaviourProfile
from canaryflow.triggers.memory import InMemoryCellRuns
from canaryflow.triggers.port import FlowRunId, RunState
from canaryflow.waves import CellPhase
from flows.releasereporting import release_table
from tests.fixtures.celltraffic import NEW, OLD, CellTraffic, Unanswered

IMAGE = "registry.example.com/shop/demo:2.0.0"
RELEASE = """\
apiVersion: canaryflow/v1
kind: Release
metadata: {{name: demo}}
spec:
  rollout: config/rollouts/demo.yaml
  prometheus: http://prometheus.monitoring:9090
  cells:
    - {{name: eu-1, context: eu-1, workPool: rollouts-eu, labels: {{cluster: eu-1}}}}
    - {{name: eu-2, context: eu-2, workPool: rollouts-eu, labels: {{cluster: eu-2}}}}
    - {{name: us-1, context: us-1, workPool: rollouts-us, labels: {{cluster: us-1}}}}
  waves:
    - {{cells: [eu-1]{bake}}}
    - {{cells: [eu-2, us-1]}}
"""


class Interrupted(BaseException):
    """The release's process dies (not an error the flow handles)."""


class ScriptedCells(InMemoryCellRuns):
    """Cells whose rollout runs end as `ends` says (default: promoted) and whose undos complete,
    each the next time the release asks; `outages` asks are answered as by an unreachable Prefect."""

    def __init__(
        self,
        ends: dict[str, RunState] | None = None,
        outages: int = 0,
        meanwhile: dict[int, Callable[[], None]] | None = None,
        clock: ManualClock | None = None,
        undo_ends: RunState = "completed",
        stop_after_undos: int | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.clock = clock
        if clock is not None:
            self.now = clock.now  # the runs' creation times on the test's clock
        self.on_start = on_start  # what a cell's rollout changes (e.g. its stable's image)
        self.undo_ends = undo_ends
        self.stop_after_undos = stop_after_undos  # the release is killed once this many undos ran
        self.undone_at: list[datetime] = []
        self.ends = ends or {}
        self.outages = outages
        self.meanwhile = meanwhile or {}  # what happens elsewhere before the n-th ask (from 1)
        self.asked = 0
        self.seen_at_start: dict[str, dict[str, CellPhase]] = {}
        self.started_at: dict[str, datetime] = {}

    def phases(self, release_id: str) -> dict[str, CellPhase]:
        if self.stop_after_undos is not None and len(self.started("undo")) >= self.stop_after_undos:
            raise Interrupted("the release's process was killed")
        self.asked += 1
        if self.asked in self.meanwhile:
            self.meanwhile[self.asked]()
        if self.outages > 0:
            self.outages -= 1
            raise TriggerUnavailableError("the Prefect API cannot be reached: ConnectError")
        for record in self.runs:
            if record.state == "active":
                end = self.ends.get(record.run.cell, "completed") if record.kind == "rollout" else "completed"
                end = self.undo_ends if record.kind == "undo" else end
                if end != "active":
                    self.end(record.flow_run_id, end, at=None if self.clock is None else self.clock.now())
        return super().phases(release_id)

    def start(self, release_id: str, run: CellRun) -> FlowRunId:
        self.seen_at_start.setdefault(run.cell, super().phases(release_id))
        if self.clock is not None:
            self.started_at.setdefault(run.cell, self.clock.now())
        if self.on_start is not None and run.cell not in self.started("rollout"):
            self.on_start(run.cell)
        return super().start(release_id, run)

    def undo(self, release_id: str, run: CellRun, reason: str, rollout_id: str) -> FlowRunId:
        before = len(self.runs)
        flow_run_id = super().undo(release_id, run, reason, rollout_id)
        if len(self.runs) > before and self.clock is not None:
            self.undone_at.append(self.clock.now())
        return flow_run_id

    def started(self, kind: str) -> list[str]:
        return [record.run.cell for record in self.runs if record.kind == kind]


def _release(
    tmp_path: Path,
    cells: ScriptedCells,
    *,
    release_id: str | None = None,
    traffic: CellTraffic | None = None,
    said: list[str] | None = None,
    bake: bool = True,
    health: str = "",
    clock: ManualClock | None = None,
    last_bake: str = "",
    watch: Callable[[], str | None] | None = None,
) -> Any:
    from flows.release import ReleaseWiring, release, use_release_wiring

    path = tmp_path / "release.yaml"
    baked = ", bake: {minDuration: 1m, maxDuration: 10m}" if traffic and bake else ""
    text = RELEASE.format(bake=baked) + (f"  health: {health}\n" if health else "")
    if last_bake:
        text = text.replace("[eu-2, us-1]}", f"[eu-2, us-1], bake: {last_bake}}}")
    path.write_text(text)
    image = IMAGE if traffic is None else NEW
    request = ReleaseRequest(spec=str(path), image=image, triggered_by="test", release_id=release_id)
    wiring = ReleaseWiring(cells, poll_seconds=0.0, reports_dir=tmp_path / "reports", watch=watch)
    if clock is not None:
        wiring = ReleaseWiring(
            cells, poll_seconds=5.0, reports_dir=tmp_path / "reports", clock=clock, watch=watch
        )
    if traffic is not None:  # the bake reads each cell's simulated traffic; a poll takes 5 s of it
        sources = traffic.sources
        wiring = ReleaseWiring(
            cells,
            poll_seconds=5.0,
            reports_dir=tmp_path / "reports",
            metrics=lambda run: sources[run.cell],
            clock=traffic.clock,
            say=None if said is None else said.append,
            watch=watch,
        )
    with use_release_wiring(wiring):
        return release(request, return_state=True)


def test_a_good_release_reaches_every_cell_wave_by_wave(prefect_harness: Any, tmp_path: Path) -> None:
    cells = ScriptedCells()

    state = _release(tmp_path, cells, release_id="demo-good")

    assert state.is_completed()
    outcome = state.result()
    assert (outcome.outcome, outcome.cells) == (
        "released",
        {"eu-1": "promoted", "eu-2": "promoted", "us-1": "promoted"},
    )
    assert cells.started("rollout") == ["eu-1", "eu-2", "us-1"]
    assert cells.seen_at_start["eu-1"] == {}
    assert cells.seen_at_start["eu-2"] == {"eu-1": "promoted"}  # wave 2 only after wave 1 promoted
    eu2 = next(record.run for record in cells.runs if record.run.cell == "eu-2")
    assert (eu2.work_pool, eu2.env["CANARYFLOW_PROMETHEUS_LABELS"]) == ("rollouts-eu", "cluster=eu-2")
    assert eu2.request.image == IMAGE
    assert eu2.request.triggered_by == "release demo-good: test"

    report = read_release_status(release_report(tmp_path / "reports", "demo-good"))
    assert (report.outcome, report.waves) == ("released", [["eu-1"], ["eu-2", "us-1"]])
    assert report.cells == {"eu-1": "promoted", "eu-2": "promoted", "us-1": "promoted"}
    assert report.step.startswith("every wave of 2 promoted")
    (record,), unreadable = read_releases(tmp_path / "reports")
    assert (record.release_id, record.release, record.outcome, record.triggered_by) == (
        "demo-good",
        "demo",
        "released",
        "test",
    )
    assert (record.cells, unreadable) == (outcome.cells, 0)
    assert record.started_at <= record.finished_at
    artifact = _artifact("release-demo-good")
    assert "| 2 | us-1 | promoted |" in artifact
    assert "**released**: every wave of 2 promoted" in artifact


WATCHING = "a cell run without a heartbeat for 90 s is set Crashed (automation x)"


@pytest.mark.parametrize("taken", [True, False])
def test_the_release_asks_for_the_watch_on_silent_cell_runs_first_and_goes_on_without_it(
    prefect_harness: Any, tmp_path: Path, taken: bool
) -> None:
    """Before any cell run starts the release makes the automation that sets a silent cell run
    Crashed (`flows.release.watch_unresponsive`) and logs what it does; a Prefect that refuses it
    is a warning in the run's log, and the release goes on."""
    import logging

    cells = ScriptedCells()
    asked: list[int] = []
    release_id = "watched" if taken else "unwatched"

    def watch() -> str | None:
        asked.append(len(cells.runs))
        if not taken:
            raise TriggerUnavailableError("the Prefect API did not take the automation x: 503")
        return WATCHING

    logged: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = logged.append  # type: ignore[method-assign]
    runs_logger = logging.getLogger("prefect.flow_runs")
    runs_logger.addHandler(handler)
    try:
        state = _release(tmp_path, cells, release_id=release_id, watch=watch)
    finally:
        runs_logger.removeHandler(handler)

    assert state.result().outcome == "released"
    assert asked == [0]  # once, before the first cell run
    said = [(r.levelno, r.getMessage()) for r in logged if "automation x" in r.getMessage()]
    if taken:
        assert said == [(logging.INFO, f"release {release_id}: {WATCHING}")]
    else:
        assert said == [
            (
                logging.WARNING,
                f"release {release_id}: a cell run whose worker's machine dies will not be marked Crashed"
                ": the Prefect API did not take the automation x: 503",
            )
        ]


def test_a_rollback_in_the_second_wave_aborts_it_and_undoes_the_first(
    prefect_harness: Any, tmp_path: Path
) -> None:
    from canaryflow.plan import plan_rollout

    cells = ScriptedCells(ends={"eu-2": "not-promoted", "us-1": "active"})

    state = _release(tmp_path, cells, release_id="demo-bad")

    assert state.is_failed()
    assert state.name == "RolledBack"
    outcome = state.result(raise_on_failure=False)
    assert outcome.outcome == "rolled-back"
    assert outcome.cells == {"eu-1": "undone", "eu-2": "rolled-back", "us-1": "rolled-back"}
    us1 = next(record for record in cells.runs if record.run.cell == "us-1")
    assert us1.reason.startswith("wave 2: eu-2 rolled back")  # aborted, not left running
    assert cells.started("undo") == ["eu-1"]
    undo = next(record for record in cells.runs if record.kind == "undo")
    assert "onFailure: rollback-all" in undo.reason
    assert undo.rollout_id == plan_rollout(undo.run.request).rollout_id  # only eu-1's own promotion
    report = read_release_status(release_report(tmp_path / "reports", "demo-bad"))
    assert (report.outcome, report.cells["eu-1"]) == ("rolled-back", "undone")


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    latest = max(found, key=lambda artifact: artifact.created)  # the latest version of the table
    return str(latest.data)


def test_a_crashed_cell_is_cleaned_up_and_the_release_rolled_back(
    prefect_harness: Any, tmp_path: Path
) -> None:
    from canaryflow.plan import plan_rollout

    cells = ScriptedCells(ends={"eu-1": "failed"})

    state = _release(tmp_path, cells, release_id="demo-crash")

    assert state.name == "RolledBack"
    assert state.result(raise_on_failure=False).cells == {
        "eu-1": "failed",
        "eu-2": "pending",
        "us-1": "pending",
    }
    (cleanup,) = [record for record in cells.runs if record.kind == "cleanup"]
    assert cleanup.run.cell == "eu-1"
    assert cleanup.rollout_id == plan_rollout(cleanup.run.request).rollout_id  # the crashed run's rollout
    assert cells.started("rollout") == ["eu-1"]


def test_a_release_run_again_carries_on_without_starting_a_cell_twice(
    prefect_harness: Any, tmp_path: Path
) -> None:
    cells = ScriptedCells()
    from canaryflow.cells import cell_run
    from canaryflow.spec.loading import load_release_text

    earlier = load_release_text(RELEASE.format(bake=""))
    first = cells.start("demo-resumed", cell_run(earlier, "eu-1", image=IMAGE, triggered_by="test"))
    cells.end(first, "completed")  # the interrupted run had promoted wave 1
    _claimed_by("demo-resumed")()  # and claimed the service's releases when it started

    began = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the interrupted run's report says so
    path = release_report(tmp_path / "reports", "demo-resumed")
    path.parent.mkdir(parents=True)
    path.write_text(
        ReleaseStatus(
            release_id="demo-resumed",
            image=IMAGE,
            spec="release.yaml",
            waves=[["eu-1"], ["eu-2", "us-1"]],
            cells={"eu-1": "running"},
            step="starting the rollout of eu-1",
            started_at=began,
            updated_at=began,
        ).model_dump_json()
    )

    state = _release(tmp_path, cells, release_id="demo-resumed")
    again = _release(tmp_path, cells, release_id="demo-resumed")  # once more after it ended

    assert state.result().outcome == again.result().outcome == "released"
    assert cells.started("rollout") == ["eu-1", "eu-2", "us-1"]
    assert read_release_status(path).started_at == began
    (record,), _ = read_releases(tmp_path / "reports")  # ended twice, one release
    assert record.started_at == began


def test_a_release_without_an_id_is_named_after_the_release_and_its_run(
    prefect_harness: Any, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    cells = ScriptedCells()

    state = _release(tmp_path, cells)

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    release_id = state.result().release_id
    assert release_id == f"demo-{str(run.id)[:8]}"
    assert run.name == release_id  # the UI's run is the release `get release ID` shows
    assert {record.release_id for record in cells.runs} == {release_id}


def test_prefect_out_of_reach_delays_the_release_and_loses_nothing(
    prefect_harness: Any, tmp_path: Path
) -> None:
    cells = ScriptedCells(outages=3)

    state = _release(tmp_path, cells, release_id="demo-outage")

    assert state.result().outcome == "released"
    assert cells.outages == 0
    assert cells.started("rollout") == ["eu-1", "eu-2", "us-1"]


def test_the_next_wave_starts_once_the_bake_shows_the_release_within_tolerance(
    prefect_harness: Any, tmp_path: Path
) -> None:
    traffic = CellTraffic(BehaviourProfile())
    cells = ScriptedCells(clock=traffic.clock)
    said: list[str] = []

    state = _release(tmp_path, cells, release_id="demo-baked", traffic=traffic, said=said)

    assert state.is_completed(), state.message
    assert cells.started("rollout") == ["eu-1", "eu-2", "us-1"]
    eu1_ended = next(r.ended_at for r in cells.runs if r.run.cell == "eu-1")
    assert eu1_ended is not None
    waited = cells.started_at["eu-2"] - eu1_ended
    assert waited >= timedelta(minutes=1)  # the bake's minDuration, at least
    assert any(
        line.startswith("demo-baked: wave 1 bake: ") and " of 120 interval(s)" in line for line in said
    ), said
    report = read_release_status(release_report(tmp_path / "reports", "demo-baked"))
    (bake,) = report.bakes
    assert (bake.wave, bake.verdict, bake.intervals_max) == (1, "within", 120)
    assert bake.intervals_judged >= 2  # a minute of 30 s intervals, at least
    assert bake.requests > 0
    assert bake.started_at == eu1_ended
    assert "| bake of wave | against | verdict |" in release_table(report)
    assert "| 1 | later-waves | within |" in release_table(report)
    assert any(line.startswith("  1  within since ") for line in render_release(report))
    # What the bake judged is kept in the format replay reads, and drawn in the UI's table.
    observed = bake_log(tmp_path / "reports", "demo-baked", 1)
    log = parse_log(observed.read_text())
    assert len(log.intervals) == bake.intervals_judged
    assert list(judge_log(log, None))[-1].decision != "rollback"
    assert observed.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    chart = _artifact("release-demo-baked-bake1")  # drawn once, when the bake decided
    assert chart.startswith("### Bake of wave 1: within")
    assert "against the cells not updated (baseline)" in chart
    assert "](data:image/png;base64," in chart
    assert "data:image" not in _artifact("release-demo-baked")  # the table's versions stay small

    again = _release(tmp_path, cells, release_id="demo-baked", traffic=traffic)  # e.g. resumed

    assert again.is_completed(), again.message
    assert read_release_status(release_report(tmp_path / "reports", "demo-baked")).bakes == [bake]


@pytest.mark.parametrize("bad", [False, True], ids=["like the old image", "five times the errors"])
def test_the_last_wave_bakes_against_its_cells_own_history(
    prefect_harness: Any, tmp_path: Path, bad: bool
) -> None:
    # Every cell ran the old image for 10 minutes; a cell's rollout puts the new one on its stable.
    traffic = CellTraffic(
        BehaviourProfile(error_rate=0.05 if bad else 0.01), images={"eu-1": OLD, "eu-2": OLD, "us-1": OLD}
    )
    traffic.warm(10)
    cells = ScriptedCells(clock=traffic.clock, on_start=lambda cell: traffic.switch(cell, NEW))
    release_id = f"demo-history-{bad}".lower()

    state = _release(
        tmp_path, cells, release_id=release_id, traffic=traffic, bake=False,
        last_bake="{minDuration: 1m, maxDuration: 5m}",
    )  # fmt: skip

    report = read_release_status(release_report(tmp_path / "reports", release_id))
    (bake,) = report.bakes
    assert (bake.wave, bake.against) == (2, "history")
    assert cells.started("rollout") == ["eu-1", "eu-2", "us-1"]
    if bad:
        assert state.name == "RolledBack"
        assert report.step.startswith("wave 2: the bake found the release worse than before")
        assert bake.verdict == "worse"
        assert sorted(cells.started("undo")) == ["eu-1", "eu-2", "us-1"]
    else:
        assert state.is_completed(), state.message
        assert (report.outcome, bake.verdict) == ("released", "within")
        assert "against their own traffic before the release (baseline)" in _artifact(
            f"release-{release_id}-bake2"
        )
        assert bake.intervals_judged >= 2  # the bake's minDuration of 30 s intervals, at least
    observed = parse_log(bake_log(tmp_path / "reports", release_id, 2).read_text())
    assert len(observed.intervals) == bake.intervals_judged


def test_a_bake_that_finds_the_release_worse_undoes_the_wave_and_starts_no_other(
    prefect_harness: Any, tmp_path: Path
) -> None:
    traffic = CellTraffic(BehaviourProfile(error_rate=0.05))
    cells = ScriptedCells(clock=traffic.clock)

    state = _release(tmp_path, cells, release_id="demo-bake-worse", traffic=traffic)

    assert state.name == "RolledBack"
    outcome = state.result(raise_on_failure=False)
    assert outcome.cells == {"eu-1": "undone", "eu-2": "pending", "us-1": "pending"}
    assert outcome.reason.startswith("wave 1: the bake found the release worse than the cells not updated")
    assert cells.started("rollout") == ["eu-1"]
    assert cells.started("undo") == ["eu-1"]
    (bake,) = read_release_status(release_report(tmp_path / "reports", "demo-bake-worse")).bakes
    assert bake.verdict == "worse"  # the report ends with the verdict that stopped the release


def test_a_cell_whose_stable_is_unhealthy_waits_until_it_is_healthy_again(
    prefect_harness: Any, tmp_path: Path
) -> None:
    traffic = CellTraffic(BehaviourProfile(error_rate=0.1), images={"eu-1": OLD, "eu-2": OLD, "us-1": NEW})
    us1 = traffic.pods["us-1"]
    recovered: list[datetime] = []

    def recover() -> None:  # somebody fixes us-1's stable
        us1.image = OLD
        recovered.append(traffic.clock.now())

    cells = ScriptedCells(clock=traffic.clock, meanwhile={8: recover})
    said: list[str] = []

    state = _release(
        tmp_path,
        cells,
        release_id="demo-blocked",
        traffic=traffic,
        said=said,
        bake=False,
        health="{window: 1m, maxRates: {error-rate: 0.02}}",
    )

    assert state.is_completed(), state.message
    assert cells.started("rollout") == ["eu-1", "eu-2", "us-1"]
    blocked = [line for line in said if "us-1: its stable is unhealthy (error-rate " in line]
    assert blocked, said
    assert "over 2.00% in the last 1m" in blocked[0]
    assert cells.started_at["us-1"] > recovered[0] > cells.started_at["eu-2"]


class _Reachable:
    """A cell's metrics source that does not answer until `reachable` is set."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.reachable = False

    def observe(self, *args: Any, **kwargs: Any) -> Any:
        if not self.reachable:
            return Unanswered().observe(*args, **kwargs)
        return self.source.observe(*args, **kwargs)

    def is_online(self) -> bool:
        return self.reachable


def test_no_cell_starts_until_every_cells_prometheus_answers_the_release(
    prefect_harness: Any, tmp_path: Path
) -> None:
    traffic = CellTraffic(BehaviourProfile())
    us1 = _Reachable(traffic.sources["us-1"])
    traffic.sources["us-1"] = us1
    reached: list[datetime] = []

    def reach() -> None:  # somebody opens the way to us-1's Prometheus
        us1.reachable = True
        reached.append(traffic.clock.now())

    cells = ScriptedCells(clock=traffic.clock, meanwhile={4: reach})
    said: list[str] = []

    state = _release(tmp_path, cells, release_id="demo-reach", traffic=traffic, said=said)

    assert state.is_completed(), state.message
    waited = [line for line in said if "does not answer from the release's process" in line]
    assert waited, said
    assert "the Prometheus of cell us-1 (" in waited[0]
    assert "eu-1" not in waited[0]
    assert cells.started_at["eu-1"] >= reached[0]  # nothing started while us-1 could not be read


def test_a_failing_undo_is_retried_with_a_backoff_then_given_up_to_a_person(
    prefect_harness: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    cells = ScriptedCells(ends={"eu-2": "not-promoted", "us-1": "active"}, clock=clock, undo_ends="failed")

    state = _release(tmp_path, cells, release_id="demo-undo-fails", clock=clock)

    assert state.name == "Held"
    outcome = state.result(raise_on_failure=False)
    assert outcome.cells["eu-1"] == "promoted"  # nothing undid it: a person must
    assert "the undo of eu-1 failed 5 times: look at its undo runs" in outcome.reason
    assert cells.started("undo") == ["eu-1"] * 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(cells.undone_at)]
    # each undo fails at the next look (5 s), and the next starts 30 s, 60 s, ... after that
    assert [gap.total_seconds() for gap in gaps] == [35, 65, 125, 245]


def test_a_resumed_release_keeps_the_count_and_the_wait_of_its_failed_undos(
    prefect_harness: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    cells = ScriptedCells(
        ends={"eu-2": "not-promoted", "us-1": "active"}, clock=clock, undo_ends="failed", stop_after_undos=2
    )
    with pytest.raises(Interrupted):
        _release(tmp_path, cells, release_id="demo-undo-resumed", clock=clock)
    cells.stop_after_undos = None

    state = _release(tmp_path, cells, release_id="demo-undo-resumed", clock=clock)

    assert state.name == "Held"
    assert cells.started("undo") == ["eu-1"] * 5  # not five more after the resume
    gaps = [later - earlier for earlier, later in itertools.pairwise(cells.undone_at)]
    assert [gap.total_seconds() for gap in gaps][1:] == [65, 125, 245]


def _claimed_by(release_id: str) -> Callable[[], None]:
    def claim() -> None:  # what a newer release of the same service does when it starts
        from prefect.variables import Variable

        Variable.set("canaryflow-release-demo", release_id, overwrite=True)

    return claim


def test_a_newer_release_supersedes_a_running_one_which_undoes_nothing(
    prefect_harness: Any, tmp_path: Path
) -> None:
    cells = ScriptedCells(ends={"eu-2": "active", "us-1": "active"}, meanwhile={6: _claimed_by("demo-newer")})

    state = _release(tmp_path, cells, release_id="demo-older")

    assert state.name == "Superseded"
    outcome = state.result(raise_on_failure=False)
    assert outcome.outcome == "superseded"
    assert outcome.reason == "superseded by release demo-newer"
    assert [record.kind for record in cells.runs] == ["rollout", "rollout", "rollout"]  # no undo
    aborted = {record.run.cell: record.reason for record in cells.runs if record.run.cell != "eu-1"}
    assert aborted == {"eu-2": "superseded by release demo-newer", "us-1": "superseded by release demo-newer"}
    report = read_release_status(release_report(tmp_path / "reports", "demo-older"))
    assert report.outcome == "superseded"


def test_an_older_release_resumed_after_a_newer_one_gives_way_at_once(
    prefect_harness: Any, tmp_path: Path
) -> None:
    from canaryflow.cells import cell_run
    from canaryflow.spec.loading import load_release_text

    cells = ScriptedCells()
    earlier = load_release_text(RELEASE.format(bake=""))
    first = cells.start("demo-old", cell_run(earlier, "eu-1", image=IMAGE, triggered_by="test"))
    cells.end(first, "completed")
    _claimed_by("demo-new")()

    state = _release(tmp_path, cells, release_id="demo-old")

    assert state.result(raise_on_failure=False).outcome == "superseded"
    assert [(record.kind, record.run.cell) for record in cells.runs] == [("rollout", "eu-1")]
