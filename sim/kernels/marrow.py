"""Marrow: a semi-mechanistic platelet model driven by the marrow absorbed-dose rate (scalar numba helpers).

Model (Friberg LE et al., J Clin Oncol 2002;20:4713-4721, applied to platelets with a separate platelet
elimination rate as in Perez-Ruixo C et al., AAPS J 2016;18(1), doi
10.1208/s12248-015-9839-0). Five compartments, all expressed in
circulating-count units (1e9/L; the marrow ones scaled by ``k_tr / k_circ``) so that every compartment
equals the set point ``S`` at steady state::

    dProl/dt = k_tr Prol (S(t)/Circ)^gamma - k_tr Prol - alpha_m Rdot(t) Prol
    dT1/dt   = k_tr (Prol - T1)
    dT2/dt   = k_tr (T1 - T2)
    dT3/dt   = k_tr (T2 - T3)
    dCirc/dt = k_circ (T3 - Circ)

    k_tr   = 4 / MTT                (n = 3 transit compartments: MTT = (n + 1) / k_tr spans Prol..T3)
    k_circ = 1 / platelet_life      (mean residence time of a circulating platelet)

Radiation: the marrow absorbed-dose rate of the cycles given so far (``D_k`` Gy at day ``t_k``, one marrow
effective half-life per patient, ``lam = ln2 / T_eff`` per day, decay to completion as in radiobiology.py)::

    Rdot(t) = sum_k D_k lam exp(-lam (t - t_k))      (Gy/day)

kills proliferating progenitors at the rate ``alpha_m Rdot`` (the LQ linear term: at initial dose rates of
~0.1-0.5 Gy/day, protracted over days, the quadratic term is negligible, G ~ 0.01 for T_rep 0.5 h).

Cumulative reserve loss (Assumption): each Gy delivered permanently lowers the set point (baseline count
and proliferative steady state) by a factor ``exp(-beta_reserve D)``, applied as the dose is delivered::

    S(t) = S0 exp(-beta_reserve Dcum(t)),   Dcum(t) = sum_k D_k (1 - exp(-lam (t - t_k)))

i.e. the surviving fraction of a slowly renewing stem/early-progenitor pool that feeds the model's
proliferative compartment (the same exponential-survival form as the LQ linear term; no citable estimate of
``beta_reserve`` for 177Lu exists: calibrate it to the long-term platelet decline after 4-6 cycles).

Because every cycle of a patient shares ``lam``, the forcing between administrations is fully described by two
scalars: the current dose rate ``r = Rdot(t)`` and the committed dose ``Dsum = sum_k D_k``, with
``r(t) = r(t0) exp(-lam (t - t0))`` and ``Dcum = Dsum - r / lam``. A cycle adds ``D lam`` to ``r`` and ``D``
to ``Dsum`` (``marrow_after_cycle``). The caller must split integration at each administration day (the dose
rate jumps there), which it does anyway as cycles are events of the patient loop.

Blood lines. The model runs once per blood line (platelets, neutrophils, lymphocytes, haemoglobin: the
``blood_line`` axis), each with its own kinetics (``mtt_days``, ``lifespan_days``, ``gamma``), baseline count (in
g/dL for haemoglobin) and radiosensitivity ``alpha_i x alpha_ratio``, reserve loss ``beta_reserve x reserve_ratio``,
and the same dose-rate forcing (docs/model.md 4.1, 4.7, 4.8). Lymphocytes
(optional) use the same five compartments with slow lymphopoiesis, a circulating residence of weeks, weak feedback
and a radiosensitivity above the platelet line's: an effective model, driven by the marrow dose rate, of a depletion
that in patients also comes from the blood, spleen and lymph-node dose (docs/model.md 4.7).

Integrator (``marrow_advance``): classical RK4 with step-size control (``MARROW_*`` below). Each step also
evaluates the right-hand side at its end (first same as last: that is the next step's first stage, so an accepted
step costs four evaluations), which gives the embedded third-order solution ``y + h (k1 + 2 k2 + 2 k3 + k5) / 6``;
the step is accepted when ``h max|k4 - k5| / 6 <= MARROW_RTOL min(y_new)`` (largest difference over the smallest
compartment, so every compartment's relative error estimate is within the tolerance), and the next trial step
is ``h x 0.9 (error / MARROW_RTOL)^(-1/4)`` within ``[0.2, 4] h``, shortened so that ``alpha x dose rate`` at its
start removes at most half the progenitors, and so that the last step ends exactly at ``t1``. The first trial
step of every call is ``first_step_days`` (config ``max_step_days``, 0.5 d). The forcing is evaluated exactly at
the stage times (one exp per step for the dose-rate decay, one exp and one log per stage for the feedback; no
allocation). The propagated solution is the fourth-order one (local extrapolation), and the measured error stays
at or below the tolerance: maximum relative error of Circ and of the nadirs against DOP853 (rtol 1e-10),
tests/test_marrow.py, 0.9-2e-5 for median NETTER-1 / VISION courses and 0.8-1.9e-5 for extreme ones (1.2 Gy per
cycle with MTT 8 d; 0.8 Gy with alpha 2/Gy), platelets and neutrophils alike. The step grows where the counts
change slowly: a NETTER-1 course (4 cycles and the 112-day window, ~270 days) takes ~110 platelet steps (2.5 days
on average, accuracy-bound) and ~175 neutrophil steps (~1.5 days: with rates ~0.8/day the neutrophil line sits
near RK4's stability limit, ~2.3 days, long after its counts have stopped changing fast), against 540 fixed
0.5-day steps per line; ~25 ns per evaluation (one core).
Nadir: the minimum of Circ over the step ends and, within each step where Circ turns from falling to rising, the
minimum of the cubic Hermite interpolant through its end values and derivatives (fourth-order accurate; the
day is found to within ~0.01 day).

Defaults (time in days, dose in Gy, counts 1e9/L):

==================  ========  =====================================================================  ==========
parameter           default   source / rationale                                                     confidence
==================  ========  =====================================================================  ==========
baseline S0         cohort    patient covariate ``platelets_1e9_per_l`` (250 NETTER-1, 230 VISION)   M
mtt_days            20.0      Friberg 2002 neutrophils 89-135 h; platelets are slower: k_tr          Low;
                              7.09e-3/h, 4/k_tr = 23.5 d if read with n = 3 (Perez-Ruixo 2016).     calibrate
                              20 d puts the nadir of one cycle at ~5 weeks (Lutathera label: 5.1
                              weeks median, as quoted in the issue; blood-count/marrow-dose
                              correlation strongest 31-45 days after each 177Lu-DOTATATE cycle,
                              EJNMMI Res 2024, doi 10.1186/s13550-024-01077-7)
platelet_life_days  5.0       1/k_s = 113 h (Perez-Ruixo 2016); labelled-platelet lifespan 8-10 d,   M
                              about half of it as the mean residence of an exponential compartment.
                              With MTT 20 d this equals 1/k_tr: the classic Friberg k_circ = k_tr
gamma               0.3       0.62 for platelets (Perez-Ruixo 2016), 0.16 for neutrophils (Friberg   Low;
                              2002). 0.3 gives recovery to 95 % of the set point ~8 weeks after a    calibrate
                              cycle (label: median recovery ~2 months); from ~0.5 (MTT 20 d) the
                              model oscillates with growing amplitude, which is unphysiological
alpha_per_gy        1.5       LQ linear term of progenitors: D0 ~ 1 Gy for marrow colony-forming     Assumption;
                              cells (Till JE, McCulloch EA, Radiat Res 1961;14:213-222) -> ~1/Gy;    calibrate
                              1.5 gives a median NETTER-1 nadir of -24 % (see below)
reserve_per_gy      0.15      4 x 0.22 Gy -> 12 % permanent set-point loss                           Assumption
max_step_days       0.5       first trial step of each interval (the step control takes over)        -
lln                 150       CTCAE v5.0 platelet count decreased (LLN of a typical laboratory)      H
==================  ========  =====================================================================  ==========

Choosing ``alpha_m``. A cycle delivers its dose within a few days (marrow T_eff 32-40 h), quickly relative to
the marrow transit (MTT ~20 d), so it acts as a pulse that leaves a fraction ``exp(-alpha_m D)`` of the
proliferating pool; without feedback Circ would fall to that fraction one transit later, and the feedback
refills the pool while Circ falls, so the nadir is shallower: with the defaults the drop is
``0.82-0.93 x (1 - exp(-alpha_m D))`` for D = 0.05-1.6 Gy (nadir at day 35-40). Asking a median NETTER-1
patient (0.03 Gy/GBq x 7.4 GBq = 0.22 Gy) to drop by ~20-30 % gives ``alpha_m D ~ 0.27-0.43``, i.e.
``alpha_m ~ 1.2-2 /Gy``, the order of the in-vitro radiosensitivity of marrow progenitors (D0 ~ 1 Gy). The tail
then reaches grade 3 (< 50) through a combination of factors: marrow dose x2.5 with bone metastases and
x1.5-2 at +1-2 sigma (0.8-1.2 Gy per cycle: 70-84 % of the pool killed, a drop of 62-76 %), a
baseline near the eligibility limit (75-120), and a set point already lowered by earlier cycles (4 x 0.8 Gy at
baseline 120 gives nadirs of 40-55, grade 2-3; 4 x 1.2 Gy at baseline 100 gives grade 4). Calibration targets:
NETTER-1 grade 3/4 thrombocytopenia 1-2 % (4 x 7.4 GBq q8w, marrow ~0.03 Gy/GBq), VISION grade >= 3 ~8 %
(6 x 7.4 GBq q6w, ~0.035 Gy/GBq, 92 % with bone metastases, 97 % after docetaxel). Tune ``alpha_m`` (depth)
first, then ``reserve_per_gy`` (drift over late cycles) and ``gamma`` (time to recovery).
"""

import math

from numba import njit

from sim.kernels import KERNEL
from sim.kernels.ctcae import grade_below
from sim.rng import stream_id

# The ODE state of one blood line: Prol, T1, T2, T3, Circ (1e9/L).
MARROW_STATE = 5
PROL, TRANSIT1, TRANSIT2, TRANSIT3, CIRC = range(MARROW_STATE)

# Integrator: RK4 with an embedded third-order error estimate and step-size control. A step is accepted when its
# estimated local error is at most MARROW_RTOL of the smallest compartment; the next step is the current one times
# 0.9 (MARROW_RTOL / error)^(1/4), kept within [MARROW_MIN_STEP_FACTOR, MARROW_MAX_STEP_FACTOR]. A step is also
# short enough that the radiation kill alpha x dose rate at its start removes at most MARROW_MAX_KILL_PER_STEP of
# the progenitors (stiff early hours of a high-dose, short-half-life cycle), and any step down to
# MARROW_MIN_STEP_DAYS is accepted (a floor that ends the loop whatever the error).
MARROW_RTOL = 3e-5
MARROW_MIN_STEP_FACTOR = 0.2
MARROW_MAX_STEP_FACTOR = 4.0
MARROW_MAX_KILL_PER_STEP = 0.5
MARROW_MIN_STEP_DAYS = 1e-6

# CTCAE v5.0 grade thresholds (NCI 2017), 1e9/L: grade g if count < thresholds[g - 1].
PLATELET_GRADE_BELOW = (150.0, 75.0, 50.0, 25.0)  # platelet count decreased (LLN 150)
NEUTROPHIL_GRADE_BELOW = (2.0, 1.5, 1.0, 0.5)  # neutrophil count decreased (LLN 2.0)
# lymphocyte count decreased: grade 1 below the LLN, 2 < 0.8, 3 < 0.5, 4 < 0.2 (LLN 1.0: a typical laboratory's; CTCAE
# grades grade 1 against the local LLN)
LYMPHOCYTE_GRADE_BELOW = (1.0, 0.8, 0.5, 0.2)
# anaemia, haemoglobin in g/dL: grade 1 below the LLN (12.0: the lower of the usual female and male limits), 2 < 10.0,
# 3 < 8.0; grade 4 is "life-threatening consequences" with no laboratory value (never from a count here)
HAEMOGLOBIN_GRADE_BELOW = (12.0, 10.0, 8.0, -math.inf)
OTHER_CAUSE_GRADE = 3  # the grade recorded for a decrease of other causes (docs/model.md 4.8)
GRADE4 = 3  # index of the grade-4 threshold

FATAL_GRADE4_STREAM = stream_id("marrow/fatal-grade4")  # counter: cycle


@njit(inline="always", **KERNEL)
def other_cause_day(e, rate, progression_day, after_progression):
    """Day of a decrease of other causes (docs/model.md 4.8): the cumulative hazard, ``rate`` per day and
    ``rate x after_progression`` from ``progression_day``, reaches the standard exponential ``e``; ``inf`` if
    ``rate`` is 0."""
    if not rate > 0.0:
        return math.inf
    before = rate * progression_day
    if e <= before:
        return e / rate
    return progression_day + (e - before) / (rate * after_progression)


@njit(inline="always", **KERNEL)
def line_grade(count, grade_below_row):
    """CTCAE v5.0 grade of a blood count against its line's thresholds (0 normal to 4)."""
    return grade_below(count, grade_below_row)


@njit(**KERNEL)
def marrow_init(state, baseline):
    """Write the steady state of an untreated patient (every compartment at the baseline count)."""
    for i in range(MARROW_STATE):
        state[i] = baseline


@njit(inline="always", **KERNEL)
def marrow_after_cycle(dose_rate, committed_dose, dose_gy, lam_per_day):
    """Forcing just after an administration of ``dose_gy``: ``(r + D lam, Dsum + D)`` (mono-exponential
    dose rate ``D lam exp(-lam t)`` that integrates to ``D``)."""
    return dose_rate + dose_gy * lam_per_day, committed_dose + dose_gy


@njit(inline="always", **KERNEL)
def marrow_dose_rate(dose_rate0, lam_per_day, dt_days):
    """Dose rate ``dt`` days later with no administration in between: ``r0 exp(-lam dt)``."""
    return dose_rate0 * math.exp(-lam_per_day * dt_days)


@njit(inline="always", **KERNEL)
def _rhs(p, x1, x2, x3, c, k_tr, k_circ, gamma, kill_per_day, log_setpoint):
    """Right-hand side of the five-compartment model (see the module docstring)."""
    feedback = math.exp(gamma * (log_setpoint - math.log(c)))
    return (k_tr * p * (feedback - 1.0) - kill_per_day * p,
            k_tr * (p - x1),
            k_tr * (x1 - x2),
            k_tr * (x2 - x3),
            k_circ * (x3 - c))


@njit(inline="always", **KERNEL)
def _hermite_minimum(c0, d0, c1, d1, h):
    """Minimum of the cubic Hermite interpolant of Circ over one step of length ``h`` that starts falling
    (``d0 < 0``) and ends rising (``d1 > 0``), with ``c0, c1`` the counts and ``d0, d1`` their derivatives
    (per day). Returns ``(value, fraction of the step)``.

    With ``H(s) = c0 + s h d0 + s^2 (3 D - h (2 d0 + d1)) + s^3 (h (d0 + d1) - 2 D)``, ``D = c1 - c0``,
    ``H'(s) = A s^2 + B s + C`` changes sign once on ``(0, 1)``; its root is taken from the cancellation-free
    pair ``C / q``, ``q / A`` with ``q = -(B + sign(B) sqrt(B^2 - 4 A C)) / 2`` (the first in ``[0, 1]``; the
    guards against a zero divisor and the clipping only matter for rounding).
    """
    delta = c1 - c0
    quad = 3.0 * delta - h * (2.0 * d0 + d1)
    cubic = h * (d0 + d1) - 2.0 * delta
    a, b, c = 3.0 * cubic, 2.0 * quad, h * d0
    q = -0.5 * (b + math.copysign(math.sqrt(max(b * b - 4.0 * a * c, 0.0)), b))
    s = c / q if q != 0.0 else -1.0
    if not 0.0 <= s <= 1.0:
        s = q / a if a != 0.0 else 0.0
    s = min(max(s, 0.0), 1.0)
    return c0 + s * (h * d0 + s * (quad + s * cubic)), s


@njit(**KERNEL)
def marrow_advance(state, t0, t1, dose_rate0, committed_dose, lam_per_day, baseline, mtt_days, gamma,
                   platelet_life_days, alpha_per_gy, reserve_per_gy, first_step_days):
    """Advance ``state[0:5]`` (Prol, T1, T2, T3, Circ; 1e9/L) in place from day ``t0`` to ``t1`` by adaptive RK4.

    ``dose_rate0`` (Gy/day) and ``committed_dose`` (Gy) describe the cycles given up to ``t0`` (see
    ``marrow_after_cycle``); no administration may fall inside ``(t0, t1]``. The dose rate at ``t1`` is
    ``marrow_dose_rate(dose_rate0, lam, t1 - t0)``; the committed dose is unchanged. The first trial step is
    ``first_step_days``; the step rule is in the module docstring and ``MARROW_RTOL``.

    Returns ``(nadir, nadir_day)``: the minimum of Circ over ``[t0, t1]``, taken over the accepted step ends and,
    within each step where Circ turns from falling to rising, the minimum of its cubic Hermite interpolant.
    When a patient's interval is split (scans), the caller keeps the lower nadir.
    """
    if t1 <= t0:
        return state[CIRC], t0
    k_tr = 4.0 / mtt_days
    k_circ = 1.0 / platelet_life_days
    log_s_fixed = math.log(baseline) - reserve_per_gy * committed_dose
    b_over_lam = reserve_per_gy / lam_per_day if lam_per_day > 0.0 else 0.0

    p, x1, x2, x3, c = state[PROL], state[TRANSIT1], state[TRANSIT2], state[TRANSIT3], state[CIRC]
    r = dose_rate0
    # First same as last: the derivative at a step's end is the next step's first stage.
    a1, b1, c1, d1, e1 = _rhs(p, x1, x2, x3, c, k_tr, k_circ, gamma, alpha_per_gy * r, log_s_fixed + b_over_lam * r)
    best, best_day = c, t0
    t, h = t0, first_step_days
    while t < t1:
        if alpha_per_gy * r * h > MARROW_MAX_KILL_PER_STEP:
            h = MARROW_MAX_KILL_PER_STEP / (alpha_per_gy * r)
        last = t + h >= t1
        if last:
            h = t1 - t
        hh = 0.5 * h
        half = math.exp(-lam_per_day * hh)  # dose-rate decay over half a step: one exp serves both stage times
        r_mid = r * half
        r_end = r_mid * half
        a2, b2, c2, d2, e2 = _rhs(p + hh * a1, x1 + hh * b1, x2 + hh * c1, x3 + hh * d1, c + hh * e1,
                                  k_tr, k_circ, gamma, alpha_per_gy * r_mid, log_s_fixed + b_over_lam * r_mid)
        a3, b3, c3, d3, e3 = _rhs(p + hh * a2, x1 + hh * b2, x2 + hh * c2, x3 + hh * d2, c + hh * e2,
                                  k_tr, k_circ, gamma, alpha_per_gy * r_mid, log_s_fixed + b_over_lam * r_mid)
        a4, b4, c4, d4, e4 = _rhs(p + h * a3, x1 + h * b3, x2 + h * c3, x3 + h * d3, c + h * e3,
                                  k_tr, k_circ, gamma, alpha_per_gy * r_end, log_s_fixed + b_over_lam * r_end)
        s6 = h / 6.0
        p_n = p + s6 * (a1 + 2.0 * (a2 + a3) + a4)
        x1_n = x1 + s6 * (b1 + 2.0 * (b2 + b3) + b4)
        x2_n = x2 + s6 * (c1 + 2.0 * (c2 + c3) + c4)
        x3_n = x3 + s6 * (d1 + 2.0 * (d2 + d3) + d4)
        c_n = c + s6 * (e1 + 2.0 * (e2 + e3) + e4)
        a5, b5, c5, d5, e5 = _rhs(p_n, x1_n, x2_n, x3_n, c_n, k_tr, k_circ, gamma, alpha_per_gy * r_end,
                                  log_s_fixed + b_over_lam * r_end)
        # Embedded third-order solution y + h (k1 + 2 k2 + 2 k3 + k5) / 6: it differs by h (k4 - k5) / 6. Largest
        # difference over the smallest compartment (one division; at least the largest relative error). A
        # compartment at or below 0, or so small that its tolerance underflows (extreme kill), has no relative
        # error: the step is refused, down to the minimum step.
        tolerance = MARROW_RTOL * min(p_n, x1_n, x2_n, x3_n, c_n)
        err = (max(abs(a4 - a5), abs(b4 - b5), abs(c4 - c5), abs(d4 - d5), abs(e4 - e5)) * s6
               / tolerance) if tolerance > 0.0 else math.inf
        if err <= 1.0 or h <= MARROW_MIN_STEP_DAYS:
            if e1 < 0.0 and e5 > 0.0:
                low, frac = _hermite_minimum(c, e1, c_n, e5, h)
                if low < best:
                    best, best_day = low, t + frac * h
            if c_n < best:
                best, best_day = c_n, t + h
            t = t1 if last else t + h
            p, x1, x2, x3, c = p_n, x1_n, x2_n, x3_n, c_n
            a1, b1, c1, d1, e1 = a5, b5, c5, d5, e5
            r = r_end
        h *= _step_factor(err)

    state[PROL], state[TRANSIT1], state[TRANSIT2], state[TRANSIT3], state[CIRC] = p, x1, x2, x3, c
    return best, best_day


@njit(inline="always", **KERNEL)
def _step_factor(err):
    """Next step over this one: ``0.9 err^(-1/4)`` (square roots: correctly rounded in every implementation),
    kept within ``[MARROW_MIN_STEP_FACTOR, MARROW_MAX_STEP_FACTOR]``; an error of zero grows the step the most
    and a NaN one shrinks it the most."""
    if err == 0.0:
        return MARROW_MAX_STEP_FACTOR
    factor = 0.9 / math.sqrt(math.sqrt(err))
    if factor > MARROW_MAX_STEP_FACTOR:
        return MARROW_MAX_STEP_FACTOR
    return factor if factor > MARROW_MIN_STEP_FACTOR else MARROW_MIN_STEP_FACTOR


@njit(inline="always", **KERNEL)
def blood_start(i, baseline, state, nadir, nadir_day):
    """Untreated steady state of patient ``i``'s blood lines (every compartment at the baseline count)."""
    for b in range(state.shape[1]):
        marrow_init(state[i, b], baseline[i, b])
        nadir[i, b] = baseline[i, b]
        nadir_day[i, b] = 0.0


@njit(inline="always", **KERNEL)
def blood_advance(i, t0, t1, dose_rate, committed, lam, alpha, baseline, blood, state, nadir, nadir_day):
    """Advance patient ``i``'s blood lines over ``[t0, t1]`` and lower each line's running nadir (and its day)
    of the current cycle; returns the interval's nadir of the line ``blood.fatal_line`` and its day."""
    fatal_low, fatal_day = math.inf, t0
    for b in range(state.shape[1]):
        low, low_day = marrow_advance(state[i, b], t0, t1, dose_rate, committed, lam, baseline[i, b],
                                      blood.mtt_days[b], blood.gamma[b], blood.lifespan_days[b],
                                      alpha * blood.alpha_ratio[b], blood.reserve_per_gy * blood.reserve_ratio[b],
                                      blood.first_step_days)
        if low < nadir[i, b]:
            nadir[i, b], nadir_day[i, b] = low, low_day
        if b == blood.fatal_line:
            fatal_low, fatal_day = low, low_day
    return fatal_low, fatal_day


@njit(inline="always", **KERNEL)
def blood_restart_nadirs(i, t, state, nadir, nadir_day):
    """A new administration: each line's running nadir restarts at its current count."""
    for b in range(state.shape[1]):
        nadir[i, b], nadir_day[i, b] = state[i, b, CIRC], t


@njit(inline="always", **KERNEL)
def record_blood_cycle(i, c, admin_day, blood, state, nadir, nadir_day, out):
    """Cycle ``c``'s nadir per blood line, its day after the administration, its grade, and the count when the
    cycle's follow-up ended (next administration, end of the marrow window, death or censoring)."""
    for b in range(state.shape[1]):
        out.blood_nadir[i, c, b] = nadir[i, b]
        out.blood_nadir_day[i, c, b] = nadir_day[i, b] - admin_day
        out.blood_grade[i, c, b] = line_grade(nadir[i, b], blood.grade_below[b])
        out.blood_end[i, c, b] = state[i, b, CIRC]
