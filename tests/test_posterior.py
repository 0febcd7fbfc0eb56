"""rptsim calibrate --posterior: the synthetic likelihood by hand, the sampler against a conjugate posterior,
recovery of known parameters from targets the simulator generated, uninformed parameters keeping their prior, the
posterior file, and the command's errors."""

import contextlib
import io
import json
import math

import numpy as np
import pytest
from scipy import stats

from sim import analysis, calibrate, cli, config, engine, outcomes, posterior, priors
from sim.config import ConfigError, UncertainParameter
from sim.validate import Target

from .conftest import CONFIGS

TRUTH = {"cohort.covariates.tumour_alpha_per_gy.median": 0.05, "cohort.covariates.doubling_time_months.median": 9.0}
UNINFORMED = "kidney.lkb_m"  # kidney NTCP: no efficacy endpoint depends on it
PATIENTS = 400
Z = 1.959963984540054  # standard normal 97.5 % quantile
# (endpoint, summary keys, published SE): SEs of the order of NETTER-1's (trial_targets.toml: (high - low) / 3.92)
ENDPOINTS = [("control median PFS", ["arms", "control", "median_pfs_months"], 0.85),
             ("Lu PFS at 20 months", ["arms", "lu177_dotatate", "pfs_at_months", "20"], 0.07),
             ("control PFS at 12 months", ["arms", "control", "pfs_at_months", "12"], 0.05),
             ("Lu ORR", ["arms", "lu177_dotatate", "objective_response_rate"], 0.03)]


def target(published: float, low: float, high: float, name: str = "t") -> Target:
    return Target(trial="hand", config="x.toml", endpoint=name, path=("x",), published=published, low=low,
                  high=high, source="test")


def row(simulated: float | None, low: float | None = None, high: float | None = None) -> dict:
    return {"simulated": simulated, "low": low, "high": high}


def test_log_likelihood_by_hand():
    a = target(10.0, 10.0 - Z, 10.0 + Z)  # SE 1
    b = target(0.5, 0.5 - 0.2 * Z, 0.5 + 0.2 * Z)  # SE 0.2
    # misses of 2 SE and 0.25 SE: -(4 + 0.0625) / 2
    assert posterior.log_likelihood([row(12.0), row(0.45)], [a, b]) == pytest.approx(-2.03125)
    # a Monte Carlo interval of SE 1 on the first: variance 1 + 1, and the normal's log(2) normalisation
    assert posterior.log_likelihood([row(12.0, 12.0 - Z, 12.0 + Z), row(0.5)], [a, b]) == pytest.approx(
        -0.5 * (4 / 2 + math.log(2)))
    # a statistic the run cannot produce costs half the point fit's penalty
    assert posterior.log_likelihood([row(None), row(0.5)], [a, b]) == -0.5 * calibrate.MISSING_PENALTY


def normal(name: str, mean: float, sd: float, low: float | None = None, high: float | None = None):
    prior = {"dist": "normal", "mean": mean, "sd": sd} | ({"low": low, "high": high} if low is not None else {})
    return UncertainParameter(path=f"x.{name}", name=name, prior=prior, source="test")


def test_sampler_matches_a_conjugate_posterior_and_keeps_an_uninformed_prior():
    """Prior N(0, 1) and likelihood N(1; theta, 0.5^2): posterior N(0.8, 0.2) (conjugate normal); the second
    parameter, absent from the likelihood, keeps its truncated-normal prior."""
    params = [normal("a", 0.0, 1.0), normal("b", 2.0, 1.0, 0.0, 5.0)]

    def log_l(th):
        return -0.5 * ((th[0] - 1.0) / 0.5) ** 2

    chain = posterior.sample(log_l, params, walkers=16, steps=3000, burn=500, thin=1, seed=3)
    a, b = chain.values[:, 0], chain.values[:, 1]
    assert a.mean() == pytest.approx(0.8, abs=0.03) and a.std() == pytest.approx(math.sqrt(0.2), rel=0.05)
    assert posterior.prior_sd(params[1].prior) == pytest.approx(stats.truncnorm.std(-2, 3, 2, 1), rel=1e-3)
    assert b.std() / posterior.prior_sd(params[1].prior) == pytest.approx(1.0, abs=0.08)
    assert b.min() >= 0.0 and b.max() <= 5.0  # -inf outside the prior's support
    assert np.all(chain.log_prior == pytest.approx(stats.norm.logpdf(a) + stats.truncnorm.logpdf(b, -2, 3, 2, 1)))
    assert 0.2 < chain.acceptance_fraction < 0.9 and np.all(chain.autocorr_time < (3000 - 500) / 50)
    first, second = (posterior.sample(log_l, params, 16, 50, 10, 1, seed=3) for _ in range(2))
    assert np.array_equal(first.values, second.values)  # seeded


def test_weighted_quantile():
    x = np.random.default_rng(0).normal(size=101)
    q = np.array([0.025, 0.5, 0.975])
    assert posterior.weighted_quantile(x, np.ones(101), q) == pytest.approx(np.quantile(x, q, method="hazen"))
    # weights 0.9 / 0.1 on 0 and 1: mid-masses at 0.45 and 0.95, so the median lies a tenth of the way to 1
    assert posterior.weighted_quantile(np.array([1.0, 0.0]), np.array([0.1, 0.9]), 0.5) == pytest.approx(0.1)


def write_synthetic(folder):
    """A scenario extending netter1.toml and targets the model generated at ``TRUTH`` (away from the priors' medians,
    where the endpoints still respond to tumour alpha)."""
    scenario = folder / "synthetic.toml"
    scenario.write_text(f'extends = "{(CONFIGS / "netter1.toml").as_posix()}"\n')
    summary = analysis.summary(engine.run(config.load(scenario, {"trial.patients": PATIENTS, **TRUTH})))
    lines = []
    for name, keys, se in ENDPOINTS:
        value = summary
        for k in keys:
            value = value[k]
        lines += ["[[targets]]", 'trial = "self"', 'config = "synthetic.toml"', f'endpoint = "{name}"',
                  f"path = {json.dumps(keys)}", f"published = {value}", f"low = {value - Z * se}",
                  f"high = {value + Z * se}", 'source = "generated by the simulator"', ""]
    targets = folder / "targets.toml"
    targets.write_text("\n".join(lines))
    return scenario, targets


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("post"))


@pytest.mark.slow
def test_recovers_known_parameters(synthetic):
    """The 95 % interval covers the values that generated the targets and is narrower than the prior's."""
    scenario, targets = synthetic
    ds = posterior.run(posterior.plan(scenario, list(TRUTH), targets, patients=PATIENTS, walkers=8, steps=50, burn=25))
    for r in posterior.summary_rows(ds):
        low, high = r["posterior_95"]
        assert low < TRUTH[r["path"]] < high, r
        assert high - low < 0.75 * (r["prior_95"][1] - r["prior_95"][0]), r
    assert ds.attrs["calibrated_on"] == "synthetic.toml" and ds.sizes["draw"] == 8 * 25


def test_uninformed_parameter_leaves_the_likelihood_unchanged(synthetic):
    """Common random numbers: the kidney NTCP slope changes no efficacy endpoint, so log L is flat along it and its
    posterior is its prior (the sampler keeps such a prior: the conjugate test above)."""
    scenario, targets_file = synthetic
    targets = calibrate.targets_for(scenario, targets_file)
    cfg = config.load(CONFIGS / "netter1.toml")
    params = [p for p in cfg.uncertainty.parameters if p.path in (*TRUTH, UNINFORMED)]
    log_l = posterior.simulator(scenario, params, targets, {"trial.patients": 300, "trial.seed": 1})
    assert [p.path for p in params] == [*TRUTH, UNINFORMED]
    assert log_l(np.array([0.08, 8.0, 0.06])) == log_l(np.array([0.08, 8.0, 0.25]))
    assert log_l(np.array([0.08, 8.0, 0.06])) != log_l(np.array([0.08, 6.0, 0.06]))  # an informed one moves it


@pytest.fixture(scope="module")
def cli_run(synthetic):
    """A tiny posterior run through the command line (files, not statistics)."""
    scenario, targets = synthetic
    out = scenario.parent / "out" / "post.h5"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        rc = cli.main(["calibrate", str(scenario), "--posterior", "--params", *TRUTH, "--targets-file", str(targets),
                       "--patients", "300", "--walkers", "4", "--steps", "4", "--burn", "1", "-o", str(out)])
    assert rc == 0
    return scenario, out, printed.getvalue()


def test_cli_writes_draws_median_config_figure_and_json(cli_run):
    scenario, out, printed = cli_run
    assert "Posterior of" in printed and "tumour_alpha" in printed and str(out.with_suffix(".png")) in printed
    assert "fewer than 50 autocorrelation times" in printed  # 3 kept steps
    ds = posterior.read(out)
    median = posterior.medians(ds)
    fitted = config.read_scenario(out.with_suffix(".toml"))
    assert out.with_suffix(".toml").read_text().count("extends = ") == 1
    for path, value in median.items():
        assert config.get_dotted(fitted, path) == pytest.approx(value, rel=1e-5)
    assert config.load(out.with_suffix(".toml")).arms == config.load(scenario).arms
    summary = json.loads(out.with_suffix(".json").read_text())
    assert [r["path"] for r in summary["parameters"]] == list(TRUTH)
    assert summary["walkers"] == 4 and summary["steps"] == 4 and summary["burn"] == 1 and summary["patients"] == 300
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_posterior_file_round_trip(cli_run):
    scenario, out, _ = cli_run
    ds = posterior.read(out)
    assert ds.attrs["schema"] == "rptsim-posterior" and int(ds.attrs["schema_version"]) == 1
    assert ds.attrs["Conventions"] == "CF-1.10" and ": rptsim calibrate " in ds.attrs["history"]
    assert ds.attrs["calibrated_on"] == "synthetic.toml"
    assert json.loads(ds.attrs["family"]) == ["synthetic.toml", "netter1.toml"]
    assert ds.sizes["draw"] == 4 * 3 and ds["weight"].values.sum() == pytest.approx(1.0)
    labels = [p.label for p in posterior.parameters_of(ds)]
    assert labels == ["tumour_alpha", "doubling_time"]
    for label, path in zip(labels, TRUTH, strict=True):
        assert ds[label].attrs["config_path"] == path and ds[label].dtype == np.float64
        assert json.loads(ds[label].attrs["prior"])["dist"] == "lognormal"
    assert np.all(np.isfinite(ds["log_likelihood"].values)) and np.all(np.isfinite(ds["log_prior"].values))
    simulated = json.loads(ds.attrs["config_json"])
    for path, value in posterior.medians(ds).items():
        assert config.get_dotted(simulated, path) == pytest.approx(value)
    assert simulated["trial"]["patients"] == 300
    assert [t["endpoint"] for t in json.loads(ds.attrs["targets_json"])] == [e[0] for e in ENDPOINTS]


def test_draws_resample_by_weight(cli_run, tmp_path):
    scenario, out, _ = cli_run
    two = posterior.read(out).isel(draw=[0, 1])
    two["weight"].values[:] = [0.9, 0.1]
    posterior.write(tmp_path / "two.h5", two)
    ds = posterior.read(tmp_path / "two.h5")
    params = posterior.parameters_of(ds)
    x = posterior.draws(ds, params, 20_000, seed=5, config_path=scenario)
    first = ds[params[0].label].values[0]
    assert x.shape == (20_000, 2) and np.mean(x[:, 0] == first) == pytest.approx(0.9, abs=0.01)
    assert np.array_equal(x, posterior.draws(ds, params, 20_000, seed=5, config_path=scenario))
    swapped = posterior.draws(ds, params[::-1], 20_000, seed=5, config_path=scenario)
    assert np.array_equal(swapped, x[:, ::-1])  # columns follow the caller's parameters


def test_draws_refuse_another_scenario_or_parameter_set(cli_run, tmp_path):
    scenario, out, _ = cli_run
    ds = posterior.read(out)
    params = posterior.parameters_of(ds)
    with pytest.raises(ConfigError, match=r"calibrated on synthetic\.toml.*vision\.toml"):
        posterior.draws(ds, params, 10, 0, config_path=CONFIGS / "vision.toml")
    child = tmp_path / "child.toml"  # a scenario extending the calibrated one may use its posterior
    child.write_text(f'extends = "{scenario.as_posix()}"\n')
    assert posterior.draws(ds, params, 10, 0, config_path=child).shape == (10, 2)
    declared = config.load(scenario).uncertainty.parameters
    with pytest.raises(ConfigError, match=r"tumour_alpha_per_gy.*kidney\.lkb_m"):
        posterior.draws(ds, declared, 10, 0, config_path=scenario)


def test_read_refuses_foreign_files(netter1_run, tmp_path):
    outcomes.write(netter1_run, tmp_path / "run.h5")
    with pytest.raises(ConfigError, match="not an rptsim posterior file"):
        posterior.read(tmp_path / "run.h5")
    (tmp_path / "text.h5").write_text("not HDF5")
    with pytest.raises(ConfigError, match="not a readable"):
        posterior.read(tmp_path / "text.h5")


def test_vision_priors_are_valid_and_centred_on_the_config():
    cfg = config.load(CONFIGS / "vision.toml")
    data = config.read_scenario(CONFIGS / "vision.toml")
    params = priors.check(cfg, data, "vision.toml")
    assert {p.label for p in params} >= {"tumour_alpha", "doubling_time", "new_lesion_rate", "kidney_bed50",
                                         "kidney_lkb_m", "marrow_alpha", "salivary_gy_per_gbq"}
    for p in params:
        value = config.get_dotted(data, p.path)
        if p.prior.dist == "lognormal":
            assert p.prior.median == pytest.approx(value), p.path
        else:
            assert p.prior.low < value < p.prior.high, p.path


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--params", "kidney.nope"], "--params kidney.nope: not declared"),
    (["--walkers", "0"], "--walkers = 0: must be >= 4"),
    (["--walkers", "3"], "--walkers = 3"),
    (["--steps", "5", "--burn", "5"], "--burn = 5: must be in [0, 4]"),
    (["--thin", "0"], "--thin = 0"),
    (["--patients", "0"], "trial.patients"),
    (["--max-evals", "5"], "--max-evals = 5: only for the point fit"),
])
def test_posterior_flag_errors_exit_2_and_write_nothing(synthetic, capsys, flags, fragment):
    scenario, targets = synthetic
    out = scenario.parent / "bad" / "p.h5"
    params = [] if flags[0] == "--params" else ["--params", *TRUTH]
    rc = cli.main(["calibrate", str(scenario), "--posterior", "--targets-file", str(targets), *params, *flags,
                   "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and err.count("\n") == 1, err
    assert not out.parent.exists()


def test_posterior_needs_declared_parameters(tmp_path, capsys):
    text = (CONFIGS / "netter1.toml").read_text()
    bare = tmp_path / "netter1.toml"  # NETTER-1's targets, no [[uncertainty.parameters]]
    bare.write_text(text[:text.index("[[uncertainty.parameters]]")])
    rc = cli.main(["calibrate", str(bare), "--posterior", "-o", str(tmp_path / "out" / "p.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "no [[uncertainty.parameters]] declared" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--walkers", "8"], "--walkers: only with --posterior"),
    ([], "--params: required for the point fit"),
    (["--params", "kidney.lkb_m"], "-o/--output: required for the point fit"),
])
def test_point_fit_flag_errors(capsys, flags, fragment):
    rc = cli.main(["calibrate", str(CONFIGS / "netter1.toml"), *flags])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err, err


def test_posterior_needs_a_target_that_is_not_informational(tmp_path, capsys):
    rc = cli.main(["calibrate", str(CONFIGS / "guided_vs_fixed.toml"), "--posterior", "--targets", "Erasmus",
                   "-o", str(tmp_path / "out" / "p.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "--targets Erasmus: only informational targets of netter1.toml" in err, err
    assert not (tmp_path / "out").exists()
