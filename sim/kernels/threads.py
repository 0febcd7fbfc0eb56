"""Compiled loops over rows (patients) on one persistent pool of threads.

A loop is a ``@njit(nogil=True)`` function whose first three arguments are ``(first_block, block_step, block)``:
it handles the rows of blocks ``first_block, first_block + block_step, ...`` of ``block`` rows each (``rows`` below
iterates them) and releases the GIL meanwhile. ``run_rows`` gives thread ``t`` of ``T = numba.get_num_threads()``
the blocks ``t, t + T, ...``: interleaved blocks balance uneven rows without a scheduler, and every row's result
depends on its own inputs only, so the split never changes a result. One threading mechanism for the whole
pipeline (cohort draws, kernel inputs, patient loop): numba's parallel regions (an OpenMP pool) alternating with
Python threads made each wait for the other's spinning threads (~4 ms per switch).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
from numba import njit

BLOCK = 256  # rows per block: small enough to balance uneven rows, large enough to amortise a block's start
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(numba.config.NUMBA_NUM_THREADS, thread_name_prefix="rptsim")
        return _POOL


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool there when one is needed."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


@njit(inline="always", cache=True)
def block_range(first_block, block_step, block, n):
    """``(start, stop, step)`` of the first rows of this thread's blocks (empty for ``block_step`` 0)."""
    if block_step <= 0:
        return 0, 0, 1
    return first_block * block, n, block_step * block


def run_rows(loop, n_rows: int, *args) -> None:  # noqa: ANN001 - a numba dispatcher
    """Run ``loop(first_block, block_step, BLOCK, *args)`` over ``n_rows`` rows on ``numba.get_num_threads()``
    threads (compiled, or loaded from the cache, once before the threads start)."""
    threads = max(1, min(numba.get_num_threads(), -(-n_rows // BLOCK)))
    if threads == 1:
        loop(0, 1, BLOCK, *args)
        return
    loop(0, 0, BLOCK, *args)
    list(_pool().map(lambda t: loop(t, threads, BLOCK, *args), range(threads)))
