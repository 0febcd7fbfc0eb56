"""Calibration: fit named config parameters to published endpoints, with common random numbers.

Every evaluation reruns the scenario with the same seed and patients, so the loss is a deterministic, smooth-ish
function of the parameters (common random numbers). The loss is the sum over targets of
``((simulated - published) / half-width)^2``, with the half-width of each target's tolerance as its scale.
Parameters are searched on the log scale (they are all positive), with Nelder-Mead (Nelder & Mead 1965;
scipy.optimize.minimize). The posterior of the declared uncertain parameters (``--posterior``) is sim/posterior.py.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import optimize

from sim import analysis, config, engine
from sim.validate import TARGETS, Target, evaluate, load_targets, target_scenario

MISSING_PENALTY = 1e4  # a target the run cannot produce (e.g. a median not reached)


@dataclass
class Calibration:
    params: dict[str, float]
    loss: float
    start_loss: float
    evaluations: int
    targets: list[str]
    rows: list[dict] = field(default_factory=list)


def _get(data: dict, path: str) -> float:
    try:
        node = config.get_dotted(data, path)
    except config.ConfigError:
        raise config.ConfigError(f"--params {path}: no such numeric field in the config") from None
    if not isinstance(node, int | float) or isinstance(node, bool) or node <= 0:
        raise config.ConfigError(f"--params {path} = {node!r}: must be a positive number to calibrate")
    return float(node)


def loss_of(rows: list[dict], targets: list[Target]) -> float:
    total = 0.0
    for row, t in zip(rows, targets, strict=True):
        if row["simulated"] is None:
            total += MISSING_PENALTY
        else:
            total += ((row["simulated"] - t.published) / (0.5 * (t.high - t.low))) ** 2
    return total


def rows_at(config_path: str | Path, overrides: dict, targets: list[Target]) -> list[dict]:
    """Run the scenario with ``overrides`` (dotted paths) and evaluate ``targets`` on its summary."""
    summary = analysis.summary(engine.run(config.load(config_path, overrides)))
    return [evaluate(t, summary) for t in targets]


def calibrate(config_path: str | Path, params: list[str], targets: list[Target], patients: int | None = None,
              max_evaluations: int = 60, progress: Callable[[int, float], None] | None = None,
              seed: int | None = None) -> Calibration:
    """Fit ``params`` (dotted config paths) so the run reproduces ``targets`` (``patients``, ``seed``: the cohort of
    every evaluation, default the config's)."""
    if not targets:
        raise config.ConfigError(f"{config_path}: no targets to calibrate against")
    data = config.read_toml(config_path)
    if any(p.startswith("arms.") for p in params):
        raise config.ConfigError("--params: arm parameters cannot be calibrated (use cohort, tumour, ... fields)")
    start = np.log([_get(data, p) for p in params])
    base = {key: v for key, v in (("trial.patients", patients), ("trial.seed", seed)) if v is not None}
    evaluations = 0
    best: dict = {}

    def run_at(x: np.ndarray) -> tuple[float, list[dict]]:
        rows = rows_at(config_path, {**base, **{p: float(math.exp(v)) for p, v in zip(params, x, strict=True)}},
                       targets)
        return loss_of(rows, targets), rows

    def objective(x: np.ndarray) -> float:
        nonlocal evaluations
        evaluations += 1
        try:
            value, rows = run_at(x)
        except config.ConfigError:  # a step outside a field's range: the worst loss, so the simplex turns back
            if evaluations == 1:
                raise
            return math.inf
        if not best or value < best["loss"]:
            best.update(loss=value, x=x.copy(), rows=rows)
        if progress is not None:
            progress(evaluations, best["loss"])
        return value

    start_loss = objective(start)
    if len(params) == 1:
        optimize.minimize_scalar(lambda v: objective(np.array([v])), bracket=(start[0] - 0.3, start[0] + 0.3),
                                 options={"maxiter": max_evaluations, "xtol": 1e-3})
    else:
        optimize.minimize(objective, start, method="Nelder-Mead",
                          options={"maxfev": max_evaluations, "xatol": 1e-3, "fatol": 1e-4,
                                   "initial_simplex": np.vstack([start, start + 0.2 * np.eye(len(params))])})
    values = {p: float(math.exp(v)) for p, v in zip(params, best["x"], strict=True)}
    return Calibration(values, best["loss"], start_loss, evaluations, [f"{t.trial}: {t.endpoint}" for t in targets],
                       best["rows"])


def _toml_value(value: object) -> str:
    return json.dumps(value)  # numbers and strings in JSON are valid TOML scalars


def write_calibrated(out: str | Path, base: str | Path, result: Calibration, seed: int, patients: int) -> None:
    """Write a config that extends ``base`` with the fitted values and records the calibration in comments."""
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    write_extending(out, base, [
        f"# Calibrated by rptsim calibrate on {stamp}: seed {seed}, {patients} patients per arm, "
        f"{result.evaluations} evaluations,",
        f"# loss {result.start_loss:.4g} -> {result.loss:.4g} (sum of squared misses in units of each target's "
        "tolerance half-width).",
        "# Targets (sim/data/trial_targets.toml):",
        *(f"#   {t}" for t in result.targets),
    ], result.params)


def write_extending(out: str | Path, base: str | Path, comments: list[str], values: dict[str, float]) -> None:
    """Write (atomically) a config that starts with ``comments``, extends ``base`` and sets ``values``."""
    from sim.outcomes import write_atomic

    out, base = Path(out), Path(base)
    rel = os.path.relpath(base.resolve(), out.resolve().parent)
    lines = [*comments, f"extends = {_toml_value(rel)}", "", *(f"{path} = {v:.6g}" for path, v in values.items()), ""]
    write_atomic(out, lambda tmp: Path(tmp).write_text("\n".join(lines), encoding="utf-8"))


def targets_for(config_path: str | Path, targets_file: Path | None = None,
                names: list[str] | None = None) -> list[Target]:
    """The targets of a scenario (by its file name), optionally only those whose endpoint contains a name."""
    targets = load_targets(targets_file) if targets_file is not None else load_targets()
    chosen = [t for t in targets if t.config == Path(config_path).name]
    if names:
        chosen = [t for t in chosen if any(n.lower() in t.endpoint.lower() for n in names)]
    return chosen


def scenario_targets(config_path: str | Path, targets_file: Path | None = None,
                     names: list[str] | None = None) -> tuple[Path, list[Target]]:
    """The scenario that calibrates ``config_path`` and its targets: the first file of its ``extends`` chain that has
    targets (guided_vs_fixed.toml extends netter1.toml, so NETTER-1's endpoints calibrate it), optionally only the
    targets whose endpoint contains one of ``names``."""
    source = targets_file if targets_file is not None else TARGETS
    path = target_scenario(config_path, [t.config for t in load_targets(source)], source)
    chosen = targets_for(path, targets_file, names)
    if not chosen:
        raise config.ConfigError(f"--targets {' '.join(names or [])}: no endpoint of {path.name} matches "
                                 f"(have: {[t.endpoint for t in targets_for(path, targets_file)]})")
    return path, chosen
