"""The release flow: one image across a release's cells, wave by wave, each cell a rollout run near it.

    read the release spec and the rollout spec it names (refused before anything starts if wrong)
    until the release is over:
        ask Prefect where each cell is (its rollout run, its undo run)
        ask the wave logic what is next (`canaryflow.waves.next_step`)
        start the next cells' rollouts, abort the failing wave's, undo promoted cells, or wait

Each cell's rollout is a run of the ``rollout`` deployment of the cell's work pool, with the cell's
environment (`canaryflow.cells`), so a worker near the cell's cluster does the work and Prefect is
the distributed engine; an undo is a run of the pool's ``undo`` deployment (`flows.undo`). The
flow keeps no state of its own: every answer comes from the cells' runs (`CellRuns.phases`), so
a release killed at any point and run again with the same ``release_id`` carries on where it
stopped, and a second start of a cell gets its first run.

A wave with a ``bake`` is followed by its bake (`canaryflow.baking`): the wave's cells against
the cells not updated yet (or, the last wave's default, against their own traffic before the
wave's first rollout began), judged on the rollout spec's metrics read from each cell's
Prometheus; the next wave starts (the release ends) once the bake shows the release within
tolerance. A bake keeps nothing but its
start (when its wave's last rollout run ended), so a release resumed re-reads it from Prometheus;
one resumed after a later wave started knows the bake said ``within``.

With ``health`` in the release spec, a cell starts only while its stable is healthy
(`canaryflow.health`: the blockers); its wave waits and says why. Freezes and the failure policy
are the wave logic's.

On Prefect, a release first makes (or updates) the automation that sets a cell run Crashed once
its heartbeats stop (`canaryflow.triggers.unresponsive`): a worker whose machine dies with its
runs would otherwise leave the release waiting on a run that stays Running.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.variables import Variable
from pydantic import BaseModel, ConfigDict

from canaryflow.baking import WaveBake
from canaryflow.cells import CellRun, cell_run
from canaryflow.clock import Clock, SystemClock
from canaryflow.environment import (
    PROMETHEUS_ACCESS_VARIABLES,
    metrics_from_env,
    reports_dir,
    with_prometheus_access,
)
from canaryflow.errors import CanaryflowError, InputError, TriggerUnavailableError
from canaryflow.health import unhealthy
from canaryflow.metrics.port import MetricsSource
from canaryflow.plan import RolloutPlan, plan_rollout
from canaryflow.releasereport import BakeRecord
from canaryflow.requests import ReleaseRequest, by_release
from canaryflow.spec.loading import load_release
from canaryflow.spec.release import ReleaseSpec
from canaryflow.triggers.port import CellRuns
from canaryflow.waves import (
    Abort,
    BakeVerdict,
    BakeWave,
    CellPhase,
    Finish,
    Start,
    Step,
    Undo,
    Wait,
    next_step,
)
from flows.releasereporting import ReleaseReporter

__all__ = [
    "ReleaseOutcome",
    "ReleaseWiring",
    "check_cells",
    "release",
    "run_release",
    "use_release_wiring",
    "wiring_for_run",
]

#: The failed states a release run ends in when it was not released (the UI shows them as not
#: successful; the data is the `ReleaseOutcome`).
NOT_RELEASED_STATES = {"rolled-back": "RolledBack", "held": "Held", "superseded": "Superseded"}
#: How a release ends: every cell promoted, rolled back (per its failure policy), held (failed
#: under ``onFailure: hold``), or superseded by a newer release of the same service.
Ended = Literal["released", "rolled-back", "held", "superseded"]


class ReleaseOutcome(BaseModel):
    """How a release ended (`Ended`), why, and each cell's phase."""

    model_config = ConfigDict(frozen=True)

    release_id: str
    image: str
    outcome: Ended
    reason: str
    cells: dict[str, CellPhase]


#: How often a release asks where its cells are, in seconds.
POLL_SECONDS = 10.0


def cell_metrics(run: CellRun) -> MetricsSource:
    """The metrics source of a cell: its Prometheus and labels (the cell's run environment, no
    labels for a cell without any, whatever this process has), with this process's timeout, and
    the credentials, headers and TLS files of the cell's ``prometheusAccess``, or else this
    process's. The release's process must reach every cell's Prometheus."""
    env = with_prometheus_access({**os.environ, "CANARYFLOW_PROMETHEUS_LABELS": "", **run.env}, run.access)
    try:
        return metrics_from_env(env)
    except InputError as exc:
        if run.access is None or not any(name in str(exc) for name in PROMETHEUS_ACCESS_VARIABLES):
            raise
        raise InputError(f"cell {run.cell}'s prometheusAccess: {exc}") from exc


@dataclass(frozen=True)
class ReleaseWiring:
    """What a release run talks to: its cells' runs, asked every `poll_seconds` of `clock`, each
    cell's metrics (`metrics`, for the bakes and the blockers), who hears each new step in words
    (`say`, besides the run's log), and where its report goes (`reports_dir`; None: nowhere)."""

    runs: CellRuns
    poll_seconds: float = POLL_SECONDS
    say: Callable[[str], None] | None = None
    reports_dir: Path | None = None
    metrics: Callable[[CellRun], MetricsSource] = cell_metrics
    clock: Clock = field(default_factory=SystemClock)
    #: Makes Prefect mark cell runs Crashed whose process stopped sending heartbeats (a worker's
    #: machine gone); what it does in words, or None (nothing to do). None: not on Prefect.
    watch: Callable[[], str | None] | None = None


_WIRING: ContextVar[ReleaseWiring | None] = ContextVar("canaryflow_release_wiring", default=None)


@contextmanager
def use_release_wiring(wiring: ReleaseWiring) -> Iterator[ReleaseWiring]:
    """Make `wiring` that of the release flows run inside the ``with`` block."""
    token = _WIRING.set(wiring)
    try:
        yield wiring
    finally:
        _WIRING.reset(token)


def wiring_for_run() -> ReleaseWiring:
    """The injected wiring, or flow runs of the cell pools' deployments on this Prefect API
    (`PrefectCellRuns`) asked every `POLL_SECONDS`, reported in ``CANARYFLOW_REPORTS_DIR``."""
    injected = _WIRING.get()
    if injected is not None:
        return injected
    from canaryflow.triggers.prefect_cells import PrefectCellRuns

    return ReleaseWiring(PrefectCellRuns(), reports_dir=reports_dir(os.environ), watch=watch_unresponsive)


def watch_unresponsive() -> str | None:
    """Make or update the automation that sets a cell run Crashed once its heartbeats stop
    (`canaryflow.triggers.unresponsive`), for the heartbeat interval of this process's settings."""
    from prefect.settings import get_current_settings

    from canaryflow.triggers.unresponsive import apply_unresponsive_automation

    return apply_unresponsive_automation(get_current_settings().flows.heartbeat_frequency)


def release_id_of(request: ReleaseRequest, spec: ReleaseSpec) -> str:
    """The release's id: the one asked for, else the release's name and its flow run's (so a
    release started from the UI or a terminal is found by its run's name)."""
    if request.release_id:
        return request.release_id
    return f"{spec.name[:54]}-{str(flow_run.get_id() or 'local')[:8]}"


def run_name() -> str:
    """The flow run's name: the release id (how ``canaryflow get release ID`` finds its report)."""
    raw: Any = flow_run.parameters.get("request")
    try:
        request = raw if isinstance(raw, ReleaseRequest) else ReleaseRequest.model_validate(raw)
        return release_id_of(request, load_release(request.spec))
    except (ValueError, CanaryflowError):
        return "release-with-invalid-spec"


def check_cells(spec: ReleaseSpec, request: ReleaseRequest, runs: CellRuns) -> None:
    """Raise `InputError` (one line, the spec's path first) when the orchestrator lacks what the
    cells' runs need, e.g. a work pool's deployments; ``canaryflow release`` asks it before a
    release's flow run is created, the flow again for a run started from the UI."""
    by = request.triggered_by
    missing = runs.missing(
        [cell_run(spec, c.name, image=request.image, triggered_by=by) for c in spec.spec.cells]
    )
    if missing:
        raise InputError(f"{request.spec}: cannot run its cells: " + "; ".join(missing))


@flow(name="release", flow_run_name=run_name, persist_result=False)
def release(request: ReleaseRequest) -> ReleaseOutcome | State[Any]:
    """Release `request.image` to the cells of the release spec at `request.spec`, wave by wave."""
    spec = load_release(request.spec)
    release_id = release_id_of(request, spec)
    wiring = wiring_for_run()
    this = _Release(spec, request, release_id, wiring.runs)
    evidence = _Evidence(this, wiring.metrics)
    undos = _Undos(this)
    clock = wiring.clock
    report = ReleaseReporter(
        spec,
        release_id=release_id,
        image=request.image,
        source=request.spec,
        reports_dir=wiring.reports_dir,
        say=wiring.say,
        triggered_by=request.triggered_by,
    )
    check_cells(spec, request, this.runs)
    cells, waves = len(spec.spec.cells), len(spec.spec.waves)
    report.tell(f"{request.image} to {cells} cell(s) in {waves} wave(s)", {})
    if wiring.watch is not None:
        try:
            watching = wiring.watch()
        except TriggerUnavailableError as exc:  # the release goes on; a lost worker's run would hang it
            get_run_logger().warning(
                "release %s: a cell run whose worker's machine dies will not be marked Crashed: %s",
                release_id,
                exc,
            )
        else:
            if watching:
                get_run_logger().info("release %s: %s", release_id, watching)
    phases: dict[str, CellPhase] = _ask(this.runs.phases, release_id, wiring.poll_seconds, clock)
    newer = claim_release(spec.name, release_id, fresh=not phases)
    while True:
        try:
            phases = this.runs.phases(release_id)
            newer = newer or newer_release(spec.name, release_id)
            if newer is not None:
                return this.give_way(newer, phases, report)
            this.clean_up_failed(phases)
            now = clock.now()
            # Before any cell starts, every cell's Prometheus must answer here: the bakes and the
            # blockers read them from this process. Until then the release waits and says which.
            unanswered = evidence.unanswered() if not phases else []
            step = (
                Wait(
                    f"the Prometheus of {', '.join(unanswered)} does not answer from the release's "
                    f"process (its bakes and blockers read it); asking again in {wiring.poll_seconds:g} s"
                )
                if unanswered
                else next_step(
                    spec,
                    phases,
                    evidence.verdicts(phases, now),
                    now=now,
                    unhealthy=evidence.unhealthy(phases, now),
                )
            )
            if isinstance(step, Undo):
                this.carry_out(step)
                step = undos.undo(step, now) or step
            elif not isinstance(step, Finish):
                this.carry_out(step)
            if isinstance(step, Finish):
                report.tell(
                    step.reason,
                    phases,
                    outcome=step.outcome,
                    bakes=evidence.records(),
                    observed=evidence.bakes,
                )
                return this.finish(step, phases)
        except TriggerUnavailableError as exc:  # Prefect is away: nothing was started; ask again
            step = Wait(f"{exc}; asking again in {wiring.poll_seconds:g} s")
        report.tell(evidence.words(step), phases, bakes=evidence.records(), observed=evidence.bakes)
        clock.sleep(wiring.poll_seconds)


def _ask(
    phases: Callable[[str], dict[str, CellPhase]], release_id: str, poll_seconds: float, clock: Clock
) -> dict[str, CellPhase]:
    """The cells' phases at the start, waiting while Prefect cannot be reached."""
    while True:
        try:
            return phases(release_id)
        except TriggerUnavailableError:
            clock.sleep(poll_seconds)


def _variable(name: str) -> str:
    return f"canaryflow-release-{name}"


def claim_release(name: str, release_id: str, *, fresh: bool) -> str | None:
    """Make `release_id` the current release of the releases called `name` (a Prefect Variable),
    unless it is resumed (not `fresh`) and another release claimed them since: then that one's
    id (it is newer, and this one gives way)."""
    current = Variable.get(_variable(name), default=None)
    if fresh or current is None or current == release_id:
        Variable.set(_variable(name), release_id, overwrite=True)
        return None
    return str(current)


def newer_release(name: str, release_id: str) -> str | None:
    """The release that claimed the releases called `name` after `release_id` did, if any (None
    also while Prefect cannot be reached: a release gives way only to one it has seen)."""
    try:
        current = Variable.get(_variable(name), default=None)
    except (httpx.TransportError, httpx.HTTPStatusError):
        return None
    return None if current is None or current == release_id else str(current)


@dataclass(frozen=True)
class _Release:
    spec: ReleaseSpec
    request: ReleaseRequest
    release_id: str
    runs: CellRuns

    def run_of(self, cell: str) -> CellRun:
        by = by_release(self.release_id, self.request.triggered_by)
        return cell_run(self.spec, cell, image=self.request.image, triggered_by=by)

    def carry_out(self, step: Step) -> None:
        if isinstance(step, Start):
            for cell in step.cells:
                self.runs.start(self.release_id, self.run_of(cell))
        elif isinstance(step, Abort):
            for cell in step.cells:
                self.runs.abort(self.release_id, cell, step.reason)
        # Undo: `_Undos` (with its backoff). BakeWave: nothing to start; the bake advanced when the
        # verdicts were asked (`_Evidence`).

    def clean_up_failed(self, phases: Mapping[str, CellPhase]) -> None:
        """A cell whose rollout run failed or crashed may have left its canary: converge it with
        a cleanup run on the cell's pool (once; the cell's crash automation may not exist)."""
        for cell, phase in phases.items():
            if phase == "failed":
                run = self.run_of(cell)
                self.runs.cleanup(self.release_id, run, plan_rollout(run.request).rollout_id)

    def give_way(
        self, newer: str, phases: Mapping[str, CellPhase], report: ReleaseReporter
    ) -> ReleaseOutcome | State[Any]:
        """A newer release of the same service took over: abort this release's running cells
        (the newer release reaches every cell) and end superseded, undoing nothing."""
        reason = f"superseded by release {newer}"
        for cell, phase in phases.items():
            if phase == "running":
                with contextlib.suppress(TriggerUnavailableError):  # the newer release supersedes it
                    self.runs.abort(self.release_id, cell, reason)
        report.tell(reason, phases, outcome="superseded")
        return self.finish(Finish("rolled-back", reason), phases, outcome="superseded")

    def finish(
        self, step: Finish, phases: Mapping[str, CellPhase], *, outcome: Ended | None = None
    ) -> ReleaseOutcome | State[Any]:
        cells = {cell.name: phases.get(cell.name, "pending") for cell in self.spec.spec.cells}
        ended = ReleaseOutcome(
            release_id=self.release_id,
            image=self.request.image,
            outcome=outcome or step.outcome,
            reason=step.reason,
            cells=cells,
        )
        if ended.outcome == "released":
            return ended
        name = NOT_RELEASED_STATES[ended.outcome]
        return Failed(name=name, message=f"{ended.outcome}: {ended.reason}", data=ended)


#: How many undo runs a cell gets before the release stops and asks a person.
UNDO_ATTEMPTS = 5


def undo_backoff(attempt: int) -> timedelta:
    """How long after a cell's `attempt`-th undo run (from 1) failed the next may start: 30 s,
    doubled each time, at most 10 minutes."""
    return timedelta(seconds=min(30.0 * 2 ** (attempt - 1), 600.0))


class _Undos:
    """The undos of the release's cells, retried with a backoff (`undo_backoff`, from when the
    failed one ended) while they fail, given up after `UNDO_ATTEMPTS` (the release ends held: a
    person must look). What it knows comes from the cells' undo runs, so a resumed release keeps
    the count and the wait."""

    def __init__(self, release: _Release) -> None:
        self.release = release

    def undo(self, step: Undo, now: datetime) -> Finish | None:
        """Ask for each cell's undo (a new run only after a failed one, once its backoff passed);
        the release's end when a cell's undos are given up."""
        seen = self.release.runs.undos(self.release.release_id)
        for cell in step.cells:
            runs = seen.get(cell)
            if runs is not None and runs.failed_at is not None:  # its latest undo failed
                if runs.count >= UNDO_ATTEMPTS:
                    return Finish(
                        "held",
                        f"{step.reason}; the undo of {cell} failed {runs.count} times: look at its undo "
                        "runs, then run `canaryflow undo` in the cell",
                    )
                if now < runs.failed_at + undo_backoff(runs.count):
                    continue
            run = self.release.run_of(cell)
            rollout_id = plan_rollout(run.request).rollout_id
            self.release.runs.undo(self.release.release_id, run, step.reason, rollout_id)
        return None


_SETTLED: frozenset[CellPhase] = frozenset({"promoted", "rolled-back", "failed"})


class _Evidence:
    """What the release reads from its cells' metrics: its bakes (one `WaveBake` per wave with a
    bake, from when its cells settled) and its blockers."""

    def __init__(self, release: _Release, metrics: Callable[[CellRun], MetricsSource]) -> None:
        self.release = release
        self.metrics = metrics
        self.bakes: dict[int, WaveBake] = {}
        self._sources: dict[str, MetricsSource] = {}

    def verdicts(self, phases: Mapping[str, CellPhase], now: datetime) -> dict[int, BakeVerdict]:
        """Each baking wave's verdict at `now` (a wave whose later cells started baked ``within``:
        a later wave starts only then)."""
        waves = self.release.spec.spec.waves
        verdicts: dict[int, BakeVerdict] = {}
        for index, wave in enumerate(waves):
            if wave.bake is None:
                continue
            later = [cell for w in waves[index + 1 :] for cell in w.cells]
            if any(phases.get(cell, "pending") != "pending" for cell in later):
                verdicts[index] = self.bakes[index].progress.verdict if index in self.bakes else "within"
                continue
            bake = self.bakes.get(index) or self._begin(index, phases, later)
            if bake is not None:
                verdicts[index] = bake.advance(now).verdict
        return verdicts

    def _begin(self, index: int, phases: Mapping[str, CellPhase], later: list[str]) -> WaveBake | None:
        wave = self.release.spec.spec.waves[index]
        if not all(phases.get(cell) in _SETTLED for cell in wave.cells):
            return None
        ended = self.release.runs.ended(self.release.release_id)
        promoted = [cell for cell in wave.cells if phases.get(cell) == "promoted"]
        if not promoted or any(cell not in ended for cell in promoted):
            return None  # a failed wave (the wave logic stops it), or not told yet: ask again
        assert wave.bake is not None
        began = self.release.runs.began(self.release.release_id)
        if any(cell not in began for cell in promoted):
            return None  # not told yet: ask again
        started = max(ended[cell] for cell in wave.cells if cell in ended)
        # Where the warm-up's history ends (never after the bake's start, whatever the clocks say).
        first = min(started, *(began[cell] for cell in wave.cells if cell in began))
        history = None
        if self.release.spec.spec.bake_against(index) == "history":
            history, later = first, []
        bake = WaveBake(
            index,
            wave.bake,
            promoted={cell: self._plan(cell) for cell in promoted},
            compared={cell: self._plan(cell) for cell in later},
            sources=self._source,
            started=started,
            history=history,
            began=first,
        )
        self.bakes[index] = bake
        return bake

    def _plan(self, cell: str) -> RolloutPlan:
        return plan_rollout(self.release.run_of(cell).request)

    def _source(self, cell: str) -> MetricsSource:
        if cell not in self._sources:
            self._sources[cell] = self.metrics(self.release.run_of(cell))
        return self._sources[cell]

    def unanswered(self) -> list[str]:
        """The cells whose Prometheus does not answer from this process (``cell (url)``), when the
        release reads any (it has a bake or blockers); empty otherwise."""
        body = self.release.spec.spec
        if body.health is None and all(wave.bake is None for wave in body.waves):
            return []
        return [
            f"cell {cell.name} ({self.release.run_of(cell.name).env['CANARYFLOW_PROMETHEUS_URL']})"
            for cell in body.cells
            if not self._source(cell.name).is_online()
        ]

    def unhealthy(self, phases: Mapping[str, CellPhase], now: datetime) -> dict[str, str]:
        """The blockers: which pending cells of the wave going on have an unhealthy stable, why."""
        health = self.release.spec.spec.health
        if health is None:
            return {}
        for wave in self.release.spec.spec.waves:
            if any(phases.get(cell, "pending") in ("pending", "running") for cell in wave.cells):
                waiting = [cell for cell in wave.cells if phases.get(cell, "pending") == "pending"]
                plans = {cell: self._plan(cell) for cell in waiting}
                return unhealthy(health, plans, self._source, now=now)
        return {}

    def records(self) -> list[BakeRecord]:
        """The bakes begun so far, for the release's report."""
        return [
            BakeRecord(
                wave=bake.progress.wave + 1,
                verdict=bake.progress.verdict,
                reason=bake.progress.reason,
                started_at=bake.progress.started,
                intervals_judged=bake.progress.judged,
                intervals_max=bake.progress.intervals,
                requests=bake.progress.requests,
                against=bake.against,
            )
            for _, bake in sorted(self.bakes.items())
        ]

    def words(self, step: Step) -> str:
        if isinstance(step, BakeWave) and step.wave in self.bakes:
            return self.bakes[step.wave].progress.describe()
        return _words(step)


def _words(step: Step) -> str:
    if isinstance(step, Start):
        return f"starting the rollout of {', '.join(step.cells)}"
    if isinstance(step, Abort):
        return f"aborting {', '.join(step.cells)}: {step.reason}"
    if isinstance(step, Undo):
        return f"undoing {', '.join(step.cells)}: {step.reason}"
    if isinstance(step, Wait):
        return step.reason
    if isinstance(step, BakeWave):
        return f"wave {step.wave + 1}: waiting for its cells' rollout runs to tell when they ended"
    return repr(step)


def run_release(request: ReleaseRequest, wiring: ReleaseWiring) -> ReleaseOutcome:
    """Run the release flow for `request` here, wired to `wiring`; its outcome (a run that ended
    otherwise raises its error)."""
    with use_release_wiring(wiring):
        state = release(request, return_state=True)
    outcome = state.result(raise_on_failure=False) if state.name in NOT_RELEASED_STATES.values() else None
    if outcome is None:
        outcome = state.result()
    if not isinstance(outcome, ReleaseOutcome):
        raise TypeError(f"the release flow returned {outcome!r}")
    return outcome
