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
- ``kind``: how it lowers: elementwise, reduction, movement, contraction or random.

Composites (softmax, layer norm, ...) are not here: they live in ``graphc.composite``
and call primitives only.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

from graphc.dtypes import TensorType

# numpy reports inf/nan from float math as RuntimeWarnings; PyTorch makes them silently
# (log(0) = -inf).  A filter on graphc's own modules costs nothing per call, unlike
# np.errstate.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"graphc\.")

KINDS = ("elementwise", "reduction", "movement", "contraction", "random")


@dataclass(frozen=True, eq=False)
class Primitive:
    name: str
    kind: str
    infer: Callable[..., TensorType]
    impl: Callable
    vjp: tuple | None = None          # one rule (or None) per input; None: not differentiable
    saves: tuple = ()                 # input indices and/or "out" whose values the VJP reads
    attrs: tuple = ()                 # attribute names, in printing order
    variadic: bool = False            # takes any number of inputs (concat)
    doc: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


REGISTRY: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    assert prim.kind in KINDS, prim
    assert prim.name not in REGISTRY, f"primitive {prim.name} defined twice"
    REGISTRY[prim.name] = prim
    return prim


def fmt_types(*types: TensorType) -> str:
    return ", ".join(f"{t.dtype.name}{list(t.shape)}" for t in types)


def op_error(op: str, message: str, *types: TensorType) -> RuntimeError:
    """The one spelling of a shape/dtype error: op name, problem, operand types."""
    suffix = f" (operands: {fmt_types(*types)})" if types else ""
    return RuntimeError(f"{op}: {message}{suffix}")


def broadcast_shapes(op: str, *types: TensorType) -> tuple:
    """numpy/PyTorch broadcasting of the operands' shapes, with PyTorch's error text."""
    shapes = [t.shape for t in types]
    out = shapes[0]
    for s in shapes[1:]:                     # fast paths: equal shapes, scalar operands
        if s == out or not s:
            continue
        if not out:
            out = s
            continue
        break
    else:
        return out
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(-ndim, 0):
        size = 1
        for s in shapes:
            if -axis <= len(s):
                d = s[axis]
                if d != 1:
                    if size != 1 and d != size:
                        raise op_error(op, f"the size of tensor a ({size}) must match the size "
                                           f"of tensor b ({d}) at non-singleton dimension "
                                           f"{ndim + axis}", *types)
                    size = d
        out.append(size)
    return tuple(out)


def unbroadcast(g, shape: tuple):
    """Sum ``g`` down to ``shape``: the VJP of implicit broadcasting."""
    if g.shape == shape:
        return g
    lead = g.dim() - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(dim=axes, keepdim=True)
    return g.reshape(shape)


# Importing the definition modules fills the registry.
from graphc.ops import elementwise, reduce, movement, contraction, random  # noqa: E402,F401
