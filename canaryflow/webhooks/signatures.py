"""Authenticating deliveries: GitHub's HMAC signature, GitLab's token or signing token, and the
secrets behind them.

GitLab's signing token follows the Standard Webhooks specification: the headers ``webhook-id``,
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>``, several
separated by spaces while a token is rotated) over ``{id}.{timestamp}.{body}``, keyed with the bytes
of the token ``whsec_<base64>``. Unlike the plain token it never travels, and the timestamp it
signs bounds a replay to `SIGNATURE_TOLERANCE` seconds.

Pure functions over bytes, plus `load_secret`, which reads a secret from the environment
(``NAME``) or from the file named by ``NAME_FILE``. A `Secret` never shows its value in `repr`,
`str` or a log line; only `reveal` returns it. Comparisons are constant-time
(`hmac.compare_digest`; GitLab tokens are hashed first, so not even their length leaks).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping

from canaryflow.errors import SpecError
from canaryflow.secrets import read_secret, secret_source

__all__ = [
    "GITHUB_SECRET_ENV",
    "GITLAB_SIGNING_TOKEN_ENV",
    "GITLAB_TOKEN_ENV",
    "MIN_SECRET_LENGTH",
    "SIGNATURE_TOLERANCE",
    "Secret",
    "github_signature",
    "load_secret",
    "load_signing_token",
    "standard_webhook_signature",
    "verify_github_signature",
    "verify_gitlab_token",
    "verify_standard_webhook",
]

#: The shortest secret `load_secret` accepts: anything shorter can be guessed offline from one
#: captured signature (``openssl rand -hex 32`` makes a good one).
MIN_SECRET_LENGTH = 16

GITHUB_SECRET_ENV = "CANARYFLOW_GITHUB_SECRET"
GITLAB_TOKEN_ENV = "CANARYFLOW_GITLAB_TOKEN"
GITLAB_SIGNING_TOKEN_ENV = "CANARYFLOW_GITLAB_SIGNING_TOKEN"
#: How far a signed ``webhook-timestamp`` may be from the receiver's clock, in seconds (the
#: Standard Webhooks recommendation): older signed deliveries are refused as replays.
SIGNATURE_TOLERANCE = 300.0
_SIGNING_PREFIX = "whsec_"
_PREFIX = "sha256="


class Secret:
    """A shared secret. Its value is shown by nothing but `reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if not value:
            raise ValueError("a secret cannot be empty")
        self._value = value

    def reveal(self) -> bytes:
        """The secret's bytes, for computing or comparing a signature."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


def github_signature(secret: Secret, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for `body`: ``sha256=<hex HMAC-SHA256>``."""
    return _PREFIX + hmac.new(secret.reveal(), body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: Secret, body: bytes, header: str | None) -> bool:
    """Whether `header` (``X-Hub-Signature-256``) is the HMAC-SHA256 of the raw `body` under `secret`."""
    if header is None or not header.startswith(_PREFIX):
        return False
    expected = github_signature(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.encode("utf-8", errors="replace"))


def verify_gitlab_token(secret: Secret, header: str | None) -> bool:
    """Whether `header` (``X-Gitlab-Token``) equals the secret token."""
    if header is None:
        return False
    given = hashlib.sha256(header.encode("utf-8", errors="replace")).digest()
    return hmac.compare_digest(hashlib.sha256(secret.reveal()).digest(), given)


def standard_webhook_signature(key: Secret, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The ``webhook-signature`` value a Standard Webhooks sender (GitLab's signing token) sends:
    ``v1,`` and the base64 HMAC-SHA256 of ``{webhook_id}.{timestamp}.{body}`` under `key`."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key.reveal(), signed, hashlib.sha256).digest()).decode("ascii")


def verify_standard_webhook(
    key: Secret,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> str | None:
    """Why a Standard Webhooks delivery does not verify, or None when one of the signatures in
    ``webhook-signature`` is the HMAC of ``webhook-id``, ``webhook-timestamp`` and the raw `body`
    under `key` and the timestamp is within `tolerance` seconds of `now`. `headers` by lowercase
    name."""
    webhook_id, timestamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not webhook_id or not timestamp or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return f"webhook-timestamp is not within {tolerance:.0f} s of now (a replay, or a clock off)"
    expected = standard_webhook_signature(key, webhook_id, timestamp, body).encode("ascii")
    given = [part.encode("utf-8", errors="replace") for part in signatures.split()]
    if not any(hmac.compare_digest(expected, candidate) for candidate in given):
        return "webhook-signature does not match the signing token"
    return None


def load_signing_token(name: str, environ: Mapping[str, str] | None = None) -> Secret | None:
    """The key of a signing token ``whsec_<base64>`` in `name` (or the file ``{name}_FILE``
    names), or None when neither is set. SpecError when it is not of that form or its key is
    shorter than `MIN_SECRET_LENGTH` bytes (GitLab makes 32)."""
    token = load_secret(name, environ)
    if token is None:
        return None
    text = token.reveal().decode("utf-8")
    try:
        if not text.startswith(_SIGNING_PREFIX):
            raise ValueError("no prefix")
        key = base64.b64decode(text[len(_SIGNING_PREFIX) :], validate=True)
    except (ValueError, binascii.Error):
        raise SpecError(
            f"{name} is not a signing token: expected whsec_ and base64 (as GitLab shows it)"
        ) from None
    if len(key) < MIN_SECRET_LENGTH:
        raise SpecError(f"{name} holds a key of {len(key)} bytes, too short to sign deliveries")
    return Secret(key)


def load_secret(name: str, environ: Mapping[str, str] | None = None) -> Secret | None:
    """The secret in environment variable `name`, or in the file named by ``{name}_FILE``.

    Returns `None` when neither is set. A trailing newline of the file is not part of the secret.

    Raises
    ------
    SpecError
        When both are set, the file cannot be read, or the secret is weak: shorter than
        `MIN_SECRET_LENGTH` characters, or with spaces around it (the message names the variable,
        never the value).
    """
    env = os.environ if environ is None else environ
    value = read_secret(name, env, error=SpecError)
    if value is None:
        return None
    if len(value) < MIN_SECRET_LENGTH:
        raise SpecError(
            f"{secret_source(name, env)} is shorter than {MIN_SECRET_LENGTH} characters, too weak to "
            "sign deliveries; use a random one (e.g. the output of `openssl rand -hex 32`)"
        )
    return Secret(value.encode("utf-8"))
