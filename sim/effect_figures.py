"""Figures of the paired effects of a run (``summary["comparisons"]``, :func:`sim.analysis.comparison`): a forest
plot, the efficacy-toxicity trade-off, each patient's gain, and benefit by baseline covariate."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.figures import _labels, _pyplot, _short, _wrap, arm_colours
from sim.units import DAYS_PER_MONTH

TRADEOFF_TOXICITIES = (("grade3plus_renal_rate", "Renal grade ≥3"),
                       ("grade3plus_haematological_rate", "Haematological grade ≥3 (any line)"))
FOREST_LANDMARKS = ("12", "24")
COVARIATE_PANELS = 8
GAIN_BINS = 40


def _compared(summary: dict) -> dict[str, dict]:
    """Compared arm name -> its comparison with the reference arm."""
    reference = summary["reference_arm"]
    return {key.removesuffix(f" vs {reference}"): c for key, c in summary["comparisons"].items()}


def _tox_label(key: str) -> str:
    if key == "mds_aml_rate":
        return "MDS/AML"
    return key.removesuffix("_rate").replace("grade3plus_", "grade ≥3 ").replace("_", " ").capitalize()


def _forest_rows(c: dict) -> list[tuple[str, str, float, list[float]]]:
    """(panel, label, estimate, CI) of every paired effect of one comparison; rates in percentage points."""
    rows = [("hr", f"{e.upper()} hazard ratio", c[f"{e}_hr"], c[f"{e}_hr_robust_ci"]) for e in ("pfs", "os")]
    rows += [("months", f"RMST {e.upper()}", c[f"rmst_{e}_difference_months"], c[f"rmst_{e}_difference_ci"])
             for e in ("pfs", "os")]
    rows += [("pp", f"{e.upper()} at {m} months", 100 * c[f"{e}_at_months_difference"][m],
              [100 * x for x in c[f"{e}_at_months_difference_ci"][m]]) for e in ("pfs", "os") for m in FOREST_LANDMARKS]
    rows.append(("pp", "Objective response", 100 * c["objective_response_rate_difference"],
                 [100 * x for x in c["objective_response_rate_difference_ci"]]))
    tox = c["toxicity_rate_differences"]
    rows += [("pp", _tox_label(k), 100 * v, [100 * x for x in tox[f"{k}_ci"]]) for k, v in tox.items()
             if not k.endswith("_ci")]
    return rows


def forest_figure(ds, summary: dict):  # noqa: ANN001, ANN201
    """Every paired effect of every compared arm against the reference, with its 95 % CI, in three panels: hazard
    ratios (log scale), RMST differences (months) and differences in rates (percentage points)."""
    plt = _pyplot()
    compared, colours, labels = _compared(summary), arm_colours(ds), _labels(ds)
    panels = {"hr": "Hazard ratio (robust 95 % CI)", "months": f"RMST difference to {_horizon(summary)} months "
              "(months, paired 95 % CI)", "pp": "Difference (percentage points, paired 95 % CI)"}
    rows = {arm: _forest_rows(c) for arm, c in compared.items()}
    first = next(iter(rows.values()))
    counts = [sum(1 for r in first if r[0] == p) for p in panels]
    fig, axes = plt.subplots(3, 1, figsize=(9.5, 1.5 + 0.3 * sum(counts) * (1 + 0.25 * (len(compared) - 1))),
                             height_ratios=counts, layout="constrained")
    step = 0.7 / max(1, len(compared))
    for ax, (panel, title) in zip(axes, panels.items(), strict=True):
        labels_y = [r[1] for r in first if r[0] == panel]
        for i, (arm, arm_rows) in enumerate(rows.items()):
            mine = [r for r in arm_rows if r[0] == panel]
            y = np.arange(len(mine)) + (i - (len(compared) - 1) / 2) * step  # first arm on top
            est = np.array([np.nan if r[2] is None else r[2] for r in mine], dtype=float)
            low = np.array([np.nan if r[3][0] is None else r[3][0] for r in mine], dtype=float)
            high = np.array([np.nan if r[3][1] is None else r[3][1] for r in mine], dtype=float)
            ax.errorbar(est, y, xerr=[est - low, high - est], fmt="o", ms=4.5, color=colours[arm], capsize=2.5,
                        label=_wrap(labels[arm], 34))
        ax.axvline(1.0 if panel == "hr" else 0.0, color="0.4", lw=0.9, ls="--")
        if panel == "hr":
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:.3g}")
            ax.xaxis.set_minor_formatter(lambda x, _pos: "")
        ax.set_yticks(range(len(labels_y)))
        ax.set_yticklabels(labels_y)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(True, axis="x", color="0.9", lw=0.6)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(compared), 3), frameon=False)
    reference = labels[summary["reference_arm"]]
    fig.suptitle(_wrap(f"Paired effects against {reference} (same patients in every arm): {summary['scenario']}",
                       90), fontsize=11)
    return fig


def _horizon(summary: dict) -> str:
    return f"{summary['rmst_horizon_months']:g}"


def tradeoff_figure(ds, summary: dict):  # noqa: ANN001, ANN201
    """Efficacy against toxicity: each compared arm's RMST PFS gain against its difference in renal and in
    haematological grade >= 3 rates, both with paired 95 % CIs; the reference arm is the origin."""
    colours, labels = arm_colours(ds), _labels(ds)
    points = []
    for arm, c in _compared(summary).items():
        tox = c["toxicity_rate_differences"]
        points.append((colours[arm], labels[arm], None, {k: (tox[k], tox[f"{k}_ci"]) for k, _ in TRADEOFF_TOXICITIES},
                       (c["rmst_pfs_difference_months"], c["rmst_pfs_difference_ci"])))
    return _tradeoff(points, _horizon(summary), f"Efficacy-toxicity trade-off against "
                     f"{labels[summary['reference_arm']]}, paired 95 % CIs: {summary['scenario']}")


def sweep_tradeoff_figure(ds):  # noqa: ANN001, ANN201
    """The trade-off of :func:`tradeoff_figure` for every scenario of a sweep: one colour per compared arm, or, with
    one compared arm, per level of the first swept parameter; with few scenarios each point is labelled with its
    swept values."""
    from sim.figures import PALETTE, _fmt_level, readable, sweep_axes, sweep_comparison_arms

    labels = _labels(ds)
    coords = [c for a in sweep_axes(ds) for c in a["coords"]]
    arms = sweep_comparison_arms(ds)
    by_level = len(arms) == 1 and coords
    n = int(ds.sizes["scenario"])
    points, groups = [], {}  # legend entry -> colour index, in order of appearance
    for arm in arms:
        for k in range(n):
            a = ds.sel(arm=arm).isel(scenario=k)
            group = f"{readable(coords[0])} = {_fmt_level(a[coords[0]].values.item())}" if by_level else labels[arm]
            first = group not in groups
            colour = PALETTE[groups.setdefault(group, len(groups)) % len(PALETTE)]
            tag = ", ".join(_fmt_level(a[c].values.item()) for c in coords) if n <= 12 and coords else None
            tox = {key: (float(a[f"{key}_difference"]), a[f"{key}_difference_ci"].values.tolist())
                   for key, _ in TRADEOFF_TOXICITIES}
            points.append((colour, group if first else None, tag, tox,
                           (float(a.rmst_pfs_difference_months), a.rmst_pfs_difference_ci.values.tolist())))
    horizon = f"{float(ds.individual_horizon_months.max()):g}"
    return _tradeoff(points, horizon, f"Efficacy-toxicity trade-off across the sweep {ds.attrs['sweep_name']} "
                     f"({n} scenarios{f' of {labels[arms[0]]}' if by_level else ''}), paired 95 % CIs")


def _tradeoff(points: list, horizon: str, title: str):  # noqa: ANN202
    """Draw (colour, legend label or None, point label or None, {toxicity: (difference, CI)}, (RMST gain, CI))
    points, one panel per ``TRADEOFF_TOXICITIES`` entry, rates in percentage points."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(TRADEOFF_TOXICITIES), figsize=(11, 4.8), layout="constrained", sharey=True)
    for ax, (key, name) in zip(axes, TRADEOFF_TOXICITIES, strict=True):
        for colour, label, tag, tox, (y, (yl, yh)) in points:
            x, (xl, xh) = 100 * tox[key][0], (100 * v for v in tox[key][1])
            ax.errorbar([x], [y], xerr=[[x - xl], [xh - x]], yerr=[[y - yl], [yh - y]], fmt="o", ms=6,
                        color=colour, capsize=3, label=None if label is None else _wrap(label, 45))
            if tag:
                ax.annotate(tag, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, color="0.3")
        ax.axhline(0.0, color="0.4", lw=0.9, ls="--")
        ax.axvline(0.0, color="0.4", lw=0.9, ls="--")
        ax.set_xlabel(f"{name}: difference (percentage points)")
        ax.grid(True, color="0.9", lw=0.6)
        ax.text(0.02, 0.98, "better and safer", transform=ax.transAxes, va="top", fontsize=8, color="0.35")
    axes[0].set_ylabel(f"RMST PFS gain to {horizon} months (months)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 3), frameon=False)
    fig.suptitle(_wrap(title, 100), fontsize=11)
    return fig


def gain_figure(ds, summary: dict):  # noqa: ANN001, ANN201
    """Each patient's own gain (months of PFS and of OS, restricted to the RMST horizon) under each compared arm
    rather than the reference: histograms of the patients whose time changed, the unchanged share in the legend."""
    from sim.analysis import UNCHANGED_DAYS, individual_gains
    from sim.outcomes import patient_level

    plt = _pyplot()
    compared, colours, labels = _compared(summary), arm_colours(ds), _labels(ds)
    level = patient_level(ds)
    horizon = float(_horizon(summary)) * DAYS_PER_MONTH
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    for ax, endpoint in zip(axes, ("pfs", "os"), strict=True):
        gains = {}
        for arm in compared:
            gain, known = individual_gains(level, arm, summary["reference_arm"], endpoint, horizon)
            gains[arm] = gain[known] / DAYS_PER_MONTH
        changed = np.concatenate([g[np.abs(g) >= UNCHANGED_DAYS / DAYS_PER_MONTH] for g in gains.values()])
        edges = np.linspace(*(np.percentile(changed, [0.5, 99.5]) if changed.size else (-1.0, 1.0)), GAIN_BINS + 1)
        for arm, g in gains.items():
            moved = g[np.abs(g) >= UNCHANGED_DAYS / DAYS_PER_MONTH]
            share = 1.0 - moved.size / g.size if g.size else float("nan")
            weights = np.full(moved.size, 100.0 / max(1, g.size))
            ax.hist(np.clip(moved, edges[0], edges[-1]), bins=edges, weights=weights, histtype="step", lw=1.6,
                    color=colours[arm], label=_wrap(f"{_short(labels[arm], 40)} (unchanged: {share:.0%})", 50))
        ax.axvline(0.0, color="0.4", lw=0.9, ls="--")
        ax.set_xlabel(f"{endpoint.upper()} gain per patient, restricted to {_horizon(summary)} months (months)")
        ax.set_ylabel("Patients (%)")
        ax.legend(fontsize=8, frameon=False, loc="upper right")
        ax.grid(True, color="0.9", lw=0.6)
    fig.suptitle(_wrap(f"Individual gains against {labels[summary['reference_arm']]}, patients whose time changed "
                       f"(observable only in silico): {summary['scenario']}", 100), fontsize=11)
    return fig


def benefit_figure(ds, summary: dict):  # noqa: ANN001, ANN201
    """Mean PFS gain per patient by baseline covariate group (quartiles; yes/no covariates by value), one panel per
    covariate, the covariates most correlated with the gain first (Spearman's rho in the title)."""
    plt = _pyplot()
    compared, colours, labels = _compared(summary), arm_colours(ds), _labels(ds)
    ranked: dict[str, float] = {}
    for c in compared.values():
        for name, v in c["individual"]["pfs"]["benefit_by_covariate"].items():
            ranked[name] = max(ranked.get(name, 0.0), abs(v["spearman_rho"] or 0.0))
    names = sorted(ranked, key=lambda k: -ranked[k])[:COVARIATE_PANELS]
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows + 0.8), layout="constrained",
                             squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names, strict=False):
        rhos = []
        for arm, c in compared.items():
            entry = c["individual"]["pfs"]["benefit_by_covariate"][name]
            groups = entry["mean_gain_months_by_group"]
            y = [np.nan if v is None else v for v in groups.values()]
            ax.plot(range(len(y)), y, "-o", ms=4, color=colours[arm], label=_wrap(labels[arm], 34))
            ax.set_xticks(range(len(y)))
            ax.set_xticklabels(list(groups))
            rhos.append("-" if entry["spearman_rho"] is None else f"{entry['spearman_rho']:+.2f}")
        ax.axhline(0.0, color="0.4", lw=0.8, ls="--")
        ax.set_title(_wrap(f"{name} (rho {', '.join(rhos)})", 38), fontsize=9)
        ax.grid(True, color="0.9", lw=0.6)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("Mean PFS gain (months)")
    handles, arm_names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, arm_names, loc="outside lower center", ncols=min(len(compared), 3), frameon=False)
    fig.suptitle(_wrap(f"Who gains: mean individual PFS gain (restricted to {_horizon(summary)} months) by baseline "
                       f"covariate group, against {labels[summary['reference_arm']]}: {summary['scenario']}", 100),
                 fontsize=11)
    return fig


EFFECT_FIGURE_CAPTIONS = {
    "effects_forest.png": "Paired effects of each arm against the reference (same patients): hazard ratios with "
                          "patient-clustered robust 95 % CIs, RMST differences by the paired delta method, and "
                          "differences in survival, response and toxicity rates with paired 95 % CIs.",
    "effects_tradeoff.png": "Efficacy-toxicity trade-off: RMST PFS gain against the difference in renal and in "
                            "haematological grade ≥3 rates, paired 95 % CIs; the reference arm is the origin.",
    "individual_gains.png": "Each patient's own PFS and OS gain (restricted to the RMST horizon) under each arm "
                            "rather than the reference, among patients whose time changed.",
    "benefit_by_covariate.png": "Mean individual PFS gain by baseline covariate group, covariates most correlated "
                                "with the gain first.",
}


def effect_figures(ds, summary: dict) -> dict[str, Callable]:  # noqa: ANN001
    """File name -> function drawing the figure, for the paired-effect figures this run supports."""
    if not summary["comparisons"]:
        return {}
    out = {"effects_forest.png": lambda: forest_figure(ds, summary),
           "effects_tradeoff.png": lambda: tradeoff_figure(ds, summary),
           "individual_gains.png": lambda: gain_figure(ds, summary)}
    if all("benefit_by_covariate" in c["individual"]["pfs"] for c in summary["comparisons"].values()):
        out["benefit_by_covariate.png"] = lambda: benefit_figure(ds, summary)
    return out
