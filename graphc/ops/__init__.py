"""The primitive registry: every primitive operation is defined once, here.

A :class:`Primitive` holds everything any stage needs to know about an op:

- ``infer(*types, **attrs) -> TensorType``: the shape and dtype rule; it is also where
  bad input is rejected with an error naming the op, the shapes and the dtypes;
- ``impl(*arrays, **attrs) -> ndarray``: the numpy reference (eager mode, interpreter);
- ``vjp``: one rule per input, ``rule(g, out, *inputs, **attrs) -> Tensor`` written with
  graphc tensor methods only, so the same rule runs under eager autograd and under
  tracing (the IR autodiff pass); ``None`` marks an input with no gradient;
- ``saves``: which of the inputs (by index) and ``"out"`` the VJP reads the *values* of.
  Only those are version-checked by autograd (an in-place write to any other input is
  harmless, as in PyTorch);
- ``kind``: how it lowers: elementwise, reduction, movement, contraction, random or
  collective, with
  what that lowering needs (``scalar``, ``accumulation``, ``index_map``/``scatter``; see
  ``graphc.ops.primitive``).

Composites (softmax, layer norm, ...) are not here: they live in ``graphc.composite``
and call primitives only.
"""
from graphc.ops.primitive import (KINDS, REGISTRY, Primitive, broadcast_shapes, fmt_types,
                                  op_error, register, unbroadcast)
from graphc.ops.scalar import ACCUMULATIONS, SCALAR_OPS, Accumulation

# Importing the definition modules fills the registry.
from graphc.ops import (elementwise, reduce, movement, contraction, random,  # noqa: F401
                        collective)

__all__ = ["KINDS", "REGISTRY", "Primitive", "broadcast_shapes", "fmt_types", "op_error",
           "register", "unbroadcast", "ACCUMULATIONS", "SCALAR_OPS", "Accumulation"]
