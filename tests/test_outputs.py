"""HDF5 outputs: schema, units, provenance, round trip through xarray and plain h5py, atomic writes."""

import json
import os
import shlex
import subprocess
import sys

import h5py
import numpy as np
import pytest
import xarray as xr

from sim import analysis, engine, outcomes
from sim.units import DAYS_PER_MONTH

from .conftest import load_small


def test_dataset_schema(netter1_dataset):
    ds = netter1_dataset
    lesions = json.loads(ds.attrs["config_json"])["lesions"]["max_lesions"]
    assert dict(ds.sizes) == {"arm": 2, "patient": 400, "cycle": 4, "organ": 2, "lesion": lesions, "blood_line": 4}
    assert list(ds.organ.values) == ["kidney", "marrow"]
    assert list(ds.blood_line.values) == ["platelets", "neutrophils", "lymphocytes", "haemoglobin"]
    assert list(ds.adverse_event.values) == ["thrombocytopenia", "neutropenia", "lymphopenia", "anaemia"]
    assert ds.blood_nadir.attrs["units"] == "blood_line_units" and list(ds.blood_line_units.values)[-1] == "g/dL"
    for name in ("activity_gbq", "cycle_time_days", "delay_days"):
        assert ds[name].dims == ("arm", "patient", "cycle") and ds[name].attrs["units"]
    for name in ("dose_gy", "dose_measured_gy", "bed_gy"):
        assert ds[name].dims == ("arm", "patient", "cycle", "organ") and ds[name].attrs["units"] == "Gy"
    for name in ("lesion_dose_gy", "lesion_bed_gy"):
        assert ds[name].dims == ("arm", "patient", "cycle", "lesion")
    for name in ("blood_nadir", "blood_grade", "blood_end"):
        assert ds[name].dims == ("arm", "patient", "cycle", "blood_line")
    assert ds.blood_worst_grade.dims == ("arm", "patient", "blood_line")
    for name in ("pfs_time_days", "pfs_event", "os_time_days", "os_event", "death_cause", "best_response",
                 "cycles_given"):
        assert ds[name].dims == ("arm", "patient")
    assert ds.age_years.dims == ("patient",)
    assert ds.best_response.attrs["flag_meanings"].split()[1] == "complete_response"
    cfg = json.loads(ds.attrs["config_json"])
    assert cfg["trial"]["patients"] == 400 and ds.attrs["seed"] == str(cfg["trial"]["seed"])
    assert ds.attrs["schema_version"] == outcomes.SCHEMA_VERSION and ds.attrs["rptsim_version"]


def test_run_file_carries_cf_attributes_and_history_names_the_command(tmp_path, capsys, netter1_dataset):
    """CF global attributes beside the existing provenance (same schema version); ``history`` names the command
    line that wrote the file, or the Python API."""
    from sim import cli

    from .conftest import CONFIGS

    out = tmp_path / "n1.h5"
    argv = ["run", str(CONFIGS / "netter1.toml"), "-o", str(out), "--patients", "50", "--json"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    with outcomes.read(out) as ds:  # the reader's schema check passes: no version bump for global attributes
        attrs = dict(ds.attrs)
        unnamed = [v for v in (*ds.data_vars, *ds.coords) if "long_name" not in ds[v].attrs]
    assert attrs["Conventions"] == "CF-1.10" and attrs["title"].startswith("rptsim outcomes of NETTER-1: 50 patients")
    assert attrs["history"] == (f"{attrs['created_utc'].replace('+00:00', 'Z')}: rptsim {shlex.join(argv)} "
                                f"(rptsim {attrs['rptsim_version']})")
    assert "\n" not in attrs["history"] and attrs["schema_version"] == outcomes.SCHEMA_VERSION
    assert {"config_json", "seed", "git_commit", "summary_sha256"} <= set(attrs)  # the provenance is kept
    assert ": Python API (" in netter1_dataset.attrs["history"]  # engine.run outside the command line
    assert unnamed == [], unnamed  # every variable and coordinate says what it is


def test_physical_consistency(netter1_dataset):
    ds = netter1_dataset
    assert np.all(ds.pfs_time_days <= ds.os_time_days)
    assert np.all(ds.bed_gy >= ds.dose_gy)
    assert np.all((ds.lesion_bed_gy >= ds.lesion_dose_gy) | ds.lesion_volume_ml.isnull())
    given = ds.activity_gbq > 0
    assert np.array_equal(given.sum("cycle"), ds.cycles_given)
    assert np.array_equal(np.isnan(ds.cycle_time_days), ~given)
    assert float(ds.activity_gbq.sel(arm="control").sum()) == 0.0
    # blood nadirs exist exactly for the cycles given, and their grades follow CTCAE v5 thresholds
    assert np.array_equal(np.isnan(ds.blood_nadir), ~given.broadcast_like(ds.blood_nadir))
    assert np.array_equal(np.isnan(ds.blood_end), ~given.broadcast_like(ds.blood_end))
    assert np.all((ds.blood_end >= ds.blood_nadir - 1e-9).where(given, True))
    nadir = ds.blood_nadir.sel(blood_line="platelets").where(given)
    expected_grade = (nadir < 150).astype(int) + (nadir < 75) + (nadir < 50) + (nadir < 25)
    assert np.array_equal(expected_grade.where(given, 0), ds.blood_grade.sel(blood_line="platelets"))
    anc = ds.blood_nadir.sel(blood_line="neutrophils").where(given)
    anc_grade = (anc < 2.0).astype(int) + (anc < 1.5) + (anc < 1.0) + (anc < 0.5)
    assert np.array_equal(anc_grade.where(given, 0), ds.blood_grade.sel(blood_line="neutrophils"))
    assert np.all(ds.blood_worst_grade >= ds.blood_grade.max("cycle"))
    assert np.all((ds.renal_grade3_time_days <= ds.os_time_days) & (ds.egfr_end_ml_min >= 0))
    assert np.array_equal(np.isnan(ds.mds_aml_day), ds.mds_aml == 0)
    assert np.all(ds.delay_days >= 0)


def test_round_trip_xarray_and_h5py(netter1_dataset, tmp_path):
    path = tmp_path / "out.h5"
    outcomes.write(netter1_dataset, path)
    back = outcomes.read(path)
    xr.testing.assert_identical(back.load(), netter1_dataset)
    back.close()
    with h5py.File(path, "r") as f:
        assert f["pfs_time_days"].shape == (2, 400)
        assert f["dose_gy"].compression == "gzip" and f["dose_gy"].shape == (2, 400, 4, 2)
        np.testing.assert_array_equal(f["os_event"][...], netter1_dataset.os_event.values)
        assert json.loads(f.attrs["config_json"])["trial"]["name"] == "NETTER-1"
    assert not list(tmp_path.glob(".*tmp"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it, not mkstemp's 0600


def test_failed_write_keeps_previous_file(netter1_dataset, tmp_path):
    path = tmp_path / "out.h5"
    outcomes.write(netter1_dataset, path)
    before = path.read_bytes()

    def broken(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        outcomes.write_atomic(path, broken)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_next_write_removes_temporary_files_of_dead_writers(netter1_dataset, tmp_path):
    path = tmp_path / "out.h5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{outcomes._tmp_prefix(path, dead.pid)}abc.tmp"
    live = tmp_path / f"{outcomes._tmp_prefix(path, os.getpid())}def.tmp"  # a writer still running: kept
    other = tmp_path / ".other.h5.host.1.x.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    outcomes.write(netter1_dataset, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.h5", live.name, other.name])


def test_read_rejects_foreign_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    xr.Dataset({"x": ("a", [1, 2])}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(outcomes.NotOurFileError, match="not an rptsim outcomes file"):
        outcomes.read(foreign)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(outcomes.NotOurFileError, match="not a readable"):
        outcomes.read(text)


def test_read_rejects_other_schema_versions(netter1_dataset, tmp_path):
    old = tmp_path / "old.h5"
    outcomes.write(netter1_dataset.assign_attrs(schema_version=outcomes.SCHEMA_VERSION + 1), old)
    with pytest.raises(outcomes.NotOurFileError, match=f"schema version {outcomes.SCHEMA_VERSION + 1}, this rptsim"):
        outcomes.read(old)


def test_summary_keys(netter1_dataset):
    s = analysis.summary(netter1_dataset)
    assert s["n_patients"] == 400 and set(s["arms"]) == {"lu177_dotatate", "control"}
    keys = {"n_patients", "median_pfs_months", "median_os_months", "pfs_at_months", "os_at_months",
            "objective_response_rate", "cycles_median", "cycles_mean", "cumulative_activity_gbq_median",
            "kidney_dose_gy_median", "kidney_bed_gy_median", "marrow_dose_gy_median", "tumour_dose_gy_median",
            "grade3plus_thrombocytopenia_rate", "grade3plus_neutropenia_rate", "grade3plus_lymphopenia_rate",
            "grade3plus_haematological_rate",
            "grade3plus_renal_rate",
            "mds_aml_rate", "dose_reductions_rate", "delays_rate"}
    for arm in s["arms"].values():
        assert keys <= set(arm)
        assert set(arm["pfs_at_months"]) == {"6", "12", "20", "24"}
    lu = s["arms"]["lu177_dotatate"]
    assert lu["cumulative_activity_gbq_median"] == pytest.approx(29.6)
    for arm in s["arms"].values():
        assert len(arm["median_pfs_ci"]) == 2 and 0 < arm["rmst_pfs_months"] <= 24.0
        low, high = arm["median_pfs_ci"]
        assert low <= arm["median_pfs_months"] and (high is None or arm["median_pfs_months"] <= high)
    assert s["reference_arm"] == "control"
    comp = s["comparisons"]["lu177_dotatate vs control"]
    endpoint_keys = {"{e}_hr", "{e}_hr_robust_ci", "rmst_{e}_difference_months", "rmst_{e}_difference_ci",
                     "{e}_at_months_difference", "{e}_at_months_difference_ci"}
    assert set(comp) == {k.format(e=e) for k in endpoint_keys for e in ("pfs", "os")} | {
        "objective_response_rate_difference", "objective_response_rate_difference_ci",
        "easl_index_response_rate_difference", "easl_index_response_rate_difference_ci", "toxicity_rate_differences",
        "individual"}
    assert comp["pfs_hr_robust_ci"][0] < comp["pfs_hr"] < comp["pfs_hr_robust_ci"][1] < 1.0
    for rate in ("grade3plus_renal_rate", "grade3plus_thrombocytopenia_rate", "mds_aml_rate"):
        d = comp["toxicity_rate_differences"]
        assert d[rate] == pytest.approx(lu[rate] - s["arms"]["control"][rate], abs=2e-4)  # rates rounded to 1e-4
        assert d[f"{rate}_ci"][0] <= d[rate] <= d[f"{rate}_ci"][1]
    assert set(comp["individual"]) == {"horizon_months", "threshold_months", "pfs", "os"}
    json.dumps(s, allow_nan=False)


def test_cumulative_incidences_without_censoring_are_the_event_fractions():
    """Without dropout nobody is censored before 60 months (follow-up runs 60 months past the last entry), so the
    Aalen-Johansen incidence at 24 and 60 months is the share of patients with the event by then."""
    cfg = load_small("netter1", patients=2000, **{"trial.dropout_per_year": 0.0})
    ds = outcomes.patient_level(engine.run(cfg))
    a = ds.sel(arm="lu177_dotatate")
    summary = analysis.arm_summary(ds, "lu177_dotatate", cfg)
    assert (a.os_time_days.values[a.os_event.values == 0] >= 60 * DAYS_PER_MONTH - 1e-6).all()
    renal, mds = a.renal_grade3_event.values == 1, a.mds_aml.values == 1
    for months in (24, 60):
        horizon = months * DAYS_PER_MONTH
        expected_renal = np.mean(renal & (a.renal_grade3_time_days.values <= horizon))
        expected_mds = np.mean(mds & (a.mds_aml_day.values <= horizon))
        assert summary["renal_grade3plus_incidence"][str(months)] == pytest.approx(expected_renal, abs=1e-4)
        assert summary["mds_aml_incidence"][str(months)] == pytest.approx(expected_mds, abs=1e-4)
    assert summary["renal_grade3plus_incidence"]["60"] > 0 and summary["mds_aml_incidence"]["60"] > 0
