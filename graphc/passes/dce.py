"""Dead-code elimination: drop ops whose value no output needs.  Every primitive is
pure (random ops are pure functions of their seed), so unused means removable."""
from __future__ import annotations

from graphc.ir import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    live = set(graph.outputs)
    kept = []
    for op in reversed(graph.ops):
        if op.out in live:
            kept.append(op)
            live.update(op.inputs)
    kept.reverse()
    return Graph(graph.inputs, kept, graph.outputs, graph.name)
