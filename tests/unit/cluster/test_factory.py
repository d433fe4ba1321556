"""`make_cluster`: the only place that knows the adapters; unknown kinds are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.clock import ManualClock
from canaryflow.cluster.factory import make_cluster
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.errors import InputError, PermanentError


@pytest.mark.parametrize("kind", ["simulated", "sim"])
def test_simulated(kind: str) -> None:
    world = SimulatedWorld(clock=ManualClock())
    cluster = make_cluster(kind, world=world)
    assert isinstance(cluster, SimulatedCluster)
    assert cluster.world is world


def test_unknown_kind_is_an_error_not_a_fallback() -> None:
    with pytest.raises(
        PermanentError, match="unknown cluster kind 'k8s'; choose one of: kube, kubernetes, sim"
    ):
        make_cluster("k8s")


def test_kubernetes_without_a_kubeconfig_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot load kubeconfig"):
        make_cluster("kube", kubeconfig=tmp_path / "none")


@pytest.mark.parametrize("text", ["just some text\n", "- a\n- b\n"])
def test_a_file_that_is_not_a_kubeconfig_is_named_as_such(tmp_path: Path, text: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(InputError) as refused:
        make_cluster("kube", kubeconfig=path)
    assert str(refused.value) == (
        f"cannot load kubeconfig {path}: not a kubeconfig (a YAML mapping of clusters, contexts and users); "
        "point KUBECONFIG at a valid kubeconfig"
    )
