"""`DeliveryHandler` without HTTP: a failed start keeps the push queued, whatever the failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.requests import RolloutRequest
from canaryflow.routes import load_routes
from canaryflow.triggers import FlowRunId, InMemoryRolloutStarter
from canaryflow.webhooks.deliveries import DeliveryStore
from canaryflow.webhooks.handling import DeliveryHandler, WebhookSecrets, push_key
from canaryflow.webhooks.pushes import parse_github_push
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
        first_retry=0.05,
    )


def _headers(body: bytes) -> dict[str, str]:
    return {k.lower(): v for k, v in p.github_headers(body, delivery="d-1").items()}


def test_an_unexpected_starter_failure_keeps_the_push_queued_until_it_starts(
    handler: DeliveryHandler,
) -> None:
    body = p.body_of(p.github_push())
    reply = handler.handle_github(_headers(body), body)
    assert (reply.status_code, reply.outcome) == (202, "accepted")
    assert reply.body["last_error"] == "RuntimeError: a bug in the starter"
    assert isinstance(handler.starter, BrokenStarter)
    assert handler.starter.started == []
    handler.starter.broken = False
    started = handler.dispatcher.settle(push_key(parse_github_push(p.github_push())), 30, retries=True)
    assert started is not None
    assert len(handler.starter.started) == 1
    assert list(started.flow_run_ids) == [handler.starter.started[0].flow_run_id]
    again = handler.handle_github(_headers(body), body)
    assert (again.status_code, again.outcome) == (200, "duplicate")


def test_refusals_change_nothing_and_carry_no_retry_after(handler: DeliveryHandler) -> None:
    body = p.body_of(p.github_push())
    unauthorized = handler.handle_github({"content-type": "application/json"}, body)
    assert (unauthorized.status_code, dict(unauthorized.headers)) == (401, {})
    assert handler.store.backlog().queued == 0
