"""The spec models: defaults, the judge's settings built from a spec, and direct construction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

import canaryflow.spec as spec_package
from analysis.settings import AnalysisSettings, MetricSettings
from canaryflow.errors import SpecError
from canaryflow.querytemplates import cell_matchers, render
from canaryflow.spec import DEFAULT_METRICS, RatioMetric, RolloutSpec, load_spec_text

MINIMAL = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata:
  name: web
spec:
  target: {namespace: shop, deployment: web, container: web, service: web}
  steps:
    - setWeight: 10
    - analyze: {interval: 1m, maxDuration: 20m}
    - pause: {approval: true}
"""

WITH_ANALYSIS = """\
  analysis:
    alpha: 0.01
    minExposureSeconds: 120
    kayenta: {passScore: 90}
    metrics:
      - name: errors
        type: ratio
        tolerance: 0.3
        critical: true
        minIntervals: 4
        bad: 'sum(increase(x{track="{track}", code=~"5.."}[{interval}]))'
        total: 'sum(increase(x{track="{track}"}[{interval}]))'
      - name: cpu
        type: samples
        direction: either
        query: 'rate(cpu{app="{app}", track="{track}"}[{interval}])'
"""


def test_defaults() -> None:
    spec = load_spec_text(MINIMAL)
    body = spec.spec
    assert body.baseline is True
    assert body.progress_deadline == timedelta(minutes=10)
    assert (body.failure_policy.on_failure, body.failure_policy.on_inconclusive) == ("rollback", "rollback")
    assert body.analysis.metrics == DEFAULT_METRICS
    assert spec.steps[1].analyze is not None
    assert (spec.steps[1].analyze.interval, spec.steps[1].analyze.max_duration) == (
        timedelta(minutes=1),
        timedelta(minutes=20),
    )
    pause = spec.steps[2].pause
    assert pause is not None
    assert pause.approval_timeout == timedelta(hours=24)
    assert (spec.name, spec.target.app) == ("web", "web")


def test_analysis_settings_are_the_judges_own_models_without_templates() -> None:
    spec = load_spec_text(MINIMAL + WITH_ANALYSIS)

    settings = spec.analysis_settings()

    assert type(settings) is AnalysisSettings
    assert all(type(m) is MetricSettings for m in settings.metrics)
    assert (settings.alpha, settings.min_exposure_seconds, settings.kayenta.pass_score) == (0.01, 120.0, 90.0)
    errors, cpu = settings.metrics
    assert (errors.name, errors.type, errors.tolerance, errors.critical, errors.min_intervals) == (
        "errors",
        "ratio",
        0.3,
        True,
        4,
    )
    assert (cpu.type, cpu.direction) == ("samples", "either")


def test_an_analyze_step_bounds_the_analysis() -> None:
    spec = load_spec_text(MINIMAL)
    analyze = spec.steps[1].analyze
    assert spec.analysis_settings(analyze).max_duration_seconds == 1200.0


@pytest.mark.parametrize(
    ("policy", "analysis", "expected"),
    [
        ("rollback", "", 0.05),
        ("continue", "", 0.0),
        ("continue", "  analysis: {minChance: 0.1}\n", 0.1),
        ("rollback", "  analysis: {minChance: 0}\n", 0.0),
    ],
)
def test_the_judge_gives_up_early_only_when_an_inconclusive_end_stops_the_rollout_or_when_asked(
    policy: str, analysis: str, expected: float
) -> None:
    """Under ``onInconclusive: continue`` an early inconclusive end would only skip the rest of an
    analysis that may still catch a regression: the judge waits, unless ``minChance`` says else."""
    spec = load_spec_text(MINIMAL + f"  failurePolicy: {{onInconclusive: {policy}}}\n" + analysis)
    assert spec.analysis_settings(spec.steps[1].analyze).min_chance == expected


def test_templates_stay_reachable_per_metric() -> None:
    spec = load_spec_text(MINIMAL + WITH_ANALYSIS)
    metric = spec.metric("errors")
    assert isinstance(metric, RatioMetric)
    assert set(metric.templates()) == {"bad", "total"}
    assert spec.metric("cpu").templates() == {"query": 'rate(cpu{app="{app}", track="{track}"}[{interval}])'}
    with pytest.raises(KeyError):
        spec.metric("latency")


def test_default_metrics_render_to_promql_with_and_without_a_cells_labels() -> None:
    values = {"namespace": "shop", "app": "web", "track": "canary", "interval": "30s", "cell": ""}
    error_rate, latency = DEFAULT_METRICS
    assert render(error_rate.templates()["bad"], values) == (
        'sum(increase(http_requests_total{namespace="shop", app="web", track="canary", code=~"5.."}[30s]))'
    )
    assert render(latency.templates()["query"], values) == (
        "sum by (le) (increase(http_request_duration_seconds_bucket"
        '{namespace="shop", app="web", track="canary"}[30s]))'
    )
    in_cell = values | {"cell": cell_matchers({"cluster": "eu-1", "zone": 'a"b'})}
    assert render(latency.templates()["query"], in_cell) == (
        "sum by (le) (increase(http_request_duration_seconds_bucket"
        '{namespace="shop", app="web", track="canary", cluster="eu-1", zone="a\\"b"}[30s]))'
    )
    with pytest.raises(ValueError, match="'__name__'"):
        cell_matchers({"__name__": "x"})


def test_models_are_frozen() -> None:
    spec = load_spec_text(MINIMAL)
    with pytest.raises(ValidationError):
        spec.spec.baseline = False  # type: ignore[misc]


def test_direct_construction_runs_the_cross_checks_too() -> None:
    data = {
        "apiVersion": "canaryflow/v1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "target": {"namespace": "shop", "deployment": "web", "container": "web", "service": "web"},
            "steps": [{"setWeight": 80}],
        },
    }
    with pytest.raises(ValidationError, match=r"spec.steps\[0\].setWeight: must be at most 50"):
        RolloutSpec.model_validate(data)
    data["spec"]["baseline"] = False  # type: ignore[index]
    assert RolloutSpec.model_validate(data).steps[0].set_weight == 80


@pytest.mark.parametrize(
    ("pause", "message"),
    [
        ("{duration: 1m, approval: true}", "either a duration or approval: true, not both"),
        ("{timeout: 1h}", "needs a duration"),
        ("{duration: 1m, timeout: 1h}", "timeout applies to approval pauses only"),
    ],
)
def test_pause_kinds(pause: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        load_spec_text(MINIMAL.replace("{approval: true}", pause))


def test_a_true_is_not_a_weight() -> None:
    with pytest.raises(Exception, match="must be a whole number"):
        load_spec_text(MINIMAL.replace("setWeight: 10", "setWeight: true"))


@pytest.mark.parametrize(
    ("written", "read_as"),
    [("42", "a number"), ("1e3", "a number"), ("true", "true or false"), ("2026-12-07", "a date")],
)
def test_a_value_yaml_typed_is_a_string_once_quoted(written: str, read_as: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text(MINIMAL.replace("namespace: shop", f"namespace: {written}"))
    assert f"spec.target.namespace: must be a string (YAML reads this value as {read_as}: quote it)" in str(
        caught.value
    )
    assert load_spec_text(
        MINIMAL.replace("namespace: shop", f"namespace: '{written}'")
    ).spec.target.namespace == (written)


def test_metric_names_are_unique() -> None:
    text = MINIMAL + WITH_ANALYSIS.replace("name: cpu", "name: errors")
    with pytest.raises(SpecError, match=r"'errors' appears more than once \(first as metrics\[0\]\)"):
        load_spec_text(text)


def test_a_metric_named_twice_does_not_hide_the_other_cross_field_problems() -> None:
    text = (MINIMAL + WITH_ANALYSIS.replace("name: cpu", "name: errors")).replace(
        "    - setWeight: 10\n    - analyze: {interval: 1m, maxDuration: 20m}\n",
        "    - analyze: {interval: 1m, maxDuration: 20m}\n    - setWeight: 10\n",
    )
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, source="r.yaml")
    assert [problem.split(" ", 1)[1] for problem in caught.value.problems] == [
        "spec.steps[0].analyze: needs a canary: put a setWeight step before it",
        "spec.analysis.metrics[1].name: metric name 'errors' appears more than once (first as metrics[0])",
    ]


def test_a_metric_named_twice_is_said_beside_a_field_error() -> None:
    text = (MINIMAL + WITH_ANALYSIS.replace("name: cpu", "name: errors")).replace("alpha: 0.01", "alpha: 2")
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, source="r.yaml")
    problems = [problem.split(" ", 1)[1] for problem in caught.value.problems]
    assert problems[-1] == (
        "spec.analysis.metrics[1].name: metric name 'errors' appears more than once (first as metrics[0])"
    ), problems
    assert any(problem.startswith("spec.analysis.alpha:") for problem in problems), problems


def test_public_names_exist() -> None:
    for name in spec_package.__all__:
        assert hasattr(spec_package, name), name
