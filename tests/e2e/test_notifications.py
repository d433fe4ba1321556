"""Notifications end to end: ``canaryflow notifications apply`` makes Prefect's blocks and
automations, rollouts run, and Prefect's server posts the messages to a local HTTP receiver.

Everything is real but the cluster (the simulated one): the session's Prefect API (its triggers
and actions services evaluate the automations and send the notifications), canaryflow's events
from the rollout flow, Prefect's own Failed event of a refused run, and HTTP to a receiver on
loopback that records every request. Each channel kind (Slack-compatible, Teams, generic JSON)
has its own path, so the test sees which channel got which message in which shape.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE, SimulatedStack
from canaryflow.spec import load_notifications_text
from tests.e2e.conftest import APPROVAL_ROLLOUT_ID as ROLLOUT_ID
from tests.e2e.test_approval import _spec as approval_spec

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Message:
    path: str
    content_type: str
    body: Any


class Receiver:
    """An HTTP server on loopback that records every POST; `wait` awaits a matching one."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                message = Message(self.path, self.headers.get("Content-Type", ""), json.loads(raw))
                with receiver._changed:
                    receiver.messages.append(message)
                    receiver._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, what: str, match: Callable[[Message], bool], timeout: float = 60.0) -> Message:
        with self._changed:
            if not self._changed.wait_for(lambda: any(match(m) for m in self.messages), timeout):
                seen = "\n".join(f"{m.path}: {m.body}" for m in self.messages)
                raise AssertionError(f"no notification within {timeout:g} s: {what}; received:\n{seen}")
            return next(m for m in self.messages if match(m))

    def on(self, path: str) -> list[Message]:
        with self._changed:
            return [m for m in self.messages if m.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def _spec(url: str, *, teams_events: str = "[rolled-back, failed]", with_teams: bool = True) -> str:
    teams = (
        f"    - {{name: oncall, kind: teams, url: '{url}/teams', events: {teams_events}}}\n"
        if with_teams
        else ""
    )
    return (
        "apiVersion: canaryflow/v1\nkind: Notifications\nmetadata: {name: test}\nspec:\n  channels:\n"
        f"    - {{name: deploys, kind: slack, url: '{url}/slack'}}\n"
        + teams
        + f"    - {{name: audit, kind: webhook, url: '{url}/hook'}}\n"
    )


@pytest.fixture
def applied(prefect_harness: Any, receiver: Receiver) -> Iterator[list[str]]:
    from prefect.client.orchestration import get_client

    from flows.notifications import AUTOMATION_PREFIX, apply_notifications

    yield apply_notifications(load_notifications_text(_spec(receiver.url)))
    with get_client(sync_client=True) as client:  # later tests of the session hear nothing
        for automation in client.read_automations():
            if automation.name.startswith(AUTOMATION_PREFIX):
                client.delete_automation(automation.id)


def _card_text(message: Message) -> str:
    body = message.body["attachments"][0]["content"]["body"]
    return "\n".join(block["text"] for block in body)


def test_a_promotion_and_a_rollback_are_told_to_each_channel_in_its_shape(
    applied: list[str], receiver: Receiver, rollout_of: Callable[..., Any]
) -> None:
    assert [line.split(":")[0] for line in applied] == [
        "channel deploys (slack)",
        "channel oncall (teams)",
        "channel audit (webhook)",
    ]
    good = rollout_of(GOOD_IMAGE).result()
    bad = rollout_of(BAD_IMAGE).result()
    assert (good.result, bad.result) == ("promoted", "rolled-back")

    promoted = receiver.wait(
        "the promotion, as JSON",
        lambda m: m.path == "/hook" and m.body["event"] == "promoted",
    )
    assert promoted.content_type == "application/json"
    assert {k: promoted.body[k] for k in ("rollout_id", "target", "image", "reason")} == {
        "rollout_id": good.rollout_id,
        "target": "shop/web",
        "image": GOOD_IMAGE,
        "reason": good.reason,
    }
    assert promoted.body["run_url"].startswith("http")
    assert "/runs/flow-run/" in promoted.body["run_url"]

    started = receiver.wait(
        "the start, in Slack's shape",
        lambda m: m.path == "/slack" and f"{good.rollout_id} started" in m.body["text"],
    )
    assert f"{good.rollout_id} of {GOOD_IMAGE} to shop/web: started" in started.body["text"]
    assert "Run: http" in started.body["text"]

    rolled_back = receiver.wait(
        "the rollback, as a Teams card",
        lambda m: m.path == "/teams" and "rolled-back" in _card_text(m),
    )
    text = _card_text(rolled_back)
    assert f"canaryflow: {bad.rollout_id} rolled-back" in text
    assert bad.reason in text  # the reason, whole
    receiver.wait(
        "the rollback on the Slack channel too",
        lambda m: m.path == "/slack" and f"{bad.rollout_id} rolled-back" in m.body["text"],
    )
    # Teams asked for rollbacks and failures only: no start and no promotion reach it.
    assert not [m for m in receiver.on("/teams") if "started" in _card_text(m) or "promoted" in _card_text(m)]


def test_a_rollout_waiting_for_a_person_is_told_with_its_step_and_weight(
    applied: list[str],
    receiver: Receiver,
    rollout_of: Callable[..., Any],
    answer_when_paused: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    answer_when_paused("approve", "fine", by="ana@laptop")

    outcome = rollout_of(GOOD_IMAGE, spec=approval_spec(tmp_path), rollout_id=ROLLOUT_ID).result()

    assert outcome.result == "promoted"
    waiting = receiver.wait(
        "the approval wait, as JSON",
        lambda m: m.path == "/hook" and m.body["event"] == "waiting-for-approval",
    )
    assert (waiting.body["rollout_id"], waiting.body["step"], waiting.body["weight"]) == (ROLLOUT_ID, 2, 20)
    slack = receiver.wait(
        "the approval wait on Slack", lambda m: m.path == "/slack" and "waits for a person" in m.body["text"]
    )
    assert (
        f"{ROLLOUT_ID} of {GOOD_IMAGE} to shop/web: step 2 waits for a person at 20% canary weight"
        in (slack.body["text"])
    )


def test_a_failed_run_is_told_with_prefects_reason(
    applied: list[str], receiver: Receiver, stack: SimulatedStack, rollout_of: Callable[..., Any]
) -> None:
    stack.world.remove("shop", "web")  # the preflight refuses: the run fails, nothing is created

    state = rollout_of(GOOD_IMAGE)

    assert state.is_failed()
    failed = receiver.wait(
        "the failure, as JSON", lambda m: m.path == "/hook" and m.body["event"] == "failed"
    )
    assert failed.body["rollout_id"].endswith("-refused")
    assert "web" in failed.body["reason"]
    assert failed.body["image"] == GOOD_IMAGE
    receiver.wait("the failure on Teams", lambda m: m.path == "/teams" and "failed" in _card_text(m))


def test_a_dry_run_says_what_applying_would_change_deletions_included_and_changes_nothing(
    applied: list[str], receiver: Receiver
) -> None:
    from prefect.client.orchestration import get_client

    from flows.notifications import AUTOMATION_PREFIX, plan_notifications

    def automations() -> list[Any]:
        with get_client(sync_client=True) as client:
            found = client.read_automations()
        return sorted(
            (a.model_dump(mode="json") for a in found if a.name.startswith(AUTOMATION_PREFIX)),
            key=lambda a: a["name"],
        )

    before = automations()

    planned = plan_notifications(load_notifications_text(_spec(receiver.url, with_teams=False)))

    assert planned == [
        "channel deploys (slack): would update automation canaryflow-notify-deploys and block "
        "canaryflow-deploys",
        "channel audit (webhook): would update automation canaryflow-notify-audit and block canaryflow-audit",
        "would delete automation canaryflow-notify-oncall and block canaryflow-oncall "
        "(their channel is not in the spec)",
    ]
    assert automations() == before


def test_applying_again_updates_in_place_and_a_removed_channel_is_removed(
    applied: list[str], receiver: Receiver, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from flows.notifications import AUTOMATION_PREFIX, apply_notifications

    again = apply_notifications(load_notifications_text(_spec(receiver.url, with_teams=False)))

    assert again == [
        "channel deploys (slack): automation canaryflow-notify-deploys updated, block canaryflow-deploys; "
        "events: started, waiting-for-approval, promoted, rolled-back, aborted, superseded, failed",
        "channel audit (webhook): automation canaryflow-notify-audit updated, block canaryflow-audit; "
        "events: started, waiting-for-approval, promoted, rolled-back, aborted, superseded, failed",
        "automation canaryflow-notify-oncall and block canaryflow-oncall deleted "
        "(their channel left the spec)",
    ]
    with get_client(sync_client=True) as client:
        names = sorted(a.name for a in client.read_automations() if a.name.startswith(AUTOMATION_PREFIX))
    assert names == ["canaryflow-notify-audit", "canaryflow-notify-deploys"]
    with get_client(sync_client=True) as client:
        blocks = sorted(b.name for b in client.read_block_documents() if b.name.startswith("canaryflow-"))
    assert blocks == ["canaryflow-audit", "canaryflow-deploys"]  # the removed channel's URL is gone
