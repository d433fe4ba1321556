"""``canaryflow status``: where every rollout stands, from its report and from the cluster.

The reports (``status.json``, `canaryflow.reports`) say what each rollout run last did; for a
rollout that has not ended, the cluster's annotations on its canary (`canaryflow.cluster`) say
what is really there, so a run that died shows as such. Prefect is never imported, and the cluster
client only when a rollout is under way and a cluster is configured, so the command answers at
once. Identifiers (rollout, target, image) are never cut; the reason wraps, last. ``--json`` gives
scripts the same facts (`canaryflow.status.RolloutStatus`, plus ``"cluster"``). A report that
cannot be read (a truncated ``status.json``) is named in a ``canaryflow: warning:`` line on
standard error and the others are shown; ``status ROLLOUT`` of that rollout fails with its error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from canaryflow.cli.output import print_uncut, say, target_in_cell
from canaryflow.errors import CanaryflowError

if TYPE_CHECKING:
    from canaryflow.status import RolloutStatus

__all__ = ["cluster_view", "render_status", "status"]


def status(
    rollout_id: Annotated[
        str | None, typer.Argument(metavar="ROLLOUT", help="One rollout, with its evidence.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts (a list of rollouts).")] = False,
    cluster: Annotated[
        bool, typer.Option("--cluster/--no-cluster", help="Also read rollouts under way from the cluster.")
    ] = True,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON schema of a rollout's status.")
    ] = False,
) -> None:
    """Show rollouts: phase, step, weights, the latest verdict and its evidence."""
    from canaryflow.environment import reports_dir

    if schema:
        from canaryflow.status import status_schema

        typer.echo(json.dumps(status_schema(), indent=2))
        return
    reports = reports_dir(os.environ)
    unreadable = 0
    if rollout_id:
        statuses = _one(reports, rollout_id)
    else:
        statuses, unreadable = _every(reports)
    live = cluster_view(statuses, os.environ) if cluster else {}
    if as_json:
        rows = [{**s.model_dump(mode="json"), "cluster": live.get(s.rollout_id)} for s in statuses]
        typer.echo(json.dumps(rows, indent=1))
        return
    if not statuses:
        if not unreadable:
            say(f"no rollouts reported in {reports} (CANARYFLOW_REPORTS_DIR)")
        return
    from rich.console import Console

    render_status(statuses, live, Console(), title=f"rollouts ({reports})", evidence=bool(rollout_id))


def _one(reports: Path, rollout_id: str) -> list[RolloutStatus]:
    """The status of `rollout_id`: an id that cannot be one, no report, or a report that cannot be
    read is an error naming it."""
    from canaryflow.cli.getview import checked_rollout_id, missing_rollout
    from canaryflow.reports import STATUS_FILE, read_status

    path = reports / checked_rollout_id(rollout_id) / STATUS_FILE
    if not path.is_file():
        raise missing_rollout(rollout_id, reports)
    return [read_status(path)]


def _every(reports: Path) -> tuple[list[RolloutStatus], int]:
    """The status of every rollout that can be read, and how many reports cannot: each of those is
    named in a warning (one unreadable report never hides the others)."""
    from canaryflow.reports import scan_statuses

    scanned = scan_statuses(reports)
    for problem in scanned.unreadable:
        say(f"canaryflow: warning: {problem.summary()}")
    return list(scanned.found), len(scanned.unreadable)


def cluster_view(statuses: list[RolloutStatus], env: Mapping[str, str]) -> dict[str, str]:
    """Per rollout that has not ended: what its target's canary says in the cluster, in words.
    Empty when none is under way or no cluster is configured; a cluster that cannot be read is
    said in the words, never raised. A release cell's rollout is left to its report: its cluster
    is the cell's, not necessarily the one this shell reaches."""
    open_ = [s for s in statuses if not s.phase.final and s.container and not s.cell]
    if not open_ or not _cluster_configured(env):
        return {}
    from canaryflow.cluster.port import TargetRef
    from canaryflow.environment import cluster_from_env

    try:
        cluster = cluster_from_env(env)
    except CanaryflowError as exc:
        return {s.rollout_id: f"cannot read the cluster: {exc.summary()}" for s in open_}
    seen: dict[str, str] = {}
    try:
        for s in open_:
            namespace, deployment = s.target.split("/", 1)
            ref = TargetRef(namespace, deployment, s.container or deployment, s.service or deployment)
            try:
                state = cluster.read(ref).state
            except CanaryflowError as exc:
                seen[s.rollout_id] = f"cannot read {s.target}: {exc.summary()}"
                continue
            seen[s.rollout_id] = _describe_state(s, state)
    finally:
        close = getattr(cluster, "close", None)
        if close is not None:
            close()
    return seen


def _cluster_configured(env: Mapping[str, str]) -> bool:
    """Whether a cluster is meant to be read: in a pod, a KUBECONFIG given (a missing one is then
    said in the rows), or the default kubeconfig there."""
    if env.get("CANARYFLOW_IN_CLUSTER", "").lower() == "true" or env.get("KUBECONFIG"):
        return True
    return (Path.home() / ".kube" / "config").is_file()


def _describe_state(status: RolloutStatus, state: Any) -> str:
    if state is None:
        return "no rollout on the target: the run ended without its report (it was killed?)"
    if state.rollout_id != status.rollout_id:
        return f"the target is in another rollout: {state.rollout_id}"
    return f"{state.phase.label} at step {state.step + 1}, weight {state.weight}%"


def render_status(
    statuses: list[RolloutStatus], live: Mapping[str, str], console: Any, *, title: str, evidence: bool
) -> None:
    """The table of rollouts (and with `evidence`, the latest verdict's metrics of the first)."""
    from rich import box
    from rich.table import Table

    from canaryflow.status import RolloutPhase

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("ROLLOUT", "TARGET", "IMAGE"):
        width = max([len(name)] + [len(_column(s, name)) for s in statuses])
        table.add_column(name, no_wrap=True, min_width=width)
    for name in ("PHASE", "STEP", "WEIGHT"):
        table.add_column(name, no_wrap=True)
    table.add_column("REASON", overflow="fold", ratio=1)
    for s in statuses:
        verdict = s.verdict
        reason = s.reason or (f"{verdict.decision}: {verdict.reason}" if verdict else "")
        if s.phase == RolloutPhase.PAUSED and s.next:  # held by a person: why, and how it goes on
            reason = s.next
        if s.undone:
            reason = f"undone {s.undone}"
        if s.rollout_id in live:
            reason = f"cluster: {live[s.rollout_id]}. {reason}".strip()
        table.add_row(
            s.rollout_id,
            target_in_cell(s.target, s.cell),
            s.image,
            s.phase.label + (", undone" if s.undone else ""),
            f"{s.step or '-'}/{s.steps}",
            f"{s.effective_weight:.1f}% (requested {s.weight}%)",
            reason,
        )
    print_uncut(console, table)
    if evidence and statuses:
        _evidence(statuses[0], console)


def _column(status: RolloutStatus, name: str) -> str:
    target = target_in_cell(status.target, status.cell)
    return {"ROLLOUT": status.rollout_id, "TARGET": target, "IMAGE": status.image}[name]


def _evidence(status: RolloutStatus, console: Any) -> None:
    from rich import box
    from rich.table import Table

    verdict = status.verdict
    if verdict is None or not verdict.metrics:
        return
    table = Table(
        title=f"evidence after interval {verdict.interval}", title_justify="left", box=box.SIMPLE_HEAD
    )
    for column in ("METRIC", "STATUS", "ESTIMATE", "INTERVAL", "E-VALUE"):
        table.add_column(column, no_wrap=True)
    table.add_column("REASON", overflow="fold", ratio=1)
    for name, m in verdict.metrics.items():
        low, high = m.interval
        table.add_row(
            name, m.status, _num(m.estimate), f"[{_num(low)}, {_num(high)}]", _num(m.evalue), m.reason
        )
    print_uncut(console, table)
    if status.observations:
        console.print(f"observation log: {status.observations}", soft_wrap=True)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
