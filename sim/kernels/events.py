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
