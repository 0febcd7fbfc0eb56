"""Figures of an uncertainty run (``rptsim uncertainty``; the report of its file): each effect's spread over the
parameter draws with its interval and variance split, the draws against the priors, and the parameters that drive
each effect."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from sim import priors
from sim.config import UncertainParameter
from sim.figures import PALETTE, _pyplot, _short, _wrap

SHOWN = ("pfs_hr", "rmst_pfs_difference_months", "grade3plus_renal_rate_difference",
         "grade3plus_haematological_rate_difference")


def _parameters(ds) -> list[UncertainParameter]:  # noqa: ANN001
    return [UncertainParameter.model_validate({k: p[k] for k in ("path", "name", "prior", "source")})
            for p in json.loads(ds.attrs["uncertainty_parameters_json"])]


def effects_figure(ds, result: dict):  # noqa: ANN001, ANN201
    """One panel per effect (columns) and comparison (rows): the draws' estimates (dots), their median and 95 %
    interval, and the share of their variance due to the parameters."""
    from sim.uncertainty import EFFECTS

    plt = _pyplot()
    comparisons = list(result["comparisons"])
    fig, axes = plt.subplots(len(comparisons), len(SHOWN), figsize=(3.4 * len(SHOWN), 1.3 + 2.0 * len(comparisons)),
                             layout="constrained", squeeze=False)
    reference = result["reference_arm"]
    for row, comparison in enumerate(comparisons):
        arm = comparison.removesuffix(f" vs {reference}")
        for col, name in enumerate(SHOWN):
            ax = axes[row, col]
            entry = result["comparisons"][comparison].get(name)
            values = ds[name].sel(arm=arm).values.astype(float)
            scale = 100.0 if name.endswith("rate_difference") else 1.0
            y = np.random.default_rng(row * 7 + col).uniform(-0.3, 0.3, values.size)  # jitter, fixed
            ax.scatter(scale * values, y, s=9, color=PALETTE[row % len(PALETTE)], alpha=0.6, lw=0)
            if entry is not None and entry["median"] is not None:
                low, high = entry["interval"]
                ax.errorbar([scale * entry["median"]], [0.0], xerr=[[scale * (entry["median"] - low)],
                            [scale * (high - entry["median"])]], fmt="D", color="black", ms=5, capsize=4, lw=1.4)
                ax.set_title(f"parameters {entry['parameter_variance_share']:.0%} of the variance", fontsize=8)
            ax.axvline(1.0 if name.endswith("_hr") else 0.0, color="0.5", lw=0.8, ls="--")
            ax.set_yticks([])
            ax.set_ylim(-1, 1)
            ax.grid(True, axis="x", color="0.9", lw=0.6)
            if row == len(comparisons) - 1:
                label = EFFECTS[name][2] + (" (pp)" if scale == 100.0 else "")
                ax.set_xlabel(label.replace("difference", "diff."))
            if col == 0:
                ax.set_ylabel(_wrap(_short(arm, 30), 16), fontsize=9)
    fig.suptitle(_wrap(f"{result['scenario']}: each effect over {result['draws']} {result['source']} draws "
                       f"(dots), median and 95 % interval (black), against {reference}", 110), fontsize=11)
    return fig


def marginals_figure(ds):  # noqa: ANN001, ANN201
    """Per uncertain parameter: the values the draws took (histogram) over the prior density (line); for posterior
    draws, the distance between the two shows what the calibration learned."""
    plt = _pyplot()
    params = _parameters(ds)
    cols = 4
    rows = -(-len(params) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows + 0.8), layout="constrained", squeeze=False)
    source = ds.attrs["uncertainty_source"]
    for ax, p in zip(axes.flat, params, strict=False):
        values = ds[p.label].values.astype(float)
        lo, hi = priors.ppf(p.prior, 0.001), priors.ppf(p.prior, 0.999)
        grid = np.linspace(lo, hi, 200)
        ax.hist(values, bins=min(30, max(5, values.size // 4)), range=(lo, hi), density=True, color=PALETTE[0],
                alpha=0.55, label=f"{source} draws")
        ax.plot(grid, np.exp(priors.logpdf(p.prior, grid)), color="black", lw=1.2, label="prior")
        ax.set_title(_wrap(p.label, 34), fontsize=9)
        ax.set_yticks([])
    for ax in axes.flat[len(params):]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle("Uncertain parameters: the draws against their priors", fontsize=11)
    return fig


def drivers_figure(result: dict):  # noqa: ANN201
    """Spearman's rho between each parameter and each shown effect across the draws, per comparison: the
    parameters that move the answer."""
    plt = _pyplot()
    comparisons = list(result["drivers"])
    names = [p["name"] for p in result["parameters"]]
    fig, axes = plt.subplots(1, len(comparisons), figsize=(3.6 * len(comparisons) + 2.5, 0.32 * len(names) + 1.8),
                             layout="constrained", squeeze=False, sharey=True)
    height = 0.8 / len(SHOWN)
    for ax, comparison in zip(axes[0], comparisons, strict=True):
        for k, effect in enumerate(SHOWN):
            rho = {d["parameter"]: d["spearman_rho"] for d in result["drivers"][comparison].get(effect, [])}
            y = np.arange(len(names)) + (k - (len(SHOWN) - 1) / 2) * height
            ax.barh(y, [rho.get(n) or 0.0 for n in names], height * 0.95, color=PALETTE[k % len(PALETTE)],
                    label=effect)
        ax.axvline(0.0, color="0.4", lw=0.8)
        ax.set_xlim(-1, 1)
        ax.set_title(_wrap(comparison, 40), fontsize=9)
        ax.set_xlabel("Spearman rho over the draws")
        ax.grid(True, axis="x", color="0.9", lw=0.6)
    axes[0, 0].set_yticks(range(len(names)))
    axes[0, 0].set_yticklabels(names)
    axes[0, 0].invert_yaxis()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle("What drives each effect: rank correlation of parameter and estimate across the draws", fontsize=11)
    return fig


UNCERTAINTY_FIGURE_CAPTIONS = {
    "uncertainty_effects.png": "Each paired effect over the parameter draws (one dot per draw), its median and 95 % "
                               "interval, and the share of its variance due to the parameters (the rest is Monte "
                               "Carlo).",
    "uncertainty_parameters.png": "The uncertain parameters: the values of the draws against the prior densities.",
    "uncertainty_drivers.png": "Which parameters drive each effect: Spearman's rho between parameter and estimate "
                               "across the draws.",
}


def uncertainty_figures(ds, result: dict) -> dict[str, Callable]:  # noqa: ANN001
    return {"uncertainty_effects.png": lambda: effects_figure(ds, result),
            "uncertainty_parameters.png": lambda: marginals_figure(ds),
            "uncertainty_drivers.png": lambda: drivers_figure(result)}
