"""Propagation of parameter uncertainty (``rptsim uncertainty``): the scenario once per parameter draw, from the
declared priors or a posterior of ``rptsim calibrate --posterior``, every arm on the same patients within a draw.

Each draw also gets its own cohort seed (derived from ``trial.seed`` and the draw number, as sweep replicates), so
a draw's estimate is its parameters' effect plus independent Monte Carlo error, and the law of total variance
splits the spread of the estimates across draws: Var(estimate) = Var_theta(effect) + E[MC variance], with each
draw's MC variance from its own paired CI (Saltelli A et al. Global Sensitivity Analysis: The Primer. Wiley 2008,
ch. 1; the nested design of O'Hagan A et al. Health Econ 2007;16:1009-1023). The interval of an effect is the
2.5-97.5 % range of the draws' estimates: what the effect may be given both what the data leave open and the
cohort's finite size. Runs go through the sweep machinery (parallel on Dask, resumable): the output is a sweep
file whose scenarios are the draws.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import special, stats

from sim import priors
from sim.config import ConfigError, UncertainParameter
from sim.sweep_config import replicate_seed

MAX_DRAWS = 100_000
LEVEL = 0.95
POWER, ALPHA = 0.8, 0.05  # the trial size reported per draw: 80 % power, two-sided 5 %
# effect -> (its 95 % CI in the sweep file, the scale the variance is split on, label)
EFFECTS = {
    "pfs_hr": ("pfs_hr_robust_ci", "log", "PFS hazard ratio"),
    "os_hr": ("os_hr_robust_ci", "log", "OS hazard ratio"),
    "rmst_pfs_difference_months": ("rmst_pfs_difference_ci", "linear", "RMST PFS difference (months)"),
    "rmst_os_difference_months": ("rmst_os_difference_ci", "linear", "RMST OS difference (months)"),
    "grade3plus_renal_rate_difference": ("grade3plus_renal_rate_difference_ci", "linear",
                                         "Renal grade ≥3 difference"),
    "grade3plus_haematological_rate_difference": ("grade3plus_haematological_rate_difference_ci", "linear",
                                                  "Haematological grade ≥3 difference"),
}
TRIAL_SIZE = "patients_for_80_percent_power"
SEED_COORD = "cohort_seed"


def _z(level: float) -> float:
    return float(special.ndtri(0.5 + 0.5 * level))


def draw_values(cfg_path: str | Path, params: list[UncertainParameter], n: int, seed: int,
                posterior_file: str | None) -> np.ndarray:
    """(n, parameters) values: a Latin hypercube of the priors, or n posterior draws resampled by weight."""
    if posterior_file is None:
        return priors.draw(params, n, seed)
    from sim import posterior

    return posterior.draws(posterior.read(posterior_file), params, n, seed, config_path=cfg_path)


def variance_split(estimates: np.ndarray, mc_se: np.ndarray) -> dict:
    """Median, 2.5-97.5 % interval and mean of the draws' estimates, and the shares of their variance due to the
    parameters and to Monte Carlo error (law of total variance; the parameter part clipped at 0)."""
    ok = np.isfinite(estimates) & np.isfinite(mc_se)
    x, se = estimates[ok], mc_se[ok]
    if x.size < 2:
        return {"median": None, "interval": [None, None], "mean": None, "parameter_variance_share": None,
                "monte_carlo_variance_share": None, "draws_used": int(x.size)}
    total = float(np.var(x, ddof=1))
    mc = float(np.mean(se**2))
    share = max(0.0, 1.0 - mc / total) if total > 0 else 0.0
    low, high = np.percentile(x, [2.5, 97.5])
    return {"median": float(np.median(x)), "interval": [float(low), float(high)], "mean": float(x.mean()),
            "parameter_variance_share": share, "monte_carlo_variance_share": 1.0 - share,
            "total_variance": total, "monte_carlo_variance": mc, "draws_used": int(x.size)}


def trial_size(log_hr: np.ndarray, event_fraction: np.ndarray) -> np.ndarray:
    """Patients (1:1) for 80 % power at two-sided 5 % under proportional hazards: events
    D = 4 (z_{1-alpha/2} + z_power)^2 / (log HR)^2 (Schoenfeld D. Biometrika 1981;68:316-319), divided by the
    fraction of patients with an event in the two arms; infinite at HR = 1."""
    events = 4.0 * (_z(1 - ALPHA) + special.ndtri(POWER)) ** 2 / np.where(log_hr != 0, log_hr**2, np.nan)
    return np.where(log_hr != 0, events / event_fraction, np.inf)


def proportion_trial_size(p_experimental: float, p_reference: float) -> float:
    """Patients (1:1) for 80 % power at two-sided 5 % to show a difference of two response rates:
    ``n = 2 [z_{1-alpha/2} sqrt(2 pbar qbar) + z_power sqrt(p1 q1 + p2 q2)]^2 / (p1 - p2)^2`` in both arms
    (the normal approximation without continuity correction; Fleiss JL, Levin B, Paik MC. Statistical Methods for
    Rates and Proportions, 3rd ed. 2003, eq. 4.14); infinite for equal rates."""
    p1, p2 = p_experimental, p_reference
    if p1 == p2:
        return math.inf
    pbar = (p1 + p2) / 2
    root = _z(1 - ALPHA) * math.sqrt(2 * pbar * (1 - pbar)) + special.ndtri(POWER) * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2))
    return 2.0 * root**2 / (p1 - p2) ** 2


def _effect(ds: xr.Dataset, arm: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One effect of ``arm`` per draw and its Monte Carlo SE, on the scale its variance is split on."""
    ci_name, scale, _ = EFFECTS[name]
    a = ds.sel(arm=arm)
    value = a[name].values.astype(float)
    low, high = a[ci_name].sel(bound="low").values, a[ci_name].sel(bound="high").values
    if scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(value), (np.log(high) - np.log(low)) / (2 * _z(LEVEL))
    return value, (high - low) / (2 * _z(LEVEL))


def summarise(ds: xr.Dataset) -> dict:
    """The uncertainty summary of an uncertainty run's file: per comparison and effect, the median, interval and
    variance split (HRs split on the log scale, reported as HRs), the 1:1 trial size for 80 % power, and the
    parameters that drive each effect (Spearman's rho between the draws' parameter values and estimates)."""
    params = json.loads(ds.attrs["uncertainty_parameters_json"])
    reference = str(ds.reference_arm.values[0])
    trial = json.loads(ds.attrs["base_config_json"])["trial"]
    out: dict = {"scenario": trial["name"], "patients": int(ds.n_patients.values[0]), "seed": trial["seed"],
                 "draws": int(ds.sizes["scenario"]), "source": ds.attrs["uncertainty_source"],
                 "parameters": params, "reference_arm": reference, "comparisons": {}, "drivers": {}}
    values = {p["name"]: ds[p["name"]].values.astype(float) for p in params}
    for arm in (str(a) for a in ds.arm.values if a != reference):
        effects, drivers = {}, {}
        for name, (_, scale, _) in EFFECTS.items():
            if name not in ds:
                continue
            estimate, se = _effect(ds, arm, name)
            entry = variance_split(estimate, se)
            if scale == "log" and entry["median"] is not None:
                entry = _from_log(entry, "log: variances of log HR; median and interval as HR")
            effects[name] = entry
            drivers[name] = _drivers(values, estimate)
        log_hr, se = _effect(ds, arm, "pfs_hr")
        fraction = 0.5 * (ds.pfs_event_fraction.sel(arm=arm).values + ds.pfs_event_fraction.sel(arm=reference).values)
        size = trial_size(log_hr, fraction)
        with np.errstate(divide="ignore", invalid="ignore"):  # log N = const - 2 log|log HR|: the MC SE by delta
            entry = variance_split(np.log(size), 2.0 * se / np.abs(log_hr))
        if entry["median"] is not None:
            entry = _from_log(entry, "log: variances of log N (Schoenfeld 1981, from the PFS HR and event fraction)")
        effects[TRIAL_SIZE] = entry
        drivers[TRIAL_SIZE] = _drivers(values, np.log(size))
        out["comparisons"][f"{arm} vs {reference}"] = effects
        out["drivers"][f"{arm} vs {reference}"] = drivers
    return out


def _from_log(entry: dict, scale: str) -> dict:
    """An entry split on the log scale, with its median and interval back on the natural scale (no mean: the
    exponential of a mean log is not a mean)."""
    out = {k: v for k, v in entry.items() if k != "mean"}
    return {**out, "median": math.exp(entry["median"]), "interval": [math.exp(v) for v in entry["interval"]],
            "scale": scale}


def _drivers(values: dict[str, np.ndarray], estimate: np.ndarray) -> list[dict]:
    """Parameters ranked by |Spearman's rho| with the estimate across draws (a sampling-based sensitivity measure;
    Saltelli 2008, ch. 1): which parameters move the answer."""
    ok = np.isfinite(estimate)
    rows: list[dict] = []
    for name, x in values.items():
        varies = ok.sum() > 2 and np.ptp(x[ok]) > 0 and np.ptp(estimate[ok]) > 0
        rho = float(stats.spearmanr(x[ok], estimate[ok]).statistic) if varies else None
        rows.append({"parameter": name, "spearman_rho": rho})
    return sorted(rows, key=lambda r: -abs(r["spearman_rho"] or 0.0))


def main(args: argparse.Namespace) -> int:
    """``rptsim uncertainty``: validate everything, run the draws as a sweep, summarise, print, write OUT.json."""
    from sim import cli, sweep, sweep_config

    path = Path(args.config)
    overrides = cli._overrides(args)
    cfg, params = priors.declared(path, overrides)
    if not 2 <= args.draws <= MAX_DRAWS:
        raise ConfigError(f"--draws = {args.draws}: must be in [2, {MAX_DRAWS}]")
    out = Path(args.output) if args.output else Path("results") / f"{path.stem}_uncertainty.h5"
    cli._check_writable(out)
    cli._check_writable(out.with_suffix(".json"))
    seed = cfg.trial.seed
    values = draw_values(path, params, args.draws, seed, args.posterior)
    seeds = [replicate_seed(seed, k + 1) for k in range(args.draws)]  # each draw its own cohort
    metadata = {"uncertainty_source": "posterior" if args.posterior else "prior",
                "uncertainty_posterior_file": str(args.posterior or ""),
                "uncertainty_parameters_json": json.dumps([{"name": p.label, "path": p.path, "source": p.source,
                                                            "prior": p.prior.model_dump()} for p in params])}
    sw = sweep_config.from_points(path, f"{path.stem}_uncertainty", [p.path for p in params] + ["trial.seed"],
                                  [p.label for p in params] + [SEED_COORD],
                                  [[*row, s] for row, s in zip(values.tolist(), seeds, strict=True)], overrides,
                                  cli.cluster_table(args), kind="uncertainty", metadata=metadata)
    counts = cli.run_sweep(sw, out, args, f"Uncertainty: {args.draws} draws of {path.stem}")
    if counts is None:
        return 130
    with sweep.read(out) as ds:
        result = {"config": str(path), **summarise(ds)}
    from sim.outcomes import write_json

    write_json(result, out.with_suffix(".json"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        from sim.report import print_uncertainty

        print_uncertainty(result)
    cli._print_counts(out, counts)
    return 0
