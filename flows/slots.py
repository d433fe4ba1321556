"""One rollout per target: a Kubernetes Lease and a Prefect global concurrency slot, and superseding
the running rollout.

The lock lives where the truth lives: the target's Lease (`canaryflow.cluster.port.Cluster.lock`,
``canaryflow-<deployment>`` in its namespace). A run takes it once it has the Prefect slot (the
second gate, which also orders the waiting runs), renews it every third of its duration in a thread
of its own (not through Prefect), and gives it back at its end. It is taken from another holder
only once that holder's Lease expired, or at once when the holder is certainly dead (its flow run
ended, or its process on this host is gone: the same test as for the slot below). Taking it over
increases its fencing token and stamps it on the target's Deployments, so the old holder, should
it still run, is refused every write from then on (`canaryflow.errors.FencedError`); a run whose
renewal finds the Lease taken stops at its next checkpoint (`SlotLost`).

The slot is a global concurrency limit of 1 named after the target (`canaryflow.plan.slot_name`), held
for the whole rollout, pauses included (a deployment's concurrency limit would be given up by a
paused run). Its lease is renewed in the background while the run lives; if renewing fails because
the lease is gone, the run stops at its next checkpoint (`SlotLost`) and rolls back.

A killed run cannot give its lease back, and Prefect keeps a lease for at least 60 s. So the
holder records itself (flow run id, lease id, host, process) in a Prefect variable named after the
slot, and a run that finds the slot taken looks at that holder: when its flow run has ended
(a worker marks a killed run Crashed) or its process on this host is gone (``canaryflow rollout
--resume`` after ``kill -9``), the waiting run releases the dead holder's lease, marks its flow run
Crashed and takes the slot; the cluster's annotations then tell `flows.rollout.prepare` whether to
resume or roll back. A holder that may be alive (another host, a run still Running) is waited for
until its lease expires.

The cleanup flow takes the same slot with `cleanup_slot`: it releases a dead holder's lease the same
way (the crash automation starts it as soon as a rollout run is marked Crashed, well within the
lease) and waits at most a given time for a live one.

Superseding is a compare-and-swap on the target's Lease (`Cluster.supersede`): a run with another
image records, before it waits for the slot, that the Lease's current holder is to give way to its
image (the request names that holder, so no later holder sees it), and resumes the holder with a
rejection if the holder is paused. The holder checks its Lease between steps, between analysis
intervals and during timed pauses (`check_slot`, through `flows.stops.check_stop`), rolls back
its canary and ends Cancelled; then the new run gets the slot and the Lease.

Requests: ``canaryflow abort | pause | promote --full`` record who asked and why for one flow
run (`request`), each action in a variable of its own (``<slot>_abort``, ``<slot>_pause``,
``<slot>_promote``); that run's next checkpoint honours it (`check_slot` raises
`AbortRequested`; `flows.stops` handles pause and promote). A request names the flow run, so it
never reaches a later attempt at the same rollout id. Prefect variables have no compare-and-swap,
so nothing here merges into a variable another process writes: a request is one whole write, the
holder's record is written only by the slot's holder (or by the run that found it dead), and
the run forgets a pause it honoured only if the pause variable still holds that very request. An
abort can therefore never be lost to a concurrent pause, promote or holder update.
"""

from __future__ import annotations

import contextvars
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
from prefect.exceptions import MissingContextError, ObjectNotFound, PrefectHTTPStatusError
from prefect.flow_runs import resume_flow_run
from prefect.runtime import flow_run
from prefect.states import Crashed
from prefect.variables import Variable

from canaryflow.cluster.port import Cluster, TargetRef
from canaryflow.errors import RolloutAborted, TransientError
from canaryflow.liveness import process_started, this_process
from canaryflow.plan import RolloutPlan
from flows.runtime import current_runtime

__all__ = [
    "ACTIONS",
    "AbortRequested",
    "Action",
    "SlotLost",
    "Superseded",
    "check_slot",
    "cleanup_slot",
    "clear_request",
    "request",
    "request_target",
    "request_variable",
    "requests_for",
    "slot_held_by",
    "slot_name",
    "target_slot",
]

_LOCKED = 423
_GONE = 410
#: Longest wait between two attempts to take a busy slot (the server suggests one with Retry-After).
_MAX_RETRY_SECONDS = 5.0


def slot_name(target: TargetRef, cell: str | None = None) -> str:
    """The name of the global concurrency limit that allows one rollout per target at a time.

    A release's cells are different clusters, so each cell's target has its own slot (its name
    ends in ``_<cell>``: a DNS label has no underscore), and cells of one wave roll out side by
    side on one Prefect server."""
    name = "rollout-" + re.sub(r"[^a-z0-9-]", "-", f"{target.namespace}-{target.deployment}")
    return name if cell is None else f"{name}_{cell}"


class Superseded(RolloutAborted):
    """A rollout of the same target with a newer image asked for the target."""

    def __init__(self, image: str) -> None:
        super().__init__(f"superseded by {image}")
        self.image = image


class AbortRequested(RolloutAborted):
    """Somebody asked to stop this rollout now (``canaryflow abort``)."""

    def __init__(self, by: str, reason: str) -> None:
        super().__init__(f"aborted by {by}: {reason}")
        self.by = by
        self.reason = reason


class SlotLost(RolloutAborted):
    """The target's slot was lost (its lease expired or was revoked): another run may take it."""


#: The Lease the current run holds: the adapter, the target and the run's identity in it.
_HELD: contextvars.ContextVar[tuple[Cluster, TargetRef, str] | None] = contextvars.ContextVar(
    "canaryflow_lease_held", default=None
)
#: Set by the lease renewal of the current run's slot when the lease is gone.
_LOST: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "canaryflow_slot_lost", default=None
)


def _read(name: str) -> dict[str, Any]:
    value = Variable.get(name, default=None)
    return dict(value) if isinstance(value, dict) else {}


def _write(name: str, value: dict[str, Any]) -> None:
    Variable.set(name, value, overwrite=True)


def request_target(plan: RolloutPlan, cluster: Cluster) -> None:
    """Ask the running rollout of this target (if it rolls out another image) to give way."""
    try:
        asked = cluster.supersede(plan.target, plan.image)
    except TransientError as exc:  # the run waits for the slot and the Lease all the same
        _logger().warning("could not ask the holder of %s to give way: %s", plan.target, exc)
        return
    run_id = None if asked is None else asked.details.get("flow_run_id")
    if not run_id or not _is_uuid(run_id):
        return
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(run_id))
        except ObjectNotFound:  # a run of another Prefect server: it sees the request on its Lease
            return
    if run.state is not None and run.state.is_paused():
        resume_flow_run(run.id, run_input={"decision": "reject", "reason": f"superseded by {plan.image}"})


def slot_held_by(flow_run_id: str) -> str | None:
    """The name of the slot whose recorded holder is the flow run `flow_run_id`, if any."""
    with get_client(sync_client=True) as client:
        variables = client.read_variables()
    for variable in variables:
        value = variable.value
        if variable.name.startswith("rollout-") and isinstance(value, dict):
            holder = value.get("holder")
            if isinstance(holder, dict) and holder.get("flow_run_id") == flow_run_id:
                return variable.name
    return None


#: What a person can ask of a running rollout (`request`), each in its variable (`request_variable`).
Action = Literal["abort", "pause", "promote"]
ACTIONS: tuple[Action, ...] = ("abort", "pause", "promote")


def request_variable(name: str, action: Action) -> str:
    """The variable that carries `action` requests to the holder of the slot `name`."""
    return f"{name}_{action}"


def request(name: str, flow_run_id: str, action: Action, *, by: str, reason: str) -> None:
    """Ask the rollout run `flow_run_id`, holder of the slot `name`, to `action` at its next
    checkpoint (abort: roll back; pause: hold the split; promote: skip the remaining steps)."""
    entry = {"flow_run_id": flow_run_id, "by": by, "reason": reason, "at": datetime.now(UTC).isoformat()}
    _write(request_variable(name, action), entry)


def clear_request(slot: str, action: Action, honoured: dict[str, Any]) -> None:
    """Forget the `action` request `honoured` to the holder of the slot named `slot` (a pause,
    once honoured), unless a newer request replaced it meanwhile."""
    name = request_variable(slot, action)
    if _read(name) == honoured:
        Variable.unset(name)


def check_slot(plan: RolloutPlan) -> dict[str, dict[str, Any]]:
    """Raise when the slot says this rollout must stop now: `AbortRequested` when somebody asked
    to abort this run, `Superseded` when a rollout with another image asked for this target,
    `SlotLost` when this run's lease on the target's slot is gone. Otherwise return this run's
    other requests (``pause``, ``promote``) by action."""
    lost = _LOST.get()
    if lost is not None and lost.is_set():
        raise SlotLost(f"the slot of {plan.target} was lost (its lease expired or was revoked)")
    mine = requests_for(slot_name(plan.target, plan.cell), str(flow_run.get_id() or ""))
    abort = mine.pop("abort", None)
    if abort is not None:
        raise AbortRequested(str(abort.get("by") or "somebody"), str(abort.get("reason") or "aborted"))
    newer = _superseded_by()
    if newer and newer != plan.image:
        raise Superseded(newer)
    return mine


def _superseded_by() -> str | None:
    """The image that asked this run's Lease to give way, if one did (None outside a Lease, and
    while the API server does not answer: the next checkpoint looks again)."""
    held = _HELD.get()
    if held is None:
        return None
    cluster, target, identity = held
    try:
        holder = cluster.lock_holder(target)
    except TransientError:
        return None
    return holder.superseded_by if holder is not None and holder.identity == identity else None


def requests_for(name: str, run_id: str) -> dict[str, dict[str, Any]]:
    """The requests to the holder of the slot `name` that name the flow run `run_id`, by action."""
    found: dict[str, dict[str, Any]] = {}
    for action in ACTIONS:
        entry = _read(request_variable(name, action))
        if run_id and entry.get("flow_run_id") == run_id:
            found[action] = entry
    return found


@contextmanager
def target_slot(plan: RolloutPlan, *, lease_seconds: float, cluster: Cluster) -> Iterator[None]:
    """Hold the target's slot and then its Lease (waiting for each) and record this run as their
    holder; both leases, of `lease_seconds`, are renewed while the run lives."""
    name = slot_name(plan.target, plan.cell)
    run_id = str(flow_run.get_id() or "")
    runtime = current_runtime()

    def tell(message: str) -> None:  # the terminal of `canaryflow rollout` too, not only the run's log
        if runtime is not None:
            runtime.emit(plan.rollout_id, "log", message=message)

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
        lease_id = _acquire(client, name, lease_seconds, run_id, tell=tell)
    try:
        with _renewing(lease_id, lease_seconds):
            holder = {
                "flow_run_id": run_id,
                "image": plan.image,
                "rollout_id": plan.rollout_id,
                "lease_id": str(lease_id),
                **this_process(),
            }
            _write(name, {"holder": holder})
            try:
                identity = f"{plan.rollout_id}/{run_id or this_process()['pid']}"
                with _cluster_lock(cluster, plan.target, identity, holder, lease_seconds, deadline=None):
                    yield
            finally:
                _give_back(name, holder["lease_id"])
    finally:
        _release_lease(lease_id)


def _give_back(name: str, lease_id: str) -> None:
    """Clear the slot's holder record if it is still this run's. Bookkeeping after the rollout's
    outcome: a Prefect API that fails now (a 503 under load) must not turn a finished rollout into
    a failed run, so it is logged instead; the next holder overwrites the record, and a record
    whose lease is gone names a dead holder (`_release_dead_holder`)."""
    try:
        if (_read(name).get("holder") or {}).get("lease_id") == lease_id:
            _write(name, {"holder": None})
    except Exception as exc:
        _logger().warning("could not clear the holder of the slot %s (%s); the next holder does", name, exc)


def _release_lease(lease_id: UUID) -> None:
    """Give the slot's concurrency lease back; if the Prefect API fails now, it expires by itself."""
    try:
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(lease_id)
    except Exception as exc:
        _logger().warning("could not give the slot's lease %s back (%s); it expires by itself", lease_id, exc)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger, or this module's outside a run (the dev commands, tests)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@contextmanager
def cleanup_slot(
    target: TargetRef,
    *,
    cell: str | None = None,
    timeout_seconds: float,
    lease_seconds: float,
    cluster: Cluster,
) -> Iterator[None]:
    """Hold `target`'s slot (its `cell`'s, in a release) and Lease to converge it, releasing a
    dead holder's lease (not recorded as the slot's holder).

    Raises
    ------
    TimeoutError
        A live holder kept the slot for `timeout_seconds`.
    """
    name = slot_name(target, cell)
    run_id = str(flow_run.get_id() or "")
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
        deadline = time.monotonic() + timeout_seconds
        lease_id = _acquire(client, name, lease_seconds, run_id, deadline=deadline)
    try:
        with _renewing(lease_id, lease_seconds):
            details = {"flow_run_id": run_id, "rollout_id": "cleanup", **this_process()}
            identity = f"cleanup/{run_id or details['pid']}"
            with _cluster_lock(cluster, target, identity, details, lease_seconds, deadline=deadline):
                yield
    finally:
        _release_lease(lease_id)


def _acquire(
    client: SyncPrefectClient,
    name: str,
    seconds: float,
    run_id: str,
    *,
    deadline: float | None = None,
    tell: Callable[[str], None] | None = None,
) -> UUID:
    """Take the slot with a lease of `seconds`, waiting while a live holder has it (TimeoutError
    past the monotonic `deadline`, if given); who holds it is logged once, and said to `tell`."""
    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id)) if run_id else None
    told = False
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=seconds, holder=holder
            )
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != _LOCKED:
                raise
            if not _release_dead_holder(client, name):
                if not told:
                    told = True
                    _say_waiting(name, tell)
                retry_after = min(
                    max(float(exc.response.headers.get("Retry-After", 1.0)), 0.1), _MAX_RETRY_SECONDS
                )
                if deadline is not None and time.monotonic() + retry_after > deadline:
                    raise TimeoutError(f"the slot {name} stayed taken by a live holder") from exc
                time.sleep(retry_after)
            continue
        granted = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
        if not granted.limits:
            raise RuntimeError(f"the global concurrency limit {name!r} does not exist")
        return granted.lease_id


def _say_waiting(name: str, tell: Callable[[str], None] | None) -> None:
    """Log (and `tell`), once per wait, who holds the slot this run waits for."""
    holder = _read(name).get("holder") or {}
    who = (
        f"rollout {holder.get('rollout_id')} of {holder.get('image')} (flow run {holder.get('flow_run_id')})"
        if holder
        else "another run"
    )
    message = f"waiting for the slot {name}: {who} holds it; this run starts when it ends"
    _logger().info(message)
    if tell is not None:
        tell(message)


def _release_dead_holder(client: SyncPrefectClient, name: str) -> bool:
    """Release the lease of the slot's recorded holder if that holder is dead; True if released."""
    record = _read(name)
    holder = record.get("holder") or {}
    if not holder.get("lease_id"):
        return False
    why = _why_dead(client, holder)
    if why is None:
        return False
    message = f"the holder of slot {name} is dead ({why}); released its lease"
    _logger().warning("%s: %s", holder.get("rollout_id"), message)
    client.release_concurrency_slots_with_lease(UUID(holder["lease_id"]))
    run_id = holder.get("flow_run_id")
    if run_id:
        run = client.read_flow_run(run_id)
        if run.state is None or not run.state.is_final():
            client.set_flow_run_state(run_id, Crashed(message=message), force=True)
    _write(name, {"holder": None})
    return True


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _why_dead(client: SyncPrefectClient, holder: dict[str, Any], *, ours: bool = True) -> str | None:
    """Why the recorded `holder` is certainly dead, or None when it may be alive. A flow run this
    Prefect does not know is dead only when the record is `ours` (the slot's, kept in this Prefect);
    a Lease's holder may be a run of another Prefect server."""
    run_id = holder.get("flow_run_id")
    if run_id and _is_uuid(str(run_id)):
        try:
            run = client.read_flow_run(UUID(str(run_id)))
        except ObjectNotFound:
            if ours:
                return f"flow run {run_id} does not exist"
            run = None
        if run is not None and run.state is not None and run.state.is_final():
            return f"flow run {run_id} is {run.state.name}"
    if holder.get("host") == socket.gethostname() and holder.get("pid"):
        pid = int(holder["pid"])
        if process_started(pid) != holder.get("started"):
            return f"process {pid} on {holder['host']} is gone"
    return None


#: How long a run waits through an API server that does not answer before it gives up on the Lease.
_LOCK_PATIENCE_SECONDS = 180.0


@contextmanager
def _cluster_lock(
    cluster: Cluster,
    target: TargetRef,
    identity: str,
    holder: dict[str, Any],
    seconds: float,
    *,
    deadline: float | None,
) -> Iterator[None]:
    """Hold `target`'s Lease as `identity` (waiting while a live holder has it; TimeoutError past
    the monotonic `deadline`), renewed every third of `seconds` in a thread; given back at the end.
    A renewal that finds the Lease taken marks the slot lost (`check_slot` raises `SlotLost`)."""
    details = {key: "" if value is None else str(value) for key, value in holder.items()}
    duration = timedelta(seconds=seconds)
    told, patience = False, time.monotonic() + _LOCK_PATIENCE_SECONDS
    take_over: str | None = None
    while True:
        try:
            lock = cluster.lock(
                target, identity=identity, details=details, duration=duration, take_over=take_over
            )
        except TransientError:
            if time.monotonic() > patience:
                raise
            time.sleep(1.0)
            continue
        if lock.granted:
            break
        assert lock.holder is not None, "a refused lock names its holder"
        with get_client(sync_client=True) as client:
            why = _why_dead(client, dict(lock.holder.details), ours=False)
        if why is not None:
            _logger().warning("the holder of the lock of %s is dead (%s): taking it", target, why)
            take_over = lock.holder.identity
            continue
        if not told:
            told = True
            _logger().info(
                "waiting for the lock of %s: %s holds it (until %s unless renewed)",
                target, lock.holder.identity, lock.holder.expires_at,
            )  # fmt: skip
        if deadline is not None and time.monotonic() + 1.0 > deadline:
            raise TimeoutError(f"the lock of {target} stayed taken by a live holder")
        time.sleep(1.0)
    if lock.took_over:
        _logger().warning(
            "took the lock of %s from %s (fencing token %d)", target, lock.took_over, lock.token
        )
    lost = _LOST.get()
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(seconds / 3):
            try:
                kept = cluster.lock(
                    target, identity=identity, details=details, duration=duration, renew_only=True
                )
            except Exception:  # a later renewal may still succeed within the Lease
                continue
            if not kept.granted and lost is not None:
                lost.set()
                return

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(renew,), name="lock-lease", daemon=True
    )
    thread.start()
    held = _HELD.set((cluster, target, identity))
    try:
        yield
    finally:
        _HELD.reset(held)
        stop.set()
        thread.join(timeout=seconds)
        try:
            cluster.unlock(target, identity=identity)
        except Exception as exc:  # it expires on its own
            _logger().warning("could not give the lock of %s back (%s); it expires by itself", target, exc)


@contextmanager
def _renewing(lease_id: UUID, seconds: float) -> Iterator[None]:
    """Renew the lease every half lease in a background thread; mark the slot lost when it is gone."""
    stop, lost = threading.Event(), threading.Event()
    token = _LOST.set(lost)

    def renew() -> None:
        with get_client(sync_client=True) as client:
            while not stop.wait(seconds / 2):
                try:
                    client.renew_concurrency_lease(lease_id=lease_id, lease_duration=seconds)
                except PrefectHTTPStatusError as exc:
                    if exc.response.status_code == _GONE:
                        lost.set()
                        return
                except Exception:  # a later renewal may still succeed within the lease
                    continue

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(renew,), name="slot-lease", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        _LOST.reset(token)
        thread.join(timeout=seconds)
