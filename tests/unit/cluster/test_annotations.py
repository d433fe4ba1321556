"""The rollout state in annotations: round trip, and refusal of what cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from canaryflow.cluster.annotations import decode_state, encode_state, track_of
from canaryflow.cluster.port import RolloutId, RolloutState
from canaryflow.errors import ClusterError

STATE = RolloutState(
    rollout_id=RolloutId("web-3f9a2c1"),
    step=2,
    weight=50,
    canary_image="registry.invalid/shop/web:2",
    stable_image="registry.invalid/shop/web:1",
    stable_replicas=10,
    started_at=datetime(2025, 3, 1, 12, 30, tzinfo=UTC),
    phase="promoting",
)


def test_round_trip() -> None:
    annotations = encode_state(STATE)
    assert annotations["canaryflow/rollout-id"] == "web-3f9a2c1"
    assert annotations["canaryflow/started-at"] == "2025-03-01T12:30:00+00:00"
    assert decode_state(annotations, where="shop/web-canary") == STATE


def test_no_rollout_id_is_no_state() -> None:
    assert decode_state({"other": "x"}, where="shop/web-canary") is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("canaryflow/weight", "fifty", "malformed"),
        ("canaryflow/phase", "paused", "unknown phase 'paused'"),
        ("canaryflow/started-at", "yesterday", "malformed"),
    ],
)
def test_malformed_values_name_the_object(key: str, value: str, message: str) -> None:
    annotations = {**encode_state(STATE), key: value}
    with pytest.raises(ClusterError, match=f"shop/web-canary: .*{message}"):
        decode_state(annotations, where="shop/web-canary")


def test_a_missing_annotation_is_named() -> None:
    annotations = encode_state(STATE)
    del annotations["canaryflow/stable-replicas"]
    with pytest.raises(ClusterError, match="annotation canaryflow/stable-replicas is missing"):
        decode_state(annotations, where="shop/web-canary")


@pytest.mark.parametrize(
    ("labels", "track"),
    [
        ({"track": "canary"}, "canary"),
        ({"track": "baseline"}, "baseline"),
        ({"track": "stable"}, "stable"),
        ({}, "stable"),
        ({"track": "blue"}, "stable"),
    ],
)
def test_track_of(labels: dict[str, str], track: str) -> None:
    assert track_of(labels) == track
