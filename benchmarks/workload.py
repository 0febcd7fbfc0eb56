"""The benchmark's workload: the NETTER-1 scenario (``configs/netter1.toml``), its arms, and the kernel inputs.

Shared by ``run.py`` (in-process timings) and ``probes.py`` (the child processes that measure memory and
start-up); it imports only the parts of ``sim`` that every measurement needs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from sim import cohort as cohort_mod
from sim import config, kernel_outputs
from sim.kernel_inputs import Axes, KernelInputs, axes_of, translate
from sim.kernels.patient import run_arm

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "configs" / "netter1.toml"
LU_ARM = "lu177_dotatate"  # 4 x 7.4 GBq q8w, platelet/neutrophil dynamics, dose modification


def netter1(patients: int, arms: tuple[str, ...] | None = (LU_ARM,), drop: tuple[str, ...] = ()) -> config.Config:
    """NETTER-1 with ``patients`` virtual patients, keeping only ``arms`` (``None``: both arms), without the config
    sections ``drop`` (dotted paths; then without the uncertain parameters too, which may name them).

    Same path as ``config.load`` with a ``select_arms`` line in the file: read, select arms, override, validate.
    """
    data = config.read_scenario(SCENARIO)
    if arms is not None:
        config.select_arms(data, list(arms), str(SCENARIO))
    for path in drop:
        *head, last = path.split(".")
        table = data
        for key in head:
            table = table[key]
        table.pop(last)
        data.pop("uncertainty", None)
    config.set_dotted(data, "trial.patients", patients)
    return config.validate(data, str(SCENARIO))


@dataclass(frozen=True)
class ArmInputs:
    """One arm's kernel inputs for a cohort (``sim.kernel_inputs.KernelInputs``, what ``run_arm`` and the NumPy
    oracle take) and the scenario's axes, which size the outputs."""

    inputs: KernelInputs
    axes: Axes

    def __len__(self) -> int:
        return len(self.inputs.patients.patient_id)

    @property
    def sizes(self) -> dict[str, int]:
        """Output sizes (``kernel_outputs.allocate``) for these patients."""
        return self.axes.sizes(len(self))

    def args(self) -> tuple:
        return self.inputs.args()

    def subset(self, rows: np.ndarray) -> ArmInputs:
        """The same arm for the patients ``rows`` only: every per-patient input sliced along its first axis."""
        return ArmInputs(self.inputs.patients_at(rows), self.axes)


def kernel_inputs(cfg: config.Config, arm_name: str = LU_ARM) -> ArmInputs:
    """Draw the cohort of ``cfg`` and translate it into one arm's kernel inputs (as ``engine.simulate`` does)."""
    cohort = cohort_mod.draw(cfg, np.arange(cfg.trial.patients, dtype=np.int64))
    return ArmInputs(translate(cfg, arm_name, cohort), axes_of(cfg))


def run_kernel(inp: ArmInputs) -> kernel_outputs.Outputs:
    """The numba kernel (``run_arm``) on prepared inputs, into freshly allocated outputs."""
    out = kernel_outputs.allocate(inp.sizes)
    run_arm(*inp.args(), out)
    return out


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
