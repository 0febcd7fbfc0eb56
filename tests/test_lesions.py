"""The tumour as lesions: stroma remodelling (closed form against an ODE solver), cross-fire, RECIST 1.1 on target
and non-target lesions, complete response, a receptor-negative lesion progressing under treatment, the lesion layout
drawn from a scenario, and the lesion dose-response statistic. Kernel and NumPy oracle are run side by side."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sim import analysis, cohort, config, kernel_inputs
from sim.kernels import tumour
from sim.numpy_oracle import simulate_arm_oracle
from sim.outcomes import patient_level

from . import hand_inputs as H
from .conftest import load_small

SCANS_Q8W = np.arange(56.0, 1500.0, 56.0)
STABLE = dict(growth_per_day=1e-9, new_lesion_per_day=0.0)


def both(patient, lesion=None, plan=None, scans=SCANS_Q8W):  # noqa: ANN001, ANN201
    """Kernel and oracle outputs of one hand-made patient (row 0 of each output)."""
    inp = H.inputs(patient, lesion=lesion, plan=plan, scans=scans)
    got, ref = H.run(inp), simulate_arm_oracle(*inp.args(), H.sizes(inp, 6))
    for name in got._fields:
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-12, equal_nan=True, err_msg=name)
    return type(got)(*(a[0] for a in got))


@pytest.mark.parametrize(("g", "k", "dt"), [(0.01, 0.005, 90.0), (0.0, 0.02, 300.0), (-0.003, 0.003, 50.0),
                                             (0.002, 0.0, 100.0), (0.05, 0.001, 20.0)])
def test_stroma_after_matches_the_ode(g, k, dt):
    """dS/dt = -k (S - r V0 exp(g t)), solved by DOP853, against the closed form (k = 0: constant stroma)."""
    s0, v0, r = 12.0, 40.0, 0.25
    sol = solve_ivp(lambda t, s: -k * (s - r * v0 * math.exp(g * t)), (0.0, dt), [s0], method="DOP853",
                    rtol=1e-12, atol=1e-12)
    assert tumour.stroma_after(s0, v0, r, g, k, dt) == pytest.approx(sol.y[0, -1], rel=1e-9)


def test_crossfire_kills_receptor_negative_cells_by_hand():
    """One cycle, no growth: the lesion at the first scan is S + P SF(D) + N SF(f D) + the killed cells cleared."""
    alpha, a, g_lesion, fs, fn, crossfire = 0.05, 7.4, 4.0, 0.2, 0.5, 0.6
    p = H.patients(tumour_alpha_per_gy=alpha, lesion_stroma_fraction=[fs], lesion_negative_fraction=[fn],
                   lesion_negative_dose_ratio=[crossfire], growth_per_day=0.0, new_lesion_per_day=0.0)
    out = both(p, plan=H.regimen(1), scans=[56.0])
    dose = a * g_lesion

    def sf(d: float) -> float:
        return math.exp(-alpha * d * (1 + 1.5 / (1.5 + 90.0) * d / 10.0))  # BED with T_rep 1.5 h, T_eff 90 h, a/b 10

    v, viable = 100.0, 80.0
    pos, neg = viable * (1 - fn), viable * fn
    killed = pos * (1 - sf(dose)) + neg * (1 - sf(crossfire * dose))
    at_scan = v - killed + killed * math.exp(-math.log(2) / 30 * 56.0)
    assert out.tumour_nadir_ratio == pytest.approx(at_scan / v, rel=1e-9)
    without = both(p._replace(lesion_negative_dose_ratio=np.zeros((1, 1))), plan=H.regimen(1), scans=[56.0])
    assert without.tumour_nadir_ratio > out.tumour_nadir_ratio  # no cross-fire: the negative cells survive


def test_complete_response_needs_stroma_to_clear():
    """A small lesion whose cells are all killed: with remodelling stroma it disappears (CR); with constant stroma
    the fibrotic remnant stays measurable (PR at best)."""
    p = H.patients(tumour_alpha_per_gy=0.5, lesion_volume_ml=[8.0], lesion_stroma_fraction=[0.3], **STABLE)
    remodelled = both(p, lesion=H.lesions(stroma_relax_per_day=math.log(2) / 90.0))
    constant = both(p, lesion=H.lesions(stroma_relax_per_day=0.0))
    assert remodelled.best_response == tumour.RESPONSE_CR
    assert remodelled.lesion_volume_ratio_best[0] < math.pi / 6 * 0.5**3 / 8.0  # below 5 mm
    assert remodelled.target_sum_best_change == -1.0  # the disappeared target counts 0 mm
    assert constant.best_response == tumour.RESPONSE_PR
    assert constant.lesion_volume_ratio_best[0] == pytest.approx(0.3, rel=1e-6)  # stroma only


def test_a_receptor_negative_lesion_progresses_under_treatment():
    """Two target lesions: the receptor-positive one shrinks, the receptor-negative one (little uptake, all cells
    negative, no cross-fire benefit beyond its own dose) keeps growing and makes the target sum progress while the
    course is still being given."""
    g = math.log(2) / 60.0
    p = H.patients(tumour_alpha_per_gy=0.2, growth_per_day=g, lesion_volume_ml=[60.0, 30.0],
                   lesion_stroma_fraction=[0.2, 0.2], lesion_negative_fraction=[0.0, 1.0],
                   lesion_receptor_negative=[0, 1], lesion_negative_dose_ratio=[0.0, 1.0],
                   lesion_gy_per_gbq=[4.0, 0.1], lesion_teff_h=[90.0, 90.0])
    out = both(p, plan=H.regimen(4))
    assert out.progression_type == tumour.PROGRESSION_TARGET
    assert out.pfs_time_days < 4 * 56.0 + 56.0  # within the course and the scan after it
    assert out.lesion_volume_ratio_best[0] < 0.5 < 1.0 < out.lesion_volume_ratio_best[1]
    alone = both(p._replace(**{f: getattr(p, f)[:, :1] for f in p._fields
                               if f.startswith("lesion_") and f != "lesion_count"}, lesion_count=np.array([1])),
                 plan=H.regimen(4))
    assert alone.pfs_time_days > out.pfs_time_days  # without the negative lesion the patient does not progress


def test_non_target_progression_at_double_the_non_target_nadir():
    """A stable target and a growing non-target lesion: progression at the first scan where the non-target volume
    reaches 2x its nadir (the baseline, as it only grows), untreated."""
    g = math.log(2) / 100.0
    p = H.patients(growth_per_day=0.0, lesion_volume_ml=[50.0, 5.0], lesion_stroma_fraction=[0.2, 0.0],
                   lesion_role=[tumour.ROLE_TARGET, tumour.ROLE_NON_TARGET], lesion_growth_per_day=[0.0, g])
    out = both(p, plan=H.regimen(0, activities=[0.0]))
    first = SCANS_Q8W[np.argmax(5.0 * np.exp(g * SCANS_Q8W) >= 10.0)]
    assert out.pfs_time_days == first and out.progression_type == tumour.PROGRESSION_TARGET
    assert out.best_response == tumour.RESPONSE_SD and out.target_sum_best_change == 0.0


def test_absent_lesions_are_nan_and_take_no_dose():
    p = H.patients(lesion_volume_ml=[60.0, 0.0], lesion_count=1, lesion_role=[tumour.ROLE_TARGET, tumour.ROLE_ABSENT],
                   lesion_stroma_fraction=[0.2, 0.2], lesion_negative_fraction=[0.0, 0.0], lesion_gy_per_gbq=[4.0, 0.0],
                   lesion_teff_h=[90.0, 0.0], tumour_alpha_per_gy=0.05)
    out = both(p)
    assert np.isnan(out.lesion_dose_gy[:, 1]).all() and np.isnan(out.lesion_volume_ml[1])
    assert np.isnan(out.lesion_volume_ratio_best[1]) and out.lesion_role[1] == tumour.ROLE_ABSENT
    assert (out.lesion_dose_gy[:4, 0] > 0).all()


# ------------------------------------------------------------------------------------------------------------------
# The lesion layout of a scenario


@pytest.fixture(scope="module")
def netter1_layout():
    cfg = load_small("netter1", patients=3000)
    chunk = cohort.draw(cfg, np.arange(3000))
    layout = kernel_inputs.PatientDraws(cfg, kernel_inputs.axes_of(cfg), chunk).layout
    return cfg, chunk, layout, kernel_inputs.translate(cfg, "lu177_dotatate", chunk)


def test_lesion_layout_shares_orders_and_selects_targets(netter1_layout):
    cfg, chunk, lay, inp = netter1_layout
    les, m = cfg.lesions, cfg.lesions.max_lesions
    np.testing.assert_array_equal(lay.count, np.clip(np.rint(chunk.covariates["lesion_count"]), 1, m))
    present = np.arange(m) < lay.count[:, None]
    np.testing.assert_allclose(lay.volume_ml.sum(axis=1), chunk.covariates["tumour_volume_ml"], rtol=1e-12)
    assert (lay.volume_ml[~present] == 0).all() and (lay.volume_ml[present] > 0).all()
    assert (lay.role[~present] == tumour.ROLE_ABSENT).all()
    # receptor-positive lesions first, each group by decreasing volume
    key = np.where(present, np.where(lay.negative, 1, 0), 2)
    assert (np.diff(key, axis=1) >= 0).all()
    same = np.diff(key, axis=1) == 0
    assert (np.diff(lay.volume_ml, axis=1)[same & present[:, 1:]] <= 0).all()
    # targets: at most 5, measurable (>= 10 mm), the largest measurable ones
    targets = lay.role == tumour.ROLE_TARGET
    assert targets.sum(axis=1).max() == les.target_lesions
    assert (kernel_inputs.diameter_mm(lay.volume_ml[targets]) >= les.measurable_diameter_mm).all()
    smallest_target = np.where(targets, lay.volume_ml, np.inf).min(axis=1)
    non_target_measurable = (lay.role == tumour.ROLE_NON_TARGET) & (
        kernel_inputs.diameter_mm(lay.volume_ml) >= les.measurable_diameter_mm)
    bone_free = chunk.covariates["bone_metastases"] < 0.5
    assert (lay.volume_ml[non_target_measurable & bone_free[:, None]]
            <= np.repeat(smallest_target[:, None], m, axis=1)[non_target_measurable & bone_free[:, None]]).all()
    # discordant disease in some patients only, never more than the configured share
    discordant = lay.negative.any(axis=1)
    assert 0.02 < discordant.mean() < les.discordant_patient_fraction
    # the kernel inputs follow the layout
    np.testing.assert_array_equal(inp.patients.lesion_role, lay.role)
    np.testing.assert_array_equal(inp.patients.lesion_negative_fraction[lay.negative], 1.0)
    np.testing.assert_array_equal(inp.patients.lesion_negative_dose_ratio[present & ~lay.negative],
                                  les.crossfire_fraction)


def test_lesion_uptake_is_correlated_within_a_patient(netter1_layout):
    """Lesions of one patient share the patient's uptake effect: log Gy/GBq of lesions 0 and 1 correlate as
    var(patient) / var(total) (positive lesions of patients with two or more)."""
    cfg, chunk, lay, inp = netter1_layout
    g = inp.patients.lesion_gy_per_gbq
    use = (lay.count >= 2) & ~lay.negative[:, :2].any(axis=1)
    r = np.corrcoef(np.log(g[use, 0]), np.log(g[use, 1]))[0, 1]
    t = cfg.agents["dotatate"].tumour
    shared = t.inter_patient_sigma_ln**2 + cfg.cohort.covariates.receptor_expression.sigma_ln**2
    expected = shared / (shared + cfg.lesions.uptake_sigma_ln**2)
    assert r == pytest.approx(expected, abs=0.08)  # the ordering by volume barely touches uptake


def test_lesion_layout_is_the_same_in_every_arm_and_chunk(netter1_layout):
    cfg, chunk, lay, inp = netter1_layout
    ids = np.arange(1000, 1400)
    part = cohort.draw(cfg, ids)
    control = kernel_inputs.translate(cfg, "control", part)
    for name in ("lesion_volume_ml", "lesion_role", "lesion_receptor_negative", "lesion_alpha_per_gy",
                 "lesion_growth_per_day"):
        np.testing.assert_array_equal(getattr(control.patients, name), getattr(inp.patients, name)[1000:1400], name)


def test_arms_that_share_the_draws_of_a_chunk_get_the_inputs_of_their_own():
    """engine.run translates every arm of a chunk from one PatientDraws: each arm's inputs are those it would draw
    alone."""
    cfg = load_small("guided_vs_fixed", patients=300)
    chunk = cohort.draw(cfg, np.arange(300))
    shared = kernel_inputs.PatientDraws(cfg, kernel_inputs.axes_of(cfg), chunk)
    for arm in cfg.arms:
        alone, together = kernel_inputs.translate(cfg, arm.name, chunk), kernel_inputs.translate(cfg, arm.name, shared)
        for group, values in zip(alone.args()[1:-1], together.args()[1:-1], strict=True):
            for name, x, y in zip(group._fields, group, values, strict=True):
                np.testing.assert_array_equal(x, y, f"{arm.name}: {name}")


def test_a_config_without_lesions_is_the_one_lesion_model():
    data = config.read_toml(load_small.__globals__["CONFIGS"] / "netter1.toml")
    data.pop("lesions")
    data["uncertainty"]["parameters"] = [q for q in data["uncertainty"]["parameters"]
                                         if not q["path"].startswith("lesions.")]
    cfg = config.Config.model_validate(data)
    assert cfg.lesions == config.SINGLE_LESION
    chunk = cohort.draw(cfg, np.arange(200))
    p = kernel_inputs.translate(cfg, "lu177_dotatate", chunk).patients
    assert p.lesion_volume_ml.shape == (200, 1) and (p.lesion_count == 1).all()
    np.testing.assert_array_equal(p.lesion_volume_ml[:, 0], chunk.covariates["tumour_volume_ml"])
    assert (p.lesion_negative_dose_ratio == 0).all() and (p.lesion_receptor_negative == 0).all()


# ------------------------------------------------------------------------------------------------------------------
# Statistics


def test_logistic_slope_of_a_binary_dose_is_the_log_odds_ratio():
    """For a 0/1 covariate the maximum-likelihood slope is the log odds ratio of the 2x2 table, with Woolf's
    standard error sqrt(1/a + 1/b + 1/c + 1/d)."""
    a, b, c, d = 30, 70, 45, 55  # x = 1: 30 responders, 70 not; x = 0: 45 and 55
    x = np.r_[np.ones(a + b), np.zeros(c + d)]
    y = np.r_[np.ones(a), np.zeros(b), np.ones(c), np.zeros(d)]
    slope, se = analysis.logistic_slope(x, y)
    assert slope == pytest.approx(math.log(a * d / (b * c)), rel=1e-9)
    assert se == pytest.approx(math.sqrt(1 / a + 1 / b + 1 / c + 1 / d), rel=1e-9)


def test_summary_best_response_rates_add_up(netter1_run, netter1_small):
    ds = patient_level(netter1_run)
    arm = analysis.arm_summary(ds, "lu177_dotatate", netter1_small)
    rates = arm["best_response_rates"]
    assert set(rates) == {"CR", "PR", "SD", "PD", "NE"}
    assert sum(rates.values()) == pytest.approx(1.0, abs=1e-3)
    assert arm["objective_response_rate"] == pytest.approx(rates["CR"] + rates["PR"], abs=1e-3)
    assert arm["lesion_response_or_per_50gy"] > 1.0  # more dose, more lesion response
    present = (ds.sel(arm="lu177_dotatate").lesion_role != tumour.ROLE_ABSENT).sum("lesion")
    assert arm["lesions_per_patient_mean"] == pytest.approx(float(present.mean()), abs=1e-4)
    assert analysis.arm_summary(ds, "control", netter1_small)["lesion_response_or_per_50gy"] is None


def test_whole_body_tumour_dose_is_the_volume_weighted_first_cycle_dose_of_receptor_positive_lesions():
    """Violet 2019's whole-body tumour dose: sum_j V_j D_j / sum_j V_j over the receptor-positive lesions, from the
    recorded first-cycle doses (kernel = oracle); the receptor-negative lesion does not count; untreated: NaN."""
    p = H.patients(lesion_volume_ml=[60.0, 30.0, 10.0], lesion_stroma_fraction=[0.2, 0.2, 0.2],
                   lesion_negative_fraction=[0.0, 0.0, 1.0], lesion_receptor_negative=[0, 0, 1],
                   lesion_negative_dose_ratio=[0.0, 0.0, 1.0], lesion_gy_per_gbq=[4.0, 2.0, 0.1],
                   lesion_teff_h=[90.0, 90.0, 90.0])
    out = both(p, plan=H.regimen(4))
    d = out.lesion_dose_gy[0]
    assert d[0] > d[1] > d[2] > 0.0
    assert out.whole_body_tumour_dose_gy == pytest.approx((60.0 * d[0] + 30.0 * d[1]) / 90.0, rel=1e-14)
    assert np.isnan(both(p, plan=H.regimen(0, activities=[0.0])).whole_body_tumour_dose_gy)
