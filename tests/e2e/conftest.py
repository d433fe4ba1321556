"""The stacks of the flow-level tests: the simulated one, and an app on the local control plane.

Every test gets a fresh `SimulatedStack` (the example target ``shop/web``, 10 replicas of the
stable image) on a `ManualClock`, and a `Runtime` over it that never waits for real: retries are
immediate and the analysis intervals pass on the manual clock. `rollout_of` runs the real flow
under the session's Prefect test harness and returns its final state.

`app` is the same example target (``web``, 10 pods of the stable image) on the real local control
plane (`local_kube`), in a namespace of its own, for tests whose cluster must outlive a process.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from canaryflow.clock import ManualClock
from canaryflow.cluster.port import TargetRef, TargetStatus
from canaryflow.dev.stacks import STABLE_IMAGE, SimulatedStack, simulated_stack
from canaryflow.requests import RolloutRequest

if TYPE_CHECKING:
    from tests.contract.harness import KubernetesHarness

DEMO_SPEC = "config/rollouts/demo.yaml"
#: The rollout id `answer_when_paused` answers.
APPROVAL_ROLLOUT_ID = "web-approval"

SPEC_HEAD = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata: {{name: web-test}}
spec:
  target: {{namespace: shop, deployment: web, container: web, service: web}}
  progressDeadline: 1m
  failurePolicy: {{onFailure: {on_failure}, onInconclusive: {on_inconclusive}}}
  analysis: {{minExposureSeconds: 15, minIntervals: 3}}
  steps:
"""


def write_spec(
    directory: Path,
    steps: list[str],
    *,
    on_failure: str = "rollback",
    on_inconclusive: str = "rollback",
    name: str = "spec.yaml",
) -> str:
    """A spec for shop/web with `steps` (YAML flow mappings, e.g. ``{setWeight: 20}``)."""
    text = SPEC_HEAD.format(on_failure=on_failure, on_inconclusive=on_inconclusive)
    text += "".join(f"    - {step}\n" for step in steps)
    path = directory / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def stack() -> SimulatedStack:
    """The example target, serving for a minute already (so that the preflight sees the stable's
    traffic, as it would in a real cluster)."""
    serving = simulated_stack(ManualClock(), rate_per_pod=200.0)
    serving.clock.advance(60.0)
    return serving


@pytest.fixture
def runtime(stack: SimulatedStack, tmp_path: Path) -> Any:
    from flows import Runtime

    return Runtime(
        cluster=stack.cluster,
        metrics=stack.metrics,
        clock=stack.clock,
        reports_dir=tmp_path / "reports",
        retry_delays=(0.0, 0.0),
        approval_poll_seconds=1,
        slot_lease_seconds=60.0,
    )


@pytest.fixture
def rollout_of(prefect_harness: Any, runtime: Any) -> Callable[..., Any]:
    """Run the rollout flow for an image (and a spec) on this test's runtime; return its state."""
    from flows import rollout, use_runtime

    def run(image: str, spec: str = DEMO_SPEC, **request: Any) -> Any:
        with use_runtime(runtime):
            return RunState(rollout(RolloutRequest(spec=spec, image=image, **request), return_state=True))

    return run


class RunState:
    """A finished rollout run's Prefect state; `result` is its outcome (`flows.outcome_of`: also
    for a run that ended ``RolledBack`` or ``Aborted``), everything else is the state's."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def result(self) -> Any:
        from flows import outcome_of

        return outcome_of(self.state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)


@pytest.fixture
def answer_when_paused() -> Iterator[Callable[..., dict[str, Any]]]:
    """Answer the rollout's pause from another thread (as a person in the UI would), once it waits;
    what the form showed above it is recorded in the returned dict under ``"description"``."""
    threads: list[threading.Thread] = []

    def start(decision: str, reason: str, by: str = "") -> dict[str, Any]:
        from prefect import get_client
        from prefect.input.actions import read_flow_run_input
        from prefect.input.run_input import keyset_from_paused_state

        from flows.approval import answer_paused_rollout, paused_run_of

        seen: dict[str, Any] = {}

        def answer() -> None:
            deadline = time.monotonic() + 60
            while (run_id := paused_run_of(APPROVAL_ROLLOUT_ID)) is None and time.monotonic() < deadline:
                time.sleep(0.2)  # polling the Prefect API: the pause is a state on the server
            assert run_id is not None
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(run_id).state
            assert state is not None
            seen["description"] = read_flow_run_input(
                keyset_from_paused_state(state)["description"], flow_run_id=run_id
            )
            answer_paused_rollout(APPROVAL_ROLLOUT_ID, decision, reason, by=by)  # type: ignore[arg-type]

        thread = threading.Thread(target=contextvars.copy_context().run, args=(answer,), daemon=True)
        thread.start()
        threads.append(thread)
        return seen

    yield start
    for thread in threads:
        thread.join(timeout=60)


@dataclass(frozen=True)
class App:
    """The example target in a namespace of its own, and the kubeconfig of its API server."""

    harness: KubernetesHarness
    kubeconfig: Path
    target: TargetRef

    @property
    def namespace(self) -> str:
        return self.target.namespace

    def read(self) -> TargetStatus:
        """The target as a fresh adapter sees it."""
        from canaryflow.cluster.kubernetes import KubernetesCluster

        with KubernetesCluster.from_kubeconfig(self.kubeconfig) as cluster:
            return cluster.read(self.target)


@pytest.fixture
def app(local_kube: Any) -> Iterator[App]:
    from tests.contract.harness import KubernetesHarness

    harness = KubernetesHarness(local_kube.kubeconfig)
    try:
        target = harness.create_app("web", image=STABLE_IMAGE, replicas=10)
        yield App(harness, local_kube.kubeconfig, target)
    finally:
        harness.close()
