"""The ``rptsim run`` command: outputs, JSON summary, overrides, and clean failures that write nothing."""

import json

import pytest

from sim import cli, outcomes

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


def test_table_output(tmp_path, capsys):
    rc = cli.main(["run", str(CONFIGS / "vision.toml"), "-o", str(tmp_path / "v.h5"), "--patients", "200"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Median PFS (months)" in text and "Standard of care" in text


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
