"""Independent, vectorised pure-NumPy implementation of the per-patient kernel (``docs/model.md`` 3, 4 and 5).

Used as the test oracle of ``sim/kernels/patient.py`` and as the benchmark baseline. It is written from the
specification and the declared interface, not from the kernel's code, and calls no kernel function; it imports
only constants (stream ids, CTCAE thresholds, RECIST ratios, the marrow integrator's ``MARROW_*`` constants,
output codes, the guided rules' ``RULE_*`` and ``EPS``).

It follows the declaration: ``simulate_arm_oracle`` takes ``run_arm``'s arguments, the named tuples of
``sim.kernel_inputs`` (``Patients``, ``Organs``, ``Lesions``, ``Blood``, ``Kidney``, ``Events``, ``Regimen``)
read by field name, and returns the ``sim.kernel_outputs.Outputs`` that ``kernel_outputs.allocate`` makes, every
output with its declared dims, dtype and fill value (the value of a cycle not given). The organ, lesion and
blood-line axes are looped over generically: the kidney, the marrow and the line of a fatal grade 4 are known
only as ``kidney.organ``, ``blood.organ`` and ``blood.fatal_line``, and the guided rules' tumour is lesion 0.

Random streams are keyed by purpose (``sim.rng``) and re-implemented in vectorised ``uint64`` NumPy (SplitMix64,
Steele et al. 2014), with ``scipy.special.ndtri`` as the normal quantile: organ streams
``organs.intra_stream[o]`` / ``organs.measurement_stream[o]`` and lesion streams (``stream_id + j`` for lesion
``j``) at counter = cycle, event streams at counter 0, the fatal grade 4 of cycle ``k`` at counter ``k``. The
marrow model's adaptive RK4 and nadir rule (``sim/kernels/marrow.py``) are re-implemented on arrays of rows, one
row per (patient, blood line), every line with its own kinetics and all of a patient's lines stepped over the
same intervals. Since dose modification makes every patient's timeline its own, the Python loop runs over event
rounds: in each round every still-active patient takes its own next event (scan, due day or re-check), with
per-patient state arrays and index masks; the marrow integration inside a round loops over trial steps of the
adaptive RK4, each pass stepping the rows not yet at the end of their interval. Dosimetry-guided regimens
(section 5) keep, per patient and organ (lesion), the sums of the measured doses and the known doses and BEDs,
and prescribe each cycle from them.

Rounding. The marrow's step-size control can turn a difference in the last bit of a state into a different accepted
step, which moves a count by up to ~1e-10 of itself (the neutrophil line, whose steps sit near RK4's stability
limit, most of all). NumPy's SIMD ``exp`` and ``log`` round differently from the C library's in a few per cent of
cases, so the exponentials and logarithms that feed the marrow (doses, kill, dose-rate decay, the model's right-hand
side) are taken from the C library (``math.exp``, ``math.log``, elementwise) while ``LIBM_ROUNDING`` is true (the
default; ~2.5x slower, agreement with the kernel ~1e-13 instead of ~1e-11).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri

from sim import kernel_outputs
from sim.kernels import events as ev_codes
from sim.kernels import policy
from sim.kernels import tumour as recist
from sim.kernels.kidney import CKD_GRADE_BELOW, LANDMARK_DAYS, NEPHROPATHY_LATENCY_STREAM, NEPHROPATHY_STREAM
from sim.kernels.marrow import (
    FATAL_GRADE4_STREAM,
    GRADE4,
    MARROW_MAX_KILL_PER_STEP,
    MARROW_MAX_STEP_FACTOR,
    MARROW_MIN_STEP_DAYS,
    MARROW_MIN_STEP_FACTOR,
    MARROW_RTOL,
    OTHER_CAUSE_GRADE,
)
from sim.rng import GOLDEN, M1, M2, STREAM_MULT
from sim.units import DAYS_PER_YEAR, HOURS_PER_DAY

_U64 = np.uint64
_ONE = _U64(1)
_SH30, _SH27, _SH31, _SH11 = _U64(30), _U64(27), _U64(31), _U64(11)
_INV53 = 2.0**-53
_LN2 = math.log(2.0)
_CIRC = 4  # marrow state rows: Prol, T1, T2, T3, Circ
_EGFR_GRADE3_BELOW = CKD_GRADE_BELOW[2]


# --------------------------------------------------------------------------------------------------------
# exp and log of the C library, elementwise (see "Rounding" above).
# --------------------------------------------------------------------------------------------------------
LIBM_ROUNDING = True
_EXP_LIBM = np.frompyfunc(math.exp, 1, 1)
_LOG_LIBM = np.frompyfunc(math.log, 1, 1)


def _exp(x):  # noqa: ANN001, ANN202
    """``exp`` rounded as the C library rounds it (``math.exp``), NumPy's outside its domain."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        out = np.array(np.exp(x))
    if LIBM_ROUNDING:
        ok = np.abs(x) < 700.0
        out[ok] = _EXP_LIBM(x[ok])
    return out


def _log(x):  # noqa: ANN001, ANN202
    """``log`` rounded as the C library rounds it (``math.log``), NumPy's outside its domain."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.array(np.log(x))
    if LIBM_ROUNDING:
        ok = (x > 0.0) & (x < np.inf)
        out[ok] = _LOG_LIBM(x[ok])
    return out


# --------------------------------------------------------------------------------------------------------
# Random streams (sim/rng.py), vectorised over patients and counters.
# --------------------------------------------------------------------------------------------------------
def mix64_np(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014) on a ``uint64`` array, arithmetic mod 2^64."""
    z = np.asarray(z, dtype=_U64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _SH30)) * M1
        z = (z ^ (z >> _SH27)) * M2
        return z ^ (z >> _SH31)


def stream_item(stream_id: int | np.uint64, index: int) -> np.uint64:
    """Item ``index`` of an indexed stream (one per lesion): ``stream_id + index`` mod 2^64."""
    return _U64((int(stream_id) + int(index)) % 2**64)


def stream_keys_np(seed: int, patient_ids: np.ndarray, stream_id: int | np.uint64) -> np.ndarray:
    """Key of the stream ``stream_id`` of each patient id ``p``:
    ``mix64(mix64(seed ^ mix64(p PHI + PHI)) + (stream_id + 1) STREAM_MULT)``."""
    p = np.asarray(patient_ids, dtype=np.int64).astype(_U64)  # two's-complement wrap, as the kernel's cast
    with np.errstate(over="ignore"):
        patient_key = mix64_np(_U64(int(seed) % 2**64) ^ mix64_np(p * GOLDEN + GOLDEN))
        return mix64_np(patient_key + (_U64(stream_id) + _ONE) * STREAM_MULT)


def uniforms_np(seed: int, patient_ids: np.ndarray, stream_id: int | np.uint64, first_ctr: int,
                count: int) -> np.ndarray:
    """Uniforms ``[patient, j]`` in (0, 1) of the stream ``stream_id`` at counter ``c = first_ctr + j``:
    ``((mix64(key + (c+1) PHI) >> 11) + 0.5) 2^-53``."""
    keys = stream_keys_np(seed, patient_ids, stream_id)[:, None]
    ctr = np.arange(first_ctr, first_ctr + count, dtype=_U64)[None, :]
    with np.errstate(over="ignore"):
        z = mix64_np(keys + (ctr + _ONE) * GOLDEN)
    return ((z >> _SH11).astype(np.float64) + 0.5) * _INV53


def normals_np(seed: int, patient_ids: np.ndarray, stream_id: int | np.uint64, first_ctr: int,
               count: int) -> np.ndarray:
    """Standard normals ``Phi^-1(uniform)``, one uniform per normal."""
    return ndtri(uniforms_np(seed, patient_ids, stream_id, first_ctr, count))


def exponentials_np(seed: int, patient_ids: np.ndarray, stream_id: int | np.uint64, first_ctr: int,
                    count: int) -> np.ndarray:
    """Standard exponentials ``-log(uniform)``."""
    return -np.log(uniforms_np(seed, patient_ids, stream_id, first_ctr, count))


# --------------------------------------------------------------------------------------------------------
# Closed-form pieces (sections 3, 4.2, 4.3, 5.1).
# --------------------------------------------------------------------------------------------------------
def _time_at_rate(e: np.ndarray, rate) -> np.ndarray:  # noqa: ANN001
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
    b = float(slope_per_year)
    h_now = h65_per_year * np.exp(b * (np.asarray(age_years, dtype=np.float64) - 65.0))
    if b == 0.0:
        return DAYS_PER_YEAR * e0 / h_now
    x = e0 * b / h_now
    with np.errstate(divide="ignore", invalid="ignore"):
        t = DAYS_PER_YEAR * np.log1p(x) / b
    return np.where(x > -1.0, t, np.inf)


def g_factor_np(teff_h, repair_h):  # noqa: ANN001, ANN201
    """Lea-Catcheside factor of a mono-exponential dose rate delivered to completion, ``lambda / (lambda + mu)``
    with ``lambda = ln2/T_eff``, ``mu = ln2/T_rep``, i.e. ``T_rep / (T_rep + T_eff)`` (Dale 1985)."""
    return repair_h / (repair_h + teff_h)


def bed_gy(dose_gy, teff_h, repair_h, alpha_beta_gy):  # noqa: ANN001, ANN201
    """BED of one administration, ``D (1 + G D / (alpha/beta))`` (Dale 1985)."""
    return dose_gy * (1.0 + g_factor_np(teff_h, repair_h) * dose_gy / alpha_beta_gy)


def dose_for_bed(bed, g, alpha_beta_gy):  # noqa: ANN001, ANN201
    """``D_inv(b) = (-1 + sqrt(1 + 4 G b / ab)) / (2 G / ab)``: the one-cycle dose of BED ``b`` (``b`` if G = 0)."""
    c = g / alpha_beta_gy
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g == 0.0, bed, (-1.0 + np.sqrt(1.0 + 4.0 * c * bed)) / (2.0 * c))


def _new_lesion_increment(h_nl, viable_ratio, kappa: float, g, dt):  # noqa: ANN001, ANN202
    """Growth of the new-lesion cumulative hazard over ``dt``, with ``(P+N)`` taken at the start.

    ``h_nl ((P+N)/W0)^kappa expm1(kappa g dt) / (kappa g)``; ``h_nl dt`` when ``kappa g = 0``; 0 for a zero rate
    or interval.
    """
    kg = kappa * g
    nz = kg != 0.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rate = h_nl * np.exp(kappa * np.log(viable_ratio))
        inc = np.where(nz, rate * np.expm1(kg * dt) / np.where(nz, kg, 1.0), h_nl * dt)
    return np.where((h_nl > 0.0) & (dt > 0.0), inc, 0.0)


def grades(values: np.ndarray, thresholds_below: np.ndarray) -> np.ndarray:
    """CTCAE grade: the number of the (decreasing) thresholds that the value is below; NaN gives 0.
    ``values[..., b]`` is graded against ``thresholds_below[b]`` when the thresholds are per blood line."""
    v = np.asarray(values, dtype=np.float64)
    return (v[..., None] < np.asarray(thresholds_below, dtype=np.float64)).sum(axis=-1)


# --------------------------------------------------------------------------------------------------------
# The marrow model (docs/model.md 4.1, 4.7, sim/kernels/marrow.py), vectorised over rows.
# --------------------------------------------------------------------------------------------------------
class MarrowParams(NamedTuple):
    """Blood-line constants per row (per day): ``k_tr = 4 / MTT``, ``k_circ = 1 / lifespan``, feedback ``gamma``,
    the reserve loss per Gy ``beta`` (scalars or per-row arrays, one row per (patient, blood line)); the first trial
    step is shared by every line."""

    k_tr: float | np.ndarray
    k_circ: float | np.ndarray
    gamma: float | np.ndarray
    beta: float | np.ndarray  # permanent set-point loss per Gy delivered
    max_step: float  # first trial step of each interval (config max_step_days)


def _marrow_rhs(y: np.ndarray, kill: np.ndarray, log_setpoint: np.ndarray, k_tr: np.ndarray, k_circ: np.ndarray,
                gamma: np.ndarray) -> np.ndarray:
    """``d/dt (Prol, T1, T2, T3, Circ)`` for ``y[5, m]``; ``kill = alpha_i Rdot``, ``(S/Circ)^gamma`` via logs."""
    p, x1, x2, x3, c = y
    d = np.empty_like(y)
    d[0] = k_tr * p * (_exp(gamma * (log_setpoint - _log(c))) - 1.0) - kill * p
    d[1] = k_tr * (p - x1)
    d[2] = k_tr * (x1 - x2)
    d[3] = k_tr * (x2 - x3)
    d[4] = k_circ * (x3 - c)
    return d


def _step_factors(err: np.ndarray) -> np.ndarray:
    """Next trial step over this one: ``0.9 err^(-1/4)`` within ``[MIN, MAX]``; ``MAX`` for a zero error, ``MIN``
    for a NaN one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(err == 0.0, MARROW_MAX_STEP_FACTOR, 0.9 / np.sqrt(np.sqrt(err)))
    factor = np.where(factor > MARROW_MAX_STEP_FACTOR, MARROW_MAX_STEP_FACTOR, factor)
    return np.where(factor > MARROW_MIN_STEP_FACTOR, factor, MARROW_MIN_STEP_FACTOR)  # NaN: the least


def marrow_advance_np(y: np.ndarray, t0: np.ndarray, t1: np.ndarray, dose_rate: np.ndarray, committed: np.ndarray,
                      lam: np.ndarray, baseline: np.ndarray, alpha: np.ndarray,
                      mp: MarrowParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Advance the marrow states ``y[5, m]`` of ``m`` rows (a blood line of a patient) from ``t0`` to ``t1 > t0``.

    Classical RK4 with step-size control (``sim/kernels/marrow.py`` ``MARROW_*``), every row with its own steps:
    the stages are evaluated at ``t``, ``t + h/2`` (twice) and ``t + h``, plus a fifth evaluation at the new state
    (the next step's first stage); with ``err = h max|k4 - k5| / 6 / (MARROW_RTOL min(y_new))`` (over the
    compartments) the step is accepted when ``err <= 1`` or ``h <= MARROW_MIN_STEP_DAYS``, and the next trial step
    is ``h`` times ``0.9 / sqrt(sqrt(err))`` clipped to ``[MARROW_MIN_STEP_FACTOR, MARROW_MAX_STEP_FACTOR]``.
    The first trial step is ``mp.max_step``; a trial step is cut to ``MARROW_MAX_KILL_PER_STEP / (alpha r)`` when
    longer, and to ``t1 - t`` when it reaches ``t1``. Between administrations the forcing is
    ``Rdot(t) = r exp(-lam (t - t_a))`` and ``ln S(t) = ln S0 - beta (Dsum - Rdot(t) / lam)``, evaluated at the
    stage times; ``baseline`` is ``S0`` and ``alpha`` the radiosensitivity of each row. Each loop pass takes one
    trial step of every row not yet at ``t1``.

    Returns ``(y1, r1, nadir, nadir_day)``: the state and the stepped dose rate at ``t1`` and the interval's nadir
    of Circ: the minimum (strict improvements only, starting from Circ at ``t0``) over the accepted step ends and,
    for each accepted step where Circ falls at its start and rises at its end, the minimum of the cubic Hermite
    interpolant through the two ends' values and derivatives.
    """
    m = t0.shape[0]
    y = np.array(y, dtype=np.float64)
    r = np.array(dose_rate, dtype=np.float64)
    log_fixed = _log(baseline) - mp.beta * committed
    with np.errstate(divide="ignore"):
        beta_over_lam = np.where(lam > 0.0, mp.beta / lam, 0.0)
    kin = tuple(np.broadcast_to(np.asarray(v, dtype=np.float64), (m,)).copy() for v in (mp.k_tr, mp.k_circ, mp.gamma))
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
        with np.errstate(divide="ignore", over="ignore"):  # an unused branch where the dose rate is ~0
            hq = np.where(aq * rq * hq > MARROW_MAX_KILL_PER_STEP, MARROW_MAX_KILL_PER_STEP / (aq * rq), hq)
        last = tq + hq >= end
        hq = np.where(last, end - tq, hq)
        hh = 0.5 * hq
        half = _exp(-lam[rows] * hh)
        r_mid = rq * half
        r_end = r_mid * half
        k2 = _marrow_rhs(yq + hh * fq, aq * r_mid, lf + bl * r_mid, *kq)
        k3 = _marrow_rhs(yq + hh * k2, aq * r_mid, lf + bl * r_mid, *kq)
        k4 = _marrow_rhs(yq + hq * k3, aq * r_end, lf + bl * r_end, *kq)
        s6 = hq / 6.0
        y_new = yq + s6 * (fq + 2.0 * (k2 + k3) + k4)
        k5 = _marrow_rhs(y_new, aq * r_end, lf + bl * r_end, *kq)
        tolerance = MARROW_RTOL * np.min(y_new, axis=0)  # not positive: no relative error, the step is refused
        err = np.max(np.abs(k4 - k5), axis=0) * s6 / np.where(tolerance > 0.0, tolerance, np.nan)
        err[~(tolerance > 0.0)] = np.inf
        ok = (err <= 1.0) | (hq <= MARROW_MIN_STEP_DAYS)

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
        h[rows] = hq * _step_factors(err)
        rows = rows[~(ok & last)]
    return y, r, nadir, day


def _hermite_minimum_np(c0, d0, c1, d1, h):  # noqa: ANN001, ANN202
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
# The per-patient model (docs/model.md 3, 4 and 5), vectorised over patients.
# --------------------------------------------------------------------------------------------------------
class _Arm:
    """State of every patient of one arm; methods take index arrays of the patients concerned. Per-organ,
    per-lesion and per-blood-line state are columns (the marrow state ``y`` is ``[5, patient, blood_line]``)."""

    def __init__(self, seed, patients, organs, lesions, blood, kidney, events, regimen, scans, sizes):  # noqa: ANN001
        self.P, self.organs, self.lesions, self.blood = patients, organs, lesions, blood
        self.kidney, self.events, self.regimen = kidney, events, regimen
        self.scans = np.asarray(scans, dtype=np.float64)
        self.n = patients.age_years.shape[0]
        self.n_organs = organs.alpha_beta_gy.shape[0]
        self.n_lesions = patients.lesion_volume_ml.shape[1]
        self.n_lines = patients.blood_baseline.shape[1]
        self.k_max = int(sizes["cycle"])
        self.n_cycles = int(regimen.n_cycles)
        self.n_retreat = int(regimen.retreat_cycles)
        self.rule = int(regimen.rule)
        self._check(sizes)
        self.out = kernel_outputs.allocate(sizes)
        self.seed = seed
        self._init_streams(seed)
        self._init_events()
        self._init_tumour()
        self._init_course()
        self._init_marrow()

    def _check(self, sizes: dict[str, int]) -> None:
        expected = {"patient": self.n, "organ": self.n_organs, "lesion": self.n_lesions, "blood_line": self.n_lines}
        for dim, size in expected.items():
            if int(sizes[dim]) != size:
                raise ValueError(f"sizes[{dim!r}] = {sizes[dim]}, the inputs have {size}")
        r = self.regimen
        if not 0 <= self.n_cycles <= self.n_cycles + self.n_retreat <= self.k_max:
            raise ValueError("need 0 <= regimen.n_cycles (+ retreat_cycles >= 0) <= sizes['cycle']")
        if self.rule == policy.RULE_FIXED and r.activities_gbq.shape[0] < self.n_cycles:
            raise ValueError("a fixed regimen needs an activity per cycle (activities_gbq)")
        if self.n_cycles > 1 and not r.recheck_days > 0.0:
            raise ValueError("regimen.recheck_days must be > 0")
        if self.rule not in (policy.RULE_FIXED, policy.RULE_KIDNEY_LIMIT, policy.RULE_KIDNEY_TARGET,
                             policy.RULE_TUMOUR_TARGET):
            raise ValueError(f"unknown regimen.rule {self.rule}")
        if self.rule != policy.RULE_FIXED and self.n_cycles > 0 and r.measured_cycles < 1:
            raise ValueError("guided rules need regimen.measured_cycles >= 1 (the measured Gy/GBq of cycle 0)")

    def _init_streams(self, seed: int) -> None:
        """Every draw a patient may need: per cycle (organ and lesion doses, fatal grade 4) and per event."""
        ids, o, les = self.P.patient_id, self.organs, recist
        k = max(self.n_cycles + self.n_retreat, 1)
        self.z_intra = [normals_np(seed, ids, o.intra_stream[j], 0, k) for j in range(self.n_organs)]
        self.z_meas = [normals_np(seed, ids, o.measurement_stream[j], 0, k) for j in range(self.n_organs)]
        self.z_lesion_intra = [normals_np(seed, ids, stream_item(les.LESION_INTRA_STREAM, j), 0, k)
                               for j in range(self.n_lesions)]
        self.z_lesion_meas = [normals_np(seed, ids, stream_item(les.LESION_MEASUREMENT_STREAM, j), 0, k)
                              for j in range(self.n_lesions)]
        self.u_fatal = uniforms_np(seed, ids, FATAL_GRADE4_STREAM, 0, k)  # [patient, cycle]

        def u(stream: np.uint64) -> np.ndarray:
            return uniforms_np(seed, ids, stream, 0, 1)[:, 0]

        self.e_bg, self.e_do = -np.log(u(ev_codes.BACKGROUND_DEATH_STREAM)), -np.log(u(ev_codes.DROPOUT_STREAM))
        self.e_pre = -np.log(u(ev_codes.PRE_PROGRESSION_DEATH_STREAM))
        self.e_pp = -np.log(u(ev_codes.POST_PROGRESSION_DEATH_STREAM))
        self.e_nl = -np.log(u(les.NEW_LESION_STREAM))
        self.e_nl_retreat = -np.log(u(les.NEW_LESION_RETREATMENT_STREAM))
        self.u_resect = u(les.RESECTION_STREAM)
        self.u_neph, self.z_neph = u(NEPHROPATHY_STREAM), ndtri(u(NEPHROPATHY_LATENCY_STREAM))
        self.u_mds, self.z_mds = u(ev_codes.MDS_ONSET_STREAM), ndtri(u(ev_codes.MDS_LATENCY_STREAM))
        self.e_mds = -np.log(u(ev_codes.MDS_DEATH_STREAM))

    def _init_events(self) -> None:
        """Competing event times (section 3): background death, dropout, pre-progression cancer death."""
        P, ev = self.P, self.events
        self.t_bg = gompertz_death_days(self.e_bg, P.age_years, float(ev.background_hazard_65_per_year),
                                        float(ev.background_slope_per_year))
        t_pre = _time_at_rate(self.e_pre, ev.pre_progression_death_per_day * P.pre_progression_death_multiplier)
        self.censor = np.minimum(P.admin_censor_day, _time_at_rate(self.e_do, ev.dropout_per_day))
        self.t_dp = np.minimum(self.t_bg, t_pre)  # death before progression, falls as deaths become known
        self.cause_dp = np.where(self.t_bg <= t_pre, ev_codes.CAUSE_OTHER, ev_codes.CAUSE_CANCER_BEFORE_PROGRESSION)

    def _init_tumour(self) -> None:
        """Per lesion: stroma ``f_s V0``, receptor-negative ``f_n`` of the viable rest, receptor-positive the rest,
        no dead cells (absent lesions: volume 0); the RECIST baseline: target sum and non-target volume."""
        P, n = self.P, self.n
        self.present = np.arange(self.n_lesions)[None, :] < P.lesion_count[:, None]
        v = np.where(self.present, P.lesion_volume_ml, 0.0)
        self.s_vol = P.lesion_stroma_fraction * v
        viable = v - self.s_vol
        self.n_vol = P.lesion_negative_fraction * viable
        self.p_vol = viable - self.n_vol
        self.d_vol = np.zeros_like(v)
        self.v0, self.viable0 = v.sum(axis=1), viable.sum(axis=1)
        self.hazard_nl = np.zeros(n)
        self.t_tumour = np.zeros(n)
        self.active = np.ones(n, dtype=bool)
        self.j_scan = np.zeros(n, dtype=np.int64)
        self.progressed = np.zeros(n, dtype=bool)  # the current course's progression
        self.t_prog = np.zeros(n)
        self.t_first_prog = np.full(n, np.inf)  # the first progression: the PFS end point
        self.prog_type = np.full(n, recist.PROGRESSION_NONE)
        self.nadir_vol = self.v0.copy()
        self.sum0, self.non_target_nadir, _, _ = self._reading(np.arange(n))
        self.sum_nadir = self.sum0.copy()
        self.best_value = np.full(n, np.inf)
        self.last_scan_volume = self.v0.copy()  # baseline counts as the latest scan until one is read
        self.last_scan_day = np.zeros(n)
        self.prev_level = np.full(n, recist.RESPONSE_SD)  # baseline counts as SD for confirmation
        self.best = np.full(n, recist.RESPONSE_NE)
        self._init_psa()

    def _init_psa(self) -> None:
        """Serum PSA at its steady state, ``s = PSA0 k / W0`` with ``W0`` the secreting volume (docs/model.md 3.6),
        and the PCWG3 readings' state."""
        les, n = self.lesions, self.n
        self.psa = self.P.psa0_ng_ml.astype(np.float64).copy()
        source = np.where(self.present, self.p_vol + les.psa_negative_ratio * self.n_vol, 0.0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.psa_secretion = np.where(source > 0.0, self.psa * les.psa_clearance_per_day / source, 0.0)
        self.psa_nadir = self.psa.copy()
        self.psa_best, self.psa_low_since, self.psa_rise_since, self.psa_progression = (np.full(n, np.inf)
                                                                                        for _ in range(4))
        self.psa50 = np.zeros(n, dtype=bool)

    def _read_psa(self, idx: np.ndarray, t: np.ndarray) -> None:
        """PCWG3 reading of the PSA at ``t`` (docs/model.md 3.6): best value, confirmed PSA50, confirmed progression
        dated at its first rising value."""
        if not self.lesions.psa_modelled or idx.size == 0:
            return
        psa, psa0, nadir = self.psa[idx], self.P.psa0_ng_ml[idx], self.psa_nadir[idx]
        self.psa_best[idx] = np.minimum(self.psa_best[idx], psa)
        low, since = psa <= recist.PSA50_RATIO * psa0, self.psa_low_since[idx]
        self.psa50[idx[low & np.isfinite(since) & (t - since >= recist.PSA_CONFIRM_DAYS)]] = True
        self.psa_low_since[idx] = np.where(low, np.where(np.isinf(since), t, since), np.inf)
        still = np.isinf(self.psa_progression[idx])
        declined = nadir < psa0
        reference = np.where(declined, nadir, psa0)
        rising = ((psa >= recist.PSA_RISE_RATIO * reference) & (psa - reference >= recist.PSA_RISE_NG_ML)
                  & (declined | (t >= recist.PSA_NO_DECLINE_DAYS)))
        rise = self.psa_rise_since[idx]
        done = still & rising & np.isfinite(rise) & (t - rise >= recist.PSA_CONFIRM_DAYS)
        self.psa_progression[idx[done]] = rise[done]
        self.psa_rise_since[idx] = np.where(still, np.where(rising, np.where(np.isinf(rise), t, rise), np.inf), rise)
        self.psa_nadir[idx] = np.minimum(nadir, psa)

    def _init_course(self) -> None:
        """Cycles, dose modification, and dosimetry as the regimen sees it (sections 4.5, 5.1)."""
        n, r = self.n, self.regimen
        self.k_given = np.zeros(n, dtype=np.int64)
        self.cycles_open = np.full(n, self.n_cycles > 0)
        self.cycle_limit = np.full(n, self.n_cycles)
        self.retreated = np.zeros(n, dtype=bool)
        self.paused = np.zeros(n, dtype=bool)
        self.resected = np.zeros(n, dtype=bool)  # surgery after downstaging (section 5.6)
        self.t_retreat = np.full(n, np.nan)
        self.t_due = np.zeros(n)  # first due day of the pending cycle
        self.t_cycle_event = np.zeros(n)  # its due day or re-check
        self.withheld = np.zeros(n, dtype=bool)
        self.reduced = np.zeros(n, dtype=bool)
        self.n_reductions = np.zeros(n, dtype=np.int64)
        self.discontinued = np.zeros(n, dtype=bool)
        self.t_last = np.zeros(n)
        self.uptake_decline = np.ones(n)  # lesion Gy/GBq factor (1 - decline)^cycles given
        self.activity_next = np.full(n, float(r.guided_activity_gbq))  # guided activity of the pending cycle
        self.measured_activity = np.zeros(n)  # sum of the activities of the measured cycles
        self.measured_gy = np.zeros((n, self.n_organs))  # sums of their measured doses
        self.known_gy = np.zeros((n, self.n_organs))  # known (measured or predicted) cumulative doses
        self.known_bed_gy = np.zeros((n, self.n_organs))  # and BEDs
        self.lesion_measured_gy = np.zeros((n, self.n_lesions))
        self.lesion_known_gy = np.zeros((n, self.n_lesions))
        self.reached = np.zeros(n, dtype=bool)
        self.kidney_limit = np.where(self.P.kidney_risk_factor > 0.0, r.kidney_limit_risk_factor_gy,
                                     r.kidney_limit_gy)
        ko = int(self.kidney.organ)
        self.g_kidney = g_factor_np(self.P.known_teff_h[:, ko], self.organs.repair_h[ko])  # what dosimetry knows
        kid = self.kidney
        self.egfr_decline = kid.radiation_decline_per_gy_year * np.where(
            self.P.kidney_risk_factor > 0.0, kid.risk_factor_decline_multiplier, 1.0)
        self.mds_decided = np.zeros(n, dtype=bool)
        self.mds_onset = np.full(n, np.inf)
        self.t_mds = np.full(n, np.inf)

    def _init_marrow(self) -> None:
        """Every blood line at its steady state (all compartments at the baseline count); no forcing yet."""
        P, b, n = self.P, self.blood, self.n
        self.y = np.repeat(P.blood_baseline[None, :, :], 5, axis=0).astype(np.float64)  # [5, patient, line]
        self.run_nadir = P.blood_baseline.astype(np.float64).copy()  # running nadir of the cycle, per line
        self.run_day = np.zeros((n, self.n_lines))
        self.t_marrow = np.zeros(n)
        self.dose_rate = np.zeros(n)
        self.committed = np.zeros(n)
        self.horizon = np.full(n, np.inf)
        self.fatal_checked = np.zeros(n, dtype=bool)
        teff = P.teff_h[:, int(b.organ)]
        with np.errstate(divide="ignore"):  # T_eff 0 (control arm): never used
            self.lam = np.where(teff > 0.0, _LN2 / (teff / HOURS_PER_DAY), 0.0)
        self.line_kinetics = (4.0 / b.mtt_days, 1.0 / b.lifespan_days, np.asarray(b.gamma, dtype=np.float64))

    # ---------------------------------------------------------------------------------------------------
    def _advance_tumour(self, idx: np.ndarray, t: np.ndarray) -> None:
        """Lesions to ``t``: ``P, N x exp(g_j dt)``, ``D x exp(-k_c dt)``, stroma ``dS/dt = -k (S - r (P + N))``
        solved exactly; the new-lesion hazard on the viable sum growing at its viable-weighted rate."""
        P, les = self.P, self.lesions
        dt = t - self.t_tumour[idx]
        g = P.lesion_growth_per_day[idx]
        viable_j = self.p_vol[idx] + self.n_vol[idx]
        viable = viable_j.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = viable / self.viable0[idx]
            g_mean = np.where(viable > 0.0, (g * viable_j).sum(axis=1) / viable, 0.0)
        self.hazard_nl[idx] += _new_lesion_increment(P.new_lesion_per_day[idx], ratio, float(les.new_lesion_exponent),
                                                     g_mean, dt)
        if les.psa_modelled:  # dPSA/dt = s W(t) - k PSA, each lesion's source growing as exp(g_j t) (exact)
            kc = float(les.psa_clearance_per_day)
            decay = np.exp(-kc * dt)
            present = self.present[idx]
            viable = np.where(present, self.p_vol[idx] + les.psa_negative_ratio * self.n_vol[idx], 0.0)
            dead = np.where(present, les.psa_dead_ratio * self.d_vol[idx], 0.0)
            secreted = np.zeros(idx.size)
            for source, rate in ((viable, g + kc), (dead, np.full_like(g, kc - float(les.dead_clearance_per_day)))):
                safe = np.where(rate == 0.0, 1.0, rate)
                secreted += (source * np.where(rate == 0.0, dt[:, None], np.expm1(rate * dt[:, None]) / safe)).sum(1)
            self.psa[idx] = (self.psa[idx] + self.psa_secretion[idx] * secreted) * decay
        k = float(les.stroma_relax_per_day)
        if k > 0.0:
            f = P.lesion_stroma_fraction[idx]
            rate = g + k
            dtc = dt[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                integral = np.where(rate == 0.0, dtc, np.expm1(rate * dtc) / np.where(rate == 0.0, 1.0, rate))
            self.s_vol[idx] = np.exp(-k * dtc) * (self.s_vol[idx] + f / (1.0 - f) * k * viable_j * integral)
        grow = np.exp(g * dt[:, None])
        self.p_vol[idx] *= grow
        self.n_vol[idx] *= grow
        self.d_vol[idx] *= np.exp(-les.dead_clearance_per_day * dt)[:, None]
        self.t_tumour[idx] = t

    def _advance_marrow(self, idx: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance the blood lines of the treated patients ``idx`` whose marrow lies before ``target`` (every line
        over the same interval, with the same forcing), lower the running nadirs of the cycle, and draw the fatal
        grade 4 the first time in the cycle that an interval's nadir of the fatal line is below grade 4. Returns the
        patients who die and their death days (that nadir's day)."""
        sel = target > self.t_marrow[idx]
        mi, t1 = idx[sel], target[sel]
        if mi.size == 0:
            return mi, np.empty(0)
        m, lines, b = mi.size, self.n_lines, self.blood
        k_tr, k_circ, gamma = (np.tile(v, m) for v in self.line_kinetics)
        beta = np.tile(b.reserve_per_gy * b.reserve_ratio, m)
        mp = MarrowParams(k_tr, k_circ, gamma, beta, float(b.first_step_days))
        t0 = self.t_marrow[mi]
        shared = (np.repeat(a, lines) for a in (t0, t1, self.dose_rate[mi], self.committed[mi], self.lam[mi]))
        alpha = (self.P.marrow_alpha_per_gy[mi][:, None] * b.alpha_ratio[None, :]).reshape(-1)
        y1, _, nadir, day = marrow_advance_np(self.y[:, mi, :].reshape(5, m * lines), *shared,
                                              self.P.blood_baseline[mi].reshape(-1), alpha, mp)
        self.y[:, mi, :] = y1.reshape(5, m, lines)
        self.dose_rate[mi] = self.dose_rate[mi] * _exp(-self.lam[mi] * (t1 - t0))
        self.t_marrow[mi] = t1
        nadir, day = nadir.reshape(m, lines), day.reshape(m, lines)
        lower = nadir < self.run_nadir[mi]
        run_nadir, run_day = self.run_nadir[mi], self.run_day[mi]
        run_nadir[lower], run_day[lower] = nadir[lower], day[lower]
        self.run_nadir[mi], self.run_day[mi] = run_nadir, run_day

        fl = int(b.fatal_line)
        check = ~self.fatal_checked[mi] & (nadir[:, fl] < b.grade_below[fl, GRADE4])
        first = mi[check]
        self.fatal_checked[first] = True
        dies = self.u_fatal[first, self.k_given[first] - 1] < b.fatal_grade4_probability
        return first[dies], day[check, fl][dies]

    def _record_blood(self, idx: np.ndarray, c: np.ndarray) -> None:
        """Cycle ``c`` (per patient) per blood line: running nadir, its day after the administration, its grade,
        and the count when the cycle's follow-up ended."""
        out = self.out
        out.blood_nadir[idx, c] = self.run_nadir[idx]
        out.blood_nadir_day[idx, c] = self.run_day[idx] - self.t_last[idx][:, None]
        out.blood_grade[idx, c] = grades(self.run_nadir[idx], self.blood.grade_below)
        out.blood_end[idx, c] = self.y[_CIRC][idx]

    def _decide_mds(self, idx: np.ndarray) -> None:
        """MDS/AML of treated patients whose cycles ended (docs/model.md 4.3); a death before progression first."""
        if idx.size == 0:
            return
        ev = self.events
        chemo = np.where(self.P.prior_chemotherapy[idx] > 0.0, ev.mds_chemo_multiplier, 1.0)
        prob = -np.expm1(-ev.mds_risk_per_gy * chemo * self.committed[idx])
        occurs = self.u_mds[idx] < prob
        onset = self.t_last[idx] + ev.mds_latency_days * np.exp(ev.mds_latency_sigma * self.z_mds[idx])
        death = onset + _time_at_rate(self.e_mds[idx], ev.mds_death_per_day)
        self.mds_decided[idx] = True
        self.mds_onset[idx] = np.where(occurs, onset, np.inf)
        self.t_mds[idx] = np.where(occurs, death, np.inf)
        self._lower_t_dp(idx, self.t_mds[idx], ev_codes.CAUSE_TREATMENT)

    def _lower_t_dp(self, idx: np.ndarray, t: np.ndarray, cause: int) -> None:
        lower = t < self.t_dp[idx]
        self.t_dp[idx[lower]] = t[lower]
        self.cause_dp[idx[lower]] = cause

    def _end_cycles(self, idx: np.ndarray) -> None:
        """No further cycle (all given, discontinued, continue_after_cycle, guided stop, progression, or after the
        loop): the marrow horizon becomes last administration + window, and MDS/AML is decided."""
        idx = idx[self.cycles_open[idx]]
        self.cycles_open[idx] = False
        self.horizon[idx] = self.t_last[idx] + self.blood.window_days
        self._decide_mds(idx[(self.k_given[idx] > 0) & ~self.mds_decided[idx]])

    def _discontinue(self, idx: np.ndarray) -> None:
        self.discontinued[idx] = True
        self._end_cycles(idx)

    def egfr(self, idx: np.ndarray, t: np.ndarray, onset: np.ndarray | None = None) -> np.ndarray:
        """``e(t) = e0 - a_i t_y - sum_k e0 c_i BED_k max(0, t - t_k - tau)_y`` over the cycles given so far (the
        kidney organ's BED), times ``1 - f`` from the nephropathy onset, floored at 0 (docs/model.md 4.2)."""
        kid, out = self.kidney, self.out
        e0 = self.P.egfr_baseline_ml_min[idx]
        t = np.asarray(t, dtype=np.float64)
        e = e0 - self.P.egfr_decline_ml_min_per_year[idx] * t / DAYS_PER_YEAR
        times, beds, k = out.cycle_time_days[idx], out.bed_gy[idx, :, int(kid.organ)], self.k_given[idx]
        decline = self.egfr_decline[idx]
        for c in range(self.k_max):
            dt = t - times[:, c] - kid.subclinical_latency_days
            hit = (c < k) & (dt > 0.0)
            e = np.where(hit, e - e0 * decline * beds[:, c] * dt / DAYS_PER_YEAR, e)
        if onset is not None:
            e = np.where(t >= onset, e * (1.0 - kid.nephropathy_egfr_loss), e)
        return np.maximum(e, 0.0)

    def _kidney_known(self, idx: np.ndarray) -> np.ndarray:
        """The known cumulative kidney quantity of the guided rules: dose for a kidney dose target, else BED."""
        on_dose = self.rule == policy.RULE_KIDNEY_TARGET and not self.regimen.target_is_bed
        return (self.known_gy if on_dose else self.known_bed_gy)[idx, int(self.kidney.organ)]

    # ---------------------------------------------------------------------------------------------------
    def _reading(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """RECIST 1.1 measurements (section 3.4): target sum of diameters (mm) of the visible target lesions,
        non-target volume (mL), whether no lesion is visible, tumour volume (mL)."""
        vol = self.s_vol[idx] + self.p_vol[idx] + self.n_vol[idx] + self.d_vol[idx]
        visible = self.present[idx] & (vol >= self.lesions.disappeared_ml)
        target = self.P.lesion_role[idx] == recist.ROLE_TARGET
        diameters = 10.0 * np.cbrt(6.0 * vol / math.pi)
        return ((np.where(target & visible, diameters, 0.0)).sum(axis=1), np.where(target, 0.0, vol).sum(axis=1),
                ~visible.any(axis=1), vol.sum(axis=1))

    def _scan(self, idx: np.ndarray, t: np.ndarray) -> None:
        """RECIST 1.1 reading at ``t`` (section 3.4): progression of the target sum, of the non-target volume, or a
        new lesion; else the response level. Lesion volume ratios are kept at the smallest target sum."""
        les, P = self.lesions, self.P
        self.j_scan[idx] += 1
        one = idx[self.j_scan[idx] == 1]  # the first scan: the index lesion's viable volume (EASL, section 3.4)
        self.out.index_viable_ratio_first_scan[one] = self._index_viable_ratio(one)
        self._read_psa(idx[~self.retreated[idx]], t[~self.retreated[idx]])
        target_sum, non_target, gone, vol = self._reading(idx)
        has_target = self.sum0[idx] > 0.0
        value = np.where(has_target, target_sum, vol)
        course = ~self.retreated[idx]  # the first course: its progression is the PFS end point
        first = course & ~self.resected[idx]  # and before surgery: its response end points
        better = (value < self.best_value[idx]) & first
        bi = idx[better]
        self.best_value[bi] = value[better]
        lesion_vol = self.s_vol[bi] + self.p_vol[bi] + self.n_vol[bi] + self.d_vol[bi]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.out.lesion_volume_ratio_best[bi] = np.where(self.present[bi], lesion_vol / P.lesion_volume_ml[bi],
                                                             np.nan)
        target = (has_target & (target_sum >= recist.PD_SUM_RATIO * self.sum_nadir[idx])
                  & (target_sum - self.sum_nadir[idx] >= les.progression_absolute_mm))
        non_target_pd = (self.non_target_nadir[idx] > 0.0) & (
            non_target >= les.non_target_progression_ratio * self.non_target_nadir[idx])
        resected = self.resected[idx]  # after surgery, recurrence: any lesion visible again (section 5.6)
        target = np.where(resected, ~gone, target)
        non_target_pd = non_target_pd & ~resected
        new_lesion = self.hazard_nl[idx] >= self.e_nl[idx]
        grew = target | non_target_pd
        prog = grew | new_lesion
        self.last_scan_day[idx] = t

        pi = idx[prog]
        self.progressed[pi] = True
        self.t_prog[pi] = t[prog]
        fp = prog & course
        fi = idx[fp]
        self.t_first_prog[fi] = t[fp]
        self.prog_type[fi] = (np.where(grew[fp], recist.PROGRESSION_TARGET, 0)
                              + np.where(new_lesion[fp], recist.PROGRESSION_NEW_LESION, 0))
        self.best[fi] = np.where(self.best[fi] == recist.RESPONSE_NE, recist.RESPONSE_PD, self.best[fi])
        starts = self._retreatable(pi, t[prog])
        self.active[pi[~starts]] = False
        self._end_cycles(pi[~starts])
        self._start_retreatment(pi[starts], t[prog][starts])

        keep = ~prog
        ei = idx[keep]
        first = first[keep]
        level = np.where(gone[keep], recist.RESPONSE_CR,
                         np.where(has_target[keep] & (target_sum[keep] <= recist.PR_SUM_RATIO * self.sum0[ei]),
                                  recist.RESPONSE_PR, recist.RESPONSE_SD))
        counted = level
        if self.lesions.confirm_response:
            counted = np.where(level != recist.RESPONSE_SD, np.maximum(level, self.prev_level[ei]), level)
        best = np.where(self.best[ei] == recist.RESPONSE_NE, counted, np.minimum(self.best[ei], counted))
        self.best[ei] = np.where(first, best, self.best[ei])
        self.prev_level[ei] = np.where(first, level, self.prev_level[ei])
        self.nadir_vol[ei] = np.where(first, np.minimum(self.nadir_vol[ei], vol[keep]), self.nadir_vol[ei])
        self.sum_nadir[ei] = np.minimum(self.sum_nadir[ei], target_sum[keep])
        self.non_target_nadir[ei] = np.minimum(self.non_target_nadir[ei], non_target[keep])
        self.last_scan_volume[ei] = vol[keep]
        self._resect(ei[first], t[keep][first])

    def _index_viable_ratio(self, idx: np.ndarray) -> np.ndarray:
        """The index lesion's (lesion 0) viable volume over its baseline viable volume ``(1 - f_s) V0``."""
        P = self.P
        return (self.p_vol[idx, 0] + self.n_vol[idx, 0]) / (P.lesion_volume_ml[idx, 0]
                                                           * (1.0 - P.lesion_stroma_fraction[idx, 0]))

    def _resect(self, idx: np.ndarray, t: np.ndarray) -> None:
        """Surgery after downstaging (section 5.6) at a scan without progression, in the first course: every lesion
        in the treated territory (none receptor-negative), the index lesion's viable volume at most the ratio, within
        the window, the patient's one uniform below the probability; at most ``residual_ml`` of every lesion's
        viable cells remain, no stroma or dead cells."""
        les, P = self.lesions, self.P
        if les.resection_probability <= 0.0 or idx.size == 0:
            return
        inside = ~(self.present[idx] & (P.lesion_receptor_negative[idx] != 0)).any(axis=1)
        go = ((self.k_given[idx] > 0) & (t <= les.resection_window_days) & inside
              & (self._index_viable_ratio(idx) <= les.resection_viable_ratio)
              & (self.u_resect[idx] < les.resection_probability))
        gi = idx[go]
        viable = self.p_vol[gi] + self.n_vol[gi]
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(viable > les.resection_residual_ml, les.resection_residual_ml / viable, 1.0)
        self.p_vol[gi] *= f
        self.n_vol[gi] *= f
        self.s_vol[gi] = 0.0
        self.d_vol[gi] = 0.0
        self.resected[gi] = True
        self.out.resection_day[gi] = t[go]

    def _retreatable(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Who starts the re-treatment course at a progression at ``t`` (docs/model.md 5.4): a first progression on
        or after the minimum PFS, the first course over without a toxicity stop (paused, where the arm re-challenges
        only after a pause), no MDS/AML, the first re-treatment cycle within the kidney budget."""
        r = self.regimen
        return ((self.n_retreat > 0) & ~self.retreated[idx] & (self.k_given[idx] > 0) & ~self.cycles_open[idx]
                & ~self.discontinued[idx] & (t >= r.retreat_min_day) & (self.mds_onset[idx] > t)
                & (self.paused[idx] | ~r.retreat_only_after_pause) & self._retreatment_fits(idx))

    def _start_retreatment(self, idx: np.ndarray, t: np.ndarray) -> None:
        """The re-treatment course starts at ``t``: the RECIST baseline is the tumour now, new lesions count afresh,
        dose modification starts over, MDS/AML is decided again (if not yet diagnosed) when the course ends."""
        self.retreated[idx] = True
        self.t_retreat[idx] = t
        self.progressed[idx] = False
        self.sum0[idx], self.non_target_nadir[idx], _, self.last_scan_volume[idx] = self._reading(idx)
        self.sum_nadir[idx] = self.sum0[idx]
        self.hazard_nl[idx] = 0.0
        self.e_nl[idx] = self.e_nl_retreat[idx]
        self.cycles_open[idx] = True
        self.t_due[idx] = self.t_cycle_event[idx] = t
        self.cycle_limit[idx] = self.k_given[idx] + self.n_retreat
        self.withheld[idx] = self.reduced[idx] = False
        self.n_reductions[idx] = 0
        self.horizon[idx] = np.inf
        self.mds_decided[idx[np.isinf(self.mds_onset[idx])]] = False

    def _retreatment_fits(self, idx: np.ndarray) -> np.ndarray:
        """A re-treatment cycle keeps the known kidney BED within the limit (its BED predicted from the measured
        Gy/GBq; 0 without kidney dosimetry)."""
        r, ko = self.regimen, int(self.kidney.organ)
        with np.errstate(divide="ignore", invalid="ignore"):
            gk = np.where(self.measured_activity[idx] > 0.0,
                          self.measured_gy[idx, ko] / self.measured_activity[idx], 0.0)
        d = float(r.retreat_activity_gbq) * gk
        predicted = d * (1.0 + self.g_kidney[idx] * d / self.organs.alpha_beta_gy[ko])
        return self.known_bed_gy[idx, ko] + predicted <= r.retreat_kidney_limit_gy

    def _cycle_event(self, idx: np.ndarray, t: np.ndarray) -> None:
        """A due day or re-check: continue_after_cycle, then (cycles after the first) the guided rule's stop test
        and the dose-modification rules, then the administration."""
        r = self.regimen
        drawn = (self.k_given[idx] > 0) & ~self.retreated[idx]  # PSA is drawn at each visit for a cycle
        self._read_psa(idx[drawn], t[drawn])
        if r.stop_at_psa_progression:
            stop = np.isfinite(self.psa_progression[idx]) & ~self.retreated[idx]
            self._end_cycles(idx[stop])
            idx, t = idx[~stop], t[~stop]
        again = self.retreated[idx]
        if again.any():
            stop = again & ~self._retreatment_fits(idx)
            self._end_cycles(idx[stop])
            idx, t, again = idx[~stop], t[~stop], again[~stop]
        if r.continue_after > 0:
            stop = (self.k_given[idx] >= r.continue_after) & ~(self.last_scan_volume[idx] < self.v0[idx]) & ~again
            self._end_cycles(idx[stop])
            idx, t, again = idx[~stop], t[~stop], again[~stop]
        if r.pause_after > 0:  # a pause after an exceptional PSA response (docs/model.md 5.5)
            stop = ((self.k_given[idx] >= r.pause_after) & ~again
                    & (self.psa[idx] <= r.pause_psa_ratio * self.P.psa0_ng_ml[idx]))
            self.paused[idx[stop]] = True
            self._end_cycles(idx[stop])
            idx, t, again = idx[~stop], t[~stop], again[~stop]
        if self.rule != policy.RULE_FIXED:
            later = (self.k_given[idx] >= 1) & ~again
            li = idx[later]
            stop, reached, activity = self._prescribe(li)
            self.activity_next[li] = activity
            self.reached[li[stop]] |= reached[stop]
            self._end_cycles(li[stop])  # a guided stop ends treatment, not for toxicity
            keep = np.ones(idx.size, dtype=bool)
            keep[np.flatnonzero(later)[stop]] = False
            idx, t = idx[keep], t[keep]
        give = np.ones(idx.size, dtype=bool)
        later = np.flatnonzero(self.k_given[idx] >= 1)
        if later.size:
            give[later] = self._protocol(idx[later], t[later])
        self._give(idx[give], t[give])

    def _protocol(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Dose modification at a due day (docs/model.md 4.5, 4.7); returns which patients get the cycle now."""
        r, gb = self.regimen, self.blood.grade_below
        e, e0 = self.egfr(idx, t), self.P.egfr_baseline_ml_min[idx]
        hold = (e < r.withhold_egfr_below_ml_min) | (e < (1.0 - r.withhold_egfr_drop) * e0)
        hold |= (grades(self.y[_CIRC][idx], gb) >= r.withhold_grade).any(axis=1)
        hi, th = idx[hold], t[hold]
        self.withheld[hi] = True
        too_late = th + r.recheck_days - self.t_due[hi] > r.max_delay_days
        self._discontinue(hi[too_late])
        self.t_cycle_event[hi[~too_late]] = th[~too_late] + r.recheck_days

        gi = idx[~hold]
        reduce = (self.withheld[gi] & bool(r.reduce_if_withheld)) | (
            grades(self.run_nadir[gi], gb) >= r.reduce_grade).any(axis=1)
        exhausted = reduce & (self.n_reductions[gi] >= r.max_reductions)
        self._discontinue(gi[exhausted])
        ri = gi[reduce & ~exhausted]
        self.reduced[ri] = True
        self.n_reductions[ri] += 1
        if r.restore_after_tolerated:
            self.reduced[gi[~reduce]] = False
        give = ~hold
        give[np.flatnonzero(~hold)[exhausted]] = False
        return give

    def _give(self, idx: np.ndarray, t: np.ndarray) -> None:
        """Administer the pending cycle at ``t``: doses per organ and lesion, kill, marrow forcing; record it."""
        if idx.size == 0:
            return
        r, out, b = self.regimen, self.out, self.blood
        k = self.k_given[idx]
        nominal = r.activities_gbq[np.minimum(k, r.activities_gbq.shape[0] - 1)] if self.rule == policy.RULE_FIXED \
            else self.activity_next[idx]
        planned = self.P.planned_activity_gbq[idx]
        nominal = np.where((k == 0) & ~np.isnan(planned), planned, nominal)  # docs/model.md 5.6
        nominal = np.where(self.retreated[idx], float(r.retreat_activity_gbq), nominal)
        activity = nominal * np.where(self.reduced[idx], 1.0 - r.reduction_fraction, 1.0)
        measured = k < r.measured_cycles
        out.cycle_time_days[idx, k] = t
        out.activity_gbq[idx, k] = activity
        out.delay_days[idx, k] = t - self.t_due[idx]
        out.dose_reduced[idx, k] = self.reduced[idx]
        out.dosimetry_measured[idx, k] = measured
        self._dose_organs(idx, k, activity, measured)
        self._dose_lesions(idx, k, activity, measured)
        self.measured_activity[idx] += np.where(measured, activity, 0.0)
        self.uptake_decline[idx] *= 1.0 - self.lesions.dose_decline

        later = k > 0
        self._record_blood(idx[later], k[later] - 1)
        dose_marrow = out.dose_gy[idx, k, int(b.organ)]
        self.dose_rate[idx] = self.dose_rate[idx] + dose_marrow * self.lam[idx]
        self.committed[idx] = self.committed[idx] + dose_marrow
        self.run_nadir[idx] = self.y[_CIRC][idx]
        self.run_day[idx] = t[:, None]
        self.fatal_checked[idx] = False
        self.t_last[idx] = t
        self.withheld[idx] = False
        self.k_given[idx] += 1
        self.t_due[idx] = self.t_cycle_event[idx] = t + np.where(self.retreated[idx], r.retreat_interval_days,
                                                                 r.interval_days)
        self._end_cycles(idx[self.k_given[idx] >= self.cycle_limit[idx]])

    def _known(self, measured: np.ndarray, value: np.ndarray, activity: np.ndarray, measured_sum: np.ndarray,
               measured_activity: np.ndarray) -> np.ndarray:
        """The known dose of a cycle (docs/model.md 5.1): measured, else ``A x measured sum / measured activity``
        of the cycles measured before it (0 before any)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            predicted = np.where(measured_activity > 0.0, activity * measured_sum / measured_activity, 0.0)
        return np.where(measured, value, predicted)

    def _dose_organs(self, idx: np.ndarray, k: np.ndarray, activity: np.ndarray, measured: np.ndarray) -> None:
        """Per organ: ``D = A g exp(s z_k)``, its BED, the measured dose ``D exp(s' z'_k)`` (NaN if not measured),
        and the known dose and BED sums."""
        P, organs, out = self.P, self.organs, self.out
        for o in range(self.n_organs):
            dose = activity * P.gy_per_gbq[idx, o] * _exp(organs.intra_sigma[o] * self.z_intra[o][idx, k])
            teff, repair, ab = P.teff_h[idx, o], organs.repair_h[o], organs.alpha_beta_gy[o]
            out.dose_gy[idx, k, o] = dose
            out.bed_gy[idx, k, o] = bed_gy(dose, teff, repair, ab)
            value = np.where(measured, dose * P.measurement_bias[idx, o]
                             * _exp(organs.measurement_sigma[o] * self.z_meas[o][idx, k]), np.nan)
            out.dose_measured_gy[idx, k, o] = value
            known = self._known(measured, value, activity, self.measured_gy[idx, o], self.measured_activity[idx])
            self.measured_gy[idx, o] += np.where(measured, value, 0.0)
            self.known_gy[idx, o] += known
            self.known_bed_gy[idx, o] += bed_gy(known, P.known_teff_h[idx, o], repair, ab)

    def _dose_lesions(self, idx: np.ndarray, k: np.ndarray, activity: np.ndarray, measured: np.ndarray) -> None:
        """Per lesion: ``D = A (g x uptake decline) exp(s z_k)``, its BED, measured and known doses, and the kill of
        receptor-positive cells ``P (1 - exp(-alpha BED))`` moved to the dead cells."""
        P, les, out = self.P, self.lesions, self.out
        for j in range(self.n_lesions):
            alpha = P.lesion_alpha_per_gy[idx, j]
            present = self.present[idx, j]
            g = P.lesion_gy_per_gbq[idx, j] * self.uptake_decline[idx]
            dose = np.where(present, activity * g * _exp(les.intra_sigma * self.z_lesion_intra[j][idx, k]), np.nan)
            bed = bed_gy(dose, P.lesion_teff_h[idx, j], les.repair_h, les.alpha_beta_gy)
            out.lesion_dose_gy[idx, k, j] = dose
            out.lesion_bed_gy[idx, k, j] = bed
            value = np.where(measured, dose * P.lesion_measurement_bias[idx, j]
                             * _exp(les.measurement_sigma * self.z_lesion_meas[j][idx, k]), np.nan)
            out.lesion_dose_measured_gy[idx, k, j] = value
            known = self._known(measured, value, activity, self.lesion_measured_gy[idx, j],
                                self.measured_activity[idx])
            self.lesion_measured_gy[idx, j] += np.where(measured, value, 0.0)
            self.lesion_known_gy[idx, j] += known
            bed_negative = bed_gy(P.lesion_negative_dose_ratio[idx, j] * dose, P.lesion_teff_h[idx, j], les.repair_h,
                                  les.alpha_beta_gy)
            killed_p = np.where(present, self.p_vol[idx, j] * (1.0 - _exp(-alpha * bed)), 0.0)
            killed_n = np.where(present, self.n_vol[idx, j] * (1.0 - _exp(-alpha * bed_negative)), 0.0)
            self.p_vol[idx, j] -= killed_p
            self.n_vol[idx, j] -= killed_n
            self.d_vol[idx, j] += killed_p + killed_n

    def _prescribe(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The guided rule at a due day or re-check of cycle ``k >= 1`` (docs/model.md 5.2): ``(stop, reached,
        activity)`` per patient, the activity before any reduction."""
        r = self.regimen
        ko, mo = int(self.kidney.organ), int(self.blood.organ)
        bk, mk, tk = self._kidney_known(idx), self.known_gy[idx, mo], self.lesion_known_gy[idx, 0]
        lk, lm, target, a = self.kidney_limit[idx], r.marrow_limit_gy, r.target_gy, float(r.guided_activity_gbq)
        g, ab = self.g_kidney[idx], self.organs.alpha_beta_gy[ko]
        activity = np.full(idx.size, a)
        with np.errstate(divide="ignore", invalid="ignore"):
            gk = self.measured_gy[idx, ko] / self.measured_activity[idx]
            gm = self.measured_gy[idx, mo] / self.measured_activity[idx]
            if self.rule == policy.RULE_KIDNEY_LIMIT:
                reached = bk >= lk * (1.0 - policy.EPS)
                stop = reached | (mk >= lm * (1.0 - policy.EPS))
                if r.reduce_last_cycle:
                    a_kidney = dose_for_bed(lk - bk, g, ab) / gk
                    a_marrow = (lm - mk) / gm
                    activity = np.minimum(np.minimum(activity, a_kidney), a_marrow)
                    low = ~stop & (activity < r.min_activity_gbq)
                    reached |= low & (a_kidney <= a) & (a_kidney <= a_marrow)
                    stop |= low
            elif self.rule == policy.RULE_KIDNEY_TARGET:
                reached = bk >= target * (1.0 - policy.EPS)
                left = self.n_cycles - self.k_given[idx]
                q = (target - bk) / left
                need = dose_for_bed(q, g, ab) if r.target_is_bed else q
                cap = (lm - mk) / gm
                stop = reached | (mk >= lm * (1.0 - policy.EPS)) | (cap < r.min_activity_gbq)
                activity = np.minimum(np.maximum(np.minimum(need / gk, cap), r.min_activity_gbq), r.max_activity_gbq)
            else:  # RULE_TUMOUR_TARGET
                reached = tk >= target * (1.0 - policy.EPS)
                d_kidney = a * gk
                over = (bk + d_kidney * (1.0 + g * d_kidney / ab) > lk) | (mk + a * gm > lm)
                stop = reached | over
        return stop, reached & stop, activity

    # ---------------------------------------------------------------------------------------------------
    def run(self) -> kernel_outputs.Outputs:
        """Event rounds until no patient has an event left, then the outcomes."""
        n_scans = self.scans.size
        while True:
            ai = np.flatnonzero(self.active)
            if ai.size == 0:
                break
            j = self.j_scan[ai]
            t_scan = self.scans[np.minimum(j, n_scans - 1)] if n_scans else np.full(ai.size, np.inf)
            t_scan = np.where(j < n_scans, t_scan, np.inf)
            t_cyc = np.where(self.cycles_open[ai], self.t_cycle_event[ai], np.inf)
            is_scan = t_scan <= t_cyc  # the scan first on a tie
            t = np.minimum(t_scan, t_cyc)
            go = (t < self.t_dp[ai]) & np.where(is_scan, t <= self.censor[ai], t < self.censor[ai])
            self.active[ai[~go]] = False
            ai, t, is_scan = ai[go], t[go], is_scan[go]
            if ai.size == 0:
                break

            self._advance_tumour(ai, t)
            treated = self.k_given[ai] > 0
            dead, t_f = self._advance_marrow(ai[treated], np.minimum(t, self.horizon[ai])[treated])
            if dead.size:  # a fatal grade 4 on the way: the event is not processed
                self._lower_t_dp(dead, t_f, ev_codes.CAUSE_TREATMENT)
                self.active[dead] = False
                keep = self.active[ai]
                ai, t, is_scan = ai[keep], t[keep], is_scan[keep]

            self._scan(ai[is_scan], t[is_scan])
            self._cycle_event(ai[~is_scan], t[~is_scan])
        return self._finish()

    def _death_day_and_cause(self) -> tuple[np.ndarray, np.ndarray]:
        """Without progression the death before progression; after it the first of post-progression cancer death,
        MDS/AML death and background death (docs/model.md 4.4)."""
        prog = self.progressed
        day = self.t_prog + _time_at_rate(self.e_pp, self.P.post_progression_death_per_day)
        cause = np.full(self.n, ev_codes.CAUSE_CANCER_AFTER_PROGRESSION)
        mds_first = self.t_mds < day
        day, cause = np.where(mds_first, self.t_mds, day), np.where(mds_first, ev_codes.CAUSE_TREATMENT, cause)
        bg_first = self.t_bg <= day
        day, cause = np.where(bg_first, self.t_bg, day), np.where(bg_first, ev_codes.CAUSE_OTHER, cause)
        return np.where(prog, day, self.t_dp), np.where(prog, cause, self.cause_dp)

    def _finish(self) -> kernel_outputs.Outputs:
        """After the loop: MDS/AML, death day, the tail of the marrow window (a fatal grade 4 there comes first),
        then survival, response, blood, kidney and regimen outcomes (docs/model.md 4.6)."""
        everyone = np.arange(self.n)
        self._end_cycles(everyone)
        self._decide_mds(everyone[(self.k_given > 0) & ~self.mds_decided])
        death, cause = self._death_day_and_cause()
        ti = everyone[self.k_given > 0]
        self.horizon[ti] = np.minimum(self.horizon[ti], self.t_last[ti] + self.blood.window_days)
        dead, t_f = self._advance_marrow(ti, np.minimum(np.minimum(self.horizon[ti], death[ti]), self.censor[ti]))
        earlier = t_f < death[dead]
        death[dead[earlier]] = t_f[earlier]
        cause[dead[earlier]] = ev_codes.CAUSE_TREATMENT
        self._record_blood(ti, self.k_given[ti] - 1)
        self._record_survival(death, cause)
        self._record_kidney()
        self._record_organ_toxicity()
        self._record_regimen()
        return self.out

    def _record_survival(self, death: np.ndarray, cause: np.ndarray) -> None:
        """PFS (progression, death, else censored at the last scan), OS, cause, response and MDS/AML."""
        out, prog, censor, P = self.out, self.progressed, self.censor, self.P
        died = death <= censor
        first = np.isfinite(self.t_first_prog)
        out.pfs_time_days[:] = np.where(first, self.t_first_prog, np.where(died, death, self.last_scan_day))
        out.pfs_event[:] = first | died
        again = self.retreated
        end = np.where(prog, self.t_prog, np.where(died, death, np.maximum(self.last_scan_day, self.t_retreat)))
        out.retreatment_day[:] = self.t_retreat
        with np.errstate(divide="ignore", invalid="ignore"):
            out.psa_best_change[:] = np.where(np.isfinite(self.psa_best), self.psa_best / P.psa0_ng_ml - 1.0, np.nan)
        out.psa50[:] = self.psa50
        out.psa_progression_day[:] = np.where(np.isfinite(self.psa_progression), self.psa_progression, np.nan)
        out.retreatment_pfs_time_days[:] = np.where(again, end - self.t_retreat, np.nan)
        out.retreatment_pfs_event[:] = again & (prog | died)
        out.os_time_days[:] = np.where(died, death, censor)
        out.os_event[:] = died
        out.death_cause[:] = np.where(died, cause, ev_codes.CAUSE_ALIVE)
        out.best_response[:] = self.best
        out.progression_type[:] = self.prog_type
        out.tumour_nadir_ratio[:] = self.nadir_vol / self.v0
        with np.errstate(divide="ignore", invalid="ignore"):
            out.target_sum_best_change[:] = np.where((self.sum0 > 0.0) & np.isfinite(self.best_value),
                                                     self.best_value / self.sum0 - 1.0, np.nan)
        out.lesions_modelled[:] = P.lesion_count
        out.target_lesions[:] = (self.present & (P.lesion_role == recist.ROLE_TARGET)).sum(axis=1)
        out.receptor_negative_lesions[:] = (self.present & (P.lesion_receptor_negative == 1)).sum(axis=1)
        out.lesion_volume_ml[:] = np.where(self.present, P.lesion_volume_ml, np.nan)
        out.lesion_role[:] = P.lesion_role
        out.lesion_receptor_negative[:] = np.where(self.present, P.lesion_receptor_negative, 0)
        out.lesion_dose_gy[:] = np.where(self.present[:, None, :], out.lesion_dose_gy, np.nan)
        positive = self.present & (P.lesion_receptor_negative == 0) & (self.k_given > 0)[:, None]
        volume = np.where(positive, P.lesion_volume_ml, 0.0)
        dose_volume = np.where(positive, P.lesion_volume_ml * out.lesion_dose_gy[:, 0, :], 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):  # the whole-body tumour dose (Violet 2019)
            out.whole_body_tumour_dose_gy[:] = np.where(volume.sum(axis=1) > 0.0,
                                                        dose_volume.sum(axis=1) / volume.sum(axis=1), np.nan)
        out.lesion_bed_gy[:] = np.where(self.present[:, None, :], out.lesion_bed_gy, np.nan)
        mds = (self.mds_onset < death) & (self.mds_onset <= censor)
        out.mds_aml[:] = mds
        out.mds_aml_day[:] = np.where(mds, self.mds_onset, np.nan)

    def _record_organ_toxicity(self) -> None:
        """Late toxicity grade 0-2 of each optional organ with a model: one uniform against LKB on the cumulative
        BED (grade >= 2 at ``r BED50``), with other causes for grade 1 (docs/model.md 4.9)."""
        o_, out = self.organs, self.out
        given = np.arange(self.k_max)[None, :] < self.k_given[:, None]
        for o in range(self.n_organs):
            b50 = float(o_.toxicity_bed50_gy[o])
            if not np.isfinite(b50):
                continue
            bed = np.where(given, out.bed_gy[:, :, o], 0.0).sum(axis=1)
            m = float(o_.toxicity_m[o])
            u = uniforms_np(self.seed, self.P.patient_id, o_.toxicity_stream[o], 0, 1)[:, 0]
            b2 = float(o_.toxicity_grade2_ratio[o]) * b50
            p2 = np.where(bed > 0.0, ndtr((bed - b2) / (m * b2)), 0.0)
            p1 = 1.0 - (1.0 - np.where(bed > 0.0, ndtr((bed - b50) / (m * b50)), 0.0)) * (
                1.0 - float(o_.toxicity_other_cause[o]))
            out.organ_toxicity_grade[:, o] = np.where(u < p2, 2, np.where(u < p1, 1, 0))

    def _record_kidney(self) -> None:
        """LKB nephropathy on the cumulative kidney BED (treated patients), eGFR at the end of follow-up and at 4
        years, its CKD grade, and the first renal grade >= 3 event: eGFR < 30 (bisection) or the acute event
        (docs/model.md 4.2)."""
        kid, out = self.kidney, self.out
        everyone = np.arange(self.n)
        given = np.arange(self.k_max)[None, :] < self.k_given[:, None]
        bed_total = np.where(given, out.bed_gy[:, :, int(kid.organ)], 0.0).sum(axis=1)
        bed50 = kid.bed50_gy * np.where(self.P.kidney_risk_factor > 0.0, kid.risk_factor_bed50_ratio, 1.0)
        ntcp = ndtr((bed_total - bed50) / (kid.lkb_m * bed50))
        nephropathy = (self.k_given > 0) & (self.u_neph < ntcp)
        latency = kid.nephropathy_latency_days * np.exp(kid.nephropathy_latency_sigma * self.z_neph)
        onset = np.where(nephropathy, self.t_last + latency, np.inf)
        t_end = out.os_time_days.astype(np.float64)
        e_end = self.egfr(everyone, t_end, onset)
        out.egfr_end_ml_min[:] = e_end
        landmark = np.full(self.n, LANDMARK_DAYS)
        out.egfr_change_48_months[:] = np.where(landmark <= t_end, self.egfr(everyone, landmark, onset), np.nan) / (
            self.P.egfr_baseline_ml_min) - 1.0
        out.ckd_grade[:] = grades(e_end, CKD_GRADE_BELOW)
        at_entry = self.P.egfr_baseline_ml_min < _EGFR_GRADE3_BELOW
        none = ~at_entry & (e_end >= _EGFR_GRADE3_BELOW)
        day = np.where(at_entry, 0.0, np.inf)
        bi = everyone[~at_entry & ~none]
        lo, hi = np.zeros(bi.size), t_end[bi].copy()
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.egfr(bi, mid, onset[bi]) < _EGFR_GRADE3_BELOW
            hi = np.where(below, mid, hi)
            lo = np.where(below, lo, mid)
        day[bi] = hi
        acute_day = self.P.acute_renal_day
        acute = (acute_day < day) & (acute_day <= t_end)
        day = np.where(acute, acute_day, day)
        out.renal_grade3_time_days[:] = np.minimum(day, t_end)
        out.renal_grade3_event[:] = day <= t_end
        out.renal_grade3_acute[:] = acute

    def _record_regimen(self) -> None:
        """Cycles given, discontinuation, the guided rule's reached flag, and the worst grade per blood line."""
        out, r = self.out, self.regimen
        if self.rule != policy.RULE_FIXED:
            everyone = np.arange(self.n)
            quantity, goal = {policy.RULE_KIDNEY_LIMIT: (self._kidney_known(everyone), self.kidney_limit),
                              policy.RULE_KIDNEY_TARGET: (self._kidney_known(everyone), r.target_gy),
                              policy.RULE_TUMOUR_TARGET: (self.lesion_known_gy[:, 0], r.target_gy)}[self.rule]
            self.reached |= quantity >= goal * (1.0 - policy.EPS)
        out.reached_target[:] = self.reached
        out.cycles_given[:] = self.k_given
        out.discontinued_for_toxicity[:] = self.discontinued
        out.psa_paused[:] = self.paused
        baseline = grades(self.P.blood_baseline, self.blood.grade_below)
        worst = np.maximum(baseline, out.blood_grade.max(axis=1, initial=0))
        rate, e, tp = self.P.blood_background_per_day, self.P.blood_background_e, self.t_first_prog[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):  # docs/model.md 4.8
            day = np.where(e <= rate * tp, e / rate,
                           tp + (e - rate * tp) / (rate * self.blood.background_after_progression))
        other_cause = (rate > 0.0) & (day <= out.os_time_days[:, None])
        out.blood_worst_grade[:] = np.where(other_cause, np.maximum(worst, OTHER_CAUSE_GRADE), worst)


def simulate_arm_oracle(seed, patients, organs, lesions, blood, kidney, events, regimen, scans,  # noqa: ANN001
                        sizes: dict[str, int]) -> kernel_outputs.Outputs:
    """Simulate one arm as ``sim.kernels.patient.run_arm`` does, from the same arguments (without ``out``) and the
    output ``sizes`` (keys ``patient``, ``cycle``, ``organ``, ``lesion``, ``blood_line``, as
    ``kernel_inputs.Axes.sizes``); returns the ``kernel_outputs.Outputs`` it allocates and fills.

    The model is ``docs/model.md`` sections 3 to 5; the inputs are the named tuples of ``sim.kernel_inputs``.
    Cycle ``k`` has nominal activity ``regimen.activities_gbq[k]`` under ``RULE_FIXED``, else
    ``regimen.guided_activity_gbq`` for cycle 0 and the guided rule's activity (section 5.2) after it, given
    x ``(1 - regimen.reduction_fraction)`` while reduced. Cycles ``k < regimen.measured_cycles`` are measured.
    Cycles not given keep the declared fill values of ``sim.kernel_outputs``.
    """
    arm = _Arm(seed, patients, organs, lesions, blood, kidney, events, regimen, scans, sizes)
    if arm.n == 0:
        return arm.out
    return arm.run()
