"""Run one scenario: config -> cohort -> kernel inputs -> kernel (per arm, in patient chunks) -> outcome Dataset.

``keep`` sets what a run holds in memory: ``"cycles"`` every per-cycle array (about 1.5 kB per patient and arm
for 4 cycles and 8 lesions); ``"patients"`` and ``"summary"`` reduce each chunk's per-cycle arrays to the
per-patient ``kernel_outputs.TOTALS`` at once, so memory is about 100 bytes per patient and arm and ~42 per lesion
plus one chunk, and the summary is the same as from the full arrays (``"summary"`` keeps only what the summary
reads: no baseline covariates, no per-lesion layout).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from sim import cohort as cohort_mod
from sim import kernel_outputs, outcomes
from sim.config import COVARIATE_NAMES, Config
from sim.kernel_inputs import Axes, PatientDraws, axes_of, translate
from sim.kernels.patient import run_arm

DEFAULT_CHUNK = 100_000  # patients per chunk: 100k keeps a 10^6-patient reduced run under 0.8 GB at full speed
KEEP_LEVELS = ("cycles", "patients", "summary")

COVARIATE_UNITS = {"age_years": "year", "egfr_ml_min": "mL/min/1.73m2", "platelets_1e9_per_l": "1e9/L",
                   "neutrophils_1e9_per_l": "1e9/L", "tumour_volume_ml": "mL", "doubling_time_months": "month",
                   "new_lesion_rate_per_month": "1/month", "tumour_alpha_per_gy": "1/Gy",
                   "lymphocytes_1e9_per_l": "1e9/L", "haemoglobin_g_dl": "g/dL",
                   "psa_ng_ml": "ng/mL"}


PROGRESS_ROWS = 10_000  # patients per kernel call: progress is reported at least this often


def simulate(cfg: Config, arm_name: str, patients: cohort_mod.Cohort | PatientDraws, out: kernel_outputs.Outputs,
             progress: Callable[[int], None] | None = None) -> None:
    """Simulate one arm on the given patients (a whole cohort or any chunk of it, or its ``PatientDraws`` that the
    arms share) into ``out``, in kernel calls of ``PROGRESS_ROWS`` patients, each followed by ``progress(patients
    done)`` (every patient's result is its own, so the calls change nothing)."""
    inputs, n = translate(cfg, arm_name, patients), len(patients)
    for start in range(0, n, PROGRESS_ROWS):
        part = slice(start, min(n, start + PROGRESS_ROWS))
        run_arm(*inputs.patients_at(part).args(), kernel_outputs.rows(out, (part,)))
        if progress is not None:
            progress(part.stop - part.start)


def run(cfg: Config, chunk_size: int = DEFAULT_CHUNK, progress: Callable[[int], None] | None = None,
        keep: str = "cycles") -> xr.Dataset:
    """Simulate every arm of ``cfg`` on the same patients; ``progress(n)`` is called per ``n`` patient-arms done
    (at most ``PROGRESS_ROWS`` at a time)."""
    if keep not in KEEP_LEVELS:
        raise ValueError(f"keep = {keep!r}: must be one of {', '.join(KEEP_LEVELS)}")
    n, axes, names = cfg.trial.patients, axes_of(cfg), [arm.name for arm in cfg.arms]
    full = kernel_outputs.allocate(axes.sizes(n), (len(names),)) if keep == "cycles" else None
    kept: dict[str, np.ndarray] = {}
    cohorts = []
    for start in range(0, n, chunk_size):
        chunk = cohort_mod.draw(cfg, np.arange(start, min(n, start + chunk_size), dtype=np.int64))
        part = slice(start, start + len(chunk))
        if keep != "summary":
            cohorts.append(chunk)
        patients = PatientDraws(cfg, axes, chunk)  # drawn once for every arm
        for a, name in enumerate(names):
            if full is not None:
                simulate(cfg, name, patients, kernel_outputs.rows(full, (a, part)), progress)
            else:
                out = kernel_outputs.allocate(axes.sizes(len(chunk)))
                simulate(cfg, name, patients, out, progress)
                for var, values in kernel_outputs.patient_values(out, summary_only=keep == "summary").items():
                    if var not in kept:
                        kept[var] = np.empty((len(names), n, *values.shape[1:]), values.dtype)
                    kept[var][a, part] = values
    arrays = full._asdict() if full is not None else kept
    return dataset(cfg, axes, arrays, cohort_mod.concat(cohorts) if cohorts else None, keep, n)


def simulate_outcomes(cfg: Config, arm_name: str, patient_ids: np.ndarray) -> xr.Dataset:
    """Per-patient outcomes (no per-cycle arrays, no covariates) and entry days of one arm for the patients
    ``patient_ids``: what a virtual trial needs (``sim.trials``)."""
    axes = axes_of(cfg)
    out = kernel_outputs.allocate(axes.sizes(len(patient_ids)))
    patients = cohort_mod.draw(cfg, patient_ids)
    simulate(cfg, arm_name, patients, out)
    values = kernel_outputs.patient_values(out)
    data = {name: (kernel_outputs.dims_of(name)[1:], v, kernel_outputs.attributes(name)) for name, v in values.items()}
    data["entry_day"] = (("patient",), patients.entry_day,
                         {"units": "day", "long_name": "trial entry day from first randomisation"})
    return xr.Dataset(data)


def dataset(cfg: Config, axes: Axes, arrays: dict[str, np.ndarray], cohort: cohort_mod.Cohort | None, keep: str,
            n_patients: int) -> xr.Dataset:
    """The labelled outcomes of a run: every array by its declared name, dims and attributes, the baseline
    covariates (unless ``keep="summary"``), the axes as coordinates, and the provenance."""
    data = {name: (kernel_outputs.dims_of(name), values, kernel_outputs.attributes(name))
            for name, values in arrays.items()}
    if cohort is not None:
        for name in COVARIATE_NAMES:
            data[name] = (("patient",), cohort.covariates[name],
                          {"units": COVARIATE_UNITS.get(name, "1"), "long_name": f"baseline covariate {name}"})
        data["entry_day"] = (("patient",), cohort.entry_day,
                             {"units": "day", "long_name": "trial entry day from first randomisation"})
    arms = [arm.name for arm in cfg.arms]
    coords = {
        "arm": ("arm", arms, {"long_name": "trial arm"}),
        "arm_label": ("arm", [cfg.arm(a).label or a for a in arms], {"long_name": "trial arm as labelled"}),
        "patient": ("patient", np.arange(n_patients, dtype=np.int64),
                    {"long_name": "global patient id (random-stream key)"}),
        "organ": ("organ", [o.name for o in axes.organs], {"long_name": "organ at risk"}),
        "organ_label": ("organ", [o.label for o in axes.organs], {"long_name": "organ at risk as labelled"}),
        "organ_adverse_event": ("organ", [cfg.organ_toxicity[o.name].adverse_event if o.name in cfg.organ_toxicity
                                          else "" for o in axes.organs],
                                {"long_name": "late toxicity of the organ (organ_toxicity_grade); empty: none"}),
        "lesion": ("lesion", np.arange(1, axes.lesions + 1, dtype=np.int16),
                   {"long_name": "lesion number (1: the index lesion)"}),
        "blood_line": ("blood_line", [b.name for b in axes.blood_lines], {"long_name": "blood line"}),
        "adverse_event": ("blood_line", [b.adverse_event for b in axes.blood_lines],
                          {"long_name": "CTCAE term of the line's decrease"}),
        "blood_line_units": ("blood_line", [b.units for b in axes.blood_lines],
                             {"long_name": "units of the line's count (1e9/L; haemoglobin g/dL)"}),
    }
    if keep == "cycles":
        coords["cycle"] = ("cycle", np.arange(1, axes.cycles + 1, dtype=np.int16), {"long_name": "cycle number"})
    return xr.Dataset(data, coords=coords, attrs=outcomes.provenance(cfg, keep, n_patients))
