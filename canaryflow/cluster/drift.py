"""Drift: changes somebody else made to a target during its rollout, and which of them stop it.

A rollout owns its canary and baseline, and the stable's size while it splits traffic; the stable's
image and pod template stay the owners'. Policy per kind of change (the README's table under
"When the cluster blinks, and when people change things"):

- the stable scaled by a person: honoured. The capacity becomes the larger of the capacity so far
  and the person's replicas, the next split is computed on it, and the rollout ends with the
  stable at that size (`canaryflow.cluster.actuation`; never less than at the start);
- the stable's image set by a person: the rollout stops (`DriftError`), its canary is rolled back
  and the person's image is kept; it is looked for before every write and at every checkpoint of
  the rollout (`drift`);
- the canary deleted by a person: noticed at the next checkpoint (`CanaryLostError`); the rollout
  flow recreates it once at the current weight (the capacity is recorded on the stable itself,
  since the rollout state went with the canary); deleted again, the rollout stops and the
  rollback gives the stable back its capacity, instead of analysing a canary that is not there.
"""

from __future__ import annotations

from canaryflow.cluster.port import TargetStatus
from canaryflow.errors import CanaryLostError, DriftError

__all__ = ["drift", "image_drift"]


def drift(status: TargetStatus) -> DriftError | None:
    """The error that stops a running rollout because of what somebody else changed (see the
    module's docs), or None. For checkpoints of a rollout that has started its split."""
    if status.canary_lost:
        name = status.target.track_name("canary")
        return CanaryLostError(
            f"somebody deleted Deployment {status.target.namespace}/{name} during the rollout; the rollout "
            f"stops and the stable gets its {status.capacity} replicas back",
            target=str(status.target),
        )
    return image_drift(status)


def image_drift(status: TargetStatus) -> DriftError | None:
    """The error that stops the rollout when somebody set the stable's image during it (neither the
    image it had at the start nor the canary's, which a promotion puts there); None otherwise."""
    state = status.state
    if state is None:
        return None
    running = status.stable.image
    if running in (state.stable_image, state.canary_image):
        return None
    return DriftError(
        f"somebody set the image of {status.target} to {running} during rollout {state.rollout_id} (it "
        f"ran {state.stable_image}); the rollout stops, rolls its canary back and keeps that image",
        target=str(status.target),
    )
