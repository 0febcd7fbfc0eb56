"""The package's shape: dependencies run one way, functions stay short, and the kernel interface is the declared one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sim import kernel_inputs, kernel_outputs

from .conftest import ROOT

SIM = Path(__file__).resolve().parents[1] / "sim"
KERNEL_SOURCE = "\n".join(p.read_text() for p in sorted((SIM / "kernels").glob("*.py")))


def imports(path: Path) -> set[str]:
    """Modules imported by a file (``from sim.kernels import policy`` counts as ``sim.kernels.policy``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def sim_imports(path: Path) -> set[str]:
    return {m for m in imports(path) if m == "sim" or m.startswith("sim.")}


@pytest.mark.parametrize("path", sorted((SIM / "kernels").glob("*.py")), ids=lambda p: p.name)
def test_kernels_import_only_kernels_rng_and_units(path):
    allowed = ("sim.kernels", "sim.rng", "sim.units")
    bad = {m for m in sim_imports(path) if not m.startswith(allowed) and m != "sim"}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_outcomes_does_not_import_the_engine():
    assert not {m for m in sim_imports(SIM / "outcomes.py") if m.startswith("sim.engine")}


@pytest.mark.parametrize("name", ["analysis.py", "trials.py", "survival.py", "figures.py", "report.py"])
def test_statistics_read_labelled_datasets_only(name):
    """Statistics never see kernel internals or the input translation; trials asks the engine for outcomes through
    its one public function."""
    used = sim_imports(SIM / name)
    bad = {m for m in used if m.startswith(("sim.kernels", "sim.kernel_inputs", "sim.cohort", "sim.numpy_oracle"))}
    assert not bad, f"{name} imports {sorted(bad)}"
    source = (SIM / name).read_text()
    assert "engine." not in source.replace("engine.simulate_outcomes", "").replace('engine="h5netcdf"', "")


def test_no_function_longer_than_100_lines():
    long = []
    for path in sorted(SIM.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 100:
                    long.append(f"{path.relative_to(SIM)}:{node.name} ({n} lines)")
    assert not long


GROUP_ARGUMENT = {"Patients": "P", "Organs": "organs", "Lesions": "lesions", "Blood": "blood", "Kidney": "kid",
                  "Events": "ev", "Regimen": "regimen"}


@pytest.mark.parametrize("group", list(kernel_inputs.GROUPS))
def test_every_declared_input_is_read_by_the_kernel(group):
    """No dead declaration: the kernel reads each input by name (``<group>.<name>``, or as a keyword of a
    module's own parameter tuple)."""
    unread = [q.name for q in kernel_inputs.GROUPS[group] if f".{q.name}" not in KERNEL_SOURCE]
    assert not unread, f"{group} inputs never read: {unread}"


def test_every_declared_output_is_written_by_the_kernel():
    unwritten = [o.name for o in kernel_outputs.OUTPUTS if f"out.{o.name}[" not in KERNEL_SOURCE]
    assert not unwritten


def test_input_and_output_declarations_are_complete():
    dims = {"patient", "organ", "lesion", "blood_line", "cycle", "grade"}
    for group, inputs in kernel_inputs.GROUPS.items():
        names = [q.name for q in inputs]
        assert len(set(names)) == len(names), group
        for q in inputs:
            assert q.units and q.source and set(q.dims) <= dims, (group, q.name)
            assert not q.dims or q.dims[0] in ("patient", "organ", "blood_line", "cycle") or group != "Patients"
    for o in kernel_outputs.OUTPUTS:
        assert o.dims[0] == "patient" and set(o.dims) <= dims and o.units and o.long_name, o.name


def test_license_and_citation_agree_with_the_package():
    """LICENSE holds the license pyproject declares, and CITATION.cff cites the version that the package reports."""
    import re
    import tomllib

    import sim

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"]["text"] == "BSD-3-Clause"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("BSD 3-Clause License")
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(r'^license: BSD-3-Clause$', citation, re.M)
    assert re.search(r'^version: "(.+)"$', citation, re.M).group(1) == sim.__version__ == project["version"]


def test_import_sim_gives_its_modules_on_first_use():
    """``import sim`` alone loads none of its modules; ``sim.engine`` and friends work after it (notebook use)."""
    import subprocess
    import sys

    code = ("import sys, sim; assert 'sim.engine' not in sys.modules and 'sim.kernels' not in sys.modules; "
            "assert {'engine', 'analysis', 'config', 'kernels'} <= set(dir(sim)); "
            "assert sim.config.load and sim.engine.run and 'sim.engine' in sys.modules; "
            "raised = False\ntry:\n    sim.nope\nexcept AttributeError:\n    raised = True\nassert raised")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
