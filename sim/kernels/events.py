"""Time-to-event draws by inversion of the cumulative hazard."""

import math

from numba import njit

from sim.config import DAYS_PER_YEAR


@njit(inline="always", cache=True)
def gompertz_death_day(age_years, hazard_65_per_year, slope_per_year, exp1):
    """Day of background death for a standard exponential ``exp1``.

    Gompertz hazard ``h(a) = h65 exp(b (a - 65))`` from age ``a`` at entry; inverting
    ``H(t) = h(a) (exp(b t) - 1) / b`` gives ``t = ln(1 + E b / h(a)) / b`` (Gompertz 1825).
    """
    h_now = hazard_65_per_year * math.exp(slope_per_year * (age_years - 65.0))
    if slope_per_year == 0.0:
        return DAYS_PER_YEAR * exp1 / h_now
    return DAYS_PER_YEAR * math.log1p(exp1 * slope_per_year / h_now) / slope_per_year


@njit(inline="always", cache=True)
def exponential_day(rate_per_day, exp1):
    """Event day of a constant hazard; infinite when the rate is zero."""
    if rate_per_day <= 0.0:
        return math.inf
    return exp1 / rate_per_day


@njit(inline="always", cache=True)
def mds_aml_probability(marrow_dose_gy, risk_per_gy, chemo_multiplier, prior_chemotherapy):
    """Lifetime probability of a therapy-related myeloid neoplasm, ``1 - exp(-b m D_marrow)``: linear in dose at
    low dose, calibrated to MDS 2.3 % after ~1 Gy (NETTER-1; Lutathera label)."""
    m = chemo_multiplier if prior_chemotherapy > 0.0 else 1.0
    return -math.expm1(-risk_per_gy * m * marrow_dose_gy)
