"""The numba kernel against the independent NumPy oracle, on hand-made patients, and across thread counts."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from sim import cohort as cohort_mod
from sim import engine, regimens, rng
from sim.kernels import layout as L
from sim.kernels.patient import simulate_arm
from sim.reference import simulate_arm_reference

from .conftest import load_small

DISCRETE_PATIENT_VARS = [L.P_CYCLES, L.P_PFS_EVENT, L.P_OS_EVENT, L.P_DEATH_CAUSE, L.P_BEST_RESPONSE,
                         L.P_PROGRESSION_TYPE]


def kernel_inputs(cfg, arm_name):
    ids = np.arange(cfg.trial.patients, dtype=np.int64)
    chunk = cohort_mod.draw(cfg, ids)
    plan = regimens.encode(cfg.arm(arm_name))
    agent = cfg.agents[plan.agent] if plan.agent else None
    patients = cohort_mod.kernel_patients(cfg, chunk, agent)
    k_max = engine.max_cycles(cfg)
    return (patients, ids, cfg.trial.seed, engine.model_vector(cfg, cfg.arm(arm_name)), plan.vector, plan.activities,
            engine.scan_days(cfg)), k_max


def run_kernel(args, k_max):
    n = args[0].shape[0]
    per_cycle, per_patient = np.empty((L.N_CYCLE_VARS, n, k_max)), np.empty((L.N_PATIENT_VARS, n))
    simulate_arm(*args[:2], np.int64(args[2]), *args[3:], per_cycle, per_patient)
    return per_cycle, per_patient


@pytest.mark.parametrize(("scenario", "arm", "overrides"), [
    ("netter1", "lu177_dotatate", {}),
    ("netter1", "control", {}),
    ("netter1", "lu177_dotatate", {"tumour.response_confirmation": True, "trial.dropout_per_year": 0.3}),
    ("vision", "lu177_psma617", {}),
    ("vision", "soc", {}),
    ("guided_vs_fixed", "iluminet", {"arms.iluminet.reduce_last_cycle_to_limit": True,
                                     "arms.iluminet.min_activity_gbq": 1.0}),
    ("guided_vs_fixed", "p_prrt", {}),
    ("guided_vs_fixed", "tumour_guided", {"arms.tumour_guided.dosimetry.measured_cycles": 2}),
])
def test_kernel_matches_numpy_reference(scenario, arm, overrides):
    cfg = load_small(scenario, patients=1500, **overrides)
    args, k_max = kernel_inputs(cfg, arm)
    cyc, pat = run_kernel(args, k_max)
    ref_cyc, ref_pat = simulate_arm_reference(*args, k_max)
    np.testing.assert_array_equal(pat[DISCRETE_PATIENT_VARS], ref_pat[DISCRETE_PATIENT_VARS])
    np.testing.assert_allclose(pat, ref_pat, rtol=1e-11, atol=0)
    np.testing.assert_allclose(cyc, ref_cyc, rtol=1e-11, atol=0, equal_nan=True)
    # the comparison is not vacuous: outcomes vary across patients
    assert len(np.unique(pat[L.P_BEST_RESPONSE])) >= 2 and pat[L.P_PFS_EVENT].sum() > 100


def test_results_do_not_depend_on_thread_count(netter1_small):
    results = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        results.append(engine.run(netter1_small))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    a, b = results
    for arm in a.arms:
        np.testing.assert_array_equal(a.arms[arm].per_cycle, b.arms[arm].per_cycle)
        np.testing.assert_array_equal(a.arms[arm].per_patient, b.arms[arm].per_patient)


def test_chunked_run_equals_single_run(netter1_small, netter1_run):
    chunked = engine.run(netter1_small, chunk_size=97)
    for arm in chunked.arms:
        np.testing.assert_array_equal(chunked.arms[arm].per_cycle, netter1_run.arms[arm].per_cycle)
        np.testing.assert_array_equal(chunked.arms[arm].per_patient, netter1_run.arms[arm].per_patient)


def test_common_random_numbers_across_arms(netter1_run):
    """Patients who die of other causes before any treatment effect could matter die on the same day in both arms."""
    lu, ctl = netter1_run.arms["lu177_dotatate"].per_patient, netter1_run.arms["control"].per_patient
    both_other = (lu[L.P_DEATH_CAUSE] == L.CAUSE_OTHER) & (ctl[L.P_DEATH_CAUSE] == L.CAUSE_OTHER)
    both_pre = both_other & (lu[L.P_PFS_DAYS] == lu[L.P_OS_DAYS]) & (ctl[L.P_PFS_DAYS] == ctl[L.P_OS_DAYS])
    assert both_pre.sum() > 0
    np.testing.assert_array_equal(lu[L.P_OS_DAYS][both_pre], ctl[L.P_OS_DAYS][both_pre])


def hand_patient(**values) -> np.ndarray:
    p = np.zeros((1, L.N_PATIENT))
    base = dict(AGE_YEARS=60.0, TUMOUR_VOLUME_ML=100.0, STROMA_FRACTION=0.2, RECEPTOR_NEGATIVE_FRACTION=0.0,
                GROWTH_PER_DAY=np.log(2) / 300.0, NEW_LESION_PER_DAY=0.0, TUMOUR_ALPHA_PER_GY=0.0,
                ADMIN_CENSOR_DAY=3000.0, POST_PROGRESSION_DEATH_PER_DAY=1e-3, KIDNEY_GY_PER_GBQ=0.5,
                KIDNEY_TEFF_H=55.0, MARROW_GY_PER_GBQ=0.03, MARROW_TEFF_H=40.0, TUMOUR_GY_PER_GBQ=4.0,
                TUMOUR_TEFF_H=90.0, PLATELETS_BASELINE=250.0, MARROW_ALPHA_PER_GY=1.5, EGFR_BASELINE=90.0,
                NEUTROPHILS_BASELINE=4.0)
    base.update(values)
    for name, v in base.items():
        p[0, getattr(L, name)] = v
    return p


def hand_model(**values) -> np.ndarray:
    m = np.zeros(L.N_MODEL)
    base = dict(KIDNEY_ALPHA_BETA_GY=2.6, KIDNEY_REPAIR_H=2.8, MARROW_ALPHA_BETA_GY=10.0, MARROW_REPAIR_H=0.5,
                TUMOUR_ALPHA_BETA_GY=10.0, TUMOUR_REPAIR_H=1.5, DEAD_CLEARANCE_PER_DAY=np.log(2) / 30,
                BACKGROUND_HAZARD_65_PER_YEAR=1e-12, MARROW_MTT_DAYS=20.0, PLATELET_LIFESPAN_DAYS=5.0,
                MARROW_GAMMA=0.3, MARROW_RESERVE_PER_GY=0.15, MARROW_FIRST_STEP_DAYS=0.5, MARROW_WINDOW_DAYS=112.0,
                KIDNEY_BED50_GY=49.5, KIDNEY_LKB_M=0.108, KIDNEY_RISK_FACTOR_SHIFT_GY=15.5,
                NEPHROPATHY_LATENCY_DAYS=540.0, NEPHROPATHY_LATENCY_SIGMA=0.5, NEPHROPATHY_EGFR_LOSS=0.6,
                EGFR_AGE_DECLINE_PER_YEAR=1.0, EGFR_RADIATION_DECLINE_PER_GY_YEAR=0.0015,
                EGFR_RISK_FACTOR_MULTIPLIER=1.5, EGFR_SUBCLINICAL_LATENCY_DAYS=180.0, MDS_CHEMO_MULTIPLIER=2.0,
                MDS_LATENCY_DAYS=880.0, MDS_LATENCY_SIGMA=0.45, MDS_DEATH_PER_DAY=0.002, NEUTROPHIL_MTT_DAYS=5.2,
                NEUTROPHIL_LIFESPAN_DAYS=1.3, NEUTROPHIL_GAMMA=0.16, NEUTROPHIL_ALPHA_RATIO=1.0)
    base.update(values)
    for name, v in base.items():
        m[getattr(L, name)] = v
    return m


SCANS_Q12W = np.arange(84.0, 3000.0, 84.0)


def hand_regimen(n_cycles, interval_days=56.0, continue_after=0, **rules) -> np.ndarray:
    r = np.zeros(L.N_REGIMEN)
    base = dict(R_N_CYCLES=n_cycles, R_INTERVAL_DAYS=interval_days, R_CONTINUE_AFTER=continue_after,
                R_WITHHOLD_GRADE=L.NEVER_GRADE, R_REDUCE_GRADE=L.NEVER_GRADE, R_WITHHOLD_EGFR_DROP=1.0,
                R_WITHHOLD_NEUTROPHIL_GRADE=L.NEVER_GRADE, R_REDUCE_NEUTROPHIL_GRADE=L.NEVER_GRADE,
                R_RECHECK_DAYS=7.0, R_MAX_DELAY_DAYS=112.0, R_MAX_REDUCTIONS=1)
    base.update(rules)
    for name, v in base.items():
        r[getattr(L, name)] = v
    return r


def run_one(patient, model, activities, n_cycles, interval_days=56.0, continue_after=0, scans=SCANS_Q12W, k_max=6,
            **rules):
    cyc, pat = np.empty((L.N_CYCLE_VARS, 1, k_max)), np.empty((L.N_PATIENT_VARS, 1))
    simulate_arm(patient, np.array([3], dtype=np.int64), np.int64(11), model,
                 hand_regimen(n_cycles, interval_days, continue_after, **rules), np.asarray(activities, float),
                 scans, cyc, pat)
    return cyc[:, 0], pat[:, 0]


def test_untreated_growth_progresses_at_first_scan_past_threshold():
    cyc, pat = run_one(hand_patient(), hand_model(), [0.0], 0)
    # V(t) = 20 + 80 exp(g t) >= 1.728 * 100 first at t* = ln(152.8/80)/g
    t_star = np.log((1.728 * 100 - 20) / 80) / (np.log(2) / 300.0)
    expected = 84.0 * np.ceil(t_star / 84.0)
    assert pat[L.P_PFS_DAYS] == expected and pat[L.P_PFS_EVENT] == 1
    assert pat[L.P_PROGRESSION_TYPE] == L.PROGRESSION_TARGET
    assert pat[L.P_BEST_RESPONSE] == L.RESPONSE_SD and pat[L.P_CYCLES] == 0
    assert np.all(np.isnan(cyc[L.C_TIME_DAYS])) and np.all(np.isnan(cyc[L.C_PLATELET_NADIR]))
    assert np.all(cyc[L.C_ACTIVITY_GBQ] == 0) and np.all(cyc[L.C_KIDNEY_BED_GY] == 0)
    assert pat[L.P_PLATELET_WORST_GRADE] == 0 and pat[L.P_MDS_AML] == 0


def test_fixed_regimen_doses_without_variability():
    cyc, pat = run_one(hand_patient(GROWTH_PER_DAY=1e-6), hand_model(), [7.4] * 4, 4, R_MEASURED_CYCLES=4)
    assert pat[L.P_CYCLES] == 4
    np.testing.assert_allclose(cyc[L.C_TIME_DAYS, :4], [0, 56, 112, 168])
    np.testing.assert_allclose(cyc[L.C_ACTIVITY_GBQ, :4], 7.4)
    np.testing.assert_allclose(cyc[L.C_KIDNEY_DOSE_GY, :4], 3.7)
    np.testing.assert_allclose(cyc[L.C_KIDNEY_DOSE_MEASURED_GY, :4], 3.7)  # zero measurement error
    assert np.all(cyc[L.C_MEASURED, :4] == 1)
    # without dosimetry nothing is measured
    plain, _ = run_one(hand_patient(GROWTH_PER_DAY=1e-6), hand_model(), [7.4] * 4, 4)
    assert np.all(np.isnan(plain[L.C_KIDNEY_DOSE_MEASURED_GY])) and np.all(plain[L.C_MEASURED] == 0)
    g = 2.8 / (2.8 + 55.0)
    np.testing.assert_allclose(cyc[L.C_KIDNEY_BED_GY, :4], 3.7 * (1 + g * 3.7 / 2.6))
    assert np.all(cyc[L.C_ACTIVITY_GBQ, 4:] == 0)


def test_radiosensitive_tumour_responds_and_new_lesions_progress():
    p = hand_patient(TUMOUR_ALPHA_PER_GY=0.5, STROMA_FRACTION=0.05)
    cyc, pat = run_one(p, hand_model(), [7.4] * 4, 4)
    assert pat[L.P_BEST_RESPONSE] in (L.RESPONSE_PR, L.RESPONSE_CR) and pat[L.P_NADIR_RATIO] < 0.343
    # a very high new-lesion hazard gives progression at the first scan, and stops treatment there
    cyc, pat = run_one(hand_patient(NEW_LESION_PER_DAY=1.0), hand_model(), [7.4] * 4, 4)
    assert pat[L.P_PFS_DAYS] == 84.0 and pat[L.P_PROGRESSION_TYPE] == L.PROGRESSION_NEW_LESION
    assert pat[L.P_BEST_RESPONSE] == L.RESPONSE_PD and pat[L.P_CYCLES] == 2  # days 0 and 56, not 112


def test_continuation_rule_needs_shrinkage():
    args = dict(activities=[7.4] * 6, n_cycles=6, interval_days=42.0, continue_after=4,
                scans=np.arange(56.0, 3000.0, 56.0))
    _, shrinking = run_one(hand_patient(TUMOUR_ALPHA_PER_GY=0.05), hand_model(), **args)
    _, growing = run_one(hand_patient(GROWTH_PER_DAY=np.log(2) / 400.0), hand_model(), **args)
    assert shrinking[L.P_CYCLES] == 6 and growing[L.P_CYCLES] == 4


def test_death_before_first_scan_is_not_evaluable():
    model = hand_model(PRE_PROGRESSION_DEATH_PER_DAY=1.0)  # dies within days
    _, pat = run_one(hand_patient(), model, [7.4] * 4, 4)
    assert pat[L.P_BEST_RESPONSE] == L.RESPONSE_NE and pat[L.P_PFS_EVENT] == 1 and pat[L.P_OS_EVENT] == 1
    assert pat[L.P_PFS_DAYS] == pat[L.P_OS_DAYS] < 84 and pat[L.P_DEATH_CAUSE] == L.CAUSE_CANCER_BEFORE_PROGRESSION
    assert pat[L.P_CYCLES] == 1


def test_administrative_censoring():
    _, pat = run_one(hand_patient(GROWTH_PER_DAY=1e-7, ADMIN_CENSOR_DAY=400.0), hand_model(), [0.0], 0)
    assert pat[L.P_OS_EVENT] == 0 and pat[L.P_OS_DAYS] == 400.0 and pat[L.P_DEATH_CAUSE] == L.CAUSE_ALIVE
    assert pat[L.P_PFS_EVENT] == 0 and pat[L.P_PFS_DAYS] == 336.0  # censored at the last scan


def test_stream_draws_are_per_patient():
    ids = np.array([0, 5, 2**40], dtype=np.int64)
    both = rng.uniforms(9, ids, rng.STREAM_EVENTS, 0, 3)
    alone = np.vstack([rng.uniforms(9, ids[i:i + 1], rng.STREAM_EVENTS, 0, 3) for i in range(3)])
    np.testing.assert_array_equal(both, alone)
    assert len(np.unique(both)) == both.size


# ------------------------------------------------------------------------------------------------------------
# Organ tolerance and dose modification on hand-made patients


def test_more_marrow_dose_deepens_the_nadir():
    nadirs = []
    for gy_per_gbq in (0.01, 0.03, 0.1, 0.3):
        cyc, _ = run_one(hand_patient(MARROW_GY_PER_GBQ=gy_per_gbq, GROWTH_PER_DAY=1e-6), hand_model(), [7.4] * 4, 4)
        nadirs.append(cyc[L.C_PLATELET_NADIR, :4])
        assert np.all((cyc[L.C_PLATELET_NADIR_DAY, :4] > 14) & (cyc[L.C_PLATELET_NADIR_DAY, :4] <= 112))
    nadirs = np.array(nadirs)
    assert np.all(np.diff(nadirs, axis=0) < 0)  # each cycle's nadir falls with dose
    assert np.all(nadirs < 250.0)


def test_withhold_delay_and_reduction():
    # ~2.2 Gy per cycle: grade >= 2 at the second cycle's due day -> weekly re-checks, then 50 % activity
    p = hand_patient(MARROW_GY_PER_GBQ=0.3, GROWTH_PER_DAY=1e-6, PLATELETS_BASELINE=200.0)
    rules = dict(R_WITHHOLD_GRADE=2, R_REDUCE_IF_WITHHELD=1.0, R_REDUCTION_FRACTION=0.5, R_MAX_REDUCTIONS=3)
    cyc, pat = run_one(p, hand_model(), [7.4] * 4, 4, **rules)
    assert cyc[L.C_PLATELET_GRADE, 0] >= 2
    assert cyc[L.C_DELAY_DAYS, 1] > 0 and cyc[L.C_DELAY_DAYS, 1] % 7 == 0
    assert cyc[L.C_TIME_DAYS, 1] == 56 + cyc[L.C_DELAY_DAYS, 1]
    given = int(pat[L.P_CYCLES])
    assert given >= 3  # each next cycle is due an interval after the actual day, plus its own delay
    np.testing.assert_array_equal(np.diff(cyc[L.C_TIME_DAYS, :given]), 56 + cyc[L.C_DELAY_DAYS, 1:given])
    assert cyc[L.C_REDUCED, 1] == 1 and cyc[L.C_ACTIVITY_GBQ, 1] == pytest.approx(3.7)
    # without the rules the same patient is treated on schedule at full activity
    plain, _ = run_one(p, hand_model(), [7.4] * 4, 4)
    np.testing.assert_array_equal(plain[L.C_TIME_DAYS, :4], [0, 56, 112, 168])
    assert np.all(plain[L.C_ACTIVITY_GBQ, :4] == 7.4)


def test_neutrophil_rules_act_alone():
    # a neutropenic course (low baseline ANC, radiosensitive neutrophil progenitors) with the platelet rules off
    p = hand_patient(MARROW_GY_PER_GBQ=0.1, GROWTH_PER_DAY=1e-6, NEUTROPHILS_BASELINE=2.0)
    model = hand_model(NEUTROPHIL_ALPHA_RATIO=3.0)
    plain, pat = run_one(p, model, [7.4] * 4, 4)
    assert plain[L.C_NEUTROPHIL_GRADE, 0] >= 3 and plain[L.C_PLATELET_GRADE, 0] < 2
    assert pat[L.P_NEUTROPHIL_WORST_GRADE] == plain[L.C_NEUTROPHIL_GRADE, :4].max()
    cyc, _ = run_one(p, model, [7.4] * 4, 4, R_REDUCE_NEUTROPHIL_GRADE=3, R_REDUCTION_FRACTION=0.2)
    assert cyc[L.C_REDUCED, 1] == 1 and cyc[L.C_ACTIVITY_GBQ, 1] == pytest.approx(7.4 * 0.8)
    # more marrow dose, deeper neutrophil nadir
    deeper, _ = run_one(hand_patient(MARROW_GY_PER_GBQ=0.2, GROWTH_PER_DAY=1e-6, NEUTROPHILS_BASELINE=2.0), model,
                        [7.4] * 4, 4)
    assert deeper[L.C_NEUTROPHIL_NADIR, 0] < plain[L.C_NEUTROPHIL_NADIR, 0]


def test_discontinue_after_max_delay_and_after_reductions():
    p = hand_patient(MARROW_GY_PER_GBQ=0.3, GROWTH_PER_DAY=1e-6, PLATELETS_BASELINE=200.0)
    cyc, pat = run_one(p, hand_model(), [7.4] * 4, 4, R_WITHHOLD_GRADE=1, R_MAX_DELAY_DAYS=0.0)
    assert pat[L.P_CYCLES] == 1 and pat[L.P_DISCONTINUED_TOXICITY] == 1
    cyc, pat = run_one(p, hand_model(), [7.4] * 4, 4, R_REDUCE_GRADE=1, R_MAX_REDUCTIONS=0)
    assert pat[L.P_CYCLES] == 1 and pat[L.P_DISCONTINUED_TOXICITY] == 1


def test_restore_full_activity_after_a_tolerated_reduced_cycle():
    # grade 1 after cycle 1 triggers a reduction; the reduced cycle stays above 150 -> back to full activity
    p = hand_patient(MARROW_GY_PER_GBQ=0.03, GROWTH_PER_DAY=1e-6, PLATELETS_BASELINE=170.0)
    cyc, _ = run_one(p, hand_model(), [7.4] * 4, 4, R_REDUCE_GRADE=1, R_REDUCTION_FRACTION=0.5, R_RESTORE=1.0,
                     R_MAX_REDUCTIONS=9)
    assert cyc[L.C_PLATELET_GRADE, 0] == 1 and cyc[L.C_REDUCED, 1] == 1
    reduced = cyc[L.C_REDUCED, :4] == 1
    assert np.any(~reduced[1:]) and np.all(cyc[L.C_ACTIVITY_GBQ, :4][~reduced] == 7.4)


def test_renal_rule_withholds_with_low_egfr():
    p = hand_patient(EGFR_BASELINE=35.0, GROWTH_PER_DAY=1e-6)
    _, pat = run_one(p, hand_model(), [7.4] * 4, 4, R_WITHHOLD_EGFR_BELOW=40.0, R_MAX_DELAY_DAYS=28.0)
    assert pat[L.P_CYCLES] == 1 and pat[L.P_DISCONTINUED_TOXICITY] == 1


def test_egfr_trajectory_closed_form():
    # one cycle of BED b at day 0: e(t) = e0 - a t_y - e0 c b (t - tau)_y; censored at day 3000
    e0 = 38.0
    p = hand_patient(GROWTH_PER_DAY=1e-7, ADMIN_CENSOR_DAY=3000.0, EGFR_BASELINE=e0)
    cyc, pat = run_one(p, hand_model(), [7.4], 1)
    b = cyc[L.C_KIDNEY_BED_GY, 0]
    years, lat = 3000 / 365.25, 180 / 365.25
    expected = e0 - 1.0 * years - e0 * 0.0015 * b * (years - lat)
    assert pat[L.P_EGFR_END] == pytest.approx(expected, rel=1e-12)
    assert pat[L.P_CKD_GRADE] == 3 and expected < 30
    # grade >= 3 when e < 30: solve the linear equation
    slope = 1.0 + e0 * 0.0015 * b
    t30 = (e0 - 30.0 + e0 * 0.0015 * b * lat) / slope * 365.25
    assert pat[L.P_RENAL_G3_EVENT] == 1 and pat[L.P_RENAL_G3_DAYS] == pytest.approx(t30, rel=1e-9)


def test_nephropathy_risk_rises_with_kidney_bed_and_risk_factors():
    from sim.kernels.kidney import nephropathy_probability

    beds = np.linspace(10, 80, 15)
    ntcp = np.array([nephropathy_probability(b, 49.5, 0.108, 0.0, 12.0) for b in beds])
    ntcp_rf = np.array([nephropathy_probability(b, 49.5, 0.108, 1.0, 12.0) for b in beds])
    assert np.all(np.diff(ntcp) > 0) and np.all(ntcp_rf > ntcp)
    assert nephropathy_probability(49.5, 49.5, 0.108, 0.0, 12.0) == pytest.approx(0.5)
    assert nephropathy_probability(40.7, 49.5, 0.108, 0.0, 12.0) == pytest.approx(0.05, abs=0.003)  # Bodei 40 Gy
    # the shift that puts the risk-factor 5 % level at Bodei's 28 Gy: BED50' (1 - 1.645 m) = 28
    shift = 49.5 - 28.0 / (1 - 1.645 * 0.108)
    assert nephropathy_probability(28.0, 49.5, 0.108, 1.0, shift) == pytest.approx(0.05, abs=0.003)


def test_forced_mds_and_fatal_grade4_are_treatment_deaths():
    p = hand_patient(GROWTH_PER_DAY=1e-7)
    _, pat = run_one(p, hand_model(MDS_RISK_PER_GY=1e6), [7.4] * 4, 4)
    assert pat[L.P_MDS_AML] == 1 and pat[L.P_DEATH_CAUSE] == L.CAUSE_TREATMENT
    assert pat[L.P_OS_DAYS] > pat[L.P_MDS_AML_DAY] > 168  # onset after the last cycle
    big = hand_patient(GROWTH_PER_DAY=1e-7, MARROW_GY_PER_GBQ=1.0, PLATELETS_BASELINE=150.0)
    cyc, pat = run_one(big, hand_model(FATAL_GRADE4_PROBABILITY=1.0), [7.4] * 4, 4)
    assert pat[L.P_DEATH_CAUSE] == L.CAUSE_TREATMENT and pat[L.P_CYCLES] == 1
    assert pat[L.P_OS_DAYS] == pytest.approx(cyc[L.C_PLATELET_NADIR_DAY, 0], abs=1.0)
    assert cyc[L.C_PLATELET_GRADE, 0] == 4 and pat[L.P_PFS_EVENT] == 1


# ------------------------------------------------------------------------------------------------------------
# Dosimetry-guided rules on hand-made patients (exact dosimetry: no intra-patient variation, no error)


def kidney_bed_of(dose, teff=55.0, trep=2.8, ab=2.6):
    return dose * (1 + trep / (trep + teff) * dose / ab)


def guided(rule, n_cycles=8, **rules):
    base = dict(R_RULE=rule, R_GUIDED_ACTIVITY=7.4, R_KIDNEY_LIMIT_GY=np.inf, R_KIDNEY_LIMIT_RF_GY=np.inf,
                R_MARROW_LIMIT_GY=2.0, R_TARGET=np.inf, R_TARGET_IS_BED=1.0, R_MAX_ACTIVITY=np.inf,
                R_MEASURED_CYCLES=n_cycles)
    base.update(rules)
    return base


STABLE = dict(GROWTH_PER_DAY=1e-7)


@pytest.mark.parametrize("on_bed", [1.0, 0.0])
def test_activity_to_kidney_target_hits_it_exactly(on_bed):
    rules = guided(L.RULE_KIDNEY_TARGET, n_cycles=4, R_TARGET=23.0, R_TARGET_IS_BED=on_bed, R_MIN_ACTIVITY=1.0,
                   R_MAX_ACTIVITY=30.0)
    totals = []
    for gy_per_gbq in (0.3, 0.5, 0.8):
        patient = hand_patient(KIDNEY_GY_PER_GBQ=gy_per_gbq, MARROW_GY_PER_GBQ=0.01, **STABLE)  # marrow cap not binding
        cyc, pat = run_one(patient, hand_model(), [7.4] * 4, 4, **rules)
        given = int(pat[L.P_CYCLES])
        assert given == 4 and pat[L.P_REACHED_TARGET] == 1
        total = cyc[L.C_KIDNEY_BED_GY if on_bed else L.C_KIDNEY_DOSE_GY, :given].sum()
        assert total == pytest.approx(23.0, rel=1e-9)
        assert cyc[L.C_ACTIVITY_GBQ, 0] == 7.4
        totals.append(cyc[L.C_ACTIVITY_GBQ, :given].sum())
    assert totals[0] > totals[1] > totals[2]  # low kidney Gy/GBq gets more activity


def test_cycles_to_kidney_limit():
    p = hand_patient(**STABLE)  # 0.5 Gy/GBq: 3.7 Gy per 7.4 GBq
    per_cycle_bed = kidney_bed_of(3.7)
    cyc, pat = run_one(p, hand_model(), [7.4] * 9, 9, k_max=9, **guided(L.RULE_KIDNEY_LIMIT, R_KIDNEY_LIMIT_GY=27.0))
    expected = int(np.ceil(27.0 / per_cycle_bed))  # full cycles until the known BED reaches the limit
    assert pat[L.P_CYCLES] == expected and pat[L.P_REACHED_TARGET] == 1
    assert np.all(cyc[L.C_ACTIVITY_GBQ, :expected] == 7.4)
    assert np.all(np.diff(cyc[L.C_TIME_DAYS, :expected]) == 56)
    cyc, pat = run_one(p, hand_model(), [7.4] * 9, 9, k_max=9,
                       **guided(L.RULE_KIDNEY_LIMIT, R_KIDNEY_LIMIT_GY=27.0, R_REDUCE_LAST=1.0, R_MIN_ACTIVITY=0.5))
    given = int(pat[L.P_CYCLES])
    assert cyc[L.C_KIDNEY_BED_GY, :given].sum() == pytest.approx(27.0, rel=1e-9) and pat[L.P_REACHED_TARGET] == 1
    assert cyc[L.C_ACTIVITY_GBQ, given - 1] < 7.4
    # with a risk factor the lower limit applies
    rf = hand_patient(KIDNEY_RISK_FACTOR=1.0, **STABLE)
    cyc, pat = run_one(rf, hand_model(), [7.4] * 9, 9, k_max=9,
                       **guided(L.RULE_KIDNEY_LIMIT, R_KIDNEY_LIMIT_GY=27.0, R_KIDNEY_LIMIT_RF_GY=23.0,
                                R_REDUCE_LAST=1.0))
    assert cyc[L.C_KIDNEY_BED_GY, :int(pat[L.P_CYCLES])].sum() == pytest.approx(23.0, rel=1e-9)


def test_marrow_limit_stops_without_reaching_the_kidney_limit():
    p = hand_patient(MARROW_GY_PER_GBQ=0.1, **STABLE)  # 0.74 Gy per cycle
    cyc, pat = run_one(p, hand_model(), [7.4] * 9, 9, k_max=9, **guided(L.RULE_KIDNEY_LIMIT, R_KIDNEY_LIMIT_GY=27.0))
    assert pat[L.P_CYCLES] == 3 and pat[L.P_REACHED_TARGET] == 0  # 3 x 0.74 >= 2 Gy
    assert cyc[L.C_MARROW_DOSE_GY, :3].sum() >= 2.0


def test_tumour_dose_target_and_prediction_from_the_first_cycle():
    p = hand_patient(**STABLE)  # tumour 4 Gy/GBq, no decline: 29.6 Gy per cycle
    rules = guided(L.RULE_TUMOUR_TARGET, R_TARGET=100.0, R_KIDNEY_LIMIT_GY=40.0, R_MEASURED_CYCLES=1)
    cyc, pat = run_one(p, hand_model(), [7.4] * 9, 9, k_max=9, **rules)
    assert pat[L.P_CYCLES] == 4 and pat[L.P_REACHED_TARGET] == 1  # 4 x 29.6 >= 100 Gy
    assert cyc[L.C_MEASURED, 0] == 1 and np.all(cyc[L.C_MEASURED, 1:] == 0)
    assert not np.isnan(cyc[L.C_TUMOUR_DOSE_MEASURED_GY, 0]) and np.all(np.isnan(cyc[L.C_TUMOUR_DOSE_MEASURED_GY, 1:]))
    # a kidney limit that the next cycle would pass stops treatment first
    rules = guided(L.RULE_TUMOUR_TARGET, R_TARGET=100.0, R_KIDNEY_LIMIT_GY=10.0)
    _, pat = run_one(p, hand_model(), [7.4] * 9, 9, k_max=9, **rules)
    assert pat[L.P_CYCLES] == 2 and pat[L.P_REACHED_TARGET] == 0  # 2 cycles ~8.1 Gy BED; a third would pass 10


def test_measurement_error_moves_the_guided_activity():
    rules = guided(L.RULE_KIDNEY_TARGET, n_cycles=4, R_TARGET=23.0, R_MIN_ACTIVITY=1.0, R_MAX_ACTIVITY=30.0)
    exact, _ = run_one(hand_patient(**STABLE), hand_model(), [7.4] * 4, 4, **rules)
    noisy, _ = run_one(hand_patient(**STABLE), hand_model(KIDNEY_MEAS_SIGMA=0.3), [7.4] * 4, 4, **rules)
    assert not np.allclose(exact[L.C_ACTIVITY_GBQ, 1:4], noisy[L.C_ACTIVITY_GBQ, 1:4])
    assert noisy[L.C_KIDNEY_BED_GY, :4].sum() != pytest.approx(23.0, rel=1e-3)
