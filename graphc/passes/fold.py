"""Constant folding: an op whose inputs are all constants is computed at compile time
with its primitive's numpy ``impl`` -- the interpreter's own code, so the folded value
is bit for bit what the program would have computed -- and becomes a ``constant``.

Some such ops stay ops:

- random ops (``uniform``): a draw is as cheap to compute as to load, and its result is
  as large as its shape while its input is one seed;
- collectives (``all_reduce``): running one at compile time would communicate;
- ops whose result is much larger than their inputs (a scalar expanded to a big shape):
  the IR stays small and a backend can fuse the broadcast instead of loading a buffer;
- ops whose ``impl`` raises (an out-of-bounds ``take``): the error then happens when the
  program runs, naming the op and the user's line, as it would without folding.
"""
from __future__ import annotations

import numpy as np

from graphc.ir import Constant, Graph, Op
from graphc.ops import REGISTRY

# A folded constant may have as many elements as its constant inputs together, or this
# many, whichever is more.
SMALL_CONSTANT = 16


def fold_op(op: Op, producers) -> Op | None:
    """The ``constant`` op that defines ``op.out`` when ``op`` can be folded, else None.
    ``producers`` maps each value defined so far to its op."""
    prim = REGISTRY.get(op.name)
    if prim is None or prim.kind in ("random", "collective"):
        return None
    defs = [producers.get(v) for v in op.inputs]
    if not all(d is not None and d.name == "constant" for d in defs):
        return None
    if op.out.size > max(sum(v.size for v in op.inputs), SMALL_CONSTANT):
        return None
    arrays = [d.attr_dict["value"].array for d in defs]
    try:
        result = prim.impl(*arrays, **op.attr_dict)
    except (ArithmeticError, IndexError, ValueError):
        return None
    value = Constant(_canonical_nans(np.asarray(result, dtype=op.out.type.dtype.np)))
    return Op("constant", (), (("value", value),), op.out, op.source)


def _canonical_nans(array: np.ndarray) -> np.ndarray:
    """Every NaN as the positive quiet NaN the text form parses ``nan`` to, so folded
    constants survive a print/parse round trip (numpy's ``log(-1.0)`` sets the sign
    bit; neither graphc nor PyTorch gives a NaN's sign or payload any meaning)."""
    if array.dtype.kind != "f" or not np.isnan(array).any():
        return array
    return np.where(np.isnan(array), np.array(np.nan, array.dtype), array)


def fold_constants(graph: Graph) -> Graph:
    """Replace every foldable op, in order, by the constant it computes (so chains of
    foldable ops fold completely).  Values keep their names and types; the constants
    that fed folded ops are left for dead-code elimination."""
    producers: dict = {}
    ops = []
    for op in graph.ops:
        op = fold_op(op, producers) or op
        producers[op.out] = op
        ops.append(op)
    return Graph(graph.inputs, ops, graph.outputs, graph.name)
