"""Shared fixtures: small configs built from the shipped scenarios; the kernel compiles once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def load_small(name: str = "netter1", patients: int = 400, **overrides) -> config.Config:
    """A shipped config with fewer patients (and any dotted-path overrides)."""
    return config.load(CONFIGS / f"{name}.toml", {"trial.patients": patients, **overrides})


@pytest.fixture(scope="session")
def netter1_small() -> config.Config:
    return load_small("netter1")


@pytest.fixture(scope="session")
def netter1_run(netter1_small):
    """One compiled-and-run NETTER-1 scenario (its outcome Dataset) shared by the tests that only read it."""
    from sim import engine

    return engine.run(netter1_small)


@pytest.fixture(scope="session")
def netter1_dataset(netter1_run):
    return netter1_run
