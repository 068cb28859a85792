"""A data-parallel training step of the GPT-style model (examples/gpt.py): its time, the
time its gradient all-reduces take, and how much of that the step hides.

    mpiexec -n 2 python benchmarks/distributed.py          # and -n 1, for the baseline

Every rank trains on its own batch of ``--batch`` sequences (weak scaling: the global
batch grows with the ranks), eagerly and with the whole step compiled
(``graphc.compile``: one native call with the all-reduces inside).  Per mode, in rounds
that interleave them (the machine is shared), it times:

- ``step``: the DDP step, gradients averaged;
- ``local``: the same step under ``no_sync()`` (no communication at all);
- ``comm``: the all-reduces alone, on buffers of the buckets' sizes, as the mode makes
  them (a compiled program of only collectives, or eager ``all_reduce`` calls).

Then the communication's share of the step is ``comm / step``, what averaging adds to the
step is ``step - local``, and the overlap, the share of the communication the step hides
behind computation, is ``1 - (step - local) / comm``, clipped to [0, 1] (0: the step pays
for all of it, and for the buckets' copies; 1: communication costs nothing).  For the
compiled step it also prints how much of the step's kernel work runs while each
all-reduce is in flight (from the program's schedule).  Rank 0 prints a table and one
JSON line; docs/distributed.md has the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, ROOT)

import graphc as torch                                         # noqa: E402
import graphc.distributed as dist                              # noqa: E402
from graphc.nn.parallel import DistributedDataParallel as DDP  # noqa: E402
from gpt import GPT                                            # noqa: E402
from benchmarks.common import machine                          # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="sequences per rank")
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--bucket-mb", type=float, default=0.5,
                   help="DDP's bucket_cap_mb (the model's gradients are 1.6 MB)")
    p.add_argument("--steps", type=int, default=5, help="steps per timing sample")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--modes", default="eager,compiled")
    return p.parse_args()


def synchronised(call, steps: int) -> float:
    """Seconds per call of ``steps`` calls, started together on every rank and ended
    when the slowest rank is done (the step time of the job)."""
    dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        call()
    dist.barrier()
    return (time.perf_counter() - start) / steps


def main():
    args = parse_args()
    dist.init_process_group("mpi")
    rank, size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    vocab = 65
    model = GPT(vocab, args.context, width=args.width, heads=4, layers=args.layers)
    ddp = DDP(model, bucket_cap_mb=args.bucket_mb)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1 + rank)
    x = torch.randint(0, vocab, (args.batch, args.context), generator=g)
    y = torch.randint(0, vocab, (args.batch, args.context), generator=g)

    def step():
        _, loss = ddp(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    def local_step():
        with ddp.no_sync():
            return step()

    sizes = [sum(p.numel() for p in b.params) for b in ddp._buckets]
    buffers = [torch.zeros(n) for n in sizes]

    def reduce_buckets(*bufs):
        for b in bufs:
            dist.all_reduce(b)
        return bufs

    calls = {}
    for mode in args.modes.split(","):
        if mode == "eager":
            calls["eager"] = dict(step=step, local=local_step,
                                  comm=lambda: reduce_buckets(*buffers))
        else:
            compiled_step = torch.compile(step)
            compiled_local = torch.compile(step)       # traced under no_sync: no all-reduce

            def compiled_no_sync(run=compiled_local):
                with ddp.no_sync():
                    return run()
            compiled_comm = torch.compile(reduce_buckets)
            calls["compiled"] = dict(step=compiled_step, local=compiled_no_sync,
                                     comm=lambda run=compiled_comm: run(*buffers))
    for mode in calls.values():                         # compile and warm up
        for call in mode.values():
            for _ in range(2):
                call()
    samples = {(m, k): [] for m, mode in calls.items() for k in mode}
    for _ in range(args.rounds):
        for m, mode in calls.items():
            for k, call in mode.items():
                samples[(m, k)].append(synchronised(call, args.steps))
    median = {key: statistics.median(v) for key, v in samples.items()}
    if rank == 0:
        windows = flight_windows(calls["compiled"]["step"]) if "compiled" in calls else []
        report(args, size, sizes, median, calls, windows)
    dist.destroy_process_group()


def flight_windows(compiled) -> list:
    """For each all-reduce of the compiled step, the share of the step's kernel work
    (``work``: loop iterations, multiply-adds) that runs while it is in flight: what it
    could hide behind where the transfer does not take the cores (a network)."""
    from graphc.codegen import loops as L
    from graphc.codegen.lower import lower
    graph = list(compiled.graphs()[-1].values())[-1]
    kernels = lower(graph)[0].kernels
    total = sum(k.work for k in kernels)
    windows = []
    for i, k in enumerate(kernels):
        if isinstance(k, L.Collective):
            end = next(j for j in range(i, len(kernels))
                       if isinstance(kernels[j], L.Wait) and kernels[j].collective is k)
            windows.append(sum(x.work for x in kernels[i:end]) / total)
    return windows


def report(args, size, sizes, median, calls, windows):
    params = sum(sizes)
    print(f"# {machine()}")
    print(f"# GPT-style model: {params} parameters ({params * 4 / 1e6:.2f} MB of float32 "
          f"gradients) in {len(sizes)} buckets; {size} process(es), batch {args.batch} x "
          f"{args.context} tokens per rank, {torch.get_num_threads()} thread(s) per rank")
    print(f"{'mode':10} {'step ms':>9} {'local ms':>9} {'comm ms':>9} {'comm/step':>10} "
          f"{'averaging ms':>13} {'overlap':>8}")
    rows = {}
    for m in calls:
        step, local, comm = (median[(m, k)] * 1e3 for k in ("step", "local", "comm"))
        # What averaging adds to the step, and the share of the communication hidden.
        added = step - local
        overlap = min(1.0, max(0.0, 1 - added / comm)) if comm > 0 else 0.0
        rows[m] = dict(step_ms=step, local_ms=local, comm_ms=comm, comm_share=comm / step,
                       averaging_ms=added, overlap=overlap)
        print(f"{m:10} {step:9.2f} {local:9.2f} {comm:9.3f} {comm / step:10.1%} "
              f"{added:13.2f} {overlap:8.0%}")
    if windows:
        print("compiled: each all-reduce is in flight during " + ", ".join(
            f"{w:.0%}" for w in windows) + " of the step's kernel work")
    print(json.dumps(dict(processes=size, threads=torch.get_num_threads(), params=params,
                          buckets=len(sizes), batch=args.batch, context=args.context,
                          rows=rows, windows=windows)))


if __name__ == "__main__":
    main()
