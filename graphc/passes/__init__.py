"""Graph passes: each a named ``Graph -> Graph`` function; the pipeline is a plain list,
so printing or dumping after every pass is one loop."""
from __future__ import annotations

from graphc.ir import Graph, verify
from graphc.passes.cse import eliminate_common_subexpressions
from graphc.passes.dce import eliminate_dead_code

PIPELINE = [eliminate_dead_code, eliminate_common_subexpressions, eliminate_dead_code]


def run_pipeline(graph: Graph, passes=None, dump=None, check=False) -> Graph:
    """Run ``passes`` (default: PIPELINE) in order.  ``dump(stage, graph)`` is called
    after each; ``check=True`` verifies after each so a broken pass is named."""
    for i, p in enumerate(PIPELINE if passes is None else passes):
        graph = p(graph)
        if check:
            verify(graph)
        if dump is not None:
            dump(f"pass{i + 1}.{p.__name__}", graph)
    return graph
