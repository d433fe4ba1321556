"""What the ``canaryflow`` commands ``rollout``, ``status``, ``promote`` and ``abort`` do.

The CLI stays thin and imports this module inside its commands. `run_rollout` runs the flow in this
process (against ``PREFECT_API_URL`` when set, else Prefect's ephemeral API) on the runtime from the
environment; ``--resume`` takes the rollout id and image from the annotations in the cluster.
`render_status` prints what the rollout's reports say (the same facts as its artifacts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from canaryflow.errors import NotFoundError, PermanentError
from canaryflow.requests import RolloutRequest
from flows.approval import answer_paused_rollout
from flows.plan import RolloutOutcome, plan_rollout
from flows.reporting import read_statuses
from flows.rollout import rollout
from flows.runtime import current_runtime

__all__ = ["answer", "render_status", "resume_request", "run_rollout"]


def resume_request(spec: Path) -> RolloutRequest:
    """The request that resumes the rollout recorded on the spec's target (NotFoundError if none)."""
    probe = plan_rollout(RolloutRequest(spec=str(spec), image="registry.example.com/probe:0"))
    state = current_runtime().cluster.read(probe.target).state
    if state is None:
        raise NotFoundError(f"no rollout to resume on {probe.target}: it carries no canaryflow annotations")
    return RolloutRequest(
        spec=str(spec), image=state.canary_image, rollout_id=state.rollout_id, triggered_by="resume"
    )


def run_rollout(spec: Path, image: str | None, *, resume: bool) -> RolloutOutcome:
    """Run the rollout flow here; return its outcome (a superseded run raises RolloutAborted)."""
    if resume:
        request = resume_request(spec)
    elif image is None:
        raise PermanentError("give --image IMAGE (or --resume to continue an interrupted rollout)")
    else:
        request = RolloutRequest(spec=str(spec), image=image, triggered_by="canaryflow rollout")
    state = rollout(request, return_state=True)
    if state.is_cancelled():
        from canaryflow.errors import RolloutAborted

        raise RolloutAborted(state.message or "cancelled")
    result = state.result()
    if not isinstance(result, RolloutOutcome):
        raise TypeError(f"the rollout flow returned {result!r}")
    return result


def answer(rollout_id: str, decision: Literal["approve", "reject"], reason: str) -> str:
    """Approve or reject the paused rollout; return its flow run id."""
    return str(answer_paused_rollout(rollout_id, decision, reason))


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
        verdict = s.get("verdict") or {}
        table.add_row(
            s["rollout_id"],
            s["target"],
            s["image"],
            f"{s.get('step') or '-'}/{s['steps']}",
            s.get("phase", ""),
            f"{s.get('effective_weight', 0)}% (requested {s.get('weight', 0)}%)",
            f"{verdict.get('decision', '-')}: {verdict.get('reason', '')}" if verdict else "-",
        )
    console.print(table)
    if rollout_id:
        _evidence(statuses[0], console)
    return len(statuses)


def _evidence(status: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    verdict = status.get("verdict") or {}
    metrics = verdict.get("metrics") or {}
    if not metrics:
        return
    table = Table(title=f"evidence after interval {verdict.get('interval')}")
    for column in ("metric", "status", "estimate", "interval", "e-value", "reason"):
        table.add_column(column)
    for name, m in metrics.items():
        low, high = m.get("interval") or [None, None]
        table.add_row(
            name,
            m["status"],
            _num(m.get("estimate")),
            f"[{_num(low)}, {_num(high)}]",
            _num(m.get("evalue")),
            m["reason"],
        )
    console.print(table)
    if status.get("reason"):
        console.print(f"{status.get('result')}: {status['reason']}")
    if status.get("observations"):
        console.print(f"observation log: {status['observations']}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
