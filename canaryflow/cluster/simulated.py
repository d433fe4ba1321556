"""`SimulatedCluster`: the `Cluster` port in memory, with the semantics of the Kubernetes adapter.

A `SimulatedWorld` holds Deployments, Services, HPAs and pods, and a clock (a `ManualClock` by
default, so waiting takes no real time). Several `SimulatedCluster` objects may share one world,
which is how tests "restart the controller": a fresh adapter finds the rollout state in the canary's
annotations. Pods become Ready `pod_ready_delay` seconds after they start; per image, pods can be
made slower, never Ready, or to crash after running a while. API faults: the next N calls
time out (`ClusterUnavailableError`), the server is down for a while (`outage`), the next N writes
conflict (409), and a hook runs before every write.

What must not be here: any Kubernetes client import, Prefect, real time unless a clock says so.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from canaryflow.clock import Clock, ManualClock
from canaryflow.cluster.actuation import ReplicaActuator
from canaryflow.cluster.annotations import TRACK_LABEL, track_of
from canaryflow.cluster.port import PodInfo
from canaryflow.cluster.workloads import (
    ClusterEvent,
    DeploymentRecord,
    HpaRecord,
    LeaseRecord,
    NewTrack,
    Permission,
    RolloutCondition,
)
from canaryflow.errors import ClusterUnavailableError, ConflictError, ForbiddenError, NotFoundError

__all__ = ["ImageBehaviour", "SimulatedCluster", "SimulatedWorld"]

#: Hook called before every write with (verb, namespace, name); it may raise to inject a failure.
WriteHook = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class ImageBehaviour:
    """How pods of one image behave: seconds until Ready (None: the world's default), never Ready,
    or Ready and then failing after `crash_after` seconds (not Ready from then on)."""

    ready_after: float | None = None
    never_ready: bool = False
    crash_after: float | None = None


@dataclass
class _Pod:
    name: str
    revision: int
    labels: dict[str, str]
    images: dict[str, str]
    started: float
    held: bool = False


@dataclass
class _Deployment:
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    template_labels: dict[str, str]
    images: dict[str, str]
    replicas: int
    progress_deadline: float
    changed_at: float
    generation: int = 1
    revision: int = 1
    resource_version: int = 1
    pods: list[_Pod] = field(default_factory=list)
    #: The pod template's environment: what a person's ``kubectl set env`` edits.
    env: dict[str, str] = field(default_factory=dict)
    #: The ``Canary`` condition in its status (writing it changes no spec).
    condition: RolloutCondition | None = None


@dataclass
class _Hpa:
    min_replicas: int
    max_replicas: int
    resource_version: int
    annotations: dict[str, str] = field(default_factory=dict)


class SimulatedWorld:
    """The in-memory cluster state shared by `SimulatedCluster` adapters."""

    def __init__(self, *, clock: Clock | None = None, pod_ready_delay: float = 2.0) -> None:
        self.clock: Clock = clock or ManualClock()
        self.pod_ready_delay = pod_ready_delay
        self.timeouts = 0
        self._down_from = self._down_until = float("-inf")
        self.conflicts = 0
        self.before_write: WriteHook | None = None
        #: While True, pods that start are never Ready (as when a quota or a full node blocks them).
        self.hold_new_pods = False
        #: ``(verb, resource)`` pairs the simulated credentials may not use (RBAC in miniature).
        self.forbidden: set[tuple[str, str]] = set()
        #: Events recorded, oldest first: (namespace, event).
        self.events: list[tuple[str, ClusterEvent]] = []
        self._images: dict[str, ImageBehaviour] = {}
        self._deployments: dict[tuple[str, str], _Deployment] = {}
        self._services: dict[tuple[str, str], dict[str, str]] = {}
        self._hpas: dict[tuple[str, str], _Hpa] = {}
        self._leases: dict[tuple[str, str], LeaseRecord] = {}
        self._versions = itertools.count(2)
        self._pod_ids = itertools.count(1)

    # -- setting the scene ----------------------------------------------------------------------

    def add_deployment(
        self,
        namespace: str,
        name: str,
        *,
        image: str,
        replicas: int,
        container: str | None = None,
        labels: Mapping[str, str] | None = None,
        ready: bool = True,
    ) -> None:
        """A stable Deployment (pod labels default to ``app: <name>``); its pods start Ready."""
        now = self.clock.monotonic()
        dep = _Deployment(
            name=name,
            labels={},
            annotations={},
            template_labels=dict(labels or {"app": name}),
            images={container or name: image},
            replicas=replicas,
            progress_deadline=600.0,
            changed_at=now,
        )
        self._deployments[namespace, name] = dep
        started = now - self._ready_after(image) - 1 if ready else now
        dep.pods = [self._pod(dep, started) for _ in range(replicas)]

    def add_service(self, namespace: str, name: str, selector: Mapping[str, str]) -> None:
        self._services[namespace, name] = dict(selector)

    def set_hpa(
        self,
        namespace: str,
        deployment: str,
        current_replicas: int | None,
        *,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
    ) -> None:
        """An HPA scaling `deployment` at `current_replicas` (None removes it), with bounds that
        default to that number. Like the real HPA controller it sets the Deployment's replicas and
        keeps them within its bounds at every change (`autoscale` is its metrics speaking)."""
        if current_replicas is None:
            self._hpas.pop((namespace, deployment), None)
            return
        low = current_replicas if min_replicas is None else min_replicas
        high = current_replicas if max_replicas is None else max_replicas
        self._hpas[namespace, deployment] = _Hpa(low, high, next(self._versions))
        self.autoscale(namespace, deployment, current_replicas)

    def autoscale(self, namespace: str, deployment: str, wanted: int) -> None:
        """The HPA's metrics ask for `wanted` replicas (load rose or fell): it scales the
        Deployment to that number within its bounds, as the HPA controller does at its next sync."""
        hpa, dep = self._hpas.get((namespace, deployment)), self._get(namespace, deployment)
        if hpa is None or dep is None:
            raise NotFoundError(f"no HPA scales {namespace}/{deployment}", target=f"{namespace}/{deployment}")
        self._bound(namespace, deployment, wanted)

    def hpa_bounds(self, namespace: str, deployment: str) -> tuple[int, int] | None:
        """The bounds of the HPA that scales `deployment` (None without one)."""
        hpa = self._hpas.get((namespace, deployment))
        return None if hpa is None else (hpa.min_replicas, hpa.max_replicas)

    def set_image_behaviour(self, image: str, behaviour: ImageBehaviour) -> None:
        self._images[image] = behaviour

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        """A person's ``kubectl scale``: the replicas change, nothing else (an HPA on the
        Deployment then puts them back within its bounds)."""
        self._change(self._require(namespace, name), replicas=replicas)
        self._bound(namespace, name)

    def set_image(self, namespace: str, name: str, container: str, image: str) -> None:
        """A person's ``kubectl set image``."""
        self._change(self._require(namespace, name), image=(container, image))

    def set_env(self, namespace: str, name: str, key: str, value: str) -> None:
        """A person's ``kubectl set env``: an edit of the pod template other than an image."""
        dep = self._require(namespace, name)
        dep.env[key] = value
        dep.revision += 1
        self._change(dep)

    def remove_service(self, namespace: str, name: str) -> None:
        """A person's ``kubectl delete service`` (`add_service` again edits its selector)."""
        self._services.pop((namespace, name), None)

    def remove(self, namespace: str, name: str) -> None:
        """A person's ``kubectl delete deployment``."""
        self._deployments.pop((namespace, name), None)

    def touch(self, namespace: str, name: str) -> None:
        """A concurrent writer: changes the Deployment's resourceVersion (and nothing else)."""
        dep = self._require(namespace, name)
        dep.resource_version = next(self._versions)

    def deployment_names(self, namespace: str) -> list[str]:
        return sorted(name for ns, name in self._deployments if ns == namespace)

    # -- the primitives (called by `_SimulatedWorkloads`) -------------------------------------

    def outage(self, seconds: float, *, after: float = 0.0) -> None:
        """The API server stops answering `after` seconds from now, for `seconds` (world's clock)."""
        self._down_from = self.clock.monotonic() + after
        self._down_until = self._down_from + seconds

    def outage_only(self) -> None:
        """A call that only an outage fails (the Lease's: injected timeouts are the Deployments')."""
        if self._down_from <= self.clock.monotonic() < self._down_until:
            raise ClusterUnavailableError("simulated API outage: connection refused")

    def call(self) -> None:
        """Every API call passes here: an injected timeout or an outage fails it."""
        if self._down_from <= self.clock.monotonic() < self._down_until:
            raise ClusterUnavailableError("simulated API outage: connection refused")
        if self.timeouts > 0:
            self.timeouts -= 1
            raise ClusterUnavailableError("simulated API timeout")

    def write(self, verb: str, namespace: str, name: str) -> None:
        self.call()
        if self.before_write is not None:
            self.before_write(verb, namespace, name)
        if self.conflicts > 0:
            self.conflicts -= 1
            raise ConflictError(
                f"simulated conflict on {verb} {namespace}/{name}", target=f"{namespace}/{name}"
            )

    def record(self, namespace: str, name: str) -> DeploymentRecord | None:
        dep = self._get(namespace, name)
        if dep is None:
            return None
        now = self.clock.monotonic()
        self._settle(dep, now)
        updated = [p for p in dep.pods if p.revision == dep.revision]
        ready = sum(1 for p in dep.pods if self._ready(p, now))
        complete = len(updated) == dep.replicas == len(dep.pods) and ready == dep.replicas
        return DeploymentRecord(
            name=dep.name,
            resource_version=str(dep.resource_version),
            generation=dep.generation,
            observed_generation=dep.generation,
            replicas=dep.replicas,
            current=len(dep.pods),
            updated=len(updated),
            ready=ready,
            available=ready,
            template_labels=dict(dep.template_labels),
            images=dict(dep.images),
            annotations=dict(dep.annotations),
            deadline_exceeded=not complete and now - dep.changed_at > dep.progress_deadline,
            template_digest=_digest(dep.template_labels, dep.env),
            condition=dep.condition,
        )

    def create(self, namespace: str, new: NewTrack) -> None:
        source = self._require(namespace, new.source)
        if (namespace, new.name) in self._deployments:
            raise ConflictError(
                f"Deployment {namespace}/{new.name} already exists", target=f"{namespace}/{new.name}"
            )
        images = dict(source.images)
        images[new.container] = new.image
        self._deployments[namespace, new.name] = _Deployment(
            name=new.name,
            labels=dict(new.labels),
            annotations=dict(new.annotations),
            template_labels={**source.template_labels, TRACK_LABEL: new.track},
            images=images,
            env=dict(source.env),
            replicas=new.replicas,
            progress_deadline=float(new.progress_deadline_seconds),
            changed_at=self.clock.monotonic(),
        )

    def patch(
        self,
        namespace: str,
        name: str,
        resource_version: str,
        replicas: int | None,
        image: tuple[str, str] | None,
        annotations: Mapping[str, str | None] | None,
    ) -> None:
        dep = self._require(namespace, name)
        if str(dep.resource_version) != resource_version:
            raise ConflictError(
                f"Deployment {namespace}/{name} changed since it was read (409)", target=f"{namespace}/{name}"
            )
        if annotations:
            for key, value in annotations.items():
                if value is None:
                    dep.annotations.pop(key, None)
                else:
                    dep.annotations[key] = value
            dep.resource_version = next(self._versions)
        if replicas is not None or image is not None:
            self._change(dep, replicas=replicas, image=image)
            self._bound(namespace, name)

    def delete(self, namespace: str, name: str, resource_version: str | None = None) -> None:
        dep = self._deployments.get((namespace, name))
        if dep is not None and resource_version is not None and str(dep.resource_version) != resource_version:
            raise ConflictError(
                f"Deployment {namespace}/{name} changed since it was read (409: precondition failed)",
                target=f"{namespace}/{name}",
            )
        self._deployments.pop((namespace, name), None)

    def set_condition(self, namespace: str, name: str, condition: RolloutCondition) -> None:
        self._require(namespace, name).condition = condition

    def service_selector(self, namespace: str, name: str) -> dict[str, str] | None:
        selector = self._services.get((namespace, name))
        return None if selector is None else dict(selector)

    def hpa(self, namespace: str, deployment: str) -> HpaRecord | None:
        hpa, dep = self._hpas.get((namespace, deployment)), self._get(namespace, deployment)
        if hpa is None:
            return None
        return HpaRecord(
            name=deployment,
            resource_version=str(hpa.resource_version),
            min_replicas=hpa.min_replicas,
            max_replicas=hpa.max_replicas,
            current_replicas=None if dep is None else dep.replicas,
            annotations=dict(hpa.annotations),
        )

    def patch_hpa(
        self,
        namespace: str,
        name: str,
        resource_version: str,
        bounds: tuple[int, int],
        annotations: Mapping[str, str | None],
    ) -> None:
        hpa = self._hpas.get((namespace, name))
        if hpa is None:
            raise NotFoundError(f"HorizontalPodAutoscaler {namespace}/{name} does not exist")
        if str(hpa.resource_version) != resource_version:
            raise ConflictError(
                f"HorizontalPodAutoscaler {namespace}/{name} changed since it was read (409)",
                target=f"{namespace}/{name}",
            )
        hpa.min_replicas, hpa.max_replicas = bounds
        for key, value in annotations.items():
            if value is None:
                hpa.annotations.pop(key, None)
            else:
                hpa.annotations[key] = value
        hpa.resource_version = next(self._versions)
        self._bound(namespace, name)

    def remove_lease(self, namespace: str, name: str) -> None:
        """A person's ``kubectl delete lease``."""
        self._leases.pop((namespace, name), None)

    def lease(self, namespace: str, name: str) -> LeaseRecord | None:
        return self._leases.get((namespace, name))

    def write_lease(self, namespace: str, lease: LeaseRecord) -> None:
        """Create or compare-and-swap a Lease (an outage stops it; injected timeouts, conflicts and
        write hooks are the Deployments' and are left to them)."""
        self.outage_only()
        current = self._leases.get((namespace, lease.name))
        if (current is None) != (lease.resource_version == ""):
            raise ConflictError(
                f"Lease {namespace}/{lease.name} "
                + ("already exists" if current is not None else "does not exist")
                + " (409)",
                target=f"{namespace}/{lease.name}",
            )
        if current is not None and current.resource_version != lease.resource_version:
            raise ConflictError(
                f"Lease {namespace}/{lease.name} changed since it was read (409)",
                target=f"{namespace}/{lease.name}",
            )
        version = str(next(self._versions))
        self._leases[namespace, lease.name] = replace(
            lease, resource_version=version, annotations=dict(lease.annotations)
        )

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        now = self.clock.monotonic()
        found = []
        for (ns, _), dep in sorted(self._deployments.items()):
            if ns != namespace:
                continue
            self._settle(dep, now)
            for pod in dep.pods:
                if pod.labels.get("app") == app:
                    image = pod.images.get(app) or next(iter(pod.images.values()))
                    found.append(PodInfo(pod.name, track_of(pod.labels), image, self._ready(pod, now)))
        return found

    # -- the simulated controllers ------------------------------------------------------------

    def _change(
        self, dep: _Deployment, *, replicas: int | None = None, image: tuple[str, str] | None = None
    ) -> None:
        dep.generation += 1
        dep.resource_version = next(self._versions)
        dep.changed_at = self.clock.monotonic()
        if image is not None and dep.images.get(image[0]) != image[1]:
            dep.images[image[0]] = image[1]
            dep.revision += 1
        if replicas is not None:
            dep.replicas = replicas
        self._settle(dep, dep.changed_at)

    def _bound(self, namespace: str, name: str, wanted: int | None = None) -> None:
        """The HPA controller's sync: the Deployment it scales goes to `wanted` (what its metrics
        ask for; by default the replicas it has) within its bounds. At zero replicas it does
        nothing, as Kubernetes' HPA (autoscaling is off for a target scaled to zero)."""
        hpa, dep = self._hpas.get((namespace, name)), self._get(namespace, name)
        if hpa is None or dep is None or dep.replicas == 0:
            return
        replicas = min(max(dep.replicas if wanted is None else wanted, hpa.min_replicas), hpa.max_replicas)
        if replicas != dep.replicas:
            self._change(dep, replicas=replicas)

    def _settle(self, dep: _Deployment, now: float) -> None:
        """Deployment + ReplicaSet controllers: the current revision gets `replicas` pods; old
        pods stay until every new one is Ready (a surge rollout with no unavailability)."""
        new = [p for p in dep.pods if p.revision == dep.revision]
        old = [p for p in dep.pods if p.revision != dep.revision]
        if len(new) < dep.replicas:
            new += [self._pod(dep, now) for _ in range(dep.replicas - len(new))]
        elif len(new) > dep.replicas:
            new.sort(key=lambda p: (self._ready(p, now), -p.started))
            new = new[len(new) - dep.replicas :]
        if old and all(self._ready(p, now) for p in new):
            old = []
        dep.pods = old + new

    def _pod(self, dep: _Deployment, started: float) -> _Pod:
        return _Pod(
            name=f"{dep.name}-r{dep.revision}-{next(self._pod_ids)}",
            revision=dep.revision,
            labels=dict(dep.template_labels),
            images=dict(dep.images),
            started=started,
            held=self.hold_new_pods,
        )

    def _ready_after(self, image: str) -> float:
        behaviour = self._images.get(image, ImageBehaviour())
        return self.pod_ready_delay if behaviour.ready_after is None else behaviour.ready_after

    def _ready(self, pod: _Pod, now: float) -> bool:
        if pod.held or any(self._images.get(i, ImageBehaviour()).never_ready for i in pod.images.values()):
            return False
        up_at = pod.started + max(self._ready_after(i) for i in pod.images.values())
        crashes = [
            b.crash_after
            for i in pod.images.values()
            if (b := self._images.get(i)) and b.crash_after is not None
        ]
        if crashes and now >= up_at + min(crashes):
            return False
        return now >= up_at

    def _get(self, namespace: str, name: str) -> _Deployment | None:
        return self._deployments.get((namespace, name))

    def _require(self, namespace: str, name: str) -> _Deployment:
        dep = self._get(namespace, name)
        if dep is None:
            raise NotFoundError(f"Deployment {namespace}/{name} does not exist", target=f"{namespace}/{name}")
        return dep


class _SimulatedWorkloads:
    """`Workloads` over a `SimulatedWorld`, with its faults and hooks."""

    def __init__(self, world: SimulatedWorld) -> None:
        self._world = world

    def get_deployment(self, namespace: str, name: str) -> DeploymentRecord | None:
        self._world.call()
        return self._world.record(namespace, name)

    def create_track(self, namespace: str, new: NewTrack) -> None:
        self._world.write("create", namespace, new.name)
        self._world.create(namespace, new)

    def patch_deployment(
        self,
        namespace: str,
        name: str,
        *,
        resource_version: str,
        replicas: int | None = None,
        image: tuple[str, str] | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> None:
        self._world.write("patch", namespace, name)
        self._world.patch(namespace, name, resource_version, replicas, image, annotations)

    def delete_deployment(self, namespace: str, name: str, *, resource_version: str | None = None) -> None:
        self._world.write("delete", namespace, name)
        self._world.delete(namespace, name, resource_version)

    def service_selector(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self._world.call()
        return self._world.service_selector(namespace, name)

    def get_hpa(self, namespace: str, deployment: str) -> HpaRecord | None:
        self._world.call()
        return self._world.hpa(namespace, deployment)

    def patch_hpa(
        self,
        namespace: str,
        name: str,
        *,
        resource_version: str,
        min_replicas: int,
        max_replicas: int,
        annotations: Mapping[str, str | None],
    ) -> None:
        self._world.write("patch", namespace, f"horizontalpodautoscalers/{name}")
        if ("patch", "horizontalpodautoscalers") in self._world.forbidden:
            raise ForbiddenError(
                f"403 Forbidden: horizontalpodautoscalers is forbidden: patch in namespace {namespace}"
            )
        self._world.patch_hpa(namespace, name, resource_version, (min_replicas, max_replicas), annotations)

    def list_pods(self, namespace: str, app: str) -> list[PodInfo]:
        self._world.call()
        return self._world.pods(namespace, app)

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        self._world.outage_only()
        return self._world.lease(namespace, name)

    def write_lease(self, namespace: str, lease: LeaseRecord) -> None:
        self._world.write_lease(namespace, lease)

    def denied(self, namespace: str, permissions: tuple[Permission, ...]) -> list[Permission]:
        self._world.call()
        return [p for p in permissions if (p.verb, p.resource) in self._world.forbidden]

    def set_condition(self, namespace: str, name: str, condition: RolloutCondition) -> None:
        self._world.call()  # an outage stops it; injected conflicts and write hooks are the spec's
        if ("patch", "deployments/status") in self._world.forbidden:
            raise ForbiddenError(
                f"403 Forbidden: deployments/status is forbidden: patch in namespace {namespace}"
            )
        self._world.set_condition(namespace, name, condition)

    def create_event(self, namespace: str, event: ClusterEvent) -> None:
        self._world.call()
        if ("create", "events") in self._world.forbidden:
            raise ForbiddenError(f"403 Forbidden: events is forbidden: create in namespace {namespace}")
        self._world.events.append((namespace, event))


class SimulatedCluster(ReplicaActuator):
    """The `Cluster` port on a `SimulatedWorld` (a fresh world when none is given), on the world's
    clock or on its own `clock` (a controller whose wall clock is off, say)."""

    def __init__(
        self,
        world: SimulatedWorld | None = None,
        *,
        poll_interval: float = 0.5,
        conflict_attempts: int = 5,
        clock: Clock | None = None,
    ) -> None:
        self.world = world or SimulatedWorld()
        super().__init__(
            _SimulatedWorkloads(self.world),
            clock=clock or self.world.clock,
            poll_interval=poll_interval,
            conflict_attempts=conflict_attempts,
        )


def _digest(labels: Mapping[str, str], env: Mapping[str, str]) -> str:
    """The simulated pod template's digest (images left out, as the Kubernetes adapter's)."""
    return hashlib.sha256(json.dumps([labels, env], sort_keys=True).encode()).hexdigest()[:16]
