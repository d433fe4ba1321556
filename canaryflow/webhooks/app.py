"""The FastAPI app: ``POST /hooks/github``, ``POST /hooks/gitlab``, ``GET /healthz``, ``GET /readyz``.

The receiver's metrics are not here: `canaryflow.webhooks.serve` serves them on a port of their
own, so that the port the senders reach shows nothing else.

``/healthz`` answers 200 ``{"status": "ok", "queued": N}`` while the receiver runs; with pushes
waiting for the orchestrator it adds the oldest one's age and the latest error (an alert can
watch them; the receiver itself is healthy, so it is not a failed liveness probe).

``/readyz`` answers 200 ``{"status": "ready"}`` when a push can be accepted durably now, and 503
``{"status": "unready", "reason": ...}`` when the outbox cannot be written (a write probe within
a second fails: disk full, read-only, locked) or when starts have failed for longer than
`unready_after` seconds (the orchestrator unreachable; 0 turns this off). Behind a Service with
one receiver, keep it 0: accepted pushes wait in the outbox, while an unready receiver would make
the senders' deliveries fail outright.

Thin on purpose: it refuses bodies over the size limit (413, before reading more than the limit),
logs a client that hangs up mid-body in one line (nothing is queued),
hands headers and the raw body to `DeliveryHandler` in a worker thread, and turns its `Reply` into
a JSON response. Everything it needs is passed to `create_app`; nothing is built at import.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from canaryflow.routes import RoutesConfig
from canaryflow.triggers.port import RolloutStarter
from canaryflow.webhooks.deliveries import DeliveryStore
from canaryflow.webhooks.handling import REPLY_WAIT, DeliveryHandler, Reply, WebhookMetrics, WebhookSecrets
from canaryflow.webhooks.pushes import Provider

__all__ = ["MAX_BODY_BYTES", "UNREADY_AFTER", "create_app"]

#: Deliveries with a larger body are refused with 413 (GitHub caps payloads at 25 MB; pushes are small).
MAX_BODY_BYTES = 1024 * 1024
#: Seconds of failed starts (the orchestrator unreachable) after which ``/readyz`` says unready.
UNREADY_AFTER = 600.0

_Handle = Callable[[Mapping[str, str], bytes], Reply]
_log = logging.getLogger(__name__)


def create_app(
    *,
    routes: RoutesConfig,
    secrets: WebhookSecrets,
    store: DeliveryStore,
    starter: RolloutStarter,
    metrics: WebhookMetrics | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    reply_wait: float = REPLY_WAIT,
    first_retry: float = 1.0,
    unready_after: float = UNREADY_AFTER,
) -> FastAPI:
    """The webhook receiver for `routes`, authenticating with `secrets`, queueing and remembering
    pushes in `store` and starting rollouts with `starter` (see `DeliveryHandler` for
    `reply_wait` and `first_retry`, the module's docs for `unready_after`); it counts in
    `metrics`, which the caller serves (`canaryflow.webhooks.serve`)."""
    handler = DeliveryHandler(
        routes=routes,
        secrets=secrets,
        store=store,
        starter=starter,
        metrics=metrics,
        reply_wait=reply_wait,
        first_retry=first_retry,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(handler.close)  # queued pushes stay queued for the next start

    app = FastAPI(
        title="canaryflow webhooks", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.handler = handler  # its dispatcher is what an operator's tooling or a test waits on

    async def deliver(request: Request, provider: Provider, handle: _Handle) -> Response:
        with handler.metrics.reply_seconds.labels(provider=provider).time():
            return await answer(request, provider, handle)

    async def answer(request: Request, provider: Provider, handle: _Handle) -> Response:
        try:
            body = await _read_limited(request, max_body_bytes)
        except ClientDisconnect:  # nobody is left to answer: one line, not a traceback
            client = request.client.host if request.client else "a client"
            _log.info("%s closed the connection before sending the whole body to /hooks/%s", client, provider)
            return Response(status_code=400)
        if body is None:
            too_large = Reply(
                413, {"status": "too_large", "error": f"the body is over {max_body_bytes} bytes"}
            )
            reply = handler.count(provider, too_large, request.headers)
        else:
            reply = await run_in_threadpool(handle, request.headers, body)
        return JSONResponse(reply.body, status_code=reply.status_code, headers=dict(reply.headers))

    @app.post("/hooks/github")
    async def github(request: Request) -> Response:
        return await deliver(request, "github", handler.handle_github)

    @app.post("/hooks/gitlab")
    async def gitlab(request: Request) -> Response:
        return await deliver(request, "gitlab", handler.handle_gitlab)

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        backlog = await run_in_threadpool(store.backlog)
        health: dict[str, object] = {"status": "ok", "queued": backlog.queued}
        if backlog.queued:
            health["oldest_queued_seconds"] = round(backlog.oldest_seconds, 1)
            health["last_error"] = backlog.last_error
        return health

    @app.get("/readyz")
    async def readyz() -> Response:
        try:
            await run_in_threadpool(store.probe_write)
        except (sqlite3.Error, OSError) as exc:
            reason = f"the outbox cannot be written: {type(exc).__name__}: {exc}"
            return JSONResponse({"status": "unready", "reason": reason}, status_code=503)
        since = handler.dispatcher.failing_since
        if unready_after > 0 and since is not None and time.time() - since > unready_after:
            reason = (
                f"rollouts could not be started for {time.time() - since:.0f} s: "
                f"{handler.dispatcher.last_failure}"
            )
            return JSONResponse({"status": "unready", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or `None` as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
