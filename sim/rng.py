"""Counter-based random streams, one per (seed, patient, purpose).

Every random number in a simulation is a pure function of ``(seed, patient id, stream, counter)``:
no generator state is shared between patients or threads, so results never depend on thread or
worker count, and a patient draws the same numbers in every arm (common random numbers). A stream is
named by its purpose (``"dosimetry/kidney/intra-patient"``, ``"death/background"``) and identified by
a 64-bit hash of that name (``stream_id``), as Starsim keys its distributions: adding a stream never
shifts another one, whatever the order in which the code declares or draws them.

The mixing function is SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014), used as a hash of the counter: ``u = mix64(key + (ctr + 1) * phi)``.
Uniforms are ``((u >> 11) + 0.5) * 2**-53``, strictly inside (0, 1), so ``log`` and the normal
quantile never see 0 or 1. Normals use the inverse normal CDF (Wichura 1988, AS241), one uniform
per normal, so counters map one-to-one onto draws.

All uint64 constants are explicit ``np.uint64``: in numba, ``uint64 op python int`` promotes to
float64 and silently destroys the hash.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from numba import njit

from sim.kernels.threads import block_range, run_rows

U64 = np.uint64
GOLDEN = U64(0x9E3779B97F4A7C15)
STREAM_MULT = U64(0xD1B54A32D192ED03)
M1 = U64(0xBF58476D1CE4E5B9)
M2 = U64(0x94D049BB133111EB)
S30, S27, S31, S11 = U64(30), U64(27), U64(31), U64(11)
ONE = U64(1)
INV53 = 1.0 / 9007199254740992.0


def stream_id(name: str, index: int = 0) -> np.uint64:
    """The stream of a purpose: the first 8 bytes (little-endian) of the SHA-256 of its UTF-8 name, plus ``index``
    (mod 2^64) for item ``index`` of an indexed stream (one per lesion)."""
    return U64((int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") + index) % 2**64)


@njit(inline="always", cache=True)
def mix64(z):
    """SplitMix64 finaliser (Steele et al. 2014)."""
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)


@njit(inline="always", cache=True)
def patient_key(seed, patient):
    """Key of patient ``patient`` under ``seed``: the root of all the patient's streams."""
    return mix64(U64(seed) ^ mix64(U64(patient) * GOLDEN + GOLDEN))


@njit(inline="always", cache=True)
def stream_key(patient_key, stream):
    """Key of the stream ``stream`` (a ``stream_id``; ``stream_id(name) + j`` for item ``j`` of an indexed
    stream such as one per lesion) of the patient with key ``patient_key``."""
    return mix64(patient_key + (stream + ONE) * STREAM_MULT)


@njit(inline="always", cache=True)
def uniform(key, ctr):
    """The ``ctr``-th uniform of a stream, in the open interval (0, 1)."""
    return (float(mix64(key + (U64(ctr) + ONE) * GOLDEN) >> S11) + 0.5) * INV53


@njit(inline="always", cache=True)
def exponential(key, ctr):
    """The ``ctr``-th standard exponential of a stream (inverse CDF)."""
    return -math.log(uniform(key, ctr))


@njit(cache=True)
def norm_ppf(p):
    """Standard normal quantile, Wichura (1988) AS241 PPND16, relative error about 1e-16."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r
                   + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r
                + 133.14166789178437745) * r + 3.387132872796366608)
        den = (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r
                   + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r
                + 42.313330701600911252) * r + 1.0)
        return q * num / den
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r
                   + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                + 4.6303378461565452959) * r + 1.42343711074968357734)
        den = (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r
                   + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r
                + 2.05319162663775882187) * r + 1.0)
    else:
        r -= 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r
                   + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                + 5.4637849111641143699) * r + 6.6579046435011037772)
        den = (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r
                   + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
                + 0.59983220655588793769) * r + 1.0)
    x = num / den
    return -x if q < 0.0 else x


@njit(inline="always", cache=True)
def normal(key, ctr):
    """The ``ctr``-th standard normal of a stream (inverse CDF of one uniform)."""
    return norm_ppf(uniform(key, ctr))


@njit(inline="always", cache=True)
def draw_uniform(patient_key, stream):
    """Counter 0 of the patient's stream ``stream`` (a one-off draw such as an event time), as a uniform."""
    return uniform(stream_key(patient_key, stream), 0)


@njit(inline="always", cache=True)
def draw_normal(patient_key, stream):
    """Counter 0 of the patient's stream ``stream``, as a standard normal."""
    return normal(stream_key(patient_key, stream), 0)


@njit(inline="always", cache=True)
def draw_exponential(patient_key, stream):
    """Counter 0 of the patient's stream ``stream``, as a standard exponential."""
    return exponential(stream_key(patient_key, stream), 0)


@njit(nogil=True, cache=True)
def _fill(first_block, block_step, block, seed, patient_ids, stream, first_ctr, kind, out):
    n, m = out.shape
    start, stop, step = block_range(first_block, block_step, block, n)
    for lo in range(start, stop, step):
        for i in range(lo, min(n, lo + block)):
            key = stream_key(patient_key(seed, patient_ids[i]), stream)
            for j in range(m):
                out[i, j] = uniform(key, first_ctr + j) if kind == 0 else normal(key, first_ctr + j)


@njit(nogil=True, cache=True)
def _fill_streams(first_block, block_step, block, seed, patient_ids, streams, out):
    n = out.shape[0]
    start, stop, step = block_range(first_block, block_step, block, n)
    for lo in range(start, stop, step):
        for i in range(lo, min(n, lo + block)):
            pk = patient_key(seed, patient_ids[i])
            for j in range(out.shape[1]):
                out[i, j] = normal(stream_key(pk, streams[j]), 0)


def first_normals(seed: int, patient_ids: np.ndarray, streams: list[tuple[str, int]]) -> np.ndarray:
    """Normals ``[patient, j]`` = counter 0 of each patient's stream ``streams[j] = (name, index)``, in one pass."""
    out = np.empty((len(patient_ids), len(streams)))
    run_rows(_fill_streams, len(out), U64(seed), np.ascontiguousarray(patient_ids, dtype=np.int64),
             np.array([stream_id(name, index) for name, index in streams], dtype=np.uint64), out)
    return out


def _draws(seed: int, patient_ids: np.ndarray, stream: str, first_ctr: int, count: int, index: int,
           kind: int) -> np.ndarray:
    out = np.empty((len(patient_ids), count))
    run_rows(_fill, len(out), U64(seed), np.ascontiguousarray(patient_ids, dtype=np.int64), stream_id(stream, index),
             np.int64(first_ctr), np.int64(kind), out)
    return out


def uniforms(seed: int, patient_ids: np.ndarray, stream: str, first_ctr: int = 0, count: int = 1,
             index: int = 0) -> np.ndarray:
    """Uniforms ``[patient, j]`` = counter ``first_ctr + j`` of each patient's stream named ``stream`` (item
    ``index`` of an indexed stream)."""
    return _draws(seed, patient_ids, stream, first_ctr, count, index, 0)


def normals(seed: int, patient_ids: np.ndarray, stream: str, first_ctr: int = 0, count: int = 1,
            index: int = 0) -> np.ndarray:
    """Standard normals ``[patient, j]``, as ``uniforms``."""
    return _draws(seed, patient_ids, stream, first_ctr, count, index, 1)
