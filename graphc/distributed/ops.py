"""``ReduceOp``: PyTorch's reduction names, and the MPI operation each one runs as.

The values are PyTorch's (``ReduceOp.SUM`` is 0), so programs that print or compare them
see the same thing.  ``AVG`` is not an MPI operation: it runs as ``SUM`` and the result is
divided by the world size afterwards, which is why it is only offered for floating dtypes.
"""
from __future__ import annotations

import enum

from graphc.ops import collective


class ReduceOp(enum.IntEnum):
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


def reduction(op: ReduceOp) -> str:
    """The name of the IR's reduction ``op`` runs as (``collective.REDUCTIONS``): AVG is a
    sum."""
    return "sum" if op is ReduceOp.AVG else op.name.lower()


def mpi_op(MPI, op: ReduceOp, dtype):
    """The MPI operation for ``op`` on ``dtype``: the compiler's table
    (``graphc.ops.collective.mpi_op``: logical operations on bool)."""
    return getattr(MPI, collective.mpi_op(reduction(op), dtype))


def as_reduce_op(op) -> ReduceOp:
    """Accept ``ReduceOp.SUM`` or its integer value; anything else is PyTorch's TypeError."""
    try:
        return ReduceOp(op)
    except (ValueError, TypeError):
        raise TypeError(f"all_reduce: op must be a ReduceOp (SUM, AVG, PRODUCT, MIN, MAX, "
                        f"BAND, BOR, BXOR), got {op!r}") from None
