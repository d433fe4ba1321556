"""Loading specs: every problem at once, each with file, line and path."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from canaryflow.errors import SpecError
from canaryflow.spec import json_schema, load_spec, load_spec_text, validate_files

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "config" / "rollouts").glob("*.yaml"))
WEB = ROOT / "config" / "rollouts" / "web.yaml"

MINIMAL = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata:
  name: web
spec:
  target: {namespace: shop, deployment: web, container: web, service: web}
  steps:
    - setWeight: 10
"""


def _problems(text: str, source: str = "x.yaml") -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, source=source)
    return caught.value.problems


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_specs_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.steps


def test_the_issue_example_message_exactly() -> None:
    text = WEB.read_text(encoding="utf-8").replace("- setWeight: 50", "- setWeight: 120")
    assert _problems(text, source="config/rollouts/web.yaml") == [
        "config/rollouts/web.yaml:14 spec.steps[2].setWeight: must be between 1 and 100"
    ]


def test_every_problem_is_reported_at_once_sorted_by_line() -> None:
    text = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata:
  name: Web
spec:
  target: {namespace: shop, deployment: web, container: web}
  progresDeadline: 5m
  steps:
    - setWeight: 0
    - pause: {duration: 30}
    - setWeight: 10
      pause: {duration: 1m}
  analysis:
    metrics:
      - name: errors
        type: ratio
        bad: 'sum(x{track="{track}", zone="{zone}"})'
      - name: lat
        type: histo
        query: x
"""
    assert _problems(text) == [
        "x.yaml:4 metadata.name: must be lowercase letters, digits and '-', "
        "starting and ending with a letter or digit",
        "x.yaml:6 spec.target.service: is required",
        "x.yaml:7 spec.progresDeadline: unknown key (did you mean progressDeadline?)",
        "x.yaml:9 spec.steps[0].setWeight: must be between 1 and 100",
        "x.yaml:10 spec.steps[1].pause.duration: must be a duration like 30s, 5m or 1h, with its unit",
        "x.yaml:11 spec.steps[2]: a step has exactly one of setWeight, pause, analyze",
        "x.yaml:15 spec.analysis.metrics[0].total: is required",
        "x.yaml:17 spec.analysis.metrics[0].bad: unknown template variable {zone} "
        "(allowed: {app} {cell} {interval} {namespace} {track})",
        "x.yaml:19 spec.analysis.metrics[1].type: "
        "must be one of: 'ratio', 'histogram', 'samples' (got 'histo')",
    ]


def test_misspelt_keys_are_errors_with_a_suggestion() -> None:
    text = MINIMAL.replace("- setWeight: 10", "- setweight: 10")
    assert _problems(text) == ["x.yaml:8 spec.steps[0].setweight: unknown key (did you mean setWeight?)"]


def test_a_key_of_another_metric_type_is_not_allowed_here() -> None:
    text = (
        MINIMAL
        + "  analysis:\n    metrics:\n      - {name: cpu, type: samples, bad: 'x{track=\"{track}\"}'}\n"
    )
    assert _problems(text) == [
        "x.yaml:11 spec.analysis.metrics[0].query: is required",
        "x.yaml:11 spec.analysis.metrics[0].bad: not allowed here",
    ]


def test_a_template_without_track_cannot_tell_canary_from_baseline() -> None:
    text = (
        MINIMAL + "  analysis:\n    metrics:\n      - name: cpu\n        type: samples\n        query: up\n"
    )
    assert _problems(text) == [
        "x.yaml:13 spec.analysis.metrics[0].query: must select by {track}, or canary and baseline cannot be "
        "told apart"
    ]


def test_cross_field_problems_name_their_own_place() -> None:
    text = MINIMAL.replace(
        "    - setWeight: 10\n",
        "    - analyze: {interval: 1m, maxDuration: 30s}\n    - setWeight: 60\n",
    )
    assert _problems(text) == [
        "x.yaml:8 spec.steps[0].analyze: needs a canary: put a setWeight step before it",
        "x.yaml:8 spec.steps[0].analyze.maxDuration: must be at least the interval",
        "x.yaml:9 spec.steps[1].setWeight: must be at most 50 with a baseline "
        "(canary and baseline have the same size); set baseline: false for higher weights",
    ]


def test_the_api_outage_tolerance_is_at_most_the_progress_deadline() -> None:
    explicit = MINIMAL.replace("  steps:\n", "  progressDeadline: 2m\n  apiOutageTolerance: 5m\n  steps:\n")
    assert _problems(explicit) == [
        "x.yaml:8 spec.apiOutageTolerance: must be at most the progressDeadline (2m): a step never "
        "waits longer for the API server than for its pods"
    ]
    default = load_spec_text(MINIMAL.replace("  steps:\n", "  progressDeadline: 2m\n  steps:\n"))
    assert default.spec.outage_tolerance == timedelta(minutes=2)  # the default of 3m, cut to the deadline
    assert load_spec_text(MINIMAL).spec.outage_tolerance == timedelta(minutes=3)


def test_a_sound_order_of_steps_passes_the_cross_checks() -> None:
    text = MINIMAL.replace(
        "    - setWeight: 10\n", "    - setWeight: 50\n    - analyze: {interval: 1m, maxDuration: 5m}\n"
    )
    spec = load_spec_text(text)
    assert [step.kind for step in spec.steps] == ["setWeight", "analyze"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [1, 2\n", "x.yaml:2 "),
        ("", "x.yaml:1 the file holds no document"),
        ("a: 1\na: 2\n", "x.yaml:2 "),
        ("- 1\n", "x.yaml:1 (document): must be a mapping"),
        ("a: 1\n---\nb: 2\n", "x.yaml:2 a second document (---): one rollout spec per file"),
    ],
    ids=["syntax", "empty", "duplicate-key", "not-a-mapping", "two-documents"],
)
def test_broken_yaml_names_the_line(text: str, problem: str) -> None:
    problems = _problems(text)
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_yaml_nested_too_deeply_is_one_problem_not_a_crash() -> None:
    deep = "a: " + "[" * 20_000 + "]" * 20_000 + "\n"
    assert _problems(deep) == ["x.yaml:1 lists or mappings nested too deeply"]


def test_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as caught:
        load_spec(missing)
    assert caught.value.problems == [
        f"{missing}: no such rollout spec (give the path of one; examples are in config/rollouts/)"
    ]
    assert caught.value.summary() == caught.value.problems[0]  # one line for a terminal
    directory = tmp_path / "a-directory.yaml"
    directory.mkdir()
    with pytest.raises(SpecError) as unreadable:
        load_spec(directory)
    assert unreadable.value.problems == [f"{directory}: Is a directory"]


def test_validate_files_prints_problems_and_returns_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("setWeight: 10", "setWeight: 101"), encoding="utf-8")
    out = io.StringIO()

    assert validate_files([WEB, bad], out) == 1
    assert out.getvalue().splitlines() == [
        f"{WEB}: ok",
        f"{bad}:8 spec.steps[0].setWeight: must be between 1 and 100",
    ]
    assert validate_files([WEB], io.StringIO()) == 0


def test_validate_files_names_an_unknown_kind_and_webhook_routes_in_one_line(tmp_path: Path) -> None:
    foo = tmp_path / "foo.yaml"
    foo.write_text(MINIMAL.replace("kind: Rollout", "kind: Foo"), encoding="utf-8")
    routes = Path(__file__).resolve().parents[3] / "config" / "routes.yaml"
    out = io.StringIO()

    assert validate_files([foo, routes], out) == 1
    assert out.getvalue().splitlines() == [
        f"{foo}:2 kind: 'Foo' is not a kind of spec: canaryflow knows Rollout, Release and Notifications",
        f"{routes}: webhook routes, not a spec: `canaryflow webhook serve --config` reads them "
        "(`canaryflow spec validate` checks them too)",
    ]
    with pytest.raises(SpecError) as caught:  # the same, where a rollout spec is expected
        load_spec(routes)
    assert caught.value.problems == [out.getvalue().splitlines()[1]]


def test_a_spec_of_another_kind_is_one_problem_naming_its_kind_and_command() -> None:
    release = Path(__file__).resolve().parents[3] / "config" / "releases" / "web.yaml"
    line = next(i for i, text in enumerate(release.read_text().splitlines(), 1) if text.startswith("kind:"))
    with pytest.raises(SpecError) as caught:
        load_spec(release)
    assert caught.value.problems == [
        f"{release}:{line} kind: a Release spec, where a Rollout spec is expected (`canaryflow release` "
        "takes it)"
    ]


def test_json_schema_uses_the_yaml_keys_and_forbids_unknown_ones() -> None:
    schema = json_schema()
    json.dumps(schema)  # serialisable as is
    defs = schema["$defs"]
    assert set(defs["Step"]["properties"]) == {"setWeight", "pause", "analyze"}
    assert defs["Step"]["additionalProperties"] is False
    assert defs["Analyze"]["properties"]["maxDuration"]["type"] == "string"
    assert "progressDeadline" in defs["RolloutBody"]["properties"]
    assert defs["RatioMetric"]["required"] == ["name", "type", "bad", "total"]
    # an editor refuses what validation refuses: a raise takes at most half the pods
    (raise_to, _) = defs["Analyze"]["properties"]["maxWeight"]["anyOf"]
    assert (raise_to["minimum"], raise_to["maximum"]) == (1, 50)


def test_ceilings_are_checked_where_they_are_written() -> None:
    metrics = (
        "  analysis:\n    metrics:\n"
        "      - name: latency\n        type: histogram\n        maxRate: 0.01\n"
        "        query: 'sum by (le) (x_bucket{track=\"{track}\"})'\n"
        "      - name: cpu\n        type: samples\n        maxRate: 0.5\n"
        "        query: 'x{track=\"{track}\"}'\n"
    )
    assert _problems(MINIMAL + metrics) == [
        "x.yaml:11 spec.analysis.metrics[0]: a histogram's ceiling (maxRate) needs slowerThan: the latency "
        "above which requests count",
        "x.yaml:17 spec.analysis.metrics[1].maxRate: a ceiling applies to ratio and histogram metrics, "
        "not to samples metrics",
    ]


def test_an_slo_ceiling_is_read_and_checked_where_it_is_written() -> None:
    metrics = (
        "  analysis:\n    metrics:\n"
        "      - name: errors\n        type: ratio\n        objective: 0.999\n        maxBurnRate: 2\n"
        "        bad: 'x{track=\"{track}\"}'\n        total: 'y{track=\"{track}\"}'\n"
    )
    both = metrics.replace("maxBurnRate: 2", "maxRate: 0.002")
    (errors,) = load_spec_text(MINIMAL + metrics, source="x.yaml").analysis_settings().metrics
    assert errors.ceiling == pytest.approx(0.002)
    assert _problems(MINIMAL + both) == [
        "x.yaml:11 spec.analysis.metrics[0]: give maxRate, or objective (with maxBurnRate), not both: both "
        "set the ceiling",
    ]


def test_an_absolute_tolerance_is_checked_where_it_is_written() -> None:
    metrics = (
        "  analysis:\n    metrics:\n"
        "      - name: cpu\n        type: samples\n        maxIncrease: 0.01\n"
        "        query: 'x{track=\"{track}\"}'\n"
        "      - name: errors\n        type: ratio\n        maxIncrease: 0.005\n"
        "        bad: 'x{track=\"{track}\"}'\n        total: 'y{track=\"{track}\"}'\n"
    )
    assert _problems(MINIMAL + metrics) == [
        "x.yaml:13 spec.analysis.metrics[0].maxIncrease: an absolute tolerance applies to ratio and "
        "histogram metrics, not to samples metrics",
    ]


def test_a_latency_takes_an_absolute_tolerance_in_its_unit() -> None:
    metrics = (
        "  analysis:\n    metrics:\n"
        "      - name: latency\n        type: histogram\n        maxIncrease: 0.02\n"
        "        query: 'sum by (le) (x_bucket{track=\"{track}\"})'\n"
    )
    settings = load_spec_text(MINIMAL + metrics, source="x.yaml").analysis_settings()
    assert settings.metrics[0].max_increase == 0.02
    in_ms = metrics.replace("maxIncrease: 0.02\n", "maxIncrease: 20\n        unit: milliseconds\n")
    assert load_spec_text(MINIMAL + in_ms, source="x.yaml").analysis_settings().metrics[0].max_increase == 20


@pytest.mark.parametrize(("unit", "shift", "seconds"), [("seconds", "20", "20"), ("ms", "1000", "1")])
def test_a_latency_tolerance_of_a_second_or_more_is_refused_as_a_slip_of_units(
    unit: str, shift: str, seconds: str
) -> None:
    # "maxIncrease: 20" meant as 20 ms on a histogram in seconds would let nearly any canary through
    metrics = (
        "  analysis:\n    metrics:\n"
        f"      - name: latency\n        type: histogram\n        maxIncrease: {shift}\n"
        f"        unit: {unit}\n"
        "        query: 'sum by (le) (x_bucket{track=\"{track}\"})'\n"
    )
    (problem,) = _problems(MINIMAL + metrics)
    assert problem.startswith(
        f"x.yaml:11 spec.analysis.metrics[0]: maxIncrease {shift} on a histogram in {unit} is "
    )
    assert (
        f"is {seconds} s, which lets nearly any canary through: give it in {unit}, below a second" in problem
    )


def test_spec_validate_lists_every_problem_of_a_routes_file_and_serve_points_to_it(tmp_path: Path) -> None:
    """`webhook serve` says the first problem; the command it names lists them all (it refused
    routes files before, so the others were only seen in a --debug traceback)."""
    import os
    import subprocess
    import sys

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "deployment: rollout/rollout\nroutes:\n"
        "  - {repository: acme/web, branch: main, rollout: config/rollouts/web.yaml}\n"
        "  - {repository: acme/api, brnch: main, rollout: config/rollouts/web.yaml, image: 'x:{sha}'}\n"
    )
    repository = Path(__file__).resolve().parents[3]
    env = {**os.environ, "CANARYFLOW_GITHUB_SECRET": "a-secret-long-enough-for-the-check"}

    def canaryflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "canaryflow", *args],
            cwd=repository, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    validated = canaryflow("spec", "validate", str(routes))
    from canaryflow.dev.processes import free_port

    port = str(free_port())
    served = canaryflow("webhook", "serve", "--config", str(routes), "--port", port, "--metrics-port", "0")
    assert validated.returncode == 1
    problems = validated.stdout.splitlines()
    assert len(problems) >= 2
    assert problems[0].startswith(f"{routes}:3 routes[0].image: ")
    assert any("brnch" in line for line in problems)
    assert served.returncode == 1
    assert served.stderr.splitlines() == [
        f"canaryflow: error: {problems[0]} (and {len(problems) - 1} more: canaryflow spec validate {routes})"
    ]


def test_spec_validate_of_routes_checks_the_spec_each_route_names(tmp_path: Path) -> None:
    """As webhook serve does: a routes file whose route names a missing spec is not ok."""
    import subprocess
    import sys

    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "deployment: rollout/rollout\nroutes:\n"
        "  - {repository: acme/web, branch: main, rollout: config/rollouts/nope.yaml, image: 'x:{sha}'}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "canaryflow", "spec", "validate", str(routes)],
        cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"{routes}: routes[0] (acme/web) rolls out config/rollouts/nope.yaml: ")


def test_error_budgets_and_margins_too_small_to_compute_with_are_refused() -> None:
    metrics = (
        "  analysis:\n    alpha: 5.0e-324\n    metrics:\n"
        "      - name: errors\n        type: ratio\n        maxIncrease: 5.0e-324\n"
        "        bad: 'x{track=\"{track}\"}'\n        total: 'y{track=\"{track}\"}'\n"
    )
    assert _problems(MINIMAL + metrics) == [
        "x.yaml:10 spec.analysis.alpha: must be at least 1e-12",
        "x.yaml:14 spec.analysis.metrics[0].maxIncrease: must be at least 1e-09",
    ]
