"""Linear-quadratic radiobiology for a decaying, exponentially cleared dose rate."""

import math

from numba import njit

from sim.kernels import KERNEL

LN2 = math.log(2.0)


@njit(inline="always", **KERNEL)
def g_factor(effective_half_life_h, repair_half_time_h):
    """Lea-Catcheside factor of a mono-exponential dose rate delivered to completion.

    ``G = lambda / (lambda + mu)`` with ``lambda = ln2/T_eff`` and ``mu = ln2/T_rep`` (Dale RG, Br J Radiol
    1985;58:515-528), i.e. ``T_rep / (T_rep + T_eff)``.
    """
    return repair_half_time_h / (repair_half_time_h + effective_half_life_h)


@njit(inline="always", **KERNEL)
def bed(dose_gy, effective_half_life_h, repair_half_time_h, alpha_beta_gy):
    """Biologically effective dose of one administration: ``D (1 + G D / (alpha/beta))`` (Dale 1985)."""
    return dose_gy * (1.0 + g_factor(effective_half_life_h, repair_half_time_h) * dose_gy / alpha_beta_gy)


@njit(inline="always", **KERNEL)
def surviving_fraction(alpha_per_gy, bed_gy):
    """LQ surviving fraction ``exp(-alpha BED)`` (BED already carries the beta term; Fowler 1989)."""
    return math.exp(-alpha_per_gy * bed_gy)
