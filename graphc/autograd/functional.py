"""``graphc.autograd.functional``: vjp, jvp, jacobian, hessian, vhp and hvp of a Python
function, as in PyTorch (reverse mode only).  Built on ``autograd.grad``; forward-mode
products (``jvp``, ``hvp``) use the double-backward trick: the VJP is linear in its
cotangent ``u``, so differentiating ``u -> vjp(u)`` at any ``u`` gives the JVP.

Imported by ``graphc/__init__.py`` (not by ``graphc.autograd``, which the modules it
needs import)."""
from __future__ import annotations

from graphc import functional as F
from graphc.autograd.engine import grad
from graphc.creation import zeros
from graphc.tensor import Tensor


def _as_tuple(x, arg_name, fn_name):
    is_tuple = isinstance(x, tuple)
    xs = x if is_tuple else (x,)
    for i, t in enumerate(xs):
        if not isinstance(t, Tensor):
            what = f"The {arg_name} given to {fn_name} must be either a Tensor or a tuple of " \
                   f"Tensors but the value at index {i} has type {type(t)}." if is_tuple else \
                   f"The {arg_name} given to {fn_name} must be either a Tensor or a tuple of " \
                   f"Tensors but the given {arg_name} has type {type(t)}."
            raise TypeError(what)
    return is_tuple, xs


def _prepare(inputs, create_graph):
    """Inputs the function is differentiated at: fresh leaves, or (``create_graph``)
    views that keep the caller's history so the result is differentiable."""
    return tuple(t.view_as(t) if create_graph and t.requires_grad
                 else t.detach().requires_grad_(True) for t in inputs)


def _finish(ts, create_graph):
    return tuple(t if create_graph or t is None else t.detach() for t in ts)


def _grad(outputs, inputs, grad_outputs, create_graph, strict, fn_name, retain=True):
    """Gradients with zeros for the inputs ``outputs`` do not depend on (an error in
    ``strict`` mode, as in PyTorch)."""
    outputs = [o for o in outputs]
    result = [None] * len(inputs)
    if any(o.requires_grad for o in outputs):
        pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
        result = list(grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                           retain_graph=retain, create_graph=create_graph,
                           allow_unused=True))
    for i, (t, g) in enumerate(zip(inputs, result)):
        if g is None:
            if strict:
                raise RuntimeError(f"The output of the user-provided function is independent "
                                   f"of input {i}. This is not allowed in strict mode.")
            result[i] = zeros(t.shape, dtype=t.dtype)
    return tuple(result)


def _untuple(is_tuple, xs):
    return xs if is_tuple else xs[0]


def _check_v(v, outputs, fn_name):
    if v is None:
        if len(outputs) != 1 or outputs[0].numel() != 1:
            raise RuntimeError("The vector v can only be None if the user-provided function "
                               "returns a single Tensor with a single element.")
        return (outputs[0].new_ones(outputs[0].shape),)
    _, vs = _as_tuple(v, "v", fn_name)
    if len(vs) != len(outputs):
        raise RuntimeError(f"v is a tuple of invalid length: should be {len(outputs)} but got "
                           f"{len(vs)}.")
    for i, (a, b) in enumerate(zip(vs, outputs)):
        if a.shape != b.shape:
            raise RuntimeError(f"Entry {i} in v has invalid size: should be {b.shape} but "
                               f"got {a.shape}.")
    return vs


def _check_input_v(v, inputs, fn_name):
    """``v`` for a product with the inputs' side (jvp, vhp, hvp)."""
    if v is None:
        if len(inputs) != 1 or inputs[0].numel() != 1:
            raise RuntimeError("The vector v can only be None if the input to the "
                               "user-provided function is a single Tensor with a single "
                               "element.")
        return (inputs[0].new_ones(inputs[0].shape),)
    return _check_v(v, inputs, fn_name)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J)."""
    is_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
    inputs = _prepare(inputs, create_graph)
    out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function",
                                   "vjp")
    vs = _check_v(v, outputs, "vjp")
    grads = _grad(outputs, inputs, vs, create_graph, strict, "vjp")
    return (_untuple(out_tuple, _finish(outputs, create_graph)),
            _untuple(is_tuple, _finish(grads, create_graph)))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v), by double backward."""
    is_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
    inputs = _prepare(inputs, create_graph)
    vs = _check_input_v(v, inputs, "jvp")
    out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function",
                                   "jvp")
    us = tuple(zeros(o.shape, dtype=o.dtype, requires_grad=True) for o in outputs)
    vjps = _grad(outputs, inputs, us, True, strict, "jvp")
    result = _grad(vjps, us, vs, create_graph, strict, "jvp")
    return (_untuple(out_tuple, _finish(outputs, create_graph)),
            _untuple(out_tuple, _finish(result, create_graph)))


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """d func(inputs) / d inputs, one row of reverse-mode gradients per output element;
    each block has shape ``output.shape + input.shape``."""
    if strategy != "reverse-mode":
        raise NotImplementedError(f"jacobian(strategy={strategy!r}) is not supported; use "
                                  f"strategy='reverse-mode'")
    is_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    inputs = _prepare(inputs, create_graph)
    out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function",
                                   "jacobian")
    blocks = []
    for out in outputs:
        flat = out.reshape(-1)
        rows = [[] for _ in inputs]
        for j in range(flat.numel()):
            for i, g in enumerate(_grad([flat[j]], inputs, [flat.new_ones(())],
                                        create_graph, strict, "jacobian")):
                rows[i].append(g)
        per_input = []
        for inp, r in zip(inputs, rows):
            block = (F.stack(r) if r else zeros((0,) + tuple(inp.shape), dtype=inp.dtype))
            per_input.append(block.reshape(tuple(out.shape) + tuple(inp.shape)))
        blocks.append(_untuple(is_tuple, _finish(per_input, create_graph)))
    return _untuple(out_tuple, tuple(blocks))


def _scalar_function(func, fn_name):
    def scalar(*inputs):
        out = func(*inputs)
        is_tuple, outs = _as_tuple(out, "outputs of the user-provided function", fn_name)
        if is_tuple or outs[0].numel() != 1:
            raise RuntimeError(f"The function given to {fn_name} should return a single "
                               f"Tensor with a single element")
        return outs[0].reshape(())
    return scalar


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The jacobian of the gradient of a scalar function."""
    is_tuple, xs = _as_tuple(inputs, "inputs", "hessian")
    scalar = _scalar_function(func, "hessian")

    def gradient(*xs):
        return jacobian(scalar, xs, create_graph=True, strict=strict)

    result = jacobian(gradient, xs, create_graph=create_graph, strict=strict)
    if not is_tuple:
        return result[0][0]
    return result


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) of a scalar function."""
    is_tuple, inputs = _as_tuple(inputs, "inputs", "vhp")
    inputs = _prepare(inputs, create_graph)
    out = _scalar_function(func, "vhp")(*inputs)
    vs = _check_input_v(v, inputs, "vhp")
    jac = _grad([out], inputs, [out.new_ones(())], True, strict, "vhp")
    result = _grad(jac, inputs, vs, create_graph, strict, "vhp")
    return _finish((out,), create_graph)[0], _untuple(is_tuple, _finish(result, create_graph))


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) of a scalar function, by double backward."""
    is_tuple, inputs = _as_tuple(inputs, "inputs", "hvp")
    inputs = _prepare(inputs, create_graph)
    out = _scalar_function(func, "hvp")(*inputs)
    vs = _check_input_v(v, inputs, "hvp")
    jac = _grad([out], inputs, [out.new_ones(())], True, strict, "hvp")
    us = tuple(zeros(t.shape, dtype=t.dtype, requires_grad=True) for t in inputs)
    back = _grad(jac, inputs, us, True, strict, "hvp")
    result = _grad(back, us, vs, create_graph, strict, "hvp")
    return _finish((out,), create_graph)[0], _untuple(is_tuple, _finish(result, create_graph))


__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]
