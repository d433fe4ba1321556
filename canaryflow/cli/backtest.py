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
types and report paths, and the rollout spec models (a spec's defaults, or ``--config``'s). No
Prefect, Kubernetes or FastAPI. With ``--config`` a log is judged with the settings of the spec's
analyze step of the log's interval, its maximum duration included (`settings_for`).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from analysis.backtest import JudgeName, judge_log, settings_for_log
from analysis.logs import LogFormatError, ObservationLog, cross_checks, parse_log
from analysis.settings import AnalysisSettings
from canaryflow.errors import ObservationLogError, UsageError

if TYPE_CHECKING:
    from canaryflow.spec import RolloutSpec

__all__ = ["JUDGES", "default_settings_for", "read_log", "run_replay", "settings_for"]

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


def settings_for(
    spec: RolloutSpec | None, log: ObservationLog, path: Path | None = None
) -> tuple[AnalysisSettings, str | None]:
    """The settings `log` (read from `path`) is judged with, and a warning when they may not be
    those its analysis ran: without a spec, `default_settings_for`; with one, those of the analyze
    step the log's file is named after (``observations-step<N>.json``, as a rollout's report names
    it) when that step has the log's interval, else of the spec's analyze steps with that interval
    (warned about when they differ), else the spec's without a step's."""
    if spec is None:
        return default_settings_for(log), None
    steps = [(i, s.analyze) for i, s in enumerate(spec.steps, start=1) if s.analyze is not None]
    same = [(i, a) for i, a in steps if math.isclose(a.interval.total_seconds(), log.interval_seconds)]
    named = _STEP_LOG.fullmatch(path.name) if path is not None else None
    chosen = [(i, a) for i, a in same if named is not None and i == int(named.group(1))] or same
    if chosen:
        settings = [spec.analysis_settings(a) for _, a in chosen]
        if any(other != settings[0] for other in settings[1:]):
            which = ", ".join(str(i) for i, _ in chosen)
            return settings[0], (
                f"the spec's analyze steps {which} have its interval with different settings: judged "
                f"with step {chosen[0][0]}'s; name the log observations-step<N>.json after its step"
            )
        return settings[0], None
    intervals = ", ".join(sorted({f"{a.interval.total_seconds():g} s" for _, a in steps})) or "none"
    return spec.analysis_settings(), (
        f"its intervals are {log.interval_seconds:g} s, and no analyze step of the spec has that interval "
        f"({intervals}): judged with the spec's analysis settings and the default maximum duration; "
        "give the spec the log's analysis ran"
    )


#: A rollout report's observation log: ``observations-step<N>.json`` (`canaryflow.reports`).
_STEP_LOG = re.compile(r"observations-step(\d{1,4})\.json")


def _load_spec(config: Path) -> RolloutSpec:
    from canaryflow.spec import load_spec

    return load_spec(config)


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
    spec = None if config is None else _load_spec(config)
    parsed = []
    for path in logs:
        log = read_log(path)
        settings, mismatch = settings_for(spec, log, path)
        parsed.append((path, _checked(path, log, settings), settings, mismatch))
    if err is not None:
        for path, log, _, mismatch in parsed:
            err.writelines(f"canaryflow: warning: {path}: {warning}\n" for warning in cross_checks(log))
            if mismatch is not None:
                err.write(f"canaryflow: warning: {path}: {mismatch}\n")
            ran = None if config is not None else _spec_of_report(path)
            if ran is not None:
                err.write(
                    f"canaryflow: warning: {path}: judged with the project's default analysis settings; "
                    f"its rollout ran the spec {ran} (as its run saw it): give --config "
                    f"{shlex.quote(ran)} to judge with that spec's settings\n"
                )
    for path, log, settings, _ in parsed:
        _replay_one(path, log, settings, name, out, label=len(parsed) > 1)
    return 0
