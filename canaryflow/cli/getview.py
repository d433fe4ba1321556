"""``canaryflow get ROLLOUT [--watch]``: one rollout in detail, live, in the spirit of
``kubectl argo rollouts get rollout --watch``.

What the rollout's report says (``status.json``, `canaryflow.reports`): its steps with the current
one marked (from its spec, when the spec is readable here), the requested and effective weight,
the pods per track, what comes next and when, the judge's latest evidence per metric with its
evidence plan, and how it ended. Nothing is ever cut: long ids and images
wrap as the terminal wraps them. ``--watch`` follows the report until the rollout ends: on a
terminal the view is redrawn in place, elsewhere (a pipe, a CI log) one line per change is
printed; it exits 0 when the rollout was promoted (and not undone since) and 6 when it was not,
like ``canaryflow rollout``. It may start before the rollout does, and waits for its report ``--wait-for`` (10
minutes by default): a rollout that never reports (a wrong id) ends in one error line, exit 1, as
an unknown id does without ``--watch``. An id that cannot be a rollout's is refused before any
file is read. Prefect is never imported and the cluster never read, so it starts at once.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from canaryflow.errors import InputError
    from canaryflow.status import RolloutStatus, VerdictReport

__all__ = ["WAIT_FOR", "checked_rollout_id", "get", "missing_rollout", "render_rollout"]

#: How often ``--watch`` looks at the report.
POLL_SECONDS = 0.5
#: How long ``--watch`` waits for a report that is not there yet (``--wait-for``).
WAIT_FOR = "10m"
#: Where a person finds the ids of the rollouts.
_LISTED = "`canaryflow status` lists the rollouts"


def get(
    rollout_id: Annotated[
        str, typer.Argument(metavar="ROLLOUT", help="The rollout id, or `release` and a release's id.")
    ],
    release_id: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="After `release`: the release id.", show_default=False),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option("--watch", "-w", help="Follow it until it ends; exit 0 if promoted (released), else 6."),
    ] = False,
    wait_for: Annotated[
        str | None,
        typer.Option(
            "--wait-for",
            metavar="DURATION",
            help=f"With --watch: how long to wait for a report that is not there yet, e.g. 30s, 10m, 1h "
            f"(default {WAIT_FOR}); then exit 1.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show one rollout: its steps, weights, the judge's latest evidence, and how it ended; or
    with `get release ID`, one release: its waves and each cell's phase."""
    from canaryflow.environment import reports_dir
    from canaryflow.errors import UsageError
    from canaryflow.reports import STATUS_FILE

    if wait_for is not None and not watch:
        raise UsageError("--wait-for is how long --watch waits for the report: give --watch too")
    waiting = _wait_for(wait_for or WAIT_FOR)
    if rollout_id == "release":
        if release_id is None:
            raise UsageError("give the release's id: canaryflow get release ID")
        from canaryflow.cli.releaseview import get_release

        get_release(release_id, watch=watch, terminal=sys.stdout.isatty(), wait_for=waiting)
        return
    if release_id is not None:
        raise UsageError(f"one rollout id, or `release` and a release id (got {rollout_id!r} {release_id!r})")

    reports = reports_dir(os.environ)
    path = reports / checked_rollout_id(rollout_id) / STATUS_FILE
    if not watch:
        if not path.is_file():
            raise missing_rollout(rollout_id, reports)
        typer.echo("\n".join(render_rollout(_read(path))))
        return
    final = _follow(path, rollout_id, terminal=sys.stdout.isatty(), wait_for=waiting)
    raise typer.Exit(0 if final.result == "promoted" and not final.undone else 6)


def checked_rollout_id(rollout_id: str) -> str:
    """`rollout_id` when it can be a rollout's id, else `InputError` naming it (before any file is
    read: the id names a directory under the reports)."""
    from canaryflow.errors import InputError
    from canaryflow.reports import is_report_id

    if not is_report_id(rollout_id):
        raise InputError(
            f"{rollout_id!r} is not a rollout id (lowercase letters, digits and '-', at most 63, "
            f"like web-c455c59c): {_LISTED}"
        )
    return rollout_id


def missing_rollout(rollout_id: str, reports: Path, *, waited: timedelta | None = None) -> InputError:
    """The error for a rollout without a report in `reports` (after `waited`, for ``--watch``)."""
    from canaryflow.errors import InputError
    from canaryflow.spec.durations import format_duration

    if waited is None:
        from canaryflow.releasereport import release_report

        if release_report(reports, rollout_id).is_file():
            return InputError(
                f"{rollout_id!r} is a release's id, not a rollout's: canaryflow get release {rollout_id}"
            )
        return InputError(
            f"no report of rollout {rollout_id!r} in {reports} (CANARYFLOW_REPORTS_DIR): "
            f"check the id ({_LISTED})"
        )
    return InputError(
        f"no report of rollout {rollout_id!r} in {reports} (CANARYFLOW_REPORTS_DIR) after waiting "
        f"{format_duration(waited)}: check the id ({_LISTED}), or wait longer with --wait-for"
    )


def _wait_for(text: str) -> timedelta:
    from canaryflow.errors import InputError
    from canaryflow.spec.durations import is_zero_duration, parse_duration

    if is_zero_duration(text):
        raise InputError(f"--wait-for {text!r}: the wait must be longer than zero, like 30s, 5m or 1h")
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"--wait-for {text!r}: give a duration like 30s, 5m or 1h") from exc


def _read(path: Path) -> RolloutStatus:
    from canaryflow.reports import read_status

    return read_status(path)


def _follow(path: Path, rollout_id: str, *, terminal: bool, wait_for: timedelta) -> RolloutStatus:
    """Print the rollout as its report changes until it ends; its last status."""
    from canaryflow.cli.output import follow_report

    return follow_report(
        path,
        _read,
        what=f"rollout {rollout_id}",
        stamp=lambda status: status.updated_at,
        render=render_rollout,
        line=_line,
        final=lambda status: status.phase.final,
        terminal=terminal,
        poll_seconds=POLL_SECONDS,
        wait_for=wait_for,
        missing=lambda: missing_rollout(rollout_id, path.parent.parent, waited=wait_for),
    )


def _line(status: RolloutStatus) -> str:
    """One line per change, for logs: time, phase, step, weights, and what the judge said at which
    interval (a line per interval of an analysis would otherwise repeat itself)."""
    when = status.updated_at.strftime("%H:%M:%S") if status.updated_at else "--:--:--"
    step = f"step {status.step or '-'}/{status.steps}"
    weight = f"weight {status.weight}% ({status.effective_weight:.1f}% effective)"
    verdict = status.verdict
    said = status.reason or (
        f"interval {verdict.interval}: {verdict.decision}: {verdict.reason}" if verdict else ""
    )
    return f"{when} {status.rollout_id} {status.phase.label}, {step}, {weight}" + (
        f": {said}" if said else ""
    )


def render_rollout(status: RolloutStatus) -> list[str]:
    """The detail view of one rollout, as lines (long values are never cut)."""
    lines = [
        f"Rollout:   {status.rollout_id}",
        f"Target:    {status.target}" + (f" (container {status.container})" if status.container else ""),
        *([f"Cell:      {status.cell} (a release's)"] if status.cell else []),
        f"Image:     {status.image}",
        f"Trigger:   {status.triggered_by}",
        f"Phase:     {status.phase.label}"
        + (f" ({status.result})" if status.result and status.result != status.phase.value else "")
        + (", then undone" if status.undone else ""),
        f"Weight:    {status.weight}% requested, {status.effective_weight:.1f}% of the ready pods",
    ]
    if status.pods:
        order = [t for t in ("stable", "canary", "baseline") if t in status.pods]
        pods = ", ".join(f"{t} {status.pods[t].ready}/{status.pods[t].replicas} ready" for t in order)
        lines.append(f"Pods:      {pods}")
    lines += ["Steps:", *_steps(status)]
    if status.next and status.result is None:
        lines.append(f"Next:      {status.next}")
    verdict = status.verdict
    if verdict is not None:
        lines.append(f"Judge:     after interval {verdict.interval}: {verdict.decision}: {verdict.reason}")
        width = max((len(name) for name in verdict.metrics), default=0)
        for name, metric in verdict.metrics.items():
            lines.append(f"  {name:<{width}}  {metric.status:<12} {metric.reason}")
        plan = _plan_line(verdict)
        if plan:
            lines.append(f"Plan:      {plan}")
    if status.reason:
        lines.append(f"Result:    {status.result or status.phase.label}: {status.reason}")
    if status.undone:
        lines.append(f"Undone:    {status.undone}")
    if status.observations:
        lines.append(f"Log:       {status.observations} (canaryflow replay)")
    return lines


def _plan_line(verdict: VerdictReport) -> str | None:
    """The evidence plan of the undecided metric that needs the most (it decides when the analysis
    can promote), in the judge's words (`analysis.outlook.EvidencePlan.sentence`)."""
    plans = {name: m.plan for name, m in verdict.metrics.items() if m.plan is not None}
    if not plans:
        return None
    name, longest = max(
        plans.items(),
        key=lambda item: float("inf") if item[1].needed_intervals is None else item[1].needed_intervals,
    )
    from analysis.outlook import EvidencePlan

    plan = EvidencePlan(longest.needed_intervals, longest.final_interval, longest.chance)
    return f"{name}: {plan.sentence()}"


def _steps(status: RolloutStatus) -> list[str]:
    """Each step of the spec, the current one marked ``>``, the done ones ``+``; without a
    readable spec, the current step's name only."""
    from canaryflow.errors import CanaryflowError
    from canaryflow.plan import plan_rollout
    from canaryflow.requests import RolloutRequest

    try:
        plan = plan_rollout(
            RolloutRequest(spec=status.spec, image=status.image, rollout_id=status.rollout_id)
        )
    except (CanaryflowError, ValueError):
        current = status.step_name or "not started"
        return [f"  > {current} (the spec {status.spec} is not readable here)"]
    marks = []
    for index in range(len(plan.spec.steps)):
        number = index + 1
        if status.step is None or number > status.step:
            mark = " "
        elif number < status.step or (status.phase.final and status.result == "promoted"):
            mark = "+"
        else:
            mark = "x" if status.phase.final else ">"
        marks.append(f"  {mark} {plan.describe_step(index)}")
    return marks
