"""The rollout flow end to end on the simulated stack: promote, roll back, and what it leaves behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analysis.logs import parse_log
from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE, STABLE_IMAGE, SimulatedStack


def _assert_clean(stack: SimulatedStack, image: str, replicas: int = 10) -> None:
    """Only the stable is left, at full size, on `image`, every pod Ready."""
    status = stack.cluster.read(stack.target)
    assert status.canary is None
    assert status.baseline is None
    assert status.state is None
    assert status.stable.image == image
    assert status.stable.replicas == replicas
    assert status.stable.ready == replicas


def test_a_good_canary_is_promoted(stack: SimulatedStack, rollout_of: Callable[..., Any]) -> None:
    state = rollout_of(GOOD_IMAGE)

    assert state.is_completed()
    outcome = state.result()
    assert outcome.result == "promoted"
    assert "within its tolerance" in outcome.reason
    _assert_clean(stack, GOOD_IMAGE)


def _condition(stack: SimulatedStack) -> tuple[str, str, str] | None:
    record = stack.world.record("shop", "web")
    found = record.condition if record is not None else None
    return (found.status, found.reason, found.message) if found is not None else None


def test_the_stables_canary_condition_follows_the_rollout_to_its_end(
    stack: SimulatedStack, rollout_of: Callable[..., Any]
) -> None:
    seen: list[tuple[str, str, str] | None] = []
    stack.world.before_write = lambda verb, namespace, name: seen.append(_condition(stack))

    good = rollout_of(GOOD_IMAGE).result()

    rid = good.rollout_id
    assert ("Unknown", "Progressing", f"{rid} ({GOOD_IMAGE}): step 1/4 setWeight 20%") in seen
    assert _condition(stack) == ("True", "Promoted", f"{rid} promoted {GOOD_IMAGE}: {good.reason}")

    bad = rollout_of(BAD_IMAGE).result()

    assert _condition(stack) == (
        "False",
        "RolledBack",
        f"{bad.rollout_id} rolled-back {BAD_IMAGE}: {bad.reason}",
    )


def test_a_bad_canary_is_rolled_back_at_the_first_analysis(
    stack: SimulatedStack, rollout_of: Callable[..., Any]
) -> None:
    canary_sizes: list[int] = []

    def before_write(verb: str, namespace: str, name: str) -> None:
        # Before every write of the rollout (to any Deployment), the canary's size at that moment.
        canary = stack.world.record(namespace, "web-canary")
        if canary is not None:
            canary_sizes.append(canary.replicas)

    stack.world.before_write = before_write
    state = rollout_of(BAD_IMAGE)
    outcome = state.result()

    assert outcome.result == "rolled-back"
    # the bad image fails more requests and is slower: either metric may show it first
    assert outcome.reason.startswith(("Roll back: error-rate", "Roll back: latency"))
    # kubectl describe deploy/web tells the story, with the reason
    told = [(e.reason, e.message, e.warning) for _, e in stack.world.events]
    assert [reason for reason, _, _ in told] == ["CanarySplit", "CanaryRolledBack", "RolloutRolledBack"]
    assert told[-1][1] == f"{outcome.rollout_id} rolled-back ({BAD_IMAGE}): {outcome.reason}"
    assert told[-1][2]
    # In Prefect the run is not a green Completed: a failed state named RolledBack, with the reason.
    assert (state.type.value, state.name) == ("FAILED", "RolledBack")
    assert state.message == f"rolled-back: {outcome.reason}"
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        recorded = client.read_flow_run(state.state_details.flow_run_id).state
    assert recorded is not None
    assert (recorded.type.value, recorded.name) == ("FAILED", "RolledBack")
    _assert_clean(stack, STABLE_IMAGE)
    # The canary existed (the writes after its creation saw it) and never grew beyond its 20 %
    # size (2 of 10 pods): the 50 % step was never reached.
    assert canary_sizes
    assert max(canary_sizes) == 2


def test_the_report_holds_status_and_a_replayable_observation_log(
    stack: SimulatedStack, rollout_of: Callable[..., Any]
) -> None:
    outcome = rollout_of(BAD_IMAGE).result()

    report = Path(outcome.report)
    status = json.loads((report / "status.json").read_text())
    assert status["result"] == "rolled-back"
    assert status["verdict"]["decision"] == "rollback"
    log = parse_log(json.loads((report / "observations-step2.json").read_text()))
    assert len(log.intervals) == status["verdict"]["interval"]
    assert set(log.metrics) == {"error-rate", "latency"}
    assert (report / "observations-step2.png").read_bytes().startswith(b"\x89PNG")


def _artifacts(state: Any) -> dict[str, Any]:
    """The run's artifacts by key, each as the API holds it now (latest version)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    by_key: dict[str, list[Any]] = {}
    for artifact in found:
        by_key.setdefault(artifact.key, []).append(artifact)
    return by_key


def test_the_prefect_ui_gets_one_table_per_analysis_and_progress_through_the_steps(
    stack: SimulatedStack, rollout_of: Callable[..., Any]
) -> None:
    good_state = rollout_of(GOOD_IMAGE)
    good = good_state.result()
    artifacts = _artifacts(good_state)

    key = good.rollout_id.lower()
    tables = artifacts[f"{key}-step2-analysis"]
    assert len(tables) == 1  # one artifact for the whole analysis, updated in place
    rows = tables[0].data
    looks = [int(row["look"]) for row in rows]
    assert looks == sorted(looks, reverse=True)  # newest first
    assert looks[0] > 1  # it grew with every interval
    assert {row["metric"] for row in rows} == {"error-rate", "latency"}
    assert len(rows) == 2 * looks[0]
    assert not [k for k in artifacts if k.endswith("-interval")]  # no card per interval
    verdicts = artifacts[f"{key}-verdict"]  # one per analysis step: what decided, in the judge's words
    for verdict in verdicts:
        assert "| metric | status | estimate | interval | deciding evidence |" in verdict.data
        assert "within +" in verdict.data or "ceiling" in verdict.data
    progress = artifacts[f"{key}-steps"]
    assert len(progress) == 1
    assert progress[0].data == 100.0
    assert "promoted" in progress[0].description

    bad_state = rollout_of(BAD_IMAGE)
    bad = bad_state.result()
    progress = _artifacts(bad_state)[f"{bad.rollout_id.lower()}-steps"]
    assert progress[0].data == 100.0  # done, not "0 %": the description says how it ended
    assert f"rolled-back: {bad.reason}" in progress[0].description
    verdict = _artifacts(bad_state)[f"{bad.rollout_id.lower()}-verdict"][0]
    deciding = bad.reason.split("; ", 1)[1].rstrip(".")  # e.g. "regression: e-value 93.3 >= 57.1 ..."
    assert f"| {deciding} |" in verdict.data


def test_the_analysis_learns_its_warm_up_from_the_stables_history_and_the_log_keeps_it(
    stack: SimulatedStack, rollout_of: Callable[..., Any]
) -> None:
    from analysis.backtest import judge_log
    from analysis.counts import KAPPA_MAX
    from analysis.histogram import KAPPA_MAX_BUCKETS
    from canaryflow.spec import load_spec
    from tests.e2e.conftest import DEMO_SPEC

    stack.clock.advance(600.0)  # the stable served ten minutes before the rollout
    outcome = rollout_of(BAD_IMAGE).result()

    report = Path(outcome.report)
    log = parse_log(json.loads((report / "observations-step2.json").read_text()))
    learned = log.metrics["error-rate"].dispersion
    assert isinstance(learned, float)
    assert 0.0 <= learned < KAPPA_MAX  # binomial traffic: far below the bound fixed in advance
    buckets = log.metrics["latency"].dispersion  # each bucket bound with requests on both sides
    assert isinstance(buckets, tuple)
    assert len(buckets) >= 3
    assert all(0.0 <= kappa <= KAPPA_MAX_BUCKETS for _, kappa in buckets)
    assert min(kappa for _, kappa in buckets) < KAPPA_MAX_BUCKETS / 10
    # The replay judges with what the flow's judge was given, to the same verdict.
    spec = load_spec(DEMO_SPEC)
    analyze = spec.steps[1].analyze
    assert analyze is not None
    settings = spec.analysis_settings(analyze)
    status = json.loads((report / "status.json").read_text())
    final = list(judge_log(log, settings))[-1]
    assert (final.decision, final.interval) == (status["verdict"]["decision"], status["verdict"]["interval"])
