"""CTCAE v5.0 grading of a laboratory value against descending thresholds (NCI CTCAE v5.0, 2017)."""

from numba import njit

from sim.kernels import KERNEL


@njit(inline="always", **KERNEL)
def grade_below(value, thresholds):
    """Grade g = the number of ``thresholds`` (descending) that ``value`` is below: 0 (normal) to 4."""
    g = 0
    for threshold in thresholds:
        if value < threshold:
            g += 1
    return g
