"""Where a compiled training step's time goes, kernel by kernel.

Compiles one of ``python -m graphc bench``'s training steps (``benchmarks/compiled.py``),
runs it, then runs it again under ``graphc.profile()``, which times each kernel in place
inside the native call (on the threads the step uses; ``docs/profiling.md``).  Prints
the step's median time, the sum of the kernels' times, the split by kind (matmul, im2col,
loops) and the slowest kernels.

    python benchmarks/kernel_times.py gpt_train          # or mlp_train, cnn_train
    python benchmarks/kernel_times.py cnn_train --top 20

(Before issue 15 this script called each kernel alone on one thread; the numbers in
docs/benchmarks.md that say "alone on one thread" were measured that way.)
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc  # noqa: E402
from benchmarks.compiled import FULL, QUICK, probe_step  # noqa: E402


def kind(name: str) -> str:
    return next((k for k in ("matmul", "im2col") if k in name), "loops")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", default="gpt_train",
                        choices=["gpt_train", "mlp_train", "cnn_train"])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20, help="profiled calls (20)")
    parser.add_argument("--quick", action="store_true", help="the bench's tiny sizes")
    args = parser.parse_args(argv)
    fn, x, y = probe_step(args.step, QUICK if args.quick else FULL)
    fn(x, y)                         # an optimizer's state exists before the compile
    step = graphc.compile(fn)
    for _ in range(3):
        step(x, y)
    with graphc.profile() as profile:
        for _ in range(args.calls):
            step(x, y)
    program = step.programs()[-1].forward
    stats = profile.stats(program)
    whole = program.kernel_times.program_time(len(program.kernel_times.call_ns) - args.calls)
    total = sum(row["median_s"] for row in stats)
    by_kind = {}
    for row in stats:
        by_kind[kind(row["name"])] = by_kind.get(kind(row["name"]), 0.0) + row["median_s"]
    print(f"{args.step}: the step {whole['median_s'] * 1e3:.3f} ms a call on "
          f"{graphc.get_num_threads()} threads; {len(stats)} kernels, timed in place: "
          f"{total * 1e3:.3f} ms (medians)")
    print("by kind: " + ", ".join(f"{k} {t * 1e3:.3f} ms ({100 * t / total:.0f}%)"
                                  for k, t in sorted(by_kind.items(), key=lambda kv: -kv[1])))
    for row in sorted(stats, key=lambda row: -row["median_s"])[:args.top]:
        print(f"{row['median_s'] * 1e6:10.1f} us {100 * row['median_s'] / total:5.1f}%  "
              f"{row['name']}")


if __name__ == "__main__":
    main()
