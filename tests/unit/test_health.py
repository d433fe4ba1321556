"""A cell's health before its rollout (`canaryflow.health.unhealthy`), read through the simulated
metrics adapter (one traffic simulator per cell, on a manual clock): a stable over its error-rate
limit is unhealthy and says by how much; one within it, or without traffic, is not; a Prometheus
that does not answer blocks the cell."""

from __future__ import annotations

from canaryflow.cells import cell_run
from canaryflow.health import unhealthy
from canaryflow.metrics.port import MetricsSource
from canaryflow.plan import RolloutPlan, plan_rollout
from canaryflow.simulation import BehaviourProfile
from canaryflow.spec.loading import load_release_text
from canaryflow.spec.release import Health
from tests.fixtures.celltraffic import NEW, OLD, CellTraffic, Unanswered

RELEASE = load_release_text("""\
apiVersion: canaryflow/v1
kind: Release
metadata: {name: web}
spec:
  rollout: config/rollouts/demo.yaml
  prometheus: http://prometheus.monitoring:9090
  cells:
    - {name: eu-1, context: eu-1, workPool: p, labels: {cluster: eu-1}}
    - {name: eu-2, context: eu-2, workPool: p, labels: {cluster: eu-2}}
    - {name: us-1, context: us-1, workPool: p, labels: {cluster: us-1}}
  waves:
    - {cells: [eu-1]}
    - {cells: [eu-2, us-1]}
  health: {window: 2m, maxRates: {error-rate: 0.03}}
""")
HEALTH = RELEASE.spec.health


def _plans(*cells: str) -> dict[str, RolloutPlan]:
    return {
        cell: plan_rollout(cell_run(RELEASE, cell, image=NEW, triggered_by="t").request) for cell in cells
    }


def test_a_stable_over_its_error_rate_limit_blocks_its_cell_and_says_by_how_much() -> None:
    assert isinstance(HEALTH, Health)
    traffic = CellTraffic(BehaviourProfile(error_rate=0.1), images={"eu-1": OLD, "eu-2": OLD, "us-1": NEW})
    traffic.clock.advance(150)
    sources: dict[str, MetricsSource] = traffic.sources

    found = unhealthy(HEALTH, _plans("eu-1", "eu-2", "us-1"), sources.__getitem__, now=traffic.clock.now())

    assert list(found) == ["us-1"]
    assert found["us-1"].startswith("error-rate ")
    assert found["us-1"].endswith(" over 3.00% in the last 2m")
    rate = float(found["us-1"].split()[1].rstrip("%"))
    assert 7.0 < rate < 13.0


def test_a_stable_without_traffic_is_not_held_against_its_cell_but_an_unanswered_one_is() -> None:
    assert isinstance(HEALTH, Health)
    quiet = CellTraffic(BehaviourProfile(), rate=0.0)
    quiet.clock.advance(150)
    sources: dict[str, MetricsSource] = {**quiet.sources, "us-1": Unanswered()}

    found = unhealthy(HEALTH, _plans("eu-2", "us-1"), sources.__getitem__, now=quiet.clock.now())

    assert found == {
        "us-1": "its health cannot be read: Prometheus at http://prometheus.monitoring:9090 did not answer"
    }
