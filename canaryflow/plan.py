"""What one rollout is about, resolved once from its request: spec, target, rollout id, queries.

Pure: no Prefect, no cluster calls (only the spec file is read). The flow, its tasks and the
preflight pass a `RolloutPlan` around instead of re-reading the spec; the outcome of a rollout is a
`RolloutOutcome`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from canaryflow.cluster.port import RolloutId, TargetRef
from canaryflow.metrics import MetricQuery
from canaryflow.requests import RolloutRequest
from canaryflow.spec import Analyze, RolloutSpec, format_duration, load_spec
from canaryflow.status import RolloutResult

__all__ = ["RolloutOutcome", "RolloutPlan", "plan_rollout", "rollout_id_for"]


@dataclass(frozen=True)
class RolloutPlan:
    """A request with its loaded spec, its target and its rollout id."""

    request: RolloutRequest
    spec: RolloutSpec
    rollout_id: RolloutId
    target: TargetRef

    @property
    def image(self) -> str:
        return self.request.image

    @property
    def cell(self) -> str | None:
        """The release cell this rollout runs in (None for a plain rollout)."""
        return None if self.request.cell is None else self.request.cell.name

    def queries(self) -> list[MetricQuery]:
        """The spec's metrics as the metrics port's queries (with their templates and units)."""
        return [
            MetricQuery(name=m.name, type=m.type, templates=m.templates(), unit=getattr(m, "unit", None))
            for m in self.spec.spec.analysis.metrics
        ]

    def describe_step(self, index: int) -> str:
        """E.g. ``step 2/5 analyze (every 30s, at most 10m)``."""
        step = self.spec.steps[index]
        where = f"step {index + 1}/{len(self.spec.steps)}"
        if step.set_weight is not None:
            return f"{where} setWeight {step.set_weight}%"
        if step.pause is not None:
            if step.pause.approval:
                return f"{where} pause for approval (at most {format_duration(step.pause.approval_timeout)})"
            assert step.pause.duration is not None
            return f"{where} pause {format_duration(step.pause.duration)}"
        assert step.analyze is not None
        every, most = (format_duration(d) for d in (step.analyze.interval, step.analyze.max_duration))
        return f"{where} analyze (every {every}, at most {most})"

    def analyze_step(self, index: int) -> Analyze:
        step = self.spec.steps[index].analyze
        if step is None:
            raise ValueError(f"step {index} is not an analyze step")
        return step


class RolloutOutcome(BaseModel):
    """How a rollout ended: ``promoted``, ``rolled-back``, ``superseded`` or ``aborted``, and why,
    in words."""

    model_config = ConfigDict(frozen=True)

    rollout_id: str
    target: str
    image: str
    result: RolloutResult
    reason: str
    report: str


def rollout_id_for(spec: RolloutSpec, image: str, *, cell: str | None = None) -> RolloutId:
    """The default rollout id: the target's name and a digest of the image (a DNS label).

    The same image on the same target gives the same id, so re-running an interrupted rollout
    finds its own state in the cluster and resumes it. A release's cells each get their own
    (the cell's name is part of the digest), so that their runs and records stay apart.
    """
    key = f"{spec.target.namespace}/{spec.target.deployment}@{image}"
    if cell is not None:
        key = f"{cell}:{key}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return RolloutId(f"{spec.target.deployment[:50]}-{digest[:8]}")


def plan_rollout(request: RolloutRequest) -> RolloutPlan:
    """Load the request's spec and resolve its target and rollout id (SpecError when invalid).
    A request for a release's cell rolls out to the cell's target: the spec's, with the fields the
    cell overrides."""
    spec = load_spec(request.spec)
    if request.cell is not None and request.cell.overrides():
        cell_target = spec.target.model_copy(update=request.cell.overrides())
        spec = spec.model_copy(update={"spec": spec.spec.model_copy(update={"target": cell_target})})
    t = spec.target
    target = TargetRef(
        namespace=t.namespace, deployment=t.deployment, container=t.container, service=t.service
    )
    cell = None if request.cell is None else request.cell.name
    rollout_id = (
        RolloutId(request.rollout_id)
        if request.rollout_id
        else rollout_id_for(spec, request.image, cell=cell)
    )
    return RolloutPlan(request=request, spec=spec, rollout_id=rollout_id, target=target)
