"""How long ``graphc.compile`` takes to compile a whole training step, stage by stage.

Each model's step (forward, loss, backward, optimizer) is compiled in a fresh process
with an empty ``GRAPHC_CACHE_DIR`` (first: the matmul kernel's tuning to the host is
measured too, once per machine), again in a fresh process with only the tuning records
left in that folder (cold: every kernel compiles), and in a third with the folder as the
second left it (warm: the rendering and object code from the disk cache).  The table gives
the seconds of each compile stage (``graphc.progress``), summed over the compiles of the
first calls, and those calls' wall seconds (which also run the step, eagerly on a
stateful optimizer's first call).

    python benchmarks/compile_time.py                 # the GPT step and the small CNN step
    python benchmarks/compile_time.py --models gpt    # one of them

Models: the training steps of ``python -m graphc bench`` (``benchmarks/compiled.py``):
``gpt`` (``gpt_train``: batch 8, context 64, width 128, 4 heads, 2 layers, AdamW),
``cnn`` (``cnn_train``: two 3x3 convolutions of 16 and 32 channels with max pooling and a
linear head, batch 64 of 28x28, SGD) and ``mlp`` (``mlp_train``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.compiled import in_fresh_process, keep_host_tuning  # noqa: E402
MODELS = {"gpt": "gpt_train", "cnn": "cnn_train", "mlp": "mlp_train"}    # -> bench step


def probe(model: str, calls: int = 5) -> dict:
    """In this process: the seconds of every compile made in the first ``calls`` calls,
    stage by stage, summed (a stateful optimizer's first call traces, then runs eagerly
    to create its state; a program that changes what its arguments are, such as the
    ``.grad`` that ``zero_grad`` sets to None, may compile twice), the first calls' wall
    seconds and a later call's."""
    import graphc
    from graphc import progress
    from benchmarks.compiled import FULL, probe_step
    fn, x, y = probe_step(MODELS[model], FULL)
    step, args = graphc.compile(fn), (x, y)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        step(*args).item()
        seconds.append(time.perf_counter() - start)
    stages = {}
    for compile_ in progress.finished():
        for stage, s in compile_.items():
            if stage != "name":
                stages[stage] = stages.get(stage, 0.0) + s
    run = seconds[-1]
    return {"compiles": len(progress.finished()), "stages": stages,
            "first_calls_s": sum(seconds[:-1]), "run_s": run}


def run_probe(model: str, cache_dir: str) -> dict:
    return in_fresh_process(f"benchmarks.compile_time.probe({model!r})", cache_dir,
                            f"compile probe of {model}", timeout=900)


def measure(model: str) -> dict:
    """Three probes in fresh processes sharing one cache folder: ``first`` (empty: the
    host's matmul tuning is measured too, once per machine), ``cold`` (the folder keeps
    only the tuning records: every kernel compiles) and ``warm`` (everything cached)."""
    cache_dir = tempfile.mkdtemp(prefix="graphc-compile-time-")
    try:
        first = run_probe(model, cache_dir)
        keep_host_tuning(cache_dir)
        return {"first": first, "cold": run_probe(model, cache_dir),
                "warm": run_probe(model, cache_dir)}
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def table(model: str, result: dict) -> str:
    runs = ("first", "cold", "warm")
    stages = [s for s in dict.fromkeys(s for run in runs for s in result[run]["stages"])
              if s != "total"]
    lines = [f"{model}: seconds     first    cold    warm", "-" * 40]
    for stage in stages:
        lines.append(f"{stage:<16}" + "".join(
            f"{result[run]['stages'].get(stage, 0):8.3f}" for run in runs))
    lines.append(f"{'compile (total)':<16}" + "".join(
        f"{result[run]['stages']['total']:8.3f}" for run in runs) +
        f"   ({result['cold']['compiles']} compiles)")
    lines.append(f"{'first calls':<16}" + "".join(
        f"{result[run]['first_calls_s']:8.3f}" for run in runs) +
        f"   (wall; then {result['cold']['run_s'] * 1e3:.1f} ms a call)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["gpt", "cnn"])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = {model: measure(model) for model in args.models}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for model, result in results.items():
        print(table(model, result) + "\n")


if __name__ == "__main__":
    main()
