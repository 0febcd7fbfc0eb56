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
