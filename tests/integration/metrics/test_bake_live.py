"""A wave's bake and a cell's health, read from a real Prometheus shared by cells as a release does.

Two traffic simulators, scraped by the real test Prometheus as two jobs whose series carry
``cluster: bake-new`` and ``cluster: bake-old``: the first cell's stable pods run the new image
with ten times the errors, the second's the old one. The bake's sources are the release's own
(`flows.release.cell_metrics`: each cell's Prometheus and labels from its run's environment), its
intervals those of the rollout spec (5 s). It must find the release worse, counting the new
cell's requests only (not the other cell's copy of the series). The blockers read each cell's own
error rate and its alerts query (``up`` series stand in for firing alerts).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from canaryflow.baking import WaveBake
from canaryflow.cells import cell_run
from canaryflow.clock import SystemClock
from canaryflow.plan import plan_rollout
from canaryflow.simulation import AppRef, BehaviourProfile, MetricsServer, RealTimeDriver, TrafficSimulator
from canaryflow.spec.loading import load_release_text
from canaryflow.spec.release import Bake, ReleaseSpec
from tests.fixtures.celltraffic import NEW, OLD, StablePods
from tests.fixtures.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus


def _release(prometheus: PrometheusServer) -> ReleaseSpec:
    return load_release_text(f"""\
apiVersion: canaryflow/v1
kind: Release
metadata: {{name: web}}
spec:
  rollout: config/rollouts/demo.yaml
  prometheus: {prometheus.url}
  cells:
    - {{name: new, context: new, workPool: p, labels: {{cluster: bake-new}}}}
    - {{name: old, context: old, workPool: p, labels: {{cluster: bake-old}}}}
  waves:
    - {{cells: [new], bake: {{minDuration: 15s, maxDuration: 2m}}}}
    - {{cells: [old]}}
""")


@pytest.fixture(scope="module")
def simulators(prometheus: PrometheusServer) -> Iterator[dict[str, TrafficSimulator]]:
    made = {
        cluster: TrafficSimulator(
            StablePods(image),
            [AppRef("shop", "web")],
            clock=SystemClock(),
            seed=seed,
            rate_per_pod=100.0,
            profiles={NEW: BehaviourProfile(error_rate=0.1)},
            default_profile=BehaviourProfile(error_rate=0.01),
            max_step=0.1,
        )
        for seed, (cluster, image) in enumerate((("bake-new", NEW), ("bake-old", OLD)))
    }
    with (
        MetricsServer(made["bake-new"]) as new,
        MetricsServer(made["bake-old"]) as old,
        RealTimeDriver(made["bake-new"], tick=0.05),
        RealTimeDriver(made["bake-old"], tick=0.05),
    ):
        for cluster, server in (("bake-new", new), ("bake-old", old)):
            prometheus.add_targets(cluster, [server.target], labels={"cluster": cluster})
            prometheus.wait_for_samples(f'http_requests_total{{namespace="shop", cluster="{cluster}"}}', 3)
        yield made


def test_a_bake_on_a_shared_prometheus_finds_a_worse_release_from_its_cells_series(
    prometheus: PrometheusServer, simulators: dict[str, TrafficSimulator]
) -> None:
    from flows.release import cell_metrics

    release = _release(prometheus)
    runs = {cell: cell_run(release, cell, image=NEW, triggered_by="test") for cell in ("new", "old")}
    started = datetime.now(UTC)
    bake = WaveBake(
        0,
        # this Prometheus scrapes every second
        Bake.model_validate({"minDuration": "15s", "maxDuration": "2m", "readLag": "2s"}),
        promoted={"new": plan_rollout(runs["new"].request)},
        compared={"old": plan_rollout(runs["old"].request)},
        sources=lambda cell: cell_metrics(runs[cell]),
        started=started,
    )

    deadline = time.monotonic() + 90
    while bake.progress.verdict == "pending" and time.monotonic() < deadline:
        time.sleep(1.0)
        bake.advance(datetime.now(UTC))

    assert bake.progress.verdict == "worse", bake.progress
    assert bake.judged >= 3  # the rollout spec's minIntervals
    end = started + timedelta(seconds=5 * bake.judged)
    truth = simulators["bake-new"].track_counts(
        "shop", "web", "stable", start=started.timestamp(), end=end.timestamp()
    )
    assert 0.7 * truth.requests <= bake.requests <= 1.3 * truth.requests  # one cell, not both


def test_a_cells_health_is_read_from_its_own_series_and_its_alerts(
    prometheus: PrometheusServer, simulators: dict[str, TrafficSimulator]
) -> None:
    from canaryflow.health import unhealthy
    from canaryflow.spec.release import Health
    from flows.release import cell_metrics

    release = _release(prometheus)
    runs = {cell: cell_run(release, cell, image=NEW, triggered_by="test") for cell in ("new", "old")}
    plans = {cell: plan_rollout(run.request) for cell, run in runs.items()}
    prometheus.wait_for_samples('http_requests_total{namespace="shop", cluster="bake-old"}', 12)
    now = datetime.now(UTC) - timedelta(seconds=2)

    def health(alerts: str) -> dict[str, str]:
        rules = Health.model_validate({"window": "10s", "maxRates": {"error-rate": 0.05}, "alerts": alerts})
        return unhealthy(rules, plans, lambda cell: cell_metrics(runs[cell]), now=now)

    quiet = health('up{job="no-such-job"{cell}} == 0')
    firing = health('up{job!=""{cell}} == 1')  # every cell's scrape is up: one series each

    assert list(quiet) == ["new"]
    assert quiet["new"].startswith("error-rate ")
    assert quiet["new"].endswith(" over 5.00% in the last 10s")
    assert firing["old"] == "1 alert(s) firing"
    assert firing["new"].endswith("; 1 alert(s) firing")
