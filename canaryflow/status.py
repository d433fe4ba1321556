"""Where a rollout stands, typed: `RolloutPhase` and `RolloutStatus` (what ``status.json`` holds).

One vocabulary for the flow that writes a rollout's status, the cluster annotations that carry its
durable phase, the command line and the demo board that show it, and the cleanup that converges
it. Plain pydantic: no Prefect, no cluster client, no I/O (reading and writing the report files is
`canaryflow.reports`).

Phases, in order of a rollout's life::

    preparing -> progressing <-> waiting-for-approval | paused -> promoting    -> promoted
                                                                  -> rolling-back -> rolled-back
                                                                                   | superseded
                                                                                   | aborted

The cluster keeps only the three phases a killed run must resume from (`RolloutPhase.durable`):
``progressing``, ``promoting`` and ``rolling-back``.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from analysis.verdicts import Decision, MetricStatus, Verdict

__all__ = [
    "FINAL_PHASES",
    "MetricReport",
    "RolloutPhase",
    "RolloutResult",
    "RolloutStatus",
    "VerdictReport",
    "status_schema",
]


class RolloutPhase(StrEnum):
    """Where a rollout stands. The values are what files, annotations and ``--json`` say."""

    PREPARING = "preparing"
    PROGRESSING = "progressing"
    WAITING_FOR_APPROVAL = "waiting-for-approval"
    PAUSED = "paused"
    PROMOTING = "promoting"
    ROLLING_BACK = "rolling-back"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"
    SUPERSEDED = "superseded"
    ABORTED = "aborted"

    @property
    def label(self) -> str:
        """The phase in words, for people (``waiting for approval``)."""
        return self.value.replace("-", " ")

    @property
    def final(self) -> bool:
        """Whether the rollout has ended in this phase."""
        return self in FINAL_PHASES

    @property
    def durable(self) -> bool:
        """Whether the cluster records this phase on the canary (a killed run resumes from it)."""
        return self in (RolloutPhase.PROGRESSING, RolloutPhase.PROMOTING, RolloutPhase.ROLLING_BACK)


FINAL_PHASES = frozenset(
    {RolloutPhase.PROMOTED, RolloutPhase.ROLLED_BACK, RolloutPhase.SUPERSEDED, RolloutPhase.ABORTED}
)

#: How a rollout ended.
RolloutResult = Literal["promoted", "rolled-back", "superseded", "aborted"]

_MODEL = ConfigDict(frozen=True, extra="ignore")


class PlanReport(BaseModel):
    """A metric's evidence plan as recorded (`analysis.outlook.EvidencePlan.to_dict`)."""

    model_config = _MODEL

    needed_intervals: int | None = Field(
        default=None,
        description="Intervals of data that show a canary like its baseline within tolerance at the "
        "traffic seen (80 % power); null when none do.",
    )
    final_interval: int = Field(description="The final look's interval (the maximum duration).")
    chance: float | None = Field(
        default=None,
        description="The chance that the final look shows a canary like its baseline within tolerance, "
        "at the most favourable rate the data allow; below minChance the judge gives up on a ratio metric "
        "without an absolute tolerance (maxIncrease).",
    )

    @property
    def fits(self) -> bool:
        """Whether the plan fits within the maximum duration."""
        return self.needed_intervals is not None and self.needed_intervals <= self.final_interval


class MetricReport(BaseModel):
    """One metric's evidence as recorded (`analysis.verdicts.MetricEvidence.to_dict`)."""

    model_config = _MODEL

    type: str
    direction: str
    status: MetricStatus
    estimate: float | None = None
    interval: tuple[float | None, float | None] = (None, None)
    evalue: float | None = None
    promote_evalue: float | None = None
    pvalue: float | None = None
    statistic: float | None = None
    threshold: float | None = None
    intervals: int = 0
    canary_count: float | None = None
    baseline_count: float | None = None
    dispersion: float | None = None
    tolerance: float | None = None
    final_pvalue: float | None = None
    plan: PlanReport | None = None
    reason: str = ""


class VerdictReport(BaseModel):
    """The judge's latest verdict as recorded (`analysis.verdicts.Verdict.to_dict`)."""

    model_config = _MODEL

    interval: int
    decision: Decision
    final: bool
    judge: str = "sequential"
    reason: str
    score: float | None = None
    metrics: dict[str, MetricReport] = Field(default_factory=dict)

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictReport:
        return cls.model_validate(verdict.to_dict())


class TrackPods(BaseModel):
    """One track's pods after the latest change of the split."""

    model_config = _MODEL

    ready: int = Field(ge=0)
    replicas: int = Field(ge=0, description="The pods the track's Deployment wants.")


class RolloutStatus(BaseModel):
    """What ``<reports>/<rollout-id>/status.json`` says of one rollout (and ``status --json``)."""

    model_config = _MODEL

    rollout_id: str
    target: str = Field(description="namespace/deployment")
    cell: str | None = Field(
        default=None, description="The release cell it runs in (none for a plain rollout)."
    )
    container: str | None = Field(default=None, description="The container whose image changes.")
    service: str | None = Field(default=None, description="The Service in front of the target.")
    image: str
    spec: str
    triggered_by: str
    flow_run_id: str | None = None
    steps: int = Field(ge=0, description="How many steps the spec has.")
    step: int | None = Field(default=None, ge=1, description="The current step, 1-based.")
    step_name: str | None = None
    phase: RolloutPhase = RolloutPhase.PREPARING
    weight: int = Field(default=0, ge=0, le=100, description="The requested canary weight, percent.")
    effective_weight: float = Field(
        default=0.0, ge=0.0, le=100.0, description="The canary's share of the Ready pods, percent."
    )
    pods: dict[str, TrackPods] = Field(
        default_factory=dict, description="Pods per track (stable, canary, baseline) after the latest split."
    )
    next: str | None = Field(default=None, description="What the rollout does next, and when.")
    verdict: VerdictReport | None = None
    observations: str | None = Field(default=None, description="The latest observation log.")
    result: RolloutResult | None = None
    reason: str | None = None
    undone: str | None = Field(
        default=None,
        description="The promotion was taken back since (canaryflow undo, a release): by whom, why, when.",
    )
    updated_at: datetime | None = None

    def dumps(self) -> str:
        """The JSON text of ``status.json``."""
        return json.dumps(self.model_dump(mode="json"), indent=1) + "\n"


def status_schema() -> dict[str, Any]:
    """The JSON schema of `RolloutStatus` (for scripts reading ``status --json``)."""
    return RolloutStatus.model_json_schema()
