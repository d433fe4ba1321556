"""``canaryflow replay``'s runner: JSON lines per interval, the final line, errors that name the place."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canaryflow.cli.backtest import run_replay
from canaryflow.errors import ObservationLogError, UsageError, exit_code_for

EXAMPLE: dict[str, Any] = {
    "format": "canaryflow/observations@1",
    "interval_seconds": 30,
    "metrics": {
        "error-rate": {"type": "ratio"},
        "latency": {"type": "histogram", "unit": "seconds", "le": [0.05, 0.1, 0.25, 0.5, 1.0, "+Inf"]},
        "cpu": {"type": "samples"},
    },
    "intervals": [
        {
            "error-rate": {"baseline": {"bad": 3, "total": 600}, "canary": {"bad": 4, "total": 598}},
            "latency": {
                "baseline": {"counts": [300, 500, 580, 597, 600, 600]},
                "canary": {"counts": [280, 490, 577, 595, 598, 598]},
            },
            "cpu": {"baseline": [0.21, 0.25], "canary": [0.22, 0.31]},
        },
        {"error-rate": None, "latency": None, "cpu": None},
    ],
}


def _write(tmp_path: Path, name: str, document: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def _outage(intervals: int) -> dict[str, Any]:
    document = json.loads(json.dumps(EXAMPLE))
    row = {"error-rate": {"baseline": {"bad": 3, "total": 600}, "canary": {"bad": 300, "total": 600}}}
    document["intervals"] = [row] * intervals
    return document


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_design_example_replays_to_an_inconclusive_final_line(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_replay([_write(tmp_path, "a.json", EXAMPLE)], config=None, judge="sequential", out=out) == 0
    lines = _lines(out)
    assert [line["interval"] for line in lines] == [1, 2]
    assert [line["final"] for line in lines] == [False, True]
    assert lines[-1]["decision"] == "inconclusive"
    assert "log" not in lines[0]
    assert set(lines[0]["metrics"]) == {"error-rate", "latency", "cpu"}
    evidence = lines[0]["metrics"]["error-rate"]
    for key in ("estimate", "interval", "evalue", "pvalue", "canary_count", "baseline_count", "reason"):
        assert key in evidence


def test_the_judge_stops_at_its_decision_and_several_logs_are_labelled(tmp_path: Path) -> None:
    first = _write(tmp_path, "outage.json", _outage(20))
    second = _write(tmp_path, "example.json", EXAMPLE)
    out = io.StringIO()
    run_replay([first, second], config=None, judge="sequential", out=out)
    lines = _lines(out)
    assert all("log" in line for line in lines)
    outage = [line for line in lines if line["log"] == str(first)]
    assert outage[-1] == {**outage[-1], "final": True, "decision": "rollback", "interval": 2}
    assert [line["final"] for line in outage] == [False, True]
    assert [line for line in lines if line["log"] == str(second)][-1]["final"] is True


def test_the_kayenta_judge_replays_too(tmp_path: Path) -> None:
    out = io.StringIO()
    run_replay([_write(tmp_path, "outage.json", _outage(40))], config=None, judge="kayenta", out=out)
    lines = _lines(out)
    assert lines[-1]["decision"] == "rollback"
    assert lines[-1]["interval"] == 10
    assert lines[-1]["judge"] == "kayenta"
    assert lines[-1]["score"] < 75


def test_a_malformed_log_exits_2_and_names_the_place(tmp_path: Path) -> None:
    document = json.loads(json.dumps(EXAMPLE))
    document["intervals"] = [document["intervals"][0]] * 4
    document["intervals"][3] = json.loads(json.dumps(document["intervals"][0]))
    document["intervals"][3]["latency"]["canary"]["counts"] = [280, 490, 477, 595, 598, 598]
    path = _write(tmp_path, "bad.json", document)
    out = io.StringIO()
    with pytest.raises(ObservationLogError) as caught:
        run_replay([path], config=None, judge="sequential", out=out)
    assert str(caught.value) == f"{path}: intervals[3].latency.canary.counts: not cumulative"
    assert exit_code_for(caught.value) == 2  # a log replay cannot judge (README's table)
    assert out.getvalue() == ""


def test_unreadable_logs_and_unknown_judges_exit_2(tmp_path: Path) -> None:
    with pytest.raises(ObservationLogError, match="cannot read") as unreadable:
        run_replay([tmp_path / "missing.json"], config=None, judge="sequential", out=io.StringIO())
    assert exit_code_for(unreadable.value) == 2
    with pytest.raises(UsageError) as caught:
        run_replay([_write(tmp_path, "a.json", EXAMPLE)], config=None, judge="flagger", out=io.StringIO())
    assert exit_code_for(caught.value) == 2


def test_a_spec_names_the_metrics_and_their_settings(tmp_path: Path) -> None:
    spec = tmp_path / "web.yaml"
    spec.write_text(
        "apiVersion: canaryflow/v1\nkind: Rollout\nmetadata: {name: web}\nspec:\n"
        "  target: {namespace: shop, deployment: web, container: web, service: web}\n"
        "  steps:\n    - setWeight: 10\n    - analyze: {interval: 30s, maxDuration: 10m}\n"
        "  analysis:\n    metrics:\n      - name: error-rate\n        type: ratio\n        critical: true\n"
        "        bad: 'sum(increase(errors{track=\"{track}\"}[{interval}]))'\n"
        "        total: 'sum(increase(requests{track=\"{track}\"}[{interval}]))'\n"
    )
    pytest.importorskip("canaryflow.spec")
    out = io.StringIO()
    run_replay([_write(tmp_path, "outage.json", _outage(10))], config=spec, judge="sequential", out=out)
    lines = _lines(out)
    assert set(lines[-1]["metrics"]) == {"error-rate"}
    assert lines[-1]["decision"] == "rollback"


class _Recorder(io.StringIO):
    """Standard output as a pipe sees it: what was flushed, line by line."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[int] = []

    def flush(self) -> None:
        super().flush()
        self.flushed.append(len(self.getvalue().splitlines()))


def test_each_line_is_flushed_as_the_judge_produces_it(tmp_path: Path) -> None:
    document = json.loads(json.dumps(EXAMPLE))
    document["intervals"] = [EXAMPLE["intervals"][0]] * 6
    out = _Recorder()
    run_replay([_write(tmp_path, "a.json", document)], config=None, judge="sequential", out=out)
    lines = len(out.getvalue().splitlines())
    assert lines >= 3
    assert out.flushed == list(range(1, lines + 1))


def test_a_bad_later_log_stops_the_replay_before_anything_is_written(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(EXAMPLE))
    bad["interval_seconds"] = 5e-324
    out = io.StringIO()
    with pytest.raises(ObservationLogError, match=r"b\.json: interval_seconds: .* is outside") as caught:
        run_replay(
            [_write(tmp_path, "a.json", EXAMPLE), _write(tmp_path, "b.json", bad)],
            config=None,
            judge="sequential",
            out=out,
        )
    assert exit_code_for(caught.value) == 2
    assert out.getvalue() == ""


def test_metrics_that_disagree_on_the_requests_are_judged_with_a_warning(tmp_path: Path) -> None:
    document = json.loads(json.dumps(EXAMPLE))
    document["intervals"][0]["error-rate"]["canary"] = {"bad": 40, "total": 5980}
    path = _write(tmp_path, "a.json", document)
    out, err = io.StringIO(), io.StringIO()
    run_replay([path], config=None, judge="sequential", out=out, err=err)
    assert err.getvalue() == (
        f"canaryflow: warning: {path}: metrics.error-rate and metrics.latency disagree on the canary's "
        "requests (5980 vs 598 over the log): do they count the same requests?\n"
    )
    assert _lines(out)[-1]["final"] is True


def test_replay_stays_light(tmp_path: Path) -> None:
    path = _write(tmp_path, "outage.json", _outage(40))
    (tmp_path / "status.json").write_text(  # read too
        json.dumps({"rollout_id": "web-1", "target": "shop/web", "image": "web:2", "steps": 3,
                    "spec": "config/rollouts/web.yaml", "triggered_by": "test"})
    )  # fmt: skip
    code = (
        "import io, sys, pathlib\n"
        "from canaryflow.cli.backtest import run_replay\n"
        f"run_replay([pathlib.Path({str(path)!r})], config=None, judge='sequential', out=io.StringIO(), "
        "err=io.StringIO())\n"
        "heavy = {'prefect', 'kubernetes', 'fastapi', 'starlette', 'uvicorn', 'scipy', 'httpx'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


#: Numbers at the edges of float's range (``NaN`` and ``Infinity`` are tokens Python's json reads).
_NUMBERS = st.one_of(
    st.floats(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 3, 600, 1e308, -1e308, 5e-324, 2**53, 2**53 + 2, 10**309, 1e-300, 86_400.5]),
)
#: What an edit may write anywhere in a log: numbers, other JSON values and small containers.
_VALUES = st.one_of(
    _NUMBERS,
    st.none(),
    st.booleans(),
    st.sampled_from(["+Inf", "ratio", "histogram", "samples", ""]),
    st.text(max_size=6),
    st.lists(st.one_of(st.integers(-5, 700), st.floats(), st.just("+Inf")), max_size=7),
    st.dictionaries(st.sampled_from(["bad", "total", "counts", "le"]), st.integers(-1, 700), max_size=3),
)


def _places(document: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    places = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            places += _places(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            places += _places(value, (*prefix, index))
    return places


def _at(document: Any, place: tuple[str | int, ...]) -> Any:
    for key in place:
        document = document[key]
    return document


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _edit(document: Any, place: tuple[str | int, ...], delete: bool, value: object) -> None:
    """Delete or replace what is at `place`; nothing where an earlier edit left no such place."""
    parent = document
    for key in place[:-1]:
        if not _has(parent, key):
            return
        parent = parent[key]
    last = place[-1]
    if isinstance(parent, dict) and delete:
        parent.pop(last, None)
    elif isinstance(parent, dict) or _has(parent, last):
        parent[last] = value


def _has(container: Any, key: str | int) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


@settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), judge=st.sampled_from(["sequential", "kayenta"]))
def test_any_edit_of_a_log_replays_or_is_refused_naming_the_place(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, judge: str
) -> None:
    document = json.loads(json.dumps(EXAMPLE))
    document["intervals"] = [json.loads(json.dumps(EXAMPLE["intervals"][0])) for _ in range(5)]
    numbers = data.draw(st.booleans(), label="numbers only")  # half the runs edit numbers alone
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        places = _places(document)[1:]
        if numbers:
            places = [place for place in places if _is_number(_at(document, place))] or places
        place = data.draw(st.sampled_from(places), label="place")
        delete = not numbers and data.draw(st.booleans(), label="delete")
        value = data.draw(_NUMBERS if numbers else _VALUES, label="value")
        # An edit inside an interval may be made in every interval (a track that always reports so).
        column = place[0] == "intervals" and len(place) > 2 and data.draw(st.booleans(), label="column")
        for index in range(len(document["intervals"])) if column else [None]:
            _edit(document, place if index is None else ("intervals", index, *place[2:]), delete, value)
    path = tmp_path_factory.mktemp("edited") / "log.json"
    path.write_text(json.dumps(document))
    out = io.StringIO()
    refused: ObservationLogError | None = None
    try:
        assert run_replay([path], config=None, judge=judge, out=out, err=io.StringIO()) == 0
    except ObservationLogError as error:
        refused = error
    if refused is not None:
        assert str(refused).startswith(f"{path}: ")
        assert "\n" not in str(refused)
        assert out.getvalue() == ""
        return
    lines = [json.loads(line, parse_constant=pytest.fail) for line in out.getvalue().splitlines()]
    assert [line["final"] for line in lines] == [False] * (len(lines) - 1) + [True]
    for metric in (m for line in lines for m in line["metrics"].values()):
        low, high, estimate = *metric["interval"], metric["estimate"]
        if estimate is not None:  # the printed interval contains the printed estimate
            assert low is None or low <= estimate + 1e-9 * abs(estimate)
            assert high is None or estimate <= high + 1e-9 * abs(estimate)
    assert lines[-1]["decision"] in {"promote", "rollback", "inconclusive"}
    no_intervals = not document["intervals"]  # one final line, at interval 0
    assert [line["interval"] for line in lines] == ([0] if no_intervals else list(range(1, len(lines) + 1)))


def test_a_report_s_log_replayed_without_its_spec_says_which_spec_the_rollout_ran(tmp_path: Path) -> None:
    path = _write(tmp_path, "observations-step2.json", EXAMPLE)
    from canaryflow.reports import write_status
    from canaryflow.status import RolloutStatus

    status = RolloutStatus(
        rollout_id="web-1", target="shop/web", image="web:2", spec="config/rollouts/web.yaml",
        triggered_by="test", steps=3,
    )  # fmt: skip
    write_status(tmp_path, status)  # the report's own status.json, beside its observation log
    out, err = io.StringIO(), io.StringIO()
    run_replay([path], config=None, judge="sequential", out=out, err=err)
    assert err.getvalue() == (
        f"canaryflow: warning: {path}: judged with the project's default analysis settings; its rollout "
        "ran the spec config/rollouts/web.yaml (as its run saw it): give --config config/rollouts/web.yaml "
        "to judge with that spec's settings\n"
    )
    assert _lines(out)[-1]["final"] is True


def test_without_a_config_a_default_metric_is_judged_as_a_spec_without_an_analysis_section_does(
    tmp_path: Path,
) -> None:
    # 0.005 % errors on both tracks: only the default error-rate's ceiling (maxRate 0.1 %) can
    # show it within tolerance; a relative test never could, with so few errors.
    row = {"error-rate": {"baseline": {"bad": 1, "total": 20_000}, "canary": {"bad": 1, "total": 20_000}}}
    document = {
        "format": "canaryflow/observations@1",
        "interval_seconds": 30,
        "metrics": {"error-rate": {"type": "ratio"}, "errors": {"type": "ratio"}},
        "intervals": [{**row, "errors": row["error-rate"]}] * 40,
    }
    out = io.StringIO()
    run_replay([_write(tmp_path, "low.json", document)], config=None, judge="sequential", out=out)
    final = _lines(out)[-1]
    assert final["metrics"]["error-rate"]["status"] == "within"
    assert "ceiling" in final["metrics"]["error-rate"]["reason"]
    assert "ceiling" not in final["metrics"]["errors"]["reason"]  # not a default metric: its type's defaults


def test_with_a_config_the_analyze_step_of_the_logs_interval_sets_the_maximum(tmp_path: Path) -> None:
    # the demo's analyze step: every 5 s, at most 2 minutes, so the live judge ended at interval 24
    document = json.loads(json.dumps(EXAMPLE))
    document["interval_seconds"] = 5
    document["intervals"] = [EXAMPLE["intervals"][0]] * 60
    spec = Path(__file__).resolve().parents[3] / "config" / "rollouts" / "demo.yaml"
    out, err = io.StringIO(), io.StringIO()
    run_replay([_write(tmp_path, "demo.json", document)], config=spec, judge="sequential", out=out, err=err)
    assert _lines(out)[-1]["interval"] == 24
    assert "no analyze step" not in err.getvalue()

    document["interval_seconds"] = 30  # no step of the demo's has 30 s: said, not silently changed
    out, err = io.StringIO(), io.StringIO()
    run_replay([_write(tmp_path, "other.json", document)], config=spec, judge="sequential", out=out, err=err)
    assert "its intervals are 30 s, and no analyze step of the spec has that interval (5 s)" in err.getvalue()


def test_with_a_config_a_report_logs_name_says_which_analyze_step_it_is(tmp_path: Path) -> None:
    # web.yaml has two analyze steps of 30 s: step 2 for at most 10 minutes, step 4 for 15
    document = json.loads(json.dumps(EXAMPLE))
    document["intervals"] = [EXAMPLE["intervals"][0]] * 40
    spec = Path(__file__).resolve().parents[3] / "config" / "rollouts" / "web.yaml"
    ends = {}
    for name in ("observations-step2.json", "observations-step4.json", "copied.json"):
        out, err = io.StringIO(), io.StringIO()
        run_replay([_write(tmp_path, name, document)], config=spec, judge="sequential", out=out, err=err)
        ends[name] = (_lines(out)[-1]["interval"], "different settings" in err.getvalue())
    assert ends == {
        "observations-step2.json": (20, False),
        "observations-step4.json": (30, False),
        "copied.json": (20, True),  # ambiguous: the first such step, said
    }
