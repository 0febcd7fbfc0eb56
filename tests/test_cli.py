"""The ``rptsim run`` command: outputs, JSON summary, overrides, and clean failures that write nothing."""

import json
from pathlib import Path

import pytest

import sim
from sim import cli, config, outcomes
from sim.config import ConfigError

from .conftest import CONFIGS


def test_run_writes_h5_and_summary(tmp_path, capsys):
    out = tmp_path / "sub" / "n1.h5"
    rc = cli.main(["run", str(CONFIGS / "netter1.toml"), "-o", str(out), "--patients", "300", "--seed", "5",
                   "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.with_suffix(".summary.json").read_text())
    assert printed == saved
    assert saved["n_patients"] == 300 and saved["seed"] == 5 and saved["scenario"] == "NETTER-1"
    ds = outcomes.read(out)
    assert ds.sizes["patient"] == 300 and ds.attrs["seed"] == "5"
    ds.close()


def test_run_a_shipped_scenario_by_name_writes_under_results(tmp_path, monkeypatch, capsys):
    """``rptsim run netter1``: the shipped scenario of that name (no path needed, as from an installed wheel), its
    outputs under results/ of the current folder; an unknown name lists the shipped ones in one line."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "netter1", "--patients", "40", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"] == "NETTER-1"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["netter1.h5", "netter1.summary.json"]
    assert config.find("vision.toml") == config.shipped_folder() / "vision.toml"
    assert config.find("./netter1") == Path("netter1") != config.find("netter1")  # a path stays a path
    assert cli.main(["show", "netter2"]) == 2
    err = capsys.readouterr().err
    assert "netter2: config file not found, nor a shipped scenario" in err and "netter1, " in err
    assert len(err.strip().splitlines()) == 1


def test_table_output(tmp_path, capsys):
    rc = cli.main(["run", str(CONFIGS / "vision.toml"), "-o", str(tmp_path / "v.h5"), "--patients", "200"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Median rPFS (months)" in text and "Standard of care" in text  # VISION names its end point rPFS


@pytest.mark.parametrize(("args", "fragment"), [
    (["--patients", "0"], "trial.patients = 0"),
    (["--seed", "-1"], "trial.seed = -1"),
    (["--threads", "0"], "--threads = 0"),
])
def test_bad_overrides_exit_2_without_output(tmp_path, capsys, args, fragment):
    out = tmp_path / "x.h5"
    rc = cli.main(["run", str(CONFIGS / "netter1.toml"), "-o", str(out), *args])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_config_file_leaves_previous_output(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text((CONFIGS / "netter1.toml").read_text().replace("cycles = 4", "cycles = -4"))
    out = tmp_path / "keep.h5"
    out.write_bytes(b"previous")
    rc = cli.main(["run", str(bad), "-o", str(out)])
    assert rc == 2 and "arms.lu177_dotatate.cycles = -4" in capsys.readouterr().err
    assert out.read_bytes() == b"previous"


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc = cli.main(["run", str(CONFIGS / "netter1.toml"), "-o", str(blocker / "out.h5"), "--patients", "10"])
    assert rc == 2 and "not writable" in capsys.readouterr().err


NETTER1 = (CONFIGS / "netter1.toml").read_text()
BAD_INPUTS = [  # (replace, by, what the one-line message must name: field path and allowed range or problem)
    ("activity_gbq = 7.4", "activity_gbq = = 7.4", "TOML syntax error"),
    ("activity_gbq = 7.4", "activity_gbq = 7.4\nactivty = 3", "arms.lu177_dotatate.activty: unknown key"),
    ("activity_gbq = 7.4", 'activity_gbq = "lots"', "arms.lu177_dotatate.activity_gbq = 'lots': Input should be a "
     "valid number"),
    ("activity_gbq = 7.4", "activity_gbq = -7.4", "arms.lu177_dotatate.activity_gbq = -7.4: Input should be greater "
     "than 0"),
    ("activity_gbq = 7.4", "activity_gbq = 0.0", "activity_gbq = 0.0: Input should be greater than 0"),
    ("activity_gbq = 7.4", "activity_gbq = [7.4, -1.0, 7.4, 7.4]", "activity_gbq.1 = -1.0: Input should be greater"),
    ("cycles = 4", "cycles = 0", "arms.lu177_dotatate.cycles = 0: Input should be greater than or equal to 1"),
    ("interval_weeks = 8", "interval_weeks = 0", "arms.lu177_dotatate.interval_weeks = 0: Input should be greater "
     "than or equal to 0.1"),
    ("activity_gbq = 7.4", "activity_gbq = nan", "activity_gbq = nan: Input should be a finite number"),
    ("activity_gbq = 7.4", "activity_gbq = inf", "activity_gbq = inf: Input should be a finite number"),
    ("fatal_grade4_probability = 0.05", "fatal_grade4_probability = 1.5",
     "marrow.fatal_grade4_probability = 1.5: Input should be less than or equal to 1"),
    ("dropout_per_year = 0.03", "dropout_per_year = -0.1", "trial.dropout_per_year = -0.1: Input should be greater"),
    ('regimen = "fixed"', 'regimen = "adaptive"', "arms.lu177_dotatate.regimen = 'adaptive': must be one of "
     "'fixed', 'guided', 'control'"),
    ('agent = "dotatate"', 'agent = "lu177_unknown"', "arm 'lu177_dotatate' uses agent 'lu177_unknown', not defined"),
    ("[trial]", "select_arms = []\n[trial]", "select_arms = []: must name at least one arm"),
]


@pytest.mark.parametrize(("old", "new", "fragment"), BAD_INPUTS, ids=[b[2][:30] for b in BAD_INPUTS])
def test_every_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, old, new, fragment):
    assert old in NETTER1
    bad = tmp_path / "bad.toml"
    bad.write_text(NETTER1.replace(old, new, 1))
    out = tmp_path / "out" / "x.h5"
    rc = cli.main(["run", str(bad), "-o", str(out), "--patients", "10"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"rptsim: error: {bad}: ") and fragment in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_missing_config_and_debug_traceback(tmp_path, capsys):
    missing = tmp_path / "none.toml"
    assert cli.main(["run", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"rptsim: error: {missing}: config file not found"
    with pytest.raises(ConfigError):  # --debug shows the traceback instead
        cli.main(["--debug", "run", str(missing)])


def test_version_and_debug_before_or_after_the_subcommand(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"rptsim {sim.__version__}"
    parser = cli._parser()
    assert parser.parse_args(["run", "c.toml", "--debug"]).debug
    assert parser.parse_args(["--debug", "sweep", "s.toml"]).debug  # an absent subcommand flag keeps it
    assert not parser.parse_args(["validate"]).debug
    with pytest.raises(ConfigError, match="not found"):  # --debug after the subcommand: the exception, not exit 2
        cli.main(["report", "missing.h5", "--debug"])


def test_show_lists_arm_names_files_and_the_resolved_config(capsys):
    assert cli.main(["show", str(CONFIGS / "iluminet.toml")]) == 0
    out = capsys.readouterr().out
    assert "iluminet.toml <- guided_vs_fixed.toml <- netter1.toml" in out
    assert "fixed_netter1" in out and "cycles_to_kidney_limit" in out
    assert cli.main(["show", str(CONFIGS / "iluminet.toml"), "--json"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in resolved["arms"]] == ["fixed_netter1", "iluminet"]  # select_arms applied
    assert resolved["lesions"] == config.load(CONFIGS / "netter1.toml").lesions.model_dump(mode="json")  # extends
