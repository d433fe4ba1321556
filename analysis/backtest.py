"""Run a judge over a recorded observation log (what ``canaryflow replay`` prints, minus the I/O).

`settings_for_log` completes the analysis settings with the log's metrics; `judge_log` yields one
`Verdict` per interval judged, the last one final. Pure: the caller reads the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from analysis.judge import SequentialJudge
from analysis.kayenta import KayentaJudge
from analysis.logs import LogFormatError, ObservationLog
from analysis.settings import AnalysisSettings, MetricSettings
from analysis.verdicts import Verdict

__all__ = ["JudgeName", "judge_log", "sequential_judge_for", "settings_for_log"]

#: The judges `judge_log` can run.
JudgeName = Literal["sequential", "kayenta"]


def settings_for_log(settings: AnalysisSettings, log: ObservationLog) -> AnalysisSettings:
    """The settings with their metrics filled in from the log.

    Without configured metrics, every metric of the log's header is judged with the defaults for
    its type. With configured metrics, exactly those are judged; each must be in the log with the
    same type (`LogFormatError` otherwise: the replay could not mean anything).
    """
    if not settings.metrics:
        metrics = tuple(MetricSettings(name=name, type=header.type) for name, header in log.metrics.items())
        return settings.model_copy(update={"metrics": metrics})
    for metric in settings.metrics:
        header = log.metrics.get(metric.name)
        if header is None:
            raise LogFormatError(f"metrics.{metric.name}", "judged by the settings but not in the log")
        if header.type != metric.type:
            raise LogFormatError(
                f"metrics.{metric.name}.type", f"the log has {header.type}, the settings say {metric.type}"
            )
    return settings


def sequential_judge_for(log: ObservationLog, settings: AnalysisSettings | None = None) -> SequentialJudge:
    """The sequential judge `judge_log` runs over `log`: `settings` (default: the defaults) for the
    log's metrics, their units, and the warm-up dispersion the log's headers carry."""
    resolved = settings_for_log(settings or AnalysisSettings(), log)
    units = {name: header.unit or "" for name, header in log.metrics.items()}
    dispersion = {
        name: h.dispersion if isinstance(h.dispersion, float) else dict(h.dispersion)
        for name, h in log.metrics.items()
        if h.dispersion is not None
    }
    return SequentialJudge(
        resolved, interval_seconds=log.interval_seconds, units=units, dispersion=dispersion
    )


def judge_log(
    log: ObservationLog, settings: AnalysisSettings | None = None, *, judge: JudgeName = "sequential"
) -> Iterator[Verdict]:
    """Judge `log` interval by interval; the last verdict yielded is final.

    The judge stops at its first final decision; when the log ends first, the last verdict is
    the judge's `finish` (inconclusive unless a regression was shown). An empty log yields one
    inconclusive verdict for interval 0.
    """
    runner: SequentialJudge | KayentaJudge
    if judge == "kayenta":
        resolved = settings_for_log(settings or AnalysisSettings(), log)
        runner = KayentaJudge(resolved, interval_seconds=log.interval_seconds)
    else:
        runner = sequential_judge_for(log, settings)
    pending: Verdict | None = None
    for observations in log.intervals:
        verdict = runner.update(observations)
        if pending is not None:
            yield pending
        if verdict.final:
            yield verdict
            return
        pending = verdict
    yield runner.finish()
