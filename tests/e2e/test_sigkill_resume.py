"""A rollout process killed with SIGKILL in the middle of a step: the next run converges the target.

The cluster must outlive the process, so these tests use the real local control plane
(`local_kube`): each test gets a namespace of its own with the example target (``web``, 10 pods of
the stable image). A child Python process runs the rollout flow of the good image against the
test run's Prefect API, with simulated traffic following the real pods. The child stops at a chosen
point in the middle of a step and says so on stdout; the parent checks through the cluster adapter
that the target is in that half-done state, kills the child with SIGKILL and runs the flow again
in this process, with fresh adapters. The resumed run must take over the target's slot from the
dead run (without waiting for its lease to expire) and converge the target: the good image
promoted, or the bad image rolled back, at full size, with no canary or baseline left.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from canaryflow.clock import SystemClock
from canaryflow.clock import SystemClock as EpochClock
from canaryflow.cluster.kubernetes import KubernetesCluster, new_api_client
from canaryflow.cluster.port import RolloutState, TargetRef, TargetStatus
from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE, PROFILES, STABLE_IMAGE
from canaryflow.metrics import create_metrics_source
from canaryflow.requests import RolloutRequest
from canaryflow.simulation import AppRef, RealTimeDriver, TrafficSimulator
from tests.e2e.conftest import App

pytestmark = [pytest.mark.kube, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
#: How long the child may take to reach its stopping point (startup, two steps, an analysis).
REACH_SECONDS = 120.0

SPEC = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata: {{name: web-sigkill}}
spec:
  target: {{namespace: {namespace}, deployment: web, container: web, service: web}}
  baseline: true
  progressDeadline: 1m
  steps:
    - setWeight: 20
    - analyze: {{interval: 1s, maxDuration: 40s}}
    - setWeight: 50
    - analyze: {{interval: 1s, maxDuration: 40s}}
  failurePolicy: {{onFailure: rollback, onInconclusive: rollback}}
  analysis: {{minExposureSeconds: 3, minIntervals: 3}}
"""


# -- the stack, in the child and in this process ------------------------------------------------


@contextmanager
def kube_runtime(
    kubeconfig: Path, namespace: str, reports_dir: Path, *, api_client: Any = None, clock: Any = None
) -> Iterator[Any]:
    """A runtime on the API server of `kubeconfig`: a `KubernetesCluster`, and simulated metrics of
    traffic that follows the real pods of ``web`` (through an adapter of its own) in real time."""
    from flows import Runtime

    cluster = KubernetesCluster(api_client or new_api_client(kubeconfig), poll_interval=0.2)
    with KubernetesCluster.from_kubeconfig(kubeconfig) as watcher:
        simulator = TrafficSimulator(
            watcher,
            [AppRef(namespace, "web")],
            clock=EpochClock(),
            seed=11,
            rate_per_pod=1000.0,
            profiles=PROFILES,
        )
        try:
            with RealTimeDriver(simulator, tick=0.25):
                yield Runtime(
                    cluster=cluster,
                    metrics=create_metrics_source("simulated", simulator=simulator),
                    clock=clock or SystemClock(),
                    reports_dir=reports_dir,
                    retry_delays=(0.5, 1.0),
                    approval_poll_seconds=1,
                )
        finally:
            cluster.api_client.close()  # type: ignore[no-untyped-call]


class Stop:
    """Where the child stops: it says ``stopped <point>`` on stdout and blocks until it is killed.

    ``setWeight``: in step 3 (setWeight 50), after the canary took the step's annotations and size,
    before the baseline grows. ``analyze``: in step 2, while waiting for interval `analyze_wait`
    (the ones before it are judged and logged; a bad canary stops at the first, since the judge
    may roll it back after any interval with data). ``promote``: after the canary is marked
    ``promoting``, before the stable takes the new image. ``rollback``: after the canary is marked
    ``rolling-back``, before the stable is restored and the canary and baseline are deleted.
    """

    def __init__(self, point: str, analyze_wait: int = 3) -> None:
        self.point = point
        self.analyze_wait = analyze_wait
        self.armed = False
        self.waits = 0

    def halt(self) -> None:
        print(f"stopped {self.point}", flush=True)
        threading.Event().wait()

    def before_write(self, body: Any) -> None:
        if self.armed:
            self.halt()
        wanted = {
            "setWeight": ("canaryflow/step", "2"),
            "promote": ("canaryflow/phase", "promoting"),
            "rollback": ("canaryflow/phase", "rolling-back"),
        }
        if self.point in wanted:
            key, value = wanted[self.point]
            annotations = (body or {}).get("metadata", {}).get("annotations") or {}
            self.armed = annotations.get(key) == value

    def api_client(self, kubeconfig: Path) -> Any:
        """An `ApiClient` that calls `before_write` before every write to a Deployment."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
        )
        stop = self

        class StoppingApiClient(client.ApiClient):
            def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                if method in ("POST", "PATCH", "DELETE") and "/deployments" in url:
                    stop.before_write(kwargs.get("body", args[1] if len(args) > 1 else None))
                return super().call_api(method, url, *args, **kwargs)

        return StoppingApiClient(configuration)

    def clock(self) -> Any:
        """The flow's clock: real time, but the third wait of the analysis never ends."""
        stop = self

        class StoppingClock(SystemClock):
            def sleep(self, seconds: float) -> None:
                stop.waits += 1
                if stop.point == "analyze" and stop.waits == stop.analyze_wait:
                    stop.halt()
                super().sleep(seconds)

        return StoppingClock()


def child(arguments: str) -> None:
    """The killed process: run the rollout until the stopping point of `arguments`."""
    from flows import outcome_of, rollout, use_runtime

    args = json.loads(arguments)
    kubeconfig, stop = Path(args["kubeconfig"]), Stop(args["point"], args["analyze_wait"])
    with (
        kube_runtime(
            kubeconfig,
            args["namespace"],
            Path(args["reports"]),
            api_client=stop.api_client(kubeconfig),
            clock=stop.clock(),
        ) as runtime,
        use_runtime(runtime),
    ):
        state = rollout(
            RolloutRequest(spec=args["spec"], image=args["image"], triggered_by="test"), return_state=True
        )
        outcome = outcome_of(state)
    print(f"finished without stopping: {outcome!r}", flush=True)


# -- the parent ---------------------------------------------------------------------------------


class Child:
    """The child process and the lines it prints, read by a thread (so waits can have a deadline)."""

    def __init__(self, arguments: dict[str, Any], *, api_url: str, stderr: Path) -> None:
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
        }
        program = "import sys; from tests.e2e.test_sigkill_resume import child; child(sys.argv[1])"
        self.stderr = stderr
        with stderr.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", program, json.dumps(arguments)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def wait_for(self, line: str, timeout: float) -> None:
        """Wait until the child prints `line` (other output is skipped); fail if it says it went on
        without stopping, exits, or stays silent until `timeout`."""
        deadline = time.monotonic() + timeout
        said: str | None = ""
        while said != line:
            try:
                said = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                said = f"(nothing within {timeout:g} s)"
            if said is None or not said.startswith(("stopped", "finished")):
                continue
            if said != line:
                break
        if said != line:
            raise AssertionError(f"the child said {said!r}, not {line!r}; its stderr:\n{self._tail()}")

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        code = self.process.wait(timeout=30)  # reaped: its pid is gone from the process table
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code

    def _tail(self) -> str:
        return "\n".join(self.stderr.read_text().splitlines()[-40:])


def _mid_step(point: str, status: TargetStatus, reports: Path, *, judged: int) -> None:
    """The target is half-way through the step the child stopped in (`judged` intervals logged in
    an analysis)."""
    state = status.state
    assert isinstance(state, RolloutState)
    assert state.rollout_id.startswith("web-")
    if point == "setWeight":
        assert (state.step, state.weight, state.phase) == (2, 50, "progressing")
        assert [t.replicas for t in status.tracks] == [6, 5, 2]  # stable, canary; baseline not grown yet
    elif point == "analyze":
        assert (state.step, state.weight, state.phase) == (0, 20, "progressing")
        logs = list(reports.glob("*/observations-step2.json"))
        assert sum(len(json.loads(log.read_text())["intervals"]) for log in logs) == judged
    elif point == "promote":
        assert state.phase == "promoting"
        assert status.stable.image == STABLE_IMAGE  # the stable has not taken the new image yet
    else:
        assert (state.step, state.weight, state.phase) == (0, 20, "rolling-back")
        assert status.canary is not None  # not deleted yet
        assert status.baseline is not None
        assert status.stable.replicas < 10  # not restored yet


def _clean(status: TargetStatus, image: str) -> None:
    assert status.state is None
    assert status.canary is None
    assert status.baseline is None
    assert status.stable.image == image
    assert (status.stable.replicas, status.stable.ready) == (10, 10)


def _holder(target: TargetRef) -> dict[str, Any]:
    from prefect.variables import Variable

    from flows.slots import slot_name

    record = Variable.get(slot_name(target), default=None)
    assert isinstance(record, dict)
    return dict(record.get("holder") or {})


def _kill_at(
    point: str, app: App, spec: str, tmp_path: Path, api_url: str, *, image: str = GOOD_IMAGE
) -> str:
    """Run the child to `point`, check the half-done target, SIGKILL it; the dead run's flow run id."""
    reports = tmp_path / "child-reports"
    analyze_wait = 1 if image == BAD_IMAGE else 3
    arguments: dict[str, Any] = {
        "kubeconfig": str(app.kubeconfig),
        "namespace": app.namespace,
        "spec": spec,
        "image": image,
        "reports": str(reports),
        "point": point,
        "analyze_wait": analyze_wait,
    }
    child_process = Child(arguments, api_url=api_url, stderr=tmp_path / "child.stderr")
    try:
        child_process.wait_for(f"stopped {point}", timeout=REACH_SECONDS)
        _mid_step(point, app.read(), reports, judged=analyze_wait - 1)
        holder = _holder(app.target)
    finally:
        code = child_process.kill()
    assert code == -signal.SIGKILL
    return str(holder["flow_run_id"])


def _run_state(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id)).state


@pytest.mark.parametrize("point", ["setWeight", "analyze", "promote"])
def test_a_rollout_killed_mid_step_is_resumed_to_promotion_by_the_next_run(
    point: str, app: App, prefect_harness: Any, tmp_path: Path
) -> None:
    from flows import rollout, use_runtime

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(namespace=app.namespace))
    dead_run = _kill_at(point, app, str(spec), tmp_path, str(prefect_harness.api.url))
    assert _run_state(dead_run).is_running()  # nobody told Prefect: the process just vanished

    with kube_runtime(app.kubeconfig, app.namespace, tmp_path / "reports") as runtime, use_runtime(runtime):
        state = rollout(RolloutRequest(spec=str(spec), image=GOOD_IMAGE), return_state=True)

    outcome = state.result()
    assert outcome.result == "promoted"
    if point == "promote":
        assert outcome.reason == "resumed an interrupted promotion"
    else:
        assert "analysis at step 4" in outcome.reason
    _clean(app.read(), GOOD_IMAGE)
    # The resumed run took the slot from the dead one and said so, rather than outwaiting its lease.
    dead = _run_state(dead_run)
    assert dead.is_crashed()
    assert "is dead" in (dead.message or "")


@pytest.mark.parametrize("point", ["analyze", "rollback"])
def test_a_bad_rollout_killed_mid_step_is_rolled_back_by_the_next_run(
    point: str, app: App, prefect_harness: Any, tmp_path: Path
) -> None:
    from flows import outcome_of, rollout, use_runtime

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(namespace=app.namespace))
    dead_run = _kill_at(point, app, str(spec), tmp_path, str(prefect_harness.api.url), image=BAD_IMAGE)

    with kube_runtime(app.kubeconfig, app.namespace, tmp_path / "reports") as runtime, use_runtime(runtime):
        state = rollout(RolloutRequest(spec=str(spec), image=BAD_IMAGE), return_state=True)

    assert (state.type.value, state.name) == ("FAILED", "RolledBack")  # not a green Completed
    outcome = outcome_of(state)
    assert outcome.result == "rolled-back"
    if point == "rollback":
        assert outcome.reason == "resumed an interrupted rollback"
    else:  # the resumed analysis judged the bad canary itself
        assert outcome.reason.startswith(("Roll back: error-rate: canary rate", "Roll back: latency")), (
            outcome.reason
        )
    _clean(app.read(), STABLE_IMAGE)
    assert _run_state(dead_run).is_crashed()


def test_canaryflow_rollout_resume_converges_a_target_left_by_a_killed_run(
    app: App, prefect_harness: Any, tmp_path: Path
) -> None:
    from flows.control import run_rollout

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(namespace=app.namespace))
    _kill_at("setWeight", app, str(spec), tmp_path, str(prefect_harness.api.url))

    with kube_runtime(app.kubeconfig, app.namespace, tmp_path / "reports") as runtime:
        outcome = run_rollout(spec, None, resume=True, runtime=runtime)

    assert (outcome.image, outcome.result) == (GOOD_IMAGE, "promoted")
    _clean(app.read(), GOOD_IMAGE)
