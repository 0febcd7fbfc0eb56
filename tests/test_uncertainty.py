"""rptsim uncertainty: the variance split, the trial size, and the command end to end (reproducible, resumable)."""

import json
import math

import numpy as np
import pytest

from sim import cli, config, priors, report, sweep, uncertainty

from .conftest import CONFIGS


def test_variance_split_recovers_a_known_share():
    """Estimates = effect(theta) + MC error with known variances: the parameter share is Var/(Var + se^2)."""
    rng = np.random.default_rng(1)
    effect = rng.normal(0.0, 2.0, 20_000)  # parameter variance 4
    se = np.full(effect.size, 1.0)  # MC variance 1
    out = uncertainty.variance_split(effect + rng.normal(0.0, se), se)
    assert out["parameter_variance_share"] == pytest.approx(0.8, abs=0.01)
    assert out["interval"][0] == pytest.approx(-1.96 * math.sqrt(5), rel=0.03)
    assert uncertainty.variance_split(rng.normal(0.0, 1.0, 5000), np.ones(5000))["parameter_variance_share"] < 0.05


def test_trial_size_is_schoenfelds():
    """HR 0.7, 80 % power, two-sided 5 %: 247 events (Schoenfeld 1981); with half the patients having an event,
    twice as many patients; HR 1 needs an infinite trial."""
    size = uncertainty.trial_size(np.log([0.7, 0.7, 1.0]), np.array([1.0, 0.5, 0.5]))
    assert size[0] == pytest.approx(247, abs=0.5) and size[1] == pytest.approx(2 * size[0])
    assert math.isinf(size[2])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("unc") / "unc.h5"
    args = ["uncertainty", str(CONFIGS / "guided_vs_fixed.toml"), "--draws", "6", "--patients", "300",
            "--workers", "0", "-o", str(out), "--json"]
    assert cli.main(args) == 0
    return out, args


def test_uncertainty_json_and_file(run):
    out, _ = run
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["draws"] == 6 and result["source"] == "prior"
    effects = result["comparisons"]["iluminet vs fixed_netter1"]
    for name in ("pfs_hr", "rmst_pfs_difference_months", "grade3plus_renal_rate_difference",
                 uncertainty.TRIAL_SIZE):
        e = effects[name]
        assert e["interval"][0] <= e["median"] <= e["interval"][1]
        assert 0.0 <= e["parameter_variance_share"] <= 1.0
    cfg = config.load(CONFIGS / "guided_vs_fixed.toml")
    params = cfg.uncertainty.parameters
    with sweep.read(out) as ds:
        assert ds.attrs["sweep_kind"] == "uncertainty" and ds.sizes["scenario"] == 6
        expected = priors.draw(params, 6, cfg.trial.seed)  # the draws are the priors' Latin hypercube
        for k, p in enumerate(params):
            np.testing.assert_allclose(ds[p.label].values, expected[:, k])
        seeds = ds[uncertainty.SEED_COORD].values
        assert len(set(seeds.tolist())) == 6  # each draw its own cohort
        hr = ds.pfs_hr.sel(arm="iluminet").values
        assert effects["pfs_hr"]["median"] == pytest.approx(np.median(hr), rel=1e-3)  # HRs rounded in the summary
    assert [d["parameter"] for d in result["drivers"]["iluminet vs fixed_netter1"]["pfs_hr"]] != []


def test_interrupted_run_resumes_to_the_same_answer(run, tmp_path, monkeypatch):
    out, args = run
    again = tmp_path / "again.h5"
    original = sweep.write_part
    written = []

    def stop_after_two(*a, **k):  # noqa: ANN002, ANN003
        original(*a, **k)
        written.append(1)
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "write_part", stop_after_two)
    rerun = [*args[:-3], "-o", str(again), "--json"]
    assert cli.main(rerun) == 130 and not again.exists()
    monkeypatch.setattr(sweep, "write_part", original)
    assert cli.main([*rerun, "--resume"]) == 0
    first, second = (json.loads(p.with_suffix(".json").read_text()) for p in (out, again))
    assert first["comparisons"] == second["comparisons"]


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--draws", "1"], "--draws = 1"),
    (["--posterior", "/nonexistent/post.h5"], "post.h5: posterior file not found"),
])
def test_bad_flags_exit_2_and_write_nothing(tmp_path, capsys, extra, fragment):
    out = tmp_path / "u.h5"
    rc = cli.main(["uncertainty", str(CONFIGS / "guided_vs_fixed.toml"), "--workers", "0", "--patients", "100",
                   "-o", str(out), *extra])
    assert rc == 2 and fragment in capsys.readouterr().err and not out.exists()


def test_config_without_uncertain_parameters(tmp_path, capsys):
    path = tmp_path / "plain.toml"
    text = (CONFIGS / "netter1.toml").read_text()
    path.write_text(text[: text.index("[[uncertainty.parameters]]")])
    rc = cli.main(["uncertainty", str(path), "--workers", "0", "-o", str(tmp_path / "u.h5")])
    assert rc == 2 and "no [[uncertainty.parameters]] declared" in capsys.readouterr().err


def test_report_of_an_uncertainty_file(run, tmp_path):
    out, _ = run
    folder = tmp_path / "report"
    assert cli.main(["report", str(out), "-o", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["index.md", "uncertainty_drivers.png",
                                                        "uncertainty_effects.png", "uncertainty_parameters.png"]
    page = (folder / "index.md").read_text()
    result = json.loads(out.with_suffix(".json").read_text())
    assert "## Effects" in page and "parameter share" in page
    for p in result["parameters"]:
        assert report.md(p["path"]) in page and report.md(p["source"]).split(" (")[0][:30] in page  # literal text


def test_a_damaged_posterior_file_is_refused_in_one_line(tmp_path, capsys):
    """A posterior file whose contents are broken (not only its schema) exits 2 before anything runs."""
    import xarray as xr

    from sim import posterior

    ds = xr.Dataset({"weight": ("draw", [0.5, np.nan])}, attrs={
        "schema": posterior.SCHEMA, "schema_version": posterior.SCHEMA_VERSION, "calibrated_on": "netter1.toml",
        "parameters_json": "[not json"})
    path = tmp_path / "post.h5"
    ds.to_netcdf(path, engine="h5netcdf")
    out = tmp_path / "u.h5"
    rc = cli.main(["uncertainty", str(CONFIGS / "guided_vs_fixed.toml"), "--posterior", str(path), "--workers", "0",
                   "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "not a valid posterior file" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()

