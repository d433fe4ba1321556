"""Webhook deliveries shaped like GitHub's and GitLab's documented push events, signed here.

Shared by the unit and integration tests of the webhook receiver and by nothing else. Signatures
are computed with `hmac` directly, independently of `canaryflow.webhooks.signatures`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

GITHUB_SECRET = "It's a Secret to Everybody"
GITLAB_TOKEN = "gitlab-token-for-tests"
#: GitLab's signing token (Standard Webhooks): ``whsec_`` and the base64 of a 32-byte key.
GITLAB_SIGNING_KEY = bytes(range(1, 33))
GITLAB_SIGNING_TOKEN = "whsec_" + base64.b64encode(GITLAB_SIGNING_KEY).decode()
REPOSITORY = "Codertocat/Hello-World"
GITLAB_REPOSITORY = "mike/diaspora"
BEFORE = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
AFTER = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
NULL_SHA = "0" * 40


def commit(sha: str, *, added: tuple[str, ...] = (), modified: tuple[str, ...] = ()) -> dict[str, Any]:
    """A commit object of a push payload (GitHub and GitLab share these fields)."""
    return {
        "id": sha,
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": True,
        "message": "Update README.md",
        "timestamp": "2019-05-15T15:20:41-04:00",
        "url": f"https://example.com/{REPOSITORY}/commit/{sha}",
        "author": {"name": "Codertocat", "email": "codertocat@example.com", "username": "Codertocat"},
        "committer": {"name": "Codertocat", "email": "codertocat@example.com", "username": "Codertocat"},
        "added": list(added),
        "removed": [],
        "modified": list(modified),
    }


def github_push(
    *,
    ref: str = "refs/heads/master",
    before: str = BEFORE,
    after: str = AFTER,
    repository: str = REPOSITORY,
    created: bool = False,
    deleted: bool = False,
    forced: bool = False,
    commits: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A GitHub ``push`` event payload (the fields of GitHub's documented example)."""
    owner, name = repository.split("/", 1)
    if commits is None:
        commits = [] if deleted else [commit(after, modified=("README.md",))]
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": {
            "id": 186853002,
            "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
            "name": name,
            "full_name": repository,
            "private": False,
            "owner": {"name": owner, "login": owner, "id": 21031067, "type": "User"},
            "html_url": f"https://example.com/{repository}",
            "default_branch": "master",
        },
        "pusher": {"name": owner, "email": "codertocat@example.com"},
        "sender": {"login": owner, "id": 21031067, "type": "User"},
        "created": created,
        "deleted": deleted,
        "forced": forced,
        "base_ref": None,
        "compare": f"https://example.com/{repository}/compare/{before[:12]}...{after[:12]}",
        "commits": commits,
        "head_commit": None if deleted else (commits[-1] if commits else None),
    }


def github_ping() -> dict[str, Any]:
    """A GitHub ``ping`` event payload."""
    return {
        "zen": "Design for failure.",
        "hook_id": 109948940,
        "hook": {"type": "Repository", "id": 109948940, "name": "web", "active": True, "events": ["push"]},
        "repository": {"id": 186853002, "full_name": REPOSITORY},
        "sender": {"login": "Codertocat", "id": 21031067},
    }


def gitlab_push(
    *,
    kind: str = "push",
    ref: str = "refs/heads/master",
    before: str = "95790bf891e76fee5e1747ab589903a6a1f80f22",
    after: str = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    repository: str = GITLAB_REPOSITORY,
    commits: list[dict[str, Any]] | None = None,
    total_commits_count: int | None = None,
) -> dict[str, Any]:
    """A GitLab ``Push Hook`` (kind push) or ``Tag Push Hook`` (kind tag_push) payload."""
    if commits is None:
        commits = [] if after == NULL_SHA or kind == "tag_push" else [commit(after, added=("CHANGELOG",))]
    return {
        "object_kind": kind,
        "event_name": kind,
        "before": before,
        "after": after,
        "ref": ref,
        "ref_protected": True,
        "checkout_sha": None if after == NULL_SHA else after,
        "user_id": 4,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "project_id": 15,
        "project": {
            "id": 15,
            "name": "Diaspora",
            "web_url": f"https://example.com/{repository}",
            "path_with_namespace": repository,
            "default_branch": "master",
        },
        "commits": commits,
        "total_commits_count": len(commits) if total_commits_count is None else total_commits_count,
        "repository": {"name": "Diaspora", "homepage": f"https://example.com/{repository}"},
    }


def body_of(payload: dict[str, Any]) -> bytes:
    """The raw body as a sender would send it."""
    return json.dumps(payload, separators=(",", ":")).encode()


def github_headers(
    body: bytes, *, event: str = "push", delivery: str | None = None, secret: str = GITHUB_SECRET
) -> dict[str, str]:
    """GitHub's delivery headers, with the signature computed over `body` here."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def gitlab_headers(
    *, event: str = "Push Hook", delivery: str | None = None, token: str = GITLAB_TOKEN
) -> dict[str, str]:
    """GitLab's delivery headers."""
    delivery = delivery or str(uuid.uuid4())
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.5.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": delivery,
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "Idempotency-Key": delivery,
    }


def routes_yaml(
    *,
    deployment: str = "rollout/rollout",
    deliveries: str = "deliveries.sqlite3",
    preview: str = "config/rollouts/web-preview.yaml",
    gitlab: str = "config/rollouts/diaspora.yaml",
) -> str:
    """A routes file for the payloads above (`preview` and `gitlab` name the specs of the third
    and fourth route; the defaults do not exist, which only the receiver's start-up checks)."""
    return f"""\
deployment: {deployment}
deliveries: {deliveries}
routes:
  - repository: {REPOSITORY}
    branch: master
    rollout: config/rollouts/web.yaml
    image: registry.example.com/hello/world:{{sha}}
  - repository: {REPOSITORY}
    tag: "v*"
    rollout: config/rollouts/web.yaml
    image: registry.example.com/hello/world:{{ref_name}}
  - repository: {REPOSITORY}
    branch: "feature/*"
    rollout: {preview}
    image: registry.example.com/hello/world:{{ref_name}}
  - repository: {GITLAB_REPOSITORY}
    provider: gitlab
    branch: master
    rollout: {gitlab}
    image: registry.example.com/mike/diaspora:{{short_sha}}
"""


def gitlab_signed_headers(
    body: bytes,
    *,
    event: str = "Push Hook",
    delivery: str | None = None,
    key: bytes = GITLAB_SIGNING_KEY,
    timestamp: int | None = None,
) -> dict[str, str]:
    """GitLab's headers for a webhook with a signing token (no plain token): ``webhook-id``,
    ``webhook-timestamp`` and ``webhook-signature`` over ``{id}.{timestamp}.{body}``."""
    delivery = delivery or str(uuid.uuid4())
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(key, f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        k: v for k, v in gitlab_headers(event=event, delivery=delivery).items() if k != "X-Gitlab-Token"
    }
    return {
        **headers,
        "webhook-id": delivery,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
