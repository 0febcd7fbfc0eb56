"""Config validation: every bad value is named with its field path, value and allowed range."""

import math

import pytest

from sim import config
from sim.config import ConfigError

from .conftest import CONFIGS


def data(name="netter1"):
    return config.read_toml(CONFIGS / f"{name}.toml")


def check(d, *fragments):
    with pytest.raises(ConfigError) as err:
        config.validate(d, "test.toml")
    msg = str(err.value)
    assert msg.startswith("test.toml: ")
    for f in fragments:
        assert f in msg, msg
    return msg


@pytest.mark.parametrize("name", ["netter1", "vision"])
def test_shipped_configs_validate(name):
    cfg = config.load(CONFIGS / f"{name}.toml")
    assert cfg.trial.patients > 0 and len(cfg.arms) == 2


def test_negative_patients():
    d = data()
    d["trial"]["patients"] = -5
    check(d, "trial.patients = -5", "greater than or equal to 1")


def test_unknown_key_is_an_error():
    d = data()
    d["trial"]["patiens"] = 10
    check(d, "trial.patiens", "unknown key")


def test_arm_errors_name_the_arm():
    d = data()
    d["arms"][0]["activity_gbq"] = 0.0
    check(d, "arms.lu177_dotatate.activity_gbq", "greater than 0")
    d = data()
    d["arms"][0]["cycles"] = 0
    check(d, "arms.lu177_dotatate.cycles = 0", "greater than or equal to 1")
    d = data()
    d["arms"][0]["interval_weeks"] = -8
    check(d, "interval_weeks = -8")


def test_non_finite_numbers_rejected():
    d = data()
    d["agents"]["dotatate"]["kidney"]["gy_per_gbq_median"] = math.nan
    check(d, "agents.dotatate.kidney.gy_per_gbq_median", "finite")
    d = data()
    d["trial"]["follow_up_months"] = math.inf
    check(d, "trial.follow_up_months", "finite")


def test_probability_out_of_range():
    d = data()
    d["cohort"]["covariates"]["hypertension"]["p"] = 1.5
    check(d, "cohort.covariates.hypertension.p = 1.5", "less than or equal to 1")


def test_unknown_regimen_and_agent():
    d = data()
    d["arms"][0]["regimen"] = "magic"
    check(d, "arms.lu177_dotatate.regimen = 'magic'", "must be one of 'fixed', 'guided', 'control'")
    d = data()
    d["arms"][0]["agent"] = "dotatoc"
    check(d, "uses agent 'dotatoc'", "defined: ['dotatate']")


def test_empty_arm_list_and_duplicate_names():
    d = data()
    d["arms"] = []
    check(d, "arms", "at least 1")
    d = data()
    d["arms"][1]["name"] = d["arms"][0]["name"]
    check(d, "unique")


def test_activity_list_must_match_cycles():
    d = data()
    d["arms"][0]["activity_gbq"] = [8.5, 8.0, 7.5]
    check(d, "lists 3 activities but cycles = 4")


def test_correlations_checked():
    d = data()
    d["cohort"]["correlations"].append({"a": "age_years", "b": "bogus", "rho": 0.2})
    check(d, "unknown covariate 'bogus'")
    d = data()
    # age-eGFR -0.4 already; these make the matrix indefinite
    d["cohort"]["correlations"] += [{"a": "age_years", "b": "diabetes", "rho": 0.95},
                                    {"a": "egfr_ml_min", "b": "diabetes", "rho": 0.6}]
    check(d, "not positive definite")


def test_beta_sd_infeasible():
    d = data()
    d["cohort"]["covariates"]["stroma_fraction"] = {"dist": "beta", "mean": 0.5, "sd": 0.6}
    check(d, "stroma_fraction", "must be < sqrt(mean*(1-mean))")


def test_toml_syntax_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[trial\npatients = 3\n")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        config.load(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")


def test_overrides_by_dotted_path_and_arm_name():
    cfg = config.load(CONFIGS / "netter1.toml", {"trial.patients": 7, "arms.lu177_dotatate.cycles": 2})
    assert cfg.trial.patients == 7 and cfg.arm("lu177_dotatate").cycles == 2
    with pytest.raises(ConfigError, match="no item named 'nope'"):
        config.load(CONFIGS / "netter1.toml", {"arms.nope.cycles": 2})


def test_guided_arm_validation():
    d = config.read_toml(CONFIGS / "guided_vs_fixed.toml")
    d["arms"][1].pop("kidney_bed_limit_gy")
    check(d, "arms.iluminet", "needs kidney_bed_limit_gy")
    d = config.read_toml(CONFIGS / "guided_vs_fixed.toml")
    d["arms"][2]["dosimetry"]["method"] = "pet"
    check(d, "uses dosimetry method 'pet'", "spect_3tp")
    d = config.read_toml(CONFIGS / "guided_vs_fixed.toml")
    del d["arms"][2]["dosimetry"]
    check(d, "arms.p_prrt.dosimetry", "required field is missing")


def test_extends_and_select_arms(tmp_path):
    cfg = config.load(CONFIGS / "p_prrt.toml")
    assert [a.name for a in cfg.arms] == ["fixed_netter1", "p_prrt"]
    assert cfg.cohort == config.load(CONFIGS / "netter1.toml").cohort  # inherited through two files
    child = tmp_path / "child.toml"
    child.write_text(f'extends = "{(CONFIGS / "netter1.toml").as_posix()}"\nselect_arms = ["nope"]\n')
    with pytest.raises(ConfigError, match=r"unknown arm\(s\) \['nope'\]"):
        config.load(child)
    loop = tmp_path / "loop.toml"
    loop.write_text('extends = "loop.toml"\n')
    with pytest.raises(ConfigError, match="circular"):
        config.load(loop)


def test_scenario_overrides_table(tmp_path):
    """A scenario's [overrides] sets dotted paths after extends and select_arms (arms by name), nested or quoted."""
    cfg = config.load(CONFIGS / "retreatment.toml")
    fixed = cfg.arm("fixed_netter1")
    assert fixed.retreatment.cycles == 2 and fixed.retreatment.kidney_bed_limit_gy is None
    assert cfg.arm("iluminet").retreatment.kidney_bed_limit_gy == 40.0 and "re-treatment" in cfg.arm("p_prrt").label
    assert config.load(CONFIGS / "guided_vs_fixed.toml").arm("fixed_netter1").retreatment is None  # base untouched
    child = tmp_path / "child.toml"
    base = (CONFIGS / "netter1.toml").as_posix()
    child.write_text(f'extends = "{base}"\n[overrides.trial]\npatients = 77\n')
    assert config.load(child).trial.patients == 77
    child.write_text(f'extends = "{base}"\n[overrides]\n"arms.nope.cycles" = 2\n')
    with pytest.raises(ConfigError, match=r"child.toml: overrides: .*nope"):
        config.load(child)
    child.write_text(f'extends = "{base}"\noverrides = 3\n')
    with pytest.raises(ConfigError, match=r"child.toml: overrides = 3: must be a table"):
        config.load(child)


def test_background_blood_hazards_name_lines_of_the_scenario():
    config.load(CONFIGS / "vision.toml", {"marrow.background_grade3_per_year.neutrophils": 0.01})
    with pytest.raises(ConfigError, match=r"background_grade3_per_year names \['lymphocytes'\]: not a blood line"):
        config.load(CONFIGS / "vision.toml", {"marrow.background_grade3_per_year.lymphocytes": 0.01})
    with pytest.raises(ConfigError, match=r"\[marrow.haemoglobin\] needs .*haemoglobin_g_dl"):
        data = config.read_scenario(CONFIGS / "vision.toml")
        del data["cohort"]["covariates"]["haemoglobin_g_dl"]
        config.validate(data, "x")


def test_organ_toxicity_needs_an_optional_organ_of_the_scenario():
    table = {"adverse_event": "x", "bed50_gy": 30.0, "lkb_m": 0.4, "grade2_bed50_ratio": 2.0}
    for organ in ("kidney", "salivary"):  # a model of its own; no agent of NETTER-1 doses the salivary glands
        with pytest.raises(ConfigError, match=rf"organ_toxicity.{organ}: not an optional organ"):
            config.load(CONFIGS / "netter1.toml", {f"organ_toxicity.{organ}": table})


def test_arms_like_another_arm(tmp_path):
    """An arm with like = NAME copies arm NAME (of the base, or earlier in its file) and changes what it sets."""
    cfg = config.load(CONFIGS / "lu_psma_extended.toml")
    vision, extended = cfg.arm("lu177_psma617"), cfg.arm("extended")
    assert extended.cycles == 10 and vision.cycles == 6
    assert extended.dose_modification == vision.dose_modification and extended.continue_after_cycle == 4
    child = tmp_path / "child.toml"
    base = (CONFIGS / "netter1.toml").as_posix()
    child.write_text(f'extends = "{base}"\n[[arms]]\nlike = "lu177_dotatate"\nname = "a"\ncycles = 2\n'
                     '[[arms]]\nlike = "a"\nname = "b"\nactivity_gbq = 3.7\n')
    a, b = config.load(child).arms
    assert (a.cycles, b.cycles, b.activity_gbq, a.activity_gbq) == (2, 2, 3.7, 7.4)
    child.write_text(f'extends = "{base}"\n[[arms]]\nlike = "nope"\nname = "a"\n')
    with pytest.raises(ConfigError, match=r"child.toml: arms: like = 'nope': no such arm"):
        config.load(child)


def test_psa_stop_rule_needs_psa():
    with pytest.raises(ConfigError, match="arm 'lu177_dotatate': stop_at_psa_progression needs a \\[psa\\] section"):
        config.load(CONFIGS / "netter1.toml", {"arms.lu177_dotatate.stop_at_psa_progression": True})


def test_marrow_sensitivity_product_is_bounded():
    """Each factor within its range, their product not: refused, naming the product and the bound."""
    overrides = {"marrow.alpha_per_gy": 100.0, "marrow.prior_chemotherapy_multiplier": 100.0}
    with pytest.raises(ConfigError, match=r"reaches 3.13e\+04/Gy for the oldest patient .* must be <= 25/Gy"):
        config.load(CONFIGS / "netter1.toml", overrides)
    config.load(CONFIGS / "netter1.toml", {"marrow.alpha_per_gy": 2.5})  # the marrow prior's upper end is fine


def test_psa_pause_needs_psa_and_rechallenge_only_after_pause_needs_a_pause():
    pause = {"arms.lu177_dotatate.psa_pause": {"after_cycle": 2, "psa_ratio": 0.1}}
    with pytest.raises(ConfigError, match="arm 'lu177_dotatate': psa_pause needs a \\[psa\\] section"):
        config.load(CONFIGS / "netter1.toml", pause)
    again = {"arms.real_world.retreatment": {"min_pfs_months": 6.0, "cycles": 2, "activity_gbq": 6.5,
                                             "interval_weeks": 6.0, "only_after_pause": True}}
    with pytest.raises(ConfigError, match="arm 'real_world': retreatment.only_after_pause needs arms.psa_pause"):
        config.load(CONFIGS / "lu_psma_real_world.toml", again)
    with pytest.raises(ConfigError, match="psa_ratio"):  # a pause at a PSA above baseline is no response
        config.load(CONFIGS / "lu_psma_real_world.toml", {"arms.pause_rechallenge.psa_pause.psa_ratio": 1.5})
