"""Query templates: PromQL with ``{namespace} {app} {track} {interval}`` placeholders.

PromQL uses braces itself (``rate(x{code="500"}[1m])``), so `str.format` cannot render it. A
placeholder here is a brace pair around a bare identifier, which is never valid PromQL; every other
brace is left alone. An identifier that is not one of `VARIABLES` is an error, not left in place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["VARIABLES", "render", "unknown_variables", "variables"]

#: The variables a query template may use.
VARIABLES: frozenset[str] = frozenset({"namespace", "app", "track", "interval"})

_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def variables(template: str) -> set[str]:
    """Every placeholder name used in `template`."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(template)}


def unknown_variables(template: str) -> list[str]:
    """Placeholder names in `template` that are not in `VARIABLES`, sorted."""
    return sorted(variables(template) - VARIABLES)


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
