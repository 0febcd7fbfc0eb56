"""Regimen rules encoded for the kernel: each arm's policy as plain numbers (``layout.R_*``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config import DAYS_PER_WEEK, ControlArm, FixedArm, GuidedArm
from sim.kernels import layout as L


@dataclass(frozen=True)
class RegimenPlan:
    agent: str | None
    activities: np.ndarray  # nominal GBq per cycle (>= 1 entry so the kernel signature is stable)
    vector: np.ndarray  # layout.N_REGIMEN numbers

    @property
    def n_cycles(self) -> int:
        return int(self.vector[L.R_N_CYCLES])


RULES = {"cycles_to_kidney_limit": L.RULE_KIDNEY_LIMIT, "activity_to_kidney_target": L.RULE_KIDNEY_TARGET,
         "tumour_dose_target": L.RULE_TUMOUR_TARGET}


# Optional dose-modification thresholds: regimen slot, and the value that never triggers when omitted.
OPTIONAL_RULES = {
    "withhold_platelet_grade": (L.R_WITHHOLD_GRADE, L.NEVER_GRADE),
    "reduce_after_platelet_grade": (L.R_REDUCE_GRADE, L.NEVER_GRADE),
    "withhold_neutrophil_grade": (L.R_WITHHOLD_NEUTROPHIL_GRADE, L.NEVER_GRADE),
    "reduce_after_neutrophil_grade": (L.R_REDUCE_NEUTROPHIL_GRADE, L.NEVER_GRADE),
    "withhold_egfr_below_ml_min": (L.R_WITHHOLD_EGFR_BELOW, 0.0),  # eGFR is never below 0
    "withhold_egfr_drop_fraction": (L.R_WITHHOLD_EGFR_DROP, 1.0),  # nor below (1 - 1) x baseline
}


def encode(arm: FixedArm | GuidedArm | ControlArm) -> RegimenPlan:
    """Translate an arm's regimen, dosimetry and dose-modification rules into the kernel's arguments."""
    v = np.zeros(L.N_REGIMEN)
    v[L.R_INTERVAL_DAYS] = 1.0
    for index, never in OPTIONAL_RULES.values():
        v[index] = never
    v[L.R_RECHECK_DAYS] = DAYS_PER_WEEK
    if isinstance(arm, ControlArm):
        return RegimenPlan(None, np.zeros(1), v)
    dm = arm.dose_modification
    v[L.R_N_CYCLES] = arm.cycles
    v[L.R_INTERVAL_DAYS] = arm.interval_weeks * DAYS_PER_WEEK
    v[L.R_CONTINUE_AFTER] = arm.continue_after_cycle or 0
    for field, (index, _) in OPTIONAL_RULES.items():
        value = getattr(dm, field)
        if value is not None:
            v[index] = value
    v[L.R_REDUCTION_FRACTION] = dm.reduction_fraction
    v[L.R_RESTORE] = float(dm.restore_after_tolerated)
    v[L.R_REDUCE_IF_WITHHELD] = float(dm.reduce_after_withholding)
    v[L.R_MAX_REDUCTIONS] = dm.max_reductions
    v[L.R_RECHECK_DAYS] = dm.recheck_weeks * DAYS_PER_WEEK
    v[L.R_MAX_DELAY_DAYS] = dm.max_delay_weeks * DAYS_PER_WEEK
    if arm.dosimetry is not None:
        measured = arm.dosimetry.measured_cycles
        v[L.R_MEASURED_CYCLES] = arm.cycles if measured is None else min(measured, arm.cycles)
    if isinstance(arm, FixedArm):
        return RegimenPlan(arm.agent, np.asarray(arm.activities(), dtype=np.float64), v)
    v[L.R_RULE] = RULES[arm.rule]
    v[L.R_GUIDED_ACTIVITY] = arm.activity_gbq
    v[L.R_KIDNEY_LIMIT_GY], v[L.R_KIDNEY_LIMIT_RF_GY] = arm.kidney_limits()
    v[L.R_MARROW_LIMIT_GY] = arm.marrow_limit_gy
    v[L.R_TARGET] = arm.target_gy if arm.target_gy is not None else np.inf
    v[L.R_TARGET_IS_BED] = float(arm.target_quantity == "bed")
    v[L.R_MIN_ACTIVITY] = arm.min_activity_gbq
    v[L.R_MAX_ACTIVITY] = arm.max_activity_gbq if arm.max_activity_gbq is not None else np.inf
    v[L.R_REDUCE_LAST] = float(arm.reduce_last_cycle_to_limit)
    return RegimenPlan(arm.agent, np.full(arm.cycles, arm.activity_gbq), v)
