"""`cluster_factory`: the contract suite runs once per `Cluster` adapter.

``simulated`` always runs (instantly: a manual clock). ``kubernetes`` runs against the local control
plane from the fixture `local_kube` (tests/fixtures/kube.py), each test in a namespace of its
own; without the fixture or its binaries it skips with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.harness import Harness, KubernetesHarness, SimulatedHarness


@pytest.fixture(params=["simulated", pytest.param("kubernetes", marks=[pytest.mark.kube, pytest.mark.slow])])
def cluster_factory(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness: Harness
    if request.param == "simulated":
        harness = SimulatedHarness()
    else:
        try:
            local_kube = request.getfixturevalue("local_kube")
        except pytest.FixtureLookupError:
            pytest.skip("the local_kube fixture (tests/fixtures/kube.py) is not available")
        harness = KubernetesHarness(local_kube.kubeconfig, local_kube.control)
    try:
        yield harness
    finally:
        harness.close()
