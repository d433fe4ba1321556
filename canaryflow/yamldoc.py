"""YAML documents validated by pydantic models, with every problem as ``FILE:LINE PATH: MESSAGE``.

Shared by the rollout spec loader (`canaryflow.spec.loading`) and the webhook routes
(`canaryflow.routes`). ruamel.yaml keeps the line of every key and item, so a pydantic error
location such as ``('spec', 'steps', 2, 'setWeight')`` becomes ``web.yaml:14 spec.steps[2].setWeight``;
pydantic's messages are rephrased in the words of a config file ("must be ...", "unknown key ...
(did you mean ...)").
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from canaryflow.errors import SpecError

__all__ = [
    "Loc",
    "dotted_path",
    "known_keys",
    "line_of",
    "located",
    "parse_document",
    "plain",
    "validation_problems",
]

#: A location in a document: keys and list indices from the root.
Loc = tuple[str | int, ...]


def parse_document(text: str, source: str, *, what: str) -> Any:
    """Parse YAML `text` with line numbers (`what` names the kind of file in errors).

    Raises
    ------
    SpecError
        Not YAML (``FILE:LINE reason``), or no document at all.
    """
    try:
        document = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = exc.problem or exc.context or "not valid YAML"
        if "another document" in reason:  # ruamel: "expected a single document ... but found another"
            reason = f"a second document (---): one {what} per file"
        raise SpecError(f"{source}: not valid YAML", problems=[f"{source}:{line} {reason}"]) from exc
    except YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML", problems=[f"{source}:1 {exc}"]) from exc
    except RecursionError as exc:
        raise SpecError(
            f"{source}: not a {what}", problems=[f"{source}:1 lists or mappings nested too deeply"]
        ) from exc
    if document is None:
        raise SpecError(f"{source}: empty {what}", problems=[f"{source}:1 the file holds no document"])
    return document


def plain(node: Any) -> Any:
    """ruamel's round-trip containers and scalars as plain dicts, lists, str, int, float, bool."""
    if isinstance(node, dict):
        return {str(key): plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(item) for item in node]
    if isinstance(node, bool):
        return bool(node)
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def dotted_path(loc: Sequence[str | int]) -> str:
    """``('spec', 'steps', 2, 'setWeight')`` -> ``spec.steps[2].setWeight``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(document: Any, loc: Loc) -> int:
    """The 1-based line of `loc` in the document (of its nearest existing ancestor)."""
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
    return int(line) + 1


def located(document: Any, loc: Loc, message: str) -> tuple[int, str]:
    """(1-based line, ``PATH: MESSAGE``) for a location in the document."""
    return line_of(document, loc), f"{dotted_path(loc) or '(document)'}: {message}"


def validation_problems(
    error: ValidationError,
    document: Any,
    source: str,
    model: type[BaseModel],
    *,
    patterns: Mapping[str, str] | None = None,
    also: Sequence[tuple[Loc, str]] = (),
) -> list[str]:
    """Every error of validating `document` against `model`, ``FILE:LINE PATH: MESSAGE``, by line,
    with the cross-field problems `also` found by the validators that ran.

    `patterns` says in words what a field's regular expression asks for (``"must be ..."``);
    without words for it, a pattern mismatch shows the expression.
    """
    found = [
        located(document, _loc(e, document), _message(e, model, patterns or {}))
        for e in _relevant(error.errors())
    ] + [located(document, loc, message) for loc, message in also]
    return [f"{source}:{line} {text}" for line, text in sorted(found, key=lambda p: p[0])]


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
        if tag and (not last or error["type"] == "value_error"):
            continue  # the discriminator's tag, not a key of the document (last: the item's own check)
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


def _message(error: ErrorDetails, model: type[BaseModel], patterns: Mapping[str, str]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_key(str(error["loc"][-1]) if error["loc"] else "", model)
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
        return "must be a string" + _typed_by_yaml(error.get("input"))
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    bounds = {"greater_than_equal": "at least", "less_than_equal": "at most", "greater_than": "more than"}
    bounds |= {"less_than": "less than", "too_short": "at least", "too_long": "at most"}
    if kind in bounds:
        return _bound_message(kind, bounds[kind], ctx)
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return patterns.get(pattern, f"must match {pattern}")
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _typed_by_yaml(given: object) -> str:
    """Why a value written as text is not a string, when YAML typed it (``42``, ``1.10``, ``true``,
    ``2026-12-07``)."""
    if isinstance(given, date):
        return " (YAML reads this value as a date: quote it)"
    if isinstance(given, bool):
        return " (YAML reads this value as true or false: quote it)"
    if isinstance(given, int | float):
        return " (YAML reads this value as a number: quote it)"
    return ""


def _relevant(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Leave out "too short" for a list whose items failed: the items' own errors say why."""
    failed = [tuple(e["loc"]) for e in errors]
    return [
        e
        for e in errors
        if e["type"] != "too_short"
        or not any(len(loc) > len(e["loc"]) and loc[: len(e["loc"])] == tuple(e["loc"]) for loc in failed)
    ]


def _unknown_key(key: str, model: type[BaseModel]) -> str:
    known = known_keys(model)
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


@cache
def known_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """Every key a document of `model` may use anywhere (for "did you mean" suggestions)."""
    keys: set[str] = set()
    _collect_keys(model.model_json_schema(by_alias=True, mode="validation"), keys)
    return tuple(sorted(keys))


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
