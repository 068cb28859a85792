"""The autodiff pass: forward graph -> backward graph.

It walks the forward ops in reverse and applies each primitive's VJP rules -- the same
rules eager autograd runs -- to tracer tensors, so the backward graph is recorded by the
ordinary tracer.  Forward values a rule reads become inputs of the backward graph: they
are *saved* by the forward program, except values made by a cheap elementwise op from
values the backward has anyway, which are recomputed instead of stored.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphc.context import no_grad, tracing
from graphc.ir import Graph, Namer, Op, Value, verify
from graphc.ops import REGISTRY
from graphc.tensor import Tensor
from graphc.tracing.trace import Trace


@dataclass
class Backward:
    """``graph`` maps (cotangents of ``grad_outputs``, then ``saved`` forward values) to
    the gradients of the forward inputs listed in ``wrt`` (indices into fwd.inputs):
    those of the requested inputs that some differentiated output depends on.  The
    others get no gradient at all, as in eager autograd (their ``.grad`` stays None)."""
    graph: Graph
    grad_outputs: list      # indices into fwd.outputs that take a cotangent
    saved: list             # forward Values the backward reads, in input order
    wrt: list


def differentiable_values(fwd: Graph, wrt, requires_grad=None, custom=None) -> set:
    """Forward values that depend differentiably on the inputs ``wrt``; when given,
    only values in ``requires_grad`` (those that required grad when traced: a value
    computed under ``no_grad`` or from a ``detach()`` carries no gradient).  An output
    of a custom-VJP region (``custom``) depends on the region's inputs."""
    live = {fwd.inputs[i] for i in wrt}
    custom = custom or {}
    for op in fwd.ops:
        prim = REGISTRY.get(op.name)
        operands = custom[op.out].inputs if op.out in custom else op.inputs
        if prim is not None and prim.vjp is not None and op.out.type.dtype.is_floating_point \
                and any(v in live for v in operands) \
                and (requires_grad is None or op.out in requires_grad):
            live.add(op.out)
    return live


def autodiff(fwd: Graph, wrt, requires_grad=None, custom=None, hooks=None) -> Backward:
    """Differentiate every floating output of ``fwd`` w.r.t. the inputs ``wrt``
    (through the values in ``requires_grad`` only, when given).  ``custom`` maps the
    outputs of traced ``autograd.Function`` calls to their ``CustomVJP``: the user's
    backward is applied there instead of the VJPs of the ops forward recorded.
    ``hooks`` maps values to a function applied to their complete gradient
    (``Tensor.register_hook`` while tracing)."""
    wrt = list(wrt)
    custom = custom or {}
    hooks = hooks or {}
    live = differentiable_values(fwd, wrt, requires_grad, custom)
    tr = Trace(f"{fwd.name}_backward")
    cotangents: dict = {}           # a value returned twice gets the sum of both
    grad_outputs = []
    for i, v in enumerate(fwd.outputs):
        if v in live:
            grad_outputs.append(i)
            cotangents.setdefault(v, []).append(tr.input_tensor(v.type, f"grad_{v.name}"))
    n_cotangents = len(tr.inputs)

    def forward_value(v: Value) -> Tensor:
        return Tensor._wrap(v, v.type.dtype)

    with tracing(tr), no_grad():
        ct = {v: sum(gs[1:], gs[0]) for v, gs in cotangents.items()}
        for op in reversed(fwd.ops):
            if op.out in custom:
                tr.source = op.source
                apply_custom_vjp(custom[op.out], ct, live, hooks)
                continue
            g = ct.pop(op.out, None)
            if g is None:
                continue
            if op.out in hooks:
                g = hooks[op.out](g)
            prim = REGISTRY[op.name]
            tr.source = op.source           # backward ops point at their forward line
            inputs = [forward_value(v) for v in op.inputs]
            out = forward_value(op.out) if "out" in prim.saves else None
            for i, v in enumerate(op.inputs):
                rule = prim.vjp[0] if prim.variadic else prim.vjp[i]
                if v not in live or rule is None:
                    continue
                extra = {"index": i} if prim.variadic else {}
                gi = rule(g, out, *inputs, **extra, **op.attr_dict)
                ct[v] = gi if v not in ct else ct[v] + gi
        wrt = [i for i in wrt if fwd.inputs[i] in ct]
        for i in wrt:
            if fwd.inputs[i] in hooks:
                ct[fwd.inputs[i]] = hooks[fwd.inputs[i]](ct[fwd.inputs[i]])
        outputs = [tr.value_of(ct[fwd.inputs[i]]) for i in wrt]
    saved_inputs = tr.inputs[n_cotangents:]
    by_input = {b: f for f, b in tr.external.items()}
    graph = tr.graph(outputs)
    graph, saved_inputs = recompute_cheap_values(graph, saved_inputs, by_input, fwd)
    return Backward(verify(graph), grad_outputs, [by_input[b] for b in saved_inputs], wrt)


def apply_custom_vjp(region, ct, live, hooks) -> None:
    """At the last output of a custom-VJP region met walking back (every cotangent of the
    region's outputs is then complete), apply its rule once and pass the gradients to
    the region's inputs."""
    grads = [None if v is None else ct.pop(v, None) for v in region.outputs]
    grads = [hooks[v](g) if g is not None and v in hooks else g
             for v, g in zip(region.outputs, grads)]
    if all(g is None for g in grads):
        return
    for v, gi in zip(region.inputs, region.rule(grads)):
        if v is not None and v in live and gi is not None:
            ct[v] = gi if v not in ct else ct[v] + gi


# Kinds of op whose result the backward recomputes rather than saves: elementwise math
# and views cost one pass over memory (or nothing), less than storing and reloading.
CHEAP_KINDS = ("elementwise", "movement")


def recompute_cheap_values(bwd: Graph, saved_inputs, by_input, fwd: Graph):
    """Replace saved values made by an elementwise op whose operands the backward has
    anyway (forward graph inputs, constants, or other saved values) with a
    recomputation at the top of the backward graph, and saved constants with the
    constant.  Saves memory, costs one cheap op."""
    producers = fwd.producers()
    fwd_inputs = set(fwd.inputs)
    saved_fwd = {by_input[b] for b in saved_inputs}
    inputs = [v for v in bwd.inputs if v not in set(saved_inputs)]
    kept, prologue, mapping = [], [], {}
    extra_inputs: dict = {}
    namer = Namer()
    namer.taken.update(v.name for v in bwd.inputs)
    namer.taken.update(op.out.name for op in bwd.ops)

    def available(v: Value) -> bool:
        op = producers.get(v)
        return v in fwd_inputs or v in saved_fwd or (op is not None and op.name == "constant")

    def operand(v: Value) -> Value:
        """The backward's handle on an available forward value."""
        op = producers.get(v)
        if op is not None and op.name == "constant":
            new = Value(namer.fresh(v.name), v.type)
            prologue.append(Op("constant", (), op.attrs, new, op.source))
            return new
        if v not in extra_inputs:
            extra_inputs[v] = Value(namer.fresh(v.name), v.type)
        return extra_inputs[v]

    for b in saved_inputs:
        f = by_input[b]
        op = producers.get(f)
        prim = REGISTRY.get(op.name) if op is not None else None
        if op is not None and op.name == "constant":      # re-made, never saved
            prologue.append(Op("constant", (), op.attrs, b, op.source))
            continue
        if prim is not None and prim.kind in CHEAP_KINDS and all(map(available, op.inputs)):
            operands = tuple(operand(v) for v in op.inputs)
            prologue.append(Op(op.name, operands, op.attrs, b, op.source))
            continue
        kept.append(b)
        mapping[f] = b
    # Forward values now needed as operands: reuse the kept input when there is one.
    new_saved = list(kept)
    renames = {}
    for f, handle in extra_inputs.items():
        if f in mapping:
            renames[handle] = mapping[f]
        else:
            new_saved.append(handle)
            by_input[handle] = f
    prologue = [Op(op.name, tuple(renames.get(v, v) for v in op.inputs), op.attrs, op.out,
                   op.source) for op in prologue]
    graph = Graph(inputs + new_saved, prologue + list(bwd.ops), list(bwd.outputs), bwd.name)
    return graph, new_saved
