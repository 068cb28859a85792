"""The shared front half of code-generating backends: fuse, lower to the loop IR, plan
memory, then hand the loop IR program to a renderer (``cpu``: LLVM)."""
from __future__ import annotations

from graphc.codegen.loops import format_program
from graphc.codegen.lower import lower
from graphc.ir import Graph
from graphc.codegen.memory import peak_bytes


def compile_graph_cpu(graph: Graph, fuse: bool = True, dump=None):
    from graphc.backends.cpu.runtime import compile_program
    program, fusion = lower(graph, fuse, name=graph.name)
    if dump is not None:
        dump("fusion", fusion.report() + f"\npeak intermediate bytes: {peak_bytes(program)}")
        dump("loops", format_program(program))
    native = compile_program(program, [v.shape for v in graph.outputs])
    if dump is not None:
        dump("ll", native.llvm_ir())
    return native
