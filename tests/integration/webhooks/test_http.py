"""The receiver over real HTTP (uvicorn on loopback) with an in-memory starter: each answer, each effect."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import start_http_server

from canaryflow.plan import plan_rollout
from canaryflow.requests import RolloutRequest
from canaryflow.triggers import InMemoryRolloutStarter
from canaryflow.webhooks.handling import WebhookSecrets, push_key
from canaryflow.webhooks.pushes import parse_github_push, parse_gitlab_push
from canaryflow.webhooks.signatures import Secret, load_signing_token
from tests.integration.webhooks.conftest import AppFactory, serving
from tests.unit.webhooks import payloads as p


@contextlib.contextmanager
def _client(app: Any) -> Iterator[httpx.Client]:
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[httpx.Client]:
    with _client(make_app()) as client:
        yield client


def _github(client: httpx.Client, payload: dict[str, Any] | bytes, **headers: Any) -> Any:
    body = payload if isinstance(payload, bytes) else p.body_of(payload)
    return client.post("/hooks/github", content=body, headers=p.github_headers(body, **headers))


def _gitlab(client: httpx.Client, payload: dict[str, Any], **headers: Any) -> Any:
    return client.post("/hooks/gitlab", content=p.body_of(payload), headers=p.gitlab_headers(**headers))


def test_a_signed_push_starts_the_rollout(client: httpx.Client, starter: InMemoryRolloutStarter) -> None:
    response = _github(client, p.github_push(), delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert response.status_code == 202
    (started,) = starter.started
    # the reply names the rollout as `canaryflow status` does, and the run is given that id
    pushed = RolloutRequest(spec=started.request.spec, image=started.request.image)
    rollout_id = plan_rollout(pushed).rollout_id
    assert response.json() == {
        "status": "started",
        "flow_run_id": started.flow_run_id,
        "flow_run_ids": [started.flow_run_id],
        "rollout_ids": [rollout_id],
    }
    assert started.request.spec == "config/rollouts/web.yaml"
    assert started.request.image == f"registry.example.com/hello/world:{p.AFTER}"
    assert started.request.rollout_id == rollout_id
    # keyed by the push (what the signature covers), not by the delivery id (which it does not)
    push = parse_github_push(p.github_push())
    assert started.idempotency_key == f"{push_key(push)}:config/rollouts/web.yaml"


def test_ping_is_answered_and_starts_nothing(client: httpx.Client, starter: InMemoryRolloutStarter) -> None:
    response = _github(client, p.github_ping(), event="ping")
    assert (response.status_code, response.json()) == (200, {"status": "pong"})
    assert starter.started == []


def test_other_events_are_ignored_with_the_reason(
    client: httpx.Client, starter: InMemoryRolloutStarter
) -> None:
    response = _github(client, {"action": "opened"}, event="issues")
    assert response.status_code == 202
    assert response.json() == {"status": "ignored", "reason": "'issues' events start nothing"}
    assert starter.started == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hub-Signature-256": None},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "sha1=0123"},
    ],
)
def test_missing_or_wrong_signatures_are_refused(
    client: httpx.Client, starter: InMemoryRolloutStarter, headers: dict[str, str | None]
) -> None:
    body = p.body_of(p.github_push())
    sent = {k: v for k, v in {**p.github_headers(body), **headers}.items() if v is not None}
    response = client.post("/hooks/github", content=body, headers=sent)
    assert response.status_code == 401
    assert response.json()["status"] == "unauthorized"
    assert starter.started == []


def test_a_signature_made_with_another_secret_is_refused(client: httpx.Client) -> None:
    assert _github(client, p.github_push(), secret="not the secret").status_code == 401


def test_a_signature_of_another_body_is_refused(client: httpx.Client) -> None:
    signed = p.body_of(p.github_push())
    tampered = p.body_of(p.github_push(after="1" * 40))
    response = client.post("/hooks/github", content=tampered, headers=p.github_headers(signed))
    assert response.status_code == 401


def test_bodies_over_the_limit_are_refused_declared_or_streamed(
    make_app: AppFactory, starter: InMemoryRolloutStarter
) -> None:
    with _client(make_app(max_body_bytes=1000)) as client:
        big = p.body_of(p.github_push(commits=[p.commit(p.AFTER, added=tuple(f"f{i}" for i in range(200)))]))
        assert len(big) > 1000
        declared = client.post("/hooks/github", content=big, headers=p.github_headers(big))
        assert declared.status_code == 413
        streamed = client.post(
            "/hooks/github", content=iter([big[:600], big[600:]]), headers=p.github_headers(big)
        )
        assert streamed.status_code == 413
        assert streamed.json()["status"] == "too_large"
    assert starter.started == []


def test_the_default_limit_is_one_mebibyte(client: httpx.Client) -> None:
    body = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    assert _github(client, body).status_code == 413


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"push"', b"\xff\xfe", b"[" * 100_000])
def test_malformed_json_is_a_bad_request(client: httpx.Client, body: bytes) -> None:
    response = _github(client, body)
    assert response.status_code == 400
    assert response.json()["status"] == "bad_request"


def test_a_push_payload_missing_fields_is_a_bad_request(client: httpx.Client) -> None:
    response = _github(client, {"ref": "refs/heads/master"})
    assert response.status_code == 400
    assert "not a push payload" in response.json()["error"]


def test_a_form_encoded_delivery_starts_the_rollout(
    client: httpx.Client, starter: InMemoryRolloutStarter
) -> None:
    # GitHub's default content type: payload=<the JSON, URL-encoded>, signed as sent.
    body = urllib.parse.urlencode({"payload": p.body_of(p.github_push()).decode()}).encode()
    headers = {**p.github_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/hooks/github", content=body, headers=headers)
    assert (response.status_code, response.json()["status"]) == (202, "started")
    assert [s.request.image for s in starter.started] == [f"registry.example.com/hello/world:{p.AFTER}"]
    empty = b"payload=%7B%7D&payload=%7B%7D"
    headers = {**p.github_headers(empty), "Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/hooks/github", content=empty, headers=headers).status_code == 400
    xml = b"<push/>"
    headers = {**p.github_headers(xml), "Content-Type": "application/xml"}
    assert client.post("/hooks/github", content=xml, headers=headers).status_code == 415


@pytest.mark.parametrize("delivery", ["", "has space", "x" * 200, "semi;colon"])
def test_missing_or_odd_delivery_ids_are_bad_requests(client: httpx.Client, delivery: str) -> None:
    body = p.body_of(p.github_push())
    headers = {**p.github_headers(body), "X-GitHub-Delivery": delivery}
    assert client.post("/hooks/github", content=body, headers=headers).status_code == 400


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (p.github_push(repository="Codertocat/Unknown"), "no route for this repository"),
        (p.github_push(ref="refs/heads/develop"), "no route for this branch"),
        (p.github_push(ref="refs/tags/release-1"), "no route for this tag"),
        (p.github_push(after=p.NULL_SHA, deleted=True), "deletes the branch"),
        (p.github_push(ref="refs/tags/v1.0", after=p.NULL_SHA, deleted=True), "deletes the tag"),
    ],
)
def test_pushes_without_a_route_are_ignored(
    client: httpx.Client, starter: InMemoryRolloutStarter, payload: dict[str, Any], reason: str
) -> None:
    response = _github(client, payload)
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert reason in response.json()["reason"]
    assert starter.started == []


def test_tag_and_forced_pushes_start_rollouts(client: httpx.Client, starter: InMemoryRolloutStarter) -> None:
    assert _github(client, p.github_push(ref="refs/tags/v1.4.0")).status_code == 202
    assert _github(client, p.github_push(forced=True, after="2" * 40)).status_code == 202
    assert [s.request.image for s in starter.started] == [
        "registry.example.com/hello/world:v1.4.0",
        f"registry.example.com/hello/world:{'2' * 40}",
    ]


def test_the_same_delivery_twice_starts_one_rollout_even_after_a_restart(
    make_app: AppFactory, starter: InMemoryRolloutStarter
) -> None:
    body = p.body_of(p.github_push())
    headers = p.github_headers(body, delivery="same-delivery")
    with _client(make_app()) as client:
        first = client.post("/hooks/github", content=body, headers=headers)
        second = client.post("/hooks/github", content=body, headers=headers)
    with _client(make_app(starter=InMemoryRolloutStarter())) as restarted:
        third = restarted.post("/hooks/github", content=body, headers=headers)
    assert first.status_code == 202
    flow_run_id = first.json()["flow_run_id"]
    for again in (second, third):
        assert again.status_code == 200
        assert again.json() == {
            "status": "duplicate",
            "flow_run_id": flow_run_id,
            "flow_run_ids": [flow_run_id],
            "rollout_ids": first.json()["rollout_ids"],
        }
    assert len(starter.started) == 1


def test_a_replayed_body_under_new_delivery_ids_starts_nothing(
    client: httpx.Client, starter: InMemoryRolloutStarter
) -> None:
    # The signature covers the body, not X-GitHub-Delivery: whoever captured one signed push
    # could resend it under fresh delivery ids. The push is the same, so it is a duplicate.
    body = p.body_of(p.github_push())
    first = client.post("/hooks/github", content=body, headers=p.github_headers(body, delivery="original"))
    assert first.status_code == 202
    for n in range(5):
        replay = client.post(
            "/hooks/github", content=body, headers=p.github_headers(body, delivery=f"replay-{n}")
        )
        assert replay.status_code == 200
        assert replay.json()["status"] == "duplicate"
        assert replay.json()["flow_run_id"] == first.json()["flow_run_id"]
    assert len(starter.started) == 1


def test_an_older_push_never_starts_after_a_newer_one(
    make_app: AppFactory, starter: InMemoryRolloutStarter
) -> None:
    # Pushes A then B (B.before == A.after) arrive while the orchestrator is down: when it is
    # back, only B starts. Then A is delivered again, and A's predecessor for the first time (its
    # delivery was lost on the way): both are older than B, so neither starts.
    a_sha, b_sha, c_sha = "a" * 40, "b" * 40, "c" * 40
    push_a = p.body_of(p.github_push(before="9" * 40, after=a_sha))
    push_b = p.body_of(p.github_push(before=a_sha, after=b_sha))
    app = make_app()
    with _client(app) as client:
        starter.available = False
        for body in (push_a, push_b):
            reply = client.post("/hooks/github", content=body, headers=p.github_headers(body))
            assert (reply.status_code, reply.json()["status"]) == (202, "accepted")
        starter.available = True
        _settled(app, push_b)
        # A's retry may come due after B's: wait until the dispatcher has superseded it too
        key_a = push_key(parse_github_push(json.loads(push_a)))
        assert app.state.handler.dispatcher.settle(key_a, 30, retries=True) is None
        assert app.state.handler.store.queued(key_a).state == "superseded"
        again = client.post("/hooks/github", content=push_a, headers=p.github_headers(push_a))
        assert (again.status_code, again.json()["status"]) == (200, "stale")
        unseen = p.body_of(p.github_push(before="8" * 40, after="9" * 40))
        stale = client.post("/hooks/github", content=unseen, headers=p.github_headers(unseen))
        assert stale.json() == {
            "status": "stale",
            "reason": f"a later push to refs/heads/master ({b_sha[:7]}) started or is queued",
        }
        assert [s.request.image for s in starter.started] == [f"registry.example.com/hello/world:{b_sha}"]
        # a later push starts; a forced push is new whatever came before it (a force-push back to an
        # older commit is how people undo)
        push_c = p.body_of(p.github_push(before=b_sha, after=c_sha))
        assert (
            client.post("/hooks/github", content=push_c, headers=p.github_headers(push_c)).status_code == 202
        )
        forced = p.body_of(p.github_push(before=c_sha, after=a_sha, forced=True))
        assert (
            client.post("/hooks/github", content=forced, headers=p.github_headers(forced)).status_code == 202
        )
        assert len(starter.started) == 3


def test_an_invalid_rendered_image_is_unprocessable_and_not_recorded(
    client: httpx.Client, starter: InMemoryRolloutStarter
) -> None:
    payload = p.github_push(ref="refs/heads/feature/login")
    response = _github(client, payload, delivery="d-422")
    assert response.status_code == 422
    assert "not a valid OCI reference" in response.json()["error"]
    assert starter.started == []
    again = _github(client, payload, delivery="d-422")
    assert again.status_code == 422


def test_a_push_accepted_while_the_orchestrator_is_down_starts_when_it_is_back(
    make_app: AppFactory, starter: InMemoryRolloutStarter
) -> None:
    # No 503, no redelivery needed: the push is queued durably and started once the orchestrator
    # answers, by this receiver or by the next one on the same database.
    starter.available = False
    body = p.body_of(p.github_push())
    with _client(make_app()) as client:
        down = client.post("/hooks/github", content=body, headers=p.github_headers(body))
        assert down.status_code == 202
        assert down.json()["status"] == "accepted"
        assert "marked unavailable" in down.json()["last_error"]
        health = client.get("/healthz").json()
        assert (health["status"], health["queued"]) == ("ok", 1)
        assert "marked unavailable" in health["last_error"]
    assert starter.started == []
    starter.available = True
    restarted = make_app()  # the queue survived; the new receiver starts it without a delivery
    with _client(restarted) as client:
        (flow_run_id,) = _settled(restarted, body)
        assert client.get("/healthz").json() == {"status": "ok", "queued": 0}
    (started,) = starter.started
    assert started.flow_run_id == flow_run_id
    assert (
        started.idempotency_key == f"{push_key(parse_github_push(p.github_push()))}:config/rollouts/web.yaml"
    )


def test_replies_name_the_rollout_ids_the_push_was_accepted_with_even_after_its_spec_changed(
    make_app: AppFactory, starter: InMemoryRolloutStarter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ids are derived from the spec once, when the push is accepted: a redelivery while it
    # waits, and a duplicate after it started, name the ids of the run it starts.
    spec = tmp_path / "web.yaml"
    spec.write_text(Path("config/rollouts/web.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    routes = f"""\
deployment: rollout/rollout
routes:
  - repository: {p.REPOSITORY}
    branch: master
    rollout: web.yaml
    image: registry.example.com/hello/world:{{sha}}
"""
    starter.available = False
    body = p.body_of(p.github_push())
    with _client(make_app(routes_yaml=routes)) as client:
        down = client.post("/hooks/github", content=body, headers=p.github_headers(body))
        assert down.json()["status"] == "accepted"
        (rollout_id,) = down.json()["rollout_ids"]
        spec.write_text(spec.read_text().replace("deployment: web,", "deployment: shop-web,"))
        again = client.post("/hooks/github", content=body, headers=p.github_headers(body, delivery="again"))
        assert (again.json()["status"], again.json()["rollout_ids"]) == ("accepted", [rollout_id])
    starter.available = True
    restarted = make_app(routes_yaml=routes)
    with _client(restarted) as client:
        _settled(restarted, body)
        late = p.github_headers(body, delivery="late")
        duplicate = client.post("/hooks/github", content=body, headers=late)
    assert (duplicate.json()["status"], duplicate.json()["rollout_ids"]) == ("duplicate", [rollout_id])
    (started,) = starter.started
    assert started.request.rollout_id == rollout_id


def test_readyz_fails_while_the_outbox_cannot_be_written(make_app: AppFactory, tmp_path: Any) -> None:
    app = make_app()
    with _client(app) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        holder = sqlite3.connect(tmp_path / "deliveries.sqlite3", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database (as a full disk would fail it)
        try:
            locked = client.get("/readyz")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert locked.status_code == 503
        assert locked.json()["reason"].startswith("the outbox cannot be written: OperationalError")
        assert client.get("/readyz").status_code == 200
        assert client.get("/healthz").status_code == 200  # alive all along


@pytest.mark.parametrize("unready_after", [0.3, 0.0])
def test_readyz_fails_once_starts_have_failed_for_longer_than_unready_after(
    make_app: AppFactory, starter: InMemoryRolloutStarter, unready_after: float
) -> None:
    starter.available = False
    body = p.body_of(p.github_push())
    app = make_app(unready_after=unready_after)
    with _client(app) as client:
        assert client.post("/hooks/github", content=body, headers=p.github_headers(body)).status_code == 202
        failing = app.state.handler.dispatcher
        assert failing.failing_since is not None  # the first start failed within the reply wait
        if unready_after == 0.0:  # off: a single receiver keeps accepting into its outbox
            failing.settle(push_key(parse_github_push(p.github_push())), 1.0, retries=True)
            assert client.get("/readyz").json() == {"status": "ready"}
            return
        deadline = time.monotonic() + 10
        while (ready := client.get("/readyz")).status_code == 200:
            assert time.monotonic() < deadline, "still ready after 10 s of failed starts"
            failing.settle(push_key(parse_github_push(p.github_push())), 0.1, retries=True)
        assert "could not be started for" in ready.json()["reason"]
        assert "marked unavailable" in ready.json()["reason"]
        starter.available = True
        _settled(app, body)
        assert client.get("/readyz").json() == {"status": "ready"}


def _settled(app: Any, body: bytes) -> tuple[str, ...]:
    """Wait for the receiver's dispatcher to start the queued push `body`; its flow run ids."""
    key = push_key(parse_github_push(json.loads(body)))
    started = app.state.handler.dispatcher.settle(key, 30, retries=True)
    assert started is not None, f"push {key} did not start"
    return tuple(started.flow_run_ids)


def test_a_slow_orchestrator_does_not_hold_the_reply(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="canaryflow.webhooks")
    gated = GatedStarter()
    body = p.body_of(p.github_push())
    app = make_app(starter=gated, reply_wait=0.2)
    with _client(app) as client:
        reply = client.post("/hooks/github", content=body, headers=p.github_headers(body))
        # answered while the orchestrator is still inside the start
        assert gated.entered.is_set()
        assert not gated.release.is_set()
        assert (reply.status_code, reply.json()["status"]) == (202, "accepted")
        again = client.post("/hooks/github", content=body, headers=p.github_headers(body, delivery="d-re"))
        assert again.json()["status"] == "accepted"  # still waiting: the same push, logged as such
        said = [r.getMessage() for r in caplog.records]
        assert f"github delivery d-re: a redelivery of push {p.AFTER[:7]}, accepted already" in said
        refused = client.post("/hooks/github", content=body, headers=p.github_headers(body, secret="x"))
        assert refused.status_code == 401
        gated.release.set()
        assert len(_settled(app, body)) == 1
    assert len(gated.started) == 1


def test_gitlab_push_hook_starts_the_rollout(client: httpx.Client, starter: InMemoryRolloutStarter) -> None:
    response = _gitlab(client, p.gitlab_push(), delivery="gl-1")
    assert response.status_code == 202
    (started,) = starter.started
    assert started.request.image == "registry.example.com/mike/diaspora:da15608"
    assert (
        started.idempotency_key
        == f"{push_key(parse_gitlab_push(p.gitlab_push()))}:config/rollouts/diaspora.yaml"
    )
    assert _gitlab(client, p.gitlab_push(), delivery="gl-1").json()["status"] == "duplicate"
    assert _gitlab(client, p.gitlab_push(), delivery="gl-2").json()["status"] == "duplicate"


def test_gitlab_refusals_and_ignored_events(client: httpx.Client, starter: InMemoryRolloutStarter) -> None:
    assert _gitlab(client, p.gitlab_push(), token="wrong").status_code == 401
    no_token = {k: v for k, v in p.gitlab_headers().items() if k != "X-Gitlab-Token"}
    assert (
        client.post("/hooks/gitlab", content=p.body_of(p.gitlab_push()), headers=no_token).status_code == 401
    )
    tag = _gitlab(client, p.gitlab_push(kind="tag_push", ref="refs/tags/v1"), event="Tag Push Hook")
    assert (tag.status_code, tag.json()["status"]) == (202, "ignored")
    deleted = _gitlab(client, p.gitlab_push(after=p.NULL_SHA))
    assert (deleted.status_code, deleted.json()["status"]) == (202, "ignored")
    merge = _gitlab(client, {"object_kind": "merge_request"}, event="Merge Request Hook")
    assert merge.json() == {"status": "ignored", "reason": "'Merge Request Hook' events start nothing"}
    no_id = {
        k: v for k, v in p.gitlab_headers().items() if k not in ("Idempotency-Key", "X-Gitlab-Event-UUID")
    }
    assert client.post("/hooks/gitlab", content=p.body_of(p.gitlab_push()), headers=no_id).status_code == 400
    assert starter.started == []


def test_gitlab_signed_deliveries_are_verified_by_signature_and_timestamp(
    make_app: AppFactory, starter: InMemoryRolloutStarter
) -> None:
    key = load_signing_token("T", {"T": p.GITLAB_SIGNING_TOKEN})
    body = p.body_of(p.gitlab_push())
    stale = int(time.time()) - 600  # a captured delivery replayed ten minutes later

    def post(client: httpx.Client, headers: dict[str, str], content: bytes = body) -> httpx.Response:
        return client.post("/hooks/gitlab", content=content, headers=headers)

    with _client(make_app(secrets=WebhookSecrets(gitlab_signing=key))) as client:
        refusals = {
            "wrong key": post(client, p.gitlab_signed_headers(body, key=b"k" * 32)),
            "stale": post(client, p.gitlab_signed_headers(body, timestamp=stale)),
            "body changed": post(client, p.gitlab_signed_headers(body), body.replace(b"master", b"main")),
            "plain token only": post(client, p.gitlab_headers()),
        }
        assert {name: r.status_code for name, r in refusals.items()} == dict.fromkeys(refusals, 401)
        assert "not within 300 s" in refusals["stale"].json()["error"]
        assert starter.started == []
        good = post(client, p.gitlab_signed_headers(body))
    assert good.status_code == 202
    assert len(starter.started) == 1


def test_a_wrong_signature_is_not_excused_by_a_right_plain_token(
    make_app: AppFactory, starter: InMemoryRolloutStarter
) -> None:
    key = load_signing_token("T", {"T": p.GITLAB_SIGNING_TOKEN})
    secrets = WebhookSecrets(gitlab=Secret(p.GITLAB_TOKEN.encode()), gitlab_signing=key)
    body = p.body_of(p.gitlab_push())
    with _client(make_app(secrets=secrets)) as client:
        headers = {**p.gitlab_signed_headers(body, key=b"k" * 32), "X-Gitlab-Token": p.GITLAB_TOKEN}
        assert client.post("/hooks/gitlab", content=body, headers=headers).status_code == 401
        unsigned = client.post("/hooks/gitlab", content=body, headers=p.gitlab_headers())  # token alone
    assert unsigned.status_code == 202
    assert len(starter.started) == 1


def test_a_provider_without_a_secret_is_off(make_app: AppFactory, starter: InMemoryRolloutStarter) -> None:
    with _client(make_app(secrets=WebhookSecrets(github=Secret(b"only-github")))) as client:
        response = _gitlab(client, p.gitlab_push())
    assert response.status_code == 404
    assert "CANARYFLOW_GITLAB_TOKEN" in response.json()["error"]
    assert starter.started == []


def test_healthz_and_metrics_count_deliveries_and_rollouts(
    make_app: AppFactory, starter: InMemoryRolloutStarter
) -> None:
    app = make_app()
    metrics = app.state.handler.metrics
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)  # as serve does
    try:
        with _client(app) as client:
            assert client.get("/healthz").json() == {"status": "ok", "queued": 0}
            _github(client, p.github_push())
            _github(client, p.github_push(), secret="wrong")
            _github(client, p.github_push(repository="a/b"))
            starter.available = False
            _github(client, p.github_push(after="1" * 40, before=p.AFTER))  # accepted, not started
            assert client.get("/metrics").status_code == 404  # not on the port the senders reach
            text = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert 'canaryflow_webhook_deliveries_total{outcome="started",provider="github"} 1.0' in text
    assert 'canaryflow_webhook_deliveries_total{outcome="unauthorized",provider="github"} 1.0' in text
    assert 'canaryflow_webhook_deliveries_total{outcome="ignored",provider="github"} 1.0' in text
    assert 'canaryflow_webhook_deliveries_total{outcome="accepted",provider="github"} 1.0' in text
    assert 'canaryflow_webhook_rollouts_started_total{provider="github"} 1.0' in text
    assert 'canaryflow_webhook_reply_seconds_count{provider="github"} 4.0' in text
    assert 'canaryflow_webhook_start_failures_total{cause="unavailable"}' in text
    assert "canaryflow_webhook_queued 1.0" in text


def test_a_client_that_hangs_up_mid_body_is_one_quiet_line(
    make_app: AppFactory, starter: InMemoryRolloutStarter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = make_app()
    uvicorn_log = logging.getLogger("uvicorn")  # it does not propagate to the root logger
    with serving(app) as base_url:
        uvicorn_log.addHandler(caplog.handler)
        host, port = urllib.parse.urlsplit(base_url).hostname, urllib.parse.urlsplit(base_url).port
        with socket.create_connection((host, port)) as conn:
            conn.sendall(
                b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000\r\n\r\n" + b'{"ref": "refs/heads/ma'
            )
        with httpx.Client(base_url=base_url, timeout=10) as client:  # served after it, as before
            assert client.get("/healthz").status_code == 200
    uvicorn_log.removeHandler(caplog.handler)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    told = [r.getMessage() for r in caplog.records if "closed the connection" in r.getMessage()]
    assert len(told) == 1
    assert starter.started == []


def test_secrets_never_reach_the_logs(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _github(client, p.github_push())
    _github(client, p.github_push(), secret="wrong")
    _gitlab(client, p.gitlab_push())
    _gitlab(client, p.gitlab_push(), token="a-wrong-token")
    logged = caplog.text + json.dumps([r.args for r in caplog.records], default=str)
    assert caplog.records
    for secret in (p.GITHUB_SECRET, p.GITLAB_TOKEN, "a-wrong-token"):
        assert secret not in logged


class GatedStarter(InMemoryRolloutStarter):
    """Blocks inside `start` until released, so copies of a delivery arrive while it is starting."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def start(self, request: Any, *, idempotency_key: str) -> Any:
        self.entered.set()
        assert self.release.wait(timeout=30)
        return super().start(request, idempotency_key=idempotency_key)


def test_copies_arriving_while_a_push_starts_start_nothing_more(make_app: AppFactory) -> None:
    gated = GatedStarter()
    body = p.body_of(p.github_push())
    first: list[httpx.Response] = []
    app = make_app(starter=gated, reply_wait=0.2)
    with _client(app) as client:
        sender = threading.Thread(
            target=lambda: first.append(
                client.post("/hooks/github", content=body, headers=p.github_headers(body))
            )
        )
        sender.start()
        assert gated.entered.wait(timeout=30)
        copies = [
            client.post("/hooks/github", content=body, headers=p.github_headers(body)) for _ in range(3)
        ]
        gated.release.set()
        sender.join(timeout=30)
        (flow_run_id,) = _settled(app, body)
        after = client.post("/hooks/github", content=body, headers=p.github_headers(body))
    assert [(c.status_code, c.json()["status"]) for c in copies] == [(202, "accepted")] * 3
    assert "Retry-After" not in copies[0].headers
    assert first[0].status_code == 202
    (started,) = gated.started
    rollout_ids = [started.request.rollout_id]
    assert [c.json()["rollout_ids"] for c in copies] == [rollout_ids] * 3
    assert after.json() == {
        "status": "duplicate",
        "flow_run_id": flow_run_id,
        "flow_run_ids": [flow_run_id],
        "rollout_ids": rollout_ids,
    }


def test_a_redelivered_push_that_still_waits_is_stale_once_a_later_one_came(make_app: AppFactory) -> None:
    """The answer to a redelivery does not depend on whether the dispatcher has got to the push
    yet: while push Z of the ref is being started, A and then B (after A) wait in the queue; A
    delivered again is stale at once, and only Z and B ever start."""
    gated = GatedStarter()
    z_sha, a_sha, b_sha = "1" * 40, "a" * 40, "b" * 40
    push_z = p.body_of(p.github_push(before="0" * 40, after=z_sha))
    push_a = p.body_of(p.github_push(before=z_sha, after=a_sha))
    push_b = p.body_of(p.github_push(before=a_sha, after=b_sha))
    app = make_app(starter=gated, reply_wait=0.2)
    with _client(app) as client:
        first = client.post("/hooks/github", content=push_z, headers=p.github_headers(push_z))
        assert gated.entered.wait(timeout=30)  # the dispatcher is inside Z's start: the ref is busy
        for body in (push_a, push_b):
            reply = client.post("/hooks/github", content=body, headers=p.github_headers(body))
            assert (reply.status_code, reply.json()["status"]) == (202, "accepted")
        again = client.post("/hooks/github", content=push_a, headers=p.github_headers(push_a))
        later = f"a later push to refs/heads/master ({b_sha[:7]}) started or is queued"
        assert (again.status_code, again.json()) == (200, {"status": "stale", "reason": later})
        gated.release.set()
        _settled(app, push_b)
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert [s.request.image for s in gated.started] == [
        f"registry.example.com/hello/world:{z_sha}",
        f"registry.example.com/hello/world:{b_sha}",
    ]


class HeldStarter(InMemoryRolloutStarter):
    """Holds every start until released and counts how many are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()
        self.in_flight = self.most = 0
        self.release = threading.Event()

    def start(self, request: Any, *, idempotency_key: str) -> Any:
        with self.changed:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.changed.notify_all()
        try:
            assert self.release.wait(timeout=30)
            return super().start(request, idempotency_key=idempotency_key)
        finally:
            with self.changed:
                self.in_flight -= 1

    def wait_in_flight(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.in_flight >= count, timeout=30)


def test_pushes_of_different_refs_start_at_once(make_app: AppFactory) -> None:
    held = HeldStarter()
    app = make_app(starter=held, reply_wait=0.1)
    bodies = [
        p.body_of(p.github_push(ref=ref))
        for ref in ("refs/heads/master", "refs/tags/v1.0.0", "refs/tags/v2.0.0")
    ]
    with _client(app) as client:
        for body in bodies:
            assert (
                client.post("/hooks/github", content=body, headers=p.github_headers(body)).status_code == 202
            )
        assert held.wait_in_flight(3), f"only {held.in_flight} start(s) in flight at once"
        held.release.set()
        for body in bodies:
            _settled(app, body)
    assert held.most == 3
    assert len(held.started) == 3


def test_pushes_of_one_ref_never_start_at_once_and_start_in_order(make_app: AppFactory) -> None:
    held = HeldStarter()
    app = make_app(starter=held, reply_wait=0.1)
    a_sha, b_sha = "a" * 40, "b" * 40
    push_a = p.body_of(p.github_push(before="9" * 40, after=a_sha))
    push_b = p.body_of(p.github_push(before=a_sha, after=b_sha))
    with _client(app) as client:
        assert (
            client.post("/hooks/github", content=push_a, headers=p.github_headers(push_a)).status_code == 202
        )
        assert held.wait_in_flight(1)
        assert (
            client.post("/hooks/github", content=push_b, headers=p.github_headers(push_b)).status_code == 202
        )
        key_b = push_key(parse_github_push(json.loads(push_b)))
        assert app.state.handler.dispatcher.settle(key_b, 0.5, retries=True) is None  # held back
        assert held.in_flight == 1
        held.release.set()
        _settled(app, push_b)
    assert held.most == 1
    assert [s.request.image for s in held.started] == [
        f"registry.example.com/hello/world:{a_sha}",
        f"registry.example.com/hello/world:{b_sha}",
    ]


def test_every_delivery_refused_or_ignored_is_one_log_line_with_its_id_and_why(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn's access line says only the status: the operator could not tell which push was lost."""
    caplog.set_level(logging.INFO, logger="canaryflow.webhooks")
    _github(client, p.github_push(), secret="wrong", delivery="d-bad-signature")
    _github(client, p.github_push(ref="refs/heads/nowhere"), delivery="d-no-route")
    _github(client, p.github_push(), delivery="d-first")
    _github(client, p.github_push(), delivery="d-again")
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("canaryflow.webhooks")]
    refused = (
        "WARNING",
        "github delivery d-bad-signature: 401 unauthorized: missing or wrong X-Hub-Signature-256",
    )
    assert refused in said
    assert any(
        level == "INFO" and line.startswith("github delivery d-no-route: 202 ignored: ")
        for level, line in said
    )
    assert ("INFO", "github delivery d-again: 200 duplicate") in said
    assert not [
        line for _, line in said if line.startswith("github delivery d-first:")
    ]  # its own lines say it
