"""The Prefect artifacts of a rollout: its progress through the steps, a table per analysis (updated
in place at every interval), its verdicts and outcome.

Each function creates (or updates) one artifact; keys are lowercase and derived from the rollout
id, so the artifacts of one rollout group together in the Prefect UI. The facts come from the
judge's `Verdict` and the observations; what people read in the report files is written by
`flows.reporting` through `canaryflow.reports`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate

from analysis.observations import PairedObservation
from analysis.verdicts import MetricEvidence, Verdict

__all__ = [
    "analysis_table",
    "deciding_evidence",
    "interval_rows",
    "outcome_note",
    "progress",
    "verdict_note",
]


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def _fmt_e(value: float) -> str:
    """An e-value for people: beyond a million it only says so (1e+304 reads as nothing)."""
    if math.isfinite(value) and value > 1e6:
        return "> 10^6"
    return _fmt(value)


def deciding_evidence(ev: MetricEvidence) -> str:
    """What decided the metric (or why it is open), in the judge's own words: the part of its
    reason after the numbers, e.g. "regression: e-value 93.3 >= 57.1 (p <= 0.0107)", "changed for
    the worse: the latest intervals alone give evidence ...", "within +50 % tolerance at the final
    look: ...", "below the 0.1 % ceiling: ...". The table's numbers are the estimate and its interval;
    the e-value shown is the one that decided, never another test's."""
    _, sep, tail = ev.reason.partition("; ")
    return (tail if sep else ev.reason).rstrip(".")


def progress(existing: UUID | None, *, key: str, value: float, description: str) -> UUID:
    """Create the progress artifact (``existing`` is None) or update it; return its id."""
    if existing is not None:
        update_progress_artifact(existing, progress=value, description=description)
        return existing
    created = create_progress_artifact(progress=value, key=key, description=description)
    assert isinstance(created, UUID)  # the sync call returns the id
    return created


def interval_rows(
    *, observed: Mapping[str, PairedObservation | None], verdict: Verdict
) -> list[dict[str, str]]:
    """One analysis interval's rows: per metric canary, baseline, estimate, confidence interval,
    e-value and status."""
    rows = []
    for name, evidence in verdict.metrics.items():
        pair = observed.get(name)
        low, high = evidence.interval
        rows.append(
            {
                "look": str(verdict.interval),
                "metric": name,
                "canary": pair.canary.describe() + _over(pair) if pair else "no data",
                "baseline": pair.baseline.describe() + _over(pair) if pair else "no data",
                "estimate": _fmt(evidence.estimate),
                "confidence interval": f"[{_fmt(low)}, {_fmt(high)}]",
                "regression e-value": _fmt_e(evidence.evalue),
                "status": evidence.status,
            }
        )
    return rows


def _over(pair: PairedObservation) -> str:
    """What a row's counts cover when they were read back over looks without data."""
    return "" if pair.span == 1 else f" over {pair.span:.3g} intervals"


def analysis_table(
    existing: UUID | None, *, key: str, step: int, rows: list[dict[str, str]], verdict: Verdict
) -> UUID:
    """The analysis step's one table artifact: created at its first interval (``existing`` None),
    then updated in place with every interval's rows (newest first); returns its id."""
    description = f"Step {step + 1}, interval {verdict.interval}: {verdict.decision}. {verdict.reason}"
    if existing is not None:
        with get_client(sync_client=True) as client:
            client.update_artifact(existing, ArtifactUpdate(data=rows, description=description))
        return existing
    created = create_table_artifact(rows, key=key, description=description)
    assert isinstance(created, UUID)  # the sync call returns the id
    return created


def verdict_note(
    key: str, *, heading: str, where: str, verdict: Verdict, log: Path, chart: str | None
) -> None:
    """The analysis step's final verdict: its reason, the evidence per metric and the chart."""
    lines = [
        f"# {heading}: {verdict.decision} after {verdict.interval} intervals",
        "",
        f"**{verdict.reason}**",
        "",
        where,
        "",
        "| metric | status | estimate | interval | deciding evidence |",
        "|---|---|---|---|---|",
    ]
    for name, ev in verdict.metrics.items():
        lines.append(
            f"| {name} | {ev.status} | {_fmt(ev.estimate)} | [{_fmt(ev.interval[0])}, "
            f"{_fmt(ev.interval[1])}] | {deciding_evidence(ev)} |"
        )
    lines += ["", f"Observation log: `{log}` (replay it with `canaryflow replay {log}`)."]
    if chart:
        lines += ["", chart]
    create_markdown_artifact("\n".join(lines), key=key, description=verdict.reason)


def outcome_note(key: str, *, heading: str, reason: str, where: str) -> None:
    """How the rollout ended, and why."""
    create_markdown_artifact(
        f"# {heading}\n\n{reason}\n\n{where}", key=key, description=heading + ": " + reason
    )
