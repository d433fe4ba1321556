"""The history that lives in the Prefect API: each rollout run's labels say what it rolled out and
how it ended, so ``canaryflow history --prefect`` sees every rollout of every worker, after any
restart, without the reports directory of the machine that ran it.

A rollout run labels itself once, when it ends (`STARTED_LABELS`: target, image, who started it,
the commit's time; `ENDED_LABELS`: result, reason, when a rollback was decided), in one write
(the server merges labels); a run cancelled in Prefect is labelled by its cancellation hook.
`prefect_history` turns the labelled runs that ended into `canaryflow.history.HistoryRecord`,
with the run's own start and end times. Labelling is best effort: a label that cannot be written
costs that run its line in this history, never the rollout.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, get_args
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterEndTime,
)
from prefect.client.schemas.sorting import FlowRunSort
from prefect.runtime import flow_run

from canaryflow.history import HistoryRecord, HistoryResult

__all__ = ["ended_labels", "label_run", "prefect_history", "started_labels"]

TARGET, IMAGE, BY, COMMITTED, RESULT, REASON, DETECTED = (
    "canaryflow.target",
    "canaryflow.image",
    "canaryflow.triggered-by",
    "canaryflow.committed-at",
    "canaryflow.result",
    "canaryflow.reason",
    "canaryflow.detected-at",
)
STARTED_LABELS = (TARGET, IMAGE, BY, COMMITTED)
ENDED_LABELS = (RESULT, REASON, DETECTED)
_PAGE = 200
_MAX_REASON = 1000


def label_run(labels: dict[str, str], run_id: str | UUID | None = None) -> None:
    """Add `labels` to the flow run `run_id` (default: the current one), best effort."""
    found = run_id or flow_run.get_id()
    if not found:
        return
    with contextlib.suppress(Exception), get_client(sync_client=True) as client:
        client.update_flow_run_labels(UUID(str(found)), dict(labels))


def started_labels(
    target: str, image: str, triggered_by: str, committed_at: datetime | None = None
) -> dict[str, str]:
    """The labels of a run that starts rolling out `image` (of a commit made at `committed_at`)
    to `target`."""
    labels = {TARGET: target, IMAGE: image, BY: triggered_by}
    if committed_at is not None:
        labels[COMMITTED] = committed_at.isoformat()
    return labels


def ended_labels(result: str, reason: str, detected_at: datetime | None = None) -> dict[str, str]:
    """The labels of a run that ended with `result` because of `reason` (a rollback decided at
    `detected_at`)."""
    labels = {RESULT: result, REASON: reason[:_MAX_REASON]}
    if detected_at is not None:
        labels[DETECTED] = detected_at.isoformat()
    return labels


def _when(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _cell(parameters: object) -> str | None:
    """The release cell named in a rollout run's parameters (``request.cell.name``), if any."""
    request = parameters.get("request") if isinstance(parameters, dict) else None
    cell = request.get("cell") if isinstance(request, dict) else None
    name = cell.get("name") if isinstance(cell, dict) else None
    return name if isinstance(name, str) and name else None


def _record(run: Any) -> HistoryRecord | None:
    labels = dict(run.labels or {})
    result = labels.get(RESULT)
    if result not in get_args(HistoryResult) or labels.get(TARGET) is None:
        return None  # not ended by the rollout itself (crashed, refused) or not a labelled run
    started = run.start_time or run.expected_start_time or run.created
    finished = run.end_time or (run.state.timestamp if run.state else None) or started
    if started is None or finished is None:
        return None
    return HistoryRecord(
        rollout_id=str(run.name),
        target=str(labels[TARGET]),
        image=str(labels.get(IMAGE, "")),
        result=result,
        cell=_cell(run.parameters),
        reason=str(labels.get(REASON, "")),
        triggered_by=str(labels.get(BY, "")),
        started_at=started,
        finished_at=finished,
        flow_run_id=str(run.id),
        committed_at=_when(labels.get(COMMITTED)),
        detected_at=_when(labels.get(DETECTED)),
    )


def prefect_history(*, target: str | None = None, since: datetime | None = None) -> tuple[HistoryRecord, ...]:
    """The rollouts that ended, as the Prefect API's rollout runs record them (of one target,
    ended since a time), oldest first."""
    runs_filter = FlowRunFilter(end_time=FlowRunFilterEndTime(after_=since)) if since else None
    records: list[HistoryRecord] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["rollout"])),
                flow_run_filter=runs_filter,
                sort=FlowRunSort.END_TIME_DESC,
                limit=_PAGE,
                offset=offset,
            )
            for run in page:
                record = _record(run)
                if record is not None and (target is None or record.target == target):
                    records.append(record)
            if len(page) < _PAGE:
                break
            offset += _PAGE
    return tuple(sorted(records, key=lambda r: r.finished_at))
