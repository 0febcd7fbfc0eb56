"""Independent, vectorised pure-NumPy implementation of the per-patient kernel (``docs/model.md`` 1, 3, 4 and 5).

Used as the test oracle of ``sim/kernels/patient.py`` and as the benchmark baseline. It is written from the
specification only: the random streams are re-implemented in vectorised ``uint64`` NumPy (SplitMix64,
Steele et al. 2014), the normal quantile is ``scipy.special.ndtri``, and the marrow model's RK4 stepping and
nadir rule (``sim/kernels/marrow.py``) are re-implemented on arrays of patients; platelets (4.1) and neutrophils
(4.7) are stepped together, as one batch with per-row kinetics, over the same intervals. Since dose modification makes
every patient's timeline its own, the Python loop runs over event rounds: in each round every still-active
patient takes its own next event (scan, due day or re-check), with per-patient state arrays and index masks;
the marrow integration inside a round loops over trial steps of the adaptive RK4, each pass stepping the rows
not yet at the end of their interval. Dosimetry-guided regimens (section 5) keep, per patient, the sums of the
measured doses and activities and the known cumulative doses, and prescribe each cycle from them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri

from sim.kernels import layout as L
from sim.rng import (
    CYCLE_SLOTS,
    EV_BACKGROUND_DEATH,
    EV_DROPOUT,
    EV_FATAL_GRADE4,
    EV_MDS,
    EV_MDS_DEATH,
    EV_MDS_LATENCY,
    EV_NEPHROPATHY,
    EV_NEPHROPATHY_LATENCY,
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
_EPS = 1e-9  # relative tolerance of the guided rules' target and limit tests (docs/model.md 5.2)


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
# Grades and the marrow model (docs/model.md 4.1, 4.7, sim/kernels/marrow.py), vectorised over patients.
# --------------------------------------------------------------------------------------------------------
_CIRC = 4  # state rows: Prol, T1, T2, T3, Circ
_GRADE4_BELOW = L.PLATELET_GRADE_BELOW[3]
_EGFR_GRADE3_BELOW = L.CKD_GRADE_BELOW[2]


def ctcae_grade(values: np.ndarray, thresholds_below) -> np.ndarray:
    """CTCAE grade from decreasing thresholds: grade ``g`` when ``value < thresholds_below[g - 1]`` (so the grade
    is the number of thresholds the value is below); NaN gives 0. Returned as float."""
    v = np.asarray(values, dtype=np.float64)
    return (v[..., None] < np.asarray(thresholds_below, dtype=np.float64)).sum(axis=-1).astype(np.float64)


class MarrowParams(NamedTuple):
    """Blood-line constants (per day): ``k_tr = 4 / MTT``, ``k_circ = 1 / lifespan``, feedback ``gamma``. These three
    may be per-row arrays, so that platelets and neutrophils (docs/model.md 4.7) are stepped in one batch; the
    reserve loss and the first trial step are shared by both lines."""

    k_tr: float | np.ndarray
    k_circ: float | np.ndarray
    gamma: float | np.ndarray
    beta: float  # permanent set-point loss per Gy delivered
    max_step: float  # first trial step of each interval (config max_step_days)


def _marrow_rhs(y: np.ndarray, kill: np.ndarray, log_setpoint: np.ndarray, k_tr: np.ndarray, k_circ: np.ndarray,
                gamma: np.ndarray) -> np.ndarray:
    """``d/dt (Prol, T1, T2, T3, Circ)`` for ``y[5, m]``; ``kill = alpha_i Rdot``, ``(S/Circ)^gamma`` via logs."""
    p, x1, x2, x3, c = y
    d = np.empty_like(y)
    d[0] = k_tr * p * (np.exp(gamma * (log_setpoint - np.log(c))) - 1.0) - kill * p
    d[1] = k_tr * (p - x1)
    d[2] = k_tr * (x1 - x2)
    d[3] = k_tr * (x2 - x3)
    d[4] = k_circ * (x3 - c)
    return d


def marrow_advance_np(y: np.ndarray, t0: np.ndarray, t1: np.ndarray, dose_rate: np.ndarray, committed: np.ndarray,
                      lam: np.ndarray, baseline: np.ndarray, alpha: np.ndarray,
                      mp: MarrowParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Advance the marrow states ``y[5, m]`` of ``m`` rows (a blood line of a patient) from ``t0`` to ``t1 > t0``.

    Classical RK4 with step-size control (``layout.MARROW_*``), every row with its own steps: the stages are
    evaluated at ``t``, ``t + h/2`` (twice) and ``t + h``, plus a fifth evaluation at the new state (the next step's
    first stage); with ``err = h max|k4 - k5| / 6 / (MARROW_RTOL min(y_new))`` (over the compartments) the step is
    accepted when ``err <= 1`` or ``h <= MARROW_MIN_STEP_DAYS``, and the next trial step is ``h`` times
    ``0.9 / sqrt(sqrt(err))`` clipped to ``[MARROW_MIN_STEP_FACTOR, MARROW_MAX_STEP_FACTOR]``.
    The first trial step is ``mp.max_step``; a trial step is cut to ``MARROW_MAX_KILL_PER_STEP / (alpha r)`` when
    longer, and to ``t1 - t`` when it reaches ``t1``. Between administrations the forcing is
    ``Rdot(t) = r exp(-lam (t - t_a))`` and ``ln S(t) = ln S0 - beta (Dsum - Rdot(t) / lam)``, evaluated at the
    stage times; ``baseline`` is ``S0`` and ``alpha`` the radiosensitivity of each row, and ``mp.k_tr``,
    ``mp.k_circ``, ``mp.gamma`` are scalars or per-row arrays. Each loop pass takes one trial step of every row
    not yet at ``t1``.

    Returns ``(y1, r1, nadir, nadir_day)``: the state and dose rate at ``t1`` and the interval's nadir of Circ: the
    minimum (strict improvements only, starting from Circ at ``t0``) over the accepted step ends and, for each
    accepted step where Circ falls at its start and rises at its end, the minimum of the cubic Hermite interpolant
    through the two ends' values and derivatives.
    """
    m = t0.shape[0]
    y = np.array(y, dtype=np.float64)
    r = np.array(dose_rate, dtype=np.float64)
    log_fixed = np.log(baseline) - mp.beta * committed
    beta_over_lam = mp.beta / lam
    k_tr, k_circ, gamma = (np.broadcast_to(np.asarray(v, dtype=np.float64), (m,)).copy()
                           for v in (mp.k_tr, mp.k_circ, mp.gamma))
    kin = (k_tr, k_circ, gamma)
    f = _marrow_rhs(y, alpha * r, log_fixed + beta_over_lam * r, *kin)  # derivative at the current state
    t = np.array(t0, dtype=np.float64)
    h = np.full(m, float(mp.max_step))
    nadir = y[_CIRC].copy()
    day = t.copy()

    rows = np.flatnonzero(t < t1)
    while rows.size:
        yq, fq, rq, tq, end = y[:, rows], f[:, rows], r[rows], t[rows], t1[rows]
        aq, lf, bl = alpha[rows], log_fixed[rows], beta_over_lam[rows]
        kq = tuple(v[rows] for v in kin)
        hq = h[rows]
        with np.errstate(divide="ignore"):
            hq = np.where(aq * rq * hq > L.MARROW_MAX_KILL_PER_STEP, L.MARROW_MAX_KILL_PER_STEP / (aq * rq), hq)
        last = tq + hq >= end
        hq = np.where(last, end - tq, hq)
        hh = 0.5 * hq
        half = np.exp(-lam[rows] * hh)
        r_mid = rq * half
        r_end = r_mid * half
        k2 = _marrow_rhs(yq + hh * fq, aq * r_mid, lf + bl * r_mid, *kq)
        k3 = _marrow_rhs(yq + hh * k2, aq * r_mid, lf + bl * r_mid, *kq)
        k4 = _marrow_rhs(yq + hq * k3, aq * r_end, lf + bl * r_end, *kq)
        s6 = hq / 6.0
        y_new = yq + s6 * (fq + 2.0 * (k2 + k3) + k4)
        k5 = _marrow_rhs(y_new, aq * r_end, lf + bl * r_end, *kq)
        err = np.max(np.abs(k4 - k5), axis=0) * s6 / (L.MARROW_RTOL * np.min(y_new, axis=0))
        ok = (err <= 1.0) | (hq <= L.MARROW_MIN_STEP_DAYS)

        ai = rows[ok]
        c0, d0, c1, d1, ha, ta = yq[_CIRC, ok], fq[_CIRC, ok], y_new[_CIRC, ok], k5[_CIRC, ok], hq[ok], tq[ok]
        turn = (d0 < 0.0) & (d1 > 0.0)
        low, frac = _hermite_minimum_np(c0[turn], d0[turn], c1[turn], d1[turn], ha[turn])
        ti = ai[turn]
        better = low < nadir[ti]
        nadir[ti[better]] = low[better]
        day[ti[better]] = ta[turn][better] + frac[better] * ha[turn][better]
        better = c1 < nadir[ai]
        nadir[ai[better]] = c1[better]
        day[ai[better]] = ta[better] + ha[better]
        t[ai] = np.where(last[ok], end[ok], ta + ha)
        y[:, ai], f[:, ai], r[ai] = y_new[:, ok], k5[:, ok], r_end[ok]

        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(err == 0.0, L.MARROW_MAX_STEP_FACTOR, 0.9 / np.sqrt(np.sqrt(err)))
        factor = np.where(factor > L.MARROW_MAX_STEP_FACTOR, L.MARROW_MAX_STEP_FACTOR, factor)
        factor = np.where(factor > L.MARROW_MIN_STEP_FACTOR, factor, L.MARROW_MIN_STEP_FACTOR)  # NaN: the least
        h[rows] = hq * factor
        rows = rows[~(ok & last)]
    return y, r, nadir, day


def _hermite_minimum_np(c0, d0, c1, d1, h):
    """Minimum of the cubic Hermite interpolant on steps of length ``h`` with end values ``c0, c1`` and
    derivatives ``d0 < 0 < d1``: ``(value, fraction of the step)``. The derivative of the interpolant is
    ``A s^2 + B s + C`` with ``A = 3 (h (d0 + d1) - 2 D)``, ``B = 2 (3 D - h (2 d0 + d1))``, ``C = h d0``,
    ``D = c1 - c0``; of its roots ``C / q`` and ``q / A``, ``q = -(B + sign(B) sqrt(B^2 - 4 A C)) / 2``, the
    first one in ``[0, 1]`` is taken (``-1`` for a zero ``q``, ``0`` for a zero ``A``), clipped to ``[0, 1]``."""
    delta = c1 - c0
    quad = 3.0 * delta - h * (2.0 * d0 + d1)
    cubic = h * (d0 + d1) - 2.0 * delta
    a, b, c = 3.0 * cubic, 2.0 * quad, h * d0
    q = -0.5 * (b + np.copysign(np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0)), b))
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(q != 0.0, c / q, -1.0)
        s = np.where((s >= 0.0) & (s <= 1.0), s, np.where(a != 0.0, q / a, 0.0))
    s = np.minimum(np.maximum(s, 0.0), 1.0)
    return c0 + s * (h * d0 + s * (quad + s * cubic)), s


# --------------------------------------------------------------------------------------------------------
# The per-patient model (docs/model.md 3 and 4), vectorised over patients.
# --------------------------------------------------------------------------------------------------------
class _Arm:
    """State of every patient of one arm; methods take index arrays of the patients concerned."""

    def __init__(self, patients, patient_ids, seed, model, regimen, activities, scan_days, max_cycles):
        self.patients = patients = np.asarray(patients, dtype=np.float64)
        patient_ids = np.asarray(patient_ids, dtype=np.int64)
        self.model = model = np.asarray(model, dtype=np.float64)
        regimen = np.asarray(regimen, dtype=np.float64)
        self.activities = np.asarray(activities, dtype=np.float64)
        self.scans = np.sort(np.asarray(scan_days, dtype=np.float64))
        self.n = n = patients.shape[0]
        self.k_max = k_max = int(max_cycles)
        if patients.ndim != 2 or patients.shape[1] != L.N_PATIENT or patient_ids.shape != (n,):
            raise ValueError("patients must be (n, N_PATIENT) and patient_ids (n,)")
        if model.shape != (L.N_MODEL,):
            raise ValueError("model must have N_MODEL entries")
        if regimen.shape != (L.N_REGIMEN,):
            raise ValueError("regimen must have N_REGIMEN entries")
        self.n_cycles = n_cycles = int(regimen[L.R_N_CYCLES])
        if not 0 <= n_cycles <= k_max or k_max < 1 or self.activities.shape[0] < n_cycles:
            raise ValueError("need 0 <= n_cycles <= max_cycles, max_cycles >= 1, len(activities) >= n_cycles")
        if n_cycles > 1 and not regimen[L.R_RECHECK_DAYS] > 0.0:
            raise ValueError("R_RECHECK_DAYS must be > 0")
        self.rule = rule = int(regimen[L.R_RULE])
        if rule not in (L.RULE_FIXED, L.RULE_KIDNEY_LIMIT, L.RULE_KIDNEY_TARGET, L.RULE_TUMOUR_TARGET):
            raise ValueError("unknown R_RULE")
        self.n_measured = int(regimen[L.R_MEASURED_CYCLES])
        if rule != L.RULE_FIXED and n_cycles > 0 and self.n_measured < 1:
            raise ValueError("guided rules need R_MEASURED_CYCLES >= 1 (the measured Gy/GBq of cycle 0)")

        # Regimen (docs/model.md 4.5).
        self.interval = regimen[L.R_INTERVAL_DAYS]
        self.continue_after = int(regimen[L.R_CONTINUE_AFTER])
        self.withhold_grade = regimen[L.R_WITHHOLD_GRADE]
        self.withhold_egfr_below = regimen[L.R_WITHHOLD_EGFR_BELOW]
        self.withhold_egfr_drop = regimen[L.R_WITHHOLD_EGFR_DROP]
        self.reduce_grade = regimen[L.R_REDUCE_GRADE]
        self.withhold_neutrophil_grade = regimen[L.R_WITHHOLD_NEUTROPHIL_GRADE]
        self.reduce_neutrophil_grade = regimen[L.R_REDUCE_NEUTROPHIL_GRADE]
        self.reduce_if_withheld = regimen[L.R_REDUCE_IF_WITHHELD] != 0.0
        self.reduction = regimen[L.R_REDUCTION_FRACTION]
        self.restore = regimen[L.R_RESTORE] != 0.0
        self.max_reductions = regimen[L.R_MAX_REDUCTIONS]
        self.recheck = regimen[L.R_RECHECK_DAYS]
        self.max_delay = regimen[L.R_MAX_DELAY_DAYS]

        # Guided rules (docs/model.md 5.2): kidney limit by risk factor, kidney G = T_rep / (T_rep + T_eff).
        self.guided_activity = regimen[L.R_GUIDED_ACTIVITY]
        self.kidney_limit = np.where(patients[:, L.KIDNEY_RISK_FACTOR] > 0.0, regimen[L.R_KIDNEY_LIMIT_RF_GY],
                                     regimen[L.R_KIDNEY_LIMIT_GY])
        self.marrow_limit = regimen[L.R_MARROW_LIMIT_GY]
        self.target = regimen[L.R_TARGET]
        self.kidney_known_is_dose = rule == L.RULE_KIDNEY_TARGET and regimen[L.R_TARGET_IS_BED] == 0.0
        self.min_activity, self.max_activity = regimen[L.R_MIN_ACTIVITY], regimen[L.R_MAX_ACTIVITY]
        self.reduce_last = regimen[L.R_REDUCE_LAST] != 0.0
        repair_k = model[L.KIDNEY_REPAIR_H]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.g_kidney = repair_k / (repair_k + patients[:, L.KIDNEY_TEFF_H])

        self.per_cycle = np.zeros((L.N_CYCLE_VARS, n, k_max))
        self.per_cycle[[L.C_TIME_DAYS, L.C_PLATELET_NADIR, L.C_PLATELET_NADIR_DAY, L.C_PLATELET_END,
                        L.C_NEUTROPHIL_NADIR, L.C_KIDNEY_DOSE_MEASURED_GY, L.C_MARROW_DOSE_MEASURED_GY,
                        L.C_TUMOUR_DOSE_MEASURED_GY]] = np.nan
        self.per_patient = np.zeros((L.N_PATIENT_VARS, n))
        self.nadir_day_abs = np.full((n, k_max), np.nan)

        # Patient inputs.
        self.v0 = patients[:, L.TUMOUR_VOLUME_ML]
        self.g = patients[:, L.GROWTH_PER_DAY]
        self.h_nl = patients[:, L.NEW_LESION_PER_DAY]
        self.censor_admin = patients[:, L.ADMIN_CENSOR_DAY]
        self.s0 = patients[:, L.PLATELETS_BASELINE]
        self.alpha_m = patients[:, L.MARROW_ALPHA_PER_GY]
        self.anc0 = patients[:, L.NEUTROPHILS_BASELINE]
        self.alpha_n = self.alpha_m * model[L.NEUTROPHIL_ALPHA_RATIO]
        with np.errstate(divide="ignore"):  # T_eff 0 in control arms: never used
            self.lam_m = _LN2 / (patients[:, L.MARROW_TEFF_H] / 24.0)  # per day
        self.e0 = patients[:, L.EGFR_BASELINE]
        self.risk = patients[:, L.KIDNEY_RISK_FACTOR]
        self.chemo = patients[:, L.PRIOR_CHEMOTHERAPY]
        # Platelet (4.1) and neutrophil (4.7) kinetics; reserve loss and step shared.
        self.kinetics = np.array([[4.0 / model[L.MARROW_MTT_DAYS], 1.0 / model[L.PLATELET_LIFESPAN_DAYS],
                                   model[L.MARROW_GAMMA]],
                                  [4.0 / model[L.NEUTROPHIL_MTT_DAYS], 1.0 / model[L.NEUTROPHIL_LIFESPAN_DAYS],
                                   model[L.NEUTROPHIL_GAMMA]]])
        self.beta, self.max_step = model[L.MARROW_RESERVE_PER_GY], model[L.MARROW_FIRST_STEP_DAYS]
        self.window = model[L.MARROW_WINDOW_DAYS]
        self.c_egfr = model[L.EGFR_RADIATION_DECLINE_PER_GY_YEAR] * model[L.EGFR_RISK_FACTOR_MULTIPLIER] ** self.risk

        # Event draws (stream 3) and per-cycle normals (stream 2).
        u = uniforms_np(seed, patient_ids, STREAM_EVENTS, 0, EV_FATAL_GRADE4 + k_max)
        e = -np.log(u)
        self.t_bg = gompertz_death_days(e[:, EV_BACKGROUND_DEATH], patients[:, L.AGE_YEARS],
                                        model[L.BACKGROUND_HAZARD_65_PER_YEAR], model[L.BACKGROUND_SLOPE_PER_YEAR])
        t_do = _time_at_rate(e[:, EV_DROPOUT], model[L.DROPOUT_PER_DAY])
        self.t_pre = _time_at_rate(e[:, EV_PRE_PROGRESSION_DEATH], model[L.PRE_PROGRESSION_DEATH_PER_DAY])
        self.e_nl = e[:, EV_NEW_LESION]
        self.e_pp = e[:, EV_POST_PROGRESSION_DEATH]
        self.u_neph = u[:, EV_NEPHROPATHY]
        self.z_neph = ndtri(u[:, EV_NEPHROPATHY_LATENCY])
        self.u_mds = u[:, EV_MDS]
        self.z_mds = ndtri(u[:, EV_MDS_LATENCY])
        self.e_mds = e[:, EV_MDS_DEATH]
        self.u_fatal = u[:, EV_FATAL_GRADE4:EV_FATAL_GRADE4 + k_max]  # U_{10+k}
        self.z_cyc = normals_np(seed, patient_ids, STREAM_CYCLE, 0, CYCLE_SLOTS * max(n_cycles, 1))
        self.censor = np.minimum(self.censor_admin, t_do)
        self.t_dp = np.minimum(self.t_bg, self.t_pre)  # death before progression, falls as deaths become known
        self.cause_dp = np.where(self.t_bg < self.t_pre, float(L.CAUSE_OTHER), float(L.CAUSE_CANCER_BEFORE_PROGRESSION))

        # Tumour state.
        f_s = patients[:, L.STROMA_FRACTION]
        f_n = patients[:, L.RECEPTOR_NEGATIVE_FRACTION]
        self.s_vol = f_s * self.v0
        self.p_vol = (1.0 - f_n) * (1.0 - f_s) * self.v0
        self.n_vol = f_n * (1.0 - f_s) * self.v0
        self.d_vol = np.zeros(n)
        self.w0 = self.p_vol + self.n_vol
        self.hazard_nl = np.zeros(n)
        self.t_tumour = np.zeros(n)

        # Scans and response.
        self.active = np.ones(n, dtype=bool)
        self.j_scan = np.zeros(n, dtype=np.int64)
        self.progressed = np.zeros(n, dtype=bool)
        self.t_prog = np.full(n, np.nan)
        self.prog_type = np.zeros(n)
        self.nadir_vol = self.v0.copy()
        self.last_scan_volume = self.v0.copy()  # baseline counts as the latest scan until one is evaluated
        self.prev_level = np.full(n, float(L.RESPONSE_SD))  # baseline counts as SD for confirmation
        self.best = np.full(n, np.inf)
        self.n_evaluated = np.zeros(n, dtype=np.int64)
        self.last_eval_day = np.zeros(n)

        # Cycles and dose modification.
        self.k_given = np.zeros(n, dtype=np.int64)
        self.cycles_open = np.full(n, n_cycles > 0)
        self.t_due = np.zeros(n)  # first due day of the pending cycle
        self.t_cycle_event = np.where(self.cycles_open, 0.0, np.inf)  # due day or re-check
        self.withheld = np.zeros(n, dtype=bool)
        self.reduced = np.zeros(n, dtype=bool)
        self.n_reductions = np.zeros(n)
        self.discontinued = np.zeros(n, dtype=bool)
        self.t_last = np.full(n, np.nan)

        # Dosimetry as the regimen sees it (docs/model.md 5.1), organs in _ORGANS order (kidney, marrow, tumour).
        self.activity_next = np.full(n, self.guided_activity)  # guided activity of the pending cycle
        self.measured_activity = np.zeros(n)  # sum of the activities of the measured cycles
        self.measured_dose = np.zeros((3, n))  # sum of their measured doses
        self.known = np.zeros((3, n))  # Bk (kidney BED, or dose for a dose target), Mk, Tk
        self.reached = np.zeros(n, dtype=bool)

        # Marrow: platelet state y and neutrophil state y_neu, advanced together.
        self.treated = np.zeros(n, dtype=bool)
        self.y = np.tile(self.s0, (5, 1))
        self.y_neu = np.tile(self.anc0, (5, 1))
        self.t_marrow = np.zeros(n)
        self.dose_rate = np.zeros(n)
        self.committed = np.zeros(n)
        self.run_nadir = self.s0.copy()
        self.run_day = np.zeros(n)
        self.run_nadir_neu = self.anc0.copy()
        self.grade4_checked = np.zeros(n, dtype=bool)

        # MDS / AML.
        self.mds_decided = np.zeros(n, dtype=bool)
        self.mds = np.zeros(n, dtype=bool)
        self.mds_onset = np.full(n, np.nan)
        self.t_mds = np.full(n, np.inf)

    # ---------------------------------------------------------------------------------------------------
    def _lower_t_dp(self, idx: np.ndarray, t: np.ndarray, cause: int) -> None:
        lower = t < self.t_dp[idx]
        self.t_dp[idx[lower]] = t[lower]
        self.cause_dp[idx[lower]] = cause

    def _advance_tumour(self, idx: np.ndarray, t: np.ndarray) -> None:
        dt = t - self.t_tumour[idx]
        viable = self.p_vol[idx] + self.n_vol[idx]
        self.hazard_nl[idx] += _new_lesion_increment(self.h_nl[idx], viable, self.w0[idx],
                                                     self.model[L.NEW_LESION_EXPONENT], self.g[idx], dt)
        grow = np.exp(self.g[idx] * dt)
        self.p_vol[idx] *= grow
        self.n_vol[idx] *= grow
        self.d_vol[idx] *= np.exp(-self.model[L.DEAD_CLEARANCE_PER_DAY] * dt)
        self.t_tumour[idx] = t

    def _advance_marrow(self, idx: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance treated patients of ``idx`` whose marrow lies before ``target``: platelets and neutrophils over
        the same interval, with the same forcing and step rule (one batch of ``2 m`` rows); track the running
        nadirs of the current cycle and draw the fatal grade 4 the first time the platelet one is below 25.
        Returns the patients who die and their death days (the platelet nadir day)."""
        sel = self.treated[idx] & (target > self.t_marrow[idx])
        mi, t1 = idx[sel], target[sel]
        if mi.size == 0:
            return mi, np.empty(0)
        m = mi.size
        kin = np.repeat(self.kinetics, m, axis=0)  # rows 0..m-1 platelets, m..2m-1 neutrophils
        mp = MarrowParams(kin[:, 0], kin[:, 1], kin[:, 2], self.beta, self.max_step)
        shared = (np.tile(a, 2) for a in (self.t_marrow[mi], t1, self.dose_rate[mi], self.committed[mi],
                                          self.lam_m[mi]))
        y1, r1, nadir, day = marrow_advance_np(np.hstack((self.y[:, mi], self.y_neu[:, mi])), *shared,
                                               np.hstack((self.s0[mi], self.anc0[mi])),
                                               np.hstack((self.alpha_m[mi], self.alpha_n[mi])), mp)
        y1, y1_neu, r1, nadir_neu, nadir, day = y1[:, :m], y1[:, m:], r1[:m], nadir[m:], nadir[:m], day[:m]
        self.y[:, mi], self.y_neu[:, mi], self.dose_rate[mi], self.t_marrow[mi] = y1, y1_neu, r1, t1

        lower_neu = nadir_neu < self.run_nadir_neu[mi]
        ni = mi[lower_neu]
        self.run_nadir_neu[ni] = nadir_neu[lower_neu]
        self.per_cycle[L.C_NEUTROPHIL_NADIR, ni, self.k_given[ni] - 1] = nadir_neu[lower_neu]

        self.per_cycle[L.C_PLATELET_END, mi, self.k_given[mi] - 1] = y1[_CIRC]
        lower = nadir < self.run_nadir[mi]
        li = mi[lower]
        self.run_nadir[li], self.run_day[li] = nadir[lower], day[lower]
        k = self.k_given[li] - 1
        self.per_cycle[L.C_PLATELET_NADIR, li, k] = nadir[lower]
        self.nadir_day_abs[li, k] = day[lower]

        first = mi[(self.run_nadir[mi] < _GRADE4_BELOW) & ~self.grade4_checked[mi]]
        self.grade4_checked[first] = True
        dies = self.u_fatal[first, self.k_given[first] - 1] < self.model[L.FATAL_GRADE4_PROBABILITY]
        return first[dies], self.run_day[first[dies]]

    def _decide_mds(self, idx: np.ndarray) -> None:
        """MDS/AML for treated patients whose cycles just ended (docs/model.md 4.3)."""
        if idx.size == 0:
            return
        m = self.model
        dose = self.per_cycle[L.C_MARROW_DOSE_GY, idx].sum(axis=1)
        prob = -np.expm1(-m[L.MDS_RISK_PER_GY] * m[L.MDS_CHEMO_MULTIPLIER] ** self.chemo[idx] * dose)
        occurs = self.u_mds[idx] < prob
        onset = self.t_last[idx] + m[L.MDS_LATENCY_DAYS] * np.exp(m[L.MDS_LATENCY_SIGMA] * self.z_mds[idx])
        death = onset + _time_at_rate(self.e_mds[idx], m[L.MDS_DEATH_PER_DAY])
        self.mds_decided[idx] = True
        self.mds[idx] = occurs
        self.mds_onset[idx] = np.where(occurs, onset, np.nan)
        self.t_mds[idx] = np.where(occurs, death, np.inf)
        pre = idx[~self.progressed[idx]]
        self._lower_t_dp(pre, self.t_mds[pre], L.CAUSE_TREATMENT)

    def _end_cycles(self, idx: np.ndarray) -> None:
        """No further cycle (all given, discontinued, continue_after_cycle, progression, or after the loop): the
        marrow horizon becomes last administration + window, and MDS/AML is decided."""
        idx = idx[self.cycles_open[idx]]
        self.cycles_open[idx] = False
        self.t_cycle_event[idx] = np.inf
        self._decide_mds(idx[self.treated[idx] & ~self.mds_decided[idx]])

    def _discontinue(self, idx: np.ndarray) -> None:
        self.discontinued[idx] = True
        self._end_cycles(idx)

    def egfr(self, idx: np.ndarray, t: np.ndarray, onset: np.ndarray | None = None) -> np.ndarray:
        """``e(t) = e0 - a t_y - e0 c_i sum_k BED_k max(0, t - t_k - tau)_y`` over the cycles given so far, times
        ``1 - f`` from the nephropathy onset (docs/model.md 4.2); not floored."""
        m = self.model
        bed = self.per_cycle[L.C_KIDNEY_BED_GY, idx]  # zero for cycles not given
        t_k = np.nan_to_num(self.per_cycle[L.C_TIME_DAYS, idx], nan=np.inf)
        t = np.asarray(t, dtype=np.float64)
        exposure = (bed * np.maximum(0.0, t[:, None] - t_k - m[L.EGFR_SUBCLINICAL_LATENCY_DAYS])).sum(axis=1)
        e0 = self.e0[idx]
        e = (e0 - m[L.EGFR_AGE_DECLINE_PER_YEAR] * t / _DAYS_PER_YEAR
             - e0 * self.c_egfr[idx] * exposure / _DAYS_PER_YEAR)
        if onset is not None:
            e = np.where(t >= onset, e * (1.0 - m[L.NEPHROPATHY_EGFR_LOSS]), e)
        return e

    # ---------------------------------------------------------------------------------------------------
    def _scan(self, idx: np.ndarray, t: np.ndarray) -> None:
        self.j_scan[idx] += 1
        vol = self.s_vol[idx] + self.p_vol[idx] + self.n_vol[idx] + self.d_vol[idx]
        target = vol >= L.PD_VOLUME_RATIO * self.nadir_vol[idx]
        new_lesion = self.hazard_nl[idx] > self.e_nl[idx]
        prog = target | new_lesion

        pi = idx[prog]
        self.progressed[pi] = True
        self.t_prog[pi] = t[prog]
        self.prog_type[pi] = L.PROGRESSION_TARGET * target[prog] + L.PROGRESSION_NEW_LESION * new_lesion[prog]
        self.best[pi] = np.where(self.n_evaluated[pi] == 0, float(L.RESPONSE_PD), self.best[pi])
        self.active[pi] = False
        self._end_cycles(pi)

        ei, v = idx[~prog], vol[~prog]
        v0 = self.v0[ei]
        level = np.full(v.shape, float(L.RESPONSE_SD))
        level[v <= L.PR_VOLUME_RATIO * v0] = L.RESPONSE_PR
        level[v <= L.CR_VOLUME_RATIO * v0] = L.RESPONSE_CR
        counted = np.maximum(level, self.prev_level[ei]) if self.model[L.CONFIRM_RESPONSE] != 0.0 else level
        self.best[ei] = np.minimum(self.best[ei], counted)
        self.prev_level[ei] = level
        self.nadir_vol[ei] = np.minimum(self.nadir_vol[ei], v)
        self.last_scan_volume[ei] = v
        self.last_eval_day[ei] = t[~prog]
        self.n_evaluated[ei] += 1

    def _cycle_event(self, idx: np.ndarray, t: np.ndarray) -> None:
        """A due day or re-check: continue_after_cycle, then (cycles after the first) the guided rule's stop test
        and the dose-modification rules, then the administration."""
        if self.continue_after > 0:
            stop = (self.k_given[idx] >= self.continue_after) & ~(self.last_scan_volume[idx] < self.v0[idx])
            self._end_cycles(idx[stop])
            idx, t = idx[~stop], t[~stop]
        if self.rule != L.RULE_FIXED:
            later = self.k_given[idx] >= 1
            li = idx[later]
            stop, reached, activity = self._prescribe(li)
            self.activity_next[li] = activity
            si = li[stop]
            self.reached[si] |= reached[stop]
            self._end_cycles(si)  # a guided stop ends treatment, not for toxicity
            keep = np.ones(idx.size, dtype=bool)
            keep[np.flatnonzero(later)[stop]] = False
            idx, t = idx[keep], t[keep]
        give = np.ones(idx.size, dtype=bool)
        later = np.flatnonzero(self.k_given[idx] >= 1)
        if later.size:
            li, tl = idx[later], t[later]
            e = self.egfr(li, tl)
            hold = ((ctcae_grade(self.y[_CIRC, li], L.PLATELET_GRADE_BELOW) >= self.withhold_grade)
                    | (ctcae_grade(self.y_neu[_CIRC, li], L.NEUTROPHIL_GRADE_BELOW) >= self.withhold_neutrophil_grade))
            if self.withhold_egfr_below > 0.0:
                hold |= e < self.withhold_egfr_below
            if self.withhold_egfr_drop < 1.0:
                hold |= e < (1.0 - self.withhold_egfr_drop) * self.e0[li]
            hi, th = li[hold], tl[hold]
            too_late = (th + self.recheck) - self.t_due[hi] > self.max_delay
            self._discontinue(hi[too_late])
            wi = hi[~too_late]
            self.t_cycle_event[wi] = th[~too_late] + self.recheck
            self.withheld[wi] = True

            gi = li[~hold]
            worst = ctcae_grade(self.run_nadir[gi], L.PLATELET_GRADE_BELOW)
            worst_neu = ctcae_grade(self.run_nadir_neu[gi], L.NEUTROPHIL_GRADE_BELOW)
            reduce = ((worst >= self.reduce_grade) | (worst_neu >= self.reduce_neutrophil_grade)
                      | (self.withheld[gi] & self.reduce_if_withheld))
            exhausted = reduce & (self.n_reductions[gi] >= self.max_reductions)
            self._discontinue(gi[exhausted])
            ri = gi[reduce & ~exhausted]
            self.reduced[ri] = True
            self.n_reductions[ri] += 1
            if self.restore:
                self.reduced[gi[~reduce]] = False
            give[later[hold]] = False
            give[later[np.flatnonzero(~hold)[exhausted]]] = False
        self._give(idx[give], t[give])

    def _give(self, idx: np.ndarray, t: np.ndarray) -> None:
        if idx.size == 0:
            return
        pc, m, k = self.per_cycle, self.model, self.k_given[idx]
        nominal = self.activities[k] if self.rule == L.RULE_FIXED else self.activity_next[idx]
        activity = nominal * np.where(self.reduced[idx], 1.0 - self.reduction, 1.0)
        measured = k < self.n_measured
        pc[L.C_TIME_DAYS, idx, k] = t
        pc[L.C_ACTIVITY_GBQ, idx, k] = activity
        pc[L.C_DELAY_DAYS, idx, k] = t - self.t_due[idx]
        pc[L.C_REDUCED, idx, k] = self.reduced[idx]
        rows = np.arange(idx.size)
        for o in _ORGANS:
            # D = A * Gy/GBq [* (1 - decline)^k for the tumour] * exp(sigma z_{8k+slot}); measured x exp(sigma' z)
            trend = (1.0 - m[L.TUMOUR_DOSE_DECLINE]) ** k if o.declines else 1.0
            z = self.z_cyc[idx[:, None], CYCLE_SLOTS * k[:, None] + np.array([o.slot, o.slot_meas])]
            dose = activity * self.patients[idx, o.gy_per_gbq] * trend * np.exp(m[o.intra_sigma] * z[rows, 0])
            pc[o.c_dose, idx, k] = dose
            pc[o.c_measured, idx, k] = np.where(measured, dose * np.exp(m[o.meas_sigma] * z[rows, 1]), np.nan)
            pc[o.c_bed, idx, k] = bed_gy(dose, self.patients[idx, o.teff_h], m[o.repair_h], m[o.alpha_beta])
        pc[L.C_MEASURED, idx, k] = measured
        if self.rule != L.RULE_FIXED:
            self._record_known(idx, k, activity, measured)

        killed = self.p_vol[idx] * -np.expm1(-self.patients[idx, L.TUMOUR_ALPHA_PER_GY] * pc[L.C_TUMOUR_BED_GY, idx, k])
        self.p_vol[idx] -= killed
        self.d_vol[idx] += killed

        # Marrow: an untreated patient sits at the steady state S0 up to now; the forcing gets the true dose.
        first = idx[~self.treated[idx]]
        self.t_marrow[first] = t[~self.treated[idx]]
        self.treated[idx] = True
        dose_m = pc[L.C_MARROW_DOSE_GY, idx, k]
        self.dose_rate[idx] += dose_m * self.lam_m[idx]
        self.committed[idx] += dose_m
        self.run_nadir[idx] = self.y[_CIRC, idx]
        self.run_day[idx] = t
        self.grade4_checked[idx] = False
        pc[L.C_PLATELET_NADIR, idx, k] = self.run_nadir[idx]
        pc[L.C_PLATELET_END, idx, k] = self.y[_CIRC, idx]
        self.nadir_day_abs[idx, k] = t
        self.run_nadir_neu[idx] = self.y_neu[_CIRC, idx]
        pc[L.C_NEUTROPHIL_NADIR, idx, k] = self.run_nadir_neu[idx]

        self.k_given[idx] += 1
        self.t_last[idx] = t
        self.t_due[idx] = t + self.interval
        self.t_cycle_event[idx] = t + self.interval
        self.withheld[idx] = False
        self._end_cycles(idx[self.k_given[idx] >= self.n_cycles])

    # ---------------------------------------------------------------------------------------------------
    def _dose_for_bed(self, idx: np.ndarray, bed: np.ndarray) -> np.ndarray:
        """``D_inv(b) = (-1 + sqrt(1 + 4 G b / ab)) / (2 G / ab)``: the one-cycle kidney dose of BED ``b``
        (``b`` when ``G = 0``), ``G = T_rep / (T_rep + T_eff)``."""
        c = self.g_kidney[idx] / self.model[L.KIDNEY_ALPHA_BETA_GY]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(c == 0.0, bed, (-1.0 + np.sqrt(1.0 + 4.0 * c * bed)) / (2.0 * c))

    def _kidney_bed(self, idx: np.ndarray, dose: np.ndarray) -> np.ndarray:
        return bed_gy(dose, self.patients[idx, L.KIDNEY_TEFF_H], self.model[L.KIDNEY_REPAIR_H],
                      self.model[L.KIDNEY_ALPHA_BETA_GY])

    def _record_known(self, idx: np.ndarray, k: np.ndarray, activity: np.ndarray, measured: np.ndarray) -> None:
        """The known doses of the cycle just given (docs/model.md 5.1): measured, else ``A_k g`` with ``g`` the
        measured Gy/GBq of the cycles measured before it; then add the measured ones to the sums."""
        if not (measured | (self.measured_activity[idx] > 0.0)).all():
            raise AssertionError("a dose is predicted before any cycle was measured")
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, o in enumerate(_ORGANS):
                value = self.per_cycle[o.c_measured, idx, k]
                known = np.where(measured, value, activity * self.measured_dose[j, idx] / self.measured_activity[idx])
                if j == 0 and not self.kidney_known_is_dose:
                    known = self._kidney_bed(idx, known)
                self.known[j, idx] += known
                self.measured_dose[j, idx] += np.where(measured, value, 0.0)
        self.measured_activity[idx] += np.where(measured, activity, 0.0)

    def _prescribe(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The guided rule at a due day or re-check of cycle ``k >= 1`` (docs/model.md 5.2): ``(stop, reached,
        activity)`` per patient, the activity before any reduction."""
        bk, mk, tk = self.known[:, idx]
        lk, lm, target, a = self.kidney_limit[idx], self.marrow_limit, self.target, self.guided_activity
        activity = np.full(idx.size, a)
        with np.errstate(divide="ignore", invalid="ignore"):
            gk = self.measured_dose[0, idx] / self.measured_activity[idx]
            gm = self.measured_dose[1, idx] / self.measured_activity[idx]
            if self.rule == L.RULE_KIDNEY_LIMIT:
                reached = bk >= lk * (1.0 - _EPS)
                stop = reached | (mk >= lm * (1.0 - _EPS))
                if self.reduce_last:
                    a_kidney = self._dose_for_bed(idx, lk - bk) / gk
                    a_marrow = (lm - mk) / gm
                    activity = np.minimum(np.minimum(activity, a_kidney), a_marrow)
                    low = ~stop & (activity < self.min_activity)
                    reached |= low & (a_kidney <= a) & (a_kidney <= a_marrow)
                    stop |= low
            elif self.rule == L.RULE_KIDNEY_TARGET:
                reached = bk >= target * (1.0 - _EPS)
                left = self.n_cycles - self.k_given[idx]
                q = (target - bk) / left
                need = q if self.kidney_known_is_dose else self._dose_for_bed(idx, q)
                cap = (lm - mk) / (gm * left)
                stop = reached | (cap < self.min_activity)
                activity = np.minimum(np.maximum(np.minimum(need / gk, cap), self.min_activity), self.max_activity)
            else:  # RULE_TUMOUR_TARGET
                reached = tk >= target * (1.0 - _EPS)
                over = (bk + self._kidney_bed(idx, a * gk) > lk) | (mk + a * gm > lm)
                stop = reached | over
        return stop, reached & stop, activity

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        n_scans = self.scans.size
        while True:
            ai = np.flatnonzero(self.active)
            if ai.size == 0:
                break
            j = self.j_scan[ai]
            t_scan = self.scans[np.minimum(j, n_scans - 1)] if n_scans else np.full(ai.size, np.inf)
            t_scan = np.where(j < n_scans, t_scan, np.inf)
            t_cyc = self.t_cycle_event[ai]
            is_scan = t_scan <= t_cyc  # the scan first on a tie
            t = np.minimum(t_scan, t_cyc)
            go = np.isfinite(t) & (t < self.t_dp[ai]) & np.where(is_scan, t <= self.censor[ai], t < self.censor[ai])
            self.active[ai[~go]] = False
            ai, t, is_scan = ai[go], t[go], is_scan[go]
            if ai.size == 0:
                break

            self._advance_tumour(ai, t)
            horizon = np.where(self.cycles_open[ai], np.inf, self.t_last[ai] + self.window)
            dead, t_f = self._advance_marrow(ai, np.minimum(t, horizon))
            if dead.size:
                self._lower_t_dp(dead, t_f, L.CAUSE_TREATMENT)
                t_dead = t[np.searchsorted(ai, dead)]
                self.active[dead[~(t_dead < t_f)]] = False
                keep = self.active[ai]
                ai, t, is_scan = ai[keep], t[keep], is_scan[keep]

            self._scan(ai[is_scan], t[is_scan])
            self._cycle_event(ai[~is_scan], t[~is_scan])
        return self._finish()

    def _finish(self) -> tuple[np.ndarray, np.ndarray]:
        m, pc, pp = self.model, self.per_cycle, self.per_patient
        everyone = np.arange(self.n)
        self._end_cycles(everyone)
        self._decide_mds(everyone[self.treated & ~self.mds_decided])
        prog, treated, censor = self.progressed, self.treated, self.censor

        # Death day: after progression min(background, post-progression cancer, MDS/AML), else T_dp.
        with np.errstate(invalid="ignore"):
            t_post = self.t_prog + _time_at_rate(self.e_pp, self.patients[:, L.POST_PROGRESSION_DEATH_PER_DAY])
        first_after = np.minimum(self.t_bg, t_post)
        death = np.where(prog, np.minimum(first_after, self.t_mds), self.t_dp)
        cause = np.where(prog, np.where(self.t_mds < first_after, float(L.CAUSE_TREATMENT),
                                        np.where(self.t_bg < t_post, float(L.CAUSE_OTHER),
                                                 float(L.CAUSE_CANCER_AFTER_PROGRESSION))),
                         self.cause_dp)

        # Marrow to min(last administration + window, death, censoring); a fatal grade 4 there comes first.
        ti = everyone[treated]
        target = np.minimum(np.minimum(self.t_last[ti] + self.window, death[ti]), censor[ti])
        dead, t_f = self._advance_marrow(ti, target)
        earlier = t_f < death[dead]
        death[dead[earlier]] = t_f[earlier]
        cause[dead[earlier]] = L.CAUSE_TREATMENT

        died_first = ~prog & (death <= censor)
        os_event = death <= censor
        os_days = np.where(os_event, death, censor)
        pp[L.P_CYCLES] = self.k_given
        pp[L.P_PFS_DAYS] = np.where(prog, self.t_prog, np.where(died_first, death, self.last_eval_day))
        pp[L.P_PFS_EVENT] = prog | died_first
        pp[L.P_OS_DAYS] = os_days
        pp[L.P_OS_EVENT] = os_event
        pp[L.P_DEATH_CAUSE] = np.where(os_event, cause, float(L.CAUSE_ALIVE))
        pp[L.P_BEST_RESPONSE] = np.where(np.isinf(self.best), float(L.RESPONSE_NE), self.best)
        pp[L.P_PROGRESSION_TYPE] = self.prog_type
        pp[L.P_NADIR_RATIO] = self.nadir_vol / self.v0
        pp[L.P_DISCONTINUED_TOXICITY] = self.discontinued

        # Guided rules: reached by a stop test, or by the known cumulative quantity after the last cycle.
        if self.rule != L.RULE_FIXED:
            quantity, goal = {L.RULE_KIDNEY_LIMIT: (self.known[0], self.kidney_limit),
                              L.RULE_KIDNEY_TARGET: (self.known[0], self.target),
                              L.RULE_TUMOUR_TARGET: (self.known[2], self.target)}[self.rule]
            self.reached |= quantity >= goal * (1.0 - _EPS)
        pp[L.P_REACHED_TARGET] = self.reached

        # Platelets and neutrophils per cycle, and worst grades.
        given = ~np.isnan(pc[L.C_TIME_DAYS])
        pc[L.C_PLATELET_GRADE] = np.where(given, ctcae_grade(pc[L.C_PLATELET_NADIR], L.PLATELET_GRADE_BELOW), 0.0)
        pc[L.C_PLATELET_NADIR_DAY] = self.nadir_day_abs - pc[L.C_TIME_DAYS]
        pp[L.P_PLATELET_WORST_GRADE] = np.where(treated, pc[L.C_PLATELET_GRADE].max(axis=1),
                                                ctcae_grade(self.s0, L.PLATELET_GRADE_BELOW))
        pc[L.C_NEUTROPHIL_GRADE] = np.where(given, ctcae_grade(pc[L.C_NEUTROPHIL_NADIR], L.NEUTROPHIL_GRADE_BELOW),
                                            0.0)
        pp[L.P_NEUTROPHIL_WORST_GRADE] = np.where(treated, pc[L.C_NEUTROPHIL_GRADE].max(axis=1),
                                                  ctcae_grade(self.anc0, L.NEUTROPHIL_GRADE_BELOW))

        # MDS/AML recorded when its onset comes before the death day and not after censoring.
        recorded = self.mds & (self.mds_onset < death) & (self.mds_onset <= censor)
        pp[L.P_MDS_AML] = recorded
        pp[L.P_MDS_AML_DAY] = np.where(recorded, self.mds_onset, np.nan)

        # Kidney (docs/model.md 4.2): LKB nephropathy on the cumulative BED, eGFR at the end of follow-up.
        bed_total = pc[L.C_KIDNEY_BED_GY].sum(axis=1)
        bed50 = m[L.KIDNEY_BED50_GY] - m[L.KIDNEY_RISK_FACTOR_SHIFT_GY] * self.risk
        with np.errstate(divide="ignore", invalid="ignore"):
            ntcp = ndtr((bed_total - bed50) / (m[L.KIDNEY_LKB_M] * bed50))
        nephropathy = treated & (self.u_neph < ntcp)
        latency = m[L.NEPHROPATHY_LATENCY_DAYS] * np.exp(m[L.NEPHROPATHY_LATENCY_SIGMA] * self.z_neph)
        onset = np.where(nephropathy, self.t_last + latency, np.inf)
        t_end = os_days
        e_end = self.egfr(everyone, t_end, onset)
        pp[L.P_EGFR_END] = np.maximum(0.0, e_end)
        pp[L.P_CKD_GRADE] = ctcae_grade(pp[L.P_EGFR_END], L.CKD_GRADE_BELOW)
        at_entry = self.egfr(everyone, np.zeros(self.n), onset) < _EGFR_GRADE3_BELOW
        by_end = e_end < _EGFR_GRADE3_BELOW
        day = np.where(at_entry, 0.0, t_end)
        bi = everyone[by_end & ~at_entry]
        lo, hi = np.zeros(bi.size), t_end[bi].copy()
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.egfr(bi, mid, onset[bi]) < _EGFR_GRADE3_BELOW
            hi = np.where(below, mid, hi)
            lo = np.where(below, lo, mid)
        day[bi] = hi
        pp[L.P_RENAL_G3_DAYS] = day
        pp[L.P_RENAL_G3_EVENT] = at_entry | by_end
        return pc, pp


def simulate_arm_reference(patients: np.ndarray, patient_ids: np.ndarray, seed: int, model: np.ndarray,
                           regimen: np.ndarray, activities: np.ndarray, scan_days: np.ndarray,
                           max_cycles: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one arm; returns ``per_cycle[N_CYCLE_VARS, n, K]`` and ``per_patient[N_PATIENT_VARS, n]``.

    Model and column meanings: ``docs/model.md`` sections 3 and 4 and ``sim/kernels/layout.py``. ``regimen`` is
    the ``R_*`` vector (``R_N_CYCLES = 0``: control arm); cycle ``k`` has nominal activity ``activities[k]`` under
    ``RULE_FIXED``, else ``R_GUIDED_ACTIVITY`` for cycle 0 and the guided rule's activity (section 5.2) after it,
    given x ``(1 - R_REDUCTION_FRACTION)`` while reduced. Cycles ``k < R_MEASURED_CYCLES`` are measured; the
    measured doses of the others are NaN. Cycles not given have day, platelet nadir, nadir day and end count,
    neutrophil nadir and measured doses NaN, and zeros elsewhere; codes and flags are stored as floats.
    """
    arm = _Arm(patients, patient_ids, seed, model, regimen, activities, scan_days, max_cycles)
    if arm.n == 0:
        return arm.per_cycle, arm.per_patient
    return arm.run()
