"""rptsim sweep: expansion (grid, zip, factors, samples, replicates), stable ids, clear errors, serial vs Dask,
chunking, resume after an interruption or kill -9, keep = "patients", job scripts and the sweep report."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sim import config, engine, sweep, sweep_config
from sim.cli import main
from sim.config import ConfigError

from .conftest import CONFIGS, ROOT

BASE = (CONFIGS / "iluminet.toml").as_posix()

SMALL = f'''
base = "{BASE}"
name = "small"
[overrides]
"trial.patients" = 300
[[axes]]
paths = ["arms.iluminet.kidney_bed_limit_gy", "arms.iluminet.kidney_bed_limit_risk_factor_gy"]
names = ["limit", "limit_rf"]
values = [[23.0, 20.0], [40.0, 28.0]]
[[axes]]
path = "arms.iluminet.dosimetry.error_scale"
values = [0.0, 2.0]
'''


def top(text: str, line: str) -> str:
    """``text`` with a top-level key added (after ``name``, before the first table)."""
    return text.replace('name = "small"', f'name = "small"\n{line}', 1)


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("sweep"), SMALL)


@pytest.fixture(scope="module")
def clean_run(small_file, tmp_path_factory) -> Path:
    """The small sweep run serially, uninterrupted: the reference file."""
    out = tmp_path_factory.mktemp("clean") / "small.h5"
    sweep.run(sweep_config.load(small_file), out, workers=0)
    return out


def same_file(a: Path, b: Path) -> bool:
    with sweep.read(a) as x, sweep.read(b) as y:
        return sweep.same_results(x, y)


# --------------------------------------------------------------------------------------------------
# Expansion and ids


def test_grid_zip_factors_and_replicates_expand_in_definition_order(tmp_path):
    text = SMALL + '''
[[axes]]
path = "cohort.covariates.new_lesion_rate_per_month.median"
name = "new_lesions"
factors = [0.5, 2.0]
'''
    sw = sweep_config.load(write(tmp_path, text))
    assert len(sw.scenarios) == 2 * 2 * 2
    sw = sweep_config.load(write(tmp_path, top(text, "replicates = 3")))
    assert len(sw.scenarios) == 2 * 2 * 2 * 3
    first, last = sw.scenarios[0], sw.scenarios[-1]
    base = config.load(CONFIGS / "netter1.toml").cohort.covariates.new_lesion_rate_per_month.median
    assert first.values == {"limit": 23.0, "limit_rf": 20.0, "arms.iluminet.dosimetry.error_scale": 0.0,
                            "new_lesions": pytest.approx(0.5 * base)}
    assert last.values["limit"] == 40.0 and last.values["new_lesions"] == pytest.approx(2 * base)
    arm = first.config.arm("iluminet")
    assert (arm.kidney_bed_limit_gy, arm.kidney_bed_limit_risk_factor_gy, arm.dosimetry.error_scale) == (23, 20, 0)
    assert first.config.cohort.covariates.new_lesion_rate_per_month.median == pytest.approx(0.5 * base)
    # replicates vary fastest; replicate 0 keeps the base seed, the others get distinct derived seeds
    base_seed = sw.base_config.trial.seed
    assert [s.replicate for s in sw.scenarios[:3]] == [0, 1, 2]
    assert sw.scenarios[0].seed == base_seed
    assert len({s.seed for s in sw.scenarios[:3]}) == 3
    assert sw.scenarios[1].seed == sweep_config.replicate_seed(base_seed, 1)
    assert len({s.id for s in sw.scenarios}) == len(sw.scenarios)


def test_latin_hypercube_has_one_point_per_stratum_in_every_dimension():
    n, dims = 37, 4
    u = sweep_config.unit_samples("lhs", n, dims, seed=5)
    assert u.shape == (n, dims) and ((u >= 0) & (u < 1)).all()
    for d in range(dims):
        assert sorted(np.floor(u[:, d] * n).astype(int)) == list(range(n))
    assert np.array_equal(u, sweep_config.unit_samples("lhs", n, dims, seed=5))  # its own seed: reproducible
    assert not np.array_equal(u, sweep_config.unit_samples("lhs", n, dims, seed=6))


def test_samples_respect_ranges_scale_and_integers(tmp_path):
    text = f'''
base = "{BASE}"
[overrides]
"trial.patients" = 100
[samples]
method = "lhs"
n = 12
seed = 3
[[samples.params]]
path = "cohort.covariates.new_lesion_rate_per_month.median"
name = "new_lesions"
low = 0.002
high = 0.02
scale = "log"
[[samples.params]]
path = "arms.iluminet.cycles"
name = "max_cycles"
low = 4
high = 9
integer = true
'''
    sw = sweep_config.load(write(tmp_path, text))
    rates = np.array([s.values["new_lesions"] for s in sw.scenarios])
    cycles = [s.values["max_cycles"] for s in sw.scenarios]
    assert len(sw.scenarios) == 12 and ((rates >= 0.002) & (rates <= 0.02)).all()
    strata = np.floor(12 * np.log(rates / 0.002) / np.log(10)).astype(int)  # log scale: strata equal in log
    assert sorted(strata) == list(range(12))
    assert all(isinstance(c, int) and 4 <= c <= 9 for c in cycles)
    assert [s.config.arm("iluminet").cycles for s in sw.scenarios] == cycles


def test_scenario_ids_are_stable_and_change_with_any_config_change(small_file, tmp_path):
    a = sweep_config.load(small_file)
    b = sweep_config.load(small_file)
    assert [s.id for s in a.scenarios] == [s.id for s in b.scenarios]
    assert all(s.id == sweep_config.scenario_id(s.config.to_json()) for s in a.scenarios)
    assert all(len(s.id) == sweep_config.ID_LENGTH for s in a.scenarios)
    changed = sweep_config.load(small_file, {"marrow.alpha_per_gy": a.base_config.marrow.alpha_per_gy * 1.01})
    assert not {s.id for s in a.scenarios} & {s.id for s in changed.scenarios}


BAD = [
    ('[[axes]]\npath = "arms.iluminet.kidney_bed_limt_gy"\nvalues = [20.0]',
     "no field arms.iluminet.kidney_bed_limt_gy"),
    ('[[axes]]\npath = "arms.iluminet.kidney_bed_limit_gy"\nvalues = [30.0, -5.0]',
     "scenario 1 (arms.iluminet.kidney_bed_limit_gy = -5.0): arms.iluminet.kidney_bed_limit_gy = -5.0: Input "
     "should be greater than 0"),
    ('[[axes]]\npath = "arms.nope.cycles"\nvalues = [3]', "no item named 'nope'"),
    ('[[axes]]\npaths = ["arms.iluminet.cycles", "arms.iluminet.interval_weeks"]\nvalues = [[3, 8], [4]]',
     "a zipped axis needs one list of 2 values per point"),
    ('[[axes]]\npath = "arms.iluminet.cycles"\nvalues = [3, 3]', "same config as scenario 0"),
    ('[[axes]]\npath = "arms.iluminet.cycles"\nvalues = [3, "four"]', "values of one path must be of one kind"),
    ('[[axes]]\npath = "arms.iluminet.cycles"\nvalues = [3]\n[[axes]]\npath = "arms.iluminet.cycles"\n'
     'values = [4]', "swept by more than one axis"),
    ('[[axes]]\npath = "arms.iluminet.label"\nfactors = [2.0]', "is not a number"),
    ('keep = "cycles"', "keep = 'cycles'"),
    ('replicates = 0', "replicates = 0: Input should be greater than or equal to 1"),
    ('bogus = 1', "bogus: unknown key"),
    ('[samples]\nn = 4\n[[samples.params]]\npath = "arms.iluminet.cycles"\nlow = 5\nhigh = 5',
     "low = 5.0 must be < high = 5.0"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_sweep_files_raise_config_errors_naming_the_field(tmp_path, extra, message):
    path = write(tmp_path, f'base = "{BASE}"\n' + extra + "\n")
    with pytest.raises(ConfigError) as err:
        sweep_config.load(path)
    assert message in str(err.value)
    assert str(err.value).startswith(str(path))


def test_bad_sweep_on_the_command_line_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    path = write(tmp_path, f'base = "{BASE}"\n[[axes]]\npath = "arms.iluminet.cycles"\nvalues = [4, 0]\n')
    out = tmp_path / "out.h5"
    assert main(["sweep", str(path), "-o", str(out), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "arms.iluminet.cycles = 0" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.toml"]
    missing = tmp_path / "missing.toml"
    assert main(["sweep", str(missing)]) == 2
    assert "sweep file not found" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Running


def test_output_layout(clean_run, small_file):
    sw = sweep_config.load(small_file)
    with sweep.read(clean_run) as ds:
        assert ds.attrs["schema"] == sweep.SCHEMA and ds.attrs["keep"] == "summary"
        assert list(ds.scenario.values) == [s.id for s in sw.scenarios]  # definition order
        assert list(ds.limit.values) == [23.0, 23.0, 40.0, 40.0]
        assert list(ds["arms.iluminet.dosimetry.error_scale"].values) == [0.0, 2.0, 0.0, 2.0]
        assert ds.pfs_hr.dims == ("scenario", "arm") and ds.pfs_hr_robust_ci.dims == ("scenario", "arm", "bound")
        assert ds.pfs_at_months_difference_ci.dims == ("scenario", "arm", "landmark_month", "bound")
        assert ds.rmst_pfs_difference_ci.attrs["units"] == "month"
        assert np.isnan(ds.pfs_hr.sel(arm="fixed_netter1")).all()  # the reference arm
        assert np.isfinite(ds.pfs_hr.sel(arm="iluminet")).all()
        assert "patient" not in ds.dims
        assert not sweep.parts_dir(clean_run).exists()
        assert ds.attrs["Conventions"] == "CF-1.10" and ": Python API (" in ds.attrs["history"]
        unnamed = [n for n in [*ds.data_vars, *ds.coords] if not ds[n].attrs.get("long_name")]
        assert not unnamed, f"no long_name: {unnamed}"
        assert ds.pfs_hr.attrs["long_name"].startswith("PFS hazard ratio, arm vs reference arm")
        assert ds.median_os_months.attrs["long_name"] == "median OS months"
        # each scenario's statistics are those of rptsim run on its config
        cfg = config.validate(__import__("json").loads(str(ds.config_json.values[3])), "x")
    from sim import analysis

    direct = analysis.summary(engine.run(cfg))
    with sweep.read(clean_run) as ds:
        assert float(ds.pfs_hr.sel(arm="iluminet").values[3]) == direct["comparisons"]["iluminet vs fixed_netter1"][
            "pfs_hr"]
        assert float(ds.median_os_months.sel(arm="iluminet").values[3]) == direct["arms"]["iluminet"][
            "median_os_months"]
        paired = direct["comparisons"]["iluminet vs fixed_netter1"]  # the paired effects, flattened
        a = ds.sel(arm="iluminet").isel(scenario=3)
        assert list(a.rmst_pfs_difference_ci.values) == paired["rmst_pfs_difference_ci"]
        assert float(a.grade3plus_renal_rate_difference) == paired["toxicity_rate_differences"]["grade3plus_renal_rate"]
        assert list(a.grade3plus_renal_rate_difference_ci.values) == paired["toxicity_rate_differences"][
            "grade3plus_renal_rate_ci"]
        assert float(a.individual_pfs_gain_fraction) == paired["individual"]["pfs"]["gain_fraction"]
        assert list(a.pfs_at_months_difference_ci.sel(landmark_month=12).values) == paired[
            "pfs_at_months_difference_ci"]["12"]


def test_chunked_scenarios_give_the_same_file(small_file, clean_run, tmp_path):
    sw = sweep_config.load(write(tmp_path, top(SMALL, "chunk_size = 70")))
    assert sw.spec.chunk_size == 70
    out = tmp_path / "chunked.h5"
    sweep.run(sw, out, workers=0)
    with sweep.read(out) as a, sweep.read(clean_run) as b:
        assert sweep.same_results(a.assign_attrs(sweep_json=""), b.assign_attrs(sweep_json=""))


@pytest.mark.slow
def test_local_dask_cluster_with_processes_gives_the_serial_file(small_file, clean_run, tmp_path):
    out = tmp_path / "dask.h5"
    counts = sweep.run(sweep_config.load(small_file), out, workers=2)  # LocalCluster(processes=True)
    assert counts == {"scenarios": 4, "reused": 0, "run": 4, "discarded": 0}
    assert same_file(out, clean_run)


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_completes_only_the_missing_scenarios(small_file, clean_run, tmp_path):
    sw = sweep_config.load(small_file)
    out = tmp_path / "resumed.h5"
    seen = []

    def stop_after_two(scenario) -> None:  # noqa: ANN001
        seen.append(scenario.id)
        if len(seen) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        sweep.run(sw, out, workers=0, on_part=stop_after_two)
    assert not out.exists()
    assert sorted(p.stem for p in sweep.parts_dir(out).glob("*.h5")) == sorted(seen)
    with pytest.raises(ConfigError, match="--resume"):
        sweep.run(sw, out, workers=0)
    again = []
    counts = sweep.run(sw, out, workers=0, resume=True, on_part=lambda s: again.append(s.id))
    assert counts["reused"] == 2 and counts["run"] == 2
    assert not set(again) & set(seen)
    assert same_file(out, clean_run)
    assert not sweep.parts_dir(out).exists()


def test_resume_reruns_parts_of_a_changed_scenario(small_file, tmp_path):
    out = tmp_path / "changed.h5"
    sw = sweep_config.load(small_file)

    def stop(scenario) -> None:  # noqa: ANN001
        raise Interrupt

    with pytest.raises(Interrupt):
        sweep.run(sw, out, workers=0, on_part=stop)
    changed = sweep_config.load(small_file, {"trial.patients": 200})
    counts = sweep.run(changed, out, workers=0, resume=True)
    assert counts == {"scenarios": 4, "reused": 0, "run": 4, "discarded": 1}


def test_keep_patients_stacks_patient_outcomes_along_scenario(tmp_path):
    text = top(SMALL.replace('"trial.patients" = 300', '"trial.patients" = 150'), 'keep = "patients"')
    sw = sweep_config.load(write(tmp_path, text))
    out = tmp_path / "patients.h5"
    sweep.run(sw, out, workers=0)
    with sweep.read(out) as ds:
        assert ds.pfs_time_days.dims == ("scenario", "arm", "patient")
        assert ds.sizes["patient"] == 150 and "cycle" not in ds.dims
        assert ds.pfs_time_days.attrs["units"] == "day" and ds.pfs_time_days.attrs["long_name"]  # kept from parts
        assert ds.pfs_hr.attrs["long_name"] and "history" in ds.attrs and "summary_json" not in ds.attrs
        direct = engine.run(sw.scenarios[2].config, keep="patients")
        np.testing.assert_array_equal(ds.pfs_time_days.values[2], direct.pfs_time_days.values)
        np.testing.assert_array_equal(ds.bed_gy_total.values[2], direct.bed_gy_total.values)
        assert np.isfinite(ds.pfs_hr.sel(arm="iluminet")).all()


@pytest.mark.slow
def test_kill_minus_nine_then_resume_gives_the_clean_file(tmp_path):
    text = SMALL.replace('values = [0.0, 2.0]', 'values = [0.0, 0.5, 1.0, 2.0]').replace(
        '"trial.patients" = 300', '"trial.patients" = 1000')
    path = write(tmp_path, text)
    out = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "sim.cli", "sweep", str(path), "-o", str(out), "--workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 120
    while len(list(sweep.parts_dir(out).glob("*.h5"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(sweep.parts_dir(out).glob("*.h5")))
    assert not out.exists() and 2 <= done < 8
    subprocess.run([*cmd, "--resume"], check=True, capture_output=True, cwd=ROOT)
    clean = tmp_path / "clean.h5"
    sweep.run(sweep_config.load(path), clean, workers=0)
    assert same_file(out, clean)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.h5", "killed.h5", "sweep.toml"]


# --------------------------------------------------------------------------------------------------
# Clusters and report


def test_slurm_and_pbs_job_scripts(capsys):
    example = CONFIGS / "sweeps" / "kidney_target.toml"
    assert main(["sweep", str(example), "--cluster", "slurm", "--print-job-script"]) == 0
    script = capsys.readouterr().out
    for line in ("#SBATCH -p normal", "#SBATCH -A myproject", "#SBATCH --cpus-per-task=16", "#SBATCH -t 02:00:00",
                 "module load python/3.11", "export NUMBA_NUM_THREADS=2", "--nworkers 8"):
        assert line in script
    assert main(["sweep", str(example), "--cluster", "pbs", "--print-job-script"]) == 0
    script = capsys.readouterr().out
    assert "#PBS -q normal" in script and "ncpus=16" in script and "export NUMBA_NUM_THREADS=2" in script


def test_cluster_needs_a_cluster_section(small_file, capsys):
    assert main(["sweep", str(small_file), "--cluster", "slurm", "--print-job-script"]) == 2
    assert "needs a [cluster] section" in capsys.readouterr().err


def test_report_recognises_a_sweep_file(clean_run, tmp_path, capsys):
    folder = tmp_path / "report"
    assert main(["report", str(clean_run), "-o", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["index.md", "sweep_os_hr.png", "sweep_pfs_hr.png",
                                                        "sweep_pfs_rmst.png", "sweep_tradeoff.png"]
    page = (folder / "index.md").read_text()
    assert "PFS HR (95 % CI)" in page and "RMST PFS gain (mo)" in page and "arms.iluminet.kidney_bed_limit_gy" in page
    with sweep.read(clean_run) as ds:
        assert all(str(s) in page for s in ds.scenario.values)


@pytest.mark.parametrize(("cores", "dask"), [(2, False), (3, True)])
def test_default_runs_in_process_on_two_cores(small_file, clean_run, tmp_path, monkeypatch, cores, dask):
    """Without --workers, a sweep starts Dask only with more than IN_PROCESS_CORES cores; the file is the same."""
    started = []

    def no_dask(*args, **kwargs):
        started.append(args)
        raise RuntimeError("Dask would start here")

    monkeypatch.setattr(sweep, "available_cores", lambda: cores)
    monkeypatch.setattr(sweep, "_client", no_dask)
    out = tmp_path / "default.h5"
    if dask:
        with pytest.raises(RuntimeError, match="Dask would start here"):
            sweep.run(sweep_config.load(small_file), out)
        assert started
        return
    sweep.run(sweep_config.load(small_file), out)
    assert not started and same_file(out, clean_run)


def test_sweep_table_says_which_arms_its_columns_compare(clean_run):
    import io
    import json

    from rich.console import Console

    from sim import report

    with sweep.read(clean_run) as ds:
        out = io.StringIO()
        report.print_sweep_table(ds, Console(file=out, width=400, color_system=None))
        base = config.validate(json.loads(ds.attrs["base_config_json"]), "base")
        reference = base.arm(base.reference_arm())
        compared = [a for a in base.arms if a.name != reference.name]
    text = out.getvalue()
    assert "Columns: " in text and f"each against {reference.label or reference.name}" in text
    assert all((a.label or a.name) in text for a in compared)


def test_sweep_and_its_report_print_json(small_file, tmp_path, capsys):
    import json

    out = tmp_path / "small.h5"
    argv = ["sweep", str(small_file), "-o", str(out), "--workers", "0", "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    with sweep.read(out) as ds:  # CF global attributes; history names the command (issue 20)
        assert ds.attrs["Conventions"] == "CF-1.10" and ds.attrs["title"].startswith("rptsim sweep small: 4 scenarios")
        assert ds.attrs["history"].endswith(f": rptsim {shlex.join(argv)} (rptsim {ds.attrs['rptsim_version']})")
    assert printed["output"] == str(out) and printed["run"] == printed["scenarios"] == len(printed["rows"]) > 1
    assert printed["columns"].startswith("Columns: ") and "PFS HR (95 % CI)" in printed["rows"][0]
    assert main(["report", str(out), "-o", str(tmp_path / "page"), "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["index"] == str(tmp_path / "page" / "index.md") and "sweep_pfs_hr.png" in page["figures"]
    assert all((tmp_path / "page" / f).is_file() for f in page["figures"])
