"""Flow helpers without Prefect's engine: ids, slot names, runtime from the environment, charts, tasks."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from analysis.observations import HistogramCounts, PairedObservation, RatioCounts, Samples
from canaryflow.clock import ManualClock
from canaryflow.cluster.port import TargetRef
from canaryflow.dev.stacks import GOOD_IMAGE, simulated_stack
from canaryflow.errors import PermanentError
from canaryflow.metrics import ObservationRecorder
from canaryflow.plan import plan_rollout, rollout_id_for
from canaryflow.replicas import plan_split
from canaryflow.requests import CellTarget, RolloutRequest
from flows.charts import draw_chart, render_chart
from flows.rollout import _canary_count
from flows.runtime import Runtime, runtime_for_run, runtime_from_env, use_runtime
from flows.slots import slot_name
from flows.steps import hold, observe

SPEC = "config/rollouts/demo.yaml"


def test_the_rollout_id_depends_on_target_and_image_only() -> None:
    plan = plan_rollout(RolloutRequest(spec=SPEC, image=GOOD_IMAGE))
    again = plan_rollout(RolloutRequest(spec=SPEC, image=GOOD_IMAGE, triggered_by="webhook"))
    other = plan_rollout(RolloutRequest(spec=SPEC, image="registry.example.com/shop/web:9"))
    assert plan.rollout_id == again.rollout_id == rollout_id_for(plan.spec, GOOD_IMAGE)
    assert plan.rollout_id != other.rollout_id
    assert plan.rollout_id.startswith("web-")
    explicit = plan_rollout(RolloutRequest(spec=SPEC, image=GOOD_IMAGE, rollout_id="web-1"))
    assert explicit.rollout_id == "web-1"


def test_slot_names_are_per_target() -> None:
    assert slot_name(TargetRef("shop", "web", "web", "web")) == "rollout-shop-web"
    assert slot_name(TargetRef("shop", "api", "api", "api")) != slot_name(
        TargetRef("shop", "web", "web", "web")
    )


def test_each_cell_of_a_release_has_its_own_slot_for_the_same_target() -> None:
    """Cells are different clusters: the same namespace and Deployment in two cells are two
    targets, whose rollouts run side by side (a plain rollout keeps the name it had)."""
    web = TargetRef("shop", "web", "web", "web")
    names = {slot_name(web), slot_name(web, "eu-1"), slot_name(web, "eu-2"), slot_name(web, "us-1")}
    assert len(names) == 4
    assert slot_name(web, "eu-1") == "rollout-shop-web_eu-1"
    # A cell name cannot make one target's slot another's: DNS labels carry no underscore.
    assert slot_name(TargetRef("shop", "web-eu", "web", "web"), "1") != slot_name(web, "eu-1")
    plan = plan_rollout(RolloutRequest(spec=SPEC, image=GOOD_IMAGE, cell=CellTarget(name="eu-1")))
    assert (plan.cell, slot_name(plan.target, plan.cell)) == ("eu-1", "rollout-shop-web_eu-1")
    assert plan_rollout(RolloutRequest(spec=SPEC, image=GOOD_IMAGE)).cell is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CANARYFLOW_CLUSTER": "openshift"}, "not a cluster kind"),
        ({"CANARYFLOW_CLUSTER": "simulated"}, "needs a runtime injected"),
        ({"CANARYFLOW_CLUSTER": "kubernetes"}, "CANARYFLOW_PROMETHEUS_URL is not set"),
    ],
)
def test_runtime_from_env_refuses_what_it_cannot_build(env: dict[str, str], message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        runtime_from_env(env)


def test_a_run_gets_the_injected_runtime_and_only_inside_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", "http://prometheus.example:9090")
    stack = simulated_stack(ManualClock())
    runtime = Runtime(cluster=stack.cluster, metrics=stack.metrics, clock=stack.clock, reports_dir=tmp_path)
    with use_runtime(runtime):
        assert runtime_for_run() is runtime
    # Outside the block nothing is built from the environment, even a complete one: no test or
    # script reaches a real cluster by forgetting to inject its runtime.
    with pytest.raises(PermanentError, match="no runtime for this flow run: inject one"):
        runtime_for_run()


def test_a_deployment_run_builds_its_runtime_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "5f0c2a43-0d9b-4a4e-9d40-7a3e1c4f6b11")
    monkeypatch.setenv("CANARYFLOW_CLUSTER", "openshift")
    with pytest.raises(PermanentError, match="CANARYFLOW_CLUSTER='openshift' is not a cluster kind"):
        runtime_for_run()


def test_hold_and_observe_tasks_use_the_clock_and_metrics_they_are_given() -> None:
    clock = ManualClock()
    stack = simulated_stack(clock)
    plan = plan_rollout(RolloutRequest(spec=SPEC, image=GOOD_IMAGE))
    stack.cluster.apply_split(
        stack.target,
        plan_split(10, 20, baseline=True),
        rollout_id=plan.rollout_id,
        image=GOOD_IMAGE,
        step=0,
        progress_deadline=timedelta(minutes=1),
    )
    start = clock.monotonic()
    end = hold.fn(clock, 10.0, why="test")
    assert clock.monotonic() - start == 10.0
    observed, missing = observe.fn(
        stack.metrics, plan.queries(), namespace="shop", app="web", end=end, window=timedelta(seconds=10)
    )
    assert missing == {}
    error_rate = observed["error-rate"]
    assert isinstance(error_rate, PairedObservation)
    assert isinstance(error_rate.canary, RatioCounts)
    assert error_rate.canary.total > 0


def _recorded() -> ObservationRecorder:
    """Three intervals of the example's metrics: canary errors 1 %, 3 %, then no data."""
    plan = plan_rollout(RolloutRequest(spec=SPEC, image=GOOD_IMAGE))
    recorder = ObservationRecorder(plan.queries(), interval_seconds=5)
    le = (0.1, math.inf)
    for errors in (1, 3, None):
        if errors is None:
            recorder.record({"error-rate": None, "latency": None})
            continue
        recorder.record(
            {
                "error-rate": PairedObservation(RatioCounts(1, 100), RatioCounts(errors, 100)),
                "latency": PairedObservation(HistogramCounts(le, (90, 100)), HistogramCounts(le, (80, 100))),
            }
        )
    return recorder


def test_the_chart_is_a_png_and_a_markdown_image(tmp_path: Path) -> None:
    markdown = render_chart(_recorded().log(), tmp_path / "chart.png")
    assert markdown is not None
    assert markdown.startswith("![canary vs baseline](data:image/png;base64,")
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_the_chart_is_read_at_a_glance() -> None:
    figure = draw_chart(_recorded().log(), {"error-rate": 0.5})
    errors, latency = figure.axes
    figure.canvas.draw()

    # the legend sits outside the plot: it covers no line
    for ax in (errors, latency):
        legend = ax.get_legend()
        assert legend is not None
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
    # the canary is drawn over the baseline: equal values never hide it
    lines = {line.get_label(): line for line in errors.get_lines()}
    assert lines["canary rate"].get_zorder() > lines["baseline rate"].get_zorder()
    # the y axis starts at zero and holds the tolerance band (baseline 1 %: up to 1.5 %)
    assert errors.get_ylim()[0] == 0.0
    assert errors.get_ylim()[1] >= 0.03  # the canary's 3 % is in view
    labels = [text.get_text() for text in errors.get_legend().get_texts()]
    assert "tolerance (+50 % of baseline rate)" in labels
    assert not [t for t in latency.get_legend().get_texts() if "tolerance" in t.get_text()]  # not given


def test_the_raise_account_reads_the_canarys_requests_of_ratios_and_histograms_only() -> None:
    le = (0.1, math.inf)
    assert _canary_count(PairedObservation(RatioCounts(1.0, 300.0), RatioCounts(2.0, 310.0))) == 310.0
    assert (
        _canary_count(PairedObservation(HistogramCounts(le, (5.0, 9.0)), HistogramCounts(le, (4.0, 8.0))))
        == 8.0
    )
    # a histogram without series counts nothing (it must not fail the analysis)
    assert _canary_count(PairedObservation(HistogramCounts(le, (5.0, 9.0)), HistogramCounts((), ()))) == 0.0
    assert _canary_count(PairedObservation(Samples((1.0,)), Samples((2.0,)))) is None
    assert _canary_count(None) is None


def test_an_interval_without_data_says_which_tracks_and_what_the_queries_were_rendered_with() -> None:
    from flows.judging import _no_data

    assert _no_data(("canary",), "web") == (
        'no data for the canary track in this interval (its queries rendered with {app}="web" and '
        '{track}="canary": are the pods scraped with those labels? a new pod may not be scraped yet)'
    )
    assert _no_data(("baseline", "canary"), "web").startswith(
        'no data for the baseline and canary tracks in this interval (its queries rendered with {app}="web" '
        'and {track}="baseline" and {track}="canary":'
    )


def test_steps_are_described_with_durations_as_specs_write_them() -> None:
    plan = plan_rollout(RolloutRequest(spec="config/rollouts/demo.yaml", image=GOOD_IMAGE))
    analyze = next(i for i, s in enumerate(plan.spec.steps) if s.analyze is not None)
    assert plan.describe_step(analyze).endswith("analyze (every 5s, at most 2m)")


def test_an_interval_row_says_when_its_counts_cover_looks_without_data() -> None:
    from analysis.judge import SequentialJudge
    from analysis.settings import AnalysisSettings, MetricSettings
    from flows.artifacts import interval_rows

    caught_up = PairedObservation(RatioCounts(3, 300), RatioCounts(4, 310), span=3)
    observed: dict[str, PairedObservation | None] = {"error-rate": caught_up}
    settings = AnalysisSettings(metrics=(MetricSettings(name="error-rate", type="ratio"),))
    verdict = SequentialJudge(settings, interval_seconds=30).update(observed)
    (row,) = interval_rows(observed=observed, verdict=verdict)
    assert row["canary"].endswith(" over 3 intervals")
    assert row["baseline"].endswith(" over 3 intervals")
    one = PairedObservation(RatioCounts(1, 100), RatioCounts(1, 100))
    (plain,) = interval_rows(observed={"error-rate": one}, verdict=verdict)
    assert "over" not in plain["canary"]
