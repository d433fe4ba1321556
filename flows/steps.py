"""The rollout's tasks: each one side effect on the cluster, one wait, or one look at the metrics.

Every task takes the adapter it works with (a `Cluster`, a `MetricsSource`, a `Clock`) as its first
argument, handed down from the flow's `flows.runtime.Runtime`, so a reader follows a rollout from
`flows.rollout` through these tasks into `canaryflow.cluster` and `canaryflow.metrics`.

Tasks that change the cluster never use Prefect's cache (`NO_CACHE`): running one twice must act
twice, and each is idempotent on the cluster side. Retries are for I/O only, and only for errors
that retrying can fix (`TransientError`, `ConflictError`); the delays come from the runtime
(`with_retries`), so tests do not wait.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from analysis.observations import PairedObservation, TrackObservation
from canaryflow.clock import Clock
from canaryflow.cluster.drift import drift
from canaryflow.cluster.outages import Patience
from canaryflow.cluster.port import Cluster, RolloutId, TargetRef, TargetStatus
from canaryflow.errors import ClusterOutageError, ConflictError, TransientError
from canaryflow.metrics import MetricQuery, MetricsSource, observe_interval, stable_history
from canaryflow.plan import RolloutPlan
from canaryflow.preflight import Warned, check_target
from canaryflow.replicas import Split, plan_split
from canaryflow.status import RolloutPhase

__all__ = [
    "check_before_writing",
    "hold",
    "hold_until_asked",
    "look_for_drift",
    "observe",
    "observe_stable_history",
    "promote_canary",
    "read_target",
    "roll_back_canary",
    "set_weight",
    "with_retries",
]

_T = TypeVar("_T")


def _retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry when the failure is one that a later attempt can fix (timeouts, 5xx, lost 409 races);
    not an API outage that outlasted the rollout's tolerance (the cluster rode it out already)."""
    try:
        state.result()
    except ClusterOutageError:
        return False
    except (TransientError, ConflictError):
        return True
    except Exception:
        return False
    return False


def with_retries(io_task: Task[Any, _T], delays: Sequence[float]) -> Task[Any, _T]:
    """`io_task` retried once per delay in `delays` (seconds), on errors a retry can fix."""
    return io_task.with_options(retries=len(delays), retry_delay_seconds=list(delays))


@task(name="preflight", retry_condition_fn=_retry_on_io, cache_policy=NO_CACHE)
def check_before_writing(
    cluster: Cluster, metrics: MetricsSource, clock: Clock, plan: RolloutPlan
) -> list[str]:
    """Everything the rollout needs from the cluster and the metrics, before its first write
    (`canaryflow.preflight.check_target`); raises the first problem, in one line."""
    checks = check_target(plan, cluster=cluster, metrics=metrics, now=clock.now())
    logger = get_run_logger()
    for check in checks:
        (logger.warning if isinstance(check, Warned) else logger.info)("preflight %s", check)
    return [str(check) for check in checks]


@task(name="read-target", retry_condition_fn=_retry_on_io, cache_policy=NO_CACHE)
def read_target(cluster: Cluster, target: TargetRef) -> TargetStatus:
    """Read the stable, canary and baseline Deployments and the rollout state they carry."""
    return cluster.read(target)


@task(name="look-for-drift", cache_policy=NO_CACHE)
def look_for_drift(cluster: Cluster, target: TargetRef, *, baseline: bool) -> TargetStatus | None:
    """Raise `DriftError` when somebody changed the target in a way that stops the rollout
    (`canaryflow.cluster.drift`; `baseline`: the rollout runs one); else the target as read. An API
    server that does not answer is not drift: the look is skipped and None returned (the next
    write rides the outage out)."""
    try:
        status = cluster.read(target)
    except TransientError as exc:
        get_run_logger().warning("%s: could not look for changes by others: %s", target, exc)
        return None
    changed = drift(status, baseline=baseline)
    if changed is not None:
        raise changed
    return status


@task(name="set-weight", retry_condition_fn=_retry_on_io, cache_policy=NO_CACHE)
def set_weight(
    cluster: Cluster,
    clock: Clock,
    target: TargetRef,
    weight: int,
    *,
    rollout_id: RolloutId,
    image: str,
    step: int,
    baseline: bool,
    progress_deadline: timedelta,
    outage_tolerance: timedelta,
) -> tuple[Split, TargetStatus]:
    """Resize canary, baseline and stable so that the canary gets `weight` percent of the pods,
    riding out an API outage of up to `outage_tolerance` (the split in place holds meanwhile)."""
    patience = Patience(clock, outage_tolerance, what=f"reading {target} for step {step + 1}")
    status = patience.call(lambda: cluster.read(target))
    split = plan_split(status.capacity, weight, baseline=baseline)
    status = cluster.apply_split(
        target,
        split,
        rollout_id=rollout_id,
        image=image,
        step=step,
        progress_deadline=progress_deadline,
        outage_tolerance=outage_tolerance,
    )
    get_run_logger().info(
        "%s: %s; %.1f%% of the ready pods run %s", target, split.describe(), status.effective_weight, image
    )
    return split, status


@task(name="promote", retry_condition_fn=_retry_on_io, cache_policy=NO_CACHE)
def promote_canary(
    cluster: Cluster, target: TargetRef, *, rollout_id: RolloutId, progress_deadline: timedelta
) -> TargetStatus:
    """Give the stable the canary's image at full size; remove canary and baseline."""
    return cluster.promote(target, rollout_id=rollout_id, progress_deadline=progress_deadline)


@task(name="roll-back", retry_condition_fn=_retry_on_io, cache_policy=NO_CACHE)
def roll_back_canary(
    cluster: Cluster, target: TargetRef, *, rollout_id: RolloutId, progress_deadline: timedelta
) -> TargetStatus:
    """Put the stable back on its image at full size; remove canary and baseline."""
    return cluster.rollback(target, rollout_id=rollout_id, progress_deadline=progress_deadline)


@task(name="decide", retry_condition_fn=_retry_on_io, cache_policy=NO_CACHE)
def record_decision(
    cluster: Cluster, target: TargetRef, *, rollout_id: RolloutId, phase: RolloutPhase
) -> None:
    """Record on the target that the rollout will promote or roll back, before the decision is
    reported or carried out (`Cluster.decide`): a run that dies after it is resumed into it."""
    cluster.decide(target, rollout_id=rollout_id, phase=phase)


#: How often a long wait looks whether the rollout must stop (`hold_until_asked`).
STOP_CHECK_SECONDS = 10.0


@task(name="wait", cache_policy=NO_CACHE)
def hold(clock: Clock, seconds: float, *, why: str) -> datetime:
    """Wait `seconds` on `clock` (`why` names the wait in logs); return the time after the wait."""
    clock.sleep(seconds)
    return clock.now()


@task(name="wait", cache_policy=NO_CACHE)
def hold_until_asked(clock: Clock, seconds: float, *, why: str, asked: Callable[[], bool]) -> float:
    """Wait `seconds` on `clock`, looking every `STOP_CHECK_SECONDS` whether somebody asked for
    something the flow itself must do (`asked`: a ``canaryflow pause``, which a task cannot do;
    `asked` raises to stop the rollout). Return the seconds left when asked, 0 after the whole wait."""
    left = seconds
    while left > 0:
        chunk = min(left, STOP_CHECK_SECONDS)
        clock.sleep(chunk)
        left -= chunk
        if left > 0 and asked():
            return left
    return 0.0


@task(name="observe", retry_condition_fn=_retry_on_io, cache_policy=NO_CACHE)
def observe(
    metrics: MetricsSource,
    queries: list[MetricQuery],
    *,
    namespace: str,
    app: str,
    end: datetime,
    window: timedelta,
    windows: Mapping[str, timedelta] | None = None,
) -> tuple[dict[str, PairedObservation | None], dict[str, tuple[str, ...]]]:
    """Every metric for canary and baseline over ``(end - window, end]`` (a metric in `windows`: over
    its own window), no data as ``None``; and per metric without data, the tracks that had none."""
    missing: dict[str, tuple[str, ...]] = {}
    observed = observe_interval(
        metrics,
        queries,
        namespace=namespace,
        app=app,
        end=end,
        window=window,
        missing=missing,
        windows=windows,
    )
    return observed, missing


@task(name="observe-stable-history", cache_policy=NO_CACHE)
def observe_stable_history(
    metrics: MetricsSource,
    query: MetricQuery,
    *,
    namespace: str,
    app: str,
    end: datetime,
    window: timedelta,
    intervals: int,
) -> list[TrackObservation]:
    """What the stable did for ratio or histogram metric `query` per interval before `end`. Not
    retried: without it the analysis starts at once, from the bound fixed in advance."""
    return stable_history(
        metrics, query, namespace=namespace, app=app, end=end, window=window, intervals=intervals
    )
