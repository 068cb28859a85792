"""The ambient state every stage reads: grad mode, the trace stack, graph breaks, and
the user's source line.

It is a leaf module (it imports nothing from graphc), so the front end, tracing and the
compile driver can all read it without importing each other.  ``graphc.autograd``
exposes grad mode to users (``no_grad``, ``is_grad_enabled``); the tracer
(``graphc.tracing``) pushes itself here, and ``dispatch.bind`` looks here to decide
whether to run a primitive or record it.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os
import sys

# ---- grad mode -------------------------------------------------------------------------------
grad_enabled = True


def is_grad_enabled() -> bool:
    return grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode on entry and restores the previous mode on exit."""
    mode = True

    def __enter__(self):
        global grad_enabled
        self.prev, grad_enabled = grad_enabled, self.mode

    def __exit__(self, *exc):
        global grad_enabled
        grad_enabled = self.prev
        return False

    def _recreate_cm(self):
        return copy.copy(self)      # a fresh context per decorated call (recursion-safe)


class _BareDecoratorGradMode(_GradMode):
    """Also usable as a decorator without parentheses: ``@no_grad`` as ``@no_grad()``."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_BareDecoratorGradMode):
    mode = False


class enable_grad(_BareDecoratorGradMode):
    mode = True


class set_grad_enabled(_GradMode):
    """Like PyTorch, takes effect when called, and restores on leaving a ``with``."""

    def __init__(self, mode: bool):
        global grad_enabled
        self.mode = bool(mode)
        self.prev, grad_enabled = grad_enabled, self.mode

    def __enter__(self):
        pass


@contextlib.contextmanager
def grad_mode(mode: bool):
    """``with grad_mode(m):`` runs its body with grad mode ``m`` (the backward engine's
    create_graph switch)."""
    global grad_enabled
    prev, grad_enabled = grad_enabled, bool(mode)
    try:
        yield
    finally:
        grad_enabled = prev


# ---- the trace stack ---------------------------------------------------------------------------
traces: list = []          # the active traces, innermost last (``graphc.tracing.Trace``)


def active_trace():
    """The innermost active trace, or None when running eagerly."""
    return traces[-1] if traces else None


class tracing:
    """``with tracing(trace):`` routes primitive calls into ``trace``."""

    def __init__(self, trace):
        self.trace = trace

    def __enter__(self):
        traces.append(self.trace)
        return self.trace

    def __exit__(self, *exc):
        traces.pop()
        return False


# ---- graph breaks ------------------------------------------------------------------------------
_GRAPHC_DIR = os.path.dirname(os.path.abspath(__file__))


class GraphBreak(RuntimeError):
    """Code that cannot be traced into a static graph (data-dependent control flow,
    ``.item()``, an op with no primitive).  The message names the op and the line."""


def user_source_line() -> str | None:
    """``file.py:LINE`` of the innermost frame outside graphc (the user's code)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = _user_file(frame.f_code.co_filename)
        if name is not None:
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return None


@functools.lru_cache(maxsize=4096)
def _user_file(filename: str) -> str | None:
    """The base name of a source file outside graphc, None for one of graphc's (asked
    for every frame of every traced op: remembered, it was a third of tracing's time)."""
    path = os.path.abspath(filename)
    return None if path.startswith(_GRAPHC_DIR) else os.path.basename(path)


def graph_break(what: str) -> GraphBreak:
    line = user_source_line()
    return GraphBreak(f"graphc cannot trace {what}" + (f" (at {line})" if line else "") +
                      ": it depends on tensor values, which are unknown while tracing")
