"""Fixtures of the webhook integration tests: receivers served by uvicorn on 127.0.0.1.

`serving(app)` runs the app on a socket bound here (a free loopback port), so the address is
known before the server starts and a client's first connection waits in the listen backlog
instead of racing the start-up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from canaryflow.routes import load_routes
from canaryflow.triggers import InMemoryRolloutStarter, RolloutStarter
from canaryflow.webhooks.app import create_app
from canaryflow.webhooks.deliveries import DeliveryStore
from canaryflow.webhooks.handling import WebhookSecrets
from canaryflow.webhooks.signatures import Secret
from tests.unit.webhooks import payloads as p

AppFactory = Callable[..., FastAPI]


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields its base URL."""
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (else 40 ms delayed-ACK stalls).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        app.state.handler.close()  # lifespan is off: stop the dispatcher here
    assert not thread.is_alive(), "uvicorn did not stop"


def unused_loopback_url() -> str:
    """The URL of a loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


@pytest.fixture
def starter() -> InMemoryRolloutStarter:
    return InMemoryRolloutStarter()


@pytest.fixture
def make_app(tmp_path: Path, starter: InMemoryRolloutStarter) -> AppFactory:
    """Builds receivers sharing one routes file and one delivery database under `tmp_path`."""

    def make(
        *,
        starter: RolloutStarter = starter,
        secrets: WebhookSecrets | None = None,
        max_body_bytes: int = 1024 * 1024,
        deployment: str = "rollout/rollout",
        reply_wait: float = 2.0,
        first_retry: float = 0.05,
        unready_after: float = 600.0,
        routes_yaml: str | None = None,
    ) -> FastAPI:
        routes_file = tmp_path / "routes.yaml"
        deliveries = str(tmp_path / "deliveries.sqlite3")
        if routes_yaml is not None:  # the caller's routes, on the shared delivery database
            routes_file.write_text(f"deliveries: {deliveries}\n{routes_yaml}")
        else:
            routes_file.write_text(p.routes_yaml(deployment=deployment, deliveries=deliveries))
        routes = load_routes(routes_file)
        if secrets is None:
            secrets = WebhookSecrets(Secret(p.GITHUB_SECRET.encode()), Secret(p.GITLAB_TOKEN.encode()))
        return create_app(
            routes=routes,
            secrets=secrets,
            store=DeliveryStore(Path(routes.deliveries)),
            starter=starter,
            max_body_bytes=max_body_bytes,
            reply_wait=reply_wait,
            first_retry=first_retry,
            unready_after=unready_after,
        )

    return make
