"""The delivery store: one claim wins, handled deliveries are remembered across restarts."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from canaryflow.webhooks.deliveries import Claimed, DeliveryStore, Duplicate, InProgress, QueuedPush


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


def test_rollout_ids_are_kept_with_the_flow_runs_and_a_database_without_them_is_upgraded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:  # a database from before the ids
        conn.execute(
            "CREATE TABLE deliveries (key TEXT PRIMARY KEY, state TEXT NOT NULL, token TEXT NOT NULL, "
            "claimed_at REAL NOT NULL, handled_at REAL, flow_run_ids TEXT)"
        )
        conn.execute("INSERT INTO deliveries VALUES ('old', 'handled', 't', 1, 2, '[\"run-0\"]')")
    store = DeliveryStore(path)
    assert store.lookup("old") == Duplicate(("run-0",), ())
    claim = store.claim("new")
    assert isinstance(claim, Claimed)
    assert store.complete("new", claim, ["run-1"], ["web-1234abcd"])
    assert DeliveryStore(path).lookup("new") == Duplicate(("run-1",), ("web-1234abcd",))


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
    store.record_push("a", scope, "0", "A")  # seen, neither started nor queued
    assert store.later_push(scope, "A") is None
    assert store.later_push(scope, "0") is None  # only A came after 0, and it did not start
    _started(store, "b", scope, "A", "B")
    assert store.later_push(scope, "A") == "B"
    assert store.later_push(scope, "0") == "B"  # through A
    assert store.later_push(scope, "B") is None  # nothing after the newest
    assert store.later_push("github:o/r:refs/heads/other", "A") is None  # another ref
    # survives a restart, and a cycle (force pushes back and forth) does not loop
    store.record_push("c", scope, "B", "A")
    assert DeliveryStore(tmp_path / "d.sqlite3").later_push(scope, "B") == "B"


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
    assert store.later_push("s", "0") is None


def _push(key: str, after: str = "A", scope: str = "s") -> QueuedPush:
    return QueuedPush(
        key, scope, after, f"push {key}", (("web.yaml", '{"spec": "web.yaml", "image": "x:1"}'),)
    )


def test_the_queue_hands_out_pushes_oldest_first_one_holder_at_a_time(tmp_path: Path) -> None:
    clock = Clock()
    store = DeliveryStore(tmp_path / "d.sqlite3", clock=clock)
    assert store.backlog().queued == 0
    assert store.backlog().next_due is None
    assert store.enqueue(_push("a"))
    clock.now += 1
    assert store.enqueue(_push("b", after="B"))
    assert not store.enqueue(_push("a"))  # accepted once
    first = store.take(lease=60)
    assert first is not None
    assert (first.key, first.rollouts) == ("a", (("web.yaml", '{"spec": "web.yaml", "image": "x:1"}'),))
    second = store.take(lease=60)  # "a" is leased: the next one
    assert second is not None
    assert second.key == "b"
    assert store.take(lease=60) is None
    clock.now += 61  # a holder that died: its lease runs out
    again = store.take(lease=60)
    assert again is not None
    assert again.key == "a"


def test_a_failed_start_waits_its_delay_and_keeps_its_error(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "d.sqlite3"
    store = DeliveryStore(path, clock=clock)
    store.enqueue(_push("a"))
    assert store.take(lease=60) is not None
    assert store.reschedule("a", "the orchestrator is down", delay=8.0) == 1
    assert store.take(lease=60) is None
    backlog = DeliveryStore(path, clock=clock).backlog()  # and across a restart
    assert (backlog.queued, backlog.last_error, backlog.next_due) == (1, "the orchestrator is down", 1008.0)
    clock.now += 8
    assert store.take(lease=60) is not None
    store.dequeue("a")
    assert store.queued("a") is None
    assert store.backlog().queued == 0


def test_a_queued_push_counts_as_later_and_a_superseded_one_never_starts(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "d.sqlite3")
    store.record_push("a", "s", "0", "A")
    store.record_push("b", "s", "A", "B")
    store.enqueue(_push("a", after="A"))
    store.enqueue(_push("b", after="B"))
    assert store.later_push("s", "A") == "B"  # B is queued: A is obsolete
    store.supersede("a", "a later push")
    entry = store.queued("a")
    assert entry is not None
    assert entry.state == "superseded"
    taken = store.take(lease=60)
    assert taken is not None
    assert taken.key == "b"
    assert store.take(lease=60) is None
    assert store.backlog().queued == 1
