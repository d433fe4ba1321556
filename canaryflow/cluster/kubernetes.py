"""`KubernetesCluster`: the `Cluster` port on a real API server, through the official client.

Only this module imports `kubernetes`. It uses the client's `ApiClient` (configuration, auth, TLS,
one per kubeconfig context, never the process-wide default) and speaks raw JSON to the REST paths
instead of the generated models: a Deployment is read as the server sent it, the canary's pod template
is a deep copy of the stable's, and writes are strategic-merge patches of the few fields that change.
Nothing is ever read, modified and replaced whole, so fields this client does not know are never
dropped. Every patch carries the resourceVersion it was based on (409 when stale; the actuator
re-reads and retries). `ApiException` and urllib3 errors become our errors here, chained: a
server that does not answer is `ClusterUnavailableError` (ridden out), one whose certificate fails
verification its `UntrustedServerError` (ridden out mid-rollout; exit 3 from the command line).

RBAC this adapter needs (see deployments/kubernetes/canaryflow/rbac.yaml): deployments
get/create/patch/delete, deployments/status patch, services get, horizontalpodautoscalers list and
patch, pods list, events create.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from canaryflow.clock import Clock, SystemClock
from canaryflow.cluster.actuation import ReplicaActuator
from canaryflow.cluster.annotations import TRACK_LABEL, track_of
from canaryflow.cluster.port import PodInfo
from canaryflow.cluster.workloads import (
    CONDITION_TYPE,
    ClusterEvent,
    DeploymentRecord,
    HpaRecord,
    LeaseRecord,
    NewTrack,
    Permission,
    RolloutCondition,
)
from canaryflow.errors import (
    ClusterError,
    ClusterUnavailableError,
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    UntrustedServerError,
)

__all__ = ["KubernetesCluster", "KubernetesWorkloads", "new_api_client"]

_DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"
_DEPLOYMENT = _DEPLOYMENTS + "/{name}"
_SERVICE = "/api/v1/namespaces/{namespace}/services/{name}"
_HPAS = "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"
_HPA = _HPAS + "/{name}"
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
_LEASE = _LEASES + "/{name}"
_PODS = "/api/v1/namespaces/{namespace}/pods"
_EVENTS = "/api/v1/namespaces/{namespace}/events"
_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_COPIED_SPEC_FIELDS = ("minReadySeconds", "revisionHistoryLimit", "strategy")
Json = dict[str, Any]


def new_api_client(
    kubeconfig: str | os.PathLike[str] | None = None, *, context: str | None = None, in_cluster: bool = False
) -> client.ApiClient:
    """A new `ApiClient` for one kubeconfig context (default: the current one), or the pod's
    service account with `in_cluster`. Nothing global is configured; close it when done.

    Raises
    ------
    InputError
        The kubeconfig (or the in-cluster configuration) cannot be loaded; the message says which
        and why, in one line.
    """
    try:
        if in_cluster:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return client.ApiClient(configuration)
        path = os.fspath(kubeconfig) if kubeconfig is not None else None
        # The loader says "Invalid kube-config file. No configuration found." for a file that is not there.
        default = os.environ.get("KUBECONFIG") or "~/.kube/config"
        files = [os.path.expanduser(p) for p in (path or default).split(os.pathsep) if p]
        if files and not any(os.path.isfile(p) for p in files):
            raise FileNotFoundError(f"no such file {os.pathsep.join(files)}")
        if context:
            _check_context(path, context)
        loaded = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, persist_config=False
        )
        return cast(client.ApiClient, loaded)
    except InputError:
        raise
    except Exception as exc:  # the loader raises YAML, type and config errors alike: all mean "bad file"
        if in_cluster:
            where = "the in-cluster configuration (CANARYFLOW_IN_CLUSTER=true outside a pod?)"
        else:
            where = f"kubeconfig {kubeconfig or '~/.kube/config'}"
        in_context = f" context {context}" if context else ""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, (TypeError, AttributeError)):  # the loader's own code tripped on the file
            reason = "not a kubeconfig (a YAML mapping of clusters, contexts and users)"
        raise InputError(
            f"cannot load {where}{in_context}: {reason}; point KUBECONFIG at a valid kubeconfig"
        ) from exc


def _check_context(path: str | None, context: str) -> None:
    """`InputError` naming the contexts there are when the kubeconfig has no `context` (the loader
    would say "Expected object with name ... in contexts list" and blame the file)."""
    contexts, _active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    names = [str(c.get("name")) for c in contexts or [] if isinstance(c, dict)]
    if context not in names:
        where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise InputError(
            f"no context {context!r} in kubeconfig {where} (its contexts: {', '.join(names) or 'none'}): "
            "set CANARYFLOW_KUBE_CONTEXT to one of them"
        )


class KubernetesWorkloads:
    """`Workloads` over the Kubernetes REST API (raw JSON, explicit request timeouts)."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float = 10.0) -> None:
        self._api = api_client
        self._timeout = request_timeout

    def get_deployment(self, namespace: str, name: str) -> DeploymentRecord | None:
        raw = self._request("GET", _DEPLOYMENT, namespace=namespace, name=name, missing_ok=True)
        return None if raw is None else _record(raw)

    def create_track(self, namespace: str, new: NewTrack) -> None:
        source = self._request("GET", _DEPLOYMENT, namespace=namespace, name=new.source)
        assert source is not None
        body = _track_body(source, namespace, new)
        self._request("POST", _DEPLOYMENTS, namespace=namespace, name=new.name, body=body)

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
        metadata: Json = {"resourceVersion": resource_version}
        if annotations:
            metadata["annotations"] = dict(annotations)
        spec: Json = {}
        if replicas is not None:
            spec["replicas"] = replicas
        if image is not None:
            spec["template"] = {"spec": {"containers": [{"name": image[0], "image": image[1]}]}}
        body: Json = {"metadata": metadata, **({"spec": spec} if spec else {})}
        self._request(
            "PATCH",
            _DEPLOYMENT,
            namespace=namespace,
            name=name,
            body=body,
            content_type="application/strategic-merge-patch+json",
        )

    def delete_deployment(self, namespace: str, name: str, *, resource_version: str | None = None) -> None:
        options: Json = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if resource_version is not None:
            options["preconditions"] = {"resourceVersion": resource_version}
        self._request("DELETE", _DEPLOYMENT, namespace=namespace, name=name, body=options, missing_ok=True)

    def service_selector(self, namespace: str, name: str) -> Mapping[str, str] | None:
        raw = self._request("GET", _SERVICE, namespace=namespace, name=name, missing_ok=True)
        if raw is None:
            return None
        return dict(raw.get("spec", {}).get("selector") or {})

    def get_hpa(self, namespace: str, deployment: str) -> HpaRecord | None:
        raw = self._request("GET", _HPAS, namespace=namespace, name="")
        for hpa in (raw or {}).get("items", []):
            spec = hpa.get("spec", {})
            ref = spec.get("scaleTargetRef", {})
            if ref.get("kind") == "Deployment" and ref.get("name") == deployment:
                meta, current = hpa.get("metadata", {}), hpa.get("status", {}).get("currentReplicas")
                return HpaRecord(
                    name=meta.get("name", ""),
                    resource_version=meta.get("resourceVersion", ""),
                    min_replicas=int(spec.get("minReplicas", 1)),
                    max_replicas=int(spec.get("maxReplicas", 1)),
                    current_replicas=None if current is None else int(current),
                    annotations=dict(meta.get("annotations") or {}),
                )
        return None

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
        body: Json = {
            "metadata": {"resourceVersion": resource_version, "annotations": dict(annotations)},
            "spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas},
        }
        patch = "application/merge-patch+json"
        self._request("PATCH", _HPA, namespace=namespace, name=name, body=body, content_type=patch)

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        raw = self._request("GET", _LEASE, namespace=namespace, name=name, missing_ok=True)
        if raw is None:
            return None
        meta, spec = raw.get("metadata", {}), raw.get("spec", {})
        return LeaseRecord(
            name=meta.get("name", name),
            resource_version=meta.get("resourceVersion", ""),
            holder=spec.get("holderIdentity") or "",
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquired_at=_micro_time(spec.get("acquireTime")),
            renewed_at=_micro_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            annotations=dict(meta.get("annotations") or {}),
        )

    def write_lease(self, namespace: str, lease: LeaseRecord) -> None:
        spec: Json = {
            "holderIdentity": lease.holder or None,
            "leaseDurationSeconds": lease.duration_seconds,
            "acquireTime": _micro(lease.acquired_at),
            "renewTime": _micro(lease.renewed_at),
            "leaseTransitions": lease.transitions,
        }
        if not lease.resource_version:
            body: Json = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": lease.name, "annotations": dict(lease.annotations)},
                "spec": spec,
            }
            self._request("POST", _LEASES, namespace=namespace, name="", body=body)
            return
        meta: Json = {"resourceVersion": lease.resource_version, "annotations": dict(lease.annotations)}
        self._request(
            "PATCH",
            _LEASE,
            namespace=namespace,
            name=lease.name,
            body={"metadata": meta, "spec": spec},
            content_type="application/merge-patch+json",
        )

    def list_pods(self, namespace: str, app: str) -> list[PodInfo]:
        raw = self._request("GET", _PODS, namespace=namespace, name="", query={"labelSelector": f"app={app}"})
        return [_pod_info(pod, app) for pod in (raw or {}).get("items", [])]

    def create_event(self, namespace: str, event: ClusterEvent) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: Json = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{event.deployment}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": event.deployment,
                "namespace": namespace,
                **({"uid": event.uid} if event.uid else {}),
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": "Warning" if event.warning else "Normal",
            "source": {"component": "canaryflow"},
            "reportingComponent": "canaryflow",
            "reportingInstance": socket.gethostname()[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._request("POST", _EVENTS, namespace=namespace, name="", body=body)

    def set_condition(self, namespace: str, name: str, condition: RolloutCondition) -> None:
        """A strategic merge patch of the status subresource: conditions merge by type, so the
        deployment controller's own (Available, Progressing) stay, and it keeps ours."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry: Json = {
            "type": CONDITION_TYPE,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message[:1024],
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        }
        self._request(
            "PATCH",
            _DEPLOYMENT + "/status",
            namespace=namespace,
            name=name,
            body={"status": {"conditions": [entry]}},
            content_type="application/strategic-merge-patch+json",
        )

    def denied(self, namespace: str, permissions: tuple[Permission, ...]) -> list[Permission]:
        """One SelfSubjectAccessReview per permission (any authenticated identity may ask)."""
        refused = []
        for permission in permissions:
            resource, _, subresource = permission.resource.partition("/")
            attributes = {
                "namespace": namespace,
                "verb": permission.verb,
                "group": permission.group,
                "resource": resource,
                **({"subresource": subresource} if subresource else {}),
            }
            review = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            }
            answer = self._request("POST", _ACCESS_REVIEWS, namespace=namespace, name="", body=review)
            if not (answer or {}).get("status", {}).get("allowed", False):
                refused.append(permission)
        return refused

    def _request(
        self,
        method: str,
        path: str,
        *,
        namespace: str,
        name: str,
        body: Json | None = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Json | None:
        """One API call; raw JSON back (None for a 404 when `missing_ok`), our errors on failure."""
        what = f"{method} {path.format(namespace=namespace, name=name).rstrip('/')}"
        try:
            request = self._api.param_serialize(
                method=method,
                resource_path=path,
                path_params={"namespace": namespace, "name": name},
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(*request, _request_timeout=(self._timeout, self._timeout))
            data = response.read()  # type: ignore[no-untyped-call]
            if not 200 <= response.status <= 299:
                raise ApiException(http_resp=response)
        except ApiException as exc:
            if exc.status == 404 and missing_ok:
                return None
            raise _translate(exc, what, f"{namespace}/{name}".rstrip("/")) from exc
        except urllib3.exceptions.HTTPError as exc:
            host = self._api.configuration.host
            reason = _reason(exc)
            if _certificate_refused(exc):  # a setting to fix, unless a rotation is under way
                raise UntrustedServerError(
                    f"the API server {host} has a certificate that failed verification ({what}: "
                    f"{reason}); check the kubeconfig's certificate-authority and server for that cluster"
                ) from exc
            raise ClusterUnavailableError(
                f"the API server {host} did not answer ({what}: {reason}); check KUBECONFIG and that "
                "the cluster is up"
            ) from exc
        parsed: Json = json.loads(data) if data else {}
        return parsed


def _micro(moment: datetime | None) -> str | None:
    """A Lease's MicroTime (RFC 3339 with microseconds, UTC)."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _micro_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _certificate_refused(exc: BaseException) -> bool:
    """Whether `exc` (a urllib3 error, its reasons and causes) is a failed certificate check."""
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        seen.add(id(inner))
        if isinstance(inner, ssl.SSLCertVerificationError):
            return True
        reason = getattr(inner, "reason", None)
        inner = reason if isinstance(reason, BaseException) else (inner.__cause__ or inner.__context__)
    return False


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    """The innermost cause of a urllib3 error, in a few words (``Connection refused``)."""
    inner: BaseException = exc
    while getattr(inner, "reason", None) is not None and isinstance(inner.reason, BaseException):  # type: ignore[attr-defined]
        inner = inner.reason  # type: ignore[attr-defined]
    text = str(inner)
    return text.rsplit(": ", 1)[-1].strip() if ": " in text else text or type(inner).__name__


def _translate(exc: ApiException, what: str, target: str) -> Exception:
    """The most specific of our errors for an API error response."""
    status = int(exc.status or 0)
    message = _server_message(exc)
    text = f"{what}: {status} {message}"
    if status == 404:
        return NotFoundError(text, target=target)
    if status in (401, 403):
        return ForbiddenError(text, target=target)
    if status == 409:
        return ConflictError(text, target=target)
    if status == 429 or status >= 500 or status == 0:
        retry_after = (exc.headers or {}).get("Retry-After") if exc.headers else None
        delay = float(retry_after) if retry_after and str(retry_after).isdigit() else None
        return ClusterUnavailableError(text, retry_after=delay)
    return ClusterError(text, target=target)


def _server_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return str(exc.reason or "")
    return str(body.get("message") or exc.reason or "") if isinstance(body, dict) else str(exc.reason or "")


def _record(raw: Json) -> DeploymentRecord:
    meta, spec, status = raw["metadata"], raw.get("spec", {}), raw.get("status", {})
    template = spec.get("template", {})
    generation = int(meta.get("generation", 0))
    observed = int(status.get("observedGeneration", 0))
    conditions = {c.get("type"): c for c in status.get("conditions", [])}
    progressing = conditions.get("Progressing", {})
    return DeploymentRecord(
        name=meta["name"],
        resource_version=meta["resourceVersion"],
        generation=generation,
        observed_generation=observed,
        replicas=int(spec.get("replicas", 1)),
        current=int(status.get("replicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        template_labels=dict(template.get("metadata", {}).get("labels") or {}),
        images={c["name"]: c.get("image", "") for c in template.get("spec", {}).get("containers", [])},
        annotations=dict(meta.get("annotations") or {}),
        deadline_exceeded=observed >= generation and progressing.get("reason") == "ProgressDeadlineExceeded",
        uid=str(meta.get("uid", "")),
        template_digest=_template_digest(template),
        condition=_condition(conditions.get(CONDITION_TYPE)),
    )


def _condition(raw: Json | None) -> RolloutCondition | None:
    status = (raw or {}).get("status")
    if raw is None or status not in ("True", "False", "Unknown"):
        return None
    return RolloutCondition(status, str(raw.get("reason", "")), str(raw.get("message", "")))


def _template_digest(template: Json) -> str:
    """A digest of the pod template as the server keeps it, every container's image left out (the
    images are compared one by one: the target container's changes with each promotion)."""
    bare = copy.deepcopy(template)
    for kind in ("initContainers", "containers"):
        for container in bare.get("spec", {}).get(kind) or []:
            container.pop("image", None)
    return hashlib.sha256(json.dumps(bare, sort_keys=True).encode()).hexdigest()[:16]


def _track_body(source: Json, namespace: str, new: NewTrack) -> Json:
    """A Deployment for a canary or baseline: the stable's pod template, deep-copied, with the track
    label added (to pods and selector) and the container's image replaced."""
    spec = source["spec"]
    template = copy.deepcopy(spec["template"])
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), TRACK_LABEL: new.track}
    for container in template["spec"]["containers"]:
        if container["name"] == new.container:
            container["image"] = new.image
    selector = copy.deepcopy(spec["selector"])
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), TRACK_LABEL: new.track}
    copied = {key: copy.deepcopy(spec[key]) for key in _COPIED_SPEC_FIELDS if key in spec}
    labels = {**(source["metadata"].get("labels") or {}), **new.labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": new.name,
            "namespace": namespace,
            "labels": labels,
            "annotations": dict(new.annotations),
        },
        "spec": {
            **copied,
            "replicas": new.replicas,
            "selector": selector,
            "template": template,
            "progressDeadlineSeconds": new.progress_deadline_seconds,
        },
    }


def _pod_info(pod: Json, app: str) -> PodInfo:
    meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    containers = spec.get("containers", [])
    named = [c for c in containers if c.get("name") == app]
    image = (named or containers or [{}])[0].get("image", "")
    ready = meta.get("deletionTimestamp") is None and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    return PodInfo(name=meta["name"], track=track_of(meta.get("labels") or {}), image=image, ready=ready)


class KubernetesCluster(ReplicaActuator):
    """The `Cluster` port on a Kubernetes API server.

    Give it an `ApiClient` (see `new_api_client`), or build one with `from_kubeconfig` /
    `in_cluster`, in which case `close` closes it.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        clock: Clock | None = None,
        request_timeout: float = 10.0,
        poll_interval: float = 0.5,
        conflict_attempts: int = 5,
    ) -> None:
        self.api_client = api_client
        self._owns_client = False
        super().__init__(
            KubernetesWorkloads(api_client, request_timeout=request_timeout),
            clock=clock or SystemClock(),
            poll_interval=poll_interval,
            conflict_attempts=conflict_attempts,
        )

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: str | os.PathLike[str] | None = None,
        *,
        context: str | None = None,
        in_cluster: bool = False,
        clock: Clock | None = None,
        request_timeout: float = 10.0,
    ) -> KubernetesCluster:
        """An adapter with its own `ApiClient` (closed by `close`)."""
        api_client = new_api_client(kubeconfig, context=context, in_cluster=in_cluster)
        cluster = cls(api_client, clock=clock, request_timeout=request_timeout)
        cluster._owns_client = True
        return cluster

    def close(self) -> None:
        if self._owns_client:
            self.api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> KubernetesCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
