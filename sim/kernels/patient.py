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
from sim.kernels.events import exponential_day, gompertz_death_day
from sim.kernels.radiobiology import bed, surviving_fraction
from sim.kernels.tumour import new_lesion_hazard, response_level


@njit(parallel=True, cache=True)
def simulate_arm(patients, patient_ids, seed, model, activities, n_cycles, interval_days, continue_after,
                 scan_days, per_cycle, per_patient):
    """Simulate every patient of ``patients`` under one regimen; fill ``per_cycle`` and ``per_patient``.

    ``activities[k]`` is cycle k's activity (GBq) for ``k < n_cycles`` (0 cycles = control arm), due at day
    ``k * interval_days``. With ``continue_after = m > 0``, cycles ``k >= m`` need the latest scan's volume
    below baseline. ``scan_days`` are the tumour assessments (days > 0) shared by all patients.
    """
    n = patients.shape[0]
    n_scans = scan_days.shape[0]
    seed_u = np.uint64(seed)
    for i in prange(n):
        p = patients[i]
        key_cycle = rng.stream_key(seed_u, patient_ids[i], rng.STREAM_CYCLE)
        key_event = rng.stream_key(seed_u, patient_ids[i], rng.STREAM_EVENTS)

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
        decline = 1.0
        j = 0
        for c in range(per_cycle.shape[2]):
            per_cycle[L.C_TIME_DAYS, i, c] = math.nan
            for v in range(1, L.N_CYCLE_VARS):
                per_cycle[v, i, c] = 0.0

        while True:
            t_cycle = k * interval_days if cycles_open else math.inf
            t_scan = scan_days[j] if j < n_scans else math.inf
            if t_scan == math.inf and t_cycle == math.inf:
                break
            t_next = min(t_scan, t_cycle)
            is_scan = t_scan <= t_cycle
            if is_scan and not (t_next <= censor_day and t_next < death_pre):
                break
            if not is_scan and not (t_next < censor_day and t_next < death_pre):
                break
            if not is_scan and continue_after > 0 and k >= continue_after and not last_scan_volume < v0:
                cycles_open = False
                continue

            # Advance the tumour to t_next.
            dt = t_next - t
            new_lesion_h += new_lesion_hazard(p[L.NEW_LESION_PER_DAY], (v_pos + v_neg) / viable0,
                                              model[L.NEW_LESION_EXPONENT], growth, dt)
            grow = math.exp(growth * dt)
            v_pos *= grow
            v_neg *= grow
            v_dead *= math.exp(-model[L.DEAD_CLEARANCE_PER_DAY] * dt)
            t = t_next

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
            else:
                a = activities[k]
                base = rng.CYCLE_SLOTS * k
                d_kid = a * p[L.KIDNEY_GY_PER_GBQ] * math.exp(
                    model[L.KIDNEY_INTRA_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_KIDNEY))
                d_mar = a * p[L.MARROW_GY_PER_GBQ] * math.exp(
                    model[L.MARROW_INTRA_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_MARROW))
                d_tum = a * p[L.TUMOUR_GY_PER_GBQ] * decline * math.exp(
                    model[L.TUMOUR_INTRA_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_TUMOUR))
                bed_tum = bed(d_tum, p[L.TUMOUR_TEFF_H], model[L.TUMOUR_REPAIR_H], model[L.TUMOUR_ALPHA_BETA_GY])
                per_cycle[L.C_TIME_DAYS, i, k] = t
                per_cycle[L.C_ACTIVITY_GBQ, i, k] = a
                per_cycle[L.C_KIDNEY_DOSE_GY, i, k] = d_kid
                per_cycle[L.C_KIDNEY_DOSE_MEASURED_GY, i, k] = d_kid * math.exp(
                    model[L.KIDNEY_MEAS_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_KIDNEY_MEAS))
                per_cycle[L.C_KIDNEY_BED_GY, i, k] = bed(d_kid, p[L.KIDNEY_TEFF_H], model[L.KIDNEY_REPAIR_H],
                                                         model[L.KIDNEY_ALPHA_BETA_GY])
                per_cycle[L.C_MARROW_DOSE_GY, i, k] = d_mar
                per_cycle[L.C_MARROW_DOSE_MEASURED_GY, i, k] = d_mar * math.exp(
                    model[L.MARROW_MEAS_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_MARROW_MEAS))
                per_cycle[L.C_MARROW_BED_GY, i, k] = bed(d_mar, p[L.MARROW_TEFF_H], model[L.MARROW_REPAIR_H],
                                                         model[L.MARROW_ALPHA_BETA_GY])
                per_cycle[L.C_TUMOUR_DOSE_GY, i, k] = d_tum
                per_cycle[L.C_TUMOUR_DOSE_MEASURED_GY, i, k] = d_tum * math.exp(
                    model[L.TUMOUR_MEAS_SIGMA] * rng.normal(key_cycle, base + rng.SLOT_TUMOUR_MEAS))
                per_cycle[L.C_TUMOUR_BED_GY, i, k] = bed_tum
                killed = v_pos * (1.0 - surviving_fraction(p[L.TUMOUR_ALPHA_PER_GY], bed_tum))
                v_pos -= killed
                v_dead += killed
                decline *= 1.0 - model[L.TUMOUR_DOSE_DECLINE]
                k += 1
                if k >= n_cycles:
                    cycles_open = False

        # Outcomes.
        if progressed:
            pfs_day, pfs_event = progression_day, 1.0
            t_post = progression_day + exponential_day(p[L.POST_PROGRESSION_DEATH_PER_DAY],
                                                       rng.exponential(key_event, rng.EV_POST_PROGRESSION_DEATH))
            death_day = min(t_background, t_post)
            cause = L.CAUSE_OTHER if t_background <= t_post else L.CAUSE_CANCER_AFTER_PROGRESSION
        else:
            death_day = death_pre
            cause = L.CAUSE_OTHER if t_background <= t_pre else L.CAUSE_CANCER_BEFORE_PROGRESSION
            if death_pre <= censor_day:
                pfs_day, pfs_event = death_pre, 1.0
            else:
                pfs_day, pfs_event = last_scan_day, 0.0
        if death_day <= censor_day:
            os_day, os_event = death_day, 1.0
        else:
            os_day, os_event, cause = censor_day, 0.0, L.CAUSE_ALIVE

        per_patient[L.P_CYCLES, i] = k
        per_patient[L.P_PFS_DAYS, i] = pfs_day
        per_patient[L.P_PFS_EVENT, i] = pfs_event
        per_patient[L.P_OS_DAYS, i] = os_day
        per_patient[L.P_OS_EVENT, i] = os_event
        per_patient[L.P_DEATH_CAUSE, i] = cause
        per_patient[L.P_BEST_RESPONSE, i] = best
        per_patient[L.P_PROGRESSION_TYPE, i] = progression_type
        per_patient[L.P_NADIR_RATIO, i] = nadir / v0
