"""The numba kernels: one module per physiology (tumour, marrow, kidney, events, dosimetry, radiobiology), the
treatment policy, and the patient loop that runs them (``patient.py``).

Every kernel function is compiled with ``KERNEL``: cached on disk, and without numba's reference counting of
arrays (``_nrt=False``). Kernels allocate nothing; they read and write arrays that the caller made, passed in named
tuples. With reference counting on, numba increments and decrements (atomically) the count of every array of a
named tuple at each call that passes it, which took ~35 % of a NETTER-1 run; without it, the kernel is as fast as
with positional arrays, and any attempt to allocate inside a kernel fails to compile.
"""

KERNEL = {"cache": True, "_nrt": False}
