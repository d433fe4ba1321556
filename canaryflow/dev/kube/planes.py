"""Several local control planes at once, one per cell, and one kubeconfig with a context for each.

A release runs each cell against its own cluster, named by a kubeconfig context. Locally each
cell is a `LocalControlPlane` in a directory of its own (its own etcd, ports, certificates and
logs); `local_planes` starts them one after another and writes a kubeconfig that holds every
plane under the cell's name (cluster, user and context all named after the cell), so the release
spec's ``context:`` of a cell picks its plane.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canaryflow.dev.kube.controlplane import ControlPlane, LocalControlPlane
from canaryflow.errors import LocalClusterError

__all__ = ["LocalPlanes", "local_planes", "merge_kubeconfigs"]


@dataclass(frozen=True)
class LocalPlanes:
    """The running planes by cell name, and the kubeconfig with one context per cell."""

    kubeconfig: Path
    planes: dict[str, ControlPlane]


def merge_kubeconfigs(kubeconfigs: dict[str, Path], path: Path) -> Path:
    """Write at `path` one kubeconfig holding each of `kubeconfigs` (single-context files, as
    `LocalControlPlane` writes them) under its key: cluster, user and context named after it."""
    merged: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
    }
    for name, file in kubeconfigs.items():
        config = json.loads(file.read_text())
        current = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        merged["clusters"].append({"name": name, "cluster": cluster})
        merged["users"].append({"name": name, "user": user})
        merged["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})
    merged["current-context"] = next(iter(kubeconfigs))
    path.write_text(json.dumps(merged, indent=2))
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def local_planes(
    cells: Sequence[str],
    *,
    binaries: Path,
    nodes: int = 3,
    say: Callable[[str], None] = lambda _: None,
    timeout: float = 120.0,
) -> Iterator[LocalPlanes]:
    """One control plane per name in `cells`, each in its own temporary directory, for the
    duration of a ``with`` block; every plane is stopped (and its directory removed) at the end,
    and the kernel kills them if this process dies first.

    Raises `LocalClusterError` when a plane does not start (the planes started before it are
    stopped).
    """
    if len(set(cells)) != len(cells) or not cells:
        raise LocalClusterError(f"local planes need distinct cell names, got {list(cells)}")
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="canaryflow-cells-")))
        planes: dict[str, ControlPlane] = {}
        for cell in cells:
            plane = LocalControlPlane(root / cell, binaries=binaries, nodes=nodes, die_with_parent=True)
            stack.callback(plane.down, grace=0.0)  # its directory goes too: nothing to keep
            planes[cell] = plane.up(timeout=timeout)
            say(f"Cell {cell}: local control plane {planes[cell].server}")
        kubeconfig = merge_kubeconfigs(
            {cell: plane.kubeconfig for cell, plane in planes.items()}, root / "kubeconfig"
        )
        yield LocalPlanes(kubeconfig=kubeconfig, planes=planes)
