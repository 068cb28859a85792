"""Collectives as ops of the IR: ``all_reduce(x, op)`` is ``x`` reduced elementwise over
every rank of the process group (``op``: sum, product, min, max, band, bor, bxor), and
``broadcast(x, src)`` is rank ``src``'s ``x``, the same shape and dtype on every rank.

The op is pure as far as one program is concerned (its value is a function of what
every rank passes in), so the passes treat it like any other op, except that constant
folding never runs it: running it at compile time would communicate.  Every rank
compiles the same graph to the same program, so the collectives run in one order on
every rank, which MPI requires.

Who communicates is not known here: ``graphc.distributed`` attaches its world when a
process group is formed (``attach``), and the backends reach it through ``world()``: the
interpreter calls ``world().all_reduce(array, op)`` and ``world().broadcast(array, src)``,
the cpu backend calls the MPI library itself from the generated code with what ``world()`` tells it (the library's functions,
its handles and their sizes).  So ``graphc.ops`` stays below the front end.
"""
from __future__ import annotations

from graphc import dtypes
from graphc.dtypes import TensorType
from graphc.ops.primitive import Primitive, op_error, register

# Reductions, named as PyTorch's ReduceOp (less AVG: a sum the front end divides).
REDUCTIONS = ("sum", "product", "min", "max", "band", "bor", "bxor")
# The dtypes MPI reduces itself (half precision is reduced in float32 by the front end).
DTYPES = (dtypes.bool_, dtypes.uint8, dtypes.int8, dtypes.int16, dtypes.int32, dtypes.int64,
          dtypes.float32, dtypes.float64)
# The MPI operation of each reduction; MPI reduces its boolean type only logically, which is
# what the arithmetic gives on 0/1 clamped back to bool, as PyTorch's bool results.
MPI_OPS = ("SUM", "PROD", "MIN", "MAX", "BAND", "BOR", "BXOR", "LAND", "LOR", "LXOR")
_BOOL_OPS = {"sum": "LOR", "max": "LOR", "bor": "LOR", "product": "LAND", "min": "LAND",
             "band": "LAND", "bxor": "LXOR"}
_OPS = {"sum": "SUM", "product": "PROD", "min": "MIN", "max": "MAX", "band": "BAND",
        "bor": "BOR", "bxor": "BXOR"}

NOT_INITIALIZED = ("Default process group has not been initialized, please make sure to "
                   "call init_process_group.")


def mpi_op(op: str, dtype: dtypes.DType) -> str:
    """The name (in ``MPI_OPS``) of the MPI operation that runs reduction ``op`` on
    ``dtype``."""
    return _BOOL_OPS[op] if dtype == dtypes.bool_ else _OPS[op]


# ---- the world the collectives run in ---------------------------------------------------------
_world = None


def attach(world) -> None:
    """Make ``world`` the one collectives run in (None: no process group).  It has
    ``rank``, ``size``, ``all_reduce(array, op) -> array``, ``broadcast(array, src) ->
    array`` and what the cpu backend's generated code needs
    (``graphc.distributed.native.World``)."""
    global _world
    _world = world


def world():
    """The attached world; a program with collectives cannot run without one."""
    if _world is None:
        raise ValueError(NOT_INITIALIZED)
    return _world


# ---- all_reduce -----------------------------------------------------------------------------------
def _all_reduce_infer(x: TensorType, op: str) -> TensorType:
    if op not in REDUCTIONS:
        raise op_error("all_reduce", f"unknown reduction {op!r} (one of "
                                     f"{', '.join(REDUCTIONS)})", x)
    if x.dtype not in DTYPES:
        raise op_error("all_reduce", f"cannot reduce {x.dtype.name} across ranks (reduce it "
                                     f"in float32)", x)
    if op.startswith("b") and x.dtype.is_floating_point:
        raise op_error("all_reduce", f"ReduceOp.{op.upper()} needs an integer or bool "
                                     f"tensor", x)
    return x


def _all_reduce_impl(x, op):
    return world().all_reduce(x, op)


ALL_REDUCE = register(Primitive(
    "all_reduce", "collective", _all_reduce_infer, _all_reduce_impl, attrs=("op",),
    doc="x reduced elementwise over every rank of the process group"))


# ---- broadcast ------------------------------------------------------------------------------------
def _broadcast_infer(x: TensorType, src: int) -> TensorType:
    if isinstance(src, bool) or not isinstance(src, int) or src < 0:
        raise op_error("broadcast", f"src must be a rank, got {src!r}", x)
    if x.dtype not in DTYPES:
        raise op_error("broadcast", f"cannot send {x.dtype.name} (send it as float32)", x)
    return x


def _broadcast_impl(x, src):
    return world().broadcast(x, src)


BROADCAST = register(Primitive(
    "broadcast", "collective", _broadcast_infer, _broadcast_impl, attrs=("src",),
    doc="rank src's x, on every rank of the process group"))
