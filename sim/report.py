"""What users see: the terminal summary table (figures come with the trial-statistics work)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


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
    ("Cycles, median (mean)", lambda a: f"{a['cycles_median']:g} ({a['cycles_mean']:.2f})"),
    ("Cumulative activity, median (GBq)", lambda a: _fmt(a["cumulative_activity_gbq_median"])),
    ("Kidney dose / BED, median (Gy)",
     lambda a: f"{a['kidney_dose_gy_median']:.1f} / {a['kidney_bed_gy_median']:.1f}"),
    ("Marrow dose, median (Gy)", lambda a: _fmt(a["marrow_dose_gy_median"], 2)),
    ("Tumour dose, median (Gy)", lambda a: _fmt(a["tumour_dose_gy_median"], 0)),
    ("Grade >=3 thrombocytopenia", lambda a: f"{a['grade3plus_thrombocytopenia_rate']:.1%}"),
    ("Renal grade >=3 (eGFR < 30)", lambda a: f"{a['grade3plus_renal_rate']:.1%}"),
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


def summary_table(summary: dict) -> Table:
    """One column per arm, one row per endpoint."""
    table = Table(title=f"{summary['scenario']}: {summary['n_patients']} virtual patients per arm, "
                        f"seed {summary['seed']}", title_justify="left")
    table.add_column("")
    for name, arm in summary["arms"].items():
        table.add_column(arm["label"] or name, justify="right")
    for label, cell in ROWS:
        table.add_row(label, *(cell(arm) for arm in summary["arms"].values()))
    return table


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal:  # pipes and files get rich's 80 columns, which wraps every label
        console = Console(width=44 + 30 * len(summary["arms"]), file=console.file)
    console.print(summary_table(summary))
