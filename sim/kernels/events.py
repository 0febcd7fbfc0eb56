"""Competing events: background and cancer deaths, dropout, therapy-related MDS/AML (docs/model.md 3, 4.3, 4.4).

Time-to-event draws invert the cumulative hazard; each event has its own random stream (counter 0).
"""

import math

from numba import njit

from sim import rng
from sim.kernels import KERNEL
from sim.units import DAYS_PER_YEAR

# Cause of death codes (int8 in the outputs).
CAUSE_ALIVE, CAUSE_CANCER_AFTER_PROGRESSION, CAUSE_CANCER_BEFORE_PROGRESSION, CAUSE_OTHER, CAUSE_TREATMENT = range(5)
CAUSE_MEANINGS = "alive_or_censored cancer_after_progression cancer_before_progression other_causes treatment_related"

BACKGROUND_DEATH_STREAM = rng.stream_id("death/background")
DROPOUT_STREAM = rng.stream_id("trial/dropout")
PRE_PROGRESSION_DEATH_STREAM = rng.stream_id("death/pre-progression")
POST_PROGRESSION_DEATH_STREAM = rng.stream_id("death/post-progression")
MDS_ONSET_STREAM = rng.stream_id("mds/onset")
MDS_LATENCY_STREAM = rng.stream_id("mds/latency")
MDS_DEATH_STREAM = rng.stream_id("mds/death")


@njit(inline="always", **KERNEL)
def gompertz_death_day(age_years, hazard_65_per_year, slope_per_year, exp1):
    """Day of background death for a standard exponential ``exp1``.

    Gompertz hazard ``h(a) = h65 exp(b (a - 65))`` from age ``a`` at entry; inverting
    ``H(t) = h(a) (exp(b t) - 1) / b`` gives ``t = ln(1 + E b / h(a)) / b`` (Gompertz 1825).
    """
    h_now = hazard_65_per_year * math.exp(slope_per_year * (age_years - 65.0))
    if slope_per_year == 0.0:
        return DAYS_PER_YEAR * exp1 / h_now
    return DAYS_PER_YEAR * math.log1p(exp1 * slope_per_year / h_now) / slope_per_year


@njit(inline="always", **KERNEL)
def exponential_day(rate_per_day, exp1):
    """Event day of a constant hazard; infinite when the rate is zero."""
    if rate_per_day <= 0.0:
        return math.inf
    return exp1 / rate_per_day


@njit(inline="always", **KERNEL)
def mds_aml_probability(marrow_dose_gy, risk_per_gy, chemo_multiplier, prior_chemotherapy):
    """Lifetime probability of a therapy-related myeloid neoplasm, ``1 - exp(-b m D_marrow)``: linear in dose at
    low dose, calibrated to MDS 2.3 % after ~1 Gy (NETTER-1; Lutathera label)."""
    m = chemo_multiplier if prior_chemotherapy > 0.0 else 1.0
    return -math.expm1(-risk_per_gy * m * marrow_dose_gy)


@njit(**KERNEL)
def mds_onset_and_death(patient_key, marrow_total_gy, prior_chemo, last_admin_day, ev):
    """(onset day, death day) of MDS/AML, both infinite when it does not occur (docs/model.md 4.3); ``ev`` is the
    ``Events`` input group."""
    prob = mds_aml_probability(marrow_total_gy, ev.mds_risk_per_gy, ev.mds_chemo_multiplier, prior_chemo)
    if rng.draw_uniform(patient_key, MDS_ONSET_STREAM) >= prob:
        return math.inf, math.inf
    onset = last_admin_day + ev.mds_latency_days * math.exp(
        ev.mds_latency_sigma * rng.draw_normal(patient_key, MDS_LATENCY_STREAM))
    return onset, onset + exponential_day(ev.mds_death_per_day, rng.draw_exponential(patient_key, MDS_DEATH_STREAM))
