"""What one eager graphc op costs on a small tensor, next to the numpy call it wraps.

For each op and shape the same run times three calls: the raw numpy expression, the
graphc op on tensors that do not require grad, and the graphc op on tensors that do (so
an autograd node is recorded).  Repeats are interleaved, so a noisy neighbour slows all
three alike, and the table shows medians in microseconds and the ratio to numpy.

    python benchmarks/eager_overhead.py              # the table
    python benchmarks/eager_overhead.py --json       # the same numbers as JSON
    python benchmarks/eager_overhead.py --profile add:16   # where one op's time goes
"""
import argparse
import cProfile
import functools
import json
import os
import platform
import pstats
import statistics
import sys
import timeit

import numpy as np

import graphc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import cpu_name  # noqa: E402  (run as a script from anywhere)

# name -> (graphc call, numpy call); each takes the operands (x, y).
OPS = {
    "add": (lambda x, y: x + y, lambda x, y: x + y),
    "mul": (lambda x, y: x * y, lambda x, y: x * y),
    "exp": (lambda x, y: x.exp(), lambda x, y: np.exp(x)),
    "sum": (lambda x, y: x.sum(), lambda x, y: x.sum()),
    "matmul": (lambda x, y: x @ y, lambda x, y: x @ y),
}
# A "small" matmul has the 16 elements of the other small cases, as a 4x4 matrix.
SHAPES = {"16": {"matmul": (4, 4)}, "64x64": {}}
DEFAULT_SHAPE = {"16": (16,), "64x64": (64, 64)}
MODES = ("numpy", "graphc", "graphc+grad")


def operands(op, shape_name):
    """float32 operands as numpy arrays, plain tensors and tensors that require grad."""
    shape = SHAPES[shape_name].get(op, DEFAULT_SHAPE[shape_name])
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    plain = [graphc.from_numpy(a.copy()) for a in arrays]
    grad = [graphc.from_numpy(a.copy()).requires_grad_() for a in arrays]
    return {"numpy": arrays, "graphc": plain, "graphc+grad": grad}


def calls(op, shape_name):
    """The three zero-argument calls to time for one op and shape."""
    graphc_call, numpy_call = OPS[op]
    args = operands(op, shape_name)
    funcs = {"numpy": numpy_call, "graphc": graphc_call, "graphc+grad": graphc_call}
    return {mode: functools.partial(funcs[mode], *args[mode]) for mode in MODES}


def calibrate(call, min_time):
    """How many calls make one timing run last at least ``min_time`` seconds."""
    number = 1
    while timeit.timeit(call, number=number) < min_time:
        number *= 2
    return number


def measure(op, shape_name, repeat, min_time):
    """Median microseconds per call for each mode, from interleaved repeats."""
    to_time = calls(op, shape_name)
    numbers = {mode: calibrate(call, min_time) for mode, call in to_time.items()}
    samples = {mode: [] for mode in MODES}
    for _ in range(repeat):
        for mode, call in to_time.items():
            seconds = timeit.timeit(call, number=numbers[mode])
            samples[mode].append(1e6 * seconds / numbers[mode])
    return {mode: statistics.median(s) for mode, s in samples.items()}


def run(repeat, min_time):
    rows = []
    for shape_name in SHAPES:
        for op in OPS:
            us = measure(op, shape_name, repeat, min_time)
            rows.append({"op": op, "shape": shape_name, **{f"{m}_us": us[m] for m in MODES},
                         "ratio": us["graphc"] / us["numpy"],
                         "ratio_grad": us["graphc+grad"] / us["numpy"]})
    return rows


def machine():
    return {"python": platform.python_version(), "numpy": np.__version__,
            "graphc": graphc.__version__, "cpus": os.cpu_count(), "processor": cpu_name(),
            "system": platform.system()}


def print_table(rows, info, repeat):
    print(f"graphc {info['graphc']}, numpy {info['numpy']}, Python {info['python']}, "
          f"{info['cpus']} CPUs ({info['processor']}); medians of {repeat} repeats, "
          f"microseconds per call")
    header = (f"{'op':<8}{'shape':<8}{'numpy':>9}{'graphc':>10}{'ratio':>8}"
              f"{'graphc+grad':>13}{'ratio':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['op']:<8}{r['shape']:<8}{r['numpy_us']:>9.2f}{r['graphc_us']:>10.2f}"
              f"{r['ratio']:>8.1f}{r['graphc+grad_us']:>13.2f}{r['ratio_grad']:>8.1f}")


def profile(op, shape_name, calls_per_profile=20000):
    """cProfile of one op with autograd on: where the time goes."""
    call = calls(op, shape_name)["graphc+grad"]
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [call() for _ in range(calls_per_profile)])
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--repeat", type=int, default=7, help="timing runs per call")
    parser.add_argument("--min-time", type=float, default=0.02,
                        help="seconds that one timing run lasts at least")
    parser.add_argument("--profile", metavar="OP:SHAPE",
                        help=f"profile one op instead (ops: {', '.join(OPS)}; "
                             f"shapes: {', '.join(SHAPES)})")
    args = parser.parse_args(argv)
    if args.profile:
        op, _, shape_name = args.profile.partition(":")
        shape_name = shape_name or "16"
        if op not in OPS or shape_name not in SHAPES:
            parser.error(f"--profile {args.profile}: expected OP:SHAPE with OP one of "
                         f"{', '.join(OPS)} and SHAPE one of {', '.join(SHAPES)}")
        profile(op, shape_name)
        return
    rows = run(args.repeat, args.min_time)
    info = machine()
    if args.json:
        print(json.dumps({"machine": info, "repeat": args.repeat, "rows": rows}, indent=2))
    else:
        print_table(rows, info, args.repeat)


if __name__ == "__main__":
    main()
