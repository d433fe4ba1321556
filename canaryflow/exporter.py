"""Controller metrics in the Prometheus exposition format (``canaryflow metrics serve``).

Computed at every scrape from what canaryflow records durably, the reports directory: the
history (`canaryflow.history`) for what ended, each open rollout's ``status.json``
(`canaryflow.reports`) for what runs now. So the figures survive restarts of anything, any number
of workers may write the directory, and the exporter holds no state of its own.

Metrics (labels ``target`` = ``namespace/deployment``):

- ``canaryflow_rollouts_ended_total{target, result}``: rollouts that ended, by how
  (``promoted``, ``rolled-back``, ``aborted``, ``superseded``, ``undone``);
- ``canaryflow_rollout_duration_seconds{target, result}``: a histogram of how long they took
  (for a rolled-back rollout, how long its canary served: the time to detect and restore);
- ``canaryflow_rollouts_in_progress{target}``: rollouts that have not ended;
- ``canaryflow_rollout_weight_percent{target, rollout, kind}``: the canary's ``requested`` and
  ``effective`` weight of each rollout in progress;
- ``canaryflow_rollout_phase{target, rollout, phase}``: 1 for the phase each rollout in progress
  is in;
- ``canaryflow_judge_metric_status{target, rollout, metric, status}``: 1 for the latest status of
  each metric the judge follows in a rollout in progress;
- ``canaryflow_history_unreadable_lines``: lines of the history that could not be read.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from canaryflow.errors import ReportError
from canaryflow.history import read_history
from canaryflow.reports import read_statuses

__all__ = ["DURATION_BUCKETS", "RolloutCollector", "registry_for"]

#: Seconds: a fast rollback, minutes of analysis, an approval that waited hours.
DURATION_BUCKETS = (60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 86400.0)


class RolloutCollector(Collector):
    """A `prometheus_client` collector over the reports directory `reports_dir`."""

    def __init__(self, reports_dir: Path) -> None:
        self.reports_dir = reports_dir

    def collect(self) -> Iterator[Metric]:
        history = read_history(self.reports_dir)
        ended = CounterMetricFamily(
            "canaryflow_rollouts_ended", "Rollouts that ended, by how.", labels=["target", "result"]
        )
        for (target, result), count in sorted(Counter((r.target, r.result) for r in history.records).items()):
            ended.add_metric([target, result], count)
        yield ended
        durations: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
        for record in history.records:
            durations[(record.target, record.result)].append(max(0.0, record.duration.total_seconds()))
        histogram = HistogramMetricFamily(
            "canaryflow_rollout_duration_seconds",
            "How long rollouts took, start to end, by how they ended.",
            labels=["target", "result"],
        )
        for (where, how), values in sorted(durations.items()):
            buckets = [(_le(bound), float(sum(v <= bound for v in values))) for bound in DURATION_BUCKETS]
            buckets.append(("+Inf", float(len(values))))
            histogram.add_metric([where, how], buckets, sum(values))
        yield histogram
        unreadable = GaugeMetricFamily(
            "canaryflow_history_unreadable_lines", "Lines of the rollout history that could not be read."
        )
        unreadable.add_metric([], history.unreadable)
        yield unreadable
        yield from self._open()

    def _open(self) -> Iterator[Metric]:
        try:
            statuses = [s for s in read_statuses(self.reports_dir) if not s.phase.final]
        except ReportError:  # a report being replaced: the next scrape reads it
            statuses = []
        progress = GaugeMetricFamily(
            "canaryflow_rollouts_in_progress", "Rollouts that have not ended.", labels=["target"]
        )
        for target, count in sorted(Counter(s.target for s in statuses).items()):
            progress.add_metric([target], count)
        yield progress
        weight = GaugeMetricFamily(
            "canaryflow_rollout_weight_percent",
            "The canary's requested and effective weight.",
            labels=["target", "rollout", "kind"],
        )
        phase = GaugeMetricFamily(
            "canaryflow_rollout_phase",
            "The phase of each rollout in progress.",
            labels=["target", "rollout", "phase"],
        )
        judge = GaugeMetricFamily(
            "canaryflow_judge_metric_status",
            "The judge's latest status of each metric of each rollout in progress.",
            labels=["target", "rollout", "metric", "status"],
        )
        for s in statuses:
            weight.add_metric([s.target, s.rollout_id, "requested"], s.weight)
            weight.add_metric([s.target, s.rollout_id, "effective"], s.effective_weight)
            phase.add_metric([s.target, s.rollout_id, s.phase.value], 1)
            for name, metric in (s.verdict.metrics if s.verdict else {}).items():
                judge.add_metric([s.target, s.rollout_id, name, metric.status], 1)
        yield weight
        yield phase
        yield judge


def _le(bound: float) -> str:
    return f"{bound:g}" if bound < 1e5 else repr(bound)


def registry_for(reports_dir: Path) -> CollectorRegistry:
    """A registry with the collector of `reports_dir` alone (no process metrics)."""
    registry = CollectorRegistry()
    registry.register(RolloutCollector(reports_dir))
    return registry
