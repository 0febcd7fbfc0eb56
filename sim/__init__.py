"""rptsim: in-silico trial simulator for radiopharmaceutical therapy."""

from sim._numba_cache import configure_numba_cache

__version__ = "0.1.0"

configure_numba_cache()
