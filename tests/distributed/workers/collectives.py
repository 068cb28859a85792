"""Run under ``mpiexec -n N`` (or alone, a world of 1): every collective and point-to-point
call of graphc.distributed, checked against numpy on every rank.  Every rank can compute
every rank's inputs (they are seeded by rank), so each knows the exact expected result.
Prints ``rank R ok N checks`` at the end; any failure raises (and aborts the job)."""
import itertools
import os
import warnings

import numpy as np

import graphc as torch
import graphc.distributed as dist

# As PyTorch's launchers would, state each rank's numbers (from MPICH's mpiexec, which also
# sets PMI_RANK and PMI_SIZE): init_process_group checks that they all agree with MPI.
if "PMI_RANK" in os.environ:
    os.environ.update(RANK=os.environ["PMI_RANK"], WORLD_SIZE=os.environ["PMI_SIZE"],
                      LOCAL_RANK=os.environ.get("MPI_LOCALRANKID", os.environ["PMI_RANK"]))
dist.init_process_group("mpi")
RANK, SIZE = dist.get_rank(), dist.get_world_size()
checks = 0

DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
          "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool,
          "float16": torch.float16, "bfloat16": torch.bfloat16}
REDUCE = {dist.ReduceOp.SUM: np.add, dist.ReduceOp.PRODUCT: np.multiply,
          dist.ReduceOp.MIN: np.minimum, dist.ReduceOp.MAX: np.maximum}
BITWISE = {dist.ReduceOp.BAND: np.bitwise_and, dist.ReduceOp.BOR: np.bitwise_or,
           dist.ReduceOp.BXOR: np.bitwise_xor}
# Layouts of a 4x6 base tensor: the whole, views (transposed, strided, a column), empty, 0-d.
LAYOUTS = {"contiguous": lambda b: b, "transposed": lambda b: b.t() if b.dim() == 2 else b.T,
           "strided": lambda b: b[1:, ::2], "column": lambda b: b[:, 2],
           "empty": lambda b: b[:0], "scalar": lambda b: b[1, 1]}


def data(rank, name, shape=(4, 6), salt=0):
    """Rank ``rank``'s input: small values, so products and half precision stay exact."""
    rng = np.random.default_rng(1000 * rank + 17 * salt + 1)
    if name == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if name == "uint8":
        return rng.integers(0, 4, shape).astype(np.uint8)
    values = rng.integers(-3, 4, shape)
    if name in ("float32", "float64", "float16", "bfloat16"):
        values = values / 2
    return values.astype(np.float32 if name in ("float16", "bfloat16") else name)


def tensor(array, name):
    return torch.tensor(array, dtype=DTYPES[name])


def as_np(t):
    return np.asarray(t.float() if t.dtype in (torch.float16, torch.bfloat16) else t)


def expect(got, want, what):
    global checks
    got, want = as_np(got), np.asarray(want)
    assert got.shape == want.shape, f"rank {RANK} {what}: shape {got.shape} != {want.shape}"
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, err_msg=f"rank {RANK} {what}")
    else:
        assert np.array_equal(got, want.astype(got.dtype)), f"rank {RANK} {what}: {got} != {want}"
    checks += 1


def rounded(want, name):
    """Half precision is reduced in float32 and rounded once to the tensor's dtype."""
    if name in ("float16", "bfloat16"):
        return np.asarray(want, np.float32).astype(DTYPES[name].np).astype(np.float32)
    return want


def np_layout(a, layout):
    return {"contiguous": a, "transposed": a.T, "strided": a[1:, ::2], "column": a[:, 2],
            "empty": a[:0], "scalar": a[1, 1]}[layout]


def finish(work, async_op, *outputs):
    if async_op:
        assert work.wait()
        assert work.is_completed()
        assert all(a is b for a, b in zip(work.result(), outputs, strict=True))
    else:
        assert work is None


def outside_unchanged(base, name, layout, salt=0):
    """The base's elements outside the view kept their values."""
    view_mask = np.zeros((4, 6), bool)
    if layout == "scalar":
        view_mask[1, 1] = True
    else:
        np_layout(view_mask, layout)[...] = True
    expect(as_np(base)[~view_mask], data(RANK, name, salt=salt)[~view_mask], f"outside {layout}")


# ---- all_reduce ------------------------------------------------------------------------------
for name, layout, async_op in itertools.product(DTYPES, LAYOUTS, (False, True)):
    integer = name in ("int64", "int32", "uint8")
    ops = list(REDUCE) + (list(BITWISE) if integer else [] if name == "bool"
                          else [dist.ReduceOp.AVG])
    for op in ops:
        base = tensor(data(RANK, name), name)
        view = LAYOUTS[layout](base)
        inputs = [np_layout(data(r, name), layout) for r in range(SIZE)]
        if op is dist.ReduceOp.AVG:
            want = np.add.reduce(np.stack(inputs).astype(np.float64), 0) / SIZE
        elif name == "bool":
            want = (np.logical_or if op in (dist.ReduceOp.SUM, dist.ReduceOp.MAX)
                    else np.logical_and).reduce(np.stack(inputs), 0)
        else:
            want = {**REDUCE, **BITWISE}[op].reduce(np.stack(inputs), 0)
        want = rounded(want, name)
        finish(dist.all_reduce(view, op=op, async_op=async_op), async_op, view)
        expect(view, want, f"all_reduce {name} {layout} {op.name} async={async_op}")
        outside_unchanged(base, name, layout)

# Several async collectives outstanding at once (as DDP's buckets), finished in reverse
# order, one of them by polling is_completed().
pending = [(tensor(data(RANK, "float32", salt=i), "float32"), i) for i in range(4)]
works = [dist.all_reduce(t, async_op=True) for t, _ in pending]
while not works[-1].is_completed():
    pass
for w in reversed(works):
    w.wait()
for t, i in pending:
    expect(t, np.add.reduce([data(r, "float32", salt=i) for r in range(SIZE)]), f"outstanding {i}")

# ---- broadcast -------------------------------------------------------------------------------
for name, layout, async_op, src in itertools.product(DTYPES, LAYOUTS, (False, True), range(SIZE)):
    base = tensor(data(RANK, name), name)
    view = LAYOUTS[layout](base)
    finish(dist.broadcast(view, src=src, async_op=async_op), async_op, view)
    expect(view, np_layout(data(src, name), layout), f"broadcast {name} {layout} src={src}")
    outside_unchanged(base, name, layout)

# ---- all_gather, all_gather_into_tensor ------------------------------------------------------
for name, layout, async_op in itertools.product(DTYPES, LAYOUTS, (False, True)):
    mine = LAYOUTS[layout](tensor(data(RANK, name), name))
    outs_base = [tensor(data(RANK, name, salt=9), name) for _ in range(SIZE)]
    outs = [LAYOUTS[layout](b) for b in outs_base]          # outputs that are views too
    work = dist.all_gather(outs, mine, async_op=async_op)
    finish(work, async_op, *outs)
    for r in range(SIZE):
        expect(outs[r], np_layout(data(r, name), layout), f"all_gather {name} {layout} from {r}")
        outside_unchanged(outs_base[r], name, layout, salt=9)
    flat = tensor(np.zeros((SIZE,) + tuple(mine.shape), data(0, name).dtype), name)
    finish(dist.all_gather_into_tensor(flat, mine, async_op=async_op), async_op, flat)
    expect(flat, np.stack([np_layout(data(r, name), layout) for r in range(SIZE)]),
           f"all_gather_into_tensor {name} {layout}")

# ---- reduce_scatter, reduce_scatter_tensor -----------------------------------------------------
for name, async_op in itertools.product(("float32", "float64", "int64", "float16"), (False, True)):
    for op in (dist.ReduceOp.SUM, dist.ReduceOp.MAX, dist.ReduceOp.MIN):
        whole = [data(r, name, shape=(SIZE, 4, 6)) for r in range(SIZE)]
        ins = [LAYOUTS["transposed"](tensor(whole[RANK][i], name)) for i in range(SIZE)]
        out_base = tensor(data(RANK, name, salt=5), name)
        out = LAYOUTS["transposed"](out_base)                   # a view as the output
        finish(dist.reduce_scatter(out, ins, op=op, async_op=async_op), async_op, out)
        want = REDUCE[op].reduce(np.stack([w[RANK].T for w in whole]), 0)
        expect(out, want, f"reduce_scatter {name} {op.name}")
        out2 = tensor(np.zeros((4, 6), whole[0].dtype), name)
        finish(dist.reduce_scatter_tensor(out2, tensor(whole[RANK].reshape(SIZE * 4, 6), name),
                                          op=op, async_op=async_op), async_op, out2)
        expect(out2, REDUCE[op].reduce(np.stack([w[RANK] for w in whole]), 0),
               f"reduce_scatter_tensor {name} {op.name}")
    if name != "int64":
        out = tensor(np.zeros((2, 3), np.float32), name)
        dist.reduce_scatter_tensor(out, tensor(data(RANK, name, shape=(SIZE * 2, 3)), name),
                                   op=dist.ReduceOp.AVG)
        want = np.add.reduce(np.stack([data(r, name, shape=(SIZE * 2, 3))[2 * RANK:2 * RANK + 2]
                                       for r in range(SIZE)]), 0) / SIZE
        expect(out, rounded(want, name), f"reduce_scatter_tensor {name} AVG")

# ---- send / recv -------------------------------------------------------------------------------
if SIZE > 1:
    nxt, prev = (RANK + 1) % SIZE, (RANK - 1) % SIZE
    for name, layout in itertools.product(DTYPES, LAYOUTS):
        mine = LAYOUTS[layout](tensor(data(RANK, name), name))
        box_base = tensor(data(RANK, name, salt=3), name)
        box = LAYOUTS[layout](box_base)
        if RANK % 2 == 0:
            dist.send(mine, dst=nxt, tag=7)
            assert dist.recv(box, src=prev, tag=7) == prev
        else:
            assert dist.recv(box, src=prev, tag=7) == prev
            dist.send(mine, dst=nxt, tag=7)
        expect(box, np_layout(data(prev, name), layout), f"send/recv {name} {layout}")
        outside_unchanged(box_base, name, layout, salt=3)
    # isend/irecv both ways at once, with two tags; then a receive from any rank.
    a, b = tensor(data(RANK, "float64"), "float64"), tensor(data(RANK, "int64"), "int64")
    ra, rb = torch.zeros(4, 6, dtype=torch.float64), torch.zeros(4, 6, dtype=torch.int64)
    works = [dist.irecv(ra, src=prev, tag=1), dist.irecv(rb, src=nxt, tag=2),
             dist.isend(a, dst=nxt, tag=1), dist.isend(b, dst=prev, tag=2)]
    for w in works:
        w.wait()
    expect(ra, data(prev, "float64"), "irecv from prev")
    expect(rb, data(nxt, "int64"), "irecv from next")
    if RANK == 0:
        got = set()
        for _ in range(SIZE - 1):
            box = torch.zeros(3, dtype=torch.int64)
            sender = dist.recv(box, tag=4)
            expect(box, [sender] * 3, "recv from any rank")
            got.add(sender)
        assert got == set(range(1, SIZE)), got
    else:
        dist.send(torch.full((3,), RANK, dtype=torch.int64), dst=0, tag=4)
    # A receive into the wrong shape is refused, naming the sender, and the program goes on.
    if RANK == 0:
        try:
            dist.recv(torch.zeros(3), src=1, tag=5)
            raise AssertionError("no error")
        except RuntimeError as e:
            assert "rank 1 sent f32[3, 4], but this rank receives into f32[3]" in str(e), e
            checks += 1
    elif RANK == 1:
        dist.send(torch.zeros(3, 4), dst=0, tag=5)

# ---- agreement: a mismatch is an error on every rank, naming both sides --------------------------
shape = (3,) if RANK == 0 else (3, 4)
try:
    dist.all_reduce(torch.zeros(shape))
    assert SIZE == 1, "no mismatch detected"
except RuntimeError as e:
    assert "rank 1 is running all_reduce(f32[3, 4], op=SUM), but rank 0 is running " \
           "all_reduce(f32[3], op=SUM)" in str(e), e
    checks += 1
try:
    dist.all_gather([torch.zeros(2)] * SIZE if RANK == 0 else
                    [torch.zeros(2, dtype=torch.float64)] * SIZE,
                    torch.zeros(2) if RANK == 0 else torch.zeros(2, dtype=torch.float64))
    assert SIZE == 1, "no mismatch detected"
except RuntimeError as e:
    assert "rank 1 is running all_gather(f64[2]), but rank 0 is running all_gather(f32[2])" \
        in str(e), e
    checks += 1
try:
    if RANK == SIZE - 1:
        dist.broadcast(torch.zeros(2), src=0)
    else:
        dist.all_reduce(torch.zeros(2))
    assert SIZE == 1, "no mismatch detected"
except RuntimeError as e:
    assert f"rank {SIZE - 1} is running broadcast(f32[2], src=0)" in str(e), e
    checks += 1

# ---- argument errors: raised on the calling rank, before any communication ------------------
def refused(exc, text, call):
    global checks
    try:
        call()
    except exc as e:
        assert text in str(e), (text, str(e))
        checks += 1
    else:
        raise AssertionError(f"no {exc.__name__}: {text}")


refused(ValueError, "destination rank should not be the same as the rank of the current "
        "process.", lambda: dist.send(torch.ones(2), dst=RANK))
refused(RuntimeError, f"invalid root rank: {SIZE}", lambda: dist.broadcast(torch.ones(2), SIZE))
refused(RuntimeError, f"tensor_list has {SIZE + 1} tensors but the world has {SIZE} ranks",
        lambda: dist.all_gather([torch.ones(2)] * (SIZE + 1), torch.ones(2)))
refused(RuntimeError, "output tensor size must be equal to world_size times input tensor size",
        lambda: dist.all_gather_into_tensor(torch.ones(SIZE + 1), torch.ones(1)))
refused(RuntimeError, "ReduceOp.AVG needs a floating point tensor, got int64",
        lambda: dist.all_reduce(torch.ones(2, dtype=torch.int64), op=dist.ReduceOp.AVG))
refused(RuntimeError, "ReduceOp.BAND needs an integer or bool tensor, got float32",
        lambda: dist.all_reduce(torch.ones(2), op=dist.ReduceOp.BAND))
refused(RuntimeError, "more than one element of the written-to tensor refers to a single "
        "memory location", lambda: dist.all_reduce(torch.ones(1).expand(3)))
refused(TypeError, "op must be a ReduceOp", lambda: dist.all_reduce(torch.ones(2), op="sum"))
assert dist.get_backend() == "mpi"

# ---- under graphc.compile: all_reduce is an op (compiled.py); the others are a graph break
# before any communication, then the eager run ------------------------------------------------
def step(x):
    parts = [torch.zeros(3) for _ in range(SIZE)]
    dist.all_gather(parts, x * 2)
    return torch.stack(parts) + 1


with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = torch.compile(step)(torch.full((3,), float(RANK)))
expect(out, [[2.0 * r + 1] * 3 for r in range(SIZE)], "all_gather in a compiled function")
assert any("graphc cannot trace torch.distributed.all_gather" in str(w.message)
           for w in caught), [str(w.message) for w in caught]

# ---- barrier, async too; the group's state ---------------------------------------------------
dist.barrier()
w = dist.barrier(async_op=True)
w.wait()
assert w.is_completed() and dist.is_initialized()
dist.destroy_process_group()
assert not dist.is_initialized()
# MPI stays up after destroy_process_group, so the group can be formed again.
dist.init_process_group("gloo")
again = torch.ones(2, dtype=torch.int64)
dist.all_reduce(again)
expect(again, [SIZE, SIZE], "all_reduce after a new init_process_group")
dist.destroy_process_group()
print(f"rank {RANK} ok {checks} checks", flush=True)
