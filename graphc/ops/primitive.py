"""The primitive record and the registry it goes into (a leaf: the definition modules
import it, and ``graphc.ops`` re-exports it after importing them).

A :class:`Primitive` holds everything any stage needs to know about an op; what a
backend needs depends on its ``kind``:

- elementwise: ``scalar(ops, *operands)``, the op as an expression over the scalar ops
  of ``graphc.ops.scalar`` (which every code generator implements);
- reduction: ``accumulation``, its accumulator kind, identity and combining op;
- movement: ``index_map(m, index, **attrs)``, the value at output ``index`` in terms of
  the inputs' values at mapped indices (lowering reads through it: no data moves), or
  ``scatter``: a serial kernel accumulating into a copy of the first input.  ``view``
  marks the maps whose eager result is a numpy view of the first input;
- contraction and random: backends implement each one as a kernel of its own;
- collective: communication between processes (``graphc.ops.collective``), started and
  waited for by the program between its kernels.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from graphc.dtypes import HALF, TensorType, float32

# numpy reports inf/nan from float math as RuntimeWarnings; PyTorch makes them silently
# (log(0) = -inf).  A filter on graphc's own modules costs nothing per call, unlike
# np.errstate.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"graphc\.")

KINDS = ("elementwise", "reduction", "movement", "contraction", "random", "collective")


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
    scalar: Callable | None = None    # elementwise: scalar(ops, *operands) over SCALAR_OPS
    divisor: int | None = None        # elementwise: the input that, when an integer, must
    #                                   not be 0 (PyTorch: RuntimeError ZeroDivisionError)
    accumulation: object = None       # reduction: a scalar.Accumulation
    index_map: Callable | None = None  # movement: index_map(m, index, **attrs)
    view: bool = False                # movement: the eager result is a view of input 0
    scatter: bool = False             # movement: lowered as a serial scatter kernel
    doc: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


REGISTRY: dict[str, Primitive] = {}

_HALF_NP = tuple(d.np for d in HALF)


def run(prim: Primitive, arrays, attrs: dict, out_type: TensorType):
    """Run ``prim``'s numpy reference (eager and the interpreter) as PyTorch's CPU kernels
    do: float16/bfloat16 operands are computed on in float32 and the result is rounded
    to its dtype once.  Views keep their storage, so they are left alone."""
    if not prim.view and any(a.dtype in _HALF_NP for a in arrays):
        arrays = [a.astype(np.float32) if a.dtype in _HALF_NP else a for a in arrays]
    result = prim.impl(*arrays, **attrs)
    if type(result) is not np.ndarray or result.dtype != out_type.dtype.np:
        result = np.asarray(result, dtype=out_type.dtype.np)
    return result


def register(prim: Primitive) -> Primitive:
    """Add ``prim``, checking it carries what its kind's lowering needs."""
    assert prim.kind in KINDS, prim
    assert (prim.scalar is not None) == (prim.kind == "elementwise"), prim
    assert (prim.accumulation is not None) == (prim.kind == "reduction"), prim
    assert prim.kind != "movement" or (prim.index_map is None) == prim.scatter, prim
    assert not prim.view or prim.index_map is not None, prim
    assert prim.divisor is None or prim.kind == "elementwise", prim
    assert prim.name not in REGISTRY, f"primitive {prim.name} defined twice"
    REGISTRY[prim.name] = prim
    return prim


def fmt_types(*types: TensorType) -> str:
    return ", ".join(f"{t.dtype.name}{list(t.shape)}" for t in types)


def op_error(op: str, message: str, *types: TensorType, exc=RuntimeError) -> Exception:
    """The one spelling of a shape/dtype error: op name, problem, operand types; ``exc``
    is the type PyTorch raises for it (RuntimeError unless it says otherwise)."""
    suffix = f" (operands: {fmt_types(*types)})" if types else ""
    return exc(f"{op}: {message}{suffix}")


def broadcast_shapes(op: str, *types: TensorType, operands=None) -> tuple:
    """numpy/PyTorch broadcasting of the operands' shapes, with PyTorch's error text;
    the error names ``operands`` when given (matmul broadcasts its batch dimensions)."""
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
                                           f"{ndim + axis}", *(operands or types))
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


