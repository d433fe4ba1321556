"""A cell's health before its rollout starts: the release's blockers (`canaryflow.spec.release.Health`).

Before a wave's cell starts, its stable must be healthy: each ratio metric named in
``health.maxRates`` at most its rate over the last ``health.window`` (read for the stable track,
as the rollout spec's query renders it for the cell), and the ``health.alerts`` query without any
series. A cell that fails either waits, and the release says why (`canaryflow.waves.next_step`
takes the answer as ``unhealthy``); it starts as soon as it is healthy again. A stable without
traffic in the window has nothing to say against it. A Prometheus that does not answer, or rejects
a query, blocks the cell too: a release never starts where it cannot see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from analysis.observations import RatioCounts, Samples
from canaryflow.errors import MetricsError, MetricsUnavailableError, NoDataError
from canaryflow.metrics.port import MetricQuery, MetricsSource
from canaryflow.plan import RolloutPlan
from canaryflow.spec.durations import format_duration
from canaryflow.spec.release import Health

__all__ = ["unhealthy"]


def unhealthy(
    health: Health,
    plans: Mapping[str, RolloutPlan],
    sources: Callable[[str], MetricsSource],
    *,
    now: datetime,
) -> dict[str, str]:
    """The cells of `plans` (name -> the cell's rollout plan: its target and metrics) whose stable
    is unhealthy at `now`, each with why in a few words; `sources` gives a cell's metrics."""
    found: dict[str, str] = {}
    for cell, plan in plans.items():
        why = _why(health, plan, sources(cell), now)
        if why:
            found[cell] = why
    return found


def _why(health: Health, plan: RolloutPlan, source: MetricsSource, now: datetime) -> str:
    queries = {query.name: query for query in plan.queries()}
    window = format_duration(health.window)
    problems: list[str] = []
    try:
        for name, most in sorted(health.max_rates.items()):
            seen = _observe(source, queries[name], plan, now, health)
            if isinstance(seen, RatioCounts) and seen.rate > most:
                problems.append(f"{name} {seen.rate:.2%} over {most:.2%} in the last {window}")
        if health.alerts is not None:
            alerts = MetricQuery("alerts", "samples", {"query": health.alerts})
            seen = _observe(source, alerts, plan, now, health)
            if isinstance(seen, Samples) and seen.values:
                problems.append(f"{len(seen.values)} alert(s) firing")
    except (MetricsError, MetricsUnavailableError) as exc:  # not answered, or refused: not seen healthy
        return f"its health cannot be read: {exc}"
    return "; ".join(problems)


def _observe(
    source: MetricsSource, query: MetricQuery, plan: RolloutPlan, now: datetime, health: Health
) -> RatioCounts | Samples | None:
    try:
        seen = source.observe(
            query,
            namespace=plan.target.namespace,
            app=plan.target.app,
            track="stable",
            end=now,
            window=health.window,
        )
    except NoDataError:
        return None
    return seen if isinstance(seen, RatioCounts | Samples) else None
