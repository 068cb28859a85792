"""Timing helpers shared by the benchmarks: warm up, calibrate, interleave, take medians.

The machines these run on are small and shared (two cores, other jobs running), so one
timing means little.  Every helper here is built around that: each call is warmed up
before it is timed, the calls being compared are timed in interleaved rounds (a noisy
neighbour slows all of them alike), and what is reported is the median of the rounds.
"""
from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np


def warmup(call, times=1):
    """Run ``call`` so first-call costs (compilation, caches, page faults) are not timed."""
    for _ in range(times):
        call()


def seconds_per_call(call, number: int) -> float:
    """Wall seconds of one call, averaged over ``number`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - start) / number


def calibrate(call, min_time: float) -> int:
    """How many back-to-back calls make one timing sample last at least ``min_time``."""
    number = 1
    while number * seconds_per_call(call, number) < min_time and number < 1 << 20:
        number *= 2
    return number


def interleaved(calls: dict, repeat: int, min_time: float) -> dict:
    """Median seconds per call of each named zero-argument call.

    Each round times every call once (a sample of ``number`` calls, calibrated per call
    to last ``min_time``), so all of them see the same background load.  Each sample
    follows one untimed call of the same function, so it does not pay for the state the
    previous function left: caches, and the kernel's free memory (numpy's large
    temporaries take fresh huge pages, which cost several times more after another
    library has split them up).
    """
    numbers = {}
    for name, call in calls.items():
        warmup(call)
        numbers[name] = calibrate(call, min_time)
    samples = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            warmup(call)
            samples[name].append(seconds_per_call(call, numbers[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


def copy_call(nbytes: int, on_gpu: bool = False):
    """A call that copies ``nbytes`` of float32: the plain memory copy that
    bandwidth-bound kernels are measured against (it reads and writes ``nbytes``).  With
    ``on_gpu``, a device-to-device copy on the GPU (the ``cuda`` backend's baseline),
    waited for as a compiled call waits for its kernels."""
    n = max(1, nbytes // 4)
    if on_gpu:
        import pycuda.driver as drv
        from graphc.targets.cuda import runtime
        with runtime.active():
            src, dst = drv.mem_alloc(4 * n), drv.mem_alloc(4 * n)

        def device_copy():
            with runtime.active():
                drv.memcpy_dtod(dst, src, 4 * n)
                drv.Context.synchronize()
        return device_copy, 8 * n
    src = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    dst = np.empty_like(src)
    return lambda: np.copyto(dst, src), 2 * src.nbytes


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one (Linux), else the platform's."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine() -> dict:
    """What the numbers were measured on, for the report."""
    import graphc
    info = {"processor": cpu_name(), "cpus": os.cpu_count(), "usable_cpus": usable_cpus(),
            "system": platform.system(),
            "python": platform.python_version(), "numpy": np.__version__,
            "graphc": graphc.__version__}
    if hasattr(graphc, "get_num_threads"):
        info["graphc_threads"] = graphc.get_num_threads()
    try:
        import llvmlite
        info["llvmlite"] = llvmlite.__version__
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info
