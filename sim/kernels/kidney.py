"""Kidney: the eGFR trajectory (background and radiation decline), radiation nephropathy (LKB on cumulative BED) and
acute renal events of other causes (docs/model.md 4.2).

The kidney is the organ ``kidney.organ`` of the organ axis; its per-cycle BED comes from the dosimetry phase.
"""

import math

from numba import njit

from sim import rng
from sim.kernels import KERNEL
from sim.kernels.ctcae import grade_below
from sim.units import DAYS_PER_YEAR

# CTCAE v5.0 chronic kidney disease grade thresholds on eGFR (mL/min/1.73 m2; NCI 2017).
CKD_GRADE_BELOW = (90.0, 60.0, 30.0, 15.0)
GRADE3_EGFR = CKD_GRADE_BELOW[2]
LANDMARK_DAYS = 4.0 * DAYS_PER_YEAR  # eGFR of 4-year survivors (docs/model.md 4.2)

NEPHROPATHY_STREAM = rng.stream_id("kidney/nephropathy")
NEPHROPATHY_LATENCY_STREAM = rng.stream_id("kidney/nephropathy-latency")


@njit(inline="always", **KERNEL)
def normal_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@njit(inline="always", **KERNEL)
def lkb(bed_gy, bed50_gy, m):
    """Lyman-Kutcher-Burman NTCP ``Phi((BED - BED50)/(m BED50))`` (Burman C et al. IJROBP 1991;21:123)."""
    return normal_cdf((bed_gy - bed50_gy) / (m * bed50_gy))


@njit(inline="always", **KERNEL)
def nephropathy_probability(bed_gy, bed50_gy, m, risk_factor, ratio):
    """LKB NTCP on cumulative kidney BED with BED50 multiplied by ``ratio`` for hypertension/diabetes (Bodei L et al.
    EJNMMI 2008;35:1847: BED thresholds 28 Gy with, 40 Gy without risk factors, a ratio of 0.7)."""
    return lkb(bed_gy, bed50_gy * (ratio if risk_factor > 0.0 else 1.0), m)


@njit(**KERNEL)
def egfr_at(t, e0, background_per_year, decline_per_gy_year, latency_days, cycle_days, cycle_beds, n_cycles,
            nephropathy_day, nephropathy_loss):
    """eGFR (mL/min) at day ``t``: the patient's background decline, a radiation decline proportional to each
    cycle's kidney BED starting ``latency`` after it, and a fractional loss at nephropathy onset; floored at 0."""
    e = e0 - background_per_year * t / DAYS_PER_YEAR
    for k in range(n_cycles):
        dt = t - cycle_days[k] - latency_days
        if dt > 0.0:
            e -= e0 * decline_per_gy_year * cycle_beds[k] * dt / DAYS_PER_YEAR
    if t >= nephropathy_day:
        e *= 1.0 - nephropathy_loss
    return max(e, 0.0)


@njit(**KERNEL)
def first_day_below(level, t_end, e0, background_per_year, decline_per_gy_year, latency_days, cycle_days,
                    cycle_beds, n_cycles, nephropathy_day, nephropathy_loss):
    """First day in ``[0, t_end]`` with eGFR below ``level`` (bisection: eGFR never rises); ``inf`` if none."""
    if e0 < level:
        return 0.0
    if egfr_at(t_end, e0, background_per_year, decline_per_gy_year, latency_days, cycle_days, cycle_beds,
               n_cycles, nephropathy_day, nephropathy_loss) >= level:
        return math.inf
    lo, hi = 0.0, t_end
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if egfr_at(mid, e0, background_per_year, decline_per_gy_year, latency_days, cycle_days, cycle_beds,
                   n_cycles, nephropathy_day, nephropathy_loss) < level:
            hi = mid
        else:
            lo = mid
    return hi


@njit(inline="always", **KERNEL)
def ckd_grade(egfr):
    """CTCAE v5.0 chronic kidney disease grade from eGFR alone (< 90: 1, < 60: 2, < 30: 3, < 15: 4)."""
    return grade_below(egfr, CKD_GRADE_BELOW)


@njit(inline="always", **KERNEL)
def radiation_decline(kidney, risk_factor):
    """The patient's eGFR loss per Gy of kidney BED per year (fraction of baseline): faster with risk factors."""
    return kidney.radiation_decline_per_gy_year * (kidney.risk_factor_decline_multiplier if risk_factor > 0.0 else 1.0)


@njit(**KERNEL)
def kidney_outcomes(patient_key, e0, background, risk_factor, decline, acute_day, cycle_days, cycle_beds, n_cycles,
                    last_admin, end_day, kidney):
    """Nephropathy (LKB draw on the cumulative BED when treated), then eGFR at ``end_day`` and at ``LANDMARK_DAYS``
    (NaN when that is after ``end_day``), and the first renal grade >= 3 event by ``end_day``: eGFR < 30 or an
    acute event of another cause at ``acute_day``. Returns ``(egfr_end, egfr_landmark, renal_grade3_day, acute)``,
    the day ``inf`` if none and ``acute`` whether the acute event came first."""
    nephropathy_day = math.inf
    if n_cycles > 0:
        bed_total = 0.0
        for c in range(n_cycles):
            bed_total += cycle_beds[c]
        ntcp = nephropathy_probability(bed_total, kidney.bed50_gy, kidney.lkb_m, risk_factor,
                                       kidney.risk_factor_bed50_ratio)
        if rng.draw_uniform(patient_key, NEPHROPATHY_STREAM) < ntcp:
            z = rng.draw_normal(patient_key, NEPHROPATHY_LATENCY_STREAM)
            latency = kidney.nephropathy_latency_days * math.exp(kidney.nephropathy_latency_sigma * z)
            nephropathy_day = last_admin + latency
    e_end = egfr_at(end_day, e0, background, decline, kidney.subclinical_latency_days, cycle_days, cycle_beds,
                    n_cycles, nephropathy_day, kidney.nephropathy_egfr_loss)
    e_landmark = math.nan
    if LANDMARK_DAYS <= end_day:
        e_landmark = egfr_at(LANDMARK_DAYS, e0, background, decline, kidney.subclinical_latency_days, cycle_days,
                             cycle_beds, n_cycles, nephropathy_day, kidney.nephropathy_egfr_loss)
    chronic_day = first_day_below(GRADE3_EGFR, end_day, e0, background, decline, kidney.subclinical_latency_days,
                                  cycle_days, cycle_beds, n_cycles, nephropathy_day, kidney.nephropathy_egfr_loss)
    if acute_day < chronic_day and acute_day <= end_day:
        return e_end, e_landmark, acute_day, True
    return e_end, e_landmark, chronic_day, False
