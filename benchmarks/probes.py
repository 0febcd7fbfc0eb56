"""Measurements that need a fresh process: JIT compile / cache load time and peak memory.

``run.py`` starts this file as a child (``python benchmarks/probes.py MODE [ARGS]``); the child prints one JSON
line. Nothing from ``sim`` is imported at module level, so the child's own clock sees the import.

Modes:
* ``startup``: time ``import sim`` (engine and config) and the first call of a tiny simulation (100 NETTER-1
  patients, both arms). With an empty ``NUMBA_CACHE_DIR`` the first call compiles the kernel (cold); with a
  populated one it loads the machine code from the cache (warm).
* ``baseline``: peak RSS after importing everything the memory run imports (the floor of any run).
* ``memory N``: peak RSS of a ``rptsim run``-like pipeline on N NETTER-1 patients (both arms):
  ``engine.run(cfg, keep="summary")`` (which returns the outcome Dataset), then ``analysis.summary``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _peak_rss_mb() -> float:
    """This process's peak resident set size in MB (MiB): ``VmHWM`` of ``/proc/self/status``.

    Not ``getrusage``: on Linux a child's ``ru_maxrss`` (and the parent's ``RUSAGE_CHILDREN``) starts at the
    *parent's* peak when the child is forked and exec'd, so a child of a big benchmark process would report the
    parent's memory. ``VmHWM`` belongs to the child's own address space. ``ru_maxrss`` only where there is no /proc.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def startup() -> dict:
    t0 = time.perf_counter()
    import workload

    from sim import engine  # the import is what is timed

    t1 = time.perf_counter()
    engine.run(workload.netter1(100, arms=None))
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "first_call_s": t2 - t1, "total_s": t2 - t0}


def baseline() -> dict:
    import workload  # noqa: F401

    from sim import analysis, engine  # noqa: F401

    return {"peak_rss_mb": _peak_rss_mb()}


def memory(patients: int) -> dict:
    import workload

    from sim import analysis, engine

    t0 = time.perf_counter()
    cfg = workload.netter1(patients, arms=None)
    ds = engine.run(cfg, keep="summary")
    t1 = time.perf_counter()
    after_run = _peak_rss_mb()
    summary = analysis.summary(ds)
    t2 = time.perf_counter()
    return {"patients": patients, "arms": len(cfg.arms), "keep": ds.attrs["keep"],
            "run_s": t1 - t0, "summary_s": t2 - t1, "peak_rss_mb": _peak_rss_mb(),
            "peak_rss_after_run_mb": after_run,
            "median_pfs_months": {arm: s["median_pfs_months"] for arm, s in summary["arms"].items()}}


def run_child(mode: str, *args: str, env: dict[str, str] | None = None, timeout_s: float = 600) -> dict:
    """Run this file as a child process and return its JSON (``{"error": ...}`` if it failed)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), mode, *args], capture_output=True,
                          text=True, timeout=timeout_s, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"{mode} exited with status {proc.returncode}: {tail[0]}", "wall_s": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall  # includes interpreter start-up
    return out


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "startup":
        out = startup()
    elif mode == "baseline":
        out = baseline()
    elif mode == "memory":
        out = memory(int(args[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
