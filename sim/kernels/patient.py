"""The per-patient simulation of one arm: cycles, dosimetry, tumour response, progression and death.

``simulate_arm`` loops patients in ``prange``; each patient's state lives in local scalars and each random
number comes from the patient's own counter-based streams (``sim.rng``), so the result is the same for
any thread count and a patient draws the same numbers in every arm. The model is stated in
``docs/model.md``; ``sim/reference.py`` is an independent NumPy implementation used as the test oracle.
"""

import math

import numpy as np
from numba import njit, prange

from sim import rng
from sim.kernels import layout as L
from sim.kernels.events import exponential_day, gompertz_death_day, mds_aml_probability
from sim.kernels.guided import guided_prescription, target_reached
from sim.kernels.kidney import GRADE3_EGFR, ckd_grade, egfr_at, first_day_below, nephropathy_probability
from sim.kernels.marrow import (
    CIRC,
    MARROW_STATE,
    marrow_advance,
    marrow_after_cycle,
    marrow_dose_rate,
    marrow_init,
    neutrophil_grade,
    platelet_grade,
)
from sim.kernels.radiobiology import LN2, bed, g_factor, surviving_fraction
from sim.kernels.tumour import new_lesion_hazard, response_level

GRADE4_PLATELETS = L.PLATELET_GRADE_BELOW[3]


@njit(inline="always", cache=True)
def _mds_death(key_event, marrow_total_gy, prior_chemo, last_admin_day, model):
    """(onset day, death day) of MDS/AML, both infinite when it does not occur (docs/model.md 4.3)."""
    prob = mds_aml_probability(marrow_total_gy, model[L.MDS_RISK_PER_GY], model[L.MDS_CHEMO_MULTIPLIER], prior_chemo)
    if rng.uniform(key_event, rng.EV_MDS) >= prob:
        return math.inf, math.inf
    onset = last_admin_day + model[L.MDS_LATENCY_DAYS] * math.exp(
        model[L.MDS_LATENCY_SIGMA] * rng.normal(key_event, rng.EV_MDS_LATENCY))
    return onset, onset + exponential_day(model[L.MDS_DEATH_PER_DAY], rng.exponential(key_event, rng.EV_MDS_DEATH))


@njit(parallel=True, cache=True)
def simulate_arm(patients, patient_ids, seed, model, regimen, activities, scan_days, per_cycle, per_patient):
    """Simulate every patient of ``patients`` under one regimen; fill ``per_cycle`` and ``per_patient``.

    ``regimen`` holds the ``layout.R_*`` rules and ``activities[k]`` cycle k's nominal activity (GBq); a
    control arm has 0 cycles. ``scan_days`` are the tumour assessments (days > 0) shared by all patients.
    The event loop is docs/model.md section 4.6.
    """
    n = patients.shape[0]
    seed_u = np.uint64(seed)
    platelets = np.empty((n, MARROW_STATE))  # marrow workspaces: one allocation per call, none per patient
    neutrophils = np.empty((n, MARROW_STATE))
    for i in prange(n):
        simulate_patient(i, patients[i], patient_ids[i], seed_u, model, regimen, activities, scan_days,
                         platelets[i], neutrophils[i], per_cycle, per_patient)


@njit(cache=True)
def simulate_patient(i, p, patient_id, seed_u, model, regimen, activities, scan_days, platelets, neutro, per_cycle,
                     per_patient):
    """One patient's whole course (row ``i`` of the outputs); ``platelets`` and ``neutro`` are its two marrow
    workspaces."""
    n_scans = scan_days.shape[0]
    n_cycles = int(regimen[L.R_N_CYCLES])
    interval = regimen[L.R_INTERVAL_DAYS]
    continue_after = int(regimen[L.R_CONTINUE_AFTER])
    window = model[L.MARROW_WINDOW_DAYS]
    key_cycle = rng.stream_key(seed_u, patient_id, rng.STREAM_CYCLE)
    key_event = rng.stream_key(seed_u, patient_id, rng.STREAM_EVENTS)

    # Tumour compartments (mL): constant stroma, receptor-positive and -negative viable cells, dead cells.
    v0 = p[L.TUMOUR_VOLUME_ML]
    stroma = p[L.STROMA_FRACTION] * v0
    viable0 = v0 - stroma
    v_neg = p[L.RECEPTOR_NEGATIVE_FRACTION] * viable0
    v_pos = viable0 - v_neg
    v_dead = 0.0
    growth = p[L.GROWTH_PER_DAY]

    # Competing event times from fixed counters (common random numbers across arms).
    t_background = gompertz_death_day(p[L.AGE_YEARS], model[L.BACKGROUND_HAZARD_65_PER_YEAR],
                                      model[L.BACKGROUND_SLOPE_PER_YEAR],
                                      rng.exponential(key_event, rng.EV_BACKGROUND_DEATH))
    t_dropout = exponential_day(model[L.DROPOUT_PER_DAY], rng.exponential(key_event, rng.EV_DROPOUT))
    t_pre = exponential_day(model[L.PRE_PROGRESSION_DEATH_PER_DAY],
                            rng.exponential(key_event, rng.EV_PRE_PROGRESSION_DEATH))
    new_lesion_threshold = rng.exponential(key_event, rng.EV_NEW_LESION)
    censor_day = min(p[L.ADMIN_CENSOR_DAY], t_dropout)
    death_pre = min(t_background, t_pre)
    cause_pre = L.CAUSE_OTHER if t_background <= t_pre else L.CAUSE_CANCER_BEFORE_PROGRESSION

    # Marrow: platelet compartments, dose-rate forcing, and the nadir of the current cycle.
    s0 = p[L.PLATELETS_BASELINE]
    marrow_init(platelets, s0)
    anc0 = p[L.NEUTROPHILS_BASELINE]
    marrow_init(neutro, anc0)
    cycle_neutro_nadir = anc0
    lam_marrow = LN2 / (p[L.MARROW_TEFF_H] / 24.0)
    dose_rate = 0.0
    committed = 0.0
    t_marrow = 0.0
    horizon = math.inf
    cycle_nadir = s0
    cycle_nadir_day = 0.0
    fatal_checked = False
    t_fatal = math.inf

    # Kidney function for the renal dose-modification rule.
    e0 = p[L.EGFR_BASELINE]
    decline = model[L.EGFR_RADIATION_DECLINE_PER_GY_YEAR] * (
        model[L.EGFR_RISK_FACTOR_MULTIPLIER] if p[L.KIDNEY_RISK_FACTOR] > 0.0 else 1.0)
    times_i = per_cycle[L.C_TIME_DAYS, i]
    kidney_bed_i = per_cycle[L.C_KIDNEY_BED_GY, i]

    t = 0.0
    new_lesion_h = 0.0
    nadir = v0
    last_scan_day = 0.0
    last_scan_volume = v0
    prev_level = L.RESPONSE_SD
    best = L.RESPONSE_NE
    progressed = False
    progression_day = 0.0
    progression_type = L.PROGRESSION_NONE
    k = 0
    cycles_open = n_cycles > 0
    due = 0.0
    first_due = 0.0
    withheld = False
    reduced = False
    n_reductions = 0
    discontinued = False
    last_admin = 0.0
    marrow_total = 0.0
    tumour_decline = 1.0
    # Dosimetry as the regimen sees it: measured (or predicted) doses and the measured Gy/GBq.
    rule = int(regimen[L.R_RULE])
    n_measured = int(regimen[L.R_MEASURED_CYCLES])
    risk_factor = p[L.KIDNEY_RISK_FACTOR]
    g_factor_kidney = g_factor(p[L.KIDNEY_TEFF_H], model[L.KIDNEY_REPAIR_H])
    kidney_target_on_dose = rule == L.RULE_KIDNEY_TARGET and regimen[L.R_TARGET_IS_BED] == 0.0
    measured_activity = 0.0
    measured_kidney = 0.0
    measured_marrow = 0.0
    measured_tumour = 0.0
    known_kidney = 0.0  # BED, or absorbed dose for a dose target
    known_marrow = 0.0
    known_tumour = 0.0
    reached = False
    mds_decided = False
    mds_onset = math.inf
    t_mds = math.inf
    j = 0
    for c in range(per_cycle.shape[2]):
        for v in range(L.N_CYCLE_VARS):
            per_cycle[v, i, c] = 0.0
        per_cycle[L.C_TIME_DAYS, i, c] = math.nan
        per_cycle[L.C_PLATELET_NADIR, i, c] = math.nan
        per_cycle[L.C_PLATELET_NADIR_DAY, i, c] = math.nan
        per_cycle[L.C_PLATELET_END, i, c] = math.nan
        per_cycle[L.C_NEUTROPHIL_NADIR, i, c] = math.nan
        per_cycle[L.C_KIDNEY_DOSE_MEASURED_GY, i, c] = math.nan
        per_cycle[L.C_MARROW_DOSE_MEASURED_GY, i, c] = math.nan
        per_cycle[L.C_TUMOUR_DOSE_MEASURED_GY, i, c] = math.nan

    while True:
        t_cycle = due if cycles_open else math.inf
        t_scan = scan_days[j] if j < n_scans else math.inf
        if t_scan == math.inf and t_cycle == math.inf:
            break
        t_next = min(t_scan, t_cycle)
        is_scan = t_scan <= t_cycle
        if is_scan and not (t_next <= censor_day and t_next < death_pre):
            break
        if not is_scan and not (t_next < censor_day and t_next < death_pre):
            break

        # Advance the tumour to t_next.
        dt = t_next - t
        new_lesion_h += new_lesion_hazard(p[L.NEW_LESION_PER_DAY], (v_pos + v_neg) / viable0,
                                          model[L.NEW_LESION_EXPONENT], growth, dt)
        grow = math.exp(growth * dt)
        v_pos *= grow
        v_neg *= grow
        v_dead *= math.exp(-model[L.DEAD_CLEARANCE_PER_DAY] * dt)
        t = t_next

        # Advance the marrow (treated patients, up to the horizon) and watch for a fatal grade 4.
        if k > 0:
            t_to = min(t, horizon)
            if t_to > t_marrow:
                low, low_day, low_neutro = _advance_marrow(platelets, neutro, t_marrow, t_to, dose_rate, committed,
                                                           lam_marrow, p, model)
                cycle_neutro_nadir = min(cycle_neutro_nadir, low_neutro)
                dose_rate = marrow_dose_rate(dose_rate, lam_marrow, t_to - t_marrow)
                t_marrow = t_to
                if low < cycle_nadir:
                    cycle_nadir, cycle_nadir_day = low, low_day
                if not fatal_checked and low < GRADE4_PLATELETS:
                    fatal_checked = True
                    if rng.uniform(key_event, rng.EV_FATAL_GRADE4 + k - 1) < model[L.FATAL_GRADE4_PROBABILITY]:
                        t_fatal = low_day
                        if t_fatal < death_pre:
                            death_pre, cause_pre = t_fatal, L.CAUSE_TREATMENT
                        break

        if is_scan:
            j += 1
            volume = stroma + v_pos + v_neg + v_dead
            target_pd = volume >= L.PD_VOLUME_RATIO * nadir
            new_lesion = new_lesion_h >= new_lesion_threshold
            last_scan_day = t
            if target_pd or new_lesion:
                progressed = True
                progression_day = t
                progression_type = (L.PROGRESSION_TARGET if target_pd else 0) + (
                    L.PROGRESSION_NEW_LESION if new_lesion else 0)
                if best == L.RESPONSE_NE:
                    best = L.RESPONSE_PD
                break
            level = response_level(volume, v0)
            counted = level
            if model[L.CONFIRM_RESPONSE] > 0.0 and level != L.RESPONSE_SD:
                counted = max(level, prev_level)
            best = counted if best == L.RESPONSE_NE else min(best, counted)
            prev_level = level
            nadir = min(nadir, volume)
            last_scan_volume = volume
            continue

        # A cycle is due (or re-checked): continuation rule, dose modification, then administration.
        stop = continue_after > 0 and k >= continue_after and not last_scan_volume < v0
        guided_activity = regimen[L.R_GUIDED_ACTIVITY]
        if not stop and k > 0 and rule != L.RULE_FIXED:
            stop, reached, guided_activity = guided_prescription(
                regimen, k, known_kidney, known_marrow, known_tumour, measured_kidney / measured_activity,
                measured_marrow / measured_activity, risk_factor, g_factor_kidney, model[L.KIDNEY_ALPHA_BETA_GY])
        if not stop and k > 0:
            e_now = egfr_at(t, e0, model[L.EGFR_AGE_DECLINE_PER_YEAR], decline,
                            model[L.EGFR_SUBCLINICAL_LATENCY_DAYS], times_i, kidney_bed_i, k, math.inf, 0.0)
            if (platelet_grade(platelets[CIRC]) >= regimen[L.R_WITHHOLD_GRADE]
                    or neutrophil_grade(neutro[CIRC]) >= regimen[L.R_WITHHOLD_NEUTROPHIL_GRADE]
                    or e_now < regimen[L.R_WITHHOLD_EGFR_BELOW]
                    or e_now < (1.0 - regimen[L.R_WITHHOLD_EGFR_DROP]) * e0):
                withheld = True
                if t + regimen[L.R_RECHECK_DAYS] - first_due > regimen[L.R_MAX_DELAY_DAYS]:
                    stop = discontinued = True
                else:
                    due = t + regimen[L.R_RECHECK_DAYS]
                    continue
            elif (platelet_grade(cycle_nadir) >= regimen[L.R_REDUCE_GRADE]
                  or neutrophil_grade(cycle_neutro_nadir) >= regimen[L.R_REDUCE_NEUTROPHIL_GRADE]
                  or (withheld and regimen[L.R_REDUCE_IF_WITHHELD] > 0.0)):
                if n_reductions >= regimen[L.R_MAX_REDUCTIONS]:
                    stop = discontinued = True
                else:
                    reduced = True
                    n_reductions += 1
            elif reduced and regimen[L.R_RESTORE] > 0.0:
                reduced = False
        if stop:
            cycles_open = False
        else:
            a = (activities[k] if rule == L.RULE_FIXED else guided_activity) * (
                1.0 - regimen[L.R_REDUCTION_FRACTION] if reduced else 1.0)
            base = rng.CYCLE_SLOTS * k
            d_kid = a * p[L.KIDNEY_GY_PER_GBQ] * math.exp(
                model[L.KIDNEY_INTRA_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_KIDNEY))
            d_mar = a * p[L.MARROW_GY_PER_GBQ] * math.exp(
                model[L.MARROW_INTRA_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_MARROW))
            d_tum = a * p[L.TUMOUR_GY_PER_GBQ] * tumour_decline * math.exp(
                model[L.TUMOUR_INTRA_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_TUMOUR))
            bed_tum = bed(d_tum, p[L.TUMOUR_TEFF_H], model[L.TUMOUR_REPAIR_H], model[L.TUMOUR_ALPHA_BETA_GY])
            per_cycle[L.C_TIME_DAYS, i, k] = t
            per_cycle[L.C_ACTIVITY_GBQ, i, k] = a
            per_cycle[L.C_DELAY_DAYS, i, k] = t - first_due
            per_cycle[L.C_REDUCED, i, k] = 1.0 if reduced else 0.0
            per_cycle[L.C_KIDNEY_DOSE_GY, i, k] = d_kid
            per_cycle[L.C_KIDNEY_BED_GY, i, k] = bed(d_kid, p[L.KIDNEY_TEFF_H], model[L.KIDNEY_REPAIR_H],
                                                     model[L.KIDNEY_ALPHA_BETA_GY])
            per_cycle[L.C_MARROW_DOSE_GY, i, k] = d_mar
            per_cycle[L.C_MARROW_BED_GY, i, k] = bed(d_mar, p[L.MARROW_TEFF_H], model[L.MARROW_REPAIR_H],
                                                     model[L.MARROW_ALPHA_BETA_GY])
            per_cycle[L.C_TUMOUR_DOSE_GY, i, k] = d_tum
            per_cycle[L.C_TUMOUR_BED_GY, i, k] = bed_tum
            if k < n_measured:
                m_kid = d_kid * math.exp(
                    model[L.KIDNEY_MEAS_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_KIDNEY_MEAS))
                m_mar = d_mar * math.exp(
                    model[L.MARROW_MEAS_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_MARROW_MEAS))
                m_tum = d_tum * math.exp(
                    model[L.TUMOUR_MEAS_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_TUMOUR_MEAS))
                per_cycle[L.C_MEASURED, i, k] = 1.0
                per_cycle[L.C_KIDNEY_DOSE_MEASURED_GY, i, k] = m_kid
                per_cycle[L.C_MARROW_DOSE_MEASURED_GY, i, k] = m_mar
                per_cycle[L.C_TUMOUR_DOSE_MEASURED_GY, i, k] = m_tum
                measured_activity += a
                measured_kidney += m_kid
                measured_marrow += m_mar
                measured_tumour += m_tum
            elif measured_activity > 0.0:  # not measured: predicted from the measured Gy/GBq
                m_kid = a * measured_kidney / measured_activity
                m_mar = a * measured_marrow / measured_activity
                m_tum = a * measured_tumour / measured_activity
            else:
                m_kid = m_mar = m_tum = 0.0
            known_kidney += m_kid if kidney_target_on_dose else m_kid * (
                1.0 + g_factor_kidney * m_kid / model[L.KIDNEY_ALPHA_BETA_GY])
            known_marrow += m_mar
            known_tumour += m_tum
            killed = v_pos * (1.0 - surviving_fraction(p[L.TUMOUR_ALPHA_PER_GY], bed_tum))
            v_pos -= killed
            v_dead += killed
            tumour_decline *= 1.0 - model[L.TUMOUR_DOSE_DECLINE]
            if k > 0:
                _record_cycle_marrow(per_cycle, i, k - 1, cycle_nadir, cycle_nadir_day - last_admin, platelets[CIRC],
                                     cycle_neutro_nadir)
            dose_rate, committed = marrow_after_cycle(dose_rate, committed, d_mar, lam_marrow)
            marrow_total += d_mar
            cycle_nadir, cycle_nadir_day = platelets[CIRC], t
            cycle_neutro_nadir = neutro[CIRC]
            fatal_checked = False
            last_admin = t
            withheld = False
            k += 1
            due = t + interval
            first_due = due
            if k >= n_cycles:
                cycles_open = False
        if not cycles_open:
            horizon = last_admin + window
            if k > 0:
                mds_onset, t_mds = _mds_death(key_event, marrow_total, p[L.PRIOR_CHEMOTHERAPY], last_admin, model)
                mds_decided = True
                if t_mds < death_pre:
                    death_pre, cause_pre = t_mds, L.CAUSE_TREATMENT

    # Deaths, then the tail of the marrow window.
    if k > 0 and not mds_decided:
        mds_onset, t_mds = _mds_death(key_event, marrow_total, p[L.PRIOR_CHEMOTHERAPY], last_admin, model)
        if t_mds < death_pre:
            death_pre, cause_pre = t_mds, L.CAUSE_TREATMENT
    if progressed:
        t_post = progression_day + exponential_day(p[L.POST_PROGRESSION_DEATH_PER_DAY],
                                                   rng.exponential(key_event, rng.EV_POST_PROGRESSION_DEATH))
        death_day, cause = t_post, L.CAUSE_CANCER_AFTER_PROGRESSION
        if t_mds < death_day:
            death_day, cause = t_mds, L.CAUSE_TREATMENT
        if t_background <= death_day:
            death_day, cause = t_background, L.CAUSE_OTHER
    else:
        death_day, cause = death_pre, cause_pre
    if k > 0:
        horizon = min(horizon, last_admin + window)
        t_to = min(horizon, death_day, censor_day)
        if t_to > t_marrow:
            low, low_day, low_neutro = _advance_marrow(platelets, neutro, t_marrow, t_to, dose_rate, committed,
                                                       lam_marrow, p, model)
            cycle_neutro_nadir = min(cycle_neutro_nadir, low_neutro)
            if low < cycle_nadir:
                cycle_nadir, cycle_nadir_day = low, low_day
            if not fatal_checked and low < GRADE4_PLATELETS:
                if rng.uniform(key_event, rng.EV_FATAL_GRADE4 + k - 1) < model[L.FATAL_GRADE4_PROBABILITY]:
                    if low_day < death_day:
                        death_day, cause = low_day, L.CAUSE_TREATMENT
        _record_cycle_marrow(per_cycle, i, k - 1, cycle_nadir, cycle_nadir_day - last_admin, platelets[CIRC],
                             cycle_neutro_nadir)

    if progressed:
        pfs_day, pfs_event = progression_day, 1.0
    elif death_day <= censor_day:
        pfs_day, pfs_event = death_day, 1.0
    else:
        pfs_day, pfs_event = last_scan_day, 0.0
    if death_day <= censor_day:
        os_day, os_event = death_day, 1.0
    else:
        os_day, os_event, cause = censor_day, 0.0, L.CAUSE_ALIVE

    # Kidney: nephropathy, eGFR at the end of follow-up, time to grade >= 3.
    nephropathy_day = math.inf
    if k > 0:
        bed_total = 0.0
        for c in range(k):
            bed_total += kidney_bed_i[c]
        ntcp = nephropathy_probability(bed_total, model[L.KIDNEY_BED50_GY], model[L.KIDNEY_LKB_M],
                                       p[L.KIDNEY_RISK_FACTOR], model[L.KIDNEY_RISK_FACTOR_SHIFT_GY])
        if rng.uniform(key_event, rng.EV_NEPHROPATHY) < ntcp:
            nephropathy_day = last_admin + model[L.NEPHROPATHY_LATENCY_DAYS] * math.exp(
                model[L.NEPHROPATHY_LATENCY_SIGMA] * rng.normal(key_event, rng.EV_NEPHROPATHY_LATENCY))
    age_decline = model[L.EGFR_AGE_DECLINE_PER_YEAR]
    e_end = egfr_at(os_day, e0, age_decline, decline, model[L.EGFR_SUBCLINICAL_LATENCY_DAYS], times_i,
                    kidney_bed_i, k, nephropathy_day, model[L.NEPHROPATHY_EGFR_LOSS])
    renal_day = first_day_below(GRADE3_EGFR, os_day, e0, age_decline, decline,
                                model[L.EGFR_SUBCLINICAL_LATENCY_DAYS], times_i, kidney_bed_i, k,
                                nephropathy_day, model[L.NEPHROPATHY_EGFR_LOSS])

    if rule != L.RULE_FIXED and not reached:
        reached = target_reached(regimen, risk_factor, known_kidney, known_tumour)
    worst = platelet_grade(s0)  # untreated; a treated patient's first cycle nadir starts at s0
    worst_neutro = neutrophil_grade(anc0)
    for c in range(k):
        worst = max(worst, per_cycle[L.C_PLATELET_GRADE, i, c])
        worst_neutro = max(worst_neutro, per_cycle[L.C_NEUTROPHIL_GRADE, i, c])

    per_patient[L.P_CYCLES, i] = k
    per_patient[L.P_PFS_DAYS, i] = pfs_day
    per_patient[L.P_PFS_EVENT, i] = pfs_event
    per_patient[L.P_OS_DAYS, i] = os_day
    per_patient[L.P_OS_EVENT, i] = os_event
    per_patient[L.P_DEATH_CAUSE, i] = cause
    per_patient[L.P_BEST_RESPONSE, i] = best
    per_patient[L.P_PROGRESSION_TYPE, i] = progression_type
    per_patient[L.P_NADIR_RATIO, i] = nadir / v0
    per_patient[L.P_PLATELET_WORST_GRADE, i] = worst
    per_patient[L.P_NEUTROPHIL_WORST_GRADE, i] = worst_neutro
    per_patient[L.P_REACHED_TARGET, i] = 1.0 if reached else 0.0
    per_patient[L.P_EGFR_END, i] = e_end
    per_patient[L.P_CKD_GRADE, i] = ckd_grade(e_end)
    per_patient[L.P_RENAL_G3_DAYS, i] = min(renal_day, os_day)
    per_patient[L.P_RENAL_G3_EVENT, i] = 1.0 if renal_day <= os_day else 0.0
    mds = mds_onset < death_day and mds_onset <= censor_day
    per_patient[L.P_MDS_AML, i] = 1.0 if mds else 0.0
    per_patient[L.P_MDS_AML_DAY, i] = mds_onset if mds else math.nan
    per_patient[L.P_DISCONTINUED_TOXICITY, i] = 1.0 if discontinued else 0.0


@njit(inline="always", cache=True)
def _advance_marrow(platelets, neutrophils, t0, t1, dose_rate, committed, lam, p, model):
    """Advance both blood lines over ``[t0, t1]`` (docs/model.md 4.1, 4.7); returns the platelet nadir, its day,
    and the neutrophil nadir."""
    low, low_day = marrow_advance(
        platelets, t0, t1, dose_rate, committed, lam, p[L.PLATELETS_BASELINE], model[L.MARROW_MTT_DAYS],
        model[L.MARROW_GAMMA], model[L.PLATELET_LIFESPAN_DAYS], p[L.MARROW_ALPHA_PER_GY],
        model[L.MARROW_RESERVE_PER_GY], model[L.MARROW_FIRST_STEP_DAYS])
    low_neutro, _ = marrow_advance(
        neutrophils, t0, t1, dose_rate, committed, lam, p[L.NEUTROPHILS_BASELINE], model[L.NEUTROPHIL_MTT_DAYS],
        model[L.NEUTROPHIL_GAMMA], model[L.NEUTROPHIL_LIFESPAN_DAYS],
        p[L.MARROW_ALPHA_PER_GY] * model[L.NEUTROPHIL_ALPHA_RATIO], model[L.MARROW_RESERVE_PER_GY],
        model[L.MARROW_FIRST_STEP_DAYS])
    return low, low_day, low_neutro


@njit(inline="always", cache=True)
def _record_cycle_marrow(per_cycle, i, c, nadir, day_after_admin, count_at_end, neutro_nadir):
    """Cycle c's platelet nadir, its day after the administration, its grade, the count when the cycle's
    follow-up ended (next administration, end of the marrow window, death or censoring), and the neutrophil
    nadir and grade."""
    per_cycle[L.C_NEUTROPHIL_NADIR, i, c] = neutro_nadir
    per_cycle[L.C_NEUTROPHIL_GRADE, i, c] = neutrophil_grade(neutro_nadir)
    per_cycle[L.C_PLATELET_END, i, c] = count_at_end
    per_cycle[L.C_PLATELET_NADIR, i, c] = nadir
    per_cycle[L.C_PLATELET_NADIR_DAY, i, c] = day_after_admin
    per_cycle[L.C_PLATELET_GRADE, i, c] = platelet_grade(nadir)
