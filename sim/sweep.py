"""Run a sweep (``sim.sweep_config``): scenarios in parallel on Dask (or serially), one writer, resumable.

The driver is the only process that writes. Each finished scenario is written atomically to
``OUT.h5.parts/<id>.h5``; when every scenario has its part, the driver assembles ``OUT.h5`` (atomically, in the
order of the sweep definition, so the file depends neither on completion order nor on worker count) and
removes the parts folder. A killed sweep leaves complete parts and no ``OUT.h5`` (or the previous one);
``resume=True`` keeps the parts whose id and config match and runs only the missing scenarios.

Workers run :func:`run_scenario`: ``engine.run`` in patient chunks, reduced per chunk (``keep``), and return the
summary (and, with ``keep = "patients"``, the patient-level Dataset). Dask is imported only here, and only when a
cluster is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sim import __version__, analysis, config, engine, outcomes
from sim._numba_cache import source_hash
from sim.config import ConfigError
from sim.sweep_config import Scenario, Sweep

SCHEMA = "rptsim-sweep"
SCHEMA_VERSION = 1
PART_SCHEMA = "rptsim-sweep-part"
WARM_PATIENTS = 20

# One simulation at a time per process: numba's default threading layer must not be entered from two threads,
# and a Dask worker started with several threads would otherwise do that.
_SIMULATION_LOCK = threading.Lock()


def parts_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".parts")


def part_path(out: str | Path, scenario_id: str) -> Path:
    return parts_dir(out) / f"{scenario_id}.h5"


# --------------------------------------------------------------------------------------------------
# Worker side


def run_scenario(config_json: str, keep: str, chunk_size: int | None = None) -> tuple[dict, xr.Dataset | None]:
    """Simulate one scenario; return its summary and, with ``keep = "patients"``, its patient-level Dataset."""
    cfg = config.validate(json.loads(config_json), "scenario")
    with _SIMULATION_LOCK:
        ds = engine.run(cfg, chunk_size or engine.DEFAULT_CHUNK, keep=keep)
    summary = analysis.summary(ds)
    if keep != "patients":
        return summary, None
    ds.attrs = {}
    return summary, ds


# --------------------------------------------------------------------------------------------------
# Parts


def _part_attrs(sweep: Sweep, scenario: Scenario, summary: dict) -> dict:
    return {"schema": PART_SCHEMA, "schema_version": SCHEMA_VERSION, "scenario_id": scenario.id,
            "config_json": scenario.config_json, "keep": sweep.spec.keep,
            "summary_json": json.dumps(summary, sort_keys=True, allow_nan=False),
            "rptsim_version": __version__, "kernel_source_hash": source_hash()}


def write_part(out: Path, sweep: Sweep, scenario: Scenario, summary: dict, patients: xr.Dataset | None) -> None:
    ds = patients if patients is not None else xr.Dataset(coords={"arm": sweep.arms})
    ds = ds.assign_attrs(_part_attrs(sweep, scenario, summary))
    outcomes.write(ds, part_path(out, scenario.id), seal=_seal)


def _content_digest(fh) -> str:  # noqa: ANN001 - an open h5py.File
    """SHA-256 of a part's content as HDF5 stores it: its summary and config attributes and every array's values."""
    import h5py

    h = hashlib.sha256()
    for key in ("scenario_id", "config_json", "summary_json"):
        h.update(f"{key}={fh.attrs.get(key)!r};".encode())

    def visit(name: str, obj) -> None:  # noqa: ANN001 - an h5py object
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            values = np.asarray(obj[()])
            h.update(f"{name}:{values.dtype}:{values.shape}:".encode())
            h.update(repr(values.tolist()).encode() if values.dtype.kind == "O" else values.tobytes())

    fh.visititems(visit)
    return h.hexdigest()


def _seal(tmp: str) -> None:
    """Record the part's content digest in the written (temporary) part, before its rename."""
    import h5py

    with h5py.File(tmp, "r+") as fh:
        fh.attrs["content_sha256"] = _content_digest(fh)


def _valid_part(path: Path, sweep: Sweep, scenario: Scenario) -> bool:
    """A part is reused only if it is intact (its content digest matches) and belongs to this scenario's config,
    keep level and simulator version; a damaged or edited part is run again."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in fh.attrs.items()}
            return (a.get("schema") == PART_SCHEMA and a.get("scenario_id") == scenario.id
                    and a.get("config_json") == scenario.config_json and a.get("keep") == sweep.spec.keep
                    and a.get("rptsim_version") == __version__ and a.get("kernel_source_hash") == source_hash()
                    and a.get("content_sha256") == _content_digest(fh))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):  # h5py's ways of saying "damaged"
        return False


def completed(out: Path, sweep: Sweep) -> set[str]:
    """Ids of the scenarios whose valid part is in the parts folder."""
    folder = parts_dir(out)
    if not folder.is_dir():
        return set()
    return {s.id for s in sweep.scenarios if part_path(out, s.id).is_file()
            and _valid_part(part_path(out, s.id), sweep, s)}


# --------------------------------------------------------------------------------------------------
# Assembly


def _flat_arm_stats(summary: dict, arm: str) -> dict[str, Any]:
    """The arm's summary entries and its paired comparison with the reference arm (absent for the reference), with
    the comparison's nested entries flattened: ``toxicity_rate_differences`` to ``<rate>_difference[_ci]`` and
    ``individual`` to ``individual_<endpoint>_<statistic>`` (the per-covariate breakdown stays in the summary), and
    the arm's ``best_response_rates`` to ``best_response_<key>_rate``."""
    stats = dict(summary["arms"][arm])
    stats |= {f"best_response_{k}_rate": v for k, v in stats.pop("best_response_rates", {}).items()}
    for key, comp in summary["comparisons"].items():
        if key.startswith(f"{arm} vs "):
            for name, value in comp.items():
                if name == "toxicity_rate_differences":
                    stats |= {(f"{k.removesuffix('_ci')}_difference_ci" if k.endswith("_ci") else f"{k}_difference"): v
                              for k, v in value.items()}
                elif name == "individual":
                    for endpoint, entry in value.items():
                        if isinstance(entry, dict):
                            stats |= {f"individual_{endpoint}_{k}": v for k, v in entry.items()
                                      if k != "benefit_by_covariate"}
                        else:
                            stats[f"individual_{endpoint}"] = entry
                else:
                    stats[name] = value
    return stats


_UNITS = (("_pfs_difference_ci", "month"), ("_os_difference_ci", "month"), ("_months", "month"),
          ("_gbq", "GBq"), ("_gbq_median", "GBq"), ("_gy_median", "Gy"), ("_gy_cv", "1"),
          ("_rate", "1"), ("_hr", "1"), ("_hr_ci", "1"), ("_p", "1"), ("hours_mean", "hour"), ("_mean", "1"))


def _units(key: str) -> str:
    for suffix, unit in _UNITS:
        if key.endswith(suffix) or key.endswith(suffix + "_mean") or key.endswith(suffix + "_ci"):
            return unit
    return "1"


_WORDS = {"pfs": "PFS", "os": "OS", "hr": "hazard ratio", "ci": "95 % CI", "rmst": "RMST", "gy": "Gy", "gbq": "GBq",
          "bed": "BED", "egfr": "eGFR", "cv": "CV", "mds": "MDS", "aml": "AML", "grade3plus": "grade >= 3",
          "pct": "%", "4y": "at 4 years", "or": "odds ratio", "50gy": "50 Gy"}


def _long_name(key: str, compared: bool) -> str:
    """A readable ``long_name`` for the statistic ``key`` (``pfs_hr_robust_ci``: "PFS hazard ratio robust 95 % CI");
    ``compared``: an effect of the arm against the reference arm (NaN for the reference arm itself)."""
    name = " ".join(_WORDS.get(w, w) for w in key.split("_")).replace("MDS AML", "MDS/AML")
    return f"{name}, arm vs reference arm (NaN for the reference arm)" if compared else name


def statistics(summaries: list[dict], arms: list[str]) -> xr.Dataset:
    """Per-scenario, per-arm summary statistics as variables (scenario, arm[, bound | landmark_month]).

    Numbers become float64 (missing: NaN; counts int64), 2-element CIs get a ``bound`` dimension (low, high),
    landmark dicts a ``landmark_month`` dimension; the arm's comparison with the reference arm (HRs, CIs, p) is
    merged in (NaN for the reference arm itself). Keys are ordered by first appearance in scenario order.
    """
    per = [[_flat_arm_stats(s, arm) for arm in arms] for s in summaries]
    own = {k for s in summaries for arm in arms for k in _flat_arm_stats({**s, "comparisons": {}}, arm)}
    keys: dict[str, None] = {}
    months: set[int] = set()
    for row in per:
        for stats in row:
            for k, v in stats.items():
                keys.setdefault(k)
                if isinstance(v, dict):
                    months.update(int(m) for m in v)
    month_list = sorted(months)
    n_s, n_a = len(summaries), len(arms)
    data: dict[str, tuple] = {}
    for key in keys:
        values = [stats.get(key) for row in per for stats in row]
        present = [v for v in values if v is not None]
        if key == "label":
            continue
        long_name = _long_name(key, key not in own)
        if present and all(isinstance(v, str) for v in present):
            arr = np.array([v if isinstance(v, str) else "" for v in values], dtype=object).reshape(n_s, n_a)
            data[key] = (("scenario", "arm"), arr, {"long_name": long_name})
        elif present and all(isinstance(v, dict) for v in present):
            bounds = any(isinstance(x, list) for v in present for x in v.values())  # landmark CIs
            arr = np.full((n_s * n_a, len(month_list), *((2,) if bounds else ())), np.nan)
            for i, v in enumerate(values):
                for m, x in (v or {}).items():
                    arr[i, month_list.index(int(m))] = [np.nan if b is None else b for b in x] if bounds else \
                        (np.nan if x is None else x)
            dims = ("scenario", "arm", "landmark_month", *(("bound",) if bounds else ()))
            data[key] = (dims, arr.reshape(n_s, n_a, *arr.shape[1:]), {"units": "1", "long_name": long_name})
        elif present and all(isinstance(v, list) for v in present):
            arr = np.array([[np.nan if x is None else x for x in (v or [None, None])] for v in values],
                           dtype=np.float64).reshape(n_s, n_a, 2)
            data[key] = (("scenario", "arm", "bound"), arr, {"units": _units(key), "long_name": long_name})
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present) \
                and len(present) == len(values):
            data[key] = (("scenario", "arm"), np.array(values, dtype=np.int64).reshape(n_s, n_a),
                         {"units": "1", "long_name": long_name})
        else:
            arr = np.array([np.nan if v is None else float(v) for v in values]).reshape(n_s, n_a)
            data[key] = (("scenario", "arm"), arr, {"units": _units(key), "long_name": long_name})
    coords = {"bound": ("bound", ["low", "high"], {"long_name": "bound of the 95 % CI"}),
              "landmark_month": ("landmark_month", np.array(month_list, dtype=np.int64),
                                 {"units": "month", "long_name": "landmark time"})}
    return xr.Dataset(data, coords={k: v for k, v in coords.items() if any(k in d[0] for d in data.values())})


def _coordinate(values: list[Any]) -> np.ndarray:
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int8)  # HDF5 has no bool: 0/1
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    if all(isinstance(v, int) for v in values):
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


def _axes_attr(sweep: Sweep) -> str:
    return json.dumps([{"label": a.label, "kind": a.kind, "coords": a.coords, "paths": a.paths,
                        "base_values": a.base_values} for a in sweep.axes])


def assemble(out: Path, sweep: Sweep) -> xr.Dataset:
    """The sweep's Dataset from its parts, in the order of the sweep definition.

    With ``keep = "patients"`` the patient-level variables are opened lazily (dask), so writing the file streams
    them part by part.
    """
    scenarios = sweep.scenarios
    parts = [xr.open_dataset(part_path(out, s.id), engine="h5netcdf",
                             chunks={} if sweep.spec.keep == "patients" else None) for s in scenarios]
    summaries = [json.loads(p.attrs["summary_json"]) for p in parts]
    ds = statistics(summaries, sweep.arms)
    if sweep.spec.keep == "patients":
        # the parts' variables keep their units and long_name; the file's attributes are set below
        patients = xr.concat([p.drop_attrs(deep=False) for p in parts], dim="scenario", data_vars="all",
                             coords="minimal", compat="override", join="exact", combine_attrs="override")
        ds = xr.merge([patients, ds], join="exact", combine_attrs="override")
    else:
        for p in parts:
            p.close()
    coords: dict[str, Any] = {
        "scenario": ("scenario", np.array([s.id for s in scenarios], dtype=object),
                     {"long_name": "scenario id: SHA-256 of the resolved config JSON (first 12 hex digits)"}),
        "arm": ("arm", sweep.arms, {"long_name": "trial arm"}),
        "arm_label": ("arm", [sweep.base_config.arm(a).label or a for a in sweep.arms], {"long_name": "arm label"}),
        "replicate": ("scenario", np.array([s.replicate for s in scenarios], dtype=np.int64),
                      {"long_name": "replicate of the scenario's point (0: the base trial.seed)"}),
        "seed": ("scenario", np.array([s.seed for s in scenarios], dtype=np.int64), {"long_name": "trial.seed"}),
    }
    for info in sweep.axes:
        for coord, path in zip(info.coords, info.paths, strict=True):
            coords[coord] = ("scenario", _coordinate([s.values[coord] for s in scenarios]),
                             {"long_name": f"swept config path {path}", "config_path": path, "axis": info.label})
    ds = ds.assign_coords(coords)
    ds["config_json"] = ("scenario", np.array([s.config_json for s in scenarios], dtype=object),
                         {"long_name": "resolved scenario config (JSON)"})
    ds["n_patients"] = ("scenario", np.array([s.config.trial.patients for s in scenarios], dtype=np.int64),
                        {"units": "1", "long_name": "patients per arm"})
    ds["reference_arm"] = ("scenario", np.array([s.config.reference_arm() for s in scenarios], dtype=object),
                           {"long_name": "the arm the comparisons are made against"})
    created = outcomes.now_utc()
    ds.attrs = {
        **outcomes.cf_attributes(f"rptsim {sweep.spec.kind} {sweep.name}: {len(scenarios)} scenarios of "
                                 f"{sweep.base_config.trial.name}", created),
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "sweep_name": sweep.name,
        "sweep_json": sweep.definition_json(),
        "base_config_json": sweep.base_config.to_json(),
        "axes_json": _axes_attr(sweep),
        "swept_coords": [c for a in sweep.axes for c in a.coords] or [""],
        "keep": sweep.spec.keep,
        "sweep_kind": sweep.spec.kind,
        **sweep.spec.metadata,
        "n_scenarios": len(scenarios),
        "replicates": sweep.spec.replicates,
        "rptsim_version": __version__,
        "git_commit": outcomes.git_commit(),
        "created_utc": created,
    }
    return ds


def _encoding(ds: xr.Dataset) -> dict:
    enc = {}
    for name, var in ds.data_vars.items():
        if "patient" in var.dims and var.dtype != object:
            chunks = tuple(min(s, 65536) if d == "patient" else 1 for d, s in var.sizes.items())
            enc[name] = {"zlib": True, "complevel": 1, "shuffle": True, "chunksizes": chunks}
    return enc


def write_output(out: Path, sweep: Sweep) -> None:
    """Assemble the parts into ``out`` (atomically), then remove the parts folder."""
    import dask

    ds = assemble(out, sweep)
    try:
        with dask.config.set(scheduler="synchronous"):  # this process writes, part by part, never a cluster
            outcomes.write_atomic(out, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", encoding=_encoding(ds)))
    finally:
        ds.close()
    shutil.rmtree(parts_dir(out), ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Reading


class NotASweepError(ValueError):
    """The file is not an rptsim sweep file, or is of another schema version."""


def is_sweep_file(path: str | Path) -> bool:
    try:
        import h5py

        with h5py.File(path, "r") as fh:
            schema = fh.attrs.get("schema")
    except (OSError, ValueError, KeyError, RuntimeError):  # not HDF5, or a damaged one (the reader then says so)
        return False
    schema = schema.decode() if isinstance(schema, bytes) else schema
    return schema == SCHEMA


def read(path: str | Path) -> xr.Dataset:
    """Open a sweep file, checking its schema and version."""
    return outcomes.open_checked(path, SCHEMA, SCHEMA_VERSION, "sweep", NotASweepError)


def same_results(a: xr.Dataset, b: xr.Dataset, ignore_attrs: tuple[str, ...] = ("created_utc", "history")) -> bool:
    """Whether two sweep files hold the same data, coordinates and attributes (except ``ignore_attrs``)."""
    strip = lambda d: d.assign_attrs({k: "" for k in ignore_attrs if k in d.attrs})  # noqa: E731
    return strip(a).identical(strip(b))


# --------------------------------------------------------------------------------------------------
# Execution


IN_PROCESS_CORES = 2  # at most this many cores, a sweep runs in-process by default: 9.1 s against 11.4 s with two
# Dask workers for configs/sweeps/kidney_target.toml at 500 patients on a 2-core machine


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def warm_numba_cache(scenario: Scenario) -> None:
    """Compile (or load) the kernels once in this process, so that workers load them from numba's disk cache
    instead of all compiling at the same time."""
    cfg = scenario.config.model_copy(update={"trial": scenario.config.trial.model_copy(
        update={"patients": min(WARM_PATIENTS, scenario.config.trial.patients)})})
    engine.run(cfg, keep="summary")


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def jobqueue_cluster(sweep: Sweep, kind: str):  # noqa: ANN201 - a dask_jobqueue JobQueueCluster
    """The SLURM or PBS cluster of the sweep's ``[cluster]`` section (nothing is submitted until ``scale``)."""
    spec = sweep.spec.cluster
    if spec is None:
        raise ConfigError(f"{sweep.path}: --cluster {kind} needs a [cluster] section (queue, cores, memory, "
                          "walltime, jobs)")
    import dask_jobqueue

    threads = max(1, spec.cores // spec.processes)
    kwargs: dict[str, Any] = {
        "cores": spec.cores, "processes": spec.processes, "memory": spec.memory, "walltime": spec.walltime,
        "queue": spec.queue, "account": spec.account, "interface": spec.interface,
        "python": spec.python or sys.executable, "log_directory": spec.log_directory,
        "local_directory": spec.local_directory, "job_extra_directives": list(spec.job_extra_directives),
        "job_script_prologue": [*spec.job_script_prologue, f"export NUMBA_NUM_THREADS={threads}"],
        "scheduler_options": {"dashboard_address": None},
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None} | dict(getattr(spec, kind))
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{sweep.path}: [cluster] for {kind}: {exc}") from None


def job_script(sweep: Sweep, kind: str) -> str:
    """The batch script each job of ``--cluster kind`` would run (nothing is submitted)."""
    cluster = jobqueue_cluster(sweep, kind)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


@contextlib.contextmanager
def _client(sweep: Sweep, workers: int, scheduler: str | None, cluster_kind: str | None) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler)
        except (OSError, ValueError, TypeError) as exc:  # unreachable, or not an address
            raise ConfigError(f"--scheduler {scheduler}: cannot connect ({' '.join(str(exc).split())})") from None
        with client:
            yield client
    elif cluster_kind is not None:
        with jobqueue_cluster(sweep, cluster_kind) as cluster:
            cluster.scale(jobs=sweep.spec.cluster.jobs)
            with Client(cluster) as client:
                yield client
    else:
        threads = max(1, available_cores() // workers)
        env = {"NUMBA_NUM_THREADS": str(threads)}
        with _env(env), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=None, env=env) as cluster, Client(cluster) as client:
            yield client


ProgressFn = Callable[[int, int], None]


def run(sweep: Sweep, out: str | Path, *, workers: int | None = None, scheduler: str | None = None,
        cluster: str | None = None, resume: bool = False, progress: ProgressFn | None = None,
        on_part: Callable[[Scenario], None] | None = None) -> dict:
    """Run the sweep's missing scenarios and write ``out``; returns counts (``scenarios``, ``reused``, ``run``,
    ``discarded``: parts in the folder that belong to no scenario of this sweep as it is now).

    ``workers = 0`` runs the scenarios one after another in this process; otherwise a local Dask cluster of
    ``workers`` processes (default: one per core, at most one per scenario; on ``IN_PROCESS_CORES`` cores or
    fewer, in this process, where numba's threads use the cores without Dask's start-up), or the Dask scheduler at
    ``scheduler``, or a SLURM/PBS cluster (``cluster``). ``progress(done, total)`` follows finished scenarios;
    ``on_part(scenario)`` is called after each part is written (tests use it to interrupt a sweep).
    """
    out = Path(out)
    folder = parts_dir(out)
    if folder.exists() and not resume:
        raise ConfigError(f"{folder}: parts of an unfinished sweep are there; add --resume to complete it, or remove "
                          "the folder to start again")
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers = {workers}: must be >= 0")
    if workers is None and scheduler is None and cluster is None and available_cores() <= IN_PROCESS_CORES:
        workers = 0
    done = completed(out, sweep) if resume else set()
    stale = sorted(folder.glob("*.h5")) if folder.is_dir() else []
    discarded = sum(1 for p in stale if p.stem not in done)  # other scenarios, versions or keep levels
    todo = [s for s in sweep.scenarios if s.id not in done]
    total = len(sweep.scenarios)
    finished = total - len(todo)
    if progress is not None:
        progress(finished, total)
    if todo:
        keep, chunk = sweep.spec.keep, sweep.spec.chunk_size

        def _finish(scenario: Scenario, summary: dict, patients: xr.Dataset | None) -> None:
            nonlocal finished
            write_part(out, sweep, scenario, summary, patients)
            finished += 1
            if progress is not None:
                progress(finished, total)
            if on_part is not None:
                on_part(scenario)

        if workers == 0:
            folder.mkdir(parents=True, exist_ok=True)
            for s in todo:
                _finish(s, *run_scenario(s.config_json, keep, chunk))
        else:
            from distributed import as_completed

            n_workers = workers or max(1, min(available_cores(), len(todo)))
            warm_numba_cache(todo[0])
            by_key = {f"scenario-{s.id}": s for s in todo}
            with _client(sweep, n_workers, scheduler, cluster) as client:
                folder.mkdir(parents=True, exist_ok=True)  # once connected: a failed start leaves no folder
                futures = client.map(run_scenario, [s.config_json for s in todo], keep=keep, chunk_size=chunk,
                                     key=list(by_key), pure=False)
                for future in as_completed(futures):
                    summary, patients = future.result()
                    _finish(by_key[future.key], summary, patients)
                    future.release()
    write_output(out, sweep)
    return {"scenarios": total, "reused": total - len(todo), "run": len(todo), "discarded": discarded}

