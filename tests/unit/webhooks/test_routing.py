"""Routing a push: ignored with the reason, or the rollouts it starts (first route per spec wins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.errors import ImageRenderError
from canaryflow.routes import Route, RoutesConfig, load_routes
from canaryflow.webhooks.pushes import PushEvent, parse_github_push, parse_gitlab_push
from canaryflow.webhooks.routing import Ignore, Start, route_push
from tests.unit.webhooks import payloads as p


@pytest.fixture
def config(tmp_path: Path) -> RoutesConfig:
    path = tmp_path / "routes.yaml"
    path.write_text(p.routes_yaml())
    return load_routes(path)


def _route(event: PushEvent, routes: RoutesConfig | list[Route]) -> Ignore | Start:
    table = routes.routes if isinstance(routes, RoutesConfig) else routes
    return route_push(event, table, delivery_id="d-1")


def test_a_branch_push_starts_the_routes_rollout(config: RoutesConfig) -> None:
    decision = _route(parse_github_push(p.github_push()), config)
    assert isinstance(decision, Start)
    (planned,) = decision.rollouts
    assert planned.request.spec == "config/rollouts/web.yaml"
    assert planned.request.image == f"registry.example.com/hello/world:{p.AFTER}"
    assert planned.request.triggered_by == f"github push {p.AFTER[:7]} (delivery d-1)"
    assert planned.request.rollout_id is None
    assert planned.request.committed_at is not None  # where the change's lead time starts
    assert planned.request.committed_at.isoformat() == "2019-05-15T15:20:41-04:00"


def test_a_forced_push_starts_a_rollout_of_the_new_head(config: RoutesConfig) -> None:
    decision = _route(parse_github_push(p.github_push(forced=True)), config)
    assert isinstance(decision, Start)
    assert decision.rollouts[0].request.image.endswith(p.AFTER)


def test_a_tag_push_uses_the_tag_route(config: RoutesConfig) -> None:
    decision = _route(parse_github_push(p.github_push(ref="refs/tags/v2.0.1")), config)
    assert isinstance(decision, Start)
    assert decision.rollouts[0].request.image == "registry.example.com/hello/world:v2.0.1"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (p.github_push(after=p.NULL_SHA, deleted=True), "deletes the branch"),
        (p.github_push(ref="refs/tags/v1", after=p.NULL_SHA, deleted=True), "deletes the tag"),
        (p.github_push(ref="refs/tags/release-1"), "no route for this tag"),
        (p.github_push(ref="refs/heads/develop"), "no route for this branch"),
        (p.github_push(ref="refs/heads/Master"), "no route for this branch"),
        (p.github_push(repository="Codertocat/Other"), "no route for this repository"),
        (p.github_push(ref="refs/notes/commits"), "neither a branch nor a tag"),
    ],
)
def test_ignored_pushes_say_why(config: RoutesConfig, payload: dict[str, object], reason: str) -> None:
    decision = _route(parse_github_push(payload), config)
    assert isinstance(decision, Ignore)
    assert reason in decision.reason


def test_tag_pushes_are_ignored_unless_a_route_asks_for_tags() -> None:
    routes = [
        Route(repository=p.REPOSITORY, branch="*", rollout="r.yaml", image="registry.example.com/a:{sha}")
    ]
    decision = _route(parse_github_push(p.github_push(ref="refs/tags/v1")), routes)
    assert isinstance(decision, Ignore)
    assert "no route of this repository asks for tags" in decision.reason


def test_a_route_for_another_provider_does_not_match(config: RoutesConfig) -> None:
    github_push_to_gitlab_repo = parse_github_push(p.github_push(repository=p.GITLAB_REPOSITORY))
    assert isinstance(_route(github_push_to_gitlab_repo, config), Ignore)
    decision = _route(parse_gitlab_push(p.gitlab_push()), config)
    assert isinstance(decision, Start)
    assert decision.rollouts[0].request.image == "registry.example.com/mike/diaspora:da15608"


def test_an_image_that_does_not_render_refuses_the_whole_push(config: RoutesConfig) -> None:
    with pytest.raises(ImageRenderError, match="not a valid OCI reference"):
        _route(parse_github_push(p.github_push(ref="refs/heads/feature/login")), config)


def _paths_route(rollout: str, *paths: str) -> Route:
    return Route(
        repository=p.REPOSITORY,
        branch="master",
        rollout=rollout,
        image="registry.example.com/a:{sha}",
        paths=paths,
    )


def test_path_filters_match_changed_files_and_unknown_files_match() -> None:
    routes = [_paths_route("web.yaml", "services/web/*"), _paths_route("api.yaml", "services/api/*")]
    web_change = p.github_push(commits=[p.commit(p.AFTER, modified=("services/web/app/main.py",))])
    decision = _route(parse_github_push(web_change), routes)
    assert isinstance(decision, Start)
    assert [r.request.spec for r in decision.rollouts] == ["web.yaml"]
    docs_change = p.github_push(commits=[p.commit(p.AFTER, modified=("docs/index.md",))])
    ignored = _route(parse_github_push(docs_change), routes)
    assert isinstance(ignored, Ignore)
    assert "paths" in ignored.reason
    unknown = p.github_push(created=True, commits=[])
    both = _route(parse_github_push(unknown), routes)
    assert isinstance(both, Start)
    assert [r.request.spec for r in both.rollouts] == ["web.yaml", "api.yaml"]


def test_the_first_route_per_rollout_spec_wins() -> None:
    routes = [
        Route(
            repository=p.REPOSITORY, branch="ma*", rollout="web.yaml", image="registry.example.com/a:{sha}"
        ),
        Route(repository=p.REPOSITORY, branch="*", rollout="web.yaml", image="registry.example.com/b:{sha}"),
    ]
    decision = _route(parse_github_push(p.github_push()), routes)
    assert isinstance(decision, Start)
    assert [r.request.image for r in decision.rollouts] == [f"registry.example.com/a:{p.AFTER}"]


@pytest.mark.parametrize("branch", ["fix@home", "feature/ü", "hotfix#12"])
def test_any_git_branch_rolls_out_an_image_that_does_not_use_its_name(branch: str) -> None:
    routes = [
        Route(repository=p.REPOSITORY, branch="*", rollout="r.yaml", image="registry.example.com/a:{sha}")
    ]
    decision = _route(parse_github_push(p.github_push(ref=f"refs/heads/{branch}")), routes)
    assert isinstance(decision, Start)
    assert decision.rollouts[0].request.image == f"registry.example.com/a:{p.AFTER}"


def test_a_branch_name_an_image_cannot_carry_still_refuses_a_template_that_uses_it() -> None:
    routes = [
        Route(
            repository=p.REPOSITORY, branch="*", rollout="r.yaml", image="registry.example.com/a:{ref_name}"
        )
    ]
    with pytest.raises(ImageRenderError, match="not allowed"):
        _route(parse_github_push(p.github_push(ref="refs/heads/fix@home")), routes)


def test_a_release_route_starts_a_release_beside_a_rollout_route_of_the_same_push() -> None:
    from canaryflow.requests import ReleaseRequest, RolloutRequest

    routes = [
        Route(
            repository=p.REPOSITORY, branch="master", release="config/releases/web.yaml", image="r.io/w:{sha}"
        ),
        Route(
            repository=p.REPOSITORY, branch="master", rollout="config/rollouts/web.yaml", image="r.io/w:{sha}"
        ),
        Route(
            repository=p.REPOSITORY, branch="ma*", release="config/releases/web.yaml", image="r.io/x:{sha}"
        ),
    ]
    decision = _route(parse_github_push(p.github_push()), routes)
    assert isinstance(decision, Start)
    release, rollout = (planned.request for planned in decision.rollouts)
    assert isinstance(release, ReleaseRequest)
    assert (release.spec, release.image) == ("config/releases/web.yaml", f"r.io/w:{p.AFTER}")
    assert release.triggered_by == f"github push {p.AFTER[:7]} (delivery d-1)"
    assert isinstance(rollout, RolloutRequest)
    assert [planned.route.target for planned in decision.rollouts] == [
        "release:config/releases/web.yaml",
        "config/rollouts/web.yaml",
    ]
