"""The salivary and lacrimal glands, organs at risk of [177Lu]Lu-PSMA-617 added as entries of the organ axis
(docs/extending.md): dose and BED per cycle, the summary keys, and no change to anything else."""

from __future__ import annotations

import numpy as np
import pytest

from sim import analysis, config, engine, kernel_inputs
from sim.cohort import draw

from .conftest import CONFIGS, load_small


def vision_without(organ: str, patients: int) -> config.Config:
    data = config.read_scenario(CONFIGS / "vision.toml")
    del data["agents"]["psma617"][organ]
    data["organ_toxicity"].pop(organ, None)  # xerostomia needs the salivary glands
    data.pop("uncertainty")  # its priors include the salivary Gy/GBq
    config.set_dotted(data, "trial.patients", patients)
    return config.validate(data, f"vision without {organ}")


@pytest.fixture(scope="module")
def vision():
    return engine.run(load_small("vision", patients=600))


def test_salivary_glands_are_on_the_psma_organ_axis_only(vision, netter1_run):
    assert list(vision.organ.values) == ["kidney", "marrow", "salivary", "lacrimal"]
    assert list(netter1_run.organ.values) == ["kidney", "marrow"]  # DOTATATE's config gives no salivary dosimetry


def test_salivary_dose_and_bed_per_cycle():
    """Cycle-1 Gy/GBq around the label's 0.63 (log-normal spread and tumour sink), and the BED of a mono-exponential
    dose rate, D (1 + G D / (alpha/beta)) with G = T_rep / (T_rep + T_eff), alpha/beta 3 Gy, T_rep 1.5 h."""
    cfg = load_small("vision", patients=2000)
    ds = engine.run(cfg).sel(arm="lu177_psma617", organ="salivary")
    given = ds.activity_gbq.values[:, 0] > 0
    per_gbq = ds.dose_gy.values[given, 0] / ds.activity_gbq.values[given, 0]
    assert 0.55 < np.median(per_gbq) < 0.72
    assert 0.4 < np.std(np.log(per_gbq)) < 0.7  # inter-patient 0.52, cycle-to-cycle 0.15, sink
    teff = kernel_inputs.translate(cfg, "lu177_psma617", draw(cfg, ds.patient.values)).patients.teff_h[:, 2]
    g = 1.5 / (1.5 + teff)
    dose, bed = ds.dose_gy.values, ds.bed_gy.values
    np.testing.assert_allclose(bed, dose * (1 + g[:, None] * dose / 3.0), rtol=1e-13)
    assert np.isnan(ds.dose_measured_gy.values).all()  # no dosimetry in the VISION arm: nothing measured


def test_salivary_dose_in_the_summary(vision):
    s = analysis.summary(vision)["arms"]
    lu, soc = s["lu177_psma617"], s["soc"]
    # ~0.63 Gy/GBq x the cumulative activity (the sink and skew move the median a little)
    ratio = lu["salivary_dose_gy_median"] / lu["cumulative_activity_gbq_median"]
    assert 0.5 < ratio < 0.75 and lu["salivary_bed_gy_median"] > lu["salivary_dose_gy_median"]
    assert soc["salivary_dose_gy_median"] == 0.0


@pytest.mark.parametrize("organ", ["salivary", "lacrimal"])
def test_adding_the_organ_changes_no_other_output(organ):
    """Its two random streams are new names: every other output, to the last bit, is what it was without it."""
    with_glands = engine.run(load_small("vision", patients=300))
    without = engine.run(vision_without(organ, 300))
    others = [o for o in with_glands.organ.values if o != organ]
    assert list(without.organ.values) == others
    for name in without.data_vars:
        a = with_glands[name]
        if "organ" in a.dims:
            a = a.sel(organ=others)
        np.testing.assert_array_equal(a.values, without[name].values, err_msg=name)


def test_lacrimal_dose_per_cycle_and_in_the_summary(vision):
    """Cycle-1 Gy/GBq around the label's 2.1 (log-normal spread and tumour sink); the summary's median dose is
    about 2.1 x the cumulative activity, and 0 in the standard-of-care arm."""
    lu = vision.sel(arm="lu177_psma617", organ="lacrimal")
    given = lu.activity_gbq.values[:, 0] > 0
    assert 1.8 < np.median(lu.dose_gy.values[given, 0] / lu.activity_gbq.values[given, 0]) < 2.4
    s = analysis.summary(vision)["arms"]
    ratio = s["lu177_psma617"]["lacrimal_dose_gy_median"] / s["lu177_psma617"]["cumulative_activity_gbq_median"]
    assert 1.6 < ratio < 2.5 and s["soc"]["lacrimal_dose_gy_median"] == 0.0


def test_salivary_dosimetry_needs_its_radiobiology_and_its_measurement_error():
    data = config.read_scenario(CONFIGS / "vision.toml")
    del data["radiobiology"]["salivary"]
    with pytest.raises(config.ConfigError, match=r"agents.psma617.salivary needs \[radiobiology.salivary\]"):
        config.validate(data, "x")
    data = config.read_scenario(CONFIGS / "vision.toml")
    del data["dosimetry_methods"]["spect_3tp"]["salivary_cv"]
    data["arms"][0]["dosimetry"] = {"method": "spect_3tp"}
    with pytest.raises(config.ConfigError, match="dosimetry_methods.spect_3tp.salivary_cv is not given"):
        config.validate(data, "x")
