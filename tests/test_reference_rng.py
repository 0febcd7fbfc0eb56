"""The NumPy oracle's random streams match ``sim.rng``; hand-computed checks of ``sim.reference`` (model 3, 4, 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from sim import rng
from sim.kernels import layout as L
from sim.reference import exponentials_np, normals_np, simulate_arm_reference, uniforms_np

SEEDS = [0, 1, 20240607, 2**63 + 12345, 2**64 - 1]
IDS = np.array([0, 1, 2, 17, 999_999, 2**31 + 3, 2**40, 2**40 + 1, 2**53 + 7, 2**62 + 11], dtype=np.int64)


STREAM_CASES = [(0, 0, 14), (0, 1000, 1), (1, 0, 7), (2, 0, 48), (2, 8 * 5, 8), (3, 0, 16)]


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
LAM_MARROW_60H = math.log(2.0) / (60.0 / 24.0)


def _model(**kw) -> np.ndarray:
    m = np.zeros(L.N_MODEL)
    m[L.KIDNEY_ALPHA_BETA_GY], m[L.KIDNEY_REPAIR_H] = 2.6, 2.8
    m[L.MARROW_ALPHA_BETA_GY], m[L.MARROW_REPAIR_H] = 15.0, 0.5
    m[L.TUMOUR_ALPHA_BETA_GY], m[L.TUMOUR_REPAIR_H] = 8.5, 1.5
    m[L.DEAD_CLEARANCE_PER_DAY] = math.log(2.0) / 30.0
    m[L.BACKGROUND_HAZARD_65_PER_YEAR] = 1e-12  # no deaths or dropout unless asked for
    m[L.MARROW_MTT_DAYS], m[L.PLATELET_LIFESPAN_DAYS], m[L.MARROW_GAMMA] = 20.0, 5.0, 0.3
    m[L.MARROW_RESERVE_PER_GY], m[L.MARROW_FIRST_STEP_DAYS], m[L.MARROW_WINDOW_DAYS] = 0.15, 0.5, 84.0
    m[L.KIDNEY_BED50_GY], m[L.KIDNEY_LKB_M], m[L.KIDNEY_RISK_FACTOR_SHIFT_GY] = 1e6, 0.1, 0.0  # no nephropathy
    m[L.NEPHROPATHY_LATENCY_DAYS], m[L.NEPHROPATHY_EGFR_LOSS] = 365.0, 0.3
    m[L.EGFR_RISK_FACTOR_MULTIPLIER] = 1.0
    m[L.MDS_CHEMO_MULTIPLIER], m[L.MDS_LATENCY_DAYS], m[L.MDS_DEATH_PER_DAY] = 1.0, 1000.0, 1e-3
    m[L.NEUTROPHIL_MTT_DAYS], m[L.NEUTROPHIL_LIFESPAN_DAYS], m[L.NEUTROPHIL_GAMMA] = 5.2, 1.3, 0.16
    m[L.NEUTROPHIL_ALPHA_RATIO] = 1.0
    for name, value in kw.items():
        m[getattr(L, name)] = value
    return m


def _regimen(n_cycles: int, interval: float, continue_after: int = 0, **kw) -> np.ndarray:
    r = np.zeros(L.N_REGIMEN)
    r[L.R_N_CYCLES], r[L.R_INTERVAL_DAYS], r[L.R_CONTINUE_AFTER] = n_cycles, interval, continue_after
    r[L.R_WITHHOLD_GRADE] = r[L.R_REDUCE_GRADE] = L.NEVER_GRADE
    r[L.R_WITHHOLD_NEUTROPHIL_GRADE] = r[L.R_REDUCE_NEUTROPHIL_GRADE] = L.NEVER_GRADE
    r[L.R_WITHHOLD_EGFR_BELOW], r[L.R_WITHHOLD_EGFR_DROP] = 0.0, 1.0
    r[L.R_MAX_REDUCTIONS], r[L.R_RECHECK_DAYS], r[L.R_MAX_DELAY_DAYS] = 1.0, 7.0, 112.0
    r[L.R_RULE], r[L.R_MEASURED_CYCLES] = L.RULE_FIXED, n_cycles  # every cycle measured unless told otherwise
    for name, value in kw.items():
        r[getattr(L, name)] = value
    return r


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
    p[0, L.PLATELETS_BASELINE], p[0, L.MARROW_ALPHA_PER_GY] = 200.0, 1.5
    p[0, L.EGFR_BASELINE] = 90.0
    p[0, L.NEUTROPHILS_BASELINE] = 4.0
    for name, value in kw.items():
        p[0, getattr(L, name)] = value
    return p


def _stable_patient(**kw) -> np.ndarray:
    """No growth, no new lesions: never progresses, so only deaths and censoring end follow-up."""
    return _patient(**{"GROWTH_PER_DAY": 0.0, "TUMOUR_GY_PER_GBQ": 0.0, **kw})


def _first_cycle_platelets(dose_gy: float, s0: float = 200.0, alpha: float = 1.5, lam: float = LAM_MARROW_60H,
                           t_end: float = 120.0, mtt: float = 20.0, lifespan: float = 5.0, gamma: float = 0.3):
    """Dense DOP853 solution of the marrow model (docs/model.md 4.1; the platelet kinetics of ``_model`` unless
    told otherwise) after one cycle at day 0."""
    k_tr, k_circ, beta = 4.0 / mtt, 1.0 / lifespan, 0.15

    def rhs(t, y):
        p, x1, x2, x3, c = y
        decay = math.exp(-lam * t)
        setpoint = s0 * math.exp(-beta * dose_gy * (1.0 - decay))
        return [k_tr * p * (setpoint / c) ** gamma - k_tr * p - alpha * dose_gy * lam * decay * p,
                k_tr * (p - x1), k_tr * (x1 - x2), k_tr * (x2 - x3), k_circ * (x3 - c)]

    sol = integrate.solve_ivp(rhs, (0.0, t_end), [s0] * 5, method="DOP853", rtol=1e-10, atol=1e-8 * s0 / 200.0,
                              dense_output=True)
    assert sol.success
    return lambda t: sol.sol(t)[4]


def _first_cycle_neutrophils(dose_gy: float, anc0: float = 4.0, alpha: float = 1.5, t_end: float = 120.0):
    """The same model with the neutrophil kinetics of ``_model`` (docs/model.md 4.7)."""
    return _first_cycle_platelets(dose_gy, anc0, alpha, t_end=t_end, mtt=5.2, lifespan=1.3, gamma=0.16)


def _assert_not_given(per_cycle, i, k):
    missing = (L.C_TIME_DAYS, L.C_PLATELET_NADIR, L.C_PLATELET_NADIR_DAY, L.C_PLATELET_END, L.C_NEUTROPHIL_NADIR,
               L.C_KIDNEY_DOSE_MEASURED_GY, L.C_MARROW_DOSE_MEASURED_GY, L.C_TUMOUR_DOSE_MEASURED_GY)
    assert np.isnan(per_cycle[list(missing), i, k]).all()
    others = [v for v in range(L.N_CYCLE_VARS) if v not in missing]
    assert not per_cycle[others, i, k].any()


def test_control_arm_exponential_growth_progresses_on_first_scan_over_pd_ratio():
    seed, pid = 11, np.array([2**40 + 5], dtype=np.int64)
    p = _patient(PLATELETS_BASELINE=140.0, EGFR_BASELINE=59.0)
    scans = np.arange(1, 30) * 56.0
    m = _model(EGFR_AGE_DECLINE_PER_YEAR=1.5)
    per_cycle, per_patient = simulate_arm_reference(p, pid, seed, m, _regimen(0, 28.0), np.zeros(1), scans, 4)

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
    for k in range(4):
        _assert_not_given(per_cycle, 0, k)

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

    # Untreated: platelets stay at S0 (grade 1 for 140), eGFR declines with age only, no toxicity.
    t_end = per_patient[L.P_OS_DAYS, 0]
    assert per_patient[L.P_PLATELET_WORST_GRADE, 0] == 1.0
    assert per_patient[L.P_NEUTROPHIL_WORST_GRADE, 0] == 0.0  # ANC0 4.0
    assert per_patient[L.P_EGFR_END, 0] == pytest.approx(59.0 - 1.5 * t_end / 365.25, rel=1e-14)
    assert per_patient[L.P_CKD_GRADE, 0] == 2.0  # 50.8-59 mL/min
    assert per_patient[L.P_RENAL_G3_DAYS, 0] == t_end and per_patient[L.P_RENAL_G3_EVENT, 0] == 0.0
    assert per_patient[L.P_MDS_AML, 0] == 0.0 and np.isnan(per_patient[L.P_MDS_AML_DAY, 0])
    assert per_patient[L.P_DISCONTINUED_TOXICITY, 0] == 0.0


def test_one_cycle_bed_and_tumour_kill_by_hand():
    # No variability (sigmas 0), no growth, no new lesions: everything is closed form.
    alpha, a = 0.05, 7.4
    p = _patient(GROWTH_PER_DAY=0.0, TUMOUR_ALPHA_PER_GY=alpha)
    m = _model()
    scans = np.array([84.0])
    per_cycle, per_patient = simulate_arm_reference(p, np.array([3]), 5, m, _regimen(1, 56.0), np.array([a]), scans,
                                                    2)

    d = a * 3.0
    lam, mu = math.log(2) / 90.0, math.log(2) / 1.5
    bed = d * (1 + lam / (lam + mu) * d / 8.5)
    assert bed == pytest.approx(d * (1 + 1.5 / (90.0 + 1.5) * d / 8.5), rel=1e-14)  # G = T_rep/(T_eff+T_rep)
    assert per_cycle[L.C_TIME_DAYS, 0, 0] == 0.0
    assert per_cycle[L.C_ACTIVITY_GBQ, 0, 0] == a
    assert per_cycle[L.C_DELAY_DAYS, 0, 0] == 0.0 and per_cycle[L.C_REDUCED, 0, 0] == 0.0
    assert per_cycle[L.C_TUMOUR_DOSE_GY, 0, 0] == pytest.approx(d, rel=1e-14)
    assert per_cycle[L.C_TUMOUR_DOSE_MEASURED_GY, 0, 0] == pytest.approx(d, rel=1e-14)
    assert per_cycle[L.C_TUMOUR_BED_GY, 0, 0] == pytest.approx(bed, rel=1e-14)
    dk = a * 0.6
    lam_k, mu_k = math.log(2) / 50.0, math.log(2) / 2.8
    assert per_cycle[L.C_KIDNEY_BED_GY, 0, 0] == pytest.approx(dk * (1 + lam_k / (lam_k + mu_k) * dk / 2.6),
                                                               rel=1e-14)
    _assert_not_given(per_cycle, 0, 1)

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
    args = (9, m, _regimen(4, 42.0, 2), np.full(4, 7.4), np.array([84.0, 168.0, 252.0]), 6)
    per_cycle, per_patient = simulate_arm_reference(p, ids, *args)
    np.testing.assert_array_equal(per_patient[L.P_CYCLES], [4.0, 2.0])
    np.testing.assert_array_equal(per_cycle[L.C_TIME_DAYS, 0, :4], [0.0, 42.0, 84.0, 126.0])
    assert np.isnan(per_cycle[L.C_TIME_DAYS, 1, 2:]).all() and np.isnan(per_cycle[L.C_TIME_DAYS, 0, 4:]).all()
    assert per_patient[L.P_DISCONTINUED_TOXICITY].sum() == 0.0  # continue_after is not toxicity
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


# ---------------------------------------------------------------------------------------------------------- 4.1
def test_zero_marrow_dose_stays_at_baseline():
    p = _patient(MARROW_GY_PER_GBQ=0.0, PLATELETS_BASELINE=140.0)
    per_cycle, per_patient = simulate_arm_reference(p, np.array([4]), 3, _model(), _regimen(3, 42.0),
                                                    np.full(3, 7.4), np.array([56.0, 112.0]), 4)
    given = int(per_patient[L.P_CYCLES, 0])
    assert given >= 1
    np.testing.assert_array_equal(per_cycle[L.C_PLATELET_NADIR, 0, :given], 140.0)
    np.testing.assert_array_equal(per_cycle[L.C_PLATELET_NADIR_DAY, 0, :given], 0.0)
    np.testing.assert_array_equal(per_cycle[L.C_PLATELET_GRADE, 0, :given], 1.0)  # 140 < 150
    assert per_patient[L.P_PLATELET_WORST_GRADE, 0] == 1.0


def _reference_nadir(circ, t1: float) -> tuple[float, float]:
    grid = np.linspace(0.0, t1, int(t1 * 1000) + 1)
    i = int(np.argmin(circ(grid)))
    res = optimize.minimize_scalar(circ, bounds=(grid[i - 1], grid[i + 1]), method="bounded",
                                   options={"xatol": 1e-9})
    return float(res.fun), float(res.x)


def _one_cycle_run(model=None, scans=(30.0, 60.0, 120.0)):  # noqa: ANN001, ANN202
    """One cycle of 6 GBq x 0.2 Gy/GBq = 1.2 Gy marrow at day 0; the window (84 d) ends the integration."""
    return simulate_arm_reference(_stable_patient(MARROW_GY_PER_GBQ=0.2), np.array([8]), 1,
                                  model if model is not None else _model(), _regimen(1, 42.0), np.array([6.0]),
                                  np.array(scans), 1)


def test_first_cycle_nadir_matches_solve_ivp():
    # Reference: DOP853 at rtol 1e-10.
    per_cycle, per_patient = _one_cycle_run()
    nadir, day = _reference_nadir(_first_cycle_platelets(1.2), 84.0)  # ~49.4 at day ~39.7
    assert per_cycle[L.C_PLATELET_NADIR, 0, 0] == pytest.approx(nadir, rel=1e-4)
    assert abs(per_cycle[L.C_PLATELET_NADIR_DAY, 0, 0] - day) < 0.05
    assert 50.0 - nadir > 0.5  # grade 3, clear of the threshold
    assert per_cycle[L.C_PLATELET_GRADE, 0, 0] == 3.0 == per_patient[L.P_PLATELET_WORST_GRADE, 0]


@pytest.mark.parametrize("p_fatal", [0.0, 1.0, 0.5])
def test_fatal_grade4_at_the_nadir_day(p_fatal):
    # 2.5 Gy: nadir ~13.0 at ~day 44.5 inside the interval [30, 84] (events: scan at 30, cycle 1 at 84).
    seed, pid = 2, np.array([77], dtype=np.int64)
    p = _stable_patient(MARROW_GY_PER_GBQ=2.5 / 7.4)
    m = _model(FATAL_GRADE4_PROBABILITY=p_fatal)
    per_cycle, per_patient = simulate_arm_reference(p, pid, seed, m, _regimen(2, 84.0), np.full(2, 7.4),
                                                    np.array([30.0, 90.0, 180.0]), 2)
    nadir, day = per_cycle[L.C_PLATELET_NADIR, 0, 0], per_cycle[L.C_PLATELET_NADIR_DAY, 0, 0]
    ref_nadir, ref_day = _reference_nadir(_first_cycle_platelets(2.5), 84.0)
    assert nadir == pytest.approx(ref_nadir, rel=1e-3) and abs(day - ref_day) < 0.05  # RK4 at 0.5 d: 3e-4
    assert nadir < 25.0 and per_cycle[L.C_PLATELET_GRADE, 0, 0] == 4.0
    u10 = rng.uniforms(seed, pid, rng.STREAM_EVENTS, rng.EV_FATAL_GRADE4, 1)[0, 0]
    if u10 < p_fatal:  # dies at the nadir day: before progression, so also the PFS event
        assert per_patient[L.P_OS_DAYS, 0] == day and per_patient[L.P_OS_EVENT, 0] == 1.0
        assert per_patient[L.P_PFS_DAYS, 0] == day and per_patient[L.P_PFS_EVENT, 0] == 1.0
        assert per_patient[L.P_DEATH_CAUSE, 0] == L.CAUSE_TREATMENT
        assert per_patient[L.P_CYCLES, 0] == 1.0 and per_patient[L.P_BEST_RESPONSE, 0] == L.RESPONSE_SD
    else:
        assert per_patient[L.P_CYCLES, 0] == 2.0 and per_patient[L.P_OS_EVENT, 0] == 0.0
        assert per_cycle[L.C_TIME_DAYS, 0, 1] == 84.0


# ---------------------------------------------------------------------------------------------------------- 4.2
@pytest.mark.parametrize("nephropathy", [False, True])
def test_egfr_trajectory_and_renal_grade3_day_by_hand(nephropathy):
    # One cycle at day 0, kidney 7.4 x 0.6 Gy (sigma 0), c = 0.01/Gy/year doubled by the risk factor, tau 90 d,
    # 1 mL/min/year age decline, follow-up to C_a = 2500 (no death, no progression, post-progression hazard 0).
    p = _stable_patient(EGFR_BASELINE=70.0, KIDNEY_RISK_FACTOR=1.0, ADMIN_CENSOR_DAY=2500.0)
    m = _model(EGFR_AGE_DECLINE_PER_YEAR=1.0, EGFR_RADIATION_DECLINE_PER_GY_YEAR=0.01,
               EGFR_RISK_FACTOR_MULTIPLIER=2.0, EGFR_SUBCLINICAL_LATENCY_DAYS=90.0)
    if nephropathy:  # NTCP = Phi((BED - 1) / 0.01) = 1; onset = 0 + 365 d (sigma 0), e x (1 - 0.3) after it
        m[L.KIDNEY_BED50_GY], m[L.KIDNEY_LKB_M], m[L.KIDNEY_RISK_FACTOR_SHIFT_GY] = 1.5, 0.01, 0.5
    per_cycle, per_patient = simulate_arm_reference(p, np.array([5]), 4, m, _regimen(1, 42.0), np.array([7.4]),
                                                    np.arange(1, 50) * 84.0, 1)
    d = 7.4 * 0.6
    bed = d * (1 + 2.8 / (2.8 + 50.0) * d / 2.6)
    assert per_cycle[L.C_KIDNEY_BED_GY, 0, 0] == pytest.approx(bed, rel=1e-14)
    factor = 0.7 if nephropathy else 1.0
    slope = (1.0 + 70.0 * 0.02 * bed) / 365.25  # mL/min per day once t > tau

    def egfr(t):
        return 70.0 - t / 365.25 - 70.0 * 0.02 * bed * max(0.0, t - 90.0) / 365.25

    assert per_patient[L.P_OS_DAYS, 0] == 2500.0 and per_patient[L.P_OS_EVENT, 0] == 0.0
    e_end = factor * egfr(2500.0)
    assert per_patient[L.P_EGFR_END, 0] == pytest.approx(e_end, rel=1e-13)
    assert per_patient[L.P_CKD_GRADE, 0] == (4.0 if nephropathy else 3.0)  # 12.9 / 18.4 mL/min
    # e(t) = 30 on the linear piece after tau (and after the onset with nephropathy): 70 + 90 (slope - 1/365.25)
    # - slope t = 30 / factor.
    t30 = (70.0 + 90.0 * (slope - 1.0 / 365.25) - 30.0 / factor) / slope
    assert (t30 > 365.0) if nephropathy else (t30 > 90.0)
    assert egfr(t30) * factor == pytest.approx(30.0, rel=1e-12)
    assert per_patient[L.P_RENAL_G3_EVENT, 0] == 1.0
    assert per_patient[L.P_RENAL_G3_DAYS, 0] == pytest.approx(t30, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------- 4.5
def _withheld_run(**regimen_kw):
    # 6 GBq x 0.2 Gy/GBq = 1.2 Gy per cycle; S0 200: count 50.4 at day 42 (grade 2), 66.8 at 49 (grade 2), 107.4 at
    # 56 (grade 1). Withheld while grade >= 2, re-checked weekly: cycle 1 given at day 56, delay 14 (2 x recheck).
    p = _stable_patient(MARROW_GY_PER_GBQ=0.2)
    reg = _regimen(3, 42.0, **{"R_WITHHOLD_GRADE": 2.0, "R_REDUCTION_FRACTION": 0.25, "R_REDUCE_IF_WITHHELD": 1.0,
                               **regimen_kw})
    return simulate_arm_reference(p, np.array([21]), 6, _model(), reg, np.array([6.0, 6.0, 5.0]),
                                  np.arange(1, 20) * 56.0, 3)


def test_withheld_cycle_is_delayed_by_rechecks_and_reduced():
    circ = _first_cycle_platelets(1.2)
    checks = np.array([42.0, 49.0, 56.0])
    counts = circ(checks)
    assert (counts[:2] < 75.0 - 4.0).all() and counts[2] > 75.0 + 4.0  # clear of the grade-2 threshold

    per_cycle, per_patient = _withheld_run()
    assert per_cycle[L.C_TIME_DAYS, 0, 1] == 56.0
    assert per_cycle[L.C_DELAY_DAYS, 0, 1] == 14.0 == 2 * 7.0
    assert per_cycle[L.C_REDUCED, 0, 1] == 1.0
    assert per_cycle[L.C_ACTIVITY_GBQ, 0, 1] == pytest.approx(6.0 * 0.75, rel=1e-15)
    assert per_cycle[L.C_MARROW_DOSE_GY, 0, 1] == pytest.approx(6.0 * 0.75 * 0.2, rel=1e-14)
    # The next cycle is due interval after the actual administration and stays reduced (no restore); its delay
    # is counted from its own first due day.
    assert per_cycle[L.C_TIME_DAYS, 0, 2] == 98.0 + per_cycle[L.C_DELAY_DAYS, 0, 2]
    assert per_cycle[L.C_REDUCED, 0, 2] == 1.0
    assert per_cycle[L.C_ACTIVITY_GBQ, 0, 2] == pytest.approx(5.0 * 0.75, rel=1e-15)
    assert per_cycle[L.C_DELAY_DAYS, 0, 2] % 7.0 == 0.0
    assert per_patient[L.P_CYCLES, 0] == 3.0 and per_patient[L.P_DISCONTINUED_TOXICITY, 0] == 0.0


def test_withheld_cycle_not_reduced_without_reduce_after_withholding():
    per_cycle, per_patient = _withheld_run(R_REDUCE_IF_WITHHELD=0.0)
    assert per_cycle[L.C_TIME_DAYS, 0, 1] == 56.0 and per_cycle[L.C_DELAY_DAYS, 0, 1] == 14.0
    assert per_cycle[L.C_REDUCED, 0, 1] == 0.0 and per_cycle[L.C_ACTIVITY_GBQ, 0, 1] == 6.0


def test_withheld_cycle_discontinues_when_no_reduction_is_left():
    per_cycle, per_patient = _withheld_run(R_MAX_REDUCTIONS=0.0)
    assert per_patient[L.P_CYCLES, 0] == 1.0 and per_patient[L.P_DISCONTINUED_TOXICITY, 0] == 1.0
    _assert_not_given(per_cycle, 0, 1)


def test_reduce_then_restore_after_a_tolerated_cycle():
    # Cycle 0 (0.5 Gy) nadir ~110 (grade 1 >= reduce grade 1): cycle 1 reduced to 10 %; by day 120 the count has
    # recovered, cycle 1's nadir stays >= 150 (grade 0), so cycle 2 is given at full activity when restoring.
    p = _stable_patient(MARROW_GY_PER_GBQ=0.5 / 7.4)
    for restore in (0.0, 1.0):
        reg = _regimen(3, 120.0, R_REDUCE_GRADE=1.0, R_REDUCTION_FRACTION=0.9, R_RESTORE=restore,
                       R_MAX_REDUCTIONS=2.0)
        per_cycle, per_patient = simulate_arm_reference(p, np.array([12]), 6, _model(), reg, np.full(3, 7.4),
                                                        np.arange(1, 20) * 56.0, 3)
        np.testing.assert_array_equal(per_cycle[L.C_TIME_DAYS, 0], [0.0, 120.0, 240.0])
        np.testing.assert_array_equal(per_cycle[L.C_PLATELET_GRADE, 0, :2], [1.0, 0.0])
        np.testing.assert_array_equal(per_cycle[L.C_REDUCED, 0], [0.0, 1.0, 1.0 - restore])
        np.testing.assert_allclose(per_cycle[L.C_ACTIVITY_GBQ, 0], [7.4, 0.74, 0.74 if restore == 0.0 else 7.4],
                                   rtol=1e-15)


@pytest.mark.parametrize("rule", [{"R_WITHHOLD_EGFR_BELOW": 200.0},
                                  {"R_WITHHOLD_EGFR_DROP": 0.05, "age_decline": 200.0}])
def test_discontinued_after_max_delay(rule):
    # eGFR never recovers: withheld at day 42, re-checks 49 and 56 (56 + 7 - 42 = 21 <= 21), discontinued at 63.
    rule = dict(rule)
    m = _model(EGFR_AGE_DECLINE_PER_YEAR=rule.pop("age_decline", 0.0))
    reg = _regimen(4, 42.0, R_MAX_DELAY_DAYS=21.0, **rule)
    p = _stable_patient()
    per_cycle, per_patient = simulate_arm_reference(p, np.array([13]), 6, m, reg, np.full(4, 7.4),
                                                    np.arange(1, 20) * 56.0, 4)
    assert per_patient[L.P_CYCLES, 0] == 1.0 and per_patient[L.P_DISCONTINUED_TOXICITY, 0] == 1.0
    for k in range(1, 4):
        _assert_not_given(per_cycle, 0, k)
    # The marrow window (84 d) is longer than the 63 days integrated while cycles could still be given.
    assert per_patient[L.P_PLATELET_WORST_GRADE, 0] == per_cycle[L.C_PLATELET_GRADE, 0, 0]


@pytest.mark.parametrize(("max_delay", "given"), [(14.0, True), (13.9, False)])
def test_max_delay_boundary(max_delay, given):
    # Withheld at 42 and 49, given at 56. At 49 the next check (56) is 14 days after the due day: allowed when the
    # maximum delay is 14 (not later than), discontinued when it is 13.9.
    per_cycle, per_patient = _withheld_run(R_MAX_DELAY_DAYS=max_delay)
    assert per_patient[L.P_DISCONTINUED_TOXICITY, 0] == (0.0 if given else 1.0)
    if given:
        assert per_cycle[L.C_TIME_DAYS, 0, 1] == 56.0 and per_cycle[L.C_DELAY_DAYS, 0, 1] == 14.0
    else:
        assert per_patient[L.P_CYCLES, 0] == 1.0
        _assert_not_given(per_cycle, 0, 1)


# ---------------------------------------------------------------------------------------------------------- 4.3
def test_mds_aml_forced_kills_at_onset_plus_exponential():
    seed, pid = 8, np.array([2**33 + 1], dtype=np.int64)
    p = _stable_patient(ADMIN_CENSOR_DAY=1e6)
    m = _model(MDS_RISK_PER_GY=1e9, MDS_LATENCY_DAYS=300.0, MDS_LATENCY_SIGMA=0.0, MDS_DEATH_PER_DAY=1.0 / 200.0)
    scans = np.arange(1, 200) * 56.0
    per_cycle, per_patient = simulate_arm_reference(p, pid, seed, m, _regimen(2, 42.0), np.full(2, 7.4), scans, 2)
    assert per_patient[L.P_CYCLES, 0] == 2.0
    onset = 42.0 + 300.0  # last administration + median latency
    e9 = -math.log(rng.uniforms(seed, pid, rng.STREAM_EVENTS, rng.EV_MDS_DEATH, 1)[0, 0])
    death = onset + e9 * 200.0
    assert per_patient[L.P_MDS_AML, 0] == 1.0 and per_patient[L.P_MDS_AML_DAY, 0] == onset
    assert per_patient[L.P_OS_DAYS, 0] == pytest.approx(death, rel=1e-14)
    assert per_patient[L.P_OS_EVENT, 0] == 1.0 and per_patient[L.P_DEATH_CAUSE, 0] == L.CAUSE_TREATMENT
    # Decided when the cycles ended (before progression): T_dp falls, so it is the PFS event; the last evaluated
    # scan is the last one before the death.
    assert per_patient[L.P_PFS_DAYS, 0] == pytest.approx(death, rel=1e-14) and per_patient[L.P_PFS_EVENT, 0] == 1.0
    # MDS/AML is not recorded when censored before its onset.
    p[0, L.ADMIN_CENSOR_DAY] = onset - 1.0
    _, per_patient = simulate_arm_reference(p, pid, seed, m, _regimen(2, 42.0), np.full(2, 7.4), scans, 2)
    assert per_patient[L.P_MDS_AML, 0] == 0.0 and np.isnan(per_patient[L.P_MDS_AML_DAY, 0])
    assert per_patient[L.P_OS_EVENT, 0] == 0.0 and per_patient[L.P_OS_DAYS, 0] == onset - 1.0


# ---------------------------------------------------------------------------------------------------------- 4.7
def test_zero_marrow_dose_neutrophils_stay_at_baseline():
    p = _patient(MARROW_GY_PER_GBQ=0.0, NEUTROPHILS_BASELINE=1.8)
    per_cycle, per_patient = simulate_arm_reference(p, np.array([4]), 3, _model(), _regimen(3, 42.0),
                                                    np.full(3, 7.4), np.array([56.0, 112.0]), 4)
    given = int(per_patient[L.P_CYCLES, 0])
    assert given >= 1
    np.testing.assert_array_equal(per_cycle[L.C_NEUTROPHIL_NADIR, 0, :given], 1.8)
    np.testing.assert_array_equal(per_cycle[L.C_NEUTROPHIL_GRADE, 0, :given], 1.0)  # 1.8 < 2.0
    assert per_patient[L.P_NEUTROPHIL_WORST_GRADE, 0] == 1.0
    assert np.isnan(per_cycle[L.C_NEUTROPHIL_NADIR, 0, given:]).all()
    assert not per_cycle[L.C_NEUTROPHIL_GRADE, 0, given:].any()


@pytest.mark.parametrize(("anc0", "grade"), [(4.0, 0.0), (1.8, 1.0), (1.2, 2.0), (0.7, 3.0), (0.3, 4.0)])
def test_untreated_worst_neutrophil_grade_is_the_baseline_grade(anc0, grade):
    p = _patient(NEUTROPHILS_BASELINE=anc0)
    per_cycle, per_patient = simulate_arm_reference(p, np.array([6]), 2, _model(), _regimen(0, 28.0), np.zeros(1),
                                                    np.arange(1, 10) * 56.0, 2)
    assert per_patient[L.P_CYCLES, 0] == 0.0
    assert per_patient[L.P_NEUTROPHIL_WORST_GRADE, 0] == grade
    for k in range(2):
        _assert_not_given(per_cycle, 0, k)


def test_first_cycle_neutrophil_nadir_matches_solve_ivp():
    # The run of test_first_cycle_nadir_matches_solve_ivp: 1.2 Gy at day 0, intervals split at the scans (30, 60)
    # and ended by the window (84 d); neutrophil kinetics MTT 5.2 d, lifespan 1.3 d, gamma 0.16, ratio 1.
    per_cycle, per_patient = _one_cycle_run()
    nadir, _ = _reference_nadir(_first_cycle_neutrophils(1.2), 84.0)  # ~1.079 at day ~13.2
    assert per_cycle[L.C_NEUTROPHIL_NADIR, 0, 0] == pytest.approx(nadir, rel=1e-3)
    assert 1.5 - nadir > 0.1 and nadir - 1.0 > 0.05  # grade 2, clear of the thresholds
    assert per_cycle[L.C_NEUTROPHIL_GRADE, 0, 0] == 2.0 == per_patient[L.P_NEUTROPHIL_WORST_GRADE, 0]
    # The ratio scales the radiosensitivity: half as sensitive, a shallower nadir (grade 1).
    per_cycle, per_patient = _one_cycle_run(_model(NEUTROPHIL_ALPHA_RATIO=0.5), scans=(30.0, 60.0))
    nadir, _ = _reference_nadir(_first_cycle_neutrophils(1.2, alpha=0.75), 84.0)
    assert per_cycle[L.C_NEUTROPHIL_NADIR, 0, 0] == pytest.approx(nadir, rel=1e-3)
    assert per_cycle[L.C_NEUTROPHIL_GRADE, 0, 0] == 1.0 == per_patient[L.P_NEUTROPHIL_WORST_GRADE, 0]


def _neutropenic_run(**regimen_kw):
    # 1.2 Gy per cycle, cycles every 14 days: neutrophils ~1.09 at day 14 (grade 2), ~2.23 at day 21 (grade 0).
    p = _stable_patient(MARROW_GY_PER_GBQ=0.2)
    reg = _regimen(2, 14.0, **{"R_REDUCTION_FRACTION": 0.5, **regimen_kw})
    return simulate_arm_reference(p, np.array([31]), 6, _model(), reg, np.full(2, 6.0), np.array([56.0]), 2)


def test_neutrophil_rule_alone_withholds_the_cycle():
    counts = _first_cycle_neutrophils(1.2)(np.array([14.0, 21.0]))
    assert counts[0] < 1.5 - 0.2 and counts[1] > 2.0 + 0.2  # grade 2, then grade 0, clear of the thresholds
    per_cycle, per_patient = _neutropenic_run()  # no rule: given when due
    assert per_cycle[L.C_TIME_DAYS, 0, 1] == 14.0 and per_cycle[L.C_DELAY_DAYS, 0, 1] == 0.0
    per_cycle, per_patient = _neutropenic_run(R_WITHHOLD_NEUTROPHIL_GRADE=2.0)  # platelet rule off
    assert per_cycle[L.C_TIME_DAYS, 0, 1] == 21.0 and per_cycle[L.C_DELAY_DAYS, 0, 1] == 7.0
    assert per_cycle[L.C_REDUCED, 0, 1] == 0.0 and per_cycle[L.C_ACTIVITY_GBQ, 0, 1] == 6.0
    assert per_patient[L.P_CYCLES, 0] == 2.0 and per_patient[L.P_DISCONTINUED_TOXICITY, 0] == 0.0
    # A grade-3 threshold is not reached (grade 2 at day 14).
    per_cycle, _ = _neutropenic_run(R_WITHHOLD_NEUTROPHIL_GRADE=3.0)
    assert per_cycle[L.C_TIME_DAYS, 0, 1] == 14.0


@pytest.mark.parametrize(("reduce_grade", "reduced"), [(2.0, True), (3.0, False)])
def test_neutrophil_rule_alone_reduces_the_next_cycle(reduce_grade, reduced):
    # Worst neutrophil grade since cycle 0: 2 (nadir ~1.08 at day ~13.2, before the due day 14).
    per_cycle, per_patient = _neutropenic_run(R_REDUCE_NEUTROPHIL_GRADE=reduce_grade)
    assert per_cycle[L.C_NEUTROPHIL_GRADE, 0, 0] == 2.0
    assert per_cycle[L.C_TIME_DAYS, 0, 1] == 14.0
    assert per_cycle[L.C_REDUCED, 0, 1] == float(reduced)
    assert per_cycle[L.C_ACTIVITY_GBQ, 0, 1] == (3.0 if reduced else 6.0)


def test_neutrophils_leave_platelets_unchanged():
    # The neutrophil line shares the forcing but feeds nothing back: without neutrophil rules the other outputs do
    # not depend on its parameters.
    p = _stable_patient(MARROW_GY_PER_GBQ=0.2)
    runs = [simulate_arm_reference(p2, np.array([8]), 1, m, _regimen(3, 42.0), np.full(3, 6.0),
                                   np.array([30.0, 60.0, 120.0]), 3)
            for p2, m in ((p, _model()), (_stable_patient(MARROW_GY_PER_GBQ=0.2, NEUTROPHILS_BASELINE=2.5),
                                          _model(NEUTROPHIL_MTT_DAYS=7.0, NEUTROPHIL_ALPHA_RATIO=2.0)))]
    others = [v for v in range(L.N_CYCLE_VARS) if v not in (L.C_NEUTROPHIL_NADIR, L.C_NEUTROPHIL_GRADE)]
    np.testing.assert_array_equal(runs[0][0][others], runs[1][0][others])
    keep = [v for v in range(L.N_PATIENT_VARS) if v != L.P_NEUTROPHIL_WORST_GRADE]
    np.testing.assert_array_equal(runs[0][1][keep], runs[1][1][keep])
    assert (runs[0][0][L.C_NEUTROPHIL_NADIR] != runs[1][0][L.C_NEUTROPHIL_NADIR]).all()


# ----------------------------------------------------------------------------------------------------------
def _cohort(n: int, seed: int = 0) -> np.ndarray:
    rs = np.random.default_rng(seed)
    p = np.repeat(_patient(), n, axis=0)
    p[:, L.AGE_YEARS] = rs.normal(68.0, 8.0, n)
    p[:, L.TUMOUR_VOLUME_ML] = rs.lognormal(math.log(50.0), 0.7, n)
    p[:, L.GROWTH_PER_DAY] = math.log(2.0) / rs.lognormal(math.log(120.0), 0.6, n)
    p[:, L.NEW_LESION_PER_DAY] = 5e-4
    p[:, L.ADMIN_CENSOR_DAY] = rs.uniform(500.0, 1200.0, n)
    p[:, L.MARROW_GY_PER_GBQ] = rs.lognormal(math.log(0.08), 0.6, n)
    p[:, L.PLATELETS_BASELINE] = rs.lognormal(math.log(200.0), 0.3, n)
    p[:, L.MARROW_ALPHA_PER_GY] = rs.lognormal(math.log(1.5), 0.3, n)
    p[:, L.EGFR_BASELINE] = rs.uniform(40.0, 100.0, n)
    p[:, L.KIDNEY_RISK_FACTOR] = rs.uniform(size=n) < 0.3
    p[:, L.PRIOR_CHEMOTHERAPY] = rs.uniform(size=n) < 0.5
    p[:, L.NEUTROPHILS_BASELINE] = rs.lognormal(math.log(4.0), 0.35, n)
    return p


def test_batch_invariance_with_toxicity_and_dose_modification():
    n = 24
    p = _cohort(n)
    ids = np.arange(1000, 1000 + n, dtype=np.int64) * 7919
    m = _model(BACKGROUND_HAZARD_65_PER_YEAR=0.02, BACKGROUND_SLOPE_PER_YEAR=0.09, PRE_PROGRESSION_DEATH_PER_DAY=2e-4,
               DROPOUT_PER_DAY=2e-4, MARROW_INTRA_SIGMA=0.2, KIDNEY_INTRA_SIGMA=0.2, FATAL_GRADE4_PROBABILITY=0.3,
               KIDNEY_BED50_GY=30.0, NEPHROPATHY_LATENCY_SIGMA=0.5, EGFR_AGE_DECLINE_PER_YEAR=1.0,
               EGFR_RADIATION_DECLINE_PER_GY_YEAR=0.003, EGFR_SUBCLINICAL_LATENCY_DAYS=90.0, MDS_RISK_PER_GY=0.3,
               MDS_CHEMO_MULTIPLIER=2.0, MDS_LATENCY_DAYS=400.0, MDS_LATENCY_SIGMA=0.5)
    reg = _regimen(6, 42.0, 4, R_WITHHOLD_GRADE=2.0, R_WITHHOLD_EGFR_BELOW=30.0, R_WITHHOLD_EGFR_DROP=0.4,
                   R_REDUCE_GRADE=3.0, R_REDUCTION_FRACTION=0.5, R_RESTORE=1.0, R_MAX_DELAY_DAYS=35.0,
                   R_REDUCE_IF_WITHHELD=1.0, R_WITHHOLD_NEUTROPHIL_GRADE=2.0, R_REDUCE_NEUTROPHIL_GRADE=3.0)
    args = (17, m, reg, np.full(6, 7.4), np.arange(1, 30) * 42.0, 6)
    per_cycle, per_patient = simulate_arm_reference(p, ids, *args)
    assert per_patient[L.P_PLATELET_WORST_GRADE].max() >= 2.0 and (per_cycle[L.C_DELAY_DAYS] > 0).any()
    assert per_patient[L.P_NEUTROPHIL_WORST_GRADE].max() >= 3.0
    given = ~np.isnan(per_cycle[L.C_TIME_DAYS])
    np.testing.assert_array_equal(given.sum(axis=1), per_patient[L.P_CYCLES])
    assert (per_cycle[L.C_DELAY_DAYS][given] % 7.0 == 0.0).all()
    for i in range(n):
        c1, p1 = simulate_arm_reference(p[i:i + 1], ids[i:i + 1], *args)
        np.testing.assert_array_equal(c1, per_cycle[:, i:i + 1])
        np.testing.assert_array_equal(p1, per_patient[:, i:i + 1])


# ---------------------------------------------------------------------------------------------------------- 5
# Guided regimens. The default patient without variability: kidney 0.6 Gy/GBq, T_eff 50 h (T_rep 2.8 h, a/b 2.6),
# marrow 0.04 Gy/GBq, tumour 3 Gy/GBq when asked for; stable, so only the rules end treatment.
def _kidney_bed(d: float, teff: float = 50.0) -> float:
    return d * (1.0 + 2.8 / (2.8 + teff) * d / 2.6)


def _kidney_dose_for_bed(b: float, teff: float = 50.0) -> float:
    """The root of ``_kidney_bed(d) = b``, in the rationalised form ``2b / (1 + sqrt(1 + 4cb))``."""
    c = 2.8 / (2.8 + teff) / 2.6
    return 2.0 * b / (1.0 + math.sqrt(1.0 + 4.0 * c * b))


def _guided_run(rule: int, n_cycles: int, p=None, ids=None, model=None, **regimen_kw):
    kw = {"R_RULE": rule, "R_GUIDED_ACTIVITY": 7.4, "R_KIDNEY_LIMIT_GY": 1e6, "R_KIDNEY_LIMIT_RF_GY": 1e6,
          "R_MARROW_LIMIT_GY": 1e6, "R_TARGET": 1e6, "R_TARGET_IS_BED": 1.0, "R_MIN_ACTIVITY": 0.5,
          "R_MAX_ACTIVITY": 1e3, **regimen_kw}
    p = _stable_patient() if p is None else p
    ids = np.arange(40, 40 + p.shape[0]) if ids is None else ids
    # activities[] is ignored by the guided rules: 99 GBq would show.
    return simulate_arm_reference(p, ids, 3, _model() if model is None else model, _regimen(n_cycles, 42.0, **kw),
                                  np.full(n_cycles, 99.0), np.arange(1, 40) * 84.0, n_cycles)


@pytest.mark.parametrize("on_bed", [True, False])
def test_kidney_target_hits_the_target_exactly(on_bed):
    # Cycle 0 gets A0 = 7.4 (4.44 Gy); then q = (T - Bk) / (4 - k) per cycle, every later cycle the same q.
    target = 20.0 if on_bed else 15.0
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_TARGET, 4, R_TARGET=target, R_TARGET_IS_BED=float(on_bed))
    first = _kidney_bed(4.44) if on_bed else 4.44
    q = (target - first) / 3.0
    a = (_kidney_dose_for_bed(q) if on_bed else q) / 0.6
    assert 0.5 < a < 1e3
    np.testing.assert_allclose(per_cycle[L.C_ACTIVITY_GBQ, 0], [7.4, a, a, a], rtol=1e-13)
    np.testing.assert_array_equal(per_cycle[L.C_TIME_DAYS, 0], [0.0, 42.0, 84.0, 126.0])
    reached = per_cycle[L.C_KIDNEY_BED_GY if on_bed else L.C_KIDNEY_DOSE_GY, 0].sum()
    assert reached == pytest.approx(target, rel=1e-13)
    np.testing.assert_allclose(per_cycle[L.C_KIDNEY_DOSE_MEASURED_GY, 0], per_cycle[L.C_KIDNEY_DOSE_GY, 0],
                               rtol=1e-15)
    assert per_patient[L.P_CYCLES, 0] == 4.0 and per_patient[L.P_REACHED_TARGET, 0] == 1.0
    assert per_patient[L.P_DISCONTINUED_TOXICITY, 0] == 0.0
    np.testing.assert_array_equal(per_cycle[L.C_MEASURED, 0], 1.0)


def test_kidney_target_marrow_cap_and_clipping():
    # Marrow limit 1 Gy: after cycle 0 (0.296 Gy) the cap (1 - Mk) / (0.04 left) = 0.704 / 0.12 = 5.867 GBq binds
    # (the BED target of 20 Gy would need 7.70 GBq) and stays the same, so the marrow ends at exactly 1 Gy.
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_TARGET, 4, R_TARGET=20.0, R_MARROW_LIMIT_GY=1.0)
    cap = (1.0 - 0.296) / (0.04 * 3)
    assert _kidney_dose_for_bed((20.0 - _kidney_bed(4.44)) / 3.0) / 0.6 > cap + 1.0
    np.testing.assert_allclose(per_cycle[L.C_ACTIVITY_GBQ, 0], [7.4, cap, cap, cap], rtol=1e-13)
    assert per_cycle[L.C_MARROW_DOSE_GY, 0].sum() == pytest.approx(1.0, rel=1e-13)
    assert per_cycle[L.C_KIDNEY_BED_GY, 0].sum() < 19.0 and per_patient[L.P_REACHED_TARGET, 0] == 0.0
    # A cap below the minimum activity stops treatment (not reached, not for toxicity).
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_TARGET, 4, R_TARGET=20.0, R_MARROW_LIMIT_GY=1.0,
                                         R_MIN_ACTIVITY=6.0)
    assert per_patient[L.P_CYCLES, 0] == 1.0 and per_patient[L.P_REACHED_TARGET, 0] == 0.0
    assert per_patient[L.P_DISCONTINUED_TOXICITY, 0] == 0.0
    _assert_not_given(per_cycle, 0, 1)
    # The maximum activity clips (and the target is then missed); the minimum lifts.
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_TARGET, 4, R_TARGET=20.0, R_MAX_ACTIVITY=5.0)
    np.testing.assert_array_equal(per_cycle[L.C_ACTIVITY_GBQ, 0], [7.4, 5.0, 5.0, 5.0])
    assert per_patient[L.P_REACHED_TARGET, 0] == 0.0
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_TARGET, 4, R_TARGET=10.0, R_MIN_ACTIVITY=3.0)
    np.testing.assert_array_equal(per_cycle[L.C_ACTIVITY_GBQ, 0, 1:], 3.0)  # 2.77 GBq would do
    assert per_patient[L.P_REACHED_TARGET, 0] == 1.0  # overshoots: known BED >= T


def test_kidney_limit_reduce_last_hits_the_limit_and_stops_reached():
    # Risk factor chooses the limit: 23 Gy (4 full cycles = 19.37 Gy, the 5th reduced) or 18 Gy (3 full = 14.53,
    # the 4th reduced). The next due day stops, reached.
    p = np.vstack([_stable_patient(), _stable_patient(KIDNEY_RISK_FACTOR=1.0)])
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 8, p=p, R_KIDNEY_LIMIT_GY=23.0,
                                         R_KIDNEY_LIMIT_RF_GY=18.0, R_REDUCE_LAST=1.0)
    bed1 = _kidney_bed(4.44)
    for i, (limit, full) in enumerate(((23.0, 4), (18.0, 3))):
        last = _kidney_dose_for_bed(limit - full * bed1) / 0.6
        assert 0.5 < last < 7.4 - 0.5
        np.testing.assert_allclose(per_cycle[L.C_ACTIVITY_GBQ, i, :full + 1], [7.4] * full + [last], rtol=1e-13)
        assert per_cycle[L.C_KIDNEY_BED_GY, i].sum() == pytest.approx(limit, rel=1e-13)
        assert per_patient[L.P_CYCLES, i] == full + 1 and per_patient[L.P_REACHED_TARGET, i] == 1.0
        assert per_patient[L.P_DISCONTINUED_TOXICITY, i] == 0.0
        _assert_not_given(per_cycle, i, full + 1)
    # Just above 4 full cycles, the last cycle would be below the minimum activity: stopped, reached (the kidney
    # term is the smallest).
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 8, R_KIDNEY_LIMIT_GY=4 * bed1 + 0.01,
                                         R_REDUCE_LAST=1.0)
    assert per_patient[L.P_CYCLES, 0] == 4.0 and per_patient[L.P_REACHED_TARGET, 0] == 1.0


def test_kidney_limit_without_reduce_last_gives_full_cycles_until_the_limit():
    # 23 Gy: full cycles until Bk >= 23 (5 cycles: 24.2 Gy), then stop, reached.
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 8, R_KIDNEY_LIMIT_GY=23.0)
    np.testing.assert_array_equal(per_cycle[L.C_ACTIVITY_GBQ, 0, :5], 7.4)
    assert per_patient[L.P_CYCLES, 0] == 5.0 and per_patient[L.P_REACHED_TARGET, 0] == 1.0
    assert per_cycle[L.C_KIDNEY_BED_GY, 0].sum() == pytest.approx(5 * _kidney_bed(4.44), rel=1e-14)
    # Out of cycles first (3 cycles, 14.5 Gy): not reached.
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 3, R_KIDNEY_LIMIT_GY=23.0)
    assert per_patient[L.P_CYCLES, 0] == 3.0 and per_patient[L.P_REACHED_TARGET, 0] == 0.0
    # Limit met exactly by the last cycle: reached after the last cycle.
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 3, R_KIDNEY_LIMIT_GY=3 * _kidney_bed(4.44))
    assert per_patient[L.P_CYCLES, 0] == 3.0 and per_patient[L.P_REACHED_TARGET, 0] == 1.0


@pytest.mark.parametrize("reduce_last", [0.0, 1.0])
def test_kidney_limit_stopped_by_the_marrow_limit_not_reached(reduce_last):
    # Marrow 0.296 Gy per full cycle, limit 1 Gy. Without reduce-last: 4 full cycles (1.184 Gy), stop at cycle 4.
    # With it: cycle 3 gets (1 - 0.888) / 0.04 = 2.8 GBq, the marrow is at 1 Gy, stop at cycle 4.
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 8, R_KIDNEY_LIMIT_GY=100.0, R_MARROW_LIMIT_GY=1.0,
                                         R_REDUCE_LAST=reduce_last)
    expected = [7.4, 7.4, 7.4, 2.8] if reduce_last else [7.4] * 4
    np.testing.assert_allclose(per_cycle[L.C_ACTIVITY_GBQ, 0, :4], expected, rtol=1e-13)
    assert per_patient[L.P_CYCLES, 0] == 4.0 and per_patient[L.P_REACHED_TARGET, 0] == 0.0
    assert per_patient[L.P_DISCONTINUED_TOXICITY, 0] == 0.0
    # Below the minimum activity, with the marrow term the smallest: stopped, not reached.
    if reduce_last:
        per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 8, R_KIDNEY_LIMIT_GY=100.0, R_MARROW_LIMIT_GY=1.0,
                                             R_REDUCE_LAST=1.0, R_MIN_ACTIVITY=3.0)
        assert per_patient[L.P_CYCLES, 0] == 3.0 and per_patient[L.P_REACHED_TARGET, 0] == 0.0


def test_tumour_target_stops_when_met_or_an_organ_limit_would_be_passed():
    # 22.2 Gy tumour per cycle: target 60 met after 3 cycles, stop at cycle 3, reached.
    p = _stable_patient(TUMOUR_GY_PER_GBQ=3.0)
    per_cycle, per_patient = _guided_run(L.RULE_TUMOUR_TARGET, 6, p=p, R_TARGET=60.0)
    assert per_patient[L.P_CYCLES, 0] == 3.0 and per_patient[L.P_REACHED_TARGET, 0] == 1.0
    np.testing.assert_array_equal(per_cycle[L.C_ACTIVITY_GBQ, 0, :3], 7.4)
    assert per_cycle[L.C_TUMOUR_DOSE_GY, 0].sum() == pytest.approx(66.6, rel=1e-14)
    # Kidney limit 12 Gy BED: 2 cycles (9.68) + 4.84 would pass it; marrow 0.8 Gy: 0.592 + 0.296 would.
    for limits in ({"R_KIDNEY_LIMIT_GY": 12.0}, {"R_MARROW_LIMIT_GY": 0.8}):
        per_cycle, per_patient = _guided_run(L.RULE_TUMOUR_TARGET, 6, p=p, R_TARGET=60.0, **limits)
        assert per_patient[L.P_CYCLES, 0] == 2.0 and per_patient[L.P_REACHED_TARGET, 0] == 0.0
    # A limit met exactly is not passed.
    per_cycle, per_patient = _guided_run(L.RULE_TUMOUR_TARGET, 6, p=p, R_TARGET=60.0,
                                         R_MARROW_LIMIT_GY=3 * 7.4 * 0.04)
    assert per_patient[L.P_CYCLES, 0] == 3.0 and per_patient[L.P_REACHED_TARGET, 0] == 1.0


def test_one_measured_cycle_known_doses_use_its_gy_per_gbq():
    # Measurement error on, one measured cycle: g = measured / A0 of cycle 0; the rule sees the known BED
    # BED(m0) + sum BED(A_k g), which meets the target, while the true BED does not.
    seed, pid = 3, np.array([40])
    m = _model(KIDNEY_MEAS_SIGMA=0.2, MARROW_MEAS_SIGMA=0.2, TUMOUR_MEAS_SIGMA=0.2)
    p = _stable_patient(TUMOUR_GY_PER_GBQ=3.0)
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_TARGET, 4, p=p, model=m, R_TARGET=20.0,
                                         R_MEASURED_CYCLES=1.0)
    z = rng.normals(seed, pid, rng.STREAM_CYCLE, 0, 8)[0]
    measured = np.array([4.44, 0.296, 22.2]) * np.exp(0.2 * z[3:6])
    np.testing.assert_allclose(per_cycle[[L.C_KIDNEY_DOSE_MEASURED_GY, L.C_MARROW_DOSE_MEASURED_GY,
                                          L.C_TUMOUR_DOSE_MEASURED_GY], 0, 0], measured, rtol=1e-13)
    np.testing.assert_array_equal(per_cycle[L.C_MEASURED, 0], [1.0, 0.0, 0.0, 0.0])
    assert np.isnan(per_cycle[[L.C_KIDNEY_DOSE_MEASURED_GY, L.C_MARROW_DOSE_MEASURED_GY,
                               L.C_TUMOUR_DOSE_MEASURED_GY], 0, 1:]).all()
    g = measured[0] / 7.4
    a = _kidney_dose_for_bed((20.0 - _kidney_bed(measured[0])) / 3.0) / g
    np.testing.assert_allclose(per_cycle[L.C_ACTIVITY_GBQ, 0], [7.4, a, a, a], rtol=1e-13)
    true_bed = _kidney_bed(4.44) + 3 * _kidney_bed(a * 0.6)
    assert per_cycle[L.C_KIDNEY_BED_GY, 0].sum() == pytest.approx(true_bed, rel=1e-13)
    assert abs(true_bed - 20.0) > 0.1 and per_patient[L.P_REACHED_TARGET, 0] == 1.0


def test_two_measured_cycles_pool_their_gy_per_gbq():
    # Kidney limit with reduce-last: g = (m0 + m1) / (A0 + A1) predicts cycles 2.. (the scalar rule by hand).
    seed, pid = 3, np.array([41])
    m = _model(KIDNEY_MEAS_SIGMA=0.25)
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 8, ids=pid, model=m, R_KIDNEY_LIMIT_GY=23.0,
                                         R_REDUCE_LAST=1.0, R_MEASURED_CYCLES=2.0)
    z = rng.normals(seed, pid, rng.STREAM_CYCLE, 0, 16)[0]
    m0, m1 = 4.44 * math.exp(0.25 * z[3]), 4.44 * math.exp(0.25 * z[8 + 3])
    g = (m0 + m1) / 14.8
    known, activities = _kidney_bed(m0) + _kidney_bed(m1), [7.4, 7.4]
    while True:
        if known >= 23.0 * (1 - 1e-9):
            break
        a = min(7.4, _kidney_dose_for_bed(23.0 - known) / g, (1e6 - 0.296 * len(activities)) / 0.04)
        activities.append(a)
        known += _kidney_bed(a * g)
    n = len(activities)
    assert 4 <= n <= 7 and activities[-1] < 7.4
    np.testing.assert_allclose(per_cycle[L.C_ACTIVITY_GBQ, 0, :n], activities, rtol=1e-12)
    assert per_patient[L.P_CYCLES, 0] == n and per_patient[L.P_REACHED_TARGET, 0] == 1.0
    np.testing.assert_array_equal(per_cycle[L.C_MEASURED, 0, :n], [1.0, 1.0] + [0.0] * (n - 2))


def test_guided_activity_is_reduced_by_the_toxicity_rules():
    # The withheld run of 4.5 under the kidney-limit rule (A = 6, far limits): cycle 1 withheld to day 56 and
    # reduced to 6 x 0.75, cycle 2 stays reduced (no restore).
    p = _stable_patient(MARROW_GY_PER_GBQ=0.2)
    per_cycle, per_patient = _guided_run(L.RULE_KIDNEY_LIMIT, 3, p=p, ids=np.array([21]), R_GUIDED_ACTIVITY=6.0,
                                         R_WITHHOLD_GRADE=2.0, R_REDUCTION_FRACTION=0.25, R_REDUCE_IF_WITHHELD=1.0)
    assert per_cycle[L.C_TIME_DAYS, 0, 1] == 56.0 and per_cycle[L.C_DELAY_DAYS, 0, 1] == 14.0
    np.testing.assert_array_equal(per_cycle[L.C_ACTIVITY_GBQ, 0], [6.0, 4.5, 4.5])
    np.testing.assert_array_equal(per_cycle[L.C_REDUCED, 0], [0.0, 1.0, 1.0])


def test_fixed_rule_without_dosimetry_measures_nothing():
    reg = _regimen(3, 42.0, R_MEASURED_CYCLES=0.0)
    per_cycle, per_patient = simulate_arm_reference(_stable_patient(), np.array([4]), 3, _model(), reg,
                                                    np.full(3, 7.4), np.arange(1, 20) * 56.0, 4)
    assert per_patient[L.P_CYCLES, 0] == 3.0 and per_patient[L.P_REACHED_TARGET, 0] == 0.0
    assert not per_cycle[L.C_MEASURED, 0].any()
    assert np.isnan(per_cycle[[L.C_KIDNEY_DOSE_MEASURED_GY, L.C_MARROW_DOSE_MEASURED_GY,
                               L.C_TUMOUR_DOSE_MEASURED_GY], 0]).all()
    # Measuring changes only the measured outputs.
    measured_run = simulate_arm_reference(_stable_patient(), np.array([4]), 3, _model(), _regimen(3, 42.0),
                                          np.full(3, 7.4), np.arange(1, 20) * 56.0, 4)
    others = [v for v in range(L.N_CYCLE_VARS) if v not in (L.C_KIDNEY_DOSE_MEASURED_GY, L.C_MARROW_DOSE_MEASURED_GY,
                                                             L.C_TUMOUR_DOSE_MEASURED_GY, L.C_MEASURED)]
    np.testing.assert_array_equal(per_cycle[others], measured_run[0][others])
    np.testing.assert_array_equal(per_patient, measured_run[1])
    np.testing.assert_array_equal(measured_run[0][L.C_MEASURED, 0], [1.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="R_MEASURED_CYCLES"):
        _guided_run(L.RULE_KIDNEY_LIMIT, 3, R_MEASURED_CYCLES=0.0)


@pytest.mark.parametrize(("rule", "regimen_kw"), [
    (L.RULE_KIDNEY_LIMIT, {"R_KIDNEY_LIMIT_GY": 23.0, "R_KIDNEY_LIMIT_RF_GY": 18.0, "R_MARROW_LIMIT_GY": 2.0,
                           "R_REDUCE_LAST": 1.0, "R_MIN_ACTIVITY": 2.0, "R_MEASURED_CYCLES": 2.0}),
    (L.RULE_KIDNEY_TARGET, {"R_TARGET": 20.0, "R_MARROW_LIMIT_GY": 1.5, "R_MIN_ACTIVITY": 2.0,
                            "R_MAX_ACTIVITY": 12.0, "R_MEASURED_CYCLES": 1.0}),
    (L.RULE_TUMOUR_TARGET, {"R_TARGET": 120.0, "R_KIDNEY_LIMIT_GY": 23.0, "R_KIDNEY_LIMIT_RF_GY": 18.0,
                            "R_MARROW_LIMIT_GY": 2.0, "R_MEASURED_CYCLES": 3.0}),
])
def test_batch_invariance_with_guided_rules(rule, regimen_kw):
    n = 12
    p = _cohort(n, seed=rule)
    p[:, L.KIDNEY_GY_PER_GBQ] = np.random.default_rng(rule).lognormal(math.log(0.6), 0.4, n)
    p[:, L.TUMOUR_GY_PER_GBQ] = np.random.default_rng(rule + 10).lognormal(math.log(3.0), 0.5, n)
    p[:, L.GROWTH_PER_DAY] /= 4.0  # slower tumours: more cycles for the rules to act on
    ids = np.arange(n, dtype=np.int64) * 104729 + 3
    m = _model(BACKGROUND_HAZARD_65_PER_YEAR=0.02, BACKGROUND_SLOPE_PER_YEAR=0.09, MARROW_INTRA_SIGMA=0.2,
               KIDNEY_INTRA_SIGMA=0.2, TUMOUR_INTRA_SIGMA=0.2, KIDNEY_MEAS_SIGMA=0.15, MARROW_MEAS_SIGMA=0.2,
               TUMOUR_MEAS_SIGMA=0.25, TUMOUR_DOSE_DECLINE=0.05, FATAL_GRADE4_PROBABILITY=0.3,
               EGFR_AGE_DECLINE_PER_YEAR=1.0, EGFR_RADIATION_DECLINE_PER_GY_YEAR=0.003)
    reg = _regimen(6, 42.0, 4, R_RULE=rule, R_GUIDED_ACTIVITY=7.4, R_WITHHOLD_GRADE=2.0, R_REDUCE_GRADE=3.0,
                   R_REDUCTION_FRACTION=0.5, R_REDUCE_IF_WITHHELD=1.0, R_WITHHOLD_NEUTROPHIL_GRADE=3.0,
                   R_TARGET_IS_BED=1.0, **{"R_MAX_ACTIVITY": 1e3, "R_MARROW_LIMIT_GY": 1e6, **regimen_kw})
    args = (29, m, reg, np.full(6, 99.0), np.arange(1, 30) * 42.0, 6)
    per_cycle, per_patient = simulate_arm_reference(p, ids, *args)
    given = ~np.isnan(per_cycle[L.C_TIME_DAYS])
    np.testing.assert_array_equal(given.sum(axis=1), per_patient[L.P_CYCLES])
    np.testing.assert_array_equal(per_cycle[L.C_MEASURED], given & (np.arange(6) < reg[L.R_MEASURED_CYCLES]))
    assert not (per_cycle[L.C_ACTIVITY_GBQ] == 99.0).any()
    reached = per_patient[L.P_REACHED_TARGET]
    assert 0.0 < reached.mean() < 1.0  # both outcomes occur
    for i in range(n):
        c1, p1 = simulate_arm_reference(p[i:i + 1], ids[i:i + 1], *args)
        np.testing.assert_array_equal(c1, per_cycle[:, i:i + 1])
        np.testing.assert_array_equal(p1, per_patient[:, i:i + 1])
