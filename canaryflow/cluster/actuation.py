"""The `Cluster` port implemented once, on top of `Workloads` primitives, for every adapter.

Order of writes (so that capacity never drops and a crash at any point leaves a state that the
next call converges from):

- `apply_split`: canary first (it carries the rollout state), then baseline, then growing the
  stable; wait until Ready; then shrink whatever is above its share; wait again.
- `promote` / `rollback`: mark the phase on the canary, set the stable's image (canary's or the
  original) and full size, wait until the stable is rolled out, delete the baseline, delete the
  canary last (with it goes the state).
- With an HPA on the stable: its bounds are lent around the stable's share (`_lend`: before a
  shrink of the stable, after a growth) with its own recorded on it, its growth of the stable is
  taken in as a larger capacity (`_take_in_scale`), and `promote` / `rollback` give its own bounds
  back before sizing the stable (`_give_back`).

Every write carries the resourceVersion it was based on; a 409 re-reads and retries a few times.
An API server that does not answer is ridden out (`canaryflow.cluster.outages.Patience`): each
operation retries through an outage for up to its tolerance, and its waits for pods count only the
time the server was answering. After an outage, a Deployment's own ``ProgressDeadlineExceeded``
condition is not trusted (the deployment controller could not see progress while the server was
down); the operation's own deadline, extended by the outage, decides.
Nothing here knows Kubernetes or the simulation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from canaryflow.clock import Clock
from canaryflow.cluster.annotations import (
    CAPACITY,
    FENCE,
    HPA_BOUNDS,
    PREVIOUS_IMAGE,
    PROMOTED_BY,
    PROMOTED_IMAGE,
    REPLICAS_SET,
    ROLLOUT_ID,
    TARGET_LABEL,
    TRACK_LABEL,
    UNDONE,
    decode_state,
    encode_state,
)
from canaryflow.cluster.drift import service_fault, stable_drift, track_drift
from canaryflow.cluster.outages import DEFAULT_OUTAGE_TOLERANCE, FINISH_OUTAGE_TOLERANCE, Patience
from canaryflow.cluster.port import (
    LastPromotion,
    Lock,
    LockHolder,
    PodInfo,
    RolloutCondition,
    RolloutId,
    RolloutState,
    TargetRef,
    TargetStatus,
    Track,
    TrackStatus,
)
from canaryflow.cluster.workloads import (
    PERMISSIONS,
    ClusterEvent,
    DeploymentRecord,
    HpaRecord,
    LeaseRecord,
    NewTrack,
    Workloads,
)
from canaryflow.errors import (
    CanaryflowError,
    ClusterError,
    ConflictError,
    DriftError,
    FencedError,
    ForbiddenError,
    NotFoundError,
    NothingToUndoError,
    ProgressDeadlineError,
    RolloutInProgressError,
)
from canaryflow.replicas import Split, hpa_maximum
from canaryflow.status import RolloutPhase

__all__ = ["ReplicaActuator", "lease_name"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)
_ALL: tuple[Track, ...] = ("stable", "canary", "baseline")
_STABLE: tuple[Track, ...] = ("stable",)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The target as read. ``status.state`` is the rollout state with a person's scale of the stable
    taken in (`_take_in_scale`); ``written`` is the state as the annotations have it."""

    status: TargetStatus
    records: Mapping[Track, DeploymentRecord]
    written: RolloutState | None = None
    #: The HPA that scales the stable, when one does.
    hpa: HpaRecord | None = None


class ReplicaActuator:
    """Replica-weight canaries on any `Workloads`; adapters subclass it and pass theirs in."""

    def __init__(
        self, workloads: Workloads, *, clock: Clock, poll_interval: float = 0.5, conflict_attempts: int = 5
    ) -> None:
        if poll_interval <= 0 or conflict_attempts < 1:
            raise ValueError("poll_interval must be > 0 and conflict_attempts >= 1")
        self._workloads = workloads
        self._clock = clock
        self._event_failed = False
        self._condition_failed = False
        self._poll = poll_interval
        self._attempts = conflict_attempts
        #: The fencing token of each target whose Lease this adapter holds.
        self._tokens: dict[TargetRef, int] = {}
        #: Per target, the Lease's holder and renewal as last seen, and when (this clock's monotonic
        #: seconds) it was first seen so: a Lease expires for this adapter when that is its duration ago.
        self._observed: dict[TargetRef, tuple[tuple[object, ...], float]] = {}

    # -- the port -------------------------------------------------------------------------------

    def read(self, target: TargetRef) -> TargetStatus:
        return self._snapshot(target).status

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        """Every pod of the app (not part of the port: what `canaryflow.simulation.PodLister`
        asks, so that the demo's simulated traffic follows the pods of a real cluster)."""
        return self._workloads.list_pods(namespace, app)

    def check(self, target: TargetRef) -> TargetStatus:
        ns = target.namespace
        denied = self._workloads.denied(ns, PERMISSIONS)
        if denied:
            names = ", ".join(str(p) for p in denied)
            raise ForbiddenError(
                f"the cluster credentials may not {names} in namespace {ns} (needed to "
                f"{denied[0].why}): apply deployments/kubernetes/canaryflow/rbac.yaml to {ns} or bind an "
                "equivalent Role to this identity",
                target=str(target),
            )
        snap = self._snapshot(target)
        self._check_service(snap.status)
        return snap.status

    def apply_split(
        self,
        target: TargetRef,
        split: Split,
        *,
        rollout_id: RolloutId,
        image: str,
        step: int,
        progress_deadline: timedelta,
        outage_tolerance: timedelta = DEFAULT_OUTAGE_TOLERANCE,
    ) -> TargetStatus:
        deadline = max(1, round(progress_deadline.total_seconds()))
        patience = self._patience(outage_tolerance, f"the split of step {step + 1} of {target}")
        self._retrying(target, lambda: self._grow(target, split, rollout_id, image, step, deadline), patience)
        self._wait(target, _ALL, progress_deadline, patience)
        self._retrying(target, lambda: self._shrink(target, split, rollout_id), patience)
        status = self._wait(target, _ALL, progress_deadline, patience)
        self.announce(target, "CanarySplit", f"{rollout_id} step {step + 1}: {_split_words(status, image)}")
        return status

    def lock(
        self,
        target: TargetRef,
        *,
        identity: str,
        details: Mapping[str, str],
        duration: timedelta,
        take_over: str | None = None,
        renew_only: bool = False,
    ) -> Lock:
        if not identity:
            raise ValueError("a lock's holder needs an identity")
        ns, name = target.namespace, lease_name(target)
        seconds = max(1, round(duration.total_seconds()))
        notes = {_HOLDER: json.dumps(dict(details), sort_keys=True)}
        for number in range(1, self._attempts + 1):
            now = self._clock.now()
            lease = self._workloads.get_lease(ns, name)
            if renew_only and (lease is None or lease.holder != identity):
                return Lock(
                    granted=False, holder=None if lease is None or not lease.holder else _holder_of(lease)
                )
            try:
                if lease is None:  # (a Lease deleted since starts above the fences it left)
                    highest = self._highest_fence(target)
                    start = highest + 1 if highest else 0
                    new = LeaseRecord(name, "", identity, seconds, now, now, start, notes)
                    self._workloads.write_lease(ns, new)
                    if highest:  # a holder of the Lease's earlier life may still write
                        self._stamp(target, start)
                    self._tokens[target] = start
                    return Lock(granted=True, token=start)
                if lease.holder == identity:  # a renewal
                    kept = {**lease.annotations, **notes}
                    renewed = replace(lease, renewed_at=now, duration_seconds=seconds, annotations=kept)
                    self._workloads.write_lease(ns, renewed)
                    if self._tokens.get(target) != lease.transitions and lease.transitions > 0:
                        # A takeover whose stamping did not finish (an outage): finish it first.
                        self._stamp(target, lease.transitions)
                    self._tokens[target] = lease.transitions
                    return Lock(granted=True, token=lease.transitions)
                live = lease.holder and lease.holder != take_over and not self._expired(target, lease)
                if live:
                    return Lock(granted=False, holder=_holder_of(lease))
                token = lease.transitions + 1
                taken = replace(
                    lease,
                    holder=identity,
                    acquired_at=now,
                    renewed_at=now,
                    duration_seconds=seconds,
                    transitions=token,
                    annotations={**lease.annotations, **notes},
                )
                self._workloads.write_lease(ns, taken)
            except (ConflictError, NotFoundError):  # changed or deleted since read: read again
                if number == self._attempts:
                    raise
                self._clock.sleep(0.05 * number)
                continue
            if lease.holder:  # taken from a holder that may still write: fence it out first
                self._stamp(target, token)
                _log.warning("%s: took its lock from %s (fencing token %d)", target, lease.holder, token)
            self._tokens[target] = token
            return Lock(granted=True, token=token, took_over=lease.holder or None)
        raise AssertionError("unreachable")  # pragma: no cover

    def _expired(self, target: TargetRef, lease: LeaseRecord) -> bool:
        """Whether `lease` went unrenewed for its duration while this adapter watched it: the
        holder, its acquisition and its renewal unchanged since first seen, measured on this
        adapter's monotonic clock (never the holder's ``renewTime`` against this machine's wall
        clock, which may be off by more than a duration)."""
        seen = (lease.holder, lease.acquired_at, lease.renewed_at, lease.transitions, lease.duration_seconds)
        now = self._clock.monotonic()
        first = self._observed.get(target)
        if first is None or first[0] != seen:
            first = self._observed[target] = (seen, now)
        return now - first[1] >= lease.duration_seconds

    def unlock(self, target: TargetRef, *, identity: str) -> None:
        self._tokens.pop(target, None)
        for _ in range(self._attempts):
            lease = self._workloads.get_lease(target.namespace, lease_name(target))
            if lease is None or lease.holder != identity:
                return
            try:
                self._workloads.write_lease(target.namespace, replace(lease, holder=""))
                return
            except (ConflictError, NotFoundError):
                continue

    def lock_holder(self, target: TargetRef) -> LockHolder | None:
        lease = self._workloads.get_lease(target.namespace, lease_name(target))
        return None if lease is None or not lease.holder else _holder_of(lease)

    def supersede(self, target: TargetRef, image: str) -> LockHolder | None:
        for number in range(1, self._attempts + 1):
            lease = self._workloads.get_lease(target.namespace, lease_name(target))
            if lease is None or not lease.holder or _holder_details(lease).get("image") == image:
                return None
            request = json.dumps({"holder": lease.holder, "image": image}, sort_keys=True)
            try:
                asked = replace(lease, annotations={**lease.annotations, _SUPERSEDED: request})
                self._workloads.write_lease(target.namespace, asked)
            except ConflictError:
                if number == self._attempts:
                    raise
                continue
            return replace(_holder_of(lease), superseded_by=image)
        raise AssertionError("unreachable")  # pragma: no cover

    def _highest_fence(self, target: TargetRef) -> int:
        records = [self._workloads.get_deployment(target.namespace, target.track_name(t)) for t in _ALL]
        fences = [r.annotations.get(FENCE, "") for r in records if r is not None]
        return max((int(f) for f in fences if f.isdigit()), default=0)

    def _stamp(self, target: TargetRef, token: int) -> None:
        self._outlasting_conflicts(target, functools.partial(self._stamp_fence, target, token))

    def _stamp_fence(self, target: TargetRef, token: int) -> None:
        """Write `token` on every Deployment of the target, and on the stable's HPA if it has one
        (each patch carries the resourceVersion read, so a write the old holder based on an
        earlier read, an HPA's bounds included, now fails with a 409, and its next read finds the
        larger token on the Deployments)."""
        for track in _ALL:
            record = self._workloads.get_deployment(target.namespace, target.track_name(track))
            fence = "" if record is None else record.annotations.get(FENCE, "")
            if record is None or (fence.isdigit() and int(fence) >= token):
                continue
            self._workloads.patch_deployment(
                target.namespace,
                record.name,
                resource_version=record.resource_version,
                annotations={FENCE: str(token)},
            )
        hpa = self._workloads.get_hpa(target.namespace, target.deployment)
        fence = "" if hpa is None else hpa.annotations.get(FENCE, "")
        if hpa is not None and not (fence.isdigit() and int(fence) >= token):
            self._workloads.patch_hpa(
                target.namespace,
                hpa.name,
                resource_version=hpa.resource_version,
                min_replicas=hpa.min_replicas,
                max_replicas=hpa.max_replicas,
                annotations={FENCE: str(token)},
            )

    def _check_fence(
        self, target: TargetRef, records: Collection[DeploymentRecord | HpaRecord | None]
    ) -> None:
        """FencedError when another holder of the target's lock stamped a larger token on one of
        `records` (nothing to check while this adapter holds no lock of the target)."""
        token = self._tokens.get(target)
        if token is None:
            return
        for record in records:
            if record is None:
                continue
            fence = record.annotations.get(FENCE, "")
            if fence.isdigit() and int(fence) > token:
                raise FencedError(
                    f"{target}: another holder took its lock (fencing token {fence} on {record.name}, this "
                    f"run holds {token}); this run no longer changes it",
                    target=str(target),
                )

    def decide(
        self,
        target: TargetRef,
        *,
        rollout_id: RolloutId,
        phase: RolloutPhase,
        outage_tolerance: timedelta = FINISH_OUTAGE_TOLERANCE,
    ) -> None:
        if phase not in (RolloutPhase.PROMOTING, RolloutPhase.ROLLING_BACK):
            raise ValueError(f"a rollout decides to promote or to roll back, not {phase}")
        patience = self._patience(outage_tolerance, f"recording the decision of {rollout_id} on {target}")
        self._retrying(target, lambda: self._mark(target, rollout_id, phase), patience)

    def promote(
        self,
        target: TargetRef,
        *,
        rollout_id: RolloutId,
        progress_deadline: timedelta,
        outage_tolerance: timedelta = FINISH_OUTAGE_TOLERANCE,
    ) -> TargetStatus:
        patience = self._patience(outage_tolerance, f"the promotion of {rollout_id} on {target}")
        return self._finish(target, rollout_id, RolloutPhase.PROMOTING, progress_deadline, patience)

    def rollback(
        self,
        target: TargetRef,
        *,
        rollout_id: RolloutId,
        progress_deadline: timedelta,
        outage_tolerance: timedelta = FINISH_OUTAGE_TOLERANCE,
    ) -> TargetStatus:
        patience = self._patience(outage_tolerance, f"the rollback of {rollout_id} on {target}")
        return self._finish(target, rollout_id, RolloutPhase.ROLLING_BACK, progress_deadline, patience)

    def undo(
        self,
        target: TargetRef,
        *,
        note: str,
        progress_deadline: timedelta,
        outage_tolerance: timedelta = FINISH_OUTAGE_TOLERANCE,
    ) -> TargetStatus:
        patience = self._patience(outage_tolerance, f"the undo on {target}")
        undone = self._retrying(target, lambda: self._undo(target, note), patience)
        if undone:
            self._wait(target, _STABLE, progress_deadline, patience)
        status = patience.call(lambda: self.read(target))
        self.announce(
            target, "PromotionUndone", f"{note}; the stable runs {status.stable.image}", warning=True
        )
        return status

    def announce(self, target: TargetRef, reason: str, message: str, *, warning: bool = False) -> None:
        """Record a Kubernetes Event on the stable Deployment, best effort: an Event that cannot be
        written (no ``create events``, the API server away) is logged once and never stops a
        rollout."""
        try:
            record = self._workloads.get_deployment(target.namespace, target.deployment)
            event = ClusterEvent(target.deployment, record.uid if record else "", reason, message, warning)
            self._workloads.create_event(target.namespace, event)
        except CanaryflowError as exc:
            if not self._event_failed:
                _log.warning(
                    "canaryflow could not record events on %s (the rollout goes on): %s", target, exc
                )
            self._event_failed = True

    def set_condition(self, target: TargetRef, condition: RolloutCondition) -> None:
        """Set the stable's ``Canary`` condition, best effort like `announce` (without ``patch
        deployments/status``, or with the API server away, the rollout goes on without it)."""
        try:
            self._workloads.set_condition(target.namespace, target.deployment, condition)
        except CanaryflowError as exc:
            if not self._condition_failed:
                _log.warning(
                    "canaryflow could not set the Canary condition of %s (the rollout goes on): %s",
                    target,
                    exc,
                )
            self._condition_failed = True

    def _undo(self, target: TargetRef, note: str) -> bool:
        """Put the stable back on the image before the last promotion (in one patch that also
        removes the promotion's record). False when that was done already (an undo resumed)."""
        note = note[:800]
        snap = self._snapshot(target)
        busy = snap.records.get("canary") or snap.records.get("baseline")
        if busy is not None:
            holder = snap.status.state.rollout_id if snap.status.state else busy.annotations.get(ROLLOUT_ID)
            raise RolloutInProgressError(
                f"{target} is in rollout {holder or '(unknown)'}: abort that rollout instead of undoing",
                target=str(target),
                rollout_id=holder,
            )
        stable = snap.records["stable"]
        promotion = snap.status.last_promotion
        if promotion is None:
            undone = stable.annotations.get(UNDONE)
            if undone and note and undone.endswith(f": {note}"):
                return False  # this undo, done by an attempt whose answer was lost
            said = f" (last undo: {undone})" if undone else ""
            raise NothingToUndoError(
                f"{target} has no promotion by canaryflow to undo{said}", target=str(target)
            )
        running = stable.images.get(target.container)
        if running != promotion.image:
            raise DriftError(
                f"{target} runs {running}, not {promotion.image} that {promotion.rollout_id} promoted: "
                "somebody changed it since, so nothing was undone (set the image you want with kubectl)",
                target=str(target),
            )
        self._workloads.patch_deployment(
            target.namespace,
            stable.name,
            resource_version=stable.resource_version,
            image=(target.container, promotion.previous_image),
            annotations={
                PREVIOUS_IMAGE: None,
                PROMOTED_IMAGE: None,
                PROMOTED_BY: None,
                UNDONE: f"{promotion.image} of {promotion.rollout_id}: {note}",
            },
        )
        return True

    def _patience(self, tolerance: timedelta, what: str) -> Patience:
        def waiting(exc: Exception) -> None:
            _log.warning("%s waits for the API server (up to %s): %s", what, tolerance, exc)

        return Patience(self._clock, tolerance, what=what, on_outage=waiting)

    # -- reading and checking -------------------------------------------------------------------

    def _snapshot(self, target: TargetRef) -> _Snapshot:
        ns = target.namespace
        records: dict[Track, DeploymentRecord] = {}
        for track in _ALL:
            record = self._workloads.get_deployment(ns, target.track_name(track))
            if record is not None:
                records[track] = record
        if "stable" not in records:
            raise NotFoundError(f"Deployment {target} does not exist", target=str(target))
        if target.container not in records["stable"].images:
            containers = ", ".join(sorted(records["stable"].images)) or "none"
            raise NotFoundError(
                f"Deployment {target} has no container {target.container!r} (containers: {containers})",
                target=str(target),
            )
        canary = records.get("canary")
        written = decode_state(canary.annotations, where=f"{ns}/{canary.name}") if canary else None
        tracks = {track: _track_status(rec, track, target.container) for track, rec in records.items()}
        hpa = self._workloads.get_hpa(ns, target.deployment)
        lent = _lent_bounds(hpa)
        stable = records["stable"]
        state = None if written is None else _take_in_scale(written, stable, by_hpa=lent is not None)
        left = _left_capacity(stable) if written is None else None
        selector = self._workloads.service_selector(ns, target.service)
        status = TargetStatus(
            target=target,
            stable=tracks["stable"],
            canary=tracks.get("canary"),
            baseline=tracks.get("baseline"),
            hpa_replicas=None if hpa is None else _hpa_replicas(hpa, stable),
            hpa_bounds=None if hpa is None else lent or (hpa.min_replicas, hpa.max_replicas),
            state=state,
            left_capacity=left,
            last_promotion=_last_promotion(records["stable"]),
            service_selector=None if selector is None else dict(selector),
            rescaled=written is not None and state != written,
        )
        return _Snapshot(status=status, records=records, written=written, hpa=hpa)

    def _owned(self, target: TargetRef, rollout_id: RolloutId) -> _Snapshot:
        """A snapshot in which nothing belongs to another rollout or to somebody else, and no
        other holder of the target's lock has fenced this adapter out."""
        snap = self._snapshot(target)
        self._check_fence(target, snap.records.values())
        state = snap.status.state
        canary, baseline = snap.records.get("canary"), snap.records.get("baseline")
        if canary is not None and state is None:
            raise ClusterError(
                f"Deployment {target.namespace}/{canary.name} exists without canaryflow annotations; "
                "it is not ours to change",
                target=str(target),
            )
        holder = state.rollout_id if state is not None else None
        if baseline is not None:
            owner = baseline.annotations.get(ROLLOUT_ID)
            if owner is None:
                raise ClusterError(
                    f"Deployment {target.namespace}/{baseline.name} exists without canaryflow annotations; "
                    "it is not ours to change",
                    target=str(target),
                )
            holder = holder or RolloutId(owner)
        if holder is not None and holder != rollout_id:
            raise RolloutInProgressError(
                f"{target} is in rollout {holder}; roll it back or promote it before starting {rollout_id}",
                target=str(target),
                rollout_id=holder,
            )
        return snap

    @staticmethod
    def _check_service(status: TargetStatus) -> None:
        fault = service_fault(status.target, status.service_selector, status.stable.labels)
        if fault is not None:
            raise fault

    # -- writing --------------------------------------------------------------------------------

    def _grow(
        self, target: TargetRef, split: Split, rollout_id: RolloutId, image: str, step: int, deadline: int
    ) -> None:
        snap = self._owned(target, rollout_id)
        status, records = snap.status, snap.records
        self._check_service(status)
        state = status.state
        if state is not None and state.phase != RolloutPhase.PROGRESSING:
            raise ClusterError(
                f"rollout {rollout_id} of {target} is {state.phase}; finish it first", target=str(target)
            )
        ns = target.namespace
        if state is not None:
            _refuse(stable_drift(status) or track_drift(status))
            self._tell_scale(target, state, snap)
        if state is None:
            state = RolloutState(
                rollout_id=rollout_id,
                step=step,
                weight=split.requested_weight,
                canary_image=image,
                stable_image=status.stable.image,
                stable_replicas=status.capacity,
                started_at=self._clock.now(),
                phase=RolloutPhase.PROGRESSING,
                stable_template=status.stable.template,
            )
            self._create(target, "canary", image, split.canary, encode_state(state), deadline)
        else:
            wanted = replace(state, step=step, weight=split.requested_weight, canary_image=image)
            canary = records["canary"]
            grow = split.canary if split.canary > canary.replicas else None
            new_image = (target.container, image) if canary.images.get(target.container) != image else None
            notes = dict(encode_state(wanted)) if wanted != snap.written else None
            if grow is not None or new_image is not None or notes is not None:
                self._workloads.patch_deployment(
                    ns,
                    canary.name,
                    resource_version=canary.resource_version,
                    replicas=grow,
                    image=new_image,
                    annotations=notes,
                )
        baseline = records.get("baseline")
        if split.baseline > 0 and baseline is None:
            self._create(
                target, "baseline", state.stable_image, split.baseline, {ROLLOUT_ID: rollout_id}, deadline
            )
        elif baseline is not None and split.baseline > baseline.replicas:
            self._patch_replicas(ns, baseline, split.baseline)
        stable = records["stable"]
        # Every pod there may be until the shrink, for the bounds an HPA may have meanwhile.
        surge = sum(
            max(wanted, record.replicas if record is not None else 0)
            for wanted, record in (
                (split.stable, stable),
                (split.canary, records.get("canary")),
                (split.baseline, records.get("baseline")),
            )
        )
        if split.stable > stable.replicas:
            self._patch_stable(target, stable, split.stable, state.stable_replicas, (snap.hpa, surge))
        elif (
            stable.annotations.get(CAPACITY) != str(state.stable_replicas)
            or _lendable(snap.hpa)
            or _min_below(snap.hpa, stable.replicas)
            or _max_behind(snap.hpa, stable.replicas, surge)
        ):
            # The capacity to restore is on the stable from the first split on, even when this
            # split leaves its size alone: a person's scale-down and a deleted canary (the state
            # with it) must not make the rollout end below it. An HPA's bounds are lent from the
            # first split on too: its own would fight the split. A growth whose second write to
            # the HPA (its minimum) did not land (a 409, an outage) is finished here, and canary
            # and baseline grown around a stable of the same size move the HPA's maximum.
            self._patch_stable(target, stable, stable.replicas, state.stable_replicas, (snap.hpa, surge))

    def _shrink(self, target: TargetRef, split: Split, rollout_id: RolloutId) -> None:
        snap = self._owned(target, rollout_id)
        wanted: dict[Track, int] = {
            "canary": split.canary,
            "baseline": split.baseline,
            "stable": split.stable,
        }
        for track, replicas in wanted.items():
            record = snap.records.get(track)
            if record is not None and replicas < record.replicas:
                if track == "stable":
                    hpa = (snap.hpa, split.total)
                    self._patch_stable(target, record, replicas, snap.status.capacity, hpa)
                else:
                    self._patch_replicas(target.namespace, record, replicas)
        # The stable did not shrink here while canary or baseline may have: its HPA was lent a
        # maximum among the pods there were before the shrink, and now has its share among fewer.
        stable = snap.records.get("stable")
        if stable is None or split.stable < stable.replicas:
            return
        if _max_behind(snap.hpa, stable.replicas, split.total):
            again = self._workloads.get_hpa(target.namespace, target.deployment)
            if again is not None:
                self._check_fence(target, [again])
                self._lend(target.namespace, again, stable.replicas, split.total)

    def _finish(
        self,
        target: TargetRef,
        rollout_id: RolloutId,
        phase: RolloutPhase,
        progress_deadline: timedelta,
        patience: Patience,
    ) -> TargetStatus:
        state = self._retrying(target, lambda: self._mark(target, rollout_id, phase), patience)
        if state is not None:
            image = state.canary_image if phase == RolloutPhase.PROMOTING else state.stable_image
            self._retrying(target, lambda: self._restore_stable(target, state, image), patience)
            self._wait(target, _STABLE, progress_deadline, patience)
        elif self._retrying(target, lambda: self._restore_capacity(target, rollout_id), patience):
            self._wait(target, _STABLE, progress_deadline, patience)
        self._retrying(target, lambda: self._remove_tracks(target, rollout_id), patience)
        status = patience.call(lambda: self.read(target))
        stable = status.stable
        running = f"the stable runs {stable.image} ({stable.ready}/{stable.replicas} ready)"
        if phase == RolloutPhase.PROMOTING:
            self.announce(target, "CanaryPromoted", f"{rollout_id}: {running}")
        else:
            self.announce(
                target, "CanaryRolledBack", f"{rollout_id}: {running}; canary removed", warning=True
            )
        return status

    def _mark(self, target: TargetRef, rollout_id: RolloutId, phase: RolloutPhase) -> RolloutState | None:
        snap = self._owned(target, rollout_id)
        state = snap.status.state
        if state is None or state.phase == phase:
            return state
        if phase == RolloutPhase.PROMOTING and state.phase == RolloutPhase.PROGRESSING:
            _refuse(stable_drift(snap.status))  # before anything is written
        self._tell_scale(target, state, snap)
        marked = replace(state, phase=phase)
        canary = snap.records["canary"]
        self._workloads.patch_deployment(
            target.namespace,
            canary.name,
            resource_version=canary.resource_version,
            annotations=encode_state(marked),
        )
        return marked

    def _restore_stable(self, target: TargetRef, state: RolloutState, image: str) -> None:
        """The stable at full size (the larger of its size at the start and a person's or the HPA's
        scale since) on `image`, its HPA's own bounds given back first. A rollback puts the stable's
        image back only where the promotion had changed it: an image a person set during the
        rollout is kept."""
        snap = self._owned(target, state.rollout_id)
        if self._give_back(target.namespace, snap.hpa):
            snap = self._owned(target, state.rollout_id)  # the HPA may have scaled the stable
        state = snap.status.state or state
        stable = snap.records["stable"]
        size = None if stable.replicas == state.stable_replicas else state.stable_replicas
        running = stable.images.get(target.container)
        rolling_back = state.phase == RolloutPhase.ROLLING_BACK
        keep = running == image or (rolling_back and running != state.canary_image)
        new_image = None if keep else (target.container, image)
        mark = _unmarked(stable)
        if new_image is not None and not rolling_back:  # what `undo` needs, in the same patch
            mark = {
                **(mark or {}),
                PREVIOUS_IMAGE: running or state.stable_image,
                PROMOTED_IMAGE: image,
                PROMOTED_BY: state.rollout_id,
                UNDONE: None,
            }
        if size is not None or new_image is not None or mark is not None:
            self._workloads.patch_deployment(
                target.namespace,
                stable.name,
                resource_version=stable.resource_version,
                replicas=size,
                image=new_image,
                annotations=mark,
            )

    def _restore_capacity(self, target: TargetRef, rollout_id: RolloutId) -> bool:
        """The canary (and the state) is gone: give the stable back the capacity recorded on it,
        keeping its image, and its HPA its own bounds. Whether anything was written."""
        snap = self._owned(target, rollout_id)
        gave_back = self._give_back(target.namespace, snap.hpa)
        if gave_back:
            snap = self._owned(target, rollout_id)
        stable, left = snap.records["stable"], snap.status.left_capacity
        size = left if left is not None and left > stable.replicas else None
        mark = _unmarked(stable)
        if size is None and mark is None:
            return gave_back
        self._workloads.patch_deployment(
            target.namespace,
            stable.name,
            resource_version=stable.resource_version,
            replicas=size,
            annotations=mark,
        )
        return True

    def _remove_tracks(self, target: TargetRef, rollout_id: RolloutId) -> None:
        snap = self._owned(target, rollout_id)
        for track in ("baseline", "canary"):
            if track in snap.records:
                # Only the version read (and found ours, unfenced): a takeover's stamp in between
                # makes this a conflict, re-read by `_retrying` and refused by the fence.
                record = snap.records[track]
                self._workloads.delete_deployment(
                    target.namespace, record.name, resource_version=record.resource_version
                )

    def _create(
        self,
        target: TargetRef,
        track: Track,
        image: str,
        replicas: int,
        annotations: Mapping[str, str],
        deadline: int,
    ) -> None:
        # A create carries no resourceVersion to go stale: look at the stable's fence right before.
        self._check_fence(target, [self._workloads.get_deployment(target.namespace, target.deployment)])
        new = NewTrack(
            source=target.deployment,
            name=target.track_name(track),
            track=track,
            container=target.container,
            image=image,
            replicas=replicas,
            annotations=dict(annotations),
            labels={TRACK_LABEL: track, TARGET_LABEL: target.deployment},
            progress_deadline_seconds=deadline,
        )
        self._workloads.create_track(target.namespace, new)

    def _patch_stable(
        self,
        target: TargetRef,
        stable: DeploymentRecord,
        replicas: int,
        capacity: int,
        hpa: tuple[HpaRecord | None, int],
    ) -> None:
        """Resize the stable, recording in the same patch that canaryflow set this size, and the
        capacity to restore at the end. An HPA on the stable (``hpa``: it and the target's pods
        with the stable at `replicas`) gets bounds around that size: before a shrink (so that it
        does not grow the stable back); around a growth in two writes, its maximum before (so that
        a sync between the writes, or during an outage that holds the next one back, cannot cut the
        grown stable back to the old maximum) and its minimum after (so that the HPA never grows the
        stable itself to the new size, which would look like its own scaling)."""
        autoscaler, total = hpa
        grows = autoscaler is not None and replicas > stable.replicas
        if autoscaler is not None and (not grows or autoscaler.max_replicas < replicas):
            self._lend(target.namespace, autoscaler, replicas, total, raise_min=not grows)
        self._patch_replicas(
            target.namespace, stable, replicas, {REPLICAS_SET: str(replicas), CAPACITY: str(capacity)}
        )
        if grows:
            again = self._workloads.get_hpa(target.namespace, target.deployment)
            if again is not None:
                self._check_fence(target, [again])  # another holder may have taken the lock meanwhile
                self._lend(target.namespace, again, replicas, total)

    def _lend(
        self, namespace: str, hpa: HpaRecord, stable: int, total: int, *, raise_min: bool = True
    ) -> None:
        """Bounds for the stable's HPA while it holds `stable` of the target's `total` pods
        (without `raise_min`, its minimum is lowered to that but never raised).

        The HPA's own bounds ``[m, M]`` are recorded on it (`HPA_BOUNDS`, once) and replaced by
        ``[max(1, s), max(max(1, s), floor(M s / T))]``: it may not shrink the stable below its
        share (capacity never drops), and it may grow it as load rises as far as the stable's share
        of its own maximum, so that the whole target (the stable grown, canary and baseline grown by
        the split that takes the scale in) stays within about ``M`` (the next split rounds to whole
        pods). At ``s = 0`` (50 % with a baseline) Kubernetes' HPA leaves a Deployment at zero
        replicas alone: it scales again once the promotion or rollback gives it the stable back."""
        own = _lent_bounds(hpa) or (hpa.min_replicas, hpa.max_replicas)
        low = max(1, stable) if raise_min else min(hpa.min_replicas, max(1, stable))
        high = hpa_maximum(stable, total, own[1])
        if (hpa.min_replicas, hpa.max_replicas) == (low, high) and HPA_BOUNDS in hpa.annotations:
            return
        self._workloads.patch_hpa(
            namespace,
            hpa.name,
            resource_version=hpa.resource_version,
            min_replicas=low,
            max_replicas=high,
            annotations={HPA_BOUNDS: f"{own[0]}-{own[1]}"},
        )

    def _give_back(self, namespace: str, hpa: HpaRecord | None) -> bool:
        """The HPA's own bounds, exactly as they were when the rollout lent them; whether it wrote."""
        own = _lent_bounds(hpa)
        if hpa is None or own is None:
            return False
        self._workloads.patch_hpa(
            namespace,
            hpa.name,
            resource_version=hpa.resource_version,
            min_replicas=own[0],
            max_replicas=own[1],
            annotations={HPA_BOUNDS: None},
        )
        return True

    def _tell_scale(self, target: TargetRef, state: RolloutState, snap: _Snapshot) -> None:
        written = snap.written
        if written is not None and state.stable_replicas != written.stable_replicas:
            who = "its HPA" if snap.hpa is not None else "somebody"
            _log.warning(
                "%s: %s scaled the stable during rollout %s; its capacity is now %d replicas (was "
                "%d): the split is recomputed on it, and the rollout ends with the stable at that size",
                target, who, state.rollout_id, state.stable_replicas, written.stable_replicas,
            )  # fmt: skip

    def _patch_replicas(
        self,
        namespace: str,
        record: DeploymentRecord,
        replicas: int,
        annotations: Mapping[str, str | None] | None = None,
    ) -> None:
        self._workloads.patch_deployment(
            namespace,
            record.name,
            resource_version=record.resource_version,
            replicas=replicas,
            annotations=annotations,
        )

    # -- waiting and retrying -------------------------------------------------------------------

    def _wait(
        self, target: TargetRef, tracks: Collection[Track], timeout: timedelta, patience: Patience
    ) -> TargetStatus:
        """Poll until the watched tracks are rolled out, within `timeout` of time the API server
        answered (on the injected clock)."""
        start, lost_before = self._clock.monotonic(), patience.lost
        while True:
            status = patience.call(lambda: self.read(target))
            outage = patience.lost - lost_before
            watched = [t for t in status.tracks if t.track in tracks]
            stuck = [t for t in watched if t.deadline_exceeded]
            if stuck and outage == 0:
                raise ProgressDeadlineError(
                    f"{target}: ProgressDeadlineExceeded: " + "; ".join(t.describe() for t in stuck),
                    target=str(target),
                )
            pending = [t for t in watched if not t.rolled_out]
            if not pending:
                return status
            remaining = start + timeout.total_seconds() + outage - self._clock.monotonic()
            if remaining <= 0:
                raise ProgressDeadlineError(
                    f"{target}: not ready within {timeout}: " + "; ".join(t.describe() for t in pending),
                    target=str(target),
                )
            self._clock.sleep(min(self._poll, remaining))

    def _retrying(self, target: TargetRef, attempt: Callable[[], _T], patience: Patience) -> _T:
        """Run `attempt` (which reads afresh) again after each 409, a bounded number of times, and
        through outages of the API server as long as `patience` lasts."""
        return patience.call(lambda: self._outlasting_conflicts(target, attempt))

    def _outlasting_conflicts(self, target: TargetRef, attempt: Callable[[], _T]) -> _T:
        for number in range(1, self._attempts + 1):
            try:
                return attempt()
            except ConflictError as exc:
                if number == self._attempts:
                    raise ConflictError(
                        f"{target}: still conflicting after {self._attempts} attempts: {exc}",
                        target=str(target),
                    ) from exc
                self._clock.sleep(0.05 * number)
        raise AssertionError("unreachable")  # pragma: no cover


#: On a target's Lease: what its holder recorded about itself (JSON: flow run, host, process).
_HOLDER = "canaryflow/holder"
#: On a target's Lease: a newer image's request that the holder named in it give way (JSON).
_SUPERSEDED = "canaryflow/superseded-by"


def lease_name(target: TargetRef) -> str:
    """The name of the Lease that is the target's lock."""
    return f"canaryflow-{target.deployment}"


def _expires(lease: LeaseRecord) -> datetime | None:
    renewed = lease.renewed_at or lease.acquired_at
    return None if renewed is None else renewed + timedelta(seconds=lease.duration_seconds)


def _holder_of(lease: LeaseRecord) -> LockHolder:
    """The Lease's holder, with a supersede request only when it names that holder."""
    try:
        request = json.loads(lease.annotations.get(_SUPERSEDED, "{}"))
    except ValueError:
        request = {}
    mine = isinstance(request, dict) and request.get("holder") == lease.holder
    image = str(request["image"]) if mine and request.get("image") else None
    return LockHolder(lease.holder, _holder_details(lease), _expires(lease), superseded_by=image)


def _holder_details(lease: LeaseRecord) -> dict[str, str]:
    try:
        details = json.loads(lease.annotations.get(_HOLDER, "{}"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in details.items()} if isinstance(details, dict) else {}


def _take_in_scale(state: RolloutState, stable: DeploymentRecord, *, by_hpa: bool) -> RolloutState:
    """`state` with a scale of the stable taken in. The stable's size is ours when it equals the
    ``replicas-set`` annotation (or, before canaryflow first resized it, the capacity at the start).

    A person's scale: the capacity becomes the larger of the capacity so far and the person's
    replicas (never less than at the start or than a person set). `by_hpa` (the stable's HPA has
    lent its bounds): the HPA grew the stable's share ``s`` to ``s'`` as load rose, so the whole
    target grows by the same factor, ``N' = ceil(N s' / s)``, and canary and baseline follow at the
    next split; the HPA cannot shrink it below its share."""
    marked = stable.annotations.get(REPLICAS_SET)
    ours = int(marked) if marked is not None and marked.isdigit() else state.stable_replicas
    if stable.replicas == ours:
        return state
    if by_hpa:
        if ours < 1 or stable.replicas < ours:
            return state
        # Relative to the capacity written with `ours` (same patch), not to the state's, which a
        # retry may already have grown: the same growth is never counted twice.
        recorded = stable.annotations.get(CAPACITY, "")
        base = int(recorded) if recorded.isdigit() and marked is not None else state.stable_replicas
        grown = -(-base * stable.replicas // ours)
        return replace(state, stable_replicas=max(state.stable_replicas, grown))
    if stable.replicas <= state.stable_replicas:
        return state
    return replace(state, stable_replicas=stable.replicas)


def _left_capacity(stable: DeploymentRecord) -> int | None:
    """The capacity a rollout whose canary (and state) is gone recorded on the stable, with a
    person's scale since taken in as `_take_in_scale` does; None without such a record."""
    recorded = stable.annotations.get(CAPACITY, "")
    if not recorded.isdigit():
        return None
    marked = stable.annotations.get(REPLICAS_SET, "")
    ours = int(marked) if marked.isdigit() else int(recorded)
    scaled = stable.replicas != ours and stable.replicas > int(recorded)
    return stable.replicas if scaled else int(recorded)


def _lent_bounds(hpa: HpaRecord | None) -> tuple[int, int] | None:
    """The HPA's own bounds while a rollout has lent them (recorded as ``<min>-<max>``), else None."""
    recorded = "" if hpa is None else hpa.annotations.get(HPA_BOUNDS, "")
    low, _, high = recorded.partition("-")
    return (int(low), int(high)) if low.isdigit() and high.isdigit() else None


def _lendable(hpa: HpaRecord | None) -> bool:
    """An HPA scales the stable and the rollout has not lent its bounds yet."""
    return hpa is not None and HPA_BOUNDS not in hpa.annotations


def _min_below(hpa: HpaRecord | None, stable: int) -> bool:
    """The rollout lent the HPA bounds whose minimum is below the stable's `stable` replicas."""
    return hpa is not None and HPA_BOUNDS in hpa.annotations and hpa.min_replicas < max(1, stable)


def _max_behind(hpa: HpaRecord | None, stable: int, total: int) -> bool:
    """The rollout lent the HPA a maximum other than the stable's share of its own among `total`
    pods (`hpa_maximum`): canary and baseline changed size around a stable that did not."""
    own = _lent_bounds(hpa)
    return hpa is not None and own is not None and hpa.max_replicas != hpa_maximum(stable, total, own[1])


def _hpa_replicas(hpa: HpaRecord, stable: DeploymentRecord) -> int:
    """The replicas the HPA last saw (the stable's own before the HPA first acted)."""
    return stable.replicas if hpa.current_replicas is None else hpa.current_replicas


def _unmarked(stable: DeploymentRecord) -> dict[str, str | None] | None:
    """The annotations that remove the rollout's marks from the stable (None when it has none)."""
    marks = [key for key in (REPLICAS_SET, CAPACITY) if key in stable.annotations]
    return dict.fromkeys(marks) if marks else None


def _split_words(status: TargetStatus, image: str) -> str:
    """E.g. ``canary web:2 on 20 % of the ready pods (2 canary, 2 baseline, 6 stable)``."""
    count = {t.track: t.replicas for t in status.tracks}
    return (
        f"canary {image} on {status.effective_weight:.0f} % of the ready pods ({count.get('canary', 0)} "
        f"canary, {count.get('baseline', 0)} baseline, {count.get('stable', 0)} stable)"
    )


def _last_promotion(stable: DeploymentRecord) -> LastPromotion | None:
    notes = stable.annotations
    previous, image, by = notes.get(PREVIOUS_IMAGE), notes.get(PROMOTED_IMAGE), notes.get(PROMOTED_BY)
    if not (previous and image and by):
        return None
    return LastPromotion(previous_image=previous, image=image, rollout_id=RolloutId(by))


def _refuse(drift: DriftError | None) -> None:
    if drift is not None:
        raise drift


def _track_status(record: DeploymentRecord, track: Track, container: str) -> TrackStatus:
    return TrackStatus(
        track=track,
        name=record.name,
        image=record.images.get(container, ""),
        replicas=record.replicas,
        current=record.current,
        updated=record.updated,
        ready=record.ready,
        available=record.available,
        generation=record.generation,
        observed_generation=record.observed_generation,
        labels=dict(record.template_labels),
        deadline_exceeded=record.deadline_exceeded,
        template=_template(record, container),
    )


def _template(record: DeploymentRecord, container: str) -> str:
    """`TrackStatus.template`: the record's template digest with the other containers' images."""
    if not record.template_digest:
        return ""
    others = sorted((name, image) for name, image in record.images.items() if name != container)
    return hashlib.sha256(repr((record.template_digest, others)).encode()).hexdigest()[:16]
