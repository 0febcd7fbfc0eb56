"""BED and the Lea-Catcheside factor against closed forms and direct integration."""

import math

import numpy as np
import pytest
from scipy import integrate

from sim.kernels.radiobiology import bed, g_factor, surviving_fraction


def g_by_integration(teff_h: float, trep_h: float) -> float:
    """G = (2/D^2) int_0^inf R(t) int_0^t R(w) exp(-mu (t-w)) dw dt for R(t) = R0 exp(-lambda t) (Dale 1985)."""
    lam, mu = math.log(2) / teff_h, math.log(2) / trep_h
    rate = lambda t: math.exp(-lam * t)  # noqa: E731 - R0 = 1, so D = 1/lambda
    inner = lambda t: integrate.quad(lambda w: rate(w) * math.exp(-mu * (t - w)), 0, t)[0]  # noqa: E731
    outer = integrate.quad(lambda t: rate(t) * inner(t), 0, 40 * teff_h, limit=200)[0]
    return 2 * outer * lam**2


@pytest.mark.parametrize(("teff", "trep"), [(55.0, 2.8), (35.5, 2.8), (90.0, 1.5), (32.0, 0.5), (5.0, 5.0)])
def test_g_factor_matches_double_integral(teff, trep):
    assert g_factor(teff, trep) == pytest.approx(g_by_integration(teff, trep), rel=1e-6)


def test_bed_worked_example_kidney():
    # 0.5 Gy/GBq x 7.4 GBq, T_eff 55 h, T_rep 2.8 h, alpha/beta 2.6: G = 0.048, BED ~ 3.96 Gy per cycle.
    dose = 0.5 * 7.4
    assert g_factor(55.0, 2.8) == pytest.approx(2.8 / 57.8)
    assert bed(dose, 55.0, 2.8, 2.6) == pytest.approx(dose * (1 + (2.8 / 57.8) * dose / 2.6))
    assert bed(dose, 55.0, 2.8, 2.6) == pytest.approx(3.96, abs=0.01)


def test_bed_limits():
    # Acute delivery (T_eff -> 0): BED = D (1 + D / (alpha/beta)); protracted (T_eff -> inf): BED -> D.
    assert bed(2.0, 1e-9, 1.5, 10.0) == pytest.approx(2.0 * 1.2)
    assert bed(2.0, 1e12, 1.5, 10.0) == pytest.approx(2.0, rel=1e-9)
    assert bed(0.0, 55.0, 2.8, 2.6) == 0.0


def test_bed_never_below_dose_and_grows_with_dose():
    doses = np.linspace(0.0, 50.0, 101)
    beds = np.array([bed(d, 40.0, 2.0, 3.0) for d in doses])
    assert np.all(beds >= doses)
    assert np.all(np.diff(beds) > 0)


def test_surviving_fraction():
    assert surviving_fraction(0.1, 20.0) == pytest.approx(math.exp(-2.0))
