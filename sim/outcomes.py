"""Outcomes as an ``xarray.Dataset`` (arm x patient x cycle) and its HDF5 file (engine h5netcdf).

Files are written atomically (temporary file in the same folder, fsync, rename), so an interrupted write
leaves either the previous file or none. Each file carries its provenance (config JSON, seed, package
version, git commit, creation time) and a schema version that readers check.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from sim import __version__
from sim.config import COVARIATE_NAMES
from sim.engine import RunResult
from sim.kernels import layout as L

SCHEMA = "rptsim-outcomes"
SCHEMA_VERSION = 1

# name, layout index, dtype, units, long name
CYCLE_VARS = [
    ("cycle_time_days", L.C_TIME_DAYS, "f8", "day", "day of administration from randomisation (NaN: not given)"),
    ("activity_gbq", L.C_ACTIVITY_GBQ, "f8", "GBq", "administered activity"),
    ("kidney_dose_gy", L.C_KIDNEY_DOSE_GY, "f8", "Gy", "true kidney absorbed dose"),
    ("dosimetry_measured", L.C_MEASURED, "i1", "1", "1 = dosimetry performed after this administration"),
    ("kidney_dose_measured_gy", L.C_KIDNEY_DOSE_MEASURED_GY, "f8", "Gy",
     "kidney absorbed dose reported by dosimetry (NaN: not measured)"),
    ("kidney_bed_gy", L.C_KIDNEY_BED_GY, "f8", "Gy", "kidney BED of the cycle (alpha/beta kidney)"),
    ("marrow_dose_gy", L.C_MARROW_DOSE_GY, "f8", "Gy", "true red-marrow absorbed dose"),
    ("marrow_dose_measured_gy", L.C_MARROW_DOSE_MEASURED_GY, "f8", "Gy",
     "marrow absorbed dose reported by dosimetry (NaN: not measured)"),
    ("marrow_bed_gy", L.C_MARROW_BED_GY, "f8", "Gy", "red-marrow BED of the cycle"),
    ("tumour_dose_gy", L.C_TUMOUR_DOSE_GY, "f8", "Gy", "true absorbed dose to receptor-positive tumour"),
    ("tumour_dose_measured_gy", L.C_TUMOUR_DOSE_MEASURED_GY, "f8", "Gy",
     "tumour absorbed dose reported by dosimetry (NaN: not measured)"),
    ("tumour_bed_gy", L.C_TUMOUR_BED_GY, "f8", "Gy", "tumour BED of the cycle (alpha/beta tumour)"),
    ("delay_days", L.C_DELAY_DAYS, "f8", "day", "delay of the administration after its due day"),
    ("dose_reduced", L.C_REDUCED, "i1", "1", "1 = activity reduced by the dose-modification rules"),
    ("platelet_nadir_1e9_per_l", L.C_PLATELET_NADIR, "f8", "1e9/L",
     "lowest platelet count from this administration to the next (NaN: not given)"),
    ("platelet_nadir_day", L.C_PLATELET_NADIR_DAY, "f8", "day", "day of the nadir after this administration"),
    ("platelet_grade", L.C_PLATELET_GRADE, "i1", "1", "CTCAE v5 grade of the cycle's platelet nadir"),
    ("neutrophil_nadir_1e9_per_l", L.C_NEUTROPHIL_NADIR, "f8", "1e9/L",
     "lowest neutrophil count from this administration to the next (NaN: not given)"),
    ("neutrophil_grade", L.C_NEUTROPHIL_GRADE, "i1", "1", "CTCAE v5 grade of the cycle's neutrophil nadir"),
    ("platelet_end_1e9_per_l", L.C_PLATELET_END, "f8", "1e9/L",
     "platelet count when the cycle's follow-up ended: next administration or end of the marrow window (recovery)"),
]
PATIENT_VARS = [
    ("cycles_given", L.P_CYCLES, "i2", "1", "number of cycles administered", None),
    ("pfs_time_days", L.P_PFS_DAYS, "f8", "day", "progression-free survival time", None),
    ("pfs_event", L.P_PFS_EVENT, "i1", "1", "1 = progression or death, 0 = censored", None),
    ("os_time_days", L.P_OS_DAYS, "f8", "day", "overall survival time", None),
    ("os_event", L.P_OS_EVENT, "i1", "1", "1 = death, 0 = censored", None),
    ("death_cause", L.P_DEATH_CAUSE, "i1", "1", "cause of death", L.CAUSE_MEANINGS),
    ("best_response", L.P_BEST_RESPONSE, "i1", "1", "RECIST 1.1 best overall response", L.RESPONSE_MEANINGS),
    ("progression_type", L.P_PROGRESSION_TYPE, "i1", "1", "what defined progression", L.PROGRESSION_MEANINGS),
    ("tumour_nadir_ratio", L.P_NADIR_RATIO, "f8", "1", "smallest tumour volume at a scan / baseline", None),
    ("platelet_worst_grade", L.P_PLATELET_WORST_GRADE, "i1", "1", "worst CTCAE v5 thrombocytopenia grade", None),
    ("neutrophil_worst_grade", L.P_NEUTROPHIL_WORST_GRADE, "i1", "1", "worst CTCAE v5 neutropenia grade", None),
    ("egfr_end_ml_min", L.P_EGFR_END, "f8", "mL/min/1.73m2", "eGFR at the end of follow-up", None),
    ("ckd_grade", L.P_CKD_GRADE, "i1", "1", "CTCAE v5 chronic kidney disease grade at the end of follow-up",
     None),
    ("renal_grade3_time_days", L.P_RENAL_G3_DAYS, "f8", "day", "time to eGFR < 30 mL/min (CKD grade >= 3)",
     None),
    ("renal_grade3_event", L.P_RENAL_G3_EVENT, "i1", "1", "1 = eGFR fell below 30, 0 = censored", None),
    ("mds_aml", L.P_MDS_AML, "i1", "1", "1 = therapy-related MDS/AML diagnosed during follow-up", None),
    ("mds_aml_day", L.P_MDS_AML_DAY, "f8", "day", "day of MDS/AML onset (NaN: none)", None),
    ("discontinued_for_toxicity", L.P_DISCONTINUED_TOXICITY, "i1", "1",
     "1 = treatment stopped by the dose-modification rules", None),
    ("reached_target", L.P_REACHED_TARGET, "i1", "1",
     "1 = a dosimetry-guided arm reached its kidney/tumour target or limit (by the measured doses)", None),
]
COVARIATE_UNITS = {"age_years": "year", "egfr_ml_min": "mL/min/1.73m2", "platelets_1e9_per_l": "1e9/L",
                   "neutrophils_1e9_per_l": "1e9/L",
                   "tumour_volume_ml": "mL", "doubling_time_months": "month", "new_lesion_rate_per_month": "1/month",
                   "tumour_alpha_per_gy": "1/Gy"}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def to_dataset(result: RunResult) -> xr.Dataset:
    """Assemble the outcomes of a run into a labelled Dataset with units and provenance."""
    cfg = result.config
    arms = list(result.arms)
    n = len(result.cohort)
    data: dict[str, tuple] = {}
    for name, idx, dtype, units, long in CYCLE_VARS:
        stacked = np.stack([result.arms[a].per_cycle[idx] for a in arms]).astype(dtype)
        data[name] = (("arm", "patient", "cycle"), stacked, {"units": units, "long_name": long})
    for name, idx, dtype, units, long, meanings in PATIENT_VARS:
        stacked = np.stack([result.arms[a].per_patient[idx] for a in arms]).astype(dtype)
        attrs = {"units": units, "long_name": long}
        if meanings:
            attrs["flag_values"] = np.arange(len(meanings.split()), dtype=np.int8)
            attrs["flag_meanings"] = meanings
        data[name] = (("arm", "patient"), stacked, attrs)
    for name in COVARIATE_NAMES:
        data[name] = (("patient",), result.cohort.covariates[name],
                      {"units": COVARIATE_UNITS.get(name, "1"), "long_name": f"baseline covariate {name}"})
    data["entry_day"] = (("patient",), result.cohort.entry_day,
                         {"units": "day", "long_name": "trial entry day from first randomisation"})
    coords = {
        "arm": ("arm", arms, {"long_name": "trial arm"}),
        "arm_label": ("arm", [cfg.arm(a).label or a for a in arms]),
        "patient": ("patient", result.cohort.patient_ids, {"long_name": "global patient id (random-stream key)"}),
        "cycle": ("cycle", np.arange(1, result.max_cycles + 1, dtype=np.int16), {"long_name": "cycle number"}),
    }
    attrs = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "scenario": cfg.trial.name,
        "seed": str(cfg.trial.seed),
        "n_patients": n,
        "config_json": cfg.to_json(),
        "rptsim_version": __version__,
        "git_commit": git_commit(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _encoding(ds: xr.Dataset) -> dict:
    enc = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(1 if d == "arm" else min(s, 65536 if d == "patient" else s) for d, s in var.sizes.items())
        enc[name] = {"zlib": True, "complevel": 1, "shuffle": True, "chunksizes": chunks}
    return enc


def write_atomic(path: str | Path, write) -> None:  # noqa: ANN001 - write(tmp_path) callable
    """Call ``write(tmp)`` on a temporary path beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(ds: xr.Dataset, path: str | Path) -> None:
    """Write ``ds`` to HDF5 (h5netcdf, chunked, compressed), atomically."""
    write_atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", encoding=_encoding(ds)))


def write_json(obj: dict, path: str | Path) -> None:
    def _write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, allow_nan=False)
            fh.write("\n")

    write_atomic(path, _write)


class NotOurFileError(ValueError):
    """The file is not an rptsim outcomes file, or is from an incompatible schema version."""


def read(path: str | Path) -> xr.Dataset:
    """Open an outcomes file, checking that it is ours and of a schema version we read."""
    try:
        ds = xr.open_dataset(path, engine="h5netcdf")
    except (OSError, ValueError) as exc:
        raise NotOurFileError(f"{path}: not a readable HDF5/netCDF file ({exc})") from None
    if ds.attrs.get("schema") != SCHEMA:
        ds.close()
        raise NotOurFileError(f"{path}: not an rptsim outcomes file (no '{SCHEMA}' schema attribute)")
    version = int(np.asarray(ds.attrs.get("schema_version", -1)).ravel()[0])
    if version != SCHEMA_VERSION:
        ds.close()
        raise NotOurFileError(f"{path}: schema version {version}, this rptsim {__version__} reads {SCHEMA_VERSION}")
    return ds
