"""The collectives and point-to-point calls on graphc tensors, with PyTorch's signatures.

Each collective first has the ranks agree on what they are calling: one small allgather
of every rank's (call, op or src, dtype, shape) record.  MPI itself cannot tell a
mismatch (an allreduce of 3 floats on one rank and 12 on another is undefined behaviour:
a wrong result, a crash or a hang), so the check turns it into an error on every rank
naming both sides.  It costs one latency-bound round per call (docs/distributed.md has
the measurement) and also orders the collectives, so an async collective starts only
once every rank has reached it.  Point-to-point calls send a header record instead.

Results are written in place (``all_reduce``, ``broadcast``) or into the given outputs,
as PyTorch does, through ``buffers.Staged`` so views and half precision work.
"""
from __future__ import annotations

import numpy as np

from graphc import dtypes
from graphc.context import no_grad
from graphc.dispatch import bind
from graphc.distributed import buffers, process_group
from graphc.distributed.buffers import Staged, describe
from graphc.distributed.ops import ReduceOp, as_reduce_op, mpi_op, reduction
from graphc.distributed.work import Work
from graphc.ops.collective import ALL_REDUCE, BROADCAST
from graphc.tensor import Tensor

_CALLS = ("barrier", "all_reduce", "broadcast", "all_gather", "all_gather_into_tensor",
          "reduce_scatter", "reduce_scatter_tensor", "send")


def _finish(work: Work, async_op: bool):
    """PyTorch's convention: the handle with async_op=True, else wait and return None."""
    if async_op:
        return work
    work.wait()
    return None


def _agreement(g, call: str, arg: int, tensor=None):
    """The allgather of call records, and the check to run on its result."""
    if tensor is not None:
        buffers.host_array(tensor, call)        # a graph break before any communication
    mine = buffers.record(_CALLS.index(call), arg, tensor)
    every = np.empty((g.size, buffers.RECORD), np.int64)
    request = g.comm.Iallgather(mine, every)

    def check():
        for r in range(1, g.size):
            if not np.array_equal(every[r], every[0]):
                raise RuntimeError(f"Detected mismatch between collectives on ranks: rank {r} "
                                   f"is running {_name(every[r])}, but rank 0 is running "
                                   f"{_name(every[0])}")
    return request, check


def _agree(g, call: str, arg: int, tensor) -> None:
    request, check = _agreement(g, call, arg, tensor)
    Work(g, _name(buffers.record(_CALLS.index(call), arg, tensor)), [request], check).wait()


def _name(record) -> str:
    call, arg, dtype, shape = buffers.unrecord(record)
    name = _CALLS[call]
    if name == "barrier":
        return "barrier()"
    extra = {"broadcast": f", src={arg}"}.get(name, "")
    if name in ("all_reduce", "reduce_scatter", "reduce_scatter_tensor"):
        extra = f", op={ReduceOp(arg).name}"
    return f"{name}({describe(dtype, shape)}{extra})"


def _check_op(op: ReduceOp, dtype, what: str) -> None:
    if op is ReduceOp.AVG and not dtype.is_floating_point:
        raise RuntimeError(f"{what}: ReduceOp.AVG needs a floating point tensor, got "
                           f"{dtype.name}")
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and dtype.is_floating_point:
        raise RuntimeError(f"{what}: ReduceOp.{op.name} needs an integer or bool tensor, "
                           f"got {dtype.name}")


def _reduced(g, op: ReduceOp, staged: Staged):
    """After the reduction: AVG divides the sum, then the values go into the tensor."""
    def then():
        if op is ReduceOp.AVG:
            staged.buf /= g.size
        staged.write_back()
    return then


# ---- collectives ----------------------------------------------------------------------------
def barrier(group=None, async_op=False, device_ids=None, timeout=None):
    """Every rank waits until all have called it (the agreement allgather is the barrier)."""
    g = process_group.checked(group)
    request, check = _agreement(g, "barrier", 0)
    work = Work(g, "barrier", [request], check)
    if async_op:
        return work
    work.wait(timeout)
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    g = process_group.checked(group)
    op = as_reduce_op(op)
    _check_op(op, tensor.dtype, "all_reduce")
    if buffers.traced(tensor):
        return _finish(_traced(g, tensor, ALL_REDUCE, "all_reduce",
                               g.size if op is ReduceOp.AVG else 1, op=reduction(op)), async_op)
    buffers.check_writable(tensor, "all_reduce")
    _agree(g, "all_reduce", int(op), tensor)
    s = Staged(g.MPI, tensor, "all_reduce", reducing=True)
    request = g.comm.Iallreduce(g.MPI.IN_PLACE, s.spec,
                                op=mpi_op(g.MPI, op, tensor.dtype))
    return _finish(Work(g, f"all_reduce({describe(tensor.dtype, tensor.shape)})", [request],
                        _reduced(g, op, s), result=[tensor]), async_op)


def _traced(g, tensor, prim, call: str, divide_by: int = 1, **attrs) -> Work:
    """Under ``graphc.compile``: the IR's op ``prim`` (``all_reduce``, ``broadcast``),
    written into ``tensor`` as an in-place op (not differentiated, as PyTorch's
    collectives are not).  Half precision travels as float32 (exact both ways) and is
    reduced there and rounded once, as eagerly; ``divide_by``: AVG's world size.  The
    handle is complete: the compiled program waits where the result is read."""
    result = bind(prim, tensor.float() if tensor.dtype in dtypes.HALF else tensor, **attrs)
    if divide_by != 1:
        result = result / divide_by
    with no_grad():
        tensor.copy_(result)
    return Work(g, f"{call}({describe(tensor.dtype, tensor.shape)})", [], result=[tensor])


def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    g = process_group.checked(group)
    src = _rank_arg(g, src if src is not None else group_src, "root")
    if buffers.traced(tensor):
        return _finish(_traced(g, tensor, BROADCAST, "broadcast", src=src), async_op)
    if g.rank != src:
        buffers.check_writable(tensor, "broadcast")
    _agree(g, "broadcast", src, tensor)
    s = Staged(g.MPI, tensor, "broadcast")
    request = g.comm.Ibcast(s.spec, root=src)
    then = None if g.rank == src else s.write_back
    return _finish(Work(g, f"broadcast({describe(tensor.dtype, tensor.shape)}, src={src})",
                        [request], then, result=[tensor]), async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    g = process_group.checked(group)
    if len(tensor_list) != g.size:
        raise RuntimeError(f"all_gather: tensor_list has {len(tensor_list)} tensors but the "
                           f"world has {g.size} ranks")
    for out in tensor_list:
        _same_as(out, tensor, "all_gather")
        buffers.check_writable(out, "all_gather")
    _agree(g, "all_gather", 0, tensor)
    s = Staged(g.MPI, tensor, "all_gather")
    gathered = Staged(g.MPI, _empty((g.size,) + tuple(tensor.shape), tensor.dtype),
                      "all_gather")
    request = g.comm.Iallgather(s.spec, gathered.spec)

    def then():
        for i, out in enumerate(tensor_list):
            buffers.store(out, gathered.buf[i])
    return _finish(Work(g, f"all_gather({describe(tensor.dtype, tensor.shape)})", [request],
                        then, result=tensor_list), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    g = process_group.checked(group)
    if output_tensor.dtype != input_tensor.dtype or \
            output_tensor.numel() != g.size * input_tensor.numel():
        raise RuntimeError(f"all_gather_into_tensor: output tensor size must be equal to "
                           f"world_size times input tensor size, of the same dtype: output "
                           f"{describe(output_tensor.dtype, output_tensor.shape)}, input "
                           f"{describe(input_tensor.dtype, input_tensor.shape)}, world_size "
                           f"{g.size}")
    buffers.check_writable(output_tensor, "all_gather_into_tensor")
    _agree(g, "all_gather_into_tensor", 0, input_tensor)
    s = Staged(g.MPI, input_tensor, "all_gather_into_tensor")
    out = Staged(g.MPI, output_tensor, "all_gather_into_tensor")
    request = g.comm.Iallgather(s.spec, out.spec)
    return _finish(Work(g, f"all_gather_into_tensor("
                           f"{describe(input_tensor.dtype, input_tensor.shape)})",
                        [request], out.write_back, result=[output_tensor]), async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    g = process_group.checked(group)
    op = as_reduce_op(op)
    _check_op(op, output.dtype, "reduce_scatter")
    if len(input_list) != g.size:
        raise RuntimeError(f"reduce_scatter: input_list has {len(input_list)} tensors but the "
                           f"world has {g.size} ranks")
    for t in input_list:
        _same_as(t, output, "reduce_scatter")
    buffers.check_writable(output, "reduce_scatter")
    _agree(g, "reduce_scatter", int(op), output)
    stacked = Tensor._wrap(np.stack([buffers.host_array(t, "reduce_scatter")
                                     for t in input_list]), output.dtype)
    return _reduce_scatter(g, op, stacked, output, "reduce_scatter", async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    g = process_group.checked(group)
    op = as_reduce_op(op)
    _check_op(op, output.dtype, "reduce_scatter_tensor")
    if output.dtype != input.dtype or input.numel() != g.size * output.numel():
        raise RuntimeError(f"reduce_scatter_tensor: input tensor size must be equal to "
                           f"world_size times output tensor size, of the same dtype: input "
                           f"{describe(input.dtype, input.shape)}, output "
                           f"{describe(output.dtype, output.shape)}, world_size {g.size}")
    buffers.check_writable(output, "reduce_scatter_tensor")
    _agree(g, "reduce_scatter_tensor", int(op), input)
    return _reduce_scatter(g, op, input, output, "reduce_scatter_tensor", async_op)


def _reduce_scatter(g, op, whole, output, what, async_op):
    s = Staged(g.MPI, whole, what, reducing=True)
    out = Staged(g.MPI, output, what, reducing=True)
    request = g.comm.Ireduce_scatter_block(s.spec, out.spec,
                                           op=mpi_op(g.MPI, op, output.dtype))
    return _finish(Work(g, f"{what}({describe(output.dtype, output.shape)})", [request],
                        _reduced(g, op, out), result=[output]), async_op)


# ---- point to point ---------------------------------------------------------------------------
def isend(tensor, dst=None, group=None, tag=0, group_dst=None) -> Work:
    """Send a header record (dtype, shape, this rank), then the data, on the same tag: MPI
    delivers messages of one sender and tag in order, so the receiver reads the header,
    checks it against its tensor, then receives the data from that sender."""
    g = process_group.checked(group)
    dst = _peer(g, dst if dst is not None else group_dst, "destination")
    header = buffers.record(_CALLS.index("send"), g.rank, tensor)
    s = Staged(g.MPI, tensor, "send")
    requests = [g.comm.Isend(header, dest=dst, tag=tag), g.comm.Isend(s.spec, dest=dst, tag=tag)]
    return Work(g, f"send({describe(tensor.dtype, tensor.shape)}) to rank {dst}, tag {tag}",
                requests, peers={dst})     # the requests keep their buffers alive


def send(tensor, dst=None, group=None, tag=0, group_dst=None) -> None:
    isend(tensor, dst, group, tag, group_dst).wait()


def irecv(tensor, src=None, group=None, tag=0, group_src=None) -> Work:
    """Receive into ``tensor`` from ``src`` (None: any rank); the work's ``result()`` is
    the tensor, and ``recv`` returns the sender's rank."""
    g = process_group.checked(group)
    src = src if src is not None else group_src
    source = g.MPI.ANY_SOURCE if src is None else _peer(g, src, "source")
    buffers.check_writable(tensor, "recv")
    header = np.empty(buffers.RECORD, np.int64)
    what = f"recv({describe(tensor.dtype, tensor.shape)}) from " \
           f"{'any rank' if src is None else f'rank {src}'}, tag {tag}"
    work = Work(g, what, [g.comm.Irecv(header, source=source, tag=tag)],
                peers=None if src is None else {src}, result=[tensor])

    def read_header():
        _, sender, dtype, shape = buffers.unrecord(header)
        if dtype != tensor.dtype or tuple(shape) != tuple(tensor.shape):
            # Take the announced data off the line first, so it cannot be mistaken for a
            # later message if the program handles the error and goes on.
            scratch = Staged(g.MPI, _empty(shape, dtype), "recv")
            Work(g, what, [g.comm.Irecv(scratch.spec, source=sender, tag=tag)]).wait()
            raise RuntimeError(f"recv on rank {g.rank}, tag {tag}: rank {sender} sent "
                               f"{describe(dtype, shape)}, but this rank receives into "
                               f"{describe(tensor.dtype, tensor.shape)}")
        work.source = sender
        s = Staged(g.MPI, tensor, "recv")
        return [g.comm.Irecv(s.spec, source=sender, tag=tag)], s.write_back
    work._then = read_header
    return work


def recv(tensor, src=None, group=None, tag=0, group_src=None) -> int:
    work = irecv(tensor, src, group, tag, group_src)
    work.wait()
    return work.source


# ---- argument checks --------------------------------------------------------------------------
def _rank_arg(g, rank, what: str) -> int:
    if rank is None or not 0 <= int(rank) < g.size:
        raise RuntimeError(f"invalid {what} rank: {rank} (the world has ranks 0 to "
                           f"{g.size - 1})")
    return int(rank)


def _peer(g, rank, what: str) -> int:
    rank = _rank_arg(g, rank, what)
    if rank == g.rank:
        raise ValueError(f"Invalid {what} rank: {what} rank should not be the same as the "
                         f"rank of the current process.")
    return rank


def _same_as(t, like, what: str) -> None:
    buffers.host_array(t, what)
    if t.dtype != like.dtype or tuple(t.shape) != tuple(like.shape):
        raise RuntimeError(f"{what}: every tensor of the list must match "
                           f"{describe(like.dtype, like.shape)}, got "
                           f"{describe(t.dtype, t.shape)}")


def _empty(shape, dtype) -> Tensor:
    return Tensor._wrap(np.empty(shape, dtype.np), dtype)
