"""What ``canaryflow replay`` does: re-run a judge over recorded observation logs (a backtest).

Reads each ``canaryflow/observations@1`` log, runs the judge interval by interval and writes one
JSON object per line per interval judged. The last line of each log has ``"final": true``, the
``"decision"`` (promote, rollback or inconclusive) and the ``"interval"`` (1-based: the judge had
seen intervals 1..interval). With several logs every line also carries ``"log"`` (the path as
given). Lines are written (and flushed) as the judge produces them, so a long log shows progress;
the sequential judge's state is incremental, so the cost is linear in the number of intervals
(the Kayenta judge keeps every point, as Kayenta does, and costs more on long logs).

Every log is read and checked before anything is judged: a malformed or inconsistent one raises
`ObservationLogError` (exit code 2, as the backtest contract asks) naming the file and the place,
and nothing is written. What is well-formed but suspicious (`analysis.logs.cross_checks`) is said
on `err`, one ``warning:`` line each, and judged anyway, as the live judge did. So is a log of a
rollout's report replayed without ``--config``: the report's ``status.json`` names the spec whose
settings the live judge used, and the defaults may differ from them.

This path stays light: it imports the standard library, ``analysis`` (numpy, pydantic), our error
types and report paths, and the rollout spec loader only when ``--config`` is given. No Prefect, Kubernetes
or FastAPI.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from analysis.backtest import JudgeName, judge_log, settings_for_log
from analysis.logs import LogFormatError, ObservationLog, cross_checks, parse_log
from analysis.settings import AnalysisSettings
from canaryflow.errors import NotImplementedYetError, ObservationLogError, UsageError

__all__ = ["JUDGES", "default_settings_for", "load_settings", "read_log", "run_replay"]

#: The judges ``--judge`` accepts.
JUDGES: tuple[JudgeName, ...] = ("sequential", "kayenta")


def read_log(path: Path) -> ObservationLog:
    """Read and parse one log file; every problem becomes `ObservationLogError` naming the file."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ObservationLogError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return parse_log(text)
    except LogFormatError as exc:
        raise ObservationLogError(f"{path}: {exc}") from exc


def load_settings(config: Path | None) -> AnalysisSettings:
    """The analysis settings of the rollout spec `config`, or, without one, the project's defaults
    with no metrics (`default_settings_for` fills them in from a log)."""
    if config is None:
        return AnalysisSettings()
    try:
        from canaryflow.spec import load_spec
    except ImportError as exc:
        raise NotImplementedYetError(
            "replay --config: the rollout spec loader (canaryflow.spec) has not landed yet"
        ) from exc
    spec = load_spec(config)
    settings = spec.analysis_settings()
    if not isinstance(settings, AnalysisSettings):
        raise NotImplementedYetError(
            "replay --config: the rollout spec does not provide analysis settings yet"
        )
    return settings


def default_settings_for(log: ObservationLog) -> AnalysisSettings:
    """What a spec without an ``analysis`` section judges, for the log's metrics: a metric with the
    name and type of one of the default metrics as that one (its tolerance, ceiling and
    criticality), any other with its type's defaults."""
    from canaryflow.spec.models import AnalysisSpec

    data = AnalysisSpec().settings_data()
    defaults = {m["name"]: m for m in data["metrics"]}
    data["metrics"] = [
        defaults[name]
        if name in defaults and defaults[name]["type"] == h.type
        else {"name": name, "type": h.type}
        for name, h in log.metrics.items()
    ]
    return AnalysisSettings.model_validate(data)


def _spec_of_report(log: Path) -> str | None:
    """The spec of the rollout whose report holds `log` (its ``status.json`` beside it), if any."""
    from canaryflow.errors import ReportError
    from canaryflow.reports import STATUS_FILE, read_status

    path = log.parent / STATUS_FILE
    try:
        return read_status(path).spec if path.is_file() else None
    except ReportError:  # a torn report: nothing to say of its spec
        return None


def _checked(path: Path, log: ObservationLog, settings: AnalysisSettings) -> ObservationLog:
    try:
        settings_for_log(settings, log)
    except LogFormatError as exc:
        raise ObservationLogError(f"{path}: {exc}") from exc
    return log


def _replay_one(
    path: Path, log: ObservationLog, settings: AnalysisSettings, judge: JudgeName, out: TextIO, label: bool
) -> None:
    for verdict in judge_log(log, settings, judge=judge):
        line = verdict.to_dict()
        if label:
            line = {"log": str(path), **line}
        out.write(json.dumps(line, allow_nan=False, separators=(",", ":")) + "\n")
        out.flush()


def run_replay(
    logs: Sequence[Path],
    *,
    config: Path | None = None,
    judge: str = "sequential",
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """Replay each log through the judge and write JSON lines to `out`.

    Parameters
    ----------
    logs
        Observation log files (``canaryflow/observations@1``).
    config
        A rollout spec whose analysis settings apply; ``None`` for the project's defaults.
    judge
        ``sequential`` (the anytime-valid judge) or ``kayenta`` (Spinnaker Kayenta's rule).
    out
        Where the JSON lines go.
    err
        Where warnings go (``None``: nowhere).

    Returns
    -------
    int
        The exit code: 0 (every log was judged).

    Raises
    ------
    ObservationLogError
        A log is unreadable, malformed, or does not fit the settings (exit code 2); raised before
        anything is written.
    UsageError
        No logs, or an unknown judge (exit code 2).
    """
    if judge != "sequential" and judge != "kayenta":
        raise UsageError(f"unknown judge {judge!r}: expected one of {', '.join(JUDGES)}")
    if not logs:
        raise UsageError("no observation logs given")
    name: JudgeName = "kayenta" if judge == "kayenta" else "sequential"
    settings = load_settings(config)
    logs_read = [(path, read_log(path)) for path in logs]
    parsed = [
        (path, _checked(path, log, settings), settings if config is not None else default_settings_for(log))
        for path, log in logs_read
    ]
    if err is not None:
        for path, log, _ in parsed:
            err.writelines(f"canaryflow: warning: {path}: {warning}\n" for warning in cross_checks(log))
            spec = None if config is not None else _spec_of_report(path)
            if spec is not None:
                err.write(
                    f"canaryflow: warning: {path}: judged with the project's default analysis settings; "
                    f"its rollout ran the spec {spec} (as its run saw it): give --config "
                    f"{shlex.quote(spec)} to judge with that spec's settings\n"
                )
    for path, log, judged_by in parsed:
        _replay_one(path, log, judged_by, name, out, label=len(parsed) > 1)
    return 0
