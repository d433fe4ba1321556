"""Requests to a running rollout (``canaryflow abort | pause | promote --full``) on the real
Prefect API: each action in its own variable, so no writer merges into what another writes and an
abort is never lost to the run clearing a pause at the same moment."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from canaryflow.cluster.port import TargetRef


@pytest.fixture
def target(prefect_harness: Any) -> TargetRef:
    name = f"web-{uuid.uuid4().hex[:8]}"
    return TargetRef("shop", name, name, name)


def test_a_request_reaches_only_the_run_it_names(target: TargetRef) -> None:
    from flows.slots import request, requests_for, slot_name

    slot, run, other = slot_name(target), str(uuid.uuid4()), str(uuid.uuid4())
    request(slot, run, "pause", by="ana", reason="look at p99")
    request(slot, run, "promote", by="ana", reason="looks fine")

    mine = requests_for(slot, run)
    assert sorted(mine) == ["pause", "promote"]
    assert (mine["pause"]["by"], mine["pause"]["reason"]) == ("ana", "look at p99")
    assert requests_for(slot, other) == {}


def test_an_abort_written_while_the_run_clears_a_pause_is_kept(
    target: TargetRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The abort lands between the run's read and its write (a hook on Prefect's `Variable.get`
    writes it right after the run reads), the moment a read-modify-write would lose it."""
    from prefect.variables import Variable

    from flows.slots import clear_request, request, requests_for, slot_name

    slot, run = slot_name(target), str(uuid.uuid4())
    request(slot, run, "pause", by="ana", reason="hold")
    paused = requests_for(slot, run)["pause"]
    original: Callable[..., Any] = Variable.get
    fired: list[bool] = []

    def get_then_abort(name: str, default: Any = None) -> Any:
        value = original(name, default=default)
        if not fired:
            fired.append(True)
            request(slot, run, "abort", by="bob", reason="wrong image")
        return value

    monkeypatch.setattr(Variable, "get", staticmethod(get_then_abort))
    clear_request(slot, "pause", paused)
    monkeypatch.undo()

    assert fired
    mine = requests_for(slot, run)
    assert "pause" not in mine  # honoured and forgotten
    assert mine["abort"]["by"] == "bob"  # and the abort survived


def test_forgetting_a_pause_keeps_a_newer_one(target: TargetRef) -> None:
    from flows.slots import clear_request, request, requests_for, slot_name

    slot, run = slot_name(target), str(uuid.uuid4())
    request(slot, run, "pause", by="ana", reason="first")
    honoured = requests_for(slot, run)["pause"]
    request(slot, run, "pause", by="bob", reason="second")

    clear_request(slot, "pause", honoured)

    assert requests_for(slot, run)["pause"]["reason"] == "second"
