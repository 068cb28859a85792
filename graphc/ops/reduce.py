"""Reduction primitives: sum, prod, amax, amin over a set of axes; argmax/argmin over one.

Attributes are normalised by the front end: ``axes`` is a sorted tuple of non-negative
axes, ``keepdim`` a bool.  Each lowers to an accumulation (``graphc.ops.scalar``): an
identity and a combining scalar op, or for argmax/argmin a comparison keeping the index.
"""
from __future__ import annotations

import numpy as np

from graphc import dtypes
from graphc.dtypes import TensorType
from graphc.ops.primitive import Primitive, op_error, register
from graphc.ops.scalar import ACCUMULATIONS


def _reduced_shape(shape, axes, keepdim):
    if keepdim:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _check_axes(op, x, axes):
    if any(not 0 <= a < len(x.shape) for a in axes) or len(set(axes)) != len(axes):
        raise op_error(op, f"invalid reduction axes {axes}", x)


def _row_major(fn):
    """A numpy reduction whose result is row-major, as PyTorch's (numpy keeps the
    input's layout, so a reduction of a transposed tensor could not be ``view``-ed)."""
    def impl(x, **attrs):
        out = np.asarray(fn(x, **attrs))
        return out if out.flags.c_contiguous else np.ascontiguousarray(out)
    return impl


def _with_kept_dims(t, x_shape, axes, keepdim):
    """``t`` (a reduction result) reshaped so it broadcasts against the input."""
    return t if keepdim else t.reshape(_reduced_shape(x_shape, axes, True))


def _sum_infer(x: TensorType, axes, keepdim) -> TensorType:
    _check_axes("sum", x, axes)
    dtype = x.dtype if x.dtype.is_floating_point else dtypes.int64
    return TensorType(_reduced_shape(x.shape, axes, keepdim), dtype)


def _sum_grad(g, out, x, axes, keepdim):
    return _with_kept_dims(g, x.shape, axes, keepdim).expand(x.shape)


register(Primitive(
    "sum", "reduction", _sum_infer,
    # float32 accumulates in float64, as every code generator does (codegen/lower.py's
    # accumulator_dtype): the float32 result is then the same on every backend.
    _row_major(lambda x, axes, keepdim: np.asarray(np.sum(
        x, axis=axes, keepdims=keepdim,
        dtype=np.float64 if x.dtype.kind == "f" else np.int64)).astype(
            x.dtype if x.dtype.kind == "f" else np.int64, copy=False)),
    vjp=(_sum_grad,), attrs=("axes", "keepdim"), accumulation=ACCUMULATIONS["sum"]))


def _prod_grad(g, out, x, axes, keepdim):
    # Exact with zeros: the product of the *other* elements, computed without dividing
    # by zero (one zero: only it gets a gradient; two or more: nobody does).
    g = _with_kept_dims(g, x.shape, axes, keepdim)
    is_zero = x == 0
    zeros = is_zero.sum(dim=axes, keepdim=True)
    nonzero_prod = x.where(is_zero.logical_not(), 1)._reduce("prod", axes, True)
    safe_x = x.where(is_zero.logical_not(), 1)
    others = (nonzero_prod / safe_x).where(zeros == 0, 0).where(
        is_zero.logical_not(), nonzero_prod.where(zeros == 1, 0))
    return g * others


register(Primitive(
    "prod", "reduction", lambda x, axes, keepdim: _sum_infer(x, axes, keepdim),
    _row_major(lambda x, axes, keepdim: np.prod(
        x, axis=axes, keepdims=keepdim,
        dtype=None if x.dtype.kind == "f" else np.int64)),
    vjp=(_prod_grad,), saves=(0,), attrs=("axes", "keepdim"),
    accumulation=ACCUMULATIONS["prod"]))


def _extremum(name, np_fn, kind):
    def infer(x: TensorType, axes, keepdim) -> TensorType:
        _check_axes(name, x, axes)
        if any(x.shape[a] == 0 for a in axes):
            raise op_error(name, "cannot reduce over a zero-size dimension (it has no "
                                 "identity)", x, exc=IndexError)
        return TensorType(_reduced_shape(x.shape, axes, keepdim), x.dtype)

    def grad(g, out, x, axes, keepdim):
        # Ties share the gradient evenly, as PyTorch's amax/amin do.
        hit = x == _with_kept_dims(out, x.shape, axes, keepdim)
        count = hit.sum(dim=axes, keepdim=True).to(g.dtype)
        return (_with_kept_dims(g, x.shape, axes, keepdim) / count).where(hit, 0)

    return register(Primitive(
        name, "reduction", infer,
        _row_major(lambda x, axes, keepdim: np_fn(x, axis=axes, keepdims=keepdim)),
        vjp=(grad,), saves=(0, "out"), attrs=("axes", "keepdim"),
        accumulation=ACCUMULATIONS[kind]))


_extremum("amax", np.max, "max")
_extremum("amin", np.min, "min")


def _arg_extremum(name, np_fn):
    def infer(x: TensorType, axis, keepdim) -> TensorType:
        _check_axes(name, x, (axis,))
        if x.shape[axis] == 0:
            raise op_error(name, "cannot take the index over a zero-size dimension", x,
                           exc=IndexError)
        return TensorType(_reduced_shape(x.shape, (axis,), keepdim), dtypes.int64)

    @_row_major
    def impl(x, axis, keepdim):
        return np_fn(x, axis=axis, keepdims=keepdim).astype(np.int64, copy=False)

    return register(Primitive(name, "reduction", infer, impl, attrs=("axis", "keepdim"),
                              accumulation=ACCUMULATIONS[name]))


_arg_extremum("argmax", np.argmax)
_arg_extremum("argmin", np.argmin)
