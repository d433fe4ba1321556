"""Undo a target's last promotion: the stable back to the image it ran before, at once, under its lock.

The fast way back when a promoted release turns out bad after the analysis, used by ``canaryflow
undo`` and by the ``undo`` flow a release runs in each cell it takes back (`flows.undo`). The
stable returns to the image it ran before the last promotion, with no canary and no analysis,
and rolls out like any Deployment update; what was undone, who asked and why are recorded on the
stable (``canaryflow/undone``) and in the history. The undo holds the target's lock (its Lease)
while it writes, so no rollout starts meanwhile; nothing is written while a rollout holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from canaryflow.clock import Clock, SystemClock
from canaryflow.cluster.port import Cluster, LastPromotion, Lock, LockHolder, TargetRef, TargetStatus
from canaryflow.errors import ReportError, RolloutInProgressError
from canaryflow.history import HistoryRecord, append_history, read_history
from canaryflow.reports import STATUS_FILE, read_status, write_status

__all__ = ["EXPIRY_WAIT_SECONDS", "Undone", "undo_target"]

#: How long an undo watches a Lease whose holder's renewals look stale before it gives up.
EXPIRY_WAIT_SECONDS = 300.0


@dataclass(frozen=True)
class Undone:
    """What an undo did: the promotion it took back (None: there was none) and the target after."""

    promotion: LastPromotion | None
    status: TargetStatus


def undo_target(
    cluster: Cluster,
    target: TargetRef,
    *,
    progress_deadline: timedelta,
    note: str,
    identity: str,
    details: dict[str, Any],
    reports_dir: Path,
    triggered_by: str,
    say: Callable[[str], None] = lambda _line: None,
    warn: Callable[[str], None] | None = None,
    clock: Clock | None = None,
    only: str | None = None,
    cell: str | None = None,
) -> Undone:
    """Undo `target`'s last promotion under its lock, held as `identity` (with `details`); `note`
    (who and why) is recorded on the stable and in the history under `reports_dir`. `say` hears
    what happens, one line at a time, and `warn` (default: `say`) why it waits; `clock` (default:
    the system's) is the time the Lease's expiry is read against. With `only` (a rollout id), the
    promotion is undone only if it is that rollout's: a target somebody promoted since (or that
    is undone already) is left as it is, and `Undone.promotion` is None. `cell`: the release cell
    whose target it is (recorded; else taken from the promotion's record in the history, if any).

    Raises
    ------
    RolloutInProgressError
        A rollout holds the target's lock: abort it instead; nothing was written.
    """
    clock = clock or SystemClock()
    began = clock.now()
    held = False
    try:
        # Held for as long as the undo may take; a killed undo's Lease is taken over at once on
        # this host (its process is gone) and expires elsewhere.
        hold = max(timedelta(minutes=2), 2 * progress_deadline)
        lock = _lock(cluster, target, clock, warn or say, identity=identity, details=details, duration=hold)
        if not lock.granted and lock.holder is not None:
            raise RolloutInProgressError(
                f"{target}: {lock.holder.identity} holds its lock: abort that rollout instead of undoing",
                target=str(target),
            )
        held = True
        read = cluster.read(target)
        promotion = read.last_promotion
        if only is not None and (promotion is None or promotion.rollout_id != only):
            last = "no promotion" if promotion is None else f"the promotion of {promotion.rollout_id}"
            say(f"{target}: {only} is not its last promotion ({last}): nothing undone")
            return Undone(None, read)
        if promotion is not None:  # without one, undo says so (and what the last undo did)
            say(f"{target}: undoing {promotion.rollout_id} ({promotion.image} -> {promotion.previous_image})")
        status = cluster.undo(target, note=note, progress_deadline=progress_deadline)
    finally:
        if held:
            cluster.unlock(target, identity=identity)
    stable = status.stable
    say(f"{target}: the stable runs {stable.image} again ({stable.ready}/{stable.replicas} ready)")
    if promotion is not None:
        _remember(reports_dir, str(target), promotion, note, began, clock.now(), triggered_by, cell)
    return Undone(promotion, status)


def _lock(
    cluster: Cluster, target: TargetRef, clock: Clock, say: Callable[[str], None], **request: Any
) -> Lock:
    """The target's lock for the undo. A Lease whose holder's last renewal looks older than its
    duration is watched until this machine has itself seen no renewal for that long (then
    `Cluster.lock` takes it; at most `EXPIRY_WAIT_SECONDS`); a live holder refuses at once."""
    lock = cluster.lock(target, **request)
    patience = clock.monotonic() + EXPIRY_WAIT_SECONDS
    said = False
    while not lock.granted and _looks_expired(lock.holder, clock.now()) and clock.monotonic() < patience:
        if not said:
            said = True
            assert lock.holder is not None
            say(
                f"{target}: the lock of {lock.holder.identity} looks expired; "
                "making sure it is no longer renewed before taking it ..."
            )
        clock.sleep(1.0)
        lock = cluster.lock(target, **request)
    return lock


def _looks_expired(holder: LockHolder | None, now: datetime) -> bool:
    return holder is not None and holder.expires_at is not None and holder.expires_at < now


def _remember(
    reports: Path,
    target: str,
    promotion: LastPromotion,
    note: str,
    began: datetime,
    now: datetime,
    triggered_by: str,
    cell: str | None,
) -> None:
    """The undo in the history: from the promotion it undid (when the history has it) to now."""
    promoted = [
        r
        for r in read_history(reports, target=target).records
        if r.rollout_id == promotion.rollout_id and r.result == "promoted"
    ]
    record = HistoryRecord(
        rollout_id=promotion.rollout_id,
        target=target,
        image=promotion.image,
        result="undone",
        cell=cell or (promoted[-1].cell if promoted else None),
        reason=note,
        triggered_by=triggered_by,
        started_at=promoted[-1].finished_at if promoted else began,
        finished_at=now,
    )
    append_history(reports, record)
    _mark_undone(reports / promotion.rollout_id / STATUS_FILE, f"{note} ({now:%Y-%m-%d %H:%M} UTC)", now)


def _mark_undone(path: Path, undone: str, now: datetime) -> None:
    """The promoted rollout's report says its promotion was undone (``status`` and ``get`` show it,
    ``get --watch`` exits 6); best effort: a report that is missing or unreadable is left as it is."""
    try:
        status = read_status(path) if path.is_file() else None
    except ReportError:
        return
    if status is not None and status.result == "promoted":
        write_status(path.parent, status.model_copy(update={"undone": undone, "updated_at": now}))
