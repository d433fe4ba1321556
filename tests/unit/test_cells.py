"""What one cell's rollout run gets from its release (`canaryflow.cells.cell_run`), and how the
worker that runs it reads that back (`canaryflow.environment.metrics_from_env`,
`canaryflow.plan.plan_rollout`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from canaryflow.cells import cell_run
from canaryflow.environment import metrics_from_env
from canaryflow.errors import InputError, SpecError
from canaryflow.metrics.prometheus import PrometheusMetricsSource
from canaryflow.plan import plan_rollout, rollout_id_for
from canaryflow.querytemplates import format_labels, parse_labels
from canaryflow.requests import CellTarget, RolloutRequest
from canaryflow.spec import load_spec
from canaryflow.spec.loading import load_release_text
from canaryflow.spec.release import ReleaseSpec

IMAGE = "registry.example.com/shop/web:1.3.0"
SPEC = "config/rollouts/web.yaml"
RELEASE = """\
apiVersion: canaryflow/v1
kind: Release
metadata: {name: web}
spec:
  rollout: config/rollouts/web.yaml
  prometheus: http://prometheus.monitoring:9090
  cells:
    - {name: eu-1, context: eu-1, workPool: rollouts-eu-1, labels: {cluster: eu-1, zone: a}}
    - {name: us-1, context: us-1, workPool: rollouts-us, workQueue: us-1, prometheus: http://prom-us-1:9090}
    - name: local
      inCluster: true
      workPool: rollouts-local
      labels: {cluster: local}
      target: {namespace: shop-local, deployment: web-local}
  waves:
    - {cells: [eu-1]}
    - {cells: [us-1, local]}
"""


@pytest.fixture(scope="module")
def release() -> ReleaseSpec:
    return load_release_text(RELEASE)


def test_each_cell_gets_its_cluster_its_prometheus_and_its_labels(release: ReleaseSpec) -> None:
    eu = cell_run(release, "eu-1", image=IMAGE, triggered_by="release web")
    assert (eu.work_pool, eu.work_queue) == ("rollouts-eu-1", None)
    assert eu.env == {
        "CANARYFLOW_KUBE_CONTEXT": "eu-1",
        "CANARYFLOW_PROMETHEUS_URL": "http://prometheus.monitoring:9090",
        "CANARYFLOW_PROMETHEUS_LABELS": "cluster=eu-1,zone=a",
    }
    us = cell_run(release, "us-1", image=IMAGE, triggered_by="release web")
    assert (us.work_pool, us.work_queue) == ("rollouts-us", "us-1")
    assert us.env == {"CANARYFLOW_KUBE_CONTEXT": "us-1", "CANARYFLOW_PROMETHEUS_URL": "http://prom-us-1:9090"}
    local = cell_run(release, "local", image=IMAGE, triggered_by="release web")
    assert local.env["CANARYFLOW_IN_CLUSTER"] == "true"
    assert "CANARYFLOW_KUBE_CONTEXT" not in local.env
    with pytest.raises(KeyError):
        cell_run(release, "nowhere", image=IMAGE, triggered_by="release web")


def test_the_worker_reads_the_cells_prometheus_and_labels_back(release: ReleaseSpec) -> None:
    eu = cell_run(release, "eu-1", image=IMAGE, triggered_by="release web")
    source = metrics_from_env(eu.env)
    assert isinstance(source, PrometheusMetricsSource)
    assert source.config.url == "http://prometheus.monitoring:9090"
    assert dict(source.config.labels) == {"cluster": "eu-1", "zone": "a"}
    own = metrics_from_env(cell_run(release, "us-1", image=IMAGE, triggered_by="x").env)
    assert isinstance(own, PrometheusMetricsSource)
    assert dict(own.config.labels) == {}


def test_a_cells_request_rolls_out_to_its_own_target_under_its_own_id(release: ReleaseSpec) -> None:
    spec = load_spec(SPEC)
    local = plan_rollout(cell_run(release, "local", image=IMAGE, triggered_by="x").request)
    assert (local.target.namespace, local.target.deployment) == ("shop-local", "web-local")
    assert (local.target.container, local.target.service) == (spec.target.container, spec.target.service)
    assert local.spec.target.app == "web-local"  # the pods' label follows the cell's Deployment
    eu = plan_rollout(cell_run(release, "eu-1", image=IMAGE, triggered_by="x").request)
    us = plan_rollout(cell_run(release, "us-1", image=IMAGE, triggered_by="x").request)
    assert eu.target == us.target == plan_rollout(RolloutRequest(spec=SPEC, image=IMAGE)).target
    ids = {eu.rollout_id, us.rollout_id, local.rollout_id, rollout_id_for(spec, IMAGE)}
    assert len(ids) == 4  # one per cell, and none a plain rollout's
    # a request without a cell keeps the id it always had
    assert plan_rollout(RolloutRequest(spec=SPEC, image=IMAGE)).rollout_id == rollout_id_for(spec, IMAGE)


def test_a_request_refuses_a_cell_that_is_not_a_name() -> None:
    with pytest.raises(ValidationError):
        RolloutRequest(spec=SPEC, image=IMAGE, cell=CellTarget(name="EU 1"))
    with pytest.raises(ValidationError):
        CellTarget(name="eu-1", deployment="Web")
    assert "cell" in RolloutRequest.model_json_schema()["properties"]  # the UI's form offers it


def test_labels_go_through_a_variable_and_back() -> None:
    labels = {"cluster": "eu-1", "zone": 'a"b'}
    assert parse_labels(format_labels(labels)) == labels
    assert parse_labels("") == {}
    assert parse_labels(" cluster = eu-1 , ") == {"cluster": "eu-1"}
    for bad, why in (
        ("cluster", r"^entry 1 is not name=value$"),
        ("zone=a,cluster=", r"^entry 2 \('cluster'\) is not name=value$"),
        ("1x=a", "not a Prometheus label name"),
        ("__name__=x", "not a Prometheus label name"),
        ("a=1,a=2", "given twice"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_labels(bad)
    for value in ("a,b", "", " a"):
        with pytest.raises(ValueError, match="no ','"):
            format_labels({"cluster": value})


def test_a_labels_variable_that_is_not_labels_is_one_line_naming_it() -> None:
    env = {"CANARYFLOW_PROMETHEUS_URL": "http://prometheus:9090", "CANARYFLOW_PROMETHEUS_LABELS": "cluster"}
    with pytest.raises(InputError) as caught:
        metrics_from_env(env)
    message = str(caught.value)
    assert "CANARYFLOW_PROMETHEUS_LABELS='cluster'" in message
    assert "\n" not in message
    assert "name=value" in message


def test_a_release_refuses_a_label_value_a_variable_cannot_carry() -> None:
    text = RELEASE.replace("labels: {cluster: eu-1, zone: a}", 'labels: {cluster: "eu-1,eu-2"}')
    with pytest.raises(SpecError) as caught:
        load_release_text(text)
    assert any("labels.cluster" in p and "','" in p for p in caught.value.problems), caught.value.problems
