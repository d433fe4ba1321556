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

**The queue.** A push is accepted before anything is started: `enqueue` records it, with the
rollout requests it makes, durably in the ``outbox`` table; the dispatcher
(`canaryflow.webhooks.dispatch`) takes queued pushes (`take`) in the order they were accepted,
claims and starts them, and reschedules one whose start failed (the orchestrator is down) with a
delay (`reschedule`). A push therefore survives an orchestrator outage and a restart of the receiver. A queued
push made obsolete by a later one is marked ``superseded``.

Every push accepted is also remembered with its ``before`` and ``after`` commits (`record_push`),
so that `later_push` can tell a push that arrives after a later push of the same ref (a
redelivery, a replay): it follows the chain of remembered pushes from the push's ``after``
commit, each push's ``before`` being the previous one's ``after``, and finds a later one that
started or is queued.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MAX_CHAIN",
    "Backlog",
    "Claimed",
    "DeliveryStore",
    "Duplicate",
    "InProgress",
    "QueueEntry",
    "QueuedPush",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'handled')),
    token TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    handled_at REAL,
    flow_run_ids TEXT,
    rollout_ids TEXT
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
_OUTBOX = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    after_sha TEXT NOT NULL,
    label TEXT NOT NULL,
    rollouts TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'superseded')),
    accepted_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT
)
"""
#: How many later pushes `later_push` follows at most.
MAX_CHAIN = 1000


@dataclass(frozen=True, slots=True)
class Claimed:
    """This caller owns the delivery now; pass `token` to `complete` or `release`."""

    token: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The delivery was handled before; these flow runs were started then, for these rollouts
    (none recorded by a receiver older than the record of rollout ids)."""

    flow_run_ids: tuple[str, ...]
    rollout_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InProgress:
    """Another request is starting this delivery's rollouts right now."""


@dataclass(frozen=True, slots=True)
class QueuedPush:
    """An accepted push waiting to start: its key, scope (provider, repository, ref), ``after``
    commit, a label for logs, its rollouts as (rollout spec, request JSON) pairs, and when it was
    accepted (set by the store)."""

    key: str
    scope: str
    after: str
    label: str
    rollouts: tuple[tuple[str, str], ...]
    accepted_at: float = 0.0

    @property
    def rollout_ids(self) -> tuple[str, ...]:
        """The ids of its rollouts, as set in their requests when it was accepted."""
        return _rollout_ids(self.rollouts)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A push in the queue: ``queued`` or ``superseded``, its failed attempts and latest error,
    when it was accepted (the store's clock) and the ids of its rollouts."""

    state: str
    attempts: int
    last_error: str | None
    accepted_at: float
    rollout_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Backlog:
    """The queue at a glance: queued pushes, the oldest one's age, the latest error, and when the
    next one is due (a clock time; `None` with nothing queued)."""

    queued: int
    oldest_seconds: float
    last_error: str | None
    next_due: float | None


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
            columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
            if "rollout_ids" not in columns:  # a database written before rollout ids were kept
                try:
                    conn.execute("ALTER TABLE deliveries ADD COLUMN rollout_ids TEXT")
                except sqlite3.OperationalError as exc:  # another receiver added it just now
                    if "duplicate column" not in str(exc):
                        raise
            for statement in (*_PUSHES, _OUTBOX):
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
                "SELECT flow_run_ids, rollout_ids FROM deliveries WHERE key = ? AND state = 'handled'", (key,)
            ).fetchone()
        return None if row is None else _duplicate(row[0], row[1])

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
        state, claimed_at, flow_run_ids, rollout_ids = conn.execute(
            "SELECT state, claimed_at, flow_run_ids, rollout_ids FROM deliveries WHERE key = ?", (key,)
        ).fetchone()
        if state == "handled":
            return _duplicate(flow_run_ids, rollout_ids)
        if claimed_at > now - self.claim_ttl:
            return InProgress()
        conn.execute("UPDATE deliveries SET token = ?, claimed_at = ? WHERE key = ?", (token, now, key))
        return Claimed(token)

    def complete(
        self, key: str, claim: Claimed, flow_run_ids: Sequence[str], rollout_ids: Sequence[str] = ()
    ) -> bool:
        """Mark `key` handled with the flow runs it started and their rollouts' ids. False when
        the claim was lost."""
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET state = 'handled', handled_at = ?, flow_run_ids = ?, rollout_ids = ? "
                "WHERE key = ? AND token = ? AND state = 'claimed'",
                (
                    self._clock(),
                    json.dumps(list(flow_run_ids)),
                    json.dumps(list(rollout_ids)),
                    key,
                    claim.token,
                ),
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

    def later_push(self, scope: str, after: str, *, accepted_after: float | None = None) -> str | None:
        """The ``after`` commit of a push of `scope` that came after commit `after` and started its
        rollouts or is queued to, following the remembered pushes; `None` when there is none.
        With `accepted_after`, only such a push first seen after that time counts (the
        dispatcher's question: did a newer push arrive while this one waited?)."""
        frontier, seen = [after], {after}
        with self._connect() as conn:
            while frontier and len(seen) <= MAX_CHAIN:
                commit = frontier.pop()
                rows = conn.execute(
                    "SELECT p.after_sha, d.state, o.state, p.seen_at FROM pushes p "
                    "LEFT JOIN deliveries d ON d.key = p.key LEFT JOIN outbox o ON o.key = p.key "
                    "WHERE p.scope = ? AND p.before_sha = ?",
                    (scope, commit),
                ).fetchall()
                for later, state, queue_state, seen_at in rows:
                    newer = accepted_after is None or float(seen_at) > accepted_after
                    if newer and (state == "handled" or queue_state == "queued"):
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

    # -- the queue ---------------------------------------------------------------------------------

    def enqueue(self, push: QueuedPush) -> bool:
        """Accept `push` (durably); False when it is in the queue already."""
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (key, scope, after_sha, label, rollouts, state, accepted_at, "
                "next_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, 0)",
                (push.key, push.scope, push.after, push.label, json.dumps(push.rollouts), self._clock()),
            )
            return cursor.rowcount == 1

    def queued(self, key: str) -> QueueEntry | None:
        """The queue's entry for `key` (queued or superseded), or `None`."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT state, attempts, last_error, accepted_at, rollouts FROM outbox WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return QueueEntry(row[0], int(row[1]), row[2], float(row[3]), _rollout_ids(_rollouts(row[4])))

    def take(self, lease: float, *, skip_scopes: Collection[str] = ()) -> QueuedPush | None:
        """The oldest queued push that is due and not of `skip_scopes` (the refs a caller is
        starting a push of already), leased for `lease` seconds to this caller (so that two
        dispatchers never work on one push at once); `None` when none is due."""
        now = self._clock()
        skipped = sorted(skip_scopes)
        unless = f" AND scope NOT IN ({', '.join('?' * len(skipped))})" if skipped else ""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT key, scope, after_sha, label, rollouts, accepted_at FROM outbox "
                f"WHERE state = 'queued' AND next_at <= ? AND lease_until <= ?{unless} "
                "ORDER BY accepted_at, rowid LIMIT 1",
                (now, now, *skipped),
            ).fetchone()
            if row is not None:
                conn.execute("UPDATE outbox SET lease_until = ? WHERE key = ?", (now + lease, row[0]))
            conn.execute("COMMIT")
        if row is None:
            return None
        return QueuedPush(
            key=row[0],
            scope=row[1],
            after=row[2],
            label=row[3],
            rollouts=_rollouts(row[4]),
            accepted_at=float(row[5]),
        )

    def reschedule(self, key: str, error: str, delay: float) -> int:
        """Try `key` again in `delay` seconds, remembering `error`; the number of attempts so far."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?, lease_until = 0, last_error = ? "
                "WHERE key = ?",
                (self._clock() + delay, error, key),
            )
            row = conn.execute("SELECT attempts FROM outbox WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    def supersede(self, key: str, reason: str) -> None:
        """Mark queued push `key` superseded: it will never start."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'superseded', lease_until = 0, last_error = ? WHERE key = ?",
                (reason, key),
            )

    def dequeue(self, key: str) -> None:
        """Remove `key` from the queue (it started)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM outbox WHERE key = ?", (key,))

    def probe_write(self, timeout: float = 1.0) -> None:
        """Write to the database and commit, within `timeout` seconds (``/readyz``): raises
        `sqlite3.Error` or `OSError` when the outbox cannot take a push now (disk full, read-only,
        locked)."""
        conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS probe (at REAL NOT NULL)")
            conn.execute("DELETE FROM probe")
            conn.execute("INSERT INTO probe VALUES (?)", (self._clock(),))
            conn.execute("COMMIT")
        finally:
            conn.close()

    def backlog(self) -> Backlog:
        """How many pushes wait in the queue, since when, and the latest error."""
        with self._connect() as conn:
            count, oldest = conn.execute(
                "SELECT COUNT(*), MIN(accepted_at) FROM outbox WHERE state = 'queued'"
            ).fetchone()
            error = conn.execute(
                "SELECT last_error FROM outbox WHERE state = 'queued' AND last_error IS NOT NULL "
                "ORDER BY accepted_at DESC LIMIT 1"
            ).fetchone()
            due = conn.execute(
                "SELECT MIN(MAX(next_at, lease_until)) FROM outbox WHERE state = 'queued'"
            ).fetchone()
        return Backlog(
            queued=int(count),
            oldest_seconds=0.0 if oldest is None else max(0.0, self._clock() - float(oldest)),
            last_error=None if error is None else str(error[0]),
            next_due=None if due[0] is None else float(due[0]),
        )


def _duplicate(flow_run_ids: str, rollout_ids: str | None) -> Duplicate:
    return Duplicate(tuple(json.loads(flow_run_ids)), tuple(json.loads(rollout_ids or "[]")))


def _rollouts(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(r), str(q)) for r, q in json.loads(text))


def _rollout_ids(rollouts: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The ``rollout_id`` of each request JSON that has one (a release's has none)."""
    ids = (json.loads(request).get("rollout_id") for _, request in rollouts)
    return tuple(i for i in ids if isinstance(i, str))
