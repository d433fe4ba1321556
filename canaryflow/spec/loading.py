"""Loading rollout specs from YAML, with every problem reported at once as ``FILE:LINE PATH: MESSAGE``.

The YAML-with-line-numbers machinery is `canaryflow.yamldoc`: a pydantic error location such as
``('spec', 'steps', 2, 'setWeight')`` becomes ``web.yaml:14 spec.steps[2].setWeight``, with the
message in the spec's words ("must be ...", "unknown key ... (did you mean ...)"). Problems that
span fields (`canaryflow.spec.models.cross_check`) are reported the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from canaryflow.errors import SpecError
from canaryflow.spec.models import COLLECT_CROSS_CHECKS, DNS_LABEL, RolloutSpec
from canaryflow.yamldoc import Loc, located, parse_document, plain, validation_problems

__all__ = ["json_schema", "load_spec", "load_spec_text", "validate_files"]

_PATTERNS = {
    DNS_LABEL: "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
}


def load_spec(path: str | os.PathLike[str]) -> RolloutSpec:
    """Read and validate the rollout spec at `path`.

    Raises
    ------
    SpecError
        With one entry in ``problems`` per problem, ``FILE:LINE PATH: MESSAGE``, sorted by line.
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        problem = f"{source}: no such rollout spec (give the path of one; examples are in config/rollouts/)"
        raise SpecError(f"cannot read rollout spec {source}", problems=[problem]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise SpecError(f"cannot read rollout spec {source}", problems=[f"{source}: {reason}"]) from exc
    return load_spec_text(text, source=source)


def load_spec_text(text: str, *, source: str = "<string>") -> RolloutSpec:
    """Validate a rollout spec given as YAML text; `source` names it in the problems."""
    document = parse_document(text, source, what="rollout spec")
    cross: list[tuple[Loc, str]] = []
    try:
        spec = RolloutSpec.model_validate(plain(document), context={COLLECT_CROSS_CHECKS: cross})
    except ValidationError as exc:
        lines = validation_problems(exc, document, source, RolloutSpec, patterns=_PATTERNS)
    else:
        found = sorted((located(document, loc, message) for loc, message in cross), key=lambda p: p[0])
        lines = [f"{source}:{line} {text}" for line, text in found]
    if lines:
        raise SpecError(
            f"{source}: invalid rollout spec ({len(lines)} problem(s))", problems=lines, source=source
        )
    return spec


def validate_files(paths: Iterable[str | os.PathLike[str]], out: TextIO) -> int:
    """Validate each file; print ``FILE: ok`` or its problems to `out`. 0 when all are valid, else 1."""
    status = 0
    for path in paths:
        try:
            load_spec(path)
        except SpecError as exc:
            status = 1
            for problem in exc.problems:
                print(problem, file=out)
        else:
            print(f"{os.fspath(path)}: ok", file=out)
    return status


def json_schema() -> dict[str, Any]:
    """The JSON schema of a rollout spec document (for editors; keys as written in YAML)."""
    schema = RolloutSpec.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
