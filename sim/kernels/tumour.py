"""Tumour kinetics per lesion: stroma, receptor-positive and -negative clones, dead cells; new lesions; RECIST 1.1.

Each lesion of a patient holds four volumes (mL) in the workspace arrays ``stroma``, ``positive``, ``negative`` and
``dead`` (rows: patients, columns: lesions; only the patient's first ``lesion_count`` columns exist). Both clones
grow at the lesion's rate ``g_j``; dead cells clear at ``k_c``; stroma relaxes towards its baseline ratio to the
viable cells; a cycle kills receptor-positive cells at the lesion's BED and receptor-negative ones at the BED of
their (cross-fire) share of the dose (docs/model.md 3). RECIST reads the target lesions' sum of diameters, the
non-target volume and new lesions.
"""

import math

from numba import njit

from sim.kernels import KERNEL
from sim.rng import stream_id

# RECIST 1.1 (Eisenhauer EA et al., Eur J Cancer 2009;45:228-247) on the sum of the target lesions' diameters: PR at
# -30 % from baseline, PD at +20 % (and + lesions.progression_absolute_mm) over the smallest sum so far.
PR_SUM_RATIO = 0.7
PD_SUM_RATIO = 1.2
ROLE_ABSENT, ROLE_TARGET, ROLE_NON_TARGET = 0, 1, 2  # a lesion's RECIST role (sim.kernel_inputs.lesion_layout)
ROLE_MEANINGS = "absent target non_target"

# Best overall response and progression type codes (stored as int8; meanings go into the file attributes).
RESPONSE_NE, RESPONSE_CR, RESPONSE_PR, RESPONSE_SD, RESPONSE_PD = 0, 1, 2, 3, 4
RESPONSE_MEANINGS = "not_evaluable complete_response partial_response stable_disease progressive_disease"
PROGRESSION_NONE, PROGRESSION_TARGET, PROGRESSION_NEW_LESION, PROGRESSION_BOTH = 0, 1, 2, 3
PROGRESSION_MEANINGS = "none target_growth new_lesion target_growth_and_new_lesion"

# Random streams of the lesions: item j of each is lesion j (counter: cycle).
LESION_INTRA_STREAM = stream_id("dosimetry/lesion/intra-patient")
LESION_MEASUREMENT_STREAM = stream_id("dosimetry/lesion/measurement")
NEW_LESION_STREAM = stream_id("tumour/new-lesion")
NEW_LESION_RETREATMENT_STREAM = stream_id("tumour/new-lesion-after-retreatment")
RESECTION_STREAM = stream_id("tumour/resection")  # the one decision whether an eligible patient is resected

# PCWG3 PSA end points (Scher HI et al. J Clin Oncol 2016;34:1402): PSA50 a fall to <= 50 % of baseline, confirmed by a
# value >= 3 weeks later; progression a rise of >= 25 % and >= 2 ng/mL over the nadir (over baseline, from 12 weeks
# on, without a decline), confirmed >= 3 weeks later and dated at the first rising value.
PSA50_RATIO = 0.5
PSA_RISE_RATIO = 1.25
PSA_RISE_NG_ML = 2.0
PSA_CONFIRM_DAYS = 21.0
PSA_NO_DECLINE_DAYS = 84.0


@njit(inline="always", **KERNEL)
def lesions_start(i, P, stroma, positive, negative, dead):
    """Baseline compartments of patient ``i``'s lesions; returns the total volume and the total viable volume."""
    total = 0.0
    viable_total = 0.0
    for j in range(P.lesion_count[i]):
        v0 = P.lesion_volume_ml[i, j]
        stroma[i, j] = P.lesion_stroma_fraction[i, j] * v0
        viable = v0 - stroma[i, j]
        negative[i, j] = P.lesion_negative_fraction[i, j] * viable
        positive[i, j] = viable - negative[i, j]
        dead[i, j] = 0.0
        total += v0
        viable_total += viable
    return total, viable_total


@njit(inline="always", **KERNEL)
def stroma_after(s, viable, ratio, growth_per_day, relax_per_day, dt):
    """Stroma after ``dt`` days for ``dS/dt = -k (S - r V(t))``, ``V = V0 exp(g t)`` (viable cells), ``r`` the
    lesion's baseline stroma / viable ratio: ``exp(-k dt) [S + r k V0 expm1((g + k) dt) / (g + k)]`` (exact).
    ``k = 0``: constant stroma."""
    if relax_per_day == 0.0:
        return s
    rate = growth_per_day + relax_per_day
    if rate == 0.0:
        integral = dt
    else:
        integral = math.expm1(rate * dt) / rate
    return math.exp(-relax_per_day * dt) * (s + ratio * relax_per_day * viable * integral)


@njit(inline="always", **KERNEL)
def lesions_grow(i, P, clearance_per_day, relax_per_day, dt, stroma, positive, negative, dead):
    """Advance patient ``i``'s lesions by ``dt`` days: ``P, N x exp(g_j dt)``, ``D x exp(-k_c dt)``, stroma by
    ``stroma_after``."""
    clear = math.exp(-clearance_per_day * dt)
    for j in range(P.lesion_count[i]):
        g = P.lesion_growth_per_day[i, j]
        f = P.lesion_stroma_fraction[i, j]
        stroma[i, j] = stroma_after(stroma[i, j], positive[i, j] + negative[i, j], f / (1.0 - f), g,
                                    relax_per_day, dt)
        grow = math.exp(g * dt)
        positive[i, j] *= grow
        negative[i, j] *= grow
        dead[i, j] *= clear


@njit(inline="always", **KERNEL)
def psa_source(i, P, negative_ratio, positive, negative):
    """Patient ``i``'s viable PSA-secreting volume (mL): receptor-positive cells plus ``negative_ratio`` x
    receptor-negative ones (stroma secretes none)."""
    total = 0.0
    for j in range(P.lesion_count[i]):
        total += positive[i, j] + negative_ratio * negative[i, j]
    return total


@njit(inline="always", **KERNEL)
def _secreted(source, rate_per_day, clearance, decay, dt):
    """``int_0^dt source e^(r tau) e^(-k (dt - tau)) dtau`` (exact)."""
    rate = rate_per_day + clearance
    return source * decay * (math.expm1(rate * dt) / rate if rate != 0.0 else dt)


@njit(inline="always", **KERNEL)
def psa_after(psa, secretion, clearance, i, P, lesions, positive, negative, dead, dt):
    """Serum PSA after ``dt`` days of ``dPSA/dt = s W(t) - k PSA``: each lesion's viable source ``P + r_n N`` grows
    as ``exp(g_j t)`` and its lethally irradiated cells ``r_d D`` clear as ``exp(-k_c t)`` (exact):
    ``PSA e^(-k dt) + s sum_j [W_j (e^(g_j dt) - e^(-k dt)) / (g_j + k) + ...]``."""
    decay = math.exp(-clearance * dt)
    out = psa * decay
    for j in range(P.lesion_count[i]):
        out += secretion * _secreted(positive[i, j] + lesions.psa_negative_ratio * negative[i, j],
                                     P.lesion_growth_per_day[i, j], clearance, decay, dt)
        out += secretion * _secreted(lesions.psa_dead_ratio * dead[i, j], -lesions.dead_clearance_per_day,
                                     clearance, decay, dt)
    return out


@njit(inline="always", **KERNEL)
def lesion_volume(i, j, stroma, positive, negative, dead):
    return stroma[i, j] + positive[i, j] + negative[i, j] + dead[i, j]


@njit(inline="always", **KERNEL)
def index_viable_ratio(i, P, positive, negative):
    """The index lesion's (lesion 0) viable volume now over its baseline viable volume ``(1 - f_s) V0``."""
    return (positive[i, 0] + negative[i, 0]) / (P.lesion_volume_ml[i, 0] * (1.0 - P.lesion_stroma_fraction[i, 0]))


@njit(inline="always", **KERNEL)
def downstaged(i, P, lesions, positive, negative):
    """Eligible for surgery (docs/model.md 5.6): every lesion in the treated territory (receptor-positive) and the
    index lesion's viable volume at most ``resection_viable_ratio`` of baseline."""
    for j in range(P.lesion_count[i]):
        if P.lesion_receptor_negative[i, j]:
            return False
    return index_viable_ratio(i, P, positive, negative) <= lesions.resection_viable_ratio


@njit(inline="always", **KERNEL)
def resect(i, P, residual_ml, stroma, positive, negative, dead):
    """Surgery removes each of patient ``i``'s lesions but at most ``residual_ml`` of its viable cells (both clones
    alike): no stroma and no dead cells remain."""
    for j in range(P.lesion_count[i]):
        viable = positive[i, j] + negative[i, j]
        f = residual_ml / viable if viable > residual_ml else 1.0
        positive[i, j] *= f
        negative[i, j] *= f
        stroma[i, j] = 0.0
        dead[i, j] = 0.0


@njit(inline="always", **KERNEL)
def viable_and_growth(i, P, positive, negative):
    """Patient ``i``'s viable volume ``W = sum (P + N)`` (mL) and its growth rate ``sum g_j W_j / W`` (1/day)."""
    total = 0.0
    weighted = 0.0
    for j in range(P.lesion_count[i]):
        w = positive[i, j] + negative[i, j]
        total += w
        weighted += P.lesion_growth_per_day[i, j] * w
    return total, (weighted / total if total > 0.0 else 0.0)


@njit(inline="always", **KERNEL)
def kill(i, j, surviving_positive, surviving_negative, positive, negative, dead):
    """A cycle moves the killed cells of lesion ``j`` to the dead cells: ``P (1 - SF+)`` and ``N (1 - SF-)``."""
    killed_p = positive[i, j] * (1.0 - surviving_positive)
    killed_n = negative[i, j] * (1.0 - surviving_negative)
    positive[i, j] -= killed_p
    negative[i, j] -= killed_n
    dead[i, j] += killed_p + killed_n


@njit(inline="always", **KERNEL)
def diameter_mm(volume_ml):
    """Diameter of a sphere of ``volume_ml``: ``10 (6 V / pi)^(1/3)`` mm."""
    return 10.0 * (6.0 * volume_ml / math.pi) ** (1.0 / 3.0)


@njit(inline="always", **KERNEL)
def reading(i, P, lesions, stroma, positive, negative, dead):
    """One scan's RECIST 1.1 measurements of patient ``i``: ``(target sum of diameters (mm), non-target volume (mL),
    whether every lesion has disappeared, tumour volume (mL))``. A lesion smaller than ``disappeared_ml`` counts
    0 mm."""
    target_sum = 0.0
    non_target = 0.0
    total = 0.0
    gone = True
    for j in range(P.lesion_count[i]):
        v = lesion_volume(i, j, stroma, positive, negative, dead)
        total += v
        visible = v >= lesions.disappeared_ml
        gone = gone and not visible
        if P.lesion_role[i, j] == ROLE_TARGET:
            if visible:
                target_sum += diameter_mm(v)
        else:
            non_target += v
    return target_sum, non_target, gone, total


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
def response_level(target_sum, baseline_sum, gone):
    """RECIST 1.1 level of a non-progressing scan (Eisenhauer 2009): CR when every lesion has disappeared, PR at a
    target sum <= 70 % of baseline, else SD (for a patient without target lesions: non-CR/non-PD, read as SD)."""
    if gone:
        return RESPONSE_CR
    if baseline_sum > 0.0 and target_sum <= PR_SUM_RATIO * baseline_sum:
        return RESPONSE_PR
    return RESPONSE_SD
