"""Virtual randomised trials: replicate two-arm trials on fresh cohorts, their hazard ratios and log-rank
power, and the smallest trial that reaches a target power.

Replicate ``r`` randomises ``n`` fresh patients to each arm (accrual, follow-up and dropout as in the config).
Patient ``j`` of arm ``a`` in replicate ``r`` has the global id ``OFFSET + (2 r + a) STRIDE + j``, so trials
never share patients with each other or with ``rptsim run`` (ids below ``OFFSET``), a replicate's first ``n``
patients are the same whatever ``n`` (common random numbers along the sample-size search), and results depend
only on the seed, not on threads or chunking.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim import engine
from sim.config import Config, ConfigError
from sim.survival import cox_two_group, logrank

OFFSET = 1 << 40  # trial patients' ids start here
STRIDE = 1 << 20  # room for up to ~1 million patients per arm
REPLICATES_PER_BATCH = 64
ENDPOINTS = {"pfs": ("pfs_time_days", "pfs_event"), "os": ("os_time_days", "os_event")}


@dataclass(frozen=True)
class TrialDesign:
    experimental: str
    reference: str
    patients_per_arm: int
    replicates: int
    alpha: float = 0.05
    endpoint: str = "pfs"

    def check(self, cfg: Config) -> None:
        names = [a.name for a in cfg.arms]
        for arm in (self.experimental, self.reference):
            if arm not in names:
                raise ConfigError(f"--arms: unknown arm {arm!r} (defined: {names})")
        if not 1 <= self.patients_per_arm < STRIDE:
            raise ConfigError(f"--patients-per-arm = {self.patients_per_arm}: must be in [1, {STRIDE - 1}]")
        if not 1 <= self.replicates <= 100_000:
            raise ConfigError(f"--replicates = {self.replicates}: must be in [1, 100000]")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"--alpha = {self.alpha}: must be in (0, 1)")
        if self.endpoint not in ENDPOINTS:
            raise ConfigError(f"--endpoint = {self.endpoint!r}: must be one of {sorted(ENDPOINTS)}")


@dataclass(frozen=True)
class TrialResult:
    patients_per_arm: int
    hazard_ratio: np.ndarray  # (replicates,) Cox HR, experimental vs reference
    p_value: np.ndarray  # (replicates,) two-sided log-rank p

    def power(self, alpha: float) -> float:
        return float(np.mean(self.p_value < alpha))


def same_regimen(cfg: Config, a: str, b: str) -> bool:
    """Whether two arms apply the same treatment: their configs are equal but for name and label (every kernel
    input of an arm comes from its config and the shared sections), so the log-rank rejection rate is then the
    type-I error."""
    def treatment(name: str) -> dict:
        return cfg.arm(name).model_dump(exclude={"name", "label"})

    return a == b or treatment(a) == treatment(b)


def simulate_trials(cfg: Config, design: TrialDesign, patients_per_arm: int | None = None,
                    progress: Callable[[int], None] | None = None) -> TrialResult:
    """Run ``design.replicates`` independent trials with ``patients_per_arm`` per arm; ``progress(k)`` after
    each batch of ``k`` replicates."""
    n = patients_per_arm or design.patients_per_arm
    time_var, event_var = ENDPOINTS[design.endpoint]
    hr = np.empty(design.replicates)
    p = np.empty(design.replicates)
    for first in range(0, design.replicates, REPLICATES_PER_BATCH):
        reps = np.arange(first, min(design.replicates, first + REPLICATES_PER_BATCH))
        outcome = []
        for a, name in enumerate((design.experimental, design.reference)):
            ids = (OFFSET + (2 * reps[:, None] + a) * STRIDE + np.arange(n)[None, :]).ravel()
            res = engine.simulate_outcomes(cfg, name, ids)
            outcome.append((res[time_var].values.reshape(len(reps), n),
                            res[event_var].values.reshape(len(reps), n)))
        (t_e, e_e), (t_r, e_r) = outcome
        for i, r in enumerate(reps):
            p[r] = logrank(t_e[i], e_e[i], t_r[i], e_r[i]).p_value
            time = np.concatenate([t_e[i], t_r[i]])
            event = np.concatenate([e_e[i], e_r[i]])
            group = np.concatenate([np.ones(n), np.zeros(n)])
            hr[r] = cox_two_group(time, event, group).hr
        if progress is not None:
            progress(len(reps))
    return TrialResult(n, hr, p)


def summarise(result: TrialResult, design: TrialDesign, same: bool) -> dict:
    """The JSON summary of one design: power, HR distribution, and the type-I error for identical arms."""
    finite = result.hazard_ratio[np.isfinite(result.hazard_ratio)]
    out = {
        "experimental_arm": design.experimental,
        "reference_arm": design.reference,
        "endpoint": design.endpoint,
        "patients_per_arm": result.patients_per_arm,
        "replicates": len(result.p_value),
        "alpha": design.alpha,
        "power": round(result.power(design.alpha), 4),
        "hr_median": round(float(np.median(finite)), 4) if finite.size else None,
        "hr_ci": [round(float(q), 4) for q in np.percentile(finite, [2.5, 97.5])] if finite.size else None,
        "same_regimen": same,
    }
    if same:
        out["type_i_error"] = out["power"]
    return out


def required_patients(cfg: Config, design: TrialDesign, target_power: float, max_per_arm: int = 20_000,
                      progress: Callable[[int], None] | None = None) -> tuple[int | None, list[dict]]:
    """Smallest patients-per-arm whose simulated power reaches ``target_power``: doubling from the design's size
    (or halving from it), then bisection on integers. Returns the size (None if ``max_per_arm`` is not enough)
    and every evaluated point."""
    cache: dict[int, float] = {}

    def power_at(n: int) -> float:
        if n not in cache:
            cache[n] = simulate_trials(cfg, design, n, progress).power(design.alpha)
        return cache[n]

    lo, hi = 0, design.patients_per_arm  # invariant: power(lo) < target (lo = 0 trivially), power(hi) >= target
    while power_at(hi) < target_power:
        lo, hi = hi, hi * 2
        if hi > max_per_arm:
            if power_at(max_per_arm) < target_power:
                return None, _points(cache)
            hi = max_per_arm
    while hi - lo > max(1, math.ceil(0.02 * hi)):
        mid = (lo + hi) // 2
        if mid == 0:
            break
        if power_at(mid) >= target_power:
            hi = mid
        else:
            lo = mid
    return hi, _points(cache)


def _points(cache: dict[int, float]) -> list[dict]:
    return [{"patients_per_arm": n, "power": round(p, 4)} for n, p in sorted(cache.items())]
