"""The routes file: validated models, every problem reported at once with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.errors import SpecError
from canaryflow.routes import (
    DEFAULT_DEPLOYMENT,
    ImageRenderError,
    is_valid_ref_name,
    load_routes,
    render_image,
)
from tests.unit.webhooks import payloads as p

ROOT = Path(__file__).resolve().parents[3]
SHA = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


def test_the_example_routes_file_is_valid() -> None:
    config = load_routes(ROOT / "config" / "routes.yaml")
    assert config.deployment == DEFAULT_DEPLOYMENT
    assert config.routes[0].repository == "Codertocat/Hello-World"
    assert config.routes[0].rollout == "config/rollouts/web.yaml"


def test_defaults_and_the_test_routes(tmp_path: Path) -> None:
    config = load_routes(
        _write(tmp_path, "routes:\n  - {repository: a/b, branch: main, rollout: r.yaml, image: x}\n")
    )
    assert config.deployment == "rollout/rollout"
    assert config.deliveries == ".canaryflow/webhook-deliveries.sqlite3"
    assert config.routes[0].paths == ()
    assert len(load_routes(_write(tmp_path, p.routes_yaml())).routes) == 4


def test_every_problem_is_reported_with_its_line_and_path(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
deployment: not-a-deployment-name
routes:
  - repository: Codertocat/Hello-World
    branch: master
    rollout: /etc/rollout.yaml
    image: registry.example.com/hello/world:{commit}
  - repository: "not a repository"
    branch: main
    tag: "v*"
    rollout: web.yaml
    image: "REGISTRY.example.com/Hello:{sha}"
    colour: blue
  - repository: a/b
    branch: "main branch"
    rollout: r.yaml
    image: x
    pathz: [a]
""",
    )
    with pytest.raises(SpecError, match=r"invalid routes file \(9 problem\(s\)\)") as info:
        load_routes(path)
    assert info.value.problems == [
        f"{path}:1 deployment: must be <flow name>/<deployment name>, e.g. rollout/rollout",
        f"{path}:5 routes[0].rollout: must be a relative path inside the working directory",
        f"{path}:6 routes[0].image: unknown placeholder {{commit}} (allowed: sha, short_sha, ref_name)",
        f"{path}:7 routes[1].repository: must be the repository's full name, owner/name",
        f"{path}:9 routes[1].tag: give exactly one of branch (for branch pushes) or tag (for tag pushes)",
        f"{path}:11 routes[1].image: does not render a valid OCI reference (e.g. for branch main): "
        "'REGISTRY.example.com/Hello:{sha}'",
        f"{path}:12 routes[1].colour: unknown key",
        f"{path}:14 routes[2].branch: must be a glob of letters, digits and . _ * ? [ ] ! / + -",
        f"{path}:17 routes[2].pathz: unknown key (did you mean paths?)",
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("routes: [\n", 2, "not valid YAML"),
        ("routes:\n  - a: 1\n  a: 2\n", 3, "not valid YAML"),
        ("- a\n", 1, "invalid"),
        ("routes: []\n", 1, "invalid"),
        ("# nothing but a comment\n", 1, "empty routes file"),
        ("routes:\n  - repository: a/b\n    rollout: r.yaml\n    image: x\n", 2, "invalid"),
    ],
)
def test_broken_files_name_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpecError, match=message) as info:
        load_routes(path)
    assert info.value.problems
    assert info.value.problems[0].startswith(f"{path}:{line} ")


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_routes(tmp_path / "missing.yaml")


def test_a_spec_given_for_the_routes_is_one_line_saying_so() -> None:
    spec = ROOT / "config" / "rollouts" / "web.yaml"
    with pytest.raises(SpecError) as caught:
        load_routes(spec)
    assert caught.value.summary() == (
        f"{spec}: a Rollout spec, not a routes file: give the routes file (its `routes:` name the specs; "
        "example: config/routes.yaml)"
    )


def test_render_image_placeholders() -> None:
    assert render_image("registry.example.com/w:{sha}", sha=SHA, ref_name="main").endswith(f":{SHA}")
    assert render_image("registry.example.com/w:{short_sha}", sha=SHA, ref_name="main").endswith(":0d1a26e")
    assert render_image("registry.example.com/w:{ref_name}-{short_sha}", sha=SHA, ref_name="v1.2") == (
        "registry.example.com/w:v1.2-0d1a26e"
    )


@pytest.mark.parametrize(
    ("template", "sha", "ref_name", "message"),
    [
        ("registry.example.com/w:{sha}", "HEAD", "main", "40 hex digits"),
        ("registry.example.com/w:{sha}", SHA.upper(), "main", "40 hex digits"),
        ("registry.example.com/w:{ref_name}", SHA, "feature/login", "not a valid OCI reference"),
        ("registry.example.com/w:{ref_name}", SHA, "a;rm -rf /", "not allowed"),
        ("registry.example.com/w:{ref_name}", SHA, "$(id)", "not allowed"),
        ("registry.example.com/w:{ref_name}", SHA, "x..y", "not allowed"),
        ("registry.example.com/w:{ref_name}", SHA, "-rf", "not allowed"),
        ("registry.example.com/w:{tag}", SHA, "main", "unknown placeholder"),
        ("registry.example.com/w:{sha", SHA, "main", "unbalanced"),
    ],
)
def test_render_image_refuses_bad_values_and_bad_results(
    template: str, sha: str, ref_name: str, message: str
) -> None:
    with pytest.raises(ImageRenderError, match=message):
        render_image(template, sha=sha, ref_name=ref_name)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("main", True),
        ("release/1.2", True),
        ("v1.2.3+build", True),
        ("", False),
        ("a b", False),
        ("a/", False),
        ("a.lock", False),
        ("a//b", False),
        ("ünïcode", False),
        ("x" * 201, False),
    ],
)
def test_ref_names(name: str, valid: bool) -> None:
    assert is_valid_ref_name(name) is valid


def test_a_route_starts_a_rollout_or_a_release_never_both_nor_neither(tmp_path: Path) -> None:
    config = load_routes(
        _write(
            tmp_path,
            "releaseDeployment: release/cells\n"
            "routes:\n"
            "  - {repository: a/b, branch: main, release: config/releases/web.yaml, image: x}\n"
            "  - {repository: a/b, branch: main, rollout: config/rollouts/web.yaml, image: x}\n",
        )
    )
    assert config.release_deployment == "release/cells"
    assert [route.target for route in config.routes] == [
        "release:config/releases/web.yaml",
        "config/rollouts/web.yaml",
    ]
    path = _write(
        tmp_path,
        "routes:\n"
        "  - {repository: a/b, branch: main, release: r.yaml, rollout: w.yaml, image: x}\n"
        "  - {repository: a/b, branch: main, image: x}\n"
        "  - {repository: a/b, branch: main, release: ../r.yaml, image: x}\n",
    )
    with pytest.raises(SpecError) as info:
        load_routes(path)
    assert info.value.problems == [
        f"{path}:2 routes[0]: give exactly one of rollout (a rollout spec) or release (a release spec)",
        f"{path}:3 routes[1]: give exactly one of rollout (a rollout spec) or release (a release spec)",
        f"{path}:4 routes[2].release: must be a relative path inside the working directory",
    ]
