"""Capture: run the user's code once on tracer tensors and record what it did.

The result is a :class:`Capture`: the traced graph, and for each graph input where its
value comes from on every call (an argument, a lifted tensor, a fresh random seed), and
for the outputs beyond the user's results what to do with them (write a mutated tensor
back, set or clear a parameter's ``.grad``).  Module parameters, buffers, optimizer
state and gradients are *lifted*: they become graph inputs read afresh on every call.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from graphc import creation
from graphc.autograd.hooks import leaf_hook_ids
from graphc.compiler.guards import (GradPresenceGuard, Guards, LiftedGuard, MembersGuard,
                                    Recorder, attribute_guards, closure_guards,
                                    global_guards, is_constant, optimizer_guards)
from graphc.context import GraphBreak, tracing
from graphc.dtypes import TensorType
from graphc.ir import Graph, verify
from graphc.nn import Module
from graphc.tensor import Tensor
from graphc.tracing.trace import Trace, flatten_tensors


class RetraceLater(GraphBreak):
    """The trace would capture state that does not exist yet (an optimizer's first
    step creates its state): run this call eagerly and trace the next one."""


# ---- the arguments of a call -----------------------------------------------------------------
def flatten_args(tree, leaves: list):
    """Append the leaves of a call's arguments (nested tuples, lists and dicts) to
    ``leaves``; returns the structure (hashable, holding no tensor).  Tensors and Python
    numbers are leaves whose metadata or value goes into the cache key; other constants
    are part of the structure; any other object is a leaf compared by identity."""
    if isinstance(tree, Tensor):
        leaves.append(tree)
        return _TENSOR
    if type(tree) in (int, float):
        leaves.append(tree)
        return _NUMBER
    if isinstance(tree, (tuple, list)):
        return (type(tree), tuple(flatten_args(x, leaves) for x in tree))
    if isinstance(tree, dict):
        return (type(tree), tuple(tree), tuple(flatten_args(x, leaves) for x in tree.values()))
    if is_constant(tree):
        return ("constant", type(tree), tree)
    leaves.append(tree)
    return _OBJECT


_TENSOR, _NUMBER, _OBJECT = "tensor", "number", "object"


def unflatten_args(spec, leaves):
    """The inverse of ``flatten_args``: ``spec`` with its leaves taken from ``leaves``."""
    it = iter(leaves)

    def build(node):
        if node in (_TENSOR, _NUMBER, _OBJECT):
            return next(it)
        kind = node[0]
        if kind == "constant":
            return node[2]
        if issubclass(kind, dict):
            return kind(zip(node[1], map(build, node[2])))
        items = [build(x) for x in node[1]]
        return kind(*items) if hasattr(kind, "_fields") else kind(items)
    result = build(spec)
    del build                   # a recursive closure is a cycle holding the leaves
    return result


# ---- where each graph input comes from ------------------------------------------------------
@dataclass(frozen=True)
class ArgInput:
    """The ``index``-th leaf of the call's arguments (a tensor)."""
    index: int

    def array(self, leaves, host: str):
        return getattr(leaves[self.index], host)

    def tensor_of(self, leaves) -> Tensor:
        return leaves[self.index]


@dataclass(frozen=True, eq=False)
class LiftedInput:
    """A tensor that existed before the trace (a parameter, buffer, optimizer state or
    gradient); ``requires_grad`` as it was when traced."""
    tensor: Tensor
    requires_grad: bool

    def array(self, leaves, host: str):
        return getattr(self.tensor, host)

    def tensor_of(self, leaves) -> Tensor:
        return self.tensor


@dataclass(frozen=True)
class SeedInput:
    """A fresh random seed for the counter-based ``uniform`` primitive, drawn per call."""

    def array(self, leaves, host: str):
        return creation.next_seed()._data

    def tensor_of(self, leaves) -> None:
        return None


@dataclass(frozen=True, eq=False)
class NumberInput:
    """A Python number read afresh on every call: a number argument that changes from
    call to call, or an optimizer hyperparameter.  ``read(leaves)`` gives its value."""
    read: object
    dtype: object

    def array(self, leaves, host: str):
        return np.array(self.read(leaves), self.dtype.np)

    def tensor_of(self, leaves) -> None:
        return None


def _leaf(index, leaves):
    return leaves[index]


def _ignore_leaves(read, leaves):
    return read()


# ---- the capture ----------------------------------------------------------------------------------
@dataclass
class Capture:
    """What one trace of the user's function recorded.

    ``graph``'s outputs are the user's ``n_results`` tensors, then the new values of
    mutated lifted tensors (``writebacks``: (tensor, output index)) and arguments
    (``arg_writebacks``: (leaf index, output index)), then new gradients
    (``grad_effects``: (parameter, output index, or None to clear ``.grad``)), then the
    gradients backward gave arguments (``arg_grad_effects``: (leaf index, output index);
    added to what ``.grad`` holds when the call runs, as backward accumulates).
    ``differentiable`` holds the values that required grad when traced (values computed
    under ``no_grad``, such as BatchNorm's running statistics, are not);
    ``guards`` say when the capture is stale."""
    graph: Graph
    sources: list                   # per graph input: ArgInput | LiftedInput | SeedInput | NumberInput
    result_tree: object             # the traced return value (for its structure)
    n_results: int
    results_require_grad: bool      # some result requires grad (a backward may follow)
    writebacks: list
    arg_writebacks: list
    grad_effects: list
    arg_grad_effects: list
    touches_grads: bool             # the traced code ran backward, or read or set a .grad
    differentiable: set
    guards: Guards
    custom_vjps: dict = field(default_factory=dict)   # Value -> CustomVJP (autograd.Function)
    grad_hooks: dict = field(default_factory=dict)    # Value -> its Tensor.register_hook hooks


def capture(fn, args, kwargs, leaves, spec, dynamic: set, name) -> Capture:
    """Trace ``fn(*args, **kwargs)``.  ``leaves``/``spec`` are the flattened arguments;
    the number leaves at the positions in ``dynamic`` become runtime inputs."""
    roots = state_roots(fn) + [(f"argument {i}", x) for i, x in enumerate(leaves)
                               if isinstance(x, Module) or is_optimizer(x)]
    labels = module_labels(roots)
    params = state_tensors([r for _, r in roots])
    tr = Trace(name, module_names(*[r for _, r in roots]))
    sources, tracers = [], []
    for i, a in enumerate(leaves):
        if isinstance(a, Tensor):
            tracers.append(tr.input_tensor(TensorType(tuple(a.shape), a.dtype),
                                           f"input{i}", a._requires_grad))
            sources.append(ArgInput(i))
        elif i in dynamic:
            tracers.append(tr.number_input(("argument", i), a,
                                           functools.partial(_leaf, i), f"number{i}"))
        else:
            tracers.append(a)
    arg_inputs = {s.index: tracers[s.index]._array for s in sources}   # to spot writes
    grads_before = [(p, p.grad) for p in params]
    optimizers = [o for _, o in roots if is_optimizer(o)]
    optim_state = [(o, {p: dict(s) for p, s in o.state.items()}) for o in optimizers]
    t_args, t_kwargs = unflatten_args(spec, tracers)
    ok = False
    try:
        with tracing(tr), Recorder() as recorder:
            result = fn(*t_args, **t_kwargs)
            outs = flatten_tensors(result)
            result_values = [tr.value_of(t) for t in outs]
            arg_writes = [(i, tracers[i]._array) for i, v in arg_inputs.items()
                          if tracers[i]._array is not v]
            # Tensors reached through globals or closures get gradients too.
            known = {id(p) for p in params}
            for t, _, _ in list(tr.lifted.values()):
                if t._requires_grad and id(t) not in known and \
                        t.grad is not tr.grads_at_lift[id(t)]:
                    params.append(t)
                    grads_before.append((t, tr.grads_at_lift[id(t)]))
            grads_after = [(p, p.grad) for p in params]
            arg_grads = [(i, tr.value_of(tracers[i].grad)) for i in arg_inputs
                         if tracers[i].grad is not None]
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
        elif v in tr.numbers:
            key, read = tr.numbers[v]
            if key[0] != "argument":
                read = functools.partial(_ignore_leaves, read)
            sources.append(NumberInput(read, v.type.dtype))
        else:
            t = lifted_by_value[v]
            sources.append(LiftedInput(t, t._requires_grad))
    outputs = list(result_values)
    writebacks, arg_writebacks, grad_effects, arg_grad_effects = [], [], [], []
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
    for i, v in arg_grads:
        arg_grad_effects.append((i, len(outputs)))
        outputs.append(v)
    touches_grads = (bool(grad_effects) or tr.ran_backward
                     or any(id(g) in tr.lifted for _, g in grads_before))
    dynamic_hyper = {key[:2] for key, _ in tr.numbers.values() if key[0] != "argument"}
    guards = _guards(fn, roots, labels, recorder, sources, dynamic_hyper,
                     params if touches_grads else [])
    return Capture(
        graph=tr.graph(outputs), sources=sources, result_tree=result,
        n_results=len(result_values),
        results_require_grad=any(t._requires_grad for t in outs),
        writebacks=writebacks, arg_writebacks=arg_writebacks, grad_effects=grad_effects,
        arg_grad_effects=arg_grad_effects, touches_grads=touches_grads, differentiable=set(tr.differentiable), guards=guards,
        custom_vjps=tr.custom_vjps, grad_hooks=tr.grad_hooks)


def _guards(fn, roots, labels, recorder, sources, dynamic_hyper, params) -> Guards:
    """The guards of a capture: see ``graphc.compiler.guards``."""
    always = global_guards(recorder) + closure_guards(fn)
    lifted = [s.tensor for s in sources if isinstance(s, LiftedInput)]
    if lifted:
        always.append(LiftedGuard(lifted, [labels.get(id(t), "tensor") for t in lifted]))
    for label, root in roots:
        if is_optimizer(root):
            always += optimizer_guards(label, root, dynamic_hyper)
    if params:
        always.append(GradPresenceGuard(params, _grad_presence))
    on_modules = [MembersGuard(label, root) for label, root in roots
                  if isinstance(root, Module)]
    on_modules += attribute_guards(recorder, labels)
    return Guards(always, on_modules)


def _grad_presence(params) -> tuple:
    """Which parameters have no ``.grad``, and their gradient hooks: code that touches
    gradients (``loss.backward()`` accumulates into an existing grad, or creates it, and
    runs the hooks while tracing) traces differently for each."""
    return tuple((p.grad is None, leaf_hook_ids(p)) for p in params)


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
    """(label, object) for the modules and optimizers a function can reach: itself, its
    bound ``self``, its closure and the globals it names."""
    roots = [(getattr(fn, "__name__", type(fn).__name__), fn),
             ("self", getattr(fn, "__self__", None))]
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is not None:
        cells = getattr(getattr(fn, "__func__", fn), "__closure__", None) or ()
        for name, cell in zip(code.co_freevars, cells):
            try:
                roots.append((name, cell.cell_contents))
            except ValueError:
                pass
        g = getattr(fn, "__globals__", {})
        roots += [(n, g[n]) for n in code.co_names if n in g]
    seen, out = set(), []
    for label, r in roots:
        if (isinstance(r, Module) or is_optimizer(r)) and id(r) not in seen:
            seen.add(id(r))
            out.append((label, r))
    return out


def module_labels(roots) -> dict:
    """id(module) -> its dotted path from the root it was found under (``model.fc``)."""
    labels = {}
    for label, root in roots:
        if isinstance(root, Module):
            for path, m in root.named_modules():
                labels.setdefault(id(m), f"{label}.{path}" if path else label)
            for path, t in list(root.named_parameters()) + list(root.named_buffers()):
                labels.setdefault(id(t), f"{label}.{path}")
    return labels


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
    names = module_names(*[r for _, r in state_roots(fn)])   # the modules fn is or reaches
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
