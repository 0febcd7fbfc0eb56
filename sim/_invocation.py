"""The rptsim command line being run, set by the CLI, for the CF ``history`` attribute of the files it writes.

Kept apart from ``sim.outcomes`` so that the CLI records it without importing xarray."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_line: str | None = None


def current() -> str | None:
    """The command line (``rptsim run netter1 --patients 500``), or None outside the CLI (the Python API)."""
    return _line


@contextlib.contextmanager
def command(line: str) -> Iterator[None]:
    """Record ``line`` as the command that writes the files made inside the block."""
    global _line
    before, _line = _line, line
    try:
        yield
    finally:
        _line = before
