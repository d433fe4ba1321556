"""Pure statistics: canary and baseline observations in, verdicts (continue, promote, rollback) out.

This package is pure: no I/O, no external calls, no logging, no clock, and no randomness except
through a numpy ``Generator`` passed in by the caller. It imports numpy, pydantic and the
standard library only (an import-linter contract keeps it so); nothing of ``canaryflow`` or
``flows``. What belongs here: the observation types and the ``canaryflow/observations@1`` log
format, the judges' settings, the sequential tests and their e-values, the judges themselves and
their result objects. What must not: queries, clusters, files, orchestration.

Modules:

- `observations`: what one metric, one track, one interval looks like (and its quantiles, rates
  and means, so that no caller switches on the type);
- `checks`: input validation shared by the tests (directions, tolerances, error levels);
- `logs`: parse and write the public observation log (`parse_log`, `dump_log`);
- `settings`: `AnalysisSettings`, `MetricSettings`, `KayentaSettings`;
- `evalues`: e-value building blocks (normal mixtures, the scale-invariant t mixture);
- `counts`: the count test under the ratio and histogram tests (incremental state, a
  conservative predictable dispersion, the confidence sequence);
- `detection`: the e-detector over windows of the latest intervals, for a canary that turns
  bad mid-analysis;
- `special`: the normal log-cdf and Student's t tail without scipy;
- `ratio`, `histogram`, `samples`: the sequential test per metric type;
- `verdicts`: `Verdict`, `MetricEvidence`, `Decision`;
- `outlook`: the evidence plan (the intervals of data a metric needs at the traffic seen);
- `evidence`, `judge`: the sequential judge (`SequentialJudge`);
- `mannwhitney`, `kayenta`: Spinnaker Kayenta's NetflixACAJudge (`mann_whitney`, `classify`,
  `KayentaJudge`);
- `backtest`: run a judge over a log (`judge_log`), what ``canaryflow replay`` prints.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.backtest import JudgeName, judge_log, settings_for_log
    from analysis.histogram import HistogramTestResult, histogram_test
    from analysis.judge import SequentialJudge
    from analysis.kayenta import KayentaJudge, MannWhitneyResult, MetricClassification, classify, mann_whitney
    from analysis.logs import FORMAT, LogFormatError, MetricHeader, ObservationLog, dump_log, parse_log
    from analysis.observations import (
        HistogramCounts,
        IntervalObservations,
        MetricType,
        PairedObservation,
        RatioCounts,
        Samples,
        TrackObservation,
    )
    from analysis.ratio import RatioTestResult, ratio_test
    from analysis.samples import SamplesTestResult, samples_test
    from analysis.settings import AnalysisSettings, Direction, KayentaSettings, MetricSettings
    from analysis.verdicts import Decision, MetricEvidence, MetricStatus, Verdict

_HOMES: dict[str, str] = {
    "AnalysisSettings": "analysis.settings",
    "Decision": "analysis.verdicts",
    "Direction": "analysis.settings",
    "FORMAT": "analysis.logs",
    "HistogramCounts": "analysis.observations",
    "HistogramTestResult": "analysis.histogram",
    "IntervalObservations": "analysis.observations",
    "JudgeName": "analysis.backtest",
    "KayentaJudge": "analysis.kayenta",
    "KayentaSettings": "analysis.settings",
    "LogFormatError": "analysis.logs",
    "MannWhitneyResult": "analysis.kayenta",
    "MetricClassification": "analysis.kayenta",
    "MetricEvidence": "analysis.verdicts",
    "MetricHeader": "analysis.logs",
    "MetricSettings": "analysis.settings",
    "MetricStatus": "analysis.verdicts",
    "MetricType": "analysis.observations",
    "ObservationLog": "analysis.logs",
    "PairedObservation": "analysis.observations",
    "RatioCounts": "analysis.observations",
    "RatioTestResult": "analysis.ratio",
    "Samples": "analysis.observations",
    "SamplesTestResult": "analysis.samples",
    "SequentialJudge": "analysis.judge",
    "TrackObservation": "analysis.observations",
    "Verdict": "analysis.verdicts",
    "classify": "analysis.kayenta",
    "dump_log": "analysis.logs",
    "histogram_test": "analysis.histogram",
    "judge_log": "analysis.backtest",
    "mann_whitney": "analysis.kayenta",
    "parse_log": "analysis.logs",
    "ratio_test": "analysis.ratio",
    "samples_test": "analysis.samples",
    "settings_for_log": "analysis.backtest",
}


def __getattr__(name: str) -> Any:
    """Import the public names lazily: ``import analysis.verdicts`` stays light (no scipy)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "FORMAT",
    "AnalysisSettings",
    "Decision",
    "Direction",
    "HistogramCounts",
    "HistogramTestResult",
    "IntervalObservations",
    "JudgeName",
    "KayentaJudge",
    "KayentaSettings",
    "LogFormatError",
    "MannWhitneyResult",
    "MetricClassification",
    "MetricEvidence",
    "MetricHeader",
    "MetricSettings",
    "MetricStatus",
    "MetricType",
    "ObservationLog",
    "PairedObservation",
    "RatioCounts",
    "RatioTestResult",
    "Samples",
    "SamplesTestResult",
    "SequentialJudge",
    "TrackObservation",
    "Verdict",
    "classify",
    "dump_log",
    "histogram_test",
    "judge_log",
    "mann_whitney",
    "parse_log",
    "ratio_test",
    "samples_test",
    "settings_for_log",
]
