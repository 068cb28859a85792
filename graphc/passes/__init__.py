"""Graph passes: each a named ``Graph -> Graph`` function; the pipeline is a plain list,
so printing or dumping after every pass is one loop."""
from __future__ import annotations

from graphc.ir import Graph, verify
from graphc.passes.dce import eliminate_dead_code
from graphc.passes.fold import fold_constants
from graphc.passes.layout import matmul_in_reader_layout
from graphc.passes.simplify import simplify

# simplify folds and value-numbers as it rewrites (it subsumes CSE), so one sweep of it
# reaches a fixed point; the fold stage before it shows in dumps what folding alone did.
# The layout pass runs before simplify, which then cancels the transposes it creates.
PIPELINE = [eliminate_dead_code, fold_constants, matmul_in_reader_layout, simplify,
            eliminate_dead_code]


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
