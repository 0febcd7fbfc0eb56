"""Regimen rules encoded for the kernel: the policy of each arm as plain numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config import DAYS_PER_WEEK, ControlArm, FixedArm


@dataclass(frozen=True)
class RegimenPlan:
    agent: str | None
    activities: np.ndarray  # GBq per cycle, length n_cycles (>= 1 entry so the kernel signature is stable)
    n_cycles: int
    interval_days: float
    continue_after: int  # 0 = off; else cycles >= this index need a shrinking tumour


def encode(arm: FixedArm | ControlArm) -> RegimenPlan:
    """Translate an arm's regimen into the kernel's arguments."""
    if isinstance(arm, ControlArm):
        return RegimenPlan(None, np.zeros(1), 0, 1.0, 0)
    return RegimenPlan(arm.agent, np.asarray(arm.activities(), dtype=np.float64), arm.cycles,
                       arm.interval_weeks * DAYS_PER_WEEK, arm.continue_after_cycle or 0)
