"""Backends turn a verified ``ir.Graph`` into a program: a callable from a list of input
arrays to a list of output arrays.  ``get(name)`` returns the backend's ``compile``."""
from __future__ import annotations


def get(name: str):
    if name == "interpreter":
        from graphc.backends.interpreter import compile_graph
        return compile_graph
    raise ValueError(f"unknown graphc backend {name!r}; available: 'interpreter' (the 'cpu' "
                     f"LLVM and 'cuda' backends are not built yet)")
