"""Quantile function of the beta distribution for the cohort's beta marginals (numba, parallel over samples).

``scipy.special.betaincinv`` costs about 1 us per value; a million-patient cohort with two beta covariates spent
most of its drawing time there. Here each quantile starts from a cubic Hermite interpolant of the logit of the
quantile against the normal score ``z = Phi^-1(u)``, tabulated once per distribution (``beta_ppf_table``, exact
nodes from ``betaincinv``), and is finished by Newton steps on the regularised incomplete beta function
``I_x(a, b)`` (continued fraction, Numerical Recipes 2nd ed. 6.4, modified Lentz). The interpolant is good to
about 1e-9, so one step usually suffices: iteration stops once a step moves ``x`` by less than
``NEWTON_DONE`` relative (the error after it is then of order its square), with bisection on the bracket kept
as a safeguard. Agreement with ``scipy.stats.beta.ppf`` is about 1e-14 relative (tests/test_cohort.py).
"""

import math

from numba import njit

from sim.kernels.threads import block_range, run_rows
from sim.rng import norm_ppf

Z_RANGE = 9.0  # table over z in [-9, 9]; beyond it Newton starts from the tail's leading term
TABLE_NODES = 1025
NEWTON_DONE = 1e-7
MAX_ITERATIONS = 100
_CF_EPS = 1e-16
_CF_TINY = 1e-300
_CF_MAX_TERMS = 1000


@njit(inline="always", cache=True)
def _continued_fraction(a, b, x):
    """The continued fraction of ``I_x(a, b)`` (converges fast for ``x < (a + 1) / (a + b + 2)``)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
    h = d
    for m in range(1, _CF_MAX_TERMS + 1):
        m2 = 2.0 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _CF_TINY else _CF_TINY
            h *= d * c
        if abs(d * c - 1.0) < _CF_EPS:
            break
    return h


@njit(inline="always", cache=True)
def _residual_and_kernel(a, b, log_beta, x, p):
    """``(I_x(a, b) - p, x^a (1 - x)^b / B(a, b))``; the density is the second divided by ``x (1 - x)``. Above
    the continued fraction's switch point the residual is formed as ``(1 - p) - I_{1-x}(b, a)``, so that an
    upper-tail ``p`` keeps the precision of ``1 - p``."""
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - log_beta)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction(a, b, x) / a - p, front
    return (1.0 - p) - front * _continued_fraction(b, a, 1.0 - x) / b, front


@njit(inline="always", cache=True)
def _start(p, a, b, log_beta, logit_nodes, slopes):
    """Starting point at ``p``: the cubic Hermite interpolant of the tabulated logit quantile at the normal score
    ``z = Phi^-1(p)``; beyond the table, the leading term of the tail, ``I_x ~ x^a / (a B)`` (lower) and its
    mirror (upper)."""
    z = norm_ppf(p)
    if z < -Z_RANGE:
        return math.exp((math.log(p) + math.log(a) + log_beta) / a)
    if z > Z_RANGE:
        return -math.expm1((math.log1p(-p) + math.log(b) + log_beta) / b)
    n = logit_nodes.shape[0]
    step = 2.0 * Z_RANGE / (n - 1)
    s = (z + Z_RANGE) / step
    j = min(int(s), n - 2)
    s -= j
    g0, g1, d0, d1 = logit_nodes[j], logit_nodes[j + 1], slopes[j] * step, slopes[j + 1] * step
    g = g0 + s * (d0 + s * (3.0 * (g1 - g0) - 2.0 * d0 - d1 + s * (2.0 * (g0 - g1) + d0 + d1)))
    return 1.0 / (1.0 + math.exp(-g))


def beta_ppf(u, a, b, log_beta, logit_nodes, slopes, out):  # noqa: ANN001 - arrays and floats
    """``out[i]`` = quantile of Beta(a, b) at ``u[i]`` (0 and 1 at the ends); ``log_beta = ln B(a, b)`` and the
    table from ``beta_ppf_table``. Runs on ``numba.get_num_threads()`` threads."""
    run_rows(_beta_ppf_rows, u.shape[0], u, float(a), float(b), float(log_beta), logit_nodes, slopes, out)


@njit(nogil=True, cache=True)
def _beta_ppf_rows(first_block, block_step, block, u, a, b, log_beta, logit_nodes, slopes, out):
    n = u.shape[0]
    start, stop, step = block_range(first_block, block_step, block, n)
    for lo in range(start, stop, step):
        for i in range(lo, min(n, lo + block)):
            out[i] = _quantile(u[i], a, b, log_beta, logit_nodes, slopes)


@njit(cache=True)
def _quantile(p, a, b, log_beta, logit_nodes, slopes):
    """The quantile of Beta(a, b) at ``p``: Newton on the regularised incomplete beta from the tabulated start, with
    bisection whenever Newton would leave the bracket."""
    if p <= 0.0 or p >= 1.0:
        return 0.0 if p <= 0.0 else 1.0
    x = _start(p, a, b, log_beta, logit_nodes, slopes)
    if x <= 0.0 or x >= 1.0:  # a tail start that under- or overflowed: the quantile is 0 or 1 in doubles
        return x
    lo, hi = 0.0, 1.0
    for _ in range(MAX_ITERATIONS):
        residual, kernel = _residual_and_kernel(a, b, log_beta, x, p)
        if residual < 0.0:
            lo = x
        else:
            hi = x
        if kernel > 0.0:
            newton = x - residual * x * (1.0 - x) / kernel
            if abs(newton - x) <= NEWTON_DONE * min(x, 1.0 - x):
                return newton
            if lo < newton < hi:
                x = newton
                continue
        x = 0.5 * (lo + hi)  # bisection when Newton would leave the bracket (or the density underflows)
    return x
