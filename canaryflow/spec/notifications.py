"""Who hears about rollouts (``kind: Notifications``): channels and the events each one gets.

A channel is a webhook of one of three kinds: ``slack`` (any Slack-compatible incoming webhook:
Slack, Mattermost, Rocket.Chat; a ``{"text": ...}`` body), ``teams`` (a Microsoft Teams
Workflows webhook; an Adaptive Card) or ``webhook`` (a generic JSON document with every field of
the event, for your own tooling). Its URL is a secret, so the file names the environment variable
that holds it (``urlFrom``); a URL written in the file (``url``) is for endpoints that are not
secret, such as a receiver inside the cluster. Each channel gets the events it lists, all of them
by default:

``started``
    the rollout passed its preflight and holds the target;
``waiting-for-approval``
    a pause waits for a person (``canaryflow promote`` / ``abort``);
``promoted``, ``rolled-back``, ``aborted``, ``superseded``
    how it ended, with the reason;
``failed``
    the run ended Failed or Crashed with work maybe half done (the cleanup automation takes over).

``canaryflow notifications apply`` turns the file into Prefect notification blocks and automations
(`flows.notifications`). Example::

    apiVersion: canaryflow/v1
    kind: Notifications
    metadata: {name: platform}
    spec:
      channels:
        - {name: deploys, kind: slack, urlFrom: CANARYFLOW_SLACK_WEBHOOK_URL}
        - {name: oncall, kind: teams, urlFrom: CANARYFLOW_TEAMS_WEBHOOK_URL, events: [rolled-back, failed]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from pydantic import Field, ValidationInfo, field_validator, model_validator

from canaryflow.errors import InputError
from canaryflow.spec.models import COLLECT_CROSS_CHECKS, DNS_LABEL, Metadata, SpecModel, report_cross_checks
from canaryflow.yamldoc import Loc

__all__ = ["NOTIFICATION_EVENTS", "Channel", "NotificationsBody", "NotificationsSpec", "resolve_urls"]

NotificationEvent = Literal[
    "started", "waiting-for-approval", "promoted", "rolled-back", "aborted", "superseded", "failed"
]
#: Every event a channel can get, in the order a rollout goes through them.
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = get_args(NotificationEvent)
#: An environment variable's name (the shell's rule).
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Channel(SpecModel):
    """One webhook and the events it gets."""

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    kind: Literal["slack", "teams", "webhook"]
    url_from: str | None = Field(default=None, pattern=ENV_NAME)
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    events: tuple[NotificationEvent, ...] = NOTIFICATION_EVENTS

    # The checks of one channel are its own validators, so that they are reported with the other
    # channels' problems in one round (a channel's own field error still comes first).
    @field_validator("events")
    @classmethod
    def _each_event_once(cls, events: tuple[NotificationEvent, ...]) -> tuple[NotificationEvent, ...]:
        if not events:
            raise ValueError(f"list at least one of: {', '.join(NOTIFICATION_EVENTS)}")
        if len(set(events)) != len(events):
            raise ValueError("lists an event twice")
        return events

    @model_validator(mode="after")
    def _one_url(self) -> Channel:
        if (self.url is None) == (self.url_from is None):
            raise ValueError("give exactly one of urlFrom (the environment variable with the URL) and url")
        return self


class NotificationsBody(SpecModel):
    channels: tuple[Channel, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _names_once(cls, data: object, info: ValidationInfo) -> object:
        """Each channel's name is unique: for the loader, read from the document as written, so
        that it is said even when some channel is invalid."""
        if isinstance(info.context, dict) and COLLECT_CROSS_CHECKS in info.context:
            report_cross_checks(_named_twice(data), info)
        return data

    @model_validator(mode="after")
    def _names_once_validated(self, info: ValidationInfo) -> NotificationsBody:
        """Without the loader: after the channels' own errors, as one error."""
        if not (isinstance(info.context, dict) and COLLECT_CROSS_CHECKS in info.context):
            report_cross_checks(_named_twice({"channels": self.channels}), info)
        return self


def _named_twice(data: object) -> list[tuple[Loc, str]]:
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, list | tuple):
        return []
    problems: list[tuple[Loc, str]] = []
    seen: set[str] = set()
    for i, channel in enumerate(channels):
        name = channel.get("name") if isinstance(channel, dict) else getattr(channel, "name", None)
        if isinstance(name, str) and name in seen:
            problems.append((("spec", "channels", i, "name"), f"channel {name!r} is named twice"))
        if isinstance(name, str):
            seen.add(name)
    return problems


class NotificationsSpec(SpecModel):
    """A notifications document (``apiVersion: canaryflow/v1``, ``kind: Notifications``)."""

    api_version: Literal["canaryflow/v1"]
    kind: Literal["Notifications"]
    metadata: Metadata
    spec: NotificationsBody


def resolve_urls(spec: NotificationsSpec, env: Mapping[str, str]) -> dict[str, str]:
    """Each channel's webhook URL by channel name; InputError naming every ``urlFrom`` variable
    that is unset or not an http(s) URL."""
    urls: dict[str, str] = {}
    missing: list[str] = []
    for channel in spec.spec.channels:
        if channel.url is not None:
            urls[channel.name] = channel.url
            continue
        assert channel.url_from is not None
        value = env.get(channel.url_from, "").strip()
        if not value.startswith(("http://", "https://")):
            now = "unset" if not value else "not a URL now"
            missing.append(f"{channel.url_from} (channel {channel.name}, {now})")
        urls[channel.name] = value
    if missing:
        raise InputError(
            f"set {', '.join(missing)} to the webhook URL (http:// or https://); nothing was changed"
        )
    return urls
