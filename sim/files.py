"""The one place where input files are read: bytes, then UTF-8, then TOML; or an HDF5 file opened by xarray.

Every failure (missing, a directory, unreadable, too large, not UTF-8, bad TOML, nested too deeply) becomes one
:class:`sim.config.ConfigError` line that names the file, so the CLI exits 2 before anything is written.
"""

from __future__ import annotations

import gc
import sys
import tomllib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A problem with the user's input, phrased for the user in one line: file, field path, value, allowed range.
    ``sim.config`` re-exports it (``sim.config.ConfigError``); it is defined here, below every reader."""

MAX_TEXT_BYTES = 16 * 2**20  # the largest shipped input is a few kB; a bigger "config" is not one
MAX_DEPTH = 32  # tables and arrays within each other; a scenario needs 6, and deeper input exhausts the stack


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise ConfigError(f"{path}: {what} not found")
    if path.is_dir():
        raise ConfigError(f"{path}: {what} is a directory, not a file")


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The content of ``path``; a ConfigError naming the file when it cannot be read."""
    path = Path(path)
    _check_file(path, what)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_TEXT_BYTES + 1)
    except PermissionError:
        raise ConfigError(f"{path}: {what} is not readable (permission denied)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_TEXT_BYTES:
        raise ConfigError(f"{path}: {what} is larger than {MAX_TEXT_BYTES // 2**20} MiB")
    return data


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line})") from None


def read_toml(path: str | Path, what: str = "TOML file") -> dict[str, Any]:
    """The TOML mapping of ``path``, at most :data:`MAX_DEPTH` tables and arrays deep."""
    text = read_text(path, what)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None
    if _depth(data) > MAX_DEPTH:
        raise ConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep")
    return data


def _depth(value: Any) -> int:
    """Nesting depth of tables and arrays, without recursion (the check must not itself overflow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack += [(v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


def open_hdf5(path: str | Path, what: str, error: type[ValueError] = ConfigError):  # noqa: ANN201 - xr.Dataset
    """``path`` opened by xarray (h5netcdf), or ``error`` naming the file when it is not a readable HDF5 file."""
    import warnings

    import xarray as xr

    path = Path(path)
    _check_file(path, what)
    # A failed open may leave an h5netcdf File half built (h5netcdf 1.8: a damaged root object header fails after the
    # HDF5 file is open, before ``_writable`` is set), whose ``__del__`` raises when the exception that holds it ends:
    # Python would print that traceback after the one-line error. Such objects are collected here, quietly.
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: None if getattr(u.object, "__module__", "").startswith("h5netcdf") else hook(u)
    try:
        try:
            with warnings.catch_warnings():  # h5netcdf warns about foreign files' dimensions: the error says enough
                warnings.simplefilter("ignore")
                return xr.open_dataset(path, engine="h5netcdf")
        except PermissionError:
            message = f"{path}: {what} is not readable (permission denied)"
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
            message = f"{path}: not a readable HDF5/netCDF file ({' '.join(str(exc).split())[:200]})"
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise error(message) from None
