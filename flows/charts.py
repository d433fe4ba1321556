"""The chart of an analysis: canary against baseline, interval by interval, rendered with matplotlib.

One panel per metric: the error rate for ``ratio`` metrics, the median and 99th percentile for
``histogram`` metrics, the mean for ``samples`` metrics. Drawn to be read at a glance: the
canary's lines on top (equal values never hide it), the band the metric's tolerance allows above
the baseline shaded, the y axis from zero (interval-to-interval noise is not blown up into a
cliff), the legend outside the plot. The PNG is written next to the observation log and returned
as a markdown image with a ``data:`` URI, so the verdict artifact shows it in the Prefect UI
without any file server. Uses matplotlib's object API on the Agg canvas (no pyplot, no
global figure state), so rollouts in several threads can render at once.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.logs import ObservationLog
from analysis.observations import PairedObservation
from canaryflow.files import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["draw_chart", "render_chart", "series"]

#: Baseline first, canary drawn over it.
_COLOURS = {"baseline": "#1f77b4", "canary": "#d62728"}
_BAND = "#2ca02c"


def series(log: ObservationLog, metric: str, what: str, track: str) -> list[float]:
    """Per interval, the value plotted for `metric` (``rate``, ``p50``, ``p99``, ``mean``) of `track`."""
    values = []
    for interval in log.intervals:
        pair: PairedObservation | None = interval.get(metric)
        observation = None if pair is None else (pair.canary if track == "canary" else pair.baseline)
        values.append(math.nan if observation is None else observation.chart_points().get(what, math.nan))
    return values


def _panels(log: ObservationLog) -> list[tuple[str, tuple[str, ...], str]]:
    panels: list[tuple[str, tuple[str, ...], str]] = []
    for name, header in log.metrics.items():
        if header.type == "ratio":
            panels.append((name, ("rate",), "error rate"))
        elif header.type == "histogram":
            panels.append((name, ("p50", "p99"), header.unit or "value"))
        else:
            panels.append((name, ("mean",), "mean"))
    return panels


def draw_chart(log: ObservationLog, tolerances: Mapping[str, float] | None = None) -> Figure:
    """`log` as a figure: a panel per metric, canary over baseline, the tolerance band of each
    metric in `tolerances` (relative, 0.5 = +50 %) above the baseline's line."""
    panels = _panels(log)
    # Imported here: matplotlib is a second of CPU and tens of MiB per flow-run process, and only a
    # verdict draws a chart (bench/production.py measures what a rollout costs a worker).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 2.8 * len(panels)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    x = [(i + 1) * log.interval_seconds for i in range(len(log.intervals))]
    for ax, (name, whats, unit) in zip(axes, panels, strict=True):
        tolerance = (tolerances or {}).get(name)
        highest = 0.0
        for track, colour in _COLOURS.items():
            for what in whats:
                values = series(log, name, what, track)
                highest = max([highest, *(v for v in values if math.isfinite(v))])
                if track == "baseline" and tolerance is not None and what != "p99":
                    allowed = [v * (1.0 + tolerance) for v in values]
                    highest = max([highest, *(v for v in allowed if math.isfinite(v))])
                    ax.fill_between(
                        x, values, allowed, color=_BAND, alpha=0.15, linewidth=0,
                        label=f"tolerance (+{100 * tolerance:.0f} % of baseline {what})",
                    )  # fmt: skip
                ax.plot(
                    x,
                    values,
                    "-" if what in ("rate", "p50", "mean") else "--",
                    color=colour,
                    marker=".",
                    linewidth=2.0 if track == "canary" else 1.5,
                    zorder=3 if track == "canary" else 2,
                    label=f"{track} {what}",
                )
        ax.set_title(name, loc="left")
        ax.set_ylabel(unit)
        ax.set_ylim(0.0, highest * 1.15 if highest > 0 else 1.0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    axes[-1].set_xlabel("seconds into the analysis")
    return figure


def render_chart(
    log: ObservationLog, path: Path, tolerances: Mapping[str, float] | None = None
) -> str | None:
    """Draw `log` (`draw_chart`) to the PNG `path`; return a markdown image of it (None without
    intervals)."""
    if not log.intervals:
        return None
    buffer = io.BytesIO()
    draw_chart(log, tolerances).savefig(buffer, format="png")
    data = buffer.getvalue()
    write_atomic(path, data)  # a run killed here leaves the chart before, not half of one
    return f"![canary vs baseline](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"
