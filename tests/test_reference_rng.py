"""The NumPy oracle's random streams match ``sim.rng``; closed-form checks of ``sim.reference``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import rng
from sim.kernels import layout as L
from sim.reference import exponentials_np, normals_np, simulate_arm_reference, uniforms_np

SEEDS = [0, 1, 20240607, 2**63 + 12345, 2**64 - 1]
IDS = np.array([0, 1, 2, 17, 999_999, 2**31 + 3, 2**40, 2**40 + 1, 2**53 + 7, 2**62 + 11], dtype=np.int64)


STREAM_CASES = [(0, 0, 14), (0, 1000, 1), (1, 0, 6), (2, 0, 48), (2, 8 * 5, 8), (3, 0, 5)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("stream,first_ctr,count", STREAM_CASES)
def test_uniforms_match_rng_exactly(seed, stream, first_ctr, count):
    expected = rng.uniforms(seed, IDS, stream, first_ctr, count)
    got = uniforms_np(seed, IDS, stream, first_ctr, count)
    np.testing.assert_array_equal(got, expected)
    assert np.all((got > 0.0) & (got < 1.0))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("stream,first_ctr,count", STREAM_CASES)
def test_normals_match_rng(seed, stream, first_ctr, count):
    expected = rng.normals(seed, IDS, stream, first_ctr, count)
    got = normals_np(seed, IDS, stream, first_ctr, count)
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0.0)


def test_exponentials_and_id_invariance():
    got = exponentials_np(7, IDS, rng.STREAM_EVENTS, 0, 5)
    np.testing.assert_array_equal(got, -np.log(rng.uniforms(7, IDS, rng.STREAM_EVENTS, 0, 5)))
    # A patient's draws depend only on its id, not on the batch it is in.
    np.testing.assert_array_equal(uniforms_np(7, IDS[3:4], 2, 0, 8), uniforms_np(7, IDS, 2, 0, 8)[3:4])


# ----------------------------------------------------------------------------------------------------------
def _model(**kw) -> np.ndarray:
    m = np.zeros(L.N_MODEL)
    m[L.KIDNEY_ALPHA_BETA_GY], m[L.KIDNEY_REPAIR_H] = 2.6, 2.8
    m[L.MARROW_ALPHA_BETA_GY], m[L.MARROW_REPAIR_H] = 15.0, 0.5
    m[L.TUMOUR_ALPHA_BETA_GY], m[L.TUMOUR_REPAIR_H] = 8.5, 1.5
    m[L.DEAD_CLEARANCE_PER_DAY] = math.log(2.0) / 30.0
    m[L.BACKGROUND_HAZARD_65_PER_YEAR] = 1e-12  # no deaths or dropout unless asked for
    for name, value in kw.items():
        m[getattr(L, name)] = value
    return m


def _patient(**kw) -> np.ndarray:
    p = np.zeros((1, L.N_PATIENT))
    p[0, L.AGE_YEARS] = 65.0
    p[0, L.TUMOUR_VOLUME_ML] = 50.0
    p[0, L.STROMA_FRACTION] = 0.2
    p[0, L.RECEPTOR_NEGATIVE_FRACTION] = 0.3
    p[0, L.GROWTH_PER_DAY] = math.log(2.0) / 70.0
    p[0, L.TUMOUR_ALPHA_PER_GY] = 0.03
    p[0, L.ADMIN_CENSOR_DAY] = 2000.0
    p[0, L.POST_PROGRESSION_DEATH_PER_DAY] = 1e-3
    p[0, L.KIDNEY_GY_PER_GBQ], p[0, L.KIDNEY_TEFF_H] = 0.6, 50.0
    p[0, L.MARROW_GY_PER_GBQ], p[0, L.MARROW_TEFF_H] = 0.04, 60.0
    p[0, L.TUMOUR_GY_PER_GBQ], p[0, L.TUMOUR_TEFF_H] = 3.0, 90.0
    for name, value in kw.items():
        p[0, getattr(L, name)] = value
    return p


def test_control_arm_exponential_growth_progresses_on_first_scan_over_pd_ratio():
    seed, pid = 11, np.array([2**40 + 5], dtype=np.int64)
    p = _patient()
    scans = np.arange(1, 30) * 56.0
    per_cycle, per_patient = simulate_arm_reference(p, pid, seed, _model(), np.zeros(1), 0, 28.0, 0, scans, 4)

    # By hand: V(t) = f_s V0 + (1 - f_s) V0 exp(g t); nadir stays V0 because V only grows.
    v0, fs, g = 50.0, 0.2, math.log(2.0) / 70.0
    vols = fs * v0 + (1 - fs) * v0 * np.exp(g * scans)
    j = int(np.argmax(vols >= 1.728 * v0))
    assert abs(vols[j] / v0 - 1.728) > 1e-3 and abs(vols[j - 1] / v0 - 1.728) > 1e-3  # not borderline
    t_p = scans[j]
    assert per_patient[L.P_PFS_DAYS, 0] == t_p and per_patient[L.P_PFS_EVENT, 0] == 1.0
    assert per_patient[L.P_PROGRESSION_TYPE, 0] == L.PROGRESSION_TARGET
    assert per_patient[L.P_BEST_RESPONSE, 0] == (L.RESPONSE_SD if j > 0 else L.RESPONSE_PD)
    assert per_patient[L.P_NADIR_RATIO, 0] == 1.0 and per_patient[L.P_CYCLES, 0] == 0.0
    assert np.isnan(per_cycle[L.C_TIME_DAYS]).all() and not per_cycle[1:].any()

    # Post-progression death: t_p + E4 / h_pp, E4 from stream 3 counter 4.
    e4 = -math.log(rng.uniforms(seed, pid, rng.STREAM_EVENTS, rng.EV_POST_PROGRESSION_DEATH, 1)[0, 0])
    death = t_p + e4 / 1e-3
    if death <= 2000.0:
        assert per_patient[L.P_OS_DAYS, 0] == pytest.approx(death, rel=1e-14)
        assert per_patient[L.P_OS_EVENT, 0] == 1.0
        assert per_patient[L.P_DEATH_CAUSE, 0] == L.CAUSE_CANCER_AFTER_PROGRESSION
    else:
        assert per_patient[L.P_OS_DAYS, 0] == 2000.0 and per_patient[L.P_OS_EVENT, 0] == 0.0
        assert per_patient[L.P_DEATH_CAUSE, 0] == L.CAUSE_ALIVE


def test_one_cycle_bed_and_tumour_kill_by_hand():
    # No variability (sigmas 0), no growth, no new lesions: everything is closed form.
    alpha, a = 0.05, 7.4
    p = _patient(GROWTH_PER_DAY=0.0, TUMOUR_ALPHA_PER_GY=alpha)
    m = _model()
    scans = np.array([84.0])
    per_cycle, per_patient = simulate_arm_reference(p, np.array([3]), 5, m, np.array([a]), 1, 56.0, 0, scans,
                                                    2)

    d = a * 3.0
    lam, mu = math.log(2) / 90.0, math.log(2) / 1.5
    bed = d * (1 + lam / (lam + mu) * d / 8.5)
    assert bed == pytest.approx(d * (1 + 1.5 / (90.0 + 1.5) * d / 8.5), rel=1e-14)  # G = T_rep/(T_eff+T_rep)
    assert per_cycle[L.C_TIME_DAYS, 0, 0] == 0.0 and np.isnan(per_cycle[L.C_TIME_DAYS, 0, 1])
    assert per_cycle[L.C_ACTIVITY_GBQ, 0, 0] == a
    assert per_cycle[L.C_TUMOUR_DOSE_GY, 0, 0] == pytest.approx(d, rel=1e-14)
    assert per_cycle[L.C_TUMOUR_DOSE_MEASURED_GY, 0, 0] == pytest.approx(d, rel=1e-14)
    assert per_cycle[L.C_TUMOUR_BED_GY, 0, 0] == pytest.approx(bed, rel=1e-14)
    dk = a * 0.6
    lam_k, mu_k = math.log(2) / 50.0, math.log(2) / 2.8
    assert per_cycle[L.C_KIDNEY_BED_GY, 0, 0] == pytest.approx(dk * (1 + lam_k / (lam_k + mu_k) * dk / 2.6),
                                                               rel=1e-14)
    assert not per_cycle[1:, 0, 1].any()

    # Kill at day 0, dead volume clears until the scan at day 84.
    v0, fs, fn = 50.0, 0.2, 0.3
    p0, n0 = (1 - fn) * (1 - fs) * v0, fn * (1 - fs) * v0
    surv = math.exp(-alpha * bed)
    v84 = fs * v0 + n0 + p0 * surv + p0 * (1 - surv) * math.exp(-math.log(2) / 30.0 * 84.0)
    assert per_patient[L.P_NADIR_RATIO, 0] == pytest.approx(v84 / v0, rel=1e-13)
    expected = L.RESPONSE_PR if v84 <= 0.343 * v0 else L.RESPONSE_SD
    assert per_patient[L.P_BEST_RESPONSE, 0] == expected
    assert per_patient[L.P_CYCLES, 0] == 1.0
    # No progression, no death: PFS censored at the last scan, OS censored at C_a.
    assert per_patient[L.P_PFS_DAYS, 0] == 84.0 and per_patient[L.P_PFS_EVENT, 0] == 0.0
    assert per_patient[L.P_OS_DAYS, 0] == 2000.0 and per_patient[L.P_DEATH_CAUSE, 0] == L.CAUSE_ALIVE


def test_continue_after_rule_and_batch_invariance():
    # Patient 0 shrinks (big dose), patient 1 barely (tiny dose): with continue_after = 2 and a scan at day 84
    # (before cycle 2 at day 84, same day), only the shrinking one gets cycles 2 and 3.
    p = np.vstack([_patient(TUMOUR_GY_PER_GBQ=20.0, TUMOUR_ALPHA_PER_GY=0.3),
                   _patient(TUMOUR_GY_PER_GBQ=0.01, GROWTH_PER_DAY=math.log(2) / 400)])
    ids = np.array([10, 2**40 + 10], dtype=np.int64)
    m = _model(KIDNEY_INTRA_SIGMA=0.1, TUMOUR_INTRA_SIGMA=0.2, TUMOUR_MEAS_SIGMA=0.1)
    args = (9, m, np.full(4, 7.4), 4, 42.0, 2, np.array([84.0, 168.0, 252.0]), 6)
    per_cycle, per_patient = simulate_arm_reference(p, ids, *args)
    np.testing.assert_array_equal(per_patient[L.P_CYCLES], [4.0, 2.0])
    np.testing.assert_array_equal(per_cycle[L.C_TIME_DAYS, 0, :4], [0.0, 42.0, 84.0, 126.0])
    assert np.isnan(per_cycle[L.C_TIME_DAYS, 1, 2:]).all() and np.isnan(per_cycle[L.C_TIME_DAYS, 0, 4:]).all()
    # Per-cycle draws come from stream 2 at counters 8k + slot.
    z = rng.normals(9, ids[:1], rng.STREAM_CYCLE, 8 * 3, 8)[0]
    assert per_cycle[L.C_KIDNEY_DOSE_GY, 0, 3] == pytest.approx(7.4 * 0.6 * math.exp(0.1 * z[0]), rel=1e-13)
    assert per_cycle[L.C_TUMOUR_DOSE_MEASURED_GY, 0, 3] == pytest.approx(
        7.4 * 20.0 * math.exp(0.2 * z[2]) * math.exp(0.1 * z[5]), rel=1e-13)
    # Each patient simulated alone gives the same result.
    for i in range(2):
        c1, p1 = simulate_arm_reference(p[i:i + 1], ids[i:i + 1], *args)
        np.testing.assert_array_equal(c1, per_cycle[:, i:i + 1])
        np.testing.assert_array_equal(p1, per_patient[:, i:i + 1])
