"""The reference backend: runs a graph op by op with the registry's numpy
implementations.  Every other backend is tested against it.

Values are freed after their last use, and an error names the failing op and the
user's source line that made it.
"""
from __future__ import annotations

import numpy as np

from graphc.ir import Graph
from graphc.ir.text import format_op
from graphc.ops import REGISTRY
from graphc.ops.primitive import run


class Program:
    """A graph prepared for repeated runs: ``program(arrays) -> list of arrays``."""

    def __init__(self, graph: Graph):
        self.graph = graph
        last_use = {}
        for i, op in enumerate(graph.ops):
            for v in op.inputs:
                last_use[v] = i
        keep = set(graph.outputs)
        # (op, primitive, input values, attrs, values to free after it)
        self.steps = []
        for i, op in enumerate(graph.ops):
            prim = None if op.name == "constant" else REGISTRY[op.name]
            dead = [v for v in dict.fromkeys(op.inputs) if last_use[v] == i and v not in keep]
            self.steps.append((op, prim, op.inputs, op.attr_dict, dead))
        # Outputs that may alias an input, a constant or another value (views) are
        # copied, so writing to a result (``f = lambda x: x.clone()``) never reaches them.
        self.fresh = {op.out for op in graph.ops
                      if op.name != "constant" and not REGISTRY[op.name].view}

    def __call__(self, arrays):
        graph = self.graph
        if len(arrays) != len(graph.inputs):
            raise TypeError(f"graph {graph.name} takes {len(graph.inputs)} inputs, got "
                            f"{len(arrays)}")
        env = dict(zip(graph.inputs, arrays))
        for op, prim, inputs, attrs, dead in self.steps:
            if prim is None:
                env[op.out] = attrs["value"].array
                continue
            try:
                result = run(prim, [env[v] for v in inputs], attrs, op.out.type)
            except Exception as e:
                raise type(e)(f"while running {format_op(op)}: {e}") if isinstance(
                    e, (IndexError, ValueError, TypeError)) else RuntimeError(
                    f"while running {format_op(op)}: {e}") from e
            env[op.out] = result
            for v in dead:
                del env[v]
        return [env[v] if v in self.fresh else np.array(env[v]) for v in graph.outputs]


def compile_graph(graph: Graph, fuse: bool = True, dump=None) -> Program:
    """The interpreter runs op by op: ``fuse`` has nothing to change, nothing to dump."""
    return Program(graph)
