"""Figures of ``rptsim report`` (matplotlib, Agg backend): Kaplan-Meier curves with numbers at risk, dose
distributions, toxicity rates with Wilson CIs, a swimmer plot, and the guided arms' activity against kidney uptake.

Matplotlib is imported only when a figure is drawn, so ``import sim`` and ``rptsim run`` stay light.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sim.analysis import objective_response, toxicity_flags
from sim.outcomes import patient_level
from sim.units import DAYS_PER_MONTH

DPI = 130
# Okabe-Ito colour-blind-safe palette for treated arms; greys for arms without treatment (controls).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
GREYS = ["#555555", "#999999", "#333333"]

KIDNEY_BED_LIMITS_GY = ((40.0, "40 Gy (Bodei 2008)"), (28.0, "28 Gy, risk factors (Bodei 2008)"))
MARROW_LIMIT_GY = 2.0

# label and summary key of each bar after the blood lines' (one per line); the per-patient flags are
# sim.analysis.toxicity_flags
OTHER_TOXICITY_BARS = [
    ("Renal grade ≥3\n(any cause)", "grade3plus_renal_rate"),
    ("MDS/AML", "mds_aml_rate"),
    ("Dose\nreductions", "dose_reductions_rate"),
    ("Delays", "delays_rate"),
]
ORR_BAR = ("Objective\nresponse (CR/PR)", "objective_response_rate")


def toxicity_bars(ds) -> list[tuple[str, str]]:  # noqa: ANN001
    """(label, summary key) of each toxicity bar: grade >= 3 per blood line, then ``OTHER_TOXICITY_BARS``."""
    return [(f"Grade ≥3\n{ae}", f"grade3plus_{ae}_rate") for ae in ds.adverse_event.values] + OTHER_TOXICITY_BARS

SWIMMER_PATIENTS = 30  # shown in the swimmer plot, shared among its treated arms ...
SWIMMER_MIN_PATIENTS = 6  # ... at least this many per arm
SCATTER_MAX_POINTS = 3000


def _pyplot():
    """pyplot, off-screen (Agg) in scripts and the command line; in a notebook (ipykernel) its own backend stays,
    so figures display inline."""
    import sys

    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# text.parse_math off: names and labels come from files, and a "$" in them must print as a "$", not start mathtext
STYLE = {"text.parse_math": False,
         "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9, "xtick.labelsize": 9,
         "ytick.labelsize": 9, "figure.dpi": DPI, "savefig.dpi": DPI}


def _arms(ds) -> list[str]:  # noqa: ANN001
    return [str(a) for a in ds.arm.values]


def _labels(ds) -> dict[str, str]:  # noqa: ANN001
    return {str(a): str(lab) or str(a) for a, lab in zip(ds.arm.values, ds.arm_label.values, strict=True)}


def treated_arms(ds) -> list[str]:  # noqa: ANN001
    """Arms in which some patient received activity."""
    given = patient_level(ds).activity_gbq_total.sum("patient").values > 0
    return [a for a, g in zip(_arms(ds), given, strict=True) if g]


def guided_arms(ds) -> list[str]:  # noqa: ANN001
    """Arms with dosimetry performed (some patient has ``cycles_measured`` > 0): the dosimetry-guided arms."""
    measured = patient_level(ds).cycles_measured.max("patient").values > 0
    return [a for a, m in zip(_arms(ds), measured, strict=True) if m]


def arm_colours(ds) -> dict[str, str]:  # noqa: ANN001
    """One colour per arm, the same in every figure: palette colours for treated arms, greys for controls."""
    treated = set(treated_arms(ds))
    colours, t, c = {}, 0, 0
    for arm in _arms(ds):
        if arm in treated:
            colours[arm] = PALETTE[t % len(PALETTE)]
            t += 1
        else:
            colours[arm] = GREYS[c % len(GREYS)]
            c += 1
    return colours


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _save(fig, path: Path) -> None:  # noqa: ANN001
    from sim.outcomes import write_atomic

    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, facecolor="white"))


def save_figure(draw: Callable, path: str | Path) -> None:
    """Draw a figure (``draw()`` returns it) in the report style, leaving the caller's matplotlib settings as they
    were, write it atomically as PNG and close it."""
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig = draw()
        try:
            _save(fig, Path(path))
        finally:
            plt.close(fig)


def _tick_step(max_months: float) -> int:
    """At-risk table spacing: every 6 months up to 4 years of follow-up, every 12 beyond."""
    return 6 if max_months <= 48 else 12


CENSOR_MARKS = 150  # censoring marks per arm on a KM curve: enough to show where follow-up ends, not a smear


def km_figure(ds, endpoint: str, colours: dict[str, str], effects: dict[str, str] | None = None):  # noqa: ANN001, ANN201
    """Kaplan-Meier curves per arm with the log-log 95 % band, censoring marks, medians, each compared arm's hazard
    ratio (``effects``: arm -> text) in its legend entry, and the numbers at risk below."""
    from sim.survival import kaplan_meier

    plt = _pyplot()
    arms, labels = _arms(ds), _labels(ds)
    radiographic = json.loads(ds.attrs["config_json"])["trial"].get("pfs_name") == "rPFS"
    name = {"pfs": ("Radiographic p" if radiographic else "P") + "rogression-free survival",
            "os": "Overall survival"}[endpoint]
    times = ds[f"{endpoint}_time_days"].values / DAYS_PER_MONTH
    events = ds[f"{endpoint}_event"].values
    t_max = float(np.nanmax(times)) if np.isfinite(times).any() else 1.0
    step = _tick_step(t_max)
    x_max = step * max(1, int(np.ceil(t_max / step)))
    ticks = np.arange(0, x_max + step / 2, step)

    legend_rows = int(np.ceil(len(arms) / 2))
    fig = plt.figure(figsize=(9.5, 6.6 + 0.45 * len(arms) + 0.4 * legend_rows), layout="constrained")
    grid = fig.add_gridspec(3, 1, height_ratios=[0.42 * legend_rows, 5.0, 0.55 * len(arms) + 0.35])
    key = fig.add_subplot(grid[0])  # the legend's own row: between the title and the plot, never over curves
    key.axis("off")
    ax = fig.add_subplot(grid[1])
    table = fig.add_subplot(grid[2], sharex=ax)
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":", zorder=1)
    band_alpha = 0.18 if len(arms) <= 2 else 0.10  # overlapping bands of many arms would turn solid grey
    for i, arm in enumerate(arms):
        km = kaplan_meier(times[i], events[i])
        t = np.concatenate(([0.0], km.time, [t_max]))
        s = np.concatenate(([1.0], km.survival, [km.survival[-1] if km.survival.size else 1.0]))
        lo = np.concatenate(([1.0], km.lower, [km.lower[-1] if km.lower.size else 1.0]))
        hi = np.concatenate(([1.0], km.upper, [km.upper[-1] if km.upper.size else 1.0]))
        median = km.median()
        effect = f"; {effects[arm]}" if effects and arm in effects else ""
        legend = _wrap(f"{labels[arm]} (median " + (f"{median:.1f} months" if median is not None
                                                     else "not reached") + f"{effect})", 58)
        ax.fill_between(t, lo, hi, step="post", color=colours[arm], alpha=band_alpha, lw=0, zorder=2)
        ax.step(t, s, where="post", color=colours[arm], lw=1.8, label=legend, zorder=3)
        censored = np.sort(times[i][events[i] == 0])
        if censored.size:  # censoring marks on the curve, at most CENSOR_MARKS per arm (evenly by rank)
            censored = censored[np.unique(np.linspace(0, censored.size - 1, CENSOR_MARKS).astype(int))]
            ax.plot(censored, km.at(censored), ls="none", marker="|", ms=5, mew=0.7, color=colours[arm], zorder=4)
        if median is not None:
            ax.plot([median, median], [0, 0.5], color=colours[arm], lw=1.0, ls="--", zorder=2)
    ax.set_xlim(0, x_max)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(ticks)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.yaxis.set_major_formatter(lambda y, _pos: f"{y:.0%}")
    ax.set_ylabel(f"{name} (% of patients)")
    ax.set_xlabel("Months since randomisation")
    ax.grid(True, color="0.9", lw=0.6)
    fig.suptitle(f"{name}: Kaplan-Meier with 95 % CI (log-log), {ds.attrs['scenario']}", fontsize=12)
    key.legend(*ax.get_legend_handles_labels(), loc="center", ncols=min(len(arms), 2), frameon=False,
               columnspacing=2.0, fontsize=9.5)

    # numbers at risk: patients with time >= t (still followed and event-free) at each tick; each arm's label
    # on its own line above its numbers, so that long labels need no truncation
    for i, arm in enumerate(arms):
        table.text(0, 2 * i, labels[arm], ha="left", va="center", fontsize=8.5, color=colours[arm],
                   fontstyle="italic")
        for tick in ticks:
            n = int(np.sum(times[i] >= tick))
            table.text(tick, 2 * i + 0.95, f"{n:,}", ha="center", va="center", fontsize=9, color=colours[arm])
    table.set_ylim(2 * len(arms) - 0.4, -0.6)
    table.set_yticks([])
    table.tick_params(axis="x", length=0, labelbottom=False)
    for spine in table.spines.values():
        spine.set_visible(False)
    table.set_title("Number at risk", loc="left", fontsize=10, fontweight="bold")
    return fig


def incidence_figure(ds, colours: dict[str, str]):  # noqa: ANN001, ANN201
    """Cumulative incidence of renal grade >= 3 and of MDS/AML per arm (Aalen-Johansen, death competing), the
    summary's 24- and 60-month horizons marked."""
    from sim.analysis import INCIDENCE_MONTHS, competing_events
    from sim.survival import aalen_johansen

    plt = _pyplot()
    level, labels = patient_level(ds), _labels(ds)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.0), layout="constrained")
    titles = {"renal_grade3plus": "Renal grade ≥ 3 (eGFR < 30 or acute, any cause)", "mds_aml": "MDS/AML"}
    for ax, (name, title) in zip(axes, titles.items(), strict=True):
        top = 0.0
        for arm in _arms(ds):
            time, cause = competing_events(level.sel(arm=arm))[name]
            cif = aalen_johansen(time, cause, 2)
            t = np.concatenate(([0.0], cif.time, [time.max()])) / DAYS_PER_MONTH
            f = np.concatenate(([0.0], cif.cif[0], [cif.cif[0, -1] if cif.time.size else 0.0]))
            ax.step(t, f, where="post", color=colours[arm], lw=1.8, label=_wrap(labels[arm], 40))
            top = max(top, float(f.max()))
        for m in INCIDENCE_MONTHS:
            ax.axvline(m, color="0.6", lw=0.8, ls=":")
        ax.set_ylim(0, max(0.01, top * 1.15))
        ax.yaxis.set_major_formatter(lambda y, _pos: f"{y:.1%}")
        ax.set_xlabel("Months since randomisation")
        ax.set_title(title, fontsize=11)
        ax.grid(True, color="0.9", lw=0.6)
    axes[0].set_ylabel("Cumulative incidence (% of patients)")
    axes[1].legend(frameon=False, fontsize=8.5, loc="upper left")
    fig.suptitle(f"Cumulative incidence with death as a competing risk (Aalen-Johansen), {ds.attrs['scenario']}",
                 fontsize=12)
    return fig


BLOOD_COURSE_PATIENTS = 8  # patients drawn in blood_course.png (the swimmer plot's first ones)


def blood_course_figure(ds, colours: dict[str, str]):  # noqa: ANN001, ANN201
    """Blood counts of a few treated patients of the first treated arm (the swimmer plot's), one panel per blood
    line: from the baseline through each cycle's nadir (at its day) to the count when the cycle's follow-up ended
    (the next administration, or the end of the marrow window), with the line's CTCAE grade 3 threshold."""
    from sim.organs import BLOOD_LINES

    plt = _pyplot()
    arms, idx = swimmer_arm_patients(ds)
    arm = arms[0]
    a = ds.sel(arm=arm)
    shown = idx[:BLOOD_COURSE_PATIENTS]
    window = json.loads(ds.attrs["config_json"])["marrow"]["window_after_last_cycle_days"]
    grade3 = {b.name: b.grade_below[2] for b in BLOOD_LINES}
    lines = [str(b) for b in ds.blood_line.values]
    units = dict(zip(lines, (str(u) for u in ds.blood_line_units.values), strict=True))
    baselines = {"platelets": "platelets_1e9_per_l", "neutrophils": "neutrophils_1e9_per_l",
                 "lymphocytes": "lymphocytes_1e9_per_l", "haemoglobin": "haemoglobin_g_dl"}
    cols = min(2, len(lines))
    fig, axes = plt.subplots(int(np.ceil(len(lines) / cols)), cols, figsize=(11, 3.6 * np.ceil(len(lines) / cols) + 1),
                             squeeze=False, layout="constrained")
    palette = [PALETTE[k % len(PALETTE)] for k in range(len(shown))]
    for ax, line in zip(axes.flat, lines, strict=False):
        for colour, p in zip(palette, shown, strict=True):
            given = np.flatnonzero(np.isfinite(a.cycle_time_days.values[p]))
            start = a.cycle_time_days.values[p][given]
            ends = np.append(start[1:], start[-1] + window) if given.size else start
            t = [0.0]
            y = [float(ds[baselines[line]].values[p])]
            for k, t0, t1 in zip(given, start, ends, strict=True):
                t += [t0 + float(a.blood_nadir_day.sel(blood_line=line).values[p, k]), t1]
                y += [float(a.blood_nadir.sel(blood_line=line).values[p, k]),
                      float(a.blood_end.sel(blood_line=line).values[p, k])]
            ax.plot(np.array(t) / DAYS_PER_MONTH, y, "-o", ms=3, lw=1.2, color=colour,
                    label=f"patient {int(a.patient.values[p])}")
        if np.isfinite(grade3.get(line, np.nan)):
            ax.axhline(grade3[line], color="#D55E00", lw=1.0, ls="--", label="grade 3 threshold")
        ax.set_title(line.capitalize(), fontsize=10.5)
        ax.set_ylabel(f"Count ({units[line]})")
        ax.set_xlabel("Months since randomisation")
        ax.set_ylim(bottom=0)
        ax.grid(True, color="0.9", lw=0.6)
    for ax in axes.flat[len(lines):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7.5, ncols=2, frameon=False, loc="lower left")
    fig.suptitle(_wrap(f"Blood counts of {len(shown)} treated patients (the swimmer plot's), {_labels(ds)[arm]}: "
                       f"baseline, each cycle's nadir and the count when its follow-up ended; {ds.attrs['scenario']}",
                       110), fontsize=11)
    return fig


KIDNEY_BED_BINS_GY = np.arange(0.0, 82.0, 8.0)  # kidney_course.png: bins of cumulative kidney BED for the medians
CKD_GRADE3_EGFR = 30.0  # CTCAE v5.0 chronic kidney disease grade 3: eGFR < 30 mL/min/1.73 m2
LANDMARK_MONTHS = 48  # egfr_change_48_months


def kidney_course_figure(ds, colours: dict[str, str]):  # noqa: ANN001, ANN201
    """Kidney dose-response and example courses. Left: eGFR change at 4 years against cumulative kidney BED, each
    treated patient alive at 4 years (a sample of at most 2000 per arm) with the median per 8 Gy bin, and the
    untreated arms' median change (background decline) as a line. Right: eGFR of a few treated patients of the
    first treated arm (the swimmer plot's) at baseline, at 4 years and at the end of follow-up, with the CKD grade 3
    threshold (30 mL/min)."""
    plt = _pyplot()
    labels, level = _labels(ds), patient_level(ds)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    rng = np.random.default_rng(0)  # which points are drawn only: the medians use every patient
    treated = treated_arms(ds)
    for arm in treated:
        bed = _cumulative(level, lambda a: a.bed_gy_total.sel(organ="kidney"), arm)
        change = 100.0 * _cumulative(level, lambda a: a.egfr_change_48_months, arm)
        alive = np.isfinite(change)
        bed, change = bed[alive], change[alive]
        shown = rng.permutation(bed.size)[:2000]
        left.scatter(bed[shown], change[shown], s=4, alpha=0.25, color=colours[arm], lw=0)
        which = np.digitize(bed, KIDNEY_BED_BINS_GY)
        centres, medians = [], []
        for b in np.unique(which):
            if (which == b).sum() >= 20:  # a median of fewer patients is noise
                centres.append(float(np.median(bed[which == b])))
                medians.append(float(np.median(change[which == b])))
        left.plot(centres, medians, "-o", ms=4, lw=1.8, color=colours[arm], label=f"{labels[arm]} (median per bin)")
    for arm in (str(a) for a in ds.arm.values if str(a) not in treated):
        a = level.sel(arm=arm)
        untreated = a.egfr_change_48_months.values[a.cycles_given.values == 0]
        if np.isfinite(untreated).any():
            left.axhline(100.0 * float(np.nanmedian(untreated)), color=colours[arm], lw=1.2, ls=":",
                         label=f"{labels[arm]} (median, untreated)")
    left.set_xlabel("Cumulative kidney BED (Gy)")
    left.set_ylabel(f"eGFR change at {LANDMARK_MONTHS} months (%)")
    left.set_title("Kidney dose-response: eGFR change at 4 years", fontsize=10.5)
    left.grid(True, color="0.9", lw=0.6)
    left.legend(fontsize=8, frameon=False, loc="lower left")
    arms, idx = swimmer_arm_patients(ds)
    a = ds.sel(arm=arms[0])
    for k, p in enumerate(idx[:BLOOD_COURSE_PATIENTS]):
        end = float(a.os_time_days.values[p]) / DAYS_PER_MONTH
        t, y = [0.0], [float(ds.egfr_ml_min.values[p])]
        if LANDMARK_MONTHS <= end:
            t.append(LANDMARK_MONTHS)
            y.append(y[0] * (1.0 + float(a.egfr_change_48_months.values[p])))
        t.append(end)
        y.append(float(a.egfr_end_ml_min.values[p]))
        right.plot(t, y, "-o", ms=3, lw=1.2, color=PALETTE[k % len(PALETTE)],
                   label=f"patient {int(a.patient.values[p])}")
    right.axhline(CKD_GRADE3_EGFR, color="#D55E00", lw=1.0, ls="--", label="CKD grade 3 (eGFR < 30)")
    right.set_xlabel("Months since randomisation")
    right.set_ylabel("eGFR (mL/min/1.73 m²)")
    right.set_ylim(bottom=0)
    right.set_title(_wrap(f"eGFR of {len(idx[:BLOOD_COURSE_PATIENTS])} treated patients, {labels[arms[0]]}: "
                          "baseline, 4 years, end of follow-up", 60), fontsize=10)
    right.grid(True, color="0.9", lw=0.6)
    right.legend(fontsize=7.5, ncols=2, frameon=False, loc="lower left")
    fig.suptitle(f"Kidney: dose-response and example courses, {ds.attrs['scenario']}", fontsize=12)
    return fig


def _cumulative(level, select: Callable, arm: str) -> np.ndarray:  # noqa: ANN001 - level: patient-level Dataset
    """``select(level)`` (a cumulative dose variable) of the treated patients of ``arm``."""
    a = level.sel(arm=arm)
    return select(a).values[a.cycles_given.values > 0]


def _log_ticks(low: float, high: float) -> np.ndarray:
    """1-3-10 ticks covering [low, high] (positive), for a log10-transformed axis."""
    decades = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    ticks = np.sort(np.concatenate([10.0**decades, 3 * 10.0**decades]))
    return ticks[(ticks >= low) & (ticks <= high)]


def dose_figure(ds, colours: dict[str, str]):  # noqa: ANN001, ANN201
    """Violins (with median and interquartile range) of cumulative kidney BED, the absorbed dose of every other
    organ at risk and of the index lesion, of treated patients, per treated arm, with the organ reference lines; an
    organ that no treated patient received dose in is left out."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    arms, labels = treated_arms(ds), _labels(ds)
    panels = [
        (lambda a: a.bed_gy_total.sel(organ="kidney"), "Cumulative kidney BED (Gy)", "Kidney BED",
         KIDNEY_BED_LIMITS_GY, False),
        (lambda a: a.dose_gy_total.sel(organ="marrow"), "Cumulative red-marrow absorbed dose (Gy)",
         "Red-marrow absorbed dose", ((MARROW_LIMIT_GY, "2 Gy marrow limit"),), False),
        *((lambda a, o=organ: a.dose_gy_total.sel(organ=o), f"Cumulative {label.lower()} absorbed dose (Gy)",
           f"{label} absorbed dose", (), False)
          for organ, label in zip(ds.organ.values, ds.organ_label.values, strict=True)
          if organ not in ("kidney", "marrow")),
        (lambda a: a.index_lesion_dose_gy_total, "Cumulative index-lesion absorbed dose (Gy, log scale)",
         "Tumour absorbed dose", (), True),
    ]
    level = patient_level(ds)
    # an organ the agents do not reach (kidneys and marrow with microspheres) has no panel
    panels = [p for p in panels if any(np.any(_cumulative(level, p[0], a) > 0) for a in arms)]
    fig, axes = plt.subplots(1, len(panels), figsize=(min(5.0 * len(panels), max(10.5, 6.0 + 2.4 * len(arms))), 6.0),
                             layout="constrained", squeeze=False)
    axes = axes[0]
    positions = np.arange(len(arms))
    pad = max(0.0, (2 - len(arms)) * 0.5)
    for ax, (select, ylabel, title, refs, log) in zip(axes, panels, strict=True):
        values = [_cumulative(level, select, a) for a in arms]
        if log:
            values = [np.log10(v[v > 0]) for v in values]
        pooled = np.concatenate(values)
        top = float(np.percentile(pooled, 99.9)) if pooled.size else 1.0
        bottom = float(np.percentile(pooled, 0.1)) if log and pooled.size else 0.0
        if not log:
            top = max(top, 1.12 * max((r for r, _ in refs), default=0.0), 1e-6)
        span = top - bottom
        plotted = [np.clip(v, bottom, top) if v.size > 1 else np.array([bottom, bottom]) for v in values]
        bodies = ax.violinplot(plotted, positions, widths=0.82, showextrema=False, points=200)["bodies"]
        for body, arm in zip(bodies, arms, strict=True):
            body.set_facecolor(colours[arm])
            body.set_edgecolor(colours[arm])
            body.set_alpha(0.45)
        for x, v, arm in zip(positions, values, arms, strict=True):
            if v.size:
                q1, med, q3 = np.percentile(v, [25, 50, 75])
                ax.vlines(x, q1, q3, color=colours[arm], lw=6, zorder=3)
                ax.scatter([x], [med], s=28, color="white", edgecolors="black", linewidths=0.8, zorder=4)
        for (ref, text), style in zip(refs, ("--", ":"), strict=False):
            ax.axhline(ref, color="black", lw=1.2, ls=style, zorder=1)
            ax.text(0.99, ref + 0.01 * span, text, transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                    fontsize=8.5, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0},
                    zorder=5)
        ax.set_ylim(bottom - (0.03 * span if log else 0.0), top + 0.03 * span)
        if log:
            ticks = _log_ticks(10**bottom, 10**top)
            ax.set_yticks(np.log10(ticks))
            ax.set_yticklabels([f"{t:g}" for t in ticks])
        ax.set_xticks(positions)
        ax.set_xticklabels([f"{i + 1}" for i in positions])
        ax.set_xlabel("Arm (see key)")
        ax.set_xlim(-0.6 - pad, len(arms) - 0.4 + pad)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, axis="y", color="0.9", lw=0.6, zorder=0)
    handles = [Patch(color=colours[a], alpha=0.6, label=_wrap(f"{i + 1}: {labels[a]}", 42))
               for i, a in enumerate(arms)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(arms), 4), frameon=False)
    fig.suptitle(f"Cumulative doses over all cycles, treated patients (violin; bar: interquartile range, "
                 f"dot: median): {ds.attrs['scenario']}", fontsize=12)
    return fig


def toxicity_figure(ds, colours: dict[str, str]):  # noqa: ANN001, ANN201
    """Grouped bars per arm: grade >= 3 toxicities, MDS/AML, dose modifications and ORR, with Wilson 95 % CIs."""
    from sim.survival import wilson_ci

    plt = _pyplot()
    arms, labels = _arms(ds), _labels(ds)
    bars_left = toxicity_bars(ds)
    fig, (ax, ax_orr) = plt.subplots(1, 2, figsize=(13, 5.6), width_ratios=[len(bars_left), 1.6],
                                     layout="constrained")
    width = 0.8 / len(arms)
    level = patient_level(ds)  # once: each flag reads per-patient values
    flags = {arm: {**toxicity_flags(level.sel(arm=arm)), ORR_BAR[1]: objective_response(level.sel(arm=arm))}
             for arm in arms}
    for axis, bars in ((ax, bars_left), (ax_orr, [ORR_BAR])):
        x = np.arange(len(bars))
        for i, arm in enumerate(arms):
            k = np.array([int(flags[arm][key].sum()) for _, key in bars])
            n = np.array([flags[arm][key].size for _, key in bars])
            p = k / n
            low, high = wilson_ci(k, n)
            offset = (i - (len(arms) - 1) / 2) * width
            axis.bar(x + offset, 100 * p, width * 0.92, color=colours[arm], label=labels[arm], zorder=2)
            axis.errorbar(x + offset, 100 * p, yerr=100 * np.vstack([p - low, high - p]), fmt="none",
                          ecolor="black", elinewidth=0.9, capsize=2.5, zorder=3)
        axis.set_xticks(x)
        axis.set_xticklabels([b[0] for b in bars])
        axis.set_ylim(bottom=0)
        axis.yaxis.set_major_formatter(lambda y, _pos: f"{y:g}%")
        axis.grid(True, axis="y", color="0.9", lw=0.6, zorder=0)
    ax.set_ylabel("Patients of the arm (%), Wilson 95 % CI")
    ax.set_title("Toxicity and dose modification")
    ax_orr.set_ylabel("Patients of the arm (%)")
    ax_orr.set_title("Objective response")
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, [_wrap(n, 40) for n in names], loc="outside lower center", ncols=min(len(arms), 4),
               frameon=False)
    fig.suptitle(f"Rates per arm with Wilson 95 % CIs: {ds.attrs['scenario']}", fontsize=12)
    return fig


def swimmer_patients(ds, arm: str, n: int = SWIMMER_PATIENTS) -> np.ndarray:  # noqa: ANN001
    """Indices of up to ``n`` treated patients of ``arm``, drawn reproducibly from the run's seed."""
    treated = np.flatnonzero(ds.sel(arm=arm).cycles_given.values > 0)
    rng = np.random.default_rng(int(ds.attrs["seed"]))
    pick = rng.choice(treated, size=min(n, treated.size), replace=False) if treated.size else treated
    return np.sort(pick)


def swimmer_arm_patients(ds) -> tuple[list[str], np.ndarray]:  # noqa: ANN001
    """The treated arms and the patients the swimmer plot shows in each: ``SWIMMER_PATIENTS`` shared among the
    arms (at least ``SWIMMER_MIN_PATIENTS`` per arm), drawn from the first treated arm's treated patients."""
    arms = treated_arms(ds)
    return arms, swimmer_patients(ds, arms[0], max(SWIMMER_MIN_PATIENTS, SWIMMER_PATIENTS // len(arms)))


def swimmer_figure(ds, colours: dict[str, str]):  # noqa: ANN001, ANN201
    """Swimmer plot, one panel per treated arm with the same patients in each (common random numbers): OS bar with
    the PFS part highlighted, administrations sized by activity, and events."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _pyplot()
    arms, idx = swimmer_arm_patients(ds)
    first = ds.sel(arm=arms[0])
    order = idx[np.argsort(first.os_time_days.values[idx] / DAYS_PER_MONTH, kind="stable")]  # longest at the top
    acts = ds.activity_gbq.values[:, order]
    ref_activity = float(np.nanmax(acts)) if acts.size and np.nanmax(acts) > 0 else 1.0
    size = lambda g: 70.0 * g / ref_activity  # noqa: E731 - marker area proportional to activity
    x_max = float(np.nanmax(ds.os_time_days.values[:, order])) / DAYS_PER_MONTH if order.size else 1.0
    step = _tick_step(x_max)
    right = step * np.ceil(x_max * 1.03 / step)
    fig, axes = plt.subplots(len(arms), 1, figsize=(10.5, (0.24 * len(order) + 1.0) * len(arms) + 1.4), sharex=True,
                             squeeze=False, layout="constrained")
    y = np.arange(len(order))
    for ax, arm in zip(axes[:, 0], arms, strict=True):
        a, colour = ds.sel(arm=arm), colours[arm]
        os_t = a.os_time_days.values[order] / DAYS_PER_MONTH
        pfs_t = a.pfs_time_days.values[order] / DAYS_PER_MONTH
        os_e = a.os_event.values[order] == 1
        progressed = a.progression_type.values[order] > 0
        mds = a.mds_aml.values[order] == 1
        cyc_t = a.cycle_time_days.values[order] / DAYS_PER_MONTH
        act = a.activity_gbq.values[order]
        ax.barh(y, os_t, height=0.62, color=colour, alpha=0.28, zorder=1)
        ax.barh(y, pfs_t, height=0.62, color=colour, alpha=0.85, zorder=2)
        given = np.isfinite(cyc_t) & (act > 0)
        rows = np.broadcast_to(y[:, None], cyc_t.shape)
        ax.scatter(cyc_t[given], rows[given], s=size(act[given]), marker="v", color="white", edgecolors="black",
                   linewidths=0.8, zorder=4)
        ax.scatter(pfs_t[progressed], y[progressed], s=55, marker="D", color="#F0E442", edgecolors="black",
                   linewidths=0.8, zorder=5)
        ax.scatter(a.mds_aml_day.values[order][mds] / DAYS_PER_MONTH, y[mds], s=60, marker="*", color="#CC79A7",
                   edgecolors="black", linewidths=0.6, zorder=5)
        ax.scatter(os_t[os_e], y[os_e], s=55, marker="X", color="black", zorder=5)
        ax.scatter(os_t[~os_e], y[~os_e], s=55, marker=">", color="white", edgecolors="black", linewidths=0.9,
                   zorder=5)
        ax.set_yticks(y)
        ax.set_yticklabels([str(p) for p in a.patient.values[order]], fontsize=8)
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.set_ylabel("Patient id")
        ax.grid(True, axis="x", color="0.9", lw=0.6, zorder=0)
        ax.set_title(_wrap(_labels(ds)[arm], 90), fontsize=10.5)
    ax = axes[-1, 0]
    ax.set_xlabel("Months since randomisation")
    ax.set_xlim(-0.012 * right, right)  # a little room left of 0: the first administration's marker
    ax.set_xticks(np.arange(0, right + step / 2, step))

    given = acts[np.isfinite(acts) & (acts > 0)]
    sample = sorted({round(float(g), 1) for g in given})
    sample = sample if len(sample) <= 3 else [sample[0], sample[len(sample) // 2], sample[-1]]
    grey = "0.45"
    handles = [Patch(color=grey, alpha=0.85, label="Progression-free"),
               Patch(color=grey, alpha=0.28, label="After progression (to death or censoring)")]
    handles += [Line2D([], [], ls="", marker="v", markerfacecolor="white", markeredgecolor="black",
                       markersize=np.sqrt(size(g)), label=f"Administration, {g:g} GBq") for g in sample]
    handles += [
        Line2D([], [], ls="", marker="D", markerfacecolor="#F0E442", markeredgecolor="black", markersize=7,
               label="Progression (RECIST)"),
        Line2D([], [], ls="", marker="*", markerfacecolor="#CC79A7", markeredgecolor="black", markersize=9,
               label="MDS/AML onset"),
        Line2D([], [], ls="", marker="X", color="black", markersize=7, label="Death"),
        Line2D([], [], ls="", marker=">", markerfacecolor="white", markeredgecolor="black", markersize=7,
               label="Alive, censored"),
    ]
    axes[0, 0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                      labelspacing=0.9, borderaxespad=0.0)
    fig.suptitle(_wrap(f"Swimmer plot, {len(order)} randomly drawn treated patients, the same in every treated arm: "
                       f"{ds.attrs['scenario']}", 110), fontsize=12)
    return fig


def activity_kidney_figure(ds, colours: dict[str, str]):  # noqa: ANN001, ANN201
    """Cumulative activity against the first cycle's true kidney Gy/GBq, one panel per treated arm."""
    plt = _pyplot()
    arms, labels = treated_arms(ds), _labels(ds)
    ncols = min(len(arms), 2)
    nrows = int(np.ceil(len(arms) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 4.4 * nrows + 0.6), sharex=True, sharey=True,
                             layout="constrained", squeeze=False)
    rng = np.random.default_rng(int(ds.attrs["seed"]))
    guided = set(guided_arms(ds))
    x_top = y_top = 0.0
    for ax, arm in zip(axes.flat, arms, strict=False):
        a = ds.sel(arm=arm)
        first = a.activity_gbq.isel(cycle=0).values
        ok = first > 0
        per_gbq = a.dose_gy.sel(organ="kidney").isel(cycle=0).values[ok] / first[ok]
        total = a.activity_gbq.sum("cycle").values[ok]
        if per_gbq.size > SCATTER_MAX_POINTS:
            keep = rng.choice(per_gbq.size, SCATTER_MAX_POINTS, replace=False)
            per_gbq, total = per_gbq[keep], total[keep]
        ax.scatter(per_gbq, total, s=9, color=colours[arm], alpha=0.45, lw=0)
        if per_gbq.size:
            x_top, y_top = max(x_top, float(per_gbq.max())), max(y_top, float(total.max()))
        ax.set_title(_wrap(labels[arm] + ("" if arm in guided else " (no dosimetry)"), 55), color=colours[arm],
                     fontsize=10)
        ax.grid(True, color="0.92", lw=0.6)
    axes.flat[0].set_xlim(0, 1.04 * x_top or 1.0)  # shared axes: set once, after every panel is drawn
    axes.flat[0].set_ylim(0, 1.05 * y_top or 1.0)
    for ax in axes.flat[len(arms):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("Cycle-1 kidney dose per activity (Gy/GBq, true)")
        ax.tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("Cumulative activity (GBq)")
    shown = min(SCATTER_MAX_POINTS, int(ds.sizes["patient"]))
    fig.suptitle(f"Activity against kidney dose rate ({shown:,} patients at most per arm): "
                 f"{ds.attrs['scenario']}", fontsize=12)
    return fig


FIGURE_CAPTIONS = {
    "km_pfs.png": "Progression-free survival: Kaplan-Meier per arm, 95 % log-log band, medians dashed, "
                  "numbers at risk.",
    "km_os.png": "Overall survival: Kaplan-Meier per arm, 95 % log-log band, medians dashed, numbers at risk.",
    "doses.png": "Cumulative kidney BED and the absorbed doses of the other organs at risk and of the index lesion of "
                 "treated patients, with the Bodei 2008 kidney BED "
                 "limits (40 Gy; 28 Gy with risk factors) and the 2 Gy marrow limit.",
    "incidence.png": "Cumulative incidence of renal grade ≥ 3 and MDS/AML per arm, death as a competing risk "
                     "(Aalen-Johansen); dotted: the summary's 24- and 60-month horizons.",
    "toxicity.png": "Grade ≥ 3 toxicities, MDS/AML, dose reductions, delays and objective response per arm, with "
                    "Wilson 95 % CIs.",
    "swimmer.png": "Swimmer plot of {n} randomly drawn patients treated in {arm}, in every treated arm (the same "
                   "patients): administrations, progression, death or censoring.",
    "blood_course.png": "Blood counts of a few treated patients of the first treated arm: baseline, each cycle's "
                        "nadir and the count when its follow-up ended, with the CTCAE grade 3 thresholds.",
    "kidney_course.png": "Left: eGFR change at 4 years against cumulative kidney BED (medians per 8 Gy bin; "
                         "dotted: untreated arms, the background decline). Right: eGFR of a few treated patients "
                         "at baseline, 4 years and the end of follow-up, with the CKD grade 3 threshold.",
    "activity_vs_kidney.png": "Cumulative activity against first-cycle kidney Gy/GBq per treated arm: guided arms "
                              "adapt the activity to the kidney.",
    "psa_waterfall.png": "Waterfall of the best PSA change of the first course per treated arm, coloured by "
                         "confirmed PSA50 (PCWG3).",
    "waterfall.png": "Waterfall of the best change of the target-lesion sum of diameters per treated arm, coloured by "
                     "best overall response (RECIST 1.1).",
    "lesion_dose_response.png": "Lesion volume at best response against first-cycle lesion dose, and the fraction "
                                "of lesions responding per dose bin, with the published odds ratio for comparison.",
}


def caption(ds, name: str) -> str:  # noqa: ANN001
    """The one-line caption of figure ``name`` for this dataset."""
    text = FIGURE_CAPTIONS[name]
    if name == "swimmer.png":
        arms, shown = swimmer_arm_patients(ds)
        text = text.format(n=len(shown), arm=_labels(ds)[arms[0]])
    return text


def hazard_ratio_texts(summary: dict | None, endpoint: str) -> dict[str, str]:
    """Per compared arm of a summary, ``"HR 0.23 (0.22-0.24) vs reference"`` of the end point (robust 95 % CI)."""
    if not summary:
        return {}
    out = {}
    for key, c in summary["comparisons"].items():
        hr, ci = c[f"{endpoint}_hr"], c[f"{endpoint}_hr_robust_ci"]
        if hr is not None:
            out[key.split(" vs ")[0]] = f"HR {hr:.2f} ({ci[0]:.2f}-{ci[1]:.2f}) vs reference"
    return out


def figures(ds, summary: dict | None = None) -> dict[str, Callable]:  # noqa: ANN001
    """File name -> function drawing the figure, for the figures this dataset supports (with its ``summary``, the
    KM legends carry each compared arm's hazard ratio)."""
    colours = arm_colours(ds)
    treated = treated_arms(ds)
    out = {
        "km_pfs.png": lambda: km_figure(ds, "pfs", colours, hazard_ratio_texts(summary, "pfs")),
        "km_os.png": lambda: km_figure(ds, "os", colours, hazard_ratio_texts(summary, "os")),
    }
    if treated:
        from sim.lesion_figures import lesion_dose_response_figure, psa_waterfall_figure, waterfall_figure

        out["doses.png"] = lambda: dose_figure(ds, colours)
        out["waterfall.png"] = lambda: waterfall_figure(ds)
        if np.isfinite(patient_level(ds).psa_best_change.values).any():  # scenarios that model PSA
            out["psa_waterfall.png"] = lambda: psa_waterfall_figure(ds)
        out["lesion_dose_response.png"] = lambda: lesion_dose_response_figure(ds, colours)
    out["toxicity.png"] = lambda: toxicity_figure(ds, colours)
    out["incidence.png"] = lambda: incidence_figure(ds, colours)
    per_cycle = "cycle" in ds.dims  # files written with --keep patients hold totals only
    if treated and per_cycle:
        out["swimmer.png"] = lambda: swimmer_figure(ds, colours)
        if "platelets_1e9_per_l" in ds:  # the baseline covariates (not kept with --keep summary)
            out["blood_course.png"] = lambda: blood_course_figure(ds, colours)
            out["kidney_course.png"] = lambda: kidney_course_figure(ds, colours)
    if guided_arms(ds) and per_cycle:
        out["activity_vs_kidney.png"] = lambda: activity_kidney_figure(ds, colours)
    return out


def validation_figure(datasets: dict, targets: list):  # noqa: ANN201
    """Simulated Kaplan-Meier curves (rows: scenarios; columns: PFS, OS) with the published medians (diamonds at
    50 %) and landmarks (circles), each with its tolerance as an error bar (``rptsim validate``)."""
    from matplotlib.lines import Line2D

    from sim.survival import kaplan_meier

    plt = _pyplot()
    names = list(datasets)
    fig, axes = plt.subplots(len(names), 2, figsize=(12, 4.3 * len(names)), layout="constrained", squeeze=False)
    for row, name in enumerate(names):
        ds = datasets[name]
        colours, labels = arm_colours(ds), _labels(ds)
        mine = [t for t in targets if t.config == name and t.path[0] == "arms"]
        for col, endpoint in enumerate(("pfs", "os")):
            ax = axes[row, col]
            shown = [t for t in mine if t.path[2] in (f"median_{endpoint}_months", f"{endpoint}_at_months")]
            x_max = max([24.0] + [1.6 * (t.high if "median" in t.path[2] else float(t.path[3])) for t in shown])
            for i, arm in enumerate(_arms(ds)):
                km = kaplan_meier(ds[f"{endpoint}_time_days"].values[i] / DAYS_PER_MONTH,
                                  ds[f"{endpoint}_event"].values[i])
                ax.step(np.r_[0.0, km.time], np.r_[1.0, km.survival], where="post", color=colours[arm], lw=1.6,
                        label=f"{_short(labels[arm], 40)} (simulated)")
            for t in shown:
                colour = colours[t.path[1]]
                if "median" in t.path[2]:
                    ax.errorbar(t.published, 0.5, xerr=[[t.published - t.low], [t.high - t.published]], fmt="D",
                                color=colour, mec="black", ms=7, capsize=4, zorder=5)
                else:
                    ax.errorbar(float(t.path[3]), t.published, yerr=[[t.published - t.low], [t.high - t.published]],
                                fmt="o", color=colour, mec="black", ms=7, capsize=4, zorder=5)
            ax.axhline(0.5, color="0.7", lw=0.7, ls=":")
            ax.set_xlim(0, x_max)
            ax.set_ylim(0, 1.02)
            ax.yaxis.set_major_formatter(lambda y, _pos: f"{y:.0%}")
            ax.set_xlabel("Months since randomisation")
            ax.set_ylabel({"pfs": "Progression-free", "os": "Overall"}[endpoint] + " survival")
            ax.set_title(f"{ds.attrs['scenario']}: {endpoint.upper()}")
            ax.grid(True, color="0.9", lw=0.6)
            handles, texts = ax.get_legend_handles_labels()
            handles += [Line2D([], [], marker="D", ls="", color="0.5", mec="black"),
                        Line2D([], [], marker="o", ls="", color="0.5", mec="black")]
            texts += ["published median (tolerance)", "published landmark (tolerance)"]
            ax.legend(handles, texts, fontsize=8, loc="upper right", frameon=False)
    fig.suptitle("Simulated vs published (sim/data/trial_targets.toml)", fontsize=12)
    return fig


def save_validation_figure(datasets: dict, targets: list, path: str | Path) -> None:
    save_figure(lambda: validation_figure(datasets, targets), path)


# ----------------------------------------------------------------------------------------------------------------
# Sweeps (``rptsim sweep`` files: a ``scenario`` dimension, swept parameters as coordinates)

SWEEP_MAX_LINES = 6


def sweep_axes(ds) -> list[dict]:  # noqa: ANN001
    """The swept dimensions recorded in a sweep file: label, kind (grid, zip, sample), coords, paths, base values."""
    import json

    return json.loads(ds.attrs["axes_json"])


def sweep_comparison_arms(ds) -> list[str]:  # noqa: ANN001
    """Arms compared with the reference arm (those with a hazard ratio in some scenario)."""
    return [a for a in _arms(ds) if np.isfinite(ds.pfs_hr.sel(arm=a).values).any()]


def _levels(values: np.ndarray) -> np.ndarray:
    return np.unique(values)


def _reference_level(values: np.ndarray, base) -> object:  # noqa: ANN001
    """The level other panels hold an axis at: the base config's value when swept, else the middle level."""
    levels = _levels(values)
    if values.dtype.kind in "fiu" and isinstance(base, int | float) and not isinstance(base, bool):
        close = np.isclose(levels.astype(float), float(base), rtol=1e-9, atol=0)
        if close.any():
            return levels[np.argmax(close)]
    elif base in set(levels.tolist()):
        return base
    return levels[len(levels) // 2]


def _fmt_level(value) -> str:  # noqa: ANN001
    return f"{value:.4g}" if isinstance(value, float | np.floating) else str(value)


UNIT_WORDS = {("ml", "min"): "mL/min", ("per", "month"): "per month", ("per", "year"): "per year",
              ("per", "gy"): "per Gy", ("gy",): "Gy", ("gbq",): "GBq", ("ml",): "mL", ("months",): "months",
              ("weeks",): "weeks", ("days",): "days", ("h",): "h"}
ACRONYMS = {"bed": "BED", "psa": "PSA", "egfr": "eGFR", "mds": "MDS", "aml": "AML", "rmst": "RMST", "hr": "HR",
            "ntcp": "NTCP", "lkb": "LKB", "os": "OS", "pfs": "PFS", "spect": "SPECT", "30pct": "30 %",
            "4y": "at 4 years"}


def readable(name: str) -> str:
    """A swept parameter's name for a figure: ``kidney_bed_limit_gy`` -> "Kidney BED limit (Gy)"."""
    words, unit = name.split("_"), None
    for n in (2, 1):
        if len(words) > n and tuple(words[-n:]) in UNIT_WORDS:
            unit, words = UNIT_WORDS[tuple(words[-n:])], words[:-n]
            break
    text = " ".join(ACRONYMS.get(w, w) for w in words)
    if words[0] not in ACRONYMS:
        text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def _geo_mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.log(x).mean())) if x.size else np.nan


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else np.nan


SWEEP_EFFECTS = {  # variable -> (its CI, the no-effect value, pooling over replicates, axis label)
    "pfs_hr": ("pfs_hr_robust_ci", 1.0, "geometric", "PFS HR (robust 95 % CI)"),
    "os_hr": ("os_hr_robust_ci", 1.0, "geometric", "OS HR (robust 95 % CI)"),
    "rmst_pfs_difference_months": ("rmst_pfs_difference_ci", 0.0, "arithmetic", "RMST PFS gain (months, 95 % CI)"),
}


def sweep_effect_figure(ds, effect: str = "pfs_hr"):  # noqa: ANN001, ANN201
    """A paired effect (``SWEEP_EFFECTS``: HR, RMST gain) of each compared arm against the reference, with its 95 %
    CI, against the swept parameters: one panel per swept axis, one line per level of a second axis (at most
    ``SWEEP_MAX_LINES`` levels), the other axes at their base value. Replicates (and sampled parameters not on the
    x axis) are pooled by means of the effect and of the CI bounds (geometric for ratios)."""
    plt = _pyplot()
    axes_info = sweep_axes(ds)
    arms, labels = sweep_comparison_arms(ds), _labels(ds)
    reference = str(ds.reference_arm.values[0])
    ci_var, null, pooling, what = SWEEP_EFFECTS[effect]
    hr, ci = ds[effect], ds[ci_var]
    pool = _geo_mean if pooling == "geometric" else _mean
    n_cols = max(1, len(axes_info))
    fig, grid = plt.subplots(max(1, len(arms)), n_cols, figsize=(4.6 * n_cols + 1.5, 3.9 * max(1, len(arms))),
                             layout="constrained", squeeze=False)
    coords = {info["label"]: ds[info["coords"][0]].values for info in axes_info}
    held = {info["label"]: _reference_level(coords[info["label"]], info["base_values"][0]) for info in axes_info
            if info["kind"] != "sample"}
    for row, arm in enumerate(arms):
        h = hr.sel(arm=arm).values
        low, high = ci.sel(arm=arm, bound="low").values, ci.sel(arm=arm, bound="high").values
        for col, info in enumerate(axes_info or [None]):
            ax = grid[row, col]
            if info is None:  # a sweep of replicates only
                x = np.arange(h.size)
                ax.errorbar(x, h, yerr=[h - low, high - h], fmt="o", color=PALETTE[0], capsize=2)
                ax.set_xlabel("scenario")
            else:
                label = info["label"]
                xs = coords[label]
                others = [o for o in axes_info if o["label"] != label and o["kind"] != "sample"]
                lines = next((o for o in others if len(_levels(coords[o["label"]])) <= SWEEP_MAX_LINES), None)
                keep = np.ones(h.size, dtype=bool)
                for o in others:
                    if o is not lines:
                        keep &= coords[o["label"]] == held[o["label"]]
                categorical = xs.dtype.kind not in "fiu"
                x_levels = _levels(xs)
                x_pos = {v: i for i, v in enumerate(x_levels.tolist())}
                groups = _levels(coords[lines["label"]]) if lines is not None else [None]
                for g, level in enumerate(groups):
                    sel = keep if lines is None else keep & (coords[lines["label"]] == level)
                    if info["kind"] == "sample":
                        px, py, pl, ph = xs[sel], h[sel], low[sel], high[sel]
                        style = {"fmt": "o", "ms": 3.5, "lw": 0, "elinewidth": 0.6}
                    else:
                        present = [v for v in x_levels.tolist() if (sel & (xs == v)).any()]
                        px = np.array([x_pos[v] if categorical else v for v in present], dtype=float)
                        py = np.array([pool(h[sel & (xs == v)]) for v in present])
                        pl = np.array([pool(low[sel & (xs == v)]) for v in present])
                        ph = np.array([pool(high[sel & (xs == v)]) for v in present])
                        style = {"fmt": "-o", "ms": 4.5, "lw": 1.5, "elinewidth": 0.9}
                    name = None if lines is None else _fmt_level(level)
                    if lines is not None and info["kind"] != "sample":  # dodge the lines' error bars
                        span = (len(x_levels) - 1) if categorical else float(np.ptp(xs.astype(float))) or 1.0
                        px = px + (g - (len(groups) - 1) / 2) * 0.012 * span
                    ax.errorbar(px, py, yerr=[py - pl, ph - py], color=PALETTE[g % len(PALETTE)], capsize=2.5,
                                label=name, **style)
                if categorical:
                    ax.set_xticks(range(len(x_levels)))
                    ax.set_xticklabels([str(v) for v in x_levels])
                ax.set_xlabel(_wrap(readable(label), 40))
                fixed = [f"{readable(o['label'])} = {_fmt_level(held[o['label']])}" for o in others if o is not lines]
                if fixed:
                    ax.set_title(_wrap("at " + ", ".join(fixed), 55), fontsize=9)
                if lines is not None:  # compact (values under the parameter's name), framed over what it covers
                    ax.legend(fontsize=7.5, title=readable(lines["label"]), title_fontsize=7.5, loc="best",
                              ncols=min(3, len(groups)), framealpha=0.85, columnspacing=1.0, handlelength=1.5)
            ax.axhline(null, color="0.5", lw=0.8, ls="--")
            ax.grid(True, color="0.9", lw=0.6)
            if col == 0:  # with several compared arms, each row names its arm in full (no truncation)
                ax.set_ylabel(what if len(arms) == 1 else
                              _wrap(f"{labels[arm]} vs {labels.get(reference, reference)}", 50) + "\n" + what)
    compared = (f"\n{labels[arms[0]]} vs {labels.get(reference, reference)}" if len(arms) == 1 else "")
    fig.suptitle(f"{what.split(' (')[0]} across the sweep {ds.attrs['sweep_name']} "
                 f"({int(ds.sizes['scenario'])} scenarios; same patients in every arm){compared}", fontsize=12)
    return fig


SWEEP_FIGURE_CAPTIONS = {
    "sweep_pfs_hr.png": "PFS hazard ratio (Cox, patient-clustered robust 95 % CI) of each compared arm against the "
                        "reference, for each swept parameter: one line per level of a second parameter, the others "
                        "at their base value.",
    "sweep_os_hr.png": "OS hazard ratio (Cox, robust 95 % CI), drawn as the PFS figure.",
    "sweep_pfs_rmst.png": "RMST PFS gain over the reference (months, paired 95 % CI), drawn as the PFS figure.",
    "sweep_tradeoff.png": "Efficacy-toxicity trade-off of every scenario: RMST PFS gain against the difference in "
                          "renal and in haematological grade ≥3 rates, paired 95 % CIs.",
}


def sweep_figures(ds) -> dict[str, Callable]:  # noqa: ANN001
    if not sweep_comparison_arms(ds):
        return {}
    from sim.effect_figures import sweep_tradeoff_figure

    return {"sweep_pfs_hr.png": lambda: sweep_effect_figure(ds, "pfs_hr"),
            "sweep_os_hr.png": lambda: sweep_effect_figure(ds, "os_hr"),
            "sweep_pfs_rmst.png": lambda: sweep_effect_figure(ds, "rmst_pfs_difference_months"),
            "sweep_tradeoff.png": lambda: sweep_tradeoff_figure(ds)}


# ----------------------------------------------------------------------------------------------------------------
# Trials (``rptsim trial --target-power P --figure PNG``)


def save_power_curve_figure(summary: dict, path: str | Path) -> None:
    save_figure(lambda: power_curve_figure(summary), path)


def power_curve_figure(summary: dict):  # noqa: ANN201
    """Power against trial size from an ``rptsim trial`` summary: each evaluated size with its ±1.96 Monte Carlo SE,
    the fitted curve Phi(a + b sqrt(N)) (``sim.trials.PowerCurve``), the target power and the sizes found."""
    from scipy import special

    plt = _pyplot()
    points = summary["power_curve"]
    n = np.array([p["patients"] for p in points], dtype=float)
    power = np.array([p["power"] for p in points])
    se = np.array([p["power_mc_se"] for p in points])
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.errorbar(n, power, yerr=1.96 * se, fmt="o", color=PALETTE[0], ms=5, capsize=3,
                label="simulated (±1.96 MC SE)")
    fit = summary.get("power_curve_fit")
    if fit is not None:
        grid = np.linspace(0.0, 1.1 * max(n.max(), summary.get("required_patients_fitted") or 0), 300)
        ax.plot(grid, special.ndtr(fit["a"] + fit["b"] * np.sqrt(grid)), color=PALETTE[1], lw=1.6,
                label=f"fit Φ({fit['a']:.3g} + {fit['b']:.3g} √N)")
    ax.axhline(summary["target_power"], color="0.4", lw=0.9, ls="--", label=f"target {summary['target_power']:.0%}")
    for key, style, what in (("required_patients", ":", "search"), ("required_patients_fitted", "-.", "fit")):
        if summary.get(key):
            ax.axvline(summary[key], color="0.4", lw=0.9, ls=style, label=f"{what}: N = {summary[key]}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.yaxis.set_major_formatter(lambda y, _pos: f"{y:.0%}")
    ax.set_xlabel(f"Patients randomised (allocation {':'.join(map(str, summary['allocation']))})")
    ax.set_ylabel(f"Power ({summary['test']}), alpha {summary['alpha']}")
    ax.set_title(_wrap(f"{summary['scenario']}: {summary['experimental_arm']} vs {summary['reference_arm']}, "
                       f"{summary['endpoint'].upper()}, {summary['replicates']} trials per size", 70))
    ax.grid(True, color="0.9", lw=0.6)
    ax.legend(loc="lower right", frameon=False)
    return fig
