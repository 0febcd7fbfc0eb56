"""Tumour-response figures of a run: the waterfalls of the best change in the target sum and in PSA, and lesion dose
against lesion response (docs/model.md 3.4-3.6)."""

from __future__ import annotations

import numpy as np

from sim.analysis import (
    BEST_RESPONSE_KEYS,
    DOSE_RESPONSE_PER_GY,
    LESION_RESPONSE_VOLUME_RATIO,
    code,
    evaluable_lesions,
    lesion_dose_response,
    psa50_response,
)
from sim.figures import SCATTER_MAX_POINTS, _labels, _log_ticks, _pyplot, _wrap, treated_arms
from sim.outcomes import patient_level
from sim.survival import wilson_ci

RESPONSE_COLOURS = {"CR": "#009E73", "PR": "#56B4E9", "SD": "#999999", "PD": "#D55E00", "NE": "#DDDDDD"}
DOSE_BINS = 8  # quantile bins of first-cycle lesion dose for the response-rate line


def _waterfall(ds, change_of, category_of, categories: dict, lines, ylabel: str, subject: str, title: str,  # noqa: ANN001
               legend_title: str | None = None):  # noqa: ANN202
    """Per treated arm, every patient's best change (``change_of(arm dataset)``, a fraction; NaN: none), sorted, each
    bar coloured by ``category_of(arm dataset)`` (``categories``: value -> (label, colour)), with horizontal ``lines``
    ((value %, line style)); changes beyond +100 % drawn at 100 %."""
    plt = _pyplot()
    arms, labels = treated_arms(ds), _labels(ds)
    level = patient_level(ds)
    fig, axes = plt.subplots(len(arms), 1, figsize=(11, 2.6 + 2.4 * len(arms)), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, arm in zip(axes[:, 0], arms, strict=True):
        a = level.sel(arm=arm)
        change, category = 100 * change_of(a), category_of(a)
        keep = np.isfinite(change)
        order = np.argsort(-change[keep])
        change, category = change[keep][order], category[keep][order]
        for value, (label, colour) in categories.items():
            at = category == value
            if at.any():
                ax.bar(np.flatnonzero(at), np.clip(change[at], -100, 100), width=1.0, color=colour, linewidth=0,
                       label=f"{label} ({at.mean():.0%})")
        for y, style in lines:
            ax.axhline(y, color="black", lw=1.0, ls=style)
        ax.set_xlim(-0.5, max(1, change.size) - 0.5)
        ax.set_ylim(-105, 105)
        ax.set_xticks([])
        ax.set_ylabel(ylabel)
        ax.set_title(_wrap(f"{labels[arm]}: {change.size:,} {subject}", 100), fontsize=10)
        ax.legend(loc="upper right", ncols=len(categories), frameon=False, fontsize=8.5, title=legend_title,
                  title_fontsize=8.5)
    fig.suptitle(_wrap(f"{title}: {ds.attrs['scenario']}", 110), fontsize=11)
    return fig


def waterfall_figure(ds):  # noqa: ANN001, ANN201
    """Per treated arm, the best change of the target-lesion sum of diameters of every patient with target lesions
    and a scan, sorted, coloured by best overall response, with RECIST's -30 % and +20 % lines."""
    codes = {code(ds.best_response, meaning): (key, RESPONSE_COLOURS[key])
             for key, meaning in BEST_RESPONSE_KEYS.items()}
    return _waterfall(ds, lambda a: a.target_sum_best_change.values, lambda a: a.best_response.values, codes,
                      ((-30, "--"), (20, ":")), "Best change of\ntarget sum (%)", "patients with target lesions",
                      "Best change of the target sum (RECIST 1.1: dashed -30 %, partial response; dotted +20 %, "
                      "progression over the nadir; beyond +100 % drawn at 100 %)", "best overall response")


def psa_waterfall_figure(ds):  # noqa: ANN001, ANN201
    """Per treated arm, every patient's best PSA change of the first course (PCWG3), sorted, coloured by confirmed
    PSA50, with the -50 % and +25 % lines."""
    categories = {True: ("PSA50, confirmed", RESPONSE_COLOURS["PR"]),
                  False: ("no confirmed PSA50", RESPONSE_COLOURS["SD"])}
    return _waterfall(ds, lambda a: a.psa_best_change.values, psa50_response, categories,
                      ((-50, "--"), (25, ":")), "Best PSA change (%)", "patients with a PSA value after baseline",
                      "Best PSA change of the first course (PCWG3: dashed -50 %, PSA50; dotted +25 %; beyond +100 % "
                      "drawn at 100 %)")


def _lesions(a) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001 - one arm, patient level
    """First-cycle dose, volume ratio at best response and receptor-negative flag of every lesion with both."""
    ratio = a.lesion_volume_ratio_best.values
    use = evaluable_lesions(a) & (ratio > 0.0)  # the log-scale panel: lesions cleared to 0 mL cannot be drawn
    return a.lesion_dose_gy_first.values[use], ratio[use], a.lesion_receptor_negative.values[use] == 1


def lesion_dose_response_figure(ds, colours: dict[str, str]):  # noqa: ANN001, ANN201
    """Left: each lesion's volume at best response against its first-cycle absorbed dose (log-log; a sample of
    ``SCATTER_MAX_POINTS`` per arm; receptor-negative lesions as crosses). Right: the fraction of lesions responding
    (-30 % in diameter) per dose bin with Wilson 95 % CIs, and the arm's odds ratio per 50 Gy."""
    plt = _pyplot()
    arms, labels = treated_arms(ds), _labels(ds)
    level = patient_level(ds)
    fig, (ax, ax_rate) = plt.subplots(1, 2, figsize=(13, 5.8), layout="constrained")
    rng = np.random.default_rng(0)  # which lesions are drawn, not a model draw
    lows, highs = [], []
    for arm in arms:
        dose, ratio, negative = _lesions(level.sel(arm=arm))
        if dose.size == 0:
            continue
        shown = rng.permutation(dose.size)[:SCATTER_MAX_POINTS]
        for flag, marker in ((False, "o"), (True, "x")):
            pick = shown[negative[shown] == flag]
            ax.scatter(np.log10(dose[pick]), np.log10(np.clip(ratio[pick], 1e-3, 1e3)), s=7, marker=marker,
                       color=colours[arm], alpha=0.35, linewidths=0.8)
        lows.append(dose.min())
        highs.append(dose.max())
        edges = np.unique(np.quantile(dose, np.linspace(0, 1, DOSE_BINS + 1)))
        which = np.clip(np.searchsorted(edges, dose, side="right") - 1, 0, edges.size - 2)
        responded = ratio <= LESION_RESPONSE_VOLUME_RATIO
        k = np.bincount(which, weights=responded, minlength=edges.size - 1)
        n = np.bincount(which, minlength=edges.size - 1)
        mids = np.array([np.median(dose[which == b]) for b in range(edges.size - 1)])
        low, high = wilson_ci(k.astype(int), n)
        odds = lesion_dose_response(level.sel(arm=arm))["lesion_response_or_per_50gy"]
        text = f"OR {odds:.2f} per {DOSE_RESPONSE_PER_GY:g} Gy" if odds is not None else "OR not estimable"
        ax_rate.errorbar(mids, 100 * k / n, yerr=100 * np.vstack([k / n - low, high - k / n]), color=colours[arm],
                         marker="o", capsize=2.5, label=_wrap(f"{labels[arm]}: {text}", 48))
    if lows:
        ticks = _log_ticks(min(lows), max(highs))
        ax.set_xticks(np.log10(ticks))
        ax.set_xticklabels([f"{t:g}" for t in ticks])
    ratio_ticks = np.array([0.01, 0.1, 0.343, 1.0, 3.0, 10.0])
    ax.set_yticks(np.log10(ratio_ticks))
    ax.set_yticklabels([f"{t:g}" for t in ratio_ticks])
    ax.axhline(np.log10(LESION_RESPONSE_VOLUME_RATIO), color="black", lw=1.0, ls="--")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("First-cycle lesion absorbed dose (Gy, log scale)")
    ax.set_ylabel("Lesion volume at best response / baseline (log scale)")
    ax.set_title("Lesions (o receptor-positive, x receptor-negative)")
    ax.grid(True, color="0.92", lw=0.6)
    ax_rate.set_xscale("log")
    if lows:
        ax_rate.set_xticks(ticks)
        ax_rate.set_xticklabels([f"{t:g}" for t in ticks])
        ax_rate.minorticks_off()
    ax_rate.set_xlabel("First-cycle lesion absorbed dose (Gy, bin median, log scale)")
    ax_rate.set_ylabel("Lesions responding (-30 % diameter), Wilson 95 % CI")
    ax_rate.yaxis.set_major_formatter(lambda y, _pos: f"{y:g}%")
    ax_rate.set_ylim(0, 100)
    ax_rate.set_title("Lesion response by dose (Alipour 2023: OR 1.5 per 50 Gy)")
    ax_rate.grid(True, color="0.92", lw=0.6)
    ax_rate.legend(loc="upper left", frameon=False, fontsize=8.5)
    fig.suptitle(f"Lesion dose and response, treated arms: {ds.attrs['scenario']}", fontsize=12)
    return fig
