"""Secrets read from the environment: a variable's value, or the file its ``_FILE`` twin names.

A secret mounted as a file (a Kubernetes Secret volume, a projected ServiceAccount token) is the
safer way: it is not in the process's environment, which Prefect shows with a run's job variables.
Messages name the variable and the file, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from canaryflow.errors import InputError

__all__ = ["read_secret", "secret_source"]


def read_secret(name: str, env: Mapping[str, str], *, error: type[InputError] = InputError) -> str | None:
    """The secret in variable `name`, or in the file named by ``{name}_FILE``; `None` when neither
    is set. A trailing newline of the file is not part of the secret.

    Raises
    ------
    InputError
        (`error`) When both are set, the file cannot be read, or the secret is empty, has
        whitespace around it or a control character in it (a line break would go into a header
        and its error messages); the message names the variable, never the value.
    """
    value, file = env.get(name), env.get(f"{name}_FILE")
    if value is not None and file is not None:
        raise error(f"set {name} or {name}_FILE, not both")
    if file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__  # never the file's text
            raise error(f"{name}_FILE: cannot read the secret file {file}: {why}") from exc
    if value is None:
        return None
    where = secret_source(name, env)
    if not value:
        raise error(f"{where} is empty")
    if value != value.strip():
        raise error(f"{where} starts or ends with whitespace; set the secret without it")
    if not value.isprintable():
        raise error(f"{where} holds a line break or another control character; set the secret without it")
    return value


def secret_source(name: str, env: Mapping[str, str]) -> str:
    """Where the secret `read_secret` read came from, for messages: the variable, or the file."""
    file = env.get(f"{name}_FILE")
    return name if file is None else f"the secret in {name}_FILE ({file})"
