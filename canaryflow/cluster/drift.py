"""Drift: changes somebody else made to a target during its rollout, and which of them stop it.

A rollout owns its canary and baseline, and the stable's size while it splits traffic; the stable's
image and pod template and the Service stay the owners'. Policy per kind of change (the README's
table under "When the cluster blinks, and when people change things"):

- the stable scaled by a person: honoured. The capacity becomes the larger of the capacity so far
  and the person's replicas, the split is computed again on it at the next checkpoint
  (`TargetStatus.rescaled`), and the rollout ends with the stable at that size
  (`canaryflow.cluster.actuation`; never less than at the start);
- the stable's image set, or its pod template edited (``kubectl set env``, a new label, a
  ``kubectl rollout restart``) by a person: the rollout stops (`DriftError`), its canary is rolled
  back and the person's change is kept; it is looked for before every write and at every
  checkpoint of the rollout (`stable_drift`, `drift`);
- the canary or the baseline deleted by a person: noticed at the next checkpoint
  (`CanaryLostError`, `BaselineLostError`); the rollout flow recreates each once at the current
  weight (a canary's capacity is recorded on the stable itself, since the rollout state went with
  the canary); deleted again, the rollout stops and the rollback gives the stable back its
  capacity, instead of analysing a track that is not there;
- the canary's or the baseline's image set by a person: the rollout stops (what it would analyse is
  no longer the image it compares); a person's scale of them is undone by the next split (they
  are the rollout's own);
- the Service deleted, or its selector changed so that it no longer selects every track: the
  rollout stops (the analysis would measure traffic the Service does not send where the rollout
  thinks).
"""

from __future__ import annotations

from collections.abc import Mapping

from canaryflow.cluster.annotations import TRACK_LABEL
from canaryflow.cluster.port import TargetRef, TargetStatus
from canaryflow.errors import (
    BaselineLostError,
    CanaryflowError,
    CanaryLostError,
    ClusterError,
    DriftError,
    NotFoundError,
)
from canaryflow.status import RolloutPhase

__all__ = ["drift", "service_fault", "stable_drift", "track_drift"]


def drift(status: TargetStatus, *, baseline: bool = False) -> DriftError | None:
    """The error that stops a running rollout because of what somebody else changed (see the
    module's docs), or None. For checkpoints of a rollout that has started its split; `baseline`:
    the rollout runs a baseline next to its canary."""
    target = status.target
    if status.canary_lost:
        name = target.track_name("canary")
        return CanaryLostError(
            f"somebody deleted Deployment {target.namespace}/{name} during the rollout; the rollout "
            f"stops and the stable gets its {status.capacity} replicas back",
            target=str(target),
        )
    changed = stable_drift(status)
    state = status.state
    if changed is not None or state is None or state.phase != RolloutPhase.PROGRESSING:
        return changed
    edited = track_drift(status)
    if edited is not None:
        return edited
    if baseline and status.baseline is None and status.canary is not None and state.weight > 0:
        name = target.track_name("baseline")
        return BaselineLostError(
            f"somebody deleted Deployment {target.namespace}/{name} during rollout {state.rollout_id}; "
            "the rollout stops (the canary has nothing to be compared with)",
            target=str(target),
        )
    fault = service_fault(target, status.service_selector, status.stable.labels)
    if fault is not None:
        return DriftError(
            f"somebody changed the Service during rollout {state.rollout_id}: {fault}; the rollout "
            "stops and rolls its canary back",
            target=str(target),
        )
    return None


def track_drift(status: TargetStatus) -> DriftError | None:
    """The error that stops the rollout when somebody set the image of its canary or baseline (each
    runs what the rollout state says: the canary image, the stable's image at the start); None
    otherwise. Looked for before every split too, so that a split never overwrites it."""
    state, target = status.state, status.target
    if state is None:
        return None
    for track, expected in ((status.canary, state.canary_image), (status.baseline, state.stable_image)):
        if track is not None and track.image != expected:
            return DriftError(
                f"somebody set the image of {target.namespace}/{track.name} to {track.image} during rollout "
                f"{state.rollout_id} (the rollout runs {expected} there); the rollout stops and rolls "
                "its canary back",
                target=str(target),
            )
    return None


def stable_drift(status: TargetStatus) -> DriftError | None:
    """The error that stops the rollout when somebody set the stable's image (neither the image it
    had at the start nor the canary's, which a promotion puts there) or edited its pod template
    otherwise during it; None otherwise."""
    state = status.state
    if state is None:
        return None
    running = status.stable.image
    if running not in (state.stable_image, state.canary_image):
        return DriftError(
            f"somebody set the image of {status.target} to {running} during rollout {state.rollout_id} (it "
            f"ran {state.stable_image}); the rollout stops, rolls its canary back and keeps that image",
            target=str(status.target),
        )
    template = status.stable.template
    if state.stable_template and template and template != state.stable_template:
        return DriftError(
            f"somebody edited the pod template of {status.target} during rollout {state.rollout_id} "
            "(not only its image); the rollout stops, rolls its canary back and keeps that change "
            "(start a new rollout to test the canary on the new template)",
            target=str(status.target),
        )
    return None


def service_fault(
    target: TargetRef, selector: Mapping[str, str] | None, pod_labels: Mapping[str, str]
) -> CanaryflowError | None:
    """Why the target's Service cannot split traffic between the tracks (`selector` as read, None
    when the Service does not exist; `pod_labels` those of the stable's pods), or None."""
    where = f"Service {target.namespace}/{target.service}"
    if selector is None:
        return NotFoundError(
            f"{where} does not exist; it must select the pods of {target}", target=str(target)
        )
    if TRACK_LABEL in selector:
        return ClusterError(
            f"{where} selects on label {TRACK_LABEL!r}, so canary and baseline pods would get no "
            "traffic; remove it from the selector",
            target=str(target),
        )
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        return NotFoundError(
            f"{where} does not select the pods of Deployment {target} "
            f"(selector {_labels(selector)}; pod labels {_labels(pod_labels)})",
            target=str(target),
        )
    return None


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"
