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
- `counts`: the vectorised count test under the ratio and histogram tests;
- `ratio`, `histogram`, `samples`: the sequential test per metric type;
- `verdicts`: `Verdict`, `MetricEvidence`, `Decision`;
- `evidence`, `judge`: the sequential judge (`SequentialJudge`);
- `mannwhitney`, `kayenta`: Spinnaker Kayenta's NetflixACAJudge (`mann_whitney`, `classify`,
  `KayentaJudge`);
- `backtest`: run a judge over a log (`judge_log`), what ``canaryflow replay`` prints.
"""

from __future__ import annotations

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
