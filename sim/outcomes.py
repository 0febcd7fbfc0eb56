"""The outcomes file: an ``xarray.Dataset`` (arm x patient x cycle x organ ...) in HDF5 (engine h5netcdf).

Files are written atomically (temporary file in the same folder, fsync, rename), so an interrupted write
leaves either the previous file or none. Each file carries its provenance (config JSON, seed, package
version, git commit, creation time), the CF global attributes ``Conventions``, ``title`` and ``history``, and a schema
version that readers check (attributes added without a new version: readers look only at those they know).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr

from sim import __version__, _invocation, files
from sim.config import Config, ConfigError
from sim.kernel_outputs import TOTALS, attributes, total

SCHEMA = "rptsim-outcomes"
# 2: organ, lesion and blood_line dims (kernel interface by name); 3: lesion layout, RECIST outputs; 4: background
# kidney disease, blood lines in their own units (blood_nadir, blood_line_units), re-treatment, PSA, late organ toxicity
SCHEMA_VERSION = 4


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


CONVENTIONS = "CF-1.10"


def now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def cf_attributes(title: str, created_utc: str) -> dict:
    """The CF global attributes of an output file: ``Conventions``, ``title`` and a one-line ``history`` (the UTC
    time and the command, or the Python API, that wrote it, with the rptsim version)."""
    by = _invocation.current() or f"Python API ({Path(sys.argv[0] if sys.argv else '').name or 'interactive'})"
    when = created_utc.replace("+00:00", "Z")
    return {"Conventions": CONVENTIONS, "title": title, "history": f"{when}: {by} (rptsim {__version__})"}


def provenance(cfg: Config, keep: str, n_patients: int) -> dict:
    """The attributes every outcomes file carries: CF ``Conventions``, ``title`` and ``history``; schema, scenario,
    seed, the full config, version and commit."""
    created = now_utc()
    return {
        **cf_attributes(f"rptsim outcomes of {cfg.trial.name}: {n_patients} patients, arms "
                        f"{', '.join(a.name for a in cfg.arms)}", created),
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "scenario": cfg.trial.name,
        "seed": str(cfg.trial.seed),
        "n_patients": n_patients,
        "keep": keep,
        "config_json": cfg.to_json(),
        "rptsim_version": __version__,
        "git_commit": git_commit(),
        "created_utc": created,
    }


def patient_level(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without its cycle dimension: per-cycle variables replaced by their ``TOTALS`` (no-op if none)."""
    if "cycle" not in ds.dims:
        return ds
    totals = {}
    for t in TOTALS:
        source = ds[t.source]
        dims, values = total(t, source.values, source.dims)
        totals[t.name] = (dims, values, attributes(t.name))
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


@contextlib.contextmanager
def _staged(path: Path, write) -> Iterator[str]:  # noqa: ANN001 - write(tmp_path) callable
    """A temporary file beside ``path`` filled by ``write(tmp)`` and fsynced, for the caller to rename over ``path``;
    removed on the way out if it is still there (an error, a full disk, Ctrl-C). A failed write is an OSError that
    names ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path, os.getpid()), suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        try:
            write(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        except OSError as exc:  # a full disk or a file-size limit: say which file, once
            raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or ' '.join(str(exc).split())}") from None
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: str | Path, write) -> None:  # noqa: ANN001 - write(tmp_path) callable
    """Call ``write(tmp)`` on a temporary path beside ``path``, fsync it, then rename it over ``path``.

    The temporary name carries host and PID, so temporary files of killed writers are removed by the next write.
    """
    path = Path(path)
    with _staged(path, write) as tmp:
        os.replace(tmp, path)


def _to_netcdf(ds: xr.Dataset, tmp: str) -> None:
    """Write ``ds`` as HDF5 to ``tmp``. The file is built in memory (compressed, so smaller than ``ds``) and written
    by Python: HDF5 crashes the process when a disk write fails (a full disk, a file-size limit), where Python's
    write raises an OSError that the caller reports."""
    import dask

    with dask.config.set(scheduler="synchronous"):  # else, under a Dask client, xarray locks the in-memory target
        image = ds.to_netcdf(engine="h5netcdf", encoding=_encoding(ds))
    with open(tmp, "wb") as fh:
        fh.write(image)


def write(ds: xr.Dataset, path: str | Path, seal=None) -> None:  # noqa: ANN001 - seal(tmp_path) callable
    """Write ``ds`` to HDF5 (h5netcdf, chunked, compressed), atomically; ``seal(tmp)``, when given, finishes the
    temporary file before the rename (sweep parts add their checksum)."""
    def _write(tmp: str) -> None:
        _to_netcdf(ds, tmp)
        if seal is not None:
            seal(tmp)

    write_atomic(path, _write)


def _json_text(obj: dict) -> str:
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def write_json(obj: dict, path: str | Path) -> None:
    text = _json_text(obj)  # a non-finite number fails here, before any file is touched
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def summary_path(path: str | Path) -> Path:
    """The summary JSON written beside an outcomes file: ``OUT.summary.json``."""
    return Path(path).with_suffix(".summary.json")


def write_with_summary(ds: xr.Dataset | None, path: Path, summary: dict) -> None:
    """Write the outcomes ``ds`` to ``path`` and ``summary`` to :func:`summary_path` as one unit (``ds`` None: the
    summary alone).

    Both are written to temporary files first; then the JSON is renamed, then the HDF5, whose ``summary_sha256``
    attribute is the digest of that JSON. A kill between the two renames leaves the new JSON beside the previous
    HDF5, which :func:`read_summary` detects; it never leaves an HDF5 without its summary.
    """
    text = _json_text(summary)
    json_path = summary_path(path)
    if ds is None:
        write_atomic(json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return
    ds = ds.assign_attrs(summary_sha256=hashlib.sha256(text.encode()).hexdigest())
    with _staged(path, lambda tmp: _to_netcdf(ds, tmp)) as tmp_h5, \
            _staged(json_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8")) as tmp_json:
        os.replace(tmp_json, json_path)
        os.replace(tmp_h5, path)


def read_summary(path: str | Path) -> dict:
    """The summary JSON of ``rptsim run`` (``OUT.summary.json``), checked against the HDF5 it names: a ConfigError
    when that file's ``summary_sha256`` is not this JSON's digest (a run killed between its two renames)."""
    path = Path(path)
    data = files.read_bytes(path, "summary file")
    try:
        summary = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a JSON summary ({exc})") from None
    output = summary.get("output") if isinstance(summary, dict) else None
    if isinstance(output, str):
        with files.open_hdf5(output, "outcomes file") as ds:
            digest = ds.attrs.get("summary_sha256")
        if digest != hashlib.sha256(data).hexdigest():
            raise ConfigError(f"{path}: does not belong to {output} (an interrupted run?): rerun rptsim run")
    return summary


class NotOurFileError(ValueError):
    """The file is not an rptsim outcomes file, or is from an incompatible schema version."""


def open_checked(path: str | Path, schema: str, version: int, what: str, error: type[ValueError]) -> xr.Dataset:
    """Open an HDF5/netCDF file, raising ``error`` unless its ``schema`` attribute and version are these."""
    ds = files.open_hdf5(path, f"{what} file", error)
    if ds.attrs.get("schema") != schema:
        ds.close()
        raise error(f"{path}: not an rptsim {what} file (no '{schema}' schema attribute)")
    raw = ds.attrs.get("schema_version", -1)
    try:
        found: object = int(np.asarray(raw).ravel()[0])
    except (TypeError, ValueError, IndexError, OverflowError):  # not a number: show (the start of) what it is
        found = f"{raw!r:.40}"
    if found != version:
        ds.close()
        raise error(f"{path}: {what} schema version {found}, this rptsim {__version__} reads {version}")
    return ds


def read(path: str | Path) -> xr.Dataset:
    """Open an outcomes file, checking that it is ours and of a schema version we read."""
    return open_checked(path, SCHEMA, SCHEMA_VERSION, "outcomes", NotOurFileError)
