"""Point numba's on-disk cache at a folder keyed by a hash of every jitted source file.

numba checks only the file that defines a cached function, so an edit to a helper in another module
(``sim/rng.py``, ``sim/kernels/*.py``) would otherwise reuse stale machine code. Keying the folder by the
content of all of them makes any edit a clean recompile.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import stat
import sys
import tempfile
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


def untrusted(folder: str) -> str | None:
    """Why ``folder`` or a folder above it may hold files that this user did not write (owned by another user than
    this one or root, or writable by everyone), or None. numba's cache holds pickles and machine code that run in
    this process when loaded, so whoever can write there can run code as the user of rptsim."""
    path = Path(folder).absolute()
    for f in (path, *path.parents):
        try:
            st = f.stat()
        except FileNotFoundError:
            continue
        if st.st_uid not in (os.geteuid(), 0):
            return f"{f} belongs to another user (uid {st.st_uid})"
        if st.st_mode & stat.S_IWOTH and not (f != path and st.st_mode & stat.S_ISVTX):  # /tmp (sticky) is fine
            return f"{f} is writable by every user (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def configure_numba_cache() -> None:
    """Set ``numba.config.CACHE_DIR`` to ``<base>/<source hash>`` before any kernel is compiled.

    ``<base>`` is ``$NUMBA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/rptsim`` (``~/.cache/rptsim``). A folder
    that others could have written (:func:`untrusted`) is not used: one warning line, and the kernels are compiled
    into a private temporary folder instead.
    """
    import numba

    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "rptsim")
    folder = os.path.join(base, f"numba-{source_hash()}")
    why = untrusted(folder)
    if why is not None:
        print(f"rptsim: warning: not using the numba cache {folder}: {why}; compiling into a private folder "
              "(make the cache writable only by you or a trusted group)", file=sys.stderr)
        folder = tempfile.mkdtemp(prefix="rptsim-numba-")
        atexit.register(shutil.rmtree, folder, True)
    numba.config.CACHE_DIR = folder
