"""The kernel's outputs, declared once by name: dims, dtype, units, meaning, and the value of a cycle not given.

Every output is an array whose first dim is ``patient``; per-cycle outputs add ``cycle`` and, where they repeat,
``organ``, ``lesion`` or ``blood_line``. The kernel writes them through the named tuple ``Outputs`` (fields in
declaration order); ``allocate`` makes them (with ``arm`` in front for a whole run), and the Dataset variables of
a run carry the same names, dims and attributes. ``TOTALS`` are per-patient reductions of per-cycle outputs: all
that the summary needs from them, so a run that does not keep per-cycle arrays (``keep="patients"`` or
``"summary"``) reduces each chunk on the fly and gives the same summary.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from sim.kernels.events import CAUSE_MEANINGS
from sim.kernels.tumour import PROGRESSION_MEANINGS, RESPONSE_MEANINGS, ROLE_MEANINGS

NAN = float("nan")


@dataclass(frozen=True)
class Output:
    name: str
    dims: tuple[str, ...]
    dtype: str
    units: str
    long_name: str
    fill: float = 0.0  # before the kernel writes it: the value of a cycle not given
    meanings: str | None = None  # flag_meanings of a code
    summary: bool = True  # the run summary reads it (a run with keep="summary" holds only these)


_CYCLE = ("patient", "cycle")
OUTPUTS = (
    Output("cycle_time_days", _CYCLE, "f8", "day", "day of administration from randomisation (NaN: not given)", NAN),
    Output("activity_gbq", _CYCLE, "f8", "GBq", "administered activity"),
    Output("delay_days", _CYCLE, "f8", "day", "delay of the administration after its due day"),
    Output("dose_reduced", _CYCLE, "i1", "1", "1 = activity reduced by the dose-modification rules"),
    Output("dosimetry_measured", _CYCLE, "i1", "1", "1 = dosimetry performed after this administration"),
    Output("dose_gy", (*_CYCLE, "organ"), "f8", "Gy", "true absorbed dose of the organ"),
    Output("dose_measured_gy", (*_CYCLE, "organ"), "f8", "Gy",
           "absorbed dose reported by dosimetry (NaN: not measured)", NAN),
    Output("bed_gy", (*_CYCLE, "organ"), "f8", "Gy", "BED of the cycle (the organ's alpha/beta and repair)"),
    Output("lesion_dose_gy", (*_CYCLE, "lesion"), "f8", "Gy", "true absorbed dose of the lesion"),
    Output("lesion_dose_measured_gy", (*_CYCLE, "lesion"), "f8", "Gy",
           "lesion absorbed dose reported by dosimetry (NaN: not measured)", NAN),
    Output("lesion_bed_gy", (*_CYCLE, "lesion"), "f8", "Gy", "lesion BED of the cycle (alpha/beta tumour)"),
    Output("blood_nadir", (*_CYCLE, "blood_line"), "f8", "blood_line_units",
           "lowest count from this administration to the next (NaN: not given)", NAN),
    Output("blood_nadir_day", (*_CYCLE, "blood_line"), "f8", "day", "day of the nadir after this administration",
           NAN),
    Output("blood_grade", (*_CYCLE, "blood_line"), "i1", "1", "CTCAE v5 grade of the cycle's nadir"),
    Output("blood_end", (*_CYCLE, "blood_line"), "f8", "blood_line_units",
           "count when the cycle's follow-up ended: next administration or end of the marrow window (recovery)", NAN),
    Output("cycles_given", ("patient",), "i2", "1", "number of cycles administered"),
    Output("pfs_time_days", ("patient",), "f8", "day", "progression-free survival time"),
    Output("pfs_event", ("patient",), "i1", "1", "1 = progression or death, 0 = censored"),
    Output("os_time_days", ("patient",), "f8", "day", "overall survival time"),
    Output("os_event", ("patient",), "i1", "1", "1 = death, 0 = censored"),
    Output("death_cause", ("patient",), "i1", "1", "cause of death", meanings=CAUSE_MEANINGS),
    Output("best_response", ("patient",), "i1", "1", "RECIST 1.1 best overall response", meanings=RESPONSE_MEANINGS),
    Output("progression_type", ("patient",), "i1", "1", "what defined progression", meanings=PROGRESSION_MEANINGS),
    Output("tumour_nadir_ratio", ("patient",), "f8", "1", "smallest tumour volume at a scan / baseline"),
    Output("target_sum_best_change", ("patient",), "f8", "1",
           "smallest sum of target-lesion diameters at a scan / baseline - 1 (NaN: no target lesion or no scan)", NAN),
    Output("index_viable_ratio_first_scan", ("patient",), "f8", "1",
           "viable volume of the index lesion at the first scan / baseline, as EASL and mRECIST read viable "
           "(enhancing) tumour (NaN: no scan)", NAN),
    Output("lesions_modelled", ("patient",), "i1", "1", "lesions modelled (lesion_count, 1 to lesions.max_lesions)"),
    Output("target_lesions", ("patient",), "i1", "1", "RECIST 1.1 target lesions (0: no measurable disease)"),
    Output("receptor_negative_lesions", ("patient",), "i1", "1", "receptor-negative lesions"),
    Output("whole_body_tumour_dose_gy", ("patient",), "f8", "Gy",
           "first-cycle absorbed dose averaged over the receptor-positive tumour volume (whole-body tumour dose; NaN: "
           "untreated or no receptor-positive lesion)", NAN),
    Output("lesion_volume_ml", ("patient", "lesion"), "f8", "mL", "baseline lesion volume (NaN: absent)", NAN,
           summary=False),
    Output("lesion_role", ("patient", "lesion"), "i1", "1", "RECIST 1.1 role chosen at baseline",
           meanings=ROLE_MEANINGS, summary=False),
    Output("lesion_receptor_negative", ("patient", "lesion"), "i1", "1", "1 = receptor-negative lesion",
           summary=False),
    Output("lesion_volume_ratio_best", ("patient", "lesion"), "f8", "1",
           "lesion volume / baseline at the scan of the smallest target sum (NaN: absent or no scan)", NAN),
    Output("blood_worst_grade", ("patient", "blood_line"), "i1", "1",
           "worst CTCAE v5 grade of the blood line: its nadirs, or 3 after a decrease of other causes"),
    Output("organ_toxicity_grade", ("patient", "organ"), "i1", "1",
           "late toxicity grade of the organ, 0-2 (0 where it has no such model; organ_adverse_event names it)"),
    Output("egfr_end_ml_min", ("patient",), "f8", "mL/min/1.73m2", "eGFR at the end of follow-up"),
    Output("egfr_change_48_months", ("patient",), "f8", "1",
           "eGFR 4 years after the start / baseline - 1 (NaN: died or censored before)", NAN),
    Output("ckd_grade", ("patient",), "i1", "1", "CTCAE v5 chronic kidney disease grade at the end of follow-up"),
    Output("renal_grade3_time_days", ("patient",), "f8", "day",
           "time to the first renal grade >= 3 event: eGFR < 30 mL/min or an acute event of another cause"),
    Output("renal_grade3_event", ("patient",), "i1", "1", "1 = a renal grade >= 3 event, 0 = censored"),
    Output("renal_grade3_acute", ("patient",), "i1", "1",
           "1 = the first renal grade >= 3 event was acute (other cause), 0 = eGFR < 30 or none"),
    Output("psa_best_change", ("patient",), "f8", "1",
           "lowest PSA of the first course / baseline - 1 (NaN: no value after baseline, or no PSA model)", NAN),
    Output("psa50", ("patient",), "i1", "1", "1 = PSA fell to <= 50 % of baseline, confirmed >= 3 weeks later (PCWG3)"),
    Output("psa_progression_day", ("patient",), "f8", "day", "PCWG3 PSA progression, dated at the first rising value "
           "(NaN: none)", NAN),
    Output("resection_day", ("patient",), "f8", "day",
           "day of surgery after downstaging (NaN: not resected; docs/model.md 5.6)", NAN),
    Output("retreatment_day", ("patient",), "f8", "day", "day the re-treatment course started (NaN: none)", NAN),
    Output("retreatment_pfs_time_days", ("patient",), "f8", "day",
           "from re-treatment to the next progression or death, else to the last scan (NaN: no re-treatment)", NAN),
    Output("retreatment_pfs_event", ("patient",), "i1", "1", "1 = progression or death after re-treatment"),
    Output("mds_aml", ("patient",), "i1", "1", "1 = therapy-related MDS/AML diagnosed during follow-up"),
    Output("mds_aml_day", ("patient",), "f8", "day", "day of MDS/AML onset (NaN: none)"),
    Output("discontinued_for_toxicity", ("patient",), "i1", "1",
           "1 = treatment stopped by the dose-modification rules"),
    Output("psa_paused", ("patient",), "i1", "1",
           "1 = the first course ended in a pause after an exceptional PSA response (arms.psa_pause)"),
    Output("reached_target", ("patient",), "i1", "1",
           "1 = a dosimetry-guided arm reached its kidney/tumour target or limit (by the measured doses)"),
)
Outputs = namedtuple("Outputs", [o.name for o in OUTPUTS])
BY_NAME = {o.name: o for o in OUTPUTS}


@dataclass(frozen=True)
class Total:
    """A per-patient reduction over cycles of a per-cycle output: ``sum``, ``any`` (some value > 0) or ``first``
    (the first cycle's value); with ``index_lesion``, of lesion 0 only."""

    name: str
    source: str
    how: str
    dtype: str
    units: str
    long_name: str
    index_lesion: bool = False
    summary: bool = True  # as ``Output.summary``


TOTALS = (
    Total("activity_gbq_total", "activity_gbq", "sum", "f8", "GBq", "cumulative administered activity"),
    Total("dose_gy_total", "dose_gy", "sum", "f8", "Gy", "cumulative true absorbed dose"),
    Total("bed_gy_total", "bed_gy", "sum", "f8", "Gy", "cumulative BED (sum of cycle BEDs)"),
    Total("lesion_dose_gy_total", "lesion_dose_gy", "sum", "f8", "Gy", "cumulative true lesion absorbed dose",
          summary=False),
    Total("lesion_bed_gy_total", "lesion_bed_gy", "sum", "f8", "Gy", "cumulative lesion BED", summary=False),
    Total("index_lesion_dose_gy_total", "lesion_dose_gy", "sum", "f8", "Gy",
          "cumulative true absorbed dose of the index lesion (lesion 1: the largest receptor-positive one)",
          index_lesion=True),
    Total("index_lesion_bed_gy_total", "lesion_bed_gy", "sum", "f8", "Gy", "cumulative BED of the index lesion",
          index_lesion=True),
    Total("lesion_dose_gy_first", "lesion_dose_gy", "first", "f8", "Gy",
          "lesion absorbed dose of the first administration (0: none given)"),
    Total("cycles_measured", "dosimetry_measured", "sum", "i2", "1", "administrations followed by dosimetry"),
    Total("dose_reduced_any", "dose_reduced", "any", "i1", "1", "1 = at least one administration reduced"),
    Total("delayed_any", "delay_days", "any", "i1", "1", "1 = at least one administration delayed"),
)


def reduce_cycles(values: np.ndarray, dims: tuple[str, ...], how: str, dtype: str) -> np.ndarray:
    """Reduce ``values`` (dims ``dims``) over ``cycle`` to one value per patient (and organ, lesion, ...): the sum
    (cycle by cycle, in order), whether any value is > 0, or the first cycle's value. Adding whole cycle slices is
    ~4x faster than NumPy's reduction along a middle axis."""
    axis = dims.index("cycle")
    cycles = [np.take(values, k, axis=axis) for k in range(values.shape[axis])]
    if how == "first":
        return cycles[0].astype(dtype)
    if how == "any":
        return np.logical_or.reduce([c > 0 for c in cycles]).astype(dtype)
    total = cycles[0].copy()
    for c in cycles[1:]:
        total += c
    return total.astype(dtype)


def allocate(sizes: dict[str, int], leading: tuple[int, ...] = ()) -> Outputs:
    """Every output, shaped ``leading + (sizes[d] for d in dims)`` and filled with its ``fill`` value."""
    return Outputs(*(np.full(leading + tuple(sizes[d] for d in o.dims), o.fill, dtype=o.dtype) for o in OUTPUTS))


def rows(outputs: Outputs, index: tuple) -> Outputs:
    """The outputs of some rows, e.g. ``(arm, slice(start, stop))`` of a whole run (views, no copy)."""
    return Outputs(*(a[index] for a in outputs))


def patient_values(outputs: Outputs, summary_only: bool = False) -> dict[str, np.ndarray]:
    """A chunk's per-patient outputs and ``TOTALS`` (what a run keeps with ``keep="patients"``), or only those the
    summary reads (``keep="summary"``)."""
    values = {o.name: a for o, a in zip(OUTPUTS, outputs, strict=True)
              if "cycle" not in o.dims and (o.summary or not summary_only)}
    for t in TOTALS:
        if t.summary or not summary_only:
            values[t.name] = total(t, getattr(outputs, t.source), BY_NAME[t.source].dims)[1]
    return values


def total(t: Total, values: np.ndarray, dims: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """The total ``t`` of its source's ``values`` (dims ``dims``, e.g. with ``arm`` in front): its dims and values."""
    if t.index_lesion:
        values, dims = np.take(values, 0, axis=dims.index("lesion")), tuple(d for d in dims if d != "lesion")
    return tuple(d for d in dims if d != "cycle"), reduce_cycles(values, dims, t.how, t.dtype)


TOTAL_BY_NAME = {t.name: t for t in TOTALS}


def attributes(name: str) -> dict:
    """units, long_name and (for codes) flag_values / flag_meanings of an output or total."""
    spec = BY_NAME.get(name) or TOTAL_BY_NAME[name]
    attrs = {"units": spec.units, "long_name": spec.long_name}
    meanings = getattr(spec, "meanings", None)
    if meanings:
        attrs["flag_values"] = np.arange(len(meanings.split()), dtype=np.int8)
        attrs["flag_meanings"] = meanings
    return attrs


def dims_of(name: str) -> tuple[str, ...]:
    """Dims of an output or total (its source's, less ``cycle``) in a run's Dataset (``arm`` first)."""
    if name in BY_NAME:
        return ("arm", *BY_NAME[name].dims)
    t = TOTAL_BY_NAME[name]
    return ("arm", *(d for d in BY_NAME[t.source].dims if d != "cycle" and not (t.index_lesion and d == "lesion")))
