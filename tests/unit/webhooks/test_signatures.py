"""GitHub signatures and GitLab tokens: constant-time checks, secrets that never show."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from canaryflow.errors import SpecError
from canaryflow.webhooks.signatures import (
    Secret,
    github_signature,
    load_secret,
    verify_github_signature,
    verify_gitlab_token,
)

# GitHub's documented test vector ("Validating webhook deliveries"): this secret and body give
# exactly this signature.
DOC_SECRET = Secret(b"It's a Secret to Everybody")
DOC_BODY = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_signature_matches_githubs_documented_vector() -> None:
    assert github_signature(DOC_SECRET, DOC_BODY) == DOC_SIGNATURE
    assert verify_github_signature(DOC_SECRET, DOC_BODY, DOC_SIGNATURE)


def test_github_signature_agrees_with_an_hmac_computed_here() -> None:
    body = b'{"ref":"refs/heads/master"}'
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert verify_github_signature(Secret(b"s3cret"), body, expected)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        DOC_SIGNATURE.replace("sha256=", "sha1="),
        DOC_SIGNATURE[:-1],
        DOC_SIGNATURE[:-1] + "0",
        DOC_SIGNATURE.upper(),
        "sha256=" + "é" * 64,
    ],
)
def test_github_signature_refuses_anything_else(header: str | None) -> None:
    assert not verify_github_signature(DOC_SECRET, DOC_BODY, header)


def test_github_signature_covers_every_byte_of_the_body() -> None:
    assert not verify_github_signature(DOC_SECRET, DOC_BODY + b" ", DOC_SIGNATURE)
    assert not verify_github_signature(Secret(b"another secret"), DOC_BODY, DOC_SIGNATURE)


def test_gitlab_token_must_be_equal() -> None:
    secret = Secret(b"token")
    assert verify_gitlab_token(secret, "token")
    for header in (None, "", "toke", "token ", "TOKEN", "tokén"):
        assert not verify_gitlab_token(secret, header)


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret(b"hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret} {secret!r}"
    assert secret.reveal() == b"hunter2"
    with pytest.raises(ValueError, match="empty"):
        Secret(b"")


def test_load_secret_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert load_secret("X", {}) is None
    env_secret = load_secret("X", {"X": "from-the-environment"})
    assert env_secret is not None
    assert env_secret.reveal() == b"from-the-environment"
    file = tmp_path / "secret"
    file.write_text("from-a-secret-file\n")
    file_secret = load_secret("X", {"X_FILE": str(file)})
    assert file_secret is not None
    assert file_secret.reveal() == b"from-a-secret-file"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"X": "a", "X_FILE": "/nonexistent"}, "not both"),
        ({"X_FILE": "/nonexistent/secret"}, "cannot read"),
        ({"X": ""}, "empty"),
        ({"X": " "}, "whitespace"),
        ({"X": "  a-long-enough-secret"}, "whitespace"),
        ({"X": "short-secret"}, "shorter than 16 characters"),
    ],
)
def test_load_secret_refuses_ambiguous_unreadable_empty_or_weak(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load_secret("X", environ)
    assert environ.get("X", "").strip() == "" or environ["X"].strip() not in str(info.value)
