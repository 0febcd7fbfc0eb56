"""Posterior of a scenario's uncertain parameters given its trial's published endpoints (``rptsim calibrate
--posterior``), and the posterior file that ``rptsim uncertainty --posterior`` draws from.

Likelihood: a Gaussian synthetic likelihood (Wood SN. Nature 2010;466:1102-1104; Price LF et al. J Comput Graph
Stat 2018;27:1-11) of the published summary statistics. Target k's variance is the published trial's sampling
variance, se_k = (high - low) / (2 x 1.96) from its 95 % CI (or tolerance), plus the simulated statistic's Monte
Carlo variance m_k^2 where the run's summary gives its interval (median CIs, the HR's robust CI, Wilson intervals
of rates; elsewhere m_k is neglected, see docs/calibration.md):

    log L(theta) = -1/2 sum_k [ (sim_k(theta) - published_k)^2 / v_k + log(v_k / se_k^2) ],  v_k = se_k^2 + m_k^2,

the normal log density up to a constant. A trial of ~100 patients an arm has far more sampling error than a run of
thousands of virtual patients, so one simulation per theta estimates the mean of the statistic well enough; Wood's
estimator needs many only when the two are comparable. A target the run cannot produce (a median not reached) costs
``MISSING_PENALTY / 2``; informational targets are left out. Common random numbers: every evaluation simulates the
same patients with the same seed, so L is a deterministic function of theta.

Prior: the declared, independent priors (:mod:`sim.priors`). Sampler: emcee's affine-invariant ensemble (stretch
move; Goodman J, Weare J. Commun Appl Math Comput Sci 2010;5:65-80; Foreman-Mackey D et al. PASP 2013;125:306-312)
in the parameters' own units: the move is invariant to their scales, and outside a prior's support the log posterior
is -inf. Walkers start at Latin-hypercube prior draws.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from sim import __version__, calibrate, config, priors
from sim.config import ConfigError, UncertainParameter
from sim.validate import Target

SCHEMA = "rptsim-posterior"
SCHEMA_VERSION = 1
Z95 = 1.959963984540054  # standard normal 97.5 % quantile
SHORT_CHAIN_TAUS = 50  # kept steps per autocorrelation time below which estimates are rough (emcee's default tol)
# Defaults sized so `rptsim calibrate configs/guided_vs_fixed.toml --posterior` (12 parameters, NETTER-1 simulated)
# fits in 30 minutes on 2 cores; measured in docs/calibration.md.
DEFAULT_PATIENTS = 2000  # MC variance <= ~6 % of a 116-patient arm's sampling variance
DEFAULT_STEPS = 500
WALKERS_PER_PARAMETER = 2  # emcee's minimum for the stretch move (Foreman-Mackey 2013)
PRIOR_SD_GRID = 20_000  # quantiles of the midpoint rule for a prior's SD


@dataclass
class Chain:
    """Post-burn-in, thinned MCMC draws (flattened step-major) and the run's diagnostics."""

    values: np.ndarray  # (draws, parameters)
    log_likelihood: np.ndarray
    log_prior: np.ndarray
    walker: np.ndarray
    step: np.ndarray
    acceptance_fraction: float
    autocorr_time: np.ndarray  # steps, per parameter
    evaluations: int  # of the log posterior (a simulation unless theta is outside the priors' support)


def published_se(target: Target) -> float:
    """The published statistic's standard error: its 95 % interval (or tolerance) half-width / 1.96."""
    return (target.high - target.low) / (2 * Z95)


def log_likelihood(rows: list[dict], targets: list[Target]) -> float:
    """Gaussian synthetic log-likelihood of the evaluated ``rows`` (:func:`sim.validate.evaluate`) of ``targets``."""
    total = 0.0
    for row, t in zip(rows, targets, strict=True):
        if row["simulated"] is None:
            total -= 0.5 * calibrate.MISSING_PENALTY
            continue
        se2 = published_se(t) ** 2
        mc2 = ((row["high"] - row["low"]) / (2 * Z95)) ** 2 if row["low"] is not None and row["high"] is not None \
            else 0.0
        total -= 0.5 * ((row["simulated"] - t.published) ** 2 / (se2 + mc2) + math.log1p(mc2 / se2))
    return total


def simulator(scenario: Path, parameters: list[UncertainParameter], targets: list[Target],
              cohort: dict) -> Callable[[np.ndarray], float]:
    """theta -> log L(theta): ``scenario`` run with ``cohort`` (patients, seed) and the parameters set to theta."""
    def log_l(theta: np.ndarray) -> float:
        try:
            rows = calibrate.rows_at(scenario, {**cohort, **priors.overrides(parameters, theta)}, targets)
        except ConfigError:  # a value the model refuses (between the quantiles priors.check tried): no likelihood
            return -math.inf
        return log_likelihood(rows, targets)
    return log_l


def sample(log_l: Callable[[np.ndarray], float], parameters: list[UncertainParameter], walkers: int, steps: int,
           burn: int, thin: int, seed: int, progress: Callable[[int, float], None] | None = None) -> Chain:
    """emcee's ensemble sampler on log prior + ``log_l``; ``progress(evaluations, best log L)`` after each one."""
    import emcee

    best, evaluations = -math.inf, 0

    def log_posterior(theta: np.ndarray) -> tuple[float, float, float]:
        nonlocal best, evaluations
        lp = float(sum(priors.logpdf(p.prior, v) for p, v in zip(parameters, theta, strict=True)))
        ll = log_l(theta) if math.isfinite(lp) else -math.inf
        evaluations += 1
        best = max(best, ll)
        if progress is not None:
            progress(evaluations, best)
        return lp + ll, lp, ll

    sampler = emcee.EnsembleSampler(walkers, len(parameters), log_posterior,
                                    blobs_dtype=[("log_prior", float), ("log_likelihood", float)])
    rng = np.random.RandomState(np.random.MT19937(seed))  # emcee's generator type, seeded by a SeedSequence
    start = emcee.State(priors.draw(parameters, walkers, seed), random_state=rng.get_state())
    sampler.run_mcmc(start, steps)
    kept = sampler.get_chain(discard=burn, thin=thin)  # (kept steps, walkers, parameters)
    blobs = sampler.get_blobs(discard=burn, thin=thin)
    step = np.arange(burn + thin - 1, steps, thin)
    with np.errstate(invalid="ignore"):  # a walker that never moved: emcee's estimate is NaN, reported as unknown
        tau = sampler.get_autocorr_time(discard=burn, quiet=True, tol=0)
    return Chain(values=kept.reshape(-1, len(parameters)), log_likelihood=blobs["log_likelihood"].ravel(),
                 log_prior=blobs["log_prior"].ravel(), walker=np.tile(np.arange(walkers), len(step)),
                 step=np.repeat(step, walkers), acceptance_fraction=float(np.mean(sampler.acceptance_fraction)),
                 autocorr_time=tau, evaluations=evaluations)


def select(declared: list[UncertainParameter], paths: list[str] | None) -> list[UncertainParameter]:
    """The declared parameters, or only those at ``paths`` (``--params``), in declaration order."""
    if not paths:
        return declared
    known = [p.path for p in declared]
    unknown = [p for p in paths if p not in known]
    if unknown:
        raise ConfigError(f"--params {' '.join(unknown)}: not declared in [[uncertainty.parameters]] (declared: "
                          f"{known})")
    return [p for p in declared if p.path in paths]


def check_settings(n_parameters: int, walkers: int, steps: int, burn: int, thin: int) -> None:
    """ConfigError naming the first sampler flag outside its range."""
    if walkers < 2 * n_parameters:
        raise ConfigError(f"--walkers = {walkers}: must be >= {2 * n_parameters} (twice the {n_parameters} "
                          "parameters, for emcee's stretch move)")
    if steps < 2:
        raise ConfigError(f"--steps = {steps}: must be >= 2")
    if not 0 <= burn < steps:
        raise ConfigError(f"--burn = {burn}: must be in [0, {steps - 1}] (below --steps)")
    if not 1 <= thin <= steps - burn:
        raise ConfigError(f"--thin = {thin}: must be in [1, {steps - burn}] (the steps kept after --burn)")


@dataclass(frozen=True)
class Plan:
    """A checked posterior run: the scenario simulated, its targets, the parameters and the sampler's settings."""

    config_path: Path
    scenario: Path
    targets: list[Target]
    parameters: list[UncertainParameter]
    cohort: dict  # trial.patients and trial.seed of every evaluation
    walkers: int
    steps: int
    burn: int
    thin: int

    @property
    def evaluations(self) -> int:
        return self.walkers * (self.steps + 1)  # the start, then every step


def plan(config_path: str | Path, params: list[str] | None = None, targets_file: Path | None = None,
         names: list[str] | None = None, patients: int | None = None, seed: int | None = None,
         walkers: int | None = None, steps: int | None = None, burn: int | None = None, thin: int = 1) -> Plan:
    """Check a posterior run of ``config_path``'s declared parameters (or ``params``) before any simulation."""
    cfg = config.load(config_path, {"trial.seed": seed} if seed is not None else None)
    scenario, targets = calibrate.scenario_targets(config_path, targets_file, names)
    targets = [t for t in targets if not t.informational]
    if not targets:
        raise ConfigError(f"--targets {' '.join(names or [])}: only informational targets of {scenario.name} "
                          "selected; the likelihood needs at least one other")
    priors.check(cfg, config.read_scenario(scenario), str(config_path))  # CONFIG's priors, on the simulated file
    parameters = select(cfg.uncertainty.parameters, params)
    walkers = WALKERS_PER_PARAMETER * len(parameters) if walkers is None else walkers
    steps = DEFAULT_STEPS if steps is None else steps
    burn = steps // 2 if burn is None else burn
    check_settings(len(parameters), walkers, steps, burn, thin)
    cohort = {"trial.patients": DEFAULT_PATIENTS if patients is None else patients, "trial.seed": cfg.trial.seed}
    config.load(scenario, cohort)  # the cohort flags are valid for the simulated scenario
    return Plan(Path(config_path), scenario, targets, parameters, cohort, walkers, steps, burn, thin)


def run(p: Plan, progress: Callable[[int, float], None] | None = None) -> xr.Dataset:
    """Sample the posterior of ``p`` and return the posterior Dataset; ``progress(evaluations, best log L)``."""
    began = time.perf_counter()
    chain = sample(simulator(p.scenario, p.parameters, p.targets, p.cohort), p.parameters, p.walkers, p.steps,
                   p.burn, p.thin, p.cohort["trial.seed"], progress)
    settings = {"patients": p.cohort["trial.patients"], "seed": p.cohort["trial.seed"], "walkers": p.walkers,
                "steps": p.steps, "burn": p.burn, "thin": p.thin}
    ds = _dataset(chain, p.parameters, settings)
    median = medians(ds)
    rows = calibrate.rows_at(p.scenario, {**p.cohort, **median}, p.targets)
    ds.attrs.update({
        "config": str(p.config_path),
        "calibrated_on": p.scenario.name,
        "family": json.dumps([f.name for f in config.extends_chain(p.config_path)]),
        "config_json": config.load(p.scenario, {**p.cohort, **median}).to_json(),
        "targets_json": json.dumps([{"trial": t.trial, "endpoint": t.endpoint, "published": t.published,
                                     "low": t.low, "high": t.high, "se": published_se(t), "source": t.source,
                                     "simulated_at_median": r["simulated"]} for t, r in zip(p.targets, rows,
                                                                                             strict=True)]),
        "log_likelihood_at_median": log_likelihood(rows, p.targets),
        "wall_seconds": round(time.perf_counter() - began, 1),
    })
    return ds


def _dataset(chain: Chain, parameters: list[UncertainParameter], settings: dict) -> xr.Dataset:
    from sim.outcomes import cf_attributes, git_commit, now_utc

    n = len(chain.log_likelihood)
    created = now_utc()
    data = {p.label: ("draw", chain.values[:, k].astype(np.float64),
                      {"config_path": p.path, "prior": p.prior.model_dump_json(), "source": p.source})
            for k, p in enumerate(parameters)}
    data |= {"weight": ("draw", np.full(n, 1.0 / n), {"description": "equal for MCMC draws; sums to 1"}),
             "log_likelihood": ("draw", chain.log_likelihood), "log_prior": ("draw", chain.log_prior),
             "walker": ("draw", chain.walker.astype(np.int32)), "step": ("draw", chain.step.astype(np.int32))}
    kept_steps = settings["steps"] - settings["burn"]
    tau = chain.autocorr_time  # NaN or <= 0 (emcee's estimate on a few steps; a true one is positive): too short
    return xr.Dataset(data, attrs={
        **cf_attributes(f"rptsim posterior: {n} draws of {', '.join(p.label for p in parameters)}", created),
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "parameters_json": json.dumps([p.model_dump(mode="json") for p in parameters]),
        **settings,
        "evaluations": chain.evaluations,
        "acceptance_fraction": chain.acceptance_fraction,
        "autocorr_time_steps": chain.autocorr_time,
        "short_chain": int(not np.all((tau > 0) & (kept_steps >= SHORT_CHAIN_TAUS * tau))),
        "method": "Gaussian synthetic likelihood (Wood 2010; Price 2018), emcee ensemble sampler (Goodman & Weare "
                  "2010; Foreman-Mackey 2013)",
        "rptsim_version": __version__, "git_commit": git_commit(),
        "created_utc": created,
    })


def write(path: str | Path, ds: xr.Dataset) -> None:
    """Write the posterior Dataset to HDF5 (h5netcdf), atomically."""
    from sim.outcomes import write_atomic

    write_atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def read(path: str | Path) -> xr.Dataset:
    """The posterior file at ``path``, loaded; ConfigError unless it is one (schema ``rptsim-posterior``)."""
    from sim.outcomes import open_checked

    try:
        with open_checked(path, SCHEMA, SCHEMA_VERSION, "posterior", ConfigError) as ds:
            ds = ds.load()
    except OSError as exc:  # HDF5's own errors carry no errno: data that does not read back is a damaged file
        if exc.errno is not None:
            raise
        raise ConfigError(f"--posterior {path}: not a valid posterior file ({' '.join(str(exc).split())[:200]})"
                          ) from None
    try:  # the contents draws() reads: a damaged file is refused here, in one line
        params = parameters_of(ds)
        for name in ("weight", *(p.label for p in params)):
            if name not in ds or ds[name].dims != ("draw",) or not np.all(np.isfinite(ds[name].values)):
                raise ValueError(f"variable {name!r} missing, not over 'draw' or not finite")
        if not (np.all(ds["weight"].values >= 0) and ds["weight"].values.sum() > 0):
            raise ValueError("weights must be >= 0 with a positive sum")
        str(ds.attrs["calibrated_on"])
    except (KeyError, TypeError, ValueError) as exc:  # json and pydantic errors are ValueErrors
        raise ConfigError(f"--posterior {path}: not a valid posterior file ({' '.join(str(exc).split())[:200]})"
                          ) from None
    return ds


def parameters_of(ds: xr.Dataset) -> list[UncertainParameter]:
    return [UncertainParameter.model_validate(p) for p in json.loads(ds.attrs["parameters_json"])]


def draws(ds: xr.Dataset, parameters: list[UncertainParameter], n: int, seed: int, *,
          config_path: str | Path) -> np.ndarray:
    """(n, parameters) draws resampled by weight (multinomial, seeded); ConfigError unless the posterior was
    calibrated on ``config_path`` or a file it extends, for exactly the parameter paths in ``parameters``."""
    where = ds.encoding.get("source", "posterior")
    chain = [p.name for p in config.extends_chain(config_path)]
    if ds.attrs["calibrated_on"] not in chain:
        raise ConfigError(f"--posterior {where}: calibrated on {ds.attrs['calibrated_on']}, which is not "
                          f"{config_path} or a file it extends ({chain})")
    have = {p.path: p.label for p in parameters_of(ds)}
    wanted = [p.path for p in parameters]
    if sorted(have) != sorted(wanted):
        raise ConfigError(f"--posterior {where}: its parameters {list(have)} are not the ones {config_path} declares "
                          f"{wanted}")
    w = ds["weight"].values
    idx = np.random.default_rng(seed).choice(len(w), size=n, p=w / w.sum())
    return np.column_stack([ds[have[p]].values[idx] for p in wanted])


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: np.ndarray | float) -> np.ndarray:
    """Quantiles of weighted draws: the weighted empirical CDF at each draw's mid-mass, interpolated (Hazen's
    plotting position when the weights are equal; Hyndman RJ, Fan Y. Am Stat 1996;50:361)."""
    order = np.argsort(x)
    xs, ws = x[order], w[order] / w.sum()
    return np.interp(q, np.cumsum(ws) - 0.5 * ws, xs)


def medians(ds: xr.Dataset) -> dict[str, float]:
    """Posterior median of each parameter, by config path."""
    w = ds["weight"].values
    return {p.path: float(weighted_quantile(ds[p.label].values, w, 0.5)) for p in parameters_of(ds)}


def prior_sd(prior: config.Prior) -> float:
    """The prior's SD, by the midpoint rule over its quantile function."""
    return float(np.std(priors.ppf(prior, (np.arange(PRIOR_SD_GRID) + 0.5) / PRIOR_SD_GRID)))


def summary_rows(ds: xr.Dataset) -> list[dict]:
    """Per parameter: prior and posterior median and 95 % interval, and the posterior / prior SD ratio (1: the
    targets do not inform it; near 0: they determine it)."""
    w = ds["weight"].values / ds["weight"].values.sum()
    rows = []
    for p in parameters_of(ds):
        x = ds[p.label].values
        pr = priors.ppf(p.prior, np.array([0.5, 0.025, 0.975]))
        po = weighted_quantile(x, w, np.array([0.5, 0.025, 0.975]))
        sd = math.sqrt(float(np.sum(w * (x - np.sum(w * x)) ** 2)))
        rows.append({"parameter": p.label, "path": p.path,
                     "prior_median": float(pr[0]), "prior_95": [float(pr[1]), float(pr[2])],
                     "posterior_median": float(po[0]), "posterior_95": [float(po[1]), float(po[2])],
                     "sd_ratio": sd / prior_sd(p.prior)})
    return rows
