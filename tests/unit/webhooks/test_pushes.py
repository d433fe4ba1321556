"""Push payloads of GitHub and GitLab become one `PushEvent`; anything else is a `PayloadError`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from canaryflow.errors import PayloadError
from canaryflow.webhooks.pushes import GITHUB_MAX_COMMITS, parse_github_push, parse_gitlab_push
from tests.unit.webhooks import payloads as p


def test_github_branch_push() -> None:
    event = parse_github_push(p.github_push())
    assert (event.provider, event.repository, event.ref_type, event.ref_name) == (
        "github",
        p.REPOSITORY,
        "branch",
        "master",
    )
    assert (event.before, event.after, event.short_sha) == (p.BEFORE, p.AFTER, p.AFTER[:7])
    assert not event.deleted
    assert not event.forced
    assert event.changed_files == {"README.md"}


def test_github_tag_push_and_branch_names_with_slashes() -> None:
    tag = parse_github_push(p.github_push(ref="refs/tags/v1.2.0"))
    assert (tag.ref_type, tag.ref_name) == ("tag", "v1.2.0")
    branch = parse_github_push(p.github_push(ref="refs/heads/feature/login"))
    assert (branch.ref_type, branch.ref_name) == ("branch", "feature/login")


def test_github_deleted_branch() -> None:
    event = parse_github_push(p.github_push(after=p.NULL_SHA, deleted=True))
    assert event.deleted
    assert event.changed_files is None


def test_github_null_after_counts_as_deleted_even_without_the_flag() -> None:
    assert parse_github_push(p.github_push(after=p.NULL_SHA, commits=[])).deleted


def test_github_forced_push() -> None:
    event = parse_github_push(p.github_push(forced=True))
    assert event.forced
    assert not event.deleted


def test_changed_files_are_unknown_when_the_payload_does_not_list_every_commit() -> None:
    created = p.github_push(created=True, before=p.NULL_SHA, commits=[])
    assert parse_github_push(created).changed_files is None
    many = [p.commit(p.AFTER, added=(f"f{i}",)) for i in range(GITHUB_MAX_COMMITS)]
    assert parse_github_push(p.github_push(commits=many)).changed_files is None
    two = [p.commit(p.BEFORE, added=("a.py",)), p.commit(p.AFTER, modified=("b/c.py",))]
    assert parse_github_push(p.github_push(commits=two)).changed_files == {"a.py", "b/c.py"}


def test_gitlab_push_hook() -> None:
    event = parse_gitlab_push(p.gitlab_push())
    assert (event.provider, event.repository, event.ref_name) == ("gitlab", p.GITLAB_REPOSITORY, "master")
    assert event.after == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert event.changed_files == {"CHANGELOG"}


def test_the_pushed_commits_time_is_read_and_a_strange_one_is_left_unknown() -> None:
    when = datetime(2019, 5, 15, 15, 20, 41, tzinfo=timezone(timedelta(hours=-4)))
    assert parse_github_push(p.github_push()).committed_at == when  # head_commit.timestamp
    assert parse_gitlab_push(p.gitlab_push()).committed_at == when  # the listed commit of `after`
    naive = p.github_push()
    naive["head_commit"]["timestamp"] = "2019-05-15T15:20:41"  # no offset: not a point in time
    assert parse_github_push(naive).committed_at is None
    other = p.gitlab_push(commits=[p.commit(p.BEFORE)])  # the pushed commit is not listed
    assert parse_gitlab_push(other).committed_at is None
    garbled = p.github_push()
    garbled["head_commit"]["timestamp"] = "yesterday"
    assert parse_github_push(garbled).committed_at is None  # the push is still taken


def test_gitlab_total_commits_count_beyond_the_listed_commits_means_unknown_files() -> None:
    assert parse_gitlab_push(p.gitlab_push(total_commits_count=4)).changed_files is None


def test_gitlab_tag_push_and_deleted_branch() -> None:
    tag = parse_gitlab_push(p.gitlab_push(kind="tag_push", ref="refs/tags/v1.0.0", before=p.NULL_SHA))
    assert (tag.ref_type, tag.ref_name, tag.deleted) == ("tag", "v1.0.0", False)
    deleted = parse_gitlab_push(p.gitlab_push(after=p.NULL_SHA))
    assert deleted.deleted


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_without(p.github_push(), "repository"), "repository"),
        ({**p.github_push(), "repository": {"full_name": 7}}, "repository.full_name"),
        (_without(p.github_push(), "ref"), "ref"),
        ({**p.github_push(), "ref": "master"}, "ref"),
        ({**p.github_push(), "after": "HEAD"}, "after"),
        ({**p.github_push(), "after": p.AFTER.upper()}, "after"),
        ({**p.github_push(), "before": "x" * 5000}, "before"),
        ({**p.github_push(), "deleted": "yes"}, "deleted"),
        ({**p.github_push(), "commits": {"a": 1}}, "commits"),
        ({**p.github_push(), "commits": [{"id": p.AFTER, "added": "a.py"}]}, "commits[0].added"),
    ],
)
def test_github_payloads_that_are_not_pushes_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_github_push(payload)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**p.gitlab_push(), "object_kind": "merge_request"}, "object_kind"),
        (_without(p.gitlab_push(), "project"), "project"),
        ({**p.gitlab_push(), "total_commits_count": "4"}, "total_commits_count"),
    ],
)
def test_gitlab_payloads_that_are_not_pushes_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError, match=field):
        parse_gitlab_push(payload)
