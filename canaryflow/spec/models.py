"""The rollout spec: pydantic models of one YAML document, validated as a whole.

Keys are camelCase in YAML (``setWeight``, ``maxDuration``), attributes snake_case. Every model is
frozen and forbids unknown keys, so a misspelt key is an error rather than a silent default.
Checks that span several fields (weights with a baseline, analyze before any canary) run once
the parts are valid; `canaryflow.spec.loading` reports them with their exact path.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from analysis.settings import AnalysisSettings, KayentaSettings, MetricSettings
from canaryflow.requests import DNS_LABEL
from canaryflow.spec.durations import Duration, format_duration
from canaryflow.spec.metrics import DEFAULT_METRICS, MetricSpec
from canaryflow.yamldoc import Loc, dotted_path

__all__ = [
    "API_VERSION",
    "COLLECT_CROSS_CHECKS",
    "DNS_LABEL",
    "AnalysisSpec",
    "Analyze",
    "FailurePolicy",
    "KayentaSpec",
    "Metadata",
    "Pause",
    "RolloutBody",
    "RolloutSpec",
    "Step",
    "Target",
    "cross_check",
    "dotted_path",
    "report_cross_checks",
]

API_VERSION = "canaryflow/v1"
#: Validation-context key: a list to which the root validator appends ``(loc, message)`` pairs of
#: cross-field problems instead of raising one combined error (the loader wants each with its path).
COLLECT_CROSS_CHECKS = "collect_cross_checks"
#: With a baseline of the canary's size, the canary can have at most half of the pods.
MAX_WEIGHT_WITH_BASELINE = 50


def _collecting(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and COLLECT_CROSS_CHECKS in info.context


def _metrics_named_twice(metrics: object) -> list[tuple[Loc, str]]:
    """Each metric whose name an earlier one has, from the document root; `metrics` as validated
    or as written (dicts), in which case what is not a metric with a name is left to validation."""
    problems: list[tuple[Loc, str]] = []
    first: dict[str, int] = {}
    for index, metric in enumerate(metrics if isinstance(metrics, list | tuple) else ()):
        name = metric.get("name") if isinstance(metric, dict) else getattr(metric, "name", None)
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                (
                    ("spec", "analysis", "metrics", index, "name"),
                    f"metric name {name!r} appears more than once (first as metrics[{first[name]}])",
                )
            )
        first.setdefault(name, index)
    return problems


def _between(low: int, high: int) -> AfterValidator:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return AfterValidator(check)


#: A canary weight in percent of the ready pods.
Weight = Annotated[StrictInt, _between(1, 100), Field(json_schema_extra={"minimum": 1, "maximum": 100})]


def _raise_weight(value: int) -> int:
    if value > MAX_WEIGHT_WITH_BASELINE:
        raise ValueError(
            f"must be at most {MAX_WEIGHT_WITH_BASELINE}: a raise takes at most half the pods (a canary "
            "beyond is a promotion without a verdict)"
        )
    return value


#: The most an analysis may raise the canary's weight to (with its baseline, half the pods).
RaiseWeight = Annotated[
    StrictInt,
    AfterValidator(_raise_weight),
    _between(1, MAX_WEIGHT_WITH_BASELINE),
    Field(json_schema_extra={"minimum": 1, "maximum": MAX_WEIGHT_WITH_BASELINE}),
]


class SpecModel(BaseModel):
    """Base of every spec model: frozen, unknown keys forbidden, camelCase keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)


class Metadata(SpecModel):
    """Name of the rollout spec (a DNS label) and free-form labels."""

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    labels: dict[str, str] = Field(default_factory=dict)


class Target(SpecModel):
    """The stable Deployment, the container whose image changes, and the Service that selects it.

    The canary and baseline Deployments are named ``<deployment>-canary`` and ``<deployment>-baseline``,
    hence at most 54 characters for the name.
    """

    namespace: str = Field(pattern=DNS_LABEL, max_length=63)
    deployment: str = Field(pattern=DNS_LABEL, max_length=54)
    container: str = Field(pattern=DNS_LABEL, max_length=63)
    service: str = Field(pattern=DNS_LABEL, max_length=63)

    @property
    def app(self) -> str:
        """The ``app`` label value of the target's pods (the Deployment's name by convention)."""
        return self.deployment


class Pause(SpecModel):
    """Wait a ``duration``, or until a person approves (``approval: true``) within ``timeout``."""

    duration: Duration | None = None
    approval: bool = False
    timeout: Duration | None = Field(
        default=None,
        description="Only with approval: how long to wait (default 24h); then the failure policy.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Pause:
        if self.approval and self.duration is not None:
            raise ValueError("a pause has either a duration or approval: true, not both")
        if not self.approval and self.duration is None:
            raise ValueError("a pause needs a duration (e.g. 5m) or approval: true")
        if not self.approval and self.timeout is not None:
            raise ValueError("timeout applies to approval pauses only; use duration")
        return self

    @property
    def approval_timeout(self) -> timedelta:
        """How long an approval pause waits (24h when not given)."""
        return self.timeout or timedelta(hours=24)


class Analyze(SpecModel):
    """Query the metrics every ``interval`` and ask the judge, for at most ``maxDuration``.

    ``maxWeight`` (at most 50): while the analysis would not decide by ``maxDuration`` at the
    traffic seen, raise the canary's weight (and the baseline's) up to this, as long as the extra
    failed requests expected over the rest of the analysis, were the canary as bad as still
    plausible, stay within ``riskBudget`` (`canaryflow.exposure`)."""

    interval: Duration = timedelta(seconds=30)
    max_duration: Duration = timedelta(minutes=10)
    max_weight: RaiseWeight | None = Field(
        default=None, description="Raise the canary's weight up to this to decide in time (default: never)."
    )
    risk_budget: int = Field(
        default=100,
        ge=0,
        description="Extra failed requests a raise may risk, were the canary as bad as still plausible.",
    )


class Step(SpecModel):
    """One step: exactly one of ``setWeight``, ``pause``, ``analyze``."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    set_weight: Weight | None = None
    pause: Pause | None = None
    analyze: Analyze | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [k for k in ("setWeight", "pause", "analyze") if getattr(self, _ATTR[k]) is not None]
        if len(given) != 1:
            raise ValueError("a step has exactly one of setWeight, pause, analyze")
        return self

    @property
    def kind(self) -> Literal["setWeight", "pause", "analyze"]:
        """Which of the three this step is."""
        if self.set_weight is not None:
            return "setWeight"
        return "pause" if self.pause is not None else "analyze"


_ATTR = {"setWeight": "set_weight", "pause": "pause", "analyze": "analyze"}


class FailurePolicy(SpecModel):
    """What happens when the rollout cannot go on.

    ``onFailure``: a rollback verdict, a missed progress deadline or an approval timeout either rolls
    back at once (``rollback``) or holds the split and waits for a person (``pause``).
    ``onInconclusive``: an analyze step that reaches ``maxDuration`` without a verdict rolls back
    (``rollback``) or goes on to the next step (``continue``). The same holds for an analysis the
    judge ends early because its metrics cannot be shown within tolerance by ``maxDuration`` at
    the traffic seen (``analysis.minChance``, default 0.05); under ``continue`` the judge does
    not end early unless ``minChance`` is set, since the rest of the analysis may still catch a
    regression.
    """

    on_failure: Literal["rollback", "pause"] = "rollback"
    on_inconclusive: Literal["rollback", "continue"] = "rollback"


class KayentaSpec(KayentaSettings):
    """`analysis.settings.KayentaSettings` with camelCase keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)


class AnalysisSpec(AnalysisSettings):
    """The judge's settings (`analysis.settings.AnalysisSettings`) with query templates per metric.

    Without ``metrics`` the defaults apply: ``error-rate`` (5xx share of ``http_requests_total``) and
    ``latency`` (``http_request_duration_seconds_bucket``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)

    metrics: tuple[MetricSpec, ...] = Field(default=DEFAULT_METRICS, min_length=1)
    kayenta: KayentaSpec = KayentaSpec()

    @model_validator(mode="before")
    @classmethod
    def _names_once(cls, data: object, info: ValidationInfo) -> object:
        """For the loader: metrics named twice, read from the document as written, so that it is
        said even when other fields are invalid (`RolloutSpec` says it when validated alone)."""
        if _collecting(info) and isinstance(data, dict):
            report_cross_checks(_metrics_named_twice(data.get("metrics")), info)
        return data

    def settings_data(self) -> dict[str, Any]:
        """These settings as the judge's (`analysis.settings.AnalysisSettings` fields), query
        templates left out."""
        data = self.model_dump(exclude={"metrics"})
        keep = set(MetricSettings.model_fields)
        data["metrics"] = [metric.model_dump(include=keep) for metric in self.metrics]
        return data


class RolloutBody(SpecModel):
    """The ``spec`` section: what to roll out, how, and how to judge it."""

    target: Target
    baseline: bool = Field(default=True, description="Run a baseline of the canary's size to compare with.")
    steps: tuple[Step, ...] = Field(min_length=1)
    analysis: AnalysisSpec = AnalysisSpec()
    progress_deadline: Duration = Field(
        default=timedelta(minutes=10), description="How long pods may take to become ready after a change."
    )
    api_outage_tolerance: Duration = Field(
        default=timedelta(minutes=3),
        description=(
            "How long a step rides out a Kubernetes API server that does not answer, holding the split, "
            "before the rollout stops and rolls back (at most the progress deadline)."
        ),
    )
    failure_policy: FailurePolicy = FailurePolicy()

    @property
    def outage_tolerance(self) -> timedelta:
        """How long a step rides out an API outage: ``apiOutageTolerance``, at most the progress
        deadline (the default of 3m is cut to a shorter progressDeadline)."""
        return min(self.api_outage_tolerance, self.progress_deadline)


class RolloutSpec(SpecModel):
    """A rollout spec document (``apiVersion: canaryflow/v1``, ``kind: Rollout``)."""

    api_version: Literal["canaryflow/v1"]
    kind: Literal["Rollout"]
    metadata: Metadata
    spec: RolloutBody

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> RolloutSpec:
        problems = cross_check(self)
        if not _collecting(info):  # the loader heard of metrics named twice from `AnalysisSpec`
            problems = _metrics_named_twice(self.spec.analysis.metrics) + problems
        report_cross_checks(problems, info)
        return self

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def target(self) -> Target:
        return self.spec.target

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.spec.steps

    def analysis_settings(self, analyze: Analyze | None = None) -> AnalysisSettings:
        """The judge's settings built from this spec (query templates left out).

        With `analyze` (one of the spec's analyze steps), its ``maxDuration`` bounds the analysis.
        """
        analysis = self.spec.analysis
        data = analysis.settings_data()
        if analyze is not None and "max_duration_seconds" in AnalysisSettings.model_fields:
            data["max_duration_seconds"] = analyze.max_duration.total_seconds()
        going_on = self.spec.failure_policy.on_inconclusive == "continue"
        raising = analyze is not None and analyze.max_weight is not None
        if (going_on or raising) and "min_chance" not in analysis.model_fields_set:
            # going on anyway: let the whole analysis look for a regression; or the weight may
            # rise (the chance is computed at the traffic seen, which a raise changes)
            data["min_chance"] = 0.0
        return AnalysisSettings.model_validate(data)

    def metric(self, name: str) -> MetricSpec:
        """The metric entry called `name` (its templates: ``.templates()``). KeyError if there is none."""
        for metric in self.spec.analysis.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)


def _max_weight_problems(body: RolloutBody, most: int, weight: int) -> list[str]:
    """What is wrong with an analyze step's ``maxWeight`` of `most` where `weight` is in effect."""
    problems = []
    if most <= weight:
        problems.append(f"must be above the weight in effect here ({weight})")
    ratios = [m for m in body.analysis.metrics if m.type == "ratio"]
    if not any(m.direction == "increase" for m in ratios):
        problems.append(
            "needs a ratio metric with direction increase (an error rate): a raise's risk is counted in "
            "failed requests"
        )
    if any(m.direction != "increase" for m in ratios):
        problems.append(
            "cannot go with a ratio metric whose direction is not increase: its risk is not counted"
        )
    return problems


def report_cross_checks(problems: list[tuple[Loc, str]], info: ValidationInfo) -> None:
    """Hand cross-field `problems` to the loader (the list under `COLLECT_CROSS_CHECKS` in the
    validation context), or raise them as one error when validated without a loader."""
    sink = info.context.get(COLLECT_CROSS_CHECKS) if isinstance(info.context, dict) else None
    if isinstance(sink, list):
        sink.extend(problems)
    elif problems:
        raise ValueError("; ".join(f"{dotted_path(loc)}: {message}" for loc, message in problems))


def cross_check(spec: RolloutSpec) -> list[tuple[Loc, str]]:
    """Problems that span fields, each with its location (camelCase keys) from the document root."""
    problems: list[tuple[Loc, str]] = []
    body = spec.spec
    if "api_outage_tolerance" in body.model_fields_set and body.api_outage_tolerance > body.progress_deadline:
        problems.append(
            (
                ("spec", "apiOutageTolerance"),
                f"must be at most the progressDeadline ({format_duration(body.progress_deadline)}): a step "
                "never waits "
                "longer for the API server than for its pods",
            )
        )
    canary_seen, weight = False, 0
    for index, step in enumerate(body.steps):
        here: Loc = ("spec", "steps", index)
        if step.set_weight is not None:
            canary_seen, weight = True, step.set_weight
            if body.baseline and step.set_weight > MAX_WEIGHT_WITH_BASELINE:
                problems.append(
                    (
                        (*here, "setWeight"),
                        f"must be at most {MAX_WEIGHT_WITH_BASELINE} with a baseline (canary and baseline "
                        "have the same size); set baseline: false for higher weights",
                    )
                )
        elif step.analyze is not None:
            if not canary_seen:
                problems.append(((*here, "analyze"), "needs a canary: put a setWeight step before it"))
            if step.analyze.max_duration < step.analyze.interval:
                problems.append(((*here, "analyze", "maxDuration"), "must be at least the interval"))
            most = step.analyze.max_weight
            if most is not None:
                problems += [
                    ((*here, "analyze", "maxWeight"), why) for why in _max_weight_problems(body, most, weight)
                ]
    return problems
