"""The per-patient simulation of one arm, in phases: start, then events (advance to the next event; read a scan, or
decide the due cycle's dose and administer it), then finish (deaths, last marrow window, kidney, outcomes).

``run_arm`` allocates the workspaces and runs ``simulate_rows`` on blocks of patients in threads. A patient's
scalar state is one record of ``STATE`` (``w.state[i]``); per-organ, per-lesion and per-blood-line state
are rows of the workspace arrays ``w``. Every random number comes from the patient's own counter-based streams
(``sim.rng``), keyed by purpose name, so the result is the same for any thread count and a patient draws the same
numbers in every arm. The inputs are the named tuples of ``sim.kernel_inputs`` and the outputs those of
``sim.kernel_outputs``. The model is stated in ``docs/model.md``; ``sim/numpy_oracle.py`` is an independent
NumPy implementation used as the test oracle.
"""

import math
from collections import namedtuple

import numpy as np
from numba import njit

from sim import rng
from sim.kernels import KERNEL, events, kidney, marrow, organ_toxicity, policy, tumour
from sim.kernels.dosimetry import administer_lesions, administer_organs
from sim.kernels.radiobiology import LN2, bed, g_factor, surviving_fraction
from sim.kernels.threads import block_range, run_rows
from sim.units import HOURS_PER_DAY

# One patient's scalar state: the record ``w.state[i]`` that every phase reads and updates (allocated zeroed: ``start``
# sets every field whose first value is not 0 or False).
STATE = np.dtype([
    ("pkey", np.uint64),  # the patient's random-stream key
    ("t", np.float64),  # day the tumour has been advanced to
    ("v0", np.float64), ("viable0", np.float64),  # baseline tumour and viable volume (mL)
    ("censor_day", np.float64), ("t_background", np.float64),
    ("death_pre", np.float64), ("cause_pre", np.int64),  # death before progression, as known so far
    ("new_lesion_h", np.float64), ("new_lesion_threshold", np.float64),
    ("next_scan", np.int64), ("nadir", np.float64), ("last_scan_day", np.float64), ("last_scan_volume", np.float64),
    ("sum0", np.float64), ("sum_nadir", np.float64), ("non_target_nadir", np.float64),  # RECIST sums (mm, mL)
    ("best_value", np.float64),  # smallest target sum (tumour volume without targets) at a scan so far
    ("prev_level", np.int64), ("best", np.int64),
    ("progressed", np.bool_), ("progression_day", np.float64),  # the current course's progression
    ("first_progression_day", np.float64), ("progression_type", np.int64),  # the first (the PFS end point)
    ("retreated", np.bool_), ("retreat_day", np.float64), ("cycle_limit", np.int64),
    ("k", np.int64), ("cycles_open", np.bool_), ("due", np.float64), ("first_due", np.float64),
    ("withheld", np.bool_), ("reduced", np.bool_), ("n_reductions", np.int64), ("discontinued", np.bool_),
    ("reached", np.bool_), ("last_admin", np.float64), ("uptake_decline", np.float64),
    ("measured_activity", np.float64),
    ("t_marrow", np.float64), ("horizon", np.float64), ("dose_rate", np.float64), ("committed", np.float64),
    ("lam_marrow", np.float64), ("fatal_checked", np.bool_),
    ("mds_decided", np.bool_), ("mds_onset", np.float64), ("t_mds", np.float64),
    ("psa", np.float64), ("psa_secretion", np.float64), ("psa_best", np.float64), ("psa_nadir", np.float64),
    ("psa_low_since", np.float64), ("psa50", np.bool_), ("psa_rise_since", np.float64),
    ("psa_progression_day", np.float64),  # serum PSA and the PCWG3 readings of the first course (docs/model.md 3.6)
    ("paused", np.bool_),  # the course ended in a pause after an exceptional PSA response (docs/model.md 5.5)
    ("resected", np.bool_),  # surgery after downstaging (docs/model.md 5.6)
])

# Workspaces of one call: rows are patients.
Work = namedtuple("Work", [
    "state",  # (n,) STATE records
    "marrow", "nadir", "nadir_day",  # (n, blood_line, 5) ODE states; running nadir of the cycle and its day
    "stroma", "positive", "negative", "dead",  # (n, lesion) tumour compartments, mL
    "measured_gy", "known_gy", "known_bed_gy",  # (n, organ) sums of measured, known doses and known BEDs
    "lesion_measured_gy", "lesion_known_gy",  # (n, lesion)
])


def run_arm(seed, patients, organs, lesions, blood, kidney_params, event_params, regimen, scans, out):
    """Simulate every patient of ``patients`` under one arm's ``regimen`` and fill ``out`` (row = patient), on
    ``numba.get_num_threads()`` threads (``sim.kernels.threads``)."""
    n = patients.age_years.shape[0]
    n_lines, n_organs, n_lesions = (patients.blood_baseline.shape[1], organs.alpha_beta_gy.shape[0],
                                    patients.lesion_volume_ml.shape[1])
    w = Work(np.zeros(n, STATE), np.empty((n, n_lines, marrow.MARROW_STATE)), np.empty((n, n_lines)),
             np.empty((n, n_lines)), *(np.empty((n, n_lesions)) for _ in range(4)),
             *(np.zeros((n, n_organs)) for _ in range(3)), *(np.zeros((n, n_lesions)) for _ in range(2)))
    run_rows(simulate_rows, n, np.uint64(seed), patients, organs, lesions, blood, kidney_params, event_params, regimen,
             scans, out, w)


@njit(nogil=True, **KERNEL)
def simulate_rows(first_block, block_step, block, seed, patients, organs, lesions, blood, kidney_params, event_params,
                  regimen, scans, out, w):
    """``simulate_patient`` for this thread's blocks of rows (``sim.kernels.threads``); no allocation per patient."""
    n = patients.age_years.shape[0]
    start, stop, step = block_range(first_block, block_step, block, n)
    for lo in range(start, stop, step):
        for i in range(lo, min(n, lo + block)):
            simulate_patient(i, seed, patients, organs, lesions, blood, kidney_params, event_params, regimen, scans,
                             out, w)


@njit(**KERNEL)
def simulate_patient(i, seed, P, organs, lesions, blood, kid, ev, regimen, scans, out, w):
    """One patient's whole course (row ``i`` of the outputs); the event loop is docs/model.md section 4.6."""
    s = w.state[i]
    start(i, s, seed, P, lesions, blood, ev, regimen, w)
    while True:
        t_cycle = s.due if s.cycles_open else math.inf
        t_scan = scans[s.next_scan] if s.next_scan < scans.shape[0] else math.inf
        t = min(t_scan, t_cycle)
        is_scan = t_scan <= t_cycle
        if not (t < s.death_pre and (t <= s.censor_day if is_scan else t < s.censor_day)):
            break  # also when no event is left (t infinite)
        if not advance(i, s, t, P, lesions, blood, w):
            break  # a fatal grade-4 nadir came first
        if is_scan:
            if read_scan(i, s, t, P, lesions, out, w) and not retreat(i, s, t, P, organs, lesions, kid, regimen, w):
                break  # progression, and no re-treatment
        else:
            cycle_due(i, s, t, P, organs, lesions, blood, kid, ev, regimen, out, w)
    finish(i, s, P, organs, blood, kid, ev, regimen, out, w)


@njit(inline="always", **KERNEL)
def start(i, s, seed, P, lesions, blood, ev, regimen, w):
    """Baseline state: tumour compartments, competing event times, blood lines at their steady state."""
    s.pkey = rng.patient_key(seed, P.patient_id[i])
    s.v0, s.viable0 = tumour.lesions_start(i, P, w.stroma, w.positive, w.negative, w.dead)
    s.sum0, s.non_target_nadir, _, _ = tumour.reading(i, P, lesions, w.stroma, w.positive, w.negative, w.dead)
    s.sum_nadir = s.sum0
    s.best_value = math.inf
    s.t_background = events.gompertz_death_day(
        P.age_years[i], ev.background_hazard_65_per_year, ev.background_slope_per_year,
        rng.draw_exponential(s.pkey, events.BACKGROUND_DEATH_STREAM))
    t_dropout = events.exponential_day(ev.dropout_per_day,
                                       rng.draw_exponential(s.pkey, events.DROPOUT_STREAM))
    t_pre = events.exponential_day(ev.pre_progression_death_per_day * P.pre_progression_death_multiplier[i],
                                   rng.draw_exponential(s.pkey, events.PRE_PROGRESSION_DEATH_STREAM))
    s.new_lesion_threshold = rng.draw_exponential(s.pkey, tumour.NEW_LESION_STREAM)
    s.censor_day = min(P.admin_censor_day[i], t_dropout)
    s.death_pre = min(s.t_background, t_pre)
    s.cause_pre = events.CAUSE_OTHER if s.t_background <= t_pre else events.CAUSE_CANCER_BEFORE_PROGRESSION
    s.t = s.new_lesion_h = s.last_scan_day = s.last_admin = s.due = s.first_due = 0.0
    s.nadir = s.last_scan_volume = s.v0
    s.prev_level, s.best = tumour.RESPONSE_SD, tumour.RESPONSE_NE
    s.progression_type = tumour.PROGRESSION_NONE
    s.first_progression_day = s.retreat_day = math.inf
    s.cycles_open = regimen.n_cycles > 0
    s.cycle_limit = regimen.n_cycles
    s.uptake_decline = 1.0
    s.mds_onset = s.t_mds = s.horizon = math.inf
    psa_start(i, s, P, lesions, w)
    teff = P.teff_h[i, blood.organ]
    s.lam_marrow = LN2 / (teff / HOURS_PER_DAY) if teff > 0.0 else 0.0  # no agent (control arm): never used
    marrow.blood_start(i, P.blood_baseline, w.marrow, w.nadir, w.nadir_day)


@njit(inline="always", **KERNEL)
def psa_start(i, s, P, lesions, w):
    """Baseline PSA at its steady state: secretion ``s = PSA0 k / W0`` (docs/model.md 3.6)."""
    s.psa = P.psa0_ng_ml[i]
    source = tumour.psa_source(i, P, lesions.psa_negative_ratio, w.positive, w.negative)
    s.psa_secretion = s.psa * lesions.psa_clearance_per_day / source if source > 0.0 else 0.0
    s.psa_nadir = s.psa
    s.psa_best = s.psa_low_since = s.psa_rise_since = s.psa_progression_day = math.inf


@njit(inline="always", **KERNEL)
def read_psa(i, s, t, P):
    """A PSA value at ``t`` during the first course, read by PCWG3 (docs/model.md 3.6): the best value, PSA50
    (<= 50 % of baseline, confirmed >= 3 weeks later), progression (>= 25 % and >= 2 ng/mL over the nadir, or over
    baseline from 12 weeks without a decline, confirmed >= 3 weeks later, dated at the first rising value)."""
    psa, psa0 = s.psa, P.psa0_ng_ml[i]
    s.psa_best = min(s.psa_best, psa)
    if psa <= tumour.PSA50_RATIO * psa0:
        if s.psa_low_since == math.inf:
            s.psa_low_since = t
        elif t - s.psa_low_since >= tumour.PSA_CONFIRM_DAYS:
            s.psa50 = True
    else:
        s.psa_low_since = math.inf
    if s.psa_progression_day == math.inf:
        declined = s.psa_nadir < psa0
        reference = s.psa_nadir if declined else psa0
        rising = (psa >= tumour.PSA_RISE_RATIO * reference and psa - reference >= tumour.PSA_RISE_NG_ML
                  and (declined or t >= tumour.PSA_NO_DECLINE_DAYS))
        if not rising:
            s.psa_rise_since = math.inf
        elif s.psa_rise_since == math.inf:
            s.psa_rise_since = t
        elif t - s.psa_rise_since >= tumour.PSA_CONFIRM_DAYS:
            s.psa_progression_day = s.psa_rise_since
    s.psa_nadir = min(s.psa_nadir, psa)


@njit(inline="always", **KERNEL)
def marrow_to(i, s, t_to, P, blood, w):
    """Advance a treated patient's blood lines to ``t_to`` (no later than the marrow horizon). The first time in a
    cycle that the fatal line's nadir falls below grade 4, the treatment-related death at that nadir is drawn:
    returns ``(died, day)``."""
    if not t_to > s.t_marrow:
        return False, math.inf
    low, low_day = marrow.blood_advance(i, s.t_marrow, t_to, s.dose_rate, s.committed, s.lam_marrow,
                                        P.marrow_alpha_per_gy[i], P.blood_baseline, blood, w.marrow, w.nadir,
                                        w.nadir_day)
    s.dose_rate = marrow.marrow_dose_rate(s.dose_rate, s.lam_marrow, t_to - s.t_marrow)
    s.t_marrow = t_to
    if s.fatal_checked or not low < blood.grade_below[blood.fatal_line, marrow.GRADE4]:
        return False, math.inf
    s.fatal_checked = True
    u = rng.uniform(rng.stream_key(s.pkey, marrow.FATAL_GRADE4_STREAM), s.k - 1)
    return u < blood.fatal_grade4_probability, low_day


@njit(inline="always", **KERNEL)
def advance(i, s, t, P, lesions, blood, w):
    """Advance the tumour and, for a treated patient, the marrow to day ``t``; ``False`` when a fatal grade-4
    nadir on the way ends the course (docs/model.md 4.6)."""
    viable, growth = tumour.viable_and_growth(i, P, w.positive, w.negative)
    s.new_lesion_h += tumour.new_lesion_hazard(P.new_lesion_per_day[i], viable / s.viable0,
                                               lesions.new_lesion_exponent, growth, t - s.t)
    if lesions.psa_modelled:
        s.psa = tumour.psa_after(s.psa, s.psa_secretion, lesions.psa_clearance_per_day, i, P, lesions, w.positive,
                                 w.negative, w.dead, t - s.t)
    tumour.lesions_grow(i, P, lesions.dead_clearance_per_day, lesions.stroma_relax_per_day, t - s.t, w.stroma,
                        w.positive, w.negative, w.dead)
    s.t = t
    if s.k > 0:
        died, day = marrow_to(i, s, min(t, s.horizon), P, blood, w)
        if died:
            if day < s.death_pre:
                s.death_pre, s.cause_pre = day, events.CAUSE_TREATMENT
            return False
    return True


@njit(inline="always", **KERNEL)
def read_scan(i, s, t, P, lesions, out, w):
    """RECIST 1.1 reading of a scan at ``t`` (docs/model.md 3.4); ``True`` at progression. The lesions' volume
    ratios are recorded at the scan with the smallest target sum (tumour volume for a patient without targets)."""
    s.next_scan += 1
    if s.next_scan == 1:  # the index lesion's viable volume at the first scan (EASL; docs/model.md 3.4)
        out.index_viable_ratio_first_scan[i] = tumour.index_viable_ratio(i, P, w.positive, w.negative)
    if lesions.psa_modelled and not s.retreated:
        read_psa(i, s, t, P)
    target_sum, non_target, gone, volume = tumour.reading(i, P, lesions, w.stroma, w.positive, w.negative, w.dead)
    value = target_sum if s.sum0 > 0.0 else volume
    first = not s.retreated and not s.resected  # response end points describe the first course, before surgery
    if value < s.best_value and first:
        s.best_value = value
        for j in range(P.lesion_count[i]):
            out.lesion_volume_ratio_best[i, j] = (tumour.lesion_volume(i, j, w.stroma, w.positive, w.negative, w.dead)
                                                  / P.lesion_volume_ml[i, j])
    if s.resected:  # after surgery, recurrence: any lesion visible again (or a new lesion)
        target_pd, non_target_pd = not gone, False
    else:
        target_pd = (s.sum0 > 0.0 and target_sum >= tumour.PD_SUM_RATIO * s.sum_nadir
                     and target_sum - s.sum_nadir >= lesions.progression_absolute_mm)
        non_target_pd = (s.non_target_nadir > 0.0
                         and non_target >= lesions.non_target_progression_ratio * s.non_target_nadir)
    new_lesion = s.new_lesion_h >= s.new_lesion_threshold
    s.last_scan_day = t
    if target_pd or non_target_pd or new_lesion:
        s.progressed, s.progression_day = True, t
        if not s.retreated:
            s.first_progression_day = t
            s.progression_type = ((tumour.PROGRESSION_TARGET if target_pd or non_target_pd else 0)
                                  + (tumour.PROGRESSION_NEW_LESION if new_lesion else 0))
            if s.best == tumour.RESPONSE_NE:
                s.best = tumour.RESPONSE_PD
        return True
    if first:
        level = tumour.response_level(target_sum, s.sum0, gone)
        counted = level
        if lesions.confirm_response and level != tumour.RESPONSE_SD:
            counted = max(level, s.prev_level)
        s.best = counted if s.best == tumour.RESPONSE_NE else min(s.best, counted)
        s.prev_level = level
        s.nadir = min(s.nadir, volume)
    s.sum_nadir = min(s.sum_nadir, target_sum)
    s.non_target_nadir = min(s.non_target_nadir, non_target)
    s.last_scan_volume = volume
    if (lesions.resection_probability > 0.0 and first and s.k > 0 and t <= lesions.resection_window_days
            and tumour.downstaged(i, P, lesions, w.positive, w.negative)
            and rng.draw_uniform(s.pkey, tumour.RESECTION_STREAM) < lesions.resection_probability):
        tumour.resect(i, P, lesions.resection_residual_ml, w.stroma, w.positive, w.negative, w.dead)
        s.resected = True
        out.resection_day[i] = t
    return False


@njit(inline="always", **KERNEL)
def retreat(i, s, t, P, organs, lesions, kid, regimen, w):
    """At a first progression on or after ``retreat_min_day``, a patient whose course was over, without a toxicity
    stop (paused, where the arm re-challenges only after a pause), who has no MDS/AML, and whose first re-treatment
    cycle fits the kidney budget starts the re-treatment course at ``t`` (docs/model.md 5.4, 5.5): the RECIST
    baseline is the tumour now, new lesions count afresh. Returns whether it starts."""
    if (regimen.retreat_cycles == 0 or s.retreated or s.k == 0 or s.cycles_open or s.discontinued
            or regimen.retreat_only_after_pause and not s.paused
            or t < regimen.retreat_min_day or s.mds_onset <= t
            or not retreat_cycle_fits(i, s, P, organs, kid, regimen, w)):
        return False
    s.retreated, s.retreat_day, s.progressed = True, t, False
    s.sum0, s.non_target_nadir, _, s.last_scan_volume = tumour.reading(i, P, lesions, w.stroma, w.positive,
                                                                        w.negative, w.dead)
    s.sum_nadir = s.sum0
    s.new_lesion_h = 0.0
    s.new_lesion_threshold = rng.draw_exponential(s.pkey, tumour.NEW_LESION_RETREATMENT_STREAM)
    s.cycles_open, s.due, s.first_due, s.cycle_limit = True, t, t, s.k + regimen.retreat_cycles
    s.withheld = s.reduced = False
    s.n_reductions = 0
    s.horizon = math.inf
    if s.mds_onset == math.inf:
        s.mds_decided = False  # decided again, on the dose of both courses, when the re-treatment ends
    return True


@njit(inline="always", **KERNEL)
def retreat_cycle_fits(i, s, P, organs, kid, regimen, w):
    """Whether a re-treatment cycle keeps the patient's known kidney BED within the re-treatment limit."""
    ko = kid.organ
    return policy.retreatment_fits(regimen, w.known_bed_gy[i, ko], regimen.retreat_activity_gbq,
                                   w.measured_gy[i, ko] / max(s.measured_activity, 1e-300),
                                   g_factor(P.known_teff_h[i, ko], organs.repair_h[ko]), organs.alpha_beta_gy[ko])


@njit(inline="always", **KERNEL)
def cycle_due(i, s, t, P, organs, lesions, blood, kid, ev, regimen, out, w):
    """A cycle is due (or re-checked) at ``t``: decide the dose (continuation, guided rule, dose modification),
    administer it, and close the course when no cycle is left (docs/model.md 4.5, 5.2)."""
    if s.k > 0 and lesions.psa_modelled and not s.retreated:  # PSA is drawn at each visit for a cycle
        read_psa(i, s, t, P)
    stop = ((regimen.continue_after > 0 and s.k >= regimen.continue_after and not s.last_scan_volume < s.v0
             or regimen.stop_at_psa_progression and s.psa_progression_day < math.inf) and not s.retreated)
    if (not stop and not s.retreated and regimen.pause_after > 0 and s.k >= regimen.pause_after
            and s.psa <= regimen.pause_psa_ratio * P.psa0_ng_ml[i]):
        stop = s.paused = True
    activity = regimen.retreat_activity_gbq if s.retreated else regimen.guided_activity_gbq
    if s.retreated:
        stop = not retreat_cycle_fits(i, s, P, organs, kid, regimen, w)
    elif not stop and s.k > 0 and regimen.rule != policy.RULE_FIXED:
        ko, mo = kid.organ, blood.organ
        stop, s.reached, activity = policy.guided_prescription(
            regimen, s.k, known_kidney(i, regimen, kid, w), w.known_gy[i, mo], w.lesion_known_gy[i, 0],
            w.measured_gy[i, ko] / s.measured_activity, w.measured_gy[i, mo] / s.measured_activity,
            P.kidney_risk_factor[i], g_factor(P.known_teff_h[i, ko], organs.repair_h[ko]), organs.alpha_beta_gy[ko])
    if not stop and s.k > 0:
        e_now = kidney.egfr_at(t, P.egfr_baseline_ml_min[i], P.egfr_decline_ml_min_per_year[i],
                               kidney.radiation_decline(kid, P.kidney_risk_factor[i]), kid.subclinical_latency_days,
                               out.cycle_time_days[i], out.bed_gy[i, :, kid.organ], s.k, math.inf, 0.0)
        action = policy.protocol_action(regimen, s, blood, w.marrow[i], w.nadir[i], e_now,
                                        P.egfr_baseline_ml_min[i], t)
        if action == policy.WITHHOLD:
            s.due = t + regimen.recheck_days
            return
        stop = action == policy.DISCONTINUE
    if stop:
        s.cycles_open = False
    else:
        nominal = regimen.activities_gbq[s.k] if regimen.rule == policy.RULE_FIXED and not s.retreated else activity
        if s.k == 0 and not s.retreated and not math.isnan(P.planned_activity_gbq[i]):  # planned (model.md 5.6)
            nominal = P.planned_activity_gbq[i]
        administer(i, s, t, nominal * (1.0 - regimen.reduction_fraction if s.reduced else 1.0), P, organs, lesions,
                   blood, regimen, out, w)
    if not s.cycles_open:
        s.horizon = s.last_admin + blood.window_days
        if s.k > 0 and not s.mds_decided:
            decide_mds(i, s, P, ev)


@njit(inline="always", **KERNEL)
def administer(i, s, t, activity, P, organs, lesions, blood, regimen, out, w):
    """Give cycle ``k = s.k`` at day ``t``: doses per organ and lesion, tumour kill, marrow forcing; record it."""
    k = s.k
    measured = k < regimen.measured_cycles
    out.cycle_time_days[i, k] = t
    out.activity_gbq[i, k] = activity
    out.delay_days[i, k] = t - s.first_due
    out.dose_reduced[i, k] = s.reduced
    out.dosimetry_measured[i, k] = measured
    administer_organs(i, k, s.pkey, activity, measured, s.measured_activity, P, organs, out, w)
    administer_lesions(i, k, s.pkey, activity, measured, s.measured_activity, s.uptake_decline, P, lesions, out, w)
    if k == 0:
        record_whole_body_tumour_dose(i, P, out)
    if measured:
        s.measured_activity += activity
    for j in range(P.lesion_count[i]):
        alpha = P.lesion_alpha_per_gy[i, j]
        negative_dose = P.lesion_negative_dose_ratio[i, j] * out.lesion_dose_gy[i, k, j]
        tumour.kill(i, j, surviving_fraction(alpha, out.lesion_bed_gy[i, k, j]),
                    surviving_fraction(alpha, bed(negative_dose, P.lesion_teff_h[i, j], lesions.repair_h,
                                                  lesions.alpha_beta_gy)), w.positive, w.negative, w.dead)
    s.uptake_decline *= 1.0 - lesions.dose_decline
    if k > 0:
        marrow.record_blood_cycle(i, k - 1, s.last_admin, blood, w.marrow, w.nadir, w.nadir_day, out)
    s.dose_rate, s.committed = marrow.marrow_after_cycle(s.dose_rate, s.committed, out.dose_gy[i, k, blood.organ],
                                                         s.lam_marrow)
    marrow.blood_restart_nadirs(i, t, w.marrow, w.nadir, w.nadir_day)
    s.fatal_checked = False
    s.last_admin = t
    s.withheld = False
    s.k = k + 1
    s.due = s.first_due = t + (regimen.retreat_interval_days if s.retreated else regimen.interval_days)
    if s.k >= s.cycle_limit:
        s.cycles_open = False


@njit(inline="always", **KERNEL)
def record_whole_body_tumour_dose(i, P, out):
    """The first cycle's absorbed dose averaged over the receptor-positive tumour volume at baseline: the
    whole-body tumour dose of post-therapy SPECT (Violet J et al. J Nucl Med 2019;60:517); NaN without a
    receptor-positive lesion."""
    dose_volume, volume = 0.0, 0.0
    for j in range(P.lesion_count[i]):
        if not P.lesion_receptor_negative[i, j]:
            dose_volume += P.lesion_volume_ml[i, j] * out.lesion_dose_gy[i, 0, j]
            volume += P.lesion_volume_ml[i, j]
    out.whole_body_tumour_dose_gy[i] = dose_volume / volume if volume > 0.0 else math.nan


@njit(inline="always", **KERNEL)
def decide_mds(i, s, P, ev):
    """MDS/AML onset and death, decided once when a treated patient's cycles end (docs/model.md 4.3); a death
    before progression comes first."""
    s.mds_onset, s.t_mds = events.mds_onset_and_death(s.pkey, s.committed, P.prior_chemotherapy[i], s.last_admin, ev)
    s.mds_decided = True
    if s.t_mds < s.death_pre:
        s.death_pre, s.cause_pre = s.t_mds, events.CAUSE_TREATMENT


@njit(inline="always", **KERNEL)
def known_kidney(i, regimen, kid, w):
    """The known cumulative kidney quantity of a guided rule: absorbed dose for a kidney dose target, else BED."""
    on_dose = regimen.rule == policy.RULE_KIDNEY_TARGET and not regimen.target_is_bed
    return w.known_gy[i, kid.organ] if on_dose else w.known_bed_gy[i, kid.organ]


@njit(inline="always", **KERNEL)
def death_day_and_cause(i, s, P):
    """The death day and cause (docs/model.md 4.4): after progression the first of background, post-progression
    cancer and MDS/AML deaths, else the death before progression."""
    if not s.progressed:
        return s.death_pre, s.cause_pre
    day = s.progression_day + events.exponential_day(
        P.post_progression_death_per_day[i], rng.draw_exponential(s.pkey, events.POST_PROGRESSION_DEATH_STREAM))
    cause = events.CAUSE_CANCER_AFTER_PROGRESSION
    if s.t_mds < day:
        day, cause = s.t_mds, events.CAUSE_TREATMENT
    if s.t_background <= day:
        day, cause = s.t_background, events.CAUSE_OTHER
    return day, cause


@njit(inline="always", **KERNEL)
def finish(i, s, P, organs, blood, kid, ev, regimen, out, w):
    """After the event loop: MDS/AML, the death day, the tail of the marrow window (a fatal grade 4 there comes
    first), then survival, response, blood, kidney and regimen outcomes (docs/model.md 4.6)."""
    if s.k > 0 and not s.mds_decided:
        decide_mds(i, s, P, ev)
    death_day, cause = death_day_and_cause(i, s, P)
    if s.k > 0:
        s.horizon = min(s.horizon, s.last_admin + blood.window_days)
        died, day = marrow_to(i, s, min(s.horizon, death_day, s.censor_day), P, blood, w)
        if died and day < death_day:
            death_day, cause = day, events.CAUSE_TREATMENT
        marrow.record_blood_cycle(i, s.k - 1, s.last_admin, blood, w.marrow, w.nadir, w.nadir_day, out)
    record_survival(i, s, death_day, cause, out)
    record_retreatment(i, s, death_day, out)
    if s.psa_best < math.inf:
        out.psa_best_change[i] = s.psa_best / P.psa0_ng_ml[i] - 1.0
    out.psa50[i] = s.psa50
    out.psa_progression_day[i] = s.psa_progression_day if s.psa_progression_day < math.inf else math.nan
    e_end, e_landmark, renal_day, acute = kidney.kidney_outcomes(
        s.pkey, P.egfr_baseline_ml_min[i], P.egfr_decline_ml_min_per_year[i], P.kidney_risk_factor[i],
        kidney.radiation_decline(kid, P.kidney_risk_factor[i]), P.acute_renal_day[i], out.cycle_time_days[i],
        out.bed_gy[i, :, kid.organ], s.k, s.last_admin, out.os_time_days[i], kid)
    for o in range(organs.alpha_beta_gy.shape[0]):  # late toxicities of optional organs (docs/model.md 4.9)
        bed_total = 0.0
        for c in range(s.k):
            bed_total += out.bed_gy[i, c, o]
        out.organ_toxicity_grade[i, o] = organ_toxicity.late_grade(
            s.pkey, organs.toxicity_stream[o], bed_total, organs.toxicity_bed50_gy[o], organs.toxicity_m[o],
            organs.toxicity_grade2_ratio[o], organs.toxicity_other_cause[o])
    out.egfr_end_ml_min[i] = e_end
    out.egfr_change_48_months[i] = e_landmark / P.egfr_baseline_ml_min[i] - 1.0
    out.ckd_grade[i] = kidney.ckd_grade(e_end)
    out.renal_grade3_time_days[i] = min(renal_day, out.os_time_days[i])
    out.renal_grade3_event[i] = renal_day <= out.os_time_days[i]
    out.renal_grade3_acute[i] = acute
    if regimen.rule != policy.RULE_FIXED and not s.reached:
        s.reached = policy.target_reached(regimen, P.kidney_risk_factor[i], known_kidney(i, regimen, kid, w),
                                          w.lesion_known_gy[i, 0])
    out.reached_target[i] = s.reached
    record_lesions(i, s, P, out)
    out.cycles_given[i] = s.k
    out.discontinued_for_toxicity[i] = s.discontinued
    out.psa_paused[i] = s.paused
    for b in range(blood.alpha_ratio.shape[0]):  # untreated: the baseline grade
        worst = marrow.line_grade(P.blood_baseline[i, b], blood.grade_below[b])
        for c in range(s.k):
            worst = max(worst, out.blood_grade[i, c, b])
        day = marrow.other_cause_day(P.blood_background_e[i, b], P.blood_background_per_day[i, b],
                                     s.first_progression_day, blood.background_after_progression)
        if day <= out.os_time_days[i]:  # a decrease of other causes (docs/model.md 4.8)
            worst = max(worst, marrow.OTHER_CAUSE_GRADE)
        out.blood_worst_grade[i, b] = worst


@njit(inline="always", **KERNEL)
def record_lesions(i, s, P, out):
    """The number of lesions, each one's baseline volume, role and receptor status; the best change of the target
    sum; the columns of absent lesions NaN (doses) or absent (role)."""
    if s.sum0 > 0.0 and s.best_value < math.inf:
        out.target_sum_best_change[i] = s.best_value / s.sum0 - 1.0
    out.lesions_modelled[i] = P.lesion_count[i]
    for j in range(P.lesion_count[i]):
        if P.lesion_role[i, j] == tumour.ROLE_TARGET:
            out.target_lesions[i] += 1
        out.receptor_negative_lesions[i] += P.lesion_receptor_negative[i, j]
    for j in range(P.lesion_volume_ml.shape[1]):
        out.lesion_role[i, j] = P.lesion_role[i, j]
        if j < P.lesion_count[i]:
            out.lesion_volume_ml[i, j] = P.lesion_volume_ml[i, j]
            out.lesion_receptor_negative[i, j] = P.lesion_receptor_negative[i, j]
        else:
            for k in range(out.lesion_dose_gy.shape[1]):
                out.lesion_dose_gy[i, k, j] = math.nan
                out.lesion_bed_gy[i, k, j] = math.nan


@njit(inline="always", **KERNEL)
def record_retreatment(i, s, death_day, out):
    """The re-treatment day and the PFS after it (to the next progression or death, else censored at the last
    scan), in days from the re-treatment."""
    if not s.retreated:
        return
    out.retreatment_day[i] = s.retreat_day
    if s.progressed:
        end, event = s.progression_day, True
    elif death_day <= s.censor_day:
        end, event = death_day, True
    else:
        end, event = max(s.last_scan_day, s.retreat_day), False
    out.retreatment_pfs_time_days[i] = end - s.retreat_day
    out.retreatment_pfs_event[i] = event


@njit(inline="always", **KERNEL)
def record_survival(i, s, death_day, cause, out):
    """PFS (progression, death, else censored at the last scan), OS, cause, response and MDS/AML records."""
    if s.first_progression_day < math.inf:
        pfs_day, pfs_event = s.first_progression_day, True
    elif death_day <= s.censor_day:
        pfs_day, pfs_event = death_day, True
    else:
        pfs_day, pfs_event = s.last_scan_day, False
    if death_day <= s.censor_day:
        os_day, os_event = death_day, True
    else:
        os_day, os_event, cause = s.censor_day, False, events.CAUSE_ALIVE
    out.pfs_time_days[i], out.pfs_event[i] = pfs_day, pfs_event
    out.os_time_days[i], out.os_event[i] = os_day, os_event
    out.death_cause[i] = cause
    out.best_response[i] = s.best
    out.progression_type[i] = s.progression_type
    out.tumour_nadir_ratio[i] = s.nadir / s.v0
    mds = s.mds_onset < death_day and s.mds_onset <= s.censor_day
    out.mds_aml[i] = mds
    out.mds_aml_day[i] = s.mds_onset if mds else math.nan
