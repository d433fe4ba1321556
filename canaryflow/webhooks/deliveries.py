"""`DeliveryStore`: the delivery ids that started rollouts, in SQLite, so a redelivery starts nothing.

A delivery goes through two states. `claim` inserts its key as *claimed* in one transaction (the
key is the primary key, so of two concurrent claims exactly one wins); the winner starts the
rollouts, then `complete` marks it *handled* with their flow run ids, or `release` deletes the
claim when starting failed, so the sender's retry can claim it again. A claim older than
`claim_ttl` seconds (its holder crashed) may be taken over; a token guards `complete` and `release`
against a holder whose claim was taken over.

Standard library only (`sqlite3`), parameterised statements only, one connection per operation
(safe across threads and processes; SQLite serialises the writers). The journal is a WAL with
``synchronous=NORMAL``: a record survives the receiver's crash, but the last ones may be lost if the
machine loses power. A delivery redelivered after that is still started once, because the starter's
idempotency key (the delivery id) makes the orchestrator return the flow run it created before.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Claimed", "DeliveryStore", "Duplicate", "InProgress"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'handled')),
    token TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    handled_at REAL,
    flow_run_ids TEXT
)
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """This caller owns the delivery now; pass `token` to `complete` or `release`."""

    token: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The delivery was handled before; these flow runs were started then."""

    flow_run_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InProgress:
    """Another request is starting this delivery's rollouts right now."""


class DeliveryStore:
    """Handled and claimed deliveries in the SQLite database at `path` (created when missing)."""

    def __init__(
        self, path: Path, *, claim_ttl: float = 120.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.claim_ttl = claim_ttl
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            yield conn
        finally:
            conn.close()

    def lookup(self, key: str) -> Duplicate | None:
        """The handled delivery `key`, or `None` when it is not handled (unknown or only claimed)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT flow_run_ids FROM deliveries WHERE key = ? AND state = 'handled'", (key,)
            ).fetchone()
        return None if row is None else Duplicate(tuple(json.loads(row[0])))

    def claim(self, key: str) -> Claimed | Duplicate | InProgress:
        """Claim delivery `key` for starting its rollouts (atomic: of concurrent claims one wins)."""
        token, now = uuid.uuid4().hex, self._clock()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO deliveries (key, state, token, claimed_at) VALUES (?, 'claimed', ?, ?)",
                    (key, token, now),
                )
            except sqlite3.IntegrityError:
                outcome = self._existing(conn, key, token, now)
            else:
                outcome = Claimed(token)
            conn.execute("COMMIT")
        return outcome

    def _existing(
        self, conn: sqlite3.Connection, key: str, token: str, now: float
    ) -> Claimed | Duplicate | InProgress:
        state, claimed_at, flow_run_ids = conn.execute(
            "SELECT state, claimed_at, flow_run_ids FROM deliveries WHERE key = ?", (key,)
        ).fetchone()
        if state == "handled":
            return Duplicate(tuple(json.loads(flow_run_ids)))
        if claimed_at > now - self.claim_ttl:
            return InProgress()
        conn.execute("UPDATE deliveries SET token = ?, claimed_at = ? WHERE key = ?", (token, now, key))
        return Claimed(token)

    def complete(self, key: str, claim: Claimed, flow_run_ids: Sequence[str]) -> bool:
        """Mark `key` handled with the flow runs it started. False when the claim was lost."""
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET state = 'handled', handled_at = ?, flow_run_ids = ? "
                "WHERE key = ? AND token = ? AND state = 'claimed'",
                (self._clock(), json.dumps(list(flow_run_ids)), key, claim.token),
            )
            return cursor.rowcount == 1

    def release(self, key: str, claim: Claimed) -> None:
        """Give up the claim on `key` (starting failed), so a retry of the delivery can claim it."""
        with self._connect() as conn:
            conn.execute(
                "DELETE FROM deliveries WHERE key = ? AND token = ? AND state = 'claimed'", (key, claim.token)
            )
