"""Dosimetry-guided prescription rules, evaluated before each cycle from the doses known so far
(docs/model.md section 5.2). Policy, not physiology: the numbers come from ``regimens.encode``."""

import math

from numba import njit

from sim.kernels import layout as L

EPS = 1e-9


@njit(inline="always", cache=True)
def bed_to_dose(bed_gy, g, alpha_beta_gy):
    """The one-cycle absorbed dose whose BED ``D (1 + G D/(alpha/beta))`` is ``bed_gy`` (positive root)."""
    if g == 0.0:
        return bed_gy
    c = g / alpha_beta_gy
    return (-1.0 + math.sqrt(1.0 + 4.0 * c * bed_gy)) / (2.0 * c)


@njit(cache=True)
def guided_prescription(regimen, k, kidney_known, marrow_known, tumour_known, g_kidney, g_marrow, risk_factor,
                        g_factor_kidney, alpha_beta_kidney):
    """``(stop, reached, activity_gbq)`` for cycle ``k >= 1``.

    ``kidney_known`` is the known cumulative kidney BED (dose for a dose target), ``marrow_known`` and
    ``tumour_known`` the known cumulative absorbed doses; ``g_*`` the measured Gy/GBq.
    """
    rule = int(regimen[L.R_RULE])
    a = regimen[L.R_GUIDED_ACTIVITY]
    kidney_limit = regimen[L.R_KIDNEY_LIMIT_RF_GY] if risk_factor > 0.0 else regimen[L.R_KIDNEY_LIMIT_GY]
    marrow_limit = regimen[L.R_MARROW_LIMIT_GY]
    target = regimen[L.R_TARGET]
    if rule == L.RULE_KIDNEY_LIMIT:  # ILUMINET: fixed activity until the kidney BED limit
        if kidney_known >= kidney_limit * (1.0 - EPS):
            return True, True, 0.0
        if marrow_known >= marrow_limit * (1.0 - EPS):
            return True, False, 0.0
        if regimen[L.R_REDUCE_LAST] == 0.0:
            return False, False, a
        a_kidney = bed_to_dose(kidney_limit - kidney_known, g_factor_kidney, alpha_beta_kidney) / g_kidney
        a_marrow = (marrow_limit - marrow_known) / g_marrow
        activity = min(a, a_kidney, a_marrow)
        if activity < regimen[L.R_MIN_ACTIVITY]:
            return True, a_kidney <= a and a_kidney <= a_marrow, 0.0
        return False, False, activity
    if rule == L.RULE_KIDNEY_TARGET:  # P-PRRT: activity per cycle to reach the kidney target over the induction
        if kidney_known >= target * (1.0 - EPS):
            return True, True, 0.0
        left = regimen[L.R_N_CYCLES] - k
        q = (target - kidney_known) / left
        need = bed_to_dose(q, g_factor_kidney, alpha_beta_kidney) if regimen[L.R_TARGET_IS_BED] > 0.0 else q
        cap = (marrow_limit - marrow_known) / (g_marrow * left)
        if cap < regimen[L.R_MIN_ACTIVITY]:
            return True, False, 0.0
        activity = min(need / g_kidney, cap)
        return False, False, min(max(activity, regimen[L.R_MIN_ACTIVITY]), regimen[L.R_MAX_ACTIVITY])
    # tumour_dose_target: fixed activity until the tumour target, unless an organ limit would be passed
    if tumour_known >= target * (1.0 - EPS):
        return True, True, 0.0
    d_kidney = a * g_kidney
    if (kidney_known + d_kidney * (1.0 + g_factor_kidney * d_kidney / alpha_beta_kidney) > kidney_limit
            or marrow_known + a * g_marrow > marrow_limit):
        return True, False, 0.0
    return False, False, a


@njit(inline="always", cache=True)
def target_reached(regimen, risk_factor, kidney_known, tumour_known):
    """Whether the known cumulative quantity meets the rule's target or limit after the last cycle."""
    rule = int(regimen[L.R_RULE])
    if rule == L.RULE_KIDNEY_LIMIT:
        limit = regimen[L.R_KIDNEY_LIMIT_RF_GY] if risk_factor > 0.0 else regimen[L.R_KIDNEY_LIMIT_GY]
        return kidney_known >= limit * (1.0 - EPS)
    if rule == L.RULE_KIDNEY_TARGET:
        return kidney_known >= regimen[L.R_TARGET] * (1.0 - EPS)
    if rule == L.RULE_TUMOUR_TARGET:
        return tumour_known >= regimen[L.R_TARGET] * (1.0 - EPS)
    return False
