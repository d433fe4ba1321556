"""GitHub signatures, GitLab tokens and signing tokens: constant-time checks, secrets that never show."""

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
    load_signing_token,
    standard_webhook_signature,
    verify_github_signature,
    verify_gitlab_token,
    verify_standard_webhook,
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
        ({"X_FILE": "/nonexistent/secret"}, "cannot read the secret file /nonexistent/secret: No such file"),
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


def test_a_weak_secret_in_a_file_names_the_file_variable(tmp_path: Path) -> None:
    file = tmp_path / "secret"
    file.write_text("s3cret-hook\n")
    with pytest.raises(SpecError) as info:
        load_secret("X", {"X_FILE": str(file)})
    assert str(info.value).startswith(f"the secret in X_FILE ({file}) is shorter than 16 characters")
    assert "s3cret-hook" not in str(info.value)


# The Standard Webhooks specification's example (GitLab's signing token follows it): this token,
# id, timestamp and body give exactly this signature.
SW_TOKEN = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID, SW_TIMESTAMP, SW_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _signed(signature: str = SW_SIGNATURE, timestamp: str = SW_TIMESTAMP) -> dict[str, str]:
    return {"webhook-id": SW_ID, "webhook-timestamp": timestamp, "webhook-signature": signature}


def test_signing_token_signature_matches_the_standard_webhooks_example() -> None:
    key = load_signing_token("T", {"T": SW_TOKEN})
    assert key is not None
    assert standard_webhook_signature(key, SW_ID, SW_TIMESTAMP, SW_BODY) == SW_SIGNATURE
    assert verify_standard_webhook(key, _signed(), SW_BODY, now=1614265330 + 299) is None
    rotating = _signed(signature=f"v1,c29tZXRoaW5nIGVsc2U= {SW_SIGNATURE}")  # old and new token
    assert verify_standard_webhook(key, rotating, SW_BODY, now=1614265330) is None


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        (_signed(), SW_BODY + b" ", 1614265330, "does not match"),
        (_signed(signature="v1,AAAA"), SW_BODY, 1614265330, "does not match"),
        (_signed(), SW_BODY, 1614265330 + 301, "not within 300 s"),  # a replay, six minutes on
        (_signed(), SW_BODY, 1614265330 - 301, "not within 300 s"),
        (_signed(timestamp="soon"), SW_BODY, 1614265330, "not within"),
        ({"webhook-id": SW_ID, "webhook-timestamp": SW_TIMESTAMP}, SW_BODY, 1614265330, "missing"),
    ],
)
def test_signed_deliveries_that_do_not_verify_say_why(
    headers: dict[str, str], body: bytes, now: float, reason: str
) -> None:
    key = load_signing_token("T", {"T": SW_TOKEN})
    assert key is not None
    problem = verify_standard_webhook(key, headers, body, now=now)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "not a signing token"),
        ("whsec_not base64!!!!!!!!!!!!!!!!", "not a signing token"),
        ("whsec_c2hvcnQta2V5LXh4eHg=", "too short"),
    ],
)
def test_a_malformed_or_weak_signing_token_is_refused_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        load_signing_token("CANARYFLOW_GITLAB_SIGNING_TOKEN", {"CANARYFLOW_GITLAB_SIGNING_TOKEN": value})
    assert "CANARYFLOW_GITLAB_SIGNING_TOKEN" in str(caught.value)
    assert value not in str(caught.value)
