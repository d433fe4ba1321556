"""`serve`: the entry point of ``canaryflow webhook serve`` (builds every dependency, runs uvicorn).

The listening sockets are bound first (a port in use is one error, and nothing is created), then
the routes file is loaded and every route's rollout spec is loaded and validated (the preflight of
the webhook path: a push never starts a rollout whose spec is missing or invalid; each push's image
is checked when it is rendered), the secrets read from the environment, the Prefect API sought (the
command line's: the one every command uses), the delivery store opened at the file the routes
name (relative to the working directory) and the Prefect starter built for the routes'
deployment; then the app is served (on the sockets bound first) until interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from canaryflow.errors import InputError, SpecError
from canaryflow.exporter import MetricsServer, address_of, listen
from canaryflow.routes import RoutesConfig, load_routes
from canaryflow.spec import load_release, load_spec
from canaryflow.triggers.port import RolloutStarter
from canaryflow.webhooks.app import UNREADY_AFTER, create_app
from canaryflow.webhooks.deliveries import DeliveryStore
from canaryflow.webhooks.handling import WebhookMetrics, WebhookSecrets
from canaryflow.webhooks.signatures import GITHUB_SECRET_ENV, GITLAB_SIGNING_TOKEN_ENV, GITLAB_TOKEN_ENV

__all__ = ["METRICS_PORT", "build_app", "check_route_specs", "read_secrets", "serve"]

_log = logging.getLogger(__name__)


def build_app(
    config: Path,
    *,
    environ: Mapping[str, str] | None = None,
    starter: RolloutStarter | None = None,
    unready_after: float = UNREADY_AFTER,
    metrics: WebhookMetrics | None = None,
    routes: RoutesConfig | None = None,
) -> FastAPI:
    """The receiver for the routes file `config` (`routes`: as loaded and checked from it already);
    `starter` defaults to the Prefect starter (`unready_after`: see `canaryflow.webhooks.app`;
    `metrics`: where it counts).

    Raises
    ------
    SpecError
        When the routes file is invalid, a secret cannot be read, or no secret is set at all.
    """
    if routes is None:
        routes = load_routes(config)
        check_route_specs(routes, config)
    secrets = read_secrets(environ)
    store = DeliveryStore(Path(routes.deliveries))
    if starter is None:
        from canaryflow.triggers.prefect_runs import PrefectRolloutStarter

        starter = PrefectRolloutStarter(routes.deployment, release_deployment=routes.release_deployment)
    return create_app(
        routes=routes,
        secrets=secrets,
        store=store,
        starter=starter,
        unready_after=unready_after,
        metrics=metrics,
    )


def read_secrets(environ: Mapping[str, str] | None = None) -> WebhookSecrets:
    """The webhook secrets of the environment; `SpecError` when one cannot be read or none is set."""
    secrets = WebhookSecrets.from_environ(environ)
    if secrets.github is None and secrets.gitlab is None and secrets.gitlab_signing is None:
        raise SpecError(
            f"no webhook secret: set {GITHUB_SECRET_ENV}, {GITLAB_TOKEN_ENV} or "
            f"{GITLAB_SIGNING_TOKEN_ENV} (or their _FILE)"
        )
    return secrets


def check_route_specs(routes: RoutesConfig, config: Path) -> None:
    """Every route's rollout or release spec exists and is valid (SpecError naming the route and
    the problem)."""
    for index, route in enumerate(routes.routes):
        try:
            if route.release is not None:
                load_release(route.release)
            else:
                load_spec(route.target)
        except SpecError as exc:
            does = f"releases {route.release}" if route.release is not None else f"rolls out {route.rollout}"
            raise SpecError(
                f"{config}: routes[{index}] ({route.repository}) {does}: {exc.summary()}",
                source=str(config),
            ) from exc


#: Connections served at once; more are answered 503 by uvicorn (each may hold a body of up to
#: `canaryflow.webhooks.app.MAX_BODY_BYTES` in memory).
MAX_CONNECTIONS = 64
#: Where `serve` exposes the receiver's metrics by default (a port apart from the hooks).
METRICS_PORT = 9466
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_SECONDS = 5


def serve(
    config: Path,
    *,
    host: str,
    port: int,
    unready_after: float = UNREADY_AFTER,
    metrics_port: int = METRICS_PORT,
    prefect: Callable[[], str] | None = None,
) -> None:
    """Serve the receiver for the routes file `config` on `host`:`port` until interrupted, and its
    metrics (`WebhookMetrics`) on `host`:`metrics_port` (0: not at all). `prefect`, called once
    the ports are bound and the routes and their specs checked, points this process's Prefect at
    its API and says where (logged); its errors stop the receiver before anything is created.

    Both ports are bound first: one in use (or not bindable) is an `InputError` naming the address
    and the option, before the routes are read, the delivery store is created or anything serves.
    uvicorn then serves on the sockets bound here (one per address of `host`), so nothing can take
    the port in between.
    Accepted, started and failed pushes are logged at INFO and WARNING on standard error (never a
    secret or a header), next to uvicorn's access log; so is every other answer to a delivery
    (refused, ignored, duplicate, stale: its id, the status and why).
    """
    if metrics_port == port:
        raise InputError(
            f"--metrics-port {metrics_port} is the --port of the hooks: choose another (0: no metrics)"
        )
    hooks = listen(host, port, serving="the hooks", option="--port")
    metrics_server: MetricsServer | None = None
    try:
        metrics = WebhookMetrics()
        if metrics_port:
            (bound,) = listen(
                host,
                metrics_port,
                serving="the metrics",
                option="--metrics-port (0: no metrics)",
                every=False,
            )
            metrics_server = MetricsServer(bound, metrics.registry)
        routes = load_routes(config)  # the input first: a mistake there is said before Prefect is sought
        check_route_specs(routes, config)
        read_secrets()
        where = prefect() if prefect is not None else None
        app = build_app(config, unready_after=unready_after, metrics=metrics, routes=routes)
        _log_to_stderr()
        if where is not None:
            _log.info("rollouts start through the Prefect API at %s", where)
        if metrics_server is not None:
            metrics_server.start()
            _log.info("metrics on http://%s/metrics", address_of(host, metrics_server.port))
        server = _BoundServer(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="info",
                limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
            )
        )
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
            server.run(sockets=hooks)
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        for sock in hooks:
            sock.close()


class _BoundServer(uvicorn.Server):
    """uvicorn's server on sockets bound already, which says where it listens once it does (uvicorn
    says so itself only for the sockets it binds)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        for sock in (sockets or []) if self.started else []:
            host, port = sock.getsockname()[:2]
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s (Press CTRL+C to quit)", address_of(host, port)
            )


def _log_to_stderr() -> None:
    logger = logging.getLogger("canaryflow.webhooks")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:%(padding)s%(message)s"))
        handler.addFilter(_pad)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _pad(record: logging.LogRecord) -> bool:
    record.padding = " " * max(1, 10 - len(record.levelname) - 1)  # aligned with uvicorn's lines
    return True
