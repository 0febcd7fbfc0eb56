"""Property-based tests (hypothesis): physical invariants over random patients, regimens and activities."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.kernels import layout as L
from sim.kernels.kidney import nephropathy_probability
from sim.kernels.radiobiology import bed
from sim.survival import kaplan_meier

from .test_kernel import hand_model, hand_patient, run_one

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

patients = st.fixed_dictionaries({
    "AGE_YEARS": st.floats(30, 90),
    "TUMOUR_VOLUME_ML": st.floats(1, 3000),
    "STROMA_FRACTION": st.floats(0.01, 0.9),
    "RECEPTOR_NEGATIVE_FRACTION": st.floats(0.0, 0.5),
    "GROWTH_PER_DAY": st.floats(1e-5, 0.02),
    "NEW_LESION_PER_DAY": st.floats(0.0, 0.01),
    "TUMOUR_ALPHA_PER_GY": st.floats(0.0, 0.5),
    "ADMIN_CENSOR_DAY": st.floats(100, 4000),
    "POST_PROGRESSION_DEATH_PER_DAY": st.floats(1e-4, 0.01),
    "KIDNEY_GY_PER_GBQ": st.floats(0.1, 1.5),
    "KIDNEY_TEFF_H": st.floats(10, 150),
    "MARROW_GY_PER_GBQ": st.floats(0.005, 0.3),
    "MARROW_TEFF_H": st.floats(10, 150),
    "TUMOUR_GY_PER_GBQ": st.floats(0.3, 15),
    "TUMOUR_TEFF_H": st.floats(20, 200),
    "PLATELETS_BASELINE": st.floats(75, 450),
    "MARROW_ALPHA_PER_GY": st.floats(0.1, 4),
    "EGFR_BASELINE": st.floats(30, 130),
    "KIDNEY_RISK_FACTOR": st.sampled_from([0.0, 1.0]),
    "NEUTROPHILS_BASELINE": st.floats(1.5, 10),
})
regimens = st.tuples(st.integers(1, 6), st.floats(3.0, 12.0), st.sampled_from([42.0, 56.0, 70.0]))


def outcomes(p, model, n_cycles, activity, interval):
    return run_one(hand_patient(**p), model, [activity] * n_cycles, n_cycles, interval_days=interval, k_max=6)


@SETTINGS
@given(p=patients, regimen=regimens)
def test_invariants_of_one_course(p, regimen):
    n, activity, interval = regimen
    cyc, pat = outcomes(p, hand_model(BACKGROUND_HAZARD_65_PER_YEAR=0.015, BACKGROUND_SLOPE_PER_YEAR=0.085,
                                      MDS_RISK_PER_GY=0.03), n, activity, interval)
    given_ = ~np.isnan(cyc[L.C_TIME_DAYS])
    finite = [v for v in range(L.N_CYCLE_VARS) if v not in (L.C_TIME_DAYS, L.C_PLATELET_NADIR, L.C_PLATELET_NADIR_DAY,
                                                            L.C_PLATELET_END, L.C_NEUTROPHIL_NADIR,
                                                            L.C_KIDNEY_DOSE_MEASURED_GY, L.C_MARROW_DOSE_MEASURED_GY,
                                                            L.C_TUMOUR_DOSE_MEASURED_GY)]
    assert np.all(np.isfinite(cyc[finite])) and np.all(np.isfinite(pat[[v for v in range(L.N_PATIENT_VARS)
                                                                        if v != L.P_MDS_AML_DAY]]))
    for dose, bed_ in ((L.C_KIDNEY_DOSE_GY, L.C_KIDNEY_BED_GY), (L.C_MARROW_DOSE_GY, L.C_MARROW_BED_GY),
                       (L.C_TUMOUR_DOSE_GY, L.C_TUMOUR_BED_GY)):
        assert np.all(cyc[bed_] >= cyc[dose])  # BED >= physical dose
        assert np.all(np.diff(np.cumsum(cyc[dose])) >= 0)  # cumulative dose never falls
    assert pat[L.P_PFS_DAYS] <= pat[L.P_OS_DAYS] and pat[L.P_CYCLES] == given_.sum() <= n
    assert np.all(np.diff(cyc[L.C_TIME_DAYS][given_]) >= interval)  # delays only lengthen intervals
    assert np.all(cyc[L.C_PLATELET_NADIR][given_] > 0) and 0 <= pat[L.P_EGFR_END] <= p["EGFR_BASELINE"]


@SETTINGS
@given(p=patients, regimen=regimens, extra=st.floats(1.01, 3.0))
def test_more_activity_never_spares_an_organ(p, regimen, extra):
    """Same patient, same draws: more activity per cycle gives at least the dose, BED and nadir depth of cycle 1,
    and at least the nephropathy risk of the same number of cycles."""
    n, activity, interval = regimen
    model = hand_model()
    low, _ = outcomes(p, model, n, activity, interval)
    high, _ = outcomes(p, model, n, activity * extra, interval)
    for v in (L.C_KIDNEY_DOSE_GY, L.C_KIDNEY_BED_GY, L.C_MARROW_DOSE_GY, L.C_MARROW_BED_GY, L.C_TUMOUR_DOSE_GY):
        assert high[v, 0] > low[v, 0]
    assert high[L.C_PLATELET_NADIR, 0] <= low[L.C_PLATELET_NADIR, 0] + 1e-9
    assert high[L.C_NEUTROPHIL_NADIR, 0] <= low[L.C_NEUTROPHIL_NADIR, 0] + 1e-12
    given_both = int(min(np.sum(~np.isnan(low[L.C_TIME_DAYS])), np.sum(~np.isnan(high[L.C_TIME_DAYS]))))
    b_low, b_high = low[L.C_KIDNEY_BED_GY, :given_both].sum(), high[L.C_KIDNEY_BED_GY, :given_both].sum()
    rf = p["KIDNEY_RISK_FACTOR"]
    assert nephropathy_probability(b_high, 49.5, 0.108, rf, 15.5) >= nephropathy_probability(b_low, 49.5, 0.108, rf,
                                                                                             15.5)


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
    from sim import config, engine, outcomes

    from .conftest import CONFIGS

    cfg = config.load(CONFIGS / "guided_vs_fixed.toml", {"trial.patients": 60, **overrides})
    ds = outcomes.to_dataset(engine.run(cfg))
    given_ = ds.activity_gbq > 0
    assert bool((ds.pfs_time_days <= ds.os_time_days).all()) and not bool(ds.os_time_days.isnull().any())
    for organ in ("kidney", "marrow", "tumour"):
        assert bool((ds[f"{organ}_bed_gy"] >= ds[f"{organ}_dose_gy"]).all())
        assert not bool(ds[f"{organ}_dose_gy"].isnull().any()) and bool((ds[f"{organ}_dose_gy"] >= 0).all())
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
        marrow_before = _known_before(np.nan_to_num(a.marrow_dose_measured_gy.values))
        if arm.rule != "activity_to_kidney_target":  # its marrow cap is spread over cycles (a prediction)
            assert (marrow_before[g] < arm.marrow_limit_gy).all()
        if arm.rule == "activity_to_kidney_target" and arm.target_quantity == "dose":
            kidney_before = _known_before(np.nan_to_num(a.kidney_dose_measured_gy.values))
            assert (kidney_before[g] < arm.target_gy).all()
