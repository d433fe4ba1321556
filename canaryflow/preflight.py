"""Preflight: what a rollout needs, checked before it changes anything, each problem in one line.

    the spec exists and is valid                      SpecError (the first problem; ``spec validate``
                                                      lists all)
    the image is a valid reference                    InputError
    the cluster answers                               ClusterUnavailableError, ClusterError
    the credentials may do every verb a rollout uses  ForbiddenError (names the verbs and the fix)
    the target, its container and its Service         NotFoundError, ClusterError
    every setWeight step can be reached at the         WeightError (names the step and what is
    target's capacity (an HPA's included)             reachable)
    Prometheus answers, and every metric of the       MetricsUnavailableError, QueryError, NoDataError
    analysis has data for the stable track
    every metric name a query selects has a series    a `Warned` line (a typo in a ``bad`` query
    (Prometheus; `SeriesNames`)                       reads as no errors, not as no data)

`check_request` is the part that needs no cluster (it reads the spec file): the command line, the
webhook receiver and the rollout flow run it before anything starts. `check_target` asks the
cluster and the metrics source through their ports: the command line (``canaryflow check`` and
``canaryflow rollout``) and the rollout flow run it before the first write. Each raises the most
specific error of `canaryflow.errors`, whose message names the thing and says what to do; nothing
is created or changed. A target that is already in a rollout (a run to resume) skips the metrics
check: its stable may be scaled down, and the rollout's own analysis looks at the tracks anyway.
The stable's data is looked for over the first analysis interval, but at least the last five
minutes (`MIN_WINDOW`): the check is that the queries find the stable's series, and a shorter
window refused rollouts for a passing scrape gap (at a 30 s scrape interval a minute holds two
samples, and ``increase()`` needs both; a busy exporter that missed its scrapes for two minutes
refused the rollouts that started then). A stable not scraped at all for five minutes is refused;
one that stops being scraped later leaves the analysis without data, which never promotes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from canaryflow.cluster.port import Cluster, TargetStatus
from canaryflow.errors import MetricsError, MetricsUnavailableError, NoDataError, NotFoundError, WeightError
from canaryflow.metrics import MetricsSource
from canaryflow.metrics.port import SeriesNames
from canaryflow.plan import RolloutPlan, plan_rollout
from canaryflow.replicas import plan_split
from canaryflow.requests import RolloutRequest

__all__ = ["MIN_WINDOW", "Passed", "Warned", "check_request", "check_target", "target_checks"]


@dataclass(frozen=True, slots=True)
class Passed:
    """One check that passed, in words (``canaryflow check`` prints one line per check)."""

    what: str
    detail: str

    def __str__(self) -> str:
        return f"ok  {self.what}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Warned(Passed):
    """A check that let the rollout go on, with something a person should look at."""

    def __str__(self) -> str:
        return f"warning  {self.what}: {self.detail}"


def check_request(request: RolloutRequest) -> tuple[RolloutPlan, list[Passed]]:
    """The spec of `request` loads and is valid (the image was checked when `request` was made)."""
    plan = plan_rollout(request)
    steps = len(plan.spec.steps)
    return plan, [
        Passed("spec", f"{request.spec}: {plan.target}, {steps} step{'s' if steps != 1 else ''}"),
        Passed("image", request.image),
    ]


def check_target(
    plan: RolloutPlan, *, cluster: Cluster, metrics: MetricsSource, now: datetime
) -> list[Passed]:
    """The cluster and the metrics source are ready for `plan` (nothing is changed)."""
    return list(target_checks(plan, cluster=cluster, metrics=metrics, now=now))


def target_checks(
    plan: RolloutPlan, *, cluster: Cluster, metrics: MetricsSource, now: datetime
) -> Iterator[Passed]:
    """`check_target` one check at a time: each is yielded as it passes, so that a terminal shows
    the cluster's checks before a refusal of Prometheus (whose failure then raises)."""
    status = _checked(plan, cluster)
    yield _cluster_passed(plan, status)
    if status.state is None and status.stable.image == plan.image:
        yield Warned(
            "image",
            f"the stable of {plan.target} already runs {plan.image}: the rollout would compare it with "
            "itself, and its promotion changes nothing",
        )
    yield _weights_reachable(plan, status)
    if status.state is not None:
        yield Passed("metrics", f"not checked: {plan.target} is in rollout {status.state.rollout_id}")
        return
    window = _first_interval(plan)
    if window is None:
        yield Passed("metrics", "not checked: the spec has no analysis")
        return
    for query in plan.queries():
        try:
            metrics.observe(
                query,
                namespace=plan.target.namespace,
                app=plan.target.app,
                track="stable",
                end=now,
                window=window,
            )
        except NoDataError as exc:
            raise NoDataError(
                f"metric {query.name!r} has no data for the stable track of {plan.target} in the last "
                f"{window.total_seconds():g}s: check its query in {plan.request.spec} and that the "
                'target\'s pods are scraped with the label track="stable"',
                query=exc.query,
            ) from exc
        except MetricsUnavailableError as exc:
            raise MetricsUnavailableError(
                f"Prometheus did not answer for metric {query.name!r} ({exc.summary()}): check "
                "CANARYFLOW_PROMETHEUS_URL and that Prometheus is up",
                query=exc.query,
                retry_after=exc.retry_after,
            ) from exc
        except MetricsError as exc:
            raise type(exc)(f"metric {query.name!r}: {exc.summary()}", query=exc.query) from exc
    names = ", ".join(q.name for q in plan.queries())
    yield Passed("metrics", f"{names}: data for the stable track in the last {window.total_seconds():g}s")
    yield from _unknown_names(plan, metrics, now)


def _unknown_names(plan: RolloutPlan, metrics: MetricsSource, now: datetime) -> Iterator[Warned]:
    """A metric name in a query that the backend has no series of at all: a typo is likely, and in
    a ``bad`` query it would read as no errors, not as no data. A warning, not a refusal: an
    error counter a service creates at its first error has no series before it."""
    if not isinstance(metrics, SeriesNames):
        return
    for query in plan.queries():
        unknown = metrics.unknown_names(
            query, namespace=plan.target.namespace, app=plan.target.app, track="stable", end=now
        )
        if unknown:
            yield Warned(
                "metrics",
                f"{query.name}: Prometheus has no series named {', '.join(unknown)}: check the spelling in "
                f"{plan.request.spec}; until such a series exists, the judge counts none of its requests",
            )


def _checked(plan: RolloutPlan, cluster: Cluster) -> TargetStatus:
    """The target's status; a missing Deployment, container or Service names the spec to fix (the
    credentials may not list Deployments, so no near name is offered: kubectl can)."""
    try:
        return cluster.check(plan.target)
    except NotFoundError as exc:
        ns = plan.target.namespace
        where = f"spec.target in {plan.request.spec}"
        if plan.cell is not None:
            where += f" and the target of cell {plan.cell} in the release spec"
        raise NotFoundError(
            f"{exc.summary()}; check {where} (kubectl get deployments,services -n {ns} lists what is there)",
            target=exc.target,
        ) from exc


def _weights_reachable(plan: RolloutPlan, status: TargetStatus) -> Passed:
    """Every setWeight of the spec can be reached at the target's capacity now, so that a rollout
    is never stopped mid-way by a weight known to be out of reach before its first pod."""
    weights = []
    for index, step in enumerate(plan.spec.steps):
        if step.set_weight is None:
            continue
        try:
            plan_split(status.capacity, step.set_weight, baseline=plan.spec.spec.baseline)
        except WeightError as exc:
            raise WeightError(
                f"{plan.target}: step {index + 1} (setWeight: {step.set_weight}) of {plan.request.spec} is "
                f"out of reach: {exc.summary()}; change the step's weight or the target's capacity",
                target=str(plan.target),
            ) from exc
        weights.append(f"{step.set_weight}%")
    bounds = status.hpa_bounds
    where = f"{status.capacity} replicas" + (
        f" (an HPA's, min {bounds[0]}, max {bounds[1]}: lent to the split)" if bounds else ""
    )
    return Passed("weights", f"{', '.join(weights) or 'no setWeight'} reachable at {where}")


def _cluster_passed(plan: RolloutPlan, status: TargetStatus) -> Passed:
    stable = status.stable
    return Passed(
        "cluster",
        f"{plan.target}: {stable.ready}/{stable.replicas} ready on {stable.image}; Service "
        f"{plan.target.service} selects every track; the credentials may do all a rollout does",
    )


#: The least window the stable's data is looked for in: right after a promotion the stable's pods
#: are new series, which an ``increase()`` over one short interval does not see yet, and a scrape
#: gap of a minute or two must not refuse a rollout.
MIN_WINDOW = timedelta(minutes=5)


def _first_interval(plan: RolloutPlan) -> timedelta | None:
    """The window to look for the stable's data in: the first analysis interval, at least `MIN_WINDOW`."""
    for step in plan.spec.steps:
        if step.analyze is not None:
            return max(step.analyze.interval, MIN_WINDOW)
    return None
