"""Runs that do not keep per-cycle arrays: chunks reduced on the fly give the same summary as one piece."""

import json
import math

import numpy as np
import pytest
import xarray as xr

from sim import analysis, cli, engine, kernel_outputs, outcomes

from .conftest import CONFIGS, load_small


@pytest.fixture(scope="module")
def guided_cfg():
    # four arms: fixed, two kidney-guided ones with measurement error and costs, and a tumour-guided one
    return load_small("guided_vs_fixed", patients=1200)


@pytest.fixture(scope="module")
def whole(guided_cfg):
    """The reference: one chunk holding every per-cycle array."""
    return engine.run(guided_cfg, chunk_size=guided_cfg.trial.patients)


@pytest.mark.parametrize("keep", ["patients", "summary"])
def test_chunked_reduced_run_equals_whole_run(guided_cfg, whole, keep):
    reduced = engine.run(guided_cfg, chunk_size=257, keep=keep)
    assert "cycle" not in reduced.dims
    expected_summary = analysis.summary(whole)
    if keep == "summary":  # no covariates kept: no breakdown of the individual gains by covariate
        expected_summary = _without_covariate_breakdown(expected_summary)
    assert analysis.summary(reduced) == expected_summary
    expected = outcomes.patient_level(whole)
    if keep == "summary":
        assert "age_years" not in reduced and "entry_day" not in reduced
        expected = expected.drop_vars([v for v in expected.data_vars if v not in reduced.data_vars])
    xr.testing.assert_identical(reduced.drop_attrs(), expected.drop_attrs())


def test_totals_are_the_cycle_sums(whole):
    level = outcomes.patient_level(whole)
    np.testing.assert_allclose(level.activity_gbq_total, whole.activity_gbq.sum("cycle"), rtol=1e-15)
    np.testing.assert_array_equal(level.cycles_measured, whole.dosimetry_measured.sum("cycle"))
    np.testing.assert_array_equal(level.dose_reduced_any, whole.dose_reduced.max("cycle"))
    np.testing.assert_array_equal(level.delayed_any, (whole.delay_days > 0).any("cycle"))
    np.testing.assert_allclose(level.dose_gy_total, whole.dose_gy.sum("cycle"), rtol=1e-15)
    assert level.dose_gy_total.dims == ("arm", "patient", "organ")
    assert {t.name for t in kernel_outputs.TOTALS} <= set(level.data_vars)


def test_reduced_run_memory_does_not_grow_with_cycles(guided_cfg):
    """What a reduced run holds per patient and arm: the per-patient values only (~100 bytes and ~42 per lesion),
    well under the per-cycle arrays."""
    ds = engine.run(guided_cfg, chunk_size=300, keep="summary")
    n, arms = guided_cfg.trial.patients, len(guided_cfg.arms)
    held = sum(v.nbytes for v in ds.data_vars.values()) / (n * arms)
    cycles = int(max(getattr(a, "cycles", 0) for a in guided_cfg.arms))
    extent = {d: ds.sizes[d] for d in ("organ", "lesion", "blood_line")}
    per_cycle = sum(np.dtype(o.dtype).itemsize * cycles * math.prod(extent.get(d, 1) for d in o.dims)
                    for o in kernel_outputs.OUTPUTS if "cycle" in o.dims)
    assert held < 100 + 45 * extent["lesion"] < per_cycle and "age_years" not in ds and "cycle" not in ds.dims


def test_bad_keep_level(guided_cfg):
    with pytest.raises(ValueError, match="keep = 'all'"):
        engine.run(guided_cfg, keep="all")


def test_cli_keep_summary_writes_only_the_summary(tmp_path, capsys):
    out = tmp_path / "n1.h5"
    args = ["run", str(CONFIGS / "netter1.toml"), "--patients", "500", "--json", "--chunk-size", "123"]
    assert cli.main([*args, "-o", str(out), "--keep", "summary"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert not out.exists() and printed["output"] is None
    assert json.loads(out.with_suffix(".summary.json").read_text()) == printed
    full = tmp_path / "full.h5"
    assert cli.main([*args, "-o", str(full)]) == 0
    whole = json.loads(capsys.readouterr().out)
    whole = _without_covariate_breakdown(whole)
    assert {k: v for k, v in whole.items() if k != "output"} == {k: v for k, v in printed.items() if k != "output"}


def _without_covariate_breakdown(summary: dict) -> dict:
    """``summary`` as a ``--keep summary`` run gives it: without ``individual.<endpoint>.benefit_by_covariate``."""
    out = json.loads(json.dumps(summary))
    for comp in out["comparisons"].values():
        for endpoint in ("pfs", "os"):
            assert comp["individual"][endpoint].pop("benefit_by_covariate")
    return out


def test_cli_keep_patients_file_reports(tmp_path, capsys):
    out = tmp_path / "g.h5"
    rc = cli.main(["run", str(CONFIGS / "guided_vs_fixed.toml"), "--patients", "300", "-o", str(out),
                   "--keep", "patients", "--json"])
    assert rc == 0
    capsys.readouterr()
    ds = outcomes.read(out)
    assert "cycle" not in ds.dims and ds.attrs["keep"] == "patients" and "age_years" in ds
    ds.close()
    assert cli.main(["report", str(out), "-o", str(tmp_path / "rep")]) == 0
    made = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"km_pfs.png", "doses.png", "toxicity.png"} <= made and "swimmer.png" not in made


@pytest.mark.parametrize("chunk", ["0", "-5"])
def test_bad_chunk_size(tmp_path, capsys, chunk):
    rc = cli.main(["run", str(CONFIGS / "netter1.toml"), "-o", str(tmp_path / "x.h5"), "--chunk-size", chunk])
    assert rc == 2 and f"--chunk-size = {chunk}" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("chunk", [257, 333, 777])
def test_odd_chunk_sizes_give_bit_identical_outcomes(guided_cfg, whole, chunk):
    """Every array (outcomes and covariates) is the same bit for bit whatever the chunking: each patient's values
    come from its own streams, and the copula's correlation step sums each row in a fixed order."""
    chunked = engine.run(guided_cfg, chunk_size=chunk)
    for name, var in whole.data_vars.items():
        np.testing.assert_array_equal(chunked[name].values, var.values, err_msg=name)


def test_copula_step_is_the_matrix_product_row_by_row():
    from sim.kernels.copula import correlate

    rng = np.random.default_rng(5)
    z = rng.normal(size=(1000, 17))
    a = rng.normal(size=(17, 17))
    chol = np.linalg.cholesky(a @ a.T + 17 * np.eye(17))
    full = correlate(z, chol)
    np.testing.assert_allclose(full, z @ chol.T, rtol=1e-12, atol=1e-12)
    for rows in (slice(0, 1), slice(3, 260), slice(500, 1000)):  # any subset of rows: the same bits
        np.testing.assert_array_equal(correlate(z[rows], chol), full[rows])
