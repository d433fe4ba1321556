"""`RolloutRequest`: what starts a rollout, from a webhook, the Prefect UI or the CLI.

It is the rollout flow's parameter model, so the Prefect UI renders it as a form and the server
validates it. It holds no Prefect or Kubernetes types.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["OCI_REFERENCE", "RolloutRequest", "is_valid_image_reference"]

# An OCI image reference: [registry[:port]/]path[:tag][@digest], after the distribution spec's grammar.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
)
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
OCI_REFERENCE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$")


def is_valid_image_reference(image: str) -> bool:
    """Whether `image` is a syntactically valid OCI reference (at most 255 characters for the name)."""
    return len(image) <= 512 and OCI_REFERENCE.fullmatch(image) is not None


class RolloutRequest(BaseModel):
    """Roll out `image` to the target of the rollout spec at `spec`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(description="Path of the rollout spec (YAML), relative to the working directory.")
    image: str = Field(description="The new image for the target container.")
    rollout_id: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        description="Id of this rollout (default: derived from the target and the image).",
    )
    triggered_by: str = Field(
        default="manual", max_length=200, description="Who or what started it (e.g. github push a1b2c3d)."
    )

    @field_validator("image")
    @classmethod
    def _image_is_an_oci_reference(cls, value: str) -> str:
        if not is_valid_image_reference(value):
            raise ValueError(f"not a valid OCI image reference: {value!r}")
        return value
