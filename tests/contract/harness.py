"""What the contract suite needs from each adapter's world, behind one small interface.

A harness sets the scene (an app: Deployment + Service; an HPA; pods that cannot start), injects
faults (a hook before every write; a concurrent writer), builds fresh adapters (as a restarted
controller would), and observes Deployments by its own means, not through the adapter under test.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from canaryflow.clock import Clock, ManualClock, SystemClock
from canaryflow.cluster.port import Cluster, TargetRef
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.dev.kube import LocalControlPlane

#: Called before every write the adapter makes, with ("create" | "patch" | "delete", deployment name).
WriteHook = Callable[[str, str], None]


class ClockOff:
    """`clock` with its wall time `offset` seconds off; monotonic time and sleeps are `clock`'s."""

    def __init__(self, clock: Clock, offset: float) -> None:
        self._clock, self._offset = clock, timedelta(seconds=offset)

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    def now(self) -> datetime:
        return self._clock.now() + self._offset


@dataclass(frozen=True)
class Observed:
    """A Deployment as the harness sees it."""

    replicas: int
    images: Mapping[str, str]
    annotations: Mapping[str, str]
    pod_labels: Mapping[str, str]


class Harness(Protocol):
    kind: str
    namespace: str
    write_hook: WriteHook | None

    def cluster(self) -> Cluster: ...

    def cluster_with_clock_off(self, seconds: float) -> Cluster:
        """A fresh adapter whose wall clock is `seconds` off (ahead when positive), as on a
        controller's machine whose time is not synchronised; its monotonic clock runs as ours."""
        ...

    def create_app(
        self,
        name: str,
        *,
        image: str,
        replicas: int,
        track_label: bool = True,
        service_selector: Mapping[str, str] | None = None,
    ) -> TargetRef: ...

    def set_hpa(
        self,
        deployment: str,
        replicas: int,
        *,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
    ) -> None:
        """An HPA on `deployment` (bounds default to `replicas`), the Deployment at `replicas`."""
        ...

    def hpa_wants(self, deployment: str, replicas: int) -> None:
        """Load changed: the HPA's metrics ask for `replicas` (it scales within its bounds)."""
        ...

    def hpa_synced(self, deployment: str) -> int:
        """Wait until the HPA controller has acted on the Deployment's size as it is now; that size."""
        ...

    def hpa_bounds(self, deployment: str) -> tuple[int, int]:
        """The HPA's ``(minReplicas, maxReplicas)`` as they are now."""
        ...

    def hpa_syncs(self, deployment: str) -> int:
        """The HPA controller syncs now, its metrics content with the Deployment's size: it puts
        the Deployment within its bounds (leaving one at zero alone); the size after."""
        ...

    def let_time_pass(self, seconds: float) -> None:
        """Time passes for the cluster (the simulated clock moves; a real one is waited for)."""
        ...

    def person_deletes_lease(self, name: str) -> None:
        """``kubectl delete lease/<name>`` by somebody else."""
        ...

    def cluster_denied(self, denied: set[tuple[str, str]]) -> Cluster:
        """An adapter whose credentials may do what deployments/kubernetes/canaryflow/rbac.yaml grants except
        the ``(verb, resource)`` pairs in `denied`."""
        ...

    def block_new_pods(self) -> None: ...

    def concurrent_write(self, deployment: str) -> None: ...

    def outage(self, seconds: float) -> None:
        """The API server stops answering now and answers again after about `seconds`."""
        ...

    def person_scales(self, deployment: str, replicas: int) -> None:
        """``kubectl scale deploy/<deployment> --replicas=<replicas>`` by somebody else."""
        ...

    def person_sets_image(self, deployment: str, container: str, image: str) -> None:
        """``kubectl set image deploy/<deployment> <container>=<image>`` by somebody else."""
        ...

    def person_deletes(self, deployment: str) -> None:
        """``kubectl delete deploy/<deployment>`` by somebody else."""
        ...

    def person_sets_env(self, deployment: str, container: str, name: str, value: str) -> None:
        """``kubectl set env deploy/<deployment> -c <container> <name>=<value>``: an edit of the pod
        template other than an image."""
        ...

    def person_sets_service(self, service: str, selector: Mapping[str, str] | None) -> None:
        """Somebody edits the Service's selector (None: ``kubectl delete service``)."""
        ...

    def wait_answering(self) -> None:
        """Return once the API server answers again after an `outage`."""
        ...

    def observe(self, deployment: str) -> Observed | None: ...

    def serving(self, app: str) -> int:
        """Ready pods labelled ``app=<app>`` and not being deleted: what the Service sends traffic to."""
        ...

    def deployments(self) -> list[str]: ...

    def events(self, deployment: str) -> list[tuple[str, str, str]]:
        """(reason, message, Normal | Warning) of canaryflow's Events about `deployment`, oldest
        first (not the controllers' own)."""
        ...

    def condition(self, deployment: str) -> tuple[str, str, str] | None:
        """(status, reason, message) of `deployment`'s ``Canary`` condition, read as ``kubectl
        describe`` does (None without one)."""
        ...

    def eventually(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Wait (bounded) until `check()` holds: controllers and garbage collection take a moment."""
        ...

    def close(self) -> None: ...


#: Longer than the local control plane's HPA sync period (``--horizontal-pod-autoscaler-sync-period``).
HPA_SYNC_SECONDS = 3.5
RBAC = Path(__file__).resolve().parents[2] / "deployments" / "kubernetes" / "canaryflow" / "rbac.yaml"


def rollout_under_way(
    harness: Harness, *, weight: int = 25, rollout_id: str = "web-v2"
) -> tuple[TargetRef, Cluster]:
    """App ``web`` (4 replicas of web:1) with rollout `rollout_id` of web:2 split at `weight` %
    (step 1, a baseline), and the adapter that split it."""
    from datetime import timedelta

    from canaryflow.cluster.port import RolloutId
    from canaryflow.replicas import plan_split

    target = harness.create_app("web", image="web:1", replicas=4)
    cluster = harness.cluster()
    cluster.apply_split(
        target,
        plan_split(4, weight, baseline=True),
        rollout_id=RolloutId(rollout_id),
        image="web:2",
        step=0,
        progress_deadline=timedelta(seconds=90),
    )
    return target, cluster


def role_rules() -> list[dict[str, Any]]:
    """The rules of the Role in deployments/kubernetes/canaryflow/rbac.yaml."""
    from ruamel.yaml import YAML

    documents = list(YAML(typ="safe").load_all(RBAC.read_text(encoding="utf-8")))
    (role,) = [d for d in documents if d["kind"] == "Role"]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def _pod_labels(name: str, track_label: bool) -> dict[str, str]:
    return {"app": name, "track": "stable"} if track_label else {"app": name}


class SimulatedHarness:
    kind = "simulated"

    def __init__(self) -> None:
        self.namespace = "shop"
        self.clock = ManualClock()
        self.world = SimulatedWorld(clock=self.clock, pod_ready_delay=2.0)
        self.world.before_write = self._before_write
        self.write_hook: WriteHook | None = None

    def _before_write(self, verb: str, namespace: str, name: str) -> None:
        if self.write_hook is not None:
            self.write_hook(verb, name)

    def cluster(self) -> Cluster:
        return SimulatedCluster(self.world, poll_interval=0.5)

    def cluster_with_clock_off(self, seconds: float) -> Cluster:
        return SimulatedCluster(self.world, poll_interval=0.5, clock=ClockOff(self.clock, seconds))

    def create_app(
        self,
        name: str,
        *,
        image: str,
        replicas: int,
        track_label: bool = True,
        service_selector: Mapping[str, str] | None = None,
    ) -> TargetRef:
        labels = _pod_labels(name, track_label)
        self.world.add_deployment(self.namespace, name, image=image, replicas=replicas, labels=labels)
        self.world.add_service(self.namespace, name, service_selector or {"app": name})
        return TargetRef(namespace=self.namespace, deployment=name, container=name, service=name)

    def set_hpa(
        self,
        deployment: str,
        replicas: int,
        *,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
    ) -> None:
        self.world.set_hpa(
            self.namespace, deployment, replicas, min_replicas=min_replicas, max_replicas=max_replicas
        )
        self.clock.advance(10)

    def hpa_wants(self, deployment: str, replicas: int) -> None:
        self.world.autoscale(self.namespace, deployment, replicas)
        self.clock.advance(10)

    def hpa_synced(self, deployment: str) -> int:
        record = self.world.record(self.namespace, deployment)  # the simulated HPA acts at once
        assert record is not None
        return record.replicas

    def hpa_syncs(self, deployment: str) -> int:
        record = self.world.record(self.namespace, deployment)
        assert record is not None
        self.world.autoscale(self.namespace, deployment, record.replicas)
        return self.hpa_synced(deployment)

    def hpa_bounds(self, deployment: str) -> tuple[int, int]:
        bounds = self.world.hpa_bounds(self.namespace, deployment)
        assert bounds is not None
        return bounds

    def let_time_pass(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def person_deletes_lease(self, name: str) -> None:
        self.world.remove_lease(self.namespace, name)

    def cluster_denied(self, denied: set[tuple[str, str]]) -> Cluster:
        self.world.forbidden = set(denied)
        return self.cluster()

    def block_new_pods(self) -> None:
        self.world.hold_new_pods = True

    def concurrent_write(self, deployment: str) -> None:
        self.world.touch(self.namespace, deployment)

    def person_scales(self, deployment: str, replicas: int) -> None:
        self.world.scale(self.namespace, deployment, replicas)

    def person_sets_image(self, deployment: str, container: str, image: str) -> None:
        self.world.set_image(self.namespace, deployment, container, image)

    def person_deletes(self, deployment: str) -> None:
        self.world.remove(self.namespace, deployment)

    def person_sets_env(self, deployment: str, container: str, name: str, value: str) -> None:
        self.world.set_env(self.namespace, deployment, name, value)

    def person_sets_service(self, service: str, selector: Mapping[str, str] | None) -> None:
        if selector is None:
            self.world.remove_service(self.namespace, service)
        else:
            self.world.add_service(self.namespace, service, selector)

    def outage(self, seconds: float) -> None:
        self.world.outage(seconds)
        self._back_at = self.clock.monotonic() + seconds

    def wait_answering(self) -> None:
        self.clock.advance(max(0.0, getattr(self, "_back_at", 0.0) - self.clock.monotonic()))

    def observe(self, deployment: str) -> Observed | None:
        record = self.world.record(self.namespace, deployment)
        if record is None:
            return None
        return Observed(record.replicas, record.images, record.annotations, record.template_labels)

    def serving(self, app: str) -> int:
        return sum(1 for pod in self.world.pods(self.namespace, app) if pod.ready)

    def deployments(self) -> list[str]:
        return self.world.deployment_names(self.namespace)

    def events(self, deployment: str) -> list[tuple[str, str, str]]:
        return [
            (e.reason, e.message, "Warning" if e.warning else "Normal")
            for ns, e in self.world.events
            if ns == self.namespace and e.deployment == deployment
        ]

    def condition(self, deployment: str) -> tuple[str, str, str] | None:
        record = self.world.record(self.namespace, deployment)
        found = record.condition if record is not None else None
        return (found.status, found.reason, found.message) if found is not None else None

    def eventually(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = self.clock.monotonic() + timeout
        while not check():
            if self.clock.monotonic() >= deadline:
                raise AssertionError(f"not within {timeout} s: {what}")
            self.clock.advance(0.5)

    def close(self) -> None:
        self.world.before_write = None


class KubernetesHarness:
    """A namespace of its own on a real API server; pods are made Ready by kwok."""

    kind = "kubernetes"

    def __init__(self, kubeconfig: Path, control: LocalControlPlane | None = None) -> None:
        from kubernetes import client, config

        self._control = control
        self._restart: threading.Thread | None = None
        self._client_mod = client
        self._kubeconfig = kubeconfig
        self._configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=self._configuration, persist_config=False
        )
        self._admin = client.ApiClient(self._configuration)
        self._apps = client.AppsV1Api(self._admin)
        self._core = client.CoreV1Api(self._admin)
        self._autoscaling = client.AutoscalingV2Api(self._admin)
        self._clients: list[Any] = []
        self.write_hook: WriteHook | None = None
        self.namespace = f"cf-{uuid.uuid4().hex[:10]}"
        self._core.create_namespace({"metadata": {"name": self.namespace}})

    def cluster(self) -> Cluster:
        from canaryflow.cluster.kubernetes import KubernetesCluster

        api_client = _hooked_api_client(self._client_mod, self._configuration, self)
        self._clients.append(api_client)
        return KubernetesCluster(api_client, clock=SystemClock(), poll_interval=0.2, request_timeout=15)

    def cluster_with_clock_off(self, seconds: float) -> Cluster:
        from canaryflow.cluster.kubernetes import KubernetesCluster

        api_client = _hooked_api_client(self._client_mod, self._configuration, self)
        self._clients.append(api_client)
        clock = ClockOff(SystemClock(), seconds)
        return KubernetesCluster(api_client, clock=clock, poll_interval=0.2, request_timeout=15)

    def create_app(
        self,
        name: str,
        *,
        image: str,
        replicas: int,
        track_label: bool = True,
        service_selector: Mapping[str, str] | None = None,
    ) -> TargetRef:
        labels = _pod_labels(name, track_label)
        body = {
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": name, "image": image, "ports": [{"containerPort": 8080}]}]
                    },
                },
            },
        }
        self._apps.create_namespaced_deployment(self.namespace, body)
        service = {
            "metadata": {"name": name},
            "spec": {
                "selector": dict(service_selector or {"app": name}),
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        }
        self._core.create_namespaced_service(self.namespace, service)
        self._wait_ready(name)
        return TargetRef(namespace=self.namespace, deployment=name, container=name, service=name)

    def set_hpa(
        self,
        deployment: str,
        replicas: int,
        *,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
    ) -> None:
        """A real HPA, acted on by the local control plane's HPA controller (with no metrics API
        there it enforces its bounds and nothing else)."""
        hpa = {
            "metadata": {"name": deployment},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                "minReplicas": replicas if min_replicas is None else min_replicas,
                "maxReplicas": replicas if max_replicas is None else max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        }
        self._apps.patch_namespaced_deployment(deployment, self.namespace, {"spec": {"replicas": replicas}})
        self._autoscaling.create_namespaced_horizontal_pod_autoscaler(self.namespace, hpa)
        self.hpa_synced(deployment)
        self._wait_ready(deployment)

    def hpa_wants(self, deployment: str, replicas: int) -> None:
        """What the HPA controller writes when its metrics ask for `replicas`: the Deployment's
        scale (this plane has no metrics API); the controller itself then keeps it within bounds."""
        self._apps.patch_namespaced_deployment_scale(
            deployment, self.namespace, {"spec": {"replicas": replicas}}
        )

    def hpa_synced(self, deployment: str, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        held: tuple[int, float] | None = None  # the size that matched, since when
        while time.monotonic() < deadline:
            hpa = self._autoscaling.read_namespaced_horizontal_pod_autoscaler(deployment, self.namespace)
            replicas = self._apps.read_namespaced_deployment(deployment, self.namespace).spec.replicas
            # A sync writes the scale first, then a status with the size it scaled from (0 is
            # left out of it): a status read before the Deployment and showing its size means the
            # last finished sync left that size alone. Its status carries no generation, so a
            # sync that began before the bounds last changed may still be under way: the match
            # must hold for longer than a sync period (3 s on this plane).
            if (
                hpa.status is not None
                and hpa.status.conditions
                and (hpa.status.current_replicas or 0) == replicas
            ):
                if held is None or held[0] != replicas:
                    held = (int(replicas), time.monotonic())
                elif time.monotonic() - held[1] > HPA_SYNC_SECONDS:
                    return held[0]
            else:
                held = None
            time.sleep(0.2)
        raise AssertionError(f"the HPA of {self.namespace}/{deployment} did not act within {timeout} s")

    def hpa_syncs(self, deployment: str) -> int:
        """The controller syncs every 3 s on this plane: wait until it has acted on the size now."""
        return self.hpa_synced(deployment)

    def hpa_bounds(self, deployment: str) -> tuple[int, int]:
        hpa = self._autoscaling.read_namespaced_horizontal_pod_autoscaler(deployment, self.namespace)
        return int(hpa.spec.min_replicas), int(hpa.spec.max_replicas)

    def let_time_pass(self, seconds: float) -> None:
        time.sleep(seconds)  # a Lease expires with the API server's clients' time, nothing to await

    def person_deletes_lease(self, name: str) -> None:
        self._client_mod.CoordinationV1Api(self._admin).delete_namespaced_lease(name, self.namespace)

    def cluster_denied(self, denied: set[tuple[str, str]]) -> Cluster:
        rules = copy.deepcopy(role_rules())
        for rule in rules:
            rule["verbs"] = [v for v in rule["verbs"] if all((v, r) not in denied for r in rule["resources"])]
        return self.cluster_as_service_account([rule for rule in rules if rule["verbs"]])

    def cluster_as_service_account(self, rules: list[dict[str, Any]]) -> Cluster:
        """An adapter acting as ServiceAccount ``canaryflow`` of this namespace, bound to a Role with
        `rules` (the admin client impersonates it, as the API server allows cluster admins)."""
        from kubernetes import client

        rbac = client.RbacAuthorizationV1Api(self._admin)
        self._core.create_namespaced_service_account(self.namespace, {"metadata": {"name": "canaryflow"}})
        rbac.create_namespaced_role(
            self.namespace, {"metadata": {"name": "canaryflow-rollouts"}, "rules": rules}
        )
        binding = {
            "metadata": {"name": "canaryflow-rollouts"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "canaryflow-rollouts",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "canaryflow", "namespace": self.namespace}],
        }
        rbac.create_namespaced_role_binding(self.namespace, binding)
        cluster = self.cluster()
        user = f"system:serviceaccount:{self.namespace}:canaryflow"
        cluster.api_client.set_default_header("Impersonate-User", user)  # type: ignore[attr-defined]
        return cluster

    def kubeconfig_as_service_account(self, rules: list[dict[str, Any]], path: Path) -> Path:
        """A kubeconfig (at `path`) whose user is ServiceAccount ``canaryflow`` of this namespace,
        bound to a Role with `rules`, by a token from the TokenRequest API: a real identity, as a
        user of a production cluster has one."""
        import json

        self.cluster_as_service_account(rules)
        answer = self._core.create_namespaced_service_account_token(
            "canaryflow", self.namespace, {"spec": {"expirationSeconds": 3600}}
        )
        config = json.loads(self._kubeconfig.read_text())
        config["users"] = [{"name": "canaryflow", "user": {"token": answer.status.token}}]
        config["contexts"][0]["context"]["user"] = "canaryflow"
        path.write_text(json.dumps(config))
        return path

    def block_new_pods(self) -> None:
        """Containers without requests get 5000 CPUs by default: new pods stay Pending."""
        limit_range = {
            "metadata": {"name": "no-room"},
            "spec": {
                "limits": [
                    {"type": "Container", "defaultRequest": {"cpu": "5000"}, "default": {"cpu": "5000"}}
                ]
            },
        }
        self._core.create_namespaced_limit_range(self.namespace, limit_range)

    def concurrent_write(self, deployment: str) -> None:
        patch = {"metadata": {"annotations": {"contract-test/touched": uuid.uuid4().hex}}}
        self._apps.patch_namespaced_deployment(deployment, self.namespace, patch)

    def person_scales(self, deployment: str, replicas: int) -> None:
        self._apps.patch_namespaced_deployment_scale(
            deployment, self.namespace, {"spec": {"replicas": replicas}}
        )

    def person_sets_image(self, deployment: str, container: str, image: str) -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
        self._apps.patch_namespaced_deployment(deployment, self.namespace, patch)

    def person_deletes(self, deployment: str) -> None:
        self._apps.delete_namespaced_deployment(deployment, self.namespace)

    def person_sets_env(self, deployment: str, container: str, name: str, value: str) -> None:
        env = [{"name": name, "value": value}]
        patch = {"spec": {"template": {"spec": {"containers": [{"name": container, "env": env}]}}}}
        self._apps.patch_namespaced_deployment(deployment, self.namespace, patch)

    def person_sets_service(self, service: str, selector: Mapping[str, str] | None) -> None:
        if selector is None:
            self._core.delete_namespaced_service(service, self.namespace)
        else:
            body = [{"op": "replace", "path": "/spec/selector", "value": dict(selector)}]
            self._core.patch_namespaced_service(service, self.namespace, body)

    def outage(self, seconds: float) -> None:
        """Kill the real kube-apiserver (etcd keeps the data) and start it again `seconds` later."""
        control = self._control
        if control is None:
            raise AssertionError(
                "this harness was built without the control plane; cannot stop its API server"
            )
        control.stop_apiserver()
        back = threading.Event()

        def restart() -> None:
            back.wait(seconds)  # woken early only by close(): the API server must be up for the next test
            control.start_apiserver()

        self._back = back
        self._restart = threading.Thread(target=restart, name="apiserver-restart", daemon=True)
        self._restart.start()

    def wait_answering(self) -> None:
        if self._restart is not None:
            self._restart.join(timeout=120)

    def events(self, deployment: str) -> list[tuple[str, str, str]]:
        listed = self._core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.kind=Deployment,involvedObject.name={deployment}"
        ).items
        ours = [e for e in listed if e.source is not None and e.source.component == "canaryflow"]
        ordered = sorted(
            ours, key=lambda e: (e.metadata.creation_timestamp, int(e.metadata.resource_version))
        )
        return [(e.reason, e.message, e.type) for e in ordered]

    def condition(self, deployment: str) -> tuple[str, str, str] | None:
        status = self._apps.read_namespaced_deployment_status(deployment, self.namespace).status
        found = [c for c in (status.conditions or []) if c.type == "Canary"]
        return (found[0].status, found[0].reason, found[0].message) if found else None

    def observe(self, deployment: str) -> Observed | None:
        try:
            dep = self._apps.read_namespaced_deployment(deployment, self.namespace)
        except self._client_mod.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        containers = dep.spec.template.spec.containers
        return Observed(
            replicas=dep.spec.replicas,
            images={c.name: c.image for c in containers},
            annotations=dict(dep.metadata.annotations or {}),
            pod_labels=dict(dep.spec.template.metadata.labels or {}),
        )

    def serving(self, app: str) -> int:
        pods = self._core.list_namespaced_pod(self.namespace, label_selector=f"app={app}").items
        return sum(
            1
            for pod in pods
            if pod.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        )

    def deployments(self) -> list[str]:
        return sorted(d.metadata.name for d in self._apps.list_namespaced_deployment(self.namespace).items)

    def eventually(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() >= deadline:
                raise AssertionError(f"not within {timeout} s: {what}")
            time.sleep(0.2)

    def close(self) -> None:
        if self._restart is not None:
            self._back.set()
            self._restart.join(timeout=120)
        try:
            self._core.delete_namespace(self.namespace)
        finally:
            for api_client in [*self._clients, self._admin]:
                api_client.close()

    def _wait_ready(self, name: str, timeout: float = 180.0) -> None:
        # A precondition, not the behaviour under test: after a test that restarted the API server,
        # the local control plane's controllers re-list and re-watch before they make new pods
        # Ready (about a minute and a half seen, more under load; 60 s failed now and then).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dep = self._apps.read_namespaced_deployment(name, self.namespace)
            status, want = dep.status, dep.spec.replicas
            if (
                (status.observed_generation or 0) >= dep.metadata.generation
                and (status.ready_replicas or 0) == want
                and (status.updated_replicas or 0) == want
                and (status.replicas or 0) == want
            ):
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.namespace}/{name} not ready within {timeout} s")


def _hooked_api_client(client: Any, configuration: Any, harness: KubernetesHarness) -> Any:
    """An ApiClient that calls the harness's write hook before every create, patch and delete."""
    verbs = {"POST": "create", "PATCH": "patch", "DELETE": "delete"}

    class HookedApiClient(client.ApiClient):  # type: ignore[misc]
        def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            hook = harness.write_hook
            if hook is not None and method in verbs and "/horizontalpodautoscalers/" in url:
                hook(verbs[method], "horizontalpodautoscalers/" + url.split("?")[0].rsplit("/", 1)[1])
            elif hook is not None and method in verbs and "/deployments" in url:
                body = kwargs.get("body", args[1] if len(args) > 1 else None)
                name = url.split("?")[0].rsplit("/deployments", 1)[1].strip("/")
                if not name and isinstance(body, dict):
                    name = body.get("metadata", {}).get("name", "")
                hook(verbs[method], name)
            return super().call_api(method, url, *args, **kwargs)

    return HookedApiClient(configuration)
