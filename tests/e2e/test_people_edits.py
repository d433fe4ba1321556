"""People change the target while a rollout runs (simulated cluster, the real Prefect harness): a
person's scale of the stable is honoured at once and kept by the promotion; a person's image or
template edit on the stable stops the rollout, rolls the canary back and is kept; an image set on
the canary, or a Service that no longer selects the tracks, stops it too; a deleted canary or
baseline is recreated once.

The edit is made during the first analysis (at its third look at the metrics), as a person with
kubectl would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analysis.observations import TrackObservation
from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from canaryflow.metrics import MetricQuery, MetricsSource
from canaryflow.replicas import plan_split

OTHER_IMAGE = "registry.example.com/shop/web:hotfix"


class EditDuringAnalysis:
    """A metrics source that makes `edit` happen once, at the analysis's `at`-th query."""

    def __init__(self, inner: MetricsSource, edit: Callable[[], None], *, at: int | None = 3) -> None:
        self.inner, self.edit, self.at, self.calls = inner, edit, at, 0

    def observe(self, query: MetricQuery, **kwargs: Any) -> TrackObservation:
        if kwargs.get("track") != "stable":
            self.calls += 1
            if self.at is None or self.calls == self.at:  # None: every look (the edit decides)
                self.edit()
        return self.inner.observe(query, **kwargs)


def _during_analysis(runtime: Any, stack: SimulatedStack, edit: Callable[[], None]) -> None:
    object.__setattr__(runtime, "metrics", EditDuringAnalysis(stack.metrics, edit))


def test_a_person_scaling_the_stable_up_is_honoured_and_kept_by_the_promotion(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    _during_analysis(runtime, stack, lambda: stack.world.scale("shop", "web", 20))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "promoted", outcome.reason
    status = stack.cluster.read(stack.target)
    assert (status.stable.image, status.stable.replicas) == (GOOD_IMAGE, 20)  # not back to 10
    assert "canaryflow/replicas-set" not in stack.world.record("shop", "web").annotations  # type: ignore[union-attr]


def test_the_second_step_splits_the_capacity_a_person_set(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    at_promotion: list[int] = []
    _during_analysis(runtime, stack, lambda: stack.world.scale("shop", "web", 20))

    def record(verb: str, namespace: str, name: str) -> None:
        canary = stack.world.record("shop", "web-canary")
        if not at_promotion and canary is not None and "promoting" in canary.annotations.values():
            at_promotion.append(canary.replicas)  # the 50 % split in place when the promotion began

    stack.world.before_write = record
    assert rollout_of(GOOD_IMAGE).result().result == "promoted"

    assert plan_split(20, 50, baseline=True).canary != plan_split(10, 50, baseline=True).canary
    assert at_promotion == [plan_split(20, 50, baseline=True).canary]  # split on 20 replicas, not 10


def test_a_person_setting_the_stable_image_stops_the_rollout_and_keeps_the_image(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    _during_analysis(runtime, stack, lambda: stack.world.set_image("shop", "web", "web", OTHER_IMAGE))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith(f"DriftError: somebody set the image of shop/web to {OTHER_IMAGE}")
    assert f"(it ran {STABLE_IMAGE})" in outcome.reason
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline, status.state) == (None, None, None)
    assert (status.stable.image, status.stable.replicas) == (OTHER_IMAGE, 10)  # the person's image, full size


def test_a_canary_deleted_during_analysis_is_recreated_once_and_the_rollout_goes_on(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    _during_analysis(runtime, stack, lambda: stack.world.remove("shop", "web-canary"))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "promoted"
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (GOOD_IMAGE, 10, 10)
    told = [(e.reason, e.message) for _, e in stack.world.events]
    assert ("CanaryRecreated", f"{outcome.rollout_id}: the canary was deleted; recreated at 20 %") in told


def test_a_canary_deleted_twice_stops_the_rollout_and_the_stable_gets_its_capacity_back(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    deletions = {3, 6}
    calls = [0]

    def delete_on_some_looks() -> None:
        calls[0] += 1
        if calls[0] in deletions:
            stack.world.remove("shop", "web-canary")

    object.__setattr__(runtime, "metrics", EditDuringAnalysis(stack.metrics, delete_on_some_looks, at=None))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith(
        "CanaryLostError: somebody deleted Deployment shop/web-canary during the rollout"
    )
    recreated = [e for _, e in stack.world.events if e.reason == "CanaryRecreated"]
    assert len(recreated) == 1  # the first deletion was repaired, the second stopped it
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (STABLE_IMAGE, 10, 10)


def test_the_split_is_computed_again_right_after_a_persons_scale(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    seen: list[int] = []
    steps: list[str] = []
    calls = [0]

    def scale_then_look() -> None:
        calls[0] += 1
        if calls[0] == 3:
            stack.world.scale("shop", "web", 20)
        if calls[0] == 6:  # three looks later, still in the first analysis (at 20 %)
            canary = stack.world.record("shop", "web-canary")
            seen.append(canary.replicas if canary else -1)
            steps.append(canary.annotations["canaryflow/step"] if canary else "")

    object.__setattr__(runtime, "metrics", EditDuringAnalysis(stack.metrics, scale_then_look, at=None))

    assert rollout_of(GOOD_IMAGE).result().result == "promoted"

    assert plan_split(20, 20, baseline=True).canary != plan_split(10, 20, baseline=True).canary
    assert seen == [plan_split(20, 20, baseline=True).canary]  # split on 20 within the same step
    assert steps == ["0"]  # recorded as the split of step 1 (setWeight 20), where a resume goes on


def test_a_person_editing_the_stables_template_stops_the_rollout_and_keeps_the_edit(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    before = stack.cluster.read(stack.target).stable.template
    _during_analysis(runtime, stack, lambda: stack.world.set_env("shop", "web", "FEATURE_X", "on"))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith("DriftError: somebody edited the pod template of shop/web")
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline, status.state) == (None, None, None)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (STABLE_IMAGE, 10, 10)
    assert status.stable.template not in ("", before)  # the person's edit is kept


def test_a_person_setting_the_canarys_image_stops_the_rollout(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    _during_analysis(runtime, stack, lambda: stack.world.set_image("shop", "web-canary", "web", OTHER_IMAGE))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith(
        f"DriftError: somebody set the image of shop/web-canary to {OTHER_IMAGE}"
    )
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas) == (STABLE_IMAGE, 10)


def test_a_service_edited_to_miss_the_tracks_stops_the_rollout(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    target = stack.target
    narrowed = {"app": "web", "version": "v1"}
    _during_analysis(runtime, stack, lambda: stack.world.add_service("shop", target.service, narrowed))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith("DriftError: somebody changed the Service during rollout")
    assert "does not select the pods of Deployment shop/web" in outcome.reason
    status = stack.cluster.read(target)
    assert (status.canary, status.baseline, status.stable.replicas) == (None, None, 10)


def test_a_baseline_deleted_during_analysis_is_recreated_once_and_the_rollout_goes_on(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    _during_analysis(runtime, stack, lambda: stack.world.remove("shop", "web-baseline"))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "promoted", outcome.reason
    told = [(e.reason, e.message) for _, e in stack.world.events]
    assert ("BaselineRecreated", f"{outcome.rollout_id}: the baseline was deleted; recreated at 20 %") in told
    status = stack.cluster.read(stack.target)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (GOOD_IMAGE, 10, 10)


def test_a_baseline_deleted_twice_stops_the_rollout(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    calls = [0]

    def delete_on_some_looks() -> None:
        calls[0] += 1
        if calls[0] in (3, 6):
            stack.world.remove("shop", "web-baseline")

    object.__setattr__(runtime, "metrics", EditDuringAnalysis(stack.metrics, delete_on_some_looks, at=None))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith("BaselineLostError: somebody deleted Deployment shop/web-baseline")
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (STABLE_IMAGE, 10, 10)
