"""Priors of uncertain parameters: densities, quantiles, Latin-hypercube draws, and the config checks."""

import numpy as np
import pytest
from scipy import integrate

from sim import config, priors
from sim.config import Beta, ConfigError, LogNormal, Normal, Uniform

from .conftest import CONFIGS

PRIORS = [LogNormal(dist="lognormal", median=0.1, sigma_ln=0.5, low=0.03, high=0.5),
          Beta(dist="beta", mean=0.3, sd=0.1),
          Uniform(dist="uniform", low=1.0, high=3.0),
          Normal(dist="normal", mean=1.0, sd=2.0, low=0.0)]


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: p.dist)
def test_density_and_quantiles_agree(prior):
    """The density integrates to 1 over the support, and integrates to u up to the u-quantile."""
    lo, hi = priors.ppf(prior, 1e-9), priors.ppf(prior, 1 - 1e-9)
    pdf = lambda x: float(np.exp(priors.logpdf(prior, x)))  # noqa: E731
    assert integrate.quad(pdf, lo, hi, limit=200)[0] == pytest.approx(1.0, abs=1e-6)
    for u in (0.1, 0.5, 0.9):
        assert integrate.quad(pdf, lo, priors.ppf(prior, u), limit=200)[0] == pytest.approx(u, abs=1e-6)
    assert priors.logpdf(prior, priors.ppf(prior, 0.0) - 1.0) == -np.inf  # below the support


def test_draws_are_latin_hypercube_in_the_quantiles():
    cfg = config.load(CONFIGS / "netter1.toml")
    params = cfg.uncertainty.parameters
    x = priors.draw(params, 50, seed=3)
    assert x.shape == (50, len(params))
    for k, p in enumerate(params):
        u = np.array([integrate.quad(lambda t, p=p: float(np.exp(priors.logpdf(p.prior, t))),
                                     priors.ppf(p.prior, 0.0), v)[0] for v in x[:10, k]])
        strata = np.floor(u * 50).astype(int)
        assert len(set(strata)) == 10  # distinct strata (every stratum holds one of the 50 draws)
    np.testing.assert_array_equal(x, priors.draw(params, 50, seed=3))


def test_shipped_priors_give_valid_configs():
    for name in ("netter1", "guided_vs_fixed"):
        path = CONFIGS / f"{name}.toml"
        params = priors.check(config.load(path), config.read_scenario(path), str(path))
        assert len(params) >= 10 and all(p.source for p in params)


def _with(tmp_path, text):
    path = tmp_path / "u.toml"
    path.write_text(f'extends = "{CONFIGS / "netter1.toml"}"\n' + text)
    return path


@pytest.mark.parametrize(("text", "fragment"), [
    ('[[uncertainty.parameters]]\npath = "kidney.nope"\nprior = {dist = "uniform", low = 1, high = 2}\nsource = "x"',
     "uncertainty: kidney.nope: no such field"),
    ('[[uncertainty.parameters]]\npath = "trial.seed"\nprior = {dist = "uniform", low = 1, high = 2}\nsource = "x"',
     "not a model number"),
    ('[[uncertainty.parameters]]\npath = "kidney.bed50_gy"\nprior = {dist = "uniform", low = 2, high = 1}\n'
     'source = "x"', "low = 2.0 must be < high = 1.0"),
])
def test_bad_declarations_name_the_field(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        config.load(_with(tmp_path, text))


def test_prior_outside_the_fields_range_is_refused(tmp_path):
    text = ('[[uncertainty.parameters]]\npath = "cohort.covariates.stroma_fraction.mean"\n'
            'prior = {dist = "uniform", low = 0.5, high = 1.5}\nsource = "x"')
    path = _with(tmp_path, text)
    cfg = config.load(path)  # the declaration is well formed: only its values are out of range
    message = r"prior of cohort.covariates.stroma_fraction.mean: its 50.0% quantile 1 is outside the field.s allowed"
    with pytest.raises(ConfigError, match=message):
        priors.check(cfg, config.read_scenario(path), str(path))
