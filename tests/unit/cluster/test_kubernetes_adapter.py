"""The Kubernetes adapter's edge, without an API server: error translation, reading Deployments,
building the canary from the stable's template, and an API server that does not answer."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from canaryflow.cluster.kubernetes import (
    KubernetesCluster,
    _pod_info,
    _record,
    _track_body,
    _translate,
    new_api_client,
)
from canaryflow.cluster.port import TargetRef
from canaryflow.cluster.workloads import NewTrack
from canaryflow.errors import (
    ClusterError,
    ClusterUnavailableError,
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
)

STABLE: dict[str, Any] = {
    "metadata": {"name": "web", "generation": 7, "resourceVersion": "4711", "labels": {"app": "web"}},
    "spec": {
        "replicas": 4,
        "revisionHistoryLimit": 3,
        "strategy": {"type": "RollingUpdate"},
        "selector": {"matchLabels": {"app": "web", "track": "stable"}},
        "template": {
            "metadata": {"labels": {"app": "web", "track": "stable"}, "annotations": {"a": "b"}},
            "spec": {
                "containers": [
                    {"name": "web", "image": "web:1", "futureField": {"kept": True}},
                    {"name": "proxy", "image": "proxy:9"},
                ],
                "someNewPodField": "kept",
            },
        },
    },
    "status": {
        "observedGeneration": 7,
        "replicas": 4,
        "updatedReplicas": 4,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
    },
}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotFoundError),
        (403, ForbiddenError),
        (401, ForbiddenError),
        (409, ConflictError),
        (422, ClusterError),
        (429, ClusterUnavailableError),
        (500, ClusterUnavailableError),
        (503, ClusterUnavailableError),
    ],
)
def test_api_errors_become_ours(status: int, error: type[Exception]) -> None:
    exc = ApiException(
        status=status, reason="Reason", body=json.dumps({"message": "deployments.apps is bad"})
    )
    translated = _translate(exc, "PATCH /apis/apps/v1/namespaces/shop/deployments/web", "shop/web")
    assert type(translated) is error
    assert (
        str(translated)
        == f"PATCH /apis/apps/v1/namespaces/shop/deployments/web: {status} deployments.apps is bad"
    )


def test_a_deployment_is_read_as_the_server_sent_it() -> None:
    record = _record(STABLE)
    assert (record.name, record.resource_version, record.generation, record.observed_generation) == (
        "web",
        "4711",
        7,
        7,
    )
    assert (record.replicas, record.current, record.updated, record.ready, record.available) == (
        4,
        4,
        4,
        3,
        3,
    )
    assert record.images == {"web": "web:1", "proxy": "proxy:9"}
    assert record.deadline_exceeded


def test_a_stale_progress_condition_is_not_a_missed_deadline() -> None:
    newer = json.loads(json.dumps(STABLE))
    newer["metadata"]["generation"] = 8  # the controller has not seen the latest change yet
    assert not _record(newer).deadline_exceeded


def test_the_canary_is_the_stables_template_with_track_and_image_changed() -> None:
    new = NewTrack(
        source="web",
        name="web-canary",
        track="canary",
        container="web",
        image="web:2",
        replicas=1,
        annotations={"canaryflow/rollout-id": "web-v2"},
        labels={"track": "canary", "canaryflow/target": "web"},
        progress_deadline_seconds=300,
    )
    original = json.dumps(STABLE, sort_keys=True)

    body = _track_body(STABLE, "shop", new)

    assert json.dumps(STABLE, sort_keys=True) == original  # the source is not touched
    template = body["spec"]["template"]
    assert template["metadata"]["labels"] == {"app": "web", "track": "canary"}
    assert template["metadata"]["annotations"] == {"a": "b"}
    assert template["spec"]["containers"] == [
        {"name": "web", "image": "web:2", "futureField": {"kept": True}},
        {"name": "proxy", "image": "proxy:9"},
    ]
    assert template["spec"]["someNewPodField"] == "kept"  # unknown to any client model: still there
    assert body["spec"]["selector"] == {"matchLabels": {"app": "web", "track": "canary"}}
    assert (body["spec"]["replicas"], body["spec"]["progressDeadlineSeconds"]) == (1, 300)
    assert body["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert body["metadata"] == {
        "name": "web-canary",
        "namespace": "shop",
        "labels": {"app": "web", "track": "canary", "canaryflow/target": "web"},
        "annotations": {"canaryflow/rollout-id": "web-v2"},
    }


def test_pods_are_read_with_their_track_and_readiness() -> None:
    pod = {
        "metadata": {"name": "web-canary-x", "labels": {"app": "web", "track": "canary"}},
        "spec": {"containers": [{"name": "proxy", "image": "proxy:9"}, {"name": "web", "image": "web:2"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    info = _pod_info(pod, "web")
    assert (info.name, info.track, info.image, info.ready) == ("web-canary-x", "canary", "web:2", True)
    pod["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert not _pod_info(pod, "web").ready  # terminating pods get no traffic


def test_an_api_server_that_does_not_answer_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = False
    with KubernetesCluster(client.ApiClient(configuration), request_timeout=2) as cluster:
        with pytest.raises(ClusterUnavailableError, match="did not answer"):
            cluster.read(TargetRef(namespace="shop", deployment="web", container="web", service="web"))
        cluster.api_client.close()


def test_a_missing_kubeconfig_is_invalid_input_that_says_it_is_missing(tmp_path: Any) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(InputError) as caught:
        new_api_client(missing, context="dev")
    assert str(caught.value) == (
        f"cannot load kubeconfig {missing} context dev: no such file {missing}; point KUBECONFIG at a "
        "valid kubeconfig"
    )


def test_a_context_the_kubeconfig_lacks_names_the_contexts_it_has(tmp_path: Any) -> None:
    """The loader's own words blamed the file ("point KUBECONFIG at a valid kubeconfig")."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: eu-1\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: eu-1, context: {cluster: c, user: u}},\n"
        "           {name: eu-2, context: {cluster: c, user: u}}]\n"
    )
    with pytest.raises(InputError) as caught:
        new_api_client(kubeconfig, context="nosuch")
    assert str(caught.value) == (
        f"no context 'nosuch' in kubeconfig {kubeconfig} (its contexts: eu-1, eu-2): set "
        "CANARYFLOW_KUBE_CONTEXT to one of them"
    )
    new_api_client(kubeconfig, context="eu-2").close()  # one it has still loads
