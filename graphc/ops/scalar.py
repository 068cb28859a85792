"""The scalar vocabulary code generators implement: scalar ops and accumulations.

An elementwise primitive lowers to an expression over these scalar ops (its record's
``scalar`` rule calls them on an ops handler, as Inductor's ``ops.exp(x)``), and every
code generator maps each scalar op once (one method per op).  Adding a primitive that
composes existing scalar ops touches no backend; a new scalar op (a new transcendental,
say) is one method per backend, and the registry walk in tests/test_grad.py fails until
every backend has it.

A reduction names one ``Accumulation``: the loop IR accumulator kind, its identity and
the scalar op that folds a value in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# name -> number of operands.  The handler also offers ``const(value)``: a constant of
# the operands' dtype.  ``cast`` converts to the handler's result dtype.
SCALAR_OPS = {
    **dict.fromkeys(("neg", "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tanh",
                     "sigmoid", "erf", "floor", "abs", "sign", "logical_not", "cast"), 1),
    **dict.fromkeys(("add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2",
                     "floor_divide", "remainder",
                     "logical_and", "logical_or", "eq", "ne", "lt", "le", "gt", "ge"), 2),
    "where": 3,
}


def scalar_op(name: str):
    """The scalar rule of a primitive that is the scalar op of the same name."""
    assert name in SCALAR_OPS, f"{name} is not a scalar op"
    return lambda ops, *operands: getattr(ops, name)(*operands)


@dataclass(frozen=True)
class Accumulation:
    """How a reduction folds its values: the loop IR accumulator ``kind``, the scalar op
    that ``combine``s the running value with the next one (None for the arg kinds, which
    compare and keep an index), and the identity."""
    kind: str
    combine: str | None

    @property
    def is_arg(self) -> bool:
        return self.combine is None

    def identity(self, dtype):
        """The value the accumulator starts from (and that leaves it unchanged), as a
        Python number of ``dtype``; the arg kinds start from the worst value."""
        if self.kind in ("sum", "prod"):
            return 0 if self.kind == "sum" else 1
        low = self.kind in ("max", "argmax")
        if dtype.is_floating_point:
            return -math.inf if low else math.inf
        if dtype.category == 0:                                  # bool
            return not low
        info = np.iinfo(dtype.np)
        return int(info.min if low else info.max)


ACCUMULATIONS = {a.kind: a for a in (
    Accumulation("sum", "add"), Accumulation("prod", "mul"), Accumulation("max", "maximum"),
    Accumulation("min", "minimum"), Accumulation("argmax", None),
    Accumulation("argmin", None))}
