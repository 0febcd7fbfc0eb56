"""The way published in-silico RPT models are usually written, as a baseline for the numba kernel.

One Python loop over patients; inside it, the patient's event loop (scans, due days, dose-modification
re-checks) in plain Python, with the marrow kinetics (platelet and neutrophil Friberg chains driven by the
marrow dose rate, docs/model.md 4.1 and 4.7) integrated by ``scipy.integrate.solve_ivp`` (LSODA, ``rtol`` 1e-6)
between consecutive events, and every closed-form part (doses, BED, tumour, event times, kidney) in plain
Python scalars. The random numbers are the project's counter-based streams (``sim.rng``), drawn per patient,
so a patient gets the same draws as in the kernel and the outputs can be compared one to one.

It implements the model of ``sim/kernels/patient.py`` (docs/model.md 3 and 4) for fixed regimens without
dosimetry (the NETTER-1 arms) and is written from the model description, not by calling the kernel's helpers:
its only numerical difference is the integrator (LSODA instead of the kernel's own RK4; LSODA is as fast as or
faster than scipy's other methods here: RK45 and DOP853 take 1-1.5x as long, BDF 4x, with the same accuracy).
The nadir is read from the solver's output on a uniform grid of at most ``NADIR_GRID_DAYS`` (``t_eval``), refined by
the parabola through the grid minimum and its neighbours: it does not depend on how the kernel steps, and the
differences from the kernel are the two integrators' errors (~1e-5 relative).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

from sim import rng
from sim.kernels import layout as L

RTOL = 1e-6
ATOL = 1e-9
METHOD = "LSODA"  # the fastest scipy method for this system (see above)
NADIR_GRID_DAYS = 0.25
DAYS_PER_YEAR = 365.25
LN2 = math.log(2.0)
PROL, CIRC = 0, 4  # compartment indices inside one blood line's five states


def _grade(value: float, thresholds_below: tuple[float, ...]) -> int:
    """CTCAE v5 grade: how many of the descending thresholds the value is below."""
    return sum(1 for threshold in thresholds_below if value < threshold)


def _g_factor(teff_h: float, repair_h: float) -> float:
    return repair_h / (repair_h + teff_h)


def _bed(dose: float, teff_h: float, repair_h: float, alpha_beta: float) -> float:
    return dose * (1.0 + _g_factor(teff_h, repair_h) * dose / alpha_beta)


def _exponential_day(rate: float, e: float) -> float:
    return math.inf if rate <= 0.0 else e / rate


def _gompertz_day(age: float, h65: float, slope: float, e: float) -> float:
    h_now = h65 * math.exp(slope * (age - 65.0))
    if slope == 0.0:
        return DAYS_PER_YEAR * e / h_now
    return DAYS_PER_YEAR * math.log1p(e * slope / h_now) / slope


class Marrow:
    """Platelet and neutrophil chains of one patient (10 states), advanced by ``solve_ivp`` between events."""

    def __init__(self, p: np.ndarray, model: np.ndarray) -> None:
        self.baseline = (p[L.PLATELETS_BASELINE], p[L.NEUTROPHILS_BASELINE])
        alpha = p[L.MARROW_ALPHA_PER_GY]
        self.alpha = (alpha, alpha * model[L.NEUTROPHIL_ALPHA_RATIO])
        self.k_tr = (4.0 / model[L.MARROW_MTT_DAYS], 4.0 / model[L.NEUTROPHIL_MTT_DAYS])
        self.k_circ = (1.0 / model[L.PLATELET_LIFESPAN_DAYS], 1.0 / model[L.NEUTROPHIL_LIFESPAN_DAYS])
        self.gamma = (model[L.MARROW_GAMMA], model[L.NEUTROPHIL_GAMMA])
        self.reserve = model[L.MARROW_RESERVE_PER_GY]
        self.lam = LN2 / (p[L.MARROW_TEFF_H] / 24.0)
        self.y = np.array([self.baseline[0]] * 5 + [self.baseline[1]] * 5, dtype=np.float64)
        self.dose_rate = 0.0  # Gy/day at self.t
        self.committed = 0.0  # Gy given so far
        self.t = 0.0

    def platelets(self) -> float:
        return float(self.y[CIRC])

    def neutrophils(self) -> float:
        return float(self.y[5 + CIRC])

    def give(self, dose_gy: float) -> None:
        """An administration now: the dose rate jumps by ``D lam``, the committed dose by ``D``."""
        self.dose_rate += dose_gy * self.lam
        self.committed += dose_gy

    def _rhs(self, t: float, y: np.ndarray, t0: float, r0: float) -> list[float]:
        r = r0 * math.exp(-self.lam * (t - t0))
        delivered = self.committed - r / self.lam  # Gy delivered by day t
        out = []
        values = y.tolist()
        for line in (0, 1):
            p, x1, x2, x3, c = values[5 * line:5 * line + 5]
            k_tr, k_circ = self.k_tr[line], self.k_circ[line]
            log_setpoint = math.log(self.baseline[line]) - self.reserve * delivered
            feedback = math.exp(self.gamma[line] * (log_setpoint - math.log(c)))
            out += [k_tr * p * (feedback - 1.0) - self.alpha[line] * r * p, k_tr * (p - x1), k_tr * (x1 - x2),
                    k_tr * (x2 - x3), k_circ * (x3 - c)]
        return out

    def advance(self, t1: float) -> tuple[float, float, float]:
        """Integrate to ``t1``; returns the platelet nadir over ``[t, t1]``, its day, and the neutrophil nadir."""
        t0, span, r0 = self.t, t1 - self.t, self.dose_rate
        grid = np.linspace(t0, t1, max(1, math.ceil(span / NADIR_GRID_DAYS - 1e-9)) + 1)
        sol = solve_ivp(self._rhs, (t0, t1), self.y, method=METHOD, rtol=RTOL, atol=ATOL, t_eval=grid,
                        args=(t0, r0))
        self.y = sol.y[:, -1].copy()
        self.dose_rate = r0 * math.exp(-self.lam * span)
        self.t = t1
        low, low_day = _grid_nadir(sol.y[CIRC], grid)
        low_neutro, _ = _grid_nadir(sol.y[5 + CIRC], grid)
        return low, low_day, low_neutro


def _grid_nadir(values: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    """Minimum on the (uniform) grid, refined by the parabola through it and its two neighbours."""
    i = int(np.argmin(values))
    best, day = float(values[i]), float(grid[i])
    if 0 < i < len(values) - 1:
        before, after = values[i - 1], values[i + 1]
        curvature = before - 2.0 * best + after
        if curvature > 0.0:
            h = grid[1] - grid[0]
            day += 0.5 * (before - after) / curvature * h
            best -= 0.125 * (before - after) ** 2 / curvature
    return best, day


def _egfr(t: float, e0: float, age_decline: float, decline: float, latency: float, times: list[float],
          beds: list[float], nephropathy_day: float = math.inf, loss: float = 0.0) -> float:
    e = e0 - age_decline * t / DAYS_PER_YEAR
    for day, b in zip(times, beds, strict=True):
        if t - day - latency > 0.0:
            e -= e0 * decline * b * (t - day - latency) / DAYS_PER_YEAR
    if t >= nephropathy_day:
        e *= 1.0 - loss
    return max(e, 0.0)


def _first_day_below(level: float, t_end: float, egfr) -> float:  # noqa: ANN001 - egfr(t) callable
    if egfr(0.0) < level:
        return 0.0
    if egfr(t_end) >= level:
        return math.inf
    lo, hi = 0.0, t_end
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if egfr(mid) < level else (mid, hi)
    return hi


def simulate_patient(p: np.ndarray, patient_id: int, seed: int, model: np.ndarray, regimen: np.ndarray,
                     activities: np.ndarray, scan_days: np.ndarray) -> dict:
    """One patient's course (docs/model.md 4.6) for a fixed regimen without dosimetry.

    Returns the per-patient outcomes (``per_patient``: ``layout.P_*`` vector) and, per cycle given, the day,
    marrow dose, platelet nadir and neutrophil nadir.
    """
    if int(regimen[L.R_RULE]) != L.RULE_FIXED or int(regimen[L.R_MEASURED_CYCLES]) > 0:
        raise NotImplementedError("the solve_ivp baseline covers fixed regimens without dosimetry")
    n_cycles = int(regimen[L.R_N_CYCLES])
    ids = np.array([patient_id], dtype=np.int64)
    u_ev = rng.uniforms(seed, ids, rng.STREAM_EVENTS, 0, rng.EV_FATAL_GRADE4 + n_cycles + 1)[0]
    z_ev = rng.normals(seed, ids, rng.STREAM_EVENTS, 0, rng.EV_FATAL_GRADE4)[0]
    z_cyc = rng.normals(seed, ids, rng.STREAM_CYCLE, 0, rng.CYCLE_SLOTS * max(n_cycles, 1))[0]
    e_ev = -np.log(u_ev)
    m = model

    v0 = p[L.TUMOUR_VOLUME_ML]
    stroma = p[L.STROMA_FRACTION] * v0
    viable0 = v0 - stroma
    v_neg = p[L.RECEPTOR_NEGATIVE_FRACTION] * viable0
    v_pos, v_dead, growth = viable0 - v_neg, 0.0, p[L.GROWTH_PER_DAY]
    t_bg = _gompertz_day(p[L.AGE_YEARS], m[L.BACKGROUND_HAZARD_65_PER_YEAR], m[L.BACKGROUND_SLOPE_PER_YEAR],
                         e_ev[rng.EV_BACKGROUND_DEATH])
    t_dropout = _exponential_day(m[L.DROPOUT_PER_DAY], e_ev[rng.EV_DROPOUT])
    t_pre = _exponential_day(m[L.PRE_PROGRESSION_DEATH_PER_DAY], e_ev[rng.EV_PRE_PROGRESSION_DEATH])
    censor = min(p[L.ADMIN_CENSOR_DAY], t_dropout)
    death_pre = min(t_bg, t_pre)
    cause_pre = L.CAUSE_OTHER if t_bg <= t_pre else L.CAUSE_CANCER_BEFORE_PROGRESSION

    marrow = Marrow(p, m)
    s0, anc0 = marrow.baseline
    window = m[L.MARROW_WINDOW_DAYS]
    horizon, cycle_nadir, cycle_nadir_day, cycle_neutro = math.inf, s0, 0.0, anc0
    fatal_checked = False
    e0 = p[L.EGFR_BASELINE]
    decline = m[L.EGFR_RADIATION_DECLINE_PER_GY_YEAR] * (
        m[L.EGFR_RISK_FACTOR_MULTIPLIER] if p[L.KIDNEY_RISK_FACTOR] > 0.0 else 1.0)
    egfr_args = (e0, m[L.EGFR_AGE_DECLINE_PER_YEAR], decline, m[L.EGFR_SUBCLINICAL_LATENCY_DAYS])
    cycles: list[dict] = []  # one per administration
    times: list[float] = []
    kidney_beds: list[float] = []

    t, new_lesion_h, nadir, last_scan_day, last_scan_volume = 0.0, 0.0, v0, 0.0, v0
    prev_level, best = L.RESPONSE_SD, L.RESPONSE_NE
    progressed, progression_day, progression_type = False, 0.0, L.PROGRESSION_NONE
    k, j, cycles_open, due, first_due = 0, 0, n_cycles > 0, 0.0, 0.0
    withheld = reduced = discontinued = False
    n_reductions, last_admin, marrow_total, tumour_decline = 0, 0.0, 0.0, 1.0
    continue_after = int(regimen[L.R_CONTINUE_AFTER])
    mds_decided, mds_onset, t_mds = False, math.inf, math.inf

    def mds_death() -> tuple[float, float]:
        chemo = m[L.MDS_CHEMO_MULTIPLIER] if p[L.PRIOR_CHEMOTHERAPY] > 0.0 else 1.0
        if u_ev[rng.EV_MDS] >= -math.expm1(-m[L.MDS_RISK_PER_GY] * chemo * marrow_total):
            return math.inf, math.inf
        onset = last_admin + m[L.MDS_LATENCY_DAYS] * math.exp(m[L.MDS_LATENCY_SIGMA] * z_ev[rng.EV_MDS_LATENCY])
        return onset, onset + _exponential_day(m[L.MDS_DEATH_PER_DAY], e_ev[rng.EV_MDS_DEATH])

    def close_cycle(index: int) -> None:
        cycles[index].update(platelet_nadir=cycle_nadir, platelet_nadir_day=cycle_nadir_day - last_admin,
                             neutrophil_nadir=cycle_neutro,
                             platelet_grade=_grade(cycle_nadir, L.PLATELET_GRADE_BELOW),
                             neutrophil_grade=_grade(cycle_neutro, L.NEUTROPHIL_GRADE_BELOW))

    while True:
        t_cycle = due if cycles_open else math.inf
        t_scan = scan_days[j] if j < len(scan_days) else math.inf
        if t_scan == math.inf and t_cycle == math.inf:
            break
        t_next, is_scan = min(t_scan, t_cycle), t_scan <= t_cycle
        if (is_scan and not (t_next <= censor and t_next < death_pre)) or (
                not is_scan and not (t_next < censor and t_next < death_pre)):
            break
        dt = t_next - t
        if p[L.NEW_LESION_PER_DAY] > 0.0 and dt > 0.0:
            kg = m[L.NEW_LESION_EXPONENT] * growth
            ratio = ((v_pos + v_neg) / viable0) ** m[L.NEW_LESION_EXPONENT]
            new_lesion_h += p[L.NEW_LESION_PER_DAY] * (dt if kg == 0.0 else ratio * math.expm1(kg * dt) / kg)
        v_pos, v_neg = v_pos * math.exp(growth * dt), v_neg * math.exp(growth * dt)
        v_dead *= math.exp(-m[L.DEAD_CLEARANCE_PER_DAY] * dt)
        t = t_next

        if k > 0 and min(t, horizon) > marrow.t:
            low, low_day, low_neutro = marrow.advance(min(t, horizon))
            cycle_neutro = min(cycle_neutro, low_neutro)
            if low < cycle_nadir:
                cycle_nadir, cycle_nadir_day = low, low_day
            if not fatal_checked and low < L.PLATELET_GRADE_BELOW[3]:
                fatal_checked = True
                if u_ev[rng.EV_FATAL_GRADE4 + k - 1] < m[L.FATAL_GRADE4_PROBABILITY]:
                    if low_day < death_pre:
                        death_pre, cause_pre = low_day, L.CAUSE_TREATMENT
                    break

        if is_scan:
            j += 1
            volume = stroma + v_pos + v_neg + v_dead
            target_pd = volume >= L.PD_VOLUME_RATIO * nadir
            new_lesion = new_lesion_h >= e_ev[rng.EV_NEW_LESION]
            last_scan_day = t
            if target_pd or new_lesion:
                progressed, progression_day = True, t
                progression_type = (L.PROGRESSION_TARGET if target_pd else 0) + (
                    L.PROGRESSION_NEW_LESION if new_lesion else 0)
                best = L.RESPONSE_PD if best == L.RESPONSE_NE else best
                break
            ratio = volume / v0
            level = L.RESPONSE_CR if ratio <= L.CR_VOLUME_RATIO else (
                L.RESPONSE_PR if ratio <= L.PR_VOLUME_RATIO else L.RESPONSE_SD)
            counted = max(level, prev_level) if m[L.CONFIRM_RESPONSE] > 0.0 and level != L.RESPONSE_SD else level
            best = counted if best == L.RESPONSE_NE else min(best, counted)
            prev_level, nadir, last_scan_volume = level, min(nadir, volume), volume
            continue

        stop = continue_after > 0 and k >= continue_after and not last_scan_volume < v0
        if not stop and k > 0:
            e_now = _egfr(t, *egfr_args, times, kidney_beds)
            if (_grade(marrow.platelets(), L.PLATELET_GRADE_BELOW) >= regimen[L.R_WITHHOLD_GRADE]
                    or _grade(marrow.neutrophils(), L.NEUTROPHIL_GRADE_BELOW) >= regimen[L.R_WITHHOLD_NEUTROPHIL_GRADE]
                    or e_now < regimen[L.R_WITHHOLD_EGFR_BELOW]
                    or e_now < (1.0 - regimen[L.R_WITHHOLD_EGFR_DROP]) * e0):
                withheld = True
                if t + regimen[L.R_RECHECK_DAYS] - first_due > regimen[L.R_MAX_DELAY_DAYS]:
                    stop = discontinued = True
                else:
                    due = t + regimen[L.R_RECHECK_DAYS]
                    continue
            elif (_grade(cycle_nadir, L.PLATELET_GRADE_BELOW) >= regimen[L.R_REDUCE_GRADE]
                  or _grade(cycle_neutro, L.NEUTROPHIL_GRADE_BELOW) >= regimen[L.R_REDUCE_NEUTROPHIL_GRADE]
                  or (withheld and regimen[L.R_REDUCE_IF_WITHHELD] > 0.0)):
                if n_reductions >= regimen[L.R_MAX_REDUCTIONS]:
                    stop = discontinued = True
                else:
                    reduced, n_reductions = True, n_reductions + 1
            elif reduced and regimen[L.R_RESTORE] > 0.0:
                reduced = False
        if stop:
            cycles_open = False
        else:
            a = activities[k] * (1.0 - regimen[L.R_REDUCTION_FRACTION] if reduced else 1.0)
            base = rng.CYCLE_SLOTS * k
            d_kid = a * p[L.KIDNEY_GY_PER_GBQ] * math.exp(m[L.KIDNEY_INTRA_SIGMA] * z_cyc[base + rng.SLOT_KIDNEY])
            d_mar = a * p[L.MARROW_GY_PER_GBQ] * math.exp(m[L.MARROW_INTRA_SIGMA] * z_cyc[base + rng.SLOT_MARROW])
            d_tum = a * p[L.TUMOUR_GY_PER_GBQ] * tumour_decline * math.exp(
                m[L.TUMOUR_INTRA_SIGMA] * z_cyc[base + rng.SLOT_TUMOUR])
            bed_tum = _bed(d_tum, p[L.TUMOUR_TEFF_H], m[L.TUMOUR_REPAIR_H], m[L.TUMOUR_ALPHA_BETA_GY])
            times.append(t)
            kidney_beds.append(_bed(d_kid, p[L.KIDNEY_TEFF_H], m[L.KIDNEY_REPAIR_H], m[L.KIDNEY_ALPHA_BETA_GY]))
            cycles.append({"day": t, "activity_gbq": a, "marrow_dose_gy": d_mar})
            killed = v_pos * -math.expm1(-p[L.TUMOUR_ALPHA_PER_GY] * bed_tum)
            v_pos, v_dead = v_pos - killed, v_dead + killed
            tumour_decline *= 1.0 - m[L.TUMOUR_DOSE_DECLINE]
            if k > 0:
                close_cycle(k - 1)
            marrow.give(d_mar)
            marrow_total += d_mar
            cycle_nadir, cycle_nadir_day, cycle_neutro = marrow.platelets(), t, marrow.neutrophils()
            fatal_checked, last_admin, withheld = False, t, False
            k += 1
            due = first_due = t + regimen[L.R_INTERVAL_DAYS]
            cycles_open = k < n_cycles
        if not cycles_open:
            horizon = last_admin + window
            if k > 0:
                mds_onset, t_mds = mds_death()
                mds_decided = True
                if t_mds < death_pre:
                    death_pre, cause_pre = t_mds, L.CAUSE_TREATMENT

    if k > 0 and not mds_decided:
        mds_onset, t_mds = mds_death()
        if t_mds < death_pre:
            death_pre, cause_pre = t_mds, L.CAUSE_TREATMENT
    if progressed:
        death_day, cause = progression_day + _exponential_day(
            p[L.POST_PROGRESSION_DEATH_PER_DAY], e_ev[rng.EV_POST_PROGRESSION_DEATH]), L.CAUSE_CANCER_AFTER_PROGRESSION
        if t_mds < death_day:
            death_day, cause = t_mds, L.CAUSE_TREATMENT
        if t_bg <= death_day:
            death_day, cause = t_bg, L.CAUSE_OTHER
    else:
        death_day, cause = death_pre, cause_pre
    if k > 0:
        t_to = min(horizon, last_admin + window, death_day, censor)
        if t_to > marrow.t:
            low, low_day, low_neutro = marrow.advance(t_to)
            cycle_neutro = min(cycle_neutro, low_neutro)
            if low < cycle_nadir:
                cycle_nadir, cycle_nadir_day = low, low_day
            if (not fatal_checked and low < L.PLATELET_GRADE_BELOW[3]
                    and u_ev[rng.EV_FATAL_GRADE4 + k - 1] < m[L.FATAL_GRADE4_PROBABILITY] and low_day < death_day):
                death_day, cause = low_day, L.CAUSE_TREATMENT
        close_cycle(k - 1)

    if progressed:
        pfs_day, pfs_event = progression_day, 1.0
    elif death_day <= censor:
        pfs_day, pfs_event = death_day, 1.0
    else:
        pfs_day, pfs_event = last_scan_day, 0.0
    if death_day <= censor:
        os_day, os_event = death_day, 1.0
    else:
        os_day, os_event, cause = censor, 0.0, L.CAUSE_ALIVE

    nephropathy_day = math.inf
    if k > 0:
        b50 = m[L.KIDNEY_BED50_GY] - m[L.KIDNEY_RISK_FACTOR_SHIFT_GY] * p[L.KIDNEY_RISK_FACTOR]
        ntcp = 0.5 * math.erfc(-((sum(kidney_beds) - b50) / (m[L.KIDNEY_LKB_M] * b50)) / math.sqrt(2.0))
        if u_ev[rng.EV_NEPHROPATHY] < ntcp:
            nephropathy_day = last_admin + m[L.NEPHROPATHY_LATENCY_DAYS] * math.exp(
                m[L.NEPHROPATHY_LATENCY_SIGMA] * z_ev[rng.EV_NEPHROPATHY_LATENCY])

    def egfr(day: float) -> float:
        return _egfr(day, *egfr_args, times, kidney_beds, nephropathy_day, m[L.NEPHROPATHY_EGFR_LOSS])

    e_end = egfr(os_day)
    renal_day = _first_day_below(L.CKD_GRADE_BELOW[2], os_day, egfr)
    mds = mds_onset < death_day and mds_onset <= censor

    out = np.zeros(L.N_PATIENT_VARS)
    out[L.P_CYCLES], out[L.P_PFS_DAYS], out[L.P_PFS_EVENT] = k, pfs_day, pfs_event
    out[L.P_OS_DAYS], out[L.P_OS_EVENT], out[L.P_DEATH_CAUSE] = os_day, os_event, cause
    out[L.P_BEST_RESPONSE], out[L.P_PROGRESSION_TYPE], out[L.P_NADIR_RATIO] = best, progression_type, nadir / v0
    out[L.P_PLATELET_WORST_GRADE] = max([_grade(s0, L.PLATELET_GRADE_BELOW)] + [c["platelet_grade"] for c in cycles])
    out[L.P_NEUTROPHIL_WORST_GRADE] = max(
        [_grade(anc0, L.NEUTROPHIL_GRADE_BELOW)] + [c["neutrophil_grade"] for c in cycles])
    out[L.P_EGFR_END], out[L.P_CKD_GRADE] = e_end, _grade(e_end, L.CKD_GRADE_BELOW)
    out[L.P_RENAL_G3_DAYS], out[L.P_RENAL_G3_EVENT] = min(renal_day, os_day), float(renal_day <= os_day)
    out[L.P_MDS_AML], out[L.P_MDS_AML_DAY] = float(mds), mds_onset if mds else math.nan
    out[L.P_DISCONTINUED_TOXICITY] = float(discontinued)
    return {"per_patient": out, "cycles": cycles}


def simulate_cohort(patients: np.ndarray, patient_ids: np.ndarray, seed: int, model: np.ndarray,
                    regimen: np.ndarray, activities: np.ndarray, scan_days: np.ndarray) -> list[dict]:
    """The per-patient loop: ``simulate_patient`` for each row of ``patients`` (the kernel's inputs)."""
    return [simulate_patient(patients[i], int(patient_ids[i]), seed, model, regimen, activities, scan_days)
            for i in range(patients.shape[0])]
