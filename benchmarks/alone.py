"""One workload of ``python -m graphc bench`` in one mode, alone in this process.

``python -m graphc bench`` interleaves every mode in one process, so their thread pools
(PyTorch's, numpy's OpenBLAS, graphc's) spin next to each other between calls; on a
machine with few cores that slows every threaded mode.  This times one mode with nothing
else in the process: the workload's own call, 5 calls to warm up, then the median of
9 rounds of 10 calls.

    python benchmarks/alone.py gpt_train fused
    for m in fused torch torch_compile; do python benchmarks/alone.py cnn_train $m; done
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import compiled  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=[w.name for w in compiled.WORKLOADS])
    parser.add_argument("mode", choices=compiled.MODES)
    parser.add_argument("--quick", action="store_true", help="the bench's tiny sizes")
    args = parser.parse_args(argv)
    workload = next(w for w in compiled.WORKLOADS if w.name == args.workload)
    torch = compiled.import_torch() if args.mode.startswith("torch") else None
    if args.mode.startswith("torch") and torch is None:
        parser.error("PyTorch is not importable here")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # an optimizer's eager first step warns
        case = workload.build(compiled.QUICK if args.quick else compiled.FULL,
                              compiled.Context("cpu", torch))
        if args.mode not in case.calls:
            parser.error(f"{args.workload} has no {args.mode} mode")
        call = case.calls[args.mode]
        for _ in range(5):
            call()
    rounds = []
    for _ in range(9):
        start = time.perf_counter()
        for _ in range(10):
            call()
        rounds.append((time.perf_counter() - start) / 10)
    print(f"{args.workload} {args.mode} alone: {statistics.median(rounds) * 1e3:.3f} ms "
          f"a call")


if __name__ == "__main__":
    main()
