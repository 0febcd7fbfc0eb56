"""Kidney: nephropathy probability (LKB on cumulative BED) and the eGFR trajectory (docs/model.md 4.2)."""

import math

from numba import njit

from sim.config import DAYS_PER_YEAR
from sim.kernels.ctcae import grade_below
from sim.kernels.layout import CKD_GRADE_BELOW

GRADE3_EGFR = CKD_GRADE_BELOW[2]


@njit(inline="always", cache=True)
def normal_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@njit(inline="always", cache=True)
def nephropathy_probability(bed_gy, bed50_gy, m, risk_factor, shift_gy):
    """Lyman-Kutcher-Burman NTCP on cumulative kidney BED: ``Phi((BED - BED50)/(m BED50))`` with BED50 lowered
    by ``shift`` for hypertension/diabetes (Burman C et al. IJROBP 1991;21:123; Bodei L et al. EJNMMI
    2008;35:1847)."""
    b50 = bed50_gy - shift_gy * risk_factor
    return normal_cdf((bed_gy - b50) / (m * b50))


@njit(cache=True)
def egfr_at(t, e0, age_decline_per_year, decline_per_gy_year, latency_days, cycle_days, cycle_beds, n_cycles,
            nephropathy_day, nephropathy_loss):
    """eGFR (mL/min) at day ``t``: ageing decline, a radiation decline proportional to each cycle's kidney BED
    starting ``latency`` after it, and a fractional loss at nephropathy onset; floored at 0."""
    e = e0 - age_decline_per_year * t / DAYS_PER_YEAR
    for k in range(n_cycles):
        dt = t - cycle_days[k] - latency_days
        if dt > 0.0:
            e -= e0 * decline_per_gy_year * cycle_beds[k] * dt / DAYS_PER_YEAR
    if t >= nephropathy_day:
        e *= 1.0 - nephropathy_loss
    return max(e, 0.0)


@njit(cache=True)
def first_day_below(level, t_end, e0, age_decline_per_year, decline_per_gy_year, latency_days, cycle_days,
                    cycle_beds, n_cycles, nephropathy_day, nephropathy_loss):
    """First day in ``[0, t_end]`` with eGFR below ``level`` (bisection: eGFR never rises); ``inf`` if none."""
    if e0 < level:
        return 0.0
    if egfr_at(t_end, e0, age_decline_per_year, decline_per_gy_year, latency_days, cycle_days, cycle_beds,
               n_cycles, nephropathy_day, nephropathy_loss) >= level:
        return math.inf
    lo, hi = 0.0, t_end
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if egfr_at(mid, e0, age_decline_per_year, decline_per_gy_year, latency_days, cycle_days, cycle_beds,
                   n_cycles, nephropathy_day, nephropathy_loss) < level:
            hi = mid
        else:
            lo = mid
    return hi


@njit(inline="always", cache=True)
def ckd_grade(egfr):
    """CTCAE v5.0 chronic kidney disease grade from eGFR alone (< 90: 1, < 60: 2, < 30: 3, < 15: 4)."""
    return grade_below(egfr, CKD_GRADE_BELOW)
