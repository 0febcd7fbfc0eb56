"""Global sensitivity of paired effects to the uncertain parameters (``rptsim sensitivity``), with SALib.

The problem lives in the unit hypercube and every point is mapped through each parameter's prior quantile function
(:func:`sim.priors.ppf`), so the indices are with respect to the declared priors (Saltelli A et al. Global
Sensitivity Analysis: The Primer. Wiley 2008, ch. 1, 3-4). Sobol': Saltelli's sample of a scrambled Sobol'
sequence, first-order and total indices by the Saltelli/Jansen estimators with bootstrap CIs (Sobol' IM. Math
Comput Simul 2001;55:271-280; Saltelli A et al. Comput Phys Commun 2010;181:259-270). Morris: r one-at-a-time
trajectories on a p-level grid, mu* (mean |elementary effect|) with its bootstrap CI and sigma (Morris MD.
Technometrics 1991;33:161-174; Campolongo F et al. Environ Model Softw 2007;22:1509-1518); the grid's levels are the
centres of p equal-probability strata, so priors without bounds never reach an infinite quantile.

Every point is one scenario of a sweep (:func:`sim.sweep_config.from_points`: parallel, resumable) with the same
cohort seed (common random numbers), so an index measures the parameter's effect rather than Monte Carlo noise;
each output's noise level (its paired CI across the points) is reported beside its variance.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import special

from sim import priors
from sim.config import Config, ConfigError, UncertainParameter

DEFAULT_N = {"sobol": 64, "morris": 10}
N_RANGE = {"sobol": (4, 65_536), "morris": (2, 10_000)}  # Sobol': bootstrap needs a few rows; Morris: sigma two
MORRIS_LEVELS = 4
CONF_LEVEL = 0.95
RESAMPLES = 100  # bootstrap resamples of SALib's CIs (its default)
# A statistic's paired 95 % CI in the sweep file: <name>_ci, <name>_robust_ci (HRs) or <name without _months>_ci.
CI_SUFFIXES = ("_ci", "_robust_ci")


@dataclass(frozen=True)
class Sample:
    """A SALib design and the distinct parameter points it needs evaluated (Morris trajectories can share points)."""

    method: str
    problem: dict
    unit: np.ndarray  # (runs, parameters) SALib's points in the problem's bounds
    values: np.ndarray  # (distinct points, parameters) parameter values, in order of first use
    inverse: np.ndarray  # run -> its row of ``values``
    seed: int


def _bounds(method: str) -> list[float]:
    """Unit-cube bounds of each parameter: Sobol' [0, 1]; Morris the centres of the first and last of p
    equal-probability strata, [1/(2p), 1 - 1/(2p)] (levels in the quantiles of non-uniform factors: Saltelli 2008,
    ch. 3)."""
    edge = 0.5 / MORRIS_LEVELS if method == "morris" else 0.0
    return [edge, 1.0 - edge]


def sample(params: list[UncertainParameter], method: str, n: int, seed: int) -> Sample:
    """SALib's Sobol' design (N (D + 2) runs, no second order; Saltelli 2010) or Morris trajectories (r (D + 1)
    runs; Morris 1991) on the parameters, mapped through their prior quantile functions."""
    from SALib.sample import morris, sobol

    problem = {"num_vars": len(params), "names": [p.label for p in params],
               "bounds": [_bounds(method)] * len(params)}
    if method == "sobol":
        unit = sobol.sample(problem, n, calc_second_order=False, scramble=True, seed=seed)
    else:
        unit = morris.sample(problem, n, num_levels=MORRIS_LEVELS, seed=seed)
    values = np.column_stack([priors.ppf(p.prior, unit[:, k]) for k, p in enumerate(params)])
    _, first, inverse = np.unique(values, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # distinct points in order of first use, as the sweep's scenarios
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return Sample(method, problem, unit, values[np.sort(first)], rank[inverse.ravel()], seed)


def indices(s: Sample, y: np.ndarray) -> tuple[list[dict], str | None]:
    """The parameters' indices for output values ``y`` at ``s.values`` (Sobol': S1, S1_conf, ST, ST_conf ranked
    by ST; Morris: mu_star, mu_star_conf, mu, sigma ranked by mu*), and a note when they are undefined (values
    missing, or a Sobol' output that no point changes). Estimators: Saltelli 2010 (S1), Jansen MJW. Comput Phys
    Commun 1999;117:35-43 (ST), Campolongo 2007 (mu*); CIs are SALib's bootstrap, seeded by ``s.seed``."""
    from SALib.analyze import morris, sobol

    y_runs = np.asarray(y, dtype=np.float64)[s.inverse]
    names = s.problem["names"]
    keys = ("S1", "S1_conf", "ST", "ST_conf") if s.method == "sobol" else ("mu_star", "mu_star_conf", "mu", "sigma")
    missing = int(np.isnan(y_runs).sum())
    note = f"{missing} of {y_runs.size} runs have no value" if missing else None
    if note is None and s.method == "sobol" and np.ptp(y_runs) == 0:
        note = "the same value at every point: no parameter moves it (Sobol' indices are 0/0)"
    if note is not None:
        return [dict.fromkeys(("parameter", *keys)) | {"parameter": n} for n in names], note
    rng = np.random.default_rng(s.seed)  # a Generator: SALib's Sobol' analysis would not seed its bootstrap with 0
    if s.method == "sobol":
        si = sobol.analyze(s.problem, y_runs, calc_second_order=False, num_resamples=RESAMPLES,
                           conf_level=CONF_LEVEL, seed=rng)
    else:
        si = morris.analyze(s.problem, s.unit, y_runs, num_resamples=RESAMPLES, conf_level=CONF_LEVEL,
                            num_levels=MORRIS_LEVELS, seed=rng)
    rows = [{"parameter": n} | {k: float(si[k][i]) for k in keys} for i, n in enumerate(names)]
    rank_by = "ST" if s.method == "sobol" else "mu_star"
    return sorted(rows, key=lambda r: -r[rank_by]), None


def noise(method: str, y: np.ndarray, half_width: np.ndarray | None) -> dict:
    """The output's spread across the points against its Monte Carlo noise: the median half-width of its paired
    95 % CI over the points, that as an SE, and the noise floor of the method's index. Sobol': SE^2 / variance,
    what independent errors of that SE would add to every ST (Jansen's estimator); Morris: 2 SE / (Delta sqrt(pi)),
    the mean |EE| of pure noise (a half-normal mean of two errors per step Delta). Common random numbers make the
    errors of nearby points alike, so the true floor is lower: an upper bound."""
    y = np.asarray(y, dtype=np.float64)
    variance = float(np.nanvar(y, ddof=1)) if np.isfinite(y).sum() > 1 else None
    out = {"variance": variance, "sd": None if variance is None else math.sqrt(variance), "mc_ci_half_width": None,
           "mc_se": None, "noise_floor": None}
    if half_width is None or not np.isfinite(half_width).any():
        return out
    hw = float(np.nanmedian(half_width))
    se = hw / float(special.ndtri(0.5 + CONF_LEVEL / 2))
    if method == "sobol":
        floor = se**2 / variance if variance else None
    else:
        floor = 2 * se / (_morris_delta() * math.sqrt(math.pi))
    return out | {"mc_ci_half_width": hw, "mc_se": se, "noise_floor": floor}


def _morris_delta() -> float:
    """Morris' step in units of the grid, p / (2 (p - 1)) (Morris 1991)."""
    return MORRIS_LEVELS / (2 * (MORRIS_LEVELS - 1))


def ci_variable(names: list[str] | set[str], output: str) -> str | None:
    """The sweep-file variable holding ``output``'s paired 95 % CI, if any."""
    for stem in (output, output.removesuffix("_months")):
        for suffix in CI_SUFFIXES:
            if stem + suffix in names:
                return stem + suffix
    return None


# --------------------------------------------------------------------------------------------------
# The command


def statistic_names(cfg: Config) -> list[str]:
    """The per-arm scalar statistics a sweep file of ``cfg`` holds, from a run of a few patients through the same
    summary and assembly code (the names do not depend on the cohort)."""
    from sim import sweep

    probe = cfg.model_copy(update={"trial": cfg.trial.model_copy(update={"patients": sweep.WARM_PATIENTS})})
    summary, _ = sweep.run_scenario(probe.to_json(), "summary")
    ds = sweep.statistics([summary], [a.name for a in cfg.arms])
    return sorted(k for k, v in ds.data_vars.items() if v.dims == ("scenario", "arm") and v.dtype.kind == "f")


def _checked(args: argparse.Namespace, cfg: Config) -> tuple[int, str, list[str]]:
    """``--n``, ``--arm``, ``--outputs`` and ``--sample-seed`` checked (ConfigError naming the flag); their values."""
    n = DEFAULT_N[args.method] if args.n is None else args.n
    low, high = N_RANGE[args.method]
    if not low <= n <= high or (args.method == "sobol" and n & (n - 1)):
        what = "a power of 2 in" if args.method == "sobol" else "in"
        raise ConfigError(f"--n = {n}: with --method {args.method} must be {what} [{low}, {high}]")
    if args.sample_seed < 0:
        raise ConfigError(f"--sample-seed = {args.sample_seed}: must be >= 0")
    reference = cfg.reference_arm()
    arms = [a.name for a in cfg.arms if a.name != reference]
    arm = arms[0] if args.arm is None else args.arm
    if arm not in arms:
        raise ConfigError(f"--arm {arm}: not an arm compared with the reference {reference}; allowed: "
                          f"{', '.join(arms)}")
    outputs = list(dict.fromkeys(args.outputs))
    allowed = statistic_names(cfg)
    unknown = [o for o in outputs if o not in allowed]
    if unknown:
        raise ConfigError(f"--outputs {' '.join(unknown)}: not a statistic of the sweep file; allowed: "
                          f"{', '.join(allowed)}")
    return n, arm, outputs


def summarise(s: Sample, ds: xr.Dataset, arm: str, outputs: list[str]) -> dict:
    """Per output: its indices (ranked), variance and Monte Carlo noise, from the sweep file of ``s.values``."""
    result = {}
    a = ds.sel(arm=arm)
    for name in outputs:
        y = a[name].values.astype(np.float64)
        ci = ci_variable(set(ds.data_vars), name)
        half = None if ci is None else (a[ci].sel(bound="high").values - a[ci].sel(bound="low").values) / 2
        rows, note = indices(s, y)
        result[name] = {"ci_variable": ci, **noise(s.method, y, half), "indices": rows, "note": note}
    return result


def main(args: argparse.Namespace) -> int:
    """``rptsim sensitivity``: check every input, evaluate the design as a sweep (OUT.h5), compute the indices,
    write OUT.json and OUT.png and print them."""
    from sim import cli, sweep, sweep_config

    path = Path(args.config)
    overrides = cli._overrides(args)
    cfg, params = priors.declared(path, overrides)
    out = Path(args.output) if args.output else Path("results") / f"{path.stem}_sensitivity_{args.method}.h5"
    for target in (out, out.with_suffix(".json"), out.with_suffix(".png")):
        cli._check_writable(target)
    cluster = cli.cluster_table(args)
    n, arm, outputs = _checked(args, cfg)

    s = sample(params, args.method, n, args.sample_seed)
    settings = {"method": args.method, "n": n, "runs": int(s.unit.shape[0]), "distinct_points": int(len(s.values)),
                "conf_level": CONF_LEVEL, "bootstrap_resamples": RESAMPLES, "sample_seed": args.sample_seed}
    settings |= ({"calc_second_order": False, "scramble": True} if args.method == "sobol" else
                 {"levels": MORRIS_LEVELS, "step": _morris_delta(), "unit_bounds": _bounds("morris")})
    sw = sweep_config.from_points(path, f"{path.stem}_sensitivity_{args.method}", [p.path for p in params],
                                  [p.label for p in params], s.values, overrides, cluster, kind="sensitivity",
                                  metadata={"sensitivity_settings_json": json.dumps(settings)})
    counts = cli.run_sweep(sw, out, args, f"Sensitivity ({args.method}): {len(s.values)} points of {path.stem}")
    if counts is None:
        return 130
    with sweep.read(out) as ds:
        summary = summarise(s, ds, arm, outputs)
    result = {"scenario": cfg.trial.name, "config": str(path), "arm": arm, "reference_arm": cfg.reference_arm(),
              "patients": cfg.trial.patients, "cohort_seed": cfg.trial.seed, **settings,
              "parameters": [{"name": p.label, "path": p.path, "prior": p.prior.model_dump(), "source": p.source}
                             for p in params],
              "outputs": summary, "sweep_file": str(out), "figure": str(out.with_suffix(".png"))}
    from sim.outcomes import write_json
    from sim.sensitivity_figures import save_sensitivity_figure

    write_json(result, out.with_suffix(".json"))
    save_sensitivity_figure(result, out.with_suffix(".png"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result)
    cli._print_counts(out, counts)
    return 0


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def print_result(result: dict) -> None:
    """One rich table per output: the parameters ranked, with the output's spread and its Monte Carlo noise."""
    from rich.table import Table

    from sim.report import output_console

    sobol = result["method"] == "sobol"
    console = output_console(110)
    console.print(f"{result['scenario']}: {result['arm']} vs {result['reference_arm']}, {result['method']} "
                  f"(n = {result['n']}, {result['distinct_points']} points, {result['patients']} patients, cohort "
                  f"seed {result['cohort_seed']}, sample seed {result['sample_seed']})")
    for name, o in result["outputs"].items():
        caption = (f"variance across points {_fmt(o['variance'])} (SD {_fmt(o['sd'])}); Monte Carlo SE "
                   f"{_fmt(o['mc_se'])} (median paired 95 % CI half-width {_fmt(o['mc_ci_half_width'])}); "
                   f"were the points' errors independent, {'indices' if sobol else 'mu*'} below "
                   f"{_fmt(o['noise_floor'])} could be noise (common random numbers make it less)")
        table = Table(title=name, title_justify="left", caption=o["note"] or caption, caption_justify="left")
        columns = ("S1", "± 95 %", "ST", "± 95 %") if sobol else ("mu*", "± 95 %", "mu", "sigma")
        keys = ("S1", "S1_conf", "ST", "ST_conf") if sobol else ("mu_star", "mu_star_conf", "mu", "sigma")
        table.add_column("parameter")
        for col in columns:
            table.add_column(col, justify="right")
        for row in o["indices"]:
            table.add_row(row["parameter"], *(_fmt(row[k]) for k in keys))
        console.print(table)
