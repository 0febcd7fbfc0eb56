"""rptsim sensitivity: Sobol' and Morris indices recover known analytic values through the prior mapping, inert
parameters of the simulator get exactly zero, results do not depend on the worker count, and bad flags exit 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sim import priors, sensitivity, sweep
from sim.cli import main
from sim.config import Beta, Normal, UncertainParameter, Uniform

from .conftest import CONFIGS


def _param(name: str, prior) -> UncertainParameter:  # noqa: ANN001 - a Prior
    return UncertainParameter(path=f"test.{name}", name=name, prior=prior, source="test")


def _uniform(name: str, low: float, high: float) -> UncertainParameter:
    return _param(name, Uniform(dist="uniform", low=low, high=high))


def _within_ci(row: dict, key: str, true: float) -> bool:
    return abs(row[key] - true) <= row[f"{key}_conf"]


def test_sobol_recovers_the_ishigami_indices():
    """Ishigami y = sin x1 + a sin^2 x2 + b x3^4 sin x1, x ~ U(-pi, pi): analytic partial variances (Ishigami T,
    Homma T. ISUMA 1990; Sobol' IM, Levitan YL. Comput Phys Commun 1999;117:52) inside the bootstrap CIs."""
    a, b, pi = 7.0, 0.1, math.pi
    v1 = 0.5 * (1 + b * pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * pi**8 * (1 / 18 - 1 / 50)
    var = v1 + v2 + v13
    true = {"x1": (v1 / var, (v1 + v13) / var), "x2": (v2 / var, v2 / var), "x3": (0.0, v13 / var)}
    params = [_uniform(n, -pi, pi) for n in true]
    s = sensitivity.sample(params, "sobol", 1024, seed=1)
    assert s.unit.shape == (1024 * 5, 3) and len(s.values) == 1024 * 5  # N (D + 2) runs, all distinct
    x = s.values
    rows, note = sensitivity.indices(s, np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0]))
    assert note is None
    by = {r["parameter"]: r for r in rows}
    for name, (s1, st) in true.items():
        assert _within_ci(by[name], "S1", s1) and _within_ci(by[name], "ST", st), (name, by[name], s1, st)
    assert [r["parameter"] for r in rows] == ["x1", "x2", "x3"]  # ranked by ST: 0.558, 0.442, 0.244


def test_sobol_of_a_linear_model_follows_the_priors_variances():
    """y = sum a_i x_i with independent x_i: S1_i = ST_i = a_i^2 Var x_i / Var y, where Var x_i is the prior's
    (normal sd^2, uniform (high - low)^2 / 12, beta sd^2): the points are the priors' quantiles, not the unit cube's
    uniforms. A parameter y does not read has exactly zero indices."""
    params = [_param("normal", Normal(dist="normal", mean=5.0, sd=1.0)), _uniform("uniform", 0.0, 6.0),
              _param("beta", Beta(dist="beta", mean=0.5, sd=0.1)), _uniform("unused", 0.0, 1.0)]
    coef = np.array([2.0, 1.0, 10.0])
    variances = coef**2 * np.array([1.0, 36 / 12, 0.01])  # 4, 3, 1
    s = sensitivity.sample(params, "sobol", 2048, seed=3)
    rows, _ = sensitivity.indices(s, s.values[:, :3] @ coef)
    by = {r["parameter"]: r for r in rows}
    for name, v in zip(("normal", "uniform", "beta"), variances, strict=True):
        share = v / variances.sum()
        assert _within_ci(by[name], "S1", share) and _within_ci(by[name], "ST", share), (name, by[name], share)
    assert by["unused"]["S1"] == 0.0 and by["unused"]["ST"] == 0.0
    assert s.values[:, 0].std() == pytest.approx(1.0, rel=0.05)  # a normal of sd 1, not a uniform on [0, 1]


def test_morris_elementary_effects_of_a_linear_model_are_exact():
    """On a 4-level grid whose levels are the centres of 4 equal-probability strata (quantiles 1/8 ... 7/8), one
    step of Delta = 2/3 of the grid moves a U(low, high) parameter by Delta * 3/4 (high - low), so the elementary
    effect of a_i x_i is a_i (high - low) 3/4 on every trajectory: mu* = |mu| = that, sigma = 0."""
    params = [_uniform("wide", 0.0, 8.0), _uniform("narrow", 1.0, 2.0), _uniform("negative", -1.0, 3.0)]
    coef = np.array([0.5, 3.0, -2.0])
    s = sensitivity.sample(params, "morris", 12, seed=7)
    assert set(np.round(s.unit.ravel(), 12)) <= {1 / 8, 3 / 8, 5 / 8, 7 / 8}
    np.testing.assert_array_equal(s.values[s.inverse], np.column_stack(
        [priors.ppf(p.prior, s.unit[:, k]) for k, p in enumerate(params)]))  # distinct points cover every run
    assert len(np.unique(s.values, axis=0)) == len(s.values) < len(s.unit)  # trajectories share points
    rows, _ = sensitivity.indices(s, s.values @ coef)
    by = {r["parameter"]: r for r in rows}
    expected = {"wide": 0.5 * 8 * 0.75, "narrow": 3.0 * 1 * 0.75, "negative": -2.0 * 4 * 0.75}  # 3, 2.25, -6
    for name, effect in expected.items():
        assert by[name]["mu"] == pytest.approx(effect, rel=1e-9)
        assert by[name]["mu_star"] == pytest.approx(abs(effect), rel=1e-9)
        assert by[name]["sigma"] == pytest.approx(0.0, abs=1e-9)
    assert [r["parameter"] for r in rows] == ["negative", "wide", "narrow"]


def test_same_seed_same_sample_and_indices():
    params = [_uniform("a", 0.0, 1.0), _uniform("b", 0.0, 2.0)]
    for method in ("sobol", "morris"):
        one, two = (sensitivity.sample(params, method, 8, seed=5) for _ in range(2))
        np.testing.assert_array_equal(one.unit, two.unit)
        y = np.sin(3 * one.values[:, 0]) * one.values[:, 1]
        assert sensitivity.indices(one, y) == sensitivity.indices(two, y)
        other = sensitivity.sample(params, method, 8, seed=6)
        assert not np.array_equal(one.unit, other.unit)


def test_outputs_no_point_moves_or_without_values():
    params = [_uniform("a", 0.0, 1.0), _uniform("b", 0.0, 2.0)]
    sob, mor = sensitivity.sample(params, "sobol", 8, 0), sensitivity.sample(params, "morris", 4, 0)
    rows, note = sensitivity.indices(sob, np.full(len(sob.values), 2.5))
    assert "the same value at every point" in note and all(r["ST"] is None for r in rows)
    rows, note = sensitivity.indices(mor, np.full(len(mor.values), 2.5))  # Morris: no effect is a zero effect
    assert note is None and all(r["mu_star"] == 0.0 and r["sigma"] == 0.0 for r in rows)
    y = np.arange(len(mor.values), dtype=float)
    y[1] = np.nan
    rows, note = sensitivity.indices(mor, y)
    assert note.endswith(f"of {len(mor.unit)} runs have no value") and all(r["mu_star"] is None for r in rows)


def test_noise_floors():
    """Sobol': an error of SE on every point adds SE^2 / Var y to each ST; Morris: the mean |EE| of two independent
    errors over a step of 2/3 is E|N(0, 2 SE^2)| / (2/3) = 2 SE / (2/3) / sqrt(pi)."""
    y = np.array([0.0, 1.0, 2.0, 3.0])
    half = np.full(4, 1.959964 * 0.5)  # SE 0.5
    sob = sensitivity.noise("sobol", y, half)
    assert sob["variance"] == pytest.approx(5 / 3) and sob["mc_se"] == pytest.approx(0.5, rel=1e-6)
    assert sob["noise_floor"] == pytest.approx(0.25 / (5 / 3), rel=1e-6)
    mor = sensitivity.noise("morris", y, half)
    assert mor["noise_floor"] == pytest.approx(2 * 0.5 / (2 / 3) / math.sqrt(math.pi), rel=1e-6)
    assert sensitivity.noise("sobol", y, None)["mc_se"] is None


def test_ci_variable_names():
    names = {"rmst_pfs_difference_ci", "pfs_hr_robust_ci", "grade3plus_renal_rate_difference_ci"}
    assert sensitivity.ci_variable(names, "rmst_pfs_difference_months") == "rmst_pfs_difference_ci"
    assert sensitivity.ci_variable(names, "pfs_hr") == "pfs_hr_robust_ci"
    assert sensitivity.ci_variable(names, "grade3plus_renal_rate_difference") == "grade3plus_renal_rate_difference_ci"
    assert sensitivity.ci_variable(names, "cycles_mean") is None


# --------------------------------------------------------------------------------------------------
# On the simulator

# kidney.lkb_m sets the nephropathy probability, drawn after the patient's survival is settled (sim/kernels/
# patient.py: finish), and post-progression mortality acts after progression: neither can change PFS. The
# ILUMINET-type arm gives cycles until the kidney BED limit, so the kidney's Gy/GBq sets its number of cycles.
SMALL = '''extends = "{base}"
select_arms = ["fixed_netter1", "iluminet"]
[[uncertainty.parameters]]
path = "agents.dotatate.kidney.gy_per_gbq_median"
name = "kidney_gy_per_gbq"
prior = {{ dist = "lognormal", median = 0.47, sigma_ln = 0.2, low = 0.3, high = 0.8 }}
source = "test"
[[uncertainty.parameters]]
path = "kidney.lkb_m"
name = "kidney_lkb_m"
prior = {{ dist = "lognormal", median = 0.108, sigma_ln = 0.3, low = 0.04, high = 0.3 }}
source = "test"
[[uncertainty.parameters]]
path = "natural_history.post_progression_death_per_month"
name = "post_progression_death"
prior = {{ dist = "lognormal", median = 0.0276, sigma_ln = 0.3, low = 0.008, high = 0.1 }}
source = "test"
'''
RMST, RENAL = "rmst_pfs_difference_months", "grade3plus_renal_rate_difference"


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("sensitivity") / "small.toml"
    path.write_text(SMALL.format(base=(CONFIGS / "guided_vs_fixed.toml").as_posix()))
    return path


def _run(config, out, capsys, *flags: str) -> dict:
    rc = main(["sensitivity", str(config), "-o", str(out), "--patients", "300", "--json", *flags])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    printed = json.loads(captured.out)
    assert printed == json.loads(out.with_suffix(".json").read_text())
    return printed


def _by_parameter(result: dict, output: str) -> dict[str, dict]:
    return {r["parameter"]: r for r in result["outputs"][output]["indices"]}


def test_morris_on_the_simulator_finds_inert_parameters(small_config, tmp_path, capsys):
    out = tmp_path / "m.h5"
    result = _run(small_config, out, capsys, "--method", "morris", "--n", "4", "--workers", "0")
    rmst = _by_parameter(result, RMST)
    assert rmst["kidney_lkb_m"]["mu_star"] == 0.0 and rmst["post_progression_death"]["mu_star"] == 0.0
    assert rmst["kidney_gy_per_gbq"]["mu_star"] > 0.0
    assert result["outputs"][RMST]["indices"][0]["parameter"] == "kidney_gy_per_gbq"
    assert _by_parameter(result, RENAL)["kidney_lkb_m"]["mu_star"] > 0.0  # NTCP steepness does move renal toxicity
    assert result["arm"] == "iluminet" and result["reference_arm"] == "fixed_netter1"
    assert [p["path"] for p in result["parameters"]][1] == "kidney.lkb_m" and result["parameters"][1]["source"]
    for output in (RMST, RENAL):
        entry = result["outputs"][output]
        assert entry["variance"] > 0 and entry["mc_se"] > 0 and entry["ci_variable"] == output.removesuffix(
            "_months") + "_ci"
    with sweep.read(out) as ds:
        assert ds.attrs["sweep_kind"] == "sensitivity"
        assert ds.sizes["scenario"] == result["distinct_points"] <= result["runs"] == 4 * (3 + 1)
        assert len(set(ds.seed.values.tolist())) == 1  # common random numbers
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_sobol_on_the_simulator_gives_inert_parameters_zero(small_config, tmp_path, capsys):
    result = _run(small_config, tmp_path / "s.h5", capsys, "--method", "sobol", "--n", "8", "--workers", "0",
                  "--outputs", RMST)
    rmst = _by_parameter(result, RMST)
    for inert in ("kidney_lkb_m", "post_progression_death"):
        assert rmst[inert]["S1"] == 0.0 and rmst[inert]["ST"] == 0.0
    assert rmst["kidney_gy_per_gbq"]["ST"] > 0.5
    assert result["runs"] == 8 * (3 + 2) and list(result["outputs"]) == [RMST]


def test_indices_do_not_depend_on_the_worker_count(small_config, tmp_path, capsys):
    serial = _run(small_config, tmp_path / "w0.h5", capsys, "--method", "sobol", "--n", "4", "--workers", "0")
    parallel = _run(small_config, tmp_path / "w2.h5", capsys, "--method", "sobol", "--n", "4", "--workers", "2")
    for key in ("sweep_file", "figure"):
        serial.pop(key), parallel.pop(key)
    assert serial == parallel


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--outputs", "rmst_pfs_difference_months", "nope"], "--outputs nope: not a statistic of the sweep file; "
     "allowed: "),
    (["--arm", "fixed_netter1"], "--arm fixed_netter1: not an arm compared with the reference fixed_netter1; "
     "allowed: iluminet"),
    (["--arm", "zzz"], "--arm zzz: "),
    (["--method", "sobol", "--n", "100"], "--n = 100: with --method sobol must be a power of 2 in [4, 65536]"),
    (["--method", "morris", "--n", "1"], "--n = 1: with --method morris must be in [2, 10000]"),
    (["--sample-seed", "-1"], "--sample-seed = -1: must be >= 0"),
    (["--patients", "0"], "trial.patients"),
    (["--cluster", "slurm"], "--cluster slurm needs --cluster-spec"),
])
def test_bad_flags_exit_2_and_write_nothing(small_config, tmp_path, capsys, flags, fragment):
    out = tmp_path / "out" / "s.h5"
    rc = main(["sensitivity", str(small_config), "-o", str(out), "--workers", "0", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_config_without_uncertain_parameters_exits_2(tmp_path, capsys):
    plain = tmp_path / "plain.toml"
    text = (CONFIGS / "netter1.toml").read_text()
    plain.write_text(text[: text.index("[[uncertainty.parameters]]")])  # the priors close the file
    assert main(["sensitivity", str(plain), "-o", str(tmp_path / "out" / "s.h5")]) == 2
    assert "no [[uncertainty.parameters]] declared" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
