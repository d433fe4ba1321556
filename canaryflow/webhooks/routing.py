"""Routing a `PushEvent`: ignore it (with the reason) or name the rollouts it starts.

Pure. Routes are tried in order; a route matches when the repository (and the provider, if the
route names one) is equal, the ref is a branch matching `branch` or a tag matching `tag` (globs
in `fnmatch` style, case-sensitive, where ``*`` also matches ``/``), and, if it has `paths`, when a
changed file matches one of them. When the payload does not list every changed file, a route
with paths matches: a redundant rollout is cheaper than a missed one. For each rollout spec (or
release spec) the first matching route wins, so one push starts a spec at most once; a route with
a release spec starts a release (`ReleaseRequest`), the others a rollout. A release route and a
rollout route that both match a push both start, even when the release's cells run the same
rollout spec: give them different branches or tags.

Deleted refs and refs that are neither branches nor tags are ignored; tag pushes are ignored unless
a route asks for tags. A route that renders an invalid image raises `ImageRenderError` (422): no
rollout of the push is started then, not even one of another route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from canaryflow.requests import ReleaseRequest, RolloutRequest
from canaryflow.routes import Route, render_image
from canaryflow.webhooks.pushes import PushEvent

__all__ = ["Ignore", "PlannedRollout", "Start", "route_push"]


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to start; `reason` says why (it is sent back to the sender)."""

    reason: str


@dataclass(frozen=True, slots=True)
class PlannedRollout:
    """A rollout (or a release) a push starts: the route that matched and the flow's parameter."""

    route: Route
    request: RolloutRequest | ReleaseRequest


@dataclass(frozen=True, slots=True)
class Start:
    """Start these rollouts (at least one, each of a different rollout spec)."""

    rollouts: tuple[PlannedRollout, ...]


def route_push(event: PushEvent, routes: Sequence[Route], *, delivery_id: str) -> Ignore | Start:
    """Decide what `event` starts. `delivery_id` goes into ``triggered_by`` (validated by the caller).

    Raises
    ------
    ImageRenderError
        When a matching route's image cannot be rendered for this push.
    """
    if event.deleted:
        return Ignore(f"the push deletes the {event.ref_type}")
    if event.ref_type == "other":
        return Ignore("the ref is neither a branch nor a tag")
    candidates = [
        r for r in routes if r.repository == event.repository and r.provider in (None, event.provider)
    ]
    if not candidates:
        return Ignore("no route for this repository")
    if event.ref_type == "tag":
        candidates = [r for r in candidates if r.tag is not None]
        if not candidates:
            return Ignore("a tag push, and no route of this repository asks for tags")
    matching = [r for r in candidates if _ref_matches(r, event)]
    if not matching:
        return Ignore(f"no route for this {event.ref_type}")
    matching = [r for r in matching if _paths_match(r, event.changed_files)]
    if not matching:
        return Ignore("no changed file matches the paths of a route")
    planned: dict[str, PlannedRollout] = {}
    for route in matching:
        if route.target not in planned:
            planned[route.target] = PlannedRollout(route, _request(route, event, delivery_id))
    return Start(tuple(planned.values()))


def _ref_matches(route: Route, event: PushEvent) -> bool:
    glob = route.branch if event.ref_type == "branch" else route.tag
    return glob is not None and fnmatchcase(event.ref_name, glob)


def _paths_match(route: Route, changed_files: frozenset[str] | None) -> bool:
    if not route.paths or changed_files is None:
        return True
    return any(fnmatchcase(path, glob) for path in changed_files for glob in route.paths)


def _request(route: Route, event: PushEvent, delivery_id: str) -> RolloutRequest | ReleaseRequest:
    image = render_image(route.image, sha=event.after, ref_name=event.ref_name)
    triggered_by = f"{event.provider} push {event.short_sha} (delivery {delivery_id})"
    if route.release is not None:
        return ReleaseRequest(spec=route.release, image=image, triggered_by=triggered_by)
    assert route.rollout is not None  # a route has one or the other
    return RolloutRequest(
        spec=route.rollout, image=image, triggered_by=triggered_by, committed_at=event.committed_at
    )
