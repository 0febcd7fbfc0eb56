"""The NumPy oracle's random streams match ``sim.rng``; hand-computed checks of ``sim.numpy_oracle`` (model 3, 4, 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from sim import kernel_outputs, rng
from sim.kernels import events, kidney, marrow, policy, tumour
from sim.numpy_oracle import exponentials_np, normals_np, simulate_arm_oracle, stream_item, uniforms_np

from . import hand_inputs as H

SEEDS = [0, 1, 20240607, 2**63 + 12345, 2**64 - 1]
IDS = np.array([0, 1, 2, 17, 999_999, 2**31 + 3, 2**40, 2**40 + 1, 2**53 + 7, 2**62 + 11], dtype=np.int64)

# (stream name, item of an indexed stream, first counter, count): organ streams (counter = cycle), the indexed lesion
# streams (items 0 and 3), event streams (counter 0) and the fatal grade-4 stream (counter = cycle).
STREAM_CASES = [("dosimetry/kidney/intra-patient", 0, 0, 14), ("dosimetry/marrow/measurement", 0, 1000, 1),
                ("dosimetry/lesion/intra-patient", 0, 0, 7), ("dosimetry/lesion/intra-patient", 3, 0, 48),
                ("dosimetry/lesion/measurement", 3, 40, 8), ("death/background", 0, 0, 16),
                ("mds/latency", 0, 0, 1), ("marrow/fatal-grade4", 0, 0, 6)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "index", "first_ctr", "count"), STREAM_CASES)
def test_uniforms_match_rng_exactly(seed, name, index, first_ctr, count):
    expected = rng.uniforms(seed, IDS, name, first_ctr, count, index)
    got = uniforms_np(seed, IDS, stream_item(rng.stream_id(name), index), first_ctr, count)
    np.testing.assert_array_equal(got, expected)
    assert np.all((got > 0.0) & (got < 1.0))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "index", "first_ctr", "count"), STREAM_CASES)
def test_normals_match_rng(seed, name, index, first_ctr, count):
    expected = rng.normals(seed, IDS, name, first_ctr, count, index)
    got = normals_np(seed, IDS, stream_item(rng.stream_id(name), index), first_ctr, count)
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0.0)


def test_stream_ids_the_kernel_uses_are_the_named_ones():
    organs = H.organs()
    for o, name in enumerate(H.ORGANS):
        assert organs.intra_stream[o] == rng.stream_id(f"dosimetry/{name}/intra-patient")
        assert organs.measurement_stream[o] == rng.stream_id(f"dosimetry/{name}/measurement")
    named = {events.BACKGROUND_DEATH_STREAM: "death/background", events.DROPOUT_STREAM: "trial/dropout",
             events.PRE_PROGRESSION_DEATH_STREAM: "death/pre-progression",
             events.POST_PROGRESSION_DEATH_STREAM: "death/post-progression", events.MDS_ONSET_STREAM: "mds/onset",
             events.MDS_LATENCY_STREAM: "mds/latency", events.MDS_DEATH_STREAM: "mds/death",
             tumour.NEW_LESION_STREAM: "tumour/new-lesion", kidney.NEPHROPATHY_STREAM: "kidney/nephropathy",
             kidney.NEPHROPATHY_LATENCY_STREAM: "kidney/nephropathy-latency",
             marrow.FATAL_GRADE4_STREAM: "marrow/fatal-grade4",
             tumour.LESION_INTRA_STREAM: "dosimetry/lesion/intra-patient",
             tumour.LESION_MEASUREMENT_STREAM: "dosimetry/lesion/measurement"}
    for stream, name in named.items():
        assert stream == rng.stream_id(name)
    # an item wraps modulo 2^64 (as the kernel's uint64 addition)
    assert stream_item(np.uint64(2**64 - 2), 3) == np.uint64(1)


def test_exponentials_and_id_invariance():
    got = exponentials_np(7, IDS, events.BACKGROUND_DEATH_STREAM, 0, 5)
    np.testing.assert_array_equal(got, -np.log(rng.uniforms(7, IDS, "death/background", 0, 5)))
    # A patient's draws depend only on its id, not on the batch it is in.
    stream = rng.stream_id("dosimetry/kidney/intra-patient")
    np.testing.assert_array_equal(uniforms_np(7, IDS[3:4], stream, 0, 8), uniforms_np(7, IDS, stream, 0, 8)[3:4])


# ----------------------------------------------------------------------------------------------------------
# Hand-made inputs: organs (kidney, marrow), blood lines (platelets, neutrophils), one lesion.
KIDNEY, MARROW = 0, 1
PLT, NEU = 0, 1
NEVER = policy.NEVER_GRADE
LAM_MARROW_60H = math.log(2.0) / (60.0 / 24.0)

PATIENT = dict(age_years=65.0, admin_censor_day=2000.0, growth_per_day=math.log(2.0) / 70.0, new_lesion_per_day=0.0,
               post_progression_death_per_day=1e-3, tumour_alpha_per_gy=0.03, egfr_baseline_ml_min=90.0,
               egfr_decline_ml_min_per_year=0.0, kidney_risk_factor=0.0, prior_chemotherapy=0.0,
               marrow_alpha_per_gy=1.5, blood_baseline=[200.0, 4.0],
               gy_per_gbq=[0.6, 0.04], teff_h=[50.0, 60.0], lesion_volume_ml=[50.0], lesion_stroma_fraction=[0.2],
               lesion_negative_fraction=[0.3], lesion_gy_per_gbq=[3.0], lesion_teff_h=[90.0])


def _patient(ids=(3,), **kw):
    """Kidney 0.6 Gy/GBq (T_eff 50 h), marrow 0.04 (60 h), tumour 3 Gy/GBq (90 h) in 50 mL, platelets 200,
    neutrophils 4.0; one row per id."""
    return H.patients(len(ids), ids=np.asarray(ids, dtype=np.int64), **{**PATIENT, **kw})


def _stable_patient(ids=(3,), **kw):
    """No growth, no new lesions: never progresses, so only deaths and censoring end follow-up."""
    return _patient(ids, **{"growth_per_day": 0.0, "lesion_gy_per_gbq": [0.0], **kw})


def _organs(**kw):
    return H.organs(**{"alpha_beta_gy": [2.6, 15.0], "repair_h": [2.8, 0.5], **kw})


def _lesions(**kw):
    return H.lesions(**{"alpha_beta_gy": 8.5, "repair_h": 1.5, "dead_clearance_per_day": math.log(2.0) / 30.0, **kw})


def _blood(**kw):
    return H.blood(**{"window_days": 84.0, "fatal_grade4_probability": 0.0, **kw})


def _kidney(**kw):
    """No nephropathy, no radiation eGFR decline unless asked for (the background decline is the patient's)."""
    return H.kidney(**{"bed50_gy": 1e6, "lkb_m": 0.1, "risk_factor_bed50_ratio": 1.0, "nephropathy_latency_days": 365.0,
                       "nephropathy_latency_sigma": 0.0, "nephropathy_egfr_loss": 0.3,
                       "radiation_decline_per_gy_year": 0.0, "risk_factor_decline_multiplier": 1.0,
                       "subclinical_latency_days": 0.0, **kw})


def _events(**kw):
    """No deaths (background hazard 1e-12), dropout or MDS/AML unless asked for."""
    return H.events(**{"background_hazard_65_per_year": 1e-12, "background_slope_per_year": 0.0,
                       "mds_risk_per_gy": 0.0, "mds_chemo_multiplier": 1.0, "mds_latency_days": 1000.0,
                       "mds_latency_sigma": 0.0, "mds_death_per_day": 1e-3, **kw})


def _regimen(n_cycles: int, interval: float, continue_after: int = 0, activities=None, **kw):  # noqa: ANN001
    """A fixed regimen without dose-modification rules; every cycle measured unless told otherwise."""
    return H.regimen(n_cycles, activities, interval, **{"continue_after": continue_after, "measured_cycles": n_cycles,
                                                        **kw})


def _run(patients, plan, scans, k_max: int, seed: int, organs=None, lesions=None, blood=None, kidney_params=None,  # noqa: ANN001
         event_params=None) -> kernel_outputs.Outputs:
    inp = H.inputs(patients, _organs() if organs is None else organs, _lesions() if lesions is None else lesions,
                   _blood() if blood is None else blood, _kidney() if kidney_params is None else kidney_params,
                   _events() if event_params is None else event_params, plan, np.asarray(scans, dtype=np.float64),
                   seed)
    return simulate_arm_oracle(*inp.args(), H.sizes(inp, k_max))


def _row(patients, i: int):
    """Patient ``i`` of a ``Patients`` alone."""
    return type(patients)(*(a[i:i + 1] for a in patients))


def _assert_same_rows(got: kernel_outputs.Outputs, whole: kernel_outputs.Outputs, i: int) -> None:
    for name in kernel_outputs.Outputs._fields:
        np.testing.assert_array_equal(getattr(got, name), getattr(whole, name)[i:i + 1], err_msg=name)


def _first_cycle_platelets(dose_gy: float, s0: float = 200.0, alpha: float = 1.5, lam: float = LAM_MARROW_60H,
                           t_end: float = 120.0, mtt: float = 20.0, lifespan: float = 5.0, gamma: float = 0.3):
    """Dense DOP853 solution of the marrow model (docs/model.md 4.1; the platelet kinetics of ``_blood`` unless
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
    """The same model with the neutrophil kinetics of ``_blood`` (docs/model.md 4.7)."""
    return _first_cycle_platelets(dose_gy, anc0, alpha, t_end=t_end, mtt=5.2, lifespan=1.3, gamma=0.16)


def _assert_not_given(out: kernel_outputs.Outputs, i: int, k: int) -> None:
    """Cycle ``k`` of patient ``i`` holds every per-cycle output's fill value: NaN (day, measured doses, blood
    nadirs, nadir days, end counts) or zero (the others)."""
    for o in kernel_outputs.OUTPUTS:
        if "cycle" not in o.dims:
            continue
        value = getattr(out, o.name)[i, k]
        if math.isnan(o.fill):
            assert np.isnan(value).all(), o.name
        else:
            assert not np.any(value), o.name


def test_control_arm_exponential_growth_progresses_on_first_scan_over_pd_ratio():
    seed, pid = 11, 2**40 + 5
    p = _patient(ids=(pid,), blood_baseline=[140.0, 4.0], egfr_baseline_ml_min=59.0, egfr_decline_ml_min_per_year=1.5)
    scans = np.arange(1, 30) * 56.0
    out = _run(p, _regimen(0, 28.0, activities=np.zeros(1)), scans, 4, seed)

    # By hand: V(t) = f_s V0 + (1 - f_s) V0 exp(g t); nadir stays V0 because V only grows.
    v0, fs, g = 50.0, 0.2, math.log(2.0) / 70.0
    vols = fs * v0 + (1 - fs) * v0 * np.exp(g * scans)
    j = int(np.argmax(vols >= 1.728 * v0))
    assert abs(vols[j] / v0 - 1.728) > 1e-3 and abs(vols[j - 1] / v0 - 1.728) > 1e-3  # not borderline
    t_p = scans[j]
    assert out.pfs_time_days[0] == t_p and out.pfs_event[0] == 1
    assert out.progression_type[0] == tumour.PROGRESSION_TARGET
    assert out.best_response[0] == (tumour.RESPONSE_SD if j > 0 else tumour.RESPONSE_PD)
    assert out.tumour_nadir_ratio[0] == 1.0 and out.cycles_given[0] == 0
    for k in range(4):
        _assert_not_given(out, 0, k)

    # Post-progression death: t_p + E / h_pp, E from the stream "death/post-progression" (counter 0).
    e_pp = -math.log(rng.uniforms(seed, np.array([pid]), "death/post-progression")[0, 0])
    death = t_p + e_pp / 1e-3
    if death <= 2000.0:
        assert out.os_time_days[0] == pytest.approx(death, rel=1e-14)
        assert out.os_event[0] == 1
        assert out.death_cause[0] == events.CAUSE_CANCER_AFTER_PROGRESSION
    else:
        assert out.os_time_days[0] == 2000.0 and out.os_event[0] == 0
        assert out.death_cause[0] == events.CAUSE_ALIVE

    # Untreated: platelets stay at S0 (grade 1 for 140), eGFR declines with age only, no toxicity.
    t_end = out.os_time_days[0]
    np.testing.assert_array_equal(out.blood_worst_grade[0], [1, 0])  # ANC0 4.0: grade 0
    assert out.egfr_end_ml_min[0] == pytest.approx(59.0 - 1.5 * t_end / 365.25, rel=1e-14)
    assert out.ckd_grade[0] == 2  # 50.8-59 mL/min
    assert out.renal_grade3_time_days[0] == t_end and out.renal_grade3_event[0] == 0
    assert out.mds_aml[0] == 0 and np.isnan(out.mds_aml_day[0])
    assert out.discontinued_for_toxicity[0] == 0


def test_one_cycle_bed_and_tumour_kill_by_hand():
    # No variability (sigmas 0), no growth, no new lesions: everything is closed form.
    alpha, a = 0.05, 7.4
    p = _patient(growth_per_day=0.0, tumour_alpha_per_gy=alpha)
    out = _run(p, _regimen(1, 56.0, activities=[a]), [84.0], 2, 5)

    d = a * 3.0
    lam, mu = math.log(2) / 90.0, math.log(2) / 1.5
    bed = d * (1 + lam / (lam + mu) * d / 8.5)
    assert bed == pytest.approx(d * (1 + 1.5 / (90.0 + 1.5) * d / 8.5), rel=1e-14)  # G = T_rep/(T_eff+T_rep)
    assert out.cycle_time_days[0, 0] == 0.0
    assert out.activity_gbq[0, 0] == a
    assert out.delay_days[0, 0] == 0.0 and out.dose_reduced[0, 0] == 0
    assert out.lesion_dose_gy[0, 0, 0] == pytest.approx(d, rel=1e-14)
    assert out.lesion_dose_measured_gy[0, 0, 0] == pytest.approx(d, rel=1e-14)
    assert out.lesion_bed_gy[0, 0, 0] == pytest.approx(bed, rel=1e-14)
    dk = a * 0.6
    lam_k, mu_k = math.log(2) / 50.0, math.log(2) / 2.8
    assert out.bed_gy[0, 0, KIDNEY] == pytest.approx(dk * (1 + lam_k / (lam_k + mu_k) * dk / 2.6), rel=1e-14)
    _assert_not_given(out, 0, 1)

    # Kill at day 0, dead volume clears until the scan at day 84.
    v0, fs, fn = 50.0, 0.2, 0.3
    p0, n0 = (1 - fn) * (1 - fs) * v0, fn * (1 - fs) * v0
    surv = math.exp(-alpha * bed)
    v84 = fs * v0 + n0 + p0 * surv + p0 * (1 - surv) * math.exp(-math.log(2) / 30.0 * 84.0)
    assert out.tumour_nadir_ratio[0] == pytest.approx(v84 / v0, rel=1e-13)
    expected = tumour.RESPONSE_PR if v84 <= 0.343 * v0 else tumour.RESPONSE_SD
    assert out.best_response[0] == expected
    assert out.cycles_given[0] == 1
    # No progression, no death: PFS censored at the last scan, OS censored at C_a.
    assert out.pfs_time_days[0] == 84.0 and out.pfs_event[0] == 0
    assert out.os_time_days[0] == 2000.0 and out.death_cause[0] == events.CAUSE_ALIVE


def test_continue_after_rule_and_batch_invariance():
    # Patient 0 shrinks (big dose), patient 1 barely (tiny dose): with continue_after = 2 and a scan at day 84
    # (before cycle 2 at day 84, same day), only the shrinking one gets cycles 2 and 3.
    ids = (10, 2**40 + 10)
    p = _patient(ids, lesion_gy_per_gbq=[[20.0], [0.01]], tumour_alpha_per_gy=[0.3, 0.03],
                 growth_per_day=[math.log(2.0) / 70.0, math.log(2) / 400])
    groups = dict(organs=_organs(intra_sigma=[0.1, 0.0]), lesions=_lesions(intra_sigma=0.2, measurement_sigma=0.1))
    args = (_regimen(4, 42.0, 2, activities=np.full(4, 7.4)), [84.0, 168.0, 252.0], 6, 9)
    out = _run(p, *args, **groups)
    np.testing.assert_array_equal(out.cycles_given, [4, 2])
    np.testing.assert_array_equal(out.cycle_time_days[0, :4], [0.0, 42.0, 84.0, 126.0])
    assert np.isnan(out.cycle_time_days[1, 2:]).all() and np.isnan(out.cycle_time_days[0, 4:]).all()
    assert out.discontinued_for_toxicity.sum() == 0  # continue_after is not toxicity
    # Per-cycle draws: counter k of the organ's and the lesion's (item 0) streams.
    z_kidney = rng.normals(9, np.array(ids[:1]), "dosimetry/kidney/intra-patient", 3)[0, 0]
    z_lesion = rng.normals(9, np.array(ids[:1]), "dosimetry/lesion/intra-patient", 3, index=0)[0, 0]
    z_lesion_meas = rng.normals(9, np.array(ids[:1]), "dosimetry/lesion/measurement", 3, index=0)[0, 0]
    assert out.dose_gy[0, 3, KIDNEY] == pytest.approx(7.4 * 0.6 * math.exp(0.1 * z_kidney), rel=1e-13)
    assert out.lesion_dose_measured_gy[0, 3, 0] == pytest.approx(
        7.4 * 20.0 * math.exp(0.2 * z_lesion) * math.exp(0.1 * z_lesion_meas), rel=1e-13)
    # Each patient simulated alone gives the same result.
    for i in range(2):
        _assert_same_rows(_run(_row(p, i), *args, **groups), out, i)


# ---------------------------------------------------------------------------------------------------------- 4.1
@pytest.mark.parametrize(("line", "baseline"), [(PLT, [140.0, 4.0]), (NEU, [200.0, 1.8])])
def test_zero_marrow_dose_stays_at_baseline(line, baseline):
    """Both blood lines (4.1, 4.7) sit at their baseline without marrow dose: nadir = baseline on the
    administration day, the baseline's grade (140 < 150; 1.8 < 2.0: grade 1), nothing for cycles not given."""
    p = _patient(ids=(4,), gy_per_gbq=[0.6, 0.0], blood_baseline=baseline)
    out = _run(p, _regimen(3, 42.0, activities=np.full(3, 7.4)), [56.0, 112.0], 4, 3)
    given = int(out.cycles_given[0])
    assert given >= 1
    np.testing.assert_array_equal(out.blood_nadir[0, :given, line], baseline[line])
    np.testing.assert_array_equal(out.blood_nadir_day[0, :given, line], 0.0)
    np.testing.assert_array_equal(out.blood_grade[0, :given, line], 1)
    assert out.blood_worst_grade[0, line] == 1
    assert np.isnan(out.blood_nadir[0, given:, line]).all()
    assert not out.blood_grade[0, given:, line].any()


def _reference_nadir(circ, t1: float) -> tuple[float, float]:
    grid = np.linspace(0.0, t1, int(t1 * 1000) + 1)
    i = int(np.argmin(circ(grid)))
    res = optimize.minimize_scalar(circ, bounds=(grid[i - 1], grid[i + 1]), method="bounded",
                                   options={"xatol": 1e-9})
    return float(res.fun), float(res.x)


def _one_cycle_run(blood=None, scans=(30.0, 60.0, 120.0)):  # noqa: ANN001, ANN202
    """One cycle of 6 GBq x 0.2 Gy/GBq = 1.2 Gy marrow at day 0; the window (84 d) ends the integration."""
    return _run(_stable_patient(ids=(8,), gy_per_gbq=[0.6, 0.2]), _regimen(1, 42.0, activities=[6.0]), scans, 1, 1,
                blood=blood)


def test_first_cycle_nadir_matches_solve_ivp():
    # Reference: DOP853 at rtol 1e-10.
    out = _one_cycle_run()
    nadir, day = _reference_nadir(_first_cycle_platelets(1.2), 84.0)  # ~49.4 at day ~39.7
    assert out.blood_nadir[0, 0, PLT] == pytest.approx(nadir, rel=1e-4)
    assert abs(out.blood_nadir_day[0, 0, PLT] - day) < 0.05
    assert 50.0 - nadir > 0.5  # grade 3, clear of the threshold
    assert out.blood_grade[0, 0, PLT] == 3 == out.blood_worst_grade[0, PLT]


@pytest.mark.parametrize("p_fatal", [0.0, 1.0, 0.5])
def test_fatal_grade4_at_the_nadir_day(p_fatal):
    # 2.5 Gy: nadir ~13.0 at ~day 44.5 inside the interval [30, 84] (events: scan at 30, cycle 1 at 84).
    seed, pid = 2, 77
    p = _stable_patient(ids=(pid,), gy_per_gbq=[0.6, 2.5 / 7.4])
    out = _run(p, _regimen(2, 84.0, activities=np.full(2, 7.4)), [30.0, 90.0, 180.0], 2, seed,
               blood=_blood(fatal_grade4_probability=p_fatal))
    nadir, day = out.blood_nadir[0, 0, PLT], out.blood_nadir_day[0, 0, PLT]
    ref_nadir, ref_day = _reference_nadir(_first_cycle_platelets(2.5), 84.0)
    assert nadir == pytest.approx(ref_nadir, rel=1e-3) and abs(day - ref_day) < 0.05  # RK4 at 0.5 d: 3e-4
    assert nadir < 25.0 and out.blood_grade[0, 0, PLT] == 4
    u = rng.uniforms(seed, np.array([pid]), "marrow/fatal-grade4", 0)[0, 0]  # counter: cycle 0
    if u < p_fatal:  # dies at the nadir day: before progression, so also the PFS event
        assert out.os_time_days[0] == day and out.os_event[0] == 1
        assert out.pfs_time_days[0] == day and out.pfs_event[0] == 1
        assert out.death_cause[0] == events.CAUSE_TREATMENT
        assert out.cycles_given[0] == 1 and out.best_response[0] == tumour.RESPONSE_SD
    else:
        assert out.cycles_given[0] == 2 and out.os_event[0] == 0
        assert out.cycle_time_days[0, 1] == 84.0


# ---------------------------------------------------------------------------------------------------------- 4.2
@pytest.mark.parametrize("nephropathy", [False, True])
def test_egfr_trajectory_and_renal_grade3_day_by_hand(nephropathy):
    # One cycle at day 0, kidney 7.4 x 0.6 Gy (sigma 0), c = 0.01/Gy/year doubled by the risk factor, tau 90 d,
    # 1 mL/min/year age decline, follow-up to C_a = 2500 (no death, no progression, post-progression hazard 0).
    p = _stable_patient(ids=(5,), egfr_baseline_ml_min=70.0, kidney_risk_factor=1.0, admin_censor_day=2500.0,
                        egfr_decline_ml_min_per_year=1.0)
    params = dict(radiation_decline_per_gy_year=0.01, risk_factor_decline_multiplier=2.0, subclinical_latency_days=90.0)
    if nephropathy:  # NTCP = Phi((BED - 1) / 0.01) = 1; onset = 0 + 365 d (sigma 0), e x (1 - 0.3) after it
        params.update(bed50_gy=1.5 / 0.7, lkb_m=0.01, risk_factor_bed50_ratio=0.7)
    out = _run(p, _regimen(1, 42.0, activities=[7.4]), np.arange(1, 50) * 84.0, 1, 4, kidney_params=_kidney(**params))
    d = 7.4 * 0.6
    bed = d * (1 + 2.8 / (2.8 + 50.0) * d / 2.6)
    assert out.bed_gy[0, 0, KIDNEY] == pytest.approx(bed, rel=1e-14)
    factor = 0.7 if nephropathy else 1.0
    slope = (1.0 + 70.0 * 0.02 * bed) / 365.25  # mL/min per day once t > tau

    def egfr(t):
        return 70.0 - t / 365.25 - 70.0 * 0.02 * bed * max(0.0, t - 90.0) / 365.25

    assert out.os_time_days[0] == 2500.0 and out.os_event[0] == 0
    e_end = factor * egfr(2500.0)
    assert out.egfr_end_ml_min[0] == pytest.approx(e_end, rel=1e-13)
    assert out.ckd_grade[0] == (4 if nephropathy else 3)  # 12.9 / 18.4 mL/min
    # e(t) = 30 on the linear piece after tau (and after the onset with nephropathy): 70 + 90 (slope - 1/365.25)
    # - slope t = 30 / factor.
    t30 = (70.0 + 90.0 * (slope - 1.0 / 365.25) - 30.0 / factor) / slope
    assert (t30 > 365.0) if nephropathy else (t30 > 90.0)
    assert egfr(t30) * factor == pytest.approx(30.0, rel=1e-12)
    assert out.renal_grade3_event[0] == 1
    assert out.renal_grade3_time_days[0] == pytest.approx(t30, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------- 4.5
def _withheld_run(**regimen_kw):
    # 6 GBq x 0.2 Gy/GBq = 1.2 Gy per cycle; S0 200: count 50.4 at day 42 (grade 2), 66.8 at 49 (grade 2), 107.4 at
    # 56 (grade 1). Withheld while grade >= 2, re-checked weekly: cycle 1 given at day 56, delay 14 (2 x recheck).
    p = _stable_patient(ids=(21,), gy_per_gbq=[0.6, 0.2])
    plan = _regimen(3, 42.0, activities=[6.0, 6.0, 5.0], **{"withhold_grade": [2.0, NEVER], "reduction_fraction": 0.25,
                                                          "reduce_if_withheld": True, **regimen_kw})
    return _run(p, plan, np.arange(1, 20) * 56.0, 3, 6)


def test_withheld_cycle_is_delayed_by_rechecks_and_reduced():
    circ = _first_cycle_platelets(1.2)
    checks = np.array([42.0, 49.0, 56.0])
    counts = circ(checks)
    assert (counts[:2] < 75.0 - 4.0).all() and counts[2] > 75.0 + 4.0  # clear of the grade-2 threshold

    out = _withheld_run()
    assert out.cycle_time_days[0, 1] == 56.0
    assert out.delay_days[0, 1] == 14.0 == 2 * 7.0
    assert out.dose_reduced[0, 1] == 1
    assert out.activity_gbq[0, 1] == pytest.approx(6.0 * 0.75, rel=1e-15)
    assert out.dose_gy[0, 1, MARROW] == pytest.approx(6.0 * 0.75 * 0.2, rel=1e-14)
    # The next cycle is due interval after the actual administration and stays reduced (no restore); its delay
    # is counted from its own first due day.
    assert out.cycle_time_days[0, 2] == 98.0 + out.delay_days[0, 2]
    assert out.dose_reduced[0, 2] == 1
    assert out.activity_gbq[0, 2] == pytest.approx(5.0 * 0.75, rel=1e-15)
    assert out.delay_days[0, 2] % 7.0 == 0.0
    assert out.cycles_given[0] == 3 and out.discontinued_for_toxicity[0] == 0


def test_withheld_cycle_not_reduced_without_reduce_after_withholding():
    out = _withheld_run(reduce_if_withheld=False)
    assert out.cycle_time_days[0, 1] == 56.0 and out.delay_days[0, 1] == 14.0
    assert out.dose_reduced[0, 1] == 0 and out.activity_gbq[0, 1] == 6.0


def test_withheld_cycle_discontinues_when_no_reduction_is_left():
    out = _withheld_run(max_reductions=0)
    assert out.cycles_given[0] == 1 and out.discontinued_for_toxicity[0] == 1
    _assert_not_given(out, 0, 1)


def test_reduce_then_restore_after_a_tolerated_cycle():
    # Cycle 0 (0.5 Gy) nadir ~110 (grade 1 >= reduce grade 1): cycle 1 reduced to 10 %; by day 120 the count has
    # recovered, cycle 1's nadir stays >= 150 (grade 0), so cycle 2 is given at full activity when restoring.
    p = _stable_patient(ids=(12,), gy_per_gbq=[0.6, 0.5 / 7.4])
    for restore in (False, True):
        plan = _regimen(3, 120.0, activities=np.full(3, 7.4), reduce_grade=[1.0, NEVER], reduction_fraction=0.9,
                        restore_after_tolerated=restore, max_reductions=2)
        out = _run(p, plan, np.arange(1, 20) * 56.0, 3, 6)
        np.testing.assert_array_equal(out.cycle_time_days[0], [0.0, 120.0, 240.0])
        np.testing.assert_array_equal(out.blood_grade[0, :2, PLT], [1, 0])
        np.testing.assert_array_equal(out.dose_reduced[0], [0, 1, 0 if restore else 1])
        np.testing.assert_allclose(out.activity_gbq[0], [7.4, 0.74, 7.4 if restore else 0.74], rtol=1e-15)


@pytest.mark.parametrize("rule", [{"withhold_egfr_below_ml_min": 200.0},
                                  {"withhold_egfr_drop": 0.05, "background_decline": 200.0}])
def test_discontinued_after_max_delay(rule):
    # eGFR never recovers: withheld at day 42, re-checks 49 and 56 (56 + 7 - 42 = 21 <= 21), discontinued at 63.
    rule = dict(rule)
    patient = _stable_patient(ids=(13,), egfr_decline_ml_min_per_year=rule.pop("background_decline", 0.0))
    plan = _regimen(4, 42.0, activities=np.full(4, 7.4), max_delay_days=21.0, **rule)
    out = _run(patient, plan, np.arange(1, 20) * 56.0, 4, 6)
    assert out.cycles_given[0] == 1 and out.discontinued_for_toxicity[0] == 1
    for k in range(1, 4):
        _assert_not_given(out, 0, k)
    # The marrow window (84 d) is longer than the 63 days integrated while cycles could still be given.
    assert out.blood_worst_grade[0, PLT] == out.blood_grade[0, 0, PLT]


@pytest.mark.parametrize(("max_delay", "given"), [(14.0, True), (13.9, False)])
def test_max_delay_boundary(max_delay, given):
    # Withheld at 42 and 49, given at 56. At 49 the next check (56) is 14 days after the due day: allowed when the
    # maximum delay is 14 (not later than), discontinued when it is 13.9.
    out = _withheld_run(max_delay_days=max_delay)
    assert out.discontinued_for_toxicity[0] == (0 if given else 1)
    if given:
        assert out.cycle_time_days[0, 1] == 56.0 and out.delay_days[0, 1] == 14.0
    else:
        assert out.cycles_given[0] == 1
        _assert_not_given(out, 0, 1)


# ---------------------------------------------------------------------------------------------------------- 4.3
def test_mds_aml_forced_kills_at_onset_plus_exponential():
    seed, pid = 8, 2**33 + 1
    event_params = _events(mds_risk_per_gy=1e9, mds_latency_days=300.0, mds_latency_sigma=0.0,
                           mds_death_per_day=1.0 / 200.0)
    scans = np.arange(1, 200) * 56.0
    plan = _regimen(2, 42.0, activities=np.full(2, 7.4))
    out = _run(_stable_patient(ids=(pid,), admin_censor_day=1e6), plan, scans, 2, seed, event_params=event_params)
    assert out.cycles_given[0] == 2
    onset = 42.0 + 300.0  # last administration + median latency
    e_death = -math.log(rng.uniforms(seed, np.array([pid]), "mds/death")[0, 0])
    death = onset + e_death * 200.0
    assert out.mds_aml[0] == 1 and out.mds_aml_day[0] == onset
    assert out.os_time_days[0] == pytest.approx(death, rel=1e-14)
    assert out.os_event[0] == 1 and out.death_cause[0] == events.CAUSE_TREATMENT
    # Decided when the cycles ended (before progression): T_dp falls, so it is the PFS event; the last evaluated
    # scan is the last one before the death.
    assert out.pfs_time_days[0] == pytest.approx(death, rel=1e-14) and out.pfs_event[0] == 1
    # MDS/AML is not recorded when censored before its onset.
    out = _run(_stable_patient(ids=(pid,), admin_censor_day=onset - 1.0), plan, scans, 2, seed,
               event_params=event_params)
    assert out.mds_aml[0] == 0 and np.isnan(out.mds_aml_day[0])
    assert out.os_event[0] == 0 and out.os_time_days[0] == onset - 1.0


# ---------------------------------------------------------------------------------------------------------- 4.7
@pytest.mark.parametrize(("anc0", "grade"), [(4.0, 0), (1.8, 1), (1.2, 2), (0.7, 3), (0.3, 4)])
def test_untreated_worst_neutrophil_grade_is_the_baseline_grade(anc0, grade):
    p = _patient(ids=(6,), blood_baseline=[200.0, anc0])
    out = _run(p, _regimen(0, 28.0, activities=np.zeros(1)), np.arange(1, 10) * 56.0, 2, 2)
    assert out.cycles_given[0] == 0
    assert out.blood_worst_grade[0, NEU] == grade
    for k in range(2):
        _assert_not_given(out, 0, k)


def test_first_cycle_neutrophil_nadir_matches_solve_ivp():
    # The run of test_first_cycle_nadir_matches_solve_ivp: 1.2 Gy at day 0, intervals split at the scans (30, 60)
    # and ended by the window (84 d); neutrophil kinetics MTT 5.2 d, lifespan 1.3 d, gamma 0.16, ratio 1.
    out = _one_cycle_run()
    nadir, _ = _reference_nadir(_first_cycle_neutrophils(1.2), 84.0)  # ~1.079 at day ~13.2
    assert out.blood_nadir[0, 0, NEU] == pytest.approx(nadir, rel=1e-3)
    assert 1.5 - nadir > 0.1 and nadir - 1.0 > 0.05  # grade 2, clear of the thresholds
    assert out.blood_grade[0, 0, NEU] == 2 == out.blood_worst_grade[0, NEU]
    # The ratio scales the radiosensitivity: half as sensitive, a shallower nadir (grade 1).
    out = _one_cycle_run(_blood(alpha_ratio=[1.0, 0.5]), scans=(30.0, 60.0))
    nadir, _ = _reference_nadir(_first_cycle_neutrophils(1.2, alpha=0.75), 84.0)
    assert out.blood_nadir[0, 0, NEU] == pytest.approx(nadir, rel=1e-3)
    assert out.blood_grade[0, 0, NEU] == 1 == out.blood_worst_grade[0, NEU]


def _neutropenic_run(**regimen_kw):
    # 1.2 Gy per cycle, cycles every 14 days: neutrophils ~1.09 at day 14 (grade 2), ~2.23 at day 21 (grade 0).
    p = _stable_patient(ids=(31,), gy_per_gbq=[0.6, 0.2])
    plan = _regimen(2, 14.0, activities=np.full(2, 6.0), **{"reduction_fraction": 0.5, **regimen_kw})
    return _run(p, plan, [56.0], 2, 6)


def test_neutrophil_rule_alone_withholds_the_cycle():
    counts = _first_cycle_neutrophils(1.2)(np.array([14.0, 21.0]))
    assert counts[0] < 1.5 - 0.2 and counts[1] > 2.0 + 0.2  # grade 2, then grade 0, clear of the thresholds
    out = _neutropenic_run()  # no rule: given when due
    assert out.cycle_time_days[0, 1] == 14.0 and out.delay_days[0, 1] == 0.0
    out = _neutropenic_run(withhold_grade=[NEVER, 2.0])  # platelet rule off
    assert out.cycle_time_days[0, 1] == 21.0 and out.delay_days[0, 1] == 7.0
    assert out.dose_reduced[0, 1] == 0 and out.activity_gbq[0, 1] == 6.0
    assert out.cycles_given[0] == 2 and out.discontinued_for_toxicity[0] == 0
    # A grade-3 threshold is not reached (grade 2 at day 14).
    out = _neutropenic_run(withhold_grade=[NEVER, 3.0])
    assert out.cycle_time_days[0, 1] == 14.0


@pytest.mark.parametrize(("reduce_grade", "reduced"), [(2.0, True), (3.0, False)])
def test_neutrophil_rule_alone_reduces_the_next_cycle(reduce_grade, reduced):
    # Worst neutrophil grade since cycle 0: 2 (nadir ~1.08 at day ~13.2, before the due day 14).
    out = _neutropenic_run(reduce_grade=[NEVER, reduce_grade])
    assert out.blood_grade[0, 0, NEU] == 2
    assert out.cycle_time_days[0, 1] == 14.0
    assert out.dose_reduced[0, 1] == int(reduced)
    assert out.activity_gbq[0, 1] == (3.0 if reduced else 6.0)


def test_neutrophils_leave_platelets_unchanged():
    # The neutrophil line shares the forcing but feeds nothing back: without neutrophil rules the other outputs do
    # not depend on its parameters.
    plan = _regimen(3, 42.0, activities=np.full(3, 6.0))
    runs = [_run(p, plan, [30.0, 60.0, 120.0], 3, 1, blood=blood)
            for p, blood in ((_stable_patient(ids=(8,), gy_per_gbq=[0.6, 0.2]), _blood()),
                             (_stable_patient(ids=(8,), gy_per_gbq=[0.6, 0.2], blood_baseline=[200.0, 2.5]),
                              _blood(mtt_days=[20.0, 7.0], alpha_ratio=[1.0, 2.0])))]
    for o in kernel_outputs.OUTPUTS:
        a, b = getattr(runs[0], o.name), getattr(runs[1], o.name)
        if "blood_line" in o.dims:
            a, b = a[..., PLT], b[..., PLT]
        np.testing.assert_array_equal(a, b, err_msg=o.name)
    assert (runs[0].blood_nadir[..., NEU] != runs[1].blood_nadir[..., NEU]).all()


# ----------------------------------------------------------------------------------------------------------
def _cohort(n: int, ids, seed: int = 0, **kw):  # noqa: ANN001
    rs = np.random.default_rng(seed)
    age = rs.normal(68.0, 8.0, n)
    volume = rs.lognormal(math.log(50.0), 0.7, n)
    growth = math.log(2.0) / rs.lognormal(math.log(120.0), 0.6, n)
    censor = rs.uniform(500.0, 1200.0, n)
    marrow_gy = rs.lognormal(math.log(0.08), 0.6, n)
    platelets = rs.lognormal(math.log(200.0), 0.3, n)
    marrow_alpha = rs.lognormal(math.log(1.5), 0.3, n)
    egfr = rs.uniform(40.0, 100.0, n)
    risk = (rs.uniform(size=n) < 0.3).astype(np.float64)
    chemo = (rs.uniform(size=n) < 0.5).astype(np.float64)
    neutrophils = rs.lognormal(math.log(4.0), 0.35, n)
    decline = rs.uniform(0.0, 4.0, n)
    acute = np.where(rs.uniform(size=n) < 0.3, rs.uniform(0.0, 1500.0, n), math.inf)
    values = dict(age_years=age, lesion_volume_ml=volume[:, None], growth_per_day=growth, new_lesion_per_day=5e-4,
                  egfr_decline_ml_min_per_year=decline, acute_renal_day=acute,
                  admin_censor_day=censor, gy_per_gbq=np.stack([np.full(n, 0.6), marrow_gy], axis=1),
                  blood_baseline=np.stack([platelets, neutrophils], axis=1), marrow_alpha_per_gy=marrow_alpha,
                  egfr_baseline_ml_min=egfr, kidney_risk_factor=risk, prior_chemotherapy=chemo)
    return _patient(tuple(ids), **{**values, **kw})


def test_batch_invariance_with_toxicity_and_dose_modification():
    n = 24
    ids = np.arange(1000, 1000 + n, dtype=np.int64) * 7919
    p = _cohort(n, ids)
    groups = dict(organs=_organs(intra_sigma=[0.2, 0.2]), blood=_blood(fatal_grade4_probability=0.3),
                  kidney_params=_kidney(bed50_gy=30.0, nephropathy_latency_sigma=0.5, risk_factor_bed50_ratio=0.7,
                                        radiation_decline_per_gy_year=0.003, subclinical_latency_days=90.0),
                  event_params=_events(background_hazard_65_per_year=0.02, background_slope_per_year=0.09,
                                       pre_progression_death_per_day=2e-4, dropout_per_day=2e-4, mds_risk_per_gy=0.3,
                                       mds_chemo_multiplier=2.0, mds_latency_days=400.0, mds_latency_sigma=0.5))
    plan = _regimen(6, 42.0, 4, activities=np.full(6, 7.4), withhold_grade=[2.0, 2.0], withhold_egfr_below_ml_min=30.0,
                    withhold_egfr_drop=0.4, reduce_grade=[3.0, 3.0], reduction_fraction=0.5,
                    restore_after_tolerated=True, max_delay_days=35.0, reduce_if_withheld=True)
    args = (plan, np.arange(1, 30) * 42.0, 6, 17)
    out = _run(p, *args, **groups)
    assert out.blood_worst_grade[:, PLT].max() >= 2 and (out.delay_days > 0).any()
    assert out.blood_worst_grade[:, NEU].max() >= 3
    given = ~np.isnan(out.cycle_time_days)
    np.testing.assert_array_equal(given.sum(axis=1), out.cycles_given)
    assert (out.delay_days[given] % 7.0 == 0.0).all()
    for i in range(n):
        _assert_same_rows(_run(_row(p, i), *args, **groups), out, i)


# ---------------------------------------------------------------------------------------------------------- 5
# Guided regimens. The default patient without variability: kidney 0.6 Gy/GBq, T_eff 50 h (T_rep 2.8 h, a/b 2.6),
# marrow 0.04 Gy/GBq, tumour 3 Gy/GBq when asked for; stable, so only the rules end treatment.
def _kidney_bed(d: float, teff: float = 50.0) -> float:
    return d * (1.0 + 2.8 / (2.8 + teff) * d / 2.6)


def _kidney_dose_for_bed(b: float, teff: float = 50.0) -> float:
    """The root of ``_kidney_bed(d) = b``, in the rationalised form ``2b / (1 + sqrt(1 + 4cb))``."""
    c = 2.8 / (2.8 + teff) / 2.6
    return 2.0 * b / (1.0 + math.sqrt(1.0 + 4.0 * c * b))


def _guided_run(rule: int, n_cycles: int, p=None, organs=None, lesions=None, **regimen_kw):  # noqa: ANN001
    kw = {"rule": rule, "guided_activity_gbq": 7.4, "kidney_limit_gy": 1e6, "kidney_limit_risk_factor_gy": 1e6,
          "marrow_limit_gy": 1e6, "target_gy": 1e6, "target_is_bed": True, "min_activity_gbq": 0.5,
          "max_activity_gbq": 1e3, **regimen_kw}
    p = _stable_patient(ids=(40,)) if p is None else p
    # activities_gbq is ignored by the guided rules: 99 GBq would show.
    return _run(p, _regimen(n_cycles, 42.0, activities=np.full(n_cycles, 99.0), **kw), np.arange(1, 40) * 84.0,
                n_cycles, 3, organs=organs, lesions=lesions)


@pytest.mark.parametrize("on_bed", [True, False])
def test_kidney_target_hits_the_target_exactly(on_bed):
    # Cycle 0 gets A0 = 7.4 (4.44 Gy); then q = (T - Bk) / (4 - k) per cycle, every later cycle the same q.
    target = 20.0 if on_bed else 15.0
    out = _guided_run(policy.RULE_KIDNEY_TARGET, 4, target_gy=target, target_is_bed=on_bed)
    first = _kidney_bed(4.44) if on_bed else 4.44
    q = (target - first) / 3.0
    a = (_kidney_dose_for_bed(q) if on_bed else q) / 0.6
    assert 0.5 < a < 1e3
    np.testing.assert_allclose(out.activity_gbq[0], [7.4, a, a, a], rtol=1e-13)
    np.testing.assert_array_equal(out.cycle_time_days[0], [0.0, 42.0, 84.0, 126.0])
    reached = (out.bed_gy if on_bed else out.dose_gy)[0, :, KIDNEY].sum()
    assert reached == pytest.approx(target, rel=1e-13)
    np.testing.assert_allclose(out.dose_measured_gy[0, :, KIDNEY], out.dose_gy[0, :, KIDNEY], rtol=1e-15)
    assert out.cycles_given[0] == 4 and out.reached_target[0] == 1
    assert out.discontinued_for_toxicity[0] == 0
    np.testing.assert_array_equal(out.dosimetry_measured[0], 1)


def test_kidney_target_marrow_cap_and_clipping():
    # Marrow limit 1 Gy, kidney BED target 20 Gy over 4 cycles: each later cycle needs D_inv((20 - Bk) / left) / 0.6
    # GBq, capped by the marrow budget left, (1 - Mk) / 0.04 GBq, which binds only in the last cycle (Del Prete 2018:
    # 2 Gy is a cumulative limit); the marrow then ends at exactly 1 Gy and the target is missed.
    out = _guided_run(policy.RULE_KIDNEY_TARGET, 4, target_gy=20.0, marrow_limit_gy=1.0)
    expected, capped, bed, marrow = [7.4], [], _kidney_bed(7.4 * 0.6), 7.4 * 0.04
    for left in (3, 2, 1):
        need = _kidney_dose_for_bed((20.0 - bed) / left) / 0.6
        activity = min(need, (1.0 - marrow) / 0.04)
        expected.append(activity)
        capped.append(activity < need)
        bed, marrow = bed + _kidney_bed(activity * 0.6), marrow + activity * 0.04
    assert capped == [False, False, True]
    np.testing.assert_allclose(out.activity_gbq[0], expected, rtol=1e-13)
    assert out.dose_gy[0, :, MARROW].sum() == pytest.approx(1.0, rel=1e-13)
    assert out.bed_gy[0, :, KIDNEY].sum() < 19.0 and out.reached_target[0] == 0
    # A budget left below the minimum activity stops treatment (not reached, not for toxicity): 0.5 Gy limit,
    # 0.296 Gy after cycle 0, 5.1 GBq left < 6 GBq.
    out = _guided_run(policy.RULE_KIDNEY_TARGET, 4, target_gy=20.0, marrow_limit_gy=0.5, min_activity_gbq=6.0)
    assert out.cycles_given[0] == 1 and out.reached_target[0] == 0
    assert out.discontinued_for_toxicity[0] == 0
    _assert_not_given(out, 0, 1)
    # The maximum activity clips (and the target is then missed); the minimum lifts.
    out = _guided_run(policy.RULE_KIDNEY_TARGET, 4, target_gy=20.0, max_activity_gbq=5.0)
    np.testing.assert_array_equal(out.activity_gbq[0], [7.4, 5.0, 5.0, 5.0])
    assert out.reached_target[0] == 0
    out = _guided_run(policy.RULE_KIDNEY_TARGET, 4, target_gy=10.0, min_activity_gbq=3.0)
    np.testing.assert_array_equal(out.activity_gbq[0, 1:], 3.0)  # 2.77 GBq would do
    assert out.reached_target[0] == 1  # overshoots: known BED >= T


def test_kidney_limit_reduce_last_hits_the_limit_and_stops_reached():
    # Risk factor chooses the limit: 23 Gy (4 full cycles = 19.37 Gy, the 5th reduced) or 18 Gy (3 full = 14.53,
    # the 4th reduced). The next due day stops, reached.
    p = _stable_patient(ids=(40, 41), kidney_risk_factor=[0.0, 1.0])
    out = _guided_run(policy.RULE_KIDNEY_LIMIT, 8, p=p, kidney_limit_gy=23.0, kidney_limit_risk_factor_gy=18.0,
                      reduce_last_cycle=True)
    bed1 = _kidney_bed(4.44)
    for i, (limit, full) in enumerate(((23.0, 4), (18.0, 3))):
        last = _kidney_dose_for_bed(limit - full * bed1) / 0.6
        assert 0.5 < last < 7.4 - 0.5
        np.testing.assert_allclose(out.activity_gbq[i, :full + 1], [7.4] * full + [last], rtol=1e-13)
        assert out.bed_gy[i, :, KIDNEY].sum() == pytest.approx(limit, rel=1e-13)
        assert out.cycles_given[i] == full + 1 and out.reached_target[i] == 1
        assert out.discontinued_for_toxicity[i] == 0
        _assert_not_given(out, i, full + 1)
    # Just above 4 full cycles, the last cycle would be below the minimum activity: stopped, reached (the kidney
    # term is the smallest).
    out = _guided_run(policy.RULE_KIDNEY_LIMIT, 8, kidney_limit_gy=4 * bed1 + 0.01, reduce_last_cycle=True)
    assert out.cycles_given[0] == 4 and out.reached_target[0] == 1


def test_kidney_limit_without_reduce_last_gives_full_cycles_until_the_limit():
    # 23 Gy: full cycles until Bk >= 23 (5 cycles: 24.2 Gy), then stop, reached.
    out = _guided_run(policy.RULE_KIDNEY_LIMIT, 8, kidney_limit_gy=23.0)
    np.testing.assert_array_equal(out.activity_gbq[0, :5], 7.4)
    assert out.cycles_given[0] == 5 and out.reached_target[0] == 1
    assert out.bed_gy[0, :, KIDNEY].sum() == pytest.approx(5 * _kidney_bed(4.44), rel=1e-14)
    # Out of cycles first (3 cycles, 14.5 Gy): not reached.
    out = _guided_run(policy.RULE_KIDNEY_LIMIT, 3, kidney_limit_gy=23.0)
    assert out.cycles_given[0] == 3 and out.reached_target[0] == 0
    # Limit met exactly by the last cycle: reached after the last cycle.
    out = _guided_run(policy.RULE_KIDNEY_LIMIT, 3, kidney_limit_gy=3 * _kidney_bed(4.44))
    assert out.cycles_given[0] == 3 and out.reached_target[0] == 1


@pytest.mark.parametrize("reduce_last", [False, True])
def test_kidney_limit_stopped_by_the_marrow_limit_not_reached(reduce_last):
    # Marrow 0.296 Gy per full cycle, limit 1 Gy. Without reduce-last: 4 full cycles (1.184 Gy), stop at cycle 4.
    # With it: cycle 3 gets (1 - 0.888) / 0.04 = 2.8 GBq, the marrow is at 1 Gy, stop at cycle 4.
    out = _guided_run(policy.RULE_KIDNEY_LIMIT, 8, kidney_limit_gy=100.0, marrow_limit_gy=1.0,
                      reduce_last_cycle=reduce_last)
    expected = [7.4, 7.4, 7.4, 2.8] if reduce_last else [7.4] * 4
    np.testing.assert_allclose(out.activity_gbq[0, :4], expected, rtol=1e-13)
    assert out.cycles_given[0] == 4 and out.reached_target[0] == 0
    assert out.discontinued_for_toxicity[0] == 0
    # Below the minimum activity, with the marrow term the smallest: stopped, not reached.
    if reduce_last:
        out = _guided_run(policy.RULE_KIDNEY_LIMIT, 8, kidney_limit_gy=100.0, marrow_limit_gy=1.0,
                          reduce_last_cycle=True, min_activity_gbq=3.0)
        assert out.cycles_given[0] == 3 and out.reached_target[0] == 0


def test_tumour_target_stops_when_met_or_an_organ_limit_would_be_passed():
    # 22.2 Gy tumour per cycle: target 60 met after 3 cycles, stop at cycle 3, reached.
    p = _stable_patient(ids=(40,), lesion_gy_per_gbq=[3.0])
    out = _guided_run(policy.RULE_TUMOUR_TARGET, 6, p=p, target_gy=60.0)
    assert out.cycles_given[0] == 3 and out.reached_target[0] == 1
    np.testing.assert_array_equal(out.activity_gbq[0, :3], 7.4)
    assert out.lesion_dose_gy[0, :, 0].sum() == pytest.approx(66.6, rel=1e-14)
    # Kidney limit 12 Gy BED: 2 cycles (9.68) + 4.84 would pass it; marrow 0.8 Gy: 0.592 + 0.296 would.
    for limits in ({"kidney_limit_gy": 12.0}, {"marrow_limit_gy": 0.8}):
        out = _guided_run(policy.RULE_TUMOUR_TARGET, 6, p=p, target_gy=60.0, **limits)
        assert out.cycles_given[0] == 2 and out.reached_target[0] == 0
    # A limit met exactly is not passed.
    out = _guided_run(policy.RULE_TUMOUR_TARGET, 6, p=p, target_gy=60.0, marrow_limit_gy=3 * 7.4 * 0.04)
    assert out.cycles_given[0] == 3 and out.reached_target[0] == 1


def test_one_measured_cycle_known_doses_use_its_gy_per_gbq():
    # Measurement error on, one measured cycle: g = measured / A0 of cycle 0; the rule sees the known BED
    # BED(m0) + sum BED(A_k g), which meets the target, while the true BED does not.
    seed, pid = 3, np.array([40])
    p = _stable_patient(ids=(40,), lesion_gy_per_gbq=[3.0])
    out = _guided_run(policy.RULE_KIDNEY_TARGET, 4, p=p, organs=_organs(measurement_sigma=[0.2, 0.2]),
                      lesions=_lesions(measurement_sigma=0.2), target_gy=20.0, measured_cycles=1)
    z = [rng.normals(seed, pid, name, 0, index=0)[0, 0] for name in
         ("dosimetry/kidney/measurement", "dosimetry/marrow/measurement", "dosimetry/lesion/measurement")]
    measured = np.array([4.44, 0.296, 22.2]) * np.exp(0.2 * np.array(z))
    got = [out.dose_measured_gy[0, 0, KIDNEY], out.dose_measured_gy[0, 0, MARROW], out.lesion_dose_measured_gy[0, 0, 0]]
    np.testing.assert_allclose(got, measured, rtol=1e-13)
    np.testing.assert_array_equal(out.dosimetry_measured[0], [1, 0, 0, 0])
    assert np.isnan(out.dose_measured_gy[0, 1:]).all() and np.isnan(out.lesion_dose_measured_gy[0, 1:]).all()
    g = measured[0] / 7.4
    a = _kidney_dose_for_bed((20.0 - _kidney_bed(measured[0])) / 3.0) / g
    np.testing.assert_allclose(out.activity_gbq[0], [7.4, a, a, a], rtol=1e-13)
    true_bed = _kidney_bed(4.44) + 3 * _kidney_bed(a * 0.6)
    assert out.bed_gy[0, :, KIDNEY].sum() == pytest.approx(true_bed, rel=1e-13)
    assert abs(true_bed - 20.0) > 0.1 and out.reached_target[0] == 1


def test_two_measured_cycles_pool_their_gy_per_gbq():
    # Kidney limit with reduce-last: g = (m0 + m1) / (A0 + A1) predicts cycles 2.. (the scalar rule by hand; no
    # minimum activity, so that the last, reduced cycle is given however small).
    seed, pid = 3, np.array([41])
    out = _guided_run(policy.RULE_KIDNEY_LIMIT, 8, p=_stable_patient(ids=(41,)),
                      organs=_organs(measurement_sigma=[0.25, 0.0]), kidney_limit_gy=23.0, reduce_last_cycle=True,
                      measured_cycles=2, min_activity_gbq=0.0)
    z = rng.normals(seed, pid, "dosimetry/kidney/measurement", 0, 2)[0]  # counters: cycles 0 and 1
    m0, m1 = 4.44 * math.exp(0.25 * z[0]), 4.44 * math.exp(0.25 * z[1])
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
    np.testing.assert_allclose(out.activity_gbq[0, :n], activities, rtol=1e-12)
    assert out.cycles_given[0] == n and out.reached_target[0] == 1
    np.testing.assert_array_equal(out.dosimetry_measured[0, :n], [1, 1] + [0] * (n - 2))


def test_guided_activity_is_reduced_by_the_toxicity_rules():
    # The withheld run of 4.5 under the kidney-limit rule (A = 6, far limits): cycle 1 withheld to day 56 and
    # reduced to 6 x 0.75, cycle 2 stays reduced (no restore).
    p = _stable_patient(ids=(21,), gy_per_gbq=[0.6, 0.2])
    out = _guided_run(policy.RULE_KIDNEY_LIMIT, 3, p=p, guided_activity_gbq=6.0, withhold_grade=[2.0, NEVER],
                      reduction_fraction=0.25, reduce_if_withheld=True)
    assert out.cycle_time_days[0, 1] == 56.0 and out.delay_days[0, 1] == 14.0
    np.testing.assert_array_equal(out.activity_gbq[0], [6.0, 4.5, 4.5])
    np.testing.assert_array_equal(out.dose_reduced[0], [0, 1, 1])


def test_fixed_rule_without_dosimetry_measures_nothing():
    scans = np.arange(1, 20) * 56.0
    out = _run(_stable_patient(ids=(4,)), _regimen(3, 42.0, activities=np.full(3, 7.4), measured_cycles=0), scans,
               4, 3)
    assert out.cycles_given[0] == 3 and out.reached_target[0] == 0
    assert not out.dosimetry_measured[0].any()
    assert np.isnan(out.dose_measured_gy[0]).all() and np.isnan(out.lesion_dose_measured_gy[0]).all()
    # Measuring changes only the measured outputs.
    measured_run = _run(_stable_patient(ids=(4,)), _regimen(3, 42.0, activities=np.full(3, 7.4)), scans, 4, 3)
    for name in kernel_outputs.Outputs._fields:
        if name not in ("dose_measured_gy", "lesion_dose_measured_gy", "dosimetry_measured"):
            np.testing.assert_array_equal(getattr(out, name), getattr(measured_run, name), err_msg=name)
    np.testing.assert_array_equal(measured_run.dosimetry_measured[0], [1, 1, 1, 0])
    with pytest.raises(ValueError, match="measured_cycles"):
        _guided_run(policy.RULE_KIDNEY_LIMIT, 3, measured_cycles=0)


@pytest.mark.parametrize(("rule", "regimen_kw"), [
    (policy.RULE_KIDNEY_LIMIT, {"kidney_limit_gy": 23.0, "kidney_limit_risk_factor_gy": 18.0, "marrow_limit_gy": 2.0,
                                "reduce_last_cycle": True, "min_activity_gbq": 2.0, "measured_cycles": 2}),
    (policy.RULE_KIDNEY_TARGET, {"target_gy": 20.0, "marrow_limit_gy": 1.5, "min_activity_gbq": 2.0,
                                 "max_activity_gbq": 12.0, "measured_cycles": 1}),
    (policy.RULE_TUMOUR_TARGET, {"target_gy": 120.0, "kidney_limit_gy": 23.0, "kidney_limit_risk_factor_gy": 18.0,
                                 "marrow_limit_gy": 2.0, "measured_cycles": 3}),
])
def test_batch_invariance_with_guided_rules(rule, regimen_kw):
    n = 12
    ids = np.arange(n, dtype=np.int64) * 104729 + 3
    base = _cohort(n, ids, seed=rule)
    kidney_gy = np.random.default_rng(rule).lognormal(math.log(0.6), 0.4, n)
    lesion_gy = np.random.default_rng(rule + 10).lognormal(math.log(3.0), 0.5, n)
    p = base._replace(gy_per_gbq=np.stack([kidney_gy, base.gy_per_gbq[:, MARROW]], axis=1),
                      lesion_gy_per_gbq=lesion_gy[:, None],
                      lesion_growth_per_day=base.lesion_growth_per_day / 4.0)  # slower: more cycles for the rules
    groups = dict(organs=_organs(intra_sigma=[0.2, 0.2], measurement_sigma=[0.15, 0.2]),
                  lesions=_lesions(intra_sigma=0.2, measurement_sigma=0.25, dose_decline=0.05),
                  blood=_blood(fatal_grade4_probability=0.3),
                  kidney_params=_kidney(radiation_decline_per_gy_year=0.003),
                  event_params=_events(background_hazard_65_per_year=0.02, background_slope_per_year=0.09))
    plan = _regimen(6, 42.0, 4, activities=np.full(6, 99.0), **{
        "rule": rule, "guided_activity_gbq": 7.4, "withhold_grade": [2.0, 3.0], "reduce_grade": [3.0, NEVER],
        "reduction_fraction": 0.5, "reduce_if_withheld": True, "target_is_bed": True, "max_activity_gbq": 1e3,
        "marrow_limit_gy": 1e6, **regimen_kw})
    args = (plan, np.arange(1, 30) * 42.0, 6, 29)
    out = _run(p, *args, **groups)
    given = ~np.isnan(out.cycle_time_days)
    np.testing.assert_array_equal(given.sum(axis=1), out.cycles_given)
    np.testing.assert_array_equal(out.dosimetry_measured, given & (np.arange(6) < plan.measured_cycles))
    assert not (out.activity_gbq == 99.0).any()
    reached = out.reached_target
    assert 0.0 < reached.mean() < 1.0  # both outcomes occur
    for i in range(n):
        _assert_same_rows(_run(_row(p, i), *args, **groups), out, i)
