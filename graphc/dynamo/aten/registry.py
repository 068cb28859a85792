"""The lowering table and the helpers every family of lowerings shares: ATen's dtypes
by name, its ``int[n]`` and ``dim`` arguments, and a backward op as graphc's own
gradient of the forward."""
from __future__ import annotations

import torch

import graphc

aten = torch.ops.aten

LOWERINGS: dict = {}


def lowering(*ops):
    """Register the decorated function as the lowering of every overload in ``ops``; a
    packet (``aten.eq``) stands for its tensor overloads (``_on_tensors``)."""
    def register(fn):
        for op in ops:
            if isinstance(op, torch._ops.OpOverloadPacket):
                for name in op.overloads():
                    if _on_tensors(getattr(op, name)):
                        LOWERINGS[getattr(op, name)] = fn
            else:
                LOWERINGS[op] = fn
        return fn
    return register


def _on_tensors(overload) -> bool:
    """Whether an overload computes tensors from a tensor operand without writing one:
    not an ``out=`` or in-place form, nor one on Python values (``eq.int``, ``eq.str``:
    TorchScript's, returning Python values)."""
    schema = overload._schema
    tensor = torch._C.TensorType.get()
    return (not schema.is_mutable and any(a.type == tensor for a in schema.arguments)
            and all(r.type == tensor for r in schema.returns))


# ---------------------------------------------------------------------------- dtypes

def graphc_dtype(dtype):
    """The graphc dtype of the same name as a ``torch.dtype`` (None stays None).

    graphc spells its dtypes as PyTorch does (``graphc.float32``...), so the name is the
    whole mapping; a dtype graphc lacks (complex, unsigned beyond uint8, float8) raises.
    """
    if dtype is None:
        return None
    name = str(dtype).removeprefix("torch.")
    found = getattr(graphc, name, None)
    if not isinstance(found, graphc.dtype):
        raise TypeError(f"graphc has no dtype {dtype}")
    return found


SUPPORTED_DTYPES = frozenset(d.name for d in graphc.dtypes.ALL)


def _all_dims(x, dim):
    """ATen's ``dim=None`` or ``[]`` (every dim) as an explicit tuple, so keepdim works."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return tuple(range(x.ndim)) or None
    return tuple(dim) if isinstance(dim, (list, tuple)) else dim


def _ints(value, n):
    """An ATen ``int[n]`` argument (one int or a list) as a tuple of n ints."""
    if not isinstance(value, (list, tuple)):
        return (value,) * n
    return tuple(value) * (n if len(value) == 1 else 1)


def _float(x):
    """Half input as float32: normalisations compute in float32, as PyTorch's kernels
    do, and round their results (statistics included) to the input's dtype."""
    return x.float() if x.dtype in (graphc.float16, graphc.bfloat16) else x


def _gradients(forward, grad_output, inputs, wanted):
    """The gradients of ``forward(*inputs)`` for the inputs ``wanted`` marks (None else).

    ATen's backward ops are the vector-Jacobian products of forward ops graphc has as
    composites with autograd, so each is graphc's own gradient of its forward,
    recomputed on detached inputs (when compiled, the passes drop the unused forward).
    """
    with graphc.enable_grad():
        leaves = [x.detach().requires_grad_(w) if x is not None else None
                  for x, w in zip(inputs, wanted)]
        out = forward(*leaves)
        asked = [leaf for leaf, w in zip(leaves, wanted) if w and leaf is not None]
        grads = iter(graphc.autograd.grad(out, asked, grad_output, allow_unused=True))
    return tuple(next(grads) if w and leaf is not None else None
                 for leaf, w in zip(leaves, wanted))
