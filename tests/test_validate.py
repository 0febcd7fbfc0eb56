"""Validation against published endpoints: target file, evaluation logic, CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sim
from sim import cli, validate

from .conftest import ROOT


def test_targets_resolve_in_the_summaries():
    rows = validate.run(overrides={"trial.patients": 400})
    targets = validate.load_targets()
    assert len(rows) == len(targets) >= 15
    assert {r["trial"] for r in rows} == {"NETTER-1", "VISION", "Bergsma 2016", "Alipour 2023", "Baum 2019",
                                         "van der Zwan 2019", "Groener 2021", "TheraP", "DOSISPHERE-01",
                                         "ITA.LI.CA"}
    by_endpoint = {(t.trial, t.endpoint): t for t in targets}
    for row in rows:
        target = by_endpoint[(row["trial"], row["endpoint"])]
        assert row["simulated"] is not None and target.low <= target.published <= target.high
        assert row["passed"] == (target.low <= row["simulated"] <= target.high)
        if row["low"] is not None:
            assert row["low"] <= row["simulated"] <= row["high"]


def test_evaluate_pass_fail_and_wilson_interval():
    target = validate.Target("T", "x.toml", "rate", ("arms", "a", "r"), 0.1, 0.05, 0.15, "src", rate=True)
    inside = validate.evaluate(target, {"arms": {"a": {"r": 0.1, "n_patients": 1000}}})
    assert inside["passed"] and inside["low"] < 0.1 < inside["high"]
    assert inside["low"] == pytest.approx(0.0829, abs=1e-3)  # Wilson 95 % for 100/1000
    outside = validate.evaluate(target, {"arms": {"a": {"r": 0.2, "n_patients": 1000}}})
    assert not outside["passed"]


def test_cli_validate_json_figure_and_exit_status(capsys, tmp_path):
    figure = tmp_path / "validation.png"
    rc = cli.main(["validate", "--config", "netter1.toml", "--patients", "400", "--json", "--figure", str(figure)])
    rows = json.loads(capsys.readouterr().out)
    assert {r["trial"] for r in rows} == {"NETTER-1", "Bergsma 2016", "Alipour 2023", "Baum 2019"}
    assert set(rows[0]) >= {"trial", "endpoint", "published", "simulated", "low", "high", "passed"}
    assert rc == (0 if validate.all_passed(rows) else 1)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    assert cli.main(["validate", "--config", "nope.toml", "--figure", str(tmp_path / "x.png")]) == 2
    capsys.readouterr()
    assert cli.main(["validate", "--config", "dosisphere01", "--patients", "300", "--json"]) in (0, 1)  # a bare name
    assert {r["trial"] for r in json.loads(capsys.readouterr().out)} == {"DOSISPHERE-01"}


@pytest.mark.parametrize("seed", [None, 7])
def test_shipped_configs_pass_every_endpoint(seed):
    """The published NETTER-1 and VISION endpoints, at the configs' full size, with their seeds and another one."""
    rows = validate.run(overrides={"trial.seed": seed} if seed is not None else None)
    failed = [(r["trial"], r["endpoint"], r["simulated"], r["tolerance"]) for r in rows
              if not r["passed"] and not r["informational"]]
    assert not failed and validate.all_passed(rows)


def test_validate_a_config_by_path_judges_that_file_on_the_trial_it_extends(tmp_path, capsys):
    """An edited config given by path is simulated itself (not the shipped file of its name) and judged on the
    targets of the first file of its extends chain that has them."""
    edited = tmp_path / "netter1.toml"  # the shipped name, a different content
    edited.write_text(f'extends = "{(ROOT / "configs" / "netter1.toml").as_posix()}"\n'
                      "cohort.covariates.tumour_alpha_per_gy.median = 0.005\n")
    rc = cli.main(["validate", "--config", str(edited), "--patients", "400", "--json", "--figure",
                   str(tmp_path / "v.png")])
    rows = {r["endpoint"]: r for r in json.loads(capsys.readouterr().out)}
    orr = rows["objective response rate, 177Lu-DOTATATE"]
    assert rc == 1 and orr["simulated"] < 0.05 and not orr["passed"]  # almost no kill: the edit was simulated
    renamed = tmp_path / "my_fit.toml"
    renamed.write_text(edited.read_text())
    assert cli.main(["validate", "--config", str(renamed), "--patients", "400", "--json", "--figure",
                     str(tmp_path / "v.png")]) == 1
    assert {r["trial"] for r in json.loads(capsys.readouterr().out)} >= {"NETTER-1"}


def test_validate_writes_no_figure_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate", "--config", "netter1.toml", "--patients", "200", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out) and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The package built as a wheel (pip wheel, isolated build) from the working tree."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(folder)],
                   check=True, capture_output=True)
    return next(folder.glob("rptsim-*.whl"))


@pytest.mark.slow
def test_the_wheel_carries_the_scenarios_and_targets(tmp_path, wheel):
    """Installed from a wheel, outside the repository, validation finds the shipped scenarios and their targets."""
    import zipfile

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from sim import validate; names = [t.config for t in validate.load_targets()]; "
            "print(validate.CONFIGS); print(validate.target_scenario(validate.CONFIGS / 'iluminet.toml', names).name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)}, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == [str(site / "sim" / "configs"), "netter1.toml"]
    assert sorted(p.name for p in (site / "sim" / "configs").glob("*.toml")) == sorted(
        p.name for p in (ROOT / "configs").glob("*.toml"))


def _dependency_folders() -> list[str]:
    """The site folders this interpreter imports rptsim's dependencies from (numpy's and the others')."""
    import importlib.util

    folders = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    for module in ("numpy", "numba", "scipy", "xarray", "h5py", "h5netcdf", "pydantic", "rich"):
        folder = str(Path(importlib.util.find_spec(module).origin).parents[1])
        if folder not in folders:
            folders.append(folder)
    return folders


@pytest.mark.slow
def test_the_wheel_in_a_fresh_venv_runs_version_run_and_validate(tmp_path, wheel):
    """Issue 20's done-when: the wheel installed into a new virtual environment (no repository on the path) runs
    ``rptsim --version``, ``rptsim run netter1 --patients 500`` and ``rptsim validate --patients 2000``. The
    dependencies are not installed again: a .pth file, written after the install, appends this interpreter's site
    folders behind the new venv's own, so the wheel's ``sim`` is the one imported."""
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    python, rptsim = venv / "bin" / "python", venv / "bin" / "rptsim"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}

    def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run([*args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)

    installed = run(str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel), timeout=300)
    assert installed.returncode == 0, installed.stderr
    purelib = run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    (Path(purelib) / "zz_rptsim_test_dependencies.pth").write_text("\n".join(_dependency_folders()) + "\n")
    where = run(str(python), "-c", "import json, sys, sim, sim.validate as v; print(sim.__file__); print(v.CONFIGS); "
                "print(json.dumps(sys.path))")
    assert where.returncode == 0, where.stderr
    sim_file, configs, path = where.stdout.splitlines()
    assert Path(sim_file).is_relative_to(venv) and Path(configs).is_relative_to(venv)
    assert str(ROOT) not in json.loads(path)

    version = run(str(rptsim), "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"rptsim {sim.__version__}", version.stderr
    ran = run(str(rptsim), "run", "netter1", "--patients", "500")
    assert ran.returncode == 0, ran.stderr
    assert sorted(p.name for p in (work / "results").iterdir()) == ["netter1.h5", "netter1.summary.json"]
    assert json.loads((work / "results" / "netter1.summary.json").read_text())["n_patients"] == 500
    validated = run(str(rptsim), "validate", "--patients", "2000")
    assert validated.returncode == 0, validated.stdout[-2000:] + validated.stderr
    assert "endpoints within tolerance" in validated.stdout
    assert sorted(p.name for p in work.iterdir()) == ["results"]  # validate wrote nothing unasked
