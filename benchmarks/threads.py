"""Thread scaling of compiled cpu programs: each workload at 1, 2 and all cores (and any
count given), in one process, the counts' calls interleaved, speedup vs one thread.

    python benchmarks/threads.py                    # 1, 2 and all cores
    python benchmarks/threads.py --threads 1 2 16   # these counts
    python benchmarks/threads.py --calibrate        # where two threads start to pay

``graphc.set_num_threads(n)`` sets the count before each call (numpy's OpenBLAS follows
it, which the MLP step's eager parts do not use: the whole step is compiled).
``--calibrate`` times kernels of growing size on one and two threads, every kernel
allowed to split (``MIN_WORK_PER_THREAD`` lowered to 1): the size where two threads win
is what ``graphc/targets/cpu/threads.py`` sets ``MIN_WORK_PER_THREAD`` from.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc  # noqa: E402
from graphc.targets.cpu import threads  # noqa: E402
from benchmarks.common import cpu_name, interleaved  # noqa: E402
from benchmarks.compiled import (gelu_chain, linear_init, matmul, mlp_step,  # noqa: E402
                                 randn, softmax_rows)


def elementwise_chain():
    x = graphc.tensor(randn(1 << 24))
    return graphc.compile(gelu_chain(graphc), backend="cpu"), (x,)


def softmax():
    return graphc.compile(softmax_rows(graphc), backend="cpu"), \
        (graphc.tensor(randn(4096, 4096)),)


def sgemm():
    a, b = graphc.tensor(randn(1024, 1024, seed=1)), graphc.tensor(randn(1024, 1024, seed=2))
    return graphc.compile(matmul(graphc), backend="cpu"), (a, b)


def mlp_train():
    sizes = (784, 256, 256, 10)
    step, _ = mlp_step(graphc, linear_init(sizes), sizes)
    x = graphc.tensor(randn(256, 784, seed=1))
    y = graphc.tensor(np.random.default_rng(2).integers(0, 10, 256))
    return graphc.compile(step, backend="cpu"), (x, y)


WORKLOADS = {
    "elementwise": ("gelu_tanh(x*0.8+0.1) * sigmoid(x), 16M f32", elementwise_chain),
    "softmax": ("row softmax, 4096x4096 f32", softmax),
    "sgemm": ("matmul 1024x1024x1024 f32", sgemm),
    "mlp_train": ("784-256-256-10 MLP train step, batch 256, SGD", mlp_train),
}


def at(count, fn, args):
    def call():
        graphc.set_num_threads(count)
        fn(*args)
    return call


def scaling(counts, repeat, min_time):
    rows = []
    for name, (title, make) in WORKLOADS.items():
        fn, args = make()
        fn(*args)                                    # compile (and the warm-up call)
        times = interleaved({n: at(n, fn, args) for n in counts}, repeat, min_time)
        rows.append((name, title, times))
        cells = [f"{times[n] * 1e3:9.2f} ({times[counts[0]] / times[n]:4.2f}x)" for n in counts]
        print(f"{name:12s} " + "  ".join(cells), flush=True)
    return rows


def calibrate(repeat, min_time):
    """Two threads vs one on kernels of growing work, each allowed to split."""
    threads.MIN_WORK_PER_THREAD = {"loops": 1, "matmul": 1}
    print("elementwise y = x * 2 + 1 (f32): elements, us at 1 and 2 threads, ratio")
    for n in (1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15, 1 << 16, 1 << 18):
        fn, x = graphc.compile(lambda x: x * 2 + 1, backend="cpu"), graphc.ones(n)
        fn(x)
        t = interleaved({c: at(c, fn, (x,)) for c in (1, 2)}, repeat, min_time)
        print(f"  {n:8d} {t[1] * 1e6:9.1f} {t[2] * 1e6:9.1f} {t[1] / t[2]:6.2f}", flush=True)
    print("matmul n x n x n (f32): n, multiply-adds, us at 1 and 2 threads, ratio")
    for n in (32, 48, 64, 96, 128):
        fn = graphc.compile(lambda a, b: a @ b, backend="cpu")
        a, b = graphc.ones(n, n), graphc.ones(n, n)
        fn(a, b)
        t = interleaved({c: at(c, fn, (a, b)) for c in (1, 2)}, repeat, min_time)
        print(f"  {n:4d} {n ** 3:9d} {t[1] * 1e6:9.1f} {t[2] * 1e6:9.1f} {t[1] / t[2]:6.2f}",
              flush=True)


def main():
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({1, 2, cores}))
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--min-time", type=float, default=0.05)
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    print(f"graphc {graphc.__version__}, numpy {np.__version__}, {cores} cores "
          f"({cpu_name()}), load average {os.getloadavg()[0]:.1f}, libgomp "
          f"{'found' if threads.openmp() is not None else 'missing: serial'}; medians of "
          f"{args.repeat} interleaved repeats")
    if args.calibrate:
        calibrate(args.repeat, args.min_time)
        return
    print("ms per call (speedup vs " + f"{args.threads[0]} thread" + "s" * (args.threads[0] > 1)
          + ") at " + ", ".join(f"{n} threads" for n in args.threads))
    scaling(args.threads, args.repeat, args.min_time)


if __name__ == "__main__":
    main()
