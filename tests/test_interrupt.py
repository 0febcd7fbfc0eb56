"""Killing ``rptsim run`` at any moment leaves the previous result file untouched (or none): never a partial HDF5."""

import os
import signal
import subprocess
import sys
import time

import pytest

from sim import outcomes

from .conftest import CONFIGS


@pytest.mark.slow
def test_kill_minus_nine_never_leaves_a_partial_file(tmp_path):
    out = tmp_path / "run.h5"
    base = [sys.executable, "-m", "sim.cli", "run", str(CONFIGS / "netter1.toml"), "-o", str(out), "--json"]
    subprocess.run([*base, "--patients", "200"], check=True, capture_output=True)
    previous = out.read_bytes()
    for delay in (0.5, 3.0, 6.0, 9.0, 10.0):  # through cohort, simulation and (on this machine) the HDF5 write
        proc = subprocess.Popen([*base, "--patients", "150000"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        now = out.read_bytes()
        if finished or now != previous:  # replaced (the kill came after the rename, or never): complete and new
            ds = outcomes.read(out)
            assert ds.sizes["patient"] == 150000
            ds.close()
            previous = now
        leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("run.h5", "run.summary.json")]
        assert all(name.startswith(".run.") and name.endswith(".tmp") for name in leftovers), leftovers
    ds = outcomes.read(out)  # whatever happened, the file at the final path is a complete result
    ds.close()
    subprocess.run([*base, "--patients", "100"], check=True, capture_output=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5", "run.summary.json"]  # killed writers' tmp gone
