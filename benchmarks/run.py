"""Throughput of the numba kernel on the default NETTER-1 arms (``make bench``).

Prints a table and writes ``benchmarks/results/latest.json``. Figures, not assertions: the machines are
noisy, so each size is timed several times and the best run is reported.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numba

from sim import config, engine

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10_000, 100_000, 1_000_000)
REPEATS = 3


def best_time(cfg: config.Config) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        engine.run(cfg)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    base = ROOT / "configs" / "netter1.toml"
    t0 = time.perf_counter()
    engine.run(config.load(base, {"trial.patients": 10}))
    first_call_s = time.perf_counter() - t0
    rows = []
    for n in SIZES:
        cfg = config.load(base, {"trial.patients": n})
        wall = best_time(cfg)
        arms = len(cfg.arms)
        rows.append({"patients": n, "arms": arms, "wall_s": round(wall, 3),
                     "patient_arms_per_second": round(n * arms / wall)})
    result = {"scenario": "NETTER-1", "threads": numba.get_num_threads(), "first_call_s": round(first_call_s, 2),
              "runs": rows, "note": "wall time of engine.run: cohort draw + kernel for every arm, no file output"}
    out = ROOT / "benchmarks" / "results" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"first call (import + compile or cache load): {first_call_s:.2f} s, threads: {result['threads']}")
    print(f"{'patients':>10} {'wall (s)':>9} {'patient-arms/s':>15}")
    for r in rows:
        print(f"{r['patients']:>10,} {r['wall_s']:>9.3f} {r['patient_arms_per_second']:>15,}")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
