"""The shared front half of code-generating backends: fuse, lower to the loop IR and plan
memory (``lower_graph``), then each backend renders the loop IR program and builds it
(``cpu``: LLVM, here; ``cuda``: CUDA C, ``graphc.targets.cuda``)."""
from __future__ import annotations

from graphc import progress
from graphc.codegen import loops as L
from graphc.codegen.loops import format_program
from graphc.codegen.lower import lower
from graphc.codegen.memory import peak_bytes
from graphc.ir import Graph


def lower_graph(graph: Graph, fuse: bool = True, dump=None) -> L.Program:
    """``graph`` fused (unless ``fuse`` is False) and lowered to a loop IR program with its
    memory planned; ``dump(stage, text)`` gets the fusion report and the loop IR."""
    with progress.stage("lower"):
        program, fusion = lower(graph, fuse, name=graph.name)
    if dump is not None:
        dump("fusion", fusion.report() + f"\npeak intermediate bytes: {peak_bytes(program)}")
        dump("loops", format_program(program))
    return program


def compile_graph_cpu(graph: Graph, fuse: bool = True, dump=None, in_place=()):
    """``in_place``: (output, input) positions the caller lets the program compute into
    the input's array (``graphc.codegen.inplace``; done where safe, see the program's
    ``in_place``)."""
    from graphc.codegen.inplace import write_in_place
    from graphc.targets.cpu.runtime import compile_program
    program, done = write_in_place(lower_graph(graph, fuse, dump), in_place)
    native = compile_program(program, [v.shape for v in graph.outputs], done)
    if dump is not None:
        dump("ll", native.llvm_ir())
    return native
