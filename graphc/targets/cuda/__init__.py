"""The ``cuda`` backend: loop IR -> CUDA C -> PyCUDA, and its CPU emulation.

``compile_graph_cuda(graph, fuse=True, dump=None)`` compiles for a real GPU (it raises at
once, saying what is missing, without PyCUDA or a GPU);
``compile_graph_cuda_emulated(graph, fuse=True, dump=None)`` compiles the same CUDA C
for the CPU against ``shim.h`` and runs it there, so the generated code is tested on
machines without a GPU.  Both return ``program(arrays) -> list of arrays``.  Fusion and
lowering are the shared ``native.lower_graph``; the renderer splits long reductions
itself.  See docs/cuda.md.
"""
from __future__ import annotations

from graphc.targets.native import lower_graph
from graphc.ir import Graph
from graphc.ops import REGISTRY

COLLECTIVES = frozenset(name for name, p in REGISTRY.items() if p.kind == "collective")


def compile_graph_cuda_emulated(graph: Graph, fuse: bool = True, dump=None):
    """Compile ``graph`` to CUDA C and run it on the CPU emulator (backend
    ``cuda-emulate``)."""
    from graphc.targets.cuda import emulate, render
    _refuse_collectives(graph)
    source = render.render_program(lower_graph(graph, fuse, dump), render.EMULATION)
    if dump is not None:
        dump("cu", source.text)
    return emulate.build(graph, source)


def _refuse_collectives(graph: Graph) -> None:
    """The CUDA programs launch their kernels from generated host code that does not
    call MPI: a graph with a collective is refused, naming it, before anything runs."""
    for op in graph.ops:
        if op.name in COLLECTIVES:
            raise NotImplementedError(
                f"the cuda backends cannot run collectives yet ({op.name} at "
                f"{op.source or 'an unknown line'}): compile the distributed step with "
                f"backend='cpu', or the interpreter")


def require_gpu():
    """Raise at once, saying what is missing, unless PyCUDA and a GPU are there."""
    from graphc import cuda
    reason = cuda.unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"the cuda backend needs PyCUDA and a CUDA GPU: {reason}. "
                           f"Install it with pip install 'graphc[cuda]' on a machine with the "
                           f"CUDA driver, or use backend='cuda-emulate' to run the generated "
                           f"CUDA C on the CPU")


def compile_graph_cuda(graph: Graph, fuse: bool = True, dump=None):
    """Compile ``graph`` to CUDA C and run it on the GPU through PyCUDA (backend
    ``cuda``)."""
    require_gpu()
    _refuse_collectives(graph)
    from graphc.targets.cuda import render, runtime
    source = render.render_program(lower_graph(graph, fuse, dump), render.GPU)
    if dump is not None:
        dump("cu", source.text)
    return runtime.build(graph, source)


__all__ = ["compile_graph_cuda", "compile_graph_cuda_emulated"]
