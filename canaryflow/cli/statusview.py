"""`canaryflow status`: what the rollouts' reports say, as a table (rich), with the evidence of one.

Reads ``status.json`` files only (`canaryflow.reports`); it imports neither Prefect nor the cluster
client, so it answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canaryflow.errors import NotFoundError
from canaryflow.reports import read_statuses
from canaryflow.status import RolloutStatus

__all__ = ["render_status"]


def render_status(reports_dir: Path, rollout_id: str | None, console: Any) -> int:
    """Print the rollouts found in `reports_dir` (or one); return how many were shown."""
    from rich.table import Table

    statuses = read_statuses(reports_dir, rollout_id)
    if rollout_id and not statuses:
        raise NotFoundError(f"no report of rollout {rollout_id!r} in {reports_dir}")
    table = Table(title=f"rollouts ({reports_dir})")
    for column in ("rollout", "target", "image", "step", "phase", "weight", "verdict"):
        table.add_column(column)
    for s in statuses:
        verdict = s.verdict
        table.add_row(
            s.rollout_id,
            s.target,
            s.image,
            f"{s.step or '-'}/{s.steps}",
            s.phase.label,
            f"{s.effective_weight:.1f}% (requested {s.weight}%)",
            f"{verdict.decision}: {verdict.reason}" if verdict else "-",
        )
    console.print(table)
    if rollout_id:
        _evidence(statuses[0], console)
    return len(statuses)


def _evidence(status: RolloutStatus, console: Any) -> None:
    from rich.table import Table

    verdict = status.verdict
    if verdict is None or not verdict.metrics:
        return
    table = Table(title=f"evidence after interval {verdict.interval}")
    for column in ("metric", "status", "estimate", "interval", "e-value", "reason"):
        table.add_column(column)
    for name, m in verdict.metrics.items():
        low, high = m.interval
        table.add_row(
            name, m.status, _num(m.estimate), f"[{_num(low)}, {_num(high)}]", _num(m.evalue), m.reason
        )
    console.print(table)
    if status.reason:
        console.print(f"{status.result}: {status.reason}")
    if status.observations:
        console.print(f"observation log: {status.observations}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
