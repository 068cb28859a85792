"""``graphc.autograd.Function``: user-defined forward and backward, as in PyTorch.

``MyFn.apply(*args)`` runs ``forward`` under no_grad and gives its tensor outputs one
graph node, an instance of ``MyFnBackward`` (a subclass of :class:`BackwardCFunction`
made per Function class).  That node *is* the ``ctx`` forward saw, as in PyTorch, so
whatever forward stored on it is there for backward; the engine calls its ``apply``,
which calls the user's ``backward``.

While tracing (``graphc.compile``, ``graphc.trace``) forward is traced as ordinary ops
and ``Trace.custom_vjp`` marks its outputs: the autodiff pass then calls this node's
``apply`` on tracers for those outputs' cotangents (the user's backward is the gradient
rule of the region) instead of differentiating through the ops forward recorded.
"""
from __future__ import annotations

import functools
import inspect
import warnings

import numpy as np

from graphc import context
from graphc.autograd.engine import _next_function, _version_error, input_edges
from graphc.autograd.hooks import INFERENCE_SAVED, is_inference
from graphc.creation import zeros
from graphc.tensor import Tensor


class FunctionCtx:
    """What forward can tell backward: saved tensors and which outputs are special.
    Any other attribute may be set freely (``ctx.k = 3``)."""

    def save_for_backward(self, *tensors):
        tr = context.active_trace()
        saved = []
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{len(saved)} is of type {type(t).__name__}")
            if t is not None and tr is not None:
                # The value as traced: a lifted tensor gets its array back after the
                # trace, and the autodiff pass must read this graph's value.
                snapshot = Tensor._wrap(tr.value_of(t), t.dtype)
                snapshot._version = t._version
                t = snapshot
            saved.append((t, None if t is None else t._version[0]))
        self.to_save = tuple(saved)

    def save_for_forward(self, *tensors):
        """Accepted so Functions written for forward mode still run backward; graphc has
        no forward-mode AD (``jvp``), the only reader."""
        self.saved_for_forward = tensors

    def mark_dirty(self, *tensors):
        self.dirty_tensors = tensors

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable = tensors

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = bool(value)


class BackwardCFunction(FunctionCtx):
    """The graph node of one ``Function.apply`` call (and its ``ctx``).  The engine sees
    ``inputs``, ``edges``, ``n_outputs``, ``apply(grads)``, ``freed``, ``retained`` and
    ``hooks``."""
    _forward_cls = None

    def __init__(self):
        self.to_save = ()
        self.dirty_tensors = ()
        self.non_differentiable = ()
        self.materialize_grads = True
        self.needs_input_grad = ()
        self.inputs = ()
        self.edges = ()
        self.n_outputs = 0
        self.freed = False
        self.retained = None
        self.hooks = None

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<graphc.autograd.function.{self.name()} object at {id(self):#x}>"

    @property
    def next_functions(self):
        return tuple((_next_function(t, edge), 0 if edge is None else edge[1])
                     for t, edge in zip(self.inputs, self.edges))

    @property
    def saved_tensors(self):
        if self.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access "
                "saved tensors after they have already been freed). Saved intermediate "
                "values of the graph are freed when you call .backward() or "
                "autograd.grad(). Specify retain_graph=True if you need to backward through "
                "the graph a second time or if you need to access saved tensors after "
                "calling backward.")
        for t, version in self.to_save:
            if t is not None and t._version[0] != version:
                producer = (t.grad_fn, t._output_nr) if t.grad_fn is not None else None
                raise _version_error(t, producer, version, t._version[0])
        return tuple(t for t, _ in self.to_save)

    saved_variables = saved_tensors

    def apply(self, grads):
        """One gradient (or None) per tensor output in; one per tensor input out."""
        grads = list(grads)
        if self.materialize_grads:
            grads = [zeros(shape, dtype=dtype) if g is None else g
                     for g, (shape, dtype) in zip(grads, self.output_types)]
        cls = self._forward_cls
        backward = cls.vjp if cls.backward is Function.backward else cls.backward
        return self._input_grads(backward(self, *grads))

    def _input_grads(self, result):
        """Check backward's result against forward's arguments (PyTorch's errors) and keep
        the gradients of the tensor arguments, summed to their shapes and cast to their
        dtypes."""
        result = result if isinstance(result, tuple) else (result,)
        expected = len(self.needs_input_grad)
        if len(result) > expected and all(g is None for g in result[expected:]):
            result = result[:expected]
        if len(result) != expected:
            raise RuntimeError(f"function {self.name()} returned an incorrect number of "
                               f"gradients (expected {expected}, got {len(result)})")
        grads = []
        for index, (g, arg) in enumerate(zip(result, self.args_meta)):
            if arg is None:                       # not a tensor argument
                if g is not None:
                    raise RuntimeError(f"function {self.name()} returned a gradient "
                                       f"different than None at position {index + 1}, but "
                                       f"the corresponding forward input was not a Variable")
                continue
            if g is None:
                grads.append(None)
                continue
            shape, dtype = arg
            if tuple(g.shape) != shape:
                if not _expandable(shape, tuple(g.shape)):
                    raise RuntimeError(f"Function {self.name()} returned an invalid gradient "
                                       f"at index {index} - got {list(g.shape)} but expected "
                                       f"shape compatible with {list(shape)}")
                g = _sum_to(g, shape)
            if g.dtype != dtype:
                g = g.to(dtype)
            grads.append(g)
        return grads


def _expandable(shape, target) -> bool:
    if len(shape) > len(target):
        return False
    return all(s == t or s == 1 for s, t in zip(reversed(shape), reversed(target)))


def _sum_to(g, shape):
    lead = g.dim() - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    return g.sum(dim=dims, keepdim=True).reshape(shape) if dims else g


class FunctionMeta(type):
    """Gives each Function subclass its node class ``<Name>Backward``."""

    def __init__(cls, name, bases, attrs):
        cls._backward_cls = type(name + "Backward", (BackwardCFunction,),
                                 {"_forward_cls": cls})
        super().__init__(name, bases, attrs)


class Function(metaclass=FunctionMeta):
    """Subclass with static ``forward`` and ``backward`` and call ``apply``::

        class Round(graphc.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.round()

            @staticmethod
            def backward(ctx, grad):
                return grad           # straight-through

    ``forward`` may instead omit ``ctx`` and a ``setup_context(ctx, inputs, output)``
    fill it (PyTorch's newer style)."""

    def __init__(self, *args, **kwargs):
        warnings.warn(f"{type(self)} should not be instantiated. Methods on autograd functions "
                      f"are all static, so you should invoke them on the class itself. "
                      f"Instantiating an autograd function will raise an error in a future "
                      f"version of PyTorch.", DeprecationWarning, stacklevel=2)

    @staticmethod
    def forward(*args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward "
                                  "mode AD.")

    vjp = backward

    @staticmethod
    def jvp(ctx, *grad_inputs):
        raise NotImplementedError("You must implement the jvp function for custom "
                                  "autograd.Function to use it with forward mode AD.")

    @classmethod
    def apply(cls, *args, **kwargs):
        new_style = cls.setup_context is not Function.setup_context
        signature = inspect.signature(cls.forward)
        bound = (signature.bind(*args, **kwargs) if new_style else
                 signature.bind(None, *args, **kwargs))
        bound.apply_defaults()
        args = tuple(bound.args if new_style else bound.args[1:])
        ctx = cls._backward_cls()
        tensors = [a for a in args if isinstance(a, Tensor)]
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad
                                     for a in args)
        ctx.args_meta = tuple((tuple(a.shape), a.dtype) if isinstance(a, Tensor) else None
                              for a in args)
        with context.grad_mode(False):
            if new_style:
                output = cls.forward(*args)
                cls.setup_context(ctx, args, output)
            else:
                output = cls.forward(ctx, *args)
        if not (context.grad_enabled and any(t._requires_grad for t in tensors)):
            return output
        return _connect(ctx, tensors, output)


def _connect(ctx, tensors, output):
    """Make ``ctx`` the ``grad_fn`` of forward's tensor outputs."""
    for t, _ in ctx.to_save:
        if t is not None and is_inference(t):
            raise RuntimeError(INFERENCE_SAVED)
    ctx.inputs = tuple(tensors)
    ctx.edges = input_edges(tensors)
    is_tuple = isinstance(output, tuple)
    outputs = list(output) if is_tuple else [output]
    dirty = {id(t) for t in ctx.dirty_tensors}
    non_diff = {id(t) for t in ctx.non_differentiable}
    inputs = {id(t) for t in tensors}
    results, types = [], []
    for out in outputs:
        if not isinstance(out, Tensor):
            results.append(out)
            continue
        differentiable = id(out) not in non_diff and out.dtype.is_floating_point
        if id(out) in inputs and id(out) not in dirty:
            # Returned unchanged: a new tensor on the same storage carries the history.
            alias = Tensor._wrap(out._array, out.dtype)
            alias._version = out._version
            alias._base = out._base if out._base is not None else out
            out = alias
        nr = len(types)
        types.append((tuple(out.shape), out.dtype))
        if differentiable:
            out._requires_grad, out.grad_fn, out._output_nr = True, ctx, nr
        results.append(out)
    ctx.output_types = types
    ctx.n_outputs = len(types)
    tr = context.active_trace()
    if tr is not None:
        _trace_region(tr, ctx, tensors, results)
    return tuple(results) if is_tuple else results[0]


def _trace_region(tr, ctx, tensors, results):
    """Record the outputs as a custom-VJP region of the trace: new values whose gradient
    rule is ``ctx.apply`` (the tensor outputs' cotangents in, the inputs' out)."""
    outputs = [t for t in results if isinstance(t, Tensor)]
    marked = [t if t._requires_grad and type(t._array) is not np.ndarray else None
              for t in outputs]
    if not any(t is not None for t in marked):
        return
    values = tr.custom_vjp([t if t._requires_grad else None for t in tensors], marked,
                           ctx.apply)
    for t, v in zip(marked, values):
        if t is not None:
            t._array = v
            tr.differentiable.add(v)


def once_differentiable(fn):
    """Decorates ``backward``: it runs without recording, so its result cannot be
    differentiated again."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with context.grad_mode(False):
            return fn(ctx, *args)
    return wrapper
