"""``rptsim compare``: personalised against standard treatment, side by side across scenarios and therapies.

Each column is one personalised arm of a results file (dosimetry-guided, or planned on the index lesion's predicted
dose: ``personalised``) against that file's reference arm (the standard regimen), on the same patients: what
dosimetry changed in dose, response, survival, toxicity and resource use, with the paired 95 % CIs of the run summary
(``sim.analysis``), and how many patients a 1:1 randomised trial would need to show the PFS effect
(``sim.uncertainty.trial_size``, Schoenfeld) or the response effect (``proportion_trial_size``). The question of
issue 18: where does dosimetry pay?
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sim import analysis, outcomes
from sim.report import ARM_COLUMNS, LABEL_COLUMNS, hazard_ratio_ci, md, md_table, output_console, signed_ci
from sim.uncertainty import proportion_trial_size, trial_size

PERSONALISED = ("guided",)  # the regimens that adapt the treatment to measured doses (config arms.regimen)


def personalised(arm: dict) -> bool:
    """A config arm that adapts the treatment to the patient's own doses: a guided regimen, or one planned on the
    predicted dose of the patient's index lesion (SIRT's personalised planning; docs/model.md 5.6)."""
    plan = arm.get("planning") or {}
    return arm.get("regimen") in PERSONALISED or plan.get("target") == "index_lesion"


def _pair(key: str, digits: int):  # noqa: ANN202 - a cell function
    """``"127 -> 250"``: a summary value (median or mean) in the standard and in the personalised arm."""
    def cell(s: dict, p: dict, c: dict, n: int | None) -> str:
        if s.get(key) is None or p.get(key) is None:
            return "-"
        return f"{s[key]:.{digits}f} -> {p[key]:.{digits}f}"
    return cell


def _difference(key: str, digits: int, scale: float = 1.0, ci: str | None = None):  # noqa: ANN202 - a cell function
    """A paired difference of the comparison (or of its toxicity rates) with its 95 % CI (``ci``: its key, by
    default ``<key>_ci``)."""
    def cell(s: dict, p: dict, c: dict, n: int | None) -> str:
        d = c if key in c else c["toxicity_rate_differences"]
        return signed_ci(d.get(key), d.get(ci or f"{key}_ci", [None, None]), digits, scale)
    return cell


ROWS = [  # (label, cell from (standard arm, personalised arm, comparison, patients for 80 % power))
    ("Standard arm", lambda s, p, c, n: s["label"]),
    ("Index-lesion dose, median (Gy)", _pair("tumour_dose_gy_median", 0)),
    ("Kidney BED, median (Gy)", _pair("kidney_bed_gy_median", 1)),
    ("Cycles, mean", _pair("cycles_mean", 2)),
    ("ORR gain, pp (95 % CI)", _difference("objective_response_rate_difference", 1, 100.0)),
    ("Index-lesion response gain (viable -50 %, EASL), pp",
     _difference("easl_index_response_rate_difference", 1, 100.0)),
    ("PFS HR (95 % CI)", lambda s, p, c, n: hazard_ratio_ci(c["pfs_hr"], c["pfs_hr_robust_ci"])),
    ("RMST PFS gain, months (95 % CI)", _difference("rmst_pfs_difference_months", 2, ci="rmst_pfs_difference_ci")),
    ("OS HR (95 % CI)", lambda s, p, c, n: hazard_ratio_ci(c["os_hr"], c["os_hr_robust_ci"])),
    ("RMST OS gain, months (95 % CI)", _difference("rmst_os_difference_months", 2, ci="rmst_os_difference_ci")),
    ("Renal grade >=3, pp (95 % CI)", _difference("grade3plus_renal_rate", 1, 100.0)),
    ("Thrombocytopenia grade >=3, pp (95 % CI)", _difference("grade3plus_thrombocytopenia_rate", 1, 100.0)),
    ("MDS/AML, pp (95 % CI)", _difference("mds_aml_rate", 1, 100.0)),
    ("Liver decompensation grade >=2, pp (95 % CI)", _difference("grade2plus_liver_decompensation_rate", 1, 100.0)),
    ("Activity per patient, mean (GBq)", _pair("activity_gbq_total_mean", 1)),
    ("SPECT/CT sessions per patient, mean", _pair("spect_sessions_mean", 1)),
    ("Patients for 80 % power on PFS (1:1)", lambda s, p, c, n: "-" if n is None else f"{n:,}"),
    ("Patients for 80 % power on EASL response (1:1)", lambda s, p, c, n: _response_trial_size(s, p)),
]


def _response_trial_size(standard: dict, personalised: dict) -> str:
    """Patients (1:1) for 80 % power on the index-lesion EASL response (DOSISPHERE-01's end point), from the two
    arms' rates (``sim.uncertainty.proportion_trial_size``); "-" without a difference."""
    n = proportion_trial_size(personalised["easl_index_response_rate"], standard["easl_index_response_rate"])
    return "-" if not math.isfinite(n) else f"{math.ceil(n):,}"


def pfs_trial_size(standard: dict, personalised: dict, comparison: dict) -> int | None:
    """Patients (1:1) for 80 % power at two-sided 5 % on PFS: Schoenfeld's events for the simulated HR over the two
    arms' mean PFS event fraction; None where there is no effect to show (HR 1) or no events."""
    hr = comparison["pfs_hr"]
    fraction = np.mean([standard["pfs_event_fraction"], personalised["pfs_event_fraction"]])
    if hr is None or hr == 1.0 or not fraction > 0:
        return None
    return int(np.ceil(float(trial_size(np.log(hr), fraction))))


def columns(path: str | Path, every_arm: bool = False) -> list[dict]:
    """The comparisons of one ``rptsim run`` results file: each personalised arm (every compared arm with
    ``every_arm``) against the reference arm. The summary is the one written beside the file when there is one
    (``OUT.summary.json``), else computed from the file."""
    path = Path(path)
    written = outcomes.summary_path(path)
    with outcomes.read(path) as ds:
        cfg = json.loads(ds.attrs["config_json"])
        summary = outcomes.read_summary(written) if written.exists() else analysis.summary(ds)
    reference = summary["reference_arm"]
    adapted = {arm["name"]: personalised(arm) for arm in cfg["arms"]}
    out = []
    for name, arm in summary["arms"].items():
        comparison = summary["comparisons"].get(f"{name} vs {reference}")
        if comparison is None or not (every_arm or adapted.get(name)):
            continue
        standard = summary["arms"][reference]
        n = pfs_trial_size(standard, arm, comparison)
        out.append({"scenario": summary["scenario"], "file": str(path), "arm": name, "label": arm["label"] or name,
                    "reference_arm": reference, "pfs_name": summary.get("pfs_name", "PFS"),
                    "patients_for_80_percent_power": n,
                    "cells": {label: cell(standard, arm, comparison, n) for label, cell in ROWS}})
    return out


def _header(column: dict) -> str:
    return f"{column['scenario']}: {column['label']}"


def _label(label: str, column: dict) -> str:
    return label.replace("PFS", column["pfs_name"])


def table(cols: list[dict]) -> Table:
    """One column per personalised arm, one row per quantity (PFS named as the first column's trial names it)."""
    t = Table(title="Personalised (dosimetry-guided or -planned) against standard treatment, same patients "
                    "(paired 95 % CIs)",
              title_justify="left")
    t.add_column("")
    for c in cols:
        t.add_column(escape(_header(c)), justify="right")
    for label, _ in ROWS:
        t.add_row(_label(label, cols[0]), *(escape(c["cells"][label]) for c in cols))
    return t


def print_table(cols: list[dict], console: Console | None = None) -> None:
    """The table, in groups of columns that fit the terminal."""
    console = output_console(LABEL_COLUMNS + ARM_COLUMNS * len(cols), console)
    per = max(1, (console.width - LABEL_COLUMNS) // ARM_COLUMNS)
    for start in range(0, len(cols), per):
        console.print(table(cols[start:start + per]))


def markdown(cols: list[dict]) -> str:
    """The same table as a Markdown page."""
    rows = [[md(_label(label, cols[0])), *(md(c["cells"][label]) for c in cols)] for label, _ in ROWS]
    return "\n".join(["# Personalised against standard treatment", "",
                      "Each column: a personalised (dosimetry-guided or dosimetry-planned) arm against its scenario's "
                      "reference arm, on the same virtual patients; differences with paired 95 % CIs; trial size by "
                      "Schoenfeld's formula from the simulated PFS HR.", "",
                      md_table(["", *(md(_header(c)) for c in cols)], rows)]) + "\n"
