"""``graphc.compile``, ``graphc.trace`` and ``graphc.explain``: the driver that joins the
front end to the pipeline.

=============  ==========================================================================
capture.py     run the user's code on tracers: the graph, and where each input comes from
build.py       differentiate (autodiff), optimise (graph passes), build (backend)
compiled.py    the compiled callable: guards, program cache, fallback, run, backward node
=============  ==========================================================================
"""
from graphc.compiler.build import explain
from graphc.compiler.capture import trace
from graphc.compiler.compiled import compile

__all__ = ["compile", "explain", "trace"]
