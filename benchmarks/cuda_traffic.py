"""Host <-> device traffic of a compiled training step on the ``cuda`` backend.

    python benchmarks/cuda_traffic.py [--steps N] [--batch B]

Trains a 784-256-10 ReLU MLP with Adam (the whole step compiled: forward, loss, backward,
optimizer) two ways and prints the bytes each step moves host to device, device to host
and device to device:

- ``resident``: as graphc runs it; parameters and Adam's state stay on the device;
- ``shared``: every parameter and state tensor handed to numpy first (``.numpy()``), so
  none may stay on the device: each step uploads and downloads them all.

On a GPU (``graphc.cuda.is_available()``) the real PyCUDA driver is counted and the
median time per step of each way is printed too.  Elsewhere the stand-in driver of the
test suite (``tests/fake_cuda.py``: device memory is host memory, kernels run on the CPU
emulator) is counted, and times are left out: they would time the emulator.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack, contextmanager

import numpy as np

import graphc
from graphc import nn


class Counter:
    """Counts the bytes of every transfer by wrapping the driver's memcpy functions."""

    def __init__(self, drv, stack: ExitStack):
        self.moved = {"in": 0, "out": 0, "device": 0}
        for name, kind, size in (("memcpy_htod", "in", lambda d, s, *_: s.nbytes),
                                 ("memcpy_dtoh", "out", lambda d, s, *_: d.nbytes),
                                 ("memcpy_dtod", "device", lambda d, s, n, *_: n)):
            original = getattr(drv, name)

            def counted(*args, _original=original, _kind=kind, _size=size):
                self.moved[_kind] += _size(*args)
                return _original(*args)
            setattr(drv, name, counted)
            stack.callback(setattr, drv, name, original)

    def snapshot(self) -> dict:
        return dict(self.moved)


def driver(stack: ExitStack):
    """The PyCUDA driver module: the real one on a GPU, else the test suite's stand-in."""
    if graphc.cuda.is_available():
        import pycuda.driver as drv
        return drv, True
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tests"))
    import pytest
    import fake_cuda
    patch = stack.enter_context(pytest.MonkeyPatch.context())
    stack.enter_context(contextmanager(fake_cuda.installed)(patch))
    import pycuda.driver as drv           # the stand-in, now in sys.modules
    return drv, False


def training(batch: int, share_with_numpy: bool):
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = graphc.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    step = graphc.compile(step, backend="cuda")
    rng = np.random.default_rng(0)

    def batches():
        while True:
            yield (graphc.tensor(rng.standard_normal((batch, 784)).astype(np.float32)),
                   graphc.tensor(rng.integers(0, 10, batch)))
    data = batches()
    for _ in range(3):                   # Adam's first step runs eagerly, then compile
        step(*next(data))
    if share_with_numpy:
        for p in model.parameters():
            p.detach().numpy()
            for state in opt.state[p].values():
                if isinstance(state, graphc.Tensor):
                    state.numpy()
    return step, data


def measure(counter, batch, steps, share_with_numpy, on_gpu) -> dict:
    step, data = training(batch, share_with_numpy)
    before = counter.snapshot()
    times = []
    for _ in range(steps):
        x, y = next(data)
        start = time.perf_counter()
        loss = step(x, y)
        times.append(time.perf_counter() - start)
        loss.item()
    after = counter.snapshot()
    row = {k: (after[k] - before[k]) / steps for k in after}
    if on_gpu:
        row["ms"] = 1e3 * statistics.median(times)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        drv, on_gpu = driver(stack)
        counter = Counter(drv, stack)
        rows = {way: measure(counter, args.batch, args.steps, way == "shared", on_gpu)
                for way in ("resident", "shared")}
    where = "GPU" if on_gpu else "stand-in driver (no GPU: bytes only)"
    print(f"784-256-10 MLP, Adam, whole step compiled, batch {args.batch}, {where}; "
          f"bytes per step (mean of {args.steps})")
    print(f"{'way':10} {'host->dev':>12} {'dev->host':>12} {'dev->dev':>12}"
          + (f" {'ms/step':>9}" if on_gpu else ""))
    for way, row in rows.items():
        print(f"{way:10} {row['in']:12.0f} {row['out']:12.0f} {row['device']:12.0f}"
              + (f" {row['ms']:9.3f}" if on_gpu else ""))
    shared, resident = rows["shared"], rows["resident"]
    print(f"resident: {shared['in'] / max(resident['in'], 1):.1f}x fewer bytes in, "
          f"{resident['out']:.0f} bytes out instead of {shared['out']:.0f}"
          + (f"; {shared['ms'] / resident['ms']:.2f}x faster per step" if on_gpu else ""))


if __name__ == "__main__":
    main()
