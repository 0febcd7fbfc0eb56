"""Priors of the uncertain parameters a config declares (``[[uncertainty.parameters]]``): quantiles, densities,
draws, and the check that every value a prior can take is a valid config.

A prior is one of the covariate marginals (normal or log-normal with optional bounds, beta by mean and sd) or a
uniform; truncation to [low, high] renormalises the density (inverse-CDF sampling of the truncated law,
:func:`sim.cohort.marginal_ppf`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special, stats

from sim import config
from sim.cohort import marginal_ppf
from sim.config import Beta, Config, ConfigError, LogNormal, Normal, Prior, UncertainParameter, Uniform
from sim.sweep_config import unit_samples

CHECK_QUANTILES = (0.001, 0.5, 0.999)  # values of each prior that must give a valid config


def ppf(prior: Prior, u: np.ndarray | float) -> np.ndarray:
    """The prior's quantile at ``u`` in [0, 1]."""
    u = np.asarray(u, dtype=np.float64)
    if isinstance(prior, Uniform):
        return prior.low + u * (prior.high - prior.low)
    return marginal_ppf(prior, np.atleast_1d(u)).reshape(u.shape)


def _beta_ab(prior: Beta) -> tuple[float, float]:
    nu = prior.mean * (1 - prior.mean) / prior.sd**2 - 1.0  # method of moments, as sim.cohort
    return prior.mean * nu, (1 - prior.mean) * nu


def logpdf(prior: Prior, x: np.ndarray | float) -> np.ndarray:
    """Log density of the (truncated) prior at ``x``; -inf outside its support."""
    x = np.asarray(x, dtype=np.float64)
    if isinstance(prior, Uniform):
        inside = (x >= prior.low) & (x <= prior.high)
        return np.where(inside, -math.log(prior.high - prior.low), -np.inf)
    if isinstance(prior, Beta):
        return stats.beta.logpdf(x, *_beta_ab(prior))
    if isinstance(prior, Normal):
        loc, scale, z, jacobian = prior.mean, prior.sd, x, np.zeros_like(x)
        lo, hi = prior.low, prior.high
    elif isinstance(prior, LogNormal):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), -np.inf)
        loc, scale, jacobian = math.log(prior.median), prior.sigma_ln, -z
        lo = math.log(prior.low) if prior.low else None
        hi = math.log(prior.high) if prior.high is not None else None
    else:  # pragma: no cover - the union is exhaustive
        raise TypeError(type(prior))
    mass = (special.ndtr((hi - loc) / scale) if hi is not None else 1.0) - (
        special.ndtr((lo - loc) / scale) if lo is not None else 0.0)
    inside = ((z >= lo) if lo is not None else True) & ((z <= hi) if hi is not None else True)
    with np.errstate(invalid="ignore"):
        density = stats.norm.logpdf(z, loc, scale) + jacobian - math.log(mass)
    return np.where(inside, density, -np.inf)


def draw(parameters: list[UncertainParameter], n: int, seed: int) -> np.ndarray:
    """(n, parameters) draws from the priors, Latin hypercube in the quantiles (McKay MD, Beckman RJ, Conover WJ.
    Technometrics 1979;21:239): each of the n strata of every prior holds one draw."""
    u = unit_samples("lhs", n, len(parameters), seed)
    return np.column_stack([ppf(p.prior, u[:, k]) for k, p in enumerate(parameters)]) if parameters else u


def overrides(parameters: list[UncertainParameter], values: np.ndarray) -> dict[str, float]:
    """Dotted-path overrides that set each parameter to its value in ``values``."""
    return {p.path: float(v) for p, v in zip(parameters, values, strict=True)}


def check(cfg: Config, data: dict[str, Any], source: str) -> list[UncertainParameter]:
    """The declared uncertain parameters, after checking that each prior's 0.1 %, 50 % and 99.9 % quantiles give a
    valid config (``data``: the scenario's mapping before validation); raise ConfigError naming the first that
    does not."""
    if cfg.uncertainty is None:
        raise ConfigError(f"{source}: no [[uncertainty.parameters]] declared (each names a config path, its prior "
                          "and the prior's source)")
    params = cfg.uncertainty.parameters
    for p in params:
        for q, value in zip(CHECK_QUANTILES, ppf(p.prior, np.array(CHECK_QUANTILES)), strict=True):
            trial = config.validate_quietly(data, {p.path: float(value)})
            if trial is not None:
                raise ConfigError(f"{source}: uncertainty prior of {p.path}: its {q:.1%} quantile {value:.6g} is "
                                  f"outside the field's allowed range ({trial})")
    return params


def declared(path: str | Path, overrides: dict[str, Any]) -> tuple[Config, list[UncertainParameter]]:
    """The scenario at ``path`` with ``overrides`` (dotted paths) and its checked uncertain parameters (:func:`check`):
    where ``rptsim uncertainty`` and ``rptsim sensitivity`` start."""
    cfg = config.load(path, overrides)
    data = config.read_scenario(path)
    for key, value in overrides.items():
        config.set_dotted(data, key, value)
    return cfg, check(cfg, data, str(path))
