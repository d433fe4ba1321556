"""`Cluster.check`, the preflight: it names what is missing (a permission, the target, its Service)
and what is wrong (a Service that selects by track), and it changes nothing, on every adapter."""

from __future__ import annotations

import pytest

from canaryflow.cluster.port import TargetRef
from canaryflow.cluster.workloads import PERMISSIONS, Permission
from canaryflow.errors import ClusterError, ForbiddenError, NotFoundError
from tests.contract.harness import Harness


def _no_writes(harness: Harness) -> list[tuple[str, str]]:
    writes: list[tuple[str, str]] = []
    harness.write_hook = lambda verb, name: writes.append((verb, name))
    return writes


def test_a_ready_target_passes_and_nothing_is_written(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    writes = _no_writes(cluster_factory)

    status = cluster_factory.cluster().check(target)

    assert (status.stable.image, status.stable.ready, status.state) == ("web:1", 4, None)
    assert writes == []
    assert cluster_factory.deployments() == ["web"]


@pytest.mark.parametrize("permission", PERMISSIONS, ids=str)
def test_a_missing_permission_is_named_with_the_fix(cluster_factory: Harness, permission: Permission) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    cluster = cluster_factory.cluster_denied({(permission.verb, permission.resource)})
    writes = _no_writes(cluster_factory)

    with pytest.raises(ForbiddenError) as refused:
        cluster.check(target)

    message = refused.value.summary()
    assert message.startswith(
        f"the cluster credentials may not {permission.verb} {permission.resource} in namespace "
        f"{target.namespace} (needed to {permission.why})"
    )
    assert "apply deployments/kubernetes/canaryflow/rbac.yaml" in message
    assert writes == []


def test_a_missing_target_container_or_service_is_named(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    cluster = cluster_factory.cluster()
    ns = target.namespace

    with pytest.raises(NotFoundError, match=f"Deployment {ns}/api does not exist"):
        cluster.check(TargetRef(ns, "api", "api", "api"))
    with pytest.raises(NotFoundError, match="has no container 'sidecar'"):
        cluster.check(TargetRef(ns, "web", "sidecar", "web"))
    with pytest.raises(NotFoundError, match=f"Service {ns}/nope does not exist"):
        cluster.check(TargetRef(ns, "web", "web", "nope"))


def test_a_service_that_selects_by_track_is_refused(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app(
        "web", image="web:1", replicas=2, service_selector={"app": "web", "track": "stable"}
    )
    with pytest.raises(ClusterError, match="selects on label 'track'"):
        cluster_factory.cluster().check(target)
    assert cluster_factory.deployments() == ["web"]
