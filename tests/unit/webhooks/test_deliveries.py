"""The delivery store: one claim wins, handled deliveries are remembered across restarts."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from canaryflow.webhooks.deliveries import Claimed, DeliveryStore, Duplicate, InProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_claim_complete_then_duplicate(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "d.sqlite3")
    assert store.lookup("github:a") is None
    claim = store.claim("github:a")
    assert isinstance(claim, Claimed)
    assert store.lookup("github:a") is None
    assert isinstance(store.claim("github:a"), InProgress)
    assert store.complete("github:a", claim, ["run-1", "run-2"])
    assert store.lookup("github:a") == Duplicate(("run-1", "run-2"))
    assert store.claim("github:a") == Duplicate(("run-1", "run-2"))
    assert isinstance(store.claim("gitlab:a"), Claimed)


def test_handled_deliveries_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "d.sqlite3"
    first = DeliveryStore(path)
    claim = first.claim("github:a")
    assert isinstance(claim, Claimed)
    first.complete("github:a", claim, ["run-1"])
    assert DeliveryStore(path).claim("github:a") == Duplicate(("run-1",))


def test_a_released_claim_can_be_claimed_again(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "d.sqlite3")
    claim = store.claim("k")
    assert isinstance(claim, Claimed)
    store.release("k", claim)
    assert isinstance(store.claim("k"), Claimed)


def test_a_stale_claim_is_taken_over_and_its_old_holder_cannot_finish(tmp_path: Path) -> None:
    clock = Clock()
    store = DeliveryStore(tmp_path / "d.sqlite3", claim_ttl=60, clock=clock)
    old = store.claim("k")
    assert isinstance(old, Claimed)
    clock.now += 59
    assert isinstance(store.claim("k"), InProgress)
    clock.now += 2
    new = store.claim("k")
    assert isinstance(new, Claimed)
    assert not store.complete("k", old, ["stale-run"])
    store.release("k", old)  # no effect: the claim is not the old holder's any more
    assert store.complete("k", new, ["run"])
    assert store.lookup("k") == Duplicate(("run",))


def test_concurrent_claims_have_exactly_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    DeliveryStore(path)
    barrier = threading.Barrier(8)
    results: list[object] = []
    lock = threading.Lock()

    def claim() -> None:
        store = DeliveryStore(path)
        barrier.wait()
        outcome = store.claim("github:same")
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, Claimed) for r in results) == 1
    assert sum(isinstance(r, InProgress) for r in results) == 7


def test_keys_are_data_not_sql(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    store = DeliveryStore(path)
    key = "x'); DROP TABLE deliveries; --"
    claim = store.claim(key)
    assert isinstance(claim, Claimed)
    store.complete(key, claim, ["run"])
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT key FROM deliveries").fetchall() == [(key,)]
