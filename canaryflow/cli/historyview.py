"""``canaryflow history``: every rollout that ended, and the delivery figures they add up to.

Reads ``<reports>/history.jsonl`` (`canaryflow.history`): no Prefect, no cluster, so it answers at
once. With ``--prefect`` it also reads the rollout runs the Prefect API recorded (`flows.records`):
the history of every worker, kept by Prefect's database whatever happens to this machine.
Identifiers are never cut; the reason wraps, last. ``--json`` gives scripts the records (newest
first, as the table) and the figures; a window shorter than a day has no rate a day (it would be
a guess from a few hours).
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from canaryflow.cli.output import print_uncut, target_in_cell

if TYPE_CHECKING:
    from canaryflow.history import History

__all__ = ["history"]


def _words(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = round(value.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _per_day(rate: float, days: float) -> float | None:
    """`rate` a day, or None for a window shorter than a day (a rate a day would be a guess)."""
    return rate if days >= 1 else None


def _a_day(rate: float, days: float) -> str:
    return "" if days < 1 else f" ({rate:.2f} a day)"


#: The longest `--since`: a start before year 1 is not a date.
_LONGEST = timedelta(days=36500)


def _with_prefect(found: History, target: str | None, since: datetime, where: str) -> tuple[History, str]:
    """`found` with the rollout runs the Prefect API recorded that the local history lacks (the
    same run is one record: the local one)."""
    from canaryflow.cli.output import debugging
    from canaryflow.cli.prefectapi import connect, use

    api = connect(os.environ)
    use(api, debug=debugging())
    from flows.records import prefect_history

    known = {r.flow_run_id for r in found.records if r.flow_run_id}
    more = [r for r in prefect_history(target=target, since=since) if r.flow_run_id not in known]
    merged = tuple(sorted((*found.records, *more), key=lambda r: r.finished_at))
    return dataclasses.replace(found, records=merged), f"{where} and the Prefect API at {api.url}"


def history(
    target: Annotated[
        str | None, typer.Argument(metavar="TARGET", help="One target, as namespace/deployment.")
    ] = None,
    since: Annotated[str, typer.Option(metavar="DURATION", help="How far back, e.g. 7d, 24h, 90d.")] = "30d",
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON for scripts: the records (newest first) and the figures.")
    ] = False,
    prefect: Annotated[
        bool,
        typer.Option(
            "--prefect",
            help="Also read the rollout runs the Prefect API recorded (every worker's, after any restart).",
        ),
    ] = False,
    releases: Annotated[
        bool,
        typer.Option("--releases", help="Releases across cells instead of rollouts, with their figures."),
    ] = False,
) -> None:
    """Show the rollouts that ended (who started them, how they ended, why, how long they took) and
    the delivery figures: deployments per day, lead time (in the rollout, and from the commit for
    pushes), change failure rate, time to restore and time to detect. With --releases: the
    releases across cells instead, and their figures."""
    from canaryflow.environment import reports_dir
    from canaryflow.errors import InputError, UsageError
    from canaryflow.history import HISTORY_FILE, figures, read_history
    from canaryflow.spec.durations import is_zero_duration, parse_duration

    if is_zero_duration(since):
        raise InputError(f"--since {since!r}: the window must be longer than zero, like 7d, 24h or 90m")
    try:
        window = timedelta(days=int(since[:-1])) if since[:-1].isdigit() and since.endswith("d") else None
        window = window or parse_duration(since)
    except (ValueError, OverflowError) as exc:  # an OverflowError: more days than timedelta holds
        raise InputError(f"--since {since!r}: give a duration like 7d, 24h or 90m") from exc
    if window.total_seconds() <= 0:
        raise InputError(f"--since {since!r}: give a duration like 7d, 24h or 90m")
    if window > _LONGEST:
        raise InputError(f"--since {since!r}: give at most {_LONGEST.days}d (the history of a century)")
    if releases:
        if target is not None or prefect:
            raise UsageError("--releases shows every release: give no TARGET and no --prefect")
        _releases(reports_dir(os.environ), since, window, as_json=as_json)
        return
    if target is not None and target.count("/") != 1:
        raise InputError(f"target {target!r}: give it as namespace/deployment (e.g. shop/web)")
    reports = reports_dir(os.environ)
    found = read_history(reports, target=target, since=datetime.now(UTC) - window)
    where = str(reports)
    if prefect:
        found, where = _with_prefect(found, target, datetime.now(UTC) - window, where)
    days = window.total_seconds() / 86400
    numbers = figures(found.records, days=days)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "records": [r.model_dump(mode="json") for r in reversed(found.records)],
                    "figures": {
                        "days": days,
                        "rollouts_ended": numbers.ended,
                        "promotions": numbers.promotions,
                        "deployments_per_day": _per_day(numbers.per_day, days),
                        "lead_time_seconds": None
                        if numbers.lead_time is None
                        else numbers.lead_time.total_seconds(),
                        "change_failure_rate": numbers.change_failure_rate,
                        "time_to_restore_seconds": _seconds(numbers.time_to_restore),
                        "lead_time_from_commit_seconds": _seconds(numbers.lead_time_from_commit),
                        "time_to_detect_seconds": _seconds(numbers.time_to_detect),
                    },
                    "unreadable_lines": found.unreadable,
                },
                indent=1,
            )
        )
        return
    if found.unreadable:
        typer.echo(
            f"canaryflow: warning: {found.unreadable} unreadable line(s) in {reports / HISTORY_FILE} skipped",
            err=True,
        )
    if not found.records:
        typer.echo(f"no rollout ended in the last {since} in {where} (CANARYFLOW_REPORTS_DIR)", err=True)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"rollouts that ended in the last {since} ({where})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("FINISHED", "TARGET", "ROLLOUT", "IMAGE", "RESULT", "TOOK", "BY"):
        table.add_column(name, no_wrap=True)
    table.add_column("REASON", overflow="fold", ratio=1)
    for r in reversed(found.records):
        table.add_row(
            r.finished_at.strftime("%Y-%m-%d %H:%M"),
            target_in_cell(r.target, r.cell),
            r.rollout_id,
            r.image,
            r.result,
            _words(r.duration),
            r.triggered_by,
            r.reason,
        )
    console = Console()
    print_uncut(console, table)
    rate = "-" if numbers.change_failure_rate is None else f"{100 * numbers.change_failure_rate:.0f} %"
    typer.echo(
        f"deployments: {numbers.promotions} in {since}{_a_day(numbers.per_day, days)}; "
        f"lead time in rollout (median): {_words(numbers.lead_time)}; "
        f"from commit: {_words(numbers.lead_time_from_commit)}; "
        f"change failure rate: {rate} ({numbers.failed} of {numbers.ended}); "
        f"time to restore (median): {_words(numbers.time_to_restore)}; "
        f"time to detect (median): {_words(numbers.time_to_detect)}"
    )


def _releases(reports: Path, since: str, window: timedelta, *, as_json: bool) -> None:
    """``history --releases``: the releases that ended in `window`, and their figures."""
    from canaryflow.releasehistory import RELEASE_HISTORY, read_releases, release_figures

    records, unreadable = read_releases(reports, since=datetime.now(UTC) - window)
    days = window.total_seconds() / 86400
    numbers = release_figures(records, days=days)
    if as_json:
        figures = {
            "days": days,
            "releases_ended": numbers.ended,
            "released": numbers.released,
            "releases_per_day": _per_day(numbers.per_day, days),
            "lead_time_seconds": _seconds(numbers.lead_time),
            "change_failure_rate": numbers.change_failure_rate,
            "time_to_restore_seconds": _seconds(numbers.time_to_restore),
        }
        records_json = [r.model_dump(mode="json") for r in reversed(records)]
        typer.echo(
            json.dumps(
                {"records": records_json, "figures": figures, "unreadable_lines": unreadable}, indent=1
            )
        )
        return
    if unreadable:
        typer.echo(
            f"canaryflow: warning: {unreadable} unreadable line(s) in {reports / RELEASE_HISTORY} skipped",
            err=True,
        )
    if not records:
        typer.echo(f"no release ended in the last {since} in {reports} (CANARYFLOW_REPORTS_DIR)", err=True)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"releases that ended in the last {since} ({reports})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("FINISHED", "RELEASE", "IMAGE", "OUTCOME", "TOOK", "CELLS", "BY"):
        table.add_column(name, no_wrap=True)
    table.add_column("REASON", overflow="fold", ratio=1)
    for r in reversed(records):
        promoted = sum(1 for phase in r.cells.values() if phase == "promoted")
        table.add_row(
            r.finished_at.strftime("%Y-%m-%d %H:%M"),
            r.release_id,
            r.image,
            r.outcome,
            _words(r.duration),
            f"{promoted}/{len(r.cells)} promoted",
            r.triggered_by,
            r.reason,
        )
    print_uncut(Console(), table)
    rate = "-" if numbers.change_failure_rate is None else f"{100 * numbers.change_failure_rate:.0f} %"
    typer.echo(
        f"releases: {numbers.released} in {since}{_a_day(numbers.per_day, days)}; "
        f"lead time (median): {_words(numbers.lead_time)}; "
        f"change failure rate: {rate} ({numbers.failed} of {numbers.ended}); "
        f"time to restore (median): {_words(numbers.time_to_restore)}"
    )
