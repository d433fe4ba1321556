"""Notifications specs: the example is valid, every problem is reported at once with file, line
and path, and every webhook URL is resolved (or every missing variable named) up front."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from canaryflow.errors import InputError, SpecError
from canaryflow.spec import (
    NOTIFICATION_EVENTS,
    json_schema,
    load_notifications,
    load_notifications_text,
    validate_files,
)
from canaryflow.spec.notifications import resolve_urls

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deployments" / "notifications.yaml"

ONE_URL = "give exactly one of urlFrom (the environment variable with the URL) and url"
ENV = "must be the name of an environment variable (letters, digits and '_')"
HEAD = "apiVersion: canaryflow/v1\nkind: Notifications\nmetadata: {name: team}\nspec:\n  channels:\n"


def _problems(channels: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_notifications_text(HEAD + channels, source="n.yaml")
    return info.value.problems


def test_the_example_is_valid_and_gives_each_channel_its_events() -> None:
    spec = load_notifications(EXAMPLE)

    kinds = {c.name: (c.kind, c.url_from, c.events) for c in spec.spec.channels}
    assert kinds == {
        "deploys": ("slack", "CANARYFLOW_SLACK_WEBHOOK_URL", NOTIFICATION_EVENTS),
        "oncall": (
            "teams",
            "CANARYFLOW_TEAMS_WEBHOOK_URL",
            ("waiting-for-approval", "rolled-back", "aborted", "failed"),
        ),
        "audit": ("webhook", "CANARYFLOW_NOTIFY_WEBHOOK_URL", NOTIFICATION_EVENTS),
    }


def test_spec_validate_knows_the_kind() -> None:
    out = io.StringIO()
    assert validate_files([EXAMPLE], out) == 0
    assert out.getvalue() == f"{EXAMPLE}: ok\n"
    assert json_schema("Notifications")["properties"]["kind"]["const"] == "Notifications"


def test_every_problem_is_reported_with_its_line_and_path() -> None:
    problems = _problems(
        "    - {name: a, kind: slak, urlFrom: 1X}\n"
        "    - {name: b, kind: slack, url: 'ftp://x', events: [started, bogus]}\n"
    )

    assert problems == [
        "n.yaml:6 spec.channels[0].kind: must be one of: 'slack', 'teams', 'webhook'",
        f"n.yaml:6 spec.channels[0].urlFrom: {ENV}",
        "n.yaml:7 spec.channels[1].url: must be an http:// or https:// URL",
        "n.yaml:7 spec.channels[1].events[1]: must be one of: "
        "'started', 'waiting-for-approval', 'promoted', 'rolled-back', 'aborted', 'superseded', 'failed'",
    ]


def test_channels_that_contradict_themselves_or_each_other_are_refused() -> None:
    problems = _problems(
        "    - {name: a, kind: slack, urlFrom: A, url: 'https://x'}\n"
        "    - {name: a, kind: teams}\n"
        "    - {name: c, kind: webhook, urlFrom: C, events: [failed, failed]}\n"
        "    - {name: d, kind: webhook, urlFrom: D, events: []}\n"
    )

    assert problems == [
        f"n.yaml:6 spec.channels[0]: {ONE_URL}",
        f"n.yaml:7 spec.channels[1]: {ONE_URL}",
        "n.yaml:7 spec.channels[1].name: channel 'a' is named twice",
        "n.yaml:8 spec.channels[2].events: lists an event twice",
        "n.yaml:9 spec.channels[3].events: list at least one of: " + ", ".join(NOTIFICATION_EVENTS),
    ]


def test_urls_come_from_the_environment_and_every_missing_one_is_named() -> None:
    spec = load_notifications(EXAMPLE)

    with pytest.raises(InputError) as info:
        resolve_urls(
            spec,
            {
                "CANARYFLOW_SLACK_WEBHOOK_URL": "https://hooks.example.com/a",
                "CANARYFLOW_TEAMS_WEBHOOK_URL": "teams.example.com/b",
                "CANARYFLOW_NOTIFY_WEBHOOK_URL": " ",
            },
        )

    assert str(info.value) == (
        "set CANARYFLOW_TEAMS_WEBHOOK_URL (channel oncall, not a URL now), CANARYFLOW_NOTIFY_WEBHOOK_URL "
        "(channel audit, unset) to the webhook URL (http:// or https://); nothing was changed"
    )
    env = {
        "CANARYFLOW_SLACK_WEBHOOK_URL": "https://hooks.example.com/a",
        "CANARYFLOW_TEAMS_WEBHOOK_URL": "https://teams.example.com/b",
        "CANARYFLOW_NOTIFY_WEBHOOK_URL": "http://audit.internal/c ",
    }
    assert resolve_urls(spec, env) == {
        "deploys": "https://hooks.example.com/a",
        "oncall": "https://teams.example.com/b",
        "audit": "http://audit.internal/c",
    }


def test_a_field_error_does_not_hide_the_other_channels_problems() -> None:
    """One round: before, a wrong kind hid the names given twice and a channel's two URLs."""
    problems = _problems(
        "    - {name: a, kind: slak, urlFrom: A}\n"
        "    - {name: a, kind: slack, urlFrom: A, url: 'https://x'}\n"
        "    - {name: c, kind: webhook, urlFrom: C, events: [failed, failed]}\n"
    )

    assert problems == [
        "n.yaml:6 spec.channels[0].kind: must be one of: 'slack', 'teams', 'webhook'",
        f"n.yaml:7 spec.channels[1]: {ONE_URL}",
        "n.yaml:7 spec.channels[1].name: channel 'a' is named twice",
        "n.yaml:8 spec.channels[2].events: lists an event twice",
    ]


def test_validated_without_the_loader_a_channel_s_own_error_comes_before_names_given_twice() -> None:
    from pydantic import ValidationError

    from canaryflow.spec.notifications import NotificationsSpec

    channels = [{"name": "a", "kind": "slak", "urlFrom": "A"}, {"name": "a", "kind": "slack", "urlFrom": "A"}]
    document = {"apiVersion": "canaryflow/v1", "kind": "Notifications", "metadata": {"name": "t"}}
    with pytest.raises(ValidationError) as first:
        NotificationsSpec.model_validate({**document, "spec": {"channels": channels}})
    assert [e["loc"] for e in first.value.errors()] == [("spec", "channels", 0, "kind")]
    channels[0]["kind"] = "slack"
    with pytest.raises(ValidationError) as then:
        NotificationsSpec.model_validate({**document, "spec": {"channels": channels}})
    assert "spec.channels[1].name: channel 'a' is named twice" in str(then.value)
