"""Hostile input: every bad file, value or shape is one line on stderr, exit 2, and nothing written; fuzzing of
configs, sweep files and result files at the byte, TOML and value level; the corpus of past failures (issue 22)."""

from __future__ import annotations

import json
import os
import signal
import sys
import tomllib
from contextlib import contextmanager
from pathlib import Path

import h5py
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sim import cli, config, outcomes
from sim.config import ConfigError

from .conftest import CONFIGS

NETTER1 = (CONFIGS / "netter1.toml").read_text()


@contextmanager
def time_limit(seconds: int):
    """A hang is a failure: SIGALRM raises in the main thread after ``seconds``."""
    def _raise(*_):  # noqa: ANN002
        raise TimeoutError(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_cli(argv: list[str], capsys, seconds: int = 60) -> tuple[int, str]:  # noqa: ANN001
    """The exit code and stderr of ``rptsim argv``. An exception in a ``__del__`` during the call fails: the CLI would
    print its "Exception ignored in" traceback on stderr (pytest only warns about it)."""
    ignored: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: ignored.append(f"{u.object!r}: {u.exc_type.__name__}: {u.exc_value}")
    try:
        with time_limit(seconds):
            rc = cli.main(argv)
    finally:
        sys.unraisablehook = hook
    err = capsys.readouterr().err
    assert not ignored, f"stderr would have an 'Exception ignored in' traceback after {err!r}: {ignored}"
    return rc, err


def assert_clean_refusal(rc: int, err: str, *fragments: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith("rptsim: error: ") and all(c.isprintable() for c in err.strip()), err
    for f in fragments:
        assert f in err, err


def outputs(folder: Path, inputs: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in inputs)


# --------------------------------------------------------------------------------------------------
# The corpus: each case a file content (text or bytes) and what the one-line message must name.

REPLACED = [  # (replace, by, fragments of the message)
    ("patients = 5000", 'patients = "300"', ["trial.patients = '300'", "valid integer"]),
    ("patients = 5000", "patients = true", ["trial.patients = True", "valid integer"]),
    ("cycles = 4", "cycles = 4.0", ["arms.lu177_dotatate.cycles = 4.0", "valid integer"]),
    ("activity_gbq = 7.4", 'activity_gbq = "7.4"', ["activity_gbq = '7.4'", "valid number"]),
    ("activity_gbq = 7.4", "activity_gbq = 1e300", ["activity_gbq = 1e+300", "less than or equal to 100"]),
    ("follow_up_months = ", "follow_up_months = 1e12 #", ["trial.follow_up_months = 1000000000000.0", "600"]),
    ("accrual_months = ", "accrual_months = 1e12 #", ["trial.accrual_months = 1000000000000.0", "600"]),
    ("every_weeks = 12", "every_weeks = 1e-7", ["every_weeks = 1e-07", "greater than or equal to 0.1"]),
    ("every_weeks = 12", "every_weeks = 0.1", ["tumour assessments per patient", "at most 2000"]),
    ("recheck_weeks = 1.0", "recheck_weeks = 1e-9",
     ["recheck_weeks = 1e-09", "greater than or equal to 0.1"]),
    ("gy_per_gbq_median = ", "gy_per_gbq_median = 1e300 #", ["gy_per_gbq_median = 1e+300", "10000"]),
    ("sigma_ln = 1.0, low = 2.0", "sigma_ln = 1e300, low = 2.0", ["sigma_ln = 1e+300", "less than or equal to 5"]),
    ("recheck_weeks = 1.0              # weekly counts while withheld (Assumption)\nmax_delay_weeks = 16.0",
     "recheck_weeks = 0.1\nmax_delay_weeks = 104.0",
     ["max_delay_weeks / recheck_weeks = 1.04e+03", "at most 1000"]),
    ('name = "NETTER-1"', 'name = "NET\\u0000TER"', ["trial.name", "control character U+0000"]),
    ('name = "NETTER-1"', 'name = "\\u001b[31mred"', ["trial.name", "control character U+001B"]),
    ("[trial]", "select_arms = [[\"a\"]]\n[trial]", ["select_arms = [['a']]", "must name at least one arm"]),
    ("[trial]", "select_arms = [{a = 1}]\n[trial]", ["select_arms", "must name at least one arm"]),
    ("[trial]", "extends = 5\n[trial]", ["extends = 5: must be a file name"]),
    ("[trial]", "x = " + "[" * 200 + "]" * 200 + "\n[trial]", ["nested more than 32 levels"]),
    ("[trial]", "x = " + "[" * 5000 + "]" * 5000 + "\n[trial]", ["nested more than 32 levels"]),
    ("[[cohort.correlations]]", "[[cohort.correlations]]\na = 'stroma_fraction'\nb = 'tumour_alpha_per_gy'\n"
     "rho = 0.99\n[[cohort.correlations]]\na = 'stroma_fraction'\nb = 'neutrophils_1e9_per_l'\nrho = 0.99\n"
     "[[cohort.correlations]]\na = 'tumour_alpha_per_gy'\nb = 'neutrophils_1e9_per_l'\nrho = -0.99\n"
     "[[cohort.correlations]]", ["not positive definite"]),
]


@pytest.mark.parametrize(("old", "new", "fragments"), REPLACED, ids=[r[2][0][:40] for r in REPLACED])
def test_corpus_of_bad_configs(tmp_path, capsys, old, new, fragments):
    assert old in NETTER1
    bad = tmp_path / "bad.toml"
    bad.write_text(NETTER1.replace(old, new, 1))
    rc, err = run_cli(["run", str(bad), "-o", str(tmp_path / "out.h5")], capsys)
    assert_clean_refusal(rc, err, str(bad), *fragments)
    assert len(err) < 400, err  # a cross-field check names the problem, not the whole table
    assert outputs(tmp_path, {"bad.toml"}) == []


def test_files_that_are_not_what_they_claim(tmp_path, capsys):
    out = str(tmp_path / "out.h5")
    cases = {}
    binary = tmp_path / "binary.toml"
    binary.write_bytes(NETTER1.encode().replace(b"NETTER-1", b"NETTER\xff1"))
    cases[binary] = [str(binary), "not UTF-8 text (byte 0xff at line"]
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    cases[folder] = [str(folder), "is a directory"]
    holder = tmp_path / "holder.toml"
    holder.write_text('extends = "folder.toml"\n')
    cases[holder] = [f"{holder}: extends = 'folder.toml'", "is a directory"]
    base_binary = tmp_path / "child.toml"
    base_binary.write_text('extends = "binary.toml"\n')
    cases[base_binary] = [str(binary), "not UTF-8"]
    chain = tmp_path / "chain0.toml"
    for k in range(40):
        (tmp_path / f"chain{k}.toml").write_text(f'extends = "chain{k + 1}.toml"\n')
    cases[chain] = ["chain15.toml: extends = 'chain16.toml'", "more than 16 files"]
    loop = tmp_path / "loop.toml"
    loop.write_text('extends = "loop2.toml"\n')
    (tmp_path / "loop2.toml").write_text('extends = "loop.toml"\n')
    cases[loop] = ["loop2.toml: extends = 'loop.toml': circular"]
    for path, fragments in cases.items():
        rc, err = run_cli(["run", str(path), "-o", out, "--patients", "10"], capsys)
        assert_clean_refusal(rc, err, *fragments)
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_config(tmp_path, capsys):
    bad = tmp_path / "secret.toml"
    bad.write_text(NETTER1)
    bad.chmod(0)
    rc, err = run_cli(["run", str(bad), "-o", str(tmp_path / "o.h5")], capsys)
    assert_clean_refusal(rc, err, str(bad), "permission denied")


def test_override_into_a_value_that_is_not_a_table(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "{CONFIGS / "netter1.toml"}"\ntrial = 5\n')
    rc, err = run_cli(["run", str(bad), "-o", str(tmp_path / "o.h5"), "--patients", "10"], capsys)
    assert_clean_refusal(rc, err, "override trial.patients: trial = 5 is not a table")


def test_outputs_that_would_destroy_inputs_or_fail_late(tmp_path, capsys):
    cfg = tmp_path / "scenario.toml"
    cfg.write_text(NETTER1)
    rc, err = run_cli(["run", str(cfg), "-o", str(cfg), "--patients", "10"], capsys)
    assert_clean_refusal(rc, err, "is an input file")
    assert cfg.read_text() == NETTER1
    (tmp_path / "out.summary.json").mkdir()  # a directory where the summary goes: refused before the run
    rc, err = run_cli(["run", str(cfg), "-o", str(tmp_path / "out.h5"), "--patients", "10"], capsys)
    assert_clean_refusal(rc, err, "out.summary.json: output file is not writable")
    assert not (tmp_path / "out.h5").exists()


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "x.toml", "--patients", "many"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "invalid int value: 'many'" in err and "rptsim run --help" in err


SWEEP = """name = "s"
base = "{base}"
[overrides]
"trial.patients" = 20
[[axes]]
path = "trial.seed"
values = [1, 2]
"""


@pytest.mark.parametrize(("edit", "fragments"), [
    (lambda s: s.replace('name = "s"', 'name = "../../escape"'), ["name = '../../escape'", "should match pattern"]),
    (lambda s: s.replace('"trial.patients" = 20', '"trial.patients.x" = 20'),
     ["overrides: trial.patients.x", "trial.patients = 5000 is not a table"]),
    (lambda s: s.replace("[overrides]", "replicates = 2.0\n[overrides]"), ["replicates = 2.0", "valid integer"]),
    (lambda s: s.replace("values = [1, 2]", "values = [[1], [2]]"), ["values must be numbers, strings or booleans"]),
    (lambda s: s.encode().replace(b'"s"', b'"\xfe"'), ["sweep file is not UTF-8"]),
])
def test_corpus_of_bad_sweep_files(tmp_path, capsys, edit, fragments):
    sweep = tmp_path / "bad_sweep.toml"
    content = edit(SWEEP.format(base=CONFIGS / "netter1.toml"))
    sweep.write_bytes(content) if isinstance(content, bytes) else sweep.write_text(content)
    rc, err = run_cli(["sweep", str(sweep), "-o", str(tmp_path / "o.h5"), "--workers", "0"], capsys)
    assert_clean_refusal(rc, err, str(sweep), *fragments)
    assert outputs(tmp_path, {"bad_sweep.toml"}) == []


def test_targets_and_cluster_spec_files_are_read_by_the_same_reader(tmp_path, capsys):
    from sim import validate

    bad = tmp_path / "targets.toml"
    bad.write_text('[[targets]]\ntrial = "X"\nconfig = "netter1.toml"\nendpoint = "e"\npath = ["a"]\n'
                   'published = "1"\nlow = 0\nhigh = 2\nsource = "s"\n')
    with pytest.raises(ConfigError, match=r"targets\.0\.published = '1': Input should be a valid number"):
        validate.load_targets(bad)
    spec = tmp_path / "spec.toml"
    spec.write_bytes(b"[cluster]\nqueue = '\xff'\n")
    rc, err = run_cli(["uncertainty", str(CONFIGS / "vision.toml"), "--cluster", "slurm", "--cluster-spec",
                       str(spec), "-o", str(tmp_path / "u.h5")], capsys)
    assert_clean_refusal(rc, err, str(spec), "not UTF-8")


# --------------------------------------------------------------------------------------------------
# Result files given to report


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    cfg = folder / "dollar.toml"
    cfg.write_text(NETTER1.replace('name = "NETTER-1"', 'name = "$\\\\frac{x$ [link](http://x) <b>_em_</b>"', 1))
    assert cli.main(["run", str(cfg), "-o", str(folder / "run.h5"), "--patients", "60", "--json"]) == 0
    return folder / "run.h5"


def test_report_of_names_with_mathtext_and_markdown_is_literal(small_run, tmp_path, capsys):
    with h5py.File(small_run, "r") as fh:
        assert fh.attrs["summary_sha256"]  # the HDF5 names the summary it was written with
    assert outcomes.read_summary(outcomes.summary_path(small_run))["output"] == str(small_run)
    damaged = tmp_path / "run.h5"
    damaged.write_bytes(small_run.read_bytes())
    with h5py.File(damaged, "r+") as fh:
        fh.attrs["git_commit"] = "`rm -rf` <script>alert(1)</script> [x](javascript:y)"
    out = tmp_path / "rep"
    rc, err = run_cli(["report", str(damaged), "-o", str(out)], capsys, seconds=180)
    assert rc == 0, err
    page = (out / "index.md").read_text()
    assert "<script>" not in page and "](javascript" not in page and "`rm" not in page
    assert "\\$\\\\frac{x\\$ \\[link\\](http://x) \\<b\\>\\_em\\_\\</b\\>" in page


def _edit_attrs(src: Path, dst: Path, **attrs) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as fh:
        for k, v in attrs.items():
            if v is None:
                del fh.attrs[k]
            else:
                fh.attrs[k] = v
    return dst


def test_report_of_malformed_files_is_one_line_and_leaves_no_folder(small_run, tmp_path, capsys):
    cases = {
        "text.h5": lambda p: (p.write_text("not HDF5"), p)[1],
        "no_config.h5": lambda p: _edit_attrs(small_run, p, config_json=None),
        "bad_config.h5": lambda p: _edit_attrs(small_run, p, config_json="{not json"),
        "bad_version.h5": lambda p: _edit_attrs(small_run, p, schema_version="two"),
        "empty.h5": lambda p: (h5py.File(p, "w").close(), p)[1],
    }
    for name, make in cases.items():
        path = make(tmp_path / name)
        out = tmp_path / f"{name}_report"
        rc, err = run_cli(["report", str(path), "-o", str(out)], capsys, seconds=120)
        assert_clean_refusal(rc, err, str(path))
        assert not out.exists(), name
    header = bytearray(small_run.read_bytes())
    header[96] = 0  # found by fuzzing: the root group's object header damaged (h5py's KeyError; then h5netcdf's
    # half-built File printed an "Exception ignored" traceback after the error line)
    (tmp_path / "header.h5").write_bytes(bytes(header))
    rc, err = run_cli(["report", str(tmp_path / "header.h5"), "-o", str(tmp_path / "h")], capsys, seconds=120)
    assert_clean_refusal(rc, err, "header.h5: not a readable HDF5/netCDF file")
    assert not (tmp_path / "h").exists()
    chunk = bytearray(small_run.read_bytes())  # found by the long fuzz run: one byte of a compressed chunk damaged,
    # the read fails (h5py's OSError "filter returned failure during read"), which was exit 1 without the file
    with h5py.File(small_run, "r") as fh:
        info = fh["dose_gy"].id.get_chunk_info(0)
    chunk[info.byte_offset + info.size // 2] ^= 0xFF
    (tmp_path / "chunk.h5").write_bytes(bytes(chunk))
    rc, err = run_cli(["report", str(tmp_path / "chunk.h5"), "-o", str(tmp_path / "c")], capsys, seconds=120)
    assert_clean_refusal(rc, err, "chunk.h5: a damaged rptsim outcomes file (OSError: ")
    assert not (tmp_path / "c").exists()
    missing = tmp_path / "missing_var.h5"
    missing.write_bytes(small_run.read_bytes())
    with h5py.File(missing, "r+") as fh:
        del fh["os_time_days"]
    rc, err = run_cli(["report", str(missing), "-o", str(tmp_path / "m")], capsys, seconds=120)
    assert_clean_refusal(rc, err, str(missing), "damaged rptsim outcomes file")
    assert not (tmp_path / "m").exists()


def test_posterior_file_whose_data_does_not_read_back_is_one_line(tmp_path):
    import numpy as np
    import xarray as xr

    from sim import posterior

    path = tmp_path / "post.h5"  # the class the long fuzz run found in report: a damaged compressed chunk
    xr.Dataset({"weight": ("draw", np.ones(4000))}, attrs={"schema": posterior.SCHEMA, "schema_version": 1}).to_netcdf(
        path, engine="h5netcdf", encoding={"weight": {"zlib": True, "chunksizes": (4000,)}})
    raw = bytearray(path.read_bytes())
    with h5py.File(path, "r") as fh:
        info = fh["weight"].id.get_chunk_info(0)
    raw[info.byte_offset + info.size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match=r"post\.h5: not a valid posterior file \(Can't synchronously read data"):
        posterior.read(path)


def test_summary_json_that_does_not_belong_to_its_hdf5_is_detected(small_run, tmp_path):
    h5 = tmp_path / "run.h5"
    h5.write_bytes(small_run.read_bytes())
    summary = json.loads(outcomes.summary_path(small_run).read_text())
    summary["output"] = str(h5)
    summary["n_patients"] += 1  # what a kill between the two renames leaves: a newer JSON beside the old HDF5
    outcomes.summary_path(h5).write_text(json.dumps(summary))
    with pytest.raises(ConfigError, match="does not belong to"):
        outcomes.read_summary(outcomes.summary_path(h5))


# --------------------------------------------------------------------------------------------------
# Fuzzing. Each example is a CLI call in this process with a small cohort: exit 0 (and a complete output), or exit 2
# with one printable line, no traceback and no output, within the time limit.

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALUES = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e-9, 1e12, 1e300, 4.0, True, False, "", "300", "7.4", "a\x00b", "\x1b[2J",
                     "$x$", "../x", [], [1, [2]], {}, {"a": {"b": 1}}]),
    st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                   st.integers(), max_size=2))


def _leaves(node, prefix=()):  # noqa: ANN001, ANN202
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*prefix, k))
    elif isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        for i, v in enumerate(node):
            yield from _leaves(v, (*prefix, i))
    yield prefix


def _toml(value) -> str:  # noqa: ANN001 - a TOML value as text (JSON strings, numbers and arrays are TOML)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _fuzz_run(tmp_path: Path, capsys, content: bytes) -> None:  # noqa: ANN001
    folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    cfg = folder / "c.toml"
    cfg.write_bytes(content)
    rc, err = run_cli(["run", str(cfg), "-o", str(folder / "o.h5"), "--patients", "8", "--keep", "summary", "--json"],
                      capsys, seconds=60)
    capsys.readouterr()
    if rc == 0:
        assert json.loads((folder / "o.summary.json").read_text())["n_patients"] == 8
    else:
        assert_clean_refusal(rc, err)
        assert outputs(folder, {"c.toml"}) == []


PATHS = [p for p in _leaves(tomllib.loads(NETTER1)) if p]


@FUZZ
@given(st.data())
def test_fuzz_config_bytes(tmp_path, capsys, data):
    _fuzz_run(tmp_path, capsys, _mutate_bytes(NETTER1.encode(), data))


@FUZZ
@given(st.data())
def test_fuzz_config_values(tmp_path, capsys, data):
    doc = tomllib.loads(NETTER1)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(PATHS))
        node = _parent(doc, path)
        if node is not None:
            node[path[-1]] = data.draw(VALUES)
    _fuzz_run(tmp_path, capsys, as_toml(doc))


def _parent(doc: dict, path: tuple) -> dict | list | None:
    """The table or array that holds ``path`` in ``doc``; None where an earlier mutation replaced a table or array on
    the way (a string key meets a list, an index meets a table)."""
    def fits(node, key) -> bool:  # noqa: ANN001
        return (isinstance(node, dict) and isinstance(key, str)
                or isinstance(node, list) and isinstance(key, int) and key < len(node))

    node = doc
    for key in path[:-1]:
        node = node[key] if fits(node, key) and (isinstance(node, list) or key in node) else None
    return node if fits(node, path[-1]) else None


def test_value_fuzzer_walks_past_replaced_tables():
    doc = {"trial": [1], "arms": {"a": 1}}  # found by the long fuzz run: a TypeError in the fuzzer itself
    assert _parent(doc, ("trial", "name")) is None and _parent(doc, ("arms", 0, "name")) is None
    assert _parent(doc, ("arms", 0)) is None and _parent(doc, ("arms", "a")) is doc["arms"]


def as_toml(doc: dict) -> bytes:
    """``doc`` as TOML: one line per top-level key, every table and array of tables inline."""
    return "\n".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in doc.items()).encode()


def _mutate_bytes(raw: bytes, data, n: int = 4) -> bytes:  # noqa: ANN001 - hypothesis data
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, n))):
        i = data.draw(st.integers(0, len(out) - 1))
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if op == "set":
            out[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            out.insert(i, data.draw(st.integers(0, 255)))
        else:
            del out[i]
    return bytes(out)


@settings(FUZZ, max_examples=25)
@given(st.data())
def test_fuzz_sweep_files(tmp_path, capsys, data):
    text = SWEEP.format(base=CONFIGS / "netter1.toml").encode()
    folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    path = folder / "s.toml"
    path.write_bytes(_mutate_bytes(text, data))
    rc, err = run_cli(["sweep", str(path), "-o", str(folder / "o.h5"), "--workers", "0", "--patients", "8"], capsys)
    if rc == 0:
        assert (folder / "o.h5").is_file() and not (folder / "o.h5.parts").exists()
    else:
        assert_clean_refusal(rc, err)
        assert outputs(folder, {"s.toml"}) == []


@pytest.mark.slow
@settings(FUZZ, max_examples=8, phases=[Phase.explicit, Phase.generate])  # a report takes seconds: no shrinking
@given(st.data())
def test_fuzz_result_files_given_to_report(small_run, tmp_path, capsys, data):
    folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    path = folder / "r.h5"
    raw = small_run.read_bytes()
    head = data.draw(st.booleans())  # the HDF5 superblock and object headers, or anywhere
    n = len(raw) if not head else 4096
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8))):
        out[data.draw(st.integers(0, n - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(out))
    rc, err = run_cli(["report", str(path), "-o", str(folder / "rep")], capsys, seconds=120)
    if rc == 0:
        assert (folder / "rep" / "index.md").is_file()
    else:
        assert_clean_refusal(rc, err)
        assert outputs(folder, {"r.h5"}) == []


# --------------------------------------------------------------------------------------------------
# Regression cases the fuzzers found (kept explicitly, so they run whatever the fuzzers draw)

FOUND = [
    ("trial", {"name": "x", "patients": 8}),  # a table missing most keys: one line listing at most 10 problems
    ("arms", 5),  # arms not a list: select_arms and the name lookups must not crash
    ("marrow", {**tomllib.loads(NETTER1)["marrow"], "age_log_slope_per_year": 1}),  # was ZeroDivisionError; now out
    # of range (|slope| <= 0.1)
    ("marrow", {**tomllib.loads(NETTER1)["marrow"], "age_log_slope_per_year": 0.1, "alpha_per_gy": 100,
                "prior_chemotherapy_multiplier": 100, "bone_metastases_multiplier": 100}),  # each in range, together
    # extreme (the marrow integrator divided by zero): refused by the bound on their product
]


@pytest.mark.parametrize(("key", "value"), FOUND)
def test_found_by_fuzzing(tmp_path, capsys, key, value):
    doc = tomllib.loads(NETTER1)
    doc[key] = value
    _fuzz_run(tmp_path, capsys, as_toml(doc))


def test_problems_are_capped():
    doc = tomllib.loads(NETTER1)
    doc["trial"] = {f"k{i}": i for i in range(50)}
    with pytest.raises(ConfigError, match=r"; and \d+ more$"):
        config.validate(doc, "x.toml")


def test_a_numba_cache_folder_others_can_write_is_not_loaded(tmp_path):
    import subprocess
    import sys

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant a pickle there
    probe = "import sim, numba; print(numba.config.CACHE_DIR)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "NUMBA_CACHE_DIR": str(shared)}, check=True)
    assert result.stderr.startswith(f"rptsim: warning: not using the numba cache {shared}/numba-")
    assert "writable by every user (mode 777)" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not result.stdout.strip().startswith(str(shared))
    shared.chmod(0o755)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "NUMBA_CACHE_DIR": str(shared)}, check=True)
    assert result.stderr == "" and result.stdout.strip().startswith(str(shared))
