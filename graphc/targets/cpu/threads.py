"""The cpu backend's threads: libgomp's persistent pool, and how many threads to use.

Generated code runs a large kernel with ``GOMP_parallel`` (GNU OpenMP's entry point, the
one ``#pragma omp parallel`` compiles to): libgomp keeps its worker threads alive between
calls, so a parallel kernel costs a wake-up, not a thread start.  The threads of the team
take chunks of the kernel's range from libgomp's dynamic schedule (``GOMP_loop_dynamic_*``,
what ``#pragma omp for schedule(dynamic)`` compiles to; see ``render.py``).

The thread count is a runtime value, not part of the generated code (object code is
cached on disk and shared between settings): the process-wide int ``NUM_THREADS`` is the
external global ``graphc_num_threads`` of every module, read by ``entry`` on each call.
It starts at ``GRAPHC_NUM_THREADS`` or the number of cores this process may run on
(``os.sched_getaffinity``); ``set_num_threads`` changes it, and numpy's OpenBLAS with it.

Without libgomp (``openmp()`` is None) kernels run serially on the calling thread, and the
``perf_hints`` log says so once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import warnings

from graphc.codegen.split import SplitPolicy
from graphc.logs import logger

__all__ = ["LONG_REDUCTIONS", "MIN_WORK_PER_THREAD", "NUM_THREADS", "NUM_THREADS_SYMBOL",
           "OPENMP_SYMBOLS", "SPIN_COUNT", "default_num_threads", "get_num_threads",
           "openblas_num_threads", "openmp", "register_symbols", "set_num_threads",
           "team_size_cap"]

NUM_THREADS_SYMBOL = "graphc_num_threads"
OPENMP_SYMBOLS = ("GOMP_parallel", "GOMP_loop_dynamic_start", "GOMP_loop_dynamic_next",
                  "GOMP_loop_end_nowait", "omp_get_num_threads")

# A thread of a kernel's team gets at least this much ``work`` (LoopKernel/MatmulKernel
# ``work``: scalar loop iterations, multiply-adds), so what a thread saves outweighs
# waking it (a few us while the pool spins, 10-20 us from sleep).  On one core of the
# 2-core AMD EPYC VM (``python benchmarks/threads.py --calibrate``, quiet minute) 2**17
# iterations of ``x * 2 + 1`` take about 15 us and 2**19 multiply-adds about 15 us,
# beyond the call's 8 us (costlier loops, say exp, gain from threads sooner than this
# says).  On the quiet machine, whole training steps ran fastest with loops split from
# 2**13 iterations a thread (``python -m graphc bench`` steps, one process each, medians
# of 9 rounds at 2**17 / 2**15 / 2**13: GPT 14.8 / 14.1 / 13.8 ms, CNN 6.8 / 6.5 /
# 6.3 ms, MLP unchanged at 2.35 ms): their loops (exp, erf, layer norms) cost more per
# iteration than ``x * 2 + 1``.
MIN_WORK_PER_THREAD = {"loops": 1 << 13, "matmul": 1 << 19}


# A reduction of few rows and many elements (``x.sum()``, a sum over the long dim of a
# (8, 2**21) tensor) is split in two passes (``codegen/split.py``) so its first pass has
# rows for the pool to share: chunks of at least ``chunk`` elements, up to ``busy``
# partial rows in all (enough for 64 threads; the pool divides them at run time, so the
# numbers never depend on the thread count).
LONG_REDUCTIONS = SplitPolicy(busy=64, chunk=1 << 16)


def default_num_threads() -> int:
    """``GRAPHC_NUM_THREADS`` when set to a positive integer, else the number of cores
    this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    value = os.environ.get("GRAPHC_NUM_THREADS")
    if value is None:
        return cores
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        warnings.warn(f"GRAPHC_NUM_THREADS={value!r} is not a positive integer; using "
                      f"{cores} threads", stacklevel=2)
        return cores
    return n


NUM_THREADS = ctypes.c_int(default_num_threads())


def get_num_threads() -> int:
    return NUM_THREADS.value


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for parallel kernels from the next call on (``n >= 1``, already
    checked by the front end), and make numpy's OpenBLAS use ``n`` too."""
    NUM_THREADS.value = n
    functions = _openblas()
    if functions is not None:
        functions[0](n)


def team_size_cap(extent: int, work: int, kind: str) -> int:
    """The most threads a kernel of ``work`` over a range of ``extent`` may use: each
    thread gets at least one index of the range and ``MIN_WORK_PER_THREAD[kind]``."""
    return max(1, min(extent, work // MIN_WORK_PER_THREAD[kind]))


@functools.cache
def openmp() -> ctypes.CDLL | None:
    """libgomp, loaded once (the one already in the process when there is one), or None
    when it cannot be found: then ``perf_hints`` logs that kernels run serially."""
    name = ctypes.util.find_library("gomp") or "libgomp.so.1"
    try:
        lib = _load_with_short_spin(name)
        for symbol in OPENMP_SYMBOLS:
            getattr(lib, symbol)
    except (OSError, AttributeError) as e:
        logger("perf_hints").info("cpu backend: no OpenMP runtime (libgomp: %s); compiled "
                                  "kernels run serially on the calling thread", e)
        return None
    return lib


# How long an idle libgomp thread spins before it sleeps (``GOMP_SPINCOUNT``, in pause
# instructions), unless the environment says (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``).
# A spinning thread holds a core that another thread may need: the team's own threads
# when the process gets fewer cores than it has threads (a machine shared with other
# jobs), so each parallel kernel then costs the spin.  Measured on the 2-core VM with
# another job on the other core (``benchmarks/threads.py --calibrate``): two threads
# cost 500 us more than one per kernel at 10000 spins, 58 us at 1000, 14 us at 100 and
# 10 us at 0 (sleeping at once); libgomp's default (300000, milliseconds) made a 16M
# ``x.sum()`` 3x slower on two threads than on one.  A short spin still finds the pool
# awake between the kernels of one program, which follow each other within
# microseconds.
SPIN_COUNT = 100


def _load_with_short_spin(name: str) -> ctypes.CDLL:
    """libgomp, started with ``SPIN_COUNT`` (it reads the environment once, when loaded;
    a libgomp already in the process keeps its settings).  The variable is set only
    while loading, so child processes do not inherit it."""
    try:
        return ctypes.CDLL(name, mode=os.RTLD_NOLOAD | ctypes.RTLD_GLOBAL)
    except OSError:
        pass
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return ctypes.CDLL(name)
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        return ctypes.CDLL(name)
    finally:
        del os.environ["GOMP_SPINCOUNT"]


def register_symbols() -> None:
    """Make ``graphc_num_threads`` and libgomp's entry points (when there is a libgomp)
    visible to the JIT's linker (cheap: called for each object code loaded)."""
    import llvmlite.binding as llvm
    llvm.add_symbol(NUM_THREADS_SYMBOL, ctypes.addressof(NUM_THREADS))
    lib = openmp()
    if lib is not None:
        for symbol in OPENMP_SYMBOLS:
            llvm.add_symbol(symbol, ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value)


def _after_fork_in_child() -> None:
    """libgomp's pool does not survive ``fork``: a parallel region in the child waits
    forever for threads that are not there.  So a forked child runs kernels serially, as
    PyTorch's DataLoader workers do (setting a count above 1 there hangs if the parent
    had run parallel kernels)."""
    NUM_THREADS.value = 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.cache
def _openblas():
    """numpy's bundled OpenBLAS as ``(set_num_threads, get_num_threads)``
    (``scipy_openblas_set_num_threads64_`` ... in numpy's wheels), found among the
    libraries loaded into this process; None when numpy uses another BLAS."""
    import numpy  # noqa: F401  (loads its BLAS)
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps
                     if line.count(" ") >= 5 and re.search(r"openblas[^/]*\.so", line)}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "64_"), ("openblas", "")):
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


def openblas_num_threads() -> int | None:
    """How many threads numpy's OpenBLAS uses (None: numpy has another BLAS)."""
    functions = _openblas()
    return None if functions is None else functions[1]()


if "GRAPHC_NUM_THREADS" in os.environ:        # OpenBLAS follows an explicit setting only
    set_num_threads(NUM_THREADS.value)
