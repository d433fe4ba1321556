"""Every name in a module's `__all__` exists, and the port's values are frozen."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from canaryflow.clock import ManualClock

MODULES = [
    "canaryflow.cluster",
    "canaryflow.cluster.actuation",
    "canaryflow.cluster.annotations",
    "canaryflow.clock",
    "canaryflow.cluster.factory",
    "canaryflow.cluster.kubernetes",
    "canaryflow.cluster.port",
    "canaryflow.cluster.simulated",
    "canaryflow.cluster.workloads",
    "canaryflow.replicas",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.{member}"


def test_port_values_are_frozen() -> None:
    port = importlib.import_module("canaryflow.cluster.port")
    for name in ("PodInfo", "TargetRef", "RolloutState", "TrackStatus", "TargetStatus"):
        params = getattr(port, name).__dataclass_params__
        assert params.frozen, name
    ref = port.TargetRef(namespace="shop", deployment="web", container="web", service="web")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.namespace = "other"  # type: ignore[misc]
    assert (str(ref), ref.track_name("canary"), ref.track_name("stable")) == ("shop/web", "web-canary", "web")


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock()
    start, wall = clock.monotonic(), clock.now()
    clock.sleep(2.5)
    assert clock.monotonic() - start == 2.5
    assert (clock.now() - wall).total_seconds() == 2.5
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)
