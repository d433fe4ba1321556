"""`PrefectCellRuns`: a release's cells as flow runs of each cell pool's deployments.

A cell's rollout is a run of the deployment ``rollout/<work pool>`` (the template
`rollout_deployment`), its undo a run of ``undo/<work pool>``, the cleanup after its rollout run
failed or crashed a run of ``cleanup/<work pool>``: one deployment of each flow per work pool,
because Prefect takes a run's work queue only from its deployment's own pool. The run gets the
cell's work queue, its environment as the job variables' ``env`` (`canaryflow.cells`; with this
process's heartbeat interval, `run_env`), and three
tags: the release (``canaryflow-release:<id>``), the cell (``canaryflow-cell:<name>``) and the
kind (``canaryflow-kind:rollout``, ``undo`` or ``cleanup``). The tags are how `phases` finds the
runs again, so a release flow killed at any point asks Prefect and gets the same answer; the
idempotency keys (``release/<id>/<cell>/rollout``, ``release/<id>/<cell>/undo/<n>``,
``release/<id>/<cell>/cleanup``) are how a second call gets the first run instead of another.
Errors reaching Prefect become `TriggerUnavailableError`, as in `PrefectRolloutStarter`.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling

from canaryflow.cells import CellRun
from canaryflow.errors import TriggerUnavailableError
from canaryflow.triggers.port import FlowRunId, RunState, UndoRuns, cell_phase
from canaryflow.triggers.prefect_runs import prefect_settings
from canaryflow.waves import CellPhase

__all__ = ["HEARTBEAT_VARIABLE", "PrefectCellRuns", "run_env", "run_state"]

#: The environment variable of a flow run's heartbeat interval, in seconds.
HEARTBEAT_VARIABLE = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"

_RELEASE, _CELL, _KIND = "canaryflow-release:", "canaryflow-cell:", "canaryflow-kind:"
#: Failed states a rollout run ends in when it converged its target without promoting
#: (`flows.rollout.final_state`).
_NOT_PROMOTED = frozenset({"RolledBack", "Aborted"})
_ACTIVE = frozenset({StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED})


def run_state(run: FlowRun) -> RunState:
    """The state of a cell's flow run as its release sees it (`canaryflow.triggers.port.RunState`)."""
    state = run.state
    if state is None or state.type in _ACTIVE or state.type == StateType.CANCELLING:
        return "active"
    if state.type == StateType.COMPLETED:
        return "completed"
    if state.type == StateType.CANCELLED or (state.type == StateType.FAILED and state.name in _NOT_PROMOTED):
        return "not-promoted"
    return "failed"


def _lacking(absent: tuple[str, ...], pools: list[str]) -> str:
    """One line for the work `pools` that lack the same deployments (`absent`, as templates)."""
    flows = ", ".join(template.split("/")[0] for template in absent)
    if len(pools) == 1:
        names = ", ".join(template.format(pool=pools[0]) for template in absent)
        where = f"the work pool {pools[0]!r} has no deployment {names}: deploy the {flows} flow(s) to it"
    else:
        names = ", ".join(template.format(pool="<pool>") for template in absent)
        listed = ", ".join(repr(pool) for pool in pools)
        where = f"the work pools {listed} have no deployment {names}: deploy the {flows} flow(s) to each"
    return f"{where} (deployments/prefect.yaml ends with a cell pool's template)"


class PrefectCellRuns:
    """`CellRuns` on the Prefect API of the settings (or `api_url`), each request bounded by
    `request_timeout` seconds."""

    def __init__(
        self,
        *,
        rollout_deployment: str = "rollout/{pool}",
        undo_deployment: str = "undo/{pool}",
        cleanup_deployment: str = "cleanup/{pool}",
        api_url: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.rollout_deployment = rollout_deployment
        self.undo_deployment = undo_deployment
        self.cleanup_deployment = cleanup_deployment
        self.api_url = api_url
        self.request_timeout = request_timeout

    def missing(self, runs: Sequence[CellRun]) -> list[str]:
        templates = (self.rollout_deployment, self.undo_deployment, self.cleanup_deployment)
        lacking: dict[tuple[str, ...], list[str]] = {}  # the templates a pool lacks -> those pools
        try:
            with self._client("read the cells' deployments") as client:
                for pool in sorted({run.work_pool for run in runs}):
                    absent = []
                    for template in templates:
                        try:
                            client.read_deployment_by_name(template.format(pool=pool))
                        except ObjectNotFound:
                            absent.append(template)
                    if absent:
                        lacking.setdefault(tuple(absent), []).append(pool)
        except TriggerUnavailableError:
            return []  # cannot tell now: starting a cell says so if one is missing
        return [_lacking(absent, pools) for absent, pools in lacking.items()]

    def start(self, release_id: str, run: CellRun) -> FlowRunId:
        request = run.request.model_dump(mode="json", exclude_none=True)
        key = f"release/{release_id}/{run.cell}/rollout"
        return self._run("rollout", release_id, run, {"request": request}, key)

    def phases(self, release_id: str) -> dict[str, CellPhase]:
        latest: dict[tuple[str, str], RunState] = {}
        for run in self._runs(release_id):  # oldest first: the latest of each cell and kind wins
            cell, kind = _tag(run, _CELL), _tag(run, _KIND)
            if cell is not None and kind is not None:
                latest[(cell, kind)] = run_state(run)
        cells = dict.fromkeys(cell for cell, _kind in latest)
        return {cell: cell_phase(latest.get((cell, "rollout")), latest.get((cell, "undo"))) for cell in cells}

    def ended(self, release_id: str) -> dict[str, datetime]:
        latest: dict[str, FlowRun] = {}
        for run in self._runs(release_id, kind="rollout"):  # oldest first: the latest wins
            cell = _tag(run, _CELL)
            if cell is not None:
                latest[cell] = run
        ended: dict[str, datetime] = {}
        for cell, run in latest.items():
            at = _ended_at(run) if run_state(run) != "active" else None
            if at is not None:
                ended[cell] = at
        return ended

    def began(self, release_id: str) -> dict[str, datetime]:
        began: dict[str, datetime] = {}
        for run in self._runs(release_id, kind="rollout"):  # oldest first: the first wins
            cell = _tag(run, _CELL)
            if cell is not None and cell not in began and run.created is not None:
                at = run.created
                began[cell] = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        return began

    def undos(self, release_id: str) -> dict[str, UndoRuns]:
        found: dict[str, UndoRuns] = {}
        for run in self._runs(release_id, kind="undo"):  # oldest first: the latest sets failed_at
            cell = _tag(run, _CELL)
            if cell is None:
                continue
            failed_at = _ended_at(run) if run_state(run) == "failed" else None
            found[cell] = UndoRuns(found[cell].count + 1 if cell in found else 1, failed_at)
        return found

    def abort(self, release_id: str, cell: str, reason: str) -> None:
        runs = self._runs(release_id, cell=cell, kind="rollout")
        rollouts = [  # a run asked to stop already is not asked again
            run
            for run in runs
            if run_state(run) == "active" and run.state is not None and run.state.type != StateType.CANCELLING
        ]
        with self._client(f"abort cell {cell}'s rollout") as client:
            for run in rollouts:
                assert run.state is not None
                # A run no worker has picked up ends at once; a running one is asked to stop, and
                # its cancellation hook converges the target (`flows.cleanup.converge_when_cancelled`).
                waiting = run.state.type in {StateType.SCHEDULED, StateType.PENDING}
                state: State[Any] = Cancelled(message=reason) if waiting else Cancelling(message=reason)
                client.set_flow_run_state(run.id, state, force=True)

    def undo(self, release_id: str, run: CellRun, reason: str, rollout_id: str) -> FlowRunId:
        undos = self._runs(release_id, cell=run.cell, kind="undo")
        failed = sum(1 for undo in undos if run_state(undo) == "failed")
        spec = run.request.spec
        request: dict[str, Any] = {
            "spec": spec,
            "reason": reason,
            "by": f"release {release_id}",
            "rollout_id": rollout_id,
        }
        if run.request.cell is not None:
            request["cell"] = run.request.cell.model_dump(mode="json", exclude_none=True)
        key = f"release/{release_id}/{run.cell}/undo/{failed}"
        return self._run("undo", release_id, run, {"request": request}, key)

    def cleanup(self, release_id: str, run: CellRun, rollout_id: str) -> FlowRunId:
        target: dict[str, Any] = {"spec": run.request.spec, "rollout_id": rollout_id}
        if run.request.cell is not None:
            target["cell"] = run.request.cell.model_dump(mode="json", exclude_none=True)
        key = f"release/{release_id}/{run.cell}/cleanup"
        return self._run("cleanup", release_id, run, {"target": target}, key)

    def _run(
        self,
        kind: Literal["rollout", "undo", "cleanup"],
        release_id: str,
        run: CellRun,
        parameters: dict[str, Any],
        key: str,
    ) -> FlowRunId:
        template = {
            "rollout": self.rollout_deployment,
            "undo": self.undo_deployment,
            "cleanup": self.cleanup_deployment,
        }[kind]
        deployment = template.format(pool=run.work_pool)
        with self._errors(f"start {deployment!r} for cell {run.cell}"), self._settings():
            try:
                flow_run = run_deployment(
                    name=deployment,
                    parameters=parameters,
                    timeout=0,
                    idempotency_key=key,
                    as_subflow=False,
                    work_queue_name=run.work_queue,
                    job_variables={"env": run_env(run.env)},
                    tags=[f"{_RELEASE}{release_id}", f"{_CELL}{run.cell}", f"{_KIND}{kind}"],
                )
            except ObjectNotFound as exc:
                raise TriggerUnavailableError(
                    f"Prefect deployment {deployment!r} does not exist: deploy the {kind} flow to the "
                    f"work pool {run.work_pool!r} of cell {run.cell}"
                ) from exc
        if not isinstance(flow_run, FlowRun):
            if inspect.iscoroutine(flow_run):
                flow_run.close()
            raise TypeError("PrefectCellRuns blocks; call it outside an event loop")
        return FlowRunId(str(flow_run.id))

    def _runs(self, release_id: str, *, cell: str | None = None, kind: str | None = None) -> list[FlowRun]:
        tags = [f"{_RELEASE}{release_id}"]
        tags += [] if cell is None else [f"{_CELL}{cell}"]
        tags += [] if kind is None else [f"{_KIND}{kind}"]
        where = FlowRunFilter(tags=FlowRunFilterTags(all_=tags))
        with self._client("read the release's runs") as client:
            runs = client.read_flow_runs(flow_run_filter=where)
        return sorted(runs, key=lambda run: (run.created is None, run.created))

    @contextlib.contextmanager
    def _client(self, doing: str) -> Iterator[SyncPrefectClient]:
        with self._errors(doing), self._settings(), get_client(sync_client=True) as client:
            yield client

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500:
                raise
            status = exc.response.status_code
            raise TriggerUnavailableError(f"the Prefect API answered {status}: {doing}") from exc
        except httpx.TransportError as exc:
            raise TriggerUnavailableError(
                f"the Prefect API cannot be reached to {doing}: {type(exc).__name__}"
            ) from exc

    def _settings(self) -> contextlib.AbstractContextManager[None]:
        return prefect_settings(self.api_url, self.request_timeout)


def run_env(env: Mapping[str, str]) -> dict[str, str]:
    """A cell run's environment: the cell's, and this process's flow-run heartbeat interval when it
    has one, so that the run's heartbeats come as often as the automation that sets a silent cell
    run Crashed expects (`canaryflow.triggers.unresponsive`; the release makes it with the same
    setting)."""
    from prefect.settings import get_current_settings

    heartbeat = get_current_settings().flows.heartbeat_frequency
    return dict(env) if heartbeat is None else {**env, HEARTBEAT_VARIABLE: str(heartbeat)}


def _ended_at(run: FlowRun) -> datetime | None:
    """When an ended run ended (timezone-aware), if Prefect says."""
    at = run.end_time or (run.state.timestamp if run.state is not None else None)
    return None if at is None else at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _tag(run: FlowRun, prefix: str) -> str | None:
    for tag in run.tags:
        if tag.startswith(prefix):
            return tag[len(prefix) :]
    return None
