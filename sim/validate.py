"""Validation of the shipped scenarios against published trial endpoints (``sim/data/trial_targets.toml``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, ValidationError

from sim import analysis, config, engine, files
from sim.config import Strict, Text
from sim.survival import wilson_ci

TARGETS = Path(__file__).parent / "data" / "trial_targets.toml"


CONFIGS = config.shipped_folder()


@dataclass(frozen=True)
class Target:
    trial: str
    config: str
    endpoint: str
    path: tuple[str, ...]
    published: float
    low: float
    high: float
    source: str
    ci: tuple[str, ...] | None = None
    rate: bool = False
    informational: bool = False  # reported, but not part of the pass/fail verdict


class _TargetRow(Strict):
    """One ``[[targets]]`` table as written (checked before any simulation uses it)."""

    trial: Text
    config: str = Field(min_length=1)
    endpoint: Text
    path: list[str] = Field(min_length=1)
    published: float
    low: float
    high: float
    source: str
    ci: list[str] | None = Field(None, min_length=1)
    rate: bool = False
    informational: bool = False


class _Targets(Strict):
    targets: list[_TargetRow]


def load_targets(path: Path = TARGETS) -> list[Target]:
    rows = files.read_toml(path, "targets file").get("targets")
    if not isinstance(rows, list):
        raise config.ConfigError(f"{path}: needs [[targets]] tables")
    try:
        checked = _Targets.model_validate({"targets": rows}).targets
    except ValidationError as exc:
        raise config.ConfigError(f"{path}: {config.problems(exc, {'targets': rows})}") from None
    return [Target(**{**row.model_dump(), "path": tuple(row.path), "ci": tuple(row.ci) if row.ci else None})
            for row in checked]


def lookup(tree: dict, path: tuple[str, ...]):  # noqa: ANN201 - a number, a pair or None
    """The value at ``path`` (a sequence of keys) in nested dicts."""
    node = tree
    for key in path:
        node = node[key]
    return node


def evaluate(target: Target, summary: dict) -> dict:
    """One validation row: the simulated value, its Monte Carlo interval, and whether it lies in [low, high]."""
    value = lookup(summary, target.path)
    low = high = None
    if target.ci is not None:
        low, high = lookup(summary, target.ci)
    elif target.rate and value is not None:
        n = lookup(summary, target.path[:2])["n_patients"]
        low, high = (round(float(x), 4) for x in wilson_ci(round(value * n), n))
    passed = value is not None and target.low <= value <= target.high
    return {"trial": target.trial, "endpoint": target.endpoint, "published": target.published, "simulated": value,
            "low": low, "high": high, "tolerance": [target.low, target.high], "passed": passed,
            "informational": target.informational, "source": target.source}


def all_passed(rows: list[dict]) -> bool:
    """The verdict: every endpoint that is not informational lies within its tolerance."""
    return all(r["passed"] for r in rows if not r["informational"])


def target_scenario(path: str | Path, names: list[str], source: Path = TARGETS) -> Path:
    """The file whose targets (those keyed by its name in ``names``, read from ``source``) judge the config ``path``:
    the config itself, else the first file of its ``extends`` chain that has targets (a calibrated config, or
    guided_vs_fixed.toml, is judged on the trial it extends)."""
    chain = config.extends_chain(path)
    for p in chain:
        if p.name in names:
            return p
    raise config.ConfigError(f"{path}: no published targets for {[p.name for p in chain]} in {source} "
                             f"(have: {sorted(set(names))})")


def run(configs: list[str] | None = None, overrides: dict | None = None,
        progress: Callable[[str], None] | None = None, datasets: dict | None = None) -> list[dict]:
    """Run every shipped scenario named by the targets, or the scenarios ``configs`` (a path, or the name of a
    shipped config), and evaluate the targets of each: those of its own file name, else of the first file of its
    ``extends`` chain that has targets (a calibrated config is judged on the trial it extends). Each scenario's
    outcomes go into ``datasets`` (keyed by the target scenario's file name) when a dict is given."""
    targets = load_targets()
    names = list(dict.fromkeys(t.config for t in targets))
    if configs:
        shipped = [config.find(c) for c in configs]  # a path, or a shipped scenario by name (netter1, netter1.toml)
        scenarios = [(p, target_scenario(p, names).name) for p in shipped]
    else:
        scenarios = [(CONFIGS / name, name) for name in names]
    rows = []
    for path, name in scenarios:
        if progress is not None:
            progress(path.name)
        cfg = config.load(path, overrides)
        ds = engine.run(cfg)
        if datasets is not None:
            datasets[name] = ds
        summary = analysis.summary(ds)
        rows += [evaluate(t, summary) for t in targets if t.config == name]
    return rows
