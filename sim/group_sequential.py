"""Group-sequential boundaries: two-sided symmetric efficacy boundaries for K analyses at given information
fractions, from the Lan-DeMets O'Brien-Fleming-type alpha-spending function.

The z statistics of the K analyses follow the canonical joint distribution (Jennison C, Turnbull BW. Group
Sequential Methods with Applications to Clinical Trials. Chapman & Hall/CRC 2000, section 3.1): multivariate normal
with unit variances and corr(Z_i, Z_j) = sqrt(t_i / t_j) for t_i <= t_j, i.e. independent increments of the score
statistic, as for the log-rank statistic with information proportional to events. Crossing probabilities come from
the recursive numerical integration of Armitage P, McPherson CK, Rowe BC. Repeated significance tests on
accumulating data. J R Stat Soc A 1969;132:235-244 (Jennison & Turnbull chapter 19), here on Gauss-Legendre nodes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

NODES = 200  # Gauss-Legendre nodes per continuation interval: 600 nodes move the boundaries by < 1e-13
_X, _W = np.polynomial.legendre.leggauss(NODES)


def obf_spending(t: float | np.ndarray, alpha: float) -> float | np.ndarray:
    """Two-sided type-I error spent by information fraction ``t``.

    Lan KKG, DeMets DL. Discrete sequential boundaries for clinical trials. Biometrika 1983;70:659-663: the
    O'Brien-Fleming-type function a(t) = 2 - 2 Phi(z_{a/2} / sqrt(t)) spends a one-sided level a. A symmetric
    two-sided test spends a = alpha / 2 on each side, 4 Phi(-z_{1 - alpha/4} / sqrt(t)) in all, as the Lan-DeMets
    program ld98 does (Reboussin DM, DeMets DL, Kim K, Lan KKG. Controlled Clin Trials 2000;21:190-207), and R's
    gsDesign (sfLDOF) and rpact (asOF); at t = 1 it is alpha.
    """
    return 4.0 * special.ndtr(-special.ndtri(1.0 - alpha / 4.0) / np.sqrt(t))


def _check_fractions(fractions) -> np.ndarray:  # noqa: ANN001
    t = np.asarray(fractions, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or not (np.all(t > 0) and np.all(t <= 1) and np.all(np.diff(t) > 0)):
        raise ValueError(f"information fractions must increase strictly within (0, 1], got {list(t)}")
    return t


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


class _Continuation:
    """The H0 sub-density of Z_k on the continuation region (-c_k, c_k) at information fraction ``t``: its values
    times the Gauss-Legendre weights (``mass``) at the ``nodes``."""

    def __init__(self, t: float, nodes: np.ndarray, mass: np.ndarray) -> None:
        self.t, self.nodes, self.mass = t, nodes, mass

    @classmethod
    def first(cls, t: float, c: float) -> _Continuation:
        return cls(t, c * _X, c * _W * _phi(c * _X))

    def exit(self, t_next: float, c: float) -> float:
        """P(continue to here, then |Z| >= c at information fraction ``t_next``)."""
        sd = math.sqrt(t_next - self.t)
        score = self.nodes * math.sqrt(self.t)  # Z sqrt(t): increments independent, variance t_next - t
        c_score = c * math.sqrt(t_next)
        tails = special.ndtr((-c_score - score) / sd) + special.ndtr((score - c_score) / sd)
        return float(np.dot(self.mass, tails))

    def advance(self, t_next: float, c: float) -> _Continuation:
        """The sub-density at ``t_next`` on (-c, c)."""
        sd = math.sqrt(t_next - self.t)
        nodes = c * _X
        z = (nodes[:, None] * math.sqrt(t_next) - self.nodes[None, :] * math.sqrt(self.t)) / sd
        density = _phi(z) @ self.mass * math.sqrt(t_next) / sd
        return _Continuation(t_next, nodes, c * _W * density)


def exit_probabilities(bounds, fractions) -> np.ndarray:  # noqa: ANN001
    """Under H0, the probability that the first crossing of |Z_k| >= ``bounds[k]`` is at analysis k."""
    t = _check_fractions(fractions)
    c = np.asarray(bounds, dtype=np.float64)
    if c.shape != t.shape:
        raise ValueError("bounds and fractions must have one value per analysis")
    out = np.empty(t.size)
    out[0] = 2.0 * special.ndtr(-c[0])
    state = _Continuation.first(t[0], c[0])
    for k in range(1, t.size):
        out[k] = state.exit(t[k], c[k])
        state = state.advance(t[k], c[k])
    return out


def boundaries(fractions, alpha: float) -> np.ndarray:  # noqa: ANN001
    """Two-sided symmetric efficacy boundaries c_k (reject H0 at the first k with |Z_k| >= c_k) for analyses at
    information ``fractions`` (increasing, the last normally 1) spending :func:`obf_spending`: each c_k solves
    P(|Z_1| < c_1, ..., |Z_{k-1}| < c_{k-1}, |Z_k| >= c_k) = a(t_k) - a(t_{k-1}) (Lan & DeMets 1983)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    t = _check_fractions(fractions)
    spent = obf_spending(t, alpha)
    c = np.empty(t.size)
    c[0] = -special.ndtri(spent[0] / 2.0)
    state = _Continuation.first(t[0], c[0])
    for k in range(1, t.size):
        # exit(c) falls from the mass still continuing (at c = 0) to 0: one root
        c[k] = optimize.brentq(lambda x, s=state, tk=t[k], spend=spent[k] - spent[k - 1]: s.exit(tk, x) - spend,
                               0.0, 40.0, xtol=1e-12)
        state = state.advance(t[k], c[k])
    return c
