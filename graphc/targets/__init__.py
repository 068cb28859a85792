"""Backends turn a verified ``ir.Graph`` into a program: a callable from a list of input
arrays to a list of output arrays.

``get(name)`` returns the backend's ``compile_graph(graph, fuse=True, dump=None)``;
``dump(stage, text)``, when given, receives each stage's text (fusion report, loop IR,
generated code).
"""
from __future__ import annotations

NAMES = ("interpreter", "cpu", "cuda", "cuda-emulate")


def get(name: str):
    """``cuda`` runs on a GPU through PyCUDA; ``cuda-emulate`` runs the same generated CUDA
    C on the CPU (compiled as C++ against a shim), so it is testable anywhere."""
    if name == "interpreter":
        from graphc.targets.interpreter import compile_graph
        return compile_graph
    if name == "cpu":
        from graphc.targets.native import compile_graph_cpu
        return compile_graph_cpu
    if name == "cuda":
        from graphc.targets.cuda import compile_graph_cuda, require_gpu
        require_gpu()                  # graphc.compile(..., backend="cuda") fails at once
        return compile_graph_cuda
    if name == "cuda-emulate":
        from graphc.targets.cuda import compile_graph_cuda_emulated
        return compile_graph_cuda_emulated
    raise ValueError(f"unknown graphc backend {name!r}; available: {', '.join(NAMES)}")
