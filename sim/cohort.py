"""Virtual patients: correlated covariates (Gaussian copula), trial entry and administrative censoring.

Every patient's values come from its own random streams (``sim.rng``), keyed by a global patient id, so a
patient is the same whether simulated alone, in a chunk, or in a larger cohort; each covariate has its own
stream (``covariate/<name>``), so adding one leaves the others' draws as they were. The agent-specific values
(Gy/GBq, half-lives) are drawn where they become kernel inputs (``sim.kernel_inputs``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from sim import rng
from sim.config import COVARIATE_NAMES, Bernoulli, Beta, Config, LogNormal, Marginal, Normal
from sim.kernels.beta_quantile import TABLE_NODES, Z_RANGE, beta_ppf
from sim.kernels.copula import correlate
from sim.units import DAYS_PER_MONTH


@dataclass(frozen=True)
class Cohort:
    """Struct of arrays, one row per patient."""

    patient_ids: np.ndarray  # int64 global ids (random-stream keys)
    covariates: dict[str, np.ndarray]  # COVARIATE_NAMES -> float64 arrays
    entry_day: np.ndarray
    admin_censor_day: np.ndarray

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
    f_lo = float(special.ndtr((lo - loc) / scale)) if lo is not None else 0.0
    f_hi = float(special.ndtr((hi - loc) / scale)) if hi is not None else 1.0
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
    tiny = np.finfo(np.float64).tiny  # a very skewed beta's far quantiles underflow to 0: keep their logs finite
    x = np.maximum(special.betaincinv(a, b, special.ndtr(z[lower])), tiny)
    log_x[lower], log_y[lower] = np.log(x), np.log1p(-x)
    y = np.maximum(special.betaincinv(b, a, special.ndtr(-z[upper])), tiny)
    log_x[upper], log_y[upper] = np.log1p(-y), np.log(y)
    slopes = np.exp(-0.5 * z * z - 0.5 * math.log(2.0 * math.pi) + special.betaln(a, b) - a * log_x - b * log_y)
    return log_x - log_y, slopes


def draw(cfg: Config, patient_ids: np.ndarray) -> Cohort:
    """Draw the patients ``patient_ids`` of the scenario ``cfg`` (any subset gives the same rows)."""
    ids = np.ascontiguousarray(patient_ids, dtype=np.int64)
    seed = cfg.trial.seed
    z = rng.first_normals(seed, ids, [(f"covariate/{name}", 0) for name in COVARIATE_NAMES])
    chol = np.linalg.cholesky(cfg.cohort.correlation_matrix())
    u = special.ndtr(correlate(z, chol))  # row by row: a patient's values never depend on the chunk
    marginals = cfg.cohort.covariates
    covariates = {name: marginal_ppf(getattr(marginals, name), u[:, j]) for j, name in enumerate(COVARIATE_NAMES)}
    accrual_days = cfg.trial.accrual_months * DAYS_PER_MONTH
    entry = rng.uniforms(seed, ids, "trial/entry")[:, 0] * accrual_days
    censor = accrual_days - entry + cfg.trial.follow_up_months * DAYS_PER_MONTH
    return Cohort(ids, covariates, entry, censor)


def concat(chunks: list[Cohort]) -> Cohort:
    """One cohort of consecutive chunks."""
    if len(chunks) == 1:
        return chunks[0]
    return Cohort(np.concatenate([c.patient_ids for c in chunks]),
                  {k: np.concatenate([c.covariates[k] for c in chunks]) for k in chunks[0].covariates},
                  np.concatenate([c.entry_day for c in chunks]), np.concatenate([c.admin_censor_day for c in chunks]))


def median_growth_per_day(cfg: Config) -> float:
    """Growth rate at the median of the configured doubling-time marginal."""
    td_months = marginal_ppf(cfg.cohort.covariates.doubling_time_months, np.array([0.5]))[0]
    return math.log(2.0) / (td_months * DAYS_PER_MONTH)
