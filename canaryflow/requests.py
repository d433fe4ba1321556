"""`RolloutRequest`: what starts a rollout, from a webhook, the Prefect UI or the CLI.

It is the rollout flow's parameter model, so the Prefect UI renders it as a form and the server
validates it: the JSON schema carries the patterns of an image reference and of a spec path, so
the form refuses ``Bad Image!!`` or ``/etc/passwd`` before a run exists. It holds no Prefect or
Kubernetes types. `new_request` builds one from a command line's values and turns a refusal into
one line that names the value.
"""

from __future__ import annotations

import re

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from canaryflow.errors import InputError

__all__ = [
    "BY_DEMO",
    "DNS_LABEL",
    "ID_PATTERN",
    "OCI_REFERENCE",
    "SPEC_PATH",
    "CellTarget",
    "ReleaseRequest",
    "RolloutRequest",
    "TargetOverride",
    "UndoRequest",
    "by_release",
    "is_valid_image_reference",
    "new_release_request",
    "new_request",
    "started_by_demo",
]

# An OCI image reference: [registry[:port]/]path[:tag][@digest], after the distribution spec's grammar.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
)
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_OCI = rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$"
OCI_REFERENCE = re.compile(_OCI)
#: A spec path as a form may give it: a ``.yaml`` or ``.yml`` file, relative to the working
#: directory of the run (a worker's checkout) or absolute; ``..`` segments are refused by the
#: validator (a JSON schema pattern cannot say so portably).
SPEC_PATH = r"^\S.*\.ya?ml$"
_EXAMPLE_IMAGE = "registry.example.com/shop/web:1.2.0"


def is_valid_image_reference(image: str) -> bool:
    """Whether `image` is a syntactically valid OCI reference (at most 512 characters)."""
    return len(image) <= 512 and OCI_REFERENCE.fullmatch(image) is not None


#: ``triggered_by`` of the rollouts and releases ``canaryflow demo`` starts (reserved for it): their
#: stack (cluster, traffic, Prometheus, workers) ends with the demo, so they cannot be run again.
BY_DEMO = "demo"


_BY_RELEASE = "release "


def by_release(release_id: str, triggered_by: str) -> str:
    """``triggered_by`` of a cell's rollout in release `release_id`, which `triggered_by` started."""
    return f"{_BY_RELEASE}{release_id}: {triggered_by}"[:200]


def started_by_demo(triggered_by: str) -> bool:
    """Whether ``canaryflow demo`` started it: a rollout of the demo, or a cell's rollout of a
    release of the demo (`by_release`)."""
    return triggered_by == BY_DEMO or (
        triggered_by.startswith(_BY_RELEASE) and triggered_by.endswith(f": {BY_DEMO}")
    )


#: Names of Kubernetes objects (and of a release's cells): an RFC 1123 label.
DNS_LABEL = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
#: A rollout's or a release's id: an RFC 1123 label of at most 63 characters (it names the run,
#: the report directory and annotations).
ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class TargetOverride(BaseModel):
    """A cell's own target, where it differs from the rollout spec's (each field optional; a
    release spec's cells carry one, and so does a request for a cell: `CellTarget`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=63,
        description="The cell's namespace (default: the spec's).",
    )
    deployment: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=54,
        description="The cell's Deployment (default: the spec's).",
    )
    container: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=63,
        description="The cell's container (default: the spec's).",
    )
    service: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=63,
        description="The cell's Service (default: the spec's).",
    )

    def overrides(self) -> dict[str, str]:
        """The target fields this cell sets (those not None)."""
        return {k: v for k, v in self.model_dump().items() if k in _TARGET_FIELDS and v is not None}


_TARGET_FIELDS = frozenset(TargetOverride.model_fields)


class CellTarget(TargetOverride):
    """The release cell a rollout runs in, and the cell's own target where it differs from the
    rollout spec's (a release sets it: `canaryflow.cells`)."""

    name: str = Field(pattern=DNS_LABEL, max_length=63, description="The cell, as the release spec names it.")


class RolloutRequest(BaseModel):
    """Roll out `image` to the target of the rollout spec at `spec` (for a release's `cell`: to the
    cell's target, the spec's with the cell's overrides)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(
        pattern=SPEC_PATH,
        max_length=500,
        description="Path of the rollout spec (YAML), relative to the working directory of the run, "
        "e.g. config/rollouts/web.yaml.",
    )
    image: str = Field(
        pattern=_OCI,
        max_length=512,
        description=f"The new image for the target container, e.g. {_EXAMPLE_IMAGE}.",
    )
    rollout_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Id of this rollout (default: derived from the target, the image and the cell).",
    )
    triggered_by: str = Field(
        default="manual", max_length=200, description="Who or what started it (e.g. github push a1b2c3d)."
    )
    committed_at: AwareDatetime | None = Field(
        default=None,
        description="When the commit being rolled out was made (from the push), where the change's "
        "lead time starts.",
    )

    cell: CellTarget | None = Field(
        default=None,
        description="The release cell this rollout runs in (set by a release; leave empty otherwise).",
    )

    @field_validator("spec")
    @classmethod
    def _spec_stays_below_the_working_directory(cls, value: str) -> str:
        return _below_working_directory(value)


def _below_working_directory(value: str) -> str:
    if ".." in value.split("/"):
        raise ValueError(f"a spec path must not climb out of its directory ('..'): {value!r}")
    return value


class UndoRequest(BaseModel):
    """Undo the last promotion of the target of the rollout spec at `spec` (for a release's `cell`:
    the cell's target): the stable goes back to the image it ran before, with no analysis."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(pattern=SPEC_PATH, max_length=500, description="Path of the rollout spec (YAML).")
    reason: str = Field(min_length=1, max_length=500, description="Why; recorded on the target.")
    by: str = Field(default="canaryflow", max_length=200, description="Who or what asked.")
    cell: CellTarget | None = Field(default=None, description="The release cell whose target is undone.")
    rollout_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Undo only this rollout's promotion: a target promoted by another since is left alone.",
    )

    @field_validator("spec")
    @classmethod
    def _spec_stays_below_the_working_directory(cls, value: str) -> str:
        return _below_working_directory(value)


class ReleaseRequest(BaseModel):
    """Release `image` to the cells of the release spec at `spec`, wave by wave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(
        pattern=SPEC_PATH,
        max_length=500,
        description="Path of the release spec (YAML), relative to the working directory of the run, "
        "e.g. config/releases/web.yaml.",
    )
    image: str = Field(
        pattern=_OCI, max_length=512, description=f"The new image for every cell, e.g. {_EXAMPLE_IMAGE}."
    )
    triggered_by: str = Field(default="manual", max_length=200, description="Who or what started it.")
    release_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Id of this release (default: the release's name and its flow run's); a release "
        "run again with the id of one that was interrupted carries on where it stopped.",
    )

    @field_validator("spec")
    @classmethod
    def _spec_stays_below_the_working_directory(cls, value: str) -> str:
        return _below_working_directory(value)


def new_request(*, spec: str, image: str, triggered_by: str, rollout_id: str | None = None) -> RolloutRequest:
    """A `RolloutRequest`, or `InputError` naming the first value that is not valid."""
    try:
        return RolloutRequest(spec=spec, image=image, triggered_by=triggered_by, rollout_id=rollout_id)
    except ValidationError as exc:
        raise _input_error(exc, spec=spec, image=image, id_name="rollout id", id_value=rollout_id) from exc


def new_release_request(
    *, spec: str, image: str, triggered_by: str, release_id: str | None = None
) -> ReleaseRequest:
    """A `ReleaseRequest`, or `InputError` naming the first value that is not valid."""
    try:
        return ReleaseRequest(spec=spec, image=image, triggered_by=triggered_by, release_id=release_id)
    except ValidationError as exc:
        raise _input_error(exc, spec=spec, image=image, id_name="release id", id_value=release_id) from exc


def _input_error(
    exc: ValidationError, *, spec: str, image: str, id_name: str, id_value: str | None
) -> InputError:
    """The first problem of a request, in one line that names the value and what to give."""
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "request"
    if field == "image":
        return InputError(f"image {image!r} is not a valid image reference (like {_EXAMPLE_IMAGE})")
    if field == "spec":
        kind = "a release" if id_name == "release id" else "a rollout"
        example = "config/releases/web.yaml" if id_name == "release id" else "config/rollouts/web.yaml"
        return InputError(
            f"spec {spec!r} is not {kind} spec path: give a .yaml or .yml file, without '..' (e.g. {example})"
        )
    if field in ("rollout_id", "release_id"):
        return InputError(f"{id_name} {id_value!r}: use lowercase letters, digits and '-' (at most 63)")
    return InputError(f"{field}: {first['msg']}")
