"""Produce transposed matmul results in the layout their reader wants.

``permute(matmul(a, b))`` that swaps the last two dims is ``matmul(b^T, a^T)``: the same
numbers, computed straight into the transposed layout.  The operand transposes are free
(strided views the matmul kernel packs anyway), while reading a transposed result is a
strided pass over it.  This is what a linear layer's weight gradient looks like
(``(x^T g)^T``), and an optimizer then reads it once per parameter element.  Applied only
when the matmul has no other use, so no product is ever computed twice.
"""
from __future__ import annotations

from graphc.dtypes import TensorType
from graphc.ir import Graph, Namer, Op, Value


def _swap_last_two(rank: int) -> tuple:
    return tuple(range(rank - 2)) + (rank - 1, rank - 2)


def _transposed(v: Value, namer: Namer, source) -> Op:
    shape = v.shape[:-2] + (v.shape[-1], v.shape[-2])
    return Op("permute", (v,), (("perm", _swap_last_two(len(v.shape))),),
              Value(namer.fresh(), TensorType(shape, v.type.dtype)), source)


def matmul_in_reader_layout(graph: Graph) -> Graph:
    """Rewrite ``permute(matmul(a, b), swap last two) -> matmul(b^T, a^T)`` where the
    matmul's only use is that permute (the unused matmul is left for DCE)."""
    uses: dict = {}
    for op in graph.ops:
        for v in op.inputs:
            uses[v] = uses.get(v, 0) + 1
    for v in graph.outputs:
        uses[v] = uses.get(v, 0) + 1
    producers = graph.producers()
    namer = Namer()
    namer.taken.update(v.name for v in graph.inputs)
    namer.taken.update(op.out.name for op in graph.ops)
    ops = []
    for op in graph.ops:
        mm = producers.get(op.inputs[0]) if op.name == "permute" else None
        if (mm is not None and mm.name == "matmul" and uses[mm.out] == 1
                and op.attr_dict["perm"] == _swap_last_two(len(op.out.shape))):
            a, b = mm.inputs
            bt, at = _transposed(b, namer, op.source), _transposed(a, namer, op.source)
            ops += [bt, at, Op("matmul", (bt.out, at.out), (), op.out, op.source)]
            continue
        ops.append(op)
    return Graph(graph.inputs, ops, graph.outputs, graph.name)
