"""``canaryflow undo SPEC --reason TEXT``: take back the target's last promotion, at once.

The fast way back when a promoted release turns out bad after the analysis: the stable returns to
the image it ran before the last promotion, with no canary and no analysis, and rolls out like
any Deployment update. What was undone, who asked and why are recorded on the stable
(``canaryflow/undone``). The spec names the target and its progress deadline; nothing else is
read, and nothing is written when the spec or the reason is missing, a rollout is under way on
the target or holds its lock (abort it instead), or somebody set another image since the
promotion. The undo holds the target's lock (its Lease) while it writes, so no rollout starts
meanwhile.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from canaryflow.cli.steering import ByOption, operator

if TYPE_CHECKING:
    from canaryflow.cluster.port import Cluster, Lock, LockHolder, TargetRef

__all__ = ["undo"]


def undo(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The rollout spec of the target.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on the target with who asked.")],
    by: ByOption = None,
) -> None:
    """Undo the target's last promotion: the stable goes back to the image it ran before, at once,
    with no analysis. Refused while a rollout is under way on the target or when somebody set
    another image since."""
    from canaryflow.cluster.port import TargetRef
    from canaryflow.environment import cluster_from_env
    from canaryflow.errors import RolloutInProgressError, UsageError
    from canaryflow.liveness import this_process
    from canaryflow.spec import load_spec

    if not reason.strip():
        raise UsageError("give --reason TEXT: an undo is recorded with why")
    loaded = load_spec(spec)
    t = loaded.target
    target = TargetRef(
        namespace=t.namespace, deployment=t.deployment, container=t.container, service=t.service
    )
    cluster = cluster_from_env(os.environ)
    began = datetime.now(UTC)
    identity = f"undo/{operator(by)}/{socket.gethostname()}/{os.getpid()}"
    held = False
    try:
        # Held for as long as the undo may take; a killed undo's Lease is taken over at once on
        # this host (its process is gone) and expires elsewhere.
        hold = max(timedelta(minutes=2), 2 * loaded.spec.progress_deadline)
        details = {**this_process(), "image": "undo"}
        lock = _lock(cluster, target, identity=identity, details=details, duration=hold)
        if not lock.granted and lock.holder is not None:
            raise RolloutInProgressError(
                f"{target}: {lock.holder.identity} holds its lock: abort that rollout instead of undoing",
                target=str(target),
            )
        held = True
        promotion = cluster.read(target).last_promotion
        if promotion is not None:  # without one, undo says so (and what the last undo did)
            typer.echo(
                f"{target}: undoing {promotion.rollout_id} ({promotion.image} -> {promotion.previous_image})"
            )
        status = cluster.undo(
            target,
            note=f"by {operator(by)}: {reason.strip()}",
            progress_deadline=loaded.spec.progress_deadline,
        )
    finally:
        if held:
            cluster.unlock(target, identity=identity)
        close = getattr(cluster, "close", None)
        if close is not None:
            close()
    stable = status.stable
    typer.echo(f"{target}: the stable runs {stable.image} again ({stable.ready}/{stable.replicas} ready)")
    if promotion is not None:
        _remember(
            str(target), promotion.rollout_id, promotion.image, f"by {operator(by)}: {reason.strip()}", began
        )


#: How long an undo watches a Lease whose holder's renewals look stale before it gives up.
EXPIRY_WAIT_SECONDS = 300.0


def _lock(cluster: Cluster, target: TargetRef, **request: Any) -> Lock:
    """The target's lock for the undo. A Lease whose holder's last renewal looks older than its
    duration is watched until this machine has itself seen no renewal for that long (then
    `Cluster.lock` takes it; at most `EXPIRY_WAIT_SECONDS`); a live holder refuses at once."""
    lock = cluster.lock(target, **request)
    patience = time.monotonic() + EXPIRY_WAIT_SECONDS
    said = False
    while not lock.granted and _looks_expired(lock.holder) and time.monotonic() < patience:
        if not said:
            said = True
            assert lock.holder is not None
            typer.echo(
                f"{target}: the lock of {lock.holder.identity} looks expired; "
                "making sure it is no longer renewed before taking it ...",
                err=True,
            )
        time.sleep(1.0)
        lock = cluster.lock(target, **request)
    return lock


def _looks_expired(holder: LockHolder | None) -> bool:
    return holder is not None and holder.expires_at is not None and holder.expires_at < datetime.now(UTC)


def _remember(target: str, rollout_id: str, image: str, note: str, began: datetime) -> None:
    """The undo in the history: from the promotion it undid (when the history has it) to now."""
    from canaryflow.environment import reports_dir
    from canaryflow.history import HistoryRecord, append_history, read_history

    reports = reports_dir(os.environ)
    promoted = [
        r
        for r in read_history(reports, target=target).records
        if r.rollout_id == rollout_id and r.result == "promoted"
    ]
    record = HistoryRecord(
        rollout_id=rollout_id,
        target=target,
        image=image,
        result="undone",
        reason=note,
        triggered_by="canaryflow undo",
        started_at=promoted[-1].finished_at if promoted else began,
        finished_at=datetime.now(UTC),
    )
    append_history(reports, record)
