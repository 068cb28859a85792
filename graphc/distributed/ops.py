"""``ReduceOp``: PyTorch's reduction names, and the MPI operation each one runs as.

The values are PyTorch's (``ReduceOp.SUM`` is 0), so programs that print or compare them
see the same thing.  ``AVG`` is not an MPI operation: it runs as ``SUM`` and the result is
divided by the world size afterwards, which is why it is only offered for floating dtypes.
"""
from __future__ import annotations

import enum


class ReduceOp(enum.IntEnum):
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


def mpi_op(MPI, op: ReduceOp, is_bool: bool):
    """The MPI operation for ``op``.  MPI defines only logical operations on its boolean
    type, so on bool tensors SUM and MAX are a logical or, PRODUCT and MIN a logical and
    (what the arithmetic gives on 0/1 clamped back to bool, as PyTorch's bool results)."""
    if is_bool:
        return {ReduceOp.SUM: MPI.LOR, ReduceOp.MAX: MPI.LOR, ReduceOp.BOR: MPI.LOR,
                ReduceOp.PRODUCT: MPI.LAND, ReduceOp.MIN: MPI.LAND, ReduceOp.BAND: MPI.LAND,
                ReduceOp.BXOR: MPI.LXOR}[op]
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
            ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}[op]


def as_reduce_op(op) -> ReduceOp:
    """Accept ``ReduceOp.SUM`` or its integer value; anything else is PyTorch's TypeError."""
    try:
        return ReduceOp(op)
    except (ValueError, TypeError):
        raise TypeError(f"all_reduce: op must be a ReduceOp (SUM, AVG, PRODUCT, MIN, MAX, "
                        f"BAND, BOR, BXOR), got {op!r}") from None
