"""Capture: run the user's code once on tracer tensors and record what it did.

The result is a :class:`Capture`: the traced graph, and for each graph input where its
value comes from on every call (an argument, a lifted tensor, a fresh random seed), and
for the outputs beyond the user's results what to do with them (write a mutated tensor
back, set or clear a parameter's ``.grad``).  Module parameters, buffers, optimizer
state and gradients are *lifted*: they become graph inputs read afresh on every call.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphc import creation
from graphc.context import GraphBreak, tracing
from graphc.dtypes import TensorType
from graphc.ir import Graph, verify
from graphc.nn import Module
from graphc.tensor import Tensor
from graphc.tracing.trace import Trace, flatten_tensors


class RetraceLater(GraphBreak):
    """The trace would capture state that does not exist yet (an optimizer's first
    step creates its state): run this call eagerly and trace the next one."""


# ---- where each graph input comes from ------------------------------------------------------
@dataclass(frozen=True)
class ArgInput:
    """The ``index``-th positional argument of the call."""
    index: int

    def array(self, args, host: str):
        return getattr(args[self.index], host)

    def tensor_of(self, args) -> Tensor:
        return args[self.index]


@dataclass(frozen=True, eq=False)
class LiftedInput:
    """A tensor that existed before the trace (a parameter, buffer, optimizer state or
    gradient); ``requires_grad`` as it was when traced."""
    tensor: Tensor
    requires_grad: bool

    def array(self, args, host: str):
        return getattr(self.tensor, host)

    def tensor_of(self, args) -> Tensor:
        return self.tensor


@dataclass(frozen=True)
class SeedInput:
    """A fresh random seed for the counter-based ``uniform`` primitive, drawn per call."""

    def array(self, args, host: str):
        return creation.next_seed()._data

    def tensor_of(self, args) -> None:
        return None


# ---- the capture ----------------------------------------------------------------------------------
@dataclass
class Capture:
    """What one trace of the user's function recorded.

    ``graph``'s outputs are the user's ``n_results`` tensors, then the new values of
    mutated lifted tensors (``writebacks``: (tensor, output index)) and arguments
    (``arg_writebacks``: (argument index, output index)), then new gradients
    (``grad_effects``: (parameter, output index, or None to clear ``.grad``))."""
    graph: Graph
    sources: list                   # per graph input: ArgInput | LiftedInput | SeedInput
    result_tree: object             # the traced return value (for its structure)
    n_results: int
    results_require_grad: bool      # some result requires grad (a backward may follow)
    writebacks: list
    arg_writebacks: list
    grad_effects: list
    touches_grads: bool             # the traced code read or set some parameter's .grad


def capture(fn, args, roots, params, name) -> Capture:
    """Trace ``fn(*args)``; ``roots`` are the modules and optimizers it reaches and
    ``params`` the parameters whose ``.grad`` it may change."""
    tr = Trace(name, module_names(*roots))
    sources, tracers = [], []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            tracers.append(tr.input_tensor(TensorType(tuple(a.shape), a.dtype),
                                           f"input{i}", a._requires_grad))
            sources.append(ArgInput(i))
        else:
            tracers.append(a)
    arg_inputs = {s.index: tracers[s.index]._array for s in sources}   # to spot writes
    grads_before = [(p, p.grad) for p in params]
    optim_state = [(o, {p: dict(s) for p, s in o.state.items()})
                   for o in roots if is_optimizer(o)]
    ok = False
    try:
        with tracing(tr):
            result = fn(*tracers)
            outs = flatten_tensors(result)
            result_values = [tr.value_of(t) for t in outs]
            arg_writes = [(i, tracers[i]._array) for i, v in arg_inputs.items()
                          if tracers[i]._array is not v]
            grads_after = [(p, p.grad) for p in params]
            grad_values = {id(p): tr.value_of(g) for p, g in grads_after
                           if g is not None and (g._serial >= tr.start_serial or
                                                 type(g._array) is not np.ndarray)}
        _check_no_escapes(optim_state)
        ok = True
    finally:
        mutated = tr.restore()
        for p, g in grads_before:
            p.grad = g
        if not ok:
            for o, state in optim_state:
                o.state.clear()
                o.state.update(state)
    lifted_by_value = {v: t for t, _, v in tr.lifted.values()}
    seeds = set(tr.seeds)
    for v in tr.inputs[len(sources):]:
        if v in seeds:
            sources.append(SeedInput())
        else:
            t = lifted_by_value[v]
            sources.append(LiftedInput(t, t._requires_grad))
    outputs = list(result_values)
    writebacks, arg_writebacks, grad_effects = [], [], []
    for t, v in mutated:
        writebacks.append((t, len(outputs)))
        outputs.append(v)
    for i, v in arg_writes:
        arg_writebacks.append((i, len(outputs)))
        outputs.append(v)
    for (p, g), (_, before) in zip(grads_after, grads_before):
        if g is None and before is not None:
            grad_effects.append((p, None))
        elif id(p) in grad_values:
            grad_effects.append((p, len(outputs)))
            outputs.append(grad_values[id(p)])
    return Capture(
        graph=tr.graph(outputs), sources=sources, result_tree=result,
        n_results=len(result_values),
        results_require_grad=any(t._requires_grad for t in outs),
        writebacks=writebacks, arg_writebacks=arg_writebacks, grad_effects=grad_effects,
        touches_grads=bool(grad_effects) or any(id(g) in tr.lifted for _, g in grads_before))


def _check_no_escapes(optim_state):
    for o, before in optim_state:
        for p, state in o.state.items():
            for k, v in state.items():
                if isinstance(v, Tensor) and type(v._array) is not np.ndarray and (
                        p not in before or before[p].get(k) is not v):
                    raise RetraceLater("the optimizer creates its state on its first "
                                       "step; tracing from the next call")


# ---- what a function reaches -------------------------------------------------------------------
def state_roots(fn) -> list:
    """Modules and optimizers a function can reach: itself, its bound ``self``, its
    closure and the globals it names."""
    roots = [fn, getattr(fn, "__self__", None)]
    code = getattr(fn, "__code__", None)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            roots.append(cell.cell_contents)
        except ValueError:
            pass
    if code is not None:
        g = getattr(fn, "__globals__", {})
        roots += [g[n] for n in code.co_names if n in g]
    return [r for r in roots if isinstance(r, Module) or is_optimizer(r)]


def is_optimizer(obj) -> bool:
    return hasattr(obj, "param_groups") and hasattr(obj, "state") and hasattr(obj, "step")


def state_tensors(roots) -> list:
    """Parameters whose ``.grad`` the traced code may set or clear."""
    seen, out = set(), []
    for r in roots:
        params = r.parameters() if isinstance(r, Module) else \
            [p for g in r.param_groups for p in g["params"]]
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def module_names(*roots) -> dict:
    """id(tensor) -> name for the parameters and buffers of modules, the state of
    optimizers and the gradients of both, found among ``roots``."""
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
    names = module_names(*state_roots(fn))     # the modules fn is or reaches
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
