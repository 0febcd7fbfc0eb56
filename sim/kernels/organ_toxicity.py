"""Late toxicity of an optional organ at risk (xerostomia of the salivary glands), graded 0-2 from the organ's
cumulative BED by Lyman-Kutcher-Burman (docs/model.md 4.9)."""

import math

from numba import njit

from sim import rng
from sim.kernels import KERNEL, kidney


@njit(inline="always", **KERNEL)
def lkb(bed_gy, bed50_gy, m):
    """The LKB NTCP of a treated organ (BED > 0), else 0."""
    return kidney.lkb(bed_gy, bed50_gy, m) if bed_gy > 0.0 else 0.0


@njit(inline="always", **KERNEL)
def late_grade(patient_key, stream, bed_gy, bed50_gy, m, grade2_ratio, other_cause):
    """0, 1 or 2 from one uniform ``U`` of the organ's stream: grade >= 2 if ``U < LKB(BED; r BED50, m)``, grade >= 1
    if ``U < 1 - (1 - LKB(BED; BED50, m)) (1 - p_other)``; 0 for an organ without the model (``BED50`` infinite)."""
    if not bed50_gy < math.inf:
        return 0
    u = rng.uniform(rng.stream_key(patient_key, stream), 0)
    if u < lkb(bed_gy, grade2_ratio * bed50_gy, m):
        return 2
    if u < 1.0 - (1.0 - lkb(bed_gy, bed50_gy, m)) * (1.0 - other_cause):
        return 1
    return 0
