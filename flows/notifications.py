"""Notifications the Prefect way: a notification block and an automation per channel.

`apply_notifications` makes Prefect match a notifications spec (`canaryflow.spec.notifications`):
for each channel a Custom Webhook block ``canaryflow-<channel>`` that posts the channel's kind of
message to its URL, and an automation ``canaryflow-notify-<channel>`` that reacts to the
channel's events with a send-notification action on that block. The events are canaryflow's
(`flows.notices`: ``canaryflow.rollout.*``) and, for ``failed``, Prefect's own
``prefect.flow-run.Failed`` / ``Crashed`` of rollout runs. Prefect's server renders the message
(its Jinja templates below: the event's headline, the reason, a link to the run in the UI) and
sends it; nothing of canaryflow runs when a notification goes out, so a crashed worker is
reported too. Applying is declarative: blocks are overwritten, automations updated in place, and the
``canaryflow-notify-*`` automations whose channel left the spec are deleted with their blocks: a
spec is every channel of its Prefect. `plan_notifications` says what applying would change,
changing nothing (``notifications apply --dry-run``).

Every URL is resolved (and every missing environment variable named) before Prefect is touched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

from canaryflow.errors import InputError, TriggerUnavailableError
from canaryflow.spec.notifications import Channel, NotificationsSpec, resolve_urls
from flows.notices import ROLLOUT_EVENTS

__all__ = ["AUTOMATION_PREFIX", "BLOCK_PREFIX", "apply_notifications", "channel_events", "plan_notifications"]

BLOCK_PREFIX = "canaryflow-"
_BLOCK_TYPE = "custom-webhook"
AUTOMATION_PREFIX = "canaryflow-notify-"

#: Prefect's events for ``failed``: a rollout run that failed, or crashed under its worker.
FAILED_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed")

# The templates Prefect's server renders for each notification (Jinja, its sandbox). `what` is the
# event's last word ("promoted", "rolled-back", ..., or "failed"/"crashed" for Prefect's events).
_WHAT = '{% set what = event.event.split(".")[-1] | lower %}'
_ROLLOUT = '{% set rollout = event.payload.get("rollout_id") or flow_run.name %}'
_OURS = '{% set ours = event.event.startswith("canaryflow.") %}'
# The run's page: from the event (the run's own settings), else the server's PREFECT_UI_URL.
_LINK = '{% set link = event.payload.get("run_url") or (flow_run|ui_url) or ("flow run " ~ flow_run.id) %}'
SUBJECT = _WHAT + _ROLLOUT + "canaryflow: {{ rollout }} {{ what }}"
TEXT = (
    _WHAT
    + _OURS
    + _LINK
    + "{% if ours %}{{ event.payload.headline }}"
    + "{% else %}rollout run {{ flow_run.name }} {{ what }}: {{ flow_run.state.message }}"
    + " (the cleanup automation converges its target){% endif %}\n"
    + "Run: {{ link }}"
)
JSON = (
    _WHAT
    + _ROLLOUT
    + _OURS
    + _LINK
    + '{% set p = event.payload %}{% set request = flow_run.parameters.get("request") or {} %}'
    + '{{ {"event": what, "rollout_id": rollout,'
    + ' "target": p.get("target"), "image": p.get("image") or request.get("image"),'
    + ' "step": p.get("step"), "steps": p.get("steps"), "weight": p.get("weight"),'
    + ' "reason": p.get("reason") if ours else flow_run.state.message,'
    + ' "headline": p.get("headline") if ours else "rollout run " ~ flow_run.name ~ " " ~ what,'
    + ' "triggered_by": p.get("triggered_by") or request.get("triggered_by"),'
    + ' "occurred": event.occurred | string, "run_url": link} | tojson }}'
)

_TEAMS_CARD: dict[str, Any] = {
    "type": "message",
    "attachments": [
        {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": "{{subject}}", "weight": "Bolder", "wrap": True},
                    {"type": "TextBlock", "text": "{{body}}", "wrap": True},
                ],
            },
        }
    ],
}


def channel_events(channel: Channel) -> list[str]:
    """The Prefect event names a channel's automation expects."""
    names: list[str] = []
    for what in channel.events:
        names += list(FAILED_EVENTS) if what == "failed" else [ROLLOUT_EVENTS[what]]
    return names


def _block(channel: Channel, url: str) -> CustomWebhookNotificationBlock:
    common: dict[str, Any] = {"name": f"canaryflow {channel.name}", "url": url, "timeout": 10}
    if channel.kind == "slack":
        return CustomWebhookNotificationBlock(**common, json_data={"text": "*{{subject}}*\n{{body}}"})
    if channel.kind == "teams":
        return CustomWebhookNotificationBlock(**common, json_data=_TEAMS_CARD)
    return CustomWebhookNotificationBlock(
        **common, form_data="{{body}}", headers={"Content-Type": "application/json"}
    )


def _automation(channel: Channel, block_id: Any) -> AutomationCore:
    return AutomationCore(
        name=f"{AUTOMATION_PREFIX}{channel.name}",
        description=f"canaryflow: sends {', '.join(channel.events)} of rollouts to channel "
        f"{channel.name} ({channel.kind}); made by canaryflow notifications apply.",
        enabled=True,
        trigger=EventTrigger(
            match={"prefect.resource.id": ["canaryflow.rollout.*", "prefect.flow-run.*"]},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": "rollout"},
            expect=set(channel_events(channel)),
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=SUBJECT,
                body=JSON if channel.kind == "webhook" else TEXT,
            )
        ],
    )


def _delete_block(client: Any, name: str) -> None:
    """Delete the Custom Webhook block `name` (its URL is a secret: nothing unused is left)."""
    try:
        found = client.read_block_document_by_name(name, block_type_slug=_BLOCK_TYPE, include_secrets=False)
    except ObjectNotFound:
        return
    client.delete_block_document(found.id)


def apply_notifications(spec: NotificationsSpec, env: Mapping[str, str] | None = None) -> list[str]:
    """Make the Prefect API's blocks and automations match `spec`; one line per change.

    Raises
    ------
    InputError
        A channel's ``urlFrom`` variable is unset or not a URL (before anything is written).
    TriggerUnavailableError
        The Prefect API stopped answering (what was written stays; applying again completes it).
    InputError
        The Prefect API refused a block or an automation.
    """
    urls = resolve_urls(spec, os.environ if env is None else env)
    lines: list[str] = []
    try:
        with get_client(sync_client=True) as client:
            wanted = {f"{AUTOMATION_PREFIX}{c.name}" for c in spec.spec.channels}
            for channel in spec.spec.channels:
                block_name = f"{BLOCK_PREFIX}{channel.name}"
                block_id = _block(channel, urls[channel.name]).save(block_name, overwrite=True)
                automation = _automation(channel, block_id)
                existing = client.read_automations_by_name(automation.name)
                if existing:
                    client.update_automation(existing[0].id, automation)
                    for extra in existing[1:]:
                        client.delete_automation(extra.id)
                    verb = "updated"
                else:
                    client.create_automation(automation)
                    verb = "created"
                lines.append(
                    f"channel {channel.name} ({channel.kind}): automation {automation.name} {verb}, "
                    f"block {block_name}; events: {', '.join(channel.events)}"
                )
            for automation in client.read_automations():
                if automation.name.startswith(AUTOMATION_PREFIX) and automation.name not in wanted:
                    client.delete_automation(automation.id)
                    gone = automation.name.removeprefix(AUTOMATION_PREFIX)
                    _delete_block(client, f"{BLOCK_PREFIX}{gone}")
                    lines.append(
                        f"automation {automation.name} and block {BLOCK_PREFIX}{gone} deleted "
                        "(their channel left the spec)"
                    )
    except httpx.TransportError as exc:
        raise TriggerUnavailableError(f"the Prefect API did not answer ({exc}); run apply again") from exc
    except Exception as exc:  # the API's refusal, in one line
        raise InputError(f"the Prefect API refused the notifications: {exc}") from exc
    return lines


def plan_notifications(spec: NotificationsSpec) -> list[str]:
    """What `apply_notifications` would change in the Prefect API, one line per change; nothing is
    written (the channels' URLs are not needed).

    Raises
    ------
    TriggerUnavailableError
        The Prefect API did not answer.
    """
    lines: list[str] = []
    try:
        with get_client(sync_client=True) as client:
            present = {a.name for a in client.read_automations() if a.name.startswith(AUTOMATION_PREFIX)}
    except httpx.TransportError as exc:
        raise TriggerUnavailableError(f"the Prefect API did not answer ({exc}); run it again") from exc
    wanted = {f"{AUTOMATION_PREFIX}{c.name}": c for c in spec.spec.channels}
    for name, channel in wanted.items():
        verb = "update" if name in present else "create"
        lines.append(
            f"channel {channel.name} ({channel.kind}): would {verb} automation {name} and block "
            f"{BLOCK_PREFIX}{channel.name}"
        )
    for name in sorted(present - set(wanted)):
        gone = name.removeprefix(AUTOMATION_PREFIX)
        lines.append(
            f"would delete automation {name} and block {BLOCK_PREFIX}{gone} "
            "(their channel is not in the spec)"
        )
    return lines
