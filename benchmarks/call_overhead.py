"""Where a small compiled call's time goes: Python around the native code, or the code.

For ``chain10`` (ten elementwise ops on 1000 floats) and the quadrant classifier's whole
training step (benchmarks/compiled.py), timed in interleaved rounds (medians):

- ``compiled call``: ``graphc.compile``'s callable, as a user calls it (the call plan's
  fast path: key, guards, the backend's bound call, write-backs, result tensors);
- ``general path``: the same call made to take the general lookup (the call plan
  dropped before each call): what every call cost before call plans;
- ``bound call``: the cpu program's call plan alone (``BoundCall``: input checks,
  output allocation, pointer writes, the native call) on the same arrays;
- ``native entry``: the program's native entry point alone, one ctypes call on a pointer
  array filled once: the kernels.

``python overhead`` is the compiled call minus the native entry.  Run it as
``python benchmarks/call_overhead.py`` (``--quick`` for fewer rounds).  ``--cpu-time``
times the process's CPU time instead of the wall clock (same interleaved rounds): on a
machine shared with other jobs, wall time also counts the time this process waits for a
core, which can be several times the call itself.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc  # noqa: E402
from benchmarks.common import calibrate, interleaved, machine, warmup  # noqa: E402
from benchmarks.compiled import chain10, linear_init, quadrant_step, randn  # noqa: E402


def quadrant_data(per=200):
    centers = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float32)
    labels = np.repeat(np.arange(4), per)
    x = centers[labels] + 0.4 * randn(len(labels), 2, seed=1)
    y = np.eye(4, dtype=np.float32)[labels]
    return [graphc.tensor(x), graphc.tensor(y)]


def workloads() -> dict:
    """name -> (compiled function, its arguments), each warmed up until its call plan
    is in use (an optimizer's first step runs eagerly, the second traces)."""
    step, _ = quadrant_step(graphc, linear_init([2, 3, 3, 4]))
    cases = {"chain10": (graphc.compile(chain10(graphc)), [graphc.randn(1000)]),
             "quadrant": (graphc.compile(step), quadrant_data())}
    for fn, args in cases.values():
        for _ in range(3):
            fn(*args)
        assert fn._fast is not None, "the call plan is not in use"
    return cases


def calls(fn, args) -> dict:
    """The four ways of timing one call of ``fn(*args)`` (see the module docstring)."""
    plan = fn._fast

    def general():
        fn._fast = None
        return fn(*args)

    fixed = dict(zip(plan.lifted_positions, (t._array for t in plan.lifted)))
    varying = [s.array(args, "_array") for s in plan.varying]
    bound = plan.program.forward.bind(fixed)
    # A call plan of its own for the native entry, so the outputs its pointers hold
    # stay alive (``kept``) while its entry alone is called again and again.
    entry_only = plan.program.forward.bind(fixed)
    kept = entry_only(varying)

    def native():
        entry_only._entry(entry_only._pointers_address, entry_only._error_address)
        return kept
    return {"compiled call": lambda: fn(*args), "general path": general,
            "bound call": lambda: bound(varying), "native entry": native}


def cpu_time_interleaved(calls: dict, repeat: int, min_time: float) -> dict:
    """``benchmarks.common.interleaved`` with the process's CPU time as the clock."""
    numbers = {name: calibrate(call, min_time) for name, call in calls.items()}
    samples = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            warmup(call)
            start = time.process_time()
            for _ in range(numbers[name]):
                call()
            samples[name].append((time.process_time() - start) / numbers[name])
    return {name: statistics.median(s) for name, s in samples.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time CPU time, not wall time (for a loaded machine)")
    options = parser.parse_args(argv)
    timer = cpu_time_interleaved if options.cpu_time else interleaved
    repeat, min_time = (3, 0.01) if options.quick else (9, 0.05)
    print(machine())
    columns = ["compiled call", "general path", "bound call", "native entry"]
    unit = "CPU us/call" if options.cpu_time else "us per call"
    print(f"{unit:12s}" + "".join(f"{c:>15s}" for c in columns) +
          f"{'python overhead':>17s}")
    for name, (fn, args) in workloads().items():
        times = timer(calls(fn, args), repeat, min_time)
        fn._fast = fn._plan_of(fn.history[-1], fn.history[-1].key)
        row = [times[c] * 1e6 for c in columns]
        print(f"{name:12s}" + "".join(f"{t:15.2f}" for t in row) +
              f"{row[0] - row[3]:17.2f}")


if __name__ == "__main__":
    main()
