"""The benchmark suite (``make bench``): speed, scaling, memory and start-up of the simulator on NETTER-1.

Prints a table (figure, value, target, met?) and writes ``benchmarks/results/latest.json``. Figures, not
assertions: machines are noisy, so each timing is the best of a few repeats. What each figure measures is in
``benchmarks/README.md`` and in the docstrings below. ``python benchmarks/run.py --quick`` runs smaller sizes
(a smoke test of the harness, not the published figures).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import phases
import probes
import scipy
import solve_ivp_style
import workload

from sim import engine, kernel_outputs, numpy_oracle, outcomes
from sim.numpy_oracle import simulate_arm_oracle

RESULTS = workload.ROOT / "benchmarks" / "results" / "latest.json"
FULL = {"sizes": (10_000, 100_000, 1_000_000), "scaling_n": 100_000, "compare_n": 30_000, "solve_ivp_n": 100,
        "hdf5_n": 100_000, "memory_n": 1_000_000, "phases_n": 100_000, "parts_n": 30_000, "release_n": 400_000,
        "uncertainty": (16, 5_000)}
QUICK = {"sizes": (10_000, 30_000), "scaling_n": 30_000, "compare_n": 5_000, "solve_ivp_n": 20,
         "hdf5_n": 20_000, "memory_n": 100_000, "phases_n": 10_000, "parts_n": 5_000, "release_n": None,
         "uncertainty": (4, 1_000)}
BUSY_SHARE = 0.2  # thread scaling is not judged when other processes used more than this share of the cores
TARGETS = {  # issue 8, on the 2-core machine
    "wall_1e6_s": 5.0, "speedup_vs_numpy": 3.0, "speedup_vs_solve_ivp": 300.0, "thread_scaling": 1.7,
    "peak_rss_mb_1e6": 1024.0, "jit_warm_s": 3.0,
}


def log(msg: str) -> None:
    print(f"  .. {msg}", flush=True)


def set_threads(n: int) -> None:
    numba.set_num_threads(min(n, workload.max_threads()))


# ------------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------------
def startup() -> dict:
    """Cold: a child process with an empty numba cache imports ``sim`` and simulates 100 patients, compiling
    the kernel. Warm: the same child again on the now-populated cache (import + cache load + tiny call), best of
    two. ``import_s`` is the plain ``import sim.engine`` time of the warm child."""
    with tempfile.TemporaryDirectory(prefix="rptsim-bench-cache-") as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        log("JIT: cold compile in a child process with an empty cache")
        cold = probes.run_child("startup", env=env)
        log("JIT: warm start (cache load) in a child process, twice")
        warm = min((probes.run_child("startup", env=env) for _ in range(2)), key=lambda r: r.get("total_s", math.inf))
    return {"cold": cold, "warm": warm}


def throughput(sizes: tuple[int, ...], threads: int) -> list[dict]:
    """Cohort draw + kernel for the NETTER-1 177Lu-DOTATATE arm (4 cycles, platelet and neutrophil dynamics, dose
    modification, 5-year follow-up) through ``engine.run`` with per-patient outputs kept (``keep="patients"``).
    Wall time after warm-up, best of a few; patient-cycles = patients x mean cycles given."""
    set_threads(threads)
    rows = []
    for n in sizes:
        cfg = workload.netter1(n)
        repeats = 5 if n <= 10_000 else 3
        log(f"throughput: {n:,} patients, {threads} thread(s), up to {repeats} runs")
        wall, times, ds = workload.best_of(lambda cfg=cfg: engine.run(cfg, keep="patients"), repeats, budget_s=30.0)
        cycles = float(ds.cycles_given.sel(arm=workload.LU_ARM).mean())
        rows.append({"patients": n, "threads": threads, "keep": ds.attrs["keep"], "wall_s": wall, "runs_s": times,
                     "mean_cycles": cycles, "patients_per_second": n / wall,
                     "patient_cycles_per_second": n * cycles / wall})
    return rows


def thread_scaling(n: int, repeats: int = 3) -> dict:
    """The throughput run of ``n`` patients with 1 and with 2 numba threads, alternating (1, 2, 1, 2, ...) so that
    load from elsewhere hits both alike; best of ``repeats`` each; scaling = time(1 thread) / time(2 threads).

    Also: the share of the cores other processes used meanwhile (``OtherLoad``; above 0.2 the figure is not judged),
    the process's CPU seconds per wall second in the best 2-thread run (2.0 = both cores busy throughout;
    less = a serial part, or another process taking a core), and the share of that run spent in the cohort draw and
    kernel-input assembly (2 threads; mostly single-threaded NumPy/SciPy, only the random streams run in
    parallel), the part of a run that scales least."""
    if workload.max_threads() < 2:
        return {"patients": n, "scaling": None, "note": "one core: no scaling to measure"}
    cfg = workload.netter1(n)
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}  # (wall, cpu) per run
    log(f"thread scaling: {n:,} patients, 1 and 2 threads alternately, {repeats} runs each")
    with workload.OtherLoad() as other:
        for _ in range(repeats):
            for threads in (1, 2):
                set_threads(threads)
                t0, c0 = time.perf_counter(), time.process_time()
                engine.run(cfg, keep="patients")
                runs[threads].append((time.perf_counter() - t0, time.process_time() - c0))
    set_threads(workload.max_threads())
    one, two = min(runs[1]), min(runs[2])
    draw_s, _, _ = workload.best_of(lambda: workload.kernel_inputs(cfg), 2)
    return {"patients": n, "wall_1_thread_s": one[0], "wall_2_threads_s": two[0],
            "runs_s": {k: [w for w, _ in v] for k, v in runs.items()}, "scaling": one[0] / two[0],
            "cpu_per_wall_2_threads": two[1] / two[0], "cohort_draw_s_2_threads": draw_s,
            "cohort_draw_share_2_threads": draw_s / two[0], "other_processes_core_share": other.share}


def kernel_vs_oracle(n: int) -> tuple[dict, workload.ArmInputs, kernel_outputs.Outputs]:
    """The numba kernel (``run_arm``) and the vectorised NumPy oracle (``sim/numpy_oracle.py``, the tests' oracle)
    on the same ``n`` patients' kernel inputs (cohort drawn and translated once, not timed). Kernel with 1 thread
    (per core) and with all threads; the oracle is single-threaded. Agreement: see ``_agreement``."""
    inp = workload.kernel_inputs(workload.netter1(n))
    runs = {}
    for threads in sorted({1, workload.max_threads()}):
        set_threads(threads)
        log(f"kernel alone: {n:,} patients, {threads} thread(s)")
        runs[threads], _, out = workload.best_of(lambda: workload.run_kernel(inp), 3)
    set_threads(workload.max_threads())
    log(f"NumPy oracle: {n:,} patients")
    # timed with NumPy's own exp/log (the oracle's speed as a NumPy program); the tests use the C library's rounding
    numpy_oracle.LIBM_ROUNDING = False
    try:
        ref_s, ref_times, ref = workload.best_of(lambda: simulate_arm_oracle(*inp.args(), inp.sizes), 2,
                                                 budget_s=5.0)
    finally:
        numpy_oracle.LIBM_ROUNDING = True
    return ({"patients": n, "kernel_s_1_thread": runs[1], "kernel_s_all_threads": runs[workload.max_threads()],
             "reference_s": ref_s, "reference_runs_s": ref_times,
             "speedup_per_core": ref_s / runs[1], "speedup_all_threads": ref_s / runs[workload.max_threads()],
             "agreement": _agreement(out, ref, _platelet_line(inp))}, inp, out)


# Per-patient outputs (no cycle dim): the integer ones (counts, events, codes, grades, flags) are discrete.
PER_PATIENT = tuple(o for o in kernel_outputs.OUTPUTS if "cycle" not in o.dims)
DISCRETE = tuple(o.name for o in PER_PATIENT if np.dtype(o.dtype).kind == "i")


def _platelet_line(inp: workload.ArmInputs) -> int:
    return [b.name for b in inp.axes.blood_lines].index("platelets")


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b| / |b|`` over entries finite in both (0 where both are 0)."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return 0.0
    diff = np.abs(a[ok] - b[ok])
    scale = np.abs(b[ok])
    return float(np.max(np.where(diff == 0, 0.0, diff / np.where(scale == 0, 1.0, scale))))


def _agreement(out: kernel_outputs.Outputs, other: kernel_outputs.Outputs, platelets: int) -> dict:
    """How far ``other``'s outputs are from the kernel's ``out`` (same patients): the number of patients with any
    discrete per-patient outcome different (``DISCRETE``: cycles given, events, causes, response, progression type,
    worst blood grades, CKD grade, renal event, MDS/AML, discontinuation, target reached); the largest relative
    differences of PFS, OS and any per-patient output; and the largest and median relative differences of the
    cycles' platelet nadirs (blood line ``platelets``)."""
    n = len(out.cycles_given)
    differ = np.zeros(n, dtype=bool)
    for name in DISCRETE:
        differ |= (getattr(out, name) != getattr(other, name)).reshape(n, -1).any(axis=1)
    nadirs = out.blood_nadir[..., platelets]
    other_nadirs = other.blood_nadir[..., platelets]
    return {"patients_with_different_discrete_outcomes": int(differ.sum()),
            "max_rel_diff_pfs_days": _rel_diff(out.pfs_time_days, other.pfs_time_days),
            "max_rel_diff_os_days": _rel_diff(out.os_time_days, other.os_time_days),
            "max_rel_diff_any_patient_output": max(_rel_diff(getattr(out, o.name), getattr(other, o.name))
                                                   for o in PER_PATIENT),
            "max_rel_diff_platelet_nadir": _rel_diff(nadirs, other_nadirs),
            "median_rel_diff_platelet_nadir": float(np.nanmedian(np.abs(nadirs - other_nadirs) / other_nadirs))}


def kernel_vs_solve_ivp(n: int, inp: workload.ArmInputs, kernel_out: kernel_outputs.Outputs,
                        kernel_s: dict) -> dict:
    """The per-patient ``solve_ivp`` style (``solve_ivp_style.py``) on ``n`` patients spread evenly over the
    comparison cohort (every k-th); its cost per patient against the kernel's cost per patient on the whole
    comparison cohort (1 thread: per core; all threads). Agreement with the kernel's outputs for those patients."""
    rows = np.linspace(0, len(inp) - 1, n).astype(np.int64)
    sub = inp.subset(rows)
    log(f"solve_ivp style ({solve_ivp_style.METHOD}): {n} patients, one by one")
    best_s, times, res = workload.best_of(lambda: solve_ivp_style.simulate_cohort(*sub.args(), sub.sizes), 2,
                                          budget_s=8.0)
    per_patient_s = best_s / n
    kernel_1 = kernel_s["kernel_s_1_thread"] / len(inp)
    kernel_all = kernel_s["kernel_s_all_threads"] / len(inp)
    return {"patients": n, "method": solve_ivp_style.METHOD, "rtol": solve_ivp_style.RTOL,
            "s_per_patient": per_patient_s, "runs_s": times, "kernel_s_per_patient_1_thread": kernel_1,
            "kernel_s_per_patient_all_threads": kernel_all, "speedup_per_core": per_patient_s / kernel_1,
            "speedup_all_threads": per_patient_s / kernel_all,
            "agreement": _agreement(kernel_outputs.rows(kernel_out, (rows,)), res, _platelet_line(inp))}


def hdf5_write(n: int) -> dict:
    """``outcomes.write`` (h5netcdf, chunked, zlib level 1, atomic) of the Dataset of a NETTER-1 run with full
    per-cycle output (``engine.run(keep="cycles")``, both arms, ``n`` patients each; the run, which assembles the
    Dataset, is not timed): MB/s of the written file and of the Dataset in memory over the write time, and
    patients/s of the write."""
    log(f"HDF5: run {n:,} patients x 2 arms with full output, write it")
    ds = engine.run(workload.netter1(n, arms=None), keep="cycles")
    with tempfile.TemporaryDirectory(prefix="rptsim-bench-h5-") as tmp:
        path = Path(tmp) / "bench.h5"
        t0 = time.perf_counter()
        outcomes.write(ds, path)
        write_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
    in_memory_mb = ds.nbytes / 1e6
    return {"patients": n, "arms": ds.sizes["arm"], "write_s": write_s, "file_mb": size_mb,
            "dataset_mb": in_memory_mb, "file_mb_per_s": size_mb / write_s,
            "dataset_mb_per_s": in_memory_mb / write_s, "patients_per_s": n / write_s}


def memory(n: int) -> dict:
    """Peak RSS of a child running ``engine.run(keep="summary")`` + ``analysis.summary`` on ``n`` NETTER-1
    patients (both arms), and of a child that only imports the same modules (baseline). Per million patients:
    (peak - baseline) x 1e6 / n."""
    log("memory: baseline child (imports only)")
    base = probes.run_child("baseline")
    log(f"memory: child running {n:,} patients x 2 arms to the summary")
    run = probes.run_child("memory", str(n))
    if "error" in run or "error" in base:
        return {"patients": n, "baseline": base, "run": run, "mb_per_million_patients": None}
    return {"patients": n, "baseline": base, "run": run,
            "mb_per_million_patients": (run["peak_rss_mb"] - base["peak_rss_mb"]) * 1e6 / n}


def machine(load_at_start: tuple[float, ...]) -> dict:
    """Cores, numba threads and versions, and the load average (1, 5, 15 min) at the start and end of the run:
    other work on the machine during the run shows there and lowers the figures, thread scaling first."""
    return {"load_average_start": load_at_start, "load_average_end": os.getloadavg(), "cores": os.cpu_count(),
            "numba_threads": workload.max_threads(), "threading": "nogil compiled loops on a Python thread pool",
            "python": platform.python_version(), "numba": numba.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "platform": platform.platform(), "processor": platform.processor() or None}


# ------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------
def _fmt(x: float | None, unit: str = "", digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:,.{digits}g}{unit}" if abs(x) < 1000 else f"{x:,.0f}{unit}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def table_rows(r: dict) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, met?) for the printed table and the README."""
    rows = []
    threads = r["machine"]["numba_threads"]
    for t in r["throughput"]:
        rows.append((f"patients/s, {t['patients']:,} patients ({t['threads']} threads)",
                     _fmt(t["patients_per_second"]), "", ""))
        rows.append((f"patient-cycles/s, {t['patients']:,} patients", _fmt(t["patient_cycles_per_second"]), "", ""))
    big = max(r["throughput"], key=lambda t: t["patients"])
    if big["patients"] == 1_000_000:
        rows.append(("wall time, 10^6 patients, Lu arm (s)", _fmt(big["wall_s"], digits=3),
                     f"< {TARGETS['wall_1e6_s']:g}", _met(big["wall_s"] < TARGETS["wall_1e6_s"])))
    ref, ivp, sc = r["numpy_reference"], r["solve_ivp"], r["thread_scaling"]
    rows.append((f"speed-up vs NumPy oracle ({threads} threads / per core)",
                 f"{_fmt(r['speedup_vs_numpy'])} / {_fmt(ref['speedup_per_core'])}",
                 f">= {TARGETS['speedup_vs_numpy']:g}", _met(r["speedup_vs_numpy"] >= TARGETS["speedup_vs_numpy"])))
    rows.append((f"speed-up vs solve_ivp per patient ({threads} threads / per core)",
                 f"{_fmt(r['speedup_vs_solve_ivp'])} / {_fmt(ivp['speedup_per_core'])}",
                 f">= {TARGETS['speedup_vs_solve_ivp']:g}",
                 _met(r["speedup_vs_solve_ivp"] >= TARGETS["speedup_vs_solve_ivp"])))
    busy = (sc.get("other_processes_core_share") or 0.0) > BUSY_SHARE
    rows.append((f"thread scaling 1 -> 2 threads ({sc['patients']:,} patients)", _fmt(sc["scaling"], "x"),
                 f">= {TARGETS['thread_scaling']:g}x",
                 "n/a: cores busy" if busy and sc["scaling"] is not None
                 else _met(None if sc["scaling"] is None else sc["scaling"] >= TARGETS["thread_scaling"])))
    if sc["scaling"] is not None:
        rows.append(("  cores used by other processes meanwhile", _fmt(sc.get("other_processes_core_share")), "", ""))
        rows.append(("  cohort-draw share of the 2-thread run; its CPU s per wall s",
                     f"{100 * sc['cohort_draw_share_2_threads']:.0f} %; {_fmt(sc['cpu_per_wall_2_threads'])}", "", ""))
        rows.append((f"  kernel alone, 1 -> 2 threads ({ref['patients']:,} patients)",
                     _fmt(ref["kernel_s_1_thread"] / ref["kernel_s_all_threads"], "x"), "", ""))
    mem = r["memory"]
    if mem["mb_per_million_patients"] is not None:
        peak = mem["run"]["peak_rss_mb"]
        rows.append((f"peak RSS, {mem['patients']:,} patients x 2 arms, keep={mem['run']['keep'].split()[0]} (MB)",
                     _fmt(peak), f"< {TARGETS['peak_rss_mb_1e6']:g}" if mem["patients"] == 1_000_000 else "",
                     _met(peak < TARGETS["peak_rss_mb_1e6"]) if mem["patients"] == 1_000_000 else ""))
        rows.append(("peak RSS above import baseline, MB per 10^6 patients", _fmt(mem["mb_per_million_patients"]),
                     "", ""))
    else:
        rows.append(("peak RSS (MB)", "failed: " + (mem["run"].get("error") or mem["baseline"].get("error")), "",
                     "n/a"))
    rows.append(("JIT compile, cold (import + compile + 100 patients) (s)", _fmt(r["jit_cold_s"]), "", ""))
    rows.append(("warm start (import + cache load + 100 patients) (s)", _fmt(r["jit_warm_s"]),
                 f"< {TARGETS['jit_warm_s']:g}", _met(None if r["jit_warm_s"] is None
                                                     else r["jit_warm_s"] < TARGETS["jit_warm_s"])))
    rows.append(("import sim.engine (s)", _fmt(r["startup"]["warm"].get("import_s")), "", ""))
    h5 = r["hdf5"]
    rows.append((f"HDF5 write, {h5['patients']:,} patients x 2 arms (file MB/s)", _fmt(h5["file_mb_per_s"]), "", ""))
    rows.append(("HDF5 write (patients/s)", _fmt(h5["patients_per_s"]), "", ""))
    ph = r["phases"]
    rows.append((f"phases of a run, {ph['patients']:,} patients x 2 arms (s, share)", _fmt(ph["total_s"]), "", ""))
    for name, seconds in ph["seconds"].items():
        rows.append((f"  {name}", f"{seconds:.3f} ({100 * ph['share'][name]:.0f} %)", "", ""))
    kp = r["kernel_parts"]
    rows.append((f"kernel parts, 177Lu arm, {kp['patients']:,} patients (us per patient / per patient-cycle)",
                 f"{1e6 * kp['seconds']['full model'] / kp['patients']:.1f}", "", ""))
    for name in kp["part_seconds"]:
        per_patient, per_cycle = kp["part_us_per_patient"][name], kp["part_us_per_patient_cycle"][name]
        rows.append((f"  {name}", f"{per_patient:.1f} / {per_cycle:.2f}", "", ""))
    unc = r["uncertainty"]
    rows.append((f"uncertainty run, {unc['patients_per_arm']:,} patients per arm x 2 arms (draws per minute)",
                 _fmt(unc["draws_per_minute"]), "", ""))
    rel = r.get("against_release")
    if rel is not None:
        if "error" in rel:
            rows.append((f"rptsim run, vs {rel['release']}", f"n/a: {' '.join(rel['error'])}", "", ""))
        else:
            now, old = rel["best_s"]["now"], rel["best_s"][rel["release"]]
            label = f"rptsim run netter1 --patients {rel['patients']:,} --keep summary, now / at {rel['release']} (s)"
            rows.append((label,
                         f"{now:.1f} / {old:.1f} = {now / old:.2f}", "<= 0.33", _met(now / old <= 1 / 3)))
    return rows


def format_table(rows: list[tuple[str, str, str, str]], markdown: bool = False) -> str:
    head = ("figure", "value", "target", "met?")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), *(fmt.format(*row) for row in rows)])


def notes_lines(r: dict) -> list[str]:
    """Agreement of the baselines with the kernel, and the machine's load: printed under the table."""
    m = r["machine"]
    out = [f"machine: {m['cores']} cores, {m['numba_threads']} threads ({m['threading']}), load average "
           f"{m['load_average_start'][0]:.2f} at the start, {m['load_average_end'][0]:.2f} at the end; numba "
           f"{m['numba']}, numpy {m['numpy']}, scipy {m['scipy']}, Python {m['python']}"]
    for name, key in (("NumPy oracle", "numpy_reference"), ("solve_ivp style", "solve_ivp")):
        a = r[key]["agreement"]
        out.append(f"{name} vs kernel on the same {r[key]['patients']:,} patients: "
                   f"{a['patients_with_different_discrete_outcomes']} with different discrete outcomes, "
                   f"max rel. diff PFS {a['max_rel_diff_pfs_days']:.1e}, any per-patient output "
                   f"{a['max_rel_diff_any_patient_output']:.1e}, "
                   f"platelet nadirs {a['max_rel_diff_platelet_nadir']:.1e} "
                   f"(median {a['median_rel_diff_platelet_nadir']:.1e})")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke test of the harness")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    opts = parser.parse_args(argv)
    plan = QUICK if opts.quick else FULL
    started = time.perf_counter()
    load = os.getloadavg()
    if load[0] > 0.5:
        print(f"warning: load average {load[0]:.2f} before the start: other work will lower the figures", flush=True)
    print(f"rptsim benchmark: NETTER-1, {workload.max_threads()} numba threads, {os.cpu_count()} cores", flush=True)

    r: dict = {"startup": startup()}
    log("warm-up: compile or load the kernel in this process")
    engine.run(workload.netter1(100, arms=None))
    r["throughput"] = throughput(plan["sizes"], workload.max_threads())
    r["thread_scaling"] = thread_scaling(plan["scaling_n"])
    r["numpy_reference"], inp, kernel_out = kernel_vs_oracle(plan["compare_n"])
    r["solve_ivp"] = kernel_vs_solve_ivp(plan["solve_ivp_n"], inp, kernel_out, r["numpy_reference"])
    del inp, kernel_out
    r["hdf5"] = hdf5_write(plan["hdf5_n"])
    r["memory"] = memory(plan["memory_n"])
    log(f"phases of a run: {plan['phases_n']:,} patients, both arms; kernel parts: {plan['parts_n']:,} patients")
    r["phases"] = phases.phases(plan["phases_n"])
    r["kernel_parts"] = phases.kernel_parts(plan["parts_n"])
    log("uncertainty run: {} draws of {:,} patients per arm".format(*plan["uncertainty"]))
    r["uncertainty"] = phases.uncertainty_draws(*plan["uncertainty"])
    if plan["release_n"]:
        log(f"rptsim run netter1 --patients {plan['release_n']:,} --keep summary, here and at {phases.RELEASE}")
        r["against_release"] = phases.against_release(plan["release_n"])
    r["machine"] = machine(load)

    big = max(r["throughput"], key=lambda t: t["patients"])
    result = {
        "patients_per_second": big["patients_per_second"],
        "speedup_vs_numpy": r["numpy_reference"]["speedup_all_threads"],
        "speedup_vs_solve_ivp": r["solve_ivp"]["speedup_all_threads"],
        "thread_scaling": r["thread_scaling"]["scaling"],
        "peak_rss_mb_per_million_patients": r["memory"]["mb_per_million_patients"],
        "jit_cold_s": r["startup"]["cold"].get("total_s"),
        "jit_warm_s": r["startup"]["warm"].get("total_s"),
        "scenario": "NETTER-1 (configs/netter1.toml), arm lu177_dotatate unless stated",
        "quick": opts.quick,
        "targets": TARGETS,
        **r,
        "bench_wall_s": time.perf_counter() - started,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rows = table_rows(result)
    result["table_markdown"] = format_table(rows, markdown=True) + "\n\n" + "\n".join(
        f"* {line}" for line in notes_lines(result))
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(format_table(rows))
    print()
    print("\n".join(notes_lines(result)))
    print(f"\nwrote {opts.output} ({result['bench_wall_s']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
