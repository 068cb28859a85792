"""Common-subexpression elimination: two ops with the same name, inputs and attributes
compute the same value (ops are pure), so later ones reuse the first."""
from __future__ import annotations

from graphc.ir import Graph, Op


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    seen: dict = {}
    replace: dict = {}
    ops = []
    for op in graph.ops:
        inputs = tuple(replace.get(v, v) for v in op.inputs)
        if inputs != op.inputs:
            op = Op(op.name, inputs, op.attrs, op.out, op.source)
        key = op.key()
        if key in seen:
            replace[op.out] = seen[key]
            continue
        seen[key] = op.out
        ops.append(op)
    outputs = [replace.get(v, v) for v in graph.outputs]
    return Graph(graph.inputs, ops, outputs, graph.name)
