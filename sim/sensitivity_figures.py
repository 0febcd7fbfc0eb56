"""The figure of ``rptsim sensitivity``: one panel per output, the parameters ranked by their index as horizontal
bars with 95 % bootstrap CI whiskers (a tornado chart; Saltelli A et al. Global Sensitivity Analysis: The Primer.
Wiley 2008, ch. 3-4), and the output's Monte Carlo noise floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.figures import PALETTE, _pyplot, _wrap, save_figure

# method -> the bars of a panel: (key, CI key, label), the first is the ranking index
BARS = {"sobol": (("ST", "ST_conf", "total (ST)"), ("S1", "S1_conf", "first order (S1)")),
        "morris": (("mu_star", "mu_star_conf", "μ* (mean |elementary effect|)"),)}
AXIS_LABEL = {"sobol": "Sobol' index (share of the output's variance over the priors)",
              "morris": "μ*, σ (output units per unit of the quantile grid)"}


def _panel(ax, method: str, output: str, entry: dict) -> None:  # noqa: ANN001 - a matplotlib Axes
    ax.set_title(_wrap(output, 40), fontsize=10, loc="left")
    if entry["note"] is not None:
        ax.text(0.5, 0.5, _wrap(entry["note"], 40), ha="center", va="center", transform=ax.transAxes, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    rows = entry["indices"]  # ranked, largest first: drawn from the top
    y = np.arange(len(rows))
    bars = BARS[method]
    height = 0.8 / len(bars)
    for k, (key, conf, label) in enumerate(bars):
        offset = (k - (len(bars) - 1) / 2) * height
        ax.barh(y + offset, [r[key] for r in rows], height=height, xerr=[r[conf] for r in rows], color=PALETTE[k],
                capsize=2.5, error_kw={"lw": 0.9}, label=label)
    if method == "morris":
        ax.plot([r["sigma"] for r in rows], y, "D", color="black", ms=4, label="σ (spread of the effects)")
    if entry["noise_floor"] is not None:
        ax.axvline(entry["noise_floor"], color="0.4", lw=0.9, ls="--", label="Monte Carlo noise floor (upper bound)")
    ax.axvline(0.0, color="0.2", lw=0.6)
    ax.set_yticks(y)
    ax.set_yticklabels([r["parameter"] for r in rows])
    ax.invert_yaxis()
    ax.grid(True, axis="x", color="0.9", lw=0.6)
    ax.set_axisbelow(True)


def sensitivity_figure(result: dict):  # noqa: ANN201 - a matplotlib Figure
    """Panels of the outputs of an ``rptsim sensitivity`` result (its OUT.json mapping), side by side."""
    plt = _pyplot()
    outputs = result["outputs"]
    n_params = len(result["parameters"])
    fig, axes = plt.subplots(1, len(outputs), figsize=(1.5 + 4.6 * len(outputs), 1.6 + 0.42 * n_params),
                             squeeze=False, layout="constrained")
    for ax, (name, entry) in zip(axes[0], outputs.items(), strict=True):
        _panel(ax, result["method"], name, entry)
        ax.set_xlabel(_wrap(AXIS_LABEL[result["method"]], 45))
    handles, labels = next(((h, lab) for h, lab in (ax.get_legend_handles_labels() for ax in axes[0]) if h),
                           ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(handles)), frameon=False, fontsize=8)
    fig.suptitle(f"{result['scenario']}: {result['arm']} vs {result['reference_arm']} ({result['method']}, "
                 f"{result['distinct_points']} points, {result['patients']} patients)", fontsize=11)
    return fig


def save_sensitivity_figure(result: dict, path: str | Path) -> None:
    save_figure(lambda: sensitivity_figure(result), path)
