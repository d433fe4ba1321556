"""`PrefectRolloutStarter`: start a rollout (a release) as a flow run of the Prefect rollout
(release) deployment.

The flow run is created with `prefect.deployments.run_deployment` (``timeout=0``: return as soon as
the run is scheduled), the request as the flow's one parameter ``request`` and the caller's
idempotency key, so a retried delivery finds the flow run of the first one instead of creating a
second. Library errors are translated here: an unreachable API, a server error or a deployment
that does not exist (yet) become `TriggerUnavailableError`, so the webhook's dispatcher keeps the
push queued and starts it once Prefect is back or the deployment is applied.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import httpx
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import temporary_settings

from canaryflow.errors import TriggerUnavailableError
from canaryflow.requests import ReleaseRequest, RolloutRequest
from canaryflow.triggers.port import FlowRunId

__all__ = ["PrefectRolloutStarter", "prefect_settings"]


class PrefectRolloutStarter:
    """Creates flow runs of `deployment` (``"<flow name>/<deployment name>"``) for rollouts, of
    `release_deployment` for releases.

    `api_url` overrides the Prefect API this starter talks to (default: Prefect's own settings,
    i.e. ``PREFECT_API_URL`` or the active profile); `request_timeout` bounds each API request in
    seconds, so a hung server becomes a failed attempt that the webhook's dispatcher retries.
    """

    def __init__(
        self,
        deployment: str,
        *,
        release_deployment: str = "release/release",
        api_url: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.deployment = deployment
        self.release_deployment = release_deployment
        self.api_url = api_url
        self.request_timeout = request_timeout

    def start(self, request: RolloutRequest | ReleaseRequest, *, idempotency_key: str) -> FlowRunId:
        """Schedule a flow run for `request`; see `RolloutStarter.start`.

        Blocking: call it from a worker thread, never on an event loop.
        """
        deployment = self.release_deployment if isinstance(request, ReleaseRequest) else self.deployment
        try:
            with self._settings():
                flow_run = run_deployment(
                    name=deployment,
                    parameters={"request": request.model_dump(mode="json", exclude_none=True)},
                    timeout=0,
                    idempotency_key=idempotency_key,
                    as_subflow=False,
                )
        except ObjectNotFound as exc:
            raise TriggerUnavailableError(f"Prefect deployment {deployment!r} does not exist") from exc
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500:
                raise
            raise TriggerUnavailableError(
                f"the Prefect API answered {exc.response.status_code} starting {deployment!r}"
            ) from exc
        except httpx.TransportError as exc:
            raise TriggerUnavailableError(
                f"the Prefect API cannot be reached to start {deployment!r}: {type(exc).__name__}"
            ) from exc
        if not isinstance(flow_run, FlowRun):  # called on an event loop: Prefect returned a coroutine
            if inspect.iscoroutine(flow_run):
                flow_run.close()
            raise TypeError("PrefectRolloutStarter.start blocks; call it from a worker thread")
        return FlowRunId(str(flow_run.id))

    def _settings(self) -> contextlib.AbstractContextManager[None]:
        return prefect_settings(self.api_url, self.request_timeout)


@contextlib.contextmanager
def prefect_settings(api_url: str | None, request_timeout: float) -> Iterator[None]:
    """Prefect's settings for the calls inside: the API at `api_url` (None: Prefect's own
    settings), each request bounded by `request_timeout` seconds."""
    updates: dict[str, Any] = {"api.request_timeout": request_timeout}
    if api_url is not None:
        updates["api.url"] = api_url
    with temporary_settings(updates=updates):
        yield
