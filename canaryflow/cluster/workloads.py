"""The seam under both adapters: a few primitive reads and writes of Deployments, Services and HPAs.

`canaryflow.cluster.actuation` implements the whole `Cluster` port once, on top of a `Workloads`;
the Kubernetes adapter and the simulation each provide one. So the order of writes, the conflict
retries, the readiness checks and the rollout state are the same code on a real and a simulated
cluster, and the contract suite checks the primitives underneath.

Every method raises our errors: `NotFoundError`, `ForbiddenError`, `ConflictError` (a 409: lost
race or already exists), `ClusterUnavailableError`; never a library's exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from canaryflow.cluster.port import CONDITION_TYPE, PodInfo, RolloutCondition, Track

__all__ = [
    "CONDITION_TYPE",
    "PERMISSIONS",
    "ClusterEvent",
    "DeploymentRecord",
    "HpaRecord",
    "LeaseRecord",
    "NewTrack",
    "Permission",
    "RolloutCondition",
    "Workloads",
]


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A Deployment as read: spec, status, pod-template labels and images, annotations."""

    name: str
    resource_version: str
    generation: int
    observed_generation: int
    replicas: int
    current: int
    updated: int
    ready: int
    available: int
    template_labels: Mapping[str, str]
    images: Mapping[str, str]
    annotations: Mapping[str, str]
    deadline_exceeded: bool
    #: The object's uid (what a Kubernetes Event about it refers to); "" when unknown.
    uid: str = ""
    #: A digest of the pod template with every container's image left out ("" when unknown): a
    #: change of it is an edit of the template other than an image (`canaryflow.cluster.drift`).
    template_digest: str = ""
    #: The Deployment's `CONDITION_TYPE` condition, when canaryflow has set one.
    condition: RolloutCondition | None = None


@dataclass(frozen=True, slots=True)
class HpaRecord:
    """The HorizontalPodAutoscaler that scales a Deployment, as read."""

    name: str
    resource_version: str
    min_replicas: int
    max_replicas: int
    #: The replicas the HPA last saw (its status); None before the HPA controller first acted.
    current_replicas: int | None
    annotations: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A ``coordination.k8s.io/v1`` Lease as read or to write (`resource_version` "" when new)."""

    name: str
    resource_version: str
    holder: str
    duration_seconds: int
    acquired_at: datetime | None
    renewed_at: datetime | None
    transitions: int
    annotations: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    """A Kubernetes Event about a Deployment: what ``kubectl describe`` and alerting rules read.
    ``reason`` is one CamelCase word (``Promoted``); ``warning`` makes it a ``Warning`` event."""

    deployment: str
    uid: str
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class NewTrack:
    """A canary or baseline Deployment to create from the stable's pod template."""

    source: str
    name: str
    track: Track
    container: str
    image: str
    replicas: int
    annotations: Mapping[str, str]
    labels: Mapping[str, str]
    progress_deadline_seconds: int


@dataclass(frozen=True, slots=True)
class Permission:
    """One verb on one kind of object that a rollout needs in the target's namespace, and why."""

    group: str
    resource: str
    verb: str
    why: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}"


#: Everything a rollout does in the target's namespace (deployments/kubernetes/canaryflow/rbac.yaml grants
#: exactly these, plus ``list pods`` for the demo's traffic; a test keeps the two in step).
PERMISSIONS: tuple[Permission, ...] = (
    Permission("apps", "deployments", "get", "read the stable, canary and baseline"),
    Permission("apps", "deployments", "create", "create the canary and the baseline"),
    Permission("apps", "deployments", "patch", "resize the tracks, set images and the rollout state"),
    Permission("apps", "deployments", "delete", "remove the canary and the baseline"),
    Permission("", "services", "get", "check that the Service selects every track"),
    Permission("autoscaling", "horizontalpodautoscalers", "list", "find an HPA on the stable"),
    Permission(
        "autoscaling", "horizontalpodautoscalers", "patch", "lend the stable HPA's bounds to the split"
    ),
    Permission("", "events", "create", "record what the rollout did for kubectl describe and alerts"),
    Permission("coordination.k8s.io", "leases", "get", "read the target's lock"),
    Permission("coordination.k8s.io", "leases", "create", "take the target's lock the first time"),
    Permission("coordination.k8s.io", "leases", "patch", "take, renew and give back the target's lock"),
    Permission("apps", "deployments/status", "patch", "show the rollout as the stable's Canary condition"),
)


class Workloads(Protocol):
    def get_deployment(self, namespace: str, name: str) -> DeploymentRecord | None:
        """The Deployment, or None when it does not exist."""
        ...

    def create_track(self, namespace: str, new: NewTrack) -> None:
        """Create `new.name` from the pod template of `new.source` (``track`` label set, image of
        `new.container` replaced, selector narrowed by the track). ConflictError when it exists."""
        ...

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
        """Patch only what is given (`image` is ``(container, image)``; an annotation set to None is
        removed); ConflictError when the object changed since `resource_version` was read."""
        ...

    def delete_deployment(self, namespace: str, name: str, *, resource_version: str | None = None) -> None:
        """Delete it; a Deployment that is already gone is fine. With `resource_version`, only that
        version of it (ConflictError when it changed since it was read: a fencing stamp, a person's
        edit), as patches do."""
        ...

    def service_selector(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The Service's selector ({} when it has none), or None when there is no such Service."""
        ...

    def get_hpa(self, namespace: str, deployment: str) -> HpaRecord | None:
        """The HPA whose scaleTargetRef is the Deployment `deployment`, or None when no HPA scales it."""
        ...

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
        """Set the HPA's bounds and annotations (one set to None is removed); ConflictError when
        the object changed since `resource_version` was read."""
        ...

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        """The Lease, or None when it does not exist."""
        ...

    def write_lease(self, namespace: str, lease: LeaseRecord) -> None:
        """Create `lease` (its `resource_version` is "") or replace its holder, times, transitions and
        annotations if it is unchanged since `resource_version` was read: ConflictError otherwise
        (a compare-and-swap, what makes it a lock)."""
        ...

    def list_pods(self, namespace: str, app: str) -> list[PodInfo]:
        """Pods labelled ``app=<app>``; the image is the container named `app`'s, else the first's."""
        ...

    def create_event(self, namespace: str, event: ClusterEvent) -> None:
        """Record `event` about its Deployment (ForbiddenError without ``create events``)."""
        ...

    def set_condition(self, namespace: str, name: str, condition: RolloutCondition) -> None:
        """Set the Deployment's `CONDITION_TYPE` condition (ForbiddenError without ``patch
        deployments/status``; NotFoundError without the Deployment)."""
        ...

    def denied(self, namespace: str, permissions: tuple[Permission, ...]) -> list[Permission]:
        """Those of `permissions` that the credentials may not use in `namespace` (asked, not tried)."""
        ...
