"""``graphc.compile``, ``graphc.trace`` and ``graphc.explain``: the driver that joins the
front end to the pipeline.

=============  ==========================================================================
capture.py     run the user's code on tracers: the graph, where each input comes from,
               and the guards on what the trace read
guards.py      guards (globals, closures, module attributes and members, optimizers) and
               the recorder that finds what a trace read
build.py       differentiate (autodiff), optimise (graph passes), build (backend)
compiled.py    the compiled callable: program cache, recompiles, fallback, run, backward
               node; ``OptimizedModule``; ``compile``
explain.py     ``explain``: the kernels and guards of a call, without running it
=============  ==========================================================================
"""
from graphc.compiler.capture import trace
from graphc.compiler.compiled import OptimizedModule, compile
from graphc.compiler.explain import explain

__all__ = ["OptimizedModule", "compile", "explain", "trace"]
