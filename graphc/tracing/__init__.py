"""Tracing: Python code run on tracer tensors becomes an SSA graph (``trace.py``), and a
forward graph's VJP rules, traced the same way, become its backward graph
(``autodiff.py``).  The user-facing ``graphc.trace`` is in ``graphc.compile``, which
knows about modules and optimizers."""
