"""The special functions of `analysis.special` against scipy's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from analysis.special import log_ndtr, student_t_isf, student_t_logsf


def test_log_ndtr_matches_scipy_from_the_far_lower_tail_to_the_upper() -> None:
    x = np.concatenate([np.linspace(-60, 10, 701), [-1e3, -35.0, -30.0, -29.99, 0.0, 40.0]])
    np.testing.assert_allclose(log_ndtr(x), special.log_ndtr(x), rtol=1e-10, atol=1e-14)
    assert log_ndtr(np.array([[0.0]])).shape == (1, 1)
    assert np.isnan(log_ndtr(np.array([np.nan]))[0])


@pytest.mark.parametrize("df", [1.0, 2.0, 3.0, 9.0, 39.0, 239.0, 1e4])
def test_student_t_logsf_matches_scipy_in_both_tails(df: float) -> None:
    t = np.concatenate([np.linspace(-30, 30, 241), [-1e3, 1e3, 0.0]])
    ours, theirs = student_t_logsf(t, df), stats.t.logsf(t, df)
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-9, atol=1e-12)
    assert np.all(ours[~finite] < -700)  # where scipy underflows, ours keeps the logarithm


def test_student_t_logsf_broadcasts_and_handles_the_edges() -> None:
    values = student_t_logsf(np.array([1.0, 2.0]), np.array([[3.0], [30.0]]))
    np.testing.assert_allclose(values, stats.t.logsf([[1.0, 2.0], [1.0, 2.0]], [[3.0], [30.0]]), rtol=1e-9)
    assert student_t_logsf(np.inf, 5.0) == -np.inf
    assert student_t_logsf(-np.inf, 5.0) == 0.0
    assert np.isnan(student_t_logsf(1.0, 0.0))


@pytest.mark.parametrize("df", [1.0, 1.7, 4.6, 39.0, 1e4])
@pytest.mark.parametrize("p", [1e-6, 0.0125, 0.025, 0.4])
def test_student_t_isf_matches_scipy(p: float, df: float) -> None:
    assert student_t_isf(p, df) == pytest.approx(stats.t.isf(p, df), rel=1e-9)


def test_student_t_isf_reaches_far_tails() -> None:
    assert student_t_isf(1e-17, 3.0) == pytest.approx(stats.t.isf(1e-17, 3.0), rel=1e-9)


@pytest.mark.parametrize(("p", "df"), [(0.0, 3.0), (0.5, 3.0), (0.1, 0.0), (0.1, math.inf)])
def test_student_t_isf_refuses_what_it_cannot_answer(p: float, df: float) -> None:
    with pytest.raises(ValueError, match="0 < p < 1/2"):
        student_t_isf(p, df)
