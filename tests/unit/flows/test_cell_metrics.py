"""Each cell's metrics source in a release (`flows.release.cell_metrics`): the cell's own
Prometheus and labels, never the labels of the process the release runs in."""

from __future__ import annotations

import pytest

from canaryflow.cells import cell_run
from canaryflow.metrics.prometheus import PrometheusMetricsSource
from canaryflow.spec.loading import load_release_text

RELEASE = load_release_text("""\
apiVersion: canaryflow/v1
kind: Release
metadata: {name: web}
spec:
  rollout: config/rollouts/web.yaml
  prometheus: http://prometheus.monitoring:9090
  cells:
    - {name: eu-1, context: eu-1, workPool: p, labels: {cluster: eu-1}}
    - {name: us-1, context: us-1, workPool: p, prometheus: "http://prometheus.us-1:9090"}
  waves:
    - {cells: [eu-1]}
    - {cells: [us-1]}
""")


def test_a_cell_reads_its_own_prometheus_with_its_own_labels_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.release import cell_metrics

    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_LABELS", "cluster=where-the-release-runs")
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_TIMEOUT", "3")
    eu, us = (
        cell_metrics(cell_run(RELEASE, cell, image="r.io/w:2", triggered_by="t")) for cell in ("eu-1", "us-1")
    )

    assert isinstance(eu, PrometheusMetricsSource)
    assert isinstance(us, PrometheusMetricsSource)
    assert (eu.config.url, dict(eu.config.labels)) == (
        "http://prometheus.monitoring:9090",
        {"cluster": "eu-1"},
    )
    assert (us.config.url, dict(us.config.labels)) == ("http://prometheus.us-1:9090", {})
    assert us.config.timeout == 3.0  # the process's other settings hold
