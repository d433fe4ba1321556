"""The error tree: one root, split by what the caller does next, with distinct exit codes."""

from __future__ import annotations

import inspect

import pytest

import canaryflow.errors as errors


def _ours() -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]


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


def test_every_error_is_exported_and_drawn_in_the_docstring() -> None:
    doc = errors.__doc__ or ""
    for cls in _ours():
        assert cls.__name__ in errors.__all__, cls
        assert cls.__name__ in doc, f"{cls.__name__} missing from the tree in the docstring"


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
        (errors.NotImplementedYetError("x"), 2),
        (errors.ObservationLogError("x"), 2),
        (errors.NotFoundError("x"), 3),
        (errors.QueryError("x"), 4),
        (errors.ClusterUnavailableError("x"), 5),
        (errors.RolloutAborted("x"), 6),
        (ValueError("x"), 1),
    ],
)
def test_exit_codes_are_distinct_per_family(exc: BaseException, code: int) -> None:
    assert errors.exit_code_for(exc) == code
