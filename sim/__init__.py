"""rptsim: in-silico trial simulator for radiopharmaceutical therapy.

Its modules load on first use, so ``import sim`` stays light and ``sim.engine``, ``sim.analysis``, ... work after it.
"""

import importlib
import pkgutil

from sim._numba_cache import configure_numba_cache

__version__ = "0.1.0"

configure_numba_cache()

_SUBMODULES = frozenset(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name: str):  # noqa: ANN202 - a module
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})
