"""Treatment policy at a cycle's due day: the dosimetry-guided prescription (docs/model.md 5.2) and the protocol's
dose modification, withhold / reduce / discontinue (docs/model.md 4.5, 4.7). Policy, not physiology: the rules
are numbers of the arm (``policy``, built by ``sim.kernel_inputs``); the physiology they read (blood counts,
eGFR, known doses) comes from the patient's state.
"""

import math

from numba import njit

from sim.kernels import KERNEL
from sim.kernels.marrow import CIRC, line_grade

# Rules of a regimen (config ``arms.rule``; a fixed regimen has none).
RULE_FIXED, RULE_KIDNEY_LIMIT, RULE_KIDNEY_TARGET, RULE_TUMOUR_TARGET = range(4)
RULES = {"cycles_to_kidney_limit": RULE_KIDNEY_LIMIT, "activity_to_kidney_target": RULE_KIDNEY_TARGET,
         "tumour_dose_target": RULE_TUMOUR_TARGET}
NEVER_GRADE = 99.0  # a grade threshold that never triggers

# What the protocol rules do with a due cycle.
GIVE, WITHHOLD, DISCONTINUE = range(3)

EPS = 1e-9  # relative tolerance of the target and limit tests


@njit(inline="always", **KERNEL)
def bed_to_dose(bed_gy, g, alpha_beta_gy):
    """The one-cycle absorbed dose whose BED ``D (1 + G D/(alpha/beta))`` is ``bed_gy`` (positive root)."""
    if g == 0.0:
        return bed_gy
    c = g / alpha_beta_gy
    return (-1.0 + math.sqrt(1.0 + 4.0 * c * bed_gy)) / (2.0 * c)


@njit(inline="always", **KERNEL)
def kidney_limit(policy, risk_factor):
    """The arm's kidney BED limit for this patient (lower with hypertension or diabetes)."""
    return policy.kidney_limit_risk_factor_gy if risk_factor > 0.0 else policy.kidney_limit_gy


@njit(**KERNEL)
def guided_prescription(policy, k, kidney_known, marrow_known, tumour_known, g_kidney, g_marrow, risk_factor,
                        g_factor_kidney, alpha_beta_kidney):
    """``(stop, reached, activity_gbq)`` for cycle ``k >= 1``.

    ``kidney_known`` is the known cumulative kidney BED (dose for a dose target), ``marrow_known`` and
    ``tumour_known`` the known cumulative absorbed doses; ``g_*`` the measured Gy/GBq.
    """
    a = policy.guided_activity_gbq
    limit = kidney_limit(policy, risk_factor)
    marrow_limit = policy.marrow_limit_gy
    target = policy.target_gy
    if policy.rule == RULE_KIDNEY_LIMIT:  # ILUMINET: fixed activity until the kidney BED limit
        if kidney_known >= limit * (1.0 - EPS):
            return True, True, 0.0
        if marrow_known >= marrow_limit * (1.0 - EPS):
            return True, False, 0.0
        if not policy.reduce_last_cycle:
            return False, False, a
        a_kidney = bed_to_dose(limit - kidney_known, g_factor_kidney, alpha_beta_kidney) / g_kidney
        a_marrow = (marrow_limit - marrow_known) / g_marrow
        activity = min(a, a_kidney, a_marrow)
        if activity < policy.min_activity_gbq:
            return True, a_kidney <= a and a_kidney <= a_marrow, 0.0
        return False, False, activity
    if policy.rule == RULE_KIDNEY_TARGET:  # P-PRRT: activity per cycle to reach the kidney target over the induction
        if kidney_known >= target * (1.0 - EPS):
            return True, True, 0.0
        left = policy.n_cycles - k
        q = (target - kidney_known) / left
        need = bed_to_dose(q, g_factor_kidney, alpha_beta_kidney) if policy.target_is_bed else q
        cap = (marrow_limit - marrow_known) / g_marrow  # the marrow budget limits only the cycle that would pass it
        if marrow_known >= marrow_limit * (1.0 - EPS) or cap < policy.min_activity_gbq:
            return True, False, 0.0
        activity = min(need / g_kidney, cap)
        return False, False, min(max(activity, policy.min_activity_gbq), policy.max_activity_gbq)
    # tumour_dose_target: fixed activity until the tumour target, unless an organ limit would be passed
    if tumour_known >= target * (1.0 - EPS):
        return True, True, 0.0
    d_kidney = a * g_kidney
    if (kidney_known + d_kidney * (1.0 + g_factor_kidney * d_kidney / alpha_beta_kidney) > limit
            or marrow_known + a * g_marrow > marrow_limit):
        return True, False, 0.0
    return False, False, a


@njit(inline="always", **KERNEL)
def retreatment_fits(policy, kidney_known_bed, activity, g_kidney, g_factor_kidney, alpha_beta_kidney):
    """Whether a re-treatment cycle of ``activity`` keeps the known cumulative kidney BED within the re-treatment
    limit, its BED predicted from the measured Gy/GBq ``g_kidney`` (0 without kidney dosimetry: never binds)."""
    d = activity * g_kidney
    return kidney_known_bed + d * (1.0 + g_factor_kidney * d / alpha_beta_kidney) <= policy.retreat_kidney_limit_gy


@njit(inline="always", **KERNEL)
def target_reached(policy, risk_factor, kidney_known, tumour_known):
    """Whether the known cumulative quantity meets the rule's target or limit after the last cycle."""
    if policy.rule == RULE_KIDNEY_LIMIT:
        return kidney_known >= kidney_limit(policy, risk_factor) * (1.0 - EPS)
    if policy.rule == RULE_KIDNEY_TARGET:
        return kidney_known >= policy.target_gy * (1.0 - EPS)
    if policy.rule == RULE_TUMOUR_TARGET:
        return tumour_known >= policy.target_gy * (1.0 - EPS)
    return False


@njit(**KERNEL)
def protocol_action(policy, s, blood, state, nadir, egfr_now, e0, t):
    """Dose modification at a due day (docs/model.md 4.5): withhold while a blood line's current grade or the
    eGFR breaks a rule (re-check, or discontinue past the maximum delay), else reduce (or discontinue after the
    last allowed reduction) when a line's worst grade since the last administration, or a withheld cycle, calls
    for it, else restore a tolerated reduction. Updates the patient state record ``s``; returns the action."""
    withhold = egfr_now < policy.withhold_egfr_below_ml_min or egfr_now < (1.0 - policy.withhold_egfr_drop) * e0
    for b in range(state.shape[0]):
        withhold = withhold or line_grade(state[b, CIRC], blood.grade_below[b]) >= policy.withhold_grade[b]
    if withhold:
        s.withheld = True
        if t + policy.recheck_days - s.first_due > policy.max_delay_days:
            s.discontinued = True
            return DISCONTINUE
        return WITHHOLD
    reduce = s.withheld and policy.reduce_if_withheld
    for b in range(state.shape[0]):
        reduce = reduce or line_grade(nadir[b], blood.grade_below[b]) >= policy.reduce_grade[b]
    if reduce:
        if s.n_reductions >= policy.max_reductions:
            s.discontinued = True
            return DISCONTINUE
        s.reduced = True
        s.n_reductions += 1
    elif s.reduced and policy.restore_after_tolerated:
        s.reduced = False
    return GIVE
