r"""The special functions the tests need, in the standard library and numpy only.

`log_ndtr` (the log of the standard normal cdf, accurate far into the lower tail),
`student_t_logsf` (the log survival function of Student's t) and `student_t_isf` (its quantile).
scipy has them all; importing it costs ``canaryflow replay`` and every command that judges about
half a second, for a dozen numbers per interval. ``tests/unit/analysis/test_special.py`` checks
them against scipy.

Notes
-----
:math:`\log\Phi(x) = \log(\tfrac12\operatorname{erfc}(-x/\sqrt2))` while ``erfc`` does not
underflow; below :math:`x = -30` the asymptotic series
:math:`\log\Phi(x) = \log\varphi(x) - \log(-x) + \log(1 - x^{-2} + 3x^{-4} - 15x^{-6} + 105x^{-8})`
(error below :math:`10^{-11}` there) [1]_.

For :math:`\nu > 0` degrees of freedom and :math:`t \ge 0`,
:math:`P(T > t) = \tfrac12 I_{\nu/(\nu+t^2)}(\nu/2, 1/2)` with :math:`I` the regularized incomplete
beta function, evaluated by its continued fraction (modified Lentz) on the side where it
converges, in logs so that tiny tails keep their digits [2]_.

`student_t_isf`, the quantile, solves :math:`\log P(T > t) = \log p` by Newton's method (the
derivative is :math:`-f(t)/P(T > t)`, :math:`f` the density) from the Cornish-Fisher start
:math:`t_0 = z + (z^3 + z)/(4\nu) + (5z^5 + 16z^3 + 3z)/(96\nu^2)`, :math:`z` the normal
quantile [1]_ (26.7.5), inside a bracket that a step leaving it bisects instead. It takes about
eight evaluations of the survival function where plain bisection took sixty-five, and its values
are cached: the evidence plan asks for the same level and degrees of freedom at every interval.

References
----------
.. [1] M. Abramowitz and I. A. Stegun, *Handbook of Mathematical Functions*, 1964, 7.1.23 and
       26.7.1.
.. [2] W. H. Press et al., *Numerical Recipes*, 3rd ed., 2007, §6.4.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np

from analysis.evalues import FloatArray

__all__ = ["log_ndtr", "student_t_isf", "student_t_logsf"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_NORMAL = NormalDist()


_ERFC = np.frompyfunc(math.erfc, 1, 1)  # math.erfc element by element, without a Python loop


def log_ndtr(x: FloatArray | float) -> FloatArray:
    """``log(Phi(x))`` elementwise (see the module notes)."""
    values = np.asarray(x, dtype=np.float64)
    far = values <= -30.0  # nan is not: erfc(nan) is nan
    near = np.where(far, 0.0, values)
    with np.errstate(divide="ignore"):
        result: FloatArray = np.array(
            np.log(0.5 * np.asarray(_ERFC(-near / math.sqrt(2.0)), dtype=np.float64))
        )
    if far.any():
        tail = values[far]
        inv = 1.0 / (tail * tail)
        series = 1.0 - inv + 3.0 * inv**2 - 15.0 * inv**3 + 105.0 * inv**4
        result[far] = -0.5 * tail * tail - _LOG_SQRT_2PI - np.log(-tail) + np.log(series)
    return result


def _log_beta_cf(a: float, b: float, x: float) -> float:
    """log of the continued fraction of I_x(a, b) (converges for x < (a + 1) / (a + b + 2))."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < eps:
            break
    return math.log(h)


def _log_betainc(a: float, b: float, x: float) -> float:
    """``log I_x(a, b)`` for 0 <= x <= 1."""
    if x <= 0.0:
        return -math.inf
    if x >= 1.0:
        return 0.0
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    if x < (a + 1.0) / (a + b + 2.0):
        return log_front + _log_beta_cf(a, b, x) - math.log(a)
    other = math.exp(log_front + _log_beta_cf(b, a, 1.0 - x) - math.log(b))
    return math.log1p(-other) if other < 1.0 else -math.inf


def _student_t_logsf_scalar(t: float, df: float) -> float:
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(t):
        return -math.inf if t > 0 else 0.0
    x = df / (df + t * t)
    half_tail = math.log(0.5) + _log_betainc(df / 2.0, 0.5, x)  # log P(T > |t|)
    if t >= 0:
        return half_tail
    return math.log1p(-math.exp(half_tail))


def student_t_logsf(t: FloatArray | float, df: FloatArray | float) -> FloatArray:
    """``log P(T > t)`` for Student's t with `df` degrees of freedom, elementwise (broadcast)."""
    tt, dd = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(df, dtype=np.float64))
    flat = [_student_t_logsf_scalar(float(a), float(b)) for a, b in zip(tt.ravel(), dd.ravel(), strict=True)]
    result: FloatArray = np.array(flat).reshape(tt.shape)
    return result


def _student_t_logpdf(t: float, df: float) -> float:
    return (
        math.lgamma((df + 1.0) / 2.0)
        - math.lgamma(df / 2.0)
        - 0.5 * math.log(df * math.pi)
        - (df + 1.0) / 2.0 * math.log1p(t * t / df)
    )


@functools.lru_cache(maxsize=4096)
def student_t_isf(p: float, df: float) -> float:
    """The upper `p` quantile of Student's t with `df` degrees of freedom (``P(T > t) = p``), for
    ``0 < p < 1/2``: Newton's method on ``log P(T > t)`` from the Cornish-Fisher start, kept
    inside a bracket that halves whenever a step would leave it (see the module notes)."""
    if not (0.0 < p < 0.5 and 0.0 < df < math.inf):
        raise ValueError(f"need 0 < p < 1/2 and finite df > 0, got p={p} and df={df}")
    target = math.log(p)
    low, high = 0.0, 1.0
    while _student_t_logsf_scalar(high, df) > target:
        low, high = high, 2.0 * high
    z = -_NORMAL.inv_cdf(p)
    t = z + (z**3 + z) / (4.0 * df) + (5.0 * z**5 + 16.0 * z**3 + 3.0 * z) / (96.0 * df * df)
    if not low < t < high:
        t = 0.5 * (low + high)
    for _ in range(200):
        log_sf = _student_t_logsf_scalar(t, df)
        if log_sf > target:
            low = t
        else:
            high = t
        step = (log_sf - target) * math.exp(log_sf - _student_t_logpdf(t, df))
        following = t + step
        if not low < following < high:  # Newton would leave the bracket: bisect instead
            following = 0.5 * (low + high)
        if abs(following - t) <= 1e-14 * max(1.0, t) or high - low <= 1e-14 * max(1.0, low):
            return following
        t = following
    return t
