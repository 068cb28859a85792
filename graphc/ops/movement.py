"""Movement primitives: index maps from output positions to input positions.

``reshape``, ``permute``, ``expand`` and ``slice`` return numpy *views* in eager mode,
which is how graphc's views share storage with their base.  ``pad`` (with XLA-style
interior padding) is the adjoint of a strided slice; ``take``/``index_add`` and
``gather``/``scatter_add`` are adjoint pairs for integer indexing.

Each op but the two scatters carries its index map, which lowering composes into every
consumer (no data moves).  A map is ``map(m, index, **attrs)``: the output's value at
``index`` (a tuple of index expressions) in terms of the inputs' values, built with the
mapper ``m`` (``graphc.codegen.lower.IndexMapper``):

- ``m.read(k, index)``: input ``k``'s value at ``index``; ``m.shapes``: the inputs' shapes;
- ``m.iop(op, a, b)``, ``m.const(n)``: index arithmetic (``graphc.codegen.loops.INDEX_OPS``);
- ``m.reshape_index``, ``m.broadcast_index``: the index of the same element in another
  shape;
- ``m.checked(value, size)``: a value read from an index tensor used as an index;
- ``m.select(cond, a, b)``: ``a`` where the index condition holds, else ``b``;
  ``m.fill(value)``: a constant of the output's dtype.
"""
from __future__ import annotations

import math

import numpy as np

from graphc import dtypes
from graphc.dtypes import TensorType
from graphc.ops.primitive import Primitive, op_error, register, unbroadcast


# ---- reshape / permute / expand ----------------------------------------------------------
def _reshape_infer(x: TensorType, shape) -> TensorType:
    if math.prod(shape) != math.prod(x.shape) or any(d < 0 for d in shape):
        raise op_error("reshape", f"shape {list(shape)} is invalid for input of size "
                                  f"{math.prod(x.shape)}", x)
    return TensorType(tuple(shape), x.dtype)


def _reshape_map(m, index, shape):
    return m.read(0, m.reshape_index(index, shape, m.shapes[0]))


register(Primitive(
    "reshape", "movement", _reshape_infer, lambda x, shape: np.reshape(x, shape),
    vjp=(lambda g, out, x, shape: g.reshape(x.shape),), attrs=("shape",),
    index_map=_reshape_map, view=True))


def _permute_infer(x: TensorType, perm) -> TensorType:
    if sorted(perm) != list(range(len(x.shape))):
        raise op_error("permute", f"{list(perm)} is not a permutation of the "
                                  f"{len(x.shape)} dimensions", x)
    return TensorType(tuple(x.shape[p] for p in perm), x.dtype)


def _permute_grad(g, out, x, perm):
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return g.permute(*inverse)


def _permute_map(m, index, perm):
    mapped = [None] * len(perm)
    for i, p in enumerate(perm):
        mapped[p] = index[i]
    return m.read(0, tuple(mapped))


register(Primitive(
    "permute", "movement", _permute_infer, lambda x, perm: np.transpose(x, perm),
    vjp=(_permute_grad,), attrs=("perm",), index_map=_permute_map, view=True))


def _expand_infer(x: TensorType, shape) -> TensorType:
    lead = len(shape) - len(x.shape)
    if any(s < 0 for s in shape):
        raise op_error("expand", f"the expanded size {list(shape)} has a negative size "
                                 f"(-1 keeps a size, and is not allowed in a new leading "
                                 f"dimension)", x)
    if lead < 0 or any(d != s and d != 1 for d, s in zip(x.shape, shape[lead:])):
        raise op_error("expand", f"the input cannot be expanded to size {list(shape)}", x)
    return TensorType(tuple(shape), x.dtype)


def _expand_map(m, index, shape):
    return m.read(0, m.broadcast_index(index, shape, m.shapes[0]))


register(Primitive(
    "expand", "movement", _expand_infer, lambda x, shape: np.broadcast_to(x, shape),
    vjp=(lambda g, out, x, shape: unbroadcast(g, x.shape),), attrs=("shape",),
    index_map=_expand_map, view=True))


# ---- slice and pad (adjoint pair) --------------------------------------------------------
def slice_length(start, stop, step) -> int:
    return len(range(start, stop, step))


def _slice_infer(x: TensorType, starts, stops, steps) -> TensorType:
    if not len(starts) == len(stops) == len(steps) == len(x.shape):
        raise op_error("slice", "needs one (start, stop, step) per dimension", x)
    shape = []
    for d, a, b, s in zip(x.shape, starts, stops, steps):
        if (s == 0 or not (0 <= a <= d and -1 <= b <= d) or (s > 0 and a > b)
                or (s < 0 and a >= d and a != b)):
            raise op_error("slice", f"invalid slice {a}:{b}:{s} of a dimension of size {d}",
                           x)
        shape.append(slice_length(a, b, s))
    return TensorType(tuple(shape), x.dtype)


def _slice_impl(x, starts, stops, steps):
    return x[tuple(slice(a, b if b >= 0 else None, s)
                   for a, b, s in zip(starts, stops, steps))]


def _slice_grad(g, out, x, starts, stops, steps):
    # Flip the negative-step dimensions back, then pad the gaps and borders with zeros.
    flip = [s < 0 and n > 0 for s, n in zip(steps, g.shape)]
    if any(flip):
        g = g._slice([d - 1 if f else 0 for d, f in zip(g.shape, flip)],
                     [-1 if f else d for d, f in zip(g.shape, flip)],
                     [-1 if f else 1 for f in flip])
    widths = []
    for d, n, a, s in zip(x.shape, g.shape, starts, steps):
        first = a if s > 0 else a + (n - 1) * s       # lowest input index read
        step = abs(s)
        last = first + (n - 1) * step if n else first - 1
        widths.append((first, d - 1 - last, step - 1) if n else (0, d, 0))
    return g._pad(widths, 0)


def _slice_map(m, index, starts, stops, steps):
    return m.read(0, tuple(m.iop("add", m.const(a), m.iop("mul", i, m.const(s)))
                           for i, a, s in zip(index, starts, steps)))


register(Primitive(
    "slice", "movement", _slice_infer, _slice_impl, vjp=(_slice_grad,),
    attrs=("starts", "stops", "steps"), index_map=_slice_map, view=True))


def _pad_infer(x: TensorType, widths, value) -> TensorType:
    if len(widths) != len(x.shape) or any(min(w) < 0 for w in widths):
        raise op_error("pad", f"needs one non-negative (low, high, interior) per dimension, "
                              f"got {list(widths)}", x)
    shape = tuple(lo + hi + d + max(d - 1, 0) * inner
                  for d, (lo, hi, inner) in zip(x.shape, widths))
    return TensorType(shape, x.dtype)


def _pad_impl(x, widths, value):
    shape = _pad_infer(TensorType(x.shape, dtypes.from_numpy(x.dtype)), widths, value).shape
    out = np.full(shape, value, dtype=x.dtype)
    out[tuple(np.s_[lo:lo + max(d - 1, 0) * (inner + 1) + 1:inner + 1] if d else np.s_[0:0]
              for d, (lo, hi, inner) in zip(x.shape, widths))] = x
    return out


def _pad_grad(g, out, x, widths, value):
    return g._slice([lo for lo, _, _ in widths],
                    [lo + max(d - 1, 0) * (inner + 1) + 1 if d else lo
                     for d, (lo, _, inner) in zip(x.shape, widths)],
                    [inner + 1 for _, _, inner in widths])


def _pad_map(m, index, widths, value):
    shape = m.shapes[0]
    if any(d == 0 for d in shape):
        return m.fill(value)
    inside, mapped = m.const(1), []
    for i, d, (lo, _, inner) in zip(index, shape, widths):
        shifted = m.iop("sub", i, m.const(lo))
        span = (d - 1) * (inner + 1) + 1
        ok = m.iop("and", m.iop("le", m.const(lo), i), m.iop("lt", i, m.const(lo + span)))
        if inner:
            ok = m.iop("and", ok, m.iop("eq", m.iop("mod", m.iop("max", shifted, m.const(0)),
                                                    m.const(inner + 1)), m.const(0)))
        inside = m.iop("and", inside, ok)
        # Clamped so the (unselected) read stays in bounds.
        at = m.iop("floordiv", m.iop("max", shifted, m.const(0)), m.const(inner + 1))
        mapped.append(m.iop("min", at, m.const(d - 1)))
    return m.select(inside, m.read(0, tuple(mapped)), m.fill(value))


register(Primitive(
    "pad", "movement", _pad_infer, _pad_impl, vjp=(_pad_grad,), attrs=("widths", "value"),
    index_map=_pad_map))


# ---- concat ------------------------------------------------------------------------------
def _concat_infer(*xs: TensorType, axis) -> TensorType:
    first = xs[0]
    for x in xs:
        if (x.dtype != first.dtype or len(x.shape) != len(first.shape)
                or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape))
                       if i != axis)):
            raise op_error("concat", f"sizes of tensors must match except in dimension "
                                     f"{axis}", *xs)
    if not 0 <= axis < len(first.shape):
        raise op_error("concat", f"dimension {axis} out of range", *xs)
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return TensorType(tuple(shape), first.dtype)


def _concat_grad(g, out, *xs, index, axis):
    start = sum(x.shape[axis] for x in xs[:index])
    return g.narrow(axis, start, xs[index].shape[axis])


def _concat_map(m, index, axis):
    """Each input's value at the clamped position, chosen by where ``index`` falls."""
    pieces, start = [], 0
    for k, shape in enumerate(m.shapes):
        n = shape[axis]
        if n:
            at = m.iop("min", m.iop("max", m.iop("sub", index[axis], m.const(start)),
                                    m.const(0)), m.const(n - 1))
            pieces.append((start + n, m.read(k, index[:axis] + (at,) + index[axis + 1:])))
        start += n
    if not pieces:                  # every piece is empty, so is the result: never read
        return m.fill(0)
    result = pieces[-1][1]
    for end, piece in reversed(pieces[:-1]):
        result = m.select(m.iop("lt", index[axis], m.const(end)), piece, result)
    return result


register(Primitive(
    "concat", "movement", _concat_infer, lambda *xs, axis: np.concatenate(xs, axis=axis),
    vjp=(_concat_grad,), attrs=("axis",), variadic=True, index_map=_concat_map))


# ---- integer indexing: take / index_add and gather / scatter_add -------------------------
def _check_index(op, x: TensorType, idx: TensorType, axis, *others):
    if idx.dtype not in (dtypes.int64, dtypes.int32):
        raise op_error(op, "index must be an integer tensor", x, idx, *others)
    if not 0 <= axis < max(len(x.shape), 1):
        raise op_error(op, f"dimension {axis} out of range", x, idx, *others)


# PyTorch raises RuntimeError for gather and scatter indices out of range, IndexError for
# the others (indexing, index_select, index_add, embedding).
_BOUNDS_ERRORS = {"gather": RuntimeError, "scatter_add": RuntimeError}


def out_of_bounds(op: str, value: int, axis: int, size: int, source=None) -> Exception:
    """The error for index ``value`` met by ``op`` in a dimension of ``size``: eager
    (here) and in generated code (``codegen.loops.Site``), with the user's line."""
    where = f" ({source})" if source else ""
    return _BOUNDS_ERRORS.get(op, IndexError)(
        f"{op}: index {value} is out of bounds for dimension {axis} with size {size}{where}")


def _bounds(op, idx, size, axis):
    """Generated code never reads out of bounds, and neither does the reference."""
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise out_of_bounds(op, idx[(idx < 0) | (idx >= size)].flat[0], axis, size)


def _take_infer(x: TensorType, idx: TensorType, axis) -> TensorType:
    _check_index("take", x, idx, axis)
    return TensorType(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)


def _take_impl(x, idx, axis):
    _bounds("take", idx, x.shape[axis], axis)
    return np.take(x, idx, axis=axis)


def _take_grad(g, out, x, idx, axis):
    flat = g.reshape(x.shape[:axis] + (idx.numel(),) + x.shape[axis + 1:])
    return x.new_zeros(x.shape).index_add(axis, idx.reshape(-1), flat)


def _take_map(m, index, axis):
    k = len(m.shapes[1])
    j = m.checked(m.read(1, index[axis:axis + k]), m.shapes[0][axis])
    return m.read(0, index[:axis] + (j,) + index[axis + k:])


register(Primitive(
    "take", "movement", _take_infer, _take_impl, vjp=(_take_grad, None), saves=(1,),
    attrs=("axis",), index_map=_take_map))


def _index_add_infer(x: TensorType, idx: TensorType, src: TensorType, axis) -> TensorType:
    _check_index("index_add", x, idx, axis, src)
    want = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    if len(idx.shape) != 1 or src.shape != want or src.dtype != x.dtype:
        raise op_error("index_add", f"needs a 1-D index and a source of shape {list(want)}",
                       x, idx, src)
    return x


def _index_add_impl(x, idx, src, axis):
    _bounds("index_add", idx, x.shape[axis], axis)
    out = x.copy()
    np.add.at(out, (np.s_[:],) * axis + (idx,), src)
    return out


register(Primitive(
    "index_add", "movement", _index_add_infer, _index_add_impl,
    vjp=(lambda g, out, x, idx, src, axis: g, None,
         lambda g, out, x, idx, src, axis: g.index_select(axis, idx)),
    saves=(1,), attrs=("axis",), scatter=True))


def _gather_infer(x: TensorType, idx: TensorType, axis) -> TensorType:
    _check_index("gather", x, idx, axis)
    if len(idx.shape) != len(x.shape) or any(
            i > d for a, (i, d) in enumerate(zip(idx.shape, x.shape)) if a != axis):
        raise op_error("gather", f"index must have the input's rank and be no larger "
                                 f"outside dimension {axis}", x, idx)
    return TensorType(idx.shape, x.dtype)


def _grid(idx, axis):
    """numpy fancy-index tuple addressing x[..., idx[...], ...] along ``axis``."""
    grid = list(np.ogrid[tuple(np.s_[:n] for n in idx.shape)])
    grid[axis] = idx
    return tuple(grid)


def _gather_impl(x, idx, axis):
    _bounds("gather", idx, x.shape[axis], axis)
    return x[_grid(idx, axis)]


def _gather_map(m, index, axis):
    j = m.checked(m.read(1, index), m.shapes[0][axis])
    return m.read(0, index[:axis] + (j,) + index[axis + 1:])


def _gather_grad(g, out, x, idx, axis):
    """scatter_add of g into zeros; an index picking one element per line of x along
    ``axis`` (max with dim, max pooling, nll_loss) picks where it equals the position
    instead: an elementwise op that fuses, not a serial scatter kernel."""
    if idx.shape[axis] == 1 and all(i == d for a, (i, d) in enumerate(zip(idx.shape, x.shape))
                                    if a != axis):
        positions = np.arange(x.shape[axis]).reshape(
            [x.shape[axis] if a == axis else 1 for a in range(len(x.shape))])
        return g.where(idx == idx.new_tensor(positions), 0)
    return x.new_zeros(x.shape).scatter_add(axis, idx, g)


register(Primitive(
    "gather", "movement", _gather_infer, _gather_impl,
    vjp=(_gather_grad, None),
    saves=(1,), attrs=("axis",), index_map=_gather_map))


def _scatter_add_infer(x: TensorType, idx: TensorType, src: TensorType, axis) -> TensorType:
    _check_index("scatter_add", x, idx, axis, src)
    if (src.dtype != x.dtype or len(idx.shape) != len(x.shape)
            or len(src.shape) != len(x.shape)
            or any(i > s for i, s in zip(idx.shape, src.shape))
            or any(i > d for a, (i, d) in enumerate(zip(idx.shape, x.shape)) if a != axis)):
        raise op_error("scatter_add", "index must be no larger than the source, and than the "
                                      f"input outside dimension {axis}", x, idx, src)
    return x


def _scatter_add_impl(x, idx, src, axis):
    _bounds("scatter_add", idx, x.shape[axis], axis)
    out = x.copy()
    np.add.at(out, _grid(idx, axis), src[tuple(np.s_[:n] for n in idx.shape)])
    return out


def _scatter_add_src_grad(g, out, x, idx, src, axis):
    picked = g.gather(axis, idx)
    if picked.shape == src.shape:
        return picked
    return picked._pad([(0, s - n, 0) for n, s in zip(picked.shape, src.shape)], 0)


register(Primitive(
    "scatter_add", "movement", _scatter_add_infer, _scatter_add_impl,
    vjp=(lambda g, out, x, idx, src, axis: g, None, _scatter_add_src_grad),
    saves=(1,), attrs=("axis",), scatter=True))
