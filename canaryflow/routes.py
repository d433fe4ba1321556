"""Trigger routes: which git pushes start which rollout, with which image.

A routes file (YAML) maps a repository and a branch (or tag) glob to a rollout spec (or a release
spec: ``release:`` instead of ``rollout:``, the image then goes to every cell of the release, wave
by wave) and an image template; optional path globs restrict a route to pushes that change
matching files::

    deployment: rollout/rollout          # the Prefect deployment that runs rollouts (default)
    releaseDeployment: release/release   # the one that runs releases (default)
    deliveries: .canaryflow/webhook-deliveries.sqlite3   # pushes already handled (SQLite)
    routes:
      - repository: Codertocat/Hello-World
        branch: master
        rollout: config/rollouts/web.yaml
        image: registry.example.com/hello/world:{sha}

Image templates know three placeholders, `{sha}` (40 hex digits), `{short_sha}` (its first 7) and
`{ref_name}` (the branch or tag name); `render_image` validates the values before it renders and
the result after. This module is pure (no I/O besides reading the routes file in `load_routes`); it
knows nothing of HTTP, payload formats or Prefect.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from canaryflow.errors import ImageRenderError, SpecError
from canaryflow.requests import is_valid_image_reference
from canaryflow.yamldoc import parse_document, plain, validation_problems

__all__ = [
    "DEFAULT_DELIVERIES",
    "DEFAULT_DEPLOYMENT",
    "DEFAULT_RELEASE_DEPLOYMENT",
    "PLACEHOLDERS",
    "RELEASE_PREFIX",
    "Route",
    "RoutesConfig",
    "is_valid_ref_name",
    "load_routes",
    "render_image",
]

DEFAULT_DEPLOYMENT = "rollout/rollout"
DEFAULT_RELEASE_DEPLOYMENT = "release/release"
#: How a route that starts a release names it (`Route.target`).
RELEASE_PREFIX = "release:"
DEFAULT_DELIVERIES = ".canaryflow/webhook-deliveries.sqlite3"
#: The placeholders an image template may use.
PLACEHOLDERS: frozenset[str] = frozenset({"sha", "short_sha", "ref_name"})

_SHA = re.compile(r"[0-9a-f]{40}")
_REF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}")
_BRACES = re.compile(r"\{([^{}]*)\}")
_REPOSITORY = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$"
_GLOB = r"^[A-Za-z0-9_.*?\[\]!/+-]+$"
_DEPLOYMENT = r"^[^/\s]+/[^/\s]+$"
#: What the patterns ask for, in words (for the problems of an invalid routes file).
_PATTERNS = {
    _REPOSITORY: "must be the repository's full name, owner/name",
    _GLOB: "must be a glob of letters, digits and . _ * ? [ ] ! / + -",
    _DEPLOYMENT: "must be <flow name>/<deployment name>, e.g. rollout/rollout",
}


def is_valid_ref_name(name: str) -> bool:
    """Whether `name` is a branch or tag name made of safe characters (a subset of git's rules)."""
    return (
        _REF_NAME.fullmatch(name) is not None
        and ".." not in name
        and "//" not in name
        and not name.endswith(("/", ".", ".lock"))
    )


def _placeholder_problems(template: str) -> list[str]:
    problems = [
        f"unknown placeholder {{{name}}} (allowed: sha, short_sha, ref_name)"
        for name in _BRACES.findall(template)
        if name not in PLACEHOLDERS
    ]
    rest = _BRACES.sub("", template)
    if "{" in rest or "}" in rest:
        problems.append("unbalanced brace")
    return problems


def render_image(template: str, *, sha: str, ref_name: str) -> str:
    """Render `template` for a push of commit `sha` to `ref_name`.

    Raises
    ------
    ImageRenderError
        When `sha` is not 40 lowercase hex digits, the template uses ``{ref_name}`` and `ref_name`
        has characters outside ``A-Z a-z 0-9 . _ / + -`` (or git forbids it), or the result is
        not a valid OCI reference (e.g. ``{ref_name}`` of ``feature/x`` in a tag). A branch name
        the template does not use is not checked: ``fix@home`` or ``feature/ü`` are valid git
        branches, and their pushes roll out ``{sha}`` images like any other.
    """
    if _SHA.fullmatch(sha) is None:
        raise ImageRenderError(f"commit id is not 40 hex digits: {sha[:50]!r}")
    if "{ref_name}" in template and not is_valid_ref_name(ref_name):
        raise ImageRenderError(f"ref name has characters that are not allowed: {ref_name[:100]!r}")
    if problems := _placeholder_problems(template):
        raise ImageRenderError(f"image template {template!r}: {'; '.join(problems)}")
    values = {"sha": sha, "short_sha": sha[:7], "ref_name": ref_name}
    image = _BRACES.sub(lambda m: values[m.group(1)], template)
    if not is_valid_image_reference(image):
        raise ImageRenderError(f"rendered image is not a valid OCI reference: {image!r}")
    return image


class Route(BaseModel):
    """Pushes to `repository` on a branch matching `branch` (or a tag matching `tag`) roll out
    `rollout` (or release `release`) with the image rendered from `image`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: str = Field(pattern=_REPOSITORY, max_length=255, description="Full name: owner/name.")
    branch: str | None = Field(default=None, pattern=_GLOB, max_length=200, description="Branch glob.")
    tag: str | None = Field(
        default=None, pattern=_GLOB, max_length=200, validate_default=True, description="Tag glob."
    )
    rollout: str | None = Field(
        default=None, min_length=1, max_length=500, description="Path of the rollout spec."
    )
    release: str | None = Field(
        default=None, min_length=1, max_length=500, description="Path of a release spec (instead of rollout)."
    )
    image: str = Field(min_length=1, max_length=500, description="Image template.")
    paths: tuple[str, ...] = Field(default=(), description="Only when a changed file matches a glob.")
    provider: Literal["github", "gitlab"] | None = Field(default=None, description="Default: both.")

    @field_validator("rollout", "release")
    @classmethod
    def _spec_is_a_relative_path(cls, value: str | None) -> str | None:
        if value is not None and ("\x00" in value or value.startswith("/") or ".." in Path(value).parts):
            raise ValueError("must be a relative path inside the working directory")
        return value

    @model_validator(mode="after")
    def _rollout_or_release(self) -> Route:
        if (self.rollout is None) == (self.release is None):
            raise ValueError("give exactly one of rollout (a rollout spec) or release (a release spec)")
        return self

    @property
    def target(self) -> str:
        """What the route starts, as it names it in the outbox and idempotency keys: the rollout
        spec's path, or ``release:`` and the release spec's."""
        return self.rollout if self.rollout is not None else f"{RELEASE_PREFIX}{self.release}"

    @field_validator("image")
    @classmethod
    def _image_template_renders(cls, value: str) -> str:
        if problems := _placeholder_problems(value):
            raise ValueError("; ".join(problems))
        try:
            render_image(value, sha="0" * 40, ref_name="main")
        except ImageRenderError as exc:
            raise ValueError(
                f"does not render a valid OCI reference (e.g. for branch main): {value!r}"
            ) from exc
        return value

    @field_validator("paths")
    @classmethod
    def _paths_are_globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for glob in value:
            if not glob or "\x00" in glob or len(glob) > 500:
                raise ValueError(f"not a path glob: {glob!r}")
        return value

    @field_validator("tag")
    @classmethod
    def _exactly_one_of_branch_and_tag(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "branch" in info.data and (info.data["branch"] is None) == (value is None):
            raise ValueError("give exactly one of branch (for branch pushes) or tag (for tag pushes)")
        return value


class RoutesConfig(BaseModel):
    """A routes file: the rollout and release deployments, the delivery store and the routes,
    tried in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    deployment: str = Field(
        default=DEFAULT_DEPLOYMENT,
        pattern=_DEPLOYMENT,
        description='The Prefect deployment that runs rollouts: "<flow name>/<deployment name>".',
    )
    release_deployment: str = Field(
        default=DEFAULT_RELEASE_DEPLOYMENT,
        alias="releaseDeployment",
        pattern=_DEPLOYMENT,
        description="The Prefect deployment that runs releases (routes with a release).",
    )
    deliveries: str = Field(
        default=DEFAULT_DELIVERIES, min_length=1, description="SQLite file of the deliveries handled."
    )
    routes: list[Route] = Field(min_length=1)


def load_routes(path: Path) -> RoutesConfig:
    """Read and validate a routes file.

    Raises
    ------
    SpecError
        With every problem as ``FILE:LINE PATH: MESSAGE`` when the file cannot be read, is not
        YAML, or does not validate.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the routes file: {exc}") from exc
    document = parse_document(text, str(path), what="routes file")
    kind = document.get("kind") if isinstance(document, dict) else None
    if isinstance(kind, str) and "routes" not in document:  # a spec given where routes belong
        raise SpecError(
            f"{path}: a {kind} spec, not a routes file: give the routes file (its `routes:` name the specs; "
            "example: config/routes.yaml)"
        )
    try:
        return RoutesConfig.model_validate(plain(document))
    except ValidationError as exc:
        problems = validation_problems(exc, document, str(path), RoutesConfig, patterns=_PATTERNS)
        raise SpecError(
            f"{path}: invalid routes file ({len(problems)} problem(s))", problems=problems, source=str(path)
        ) from exc
