"""Where a run's time goes (issue 21): a per-phase profile of a NETTER-1 run, the kernel's cost per model part, and the
same ``rptsim run`` command timed against the release before the performance work.

* ``phases``: one chunk of both arms, phase by phase as ``engine.run`` does it (cohort draw, kernel-input translation
  of every arm from the patients' shared random effects and lesion layout, kernel and per-patient reduction per arm),
  then ``analysis.summary`` of a ``keep="summary"`` run; best of 2 per phase.
* ``kernel_parts``: the kernel on the 177Lu arm with parts of the model left out (one lesion instead of the lesion
  model; each optional blood line; both optional lines); a part's cost is the full kernel's time less the time
  without it (an ablation: the parts interact little, so the costs add up to about the whole).
* ``uncertainty_draws``: ``rptsim uncertainty configs/netter1.toml`` (NETTER-1's declared priors, both arms) in this
  process, without Dask: parameter draws per minute at a given cohort size.
* ``against_release``: ``rptsim run configs/netter1.toml --patients N --keep summary`` here and at ``RELEASE`` (a git
  worktree in a temporary folder, its own numba cache), each warmed up once, best of 2: the done-when of issue 21.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import workload

from sim import analysis, engine, kernel_outputs
from sim import cohort as cohort_mod
from sim.kernel_inputs import PatientDraws, axes_of, translate
from sim.kernels.patient import run_arm

RELEASE = "b420e14"  # the release before the performance work (issue 21)
OPTIONAL_LINES = ("lymphocytes", "haemoglobin")  # platelets and neutrophils are always modelled


def _best(fn, repeats: int = 2) -> float:  # noqa: ANN001
    return workload.best_of(fn, repeats)[0]


def phases(n: int) -> dict:
    """Seconds per phase for ``n`` patients (one chunk) in both NETTER-1 arms, and per patient."""
    cfg = workload.netter1(n, arms=None)
    ids = np.arange(n, dtype=np.int64)
    axes = axes_of(cfg)
    out: dict[str, float] = {"cohort draw": _best(lambda: cohort_mod.draw(cfg, ids))}
    chunk = cohort_mod.draw(cfg, ids)
    out["translate (every arm, shared draws)"] = _best(
        lambda: [translate(cfg, arm.name, draws) for draws in [PatientDraws(cfg, axes, chunk)] for arm in cfg.arms])
    patients = PatientDraws(cfg, axes, chunk)
    for arm in cfg.arms:
        inputs = translate(cfg, arm.name, patients)
        result = kernel_outputs.allocate(axes.sizes(n))
        out[f"kernel {arm.name}"] = _best(lambda i=inputs, r=result: run_arm(*i.args(), r))
        out[f"reduce {arm.name}"] = _best(lambda r=result: kernel_outputs.patient_values(r, summary_only=True))
    ds = engine.run(cfg, keep="summary")
    out["summary (analysis.summary)"] = _best(lambda: analysis.summary(ds))
    total = sum(out.values())
    return {"patients": n, "seconds": out, "total_s": total,
            "share": {k: v / total for k, v in out.items()},
            "us_per_patient": {k: 1e6 * v / n for k, v in out.items()}}


def kernel_parts(n: int) -> dict:
    """Kernel seconds on the 177Lu arm, whole and with model parts left out; each part's cost per patient and per
    patient-cycle (the variants' mean cycles differ little)."""
    variants = {"full model": (), "one lesion (no [lesions])": ("lesions",),
                **{f"without {line}": (f"marrow.{line}",) for line in OPTIONAL_LINES},
                "platelets and neutrophils only": tuple(f"marrow.{line}" for line in OPTIONAL_LINES)}
    seconds, cycles = {}, {}
    for name, drop in variants.items():
        inp = workload.kernel_inputs(workload.netter1(n, drop=drop))
        seconds[name], _, out = workload.best_of(lambda i=inp: workload.run_kernel(i), 2)
        cycles[name] = float(out.cycles_given.mean())
    full = seconds["full model"]
    cost = {"lesion model (8 lesions vs 1)": full - seconds["one lesion (no [lesions])"],
            **{f"{line} line": full - seconds[f"without {line}"] for line in OPTIONAL_LINES},
            "platelet and neutrophil lines + everything else": seconds["platelets and neutrophils only"]}
    return {"patients": n, "seconds": seconds, "mean_cycles": cycles[("full model")],
            "part_seconds": cost, "part_us_per_patient": {k: 1e6 * v / n for k, v in cost.items()},
            "part_us_per_patient_cycle": {k: 1e6 * v / (n * cycles["full model"]) for k, v in cost.items()}}


def uncertainty_draws(draws: int, patients: int) -> dict:
    """Wall time of ``rptsim uncertainty configs/netter1.toml --draws D --patients N --workers 0`` (in process; the
    kernel already compiled), and the draws per minute it implies."""
    from sim import cli

    with tempfile.TemporaryDirectory(prefix="rptsim-bench-uncertainty-") as tmp:
        argv = ["uncertainty", str(workload.SCENARIO), "--draws", str(draws), "--patients", str(patients),
                "--workers", "0", "-o", str(Path(tmp) / "u.h5"), "--json"]
        t0 = time.perf_counter()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            rc = cli.main(argv)
        wall = time.perf_counter() - t0
    return {"draws": draws, "patients_per_arm": patients, "wall_s": wall, "exit_code": rc,
            "draws_per_minute": 60.0 * draws / wall if rc == 0 else None}


def _timed_run(tree: Path, patients: int, cache: Path, out: Path) -> float:
    """Wall seconds of ``python -m sim.cli run configs/netter1.toml`` in ``tree`` (that tree's ``sim`` first)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "sim.cli", "run", "configs/netter1.toml", "--patients", str(patients),
           "--keep", "summary", "-o", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def against_release(patients: int, release: str = RELEASE) -> dict:
    """The command of issue 21's done-when here and at ``release``: warm-up once each, then best of 2, alternating."""
    with tempfile.TemporaryDirectory(prefix="rptsim-bench-release-") as tmp:
        old = Path(tmp) / "release"
        made = subprocess.run(["git", "worktree", "add", "--detach", str(old), release], cwd=workload.ROOT,
                              capture_output=True, text=True)
        if made.returncode != 0:
            return {"patients": patients, "release": release, "error": made.stderr.strip().splitlines()[-1:]}
        try:
            trees = {"now": workload.ROOT, release: old}
            times: dict[str, list[float]] = {k: [] for k in trees}
            for name, tree in trees.items():  # warm-up: compile into (or load) each tree's own cache
                _timed_run(tree, 1000, Path(tmp) / f"cache-{name}", Path(tmp) / f"{name}.h5")
            for _ in range(2):
                for name, tree in trees.items():
                    cache, out = Path(tmp) / f"cache-{name}", Path(tmp) / f"{name}.h5"
                    times[name].append(_timed_run(tree, patients, cache, out))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=workload.ROOT, capture_output=True)
    best = {k: min(v) for k, v in times.items()}
    return {"patients": patients, "release": release, "runs_s": times, "best_s": best,
            "ratio_now_over_release": best["now"] / best[release]}
