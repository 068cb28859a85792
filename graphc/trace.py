"""Define-by-run tracing: run Python code once on tracer tensors, record an ``ir.Graph``.

A tracer is an ordinary ``Tensor`` whose ``_data`` is an ``ir.Value`` instead of an
array; ``dispatch.bind`` appends one op per primitive call while a trace is active.
Python control flow is followed at trace time, so the graph is specialised to what ran.

Tensors that existed before the trace began (parameters, buffers, optimizer state,
gradients) are *lifted*: they become graph inputs named after what they are
(``%fc1.weight``) and are read afresh on every call, so updates are seen without
recompiling.  An in-place write to a lifted tensor becomes a new SSA value plus a
write-back to that tensor after the program runs.  Tensors created during the trace
(``graphc.zeros`` inside the function) become constants.
"""
from __future__ import annotations

import os
import re
import sys

from graphc import dtypes
from graphc.dtypes import TensorType
from graphc.ir import Constant, Graph, Namer, Op, Value, verify
from graphc.tensor import Tensor

_GRAPHC_DIR = os.path.dirname(os.path.abspath(__file__))


class GraphBreak(RuntimeError):
    """Code that cannot be traced into a static graph (data-dependent control flow,
    ``.item()``, an op with no primitive).  The message names the op and the line."""


def user_source_line() -> str | None:
    """``file.py:LINE`` of the innermost frame outside graphc (the user's code)."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_GRAPHC_DIR):
            return f"{os.path.basename(path)}:{frame.f_lineno}"
        frame = frame.f_back
    return None


class Trace:
    """The state of one trace: the graph being built and what was lifted into it."""

    def __init__(self, name="graph", names=None):
        self.name = re.sub(r"[^A-Za-z0-9_.]", "_", name)   # "<lambda>" is no IR name
        self.namer = Namer()
        self.inputs: list = []          # graph input Values, in order
        self.ops: list = []
        self.known: set = set()         # Values defined in this trace
        self.lifted: dict = {}          # id(tensor) -> (tensor, original data, input Value)
        self.external: dict = {}        # Value of another graph -> input Value (autodiff)
        self.seeds: list = []           # input Values that take a fresh random seed per call
        self.constants: dict = {}       # id(tensor) -> (tensor, Value)
        self.names = names or {}        # id(tensor) -> a name hint
        self.start_serial = Tensor._next_serial()
        self.source: str | None = None  # when set, the source line of every op emitted

    # ---- inputs ----------------------------------------------------------------------------
    def add_input(self, type_: TensorType, hint: str | None = None) -> Value:
        v = Value(self.namer.fresh(hint), type_)
        self.inputs.append(v)
        self.known.add(v)
        return v

    def input_tensor(self, type_: TensorType, hint=None, requires_grad=False) -> Tensor:
        t = Tensor._wrap(self.add_input(type_, hint), type_.dtype)
        t._requires_grad = requires_grad
        return t

    def lift(self, t: Tensor) -> Value:
        """Make a pre-existing concrete tensor a graph input (swapping in a Value)."""
        v = self.add_input(TensorType(tuple(t._array.shape), t.dtype),
                           self.names.get(id(t), "t"))
        # The array is put back by restore(), unread: any device copy of it stays valid.
        self.lifted[id(t)] = (t, t._array, v)
        t._array = v
        return v

    def seed_input(self) -> Tensor:
        t = self.input_tensor(TensorType((), dtypes.int64), "seed")
        self.seeds.append(t._data)
        return t

    def restore(self):
        """Give every lifted tensor its array back; returns the lifted tensors whose
        value changed during the trace, with their final Values (the write-backs)."""
        mutated = []
        for t, original, v in self.lifted.values():
            if t._array is not v:
                mutated.append((t, t._array))
            t._array = original
        return mutated

    # ---- recording -------------------------------------------------------------------------
    def value_of(self, t: Tensor) -> Value:
        data = t._array
        if type(data) is Value:
            if data in self.known:
                return data
            if data not in self.external:       # a value of another graph (autodiff)
                self.external[data] = self.add_input(data.type, data.name)
            return self.external[data]
        if t._serial < self.start_serial:
            return self.lift(t)
        if id(t) not in self.constants:
            data = t._data                      # its value, embedded: brought home
            self.constants[id(t)] = (t, self.emit("constant", (), (("value", Constant(data)),),
                                                  TensorType(tuple(data.shape), t.dtype)))
        return self.constants[id(t)][1]

    def emit(self, name, inputs, attrs, out_type, hint=None) -> Value:
        out = Value(self.namer.fresh(hint), out_type)
        self.ops.append(Op(name, tuple(inputs), tuple(attrs), out,
                           self.source or user_source_line()))
        self.known.add(out)
        return out

    def record(self, prim, args, attrs, out_type):
        """Called by ``dispatch.bind``: the output Value, or None to compute eagerly
        (every operand is a constant made during the trace: fold it now)."""
        if not any(type(a._array) is Value or a._serial < self.start_serial for a in args):
            return None
        inputs = [self.value_of(a) for a in args]
        ordered = tuple((k, attrs[k]) for k in prim.attrs)
        return self.emit(prim.name, inputs, ordered, out_type)

    def graph(self, outputs) -> Graph:
        return Graph(list(self.inputs), list(self.ops), list(outputs), self.name)


_active: list = []


def active() -> Trace | None:
    return _active[-1] if _active else None


class tracing:
    """``with tracing(trace):`` routes primitive calls into ``trace``."""

    def __init__(self, trace: Trace):
        self.trace = trace

    def __enter__(self):
        _active.append(self.trace)
        return self.trace

    def __exit__(self, *exc):
        _active.pop()
        return False


def is_tracer(t) -> bool:
    return isinstance(t, Tensor) and type(t._array) is Value


def graph_break(what: str) -> GraphBreak:
    line = user_source_line()
    return GraphBreak(f"graphc cannot trace {what}" + (f" (at {line})" if line else "") +
                      ": it depends on tensor values, which are unknown while tracing")


def module_names(*roots) -> dict:
    """id(tensor) -> name for the parameters and buffers of modules, the state of
    optimizers and the gradients of both, found among ``roots``."""
    from graphc.nn import Module
    names = {}
    for root in roots:
        if isinstance(root, Module):
            for n, t in list(root.named_parameters()) + list(root.named_buffers()):
                names.setdefault(id(t), n)
                if t.grad is not None:
                    names.setdefault(id(t.grad), f"{n}.grad")
        elif hasattr(root, "param_groups") and hasattr(root, "state"):
            for i, (p, state) in enumerate(root.state.items()):
                for k, v in state.items():
                    if isinstance(v, Tensor):
                        names.setdefault(id(v), f"opt.{names.get(id(p), i)}.{k}")
    return names


def trace(fn, *example_inputs) -> Graph:
    """Trace ``fn`` (a function or an ``nn.Module``) on ``example_inputs``.

    Returns the verified graph; parameters and buffers are graph inputs after the user
    inputs, named after their place in the module ``fn`` is, or reaches through its
    closure or globals.  Example::

        g = graphc.trace(nn.Linear(2, 3), graphc.randn(4, 2))
        print(g)
    """
    from graphc.compile import _state_roots
    names = module_names(*_state_roots(fn))     # the modules fn is or reaches
    tr = Trace(getattr(fn, "__name__", type(fn).__name__), names)
    tracers = [tr.input_tensor(TensorType(tuple(x.shape), x.dtype), f"input{i}",
                               x.requires_grad) if isinstance(x, Tensor) else x
               for i, x in enumerate(example_inputs)]
    try:
        with tracing(tr):
            result = fn(*tracers)
            outs = [tr.value_of(t) for t in flatten_tensors(result)]
    finally:
        tr.restore()
    return verify(tr.graph(outs))


def flatten_tensors(tree) -> list:
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [t for item in tree for t in flatten_tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in flatten_tensors(item)]
    return []


def unflatten_tensors(tree, leaves):
    """Rebuild ``tree`` with its tensors replaced, in order, by ``leaves``."""
    it = iter(leaves)

    def build(node):
        if isinstance(node, Tensor):
            return next(it)
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return type(node)(*[build(x) for x in node])
        if isinstance(node, (tuple, list)):
            return type(node)(build(x) for x in node)
        if isinstance(node, dict):
            return type(node)((k, build(v)) for k, v in node.items())
        return node
    result = build(tree)
    # A recursive closure is a reference cycle that holds ``it`` and so the leaves:
    # break it, or every compiled call's outputs live until the garbage collector runs.
    del build
    return result

