"""Tumour kinetics per lesion: stroma, receptor-positive and -negative clones, dead cells; new lesions; RECIST.

Each lesion of a patient holds four volumes (mL) in the workspace arrays ``stroma``, ``positive``,
``negative`` and ``dead`` (rows: patients, columns: lesions). Stroma is constant; both clones grow at the
patient's rate ``g``; dead cells clear at ``k_c``; a cycle kills receptor-positive cells only (docs/model.md 3).
The RECIST reading and the new-lesion hazard use the sums over lesions, so one lesion holding the whole
tumour volume is the model of version 1.
"""

import math

from numba import njit

from sim.kernels import KERNEL
from sim.rng import stream_id

# RECIST 1.1 (Eisenhauer EA et al., Eur J Cancer 2009;45:228-247) on the sum of diameters, read here as
# volume^(1/3): PR = -30 % diameters (volume x 0.343), PD = +20 % over the nadir (volume x 1.728). CR is
# taken as diameters below 10 % of baseline (volume x 0.001): lesions no longer measurable.
PR_VOLUME_RATIO = 0.7**3
PD_VOLUME_RATIO = 1.2**3
CR_VOLUME_RATIO = 0.1**3

# Best overall response and progression type codes (stored as int8; meanings go into the file attributes).
RESPONSE_NE, RESPONSE_CR, RESPONSE_PR, RESPONSE_SD, RESPONSE_PD = 0, 1, 2, 3, 4
RESPONSE_MEANINGS = "not_evaluable complete_response partial_response stable_disease progressive_disease"
PROGRESSION_NONE, PROGRESSION_TARGET, PROGRESSION_NEW_LESION, PROGRESSION_BOTH = 0, 1, 2, 3
PROGRESSION_MEANINGS = "none target_growth new_lesion target_growth_and_new_lesion"

# Random streams of the lesions: item j of each is lesion j (counter: cycle).
LESION_INTRA_STREAM = stream_id("dosimetry/lesion/intra-patient")
LESION_MEASUREMENT_STREAM = stream_id("dosimetry/lesion/measurement")
NEW_LESION_STREAM = stream_id("tumour/new-lesion")


@njit(inline="always", **KERNEL)
def lesions_start(i, volume_ml, stroma_fraction, negative_fraction, stroma, positive, negative, dead):
    """Baseline compartments of patient ``i``'s lesions; returns the total volume and the total viable volume."""
    total = 0.0
    viable_total = 0.0
    for j in range(volume_ml.shape[1]):
        v0 = volume_ml[i, j]
        stroma[i, j] = stroma_fraction[i, j] * v0
        viable = v0 - stroma[i, j]
        negative[i, j] = negative_fraction[i, j] * viable
        positive[i, j] = viable - negative[i, j]
        dead[i, j] = 0.0
        total += v0
        viable_total += viable
    return total, viable_total


@njit(inline="always", **KERNEL)
def lesions_grow(i, growth_per_day, clearance_per_day, dt, positive, negative, dead):
    """Advance patient ``i``'s lesions by ``dt`` days: ``P, N x exp(g dt)``, ``D x exp(-k_c dt)``."""
    grow = math.exp(growth_per_day * dt)
    clear = math.exp(-clearance_per_day * dt)
    for j in range(positive.shape[1]):
        positive[i, j] *= grow
        negative[i, j] *= grow
        dead[i, j] *= clear


@njit(inline="always", **KERNEL)
def tumour_volume(i, stroma, positive, negative, dead):
    """Sum over patient ``i``'s lesions of ``S + P + N + D`` (mL)."""
    total = 0.0
    for j in range(stroma.shape[1]):
        total += stroma[i, j] + positive[i, j] + negative[i, j] + dead[i, j]
    return total


@njit(inline="always", **KERNEL)
def viable_volume(i, positive, negative):
    """Sum over patient ``i``'s lesions of ``P + N`` (mL)."""
    total = 0.0
    for j in range(positive.shape[1]):
        total += positive[i, j] + negative[i, j]
    return total


@njit(inline="always", **KERNEL)
def kill_positive(i, j, surviving, positive, dead):
    """A cycle moves the killed receptor-positive cells, ``P (1 - SF)``, of lesion ``j`` to the dead cells."""
    killed = positive[i, j] * (1.0 - surviving)
    positive[i, j] -= killed
    dead[i, j] += killed


@njit(inline="always", **KERNEL)
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


@njit(inline="always", **KERNEL)
def response_level(volume, baseline_volume):
    """RECIST 1.1 level of a non-progressing scan from the volume ratio (Eisenhauer 2009)."""
    ratio = volume / baseline_volume
    if ratio <= CR_VOLUME_RATIO:
        return RESPONSE_CR
    if ratio <= PR_VOLUME_RATIO:
        return RESPONSE_PR
    return RESPONSE_SD
