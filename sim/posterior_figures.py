"""Identifiability figure of a posterior file (``rptsim calibrate --posterior``): per parameter, the prior density
and the posterior marginal on one panel, titled with the posterior / prior SD ratio, so a reader sees which
parameters the trial's endpoints determine (ratio well below 1) and which they leave at the prior (ratio ~1)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr

from sim import posterior, priors
from sim.figures import GREYS, PALETTE, _pyplot, save_figure

COLUMNS = 4
BINS = 40
PRIOR_RANGE = (0.001, 0.999)  # prior quantiles the x axis spans at least


def identifiability_figure(ds: xr.Dataset):  # noqa: ANN201 - a matplotlib Figure
    """Prior density (:func:`sim.priors.logpdf`) and weighted posterior histogram of every parameter."""
    plt = _pyplot()
    params, rows = posterior.parameters_of(ds), posterior.summary_rows(ds)
    cols = min(COLUMNS, len(params))
    fig, axes = plt.subplots(math.ceil(len(params) / cols), cols, figsize=(3.3 * cols, 2.5 * math.ceil(
        len(params) / cols) + 0.6), layout="constrained", squeeze=False)
    w = ds["weight"].values
    for ax, p, row in zip(axes.flat, params, rows, strict=False):
        x = ds[p.label].values
        lo, hi = priors.ppf(p.prior, np.array(PRIOR_RANGE))
        grid = np.linspace(min(lo, x.min()), max(hi, x.max()), 400)
        ax.hist(x, bins=BINS, range=(grid[0], grid[-1]), weights=w, density=True, color=PALETTE[0], alpha=0.55,
                label="posterior")
        ax.plot(grid, np.exp(priors.logpdf(p.prior, grid)), color=GREYS[0], lw=1.5, label="prior")
        ax.axvline(row["posterior_median"], color=PALETTE[1], lw=1.2, ls="--", label="posterior median")
        ax.set_title(f"{p.label}\nSD ratio {row['sd_ratio']:.2f}")
        ax.set_yticks([])
    for ax in axes.flat[len(params):]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="upper right", frameon=False)
    fig.suptitle(f"Prior and posterior, calibrated on {ds.attrs['calibrated_on']} ({ds.sizes['draw']:,} draws; "
                 "SD ratio = posterior SD / prior SD)")
    return fig


def save_identifiability_figure(ds: xr.Dataset, path: str | Path) -> None:
    save_figure(lambda: identifiability_figure(ds), path)
