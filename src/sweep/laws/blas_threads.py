"""Run the fits with OpenBLAS on one thread.

scipy's L-BFGS-B (C since scipy 1.15) calls BLAS/LAPACK on matrices of a few dozen entries, and
OpenBLAS hands some of that work to its worker threads. When the cores are busy (a training run beside
`sweep fit`, on 2 cores) every hand-off waits for a time slice: we measured 4-8 ms per objective
evaluation instead of 70 µs, a 100x slowdown, gone with one thread. Matrices this small gain nothing
from threads. This does what `threadpoolctl` does, for OpenBLAS only and without the dependency:
find the OpenBLAS libraries already loaded (numpy's and scipy's wheels each bundle one) and set their
thread count for the duration. Where none is found (another BLAS, another OS) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Iterator
from pathlib import Path

# (get, set) symbol pairs: scipy's wheel, numpy's 64-bit-integer wheel, a system OpenBLAS.
_SYMBOLS = (
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


@functools.cache
def _openblas_thread_controls() -> tuple[tuple[ctypes._CFuncPtr, ctypes._CFuncPtr], ...]:
    """(get, set) for each loaded OpenBLAS, found in the process's memory map (Linux)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return ()
    paths = {line.split()[-1] for line in maps.read_text().splitlines() if "openblas" in line.rsplit("/", 1)[-1]}
    controls = []
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            if hasattr(library, get_name) and hasattr(library, set_name):
                controls.append((getattr(library, get_name), getattr(library, set_name)))
                break
    return tuple(controls)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    controls = _openblas_thread_controls()
    previous = [get() for get, _ in controls]
    for _, set_threads in controls:
        set_threads(1)
    try:
        yield
    finally:
        for (_, set_threads), count in zip(controls, previous, strict=True):
            set_threads(count)
