"""The `Cluster` port: everything the rollout needs from the place the workloads run.

Adapters: `KubernetesCluster` (the official client) and `SimulatedCluster` (in memory). Only the
factory knows them; callers hold a `Cluster`. The port speaks in tracks: the **stable** Deployment
(the target), and the **canary** and **baseline** Deployments the rollout creates next to it,
all selected by the target's Service so that traffic splits by ready replicas.

Five methods, in Flagger's spirit of small ports: `check` (the preflight), `read`, `apply_split`,
`promote`, `rollback`; each write waits until the pods it changed are Ready (or the progress
deadline passes) and rides out a short outage of the API server (`canaryflow.cluster.outages`). The values
they exchange are frozen dataclasses defined here. Both adapters also list pods (`pods`, for the
demo's simulated traffic: `canaryflow.simulation.PodLister`); the rollout never needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NewType, Protocol, TypeAlias

from canaryflow.replicas import Split
from canaryflow.status import RolloutPhase

__all__ = [
    "CONDITION_TYPE",
    "Cluster",
    "LastPromotion",
    "Lock",
    "LockHolder",
    "PodInfo",
    "RolloutCondition",
    "RolloutId",
    "RolloutState",
    "TargetRef",
    "TargetStatus",
    "Track",
    "TrackStatus",
]

Track: TypeAlias = Literal["stable", "canary", "baseline"]
#: Identifies one rollout of one target (e.g. ``web-3f9a2c1``); a DNS label.
RolloutId = NewType("RolloutId", str)


#: The type of the condition canaryflow keeps in the stable Deployment's ``status.conditions``.
CONDITION_TYPE = "Canary"


@dataclass(frozen=True, slots=True)
class RolloutCondition:
    """The stable's ``Canary`` condition, what ``kubectl describe``, ``kubectl wait`` and Argo CD
    read: status ``Unknown`` while a rollout is under way (reason ``Progressing`` or
    ``WaitingForApproval``), ``True`` once promoted (``Promoted``), ``False`` once not
    (``RolledBack``, ``Aborted``, ``Superseded``); the message names the rollout and why."""

    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a target's Lease: its identity, what it recorded about itself (flow run, host,
    process) and when the Lease expires unless renewed."""

    identity: str
    details: Mapping[str, str]
    expires_at: datetime | None
    #: A newer image asked this holder to give way (`Cluster.supersede`).
    superseded_by: str | None = None


@dataclass(frozen=True, slots=True)
class Lock:
    """`Cluster.lock`'s answer: granted with its fencing token, or refused with the live holder."""

    granted: bool
    #: The Lease's transitions when granted: a writer with a smaller one is fenced out.
    token: int = 0
    holder: LockHolder | None = None
    #: Granted by taking the Lease from this other holder (expired, or named by ``take_over``).
    took_over: str | None = None


@dataclass(frozen=True, slots=True)
class PodInfo:
    """One pod of a target: which track it belongs to, which image it runs, and whether it is Ready."""

    name: str
    track: Track
    image: str
    ready: bool


@dataclass(frozen=True, slots=True)
class TargetRef:
    """The stable Deployment, the container whose image changes, and the Service in front of it."""

    namespace: str
    deployment: str
    container: str
    service: str

    @property
    def app(self) -> str:
        """Value of the ``app`` label of the target's pods (the Deployment's name by convention)."""
        return self.deployment

    def track_name(self, track: Track) -> str:
        """Deployment name of a track: ``web``, ``web-canary``, ``web-baseline``."""
        return self.deployment if track == "stable" else f"{self.deployment}-{track}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.deployment}"


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What the cluster remembers of a rollout (annotations on the canary Deployment).

    ``step`` is the index of the spec step that set the current split, ``weight`` its requested
    weight; ``stable_replicas`` is the stable's capacity before the rollout (restored by rollback).
    ``phase`` is one of the durable phases: progressing, promoting or rolling-back.
    """

    rollout_id: RolloutId
    step: int
    weight: int
    canary_image: str
    stable_image: str
    stable_replicas: int
    started_at: datetime
    phase: RolloutPhase
    #: The stable's `TrackStatus.template` when the rollout started ("" when a rollout started by
    #: an older canaryflow did not record it): a different one means a person edited the template.
    stable_template: str = ""


@dataclass(frozen=True, slots=True)
class TrackStatus:
    """One Deployment of a target as last observed."""

    track: Track
    name: str
    image: str
    replicas: int
    current: int
    updated: int
    ready: int
    available: int
    generation: int
    observed_generation: int
    labels: Mapping[str, str]
    deadline_exceeded: bool = False
    #: A digest of the pod template with the rollout's container's image left out (other
    #: containers' images count): it changes when a person edits the template, not when a rollout
    #: sets the image. "" when the adapter cannot tell.
    template: str = ""

    @property
    def rolled_out(self) -> bool:
        """The controller saw the latest spec and every wanted pod runs it, Ready and available."""
        want = self.replicas
        return (
            self.observed_generation >= self.generation
            and self.updated == want
            and self.ready == want
            and self.available == want
            and self.current == want
        )

    def describe(self) -> str:
        """E.g. ``web-canary 1/2 ready (2 updated, generation 3 observed 3)``."""
        return (
            f"{self.name} {self.ready}/{self.replicas} ready ({self.updated} updated, "
            f"{self.current} current, generation {self.generation} observed {self.observed_generation})"
        )


@dataclass(frozen=True, slots=True)
class LastPromotion:
    """What the last promotion recorded on the stable: the image it replaced, the image it rolled
    out and the rollout that did it."""

    previous_image: str
    image: str
    rollout_id: RolloutId


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """A target and its tracks; ``state`` is None when no rollout is under way."""

    target: TargetRef
    stable: TrackStatus
    canary: TrackStatus | None
    baseline: TrackStatus | None
    #: The replicas the stable's HPA last saw; None when no HPA scales the stable.
    hpa_replicas: int | None
    state: RolloutState | None
    #: The capacity a rollout recorded on the stable, when its canary (with the state) is gone.
    left_capacity: int | None = None
    #: The last promotion not undone since, as recorded on the stable.
    last_promotion: LastPromotion | None = None
    #: The selector of the target's Service as read with the tracks (None: there is no Service).
    service_selector: Mapping[str, str] | None = None
    #: A person scaled the stable since canaryflow last split the traffic: the split in place is
    #: not the one `state` asks for on the capacity now (the flow splits again).
    rescaled: bool = False
    #: The HPA's own ``(minReplicas, maxReplicas)``, also while a rollout has lent other bounds.
    hpa_bounds: tuple[int, int] | None = None

    @property
    def capacity(self) -> int:
        """``N``: the pods the target serves with: the stable's size before the rollout with a
        person's or the HPA's scale since taken in (from the rollout state, or from the stable's own
        record when the canary was deleted), else the stable's replicas."""
        if self.state is not None:
            return self.state.stable_replicas
        return self.left_capacity if self.left_capacity is not None else self.stable.replicas

    @property
    def canary_lost(self) -> bool:
        """A rollout left its marks (a baseline, a shrunk stable) but its canary is gone."""
        return self.state is None and (self.baseline is not None or self.left_capacity is not None)

    @property
    def tracks(self) -> tuple[TrackStatus, ...]:
        return tuple(t for t in (self.stable, self.canary, self.baseline) if t is not None)

    @property
    def rolled_out(self) -> bool:
        return all(t.rolled_out for t in self.tracks)

    @property
    def effective_weight(self) -> float:
        """The canary's share of the Ready pods, in percent (0 when nothing is Ready)."""
        ready = sum(t.ready for t in self.tracks)
        return 100.0 * self.canary.ready / ready if self.canary is not None and ready else 0.0


class Cluster(Protocol):
    """Port to a cluster. Every method raises our errors (`canaryflow.errors`), never a library's.

    Writes are idempotent: calling one again after a crash converges to the same end state.
    """

    def check(self, target: TargetRef) -> TargetStatus:
        """Preflight, changing nothing: the credentials may do everything a rollout does in the
        target's namespace (ForbiddenError naming what they may not, and how to grant it), the
        target and its container exist (NotFoundError), and its Service selects the target's pods
        and not by ``track`` (NotFoundError, ClusterError). Returns the target as read."""
        ...

    def read(self, target: TargetRef) -> TargetStatus:
        """The target's tracks, its HPA's replicas and the rollout state. NotFoundError without the stable."""
        ...

    def apply_split(
        self,
        target: TargetRef,
        split: Split,
        *,
        rollout_id: RolloutId,
        image: str,
        step: int,
        progress_deadline: timedelta,
        outage_tolerance: timedelta = ...,
    ) -> TargetStatus:
        """Bring the tracks to `split` with the canary running `image`, recording the rollout state.

        Grows first and waits until Ready, then shrinks, so capacity never drops below the split's.
        Creates canary and baseline from the stable's pod template when missing. With an HPA on the
        stable, its bounds are lent to the split (`canaryflow.cluster.actuation`) and given back by
        `promote` and `rollback`. Raises NotFoundError (target, container or a
        selecting Service missing), RolloutInProgressError (another rollout id holds the target),
        ProgressDeadlineError (pods not Ready in time; time the API server did not answer is not
        counted), ConflictError (409s outlasted the retries), ClusterOutageError (the API server did
        not answer for longer than `outage_tolerance`, by default
        `canaryflow.cluster.outages.DEFAULT_OUTAGE_TOLERANCE`; shorter outages are ridden out).
        """
        ...

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
        """Take or renew the target's lock: the Lease ``canaryflow-<deployment>`` in its namespace,
        written by compare-and-swap. Granted when the Lease is free, held by `identity` (a renewal),
        expired, or held by `take_over` (a holder the caller knows is dead). Expired means that
        this adapter has seen the same holder and renewal for the Lease's duration on its own
        monotonic clock, as client-go's leader election decides: the holder's ``renewTime`` is
        never compared with the reader's wall clock, so a holder whose clock is behind (or a reader
        whose clock is ahead) keeps its Lease while it renews, and a Lease abandoned long ago is
        taken over one duration after the first look at it. Taking it from another holder
        increases its transitions, the fencing token, and stamps it on the target's Deployments
        first: from then on every write of an adapter that holds an older token raises
        FencedError. Refused (``granted=False``) with the live holder otherwise. This adapter's
        later writes to the target are checked against the token. With `renew_only` nothing but a
        renewal is granted (a holder that lost its Lease must not take it back unnoticed, even
        once it is free)."""
        ...

    def unlock(self, target: TargetRef, *, identity: str) -> None:
        """Give the target's Lease back if `identity` holds it (nothing otherwise)."""
        ...

    def lock_holder(self, target: TargetRef) -> LockHolder | None:
        """Who holds the target's Lease now (None when nobody does)."""
        ...

    def supersede(self, target: TargetRef, image: str) -> LockHolder | None:
        """Ask the holder of the target's Lease to give way to `image`: a compare-and-swap that
        records the request for that holder only (a later holder never sees it). Returns the holder
        asked, or None when nobody holds the Lease or its holder rolls out `image` itself (the
        ``image`` it recorded in its details)."""
        ...

    def decide(
        self,
        target: TargetRef,
        *,
        rollout_id: RolloutId,
        phase: RolloutPhase,
        outage_tolerance: timedelta = ...,
    ) -> None:
        """Record that rollout `rollout_id` will promote or roll back (`phase`: PROMOTING or
        ROLLING_BACK) in the rollout state, before anything else: a run that dies from here on is
        resumed into that decision, never into the analysis again. `promote` and `rollback` record
        it too (first), so calling this is only needed where work comes between the decision and
        them. Nothing is written when the state is already there or gone."""
        ...

    def promote(
        self,
        target: TargetRef,
        *,
        rollout_id: RolloutId,
        progress_deadline: timedelta,
        outage_tolerance: timedelta = ...,
    ) -> TargetStatus:
        """The stable takes the canary's image at full size and rolls out; then baseline and canary go.
        Outages of the API server shorter than `outage_tolerance` (by default
        `canaryflow.cluster.outages.FINISH_OUTAGE_TOLERANCE`) are ridden out."""
        ...

    def rollback(
        self,
        target: TargetRef,
        *,
        rollout_id: RolloutId,
        progress_deadline: timedelta,
        outage_tolerance: timedelta = ...,
    ) -> TargetStatus:
        """The stable is back on its image at full size; then baseline and canary go. Outages as
        for `promote`."""
        ...

    def announce(self, target: TargetRef, reason: str, message: str, *, warning: bool = False) -> None:
        """Record a Kubernetes Event (`reason`: one CamelCase word) on the target's stable, best
        effort: never raises. The adapters also record their own: CanarySplit, CanaryPromoted,
        CanaryRolledBack, PromotionUndone."""
        ...

    def set_condition(self, target: TargetRef, condition: RolloutCondition) -> None:
        """Show the rollout as the stable's ``Canary`` condition (`RolloutCondition`), best effort:
        never raises."""
        ...

    def undo(
        self,
        target: TargetRef,
        *,
        note: str,
        progress_deadline: timedelta,
        outage_tolerance: timedelta = ...,
    ) -> TargetStatus:
        """The stable goes back to the image it ran before the last promotion, with no analysis,
        and rolls out; `note` (who and why) is recorded on it. Raises NothingToUndoError (no
        promotion recorded, or undone already), RolloutInProgressError (a canary or baseline is
        there: abort that rollout instead), DriftError (the stable no longer runs the promoted
        image: somebody changed it since; nothing is written), ProgressDeadlineError. Outages as
        for `promote`."""
        ...
