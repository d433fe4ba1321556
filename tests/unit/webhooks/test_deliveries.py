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


def _started(store: DeliveryStore, key: str, scope: str, before: str, after: str) -> None:
    store.record_push(key, scope, before, after)
    claim = store.claim(key)
    assert isinstance(claim, Claimed)
    assert store.complete(key, claim, [f"run-{key}"])


def test_a_push_followed_by_a_started_push_of_its_ref_is_found_along_the_chain(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "d.sqlite3")
    scope = "github:o/r:refs/heads/main"
    store.record_push("a", scope, "0", "A")  # seen, never started (503)
    assert store.newer_started(scope, "A") is None
    assert store.newer_started(scope, "0") is None  # only A came after 0, and it did not start
    _started(store, "b", scope, "A", "B")
    assert store.newer_started(scope, "A") == "B"
    assert store.newer_started(scope, "0") == "B"  # through A
    assert store.newer_started(scope, "B") is None  # nothing after the newest
    assert store.newer_started("github:o/r:refs/heads/other", "A") is None  # another ref
    # survives a restart, and a cycle (force pushes back and forth) does not loop
    store.record_push("c", scope, "B", "A")
    assert DeliveryStore(tmp_path / "d.sqlite3").newer_started(scope, "B") == "B"


def test_a_database_from_before_the_push_chain_gains_its_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE deliveries (key TEXT PRIMARY KEY, state TEXT NOT NULL, token TEXT NOT NULL, "
            "claimed_at REAL NOT NULL, handled_at REAL, flow_run_ids TEXT)"
        )
        conn.commit()
    store = DeliveryStore(path)
    store.record_push("a", "s", "0", "A")
    assert store.newer_started("s", "0") is None
