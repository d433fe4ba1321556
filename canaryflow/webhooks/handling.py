"""`DeliveryHandler`: one webhook delivery (headers and raw body) in, one `Reply` out.

The whole protocol without a web framework: authenticate, read the event, parse the push, route
it, accept the push into the durable queue, and answer: "started" with the flow run ids when the
dispatcher (`canaryflow.webhooks.dispatch`) started it within ``reply_wait`` seconds, "accepted"
otherwise (it starts as soon as the orchestrator takes it). A push is known by its content
(provider, repository, ref, the commits before and after), which the signature covers, not by
its delivery id, which it does not: a replayed body under a new delivery id starts nothing. The
FastAPI app (`canaryflow.webhooks.app`) only limits the body size and turns a `Reply` into a
response.
Every refusal is decided before anything is queued, so it has no side effect, and a push once
accepted is never lost: an orchestrator that is down or slow delays it, never refuses it.

====  ================  =====================================================================
code  status            when
====  ================  =====================================================================
200   pong, duplicate   a GitHub ping; a push that already started its rollouts (with the flow
                        run ids and rollout ids it started)
200   stale             a later push of the same ref started or is queued (not for forced pushes)
202   started           rollouts started (with their flow run ids and rollout ids)
202   accepted          queued; starts when the orchestrator takes it (with its rollout ids and
                        its latest error)
202   ignored           nothing to do (with why)
400   bad_request       not JSON, not a push payload, no usable delivery id
401   unauthorized      missing or wrong signature or token
404   not_configured    no secret is configured for this provider
415   unsupported_media the body is neither ``application/json`` nor GitHub's form encoding
422   unprocessable     a matching route renders an image that is not a valid OCI reference
====  ================  =====================================================================

`handle_*` methods block (SQLite, at most ``reply_wait`` seconds of waiting): call them from a
worker thread.
Secrets and request headers are never logged; delivery ids only once validated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from canaryflow.errors import ImageRenderError, PayloadError, SpecError
from canaryflow.plan import plan_rollout
from canaryflow.requests import RolloutRequest
from canaryflow.routes import RoutesConfig
from canaryflow.triggers.port import RolloutStarter
from canaryflow.webhooks.deliveries import DeliveryStore, Duplicate, QueuedPush
from canaryflow.webhooks.dispatch import Dispatcher
from canaryflow.webhooks.pushes import Provider, PushEvent, parse_github_push, parse_gitlab_push
from canaryflow.webhooks.routing import Ignore, PlannedRollout, route_push
from canaryflow.webhooks.signatures import (
    GITHUB_SECRET_ENV,
    GITLAB_SIGNING_TOKEN_ENV,
    GITLAB_TOKEN_ENV,
    Secret,
    load_secret,
    load_signing_token,
    verify_github_signature,
    verify_gitlab_token,
    verify_standard_webhook,
)

__all__ = ["REPLY_WAIT", "DeliveryHandler", "Reply", "WebhookMetrics", "WebhookSecrets", "push_key"]

logger = logging.getLogger(__name__)

_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
_EVENT_NAME = re.compile(r"[A-Za-z_ ]{1,50}")
#: How long a reply waits for the orchestrator to take an accepted push: a reply within a second
#: whatever the orchestrator does (GitHub gives up after 10 s; GitLab counts slow replies).
REPLY_WAIT = 0.8


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a delivery: HTTP status, JSON body (always with ``status``), extra headers."""

    status_code: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """The word in ``status`` (``started``, ``ignored``, ``unauthorized``, ...)."""
        return str(self.body["status"])


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """The shared secrets; a provider without one is refused with 404."""

    github: Secret | None = None
    gitlab: Secret | None = None
    #: The key of GitLab's signing token (Standard Webhooks), beside or instead of the plain token.
    gitlab_signing: Secret | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WebhookSecrets:
        """Read ``CANARYFLOW_GITHUB_SECRET``, ``CANARYFLOW_GITLAB_TOKEN`` and
        ``CANARYFLOW_GITLAB_SIGNING_TOKEN`` (or their ``_FILE``)."""
        return cls(
            load_secret(GITHUB_SECRET_ENV, environ),
            load_secret(GITLAB_TOKEN_ENV, environ),
            load_signing_token(GITLAB_SIGNING_TOKEN_ENV, environ),
        )


class WebhookMetrics:
    """The receiver's own metrics, in their own registry, served on a port of their own (never
    next to the hooks, which face the senders): deliveries by outcome and how long each took to
    answer, rollouts started, failed starts by cause, and what waits in the outbox."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "canaryflow_webhook_deliveries",
            "Webhook deliveries received, by provider and outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.reply_seconds = Histogram(
            "canaryflow_webhook_reply_seconds",
            "Seconds from a delivery's arrival to its answer, by provider.",
            ["provider"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.rollouts_started = Counter(
            "canaryflow_webhook_rollouts_started",
            "Rollout flow runs requested from the orchestrator, by provider.",
            ["provider"],
            registry=self.registry,
        )
        self.start_failures = Counter(
            "canaryflow_webhook_start_failures",
            "Failed attempts to start a queued push's rollouts, by cause: unavailable (the "
            "orchestrator did not answer), refused (it answered no) or error (anything else).",
            ["cause"],
            registry=self.registry,
        )
        self.queued = Gauge(
            "canaryflow_webhook_queued",
            "Pushes accepted and waiting to be started.",
            registry=self.registry,
        )
        self.oldest_queued_seconds = Gauge(
            "canaryflow_webhook_oldest_queued_seconds",
            "Age of the oldest push waiting to be started (0 when none waits).",
            registry=self.registry,
        )

    def watch(self, store: DeliveryStore) -> None:
        """Read the outbox's backlog at every scrape."""
        self.queued.set_function(lambda: float(store.backlog().queued))
        self.oldest_queued_seconds.set_function(lambda: store.backlog().oldest_seconds)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def _reply(status_code: int, status: str, **fields: Any) -> Reply:
    return Reply(status_code, {"status": status, **fields})


class DeliveryHandler:
    """Handles GitHub and GitLab deliveries with the given routes, secrets, store and starter.

    A reply waits at most `reply_wait` seconds for the dispatcher to start an accepted push; a
    start that fails is retried after `first_retry` seconds, doubling up to a minute.
    """

    def __init__(
        self,
        *,
        routes: RoutesConfig,
        secrets: WebhookSecrets,
        store: DeliveryStore,
        starter: RolloutStarter,
        metrics: WebhookMetrics | None = None,
        reply_wait: float = REPLY_WAIT,
        first_retry: float = 1.0,
    ) -> None:
        self.routes = routes
        self.secrets = secrets
        self.store = store
        self.starter = starter
        self.metrics = metrics or WebhookMetrics()
        self.reply_wait = reply_wait
        self.metrics.watch(store)
        self.dispatcher = Dispatcher(
            store,
            starter,
            first_retry=first_retry,
            on_started=self._started,
            on_failed=lambda cause: self.metrics.start_failures.labels(cause=cause).inc(),
        )
        if store.backlog().queued:  # pushes accepted before a restart: start them now
            self.dispatcher.kick()

    def close(self) -> None:
        """Stop the dispatcher (what is queued stays queued for the next receiver)."""
        self.dispatcher.stop()

    def count(self, provider: Provider, reply: Reply, headers: Mapping[str, str] | None = None) -> Reply:
        """Count `reply` in the metrics, log it unless it was logged where it happened (accepted,
        started), and return it; `headers`: the delivery's, for its id in the log."""
        self.metrics.deliveries.labels(provider=provider, outcome=reply.outcome).inc()
        if reply.outcome not in ("accepted", "started"):
            _log_reply(provider, headers or {}, reply)
        return reply

    def handle_github(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """A delivery to ``POST /hooks/github``. `headers` are looked up by lowercase name."""
        return self.count("github", self._github(headers, body), headers)

    def handle_gitlab(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """A delivery to ``POST /hooks/gitlab``. `headers` are looked up by lowercase name."""
        return self.count("gitlab", self._gitlab(headers, body), headers)

    def _github(self, headers: Mapping[str, str], body: bytes) -> Reply:
        if self.secrets.github is None:
            return _reply(
                404, "not_configured", error=f"GitHub deliveries are off ({GITHUB_SECRET_ENV} unset)"
            )
        if not verify_github_signature(self.secrets.github, body, headers.get("x-hub-signature-256")):
            return _reply(401, "unauthorized", error="missing or wrong X-Hub-Signature-256")
        event = headers.get("x-github-event", "")
        if event not in ("ping", "push"):
            return _reply(202, "ignored", reason=f"{_event_name(event)} events start nothing")
        payload = _json_object(headers, body)
        if isinstance(payload, Reply):
            return payload
        if event == "ping":
            return _reply(200, "pong")
        delivery_id = _delivery_id(headers.get("x-github-delivery"), "X-GitHub-Delivery")
        if isinstance(delivery_id, Reply):
            return delivery_id
        try:
            push = parse_github_push(payload)
        except PayloadError as exc:
            return _reply(400, "bad_request", error=f"not a push payload: {exc}")
        return self._push(delivery_id, push)

    def _gitlab(self, headers: Mapping[str, str], body: bytes) -> Reply:
        token, signing = self.secrets.gitlab, self.secrets.gitlab_signing
        if token is None and signing is None:
            return _reply(
                404,
                "not_configured",
                error=f"GitLab deliveries are off ({GITLAB_TOKEN_ENV} and {GITLAB_SIGNING_TOKEN_ENV} unset)",
            )
        if signing is not None and (token is None or "webhook-signature" in headers):
            # A signed delivery is judged by its signature alone: a wrong one is never excused
            # by a plain token beside it.
            problem = verify_standard_webhook(signing, headers, body, now=time.time())
            if problem is not None:
                return _reply(401, "unauthorized", error=problem)
        elif token is not None and not verify_gitlab_token(token, headers.get("x-gitlab-token")):
            return _reply(401, "unauthorized", error="missing or wrong X-Gitlab-Token")
        event = headers.get("x-gitlab-event", "")
        if event not in ("Push Hook", "Tag Push Hook"):
            return _reply(202, "ignored", reason=f"{_event_name(event)} events start nothing")
        payload = _json_object(headers, body)
        if isinstance(payload, Reply):
            return payload
        raw_id = headers.get("idempotency-key") or headers.get("x-gitlab-event-uuid")
        delivery_id = _delivery_id(raw_id, "Idempotency-Key or X-Gitlab-Event-UUID")
        if isinstance(delivery_id, Reply):
            return delivery_id
        try:
            push = parse_gitlab_push(payload)
        except PayloadError as exc:
            return _reply(400, "bad_request", error=f"not a push payload: {exc}")
        return self._push(delivery_id, push)

    def _push(self, delivery_id: str, push: PushEvent) -> Reply:
        key, scope = push_key(push), f"{push.provider}:{push.repository}:{push.ref}"
        try:
            decision = route_push(push, self.routes.routes, delivery_id=delivery_id)
        except ImageRenderError as exc:
            return _reply(422, "unprocessable", error=str(exc))
        if isinstance(decision, Ignore):
            return _reply(202, "ignored", reason=decision.reason)
        handled = self.store.lookup(key)
        if handled is not None:
            return _handled(200, "duplicate", handled)
        queued = self.store.queued(key)
        if queued is not None and queued.state == "queued":
            # A redelivery of a push still waiting: stale when a later push came in meanwhile (the
            # dispatcher's own rule, `accepted_after`), whether or not it has got to this one yet.
            later = self.store.later_push(scope, push.after, accepted_after=queued.accepted_at)
            if later is not None:
                return _stale(push.ref, later)
        if queued is None:
            later = None if push.forced else self.store.later_push(scope, push.after)
            if later is not None:
                return _stale(push.ref, later)
            self.store.record_push(key, scope, push.before, push.after)
            planned = tuple(_with_rollout_id(p) for p in decision.rollouts)
            rollouts = tuple((p.route.target, p.request.model_dump_json()) for p in planned)
            label = f"{push.provider} delivery {delivery_id} of push {push.short_sha}"
            if self.store.enqueue(QueuedPush(key, scope, push.after, label, rollouts)):
                logger.info("%s accepted for %s", label, ", ".join(r for r, _ in rollouts))
        else:
            logger.info(
                "%s delivery %s: a redelivery of push %s, accepted already",
                push.provider,
                delivery_id,
                push.short_sha,
            )
        self.dispatcher.kick()
        started = self.dispatcher.settle(key, self.reply_wait)
        if started is not None:
            return _handled(202, "started", started)
        entry = self.store.queued(key)
        if entry is None and (handled := self.store.lookup(key)) is not None:  # started just now
            return _handled(202, "started", handled)
        if entry is not None and entry.state == "superseded":
            return _reply(200, "stale", reason=f"a later push to {push.ref} started or is queued")
        return _reply(
            202,
            "accepted",
            reason="queued: its runs start as soon as the orchestrator takes them",
            rollout_ids=[] if entry is None else list(entry.rollout_ids),
            **({"last_error": entry.last_error} if entry is not None and entry.last_error else {}),
        )

    def _started(self, key: str, count: int) -> None:
        provider = key.split(":", 1)[0]
        self.metrics.rollouts_started.labels(provider=provider).inc(count)


def _log_reply(provider: Provider, headers: Mapping[str, str], reply: Reply) -> None:
    """One line for a delivery's answer: its id (when readable), the status and why; a refusal
    (4xx) is a warning. Never a secret or a header's value other than the id."""
    if provider == "github":
        raw = headers.get("x-github-delivery")
    else:
        raw = headers.get("idempotency-key") or headers.get("x-gitlab-event-uuid")
    delivery = raw if raw is not None and _DELIVERY_ID.fullmatch(raw) else "(no readable id)"
    why = " ".join(str(reply.body.get("error") or reply.body.get("reason") or "").split())[:300]
    logger.log(
        logging.WARNING if reply.status_code >= 400 else logging.INFO,
        "%s delivery %s: %d %s%s",
        provider,
        delivery,
        reply.status_code,
        reply.outcome,
        f": {why}" if why else "",
    )


def _stale(ref: str, later: str) -> Reply:
    return _reply(200, "stale", reason=f"a later push to {ref} ({later[:7]}) started or is queued")


def push_key(push: PushEvent) -> str:
    """The push's identity in the store and in the starter's idempotency keys: a digest of what
    the signature covers (repository, ref, the commits before and after)."""
    content = "\n".join((push.repository, push.ref, push.before, push.after)).encode()
    return f"{push.provider}:push:{hashlib.sha256(content).hexdigest()[:32]}"


def _with_rollout_id(planned: PlannedRollout) -> PlannedRollout:
    """`planned` with its rollout's id set, as the run would derive it from the spec as it is when
    the push is accepted (`canaryflow.plan.rollout_id_for`), so that the replies can name it (the
    queue keeps it for redeliveries and duplicates) and the run uses the same; unchanged for a
    release (its id comes with its run) or a spec that cannot be loaded now (the run reports why)."""
    request = planned.request
    if not isinstance(request, RolloutRequest) or request.rollout_id is not None:
        return planned
    try:
        rollout_id = plan_rollout(request).rollout_id
    except SpecError:
        return planned
    return replace(planned, request=request.model_copy(update={"rollout_id": rollout_id}))


def _handled(status_code: int, outcome: str, handled: Duplicate) -> Reply:
    """The reply for a push that started its rollouts: its flow runs and rollout ids."""
    ids = list(handled.flow_run_ids)
    return _reply(
        status_code,
        outcome,
        flow_run_id=ids[0] if ids else None,
        flow_run_ids=ids,
        rollout_ids=list(handled.rollout_ids),
    )


def _event_name(event: str) -> str:
    return repr(event) if _EVENT_NAME.fullmatch(event) else "unnamed or unreadable"


def _delivery_id(value: str | None, header: str) -> str | Reply:
    if value is None or _DELIVERY_ID.fullmatch(value) is None:
        return _reply(400, "bad_request", error=f"missing or malformed {header} header")
    return value


def _json_object(headers: Mapping[str, str], body: bytes) -> dict[str, Any] | Reply:
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":  # GitHub's default content type
        fields = urllib.parse.parse_qs(body.decode("ascii", errors="replace"), max_num_fields=10)
        if len(fields.get("payload", ())) != 1:
            return _reply(400, "bad_request", error="a form-encoded delivery needs one payload field")
        body = fields["payload"][0].encode("utf-8")
    elif media_type != "application/json":
        return _reply(
            415, "unsupported_media", error="send the payload as application/json or x-www-form-urlencoded"
        )
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return _reply(400, "bad_request", error="the body is not valid JSON")
    if not isinstance(payload, dict):
        return _reply(400, "bad_request", error="the body is not a JSON object")
    return payload
