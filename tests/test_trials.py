"""Virtual randomised trials: allocation, analysis timing, interim analysis, type-I error, power and its Monte Carlo
error, the sample-size search and its fitted curve, reproducibility, the per-replicate file, CLI."""

import json
import math

import numba
import numpy as np
import pytest
import xarray as xr
from scipy import special

from sim import analysis, cli, engine, trials
from sim.survival import logrank
from sim.units import DAYS_PER_MONTH

from .conftest import CONFIGS, load_small

LU, CONTROL = "lu177_dotatate", "control"


@pytest.fixture(scope="module")
def netter1():
    return load_small("netter1")


def raw_replicate(cfg, design, r):
    """Replicate ``r``'s patients straight from the engine: (entry, time, event) per arm, without sim.trials."""
    time_var, event_var = trials.ENDPOINTS[design.endpoint]
    arms = []
    for a, (name, n) in enumerate(zip((design.experimental, design.reference), design.arm_sizes(), strict=True)):
        ds = engine.simulate_outcomes(cfg, name, trials.OFFSET + (2 * r + a) * trials.STRIDE + np.arange(n))
        arms.append((ds.entry_day.values, ds[time_var].values, ds[event_var].values.astype(bool)))
    return arms


# ------------------------------------------------------------------------------------------------------------------
# Design


@pytest.mark.parametrize(("patients", "allocation", "sizes"), [
    (90, (2, 1), (60, 30)), (229, (1, 1), (115, 114)), (10, (3, 2), (6, 4)), (831, (2, 1), (554, 277)),
])
def test_allocation_splits_the_patients(patients, allocation, sizes):
    assert trials.TrialDesign(LU, CONTROL, patients, 1, allocation=allocation).arm_sizes() == sizes


def test_trials_randomise_by_the_allocation(netter1):
    design = trials.TrialDesign(LU, CONTROL, 90, 5, allocation=(2, 1))
    result = trials.simulate_trials(netter1, design)
    assert np.all(result.patients == 90)  # analysed at the end of follow-up: everyone entered
    arms = raw_replicate(netter1, design, 3)
    assert [a[0].size for a in arms] == [60, 30]
    # the replicate's own statistics, recomputed from the engine's patients
    chi2 = logrank(arms[0][1], arms[0][2], arms[1][1], arms[1][2]).statistic
    assert result.z[3, 0] ** 2 == pytest.approx(chi2, rel=1e-12)


def test_choose_arms_defaults_to_the_only_comparison():
    assert trials.choose_arms(load_small("vision"), None) == ("lu177_psma617", "soc")
    with pytest.raises(trials.ConfigError, match="3 arms besides the reference arm 'fixed_netter1'"):
        trials.choose_arms(load_small("guided_vs_fixed"), None)


# ------------------------------------------------------------------------------------------------------------------
# Analysis timing


def test_cutoff_at_the_nth_event_on_hand_made_data():
    entry = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    time = np.array([50.0, 5.0, 100.0, 1.0, 2.0])
    event = np.array([1, 1, 0, 1, 1], dtype=bool)
    days = trials.event_days(entry, time, event)
    np.testing.assert_array_equal(days, [15.0, 31.0, 42.0, 50.0])  # entry + time of the events, sorted
    t, e = trials.at_cutoff(entry, time, event, days[1])  # the 2nd event: day 31
    np.testing.assert_array_equal(t, [31.0, 5.0, 11.0, 1.0])  # patient 4 entered on day 40: left out
    np.testing.assert_array_equal(e, [False, True, False, True])
    assert e.sum() == 2


def test_events_driven_analysis_sees_exactly_n_events(netter1):
    design = trials.TrialDesign(LU, CONTROL, 80, 12, events=30)
    result = trials.simulate_trials(netter1, design)
    assert np.all(result.events_reached) and np.all(result.events[:, 0] == 30)
    for r in (0, 7):
        entry, time, event = (np.concatenate(x) for x in zip(*raw_replicate(netter1, design, r), strict=True))
        calendar = np.sort(entry[event] + time[event])
        assert result.cutoff_day[r, 0] == calendar[29]
        assert result.patients[r, 0] == np.sum(entry <= calendar[29])


def test_events_not_reached_are_analysed_at_the_end_of_follow_up():
    cfg = load_small("netter1", **{"trial.accrual_months": 6.0, "trial.follow_up_months": 3.0})
    design = trials.TrialDesign(LU, CONTROL, 60, 20, events=40)
    out = trials.summarise(trials.simulate_trials(cfg, design), False)
    assert out["events_reached_fraction"] < 0.5
    assert out["events_mean"] < 40
    assert out["analysis_months_mean"] <= 9.0  # never later than accrual + follow-up


def test_calendar_analysis(netter1):
    design = trials.TrialDesign(LU, CONTROL, 100, 10, analysis_months=20.0)
    result = trials.simulate_trials(netter1, design)
    assert np.all(result.cutoff_day == 20.0 * DAYS_PER_MONTH)
    entry, time, event = (np.concatenate(x) for x in zip(*raw_replicate(netter1, design, 4), strict=True))
    cutoff = 20.0 * DAYS_PER_MONTH
    assert result.patients[4, 0] == np.sum(entry <= cutoff) < 100  # accrual is 40 months
    assert result.events[4, 0] == np.sum(event & (entry + time <= cutoff))


# ------------------------------------------------------------------------------------------------------------------
# Power, type-I error, interim analysis


def test_type_one_error_with_identical_regimens(netter1):
    design = trials.TrialDesign(LU, LU, 120, 400)
    result = trials.simulate_trials(netter1, design)
    assert trials.same_regimen(netter1, LU, LU)
    assert 0.02 <= result.power <= 0.08  # nominal 0.05 +/- 0.03
    assert np.median(result.effect) == pytest.approx(1.0, abs=0.1)


def test_group_sequential_type_one_error(netter1):
    design = trials.TrialDesign(LU, LU, 120, 400, events=60, interim=0.5)
    out = trials.summarise(trials.simulate_trials(netter1, design), True)
    assert 0.02 <= out["type_i_error"] <= 0.08  # two looks, overall 0.05 +/- 0.03
    assert out["boundaries_z"] == pytest.approx([2.963, 1.969], abs=1e-3)
    assert out["interim_stop_fraction"] < 0.02  # 0.0030 spent at the interim


def test_interim_stops_an_effective_treatment_early(netter1):
    design = trials.TrialDesign(LU, CONTROL, 170, 100, events=60, interim=0.5)
    result = trials.simulate_trials(netter1, design)
    out = trials.summarise(result, False)
    assert out["interim_events"] == 30 and np.all(result.events[:, 0] == 30)
    assert np.all(result.cutoff_day[:, 0] < result.cutoff_day[:, 1])
    assert out["interim_stop_fraction"] > 0.5  # published PFS HR 0.21: |z| ~ 4 at 30 events
    assert 30 < out["expected_events"] < 60 and out["expected_patients"] <= 170
    stopped = result.stop_look == 0
    assert np.all(np.abs(result.z[stopped, 0]) >= out["boundaries_z"][0])


def test_netter1_power_with_100_per_arm(netter1):
    design = trials.TrialDesign(LU, CONTROL, 200, 200)
    result = trials.simulate_trials(netter1, design)
    out = trials.summarise(result, False)
    assert out["power"] > 0.95
    assert out["hr_ci"][0] < out["hr_median"] < out["hr_ci"][1] < 0.5  # published PFS HR 0.21 (0.13-0.33)
    assert "type_i_error" not in out
    p = np.mean(result.p_value[:, 0] < 0.05)  # one look: rejecting at |z| >= z_0.975 is p < alpha
    assert out["power"] == pytest.approx(p)
    assert out["power_mc_se"] == pytest.approx(math.sqrt(p * (1 - p) / 200), abs=5e-5)


def test_power_mc_se_is_the_binomial_standard_error(netter1):
    design = trials.TrialDesign(LU, CONTROL, 24, 150)
    result = trials.simulate_trials(netter1, design)
    k = int(np.sum(np.abs(result.z[:, 0]) >= special.ndtri(0.975)))
    assert 10 < k < 140  # a power away from 0 and 1, so the SE is not trivially 0
    assert result.power_mc_se == pytest.approx(math.sqrt(k / 150 * (1 - k / 150) / 150), rel=1e-12)


# ------------------------------------------------------------------------------------------------------------------
# Sample size


def test_sample_size_search(netter1):
    design = trials.TrialDesign(LU, CONTROL, 80, 100)
    needed, results = trials.required_patients(netter1, design, 0.9)
    powers = {n: r.power for n, r in results.items()}
    assert needed is not None and needed % 2 == 0 and powers[needed] >= 0.9
    assert all(p < 0.9 for n, p in powers.items() if n < needed)
    smaller = [n for n in powers if n < needed]
    assert smaller and max(smaller) >= 0.9 * needed - 2  # located to within the 2 % (or one-block) resolution


def test_search_stops_at_the_cap(netter1):
    design = trials.TrialDesign(LU, LU, 40, 20, allocation=(2, 1))
    needed, results = trials.required_patients(netter1, design, 0.9, max_per_arm=60)
    assert needed is None
    assert max(r.design.arm_sizes()[0] for r in results.values()) == 60  # 2:1 blocks of 3: 30 blocks
    assert all(n % 3 == 0 for n in results)


def test_power_curve_fit_recovers_a_known_curve():
    a, b = -3.0, 0.25
    n = np.array([25, 64, 100, 144, 225, 400])
    replicates = np.full(n.size, 1_000_000)
    successes = np.round(replicates * special.ndtr(a + b * np.sqrt(n)))
    fit = trials.fit_power_curve(n, successes, replicates)
    assert fit.a == pytest.approx(a, abs=2e-3) and fit.b == pytest.approx(b, abs=2e-4)
    assert fit.patients_for(0.9) == pytest.approx(((special.ndtri(0.9) - a) / b) ** 2, rel=1e-2)


@pytest.mark.parametrize(("successes", "why"), [
    ([100, 100, 100], "every power 1"), ([0, 0, 100], "separated"), ([0, 50, 100], "quasi-separated"),
])
def test_power_curve_fit_is_none_without_a_finite_mle(successes, why):
    assert trials.fit_power_curve([10, 20, 40], successes, [100, 100, 100]) is None, why


def test_fitted_curve_of_a_search_is_monotone(netter1):
    design = trials.TrialDesign(LU, CONTROL, 60, 100)
    needed, results = trials.required_patients(netter1, design, 0.8)
    points, fit = trials.power_curve(results)
    assert fit is not None and fit.b > 0
    fitted = [p["power_fitted"] for p in points]
    assert fitted == sorted(fitted) and len(set(fitted)) == len(fitted)
    assert abs(fit.patients_for(0.8) - needed) <= 0.3 * needed
    for p in points:  # the MC SE of every point
        assert p["power_mc_se"] == pytest.approx(math.sqrt(p["power"] * (1 - p["power"]) / 100), abs=1e-4)


# ------------------------------------------------------------------------------------------------------------------
# Reproducibility


def test_trials_do_not_depend_on_threads_or_batches(netter1, monkeypatch):
    designs = [trials.TrialDesign(LU, CONTROL, 60, 70),
               trials.TrialDesign(LU, CONTROL, 90, 70, allocation=(2, 1), events=40, interim=0.5)]
    for design in designs:
        results = []
        for threads, batch in ((1, 64), (2, 64), (2, 7)):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            monkeypatch.setattr(trials, "REPLICATES_PER_BATCH", batch)
            results.append(trials.simulate_trials(netter1, design))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        for other in results[1:]:
            for name in ("z", "effect", "events", "patients", "cutoff_day"):
                np.testing.assert_array_equal(getattr(results[0], name), getattr(other, name))


# ------------------------------------------------------------------------------------------------------------------
# Response end points


PERSONALISED, STANDARD = "personalised", "standard"  # DOSISPHERE-01's arms


@pytest.fixture(scope="module")
def dosisphere():
    return load_small("dosisphere01")


def test_response_trial_counts_every_randomised_patient(dosisphere):
    design = trials.TrialDesign(PERSONALISED, STANDARD, 50, 6, endpoint="easl", allocation=(3, 2))
    result = trials.simulate_trials(dosisphere, design)
    end_day = (dosisphere.trial.accrual_months + dosisphere.trial.follow_up_months) * DAYS_PER_MONTH
    assert np.all(result.patients == 50) and np.all(result.cutoff_day == end_day) and result.bounds.size == 1
    for r in (0, 5):  # the replicate's own responders, straight from the engine and the summary's EASL reading
        responders = []
        for a, (name, n) in enumerate(zip((PERSONALISED, STANDARD), (30, 20), strict=True)):
            ds = engine.simulate_outcomes(dosisphere, name, trials.OFFSET + (2 * r + a) * trials.STRIDE + np.arange(n))
            responders.append(int(analysis.easl_index_response(ds).sum()))
        k_e, k_r = responders
        assert result.events[r, 0] == k_e + k_r
        np.testing.assert_array_equal(result.response_rates[r], [k_e / 30, k_r / 20])
        assert result.effect[r, 0] == k_e / 30 - k_r / 20
        pbar = (k_e + k_r) / 50
        assert result.z[r, 0] == pytest.approx((k_r / 20 - k_e / 30) / math.sqrt(pbar * (1 - pbar) * (1 / 30 + 1 / 20)),
                                               rel=1e-12)


def test_response_power_matches_the_normal_approximation(dosisphere):
    """At 80 patients per arm, the simulated power of the score test is the normal-approximation power at the arms'
    true response rates (estimated on 3,000 other patients per arm; Fleiss 2003 eq. 4.14 solved for the power), and
    with the same regimen in both arms it is the type-I error."""
    rates = [float(analysis.easl_index_response(engine.simulate_outcomes(dosisphere, arm, np.arange(3000))).mean())
             for arm in (PERSONALISED, STANDARD)]
    assert rates[0] - rates[1] > 0.08  # an effect the trial can see
    n, (p1, p2) = 80, rates
    pbar = (p1 + p2) / 2
    expected = special.ndtr((abs(p1 - p2) * math.sqrt(n) - special.ndtri(0.975) * math.sqrt(2 * pbar * (1 - pbar)))
                            / math.sqrt(p1 * (1 - p1) + p2 * (1 - p2)))
    out = trials.summarise(trials.simulate_trials(dosisphere, trials.TrialDesign(
        PERSONALISED, STANDARD, 2 * n, 300, endpoint="easl")), False)
    assert out["power"] == pytest.approx(expected, abs=3 * out["power_mc_se"] + 0.04)  # + the rates' own error
    assert out["test"] == "two-proportion score test" and "hr_median" not in out
    assert out["response_rates_mean"] == pytest.approx(rates, abs=0.03)
    assert out["rate_difference_ci"][0] < out["rate_difference_median"] < out["rate_difference_ci"][1]
    same = trials.summarise(trials.simulate_trials(dosisphere, trials.TrialDesign(
        STANDARD, STANDARD, 2 * n, 300, endpoint="easl")), True)
    assert 0.02 <= same["type_i_error"] <= 0.09  # nominal 0.05


# ------------------------------------------------------------------------------------------------------------------
# CLI


def test_cli_trial_json(capsys):
    rc = cli.main(["trial", str(CONFIGS / "netter1.toml"), "--arms", LU, CONTROL, "--patients-per-arm", "20",
                   "--replicates", "30", "--json", "--target-power", "0.5"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("power", "power_mc_se", "hr_median", "hr_ci", "patients", "patients_per_arm", "replicates",
                "required_patients", "required_patients_per_arm", "power_curve", "power_curve_fit",
                "required_patients_fitted"):
        assert key in out
    assert out["replicates"] == 30 and out["patients"] == 40 and out["patients_per_arm"] == [20, 20]


def test_cli_trial_uses_the_published_design(capsys):
    """No --arms and no size: VISION's reference arm, its other arm, 831 randomised 2:1 (trial section)."""
    rc = cli.main(["trial", str(CONFIGS / "vision.toml"), "--replicates", "4", "--events", "300", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["experimental_arm"], out["reference_arm"]) == ("lu177_psma617", "soc")
    assert out["patients"] == 831 and out["patients_per_arm"] == [554, 277] and out["allocation"] == [2, 1]
    assert out["target_events"] == 300 and out["events_mean"] == 300.0
    assert out["endpoint"] == "pfs" and out["endpoint_name"] == "rPFS"  # VISION's radiographic PFS, by its name


def test_cli_trial_text(capsys):
    rc = cli.main(["trial", str(CONFIGS / "netter1.toml"), "--patients", "90", "--allocation", "2:1",
                   "--replicates", "20", "--events", "30", "--interim", "0.5"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "90 patients (60 + 30, allocation 2:1)" in text and "(MC SE)" in text and "interim at 15 events" in text
    assert ", PFS, 90 patients" in text


def test_cli_trial_output_file(tmp_path, capsys):
    out_h5, png = tmp_path / "trial.h5", tmp_path / "power.png"
    rc = cli.main(["trial", str(CONFIGS / "netter1.toml"), "--patients", "60", "--events", "24", "--interim", "0.5",
                   "--replicates", "30", "--target-power", "0.6", "-o", str(out_h5), "--figure", str(png), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with xr.open_dataset(out_h5, engine="h5netcdf") as ds:
        assert ds.attrs["schema"] == "rptsim-trials" and ds.attrs["scenario"] == "NETTER-1"
        assert ds.attrs["Conventions"] == "CF-1.10" and ds.attrs["title"].startswith("rptsim trial of NETTER-1")
        assert ": rptsim trial " in ds.attrs["history"]
        assert json.loads(ds.attrs["flags_json"])["interim"] == 0.5
        assert json.loads(ds.attrs["design_json"])["events"] == 24
        assert sorted(ds["size"].values) == sorted(p["patients"] for p in out["power_curve"])
        assert list(ds.look.values) == ["interim", "final"]
        assert ds.z.attrs["long_name"] and ds.cutoff_day.attrs["units"] == "day"
        design = ds.sel(size=60)
        assert float(design.rejected.mean()) == pytest.approx(out["power"], abs=5e-5)
        np.testing.assert_allclose(design.p_value, 2 * special.ndtr(-np.abs(design.z)))
        assert np.all(design.events.sel(look="interim") == 12) and np.all(design.events.sel(look="final") <= 24)
        np.testing.assert_allclose(ds.boundary_z, out["boundaries_z"], atol=1e-4)
        crossed = np.abs(np.nan_to_num(design.z.values)) >= ds.boundary_z.values
        np.testing.assert_array_equal(crossed.any(axis=1), design.rejected.values)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--arms", LU, "nope"], "unknown arm 'nope'"),
    (["--alpha", "1.5"], "--alpha = 1.5"),
    (["--replicates", "0"], "--replicates = 0"),
    (["--allocation", "2:0"], "--allocation = '2:0'"),
    (["--allocation", "two"], "--allocation = 'two'"),
    (["--patients", "1", "--allocation", "2:1"], "--patients = 1: allocation 2:1 gives the arms 1 and 0"),
    (["--patients-per-arm", "10", "--allocation", "2:1"], "--patients-per-arm means 1:1"),
    (["--patients-per-arm", "0"], "--patients-per-arm = 0"),
    (["--events", "0"], "--events = 0: must be in [1, 229]"),
    (["--events", "300"], "--events = 300: must be in [1, 229]"),
    (["--interim", "0.5"], "--interim = 0.5: needs --events"),
    (["--events", "40", "--interim", "1.5"], "--interim = 1.5: must be in (0, 1)"),
    (["--events", "4", "--interim", "0.9"], "--interim = 0.9: the interim analysis at 4 of --events 4"),
    (["--analysis-months", "200"], "--analysis-months = 200.0: must be in (0, 100]"),
    (["--target-power", "1.2"], "--target-power = 1.2"),
    (["--max-patients-per-arm", "0"], "--max-patients-per-arm = 0"),
    (["--figure", "x.png"], "--figure x.png: needs --target-power"),
    (["--endpoint", "psa50"], "--endpoint psa50: NETTER-1 does not model PSA"),
    (["--endpoint", "orr", "--events", "40"], "--endpoint orr: a response end point is analysed once"),
])
def test_cli_trial_errors(capsys, tmp_path, args, fragment):
    out = tmp_path / "never.h5"
    rc = cli.main(["trial", str(CONFIGS / "netter1.toml"), "--replicates", "5", "-o", str(out), *args])
    assert rc == 2 and fragment in capsys.readouterr().err
    assert not out.exists()


def test_cli_response_trial_file(tmp_path, capsys):
    out_h5 = tmp_path / "easl.h5"
    rc = cli.main(["trial", "dosisphere01", "--endpoint", "easl", "--replicates", "12", "--patients", "40",
                   "-o", str(out_h5), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["endpoint_name"] == "EASL response of the index lesion" and out["patients_per_arm"] == [20, 20]
    with xr.open_dataset(out_h5, engine="h5netcdf") as ds:
        design = ds.sel(size=40)
        rates = design.response_rate.values  # (replicate, trial_arm)
        np.testing.assert_allclose(design.rate_difference.sel(look="final"), rates[:, 0] - rates[:, 1])
        np.testing.assert_allclose(design.events.sel(look="final"), 20 * rates.sum(axis=1))
        assert float(design.rejected.mean()) == pytest.approx(out["power"], abs=5e-5)
        assert "hazard_ratio" not in ds and list(ds.trial_arm.values) == ["experimental", "reference"]
    capsys.readouterr()
    cli.main(["trial", "dosisphere01", "--endpoint", "easl", "--replicates", "12", "--patients", "40"])
    text = capsys.readouterr().out
    assert "response-rate difference: median" in text and "two-proportion score test power at alpha 0.05" in text


def test_cli_names_every_trial_end_point():
    assert cli.ENDPOINT_CHOICES == trials.ENDPOINT_CHOICES


def test_a_trial_needs_a_size():
    cfg = load_small("netter1", **{"trial.randomised_patients": None})
    flags = cli._parser().parse_args(["trial", str(CONFIGS / "netter1.toml")])
    with pytest.raises(trials.ConfigError, match="no trial size: give --patients N or --patients-per-arm N"):
        trials.design_from_flags(cfg, flags)
