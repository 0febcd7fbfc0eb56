"""The lymphocyte line (lymphopenia), an optional entry of the blood-line axis (docs/extending.md, docs/model.md 4.7):
its nadir and grade follow the marrow dose, the kernel and the NumPy oracle agree on it, the summary reports it, no
protocol rule reads it, and adding it changes no other output."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim import analysis, config, engine, figures, kernel_inputs, kernel_outputs
from sim.cohort import draw
from sim.kernels import marrow, policy
from sim.numpy_oracle import simulate_arm_oracle

from . import hand_inputs as H
from .conftest import CONFIGS, load_small
from .test_numpy_oracle import _first_cycle_platelets, _reference_nadir

PLT, NEU, LYM = 0, 1, 2
# The three lines of the shipped scenarios' [marrow], [marrow.neutrophils] and [marrow.lymphocytes] (netter1.toml).
LINES = dict(mtt_days=[20.0, 5.2, 14.0], lifespan_days=[5.0, 1.3, 30.0], gamma=[0.3, 0.16, 0.1],
             alpha_ratio=[1.0, 0.55, 1.7], reserve_ratio=[1.0, 1.0, 1.0],
             grade_below=(marrow.PLATELET_GRADE_BELOW, marrow.NEUTROPHIL_GRADE_BELOW, marrow.LYMPHOCYTE_GRADE_BELOW))
NEVER3 = [policy.NEVER_GRADE] * 3


def without_lymphocytes(name: str, patients: int) -> config.Config:
    """A shipped scenario as it was before the line: no [marrow.lymphocytes] and no baseline covariate."""
    data = config.read_scenario(CONFIGS / f"{name}.toml")
    del data["marrow"]["lymphocytes"]
    del data["cohort"]["covariates"]["lymphocytes_1e9_per_l"]
    config.set_dotted(data, "trial.patients", patients)
    return config.validate(data, f"{name} without lymphocytes")


def _three_line_run(marrow_gy_per_gbq, ids=None, cycles: int = 4, interval: float = 56.0, **regimen_kw):  # noqa: ANN001
    """Kernel and oracle outputs for patients whose marrow gets ``marrow_gy_per_gbq`` x 7.4 GBq per cycle (teff 60
    h), lymphocytes 1.8 at baseline, no variability; a fixed regimen without rules unless told otherwise."""
    n = len(marrow_gy_per_gbq)
    ids = np.arange(5, 5 + n, dtype=np.int64) if ids is None else ids
    gy = np.stack([np.full(n, 0.5), np.asarray(marrow_gy_per_gbq, dtype=float)], axis=1)
    p = H.patients(n, ids=ids, gy_per_gbq=gy, teff_h=[50.0, 60.0], blood_baseline=[250.0, 4.0, 1.8],
                   growth_per_day=0.0)
    plan = H.regimen(cycles, [7.4] * cycles, interval, withhold_grade=NEVER3, reduce_grade=NEVER3, **regimen_kw)
    inp = H.inputs(p, blood_params=H.blood(**LINES), plan=plan)
    return H.run(inp, cycles), simulate_arm_oracle(*inp.args(), H.sizes(inp, cycles))


def test_lymphocytes_are_on_the_blood_line_axis_of_the_scenarios_that_model_them(netter1_run):
    assert list(netter1_run.blood_line.values) == ["platelets", "neutrophils", "lymphocytes", "haemoglobin"]
    assert list(netter1_run.adverse_event.values) == ["thrombocytopenia", "neutropenia", "lymphopenia", "anaemia"]
    assert list(netter1_run.blood_line_units.values) == ["1e9/L", "1e9/L", "1e9/L", "g/dL"]
    axes = kernel_inputs.axes_of(without_lymphocytes("netter1", 100))
    assert [b.name for b in axes.blood_lines] == ["platelets", "neutrophils", "haemoglobin"]


def test_nadir_and_grade_deepen_with_marrow_dose():
    """Four cycles of 7.4 GBq: more marrow Gy/GBq, a lower lymphocyte nadir and a grade at least as high; nothing
    without marrow dose (the baseline count, grade 0); the kernel and the NumPy oracle agree on every value."""
    per_gbq = [0.0, 0.01, 0.02, 0.04, 0.08, 0.16]
    got, ref = _three_line_run(per_gbq)
    for name in kernel_outputs.Outputs._fields:
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-11, atol=0, equal_nan=True,
                                   err_msg=name)
    assert (got.cycles_given == 4).all()
    nadir = np.nanmin(got.blood_nadir[:, :, LYM], axis=1)
    worst = got.blood_worst_grade[:, LYM]
    assert nadir[0] == 1.8 and worst[0] == 0
    assert np.all(np.diff(nadir) < 0) and np.all(np.diff(worst) >= 0)
    assert worst[-1] >= 3 and len(set(worst.tolist())) >= 3  # from grade 0 to grade >= 3 over these doses
    # the lymphocyte line is more sensitive than the platelet one: a deeper relative nadir at every dose
    plt_relative = np.nanmin(got.blood_nadir[1:, :, PLT], axis=1) / 250.0
    assert np.all(nadir[1:] / 1.8 < plt_relative)


def test_first_cycle_lymphocyte_nadir_matches_solve_ivp():
    """One cycle of 0.6 Gy (0.08 Gy/GBq x 7.4 GBq): the kernel's nadir is DOP853's (rtol 1e-10) within the
    integrator's tolerance, with the lymphocyte kinetics (MTT 14 d, residence 30 d, gamma 0.1, alpha 1.5 x 1.7)."""
    got, _ = _three_line_run([0.08], cycles=1)
    dose = 0.08 * 7.4
    lam = math.log(2.0) / (60.0 / 24.0)
    circ = _first_cycle_platelets(dose, 1.8, 1.5 * 1.7, lam, t_end=112.0, mtt=14.0, lifespan=30.0, gamma=0.1)
    nadir, day = _reference_nadir(circ, 112.0)
    assert got.blood_nadir[0, 0, LYM] == pytest.approx(nadir, rel=1e-4)
    assert abs(got.blood_nadir_day[0, 0, LYM] - day) < 0.5  # a flat nadir: its day is less sharply defined
    assert got.blood_grade[0, 0, LYM] == marrow.line_grade(nadir, marrow.LYMPHOCYTE_GRADE_BELOW)


def test_no_protocol_rule_reads_lymphopenia():
    """The translated regimen never withholds or reduces for the line, and a patient at grade 4 lymphopenia before
    a cycle gets it on time at full activity."""
    cfg = load_small("netter1", patients=50)
    regimen = kernel_inputs.translate(cfg, "lu177_dotatate", draw(cfg, np.arange(50))).regimen
    assert regimen.withhold_grade[LYM] == regimen.reduce_grade[LYM] == policy.NEVER_GRADE
    assert regimen.withhold_grade[PLT] == 2.0 and regimen.withhold_grade[NEU] == 3.0  # the label's rules stay
    got, _ = _three_line_run([0.3], cycles=3, interval=42.0)
    assert got.blood_grade[0, 1, LYM] == 4  # the second cycle's nadir (0.16), before the third is due
    np.testing.assert_array_equal(got.cycle_time_days[0], [0.0, 42.0, 84.0])
    assert not got.dose_reduced.any() and not got.delay_days.any()


def test_the_summary_reports_lymphopenia(netter1_run):
    arms = analysis.summary(netter1_run)["arms"]
    lu, control = arms["lu177_dotatate"], arms["control"]
    assert 0.02 < lu["grade3plus_lymphopenia_rate"] < 0.25 and control["grade3plus_lymphopenia_rate"] == 0.0
    assert lu["grade3plus_haematological_rate"] >= lu["grade3plus_lymphopenia_rate"] > lu[
        "grade3plus_thrombocytopenia_rate"]
    assert ("Grade ≥3\nlymphopenia", "grade3plus_lymphopenia_rate") in figures.toxicity_bars(netter1_run)
    without = analysis.summary(engine.run(without_lymphocytes("netter1", 200)))["arms"]["lu177_dotatate"]
    assert "grade3plus_lymphopenia_rate" not in without


def test_adding_the_line_changes_no_other_output():
    """The line reads the marrow forcing and feeds nothing back, and its covariate is appended with a stream of its
    own: every other output and covariate, to the last bit, is what it was without them."""
    # after every earlier covariate: a correlation given to it leaves the earlier rows of the copula's Cholesky factor
    # as they were (the covariates appended after it, for SIRT, leave its own row as it was)
    assert config.COVARIATE_NAMES[-6:] == ("lymphocytes_1e9_per_l", "haemoglobin_g_dl", "psa_ng_ml",
                                           "lung_shunt_fraction", "perfused_liver_ml", "child_pugh_b")
    for name in ("netter1", "guided_vs_fixed"):
        with_line = engine.run(load_small(name, patients=300))
        without = engine.run(without_lymphocytes(name, 300))
        others = list(without.blood_line.values)
        assert others == ["platelets", "neutrophils", "haemoglobin"]
        for var in without.data_vars:
            if var == "lymphocytes_1e9_per_l":  # the line's own covariate (the default constant without it)
                continue
            a = with_line[var]
            if "blood_line" in a.dims:
                a = a.sel(blood_line=others)
            np.testing.assert_array_equal(a.values, without[var].values, err_msg=f"{name}: {var}")
        assert set(with_line.data_vars) == set(without.data_vars)
        low = with_line.blood_nadir.sel(blood_line="lymphocytes")
        assert np.nanmin(low.values) < 0.5  # the line is live, not a constant


def test_the_line_needs_its_baseline_covariate():
    data = config.read_scenario(CONFIGS / "netter1.toml")
    del data["cohort"]["covariates"]["lymphocytes_1e9_per_l"]
    with pytest.raises(config.ConfigError, match=r"\[marrow.lymphocytes\] needs .*lymphocytes_1e9_per_l"):
        config.validate(data, "x")
