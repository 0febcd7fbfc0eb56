"""Independent, vectorised pure-NumPy implementation of the per-patient kernel (``docs/model.md`` 1 and 3).

Used as the test oracle of ``sim/kernels/patient.py`` and as the benchmark baseline. It is written from the
specification only: the random streams are re-implemented in vectorised ``uint64`` NumPy (SplitMix64,
Steele et al. 2014) and the normal quantile is ``scipy.special.ndtri``. Patients are vectorised; the
Python loop runs over the shared, merged timeline of scan days and cycle due days (scan first on a tie),
with per-patient state arrays and boolean masks.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from sim.kernels import layout as L
from sim.rng import (
    CYCLE_SLOTS,
    EV_BACKGROUND_DEATH,
    EV_DROPOUT,
    EV_NEW_LESION,
    EV_POST_PROGRESSION_DEATH,
    EV_PRE_PROGRESSION_DEATH,
    GOLDEN,
    M1,
    M2,
    SLOT_KIDNEY,
    SLOT_KIDNEY_MEAS,
    SLOT_MARROW,
    SLOT_MARROW_MEAS,
    SLOT_TUMOUR,
    SLOT_TUMOUR_MEAS,
    STREAM_CYCLE,
    STREAM_EVENTS,
    STREAM_MULT,
)

_U64 = np.uint64
_ONE = _U64(1)
_SH30, _SH27, _SH31, _SH11 = _U64(30), _U64(27), _U64(31), _U64(11)
_INV53 = 2.0**-53
_LN2 = math.log(2.0)
_DAYS_PER_YEAR = 365.25


# --------------------------------------------------------------------------------------------------------
# Random streams (docs/model.md section 1), vectorised over patients and counters.
# --------------------------------------------------------------------------------------------------------
def mix64_np(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014) on a ``uint64`` array, arithmetic mod 2^64."""
    z = np.asarray(z, dtype=_U64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _SH30)) * M1
        z = (z ^ (z >> _SH27)) * M2
        return z ^ (z >> _SH31)


def stream_keys_np(seed: int, patient_ids: np.ndarray, stream: int) -> np.ndarray:
    """``mix64(mix64(seed ^ mix64(p*PHI + PHI)) + (stream+1)*STREAM_MULT)`` for each patient id ``p``."""
    p = np.asarray(patient_ids, dtype=np.int64).astype(_U64)  # two's-complement wrap, as the kernel's cast
    with np.errstate(over="ignore"):
        pk = mix64_np(_U64(seed) ^ mix64_np(p * GOLDEN + GOLDEN))
        return mix64_np(pk + (_U64(stream) + _ONE) * STREAM_MULT)


def uniforms_np(seed: int, patient_ids: np.ndarray, stream: int, first_ctr: int, count: int) -> np.ndarray:
    """Uniforms ``[patient, j]`` in (0, 1) at counter ``c = first_ctr + j``.

    ``((mix64(key + (c+1) PHI) >> 11) + 0.5) 2^-53``.
    """
    keys = stream_keys_np(seed, patient_ids, stream)[:, None]
    ctr = np.arange(first_ctr, first_ctr + count, dtype=_U64)[None, :]
    with np.errstate(over="ignore"):
        z = mix64_np(keys + (ctr + _ONE) * GOLDEN)
    return ((z >> _SH11).astype(np.float64) + 0.5) * _INV53


def normals_np(seed: int, patient_ids: np.ndarray, stream: int, first_ctr: int, count: int) -> np.ndarray:
    """Standard normals ``Phi^-1(uniform)``, one uniform per normal."""
    return ndtri(uniforms_np(seed, patient_ids, stream, first_ctr, count))


def exponentials_np(seed: int, patient_ids: np.ndarray, stream: int, first_ctr: int,
                    count: int) -> np.ndarray:
    """Standard exponentials ``-log(uniform)``."""
    return -np.log(uniforms_np(seed, patient_ids, stream, first_ctr, count))


# --------------------------------------------------------------------------------------------------------
# Closed-form pieces of section 3.
# --------------------------------------------------------------------------------------------------------
def _time_at_rate(e: np.ndarray, rate) -> np.ndarray:
    """Event time ``E / rate`` of a constant hazard; infinite for a zero rate."""
    rate = np.broadcast_to(np.asarray(rate, dtype=np.float64), np.shape(e))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rate > 0.0, e / rate, np.inf)


def gompertz_death_days(e0: np.ndarray, age_years: np.ndarray, h65_per_year: float,
                        slope_per_year: float) -> np.ndarray:
    """Background death (Gompertz hazard ``h65 exp(b (a - 65))``), days after entry at age ``a``.

    ``T = 365.25 ln(1 + E b / (h65 exp(b (a-65)))) / b``, ``365.25 E / h65`` when ``b = 0``; infinite when
    ``h65 = 0`` (and, for ``b < 0``, when the cumulative hazard never reaches ``E``).
    """
    e0 = np.asarray(e0, dtype=np.float64)
    if h65_per_year <= 0.0:
        return np.full(e0.shape, np.inf)
    b = slope_per_year
    if b == 0.0:
        return _DAYS_PER_YEAR * e0 / h65_per_year
    x = e0 * b / (h65_per_year * np.exp(b * (np.asarray(age_years, dtype=np.float64) - 65.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = _DAYS_PER_YEAR * np.log1p(x) / b
    return np.where(x > -1.0, t, np.inf)


def bed_gy(dose_gy: np.ndarray, teff_h: np.ndarray, repair_h: float, alpha_beta_gy: float) -> np.ndarray:
    """BED of a mono-exponentially decaying dose rate, complete decay (Dale 1985).

    ``BED = D (1 + G D / (alpha/beta))``, ``G = lambda / (lambda + mu)``, ``lambda = ln2/T_eff``,
    ``mu = ln2/T_rep``.
    """
    lam = _LN2 / np.asarray(teff_h, dtype=np.float64)
    mu = _LN2 / repair_h
    g = lam / (lam + mu)
    return dose_gy * (1.0 + g * dose_gy / alpha_beta_gy)


def _new_lesion_increment(h_nl, viable, viable0, kappa: float, g, dt):
    """Growth of the new-lesion cumulative hazard over ``dt``, with ``(P+N)`` taken at the start.

    ``h_nl ((P+N)/W0)^kappa expm1(kappa g dt) / (kappa g)``; ``h_nl dt`` when ``kappa = 0`` (and the
    ``kappa g -> 0`` limit ``dt`` whenever ``kappa g = 0``).
    """
    if kappa == 0.0:
        return h_nl * dt
    kg = kappa * g
    nz = kg != 0.0
    factor = np.where(nz, np.expm1(kg * dt) / np.where(nz, kg, 1.0), dt)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = viable / viable0
    return h_nl * ratio**kappa * factor


class _Organ(NamedTuple):
    """One organ's columns in ``patients``, ``model`` and ``per_cycle``, and its stream-2 slots."""

    gy_per_gbq: int
    teff_h: int
    alpha_beta: int
    repair_h: int
    intra_sigma: int
    meas_sigma: int
    slot: int
    slot_meas: int
    c_dose: int
    c_measured: int
    c_bed: int
    declines: bool  # (1 - decline)^k applies (tumour only)


_ORGANS = tuple(
    _Organ(getattr(L, f"{o}_GY_PER_GBQ"), getattr(L, f"{o}_TEFF_H"), getattr(L, f"{o}_ALPHA_BETA_GY"),
           getattr(L, f"{o}_REPAIR_H"), getattr(L, f"{o}_INTRA_SIGMA"), getattr(L, f"{o}_MEAS_SIGMA"),
           slot, slot_meas, getattr(L, f"C_{o}_DOSE_GY"), getattr(L, f"C_{o}_DOSE_MEASURED_GY"),
           getattr(L, f"C_{o}_BED_GY"), o == "TUMOUR")
    for o, slot, slot_meas in (("KIDNEY", SLOT_KIDNEY, SLOT_KIDNEY_MEAS),
                               ("MARROW", SLOT_MARROW, SLOT_MARROW_MEAS),
                               ("TUMOUR", SLOT_TUMOUR, SLOT_TUMOUR_MEAS))
)


# --------------------------------------------------------------------------------------------------------
# The per-patient model, vectorised over patients.
# --------------------------------------------------------------------------------------------------------
def simulate_arm_reference(patients: np.ndarray, patient_ids: np.ndarray, seed: int, model: np.ndarray,
                           activities: np.ndarray, n_cycles: int, interval_days: float, continue_after: int,
                           scan_days: np.ndarray, max_cycles: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one arm; returns ``per_cycle[N_CYCLE_VARS, n, K]`` and ``per_patient[N_PATIENT_VARS, n]``.

    Model and column meanings: ``docs/model.md`` section 3 and ``sim/kernels/layout.py``. Cycle ``k`` is due
    at ``k * interval_days`` with activity ``activities[k]`` (``n_cycles = 0``: control arm);
    ``continue_after = m >= 1`` gives cycles ``k >= m`` only while the latest scan volume is below ``V0``.
    Cycles not given have day NaN and zeros elsewhere; codes are stored as floats.
    """
    patients = np.asarray(patients, dtype=np.float64)
    patient_ids = np.asarray(patient_ids, dtype=np.int64)
    model = np.asarray(model, dtype=np.float64)
    activities = np.asarray(activities, dtype=np.float64)
    scan_days = np.asarray(scan_days, dtype=np.float64)
    n = patients.shape[0]
    n_cycles, max_cycles, continue_after = int(n_cycles), int(max_cycles), int(continue_after)
    if patients.ndim != 2 or patients.shape[1] != L.N_PATIENT or patient_ids.shape != (n,):
        raise ValueError("patients must be (n, N_PATIENT) and patient_ids (n,)")
    if model.shape != (L.N_MODEL,):
        raise ValueError("model must have N_MODEL entries")
    if not 0 <= n_cycles <= max_cycles or max_cycles < 1 or activities.shape[0] < n_cycles:
        raise ValueError("need 0 <= n_cycles <= max_cycles, max_cycles >= 1, len(activities) >= n_cycles")

    per_cycle = np.zeros((L.N_CYCLE_VARS, n, max_cycles))
    per_cycle[L.C_TIME_DAYS] = np.nan
    per_patient = np.zeros((L.N_PATIENT_VARS, n))
    if n == 0:
        return per_cycle, per_patient

    # Patient inputs.
    age = patients[:, L.AGE_YEARS]
    v0 = patients[:, L.TUMOUR_VOLUME_ML]
    f_s = patients[:, L.STROMA_FRACTION]
    f_n = patients[:, L.RECEPTOR_NEGATIVE_FRACTION]
    g = patients[:, L.GROWTH_PER_DAY]
    h_nl = patients[:, L.NEW_LESION_PER_DAY]
    alpha = patients[:, L.TUMOUR_ALPHA_PER_GY]
    c_admin = patients[:, L.ADMIN_CENSOR_DAY]
    h_pp = patients[:, L.POST_PROGRESSION_DEATH_PER_DAY]

    # Model parameters.
    k_c = model[L.DEAD_CLEARANCE_PER_DAY]
    kappa = model[L.NEW_LESION_EXPONENT]
    confirm = model[L.CONFIRM_RESPONSE] != 0.0
    decline = model[L.TUMOUR_DOSE_DECLINE]

    # Event times (stream 3).
    e = exponentials_np(seed, patient_ids, STREAM_EVENTS, 0, 5)
    t_bg = gompertz_death_days(e[:, EV_BACKGROUND_DEATH], age, model[L.BACKGROUND_HAZARD_65_PER_YEAR],
                               model[L.BACKGROUND_SLOPE_PER_YEAR])
    t_do = _time_at_rate(e[:, EV_DROPOUT], model[L.DROPOUT_PER_DAY])
    t_pre = _time_at_rate(e[:, EV_PRE_PROGRESSION_DEATH], model[L.PRE_PROGRESSION_DEATH_PER_DAY])
    e_nl = e[:, EV_NEW_LESION]
    e_pp = e[:, EV_POST_PROGRESSION_DEATH]
    censor = np.minimum(c_admin, t_do)
    t_dp = np.minimum(t_bg, t_pre)

    # Tumour state.
    s_vol = f_s * v0
    p_vol = (1.0 - f_n) * (1.0 - f_s) * v0
    n_vol = f_n * (1.0 - f_s) * v0
    d_vol = np.zeros(n)
    w0 = p_vol + n_vol
    hazard_nl = np.zeros(n)
    t_state = np.zeros(n)

    # Loop state.
    active = np.ones(n, dtype=bool)
    cycles_on = np.ones(n, dtype=bool)
    progressed = np.zeros(n, dtype=bool)
    t_prog = np.full(n, np.nan)
    prog_type = np.zeros(n)
    nadir = v0.copy()
    last_scan_volume = v0.copy()  # baseline counts as the latest scan until one is evaluated
    prev_level = np.full(n, float(L.RESPONSE_SD))  # baseline counts as SD for confirmation
    best = np.full(n, np.inf)
    n_evaluated = np.zeros(n, dtype=np.int64)
    last_eval_day = np.zeros(n)
    n_given = np.zeros(n, dtype=np.int64)

    def advance(idx: np.ndarray, t: float) -> None:
        dt = t - t_state[idx]
        viable = p_vol[idx] + n_vol[idx]
        hazard_nl[idx] += _new_lesion_increment(h_nl[idx], viable, w0[idx], kappa, g[idx], dt)
        grow = np.exp(g[idx] * dt)
        p_vol[idx] *= grow
        n_vol[idx] *= grow
        d_vol[idx] *= np.exp(-k_c * dt)
        t_state[idx] = t

    # Merged timeline: (day, 0 = scan / 1 = cycle, index); sorting puts a scan before a cycle on the same day.
    events = [(float(s), 0, j) for j, s in enumerate(scan_days)]
    events += [(k * float(interval_days), 1, k) for k in range(n_cycles)]
    events.sort()

    for day, kind, k in events:
        if kind == 0:  # scan
            active &= (day <= censor) & (day < t_dp)
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            advance(idx, day)
            vol = s_vol[idx] + p_vol[idx] + n_vol[idx] + d_vol[idx]
            target = vol >= L.PD_VOLUME_RATIO * nadir[idx]
            new_lesion = hazard_nl[idx] > e_nl[idx]
            prog = target | new_lesion

            pi = idx[prog]
            progressed[pi] = True
            t_prog[pi] = day
            prog_type[pi] = L.PROGRESSION_TARGET * target[prog] + L.PROGRESSION_NEW_LESION * new_lesion[prog]
            best[pi] = np.where(n_evaluated[pi] == 0, float(L.RESPONSE_PD), best[pi])
            active[pi] = False

            ei, v = idx[~prog], vol[~prog]
            level = np.full(v.shape, float(L.RESPONSE_SD))
            level[v <= L.PR_VOLUME_RATIO * v0[ei]] = L.RESPONSE_PR
            level[v <= L.CR_VOLUME_RATIO * v0[ei]] = L.RESPONSE_CR
            counted = np.maximum(level, prev_level[ei]) if confirm else level
            best[ei] = np.minimum(best[ei], counted)
            prev_level[ei] = level
            nadir[ei] = np.minimum(nadir[ei], v)
            last_scan_volume[ei] = v
            last_eval_day[ei] = day
            n_evaluated[ei] += 1
        else:  # cycle k
            active &= (day < censor) & (day < t_dp)
            if not active.any():
                break
            give = active & cycles_on
            if continue_after > 0 and k >= continue_after:
                allowed = last_scan_volume < v0
                cycles_on &= ~(give & ~allowed)
                give &= allowed
            idx = np.flatnonzero(give)
            if idx.size == 0:
                continue
            advance(idx, day)
            z = normals_np(seed, patient_ids[idx], STREAM_CYCLE, CYCLE_SLOTS * k, CYCLE_SLOTS)
            a_k = activities[k]
            per_cycle[L.C_TIME_DAYS, idx, k] = day
            per_cycle[L.C_ACTIVITY_GBQ, idx, k] = a_k
            for o in _ORGANS:
                # D = A_k * Gy/GBq [* (1 - decline)^k for the tumour] * exp(sigma z_{8k+slot})
                trend = (1.0 - decline) ** k if o.declines else 1.0
                dose = a_k * patients[idx, o.gy_per_gbq] * trend * np.exp(model[o.intra_sigma] * z[:, o.slot])
                per_cycle[o.c_dose, idx, k] = dose
                per_cycle[o.c_measured, idx, k] = dose * np.exp(model[o.meas_sigma] * z[:, o.slot_meas])
                per_cycle[o.c_bed, idx, k] = bed_gy(dose, patients[idx, o.teff_h], model[o.repair_h],
                                                    model[o.alpha_beta])
            bed_tum = per_cycle[L.C_TUMOUR_BED_GY, idx, k]

            killed = p_vol[idx] * -np.expm1(-alpha[idx] * bed_tum)  # P (1 - exp(-alpha BED))
            p_vol[idx] -= killed
            d_vol[idx] += killed
            n_given[idx] += 1

    # Outcomes.
    with np.errstate(invalid="ignore"):
        t_post = t_prog + _time_at_rate(e_pp, h_pp)
    died_first = ~progressed & (t_dp <= censor)
    pfs = np.where(progressed, t_prog, np.where(died_first, t_dp, last_eval_day))
    pfs_event = progressed | died_first
    death = np.where(progressed, np.minimum(t_bg, t_post), t_dp)
    cause = np.where(progressed,
                     np.where(t_bg < t_post, L.CAUSE_OTHER, L.CAUSE_CANCER_AFTER_PROGRESSION),
                     np.where(t_bg < t_pre, L.CAUSE_OTHER, L.CAUSE_CANCER_BEFORE_PROGRESSION))
    os_event = death <= censor
    best = np.where(np.isinf(best), float(L.RESPONSE_NE), best)

    per_patient[L.P_CYCLES] = n_given
    per_patient[L.P_PFS_DAYS] = pfs
    per_patient[L.P_PFS_EVENT] = pfs_event
    per_patient[L.P_OS_DAYS] = np.where(os_event, death, censor)
    per_patient[L.P_OS_EVENT] = os_event
    per_patient[L.P_DEATH_CAUSE] = np.where(os_event, cause, L.CAUSE_ALIVE)
    per_patient[L.P_BEST_RESPONSE] = best
    per_patient[L.P_PROGRESSION_TYPE] = prog_type
    per_patient[L.P_NADIR_RATIO] = nadir / v0
    return per_cycle, per_patient
