"""The labels and annotations canaryflow puts on Deployments, and the rollout state they encode.

Labels (on the pod templates of the Deployments canaryflow creates): ``track: canary`` or
``track: baseline``, next to every label of the stable's pod template, so the Service (whose
selector must not use ``track``) selects them and metrics can tell the tracks apart. The stable's
labels are never changed: a ``track: stable`` label is there only if the app's manifest has it
(the example app does); pods without a ``track`` label count as stable.

Annotations (on the canary Deployment) record the rollout so that another process can resume or
clean up: ``canaryflow/rollout-id``, ``step``, ``weight``, ``canary-image``, ``stable-image``,
``stable-replicas``, ``started-at`` (ISO 8601), ``phase`` and ``stable-template`` (a digest of the
stable's pod template at the start, to notice a person's edit of it). The baseline carries the rollout id.
While the rollout changes the stable's size, the stable carries ``canaryflow/replicas-set`` (the
replicas canaryflow set, written in the same patch), so that a person's scale is told from ours,
and ``canaryflow/capacity`` (its size to restore, even if the canary is deleted); both are removed
when the rollout ends. A promotion leaves on the stable what `canaryflow undo` needs:
``canaryflow/previous-image`` (the image it replaced), ``canaryflow/promoted-image`` and
``canaryflow/promoted-by`` (the rollout id); an undo removes them and leaves
``canaryflow/undone`` (what it undid, who and why).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from canaryflow.cluster.port import RolloutId, RolloutState, Track
from canaryflow.errors import ClusterError
from canaryflow.status import RolloutPhase

__all__ = [
    "CAPACITY",
    "FENCE",
    "HPA_BOUNDS",
    "PREFIX",
    "PREVIOUS_IMAGE",
    "PROMOTED_BY",
    "PROMOTED_IMAGE",
    "REPLICAS_SET",
    "ROLLOUT_ID",
    "TARGET_LABEL",
    "TRACK_LABEL",
    "UNDONE",
    "decode_state",
    "encode_state",
    "track_of",
]

PREFIX = "canaryflow/"
#: Pod label telling the tracks apart (also a label of the canary and baseline Deployments).
TRACK_LABEL = "track"
#: Label of the canary and baseline Deployments: the stable Deployment they belong to.
TARGET_LABEL = PREFIX + "target"
ROLLOUT_ID = PREFIX + "rollout-id"
#: On the stable Deployment during a rollout: the replicas canaryflow last set on it. A different
#: ``spec.replicas`` means a person scaled the stable since.
REPLICAS_SET = PREFIX + "replicas-set"
#: On the stable Deployment next to `REPLICAS_SET`: its capacity to restore when the rollout ends,
#: there even if somebody deletes the canary (and the state with it).
CAPACITY = PREFIX + "capacity"
#: On the stable's HPA while a rollout has lent its bounds to the split: the HPA's own bounds,
#: ``<min>-<max>``, given back exactly when the rollout ends.
HPA_BOUNDS = PREFIX + "hpa-bounds"
#: On the tracks of a target whose Lease changed holder: the new holder's fencing token. A writer
#: holding a smaller token is fenced out (`canaryflow.errors.FencedError`).
FENCE = PREFIX + "fence"
#: On the stable after a promotion: the image the promotion replaced, the image it rolled out, and
#: the rollout that did it (what `canaryflow undo` goes back from and to).
PREVIOUS_IMAGE = PREFIX + "previous-image"
PROMOTED_IMAGE = PREFIX + "promoted-image"
PROMOTED_BY = PREFIX + "promoted-by"
#: On the stable after an undo: the image undone, by whom and why.
UNDONE = PREFIX + "undone"
_STEP = PREFIX + "step"
_WEIGHT = PREFIX + "weight"
_CANARY_IMAGE = PREFIX + "canary-image"
_STABLE_IMAGE = PREFIX + "stable-image"
_STABLE_REPLICAS = PREFIX + "stable-replicas"
_STARTED_AT = PREFIX + "started-at"
_PHASE = PREFIX + "phase"
_STABLE_TEMPLATE = PREFIX + "stable-template"


def encode_state(state: RolloutState) -> dict[str, str]:
    """The canary Deployment's annotations for `state`."""
    return {
        ROLLOUT_ID: state.rollout_id,
        _STEP: str(state.step),
        _WEIGHT: str(state.weight),
        _CANARY_IMAGE: state.canary_image,
        _STABLE_IMAGE: state.stable_image,
        _STABLE_REPLICAS: str(state.stable_replicas),
        _STARTED_AT: state.started_at.isoformat(),
        _PHASE: RolloutPhase(state.phase).value,
        **({_STABLE_TEMPLATE: state.stable_template} if state.stable_template else {}),
    }


def decode_state(annotations: Mapping[str, str], *, where: str) -> RolloutState | None:
    """The rollout state in `annotations`, or None when there is no rollout id.

    Raises
    ------
    ClusterError
        An annotation is missing or malformed; `where` (e.g. ``shop/web-canary``) names the object.
    """
    if ROLLOUT_ID not in annotations:
        return None

    def value(key: str) -> str:
        if key not in annotations:
            raise ClusterError(
                f"{where}: annotation {key} is missing; cannot tell the rollout state", target=where
            )
        return annotations[key]

    try:
        raw = value(_PHASE)
        phase = RolloutPhase(raw) if raw in set(RolloutPhase) else None
        if phase is None or not phase.durable:
            raise ValueError(f"unknown phase {raw!r}")
        return RolloutState(
            rollout_id=RolloutId(value(ROLLOUT_ID)),
            step=int(value(_STEP)),
            weight=int(value(_WEIGHT)),
            canary_image=value(_CANARY_IMAGE),
            stable_image=value(_STABLE_IMAGE),
            stable_replicas=int(value(_STABLE_REPLICAS)),
            started_at=datetime.fromisoformat(value(_STARTED_AT)),
            phase=phase,
            stable_template=annotations.get(_STABLE_TEMPLATE, ""),
        )
    except ValueError as exc:
        raise ClusterError(f"{where}: malformed canaryflow annotations: {exc}", target=where) from exc


def track_of(labels: Mapping[str, str]) -> Track:
    """The track a pod with `labels` belongs to (no or an unknown ``track`` label: stable)."""
    value = labels.get(TRACK_LABEL)
    if value == "canary":
        return "canary"
    return "baseline" if value == "baseline" else "stable"
