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

A ``Trace`` becomes active with ``graphc.context.tracing(trace)``; the front end never
imports this module (``dispatch.bind`` finds the active trace in ``graphc.context``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from graphc import dtypes
from graphc.context import user_source_line
from graphc.dtypes import TensorType
from graphc.ir import Constant, Graph, Namer, Op, Value
from graphc.tensor import Tensor

class Trace:
    """The state of one trace: the graph being built and what was lifted into it."""

    def __init__(self, name="graph", names=None):
        self.name = re.sub(r"[^A-Za-z0-9_.]", "_", name)   # "<lambda>" is no IR name
        self.namer = Namer()
        self.inputs: list = []          # graph input Values, in order
        self.ops: list = []
        self.known: set = set()         # Values defined in this trace
        self.lifted: dict = {}          # id(tensor) -> (tensor, original data, input Value)
        self.grads_at_lift: dict = {}   # id(tensor) -> its .grad when lifted (before any backward)
        self.external: dict = {}        # Value of another graph -> input Value (autodiff)
        self.seeds: list = []           # input Values that take a fresh random seed per call
        self.numbers: dict = {}         # input Value -> (key, read) of a runtime Python number
        self._number_tracers: dict = {}  # key -> its tracer
        self.differentiable: set = set()  # Values that required grad when recorded
        self.custom_vjps: dict = {}     # output Value -> its CustomVJP (autograd.Function)
        self.grad_hooks: dict = {}      # Value -> fn(grad) -> grad (Tensor.register_hook)
        self.ran_backward = False       # the traced code ran a backward pass
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
        if requires_grad:
            self.differentiable.add(t._array)
        return t

    def number_input(self, key, value, read, hint="number") -> Tensor:
        """A Python number that the program reads afresh on every call (an optimizer's
        learning rate, a float argument that changes): a 0-dim input that promotes like
        the Python number it stands for.  ``read`` gives its value at run time; the same
        ``key`` gives the same input."""
        if key not in self._number_tracers:
            dtype = dtypes.scalar_dtype(value)
            dtype = dtypes.float64 if dtype.is_floating_point else dtype
            t = self.input_tensor(TensorType((), dtype), hint)
            t.__dict__["python_number"] = True
            self.numbers[t._array] = (key, read)
            self._number_tracers[key] = t
        return self._number_tracers[key]

    def lift(self, t: Tensor) -> Value:
        """Make a pre-existing concrete tensor a graph input (swapping in a Value)."""
        v = self.add_input(TensorType(tuple(t._array.shape), t.dtype),
                           self.names.get(id(t), "t"))
        # The array is put back by restore(), unread: any device copy of it stays valid.
        self.lifted[id(t)] = (t, t._array, v)
        self.grads_at_lift[id(t)] = t.grad
        if t._requires_grad:
            self.differentiable.add(v)
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

    def detached(self, t: Tensor) -> Value:
        """A new Value equal to tracer ``t`` that carries no gradient (``detach()``):
        an identity reshape outside ``differentiable``, removed by the graph passes
        after autodiff has seen it."""
        v = self.value_of(t)
        return self.emit("reshape", [v], (("shape", v.type.shape),), v.type)

    def custom_vjp(self, inputs, outputs, rule) -> list:
        """Mark the tensor ``outputs`` of an ``autograd.Function`` (None: not
        differentiable): each becomes a new identity value whose gradient the autodiff
        pass gets from ``rule(cotangents of outputs) -> gradients of inputs`` (None:
        an input that takes no gradient), not from the ops forward recorded."""
        region = CustomVJP([None if t is None else self.value_of(t) for t in inputs], [],
                           rule)
        for t in outputs:
            v = None
            if t is not None:
                v = self.detached(t)
                self.custom_vjps[v] = region
            region.outputs.append(v)
        return region.outputs

    def graph(self, outputs) -> Graph:
        return Graph(list(self.inputs), list(self.ops), list(outputs), self.name)


@dataclass
class CustomVJP:
    """A traced ``autograd.Function`` call: its input and output Values and the gradient
    rule (the user's backward) the autodiff pass applies to the outputs' cotangents."""
    inputs: list
    outputs: list
    rule: object


def is_tracer(t) -> bool:
    return isinstance(t, Tensor) and type(t._array) is Value


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

