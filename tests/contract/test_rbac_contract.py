"""The Role in deployments/kubernetes/canaryflow/rbac.yaml is exactly what the Kubernetes adapter needs.

A whole rollout (lock, read, split, pods, promote; split, roll back; on a target an HPA scales)
runs as the ServiceAccount bound to that Role; then, one at a time, each verb is taken away and
the same rollout must be refused with `ForbiddenError`. So the Role neither lacks a verb nor
grants one the adapter never uses. Events and the stable's ``Canary`` condition are the
best-effort writes: without ``create events`` or ``patch deployments/status`` the rollout goes on
without them, and it is the preflight (`Cluster.check`) that refuses.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from canaryflow.cluster.port import Cluster, RolloutCondition, RolloutId, TargetRef
from canaryflow.cluster.workloads import PERMISSIONS
from canaryflow.errors import ForbiddenError
from canaryflow.replicas import plan_split
from tests.contract.harness import KubernetesHarness, role_rules

pytestmark = [pytest.mark.kube, pytest.mark.slow]

DEADLINE = timedelta(seconds=60)
_role_rules = role_rules


def _without(rules: list[dict[str, Any]], resource: str, verb: str) -> list[dict[str, Any]]:
    reduced = copy.deepcopy(rules)
    for rule in reduced:
        if resource in rule["resources"]:
            rule["verbs"].remove(verb)
    return [rule for rule in reduced if rule["verbs"]]


def _grants() -> list[tuple[str, str]]:
    return [
        (resource, verb) for rule in _role_rules() for resource in rule["resources"] for verb in rule["verbs"]
    ]


@pytest.fixture
def kube(request: pytest.FixtureRequest) -> Iterator[KubernetesHarness]:
    try:
        local_kube = request.getfixturevalue("local_kube")
    except pytest.FixtureLookupError:
        pytest.skip("the local_kube fixture (tests/fixtures/kube.py) is not available")
    harness = KubernetesHarness(local_kube.kubeconfig)
    try:
        yield harness
    finally:
        harness.close()


def _rollouts(cluster: Cluster, target: TargetRef) -> None:
    cluster.read(target)
    hold = timedelta(minutes=1)
    assert cluster.lock(target, identity="web-v2/run-1", details={}, duration=hold).granted  # created
    split = plan_split(4, 25, baseline=True)
    cluster.apply_split(
        target, split, rollout_id=RolloutId("web-v2"), image="web:2", step=0, progress_deadline=DEADLINE
    )
    assert cluster.pods(target.namespace, "web")
    cluster.promote(target, rollout_id=RolloutId("web-v2"), progress_deadline=DEADLINE)
    cluster.set_condition(target, RolloutCondition("True", "Promoted", "web-v2 promoted web:2"))
    cluster.unlock(target, identity="web-v2/run-1")
    assert cluster.lock(target, identity="web-v3/run-2", details={}, duration=hold).granted  # taken
    cluster.apply_split(
        target, split, rollout_id=RolloutId("web-v3"), image="web:3", step=0, progress_deadline=DEADLINE
    )
    cluster.rollback(target, rollout_id=RolloutId("web-v3"), progress_deadline=DEADLINE)
    cluster.unlock(target, identity="web-v3/run-2")


def test_the_role_is_enough_for_a_whole_rollout(kube: KubernetesHarness) -> None:
    target = kube.create_app("web", image="web:1", replicas=4)
    kube.set_hpa("web", 4, min_replicas=4, max_replicas=8)  # its bounds are lent to the split
    cluster = kube.cluster_as_service_account(_role_rules())

    _rollouts(cluster, target)

    status = cluster.read(target)
    assert (status.stable.image, status.canary, status.baseline) == ("web:2", None, None)
    reasons = [reason for reason, _, _ in kube.events("web")]
    assert reasons == ["CanarySplit", "CanaryPromoted", "CanarySplit", "CanaryRolledBack"]
    assert kube.condition("web") == ("True", "Promoted", "web-v2 promoted web:2")


@pytest.mark.parametrize(("resource", "verb"), _grants(), ids=lambda value: str(value))
def test_every_verb_of_the_role_is_needed(kube: KubernetesHarness, resource: str, verb: str) -> None:
    target = kube.create_app("web", image="web:1", replicas=4)
    kube.set_hpa("web", 4, min_replicas=4, max_replicas=8)  # its bounds are lent to the split
    cluster = kube.cluster_as_service_account(_without(_role_rules(), resource, verb))

    if (resource, verb) == ("events", "create"):  # best effort: the rollout goes on without them
        _rollouts(cluster, target)
        assert kube.events("web") == []
        with pytest.raises(ForbiddenError, match="may not create events"):
            cluster.check(target)
        return
    if (resource, verb) == ("deployments/status", "patch"):  # best effort too, like events
        _rollouts(cluster, target)
        assert kube.condition("web") is None
        with pytest.raises(ForbiddenError, match="may not patch deployments/status"):
            cluster.check(target)
        return
    with pytest.raises(ForbiddenError, match="403"):
        _rollouts(cluster, target)


def test_the_preflight_asks_for_exactly_what_the_role_grants_but_the_demos_pod_list() -> None:
    granted = set(_grants())
    asked = {(p.resource, p.verb) for p in PERMISSIONS}
    assert asked <= granted
    assert granted - asked == {("pods", "list")}  # only the demo's traffic simulator lists pods


def test_operations_outside_the_role_are_forbidden(kube: KubernetesHarness) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    target = kube.create_app("web", image="web:1", replicas=2)
    cluster = kube.cluster_as_service_account(_role_rules())
    core = client.CoreV1Api(cluster.api_client)  # type: ignore[attr-defined]
    outside = {
        "delete the Service": lambda: core.delete_namespaced_service(target.service, target.namespace),
        "read a Secret": lambda: core.list_namespaced_secret(target.namespace),
        "list nodes": lambda: core.list_node(),
        "list pods in another namespace": lambda: core.list_namespaced_pod("default"),
    }
    for what, call in outside.items():
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == 403, what
    admin = client.CoreV1Api(kube.cluster().api_client)  # type: ignore[attr-defined]
    assert admin.read_namespaced_service(target.service, target.namespace).metadata.name == target.service
