"""Where a compiled training step's time goes, kernel by kernel.

Compiles one of ``python -m graphc bench``'s training steps (``benchmarks/compiled.py``),
runs it, then calls each kernel of its native program alone, on the calling thread, over
its whole range, with the buffers the last call left (so in-place updates are repeated:
the numbers are times, not a training run).  Prints the step's median time, the sum of
the kernels' times, the split by kind (matmul, im2col, loops) and the slowest kernels.

    python benchmarks/kernel_times.py gpt_train          # or mlp_train, cnn_train
    python benchmarks/kernel_times.py cnn_train --top 20

A kernel here runs on one thread while the step spreads its large kernels over the pool,
so on several cores the kernels' sum exceeds the step's time.  (A profiler inside the
generated code, which times each kernel in place, is issue 15's work.)
"""
from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc  # noqa: E402
from benchmarks.compiled import FULL, QUICK, probe_step  # noqa: E402
from graphc.targets.cpu import render  # noqa: E402

_KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_void_p)


def median_seconds(call, rounds=7, calls=10) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def kernel_calls(step) -> list:
    """(kernel, zero-argument call running it alone) for each kernel of the program the
    compiled ``step``'s last call ran, with the pointers that call used."""
    program = step.programs()[-1].forward
    pointers = step._fast.bound._pointers
    scopes = render.alias_scopes(program.program)
    error = (ctypes.c_int64 * 2)()
    calls = []
    for kernel in program.program.kernels:
        symbol = render.kernel_module(kernel, scopes).symbol
        function = _KERNEL(program._native.engine.get_function_address(symbol))
        slots = [program._slots[name] for name in render.kernel_buffers(kernel)]
        own = (ctypes.c_void_p * max(len(slots), 1))(*[pointers[s] for s in slots])
        extent = render.kernel_extent(kernel)
        calls.append((kernel, lambda f=function, own=own, extent=extent:
                      f(own, 0, extent, ctypes.addressof(error))))
    return calls


def kind(name: str) -> str:
    return next((k for k in ("matmul", "im2col") if k in name), "loops")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", default="gpt_train",
                        choices=["gpt_train", "mlp_train", "cnn_train"])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="the bench's tiny sizes")
    args = parser.parse_args(argv)
    fn, x, y = probe_step(args.step, QUICK if args.quick else FULL)
    fn(x, y)                         # an optimizer's state exists before the compile
    step = graphc.compile(fn)
    for _ in range(3):
        step(x, y)
    whole = median_seconds(lambda: step(x, y))
    rows = []
    for kernel, call in kernel_calls(step):
        call()
        rows.append((median_seconds(call), kernel.name))
    total = sum(t for t, _ in rows)
    by_kind = {}
    for t, name in rows:
        by_kind[kind(name)] = by_kind.get(kind(name), 0.0) + t
    print(f"{args.step}: the step {whole * 1e3:.3f} ms a call on {graphc.get_num_threads()} "
          f"threads; {len(rows)} kernels, each alone on one thread: {total * 1e3:.3f} ms")
    print("by kind: " + ", ".join(f"{k} {t * 1e3:.3f} ms ({100 * t / total:.0f}%)"
                                  for k, t in sorted(by_kind.items(), key=lambda kv: -kv[1])))
    for t, name in sorted(rows, reverse=True)[:args.top]:
        print(f"{t * 1e6:10.1f} us {100 * t / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
