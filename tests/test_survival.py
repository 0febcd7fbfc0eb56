"""sim.survival against lifelines / scipy on censored, tied data, plus closed forms.

lifelines is slow to import, so each test imports what it needs.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from sim import survival as sv


def _sample(rng: np.random.Generator, n: int, scale: float = 20.0, censor: float = 30.0, decimals: int = 0):
    """Exponential times with independent exponential censoring, rounded so that there are many ties."""
    t = rng.exponential(scale, n)
    c = rng.exponential(censor, n)
    return np.round(np.minimum(t, c), decimals), t <= c


def _two_groups(rng: np.random.Generator, n: int, ratio: float = 0.6, decimals: int = 0):
    """Group 1 has hazard ``ratio`` times group 0's; times rounded (ties within and across groups)."""
    group = rng.random(n) < 0.5
    t = rng.exponential(15.0, n) / np.where(group, ratio, 1.0)
    c = rng.uniform(0.0, 60.0, n)
    return np.round(np.minimum(t, c), decimals), t <= c, group


def _datasets():
    """(time, event) pairs: ties and censoring, a tail that drops to 0, heavy censoring (median unreached)."""
    rng = np.random.default_rng(20240607)
    out = [_sample(rng, n) for n in (25, 150, 400)]
    t, e = _sample(rng, 60, censor=1e9)  # uncensored: curve reaches 0
    out.append((t, e))
    out.append(_sample(rng, 200, scale=200.0, censor=20.0))  # heavy censoring: median CI open above
    out.append(_sample(rng, 200, scale=400.0, censor=15.0))  # median not reached
    t, e = _sample(rng, 80)
    e[np.argmax(t)] = True  # last time an event
    out.append((t, e))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Kaplan-Meier


@pytest.mark.parametrize("level", [0.95, 0.9])
def test_kaplan_meier_matches_lifelines(level):
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times, restricted_mean_survival_time

    for time, event in _datasets():
        km = sv.kaplan_meier(time, event, level=level)
        kmf = KaplanMeierFitter(alpha=1 - level).fit(time, event)
        sf = kmf.survival_function_.iloc[:, 0]
        table = kmf.event_table
        assert np.array_equal(km.time, table.index[table["observed"] > 0].to_numpy())
        np.testing.assert_array_equal(km.at_risk, table.loc[km.time, "at_risk"].to_numpy())
        np.testing.assert_array_equal(km.events, table.loc[km.time, "observed"].to_numpy())
        np.testing.assert_allclose(km.survival, sf.loc[km.time].to_numpy(), rtol=1e-13, atol=1e-15)
        # every lifelines time point (0, censoring times, beyond) through the step function
        np.testing.assert_allclose(km.at(sf.index.to_numpy()), sf.to_numpy(), rtol=1e-13, atol=1e-15)
        ci = kmf.confidence_interval_
        np.testing.assert_allclose(km.lower, ci.iloc[:, 0].loc[km.time].to_numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(km.upper, ci.iloc[:, 1].loc[km.time].to_numpy(), rtol=1e-12, atol=1e-15)
        assert np.all(km.lower <= km.survival) and np.all(km.survival <= km.upper)

        ll_median = kmf.median_survival_time_
        assert km.median() == (None if math.isinf(ll_median) else ll_median)
        ll_ci = median_survival_times(ci).to_numpy().ravel()
        assert km.median_ci() == tuple(None if math.isinf(x) else float(x) for x in ll_ci)

        for horizon in (0.0, 0.5, 3.0, float(km.time[len(km.time) // 2]), 17.3, float(time.max()) + 5.0):
            assert km.rmst(horizon) == pytest.approx(
                restricted_mean_survival_time(kmf, t=horizon), rel=1e-12, abs=1e-12
            )


def test_kaplan_meier_uncensored_is_empirical_survival():
    rng = np.random.default_rng(1)
    time = np.round(rng.gamma(2.0, 5.0, 300))
    km = sv.kaplan_meier(time, np.ones(time.size, bool))
    probe = np.concatenate((km.time, km.time - 0.5, [-1.0, 1e6]))
    np.testing.assert_allclose(km.at(probe), (time[None, :] > probe[:, None]).mean(axis=1), rtol=0, atol=1e-14)
    # with nothing censored the area is the sample mean of min(T, horizon)
    for horizon in (3.0, 10.0, 1e6):
        assert km.rmst(horizon) == pytest.approx(np.minimum(time, horizon).mean(), rel=1e-12)
    assert km.survival[-1] == 0.0 and km.lower[-1] == 0.0 and km.upper[-1] == 0.0


def test_kaplan_meier_edge_cases():
    km = sv.kaplan_meier(np.array([]), np.array([], bool))
    assert km.time.size == 0 and km.median() is None and km.median_ci() == (None, None)
    assert km.rmst(5.0) == 5.0 and float(km.at(3.0)) == 1.0
    km = sv.kaplan_meier([4.0, 5.0, 6.0], [False, False, False])
    assert km.time.size == 0 and km.rmst(2.5) == 2.5
    with pytest.raises(ValueError):
        km.rmst(-1.0)
    with pytest.raises(ValueError):
        sv.kaplan_meier([1.0], [True], level=1.0)


def test_event_times_up_to_each_subject_are_the_search_of_its_time():
    """The counts that KMFunctionals and the Cox score residuals take from the sort are np.searchsorted's."""
    rng = np.random.default_rng(3)
    time, event, group = _two_groups(rng, 400, decimals=-1)  # heavy ties
    for t, e in [*_datasets(), (time, event), (np.array([]), np.array([], bool)), (np.ones(3), np.zeros(3, bool))]:
        km, up_to = sv._kaplan_meier(t, e, 0.95)
        np.testing.assert_array_equal(up_to, np.searchsorted(km.time, t, side="right"))
    n, n1, d, d1, up_to = sv._two_group_table(time, event, group)
    np.testing.assert_array_equal(up_to, np.searchsorted(np.unique(time[event]), time, side="right"))


def test_cluster_codes_are_the_ranks_of_the_labels():
    rng = np.random.default_rng(4)
    for labels in (np.tile(np.arange(300), 2), rng.integers(-5, 50, 300), rng.integers(0, 10**9, 100),
                   np.array([np.iinfo(np.int64).min, 0, np.iinfo(np.int64).max]), np.array([], np.int64),
                   np.array(["b", "a", "b"]), rng.integers(0, 7, 7).astype(np.int32)):
        np.testing.assert_array_equal(sv._codes(labels), np.unique(labels, return_inverse=True)[1].ravel())


def test_rmst_of_exponential_sample_approaches_closed_form():
    rng = np.random.default_rng(7)
    lam, tau, n = 0.1, 15.0, 40_000
    t = rng.exponential(1 / lam, n)
    c = rng.uniform(0.0, 60.0, n)
    km = sv.kaplan_meier(np.minimum(t, c), t <= c)
    exact = (1 - math.exp(-lam * tau)) / lam
    # Monte Carlo SE of the uncensored estimator, inflated for censoring; the check is at 4 of them
    se = np.minimum(t, tau).std() / math.sqrt(n) * 1.5
    assert abs(km.rmst(tau) - exact) < 4 * se


# ---------------------------------------------------------------------------------------------------------------
# Log-rank


def test_logrank_matches_lifelines():
    from lifelines.statistics import logrank_test

    rng = np.random.default_rng(11)
    for n, ratio, decimals in ((40, 0.5, 0), (300, 0.7, 0), (500, 1.0, 0), (400, 0.8, 3)):
        time, event, group = _two_groups(rng, n, ratio, decimals)
        a, b = ~group, group
        ours = sv.logrank(time[a], event[a], time[b], event[b])
        ref = logrank_test(time[a], time[b], event[a], event[b])
        assert ours.statistic == pytest.approx(ref.test_statistic, rel=1e-11)
        assert ours.p_value == pytest.approx(ref.p_value, rel=1e-9, abs=1e-300)
        swapped = sv.logrank(time[b], event[b], time[a], event[a])
        assert swapped.statistic == pytest.approx(ours.statistic, rel=1e-12)


def test_logrank_degenerate():
    r = sv.logrank([1.0, 2.0], [False, False], [3.0], [False])
    assert math.isnan(r.statistic) and math.isnan(r.p_value)


# ---------------------------------------------------------------------------------------------------------------
# Cox


def _lifelines_cox(time, event, group):
    import pandas as pd
    from lifelines import CoxPHFitter

    df = pd.DataFrame({"T": time, "E": event.astype(int), "g": group.astype(float)})
    row = CoxPHFitter().fit(df, "T", "E").summary.loc["g"]
    return row


@pytest.mark.parametrize(
    ("n", "ratio", "decimals"),
    [(60, 0.5, 0), (400, 0.6, 0), (400, 1.3, -1), (500, 0.8, 4), (300, 1.0, 0)],
)
def test_cox_two_group_matches_lifelines(n, ratio, decimals):
    rng = np.random.default_rng(n + decimals)
    time, event, group = _two_groups(rng, n, ratio, decimals)
    ours = sv.cox_two_group(time, event, group)
    ref = _lifelines_cox(time, event, group)
    # lifelines reports the iterate before its last (tiny) Newton step, so it is off by ~1e-8 relative
    assert ours.hr == pytest.approx(ref["exp(coef)"], rel=1e-6)
    assert ours.low == pytest.approx(ref["exp(coef) lower 95%"], rel=1e-6)
    assert ours.high == pytest.approx(ref["exp(coef) upper 95%"], rel=1e-6)
    assert ours.se_log_hr == pytest.approx(ref["se(coef)"], rel=1e-7)
    assert ours.p_value == pytest.approx(ref["p"], rel=1e-4)


def test_cox_two_group_symmetry_and_level():
    rng = np.random.default_rng(5)
    time, event, group = _two_groups(rng, 300, 0.7)
    a = sv.cox_two_group(time, event, group)
    b = sv.cox_two_group(time, event, ~group)
    assert b.hr == pytest.approx(1 / a.hr, rel=1e-10)
    assert b.se_log_hr == pytest.approx(a.se_log_hr, rel=1e-8)
    assert b.p_value == pytest.approx(a.p_value, rel=1e-8)
    c = sv.cox_two_group(time, event, group, level=0.9)
    assert a.low < c.low < c.hr == a.hr < c.high < a.high


def test_cox_hazard_ratio_of_exponentials_approaches_truth():
    rng = np.random.default_rng(2024)
    n = 20_000
    group = np.repeat([False, True], n)
    t = rng.exponential(10.0, 2 * n) / np.where(group, 0.5, 1.0)  # hazard ratio 0.5
    c = rng.uniform(0.0, 30.0, 2 * n)
    r = sv.cox_two_group(np.minimum(t, c), t <= c, group)
    assert r.low < 0.5 < r.high
    assert abs(math.log(r.hr / 0.5)) < 3 * r.se_log_hr
    assert r.p_value < 1e-100


def test_cox_two_group_degenerate():
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    group = np.array([0, 1, 0, 1, 0, 1], bool)
    r = sv.cox_two_group(time, np.array([1, 0, 1, 0, 0, 0], bool), group)  # no events in group 1
    assert r.hr == 0.0 and math.isnan(r.low) and math.isnan(r.p_value)
    r = sv.cox_two_group(time, np.array([0, 1, 0, 1, 0, 1], bool), group)  # events only in group 1
    assert r.hr == math.inf and math.isnan(r.se_log_hr)
    # group 0 censored before group 1's events: no risk set with an event holds both groups
    assert math.isnan(sv.cox_two_group(time, np.array([0, 0, 0, 1, 1, 1], bool), np.arange(6) >= 3).hr)
    # group 0's deaths all happen while group 1 is at risk, and group 1 never dies: hr -> 0
    assert sv.cox_two_group(time, np.array([1, 1, 1, 0, 0, 0], bool), np.arange(6) >= 3).hr == 0.0
    assert math.isnan(sv.cox_two_group(time, np.zeros(6, bool), group).hr)
    assert math.isnan(sv.cox_two_group(time, np.ones(6, bool), np.ones(6, bool)).hr)
    r = sv.cox_two_group(time, np.array([1, 0, 1, 1, 0, 1], bool), group)
    assert 0.0 < r.hr < math.inf and r.low < r.hr < r.high


def test_efron_newton_solves_the_score_equation():
    rng = np.random.default_rng(9)
    time, event, group = _two_groups(rng, 500, 0.4, decimals=-1)  # heavy ties
    n, n1, d, d1, _ = sv._two_group_table(time, event, group)
    a0, a1, _, _ = sv._efron_terms(n.astype(float), n1.astype(float), d, d1)
    b, info = sv._efron_newton(a0, a1, float(d1.sum()))
    r = math.exp(b) * a1 / (a0 + math.exp(b) * a1)
    assert abs(d1.sum() - r.sum()) < 1e-9
    assert info == pytest.approx(np.sum(r * (1 - r)), rel=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Aalen-Johansen


def _lifelines_cif(time, cause, c, **kw):
    from lifelines import AalenJohansenFitter

    fitter = AalenJohansenFitter(calculate_variance=False, **kw).fit(time, cause, event_of_interest=c)
    return fitter.cumulative_density_.iloc[:, 0]


def test_aalen_johansen_matches_lifelines_without_cross_cause_ties():
    rng = np.random.default_rng(3)
    # continuous times; then integer times >= 1 where a time's cause is fixed by the time (ties within a cause
    # only, which lifelines does not jitter) and censorings tie with events
    t = rng.exponential(10.0, 300)
    cause = rng.integers(1, 4, 300)
    cause[rng.random(300) < 0.3] = 0
    ti = np.ceil(rng.exponential(10.0, 400))
    ci = (ti.astype(int) % 3 + 1) * (rng.random(400) > 0.3)
    for time, causes in ((t, cause), (ti, ci)):
        aj = sv.aalen_johansen(time, causes, 3)
        for c in (1, 2, 3):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # would fail if lifelines jittered
                ref = _lifelines_cif(time, causes, c)
            np.testing.assert_allclose(aj.cif[c - 1], ref.loc[aj.time].to_numpy(), rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(aj.at(ref.index.to_numpy())[c - 1], ref.to_numpy(), rtol=1e-13, atol=1e-15)


def test_aalen_johansen_cross_cause_ties_match_jittered_lifelines():
    """Breaking ties between causes in any order gives the same CIF once past the tied time; lifelines jitters
    them (by up to 1e-4 here), so compare half-way between the integer event times. Censoring times are kept
    off the integers so that the jitter cannot move an event past a censoring."""
    rng = np.random.default_rng(4)
    n = 300
    time = np.ceil(rng.exponential(8.0, n))
    cause = rng.integers(1, 3, n)
    censored = rng.random(n) < 0.25
    cause[censored] = 0
    time[censored] += 0.25
    aj = sv.aalen_johansen(time, cause, 2)
    probe = np.arange(0.5, time.max() + 1.0)
    for c in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Tied event times were detected"
            ref = _lifelines_cif(time, cause, c, seed=0)
        np.testing.assert_allclose(aj.at(probe)[c - 1], ref.asof(probe).to_numpy(), rtol=1e-12, atol=1e-14)


def test_aalen_johansen_closed_forms():
    rng = np.random.default_rng(8)
    time, event = _sample(rng, 250)
    cause = np.where(event, rng.integers(1, 4, time.size), 0)
    aj = sv.aalen_johansen(time, cause, 3)
    km = sv.kaplan_meier(time, cause > 0)
    np.testing.assert_array_equal(aj.time, km.time)
    # the cumulative incidences add up to one minus all-cause survival
    np.testing.assert_allclose(aj.cif.sum(axis=0), 1 - km.survival, rtol=0, atol=1e-14)
    # one cause: 1 - KM
    single = sv.aalen_johansen(time, event.astype(int), 1)
    np.testing.assert_allclose(single.cif[0], 1 - sv.kaplan_meier(time, event).survival, rtol=0, atol=1e-14)
    assert aj.at(np.array([-1.0, 1e9])).shape == (3, 2)
    assert np.all(aj.at(-1.0) == 0.0)
    with pytest.raises(ValueError):
        sv.aalen_johansen(time, cause, 2)
    empty = sv.aalen_johansen(np.array([]), np.array([], int), 2)
    assert empty.cif.shape == (2, 0)


# ---------------------------------------------------------------------------------------------------------------
# Wilson


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(level):
    from scipy.stats import binomtest

    for n in (1, 2, 7, 40, 513):
        ks = np.unique(np.linspace(0, n, 9).round().astype(int))
        for k in ks:
            ref = binomtest(int(k), n).proportion_ci(confidence_level=level, method="wilson")
            low, high = sv.wilson_ci(int(k), n, level)
            assert isinstance(low, float)
            assert low == pytest.approx(ref.low, rel=1e-13, abs=1e-15)
            assert high == pytest.approx(ref.high, rel=1e-13, abs=1e-15)
        lows, highs = sv.wilson_ci(ks, n, level)
        np.testing.assert_allclose(lows, [sv.wilson_ci(int(k), n, level)[0] for k in ks], rtol=0, atol=0)
        np.testing.assert_allclose(highs, [sv.wilson_ci(int(k), n, level)[1] for k in ks], rtol=0, atol=0)


def test_wilson_rejects_bad_counts():
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            sv.wilson_ci(k, n)


def test_two_proportion_z_is_pearsons_chi_square():
    from scipy.stats import chi2_contingency

    for k1, n1, k2, n2 in ((18, 30, 9, 29), (5, 40, 12, 20), (1, 7, 0, 9), (50, 100, 50, 100)):
        chi2 = chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False).statistic
        z = float(sv.two_proportion_z(k1, n1, k2, n2))
        assert z * z == pytest.approx(chi2, rel=1e-12, abs=1e-15)
        assert np.sign(z) == np.sign(k2 / n2 - k1 / n1)  # a higher first proportion: negative
    # by hand: pbar = 27/59, (9/29 - 18/30) / sqrt(pbar (1 - pbar) (1/30 + 1/29))
    pbar = 27 / 59
    assert float(sv.two_proportion_z(18, 30, 9, 29)) == pytest.approx(
        (9 / 29 - 18 / 30) / math.sqrt(pbar * (1 - pbar) * (1 / 30 + 1 / 29)), rel=1e-14)
    z = sv.two_proportion_z(np.array([0, 30, 3]), 30, np.array([0, 30, 1]), 30)  # no information: NaN
    assert np.isnan(z[:2]).all() and np.isfinite(z[2])


def test_km_hand_example():
    # times 1,2,2(censored),3,4(censored): S = 4/5, then x 3/4 at t=2 (censored tie still at risk), x 1/2 at 3.
    km = sv.kaplan_meier(np.array([1, 2, 2, 3, 4.0]), np.array([1, 1, 0, 1, 0]))
    np.testing.assert_allclose(km.time, [1, 2, 3])
    np.testing.assert_allclose(km.survival, [0.8, 0.6, 0.3])
    np.testing.assert_array_equal(km.at_risk, [5, 4, 2])
    assert km.median() == 3.0
    np.testing.assert_allclose(km.at(np.array([0.5, 1.0, 2.5, 10.0])), [1.0, 0.8, 0.6, 0.3])


def test_km_median_not_reached():
    km = sv.kaplan_meier(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 0, 0]))
    assert km.median() is None


def test_km_recovers_exponential_with_censoring():
    rng = np.random.default_rng(1)
    lam, n = 0.1, 40_000
    t_event = rng.exponential(1 / lam, n)
    t_cens = rng.uniform(0, 30, n)
    km = sv.kaplan_meier(np.minimum(t_event, t_cens), t_event <= t_cens)
    assert km.median() == pytest.approx(math.log(2) / lam, rel=0.03)
    for t in (2.0, 5.0, 12.0, 20.0):
        assert km.at(t) == pytest.approx(math.exp(-lam * t), abs=0.01)


def test_cox_hr_of_an_interim_data_set():
    """A risk-set table met at an interim analysis (10 event times; experimental events only late): the Efron MLE
    is finite, log HR -2.152358 by plain Newton iterations on the same partial likelihood. The bracketed Newton
    solver once sent b to -inf here: its converged step was below b's rounding, so the new b equalled the bracket's
    upper end and the bisection of (-inf, b) followed."""
    n = [68, 66, 62, 55, 42, 38, 32, 21, 11, 4]
    n1 = [34, 33, 32, 28, 26, 26, 21, 15, 7, 3]
    d = [1, 2, 1, 10, 4, 1, 6, 2, 1, 2]
    d1 = [0, 0, 0, 0, 0, 0, 3, 1, 0, 1]
    time, event, group = [], [], []
    for g, at_risk, deaths in ((1, n1, d1), (0, np.subtract(n, n1), np.subtract(d, d1))):
        for i in range(len(n)):  # deaths at day i + 1, the rest of those leaving the risk set censored at i + 1.5
            censored = at_risk[i] - deaths[i] - (at_risk[i + 1] if i + 1 < len(n) else 0)
            time += [i + 1.0] * deaths[i] + [i + 1.5] * censored
            event += [True] * deaths[i] + [False] * censored
            group += [g] * (deaths[i] + censored)
    hr = sv.cox_two_group(np.array(time), np.array(event), np.array(group, float)).hr
    assert hr == pytest.approx(math.exp(-2.152358), rel=1e-6)


def test_signed_logrank_z():
    better = np.array([10.0, 12.0, 15.0, 20.0, 30.0, 40.0])
    worse = np.array([1.0, 2.0, 3.0, 4.0, 8.0, 9.0])
    event = np.ones(6, bool)
    test = sv.logrank(worse, event, better, event)  # B (better) has fewer events early than expected
    assert test.z < 0 and test.z**2 == pytest.approx(test.statistic, rel=1e-12)
    assert sv.logrank(better, event, worse, event).z == pytest.approx(-test.z)
