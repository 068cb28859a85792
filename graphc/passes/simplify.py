"""Algebraic simplification: a table of small local rewrite rules, keyed by primitive.

A rule is ``rule(op, producers) -> replacement or None``.  ``producers`` maps every value
of the graph built so far to the op that defines it (``producers.constant(array,
source)`` adds a constant, for rules that make zeros).  The replacement is either an
earlier ``Value`` equal to ``op.out`` (later uses are renamed to it), or a new ``Op``
that defines ``op.out`` itself -- same name, same type -- from earlier values; the rules
are then tried again on that op.

One sweep in definition order reaches a fixed point: every op is visited after its
operands are final, constants are folded (``fold.fold_op``) before the table's rules
run, and ops are value-numbered (equal ops merge, as in CSE), so ``x * 1 - x`` on
integers becomes zeros in one pass.

Every rule gives bit for bit the interpreter's result -- NaN, inf and signed zeros
included -- with one documented exception: ``x + 0.0 -> x`` (and ``sum`` over no
axes, which numpy computes as ``x + 0.0``) keeps ``-0.0`` where IEEE arithmetic gives
``+0.0``.  PyTorch's Inductor rewrites ``x + zeros`` to ``x`` the same way.  Rewrites
that are wrong for floats are not made: ``x * 0`` (``inf * 0`` is NaN, ``-1 * 0`` is
``-0.0``) and ``x - x`` (``inf - inf`` is NaN) only simplify for integers.

A graph output that is computed afresh is never replaced by a graph input or a view of
one: the caller would get an array that aliases its argument, where eager mode gives a
new tensor.
"""
from __future__ import annotations

import numpy as np

from graphc import dtypes
from graphc.dtypes import TensorType
from graphc.ir import Constant, Graph, Namer, Op, Value
from graphc.ops import REGISTRY
from graphc.passes.fold import fold_op

# Ops whose interpreter result can share memory with their first operand.
VIEWS = frozenset(p.name for p in REGISTRY.values() if p.view)


class Producers(dict):
    """Value -> defining op, for the graph being built; it also appends ops to it,
    value-numbered: an op equal to an earlier one (same name, operands and attributes)
    is not added again, and the earlier op's value stands for it."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.ops: list = []
        self.numbers: dict = {}          # op.key() -> the value that holds its result
        self.namer = Namer()
        self.namer.taken.update(v.name for v in graph.inputs)
        self.namer.taken.update(op.out.name for op in graph.ops)

    def define(self, op: Op) -> Value:
        """Add ``op`` unless an equal op exists; the value holding its result."""
        key = op.key()
        if key not in self.numbers:
            self.numbers[key] = op.out
            self[op.out] = op
            self.ops.append(op)
        return self.numbers[key]

    def constant(self, array: np.ndarray, source: str | None) -> Value:
        array = np.asarray(array)
        out = Value(self.namer.fresh(), TensorType(array.shape, dtypes.from_numpy(array.dtype)))
        return self.define(Op("constant", (), (("value", Constant(array)),), out, source))


# ---- helpers -----------------------------------------------------------------------------
def _producer(v: Value, name: str, producers) -> Op | None:
    """The op defining ``v`` when it is a ``name`` op."""
    op = producers.get(v)
    return op if op is not None and op.name == name else None


def _splat(v: Value, producers):
    """The element of a non-empty constant whose elements are all bitwise equal, else
    None.  Bitwise, so a mix of 0.0 and -0.0 is not a splat."""
    op = _producer(v, "constant", producers)
    if op is None:
        return None
    flat = op.attr_dict["value"].array.reshape(-1)
    if not flat.size or flat.tobytes() != np.full_like(flat, flat[0]).tobytes():
        return None
    return flat[0]


def _operand_beside(op: Op, producers, test, sides=(0, 1)) -> Value | None:
    """For a binary op with a splat constant passing ``test`` at one of ``sides``: the
    other operand."""
    for side in sides:
        c = _splat(op.inputs[side], producers)
        if c is not None and test(c):
            return op.inputs[1 - side]
    return None


def _as_result(x: Value, op: Op) -> Value | Op:
    """``x`` standing for ``op``'s result.  Binary ops and ``where`` keep their operands'
    dtype, so only broadcasting can make the types differ: then expand ``x``."""
    if x.type == op.out.type:
        return x
    return Op("expand", (x,), (("shape", op.out.shape),), op.out, op.source)


def _zeros(op: Op, producers) -> Value | Op:
    zero = producers.constant(np.zeros((), op.out.type.dtype.np), op.source)
    if not op.out.shape:
        return zero
    return Op("expand", (zero,), (("shape", op.out.shape),), op.out, op.source)


def _is_integer(op: Op) -> bool:
    return op.out.type.dtype.category == 1


def _is_plus_zero(c) -> bool:
    return c == 0 and not np.signbit(c)


# ---- the rules ---------------------------------------------------------------------------
def mul_by_one(op, producers):
    """``x * 1 -> x`` and ``1 * x -> x``: exact for every float, NaN and -0.0 included."""
    x = _operand_beside(op, producers, lambda c: c == 1)
    return None if x is None else _as_result(x, op)


def add_zero(op, producers):
    """``x + 0 -> x`` and ``0 + x -> x``.  For floats this keeps -0.0 where IEEE gives
    ``-0.0 + 0.0 = +0.0`` (the module docstring's one exception)."""
    x = _operand_beside(op, producers, lambda c: c == 0)
    return None if x is None else _as_result(x, op)


def sub_zero(op, producers):
    """``x - 0 -> x`` for +0 only: ``-0.0 - (-0.0)`` is +0.0."""
    x = _operand_beside(op, producers, _is_plus_zero, sides=(1,))
    return None if x is None else _as_result(x, op)


def div_by_one(op, producers):
    """``x / 1 -> x``: exact for every float."""
    x = _operand_beside(op, producers, lambda c: c == 1, sides=(1,))
    return None if x is None else _as_result(x, op)


def integer_mul_by_zero(op, producers):
    """``x * 0 -> 0`` for integers only (float ``inf * 0`` is NaN, ``-1.0 * 0`` is -0.0)."""
    if _is_integer(op) and _operand_beside(op, producers, lambda c: c == 0) is not None:
        return _zeros(op, producers)
    return None


def integer_sub_self(op, producers):
    """``x - x -> 0`` for integers only (float ``inf - inf`` and ``nan - nan`` are NaN)."""
    if _is_integer(op) and op.inputs[0] is op.inputs[1]:
        return _zeros(op, producers)
    return None


def neg_neg(op, producers):
    """``-(-x) -> x``: exact for floats, and integer negation wraps both ways."""
    inner = _producer(op.inputs[0], "neg", producers)
    return None if inner is None else inner.inputs[0]


def permute_permute(op, producers):
    """An identity permutation is its input; ``permute(permute(x, p), q)`` is
    ``permute(x, p[q])``."""
    perm = tuple(op.attr_dict["perm"])
    if perm == tuple(range(len(perm))):
        return op.inputs[0]
    inner = _producer(op.inputs[0], "permute", producers)
    if inner is None:
        return None
    p = inner.attr_dict["perm"]
    return Op("permute", inner.inputs, (("perm", tuple(p[q] for q in perm)),), op.out,
              op.source)


def same_type_is_identity(op, producers):
    """``reshape``, ``expand`` or ``cast`` to the type their operand already has."""
    x = op.inputs[0]
    return x if x.type == op.out.type else None


def collapse_repeat(op, producers):
    """``reshape(reshape(x))`` is one reshape of ``x``, and ``expand(expand(x))`` one
    expand: the outer op alone gives the same elements."""
    inner = _producer(op.inputs[0], op.name, producers)
    return None if inner is None else Op(op.name, inner.inputs, op.attrs, op.out, op.source)


# (from, to) casts that map every value of ``from`` to a distinct, exact value of ``to``.
EXACT_CASTS = {(dtypes.bool_, d) for d in (dtypes.int32, dtypes.int64, dtypes.float32,
                                           dtypes.float64)} | {
    (dtypes.int32, dtypes.int64), (dtypes.int32, dtypes.float64),
    (dtypes.float32, dtypes.float64)}


def cast_round_trip(op, producers):
    """``cast(cast(x, B), A) -> x`` when ``x`` is an ``A`` and the cast to ``B`` is exact
    (f32 -> f64 -> f32; not f64 -> f32 -> f64, which rounds)."""
    inner = _producer(op.inputs[0], "cast", producers)
    if inner is None:
        return None
    x = inner.inputs[0]
    exact = (x.type.dtype, inner.out.type.dtype) in EXACT_CASTS
    return x if exact and x.type == op.out.type else None


def slice_everything(op, producers):
    """A slice that reads every index of every dimension, in order, is its input."""
    x = op.inputs[0]
    a = op.attr_dict
    for d, start, stop, step in zip(x.shape, a["starts"], a["stops"], a["steps"]):
        if range(d)[start:stop if stop >= 0 else None:step] != range(d):
            return None
    return x


def sum_over_no_axes(op, producers):
    """``sum`` over no axes is its input (cast to int64 for integers and bools); for
    floats, the module docstring's -0.0 exception."""
    if op.attr_dict["axes"]:
        return None
    x = op.inputs[0]
    if x.type == op.out.type:
        return x
    return Op("cast", (x,), (("dtype", op.out.type.dtype),), op.out, op.source)


def where_same_branches(op, producers):
    """``where(c, x, x) -> x``."""
    _, x, y = op.inputs
    return _as_result(x, op) if x is y else None


def where_constant_condition(op, producers):
    """``where(True, x, y) -> x`` and ``where(False, x, y) -> y`` (the front end joins a
    piecewise-constant result to its operands with ``where(True, r, x)`` for its zero
    gradient; after autodiff only ``r`` is left)."""
    c, x, y = op.inputs
    splat = _splat(c, producers)
    if splat is None:
        return None
    return _as_result(x if splat else y, op)


RULES = {
    "add": (add_zero,),
    "sub": (sub_zero, integer_sub_self),
    "mul": (mul_by_one, integer_mul_by_zero),
    "div": (div_by_one,),
    "neg": (neg_neg,),
    "permute": (permute_permute,),
    "reshape": (same_type_is_identity, collapse_repeat),
    "expand": (same_type_is_identity, collapse_repeat),
    "cast": (same_type_is_identity, cast_round_trip),
    "slice": (slice_everything,),
    "sum": (sum_over_no_axes,),
    "where": (where_same_branches, where_constant_condition),
}


# ---- the driver --------------------------------------------------------------------------
def simplify(graph: Graph) -> Graph:
    """Fold constants and apply ``RULES`` until none fires, value-numbering the result."""
    producers = Producers(graph)
    outputs = set(graph.outputs)
    inputs = set(graph.inputs)
    rename: dict = {}
    for op in graph.ops:
        operands = tuple(rename.get(v, v) for v in op.inputs)
        if operands != op.inputs:
            op = Op(op.name, operands, op.attrs, op.out, op.source)
        keep_fresh = op.out in outputs and not _views_input(op, producers, inputs)
        result = _rewrite(op, producers, inputs if keep_fresh else ())
        value = result if isinstance(result, Value) else producers.define(result)
        assert value.type == op.out.type, (op, value)
        if value is not op.out:
            rename[op.out] = value
    return Graph(graph.inputs, producers.ops, [rename.get(v, v) for v in graph.outputs],
                 graph.name)


def _rewrite(op: Op, producers, protected) -> Value | Op:
    """``op`` after rewriting until no rule fires; no replacement may be (a view of) one
    of the ``protected`` graph inputs."""
    while True:
        for rule in (fold_op,) + RULES.get(op.name, ()):
            new = rule(op, producers)
            if new is not None and not _views_input(new, producers, protected):
                break
        else:
            return op
        if isinstance(new, Value):
            return new
        op = new


def _views_input(x: Value | Op, producers, inputs) -> bool:
    """Whether ``x`` (a value, or an op's result) is one of ``inputs`` or a view of one."""
    op = x if isinstance(x, Op) else producers.get(x)
    while op is not None and op.name in VIEWS:
        x = op.inputs[0]
        op = producers.get(x)
    return op is None and x in inputs
