"""Locate the control-plane binaries built by `tools/kube/build.sh`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from canaryflow.errors import LocalClusterError

__all__ = ["BINARIES", "build_script", "find_binaries"]

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "stages.yaml")


def build_script() -> Path:
    """The build script of the source tree this package runs from."""
    return Path(__file__).resolve().parents[3] / "tools" / "kube" / "build.sh"


def find_binaries(*, required: bool = True) -> Path | None:
    """The directory holding every binary, from $CANARYFLOW_KUBE_BIN or the build cache.

    Returns None when they are not built and `required` is false; otherwise raises
    `LocalClusterError` saying how to build them.
    """
    explicit = os.environ.get("CANARYFLOW_KUBE_BIN")
    candidate: Path | None = Path(explicit) if explicit else None
    script = build_script()
    if candidate is None and script.exists():
        printed = subprocess.run(
            ["bash", str(script), "--print"], capture_output=True, text=True, check=False, timeout=30
        )
        if printed.returncode == 0 and printed.stdout.strip():
            candidate = Path(printed.stdout.strip()) / "bin"
    if candidate is not None and all((candidate / b).exists() for b in BINARIES):
        return candidate
    if not required:
        return None
    raise LocalClusterError(
        "the local control plane is not built yet: run `make kube-build` (tools/kube/build.sh; "
        "a cold build takes a while) or set CANARYFLOW_KUBE_BIN"
    )
