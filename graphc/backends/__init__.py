"""Backends turn a verified ``ir.Graph`` into a program: a callable from a list of input
arrays to a list of output arrays.

``get(name)`` returns the backend's ``compile_graph(graph, fuse=True, dump=None)``;
``dump(stage, text)``, when given, receives each stage's text (fusion report, loop IR,
generated code).
"""
from __future__ import annotations

NAMES = ("interpreter", "cpu")


def get(name: str):
    if name == "interpreter":
        from graphc.backends.interpreter import compile_graph
        return compile_graph
    if name == "cpu":
        from graphc.backends.native import compile_graph_cpu
        return compile_graph_cpu
    raise ValueError(f"unknown graphc backend {name!r}; available: {', '.join(NAMES)} "
                     f"(the 'cuda' backend is not built yet)")
