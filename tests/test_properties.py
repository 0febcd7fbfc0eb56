"""Property-based tests (hypothesis): physical invariants over random patients, regimens and activities."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import kernel_outputs
from sim.kernels.kidney import nephropathy_probability
from sim.kernels.radiobiology import bed
from sim.survival import kaplan_meier

from . import hand_inputs as H
from .test_kernel import KIDNEY, NEUTROPHILS, PLATELETS, run_one

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

patients = st.fixed_dictionaries({
    "age_years": st.floats(30, 90),
    "lesion_volume_ml": st.floats(1, 3000),
    "lesion_stroma_fraction": st.floats(0.01, 0.9),
    "lesion_negative_fraction": st.floats(0.0, 0.5),
    "growth_per_day": st.floats(1e-5, 0.02),
    "new_lesion_per_day": st.floats(0.0, 0.01),
    "tumour_alpha_per_gy": st.floats(0.0, 0.5),
    "admin_censor_day": st.floats(100, 4000),
    "post_progression_death_per_day": st.floats(1e-4, 0.01),
    "gy_per_gbq": st.tuples(st.floats(0.1, 1.5), st.floats(0.005, 0.3)),
    "teff_h": st.tuples(st.floats(10, 150), st.floats(10, 150)),
    "lesion_gy_per_gbq": st.floats(0.3, 15),
    "lesion_teff_h": st.floats(20, 200),
    "blood_baseline": st.tuples(st.floats(75, 450), st.floats(1.5, 10)),
    "marrow_alpha_per_gy": st.floats(0.1, 4),
    "egfr_baseline_ml_min": st.floats(30, 130),
    "kidney_risk_factor": st.sampled_from([0.0, 1.0]),
})
regimens = st.tuples(st.integers(1, 6), st.floats(3.0, 12.0), st.sampled_from([42.0, 56.0, 70.0]))
LESION_KEYS = ("lesion_volume_ml", "lesion_stroma_fraction", "lesion_negative_fraction", "lesion_gy_per_gbq",
               "lesion_teff_h")


def outcomes(p, event_params, n_cycles, activity, interval):
    values = {k: ([v] if k in LESION_KEYS else v) for k, v in p.items()}
    return run_one(H.patients(**values), event_params, n_cycles, [activity] * n_cycles, interval_days=interval,
                   k_max=6)


NOT_GIVEN_NAN = {o.name for o in kernel_outputs.OUTPUTS if o.fill != o.fill} | {"mds_aml_day"}


@SETTINGS
@given(p=patients, regimen=regimens)
def test_invariants_of_one_course(p, regimen):
    n, activity, interval = regimen
    o = outcomes(p, H.events(background_hazard_65_per_year=0.015, background_slope_per_year=0.085,
                             mds_risk_per_gy=0.03), n, activity, interval)
    given_ = ~np.isnan(o.cycle_time_days)
    for name in kernel_outputs.Outputs._fields:
        if name not in NOT_GIVEN_NAN:
            assert np.all(np.isfinite(getattr(o, name))), name
    assert np.all(o.bed_gy >= o.dose_gy) and np.all(o.lesion_bed_gy >= o.lesion_dose_gy)  # BED >= physical dose
    assert np.all(o.dose_gy >= 0) and np.all(o.lesion_dose_gy >= 0)  # so cumulative doses never fall
    assert o.pfs_time_days <= o.os_time_days and o.cycles_given == given_.sum() <= n
    assert np.all(np.diff(o.cycle_time_days[given_]) >= interval)  # delays only lengthen intervals
    assert np.all(o.blood_nadir[given_] > 0) and 0 <= o.egfr_end_ml_min <= p["egfr_baseline_ml_min"]


@SETTINGS
@given(p=patients, regimen=regimens, extra=st.floats(1.01, 3.0))
def test_more_activity_never_spares_an_organ(p, regimen, extra):
    """Same patient, same draws: more activity per cycle gives at least the dose, BED and nadir depth of cycle 1,
    and at least the nephropathy risk of the same number of cycles."""
    n, activity, interval = regimen
    low = outcomes(p, None, n, activity, interval)
    high = outcomes(p, None, n, activity * extra, interval)
    assert np.all(high.dose_gy[0] > low.dose_gy[0]) and np.all(high.bed_gy[0] > low.bed_gy[0])
    assert high.lesion_dose_gy[0, 0] > low.lesion_dose_gy[0, 0]
    assert high.blood_nadir[0, PLATELETS] <= low.blood_nadir[0, PLATELETS] + 1e-9
    assert high.blood_nadir[0, NEUTROPHILS] <= low.blood_nadir[0, NEUTROPHILS] + 1e-12
    given_both = int(min(np.sum(~np.isnan(low.cycle_time_days)), np.sum(~np.isnan(high.cycle_time_days))))
    b_low, b_high = low.bed_gy[:given_both, KIDNEY].sum(), high.bed_gy[:given_both, KIDNEY].sum()
    rf = p["kidney_risk_factor"]
    assert nephropathy_probability(b_high, 49.5, 0.108, rf, 0.7) >= nephropathy_probability(b_low, 49.5, 0.108, rf,
                                                                                            0.7)


@SETTINGS
@given(st.floats(0, 50), st.floats(0.1, 500), st.floats(0.1, 10), st.floats(0.5, 20))
def test_bed_at_least_dose(dose, teff, trep, ab):
    assert bed(dose, teff, trep, ab) >= dose


@SETTINGS
@given(st.lists(st.tuples(st.floats(0, 100), st.booleans()), min_size=1, max_size=200))
def test_km_is_a_survival_curve(data):
    time = np.array([t for t, _ in data])
    event = np.array([e for _, e in data])
    km = kaplan_meier(time, event)
    assert np.all((km.survival >= 0) & (km.survival <= 1)) and np.all(np.diff(km.survival) <= 0)
    assert np.all(km.lower <= km.survival + 1e-12) and np.all(km.upper >= km.survival - 1e-12)


GUIDED = st.fixed_dictionaries({
    "trial.seed": st.integers(0, 2**31 - 1),
    "radiobiology.kidney.alpha_beta_gy": st.floats(1.0, 5.0),
    "radiobiology.marrow.alpha_beta_gy": st.floats(5.0, 15.0),
    "arms.iluminet.activity_gbq": st.floats(3.0, 10.0),
    "arms.iluminet.cycles": st.integers(1, 9),
    "arms.iluminet.interval_weeks": st.floats(4.0, 12.0),
    "arms.iluminet.kidney_bed_limit_gy": st.floats(10.0, 40.0),
    "arms.iluminet.marrow_limit_gy": st.floats(0.3, 3.0),
    "arms.iluminet.reduce_last_cycle_to_limit": st.booleans(),
    "arms.iluminet.dosimetry.error_scale": st.floats(0.0, 3.0),
    "arms.p_prrt.target_gy": st.floats(8.0, 35.0),
    "arms.p_prrt.target_quantity": st.sampled_from(["bed", "dose"]),
    "arms.p_prrt.marrow_limit_gy": st.floats(0.3, 3.0),
    "arms.p_prrt.min_activity_gbq": st.floats(0.0, 5.0),
    "arms.p_prrt.max_activity_gbq": st.floats(5.0, 20.0),
    "arms.p_prrt.dosimetry.error_scale": st.floats(0.0, 3.0),
    "arms.tumour_guided.target_gy": st.floats(30.0, 300.0),
    "arms.tumour_guided.kidney_bed_limit_gy": st.floats(10.0, 45.0),
    "arms.tumour_guided.marrow_limit_gy": st.floats(0.3, 3.0),
    "arms.fixed_netter1.activity_gbq": st.floats(1.0, 12.0),
    "arms.fixed_netter1.cycles": st.integers(1, 8),
})


def _known_before(per_cycle: np.ndarray) -> np.ndarray:
    """Cumulative known (all cycles measured) quantity before each cycle: 0, x0, x0 + x1, ..."""
    return np.concatenate([np.zeros((per_cycle.shape[0], 1)), np.cumsum(per_cycle, axis=1)[:, :-1]], axis=1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=GUIDED)
def test_random_valid_configs_keep_invariants_and_caps(overrides):
    """Random valid four-arm configs (fixed and the three guided rules, every cycle measured): physical invariants
    hold in every arm, and no guided arm exceeds its cycle count, activity bounds or organ limits (docs/model.md 5.2:
    no cycle starts once the known cumulative quantity has reached its limit)."""
    from sim import config, engine

    from .conftest import CONFIGS

    cfg = config.load(CONFIGS / "guided_vs_fixed.toml", {"trial.patients": 60, **overrides})
    ds = engine.run(cfg)
    given_ = ds.activity_gbq > 0
    assert bool((ds.pfs_time_days <= ds.os_time_days).all()) and not bool(ds.os_time_days.isnull().any())
    absent = ds.lesion_volume_ml.isnull()  # a patient's absent lesions: NaN doses in every cycle
    for dose, bed_, nan in (("dose_gy", "bed_gy", False), ("lesion_dose_gy", "lesion_bed_gy", absent)):
        assert bool(((ds[bed_] >= ds[dose]) | nan).all())
        assert bool((ds[dose].isnull() == nan).all()) and bool(((ds[dose] >= 0) | nan).all())
    for arm in cfg.arms:
        a = ds.sel(arm=arm.name)
        g = given_.sel(arm=arm.name).values
        assert (a.cycles_given.values <= arm.cycles).all()
        if arm.regimen != "guided":
            continue
        act, reduced = a.activity_gbq.values, a.dose_reduced.values == 1
        later = g & ~reduced & (np.arange(g.shape[1]) >= 1)
        upper = arm.max_activity_gbq if arm.rule == "activity_to_kidney_target" else arm.activity_gbq
        assert (act[later] <= upper * (1 + 1e-12)).all() and (act[later] >= arm.min_activity_gbq * (1 - 1e-12)).all()
        assert (a.dosimetry_measured.values == g).all()  # every cycle given is measured
        marrow_before = _known_before(np.nan_to_num(a.dose_measured_gy.sel(organ="marrow").values))
        assert (marrow_before[g] < arm.marrow_limit_gy).all()
        if arm.rule == "activity_to_kidney_target" and arm.target_quantity == "dose":
            kidney_before = _known_before(np.nan_to_num(a.dose_measured_gy.sel(organ="kidney").values))
            assert (kidney_before[g] < arm.target_gy).all()
