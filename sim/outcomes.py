"""The outcomes file: an ``xarray.Dataset`` (arm x patient x cycle x organ ...) in HDF5 (engine h5netcdf).

Files are written atomically (temporary file in the same folder, fsync, rename), so an interrupted write
leaves either the previous file or none. Each file carries its provenance (config JSON, seed, package
version, git commit, creation time) and a schema version that readers check.
"""

from __future__ import annotations

import datetime as _dt
import glob
import json
import os
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from sim import __version__
from sim.config import Config
from sim.kernel_outputs import TOTALS, attributes, reduce_cycles

SCHEMA = "rptsim-outcomes"
SCHEMA_VERSION = 2  # 2: organ, lesion and blood_line dimensions (kernel interface by name)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(cfg: Config, keep: str, n_patients: int) -> dict:
    """The attributes every outcomes file carries: schema, scenario, seed, the full config, version and commit."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "scenario": cfg.trial.name,
        "seed": str(cfg.trial.seed),
        "n_patients": n_patients,
        "keep": keep,
        "config_json": cfg.to_json(),
        "rptsim_version": __version__,
        "git_commit": git_commit(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def patient_level(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without its cycle dimension: per-cycle variables replaced by their ``TOTALS`` (no-op if none)."""
    if "cycle" not in ds.dims:
        return ds
    totals = {}
    for t in TOTALS:
        source = ds[t.source]
        dims = tuple(d for d in source.dims if d != "cycle")
        totals[t.name] = (dims, reduce_cycles(source.values, source.dims, t.how, t.dtype), attributes(t.name))
    return ds.drop_dims("cycle").assign(totals)


def _encoding(ds: xr.Dataset) -> dict:
    enc = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(1 if d == "arm" else min(s, 65536 if d == "patient" else s) for d, s in var.sizes.items())
        enc[name] = {"zlib": True, "complevel": 1, "shuffle": True, "chunksizes": chunks}
    return enc


def _tmp_prefix(path: Path, pid: int | None = None) -> str:
    """``.NAME.HOST.PID.`` (``.NAME.HOST.`` without a PID): the start of a writer's temporary file name."""
    return f".{path.name}.{socket.gethostname()}." + ("" if pid is None else f"{pid}.")


def _remove_stale_tmp(path: Path) -> None:
    """Delete temporary files of ``path`` left by writers on this host that no longer run (``kill -9``)."""
    prefix = _tmp_prefix(path)
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def write_atomic(path: str | Path, write) -> None:  # noqa: ANN001 - write(tmp_path) callable
    """Call ``write(tmp)`` on a temporary path beside ``path``, fsync it, then rename it over ``path``.

    The temporary name carries host and PID, so temporary files of killed writers are removed by the next write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path, os.getpid()), suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(ds: xr.Dataset, path: str | Path) -> None:
    """Write ``ds`` to HDF5 (h5netcdf, chunked, compressed), atomically."""
    write_atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf", encoding=_encoding(ds)))


def write_json(obj: dict, path: str | Path) -> None:
    def _write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, allow_nan=False)
            fh.write("\n")

    write_atomic(path, _write)


class NotOurFileError(ValueError):
    """The file is not an rptsim outcomes file, or is from an incompatible schema version."""


def open_checked(path: str | Path, schema: str, version: int, what: str, error: type[ValueError]) -> xr.Dataset:
    """Open an HDF5/netCDF file, raising ``error`` unless its ``schema`` attribute and version are these."""
    try:
        ds = xr.open_dataset(path, engine="h5netcdf")
    except (OSError, ValueError) as exc:
        raise error(f"{path}: not a readable HDF5/netCDF file ({exc})") from None
    if ds.attrs.get("schema") != schema:
        ds.close()
        raise error(f"{path}: not an rptsim {what} file (no '{schema}' schema attribute)")
    found = int(np.asarray(ds.attrs.get("schema_version", -1)).ravel()[0])
    if found != version:
        ds.close()
        raise error(f"{path}: {what} schema version {found}, this rptsim {__version__} reads {version}")
    return ds


def read(path: str | Path) -> xr.Dataset:
    """Open an outcomes file, checking that it is ours and of a schema version we read."""
    return open_checked(path, SCHEMA, SCHEMA_VERSION, "outcomes", NotOurFileError)
