"""Sweep files (``configs/sweeps/*.toml``): a base scenario, axes over dotted config paths, samples, replicates.

A sweep expands into scenarios, each a complete, validated :class:`sim.config.Config`:

* ``[[axes]]`` are crossed (grid product), in the order of the file, the first varying slowest. An axis sets one
  path (``path`` + ``values``, or ``factors`` that multiply the base value) or several paths together (a zipped
  axis: ``paths`` + ``values`` given as one list per point).
* ``[samples]`` adds ``n`` points drawn at random or by Latin hypercube (McKay, Beckman & Conover, Technometrics
  1979;21:239) over ranges, from its own seed; the samples are crossed with the axes.
* ``replicates = R`` runs every point R times; replicate 0 keeps ``trial.seed``, replicate r > 0 gets a seed
  derived from (``trial.seed``, r) by SHA-256, so replicates are independent and reproducible.

Each scenario's id is a short hash of its resolved config JSON, so the same config always gets the same id
and any change to it gives another. Paths address arms by name (``arms.iluminet.kidney_bed_limit_gy``), as
``rptsim run`` overrides do.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from sim import config, files
from sim.config import Config, ConfigError, PositiveFloat, Strict

ID_LENGTH = 12
MAX_SCENARIOS = 1_000_000
# Names the sweep file uses for its own dimensions and variables; coordinates of swept parameters must differ.
RESERVED_NAMES = frozenset({"scenario", "arm", "arm_label", "replicate", "seed", "patient", "bound",
                            "landmark_month", "config_json", "n_patients", "reference_arm"})

def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


class Axis(Strict):
    """One dimension of the grid: a single path, or several paths that vary together (zipped)."""

    path: str | None = Field(None, description="Dotted config path (arms by name).")
    paths: list[str] | None = Field(None, min_length=2, description="Zipped: paths that vary together.")
    values: list[Any] | None = Field(None, min_length=1, description="The points: one value per point, or for a "
                                     "zipped axis one list (one value per path) per point.")
    factors: list[PositiveFloat] | None = Field(None, min_length=1,
                                                description="Multipliers of the base config's value.")
    name: str | None = Field(None, description="Coordinate name (default: the path).")
    names: list[str] | None = Field(None, description="Zipped axis: one coordinate name per path.")

    @model_validator(mode="after")
    def _consistent(self) -> Axis:
        if (self.path is None) == (self.paths is None):
            raise ValueError("give either path or paths (zipped axis)")
        if (self.values is None) == (self.factors is None):
            raise ValueError("give either values or factors")
        if self.paths is not None:
            if self.factors is not None:
                raise ValueError("factors need a single path; a zipped axis lists its values")
            if self.name is not None:
                raise ValueError("a zipped axis names its coordinates with names = [...], one per path")
            if self.names is not None and len(self.names) != len(self.paths):
                raise ValueError(f"names lists {len(self.names)} names for {len(self.paths)} paths")
            for k, point in enumerate(self.values):
                if not isinstance(point, list) or len(point) != len(self.paths):
                    raise ValueError(f"values[{k}] = {point!r}: a zipped axis needs one list of {len(self.paths)} "
                                     "values per point")
            columns = list(zip(*self.values, strict=True))
        else:
            if self.names is not None:
                raise ValueError("names is for zipped axes; use name")
            columns = [self.values] if self.values is not None else []
        for col in columns:
            kinds = {_kind(v) for v in col}
            if "other" in kinds:
                raise ValueError("values must be numbers, strings or booleans (not tables or lists)")
            if len(kinds) > 1:
                raise ValueError(f"values of one path must be of one kind, got {sorted(kinds)}")
        return self

    def all_paths(self) -> list[str]:
        return list(self.paths) if self.paths is not None else [self.path]

    def coord_names(self) -> list[str]:
        if self.paths is not None:
            return list(self.names) if self.names is not None else list(self.paths)
        return [self.name or self.path]

    def label(self) -> str:
        return self.name or (self.names[0] if self.names else None) or self.all_paths()[0]


class SampleParam(Strict):
    path: str
    low: float
    high: float
    scale: Literal["linear", "log"] = "linear"
    integer: bool = Field(False, description="Round to the nearest integer (e.g. a number of cycles).")
    name: str | None = None

    @model_validator(mode="after")
    def _range(self) -> SampleParam:
        if not self.low < self.high:
            raise ValueError(f"low = {self.low} must be < high = {self.high}")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"scale = 'log' needs low > 0, got {self.low}")
        return self


class Samples(Strict):
    """``n`` points over ranges: ``lhs`` (one point per stratum of each range) or ``random`` (independent)."""

    method: Literal["lhs", "random"] = "lhs"
    n: int = Field(ge=1, le=MAX_SCENARIOS)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    params: list[SampleParam] = Field(min_length=1)


class ClusterSpec(Strict):
    """A batch-system cluster (``rptsim sweep --cluster slurm|pbs``), built with dask-jobqueue.

    Each job runs ``processes`` Dask worker processes on ``cores`` cores; every worker simulates one scenario at a
    time with ``cores // processes`` numba threads. ``[cluster.slurm]`` / ``[cluster.pbs]`` pass further keyword
    arguments to ``SLURMCluster`` / ``PBSCluster`` (see the dask-jobqueue documentation).
    """

    jobs: int = Field(1, ge=1, le=10_000, description="Batch jobs to submit.")
    queue: str | None = Field(None, description="Partition (SLURM) or queue (PBS).")
    account: str | None = None
    cores: int = Field(ge=1, le=4096, description="Cores per job.")
    processes: int = Field(1, ge=1, le=4096, description="Worker processes per job.")
    memory: str = Field(min_length=1, description="Memory per job, e.g. '32GB'.")
    walltime: str = Field("01:00:00", description="Job time limit, HH:MM:SS.")
    interface: str | None = Field(None, description="Network interface of workers and scheduler, e.g. 'ib0'.")
    python: str | None = Field(None, description="Python of the workers (default: the one running rptsim).")
    job_script_prologue: list[str] = Field(default_factory=list, description="Shell lines before the worker "
                                           "starts (module load, activate the environment).")
    job_extra_directives: list[str] = Field(default_factory=list, description="Extra #SBATCH / #PBS options.")
    log_directory: str | None = None
    local_directory: str | None = None
    slurm: dict[str, Any] = Field(default_factory=dict)
    pbs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _divisible(self) -> ClusterSpec:
        if self.processes > self.cores:
            raise ValueError(f"processes = {self.processes} must be <= cores = {self.cores}")
        return self


class SweepFile(Strict):
    """The sweep file as written."""

    name: str | None = Field(None, pattern=r"^[^/\\.][^/\\]*$", max_length=100, description="Sweep name "
                             "(default: the file name without .toml): the output is results/<name>.h5, so no "
                             "path separators and no leading dot.")
    base: str = Field(min_length=1, description="Base scenario TOML, relative to the sweep file.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Dotted paths set in every scenario.")
    axes: list[Axis] = Field(default_factory=list)
    samples: Samples | None = None
    replicates: int = Field(1, ge=1, le=100_000)
    keep: Literal["summary", "patients"] = Field(
        "summary", description="summary: per-scenario statistics only; patients: also every patient's outcomes.")
    chunk_size: int | None = Field(None, ge=1, description="Patients simulated at a time (memory).")
    cluster: ClusterSpec | None = None
    kind: Literal["sweep", "uncertainty", "sensitivity"] = Field(
        "sweep", description="What the scenarios are: a sweep's grid, or the parameter draws of rptsim uncertainty "
        "or the sample points of rptsim sensitivity (set by those commands).")
    metadata: dict[str, str] = Field(default_factory=dict, description="Attributes the output file records "
                                     "(set by rptsim uncertainty and sensitivity).")


# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisInfo:
    """What the output file records about a swept dimension."""

    label: str
    kind: Literal["grid", "zip", "sample"]
    coords: list[str]
    paths: list[str]
    base_values: list[Any]


@dataclass(frozen=True)
class Scenario:
    index: int
    id: str
    config: Config
    config_json: str
    values: dict[str, Any]  # coordinate name -> swept value
    replicate: int
    seed: int


@dataclass
class Sweep:
    path: Path
    name: str
    spec: SweepFile
    base_config: Config
    axes: list[AxisInfo]
    scenarios: list[Scenario] = field(default_factory=list)

    @property
    def arms(self) -> list[str]:
        return [a.name for a in self.base_config.arms]

    def definition_json(self) -> str:
        return json.dumps(self.spec.model_dump(mode="json", exclude_none=True), sort_keys=True)


def scenario_id(config_json: str) -> str:
    """Short stable id of a resolved config: the first hex digits of SHA-256 of its JSON."""
    return hashlib.sha256(config_json.encode()).hexdigest()[:ID_LENGTH]


def replicate_seed(seed: int, replicate: int) -> int:
    """Seed of replicate ``replicate`` (0 keeps ``seed``), a deterministic hash of both, in [0, 2**63)."""
    if replicate == 0:
        return seed
    digest = hashlib.sha256(f"rptsim-replicate:{seed}:{replicate}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def unit_samples(method: str, n: int, dims: int, seed: int) -> np.ndarray:
    """(n, dims) points in [0, 1): Latin hypercube (``scipy.stats.qmc.LatinHypercube``, scrambled: each of the n
    strata of every dimension holds one point, placed at random within it) or independent uniforms."""
    rng = np.random.default_rng(seed)
    if method == "random":
        return rng.random((n, dims))
    from scipy.stats import qmc

    return qmc.LatinHypercube(d=dims, rng=rng).random(n)


def _scale(param: SampleParam, u: float) -> float | int:
    if param.scale == "log":
        x = math.exp(math.log(param.low) + u * (math.log(param.high) - math.log(param.low)))
    else:
        x = param.low + u * (param.high - param.low)
    return int(round(x)) if param.integer else float(x)


def get_dotted(data: dict, path: str, source: str) -> Any:
    """The value at a dotted path of the base config's mapping (arms by name)."""
    try:
        return config.get_dotted(data, path)
    except ConfigError as exc:
        msg = str(exc).removeprefix("override ")
        raise ConfigError(f"{source}: {path}: {msg}" + (" in the base config" if msg.startswith("no field") else "")
                          ) from None


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read a sweep file, expand and validate every scenario; raise ConfigError naming the first bad field.

    ``overrides`` (dotted paths) are applied to every scenario after the file's ``[overrides]``.
    """
    path = Path(path)
    return from_mapping(files.read_toml(path, "sweep file"), path, overrides)


def from_points(config_path: str | Path, name: str, paths: list[str], names: list[str], values: Any,
                overrides: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None,
                chunk_size: int | None = None, kind: str = "sweep", metadata: dict[str, str] | None = None) -> Sweep:
    """A sweep of the scenario ``config_path`` at given points of its parameters (``values``: one row per point, one
    column per path; an array or lists), as one zipped axis: the scenarios that uncertainty and sensitivity runs
    evaluate, with the sweeps' parallel, resumable machinery. ``cluster`` is a ``[cluster]`` table for
    ``--cluster``; ``kind`` and ``metadata`` are recorded in the output file."""
    config_path = Path(config_path)
    rows = values.tolist() if isinstance(values, np.ndarray) else [list(r) for r in values]
    axis = ({"paths": paths, "names": names, "values": rows} if len(paths) > 1
            else {"path": paths[0], "name": names[0], "values": [r[0] for r in rows]})
    raw: dict[str, Any] = {"name": name, "base": config_path.name, "axes": [axis], "kind": kind,
                           "metadata": metadata or {}}
    if cluster is not None:
        raw["cluster"] = cluster
    if chunk_size is not None:
        raw["chunk_size"] = chunk_size
    return from_mapping(raw, config_path, overrides)


def from_mapping(raw: dict[str, Any], path: Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """:func:`load` on a sweep mapping; ``path`` names it in messages, and ``base`` is relative to its folder."""
    try:
        spec = SweepFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {config.problems(exc, raw)}") from None
    base_path = (path.parent / spec.base)
    base = config.read_scenario(base_path)
    fixed = config.flatten_dotted(spec.overrides)
    fixed.update(overrides or {})
    for key, value in fixed.items():
        config.set_dotted_in(base, key, value, f"{path}: overrides")
    base_config = config.validate(copy.deepcopy(base), f"{base_path} (with the sweep's overrides)")
    resolved = base_config.model_dump(mode="json")  # with defaults: the value a path has when not swept

    # Each dimension is a list of points; a point is a list of (path, coordinate, value).
    dims: list[list[list[tuple[str, str, Any]]]] = []
    infos: list[AxisInfo] = []
    for k, axis in enumerate(spec.axes):
        paths, coords = axis.all_paths(), axis.coord_names()
        base_values = [get_dotted(resolved, p, f"{path}: axes.{k}") for p in paths]
        if axis.factors is not None:
            b = base_values[0]
            if _kind(b) != "number":
                raise ConfigError(f"{path}: axes.{k}.factors: {paths[0]} = {b!r} in the base config is not a number")
            points = [[(paths[0], coords[0], b * f)] for f in axis.factors]
        elif axis.paths is not None:
            points = [list(zip(paths, coords, point, strict=True)) for point in axis.values]
        else:
            points = [[(paths[0], coords[0], v)] for v in axis.values]
        dims.append(points)
        infos.append(AxisInfo(axis.label(), "zip" if axis.paths else "grid", coords, paths, base_values))
    if spec.samples is not None:
        s = spec.samples
        u = unit_samples(s.method, s.n, len(s.params), s.seed)
        dims.append([[(p.path, p.name or p.path, _scale(p, u[i, d])) for d, p in enumerate(s.params)]
                     for i in range(s.n)])
        for p in s.params:
            infos.append(AxisInfo(p.name or p.path, "sample", [p.name or p.path], [p.path],
                                  [get_dotted(resolved, p.path, f"{path}: samples")]))
    _check_names(path, infos)

    n = spec.replicates * math.prod(len(d) for d in dims)
    if n > MAX_SCENARIOS:
        raise ConfigError(f"{path}: {n} scenarios: at most {MAX_SCENARIOS} per sweep")
    sweep = Sweep(path, spec.name or path.stem, spec, base_config, infos)
    seen: dict[str, int] = {}
    for point in itertools.product(*dims):
        assignments = [a for part in point for a in part]
        data = copy.deepcopy(base)
        for p, _, value in assignments:
            config.set_dotted_in(data, p, value, str(path))
        for r in range(spec.replicates):
            index = len(sweep.scenarios)
            what = [f"{p} = {v!r}" for p, _, v in assignments] + ([f"replicate {r}"] if spec.replicates > 1 else [])
            source = f"{path}: scenario {index}" + (f" ({', '.join(what)})" if what else "")
            rep = copy.deepcopy(data) if r else data
            seed = rep["trial"].get("seed") if isinstance(rep.get("trial"), dict) else None
            if r and isinstance(seed, int) and not isinstance(seed, bool):
                seed = replicate_seed(seed, r)
                config.set_dotted(rep, "trial.seed", seed)
            cfg = config.validate(rep, source)
            cfg_json = cfg.to_json()
            sid = scenario_id(cfg_json)
            if sid in seen:
                raise ConfigError(f"{source}: same config as scenario {seen[sid]} (repeated axis values?)")
            seen[sid] = index
            if [a.name for a in cfg.arms] != sweep.arms:
                raise ConfigError(f"{source}: arms {[a.name for a in cfg.arms]} differ from the base's {sweep.arms}")
            values = {c: v for _, c, v in assignments}
            sweep.scenarios.append(Scenario(index, sid, cfg, cfg_json, values, r, cfg.trial.seed))
    if spec.keep == "patients" and len({s.config.trial.patients for s in sweep.scenarios}) > 1:
        raise ConfigError(f"{path}: keep = 'patients' needs the same trial.patients in every scenario")
    return sweep


def _check_names(path: Path, infos: list[AxisInfo]) -> None:
    paths = [p for info in infos for p in info.paths]
    dup = sorted({p for p in paths if paths.count(p) > 1})
    if dup:
        raise ConfigError(f"{path}: {', '.join(dup)}: swept by more than one axis")
    coords = [c for info in infos for c in info.coords]
    dup = sorted({c for c in coords if coords.count(c) > 1})
    if dup:
        raise ConfigError(f"{path}: coordinate name(s) {dup} used twice; give the axes distinct names")
    for c in coords:
        if c in RESERVED_NAMES or "/" in c or not c:
            raise ConfigError(f"{path}: coordinate name {c!r} is reserved or invalid; set the axis name")
