"""What users see: the terminal summary table, and ``rptsim report``'s Markdown page (figures: ``sim.figures``).

The summary rows (:data:`ROWS`) serve both the terminal table and the page.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sim.effect_figures import EFFECT_FIGURE_CAPTIONS, effect_figures
from sim.figures import FIGURE_CAPTIONS, caption, figures, save_figure


def _fmt(value, digits: int = 1, suffix: str = "") -> str:  # noqa: ANN001
    if value is None:
        return "-"
    return f"{value:.{digits}f}{suffix}"


ROWS = [
    ("Median PFS (months)", lambda a: _fmt(a["median_pfs_months"]) if a["median_pfs_months"] else "not reached"),
    ("PFS at 12 / 20 months", lambda a: f"{a['pfs_at_months']['12']:.0%} / {a['pfs_at_months']['20']:.0%}"),
    ("Median OS (months)", lambda a: _fmt(a["median_os_months"]) if a["median_os_months"] else "not reached"),
    ("OS at 12 / 24 months", lambda a: f"{a['os_at_months']['12']:.0%} / {a['os_at_months']['24']:.0%}"),
    ("Objective response rate", lambda a: f"{a['objective_response_rate']:.1%}"),
    ("Index-lesion response at 3 months (EASL)",
     lambda a: f"{a['easl_index_response_rate']:.1%}" if "planning_target" in a else "-"),
    ("PSA50, confirmed (PCWG3)", lambda a: f"{a['psa50_rate']:.1%}" if "psa50_rate" in a else "-"),
    ("Best response CR / PR / SD / PD", lambda a: " / ".join(f"{a['best_response_rates'][k]:.0%}"
                                                             for k in ("CR", "PR", "SD", "PD"))),
    ("Cycles, median (mean)", lambda a: f"{a['cycles_median']:g} ({a['cycles_mean']:.2f})"),
    ("Cycles given 1/2/3/4/5/6+ (%)", lambda a: _cycle_shares(a["cycles_distribution"])),
    ("Paused after a PSA response", lambda a: f"{a['psa_pause_rate']:.1%}" if a.get("psa_pause_rate") else "-"),
    ("Resected after downstaging", lambda a: f"{a['resection_rate']:.1%}" if "resection_rate" in a else "-"),
    ("Re-treated at progression", lambda a: f"{a['retreated_rate']:.1%}" if "retreated_rate" in a else "-"),
    ("Cumulative activity, median (GBq)", lambda a: _fmt(a["cumulative_activity_gbq_median"])),
    ("Kidney dose / BED, median (Gy)",
     lambda a: f"{a['kidney_dose_gy_median']:.1f} / {a['kidney_bed_gy_median']:.1f}"),
    ("Marrow dose, median (Gy)", lambda a: _fmt(a["marrow_dose_gy_median"], 2)),
    ("Index-lesion dose, median (Gy)", lambda a: _fmt(a["tumour_dose_gy_median"], 0)),
    ("Grade >=3 thrombocytopenia", lambda a: f"{a['grade3plus_thrombocytopenia_rate']:.1%}"),
    ("Grade >=3 haematological (any line)", lambda a: f"{a['grade3plus_haematological_rate']:.1%}"),
    ("Renal grade >=3 (any cause)", lambda a: f"{a['grade3plus_renal_rate']:.1%}"),
    ("MDS/AML", lambda a: f"{a['mds_aml_rate']:.1%}"),
    ("Delayed / reduced / stopped (toxicity)",
     lambda a: f"{a['delays_rate']:.0%} / {a['dose_reductions_rate']:.0%} / {a['discontinued_for_toxicity_rate']:.0%}"),
    ("Treatment-related deaths", lambda a: f"{a['treatment_related_death_rate']:.1%}"),
    ("Kidney BED spread (CV)", lambda a: _fmt(a["kidney_bed_gy_cv"], 2)),
    ("Reached dosimetry target", lambda a: f"{a['fraction_reaching_target']:.0%}" if "fraction_reaching_target" in a
     else "-"),
    ("Activity per patient, mean (GBq)", lambda a: f"{a['activity_gbq_total_mean']:.1f}"),
    ("SPECT/CT sessions / physicist h, mean",
     lambda a: f"{a['spect_sessions_mean']:.1f} / {a['physicist_hours_mean']:.1f}"),
    ("Cost per patient, mean", lambda a: f"{a['cost_mean']:,.0f} {a['cost_currency']}" if "cost_mean" in a else "-"),
]


def _cycle_shares(distribution: dict[str, float]) -> str:
    """Percent of patients given 1, 2, 3, 4, 5 and 6 or more cycles ("-" for an arm that gives none)."""
    share = {int(k): v for k, v in distribution.items()}
    if not any(v for k, v in share.items() if k > 0):
        return "-"
    cells = [share.get(k, 0.0) for k in range(1, 6)] + [sum(v for k, v in share.items() if k >= 6)]
    return "/".join(f"{100 * v:.0f}" for v in cells)


SHOWN_DOSES = ("kidney", "marrow", "tumour")  # organs that ROWS show; any other organ gets a row of its own
# ROWS of an organ that no arm irradiates (90Y microspheres: kidneys, marrow): its dose row is left out, and its
# toxicity rows where they are 0 in every arm (no background either)
ORGAN_ROWS = {"kidney": ("Kidney dose / BED, median (Gy)",),
              "marrow": ("Marrow dose, median (Gy)", "Grade >=3 thrombocytopenia",
                         "Grade >=3 haematological (any line)", "MDS/AML")}


def _organ_rows(summary: dict) -> list[tuple[str, object]]:
    """A dose row for every organ at risk of the summary besides those of ``ROWS`` (e.g. salivary glands)."""
    first = next(iter(summary["arms"].values()))
    organs = [k.removesuffix("_dose_gy_median") for k in first  # an organ has a dose and a BED median
              if k.endswith("_dose_gy_median") and k.replace("_dose_", "_bed_") in first]
    return [(f"{organ.replace('_', ' ').capitalize()} dose / BED, median (Gy)",
             lambda a, o=organ: f"{a[f'{o}_dose_gy_median']:.1f} / {a[f'{o}_bed_gy_median']:.1f}")
            for organ in organs if organ not in SHOWN_DOSES]


def _late_toxicity_rows(summary: dict) -> list[tuple[str, object]]:
    """A row for each graded late toxicity of an organ at risk in the summary (xerostomia, liver decompensation,
    pneumonitis; docs/model.md 4.9): any grade / grade >= 2."""
    first = next(iter(summary["arms"].values()))
    events = [k.removeprefix("grade1plus_").removesuffix("_rate") for k in first
              if k.startswith("grade1plus_") and f"grade2plus_{k.removeprefix('grade1plus_')}" in first]
    return [(f"{event.replace('_', ' ').capitalize()} any grade / grade >=2",
             lambda a, e=event: f"{a[f'grade1plus_{e}_rate']:.1%} / {a[f'grade2plus_{e}_rate']:.1%}")
            for event in events]


def signed_ci(value: float | None, ci: list[float | None], digits: int, scale: float = 1.0, unit: str = "") -> str:
    """``+0.08 (+0.06 to +0.10) mo``: a difference and its CI."""
    if value is None or any(x is None or not np.isfinite(x) for x in ci):
        return "-"
    low, high = (scale * x for x in ci)
    return f"{scale * value:+.{digits}f} ({low:+.{digits}f} to {high:+.{digits}f}){unit}"


EFFECT_ROWS = [  # per compared arm, from its entry in summary["comparisons"]; paired CIs (sim.analysis.comparison)
    ("PFS HR vs reference (95 % CI)", lambda c: hazard_ratio_ci(c["pfs_hr"], c["pfs_hr_robust_ci"])),
    ("OS HR vs reference (95 % CI)", lambda c: hazard_ratio_ci(c["os_hr"], c["os_hr_robust_ci"])),
    ("RMST PFS gain, months (95 % CI)",
     lambda c: signed_ci(c["rmst_pfs_difference_months"], c["rmst_pfs_difference_ci"], 2)),
    ("RMST OS gain, months (95 % CI)",
     lambda c: signed_ci(c["rmst_os_difference_months"], c["rmst_os_difference_ci"], 2)),
    ("Patients gaining / losing > 3 months PFS",
     lambda c: f"{c['individual']['pfs']['gain_fraction']:.1%} / {c['individual']['pfs']['loss_fraction']:.1%}"
     if c["individual"]["pfs"]["gain_fraction"] is not None else "-"),
]


def summary_cells(summary: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The arm headers and, for each of :data:`ROWS` (and any further organ's dose row, after the marrow's, and each
    late toxicity's, after the renal row), its label
    (PFS named as the trial names it) and one formatted cell per arm, then the :data:`EFFECT_ROWS` against the
    reference arm; rows that are "-" for every arm are left out, and so are the :data:`ORGAN_ROWS` of an organ that
    no arm irradiates where they show only zeros."""
    arms = summary["arms"]
    header = [arm["label"] or name for name, arm in arms.items()]
    labels = [label for label, _ in ROWS]
    after, renal = labels.index("Marrow dose, median (Gy)") + 1, labels.index("Renal grade >=3 (any cause)") + 1
    rows = [*ROWS[:after], *_organ_rows(summary), *ROWS[after:renal], *_late_toxicity_rows(summary), *ROWS[renal:]]
    cells = [(label, [cell(arm) for arm in arms.values()]) for label, cell in rows]
    if summary["comparisons"]:
        reference = summary["reference_arm"]
        effects = {name: summary["comparisons"].get(f"{name} vs {reference}") for name in arms}
        cells += [(label, [cell(c) if c is not None else "reference" for c in effects.values()])
                  for label, cell in EFFECT_ROWS]
    unirradiated = {label for organ, labels in ORGAN_ROWS.items()
                    if not any(arm.get(f"{organ}_dose_gy_median") for arm in arms.values()) for label in labels}
    pfs = summary.get("pfs_name", "PFS")  # rPFS where the trial's end point is radiographic
    return header, [(re.sub(r"\bPFS\b", pfs, label), row) for label, row in cells
                    if any(c != "-" for c in row)  # a row that means nothing for every arm is left out
                    and not (label in unirradiated and all(_is_zero(c) for c in row))]


def _is_zero(cell: str) -> bool:
    """Whether a formatted cell shows only zeros ("0.0%", "0.00", "0.0 / 0.0")."""
    return not re.search(r"[1-9]", cell)


def _title(summary: dict) -> str:
    return f"{summary['scenario']}: {summary['n_patients']} virtual patients per arm, seed {summary['seed']}"


def summary_table(summary: dict) -> Table:
    """One column per arm, one row per endpoint."""
    table = Table(title=escape(_title(summary)), title_justify="left")
    header, rows = summary_cells(summary)
    table.add_column("")
    for label in header:
        table.add_column(escape(label), justify="right")  # labels come from the config: never rich markup
    for label, cells in rows:
        table.add_row(label, *cells)
    return table


def output_console(width: int, console: Console | None = None) -> Console:
    """``console`` (stdout by default), widened to ``width`` columns when it is not a terminal: pipes and files
    get rich's 80 columns, which wraps every label."""
    console = console or Console()
    return console if console.is_terminal else Console(width=width, file=console.file)


LABEL_COLUMNS, ARM_COLUMNS = 44, 30  # terminal columns the row labels and each arm's cells need


def print_summary(summary: dict, console: Console | None = None) -> None:
    """The summary table; a terminal too narrow for every arm gets one table per group of arms that fits, each with
    the reference arm first (its effect rows compare with it)."""
    arms = list(summary["arms"])
    console = output_console(LABEL_COLUMNS + ARM_COLUMNS * len(arms), console)
    fit = max(1, (console.width - LABEL_COLUMNS) // ARM_COLUMNS)
    if fit >= len(arms):
        console.print(summary_table(summary))
        return
    reference = summary["reference_arm"] if summary["reference_arm"] in arms else None
    others = [a for a in arms if a != reference]
    per = max(1, fit - 1) if reference is not None else fit
    for start in range(0, len(others), per):
        group = ([reference] if reference is not None else []) + others[start:start + per]
        console.print(summary_table({**summary, "arms": {a: summary["arms"][a] for a in group}}))


# ----------------------------------------------------------------------------------------------------------------
# Markdown


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]<>~$&"})  # "|" is _md_cell's, in tables only
_MD_EMPHASIS = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # an underscore inside a word emphasises nothing


def md(value: object) -> str:
    """Text from a file (names, labels, paths, provenance) shown literally in Markdown: control characters as
    escapes, and the characters that Markdown or HTML would interpret (links, emphasis, code, tags, tables, math)
    backslash-escaped."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value)).translate(_MD_SPECIAL)
    return _MD_EMPHASIS.sub(r"\\_", text)


def _md_code(value: object) -> str:
    """A provenance token (git commit, version) for a code span, where escapes do not work: other characters
    than letters, digits and ``.+-_`` become ``?``."""
    return "".join(c if c.isalnum() and c.isascii() or c in ".+-_" else "?" for c in str(value))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[str]], align: str = "r") -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join([":---"] + [("---:" if align == "r" else ":---")] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_summary(summary: dict) -> str:
    """The summary table (the rows of the terminal table) in Markdown."""
    header, rows = summary_cells(summary)
    return md_table(["", *map(md, header)], [[label, *cells] for label, cells in rows])


def hazard_ratio_ci(hr: float | None, ci: list[float | None]) -> str:
    if hr is None:
        return "-"
    low, high = ci
    return f"{hr:.2f} ({_fmt(low, 2)}-{_fmt(high, 2)})"


def markdown_comparisons(summary: dict) -> str:
    """Paired effects of every arm against the reference arm: HRs, RMST and rate differences with their CIs."""
    arms = summary["arms"]
    reference = summary["reference_arm"]
    rows = []
    for key, c in summary["comparisons"].items():
        arm = key.removesuffix(f" vs {reference}")
        tox = c["toxicity_rate_differences"]
        rows.append([md(arms[arm]["label"] or arm), hazard_ratio_ci(c["pfs_hr"], c["pfs_hr_robust_ci"]),
                     hazard_ratio_ci(c["os_hr"], c["os_hr_robust_ci"]),
                     signed_ci(c["rmst_pfs_difference_months"], c["rmst_pfs_difference_ci"], 2),
                     signed_ci(c["rmst_os_difference_months"], c["rmst_os_difference_ci"], 2),
                     signed_ci(c["objective_response_rate_difference"], c["objective_response_rate_difference_ci"], 1,
                             100, " pp"),
                     signed_ci(tox["grade3plus_renal_rate"], tox["grade3plus_renal_rate_ci"], 1, 100, " pp"),
                     signed_ci(tox["grade3plus_haematological_rate"], tox["grade3plus_haematological_rate_ci"], 1,
                             100, " pp")])
    return md_table([f"vs {md(arms[reference]['label'] or reference)}", "PFS HR", "OS HR", "RMST PFS (months)",
                      "RMST OS (months)", "ORR", "Renal G≥3", "Haematological G≥3"], rows)


def markdown_page(ds, summary: dict, figure_names: list[str]) -> str:  # noqa: ANN001
    """The report page: provenance, summary table, comparisons and the figures with captions."""
    attrs = ds.attrs
    parts = [
        f"# {md(summary['scenario'])}: seed {summary['seed']}, {summary['n_patients']:,} virtual patients per arm, "
        f"rptsim {md(summary['rptsim_version'])}",
        "",
        f"Every arm treats the same virtual patients. Simulated by rptsim {md(summary['rptsim_version'])} (git commit "
        f"`{_md_code(attrs.get('git_commit', 'unknown'))}`) on {md(attrs.get('created_utc', 'unknown'))}; this page "
        "was drawn "
        "from the HDF5 file alone.",
        "",
        "## Summary",
        "",
        markdown_summary(summary),
        "",
    ]
    if summary["comparisons"]:
        ref = summary["arms"][summary["reference_arm"]]
        parts += [
            "## Comparisons",
            "",
            f"Against the reference arm, {md(ref['label'] or summary['reference_arm'])}, on the same patients: Cox "
            "hazard ratio (Efron ties) with the patient-clustered robust 95 % CI (Lin & Wei 1989); differences in "
            f"restricted mean survival time to {summary['rmst_horizon_months']:g} months by the paired delta method; "
            "differences in rates (percentage points) with Newcombe's paired interval. These CIs answer \"what "
            "does the arm change in this population\"; `rptsim trial` answers \"what would a randomised trial of N "
            "patients see\".",
            "",
            markdown_comparisons(summary),
            "",
        ]
    parts += ["## Figures", ""]
    parts += _figure_lines(figure_names, lambda name: EFFECT_FIGURE_CAPTIONS.get(name) or caption(ds, name))
    return "\n".join(parts)


def _figure_lines(names: list[str], caption_of) -> list[str]:  # noqa: ANN001 - name -> caption
    """Markdown of numbered figures with their captions."""
    lines = []
    for i, name in enumerate(names, 1):
        text = caption_of(name)
        lines += [f"![{text}]({name})", "", f"*Figure {i}. {text}*", ""]
    return lines


def _write_page(out_dir: Path, drawers: dict, captions: dict, page) -> list[Path]:  # noqa: ANN001
    """Draw ``drawers`` (file name -> function) into ``out_dir``, remove figures of an earlier report that this one
    does not draw, and write ``index.md`` from ``page(figure names)``; returns the paths written."""
    from sim.outcomes import write_atomic

    written = []
    for name, draw in drawers.items():
        save_figure(draw, out_dir / name)
        written.append(out_dir / name)
    for stale in set(captions) - {p.name for p in written}:  # from an earlier report into this folder
        (out_dir / stale).unlink(missing_ok=True)
    index = out_dir / "index.md"
    text = page([p.name for p in written])
    write_atomic(index, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    return [*written, index]


def write_report(ds, out_dir: str | Path, summary: dict | None = None) -> list[Path]:  # noqa: ANN001
    """Draw every figure the dataset supports into ``out_dir`` and write ``index.md``; returns the paths written."""
    from sim import analysis

    summary = summary if summary is not None else analysis.summary(ds)
    return _write_page(Path(out_dir), {**figures(ds, summary), **effect_figures(ds, summary)},
                       {**FIGURE_CAPTIONS, **EFFECT_FIGURE_CAPTIONS}, lambda names: markdown_page(ds, summary, names))


# ----------------------------------------------------------------------------------------------------------------
# Sweeps

SWEEP_TABLE_MAX_ROWS = 500


def sweep_cells(ds) -> tuple[list[str], list[list[str]]]:  # noqa: ANN001
    """One row per scenario: id, swept values, replicate, and per compared arm its PFS and OS HR and RMST PFS gain
    (paired 95 % CIs), median PFS, grade >= 3 thrombocytopenia, renal grade >= 3 and mean activity."""
    from sim.figures import _fmt_level, sweep_axes, sweep_comparison_arms

    coords = [c for a in sweep_axes(ds) for c in a["coords"]]
    arms = sweep_comparison_arms(ds)
    labels = {str(a): str(lab) or str(a) for a, lab in zip(ds.arm.values, ds.arm_label.values, strict=True)}
    header = ["scenario", *coords]
    if int(ds.attrs.get("replicates", 1)) > 1:
        header.append("replicate")
    for arm in arms:
        prefix = f"{labels[arm]}: " if len(arms) > 1 else ""
        header += [f"{prefix}PFS HR (95 % CI)", f"{prefix}OS HR (95 % CI)", f"{prefix}RMST PFS gain (mo)",
                   f"{prefix}median PFS (mo)",
                   f"{prefix}G≥3 thrombocytopenia", f"{prefix}renal G≥3", f"{prefix}activity (GBq)"]
    rows = []
    for i in range(int(ds.sizes["scenario"])):
        s = ds.isel(scenario=i)
        row = [str(s.scenario.values), *(_fmt_level(s[c].values.item()) for c in coords)]
        if "replicate" in header:
            row.append(str(int(s.replicate.values)))
        for arm in arms:
            a = s.sel(arm=arm)
            num = lambda var, a=a: None if np.isnan(float(a[var].values)) else float(a[var].values)  # noqa: E731
            row += [hazard_ratio_ci(num("pfs_hr"), [float(x) for x in a.pfs_hr_robust_ci.values]),
                    hazard_ratio_ci(num("os_hr"), [float(x) for x in a.os_hr_robust_ci.values]),
                    signed_ci(num("rmst_pfs_difference_months"),
                              [float(x) for x in a.rmst_pfs_difference_ci.values], 2),
                    _fmt(num("median_pfs_months")) if num("median_pfs_months") else "not reached",
                    f"{num('grade3plus_thrombocytopenia_rate'):.1%}", f"{num('grade3plus_renal_rate'):.1%}",
                    _fmt(num("activity_gbq_total_mean"))]
        rows.append(row)
    return header, rows


def sweep_arms_caption(ds) -> str:  # noqa: ANN001
    """Which arms the sweep table's columns describe: each compared arm against the reference arm."""
    import json

    from sim import config
    from sim.figures import sweep_comparison_arms

    labels = {str(a): str(lab) or str(a) for a, lab in zip(ds.arm.values, ds.arm_label.values, strict=True)}
    reference = config.validate(json.loads(ds.attrs["base_config_json"]), "base_config_json").reference_arm()
    compared = [labels[a] for a in sweep_comparison_arms(ds)]
    return f"Columns: {', '.join(compared)}, each against {labels.get(reference, reference)} (same patients)."


def print_sweep_table(ds, console: Console | None = None, max_rows: int = 60) -> None:  # noqa: ANN001
    """The scenario table in the terminal (the first ``max_rows`` scenarios), captioned with the arms it compares."""
    header, rows = sweep_cells(ds)
    n = len(rows)
    table = Table(title=f"Sweep {ds.attrs['sweep_name']}: {n} scenarios" + (f", first {max_rows} shown"
                  if n > max_rows else ""), title_justify="left", caption=escape(sweep_arms_caption(ds)),
                  caption_justify="left")
    for i, h in enumerate(header):
        table.add_column(escape(h), justify="left" if i == 0 else "right")
    for row in rows[:max_rows]:
        table.add_row(*(escape(c) for c in row))
    widths = [max(len(h), *(len(r[i]) for r in rows[:max_rows])) if rows else len(h) for i, h in enumerate(header)]
    output_console(sum(widths) + 3 * len(header) + 4, console).print(table)


def markdown_sweep_page(ds, figure_names: list[str]) -> str:  # noqa: ANN001
    import json

    from sim.figures import SWEEP_FIGURE_CAPTIONS, sweep_axes

    attrs = ds.attrs
    n = int(ds.sizes["scenario"])
    patients = sorted({int(x) for x in ds.n_patients.values})
    parts = [
        f"# Sweep {md(attrs['sweep_name'])}: {n} scenarios, rptsim {md(attrs.get('rptsim_version', '?'))}",
        "",
        f"Base scenario: {md(json.loads(attrs['base_config_json'])['trial']['name'])}; "
        f"{', '.join(f'{p:,}' for p in patients)} virtual patients per arm and scenario; "
        f"{int(attrs.get('replicates', 1))} replicate(s). Simulated by rptsim {md(attrs.get('rptsim_version', '?'))} "
        f"(git commit `{_md_code(attrs.get('git_commit', 'unknown'))}`) on {md(attrs.get('created_utc', 'unknown'))}; "
        "this page was "
        "drawn from the HDF5 file alone.",
        "",
        "## Swept parameters",
        "",
        md_table(["axis", "kind", "config path", "values", "base value"],
                  [[md(a["label"]), md(a["kind"]), md(p), md(", ".join(_fmt_from(ds, c))), md(b)]
                   for a in sweep_axes(ds) for c, p, b in zip(a["coords"], a["paths"], a["base_values"], strict=True)],
                  align="l"),
        "",
        "## Figures",
        "",
    ]
    parts += _figure_lines(figure_names, SWEEP_FIGURE_CAPTIONS.get)
    header, rows = sweep_cells(ds)
    parts += ["## Scenarios", "",
              "Against the reference arm, on the same patients: Cox hazard ratios (Efron ties) with patient-clustered "
              "robust 95 % CIs, and RMST PFS gains with paired 95 % CIs.",
              ""]
    parts.append(md_table([md(h) for h in header], [[md(c) for c in row] for row in rows[:SWEEP_TABLE_MAX_ROWS]]))
    if len(rows) > SWEEP_TABLE_MAX_ROWS:
        parts += ["", f"The first {SWEEP_TABLE_MAX_ROWS} of {len(rows)} scenarios are shown; the file holds all."]
    return "\n".join(parts)


def _fmt_from(ds, coord: str) -> list[str]:  # noqa: ANN001
    from sim.figures import _fmt_level

    return [_fmt_level(v) for v in np.unique(ds[coord].values).tolist()]


def write_sweep_report(ds, out_dir: str | Path) -> list[Path]:  # noqa: ANN001
    """Draw the sweep figures into ``out_dir`` and write ``index.md``; returns the paths written. The file of an
    uncertainty run gets its own page (:func:`markdown_uncertainty_page`)."""
    from sim.figures import SWEEP_FIGURE_CAPTIONS, sweep_figures

    if ds.attrs.get("sweep_kind") == "uncertainty":
        from sim.uncertainty import summarise
        from sim.uncertainty_figures import UNCERTAINTY_FIGURE_CAPTIONS, uncertainty_figures

        result = summarise(ds)
        return _write_page(Path(out_dir), uncertainty_figures(ds, result), UNCERTAINTY_FIGURE_CAPTIONS,
                           lambda names: markdown_uncertainty_page(ds, result, names))
    return _write_page(Path(out_dir), sweep_figures(ds), SWEEP_FIGURE_CAPTIONS,
                       lambda names: markdown_sweep_page(ds, names))


def markdown_uncertainty_page(ds, result: dict, figure_names: list[str]) -> str:  # noqa: ANN001
    """The report page of an uncertainty run: the parameters and their priors, each effect's interval with its
    variance split and drivers, and the figures."""
    import json

    from sim.uncertainty_figures import UNCERTAINTY_FIGURE_CAPTIONS

    attrs = ds.attrs
    base = json.loads(attrs["base_config_json"])
    patients = sorted({int(x) for x in ds.n_patients.values})
    source = attrs["uncertainty_source"]
    parts = [
        f"# Uncertainty of {md(base['trial']['name'])}: {result['draws']} {md(source)} draws, rptsim "
        f"{md(attrs.get('rptsim_version', '?'))}",
        "",
        f"{', '.join(f'{p:,}' for p in patients)} virtual patients per arm and draw, every arm on the same patients "
        "within a draw and each draw on its own cohort" + (f"; posterior file {md(attrs['uncertainty_posterior_file'])}"
                                                           if source == "posterior" else "")
        + f". Simulated by rptsim {md(attrs.get('rptsim_version', '?'))} (git commit "
        f"`{_md_code(attrs.get('git_commit', '?'))}`) on {md(attrs.get('created_utc', '?'))}; this page was drawn from "
        "the HDF5 file alone.",
        "",
        "## Effects",
        "",
        "Median and 2.5-97.5 % range of each paired effect over the draws, the share of its variance due to the "
        "parameters (law of total variance; the rest is Monte Carlo error), and the parameters most rank-correlated "
        "with it.",
        "",
        md_table(*uncertainty_cells(result), align="l"),
        "",
        "## Uncertain parameters",
        "",
        md_table(["name", "config path", "prior", "source"],
                  [[md(p["name"]), md(p["path"]), ", ".join(f"{k} {v}" for k, v in p["prior"].items() if v is not None),
                    md(p["source"])] for p in result["parameters"]], align="l"),
        "",
        "## Figures",
        "",
    ]
    parts += _figure_lines(figure_names, UNCERTAINTY_FIGURE_CAPTIONS.get)
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# Uncertainty runs


def _effect_text(name: str, value: float | None) -> str:
    """An effect of an uncertainty summary as users read it: HRs to 3 decimals, differences of rates in percentage
    points, RMST in months, trial sizes in patients."""
    if value is None:
        return "-"
    if name.endswith("_hr"):
        return f"{value:.3f}"
    if name.endswith("rate_difference"):
        return f"{100 * value:+.2f} pp"
    if name.endswith("_months"):
        return f"{value:+.3f}"
    return f"{value:,.0f}"


def uncertainty_cells(result: dict) -> tuple[list[str], list[list[str]]]:
    """One row per comparison and effect of an uncertainty summary (:func:`sim.uncertainty.summarise`): median,
    95 % interval over the draws, the parameters' share of the variance, and the three strongest drivers."""
    from sim.uncertainty import EFFECTS, TRIAL_SIZE

    labels = {name: label for name, (_, _, label) in EFFECTS.items()}
    labels[TRIAL_SIZE] = "Patients for 80 % power (1:1, PFS)"
    header = ["comparison", "effect", "median", "95 % interval", "parameter share", "drivers (Spearman rho)"]
    rows = []
    for comparison, effects in result["comparisons"].items():
        for name, e in effects.items():
            low, high = e["interval"]
            drivers = result["drivers"][comparison].get(name, [])
            top = ", ".join(f"{d['parameter']} {d['spearman_rho']:+.2f}" for d in drivers[:2]
                            if d["spearman_rho"] is not None)
            share = e["parameter_variance_share"]
            rows.append([comparison, labels[name], _effect_text(name, e["median"]),
                         f"{_effect_text(name, low)} to {_effect_text(name, high)}",
                         "-" if share is None else f"{share:.0%}", top or "-"])
    return header, rows


def print_uncertainty(result: dict, console: Console | None = None) -> None:
    header, rows = uncertainty_cells(result)
    table = Table(title=f"{result['scenario']}: {result['draws']} {result['source']} draws, {result['patients']:,} "
                  "patients per arm and draw", title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i in (0, 1, 5) else "right")
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    output_console(170, console).print(table)
