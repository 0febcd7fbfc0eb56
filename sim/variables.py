"""The output variables: name, kernel column, dtype, units and meaning of every array a run produces.

Per-cycle variables have dims (arm, patient, cycle), per-patient ones (arm, patient). ``TOTALS`` are per-patient
reductions of per-cycle variables: all that the summary needs from them, so a run that does not keep per-cycle
arrays (``keep="patients"`` or ``"summary"``) reduces each chunk on the fly and gives the same summary.
"""

from __future__ import annotations

import numpy as np

from sim.kernels import layout as L

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

# name, per-cycle variable, reduction over cycles ("sum" or "any": any value > 0), dtype, units, long name
TOTALS = [
    ("activity_gbq_total", "activity_gbq", "sum", "f8", "GBq", "cumulative administered activity"),
    ("kidney_dose_gy_total", "kidney_dose_gy", "sum", "f8", "Gy", "cumulative true kidney absorbed dose"),
    ("kidney_bed_gy_total", "kidney_bed_gy", "sum", "f8", "Gy", "cumulative kidney BED (sum of cycle BEDs)"),
    ("marrow_dose_gy_total", "marrow_dose_gy", "sum", "f8", "Gy", "cumulative true red-marrow absorbed dose"),
    ("marrow_bed_gy_total", "marrow_bed_gy", "sum", "f8", "Gy", "cumulative red-marrow BED"),
    ("tumour_dose_gy_total", "tumour_dose_gy", "sum", "f8", "Gy", "cumulative true tumour absorbed dose"),
    ("tumour_bed_gy_total", "tumour_bed_gy", "sum", "f8", "Gy", "cumulative tumour BED"),
    ("cycles_measured", "dosimetry_measured", "sum", "i2", "1", "administrations followed by dosimetry"),
    ("dose_reduced_any", "dose_reduced", "any", "i1", "1", "1 = at least one administration reduced"),
    ("delayed_any", "delay_days", "any", "i1", "1", "1 = at least one administration delayed"),
]
_CYCLE_COLUMN = {name: idx for name, idx, *_ in CYCLE_VARS}


def total(values: np.ndarray, how: str) -> np.ndarray:
    """Reduce per-cycle ``values`` (cycles on the last axis) to one value per patient."""
    return values.sum(axis=-1) if how == "sum" else (values > 0).any(axis=-1)


def totals_of_kernel(per_cycle: np.ndarray) -> dict[str, np.ndarray]:
    """``TOTALS`` of the kernel's raw ``per_cycle[N_CYCLE_VARS, n, K]`` output, in their output dtypes."""
    return {name: total(per_cycle[_CYCLE_COLUMN[var]], how).astype(dtype) for name, var, how, dtype, *_ in TOTALS}
