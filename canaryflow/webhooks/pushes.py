"""Push payloads (GitHub ``push``, GitLab ``Push Hook`` and ``Tag Push Hook``) as one typed `PushEvent`.

Pure: a decoded JSON object in, a `PushEvent` out, or `PayloadError` naming the field that is
missing or of the wrong type. Values are checked for type and shape here (commit ids are 40 hex
digits, refs start with ``refs/``); whether a branch name may be rendered into an image is decided
by `canaryflow.routes.render_image`. No FastAPI, no Prefect, no I/O.

The changed files are the union of the commits' ``added``, ``modified`` and ``removed`` lists when
the payload lists every pushed commit, and unknown (`None`) when it does not (GitHub lists at most
2048 commits, GitLab 20 with ``total_commits_count`` telling the real number; a new branch may list
none at all).

The pushed commit's time (``committed_at``: GitHub's ``head_commit.timestamp``, else the listed
commit whose id is ``after``; GitLab's listed commit of that id) starts the lead time of the
change; a payload without it, or with a time that is not ISO 8601 with an offset, leaves it
unknown rather than refusing the push.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from canaryflow.errors import PayloadError

__all__ = [
    "GITHUB_MAX_COMMITS",
    "NULL_SHA",
    "Provider",
    "PushEvent",
    "RefType",
    "parse_github_push",
    "parse_gitlab_push",
]

Provider: TypeAlias = Literal["github", "gitlab"]
RefType: TypeAlias = Literal["branch", "tag", "other"]

NULL_SHA = "0" * 40
#: GitHub's push payload lists at most this many commits.
GITHUB_MAX_COMMITS = 2048
_SHA = re.compile(r"[0-9a-f]{40}")
_MAX_STRING = 1024
_REF_PREFIXES: tuple[tuple[str, RefType], ...] = (("refs/heads/", "branch"), ("refs/tags/", "tag"))


@dataclass(frozen=True, slots=True)
class PushEvent:
    """One push: which repository, which ref, from which commit to which, and what changed."""

    provider: Provider
    repository: str
    ref: str
    ref_type: RefType
    ref_name: str
    before: str
    after: str
    deleted: bool
    forced: bool
    changed_files: frozenset[str] | None
    committed_at: datetime | None = None

    @property
    def short_sha(self) -> str:
        """The first 7 hex digits of the pushed commit."""
        return self.after[:7]


def parse_github_push(payload: Mapping[str, Any]) -> PushEvent:
    """Read a GitHub ``push`` event payload (``X-GitHub-Event: push``)."""
    repository = _string(_mapping(payload, "repository"), "full_name", "repository.full_name")
    ref = _string(payload, "ref")
    before, after = _sha(payload, "before"), _sha(payload, "after")
    deleted = _flag(payload, "deleted") or after == NULL_SHA
    commits = _commits(payload)
    complete = bool(commits) and len(commits) < GITHUB_MAX_COMMITS
    ref_type, ref_name = _split_ref(ref)
    return PushEvent(
        provider="github",
        repository=repository,
        ref=ref,
        ref_type=ref_type,
        ref_name=ref_name,
        before=before,
        after=after,
        deleted=deleted,
        forced=_flag(payload, "forced"),
        changed_files=_changed_files(commits) if complete else None,
        committed_at=_committed_at(payload.get("head_commit"), commits, after),
    )


def parse_gitlab_push(payload: Mapping[str, Any]) -> PushEvent:
    """Read a GitLab ``Push Hook`` or ``Tag Push Hook`` payload (``object_kind`` push or tag_push)."""
    kind = _string(payload, "object_kind")
    if kind not in ("push", "tag_push"):
        raise PayloadError(f"object_kind is {kind[:40]!r}, expected 'push' or 'tag_push'")
    repository = _string(_mapping(payload, "project"), "path_with_namespace", "project.path_with_namespace")
    ref = _string(payload, "ref")
    before, after = _sha(payload, "before"), _sha(payload, "after")
    deleted = after == NULL_SHA or payload.get("checkout_sha", "") is None
    commits = _commits(payload)
    total = payload.get("total_commits_count", len(commits))
    if not isinstance(total, int) or isinstance(total, bool):
        raise PayloadError("total_commits_count is not an integer")
    complete = bool(commits) and total <= len(commits)
    ref_type, ref_name = _split_ref(ref)
    return PushEvent(
        provider="gitlab",
        repository=repository,
        ref=ref,
        ref_type=ref_type,
        ref_name=ref_name,
        before=before,
        after=after,
        deleted=deleted,
        forced=False,
        changed_files=_changed_files(commits) if complete else None,
        committed_at=_committed_at(None, commits, after),
    )


def _split_ref(ref: str) -> tuple[RefType, str]:
    for prefix, ref_type in _REF_PREFIXES:
        if ref.startswith(prefix) and len(ref) > len(prefix):
            return ref_type, ref[len(prefix) :]
    if not ref.startswith("refs/"):
        raise PayloadError(f"ref does not start with refs/: {ref[:100]!r}")
    return "other", ref


def _mapping(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if not isinstance(value, Mapping):
        raise PayloadError(f"{key} is missing or not an object")
    return value


def _string(payload: Mapping[str, Any], key: str, name: str | None = None) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value or len(value) > _MAX_STRING:
        raise PayloadError(f"{name or key} is missing, empty, too long or not a string")
    return value


def _sha(payload: Mapping[str, Any], key: str) -> str:
    value = _string(payload, key)
    if _SHA.fullmatch(value) is None:
        raise PayloadError(f"{key} is not a commit id (40 hex digits)")
    return value


def _flag(payload: Mapping[str, Any], key: str) -> bool:
    value = payload.get(key, False)
    if not isinstance(value, bool):
        raise PayloadError(f"{key} is not a boolean")
    return value


def _commits(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    commits = payload.get("commits", [])
    if not isinstance(commits, list) or not all(isinstance(c, Mapping) for c in commits):
        raise PayloadError("commits is not a list of objects")
    return commits


def _changed_files(commits: list[Mapping[str, Any]]) -> frozenset[str]:
    files: set[str] = set()
    for index, commit in enumerate(commits):
        for key in ("added", "modified", "removed"):
            paths = commit.get(key, [])
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise PayloadError(f"commits[{index}].{key} is not a list of paths")
            files.update(paths)
    return frozenset(files)


def _committed_at(head: object, commits: list[Mapping[str, Any]], sha: str) -> datetime | None:
    """The time of commit `sha`: `head` (GitHub's ``head_commit``) or its entry in `commits`."""
    candidates = [head] if isinstance(head, Mapping) else []
    candidates += [c for c in commits if c.get("id") == sha]
    for commit in candidates:
        stamp = commit.get("timestamp") if isinstance(commit, Mapping) else None
        if not isinstance(stamp, str) or len(stamp) > 64:
            continue
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            continue
        if when.tzinfo is not None:
            return when
    return None
