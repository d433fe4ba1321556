"""`DeliveryHandler` without HTTP: a failed start releases the delivery, whatever the failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.requests import RolloutRequest
from canaryflow.routes import load_routes
from canaryflow.triggers import FlowRunId, InMemoryRolloutStarter
from canaryflow.webhooks.deliveries import DeliveryStore
from canaryflow.webhooks.handling import DeliveryHandler, WebhookSecrets
from canaryflow.webhooks.signatures import Secret
from tests.unit.webhooks import payloads as p


class BrokenStarter(InMemoryRolloutStarter):
    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def start(self, request: RolloutRequest, *, idempotency_key: str) -> FlowRunId:
        if self.broken:
            raise RuntimeError("a bug in the starter")
        return super().start(request, idempotency_key=idempotency_key)


@pytest.fixture
def handler(tmp_path: Path) -> DeliveryHandler:
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(p.routes_yaml(deliveries=str(tmp_path / "d.sqlite3")))
    routes = load_routes(routes_file)
    return DeliveryHandler(
        routes=routes,
        secrets=WebhookSecrets(github=Secret(p.GITHUB_SECRET.encode())),
        store=DeliveryStore(Path(routes.deliveries)),
        starter=BrokenStarter(),
    )


def _headers(body: bytes) -> dict[str, str]:
    return {k.lower(): v for k, v in p.github_headers(body, delivery="d-1").items()}


def test_an_unexpected_failure_releases_the_delivery_for_a_retry(handler: DeliveryHandler) -> None:
    body = p.body_of(p.github_push())
    with pytest.raises(RuntimeError, match="a bug"):
        handler.handle_github(_headers(body), body)
    assert isinstance(handler.starter, BrokenStarter)
    handler.starter.broken = False
    reply = handler.handle_github(_headers(body), body)
    assert (reply.status_code, reply.outcome) == (202, "started")
    assert len(handler.starter.started) == 1


def test_replies_carry_retry_after_only_when_a_retry_can_help(handler: DeliveryHandler) -> None:
    body = p.body_of(p.github_push())
    unauthorized = handler.handle_github({"content-type": "application/json"}, body)
    assert (unauthorized.status_code, dict(unauthorized.headers)) == (401, {})
