"""numpy's BLAS, callable from generated code: the OpenBLAS that numpy ships (or another
OpenBLAS numpy loaded), found at run time, never by a hard-coded file name.

``library()`` is the ``Blas`` record (its path, the ``gemm`` symbol per dtype, the width
of its integers) or None when no usable library is loaded: then every matmul keeps
graphc's own kernel.  Finding it makes the ``gemm`` symbols visible to the JIT
(``llvm.add_symbol``), so generated code declares and calls them by name.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os
from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np

# cblas enums (cblas.h)
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

# (symbol pattern, bits of its integers): OpenBLAS built for numpy and scipy (ILP64 with
# the scipy_ prefix and 64_ suffix), other ILP64 builds, then plain LP64 cblas.
_GEMM_NAMES = (("scipy_cblas_{}gemm64_", 64), ("cblas_{}gemm64_", 64), ("cblas_{}gemm", 32))
# ``int openblas_set_num_threads_local(int)``: the threads this thread's calls use (it
# returns the previous count).  Generated code runs each call on its own thread (graphc's
# pool splits the rows): OpenBLAS's pool next to graphc's, on a loaded 2-core machine,
# made a GPT training step 20x slower (1.5 s instead of 65 ms).  A library without it
# is not used.
LOCAL_THREADS = "openblas_set_num_threads_local"


@dataclass(frozen=True)
class Blas:
    """A loaded cblas library: ``gemm[dtype name]`` is the symbol of its ``?gemm``,
    whose integer arguments (sizes, leading dimensions) have ``index_bits`` bits;
    ``LOCAL_THREADS`` sets how many threads the calling thread's BLAS calls use."""
    path: str
    gemm: dict
    index_bits: int
    handle: ctypes.CDLL


def _candidate_paths() -> list:
    """BLAS libraries already mapped into this process (numpy loads its own on import),
    then those shipped next to numpy's package (``numpy.libs``, ``.libs``, ``.dylibs``)."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip()
                if "blas" in os.path.basename(path).lower() and path not in found:
                    found.append(path)
    except OSError:
        pass
    here = os.path.dirname(np.__file__)
    for folder in (f"{here}.libs", os.path.join(here, ".libs"), os.path.join(here, ".dylibs")):
        found += [p for p in sorted(glob.glob(os.path.join(folder, "*blas*")))
                  if p not in found]
    return found


def _open(path: str) -> Blas | None:
    try:
        handle = ctypes.CDLL(path)
    except OSError:
        return None
    for pattern, bits in _GEMM_NAMES:
        names = {dtype: pattern.format(letter)
                 for dtype, letter in (("float32", "s"), ("float64", "d"))}
        if all(hasattr(handle, name) for name in (*names.values(), LOCAL_THREADS)):
            return Blas(path, names, bits, handle)
    return None


@functools.cache
def library() -> Blas | None:
    """numpy's cblas library, its ``gemm`` and thread-count symbols added to the JIT's
    symbol table; None when there is none (then graphc's kernels run every matmul)."""
    for path in _candidate_paths():
        blas = _open(path)
        if blas is not None:
            for name in (*blas.gemm.values(), LOCAL_THREADS):
                llvm.add_symbol(name, ctypes.cast(getattr(blas.handle, name),
                                                  ctypes.c_void_p).value)
            return blas
    return None
