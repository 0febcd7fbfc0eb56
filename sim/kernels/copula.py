"""The Gaussian copula's correlation step, row by row: each patient's correlated normals are the same sums in the
same order whatever the number of rows, unlike a BLAS matrix product, whose blocking (and so its rounding) depends
on the row count."""

import numpy as np
from numba import njit

from sim.kernels.threads import block_range, run_rows


@njit(nogil=True, cache=True)
def _correlate(first_block, block_step, block, z, chol, out):
    start, stop, step = block_range(first_block, block_step, block, z.shape[0])
    k = z.shape[1]
    for first in range(start, stop, step):
        for i in range(first, min(first + block, stop)):
            for a in range(k):
                total = 0.0
                for b in range(a + 1):  # chol is lower triangular
                    total += z[i, b] * chol[a, b]
                out[i, a] = total


def correlate(z: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``z @ chol.T`` for a lower-triangular ``chol`` (rows: patients), each row summed in a fixed order."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    out = np.empty_like(z)
    run_rows(_correlate, z.shape[0], z, np.ascontiguousarray(chol, dtype=np.float64), out)
    return out
