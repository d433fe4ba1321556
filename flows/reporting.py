"""What people see of a rollout: Prefect artifacts, log lines in words, and the report directory.

Per rollout: a progress artifact (the canary's weight), a table per analysis interval (per metric:
canary, baseline, estimate, interval, e-value), a markdown verdict with its reason and where the
observation log is, and a chart (`flows.charts`). The same facts go to ``<reports>/<rollout-id>/``:
``status.json`` (read by ``canaryflow status``), ``observations-step<N>.json`` and ``chart.png``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from analysis.observations import HistogramCounts, PairedObservation, RatioCounts, Samples, TrackObservation
from analysis.verdicts import Verdict
from flows.plan import RolloutOutcome, RolloutPlan
from flows.runtime import Runtime

__all__ = ["Reporter", "read_statuses", "summarize"]


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def summarize(observation: TrackObservation) -> str:
    """One track's observation in a few words (errors/requests, p50/p99 or the mean of the samples)."""
    if isinstance(observation, RatioCounts):
        rate = observation.bad / observation.total if observation.total else math.nan
        return f"{observation.bad:g}/{observation.total:g} ({100 * rate:.2f}%)"
    if isinstance(observation, HistogramCounts):
        return f"p50 {_fmt(quantile(observation, 0.5))}, p99 {_fmt(quantile(observation, 0.99))}"
    assert isinstance(observation, Samples)
    values = observation.values
    return f"mean {_fmt(sum(values) / len(values))} of {len(values)}" if values else "-"


def quantile(histogram: HistogramCounts, q: float) -> float | None:
    """Linear interpolation within the bucket, like PromQL's ``histogram_quantile`` (None if empty)."""
    total = histogram.total
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in zip(histogram.le, histogram.counts, strict=True):
        if count >= rank:
            if math.isinf(le):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (le - lower) * share
        lower, below = le, count
    return lower


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


class Reporter:
    """Artifacts and report files of one rollout (created in the flow run; one per run)."""

    def __init__(self, plan: RolloutPlan, runtime: Runtime) -> None:
        self.plan = plan
        self.runtime = runtime
        self.directory = runtime.reports_dir / plan.rollout_id
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = plan.rollout_id.lower()
        self._progress: UUID | None = None
        self._status: dict[str, Any] = {
            "rollout_id": plan.rollout_id,
            "target": str(plan.target),
            "image": plan.image,
            "spec": plan.request.spec,
            "triggered_by": plan.request.triggered_by,
            "flow_run_id": str(flow_run.get_id() or ""),
            "steps": len(plan.spec.steps),
            "step": None,
            "phase": "preparing",
            "weight": 0,
            "effective_weight": 0.0,
            "verdict": None,
            "result": None,
        }
        self.log = get_run_logger()

    # -- progress and status --------------------------------------------------------------------

    def say(self, message: str, *args: object) -> None:
        """A log line in words, and an event for live displays."""
        self.log.info(message, *args)
        self.runtime.emit(self.plan.rollout_id, "log", message=message % args if args else message)

    def step(self, index: int) -> None:
        self._update(step=index + 1, phase="progressing", step_name=self.plan.describe_step(index))
        self.say("%s: %s", self.plan.rollout_id, self.plan.describe_step(index))

    def weight(self, requested: int, effective: float) -> None:
        """The canary's weight changed (progress artifact: the effective weight in percent)."""
        self._update(weight=requested, effective_weight=round(effective, 1))
        description = f"Canary weight of {self.plan.target} ({self.plan.image}); requested {requested}%"
        if self._progress is None:
            created = create_progress_artifact(
                progress=effective, key=f"{self._key}-weight", description=description
            )
            assert isinstance(created, UUID)  # the sync call returns the id
            self._progress = created
        else:
            update_progress_artifact(self._progress, progress=effective, description=description)
        self.runtime.emit(self.plan.rollout_id, "weight", requested=requested, effective=effective)

    def interval(
        self, step: int, observed: Mapping[str, PairedObservation | None], verdict: Verdict, log: Path
    ) -> None:
        """One analysis interval: its table artifact, the verdict so far in the status."""
        rows = []
        for name, evidence in verdict.metrics.items():
            pair = observed.get(name)
            low, high = evidence.interval
            rows.append(
                {
                    "metric": name,
                    "canary": summarize(pair.canary) if pair else "no data",
                    "baseline": summarize(pair.baseline) if pair else "no data",
                    "estimate": _fmt(evidence.estimate),
                    "interval": f"[{_fmt(low)}, {_fmt(high)}]",
                    "e-value": _fmt(evidence.evalue),
                    "status": evidence.status,
                }
            )
        create_table_artifact(
            rows,
            key=f"{self._key}-step{step + 1}-interval",
            description=f"Step {step + 1}, interval {verdict.interval}: {verdict.decision}. {verdict.reason}",
        )
        self._update(verdict=verdict.to_dict(), observations=str(log))
        self.say("interval %d: %s", verdict.interval, verdict.reason)
        self.runtime.emit(
            self.plan.rollout_id, "verdict", interval=verdict.interval, decision=verdict.decision
        )

    def verdict(self, step: int, verdict: Verdict, log: Path, chart: str | None = None) -> None:
        """The analysis step's final verdict as a markdown artifact."""
        lines = [
            f"# {self.plan.rollout_id}: {verdict.decision} after {verdict.interval} intervals",
            "",
            f"**{verdict.reason}**",
            "",
            f"Target `{self.plan.target}`, image `{self.plan.image}`, step {step + 1}.",
            "",
            "| metric | status | estimate | interval | e-value | p-value | reason |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, ev in verdict.metrics.items():
            lines.append(
                f"| {name} | {ev.status} | {_fmt(ev.estimate)} | [{_fmt(ev.interval[0])}, "
                f"{_fmt(ev.interval[1])}] | {_fmt(ev.evalue)} | {_fmt(ev.pvalue)} | {ev.reason} |"
            )
        lines += ["", f"Observation log: `{log}` (replay it with `canaryflow replay {log}`)."]
        if chart:
            lines += ["", chart]
        create_markdown_artifact("\n".join(lines), key=f"{self._key}-verdict", description=verdict.reason)

    def finished(self, outcome: RolloutOutcome) -> None:
        self._update(phase=outcome.result, result=outcome.result, reason=outcome.reason)
        create_markdown_artifact(
            f"# {outcome.rollout_id}: {outcome.result}\n\n{outcome.reason}\n\n"
            f"Target `{outcome.target}`, image `{outcome.image}`. Report: `{outcome.report}`.",
            key=f"{self._key}-outcome",
            description=f"{outcome.result}: {outcome.reason}",
        )
        self.say("%s %s: %s", outcome.rollout_id, outcome.result, outcome.reason)
        self.runtime.emit(self.plan.rollout_id, "finished", result=outcome.result, reason=outcome.reason)

    def phase(self, phase: str) -> None:
        self._update(phase=phase)

    def _update(self, **changes: Any) -> None:
        self._status.update(changes, updated_at=datetime.now(UTC).isoformat())
        _atomic_write(self.directory / "status.json", json.dumps(self._status, indent=1) + "\n")


def read_statuses(reports_dir: Path, rollout_id: str | None = None) -> list[dict[str, Any]]:
    """The ``status.json`` of every rollout under `reports_dir` (or of one), newest first."""
    paths = [reports_dir / rollout_id / "status.json"] if rollout_id else reports_dir.glob("*/status.json")
    found = [json.loads(p.read_text(encoding="utf-8")) for p in paths if p.is_file()]
    return sorted(found, key=lambda s: str(s.get("updated_at", "")), reverse=True)
