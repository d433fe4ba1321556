"""Loading rollout, release and notifications specs from YAML, with every problem reported at once as
``FILE:LINE PATH: MESSAGE``.

The YAML-with-line-numbers machinery is `canaryflow.yamldoc`: a pydantic error location such as
``('spec', 'steps', 2, 'setWeight')`` becomes ``web.yaml:14 spec.steps[2].setWeight``, with the
message in the spec's words ("must be ...", "unknown key ... (did you mean ...)"). Problems that
span fields (`canaryflow.spec.models.cross_check`) are reported the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pydantic import ValidationError

from canaryflow.errors import SpecError
from canaryflow.querytemplates import variables
from canaryflow.spec.models import COLLECT_CROSS_CHECKS, DNS_LABEL, RolloutSpec
from canaryflow.spec.notifications import ENV_NAME, NotificationsSpec
from canaryflow.spec.release import ReleaseSpec
from canaryflow.yamldoc import Loc, line_of, located, parse_document, plain, validation_problems

__all__ = [
    "json_schema",
    "load_notifications",
    "load_notifications_text",
    "load_release",
    "load_release_text",
    "load_spec",
    "load_spec_text",
    "validate_files",
]

_PATTERNS = {
    DNS_LABEL: "must be lowercase letters, digits and '-', starting and ending with a letter or digit",
    ENV_NAME: "must be the name of an environment variable (letters, digits and '_')",
    r"^https?://\S+$": "must be an http:// or https:// URL",
}


def load_spec(path: str | os.PathLike[str]) -> RolloutSpec:
    """Read and validate the rollout spec at `path`.

    Raises
    ------
    SpecError
        With one entry in ``problems`` per problem, ``FILE:LINE PATH: MESSAGE``, sorted by line.
    """
    source = os.fspath(path)
    return load_spec_text(_read(source, "rollout spec", "config/rollouts/"), source=source)


def load_release(path: str | os.PathLike[str]) -> ReleaseSpec:
    """Read and validate the release spec at `path`, and the rollout spec it names (a path
    relative to the working directory, as routes' are).

    Raises
    ------
    SpecError
        With one entry in ``problems`` per problem, ``FILE:LINE PATH: MESSAGE``, sorted by line.
    """
    source = os.fspath(path)
    return load_release_text(_read(source, "release spec", "config/releases/"), source=source)


def load_notifications(path: str | os.PathLike[str]) -> NotificationsSpec:
    """Read and validate the notifications spec at `path` (SpecError as `load_spec`)."""
    source = os.fspath(path)
    return load_notifications_text(_read(source, "notifications spec", "deployments/"), source=source)


def load_notifications_text(text: str, *, source: str = "<string>") -> NotificationsSpec:
    """Validate a notifications spec given as YAML text; `source` names it in the problems."""
    return _validated(NotificationsSpec, text, source, "notifications spec", lambda _spec: [])


def _read(source: str, what: str, examples: str) -> str:
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        problem = f"{source}: no such {what} (give the path of one; examples are in {examples})"
        raise SpecError(f"cannot read {what} {source}", problems=[problem]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise SpecError(f"cannot read {what} {source}", problems=[f"{source}: {reason}"]) from exc


def load_release_text(text: str, *, source: str = "<string>") -> ReleaseSpec:
    """Validate a release spec given as YAML text; `source` names it in the problems. The rollout
    spec it names is loaded too: its problems are reported at ``spec.rollout``."""
    return _validated(ReleaseSpec, text, source, "release spec", _rollout_it_names)


def load_spec_text(text: str, *, source: str = "<string>") -> RolloutSpec:
    """Validate a rollout spec given as YAML text; `source` names it in the problems."""
    return _validated(RolloutSpec, text, source, "rollout spec", lambda _spec: [])


_Spec = TypeVar("_Spec", RolloutSpec, ReleaseSpec, NotificationsSpec)
_KINDS: dict[type[RolloutSpec | ReleaseSpec | NotificationsSpec], str] = {
    RolloutSpec: "Rollout",
    ReleaseSpec: "Release",
    NotificationsSpec: "Notifications",
}
#: The command that takes each kind.
_RUNS = {"Rollout": "rollout", "Release": "release", "Notifications": "notifications apply"}


def _validated(
    model: type[_Spec],
    text: str,
    source: str,
    what: str,
    more: Callable[[_Spec], list[tuple[Loc, str]]],
) -> _Spec:
    """`text` validated as `model`, with the cross-field checks and then `more` (checks that read
    other files); SpecError listing every problem as ``FILE:LINE PATH: MESSAGE``, by line."""
    document = parse_document(text, source, what=what)
    problem = _not_this_kind(document, source, _KINDS[model])
    if problem is not None:
        raise SpecError(f"{source}: not a {what}", problems=[problem], source=source)
    cross: list[tuple[Loc, str]] = []
    try:
        spec = model.model_validate(plain(document), context={COLLECT_CROSS_CHECKS: cross})
    except ValidationError as exc:
        lines = validation_problems(exc, document, source, model, patterns=_PATTERNS, also=cross)
    else:
        cross += more(spec)
        found = sorted((located(document, loc, message) for loc, message in cross), key=lambda p: p[0])
        lines = [f"{source}:{line} {text}" for line, text in found]
    if lines:
        raise SpecError(f"{source}: invalid {what} ({len(lines)} problem(s))", problems=lines, source=source)
    return spec


def _rollout_it_names(release: ReleaseSpec) -> list[tuple[Loc, str]]:
    try:
        rollout = load_spec(release.spec.rollout)
    except SpecError as exc:
        first = exc.problems[0] if exc.problems else exc.summary()
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        named = Path(release.spec.rollout)
        where = ""
        if not named.is_absolute() and not named.exists():
            where = "; a relative path is read from the current directory, as the cells' workers read it"
        return [(("spec", "rollout"), f"{first}{more}{where}")]
    return _cells_can_narrow(release, rollout) + _health_names_ratio_metrics(release, rollout)


def _health_names_ratio_metrics(release: ReleaseSpec, rollout: RolloutSpec) -> list[tuple[Loc, str]]:
    """``health.maxRates`` names ratio metrics of the rollout spec."""
    if release.spec.health is None:
        return []
    ratios = [metric.name for metric in rollout.spec.analysis.metrics if metric.type == "ratio"]
    return [
        (
            ("spec", "health", "maxRates", name),
            f"no ratio metric {name!r} in {release.spec.rollout} (its ratio metrics: "
            f"{', '.join(ratios) or 'none'})",
        )
        for name in release.spec.health.max_rates
        if name not in ratios
    ]


def _cells_can_narrow(release: ReleaseSpec, rollout: RolloutSpec) -> list[tuple[Loc, str]]:
    """A cell told apart by labels needs ``{cell}`` in every query of the rollout spec: without it
    the query would read every cell's series (`canaryflow.querytemplates`)."""
    blind = [
        metric.name
        for metric in rollout.spec.analysis.metrics
        if any("cell" not in variables(template) for template in metric.templates().values())
    ]
    if not blind:
        return []
    return [
        (
            ("spec", "cells", index, "labels"),
            f"the rollout spec's metric(s) {', '.join(map(repr, blind))} have no {{cell}} placeholder, so "
            "these labels cannot narrow their queries to this cell: add {cell} at the end of each "
            "selector's matchers, as the default metrics do",
        )
        for index, cell in enumerate(release.spec.cells)
        if cell.labels
    ]


def validate_files(
    paths: Iterable[str | os.PathLike[str]],
    out: TextIO,
    *,
    routes: Callable[[Path], object] | None = None,
) -> int:
    """Validate each file; print ``FILE: ok`` or its problems to `out`. 0 when all are valid, else 1.
    `routes` loads a webhook routes file (the command line's `canaryflow.routes.load_routes`);
    without it, one is refused as not a spec."""
    status = 0
    for path in paths:
        try:
            kind = _kind(path)
            if routes is not None and kind == _ROUTES:
                routes(Path(path))
            elif kind == "Release":
                load_release(path)
            elif kind == "Notifications":
                load_notifications(path)
            else:
                load_spec(path)
        except SpecError as exc:
            status = 1
            for problem in exc.problems or [exc.summary()]:
                print(problem, file=out)
        else:
            print(f"{os.fspath(path)}: ok", file=out)
    return status


#: What `_kind` says of a webhook routes file (it has no ``kind``; never a spec's kind).
_ROUTES = "<routes>"


def _kind(path: str | os.PathLike[str]) -> str | None:
    """The document's ``kind`` when it is readable YAML naming one (else None: the rollout loader
    reports what is wrong, also of a kind it does not know)."""
    try:
        document = parse_document(Path(path).read_text(encoding="utf-8"), os.fspath(path), what="spec")
    except (OSError, UnicodeDecodeError, SpecError):
        return None
    kind = document.get("kind") if isinstance(document, dict) else None
    if kind is None and isinstance(document, dict) and "routes" in document:
        return _ROUTES
    return kind if isinstance(kind, str) else None


def _not_this_kind(document: Any, source: str, expected: str) -> str | None:
    """The one problem of a document that is not a spec of the `expected` kind at all (webhook
    routes, a kind canaryflow does not know, a spec of another kind), said instead of the schema's
    errors; None for a document of that kind (or of none: the schema says what is missing)."""
    if not isinstance(document, dict):
        return None
    kind = document.get("kind")
    if kind is None and "routes" in document:
        return (
            f"{source}: webhook routes, not a spec: `canaryflow webhook serve --config` reads them "
            "(`canaryflow spec validate` checks them too)"
        )
    if not isinstance(kind, str) or kind == expected:
        return None
    if kind not in _RUNS:
        return (
            f"{source}:{line_of(document, ('kind',))} kind: {kind!r} is not a kind of spec: canaryflow "
            "knows Rollout, Release and Notifications"
        )
    return (
        f"{source}:{line_of(document, ('kind',))} kind: a {kind} spec, where a {expected} spec is expected "
        f"(`canaryflow {_RUNS[kind]}` takes it)"
    )


def json_schema(kind: str = "Rollout") -> dict[str, Any]:
    """The JSON schema of a rollout (or, with `kind` ``Release`` or ``Notifications``, a release or
    notifications) spec document, for editors; keys as written in YAML."""
    models: dict[str, type[RolloutSpec] | type[ReleaseSpec] | type[NotificationsSpec]] = {
        "Release": ReleaseSpec,
        "Notifications": NotificationsSpec,
    }
    model = models.get(kind, RolloutSpec)
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
