"""Point numba's on-disk cache at a folder keyed by a hash of every jitted source file.

numba checks only the file that defines a cached function, so an edit to a helper in another module
(``sim/rng.py``, ``sim/kernels/*.py``) would otherwise reuse stale machine code. Keying the folder by the
content of all of them makes any edit a clean recompile.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_JITTED = ("rng.py", "units.py", "kernels")


def source_hash() -> str:
    h = hashlib.sha1()
    for entry in _JITTED:
        path = _PACKAGE / entry
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def configure_numba_cache() -> None:
    """Set ``numba.config.CACHE_DIR`` to ``<base>/<source hash>`` before any kernel is compiled.

    ``<base>`` is ``$NUMBA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/rptsim`` (``~/.cache/rptsim``).
    """
    import numba

    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "rptsim")
    numba.config.CACHE_DIR = os.path.join(base, f"numba-{source_hash()}")
