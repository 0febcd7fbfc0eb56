"""numba core: one module per physiology, and ``patient.py`` which runs them patient by patient."""
