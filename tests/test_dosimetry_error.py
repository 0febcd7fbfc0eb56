"""The structure of dosimetry error: a per-patient systematic part repeated in every measured cycle, a per-cycle part,
the half-life the known BEDs use (measured with error, or the population's for a single time point), and the floor
that the systematic part sets under the spread of what a guided rule delivers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import cohort, engine, kernel_inputs
from sim.kernel_inputs import sigma_ln

from .conftest import load_small

KIDNEY_CV = 0.13  # configs/netter1.toml dosimetry_methods.spect_3tp.kidney_cv


def p_prrt(systematic: float, **overrides):  # noqa: ANN201
    """The P-PRRT arm (configs/p_prrt.toml) with every cycle measured, no cycle-to-cycle variation of the true kidney
    Gy/GBq and an exactly known half-life, so that only the measurement error separates known from true dose."""
    cfg = load_small("p_prrt", patients=1500, **{
        "dosimetry_methods.spect_3tp.systematic_fraction": systematic,
        "dosimetry_methods.spect_3tp.half_life_cv": 0.0, "agents.dotatate.kidney.intra_patient_cv": 0.0,
        **overrides})
    return cfg, engine.run(cfg).sel(arm="p_prrt")


@pytest.mark.parametrize("systematic", [0.0, 1.0])
def test_measured_over_true_splits_into_systematic_and_per_cycle_parts(systematic):
    _, a = p_prrt(systematic)
    kidney = a.sel(organ="kidney")
    log_ratio = np.log(kidney.dose_measured_gy.values / kidney.dose_gy.values)  # NaN where not given
    two = np.isfinite(log_ratio[:, :2]).all(axis=1)
    within = log_ratio[two, 1] - log_ratio[two, 0]
    sigma = sigma_ln(KIDNEY_CV)
    if systematic == 1.0:
        np.testing.assert_allclose(within, 0.0, atol=1e-12)  # the same error in every cycle
        assert np.std(log_ratio[two, 0]) == pytest.approx(sigma, rel=0.1)
    else:
        assert np.std(within) == pytest.approx(math.sqrt(2) * sigma, rel=0.1)  # independent per cycle


def test_the_systematic_error_sets_a_floor_under_the_delivered_kidney_dose():
    """P-PRRT steers the known cumulative kidney dose to 23 Gy. A per-cycle error averages out over the measured
    cycles; a systematic one does not: the true dose of patients who reached the target spreads by the whole
    sigma (log-sd ~0.13), against ~0.13/sqrt(4) when every error is per cycle."""
    spread = {}
    for systematic in (0.0, 1.0):
        _, a = p_prrt(systematic)
        reached = a.reached_target.values == 1
        total = a.dose_gy.sel(organ="kidney").sum("cycle").values[reached]
        assert reached.sum() > 300
        spread[systematic] = np.std(np.log(total))
    sigma = sigma_ln(KIDNEY_CV)
    assert spread[1.0] >= 0.85 * sigma
    assert spread[0.0] < 0.7 * sigma and spread[1.0] > 1.5 * spread[0.0]


def test_known_half_life_measured_or_population():
    cfg = load_small("guided_vs_fixed", patients=300)
    chunk = cohort.draw(cfg, np.arange(300))
    organ = kernel_inputs.axes_of(cfg).organ("kidney")
    measured = kernel_inputs.translate(cfg, "p_prrt", chunk).patients  # spect_3tp: measured, CV 0.10
    ratio = measured.known_teff_h[:, organ] / measured.teff_h[:, organ]
    assert np.std(np.log(ratio)) == pytest.approx(sigma_ln(0.10), rel=0.15)
    single = load_small("guided_vs_fixed", patients=300, **{"arms.p_prrt.dosimetry.method": "spect_1tp"})
    known = kernel_inputs.translate(single, "p_prrt", chunk).patients.known_teff_h[:, organ]
    np.testing.assert_array_equal(known, cfg.agents["dotatate"].kidney.effective_half_life_h_median)
    fixed = kernel_inputs.translate(cfg, "fixed_netter1", chunk).patients  # no dosimetry: nothing known, no bias
    np.testing.assert_array_equal(fixed.known_teff_h, fixed.teff_h)
    np.testing.assert_array_equal(fixed.measurement_bias, 1.0)
