"""Faults: a full disk, kill -9 between every pair of file operations of a run and of a sweep, damaged sweep parts,
Ctrl-C, an unreachable Dask scheduler. The promises: the previous file intact or a complete new one, summary and
HDF5 consistent (or the mismatch detected), a resumed sweep identical to an uninterrupted one, one line on stderr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import h5py
import pytest

from sim import cli, outcomes, sweep, sweep_config
from sim.config import ConfigError

from .conftest import CONFIGS, ROOT

NETTER1 = str(CONFIGS / "netter1.toml")

# Runs rptsim with a fault: RLIMIT_FSIZE (disk full), or SIGKILL of itself just before its KILL_AT-th file operation
# (an fsync or a rename, the steps that make a write durable and visible).
FAULTY = """
import os, resource, signal, sys
limit = int(os.environ.get("FSIZE", "0"))
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
kill_at = int(os.environ.get("KILL_AT", "0"))
watched = os.environ.get("FAULT_DIR", "")  # only operations on files there count (not, e.g., numba's cache)
calls = [0]
def target(real, args):
    if real is os_replace:
        return os.fspath(args[1])
    try:
        return os.readlink(f"/proc/self/fd/{args[0]}")
    except OSError:
        return ""
def counted(real):
    def op(*args, **kwargs):
        if not watched or target(real, args).startswith(watched):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return op
os_replace = os.replace
os.fsync, os.replace = counted(os.fsync), counted(os.replace)
from sim import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def faulty(argv: list[str], **env: int | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FAULTY, *argv], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **{k: str(v) for k, v in env.items()}}, timeout=300)


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_disk_full_during_the_write_is_one_message_and_keeps_the_old_files(tmp_path):
    out = tmp_path / "run.h5"
    argv = ["run", NETTER1, "-o", str(out), "--json", "--patients"]
    assert cli.main([*argv, "50"]) == 0
    before = out.read_bytes(), outcomes.summary_path(out).read_bytes()
    result = faulty([*argv, "3000"], FSIZE=300_000)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [f"rptsim: error: cannot write {out}: File too large"]
    assert (out.read_bytes(), outcomes.summary_path(out).read_bytes()) == before  # old pair intact
    assert leftovers(tmp_path, {"run.h5", "run.summary.json"}) == []  # temporary file removed


@pytest.mark.slow
def test_kill_between_every_file_operation_of_a_run(tmp_path):
    out = tmp_path / "run.h5"
    summary = outcomes.summary_path(out)
    argv = ["run", NETTER1, "-o", str(out), "--json"]
    assert faulty([*argv, "--patients", "40"]).returncode == 0
    old = out.read_bytes(), summary.read_bytes()
    outcomes_seen = []
    for k in range(1, 10):
        result = faulty([*argv, "--patients", "60"], KILL_AT=k, FAULT_DIR=tmp_path)
        if result.returncode == 0:  # no k-th operation: the run is complete, both files new and matching
            assert outcomes.read_summary(summary)["n_patients"] == 60
            outcomes_seen.append("complete")
            break
        assert result.returncode == -signal.SIGKILL
        with outcomes.read(out) as ds:  # the HDF5 is always a complete file, the previous one until the last rename
            assert ds.sizes["patient"] == 40
        assert out.read_bytes() == old[0]
        if summary.read_bytes() == old[1]:
            outcomes_seen.append("old pair")
            assert outcomes.read_summary(summary)["n_patients"] == 40
        else:  # killed between the JSON's rename and the HDF5's: the reader sees the mismatch
            outcomes_seen.append("new summary, old HDF5: detected")
            with pytest.raises(ConfigError, match="does not belong to"):
                outcomes.read_summary(summary)
        out.write_bytes(old[0])
        summary.write_bytes(old[1])
    assert outcomes_seen == ["old pair"] * 3 + ["new summary, old HDF5: detected", "complete"], outcomes_seen
    assert leftovers(tmp_path, {"run.h5", "run.summary.json"}) == []  # the last run removed the killed ones' tmp


SMALL = f"""
base = "{(CONFIGS / 'iluminet.toml').as_posix()}"
name = "small"
[overrides]
"trial.patients" = 120
[[axes]]
path = "arms.iluminet.dosimetry.error_scale"
values = [0.0, 2.0]
"""


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sweep")
    path = folder / "small.toml"
    path.write_text(SMALL)
    clean = folder / "clean.h5"
    sweep.run(sweep_config.load(path), clean, workers=0)
    return path, clean


def same_file(a: Path, b: Path) -> bool:
    with sweep.read(a) as x, sweep.read(b) as y:
        return sweep.same_results(x, y)


@pytest.mark.slow
def test_kill_between_every_file_operation_of_a_sweep_then_resume(small_sweep, tmp_path):
    path, clean = small_sweep
    out = tmp_path / "s.h5"
    argv = ["sweep", str(path), "-o", str(out), "--workers", "0"]
    for k in range(1, 8):  # 2 parts (fsync, rename each), then the file (fsync, rename)
        result = faulty(argv, KILL_AT=k, FAULT_DIR=tmp_path)
        if result.returncode == 0:
            assert k == 7
            break
        assert result.returncode == -signal.SIGKILL and not out.exists()
        resumed = faulty([*argv, "--resume"])
        assert resumed.returncode == 0, resumed.stderr
        assert same_file(out, clean), k
        assert leftovers(tmp_path, {"s.h5"}) == []
        out.unlink()


def test_damaged_and_edited_parts_are_run_again_on_resume(small_sweep, tmp_path):
    path, clean = small_sweep
    sw = sweep_config.load(path)
    out = tmp_path / "s.h5"

    def stop_after_two(scenario) -> None:  # noqa: ANN001
        if len(list(sweep.parts_dir(out).glob("*.h5"))) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run(sw, out, workers=0, on_part=stop_after_two)
    first, second = sorted(sweep.parts_dir(out).glob("*.h5"))
    raw = bytearray(first.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\x00" * 64  # damage in the middle; the attributes stay readable
    first.write_bytes(bytes(raw))
    with h5py.File(second, "r+") as fh:  # an edited summary: valid JSON, wrong content
        summary = json.loads(fh.attrs["summary_json"])
        summary["scenario"] = "edited"
        fh.attrs["summary_json"] = json.dumps(summary, sort_keys=True)
    counts = sweep.run(sw, out, workers=0, resume=True)
    assert counts["reused"] <= 1 and counts["run"] >= 2  # the edited part is always rerun; the damaged one unless the
    assert same_file(out, clean)                          # zeroed bytes were unused space (then it is intact)
    truncated = tmp_path / "t.h5"
    with pytest.raises(KeyboardInterrupt):
        sweep.run(sw, truncated, workers=0, on_part=lambda s: (_ for _ in ()).throw(KeyboardInterrupt))
    (part,) = sweep.parts_dir(truncated).glob("*.h5")
    part.write_bytes(part.read_bytes()[:1000])
    assert sweep.run(sw, truncated, workers=0, resume=True)["run"] == 2
    assert same_file(truncated, clean)


def test_unreachable_scheduler_is_one_line_and_leaves_no_parts_folder(small_sweep, tmp_path, capsys):
    path, _ = small_sweep
    out = tmp_path / "s.h5"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        rc = cli.main(["sweep", str(path), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()  # (the progress bar, gone, leaves an empty line)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("rptsim: error: --scheduler tcp://127.0.0.1:9: cannot connect"), err
    assert list(tmp_path.iterdir()) == []  # no empty .parts folder to block the next run


@pytest.mark.slow
def test_ctrl_c_on_run_is_one_line_exit_130_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "run.h5"
    base = [sys.executable, "-m", "sim.cli", "run", NETTER1, "-o", str(out), "--json"]
    subprocess.run([*base, "--patients", "50"], check=True, capture_output=True, cwd=ROOT)
    old = out.read_bytes()
    proc = subprocess.Popen([*base, "--patients", "400000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    time.sleep(4)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["rptsim: interrupted; earlier results are intact"], err
    assert out.read_bytes() == old
