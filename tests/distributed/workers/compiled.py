"""Run under ``mpiexec -n N``: ``all_reduce`` and ``broadcast`` inside ``graphc.compile``
(the IR's ops), on the cpu backend and the interpreter, against numpy on every rank.

Each rank's data is a known function of its rank, so every rank computes what the
reduction must give.  One compiled function reduces many tensors at once (every dtype and
reduction, views, empty and 0-d tensors, half precision, an async handle), so the
program has dozens of collectives in flight together.  Prints ``rank R ok N checks``."""
import numpy as np

import graphc as torch
import graphc.distributed as dist
from graphc.distributed import ReduceOp

dist.init_process_group("mpi")
RANK, SIZE = dist.get_rank(), dist.get_world_size()
checks = 0

FLOAT_OPS = (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX)
INT_OPS = (ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX, ReduceOp.BAND,
           ReduceOp.BOR, ReduceOp.BXOR)
NUMPY = {ReduceOp.SUM: lambda a: a.sum(0), ReduceOp.AVG: lambda a: a.mean(0),
         ReduceOp.PRODUCT: lambda a: a.prod(0), ReduceOp.MIN: lambda a: a.min(0),
         ReduceOp.MAX: lambda a: a.max(0), ReduceOp.BAND: np.bitwise_and.reduce,
         ReduceOp.BOR: np.bitwise_or.reduce, ReduceOp.BXOR: np.bitwise_xor.reduce}


def data(rank, shape, dtype):
    rng = np.random.default_rng(1000 + rank)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(1, 9, shape).astype(dtype)
    return (rng.random(shape) + 0.5).astype(dtype)


CASES = [(dtype, op, shape)
         for dtype, ops in ((np.float32, FLOAT_OPS), (np.float64, FLOAT_OPS),
                            (np.int64, INT_OPS), (np.int32, INT_OPS), (np.uint8, INT_OPS[3:]))
         for op in ops for shape in ((5, 3),)]
CASES += [(np.float32, ReduceOp.SUM, (0,)), (np.float64, ReduceOp.MAX, ()),
          (np.int64, ReduceOp.SUM, ()), (np.bool_, ReduceOp.SUM, (4,)),
          (np.bool_, ReduceOp.MIN, (4,)), (np.float16, ReduceOp.SUM, (6,))]


def reduce_all(*tensors):
    out = []
    for t, (_, op, _) in zip(tensors, CASES):
        y = t.clone()
        dist.all_reduce(y, op)
        out.append(y)
    return out


def want(dtype, op, shape):
    stacked = np.stack([data(r, shape, dtype) for r in range(SIZE)])
    if dtype == np.bool_:
        stacked = stacked.astype(np.int64)
        return NUMPY[op](stacked).astype(bool)
    if dtype == np.float16:
        return NUMPY[op](stacked.astype(np.float32)).astype(np.float16)
    return NUMPY[op](stacked).astype(dtype)


def check(got, expected, what):
    global checks
    got = np.asarray(got)
    assert got.dtype == expected.dtype and got.shape == expected.shape, (what, got, expected)
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=2e-3 if expected.dtype == np.float16
                                   else 1e-6, err_msg=f"rank {RANK} {what}")
    else:
        assert np.array_equal(got, expected), f"rank {RANK} {what}: {got} != {expected}"
    checks += 1


SENT = [(np.float32, (5, 3)), (np.float64, ()), (np.int64, (0,)), (np.bool_, (4,)),
        (np.uint8, (7,)), (np.float16, (6,))]


def broadcast_all(*tensors):
    out = []
    for i, t in enumerate(tensors):
        y = t.clone()
        dist.broadcast(y, (i + 1) % SIZE)             # every rank is a source once
        out.append(y)
    return out


def reduce_a_view(x):
    y = x.clone()
    dist.all_reduce(y[:, 1])                         # only the column changes
    return y


def reduce_async(x):
    z = x * 2
    work = dist.all_reduce(z, ReduceOp.MAX, async_op=True)
    w = x.sum()                                      # runs while z travels
    work.wait()
    return z, w


for backend in ("cpu", "interpreter"):
    compiled = torch.compile(reduce_all, backend=backend, fullgraph=True)
    inputs = [torch.tensor(data(RANK, shape, dtype)) for dtype, _, shape in CASES]
    for got, case in zip(compiled(*inputs), CASES):
        check(got, want(*case), f"{backend} all_reduce {case}")
    # the same function run eagerly gives the same values
    for got, case in zip(reduce_all(*inputs), CASES):
        check(got, want(*case), f"eager all_reduce {case}")

    sent = [torch.tensor(data(RANK, shape, dtype)) for dtype, shape in SENT]
    for i, (got, (dtype, shape)) in enumerate(zip(
            torch.compile(broadcast_all, backend=backend, fullgraph=True)(*sent), SENT)):
        check(got, data((i + 1) % SIZE, shape, dtype), f"{backend} broadcast {dtype} {shape}")

    x = torch.tensor(data(RANK, (4, 3), np.float32))
    every = np.stack([data(r, (4, 3), np.float32) for r in range(SIZE)])
    column = data(RANK, (4, 3), np.float32)
    column[:, 1] = every[:, :, 1].sum(0)
    # graphc traces no in-place write into a view: a graph break, and the function runs
    # eagerly, with the same values.
    check(torch.compile(reduce_a_view, backend=backend)(x), column,
          f"{backend} all_reduce of a view")
    z, w = torch.compile(reduce_async, backend=backend, fullgraph=True)(x)
    check(z, (every * 2).max(0), f"{backend} async all_reduce")
    check(w, np.float32(data(RANK, (4, 3), np.float32).sum()), f"{backend} the work done "
                                                                "while it travels")
    if backend == "cpu":     # profiled: the same values, the MPI calls timed as kernels
        profiled = torch.compile(reduce_async, backend=backend, fullgraph=True)
        with torch.profile() as profile:
            z, _ = profiled(x)
        check(z, (every * 2).max(0), "cpu async all_reduce, profiled")
        kinds = [row["kind"] for row in profile.stats(profiled.programs()[-1].forward)]
        assert {"collective", "wait", "loops"} <= set(kinds), kinds

    # Ranks whose programs reduce different sizes are stopped before any data moves.
    try:
        torch.compile(reduce_all, backend=backend)(*([torch.ones(3 + RANK)] + inputs[1:]))
        mismatch = None
    except RuntimeError as e:
        mismatch = str(e)
    if SIZE > 1:
        assert mismatch and "Detected mismatch between collectives on ranks: rank 1 is " \
            "running" in mismatch and "rank 0 is running" in mismatch, mismatch
        checks += 1

print(f"rank {RANK} ok {checks} checks", flush=True)
dist.destroy_process_group()
