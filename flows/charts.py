"""The chart of an analysis: canary against baseline, interval by interval, rendered with matplotlib.

One panel per metric: the error rate for ``ratio`` metrics, the median and 99th percentile for
``histogram`` metrics, the mean for ``samples`` metrics. The PNG is written next to the observation
log and returned as a markdown image with a ``data:`` URI, so the verdict artifact shows it in the
Prefect UI without any file server. Uses matplotlib's object API on the Agg canvas (no pyplot, no
global figure state), so rollouts in several threads can render at once.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.logs import ObservationLog
from analysis.observations import PairedObservation

__all__ = ["render_chart", "series"]

_COLOURS = {"canary": "#d62728", "baseline": "#1f77b4"}


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


def render_chart(log: ObservationLog, path: Path) -> str | None:
    """Draw `log` to the PNG `path`; return a markdown image of it (None without intervals)."""
    if not log.intervals:
        return None
    panels = _panels(log)
    figure = Figure(figsize=(7.0, 2.4 * len(panels)), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    x = [(i + 1) * log.interval_seconds for i in range(len(log.intervals))]
    for ax, (name, whats, unit) in zip(axes, panels, strict=True):
        for track, colour in _COLOURS.items():
            for what in whats:
                style = "-" if what in ("rate", "p50", "mean") else "--"
                ax.plot(
                    x,
                    series(log, name, what, track),
                    style,
                    color=colour,
                    marker=".",
                    label=f"{track} {what}",
                )
        ax.set_title(name)
        ax.set_ylabel(unit)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("seconds into the analysis")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    data = buffer.getvalue()
    path.write_bytes(data)
    return f"![canary vs baseline](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"
