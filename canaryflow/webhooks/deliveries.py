"""`DeliveryStore`: the pushes that started rollouts, in SQLite, so a redelivery or a replay starts nothing.

A delivery is keyed by the push it carries (provider, repository, ref, the commits before and
after: content covered by the signature), not by its delivery id, which the sender's signature
does not cover: a captured body resent under a new delivery id is the same push, a duplicate.
It goes through two states. `claim` inserts its key as *claimed* in one transaction (the
key is the primary key, so of two concurrent claims exactly one wins); the winner starts the
rollouts, then `complete` marks it *handled* with their flow run ids, or `release` deletes the
claim when starting failed, so the sender's retry can claim it again. A claim older than
`claim_ttl` seconds (its holder crashed) may be taken over; a token guards `complete` and `release`
against a holder whose claim was taken over.

Standard library only (`sqlite3`), parameterised statements only, one connection per operation
(safe across threads and processes; SQLite serialises the writers). The journal is a WAL with
``synchronous=NORMAL``: a record survives the receiver's crash, but the last ones may be lost if the
machine loses power. A delivery redelivered after that is still started once, because the starter's
idempotency key (the push's key) makes the orchestrator return the flow run it created before.

Every push claimed is also remembered with its ``before`` and ``after`` commits (`record_push`),
whether it started or not, so that `newer_started` can tell a push that arrives after a later push
of the same ref has started (a redelivery of a push that once got 503, a replay): it follows the
chain of remembered pushes from the push's ``after`` commit, each push's ``before`` being the
previous one's ``after``, and finds a later one that started.
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

__all__ = ["MAX_CHAIN", "Claimed", "DeliveryStore", "Duplicate", "InProgress"]

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
_PUSHES = (
    """
CREATE TABLE IF NOT EXISTS pushes (
    key TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    before_sha TEXT NOT NULL,
    after_sha TEXT NOT NULL,
    seen_at REAL NOT NULL
)
""",
    "CREATE INDEX IF NOT EXISTS pushes_by_before ON pushes (scope, before_sha)",
)
#: How many later pushes `newer_started` follows at most.
MAX_CHAIN = 1000


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
            for statement in _PUSHES:
                conn.execute(statement)

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

    def record_push(self, key: str, scope: str, before: str, after: str) -> None:
        """Remember push `key` of `scope` (provider, repository and ref) from `before` to `after`."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO pushes (key, scope, before_sha, after_sha, seen_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, scope, before, after, self._clock()),
            )

    def newer_started(self, scope: str, after: str) -> str | None:
        """The ``after`` commit of a push of `scope` that came after commit `after` and started its
        rollouts, following the remembered pushes; `None` when there is none."""
        frontier, seen = [after], {after}
        with self._connect() as conn:
            while frontier and len(seen) <= MAX_CHAIN:
                commit = frontier.pop()
                rows = conn.execute(
                    "SELECT p.after_sha, d.state FROM pushes p LEFT JOIN deliveries d ON d.key = p.key "
                    "WHERE p.scope = ? AND p.before_sha = ?",
                    (scope, commit),
                ).fetchall()
                for later, state in rows:
                    if state == "handled":
                        return str(later)
                    if later not in seen:
                        seen.add(later)
                        frontier.append(later)
        return None

    def release(self, key: str, claim: Claimed) -> None:
        """Give up the claim on `key` (starting failed), so a retry of the delivery can claim it."""
        with self._connect() as conn:
            conn.execute(
                "DELETE FROM deliveries WHERE key = ? AND token = ? AND state = 'claimed'", (key, claim.token)
            )
