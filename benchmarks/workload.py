"""The benchmark's workload: the NETTER-1 scenario (``configs/netter1.toml``), its arms, and the kernel inputs.

Shared by ``run.py`` (in-process timings) and ``probes.py`` (the child processes that measure memory and
start-up); it imports only the parts of ``sim`` that every measurement needs.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from sim import cohort as cohort_mod
from sim import config, engine, regimens
from sim.kernels import layout as L
from sim.kernels.patient import simulate_arm

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "configs" / "netter1.toml"
LU_ARM = "lu177_dotatate"  # 4 x 7.4 GBq q8w, platelet/neutrophil dynamics, dose modification


def netter1(patients: int, arms: tuple[str, ...] | None = (LU_ARM,)) -> config.Config:
    """NETTER-1 with ``patients`` virtual patients, keeping only ``arms`` (``None``: both arms).

    Same path as ``config.load`` with a ``select_arms`` line in the file: read, select arms, override, validate.
    """
    data = config.read_toml(SCENARIO)
    if arms is not None:
        config.select_arms(data, list(arms), str(SCENARIO))
    config.set_dotted(data, "trial.patients", patients)
    return config.validate(data, str(SCENARIO))


def engine_keeps() -> tuple[str, ...]:
    """The ``keep=`` values ``engine.run`` accepts (empty while it has no such argument)."""
    if "keep" not in inspect.signature(engine.run).parameters:
        return ()
    return tuple(getattr(engine, "KEEP_LEVELS", ("cycles", "patients", "summary")))


def run_engine(cfg: config.Config, keep: str | None = None) -> engine.RunResult:
    """``engine.run(cfg, keep=keep)``; without a ``keep`` argument in the engine, its default (full output)."""
    if keep is not None and keep in engine_keeps():
        return engine.run(cfg, keep=keep)
    return engine.run(cfg)


def effective_keep(wanted: str) -> str:
    """What ``run_engine(cfg, wanted)`` really keeps: ``wanted``, or "cycles" (full output) if unsupported."""
    return wanted if wanted in engine_keeps() else "cycles (engine has no keep= yet)"


@dataclass
class KernelInputs:
    """Everything ``simulate_arm`` (and the NumPy reference, which takes the same) needs for one arm."""

    patients: np.ndarray
    patient_ids: np.ndarray
    seed: int
    model: np.ndarray
    regimen: np.ndarray
    activities: np.ndarray
    scan_days: np.ndarray
    max_cycles: int

    def __len__(self) -> int:
        return self.patients.shape[0]

    def args(self) -> tuple:
        return (self.patients, self.patient_ids, self.seed, self.model, self.regimen, self.activities,
                self.scan_days)

    def subset(self, rows: np.ndarray) -> KernelInputs:
        return KernelInputs(self.patients[rows], self.patient_ids[rows], self.seed, self.model, self.regimen,
                            self.activities, self.scan_days, self.max_cycles)


def kernel_inputs(cfg: config.Config, arm_name: str = LU_ARM) -> KernelInputs:
    """Draw the cohort of ``cfg`` and build the kernel's inputs for one arm (as ``engine.simulate`` does)."""
    arm = cfg.arm(arm_name)
    plan = regimens.encode(arm)
    agent = cfg.agents[plan.agent] if plan.agent is not None else None
    ids = np.arange(cfg.trial.patients, dtype=np.int64)
    patients = cohort_mod.kernel_patients(cfg, cohort_mod.draw(cfg, ids), agent)
    return KernelInputs(patients, ids, cfg.trial.seed, engine.model_vector(cfg, arm), plan.vector, plan.activities,
                        engine.scan_days(cfg), engine.max_cycles(cfg))


def run_kernel(inp: KernelInputs) -> tuple[np.ndarray, np.ndarray]:
    """The numba kernel on prepared inputs: ``(per_cycle, per_patient)``."""
    n = len(inp)
    per_cycle, per_patient = np.empty((L.N_CYCLE_VARS, n, inp.max_cycles)), np.empty((L.N_PATIENT_VARS, n))
    simulate_arm(inp.patients, inp.patient_ids, np.int64(inp.seed), inp.model, inp.regimen, inp.activities,
                 inp.scan_days, per_cycle, per_patient)
    return per_cycle, per_patient


def max_threads() -> int:
    """The most numba threads this process can use (``NUMBA_NUM_THREADS``, by default the number of cores)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def best_of(fn: Callable[[], Any], repeats: int, budget_s: float = float("inf")) -> tuple[float, list[float], Any]:
    """Run ``fn`` up to ``repeats`` times (fewer once ``budget_s`` is spent); ``(best s, all times, last result)``.

    The best run is the least disturbed by other load on the machine, which is what a benchmark reports.
    """
    times: list[float] = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        if sum(times) >= budget_s:
            break
    return min(times), times, result


def _jiffies() -> tuple[int, int] | None:
    """(busy jiffies of the whole machine, jiffies of this process) from /proc; None where there is no /proc."""
    try:
        with open("/proc/stat") as fh:
            cpu = [int(x) for x in fh.readline().split()[1:]]
        with open("/proc/self/stat") as fh:
            own = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)  # idle + iowait
    return sum(cpu[:8]) - idle, int(own[11]) + int(own[12])  # utime + stime of this process (all threads)


class OtherLoad:
    """Share of the machine's cores that *other* processes kept busy while the ``with`` block ran (0 = none,
    1 = every core): a benchmark's figures, above all thread scaling, mean little when it is large."""

    def __enter__(self) -> OtherLoad:
        self._start, self._t0, self.share = _jiffies(), time.perf_counter(), None
        return self

    def __exit__(self, *exc: object) -> None:
        end = _jiffies()
        if self._start is None or end is None:
            return
        hz = os.sysconf("SC_CLK_TCK")
        others = (end[0] - self._start[0]) - (end[1] - self._start[1])
        self.share = max(0.0, others / hz / ((time.perf_counter() - self._t0) * (os.cpu_count() or 1)))
