"""The choke point every primitive call passes through.

``bind(prim, *tensors, **attrs)`` checks shapes and dtypes with the primitive's rule
(the one place error texts are written), then runs the numpy reference and, in grad
mode, records an autograd node.  Tracing (``graphc.tracing``) hooks in here too, so the
same front-end code runs eagerly or builds IR.
"""
from __future__ import annotations

import numpy as np

from graphc import autograd, context
from graphc.context import traces as _traces
from graphc.dtypes import TensorType
from graphc.ops import REGISTRY
from graphc.ops.primitive import run
from graphc.tensor import Tensor

# Movement primitives whose numpy implementation returns a view of the input.
VIEW_PRIMITIVES = frozenset(p.name for p in REGISTRY.values() if p.view)


def bind(prim, *args, **attrs):
    """Apply primitive ``prim`` to tensors ``args``; returns the output tensor."""
    out_type = prim.infer(*[TensorType(a._array.shape, a.dtype) for a in args], **attrs)
    tracer = _traces[-1] if _traces else None
    data = tracer.record(prim, args, attrs, out_type) if tracer is not None else None
    if data is None:
        data = run(prim, [a._data for a in args], attrs, out_type)
        shares = prim.name in VIEW_PRIMITIVES and np.may_share_memory(data, args[0]._array)
    else:
        shares = prim.name in VIEW_PRIMITIVES      # a traced view aliases its base too
    out = Tensor._wrap(data, out_type.dtype)
    if shares:
        base = args[0]
        out._base = base._base if base._base is not None else base
        out._version = base._version
    if (context.grad_enabled and prim.vjp is not None and out_type.dtype.category == 2
            and any(a._requires_grad for a in args)):
        out._requires_grad = True
        out.grad_fn = autograd.Node(prim, args, attrs, data, out_type.dtype, out._version)
        if tracer is not None and type(data) is not np.ndarray:
            tracer.differentiable.add(data)     # autodiff differentiates only these
    return out
