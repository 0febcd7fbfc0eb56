"""Virtual patients: correlated covariates (Gaussian copula) and per-patient, agent-specific parameters.

Every patient's values come from its own random streams (``sim.rng``), keyed by a global patient id, so a
patient is the same whether simulated alone, in a chunk, or in a larger cohort.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from sim import rng
from sim.config import (
    COVARIATE_NAMES,
    DAYS_PER_MONTH,
    Agent,
    Bernoulli,
    Beta,
    Config,
    LogNormal,
    Marginal,
    Normal,
)
from sim.kernels import layout as L
from sim.kernels.beta_quantile import TABLE_NODES, Z_RANGE, beta_ppf

ENTRY_COUNTER = 1000  # stream-0 counter of the trial-entry uniform, clear of the covariate normals
# stream-1 normals: kidney, kidney T_eff, marrow, marrow T_eff, tumour, tumour T_eff, marrow alpha
N_PATIENT_EFFECTS = 7


@dataclass(frozen=True)
class Cohort:
    """Struct of arrays, one row per patient."""

    patient_ids: np.ndarray  # int64 global ids (random-stream keys)
    covariates: dict[str, np.ndarray]  # COVARIATE_NAMES -> float64 arrays
    entry_day: np.ndarray
    admin_censor_day: np.ndarray
    effects: np.ndarray  # (n, N_PATIENT_EFFECTS) standard normals of the dosimetry random effects

    def __len__(self) -> int:
        return len(self.patient_ids)


def marginal_ppf(m: Marginal, u: np.ndarray) -> np.ndarray:
    """Inverse CDF of a covariate marginal at ``u`` in (0, 1); truncation by rescaling ``u``."""
    if isinstance(m, Bernoulli):
        return (u > 1.0 - m.p).astype(np.float64)
    if isinstance(m, Beta):
        nu = m.mean * (1 - m.mean) / m.sd**2 - 1.0
        a, b = m.mean * nu, (1 - m.mean) * nu
        out = np.empty(u.shape)
        beta_ppf(np.ascontiguousarray(u, dtype=np.float64), a, b, special.betaln(a, b), *beta_ppf_table(a, b), out)
        return out
    if isinstance(m, Normal):
        loc, scale, to_x = m.mean, m.sd, lambda z: z
        lo, hi = m.low, m.high
    elif isinstance(m, LogNormal):
        loc, scale, to_x = math.log(m.median), m.sigma_ln, np.exp
        lo = math.log(m.low) if m.low else None
        hi = math.log(m.high) if m.high is not None else None
    else:  # pragma: no cover - the config union is exhaustive
        raise TypeError(type(m))
    if scale == 0.0:
        return to_x(np.full_like(u, loc))
    f_lo = stats.norm.cdf((lo - loc) / scale) if lo is not None else 0.0
    f_hi = stats.norm.cdf((hi - loc) / scale) if hi is not None else 1.0
    return to_x(loc + scale * special.ndtri(f_lo + u * (f_hi - f_lo)))


@functools.lru_cache(maxsize=64)
def beta_ppf_table(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Starting table of ``kernels.beta_quantile.beta_ppf``: the logit of the Beta(a, b) quantile at
    ``TABLE_NODES`` equally spaced normal scores on ``[-Z_RANGE, Z_RANGE]``, and its derivative in ``z``
    (``phi(z) B(a, b) / (x^a (1 - x)^b)``). Upper nodes come from the mirrored distribution, so that ``1 - x``
    keeps its precision."""
    z = np.linspace(-Z_RANGE, Z_RANGE, TABLE_NODES)
    lower, upper = z <= 0.0, z > 0.0
    log_x, log_y = np.empty_like(z), np.empty_like(z)  # ln x, ln(1 - x)
    x = special.betaincinv(a, b, special.ndtr(z[lower]))
    log_x[lower], log_y[lower] = np.log(x), np.log1p(-x)
    y = special.betaincinv(b, a, special.ndtr(-z[upper]))
    log_x[upper], log_y[upper] = np.log1p(-y), np.log(y)
    slopes = np.exp(-0.5 * z * z - 0.5 * math.log(2.0 * math.pi) + special.betaln(a, b) - a * log_x - b * log_y)
    return log_x - log_y, slopes


def draw(cfg: Config, patient_ids: np.ndarray) -> Cohort:
    """Draw the patients ``patient_ids`` of the scenario ``cfg`` (any subset gives the same rows)."""
    ids = np.ascontiguousarray(patient_ids, dtype=np.int64)
    seed = cfg.trial.seed
    z = rng.normals(seed, ids, rng.STREAM_COVARIATES, 0, len(COVARIATE_NAMES))
    chol = np.linalg.cholesky(cfg.cohort.correlation_matrix())
    u = special.ndtr(z @ chol.T)
    marginals = cfg.cohort.covariates
    covariates = {name: marginal_ppf(getattr(marginals, name), u[:, j]) for j, name in enumerate(COVARIATE_NAMES)}
    accrual_days = cfg.trial.accrual_months * DAYS_PER_MONTH
    entry = rng.uniforms(seed, ids, rng.STREAM_COVARIATES, ENTRY_COUNTER, 1)[:, 0] * accrual_days
    censor = accrual_days - entry + cfg.trial.follow_up_months * DAYS_PER_MONTH
    effects = rng.normals(seed, ids, rng.STREAM_PATIENT_EFFECTS, 0, N_PATIENT_EFFECTS)
    return Cohort(ids, covariates, entry, censor, effects)


def median_growth_per_day(cfg: Config) -> float:
    """Growth rate at the median of the configured doubling-time marginal."""
    td_months = marginal_ppf(cfg.cohort.covariates.doubling_time_months, np.array([0.5]))[0]
    return math.log(2.0) / (td_months * DAYS_PER_MONTH)


def kernel_patients(cfg: Config, cohort: Cohort, agent: Agent | None) -> np.ndarray:
    """The kernel's patient matrix (``layout`` columns) for one arm's agent (``None``: no dosimetry)."""
    c = cohort.covariates
    n = len(cohort)
    nh = cfg.natural_history
    out = np.zeros((n, L.N_PATIENT))
    growth = math.log(2.0) / (c["doubling_time_months"] * DAYS_PER_MONTH)
    out[:, L.AGE_YEARS] = c["age_years"]
    out[:, L.TUMOUR_VOLUME_ML] = c["tumour_volume_ml"]
    out[:, L.STROMA_FRACTION] = c["stroma_fraction"]
    out[:, L.RECEPTOR_NEGATIVE_FRACTION] = c["receptor_negative_fraction"]
    out[:, L.GROWTH_PER_DAY] = growth
    out[:, L.NEW_LESION_PER_DAY] = c["new_lesion_rate_per_month"] / DAYS_PER_MONTH
    out[:, L.TUMOUR_ALPHA_PER_GY] = c["tumour_alpha_per_gy"]
    out[:, L.ADMIN_CENSOR_DAY] = cohort.admin_censor_day
    out[:, L.POST_PROGRESSION_DEATH_PER_DAY] = (nh.post_progression_death_per_month / DAYS_PER_MONTH) * (
        growth / median_growth_per_day(cfg)) ** nh.post_progression_growth_exponent
    out[:, L.PLATELETS_BASELINE] = c["platelets_1e9_per_l"]
    out[:, L.NEUTROPHILS_BASELINE] = c["neutrophils_1e9_per_l"]
    out[:, L.MARROW_ALPHA_PER_GY] = marrow_alpha(cfg, cohort)
    out[:, L.EGFR_BASELINE] = c["egfr_ml_min"]
    out[:, L.KIDNEY_RISK_FACTOR] = has_kidney_risk_factor(cohort)
    out[:, L.PRIOR_CHEMOTHERAPY] = c["prior_chemotherapy"]
    if agent is not None:
        dosimetry = patient_dosimetry(agent, cohort)
        for col, values in dosimetry.items():
            out[:, col] = values
    return out


def has_kidney_risk_factor(cohort: Cohort) -> np.ndarray:
    """Hypertension or diabetes (Bodei L et al. EJNMMI 2008;35:1847), as 0/1 floats."""
    c = cohort.covariates
    return ((c["hypertension"] > 0) | (c["diabetes"] > 0)).astype(np.float64)


def marrow_alpha(cfg: Config, cohort: Cohort) -> np.ndarray:
    """Progenitor radiosensitivity (1/Gy): lower marrow reserve after chemotherapy, with bone metastases and
    with age (Bergsma H et al. EJNMMI 2016;43:453; Groener D et al. 2021), times a log-normal effect."""
    m, c = cfg.marrow, cohort.covariates
    return (m.alpha_per_gy * np.exp(m.alpha_sigma_ln * cohort.effects[:, rng.EFFECT_MARROW_ALPHA])
            * m.prior_chemotherapy_multiplier ** c["prior_chemotherapy"]
            * m.bone_metastases_multiplier ** c["bone_metastases"]
            * np.exp(m.age_log_slope_per_year * (c["age_years"] - 65.0)))


def patient_dosimetry(agent: Agent, cohort: Cohort) -> dict[int, np.ndarray]:
    """Per-patient Gy/GBq and effective half-lives (h) of one agent, keyed by ``layout`` column.

    Inter-patient log-normal effects times covariate modifiers: kidney risk factors (Guerriero F et al.,
    Biomed Res Int 2013;935351), renal function (Svensson J et al., EJNMMI 2015;42:947), bone metastases
    for marrow (Hagmarker L et al., J Nucl Med 2019;60:1406), receptor expression for tumour uptake, and
    the tumour sink (Beauregard JM et al., EJNMMI 2012;39:50) for both organs.
    """
    c, z = cohort.covariates, cohort.effects
    sink = (c["tumour_volume_ml"] / agent.sink_reference_volume_ml) ** -agent.sink_exponent
    kid, mar, tum = agent.kidney, agent.marrow, agent.tumour
    risk = np.where(has_kidney_risk_factor(cohort), kid.risk_factor_multiplier, 1.0)
    renal = (c["egfr_ml_min"] / 90.0) ** -kid.egfr_exponent
    bone = np.where(c["bone_metastases"] > 0, mar.bone_metastases_multiplier, 1.0)
    return {
        L.KIDNEY_GY_PER_GBQ: kid.gy_per_gbq_median * np.exp(kid.inter_patient_sigma_ln * z[:, 0]) * risk * renal * sink,
        L.KIDNEY_TEFF_H: kid.effective_half_life_h_median * np.exp(kid.effective_half_life_sigma_ln * z[:, 1]),
        L.MARROW_GY_PER_GBQ: mar.gy_per_gbq_median * np.exp(mar.inter_patient_sigma_ln * z[:, 2]) * bone * sink,
        L.MARROW_TEFF_H: mar.effective_half_life_h_median * np.exp(mar.effective_half_life_sigma_ln * z[:, 3]),
        L.TUMOUR_GY_PER_GBQ: tum.gy_per_gbq_median * np.exp(tum.inter_patient_sigma_ln * z[:, 4])
        * c["receptor_expression"],
        L.TUMOUR_TEFF_H: tum.effective_half_life_h_median * np.exp(tum.effective_half_life_sigma_ln * z[:, 5]),
    }
