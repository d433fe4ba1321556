"""Query templates: PromQL with ``{namespace} {app} {track} {interval} {cell}`` placeholders.

PromQL uses braces itself (``rate(x{code="500"}[1m])``), so `str.format` cannot render it. A
placeholder here is a brace pair around a bare identifier, which is never valid PromQL; every other
brace is left alone. An identifier that is not one of `VARIABLES` is an error, not left in place.

``{cell}`` is the label matchers of the cell a rollout runs in, when a release shares one
Prometheus between cells (`cell_matchers`: ``, cluster="eu-1"``, with its leading comma; empty
outside such a cell). It goes at the end of a selector's matchers, as in the default metrics:
``http_requests_total{namespace="{namespace}", app="{app}", track="{track}"{cell}}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

__all__ = [
    "HEADER_NAME",
    "LABEL_NAME",
    "VARIABLES",
    "cell_matchers",
    "format_labels",
    "name_value_entries",
    "parse_labels",
    "render",
    "selected_names",
    "unknown_variables",
    "variables",
]

#: The variables a query template may use.
VARIABLES: frozenset[str] = frozenset({"namespace", "app", "track", "interval", "cell"})
#: A Prometheus label name that a user may match on (names starting with ``__`` are reserved).
LABEL_NAME = re.compile(r"^(?!__)[a-zA-Z_][a-zA-Z0-9_]*$")
#: An HTTP header name (RFC 9110's token), as the Prometheus settings carry them.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def variables(template: str) -> set[str]:
    """Every placeholder name used in `template`."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(template)}


def unknown_variables(template: str) -> list[str]:
    """Placeholder names in `template` that are not in `VARIABLES`, sorted."""
    return sorted(variables(template) - VARIABLES)


def name_value_entries(text: str) -> Iterator[tuple[int, str, str | None]]:
    """The entries of ``name=value,name=value`` text (an environment variable's way to carry a
    mapping), each as ``(number, name, value)``: numbered from 1, stripped, the value None where
    the entry is not name=value, and the name empty where it has no ``=`` (so that a message need
    not quote what may be a value); empty entries are skipped. Values may not hold ``,``."""
    for number, part in enumerate((p.strip() for p in text.split(",")), start=1):
        if part:
            name, sep, value = (x.strip() for x in part.partition("="))
            yield number, name if sep else "", value if sep and value else None


def parse_labels(text: str) -> dict[str, str]:
    """Labels written ``name=value,name=value`` (as an environment variable carries a cell's);
    empty text gives none. Values may not hold ``,``; ValueError names what is wrong."""
    labels: dict[str, str] = {}
    for number, name, value in name_value_entries(text):
        if value is None:
            raise ValueError(f"entry {number}{f' ({name!r})' if name else ''} is not name=value")
        if not LABEL_NAME.match(name):
            raise ValueError(
                f"{name!r} is not a Prometheus label name (letters, digits, _; not a digit or __ first)"
            )
        if name in labels:
            raise ValueError(f"label {name!r} is given twice")
        labels[name] = value
    return labels


def format_labels(labels: Mapping[str, str]) -> str:
    """`labels` as `parse_labels` reads them (sorted by name)."""
    bad = [v for v in labels.values() if "," in v or not v or v != v.strip()]
    if bad:
        raise ValueError(
            "label values must be non-empty, hold no ',' and neither start nor end with a space: "
            + ", ".join(map(repr, bad))
        )
    return ",".join(f"{name}={value}" for name, value in sorted(labels.items()))


def cell_matchers(labels: Mapping[str, str]) -> str:
    """The value of ``{cell}`` for a cell told apart by `labels`: ``, name="value"`` per label,
    the values escaped as PromQL strings; empty for no labels.

    Raises
    ------
    ValueError
        A label name that is not a Prometheus label name.
    """
    bad = sorted(name for name in labels if not LABEL_NAME.match(name))
    if bad:
        raise ValueError(f"not a Prometheus label name: {', '.join(map(repr, bad))}")
    return "".join(f", {name}={_promql_string(value)}" for name, value in sorted(labels.items()))


def _promql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render(template: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder with its value.

    Raises
    ------
    KeyError
        When the template uses a variable that `values` does not give (the message names it).
    """
    missing = sorted(variables(template) - set(values))
    if missing:
        raise KeyError(f"template variable(s) without a value: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


#: PromQL's keywords that can stand before a brace or a bracket (``x or {job="y"}``): never names.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "on", "ignoring", "group_left", "group_right", "by", "without",
     "offset", "atan2"}
)  # fmt: skip
_COMMENT = re.compile(r"#[^\n]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")


def selected_names(promql: str) -> list[str]:
    """The metric names a rendered PromQL expression selects as ``name{...}`` or ``name[...]``, in
    order, each once; names inside string literals or comments, keywords and function names are not
    among them, nor is a bare name (``sum(foo)``: not told apart from a keyword here)."""
    bare = _COMMENT.sub("", _STRING.sub('""', promql))
    names = (m.group(1) for m in _SELECTOR.finditer(bare))
    return list(dict.fromkeys(name for name in names if name not in _KEYWORDS))
