"""``canaryflow check | rollout | retry``: check a rollout, run it, run it again after it was not
promoted (`canaryflow.cli.steering` steers it).

The order is the same everywhere: what needs no I/O first (the image reference, the spec), then
the environment (the kubeconfig, the Prometheus URL, the Prefect API), then the preflight against
the cluster and Prometheus (`canaryflow.preflight`); only then does anything start. Each refusal
is one line (`canaryflow.cli.root.main` prints it) and nothing is created.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from canaryflow.cli.output import debugging

if TYPE_CHECKING:
    from canaryflow.cli.progress import Progress
    from canaryflow.cluster.port import Cluster
    from canaryflow.metrics import MetricsSource
    from canaryflow.plan import RolloutOutcome, RolloutPlan
    from canaryflow.preflight import Passed
    from canaryflow.requests import RolloutRequest
    from flows.runtime import Runtime

__all__ = ["check", "retry", "rollout"]

SpecArgument = Annotated[Path, typer.Argument(metavar="SPEC", help="The rollout spec (YAML).")]


def _adapters(stack: ExitStack) -> tuple[Cluster, MetricsSource]:
    """The cluster and Prometheus the environment names (no I/O yet but reading the kubeconfig)."""
    from canaryflow.environment import cluster_from_env, cluster_kind, metrics_from_env

    cluster_kind(os.environ)
    metrics = metrics_from_env(os.environ)
    cluster = cluster_from_env(os.environ)
    close = getattr(cluster, "close", None)
    if close is not None:
        stack.callback(close)
    return cluster, metrics


def _say(passed: Iterable[Passed]) -> None:
    for line in passed:
        typer.echo(str(line))


def _preflight(plan: RolloutPlan, cluster: Cluster, metrics: MetricsSource) -> None:
    from canaryflow.clock import SystemClock
    from canaryflow.preflight import target_checks

    _say(target_checks(plan, cluster=cluster, metrics=metrics, now=SystemClock().now()))


def check(
    spec: SpecArgument,
    image: Annotated[str, typer.Option(metavar="IMAGE", help="The new image for the target container.")],
) -> None:
    """Check a rollout before starting it, changing nothing: the spec, the image, the cluster and
    the credentials, the target and its Service, and that Prometheus has data for every metric."""
    from canaryflow.preflight import check_request
    from canaryflow.requests import new_request

    request = new_request(spec=str(spec), image=image, triggered_by="canaryflow check")
    plan, passed = check_request(request)
    _say(passed)
    with ExitStack() as stack:
        cluster, metrics = _adapters(stack)
        _preflight(plan, cluster, metrics)
    typer.echo(f"ready: canaryflow rollout {spec} --image {image}")


def rollout(
    spec: SpecArgument,
    image: Annotated[
        str | None,
        typer.Option(
            metavar="IMAGE", help="The new image for the target container [required unless --resume]."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Resume (or finish) the rollout recorded on the spec's target.")
    ] = False,
) -> None:
    """Roll out a new image of the spec's target, step by step, judged by the analysis.

    Runs the rollout flow in this process against the Prefect API and prints its steps; exits 0
    when the canary is promoted, 6 when it is rolled back."""
    from canaryflow.cli.prefectapi import connect, use
    from canaryflow.cli.progress import Progress
    from canaryflow.environment import reports_dir
    from canaryflow.errors import UsageError
    from canaryflow.preflight import check_request
    from canaryflow.requests import new_request

    if image is None and not resume:
        raise UsageError("give --image IMAGE (or --resume to continue an interrupted rollout)")
    if image is not None and resume:
        raise UsageError("give --image or --resume, not both")
    probe = image or "registry.example.com/probe:0"
    plan, passed = check_request(new_request(spec=str(spec), image=probe, triggered_by="canaryflow rollout"))
    if not resume:  # what `check` says first: the spec's target and steps, the image
        _say(passed)
    with ExitStack() as stack:
        cluster, metrics = _adapters(stack)
        api = connect(os.environ)
        if not resume:
            _preflight(plan, cluster, metrics)
        use(api, debug=debugging())
        from flows.control import run_rollout
        from flows.runtime import Runtime

        progress = Progress()
        runtime = Runtime(
            cluster=cluster, metrics=metrics, reports_dir=reports_dir(os.environ), events=progress
        )
        with _interruptible(plan, runtime, progress, spec):
            outcome = run_rollout(spec, image, resume=resume, runtime=runtime)
    _finish(outcome)


def retry(
    rollout_id: Annotated[str, typer.Argument(metavar="ROLLOUT", help="The rollout id.")],
    reason: Annotated[str, typer.Option(help="Why; recorded with the new run.")],
    by: Annotated[
        str | None, typer.Option(metavar="WHO", help="Who asks; recorded (default: user@host of this shell).")
    ] = None,
) -> None:
    """Start a rollout again whose last run was rolled back, aborted, cancelled or crashed: the
    same spec and image, recorded as a retry with who and why.

    A rollout started by a deployment (a webhook, the Prefect UI) gets a new flow run of that
    deployment and this command returns; one started in a terminal runs here again, with the
    preflight first, and exits like ``canaryflow rollout``."""
    from canaryflow.cli.getview import checked_rollout_id
    from canaryflow.cli.prefectapi import connect, use
    from canaryflow.cli.steering import operator
    from canaryflow.errors import UsageError

    if not reason.strip():
        raise UsageError("give --reason TEXT: a retry is recorded with why")
    checked_rollout_id(rollout_id)
    api = connect(os.environ)
    use(api, debug=debugging())
    from flows.control import retry_request, start_on_deployment

    again = retry_request(rollout_id, reason.strip(), by=operator(by))
    request = again.request
    typer.echo(f"{rollout_id}: last run {again.previous_run} ended {again.ended}; retrying {request.image}")
    if again.deployment_id is not None:
        run = start_on_deployment(
            again.deployment_id,
            request,
            work_queue_name=again.work_queue_name,
            job_variables=again.job_variables,
        )
        typer.echo(
            f"{rollout_id}: started flow run {run} of its deployment (`canaryflow status {rollout_id}`)"
        )
        return
    _run_here(request)


def _run_here(request: RolloutRequest) -> None:
    """Run `request` in this process, preflight first; exit 0 when promoted, else 6."""
    from canaryflow.cli.progress import Progress
    from canaryflow.environment import reports_dir
    from canaryflow.preflight import check_request

    plan, passed = check_request(request)
    _say(passed)
    with ExitStack() as stack:
        cluster, metrics = _adapters(stack)
        _preflight(plan, cluster, metrics)
        from flows.control import run_request
        from flows.runtime import Runtime

        progress = Progress()
        runtime = Runtime(
            cluster=cluster, metrics=metrics, reports_dir=reports_dir(os.environ), events=progress
        )
        with _interruptible(plan, runtime, progress, Path(request.spec)):
            outcome = run_request(request, runtime)
    _finish(outcome)


@contextmanager
def _interruptible(plan: RolloutPlan, runtime: Runtime, progress: Progress, spec: Path) -> Iterator[None]:
    """Ctrl-C of the rollout this terminal runs. The flow rolls its canary back itself, holding the
    target's slot (its outcome is ``aborted``, `flows.rollout.INTERRUPTED`), and the command exits
    130 (`_finish`). The Ctrl-C sets `flows.stops.interrupted_here` and raises KeyboardInterrupt:
    where Prefect swallows the exception, the run's next checkpoint sees the flag. A Ctrl-C the
    flow cannot take (during its promotion or rollback, a second one, or one that stopped the run
    outside its steps) stops it where it is: said here, with how to finish it, when the cluster
    shows this rollout; otherwise (the preflight, a wait for the slot) nothing of this rollout is
    on the cluster."""
    from canaryflow.cli.interrupts import ctrl_c_stops_rollouts
    from canaryflow.cli.output import say

    try:
        with ctrl_c_stops_rollouts(
            "canaryflow: interrupted: stopping, and rolling back a canary already up (Ctrl-C again "
            f"leaves it for `canaryflow rollout {spec} --resume`)"
        ):
            yield
    except KeyboardInterrupt:
        from canaryflow.errors import CanaryflowError

        rollout_id = progress.rollout_id
        try:
            state = None if rollout_id is None else runtime.cluster.read(plan.target).state
        except CanaryflowError:
            state = None
        if state is None or state.rollout_id != rollout_id:  # the line above said what happens
            raise typer.Exit(130) from None
        say(
            f"canaryflow: interrupted: {rollout_id} was {state.phase.label} on {plan.target}; "
            f"`canaryflow rollout {spec} --resume` finishes it"
        )
        raise typer.Exit(130) from None


def _finish(outcome: RolloutOutcome) -> NoReturn:
    """Print the outcome and exit: 0 promoted, 130 interrupted (and rolled back), else 6."""
    from flows.stops import was_interrupted

    typer.echo(f"{outcome.rollout_id} {outcome.result}: {outcome.reason}")
    typer.echo(f"report: {outcome.report}")
    if was_interrupted(outcome):
        raise typer.Exit(130)
    raise typer.Exit(0 if outcome.result == "promoted" else 6)
