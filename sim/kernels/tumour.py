"""Tumour kinetics: two viable clones, stroma, dead-cell clearance, new lesions, RECIST reading."""

import math

from numba import njit

from sim.kernels.layout import (
    CR_VOLUME_RATIO,
    PR_VOLUME_RATIO,
    RESPONSE_CR,
    RESPONSE_PR,
    RESPONSE_SD,
)


@njit(inline="always", cache=True)
def new_lesion_hazard(rate_per_day, viable_ratio, exponent, growth_per_day, dt):
    """Cumulative new-lesion hazard over ``dt`` for ``h(t) = h0 (W(t)/W0)^kappa`` with ``W`` growing as
    ``exp(g t)``: ``h0 (W/W0)^kappa expm1(kappa g dt) / (kappa g)`` (exact for exponential growth)."""
    if rate_per_day <= 0.0 or dt <= 0.0:
        return 0.0
    kappa_g = exponent * growth_per_day
    if kappa_g == 0.0:
        return rate_per_day * dt
    rate = rate_per_day * math.exp(exponent * math.log(viable_ratio))
    return rate * math.expm1(kappa_g * dt) / kappa_g


@njit(inline="always", cache=True)
def response_level(volume, baseline_volume):
    """RECIST 1.1 level of a non-progressing scan from the volume ratio (Eisenhauer 2009)."""
    ratio = volume / baseline_volume
    if ratio <= CR_VOLUME_RATIO:
        return RESPONSE_CR
    if ratio <= PR_VOLUME_RATIO:
        return RESPONSE_PR
    return RESPONSE_SD
