"""`merge_kubeconfigs`: one kubeconfig with a context per cell, each reaching its own plane, as the
Kubernetes client reads it (the planes themselves start in tests/e2e/test_demo_cells.py)."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import config as kube_config

from canaryflow.dev.kube.planes import merge_kubeconfigs


def _single(path: Path, server: str, key: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "canaryflow-local", "cluster": {"server": server}}],
                "users": [{"name": "canaryflow-admin", "user": {"token": key}}],
                "contexts": [
                    {
                        "name": "canaryflow-local",
                        "context": {"cluster": "canaryflow-local", "user": "canaryflow-admin"},
                    }
                ],
                "current-context": "canaryflow-local",
            }
        )
    )
    return path


def test_each_cell_gets_a_context_that_reaches_its_own_plane(tmp_path: Path) -> None:
    planes = {
        "cell-1": _single(tmp_path / "a", "https://127.0.0.1:6441", "one"),
        "cell-2": _single(tmp_path / "b", "https://127.0.0.1:6442", "two"),
    }

    merged = merge_kubeconfigs(planes, tmp_path / "kubeconfig")

    contexts, current = kube_config.list_kube_config_contexts(config_file=str(merged))
    assert [c["name"] for c in contexts] == ["cell-1", "cell-2"]
    assert current["name"] == "cell-1"
    for cell, server, token in (("cell-1", "6441", "one"), ("cell-2", "6442", "two")):
        client = kube_config.new_client_from_config(config_file=str(merged), context=cell)
        assert client.configuration.host.endswith(server)
        assert f"Bearer {token}" in client.configuration.api_key.values()
    assert merged.stat().st_mode & 0o077 == 0  # it holds the planes' admin keys
