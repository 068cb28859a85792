"""The GPT training step in PyTorch: eager, ``torch.compile(backend="graphc")`` and the
default ``torch.compile`` (Inductor), timed in the same run.

The step is the ``gpt_train`` workload of ``python -m graphc bench``
(``benchmarks/compiled.py``: batch 8, context 64, width 128, 4 heads, 2 layers, AdamW),
written once for PyTorch; each mode trains its own copy of the same initial parameters.
The whole step function is compiled: Dynamo breaks the graph at ``loss.backward()``
(AOTAutograd's compiled backward runs there) and compiles ``optimizer.step`` as a graph
of its own.  The last mode, ``ported``, is the same program run on graphc itself
(``import graphc as torch``) with the step compiled whole by ``graphc.compile``: what
going through Dynamo and AOTAutograd costs.

The table gives the median seconds per step over interleaved rounds
(``benchmarks/common.py``), each mode's speed against eager, and the seconds of each
mode's first two calls: capture, compile and two steps for the compiled modes (a
``graphc.compile``d training step runs its first call eagerly, which creates the
optimizer's state, and compiles on the second).  The last line says which ATen ops
graphc left to PyTorch.  The first calls compile cold: graphc and Inductor get empty
disk caches of this run's own (graphc keeps the records of the host's matmul tuning,
measured once per machine).

    python benchmarks/dynamo.py             # the bench's sizes
    python benchmarks/dynamo.py --quick     # tiny sizes, a smoke test
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

from benchmarks.common import interleaved  # noqa: E402
from benchmarks.compiled import FULL, QUICK, gpt_init, gpt_step  # noqa: E402
import graphc  # noqa: E402
from graphc.targets import cache  # noqa: E402

MODES = ("eager", "graphc", "inductor", "ported")


def steps(sizes) -> dict:
    """Each mode's step, a zero-argument call training its own copy of the parameters
    on one fixed batch."""
    batch, context, *rest = sizes
    params = gpt_init(sizes[1:])
    x, y = (torch.from_numpy(a) for a in
            np.random.default_rng(1).integers(0, rest[-1], (2, batch, context)))
    calls = {}
    for mode in MODES:
        step, _ = gpt_step(graphc if mode == "ported" else torch, params, sizes[1:])
        if mode == "graphc":
            step = torch.compile(step, backend="graphc")
        elif mode == "inductor":
            step = torch.compile(step)
        elif mode == "ported":      # the program on graphc itself, its step compiled whole
            step, x, y = graphc.compile(step), graphc.from_numpy(x.numpy()), \
                graphc.from_numpy(y.numpy())
        calls[mode] = (lambda step=step, x=x, y=y: step(x, y))
    return calls


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--min-time", type=float, default=0.2,
                        help="seconds each timing sample lasts at least")
    args = parser.parse_args(argv)
    caches = cold_caches()
    try:
        run(args)
    finally:
        for folder in caches:
            shutil.rmtree(folder, ignore_errors=True)


def cold_caches() -> list:
    """Point graphc's and Inductor's disk caches at empty folders (graphc's with the
    host's matmul tuning records copied in); returns the folders."""
    graphc_cache = tempfile.mkdtemp(prefix="graphc-dynamo-bench-")
    tuned = cache.directory()
    if tuned and os.path.isdir(tuned):
        for name in os.listdir(tuned):
            if name.endswith(".json"):
                shutil.copy(os.path.join(tuned, name), graphc_cache)
    inductor_cache = tempfile.mkdtemp(prefix="inductor-dynamo-bench-")
    os.environ["GRAPHC_CACHE_DIR"] = graphc_cache
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache
    return [graphc_cache, inductor_cache]


def run(args) -> None:
    torch.manual_seed(0)
    calls = steps((QUICK if args.quick else FULL)["gpt"])
    first = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # ops left to PyTorch: counted below
        for mode, call in calls.items():
            start = time.perf_counter()
            call()
            call()
            first[mode] = time.perf_counter() - start
    medians = interleaved(calls, args.repeat, args.min_time)
    print(f"GPT train step {(QUICK if args.quick else FULL)['gpt']} "
          f"(batch, context, width, heads, layers, vocab), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'mode':<10} {'ms/step':>9} {'vs eager':>9} {'first 2 calls s':>16}")
    for mode in MODES:
        print(f"{mode:<10} {medians[mode] * 1e3:>9.2f} "
              f"{medians['eager'] / medians[mode]:>8.2f}x {first[mode]:>16.2f}")
    ran = counters["graphc"]
    left = sorted(k.removeprefix("pytorch ") for k in ran if k.startswith("pytorch "))
    print(f"graphc ran {ran['graphc nodes']} ATen nodes; left to PyTorch: "
          f"{', '.join(left) or 'none'}")


if __name__ == "__main__":
    main()
