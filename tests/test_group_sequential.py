"""Group-sequential boundaries against published tables and against an independent integration."""

import numpy as np
import pytest
from scipy import integrate, special, stats

from sim import group_sequential as gs


def test_one_look_is_the_fixed_sample_test():
    assert gs.boundaries([1.0], 0.05)[0] == pytest.approx(1.95996, abs=1e-5)
    assert gs.obf_spending(1.0, 0.05) == pytest.approx(0.05, rel=1e-12)


def test_five_equally_spaced_looks_match_ld98():
    """Reboussin DM, DeMets DL, Kim K, Lan KKG. Controlled Clin Trials 2000;21:190-207, the worked example of the
    ld98 program (also in the vignette of R's ldbounds 2.0): two-sided symmetric, alpha 0.05, O'Brien-Fleming-type
    spending, t = 0.2, ..., 1: bounds 4.8769, 3.3569, 2.6803, 2.2898, 2.0310 and cumulative exit probabilities
    1.0777e-06, 7.8830e-04, 7.6161e-03, 2.4424e-02, 0.05. ld98 integrates on a coarser grid (4th decimal)."""
    t = np.arange(1, 6) / 5
    bounds = gs.boundaries(t, 0.05)
    np.testing.assert_allclose(bounds, [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], atol=2e-4)
    np.testing.assert_allclose(np.cumsum(gs.exit_probabilities(bounds, t)),
                               [1.0777e-06, 7.8830e-04, 7.6161e-03, 2.4424e-02, 5.0000e-02], rtol=1e-4)


def test_two_and_three_looks_match_gsdesign():
    """Two-sided alpha 0.05 (one-sided 0.025 per side), Lan-DeMets O'Brien-Fleming spending: K = 3 equally spaced,
    gsDesign::gsDesign(k = 3, sfu = sfLDOF)$upper$bound = 3.710303, 2.511427, 1.993048 (as printed in the vignette
    of R's gsDesign2 1.0.9); K = 2 at t = 1/2, 1: 2.963, 1.969, whose first bound is also Phi^-1(1 - 2 Phi(-z_0.9875
    sqrt 2)) by hand. (2.797, 1.977 and 3.471, 2.454, 2.004 are O'Brien and Fleming's original boundaries, not
    spending-function ones: see the next test.)"""
    np.testing.assert_allclose(gs.boundaries([1 / 3, 2 / 3, 1.0], 0.05), [3.710303, 2.511427, 1.993048], atol=2e-6)
    np.testing.assert_allclose(gs.boundaries([0.5, 1.0], 0.05), [2.963, 1.969], atol=1e-3)


@pytest.mark.parametrize(("bounds", "fractions"), [
    ([2.797, 1.977], [0.5, 1.0]),
    ([3.471, 2.454, 2.004], [1 / 3, 2 / 3, 1.0]),
])
def test_original_obrien_fleming_boundaries_have_size_alpha(bounds, fractions):
    """O'Brien PC, Fleming TR. Biometrics 1979;35:549-556, tabulated in Jennison C, Turnbull BW. Group Sequential
    Methods with Applications to Clinical Trials. Chapman & Hall/CRC 2000, table 2.3: C sqrt(K / k) with C = 1.977
    (K = 2) and 2.004 (K = 3) for two-sided alpha 0.05. The recursive integration must give them size 0.05 (to the
    table's rounding)."""
    assert gs.exit_probabilities(bounds, fractions).sum() == pytest.approx(0.05, abs=5e-4)


def test_two_look_boundaries_spend_alpha_exactly():
    """P(|Z1| >= c1 or |Z2| >= c2) under H0 with corr(Z1, Z2) = sqrt(t1), by adaptive quadrature (scipy quad),
    independent of the Gauss-Legendre recursion and of the root finder."""
    t1, alpha = 0.4, 0.05
    c1, c2 = gs.boundaries([t1, 1.0], alpha)
    rho, s = np.sqrt(t1), np.sqrt(1 - t1)

    def continue_both(z1: float) -> float:
        return stats.norm.pdf(z1) * (special.ndtr((c2 - rho * z1) / s) - special.ndtr((-c2 - rho * z1) / s))

    inside, _ = integrate.quad(continue_both, -c1, c1, epsabs=1e-13, epsrel=1e-13)
    assert 1.0 - inside == pytest.approx(alpha, abs=1e-9)
    assert 2 * special.ndtr(-c1) == pytest.approx(gs.obf_spending(t1, alpha), rel=1e-9)


def test_three_look_boundaries_spend_alpha_by_multivariate_normal():
    t = np.array([0.3, 0.7, 1.0])
    c = gs.boundaries(t, 0.025)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    inside = stats.multivariate_normal(np.zeros(3), cov).cdf(c, lower_limit=-c, rng=np.random.default_rng(1))
    assert 1.0 - inside == pytest.approx(0.025, abs=1e-5)


@pytest.mark.parametrize("fractions", [[0.5, 0.5, 1.0], [0.0, 1.0], [0.5, 1.2], []])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError, match="increase strictly"):
        gs.boundaries(fractions, 0.05)
