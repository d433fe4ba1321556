"""The error tree: one root, split by what the caller does next, with the exit codes of the README.

The checks cover every exception class defined anywhere in ``canaryflow`` and ``flows``, not only
those of ``canaryflow/errors.py``: one defined elsewhere must join the same tree and be drawn in
its docstring.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import canaryflow
import canaryflow.errors as errors
import flows

#: Exceptions that never leave the code that raises them, and why.
INTERNAL = {
    "flows.rollout.RolloutStopped": "control flow inside the rollout flow, caught there",
    "flows.stops.PromoteRequested": "control flow inside the rollout flow (promote --full), caught there",
}


def _modules(package: ModuleType) -> list[ModuleType]:
    names = [m.name for m in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")]
    return [importlib.import_module(name) for name in names if not name.endswith("__main__")]


def _ours() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in [canaryflow, flows, *_modules(canaryflow), *_modules(flows)]:
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [cls for name, cls in sorted(found.items()) if name not in INTERNAL]


def test_the_walk_sees_errors_defined_outside_errors_py() -> None:
    defined_elsewhere = {cls.__name__ for cls in _ours() if cls.__module__ != errors.__name__}
    assert {"Superseded", "SlotLost"} <= defined_elsewhere


def test_every_error_is_rooted_in_canaryflow_error() -> None:
    for cls in _ours():
        assert issubclass(cls, errors.CanaryflowError), cls


def test_every_error_is_either_transient_or_permanent() -> None:
    for cls in _ours():
        if cls in (errors.CanaryflowError, errors.TransientError, errors.PermanentError):
            continue
        transient = issubclass(cls, errors.TransientError)
        permanent = issubclass(cls, errors.PermanentError)
        assert transient != permanent, cls


def test_every_error_is_drawn_in_the_docstring_and_those_of_errors_py_are_exported() -> None:
    doc = errors.__doc__ or ""
    for cls in _ours():
        assert re.search(rf"\b{cls.__name__}\b", doc), (
            f"{cls.__name__} missing from the tree in the docstring"
        )
        if cls.__module__ == errors.__name__:
            assert cls.__name__ in errors.__all__, cls


def test_the_readme_table_and_the_exit_codes_agree() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = dict(re.findall(r"^\| ([0-9]) \| ([a-z ]+):", readme, flags=re.M))
    assert table == {
        "1": "invalid input",
        "2": "usage",
        "3": "cluster",
        "4": "metrics",
        "5": "transient",
        "6": "not promoted",
    }
    assert errors.InputError.exit_code == 1
    assert errors.UsageError.exit_code == 2
    assert errors.ClusterError.exit_code == 3
    assert errors.MetricsError.exit_code == 4
    assert errors.TransientError.exit_code == 5
    assert errors.RolloutAborted.exit_code == 6


def test_no_data_is_a_domain_outcome_not_a_retry() -> None:
    assert issubclass(errors.NoDataError, errors.MetricsError)
    assert not issubclass(errors.NoDataError, errors.TransientError)


def test_transient_errors_carry_a_retry_hint() -> None:
    exc = errors.MetricsUnavailableError("timeout", query="up", retry_after=2.5)
    assert exc.retry_after == 2.5
    assert exc.query == "up"


def test_spec_error_lists_every_problem() -> None:
    exc = errors.SpecError("web.yaml is invalid", problems=["a.yaml:3 spec.x: bad", "a.yaml:9 spec.y: bad"])
    assert exc.problems == ["a.yaml:3 spec.x: bad", "a.yaml:9 spec.y: bad"]
    assert "a.yaml:3 spec.x: bad" in str(exc)
    assert "a.yaml:9 spec.y: bad" in str(exc)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.SpecError("x"), 1),
        (errors.ObservationLogError("x"), 2),
        (errors.UsageError("x"), 2),
        (errors.NotImplementedYetError("x"), 2),
        (errors.NotFoundError("x"), 3),
        (errors.QueryError("x"), 4),
        (errors.ClusterUnavailableError("x"), 5),
        (errors.RolloutAborted("x"), 6),
        (ValueError("x"), 1),
    ],
)
def test_exit_codes_are_distinct_per_family(exc: BaseException, code: int) -> None:
    assert errors.exit_code_for(exc) == code
