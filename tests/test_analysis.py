"""Kaplan-Meier against a hand calculation and a known exponential survival curve."""

import math

import numpy as np
import pytest

from sim.analysis import kaplan_meier


def test_km_hand_example():
    # times 1,2,2(censored),3,4(censored): S = 4/5, then x 3/4 at t=2 (censored tie still at risk), x 1/2 at 3.
    km = kaplan_meier(np.array([1, 2, 2, 3, 4.0]), np.array([1, 1, 0, 1, 0]))
    np.testing.assert_allclose(km.time, [1, 2, 3])
    np.testing.assert_allclose(km.survival, [0.8, 0.6, 0.3])
    np.testing.assert_array_equal(km.at_risk, [5, 4, 2])
    assert km.median() == 3.0
    np.testing.assert_allclose(km.at(np.array([0.5, 1.0, 2.5, 10.0])), [1.0, 0.8, 0.6, 0.3])


def test_km_median_not_reached():
    km = kaplan_meier(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 0, 0]))
    assert km.median() is None


def test_km_recovers_exponential_with_censoring():
    rng = np.random.default_rng(1)
    lam, n = 0.1, 40_000
    t_event = rng.exponential(1 / lam, n)
    t_cens = rng.uniform(0, 30, n)
    km = kaplan_meier(np.minimum(t_event, t_cens), t_event <= t_cens)
    assert km.median() == pytest.approx(math.log(2) / lam, rel=0.03)
    for t in (2.0, 5.0, 12.0, 20.0):
        assert km.at(t) == pytest.approx(math.exp(-lam * t), abs=0.01)
