"""`Dispatcher`: starts the accepted pushes of the queue, in order, until the orchestrator takes them.

The receiver accepts a push by writing it to the queue (`DeliveryStore.enqueue`) and answers at
once; the dispatcher, a background thread, starts it. So a slow or unreachable orchestrator
never holds a request (the reply waits at most the receiver's ``reply_wait`` for the start), and
a push accepted while the orchestrator is down is started when it answers, with no redelivery
and across restarts of the receiver (the queue is in SQLite; a dispatcher starts on a queue left
non-empty).

For each due push, oldest first: if a later push of the same ref, accepted after it, has started
or is queued, the push is superseded (an older image never replaces a newer one; a forced push
back to an older commit is newer than what it replaces); otherwise it is claimed, each of
its rollouts is started with the idempotency key ``<push key>:<rollout spec>`` (so a start that
happened just before a crash is found, not repeated), and it is recorded as handled. A start
that fails is retried after a delay that doubles from ``first_retry`` to ``max_retry`` seconds;
nothing is ever dropped. Up to ``workers`` threads start pushes at once (a start waits on the
orchestrator's API), but never two pushes of one ref: a thread takes the oldest due push of a
ref nobody is starting, so the pushes of a ref still start in order. The threads run while the
queue has work and exit when it is empty; `kick` starts them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from canaryflow.errors import CanaryflowError, TriggerUnavailableError
from canaryflow.requests import ReleaseRequest, RolloutRequest
from canaryflow.routes import RELEASE_PREFIX
from canaryflow.triggers.port import FlowRunId, RolloutStarter
from canaryflow.webhooks.deliveries import Claimed, DeliveryStore, Duplicate, InProgress, QueuedPush

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)

#: What happened to a push the dispatcher handled, besides starting (`Duplicate`).
_SUPERSEDED, _FAILED = "superseded", "failed"
#: How many recent outcomes the dispatcher remembers for waiting replies.
_KEEP_OUTCOMES = 10_000


class Dispatcher:
    """Starts queued pushes from `store` with `starter` on a background thread.

    `on_started(key, count)` is called after a push started `count` rollouts, `on_failed(cause)`
    after a start failed (``unavailable``, ``refused`` or ``error``): the receiver's counters.
    `clock` is the store's clock, used to wait for the next due push.
    """

    def __init__(
        self,
        store: DeliveryStore,
        starter: RolloutStarter,
        *,
        first_retry: float = 1.0,
        max_retry: float = 60.0,
        lease: float = 120.0,
        workers: int = 4,
        on_started: Callable[[str, int], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.starter = starter
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.lease = lease
        self.workers = max(1, workers)
        self._on_started = on_started
        self._on_failed = on_failed
        self._clock = clock
        #: When the current streak of failed starts began (None while starts succeed): how long
        #: the orchestrator has been unreachable, for ``/readyz``.
        self.failing_since: float | None = None
        #: The latest failed start's error, while the streak lasts.
        self.last_failure: str | None = None
        self._changed = threading.Condition()
        self._kicked = False
        self._stopped = False
        self._threads: set[threading.Thread] = set()
        #: The scopes (provider, repository, ref) whose push a thread is starting now.
        self._busy: set[str] = set()
        self._taking = threading.Lock()
        self._outcomes: dict[str, Duplicate | str] = {}

    def kick(self) -> None:
        """There is work: wake the threads, or start them (up to ``workers``)."""
        with self._changed:
            self._kicked = True
            self._changed.notify_all()
            while len(self._threads) < self.workers and not self._stopped:
                thread = threading.Thread(target=self._loop, name="canaryflow-dispatch", daemon=True)
                self._threads.add(thread)
                thread.start()

    def settle(self, key: str, timeout: float, *, retries: bool = False) -> Duplicate | None:
        """Wait up to `timeout` seconds for push `key` to start; what it started, or `None` when it
        has not started by then (it stays queued, or was superseded). Without `retries` the wait
        ends at the first failed attempt (a reply does not wait for the retry)."""
        handled = self.store.lookup(key)
        if handled is not None:
            return handled
        entry = self.store.queued(key)
        if entry is None:  # started and dequeued since the lookup above, or never queued
            return self.store.lookup(key)
        if entry.state != "queued" or (entry.attempts > 0 and not retries):
            return None
        deadline = time.monotonic() + timeout
        with self._changed:  # the outcomes are kept in memory: waiting costs no query
            while True:
                outcome = self._outcomes.get(key)
                if isinstance(outcome, Duplicate):
                    return outcome
                if outcome == _SUPERSEDED or (outcome == _FAILED and not retries):
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def _record(self, key: str, outcome: Duplicate | str) -> None:
        with self._changed:
            self._outcomes.pop(key, None)
            self._outcomes[key] = outcome
            while len(self._outcomes) > _KEEP_OUTCOMES:
                self._outcomes.pop(next(iter(self._outcomes)))
            self._changed.notify_all()

    def run_once(self) -> bool:
        """Handle the oldest due push of a ref no other thread is starting, if any; whether there
        was one."""
        with self._taking:
            push = self.store.take(self.lease, skip_scopes=set(self._busy))
            if push is None:
                return False
            self._busy.add(push.scope)
        try:
            self._handle(push)
        finally:
            with self._taking:
                self._busy.discard(push.scope)
        return True

    def _handle(self, push: QueuedPush) -> None:
        later = self.store.later_push(push.scope, push.after, accepted_after=push.accepted_at)
        if later is not None:
            self.store.supersede(push.key, f"a later push ({later[:7]}) started or is queued")
            self._record(push.key, _SUPERSEDED)
            logger.info("%s superseded by the later push %s", push.label, later[:7])
            return
        claim = self.store.claim(push.key)
        if isinstance(claim, Duplicate):
            self.store.dequeue(push.key)
            self._record(push.key, claim)
            return
        if isinstance(claim, InProgress):
            self.store.reschedule(push.key, "being started by another receiver", self.first_retry)
            return
        self._start(push, claim)

    def _start(self, push: QueuedPush, claim: Claimed) -> None:
        flow_run_ids: list[FlowRunId] = []
        try:
            for rollout, request in push.rollouts:
                flow_run_ids.append(
                    self.starter.start(_request(rollout, request), idempotency_key=f"{push.key}:{rollout}")
                )
        except Exception as exc:  # nothing is dropped: any failure is retried later
            self.store.release(push.key, claim)
            message = str(exc) if isinstance(exc, TriggerUnavailableError) else f"{type(exc).__name__}: {exc}"
            entry = self.store.queued(push.key)
            delay = min(self.max_retry, self.first_retry * 2.0 ** (0 if entry is None else entry.attempts))
            attempts = self.store.reschedule(push.key, message, delay)
            if self.failing_since is None:
                self.failing_since = self._clock()
            self.last_failure = message
            if self._on_failed is not None:
                self._on_failed(_cause(exc))
            self._record(push.key, _FAILED)
            if isinstance(exc, TriggerUnavailableError):
                logger.warning(
                    "%s not started (attempt %d, next in %.0f s): %s", push.label, attempts, delay, exc
                )
            else:
                logger.exception("%s not started (attempt %d, next in %.0f s)", push.label, attempts, delay)
            return
        self.failing_since, self.last_failure = None, None
        self.store.complete(push.key, claim, flow_run_ids, push.rollout_ids)
        self.store.dequeue(push.key)
        self._record(push.key, Duplicate(tuple(flow_run_ids), push.rollout_ids))
        if self._on_started is not None:
            self._on_started(push.key, len(flow_run_ids))
        logger.info("%s started flow runs %s", push.label, ", ".join(flow_run_ids))

    def stop(self) -> None:
        """Stop the threads after the pushes they are working on (queued pushes stay queued)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            try:
                worked = self.run_once()
                due = None if worked else self.store.backlog().next_due
            except Exception:  # the store failed (disk full, locked): keep the thread, try again
                logger.exception("the webhook queue could not be read; trying again")
                worked, due = False, self._clock() + self.first_retry
            with self._changed:
                self._changed.notify_all()
                if self._stopped:
                    self._threads.discard(threading.current_thread())
                    return
                if worked or self._kicked:
                    self._kicked = False
                    continue
                if due is None:
                    self._threads.discard(threading.current_thread())
                    return
                self._changed.wait(max(0.01, min(due - self._clock(), self.max_retry)))


def _cause(exc: Exception) -> str:
    """The cause of a failed start, as the receiver's metrics count it."""
    if isinstance(exc, TriggerUnavailableError):
        return "unavailable"
    return "refused" if isinstance(exc, CanaryflowError) else "error"


def _request(target: str, request: str) -> RolloutRequest | ReleaseRequest:
    """A queued start's request: a release for a ``release:`` target, else a rollout."""
    if target.startswith(RELEASE_PREFIX):
        return ReleaseRequest.model_validate_json(request)
    return RolloutRequest.model_validate_json(request)
