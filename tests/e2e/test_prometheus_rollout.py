"""The good/bad pair once more, judged through a real Prometheus, in real time.

The simulated cluster and its traffic run on the real clock (a driver keeps the simulator in step);
the simulator's ``/metrics`` is served over HTTP and scraped every second by the test run's
Prometheus (`prometheus` fixture), and the rollout reads its evidence with the Prometheus adapter,
queries and all. The good image must be promoted and the bad one rolled back, as on the embedded
source: nothing in the judgement may depend on which source the numbers came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canaryflow.clock import SystemClock
from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE, simulated_stack
from canaryflow.metrics import create_metrics_source
from canaryflow.metrics.prometheus import PrometheusConfig
from canaryflow.requests import RolloutRequest
from canaryflow.simulation import MetricsServer, RealTimeDriver
from tests.e2e.conftest import write_spec

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

#: Short intervals, as in the demo's spec, but shorter still: four seconds, three at the least.
STEPS = [
    "{setWeight: 20}",
    "{analyze: {interval: 4s, maxDuration: 40s}}",
    "{setWeight: 50}",
    "{analyze: {interval: 4s, maxDuration: 40s}}",
]


def test_through_prometheus_a_good_canary_is_promoted_and_a_bad_one_rolled_back(
    prometheus: Any, prefect_harness: Any, tmp_path: Path
) -> None:
    from flows import Runtime, outcome_of, rollout, use_runtime

    spec = write_spec(tmp_path, STEPS)
    stack = simulated_stack(SystemClock(), rate_per_pod=1000.0)
    with RealTimeDriver(stack.simulator, tick=0.25), MetricsServer(stack.simulator) as server:
        prometheus.add_targets("simulator-rollouts", [server.target])
        # The target has been serving: Prometheus holds its stable's samples, as the preflight needs.
        prometheus.wait_for_samples('http_requests_total{namespace="shop",app="web",track="stable"}', 3)
        runtime = Runtime(
            cluster=stack.cluster,
            metrics=create_metrics_source("prometheus", prometheus=PrometheusConfig(url=prometheus.url)),
            clock=stack.clock,
            reports_dir=tmp_path / "reports",
            retry_delays=(0.5, 1.0),
        )
        outcomes = {}
        for image in (GOOD_IMAGE, BAD_IMAGE):
            with use_runtime(runtime):
                outcomes[image] = outcome_of(
                    rollout(RolloutRequest(spec=spec, image=image), return_state=True)
                )
            status = stack.cluster.read(stack.target)
            assert (status.state, status.canary, status.baseline) == (None, None, None)
            assert (status.stable.replicas, status.stable.ready) == (10, 10)
            assert status.stable.image == GOOD_IMAGE  # promoted, then kept when the bad one went

    good, bad = outcomes[GOOD_IMAGE], outcomes[BAD_IMAGE]
    assert good.result == "promoted"
    assert "analysis at step 2" in good.reason
    assert "analysis at step 4" in good.reason
    assert bad.result == "rolled-back"
    # The bad image has 5x the errors and twice the p99: either metric may be the first to show it.
    assert bad.reason.startswith(("Roll back: error-rate", "Roll back: latency"))
