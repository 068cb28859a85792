"""Reverse-mode autograd over the eager tape, with PyTorch's semantics.

Each differentiable primitive call made while grad mode is on and some input requires
grad creates a :class:`Node` (the output's ``grad_fn``).  ``backward`` walks the nodes
in reverse topological order and applies each primitive's VJP rules from the registry;
those rules are written with tensor methods, so with ``create_graph=True`` the backward
pass is itself recorded and can be differentiated again.
"""
from __future__ import annotations

import weakref

from graphc import context
from graphc.context import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from graphc.autograd.hooks import (INFERENCE_SAVED, apply_hooks, is_inference,
                                   post_accumulate_hooks)
from graphc.creation import as_tensor, zeros
from graphc.tensor import Tensor


class Node:
    """``grad_fn`` of a tensor: one primitive call, its inputs and what its VJP needs.

    The engine sees any node through ``inputs``, ``n_outputs``, ``apply(grads)`` (one
    gradient or None per output in, one per input out), ``freed`` and ``retained``, and
    ``edges`` and ``hooks`` (tensor hooks by output number) where the node has them (see
    :func:`input_edges`, ``hooks.register_hook``).
    """
    __slots__ = ("prim", "inputs", "edges", "attrs", "out_data", "out_dtype", "versions",
                 "out_version", "freed", "retained", "hooks", "__weakref__")
    n_outputs = 1

    def __init__(self, prim, inputs, attrs, out_data, out_dtype, out_version_box):
        self.prim = prim
        self.inputs = inputs
        self.edges = input_edges(inputs)
        self.attrs = attrs
        self.out_data = out_data if "out" in prim.saves else None
        self.out_dtype = out_dtype
        # Saved values are checked against later in-place writes (PyTorch's version check):
        # saved inputs through their own counters, a saved output through the counter of
        # the tensor that owns it (a box shared with its views).
        self.versions = tuple((i, inputs[i]._version[0]) for i in prim.saves if i != "out")
        self.out_version = ((out_version_box, out_version_box[0])
                            if self.out_data is not None else None)
        self.freed = False
        self.retained = None          # {output_nr: weakref to the tensor} after retain_grad()
        self.hooks = None             # {output_nr: {id: hook}} from Tensor.register_hook
        for i in prim.saves:
            if i != "out" and is_inference(inputs[i]):
                raise RuntimeError(INFERENCE_SAVED)

    def apply(self, grads):
        return _run_node(self, grads[0])

    def name(self) -> str:
        return "".join(p.capitalize() for p in self.prim.name.split("_")) + "Backward0"

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self):#x}>"

    @property
    def next_functions(self):
        return tuple((_next_function(t, edge), 0 if edge is None else edge[1])
                     for t, edge in zip(self.inputs, self.edges))


class AccumulateGrad:
    """The node that stands for a leaf in ``next_functions``, as in PyTorch."""

    def __init__(self, variable):
        self.variable = variable

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self):#x}>"


def input_edges(inputs) -> tuple:
    """Where each input's gradient goes, fixed when the consuming node is made (PyTorch's
    edges): ``(grad_fn, output_nr)``, ``(None, 0)`` for a leaf, None when the input does
    not require grad.  An in-place op later gives the input a new ``grad_fn``; this use
    must still send its gradient to the history it actually read."""
    return tuple((t.grad_fn, t._output_nr) if t._requires_grad else None for t in inputs)


def _edges(node) -> tuple:
    """A node's edges; nodes that do not record them (compiled programs) are routed by
    their inputs' current history."""
    edges = getattr(node, "edges", None)
    return edges if edges is not None else input_edges(node.inputs)


def _next_function(t, edge):
    if edge is None:
        return None
    return edge[0] if edge[0] is not None else AccumulateGrad(t)


def _topological_order(roots):
    """Nodes reachable from ``roots``, each after every node that consumes its output."""
    order, seen = [], set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(_edges(root)))]
        while stack:
            node, edges = stack[-1]
            for edge in edges:
                child = edge[0] if edge is not None else None
                if child is not None and child not in seen:
                    seen.add(child)
                    stack.append((child, iter(_edges(child))))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _version_error(t, producer, saved, now):
    """PyTorch's text; ``producer`` is the edge (node, output_nr) that made t, if any."""
    which = ""
    if producer is not None and producer[0] is not None:
        name = producer[0].name().removesuffix("Backward0")
        which = f", which is output {producer[1]} of {name},"
    return RuntimeError(
        "one of the variables needed for gradient computation has been modified by an "
        f"inplace operation: [{t.type()} {list(t.shape)}]{which} is at version {now}; "
        f"expected version {saved} instead.")


def _run_node(node, g):
    """Apply a primitive node's VJP rules to the gradient ``g`` of its output."""
    if node.freed and node.prim.saves:
        raise RuntimeError(
            "Trying to backward through the graph a second time (or directly access saved "
            "tensors after they have already been freed). Saved intermediate values of the "
            "graph are freed when you call .backward() or autograd.grad(). Specify "
            "retain_graph=True if you need to backward through the graph a second time or "
            "if you need to access saved tensors after calling backward.")
    for index, saved in node.versions:
        now = node.inputs[index]._version[0]
        if now != saved:
            raise _version_error(node.inputs[index], node.edges[index], saved, now)
    prim, inputs = node.prim, node.inputs
    out = Tensor._wrap(node.out_data, node.out_dtype) if node.out_data is not None else None
    if out is not None and context.grad_enabled:
        # create_graph: the saved value is this node's output, so its history is the node
        # (without this, d(tanh)/dx = 1 - out**2 would be a constant to double backward).
        out._requires_grad, out.grad_fn = True, node
    if node.out_version is not None and node.out_version[0][0] != node.out_version[1]:
        raise _version_error(out, (node, 0), node.out_version[1], node.out_version[0][0])
    grads = []
    for i, t in enumerate(inputs):
        if node.edges[i] is None:
            grads.append(None)
            continue
        rule = prim.vjp[0] if prim.variadic else prim.vjp[i]
        if rule is None:
            grads.append(None)
            continue
        extra = {"index": i} if prim.variadic else {}
        gi = rule(g, out, *inputs, **extra, **node.attrs)
        if gi is not None and (gi.shape != t.shape or gi.dtype != t.dtype):
            raise RuntimeError(f"internal error: the VJP of {prim.name} for input {i} gave "
                               f"{gi.dtype.name}{list(gi.shape)}, expected "
                               f"{t.dtype.name}{list(t.shape)}")
        grads.append(gi)
    return grads


def _accumulate(store, key, g):
    prev = store.get(key)
    store[key] = g if prev is None else prev + g


def _accumulate_output(node_grads, edge, g):
    """Add g to the gradient of output ``nr`` of node ``fn``, where edge = (fn, nr)."""
    fn, nr = edge
    grads = node_grads.get(fn)
    if grads is None:
        grads = node_grads[fn] = [None] * fn.n_outputs
    prev = grads[nr]
    grads[nr] = g if prev is None else prev + g


def run_backward(tensors, grad_tensors, retain_graph=False, create_graph=False,
                 capture=None):
    """Backpropagate ``grad_tensors`` from ``tensors``.

    Without ``capture`` the gradients of leaves accumulate into their ``.grad``.  With
    ``capture`` (a list of tensors, for ``autograd.grad``) nothing accumulates and the
    gradients of the captured tensors are returned instead.
    """
    node_grads: dict = {}
    leaf_grads: dict = {}
    roots = []
    trace = context.active_trace()
    if trace is not None:
        trace.ran_backward = True   # the compiled program then has no backward of its own
    for t, g in zip(tensors, grad_tensors):
        if not t._requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not "
                               "have a grad_fn")
        if t.grad_fn is None:
            _accumulate(leaf_grads, t, g)
        else:
            _accumulate_output(node_grads, (t.grad_fn, t._output_nr), g)
            roots.append(t.grad_fn)
    captured = {(t.grad_fn, t._output_nr): t for t in capture or () if t.grad_fn is not None}
    results = {}
    with context.grad_mode(create_graph):
        for node in _topological_order(roots):
            grads = node_grads.pop(node, None)
            if grads is None:
                continue
            if getattr(node, "hooks", None):
                grads = [apply_hooks(node.hooks.get(nr), g) for nr, g in enumerate(grads)]
            for nr, g in enumerate(grads):
                if (node, nr) in captured and g is not None:
                    results[captured[(node, nr)]] = g
                owner = node.retained.get(nr) if node.retained else None
                owner = owner() if owner is not None else None
                if owner is not None and capture is None and g is not None:
                    owner.grad = g.detach().clone() if owner.grad is None else owner.grad + g
            for t, edge, gi in zip(node.inputs, _edges(node), node.apply(grads)):
                if gi is None or edge is None:
                    continue
                if edge[0] is None:
                    _accumulate(leaf_grads, t, gi)
                else:
                    _accumulate_output(node_grads, edge, gi)
            if not retain_graph:
                node.freed = True
        # Leaf hooks run where the gradient arrives; autograd.grad reaches only its inputs.
        wanted = None if capture is None else {id(t) for t in capture}
        leaf_grads = {t: apply_hooks(t.__dict__.get("_grad_hooks"), g)
                      for t, g in leaf_grads.items() if wanted is None or id(t) in wanted}
    if capture is not None:
        return [results.get(t, leaf_grads.get(t)) for t in capture]
    for leaf, g in leaf_grads.items():
        _accumulate_into_leaf(leaf, g, create_graph)
        for hook in post_accumulate_hooks(leaf):
            hook(leaf)
    _run_queued_callbacks()
    return None


# ---- the end of a backward pass --------------------------------------------------------------
_queued: list = []


def queue_callback(callback) -> None:
    """Run ``callback()`` once, when the backward pass now running has written every
    leaf's ``.grad`` and run its post-accumulate hooks (PyTorch's
    ``Variable._execution_engine.queue_callback``).  A hook sees one leaf; a callback sees
    the finished pass: DistributedDataParallel waits there for the gradient all-reduces its
    hooks started and writes the averaged gradients back."""
    _queued.append(callback)


def _run_queued_callbacks() -> None:
    """Each callback runs once even if one raises (the rest are dropped with it, so none
    leaks into the next backward pass)."""
    callbacks = _queued[:]
    _queued.clear()
    for callback in callbacks:
        callback()


def _accumulate_into_leaf(leaf, g, create_graph):
    if not create_graph:
        g = g.detach()
    if leaf.grad is None:
        # Own the storage (the same gradient tensor may have reached several leaves), in
        # row-major order as PyTorch's AccumulateGrad does: a linear layer's weight
        # gradient arrives as a transposed view, and state cloned from it (momentum) would
        # inherit that layout.
        leaf.grad = g if create_graph else (g.clone() if g.is_contiguous() else g.contiguous())
    elif create_graph:
        leaf.grad = leaf.grad + g
    else:
        leaf.grad.add_(g)         # in place, as PyTorch; works on traced tensors too


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """``tensor.backward()`` and ``autograd.backward``: accumulate d(tensors)/d(leaf) into
    each leaf's ``.grad``; with ``inputs``, into those tensors' ``.grad`` only."""
    tensors, seeds = _seeded(tensors, grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is None:
        run_backward(tensors, seeds, retain_graph, create_graph)
        return
    inputs = _as_list(inputs)
    grads = run_backward(tensors, seeds, retain_graph, create_graph, capture=inputs)
    for t, g in zip(inputs, grads):
        if g is not None:
            _accumulate_into_leaf(t, g, create_graph)


def _as_list(tensors) -> list:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _seeded(tensors, grads):
    """``tensors`` and their seed gradients as lists; a missing seed is ones, allowed for
    one-element tensors only (as in PyTorch)."""
    tensors = _as_list(tensors)
    grads = [None] * len(tensors) if grads is None else _as_list(grads)
    seeds = []
    for t, g in zip(tensors, grads):
        if g is None:
            if t.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = t.new_ones(t.shape)
        seeds.append(_as_grad(t, g))
    return tensors, seeds


def _as_grad(tensor, gradient):
    gradient = as_tensor(gradient, dtype=tensor.dtype)
    if gradient.shape != tensor.shape:
        raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                           f"{gradient.shape!r} and output[0] has a shape of "
                           f"{tensor.shape!r}.")
    return gradient


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False,
         materialize_grads=False):
    """``graphc.autograd.grad``: gradients of ``outputs`` w.r.t. ``inputs``, returned
    as a tuple instead of accumulated into ``.grad``; with ``materialize_grads``, an
    input the outputs do not depend on gets zeros instead of None."""
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when "
                         "materialize_grads=True, but got: allow_unused=False.")
    if is_grads_batched:
        raise NotImplementedError("autograd.grad(is_grads_batched=True) is not supported; "
                                  "call autograd.grad once per grad_outputs row")
    allow_unused = materialize_grads if allow_unused is None else allow_unused
    outputs, gs = _seeded(outputs, grad_outputs)
    inputs = _as_list(inputs)
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    result = run_backward(outputs, gs, retain_graph, create_graph, capture=inputs)
    for index, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(f"The differentiated Tensor at index {index} appears to not "
                               f"have been used in the graph. Set allow_unused=True if this "
                               f"is the desired behavior.")
    if materialize_grads:
        result = [zeros(t.shape, dtype=t.dtype) if g is None else g
                  for t, g in zip(inputs, result)]
    return tuple(result)


def retain(tensor):
    """``tensor.retain_grad()``: keep the gradient of a non-leaf in ``.grad``."""
    if tensor.grad_fn is not None:
        if tensor.grad_fn.retained is None:
            tensor.grad_fn.retained = {}
        tensor.grad_fn.retained[tensor._output_nr] = weakref.ref(tensor)


def Variable(data, requires_grad=False, volatile=False):
    """Legacy ``autograd.Variable``: today just a tensor (as in PyTorch >= 0.4)."""
    t = as_tensor(data)
    if requires_grad:
        t.requires_grad_(True)
    return t


__all__ = ["Variable", "backward", "grad", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled"]
