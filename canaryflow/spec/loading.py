"""Loading rollout specs from YAML, with every problem reported at once as ``FILE:LINE PATH: MESSAGE``.

ruamel.yaml keeps the line of every key and item, so a pydantic error location such as
``('spec', 'steps', 2, 'setWeight')`` becomes ``web.yaml:14 spec.steps[2].setWeight``. Messages are
rephrased from pydantic's into the spec's words ("must be ...", "unknown key ... (did you mean ...)").
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from canaryflow.errors import SpecError
from canaryflow.spec.models import COLLECT_CROSS_CHECKS, Loc, RolloutSpec, dotted_path

__all__ = ["json_schema", "load_spec", "load_spec_text", "validate_files"]


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
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"cannot read rollout spec {source}", problems=[f"{source}: {reason}"]) from exc
    return load_spec_text(text, source=source)


def load_spec_text(text: str, *, source: str = "<string>") -> RolloutSpec:
    """Validate a rollout spec given as YAML text; `source` names it in the problems."""
    document = _parse(text, source)
    cross: list[tuple[Loc, str]] = []
    problems: list[tuple[int, str]] = []
    try:
        spec = RolloutSpec.model_validate(_plain(document), context={COLLECT_CROSS_CHECKS: cross})
    except ValidationError as exc:
        errors = _relevant(exc.errors())
        problems = [_located(document, _loc(err, document), _message(err)) for err in errors]
    else:
        problems = [_located(document, loc, message) for loc, message in cross]
    if problems:
        lines = [f"{source}:{line} {text}" for line, text in sorted(problems, key=lambda p: p[0])]
        raise SpecError(f"{source}: invalid rollout spec ({len(lines)} problem(s))", problems=lines)
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


def _parse(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = exc.problem or exc.context or "not valid YAML"
        raise SpecError(f"{source}: not valid YAML", problems=[f"{source}:{line} {reason}"]) from exc
    except YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML", problems=[f"{source}:1 {exc}"]) from exc
    if document is None:
        raise SpecError(f"{source}: empty rollout spec", problems=[f"{source}:1 the file holds no document"])
    return document


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers and scalars as plain dicts, lists, str, int, float, bool."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, bool):
        return bool(node)
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _loc(error: ErrorDetails, document: Any) -> Loc:
    """The error's location in the document: drops the tag pydantic inserts for tagged unions."""
    loc: list[str | int] = []
    node = document
    parts = list(error["loc"])
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        tag = (
            isinstance(node, dict) and isinstance(part, str) and part not in node and node.get("type") == part
        )
        if tag and not last:
            continue  # the discriminator's tag, not a key of the document
        loc.append(part)
        node = _child(node, part)
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("type")
    return tuple(loc)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _located(document: Any, loc: Loc, message: str) -> tuple[int, str]:
    """(1-based line, ``PATH: MESSAGE``) for a location in the document."""
    line = _line(document, loc)
    path = dotted_path(loc) or "(document)"
    return line, f"{path}: {message}"


def _line(document: Any, loc: Loc) -> int:
    line = 0
    node = document
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0]
        else:
            if isinstance(node, CommentedMap | CommentedSeq) and line == 0:
                line = node.lc.line
            break
        node = node[part]
    return line + 1


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_key(str(error["loc"][-1]) if error["loc"] else "")
    if kind == "literal_error":
        return f"must be one of: {str(ctx.get('expected', '')).replace(' or ', ', ')}"
    if kind == "union_tag_invalid":
        return f"must be one of: {ctx.get('expected_tags', '')} (got {ctx.get('tag')!r})"
    if kind == "union_tag_not_found":
        return "is required"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "string_type":
        return "must be a string"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    bounds = {"greater_than_equal": "at least", "less_than_equal": "at most", "greater_than": "more than"}
    bounds |= {"less_than": "less than", "too_short": "at least", "too_long": "at most"}
    if kind in bounds:
        return _bound_message(kind, bounds[kind], ctx)
    if kind == "string_pattern_mismatch":
        return "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _relevant(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Leave out "too short" for a list whose items failed: the items' own errors say why."""
    failed = [tuple(e["loc"]) for e in errors]
    return [
        e
        for e in errors
        if e["type"] != "too_short"
        or not any(len(loc) > len(e["loc"]) and loc[: len(e["loc"])] == tuple(e["loc"]) for loc in failed)
    ]


def _unknown_key(key: str) -> str:
    known = _known_keys()
    if key in known:
        return "not allowed here"
    by_lower = {k.lower(): k for k in known}
    near = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.75)
    return "unknown key" + (f" (did you mean {by_lower[near[0]]}?)" if near else "")


def _bound_message(kind: str, words: str, ctx: dict[str, Any]) -> str:
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length", ctx.get("max_length"))
        unit = "character(s)" if ctx.get("field_type") == "Value" else "item(s)"
        return f"must have {words} {limit} {unit}"
    limit = next(iter(ctx.values()), "?")
    return f"must be {words} {limit}"


_KNOWN: list[str] = []


def _known_keys() -> list[str]:
    """Every key a spec may use anywhere (for "did you mean" suggestions)."""
    if not _KNOWN:
        keys: set[str] = set()
        _collect_keys(json.loads(json.dumps(json_schema())), keys)
        _KNOWN.extend(sorted(keys))
    return _KNOWN


def _collect_keys(node: Any, keys: set[str]) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            keys.update(properties)
        for value in node.values():
            _collect_keys(value, keys)
    elif isinstance(node, list):
        for item in node:
            _collect_keys(item, keys)
