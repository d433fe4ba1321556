"""The few API calls the local control plane needs to start: readiness, fake nodes, a kubeconfig.

Plain HTTPS with the admin client certificate (httpx); the `kubernetes` client belongs to the
cluster adapter alone and is not needed for this.
"""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any

import httpx

from canaryflow.dev.kube.pki import Pki
from canaryflow.errors import LocalClusterError

__all__ = ["ApiClient", "etcd_healthy", "write_kubeconfig"]

_TIMEOUT = httpx.Timeout(5.0)


class ApiClient:
    """HTTPS to the local API server as the admin."""

    def __init__(self, server: str, *, ca_cert: Path, client_cert: Path, client_key: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca_cert))
        context.load_cert_chain(str(client_cert), str(client_key))
        self.server = server
        self._context = context

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path) -> ApiClient:
        """Build from a kubeconfig `write_kubeconfig` wrote (it records where the PKI is)."""
        try:
            config = json.loads(kubeconfig.read_text())
            pki_dir = Path(config["preferences"]["extensions"][0]["extension"]["pki"])
            server = config["clusters"][0]["cluster"]["server"]
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise LocalClusterError(f"cannot read kubeconfig {kubeconfig}: {exc}") from exc
        return cls(
            server,
            ca_cert=pki_dir / "ca.crt",
            client_cert=pki_dir / "admin.crt",
            client_key=pki_dir / "admin.key",
        )

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            with httpx.Client(verify=self._context, timeout=_TIMEOUT) as client:
                return client.request(method, self.server + path, json=body)
        except httpx.HTTPError as exc:
            raise LocalClusterError(f"{method} {path}: {exc}") from exc

    def ready(self) -> bool:
        """Whether /readyz answers ok."""
        return self._request("GET", "/readyz").status_code == 200

    def create_fake_node(self, name: str) -> None:
        """Create a Node that kwok manages (it initialises it and keeps its lease)."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }
        response = self._request("POST", "/api/v1/nodes", node)
        if response.status_code not in (201, 409):
            raise LocalClusterError(
                f"creating node {name}: HTTP {response.status_code} {response.text[:300]}"
            )

    def ready_nodes(self) -> int:
        """How many nodes report Ready=True."""
        response = self._request("GET", "/api/v1/nodes")
        if response.status_code != 200:
            return 0
        count = 0
        for node in response.json().get("items", []):
            conditions = node.get("status", {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                count += 1
        return count


def etcd_healthy(url: str) -> bool:
    """Whether etcd's /health says so."""
    try:
        response = httpx.get(url + "/health", timeout=_TIMEOUT)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("health") == "true"


def write_kubeconfig(path: Path, *, server: str, pki: Pki) -> Path:
    """Write a kubeconfig (JSON, which is YAML) for the admin, with the certificates embedded."""

    def data(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "canaryflow-local",
                "cluster": {"server": server, "certificate-authority-data": data(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "canaryflow-admin",
                "user": {
                    "client-certificate-data": data(pki.admin_cert),
                    "client-key-data": data(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": "canaryflow-local",
                "context": {"cluster": "canaryflow-local", "user": "canaryflow-admin"},
            }
        ],
        "current-context": "canaryflow-local",
        "preferences": {
            "extensions": [{"name": "canaryflow", "extension": {"pki": str(pki.ca_cert.parent)}}]
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path
