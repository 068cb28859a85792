"""Tensor functions with PyTorch's conventions, built on the primitives.

This layer does what PyTorch users expect and primitives should not care about: type
promotion and Python scalars, ``dim``/``keepdim`` normalisation, 1-D matmul, views and
indexing.  Every function here ends in ``bind`` calls, so it works eagerly, records
autograd, and traces.  ``graphc.methods`` attaches them as ``Tensor`` methods.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from graphc import context, creation, dtypes
from graphc.dispatch import bind
from graphc.amp import cast_inputs
from graphc.ops import REGISTRY as P
from graphc.tensor import Tensor, normalize_dim, _size_args, to_arguments

_Number = (int, float, bool, np.number, np.bool_)


# ---- operands and promotion ---------------------------------------------------------------
def is_concrete(x: Tensor) -> bool:
    """True when x's values are known now (eager), False for a symbolic (traced) value.
    Value-dependent checks and conveniences run only on concrete tensors."""
    return type(x._array) is np.ndarray


def scalar_tensor(value, dtype) -> Tensor:
    """A 0-dim tensor of a Python number; integers wrap into narrow dtypes (uint8 + 300
    adds 44), as PyTorch's."""
    return Tensor._wrap(np.array(value).astype(dtype.np), dtype)


def result_type(*operands) -> dtypes.DType:
    if len(operands) == 2:                     # the common case: two tensors, one dtype
        a, b = operands
        if isinstance(a, Tensor):
            if isinstance(b, Tensor):
                if a.dtype is b.dtype:
                    return a.dtype
            elif type(b) is float and a.dtype.category == 2:
                return a.dtype                 # float tensor op Python float
            elif type(b) is int and a.dtype.category >= 1:
                return a.dtype                 # int/float tensor op Python int
    dims, zero, scalars = [], [], []
    for x in operands:
        if isinstance(x, Tensor):
            if getattr(x, "python_number", False):  # a traced Python number (Trace.number_input)
                scalars.append(x.dtype)
            else:
                (dims if x._array.ndim else zero).append(x.dtype)
        else:
            scalars.append(dtypes.scalar_dtype(x))
    return dtypes.result_type(dims, zero, scalars)


def cast(x: Tensor, dtype) -> Tensor:
    dtype = dtypes.to_dtype(dtype)
    return x if x.dtype == dtype else bind(P["cast"], x, dtype=dtype)


def to(x: Tensor, *args, **kwargs) -> Tensor:
    """``x.to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)``."""
    dtype = to_arguments(args, kwargs)
    return x if dtype is None or dtype == x.dtype else cast(x, dtype)


def _operand(x, dtype) -> Tensor:
    if isinstance(x, Tensor):
        return x if x.dtype == dtype else bind(P["cast"], x, dtype=dtype)
    if isinstance(x, _Number):
        return scalar_tensor(x, dtype)
    raise TypeError(f"expected a Tensor or a number, got {type(x).__name__}")


def _binary(name, a, b, floating=False, dtype=None):
    if dtype is None:
        dtype = result_type(a, b)
    if floating and not dtype.is_floating_point:
        dtype = dtypes.default_float
    if dtype in dtypes.HALF and _scalar_in_float32(name, a, b, dtype):
        out = bind(P[name], _operand(a, dtypes.float32), _operand(b, dtypes.float32))
        return cast(out, dtype)
    return bind(P[name], _operand(a, dtype), _operand(b, dtype))


def _scalar_in_float32(name, a, b, dtype) -> bool:
    """Whether PyTorch's CPU kernel of a float16/bfloat16 op reads its scalar operand (a
    Python number, or a 0-dim tensor of another dtype) in float32 rather than rounded to
    the op's dtype: ``mul`` either way round, ``div`` and ``floor_divide`` by a scalar
    (f16 3 * 0.1 is 0.30005, where 3 * f16(0.1) is 0.2998); the others round it (measured
    against PyTorch 2.13).  The op then runs in float32 and its result is rounded once."""
    def is_scalar(x):
        return not (isinstance(x, Tensor) and x.dtype is dtype)
    if name == "mul":
        return is_scalar(a) or is_scalar(b)
    return name in ("div", "floor_divide") and is_scalar(b) and not is_scalar(a)


def _unary_float(name, x):
    return bind(P[name], cast(x, dtypes.default_float) if not x.dtype.is_floating_point
                else x)


# ---- arithmetic -----------------------------------------------------------------------------
def add(a, b, alpha=1):
    dtype = result_type(a, b)
    if dtype is dtypes.bool_:                  # PyTorch: bool + bool is logical or
        return _binary("logical_or", a, b, dtype=dtype)
    if dtype in dtypes.HALF and isinstance(alpha, (int, float)) and alpha != 1:
        return _add_scaled("add", a, b, alpha, dtype)
    return _binary("add", a, b if alpha == 1 else b * alpha, dtype=dtype)


def _add_scaled(name, a, b, alpha, dtype):
    """``a + alpha * b`` (or ``-``) of float16/bfloat16 as PyTorch's kernel computes it:
    alpha rounded to the dtype, the rest in float32, the result rounded once (PyTorch's
    vectorised loop; its scalar tail, under one vector of elements, rounds alpha * b
    first)."""
    alpha = float(np.array(alpha).astype(dtype.np).astype(np.float32))
    x, y = (cast(_operand(v, dtype), dtypes.float32) for v in (a, b))
    return cast(bind(P[name], x, mul(y, alpha)), dtype)


def sub(a, b, alpha=1):
    bools = [isinstance(x, Tensor) and x.dtype == dtypes.bool_ for x in (a, b)]
    if builtins.all(bools):
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                           "supported. Use the `^` or `logical_xor()` operator instead.")
    if builtins.any(bools):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not "
                           "supported. If you are trying to invert a mask, use the `~` or "
                           "`logical_not()` operator instead.")
    if isinstance(alpha, (int, float)) and alpha != 1 and result_type(a, b) in dtypes.HALF:
        return _add_scaled("sub", a, b, alpha, result_type(a, b))
    return _binary("sub", a, b if alpha == 1 else b * alpha)


def mul(a, b):
    dtype = result_type(a, b)
    if dtype is dtypes.bool_:                  # PyTorch: bool * bool is logical and
        return _binary("logical_and", a, b, dtype=dtype)
    return _binary("mul", a, b, dtype=dtype)


def _zero_gradient(result, *operands):
    """``result`` of a piecewise-constant op (``floor`` and ``sign`` have no VJP, so no
    cotangent reaches what they were computed from) joined to ``operands`` with
    PyTorch's zero gradient: ``where(True, result, operand)`` passes exact zeros, where a
    ``0 * g`` VJP chained through ``div`` would give ``0 / 0 = nan``."""
    if not (result.dtype.is_floating_point and context.grad_enabled):
        return result
    true = scalar_tensor(True, dtypes.bool_)
    for x in operands:
        if isinstance(x, Tensor) and x._requires_grad:
            result = where(true, result, cast(x, result.dtype))
    return result


def _check_integer_divisor(b, op: str):
    """Integer division by zero raises, as PyTorch (numpy would return garbage)."""
    if isinstance(b, Tensor) and is_concrete(b) and (b._data == 0).any() \
            or not isinstance(b, Tensor) and b == 0:
        raise RuntimeError(f"ZeroDivisionError: {op}: integer division by zero "
                           f"({context.user_source_line()})")


def div(a, b, rounding_mode=None):
    if rounding_mode is None:
        return _binary("div", a, b, floating=True)
    if rounding_mode not in ("floor", "trunc"):
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or "
                           f"'floor' but found '{rounding_mode}'")
    if rounding_mode == "floor":
        return floor_divide(a, b)
    dtype = result_type(a, b)
    if not dtype.is_floating_point:
        # Exact integers: the floored quotient, one more where a remainder is left and
        # the operands' signs differ.
        _check_integer_divisor(b, "div(rounding_mode='trunc')")
        q, r = floor_divide(a, b), remainder(a, b)      # r has b's sign
        return q + logical_and(r != 0, (r < 0) != (a < 0)).to(dtype)
    return _zero_gradient(_trunc(_binary("div", a, b, floating=True)).to(dtype), a, b)


true_divide = divide = div


def floor_divide(a, b):
    if not result_type(a, b).is_floating_point:
        _check_integer_divisor(b, "floor_divide")
    return _binary("floor_divide", a, b)


def remainder(a, b):
    if not result_type(a, b).is_floating_point:
        _check_integer_divisor(b, "remainder")
    return _binary("remainder", a, b)


def pow(a, b):
    dtype = result_type(a, b)
    if not isinstance(b, Tensor) and isinstance(a, Tensor) and b == 2 and dtype == a.dtype:
        return mul(a, a)   # the common square: exact, and its VJP needs no pow
    if not isinstance(b, Tensor) and isinstance(a, Tensor) and b in (0.5, -0.5) \
            and dtype == a.dtype and dtype.is_floating_point:
        # PyTorch computes these as sqrt and rsqrt: (-inf) ** 0.5 is nan, (-0.0) ** -0.5
        # is -inf, where C's pow gives inf and inf.
        return sqrt(a) if b == 0.5 else rsqrt(a)
    if not dtype.is_floating_point and not isinstance(b, Tensor) and b < 0:
        # PyTorch refuses only a negative Python exponent; a tensor of exponents gives
        # the truncated quotient (see the pow primitive).
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return _binary("pow", a, b)


def neg(x):
    if x.dtype == dtypes.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If "
                           "you are trying to invert a mask, use the `~` or `logical_not()` "
                           "operator instead.")
    return bind(P["neg"], x)


negative = neg


def _rpow(a, b):
    return pow(b, a)


def maximum(a, b):
    if result_type(a, b) == dtypes.bool_:      # the larger of two bools is their or
        return _binary("logical_or", a, b)
    return _binary("maximum", a, b)


def minimum(a, b):
    if result_type(a, b) == dtypes.bool_:
        return _binary("logical_and", a, b)
    return _binary("minimum", a, b)


def exp(x):
    return _unary_float("exp", x)


def log(x):
    return _unary_float("log", x)


def log2(x):
    return log(x) / math.log(2)


def log10(x):
    return log(x) / math.log(10)


def log1p(x):
    """log(1 + x), accurate for tiny x (where log(x + 1) loses every digit)."""
    return _unary_float("log1p", x)


def expm1(x):
    """exp(x) - 1, accurate for tiny x."""
    return _unary_float("expm1", x)


def sqrt(x):
    return _unary_float("sqrt", x)


def rsqrt(x):
    return _unary_float("rsqrt", x)


def sin(x):
    return _unary_float("sin", x)


def cos(x):
    return _unary_float("cos", x)


def tan(x):
    return sin(x) / cos(x)


def atan2(input, other):
    """The angle of the point (other, input) in (-pi, pi]: ``torch.atan2(y, x)``."""
    return _binary("atan2", input, other, floating=True)


def tanh(x):
    return _unary_float("tanh", x)


def sigmoid(x):
    return _unary_float("sigmoid", x)


def erf(x):
    return _unary_float("erf", x)


def _refuse_bool(name, x, kernel):
    """PyTorch has no rounding or abs kernel for bool tensors."""
    if x.dtype == dtypes.bool_:
        raise NotImplementedError(f"\"{kernel}\" not implemented for 'Bool' ({name} of "
                                  f"bool{list(x.shape)})")


def floor(x):
    _refuse_bool("floor", x, "floor_vml_cpu")
    return _zero_gradient(bind(P["floor"], x), x) if x.dtype.is_floating_point else x


def ceil(x):
    _refuse_bool("ceil", x, "ceil_vml_cpu")
    return -floor(-x)


def round(x):
    # Round half to even, as PyTorch: floor(x + 0.5), corrected on exact halves.
    _refuse_bool("round", x, "round_vml_cpu")
    if not x.dtype.is_floating_point:
        return x
    r = floor(x + 0.5)
    tie = (r - x) == 0.5
    odd = remainder(r, 2) == 1
    return where(tie.logical_and(odd), r - 1, r)


def _trunc(x):
    """Rounding toward zero, with no gradient path (see ``_zero_gradient``)."""
    return bind(P["sign"], x) * bind(P["floor"], abs(x))


def trunc(x):
    _refuse_bool("trunc", x, "trunc_vml_cpu")
    return _zero_gradient(_trunc(x), x) if x.dtype.is_floating_point else x


def abs(x):
    _refuse_bool("abs", x, "abs_cpu")
    return bind(P["abs"], x)


absolute = abs


def sign(x):
    if x.dtype == dtypes.bool_:                    # PyTorch: the bools themselves
        return clone(x)
    return _zero_gradient(bind(P["sign"], x), x)


def relu(x):
    # Written so that NaN passes through (x <= 0 is False for NaN), as in PyTorch.
    if x.dtype == dtypes.bool_:
        raise RuntimeError(f"Boolean inputs not supported for relu (bool{list(x.shape)})")
    return where(x <= 0, 0, x)


def clamp(x, min=None, max=None):
    """Clamp into [min, max]; the gradient passes where min <= x <= max, bounds and
    infinite bounds included, and never at a NaN x (as PyTorch)."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    out = x
    if min is not None:
        out = where(out < min, _operand(min, result_type(x, min)), out)
    if max is not None:
        out = where(out > max, _operand(max, result_type(out, max)), out)
    if x._requires_grad:     # NaN compares false, so it passed both wheres: stop it
        out = where(isnan(x), _operand(math.nan, out.dtype), out)
    return out


clip = clamp


def where(condition, x, y):
    dtype = result_type(x, y)
    if not isinstance(condition, Tensor) or condition.dtype != dtypes.bool_:
        got = f"{condition.dtype.name}{list(condition.shape)}" \
            if isinstance(condition, Tensor) else type(condition).__name__
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got {got}")
    return bind(P["where"], condition, _operand(x, dtype), _operand(y, dtype))


def _where_method(self, condition, other):
    return where(condition, self, other)


def eq(a, b):
    return _binary("eq", a, b)


def ne(a, b):
    return _binary("ne", a, b)


def lt(a, b):
    return _binary("lt", a, b)


def le(a, b):
    return _binary("le", a, b)


def gt(a, b):
    return _binary("gt", a, b)


def ge(a, b):
    return _binary("ge", a, b)


def equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def logical_not(x):
    return bind(P["logical_not"], cast(x, dtypes.bool_))


def logical_and(a, b):
    return bind(P["logical_and"], cast(a, dtypes.bool_), cast(b, dtypes.bool_))


def logical_or(a, b):
    return bind(P["logical_or"], cast(a, dtypes.bool_), cast(b, dtypes.bool_))


def logical_xor(a, b):
    return ne(cast(a, dtypes.bool_), cast(b, dtypes.bool_))


def _bitwise(name, a, b):
    """``&``, ``|``, ``^`` of bool tensors and Python bools (graphc has no integer
    bitwise primitive, so integer operands are refused rather than computed wrongly)."""
    operands = [x for x in (a, b) if isinstance(x, Tensor)]
    scalars = [x for x in (a, b) if not isinstance(x, Tensor)]
    if builtins.any(t.dtype != dtypes.bool_ for t in operands) or \
            builtins.any(not isinstance(x, bool) for x in scalars):
        kinds = ", ".join(x.dtype.name if isinstance(x, Tensor) else type(x).__name__
                          for x in (a, b))
        raise TypeError(f"graphc supports the {name} operator on bool tensors and Python bool "
                        f"scalars only (got {kinds})")
    a, b = (x if isinstance(x, Tensor) else creation.full((), bool(x), dtype=dtypes.bool_)
            for x in (a, b))
    return {"and": logical_and, "or": logical_or, "xor": logical_xor}[name](a, b)


def _shift(name):
    """``<<`` and ``>>``: refused with the operands named (without them, Python would
    let a numpy scalar's own shift turn the tensor into an ndarray)."""
    def refuse(a, b):
        raise TypeError(f"graphc has no {name} operator on tensors (got "
                        f"{a.dtype.name} {name} {type(b).__name__})")
    return refuse


def bitwise_not(x):
    """``~x``: logical not of bools; of integers, the two's complement -x - 1 (wrapping
    as the integer dtype does, so ~0 of uint8 is 255)."""
    if x.dtype == dtypes.bool_:
        return logical_not(x)
    if x.dtype.is_floating_point:
        raise TypeError(f"~ (operator.invert) is only implemented on integer and "
                        f"Boolean-type tensors (got {x.dtype.name}{list(x.shape)})")
    return sub(neg(x), 1)


def isnan(x):
    return x != x


def isinf(x):
    return abs(x) == math.inf if x.dtype.is_floating_point else zeros_like(x, dtypes.bool_)


def isfinite(x):
    return logical_not(isnan(x).logical_or(isinf(x)))


def zeros_like(x, dtype=None):
    dtype = dtypes.to_dtype(dtype) if dtype is not None else x.dtype
    return Tensor._wrap(np.zeros(x.shape, dtype.np), dtype)


def uniform_noise(shape, dtype) -> Tensor:
    """Draws from U[0, 1) of ``shape`` with graphc's generator.  Unlike ``rand`` this
    traces: the draw is a ``uniform`` op on a fresh seed input, so a compiled program
    draws new numbers on every call (dropout, RReLU, Gumbel noise)."""
    return bind(P["uniform"], creation.next_seed(), shape=tuple(shape), dtype=dtype)


# ---- reductions ------------------------------------------------------------------------------
def _axes(x, dim) -> tuple:
    if dim is None or isinstance(dim, (tuple, list)) and len(dim) == 0:
        return tuple(range(x.dim()))      # PyTorch: dim=() reduces over every dim
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if x.dim() == 0:
        for d in dims:
            normalize_dim(d, 0)
        return ()
    axes = [normalize_dim(d, x.dim()) for d in dims]
    for a in axes:
        if axes.count(a) > 1:
            raise RuntimeError(f"dim {a} appears multiple times in the list of dims "
                               f"{list(dims)} (input {x.dtype.name}{list(x.shape)})")
    return tuple(sorted(axes))


def _reduce(x, name, axes, keepdim):
    return bind(P[name], x, axes=tuple(axes), keepdim=bool(keepdim))


def sum(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, dtype)
    return _reduce(x, "sum", _axes(x, dim), keepdim)


def prod(x, dim=None, keepdim=False, dtype=None):
    x, = cast_inputs("prod", x)
    if dtype is not None:
        x = cast(x, dtype)
    return _reduce(x, "prod", _axes(x, dim), keepdim)


def _count(x, axes) -> int:
    return math.prod(x.shape[a] for a in axes)


def mean(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = cast(x, dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be "
                           f"either a floating point or complex dtype. Got: {x.dtype.name}")
    axes = _axes(x, dim)
    return _reduce(x, "sum", axes, keepdim) / _count(x, axes)


def _var_std(x, dim, unbiased, keepdim, correction, root):
    """Variance (or its root, the standard deviation) computed in float64 and rounded to
    x's dtype once at the end, as PyTorch's CPU kernel accumulates float32 in double:
    squares of float32 values above 1.8e19 overflow float32 but not the float64 sum, so
    ``std([1, -1e30])`` is 5e29 (the variance itself is still inf once rounded), and
    float64 keeps more of the digits that cancel.  Unbiased (correction=1) by default, as PyTorch."""
    if isinstance(dim, bool) and unbiased is None:       # var(x, False)
        dim, unbiased = None, dim
    if correction is None:
        correction = 0 if unbiased is False else 1
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"std and var only support floating point and complex dtypes "
                           f"(got {x.dtype.name})")
    wide = cast(x, dtypes.float64)
    axes = _axes(x, dim)
    centered = wide - mean(wide, axes if axes else None, keepdim=True) if axes else wide - wide
    n = _count(x, axes)
    out = _reduce(centered * centered, "sum", axes, keepdim) / builtins.max(n - correction, 0)
    if root:        # at a zero deviation the gradient is 0, as PyTorch's, not 0 * inf
        zero = out == 0
        out = where(zero, 0.0, sqrt(where(zero, 1.0, out)))
    return cast(out, x.dtype)


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return _var_std(x, dim, unbiased, keepdim, correction, root=False)


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return _var_std(x, dim, unbiased, keepdim, correction, root=True)


MinMax = namedtuple("MinMax", ["values", "indices"])


def _extremum(x, name, dim, keepdim, other):
    if isinstance(dim, Tensor):
        return (maximum if name == "max" else minimum)(x, dim)
    if other is not None:
        return (maximum if name == "max" else minimum)(x, other)
    if dim is None:
        if x.numel() == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for "
                               f"input.numel() == 0. Specify the reduction dim with the "
                               f"'dim' argument.")
        return _reduce(x, "amax" if name == "max" else "amin", _axes(x, None), False)
    # max(dim): the gradient goes to the selected index only, as in PyTorch.
    indices = _arg(x, "argmax" if name == "max" else "argmin", dim, keepdim=True)
    flat = x.reshape(1) if x.dim() == 0 else x
    values = gather(flat, normalize_dim(dim, flat.dim()), indices.reshape(
        indices.shape if x.dim() else (1,)))
    if not keepdim:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    elif x.dim() == 0:
        values = values.reshape(())
    return MinMax(values, indices)


def max(x, dim=None, keepdim=False, other=None):
    return _extremum(x, "max", dim, keepdim, other)


def min(x, dim=None, keepdim=False, other=None):
    return _extremum(x, "min", dim, keepdim, other)


def amax(x, dim=None, keepdim=False):
    return _reduce(x, "amax", _axes(x, dim), keepdim)


def amin(x, dim=None, keepdim=False):
    return _reduce(x, "amin", _axes(x, dim), keepdim)


def _arg(x, name, dim, keepdim):
    if dim is None:
        out = bind(P[name], x.reshape(-1), axis=0, keepdim=False)
        return out.reshape([1] * x.dim()) if keepdim else out
    if x.dim() == 0:
        normalize_dim(dim, 0)
        return bind(P[name], x.reshape(1), axis=0, keepdim=False)
    return bind(P[name], x, axis=normalize_dim(dim, x.dim()), keepdim=bool(keepdim))


def _refuse_bool_arg(name, x):
    """PyTorch's argmax/argmin refuse bools (max/min along a dim, which also give the
    indices, do not)."""
    if x.dtype == dtypes.bool_:
        raise RuntimeError(f"{name}(): does not support bool input (bool{list(x.shape)})")


def argmax(x, dim=None, keepdim=False):
    _refuse_bool_arg("argmax", x)
    return _arg(x, "argmax", dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    _refuse_bool_arg("argmin", x)
    return _arg(x, "argmin", dim, keepdim)


def all(x, dim=None, keepdim=False):
    return _reduce(cast(logical_not(cast(x, dtypes.bool_)), dtypes.int64), "sum",
                   _axes(x, dim), keepdim) == 0


def any(x, dim=None, keepdim=False):
    return _reduce(cast(cast(x, dtypes.bool_), dtypes.int64), "sum",
                   _axes(x, dim), keepdim) > 0


def count_nonzero(x, dim=None):
    return sum(cast(x != 0, dtypes.int64), dim)


def logsumexp(x, dim, keepdim=False):
    if not x.dtype.is_floating_point:               # PyTorch: integers and bools as floats
        x = cast(x, dtypes.default_float)
    axes = _axes(x, dim)
    if builtins.any(x.shape[a] == 0 for a in axes):    # log of an empty sum: -inf
        m = scalar_tensor(0, x.dtype if x.dtype.is_floating_point else dtypes.default_float)
    else:
        m = _reduce(x, "amax", axes, True).detach()
        m = where(isinf(m), 0.0, m)
    out = log(_reduce(exp(x - m), "sum", axes, True)) + m
    return out if keepdim else out.reshape(tuple(d for i, d in enumerate(x.shape)
                                                 if i not in axes))


def cumsum(x, dim):
    """Cumulative sum as a log-step scan (Hillis-Steele: add the sums so far shifted by 1,
    2, 4... with zeros padded in).  Every position adds only the terms before it, so an
    inf or nan reaches later positions only, as PyTorch's (a contraction with a triangle
    of ones and zeros would give inf * 0 = nan everywhere)."""
    dim = normalize_dim(dim, x.dim())
    if not x.dtype.is_floating_point:
        x = cast(x, dtypes.int64)                # PyTorch sums integers and bools in int64
    summed = x.reshape(x.shape or (1,))
    n, shift = summed.shape[dim], 1
    while shift < n:
        stops = list(summed.shape)
        stops[dim] = n - shift
        widths = [(shift if a == dim else 0, 0, 0) for a in range(summed.dim())]
        summed = summed + _pad(_slice(summed, [0] * summed.dim(), stops, [1] * summed.dim()),
                               widths, 0)
        shift *= 2
    return summed.reshape(x.shape) if n > 1 else clone(x)    # a new tensor, as PyTorch's


def _check_not_empty_for_inf_norm(x, dim, which):
    if math.prod(x.shape[a] for a in _axes(x, dim)) == 0:
        raise RuntimeError(f"linalg.vector_norm cannot compute the {which} norm on an empty "
                           f"tensor because the operation does not have an identity "
                           f"({x.dtype.name}{list(x.shape)})")


def norm(x, p=2, dim=None, keepdim=False):
    """The p-norm as PyTorch's: squares and powers are summed in x's dtype (so they
    overflow as PyTorch's do), except that the norm of a single element is its
    magnitude, exactly (PyTorch's ``norm(tensor([1e20]))`` is 1e20, not inf)."""
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor "
                           f"as input. Got {x.dtype.name} {list(x.shape)}")
    if p == 0:
        return sum(cast(x != 0, x.dtype), dim, keepdim)
    if p == 1 or math.prod(x.shape[a] for a in _axes(x, dim)) == 1:
        return sum(abs(x), dim, keepdim)
    if p in (math.inf, "inf"):
        _check_not_empty_for_inf_norm(x, dim, "inf")
        return amax(abs(x), dim, keepdim)
    p = 2 if p == "fro" else p
    if p == 2:
        powers = sum(x * x, dim, keepdim)
    elif 0 < p < 1:     # |x| ** p's gradient at x = 0 is 0 as PyTorch's, not inf * 0 = nan
        nonzero = x != 0
        powers = sum(where(nonzero, where(nonzero, abs(x), 1.0) ** p, 0.0), dim, keepdim)
    else:
        powers = sum(abs(x) ** p, dim, keepdim)
    # At a zero norm the gradient is 0, as PyTorch's, not the root's 0 * inf = nan.
    zero = powers == 0
    safe = where(zero, 1.0, powers)
    return where(zero, 0.0, sqrt(safe) if p == 2 else safe ** (1.0 / p))


# ---- contractions ------------------------------------------------------------------------
def matmul(a, b):
    """numpy/PyTorch matmul: 1-D operands are promoted to matrices and squeezed back."""
    if a.dim() == 0 or b.dim() == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{a.dim()}D and {b.dim()}D")
    a, b = cast_inputs("matmul", a, b)
    if a.dtype != b.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{a.dtype.name} != {b.dtype.name}")
    a2 = a.reshape(1, a.shape[0]) if a.dim() == 1 else a
    b2 = b.reshape(b.shape[0], 1) if b.dim() == 1 else b
    if a2.shape[-1] != b2.shape[-2] and (a.dim() == 1 or b.dim() == 1):
        raise RuntimeError(f"matmul: size mismatch, got input ({a.shape[-1]}), "
                           f"other ({b.shape[0] if b.dim() == 1 else b.shape[-2]})"
                           f" (operands: {a.dtype.name}{list(a.shape)}, "
                           f"{b.dtype.name}{list(b.shape)})")
    out = _contract("matmul", a2, b2)
    if a.dim() == 1:
        out = squeeze(out, -2)
    if b.dim() == 1:
        out = squeeze(out, -1)
    return out


def mm(a, b):
    if a.dim() != 2 or b.dim() != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {a.dim()}-D and {b.dim()}-D")
    a, b = cast_inputs("mm", a, b)
    return _contract("matmul", a, b)


def bmm(a, b):
    if a.dim() != 3 or b.dim() != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got {a.dim()}-D and {b.dim()}-D")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ ({a.shape[0]} and {b.shape[0]})")
    a, b = cast_inputs("bmm", a, b)
    return _contract("matmul", a, b)


def dot(a, b):
    if a.dim() != 1 or b.dim() != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.dim()}D and {b.dim()}D tensors")
    return matmul(a, b)


def mv(a, b):
    return matmul(a, b)


def outer(a, b):
    return a.reshape(-1, 1) * b.reshape(1, -1)


def _conv2d(x, w, stride, dilation):
    return _contract("conv2d", x, w, stride=tuple(stride), dilation=tuple(dilation))


def _contract(name, a, b, **attrs):
    """A contraction primitive; float16/bfloat16 operands are multiplied and summed in
    float32 and the result rounded once, as PyTorch's CPU kernels (the primitives take
    float32 and float64 only)."""
    if a.dtype in dtypes.HALF and a.dtype is b.dtype:
        return cast(bind(P[name], cast(a, dtypes.float32), cast(b, dtypes.float32), **attrs),
                    a.dtype)
    return bind(P[name], a, b, **attrs)


# ---- views and shape functions ------------------------------------------------------------
def _infer_shape(shape, numel) -> tuple:
    shape = list(_size_args(tuple(shape)) if -1 not in shape else shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // known
    if math.prod(shape) != numel:
        raise RuntimeError(f"shape '{shape}' is invalid for input of size {numel}")
    return tuple(int(d) for d in shape)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, *shape):
    shape = _infer_shape(_shape_arg(shape), x.numel())
    if shape == x.shape:
        return x
    return bind(P["reshape"], x, shape=shape)


def view(x, *shape):
    """Like reshape, but only where the strides allow a view (as in PyTorch)."""
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer)):
        return x.to(shape[0])                            # view(dtype) of the same size
    shape = _infer_shape(_shape_arg(shape), x.numel())
    if math.prod(shape) != x.numel():
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {x.numel()}")
    if not is_concrete(x):
        return reshape(x, shape)          # a traced value has no strides to respect
    probe = x._data.view()
    try:
        probe.shape = shape
    except (AttributeError, ValueError):
        raise RuntimeError("view size is not compatible with input tensor's size and "
                           "stride (at least one dimension spans across two contiguous "
                           "subspaces). Use .reshape(...) instead.") from None
    return reshape(x, shape)


def view_as(x, other):
    return view(x, other.shape)


def reshape_as(x, other):
    return reshape(x, other.shape)


def flatten(x, start_dim=0, end_dim=-1):
    if x.dim() == 0:
        return x.reshape(1)
    s, e = normalize_dim(start_dim, x.dim()), normalize_dim(end_dim, x.dim())
    if s > e:
        raise RuntimeError(f"flatten() has invalid args: start_dim cannot come after end_dim "
                           f"(start_dim={start_dim}, end_dim={end_dim}, input "
                           f"{x.dtype.name}{list(x.shape)})")
    # The merged size spelled out: -1 is ambiguous when another dim is 0.
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(x, dim, sizes):
    dim = normalize_dim(dim, x.dim())
    sizes = tuple(sizes)
    if -1 in sizes:            # inferred from dim's size alone (reshape's -1 is ambiguous at 0)
        known = math.prod(s for s in sizes if s != -1)
        sizes = tuple(x.shape[dim] // known if s == -1 and known else s for s in sizes)
    if math.prod(sizes) != x.shape[dim]:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({x.shape[dim]}) in the input tensor "
                           f"{x.dtype.name}{list(x.shape)}")
    return reshape(x, x.shape[:dim] + sizes + x.shape[dim + 1:])


def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, tuple(d for d in x.shape if d != 1))
    dims = {normalize_dim(d, x.dim()) for d in (dim if isinstance(dim, (tuple, list))
                                                  else (dim,))}
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if not (i in dims and d == 1)))


def unsqueeze(x, dim):
    dim = normalize_dim(dim, x.dim() + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def permute(x, *dims):
    dims = tuple(normalize_dim(d, x.dim()) for d in _shape_arg(dims))
    if dims == tuple(range(x.dim())):
        return x
    return bind(P["permute"], x, perm=dims)


def transpose(x, dim0, dim1):
    if x.dim() < 2 and x.dim() == 0:
        return x
    perm = list(range(x.dim()))
    a, b = normalize_dim(dim0, x.dim()), normalize_dim(dim1, x.dim())
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


swapaxes = transpose


def t(x):
    if x.dim() > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{x.dim()}D")
    return transpose(x, 0, 1) if x.dim() == 2 else x


def _T(x):
    return permute(x, tuple(reversed(range(x.dim()))))


def _mT(x):
    return transpose(x, -2, -1)


def movedim(x, source, destination):
    src, dst = normalize_dim(source, x.dim()), normalize_dim(destination, x.dim())
    order = [d for d in range(x.dim()) if d != src]
    order.insert(dst, src)
    return permute(x, order)


def expand(x, *sizes):
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.dim()
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be "
                           f"greater or equal to the number of dimensions in the tensor "
                           f"({x.dim()}) (size {list(sizes)}, input "
                           f"{x.dtype.name}{list(x.shape)})")
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s
                  for i, s in enumerate(sizes))
    if shape == x.shape:
        return x
    return bind(P["expand"], x, shape=shape)


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_to(x, shape):
    return expand(x, shape)


def repeat(x, *sizes):
    sizes = _shape_arg(sizes)
    if len(sizes) < x.dim():
        raise RuntimeError(f"repeat: Number of dimensions of repeat dims {list(sizes)} can not "
                           f"be smaller than number of dimensions of tensor "
                           f"{x.dtype.name}{list(x.shape)}")
    x = x.reshape((1,) * (len(sizes) - x.dim()) + x.shape)
    # Interleave a broadcast axis before each axis, then merge.
    expanded = x.reshape(tuple(v for d in x.shape for v in (1, d)))
    expanded = expand(expanded, tuple(v for r, d in zip(sizes, x.shape) for v in (r, d)))
    return expanded.reshape(tuple(r * d for r, d in zip(sizes, x.shape)))


def contiguous(x):
    """x itself when row-major, else a row-major copy (``clone`` keeps a transposed
    layout, as PyTorch's does, and a later ``view`` needs row-major)."""
    if x.is_contiguous():
        return x
    out = clone(x)
    out._data = np.ascontiguousarray(out._data)
    return out


def clone(x):
    """A copy in fresh storage; under autograd ``x * 1`` keeps the history (eager and
    traced alike: a traced copy must carry ``requires_grad`` or the autodiff pass never
    sees the path through it)."""
    if x._requires_grad and context.grad_enabled:
        return mul(x, 1)
    if not is_concrete(x):
        return Tensor._wrap(x._data, x.dtype)   # SSA values are never written in place
    return Tensor._wrap(np.array(x._data), x.dtype)


def _slice(x, starts, stops, steps):
    return bind(P["slice"], x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))


def _pad(x, widths, value):
    return bind(P["pad"], x, widths=tuple(tuple(w) for w in widths), value=value)


def narrow(x, dim, start, length):
    dim = normalize_dim(dim, x.dim())
    if start < 0:
        start += x.shape[dim]
    if not (0 <= start and start + length <= x.shape[dim]):
        raise RuntimeError(f"narrow(): start ({start}) + length ({length}) exceeds dimension "
                           f"size ({x.shape[dim]}) (input {x.dtype.name}{list(x.shape)}, "
                           f"dim {dim})")
    starts = [0] * x.dim()
    stops = list(x.shape)
    starts[dim], stops[dim] = start, start + length
    return _slice(x, starts, stops, [1] * x.dim())


def select(x, dim, index):
    dim = normalize_dim(dim, x.dim())
    size = x.shape[dim]
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of bounds for dimension {dim} with size "
                         f"{size}")
    return squeeze(narrow(x, dim, index % size, 1), dim)


def cat(tensors, dim=0):
    """PyTorch's cat: the dtype is promoted over every piece, and 1-D empty pieces
    (shape ``(0,)``, the legacy rule that lets them join any shape) are joined as empty
    pieces of the others' shape, so they still get their (empty) gradient."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    dtype = result_type(*tensors)
    legacy = [t.dim() == 1 and t.shape[0] == 0 for t in tensors]
    like = next((t.shape for t, skip in zip(tensors, legacy) if not skip), (0,))
    axis = normalize_dim(dim, len(like))
    empty = like[:axis] + (0,) + like[axis + 1:]
    tensors = [cast(reshape(t, empty) if skip else t, dtype)
               for t, skip in zip(tensors, legacy)]
    return bind(P["concat"], *tensors, axis=axis)


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    first = tensors[0].shape
    for t_ in tensors:
        if t_.shape != first:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(first)} at entry 0 and {list(t_.shape)} at another")
    dim = normalize_dim(dim, len(first) + 1)
    return cat([unsqueeze(t_, dim) for t_ in tensors], dim)


def hstack(tensors):
    tensors = list(tensors)
    return cat(tensors, 0 if tensors[0].dim() == 1 else 1)


def vstack(tensors):
    return cat([t_.reshape(1, -1) if t_.dim() < 2 else t_ for t_ in tensors], 0)


def split(x, split_size_or_sections, dim=0):
    dim = normalize_dim(dim, x.dim())
    size = x.shape[dim]
    if isinstance(split_size_or_sections, (int, np.integer)):
        step = int(split_size_or_sections)
        if step <= 0 and (step < 0 or size):
            raise RuntimeError(f"split expects split_size be non-negative and 0 only for an "
                               f"empty dimension, but got split_size={step} for dimension "
                               f"{dim} of size {size}")
        sizes = [builtins.min(step, size - s) for s in range(0, size, step)] if size else [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != size:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to "
                               f"{size} (input tensor's size at dimension {dim}), but got "
                               f"split_sizes={sizes}")
    out, start = [], 0
    for n in sizes:
        out.append(narrow(x, dim, start, n))
        start += n
    return tuple(out)


def chunk(x, chunks, dim=0):
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    size = x.shape[normalize_dim(dim, x.dim())]
    return split(x, builtins.max(-(-size // chunks), 1), dim)


def unbind(x, dim=0):
    return tuple(select(x, dim, i) for i in range(x.shape[normalize_dim(dim, x.dim())]))


def flip(x, *dims):
    """A reversed copy in x's layout, as PyTorch's (the reversed slice alone is a view:
    writes would reach ``x``, and ``view`` would refuse its negative strides)."""
    dims = {normalize_dim(d, x.dim()) for d in _shape_arg(dims)}
    dims = {d for d in dims if x.shape[d] > 1}        # nothing to reverse in the others
    if dims:
        x = _slice(x, [d - 1 if i in dims else 0 for i, d in enumerate(x.shape)],
                   [-1 if i in dims else d for i, d in enumerate(x.shape)],
                   [-1 if i in dims else 1 for i in range(x.dim())])
    return clone(x)


def _index_tensor(index, name) -> Tensor:
    if not isinstance(index, Tensor):
        index = Tensor._wrap(np.asarray(index, dtype=np.int64), dtypes.int64)
    if index.dtype.category != 1:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index, got "
                           f"{index.dtype.name}{list(index.shape)}")
    return cast(index, dtypes.int64)


def index_select(x, dim, index):
    index = _index_tensor(index, "index_select")
    if index.dim() > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    return bind(P["take"], x, index.reshape(-1), axis=normalize_dim(dim, x.dim()))


def gather(x, dim, index):
    return bind(P["gather"], x, _index_tensor(index, "gather"),
                axis=normalize_dim(dim, x.dim()))


def scatter_add(x, dim, index, src):
    return bind(P["scatter_add"], x, _index_tensor(index, "scatter_add"), src,
                axis=normalize_dim(dim, x.dim()))


def index_add(x, dim, index, source, alpha=1):
    """x with ``alpha * source`` added at ``index``; for bools, as PyTorch, a logical or
    with ``source and alpha`` (the scaled source keeps source's dtype)."""
    if isinstance(source, Tensor) and source.dtype != x.dtype:
        raise RuntimeError(f"index_add_(): self ({x.dtype.name}{list(x.shape)}) and source "
                           f"({source.dtype.name}{list(source.shape)}) must have the same "
                           f"scalar type")
    if alpha != 1:
        source = cast(source * alpha, source.dtype)
    return bind(P["index_add"], x, _index_tensor(index, "index_add"), source,
                axis=normalize_dim(dim, x.dim()))


def masked_fill(x, mask, value):
    if not isinstance(mask, Tensor) or mask.dtype != dtypes.bool_:
        raise RuntimeError("masked_fill only supports boolean masks")
    if isinstance(value, Tensor):           # a 0-d tensor: traced, and differentiable
        if value.ndim != 0:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, "
                               f"but got tensor with {value.ndim} dimension(s).")
        return where(mask, cast(value, x.dtype), x)
    return where(mask, _operand(value, x.dtype), x)


def _triangle_mask(x, diagonal, upper):
    rows, cols = x.shape[-2], x.shape[-1]
    keep = (np.triu if upper else np.tril)(np.ones((rows, cols), bool), diagonal)
    return Tensor._wrap(keep, dtypes.bool_)


def tril(x, diagonal=0):
    return where(_triangle_mask(x, diagonal, False), x, _operand(0, x.dtype))


def triu(x, diagonal=0):
    return where(_triangle_mask(x, diagonal, True), x, _operand(0, x.dtype))


def diag(x, diagonal=0):
    if x.dim() == 1:
        n = x.shape[0] + builtins.abs(diagonal)
        eye_ = Tensor._wrap(np.eye(n, k=diagonal, dtype=bool), dtypes.bool_)
        # Above the diagonal, out[i, i + k] = x[i]: x as a column (padded to n rows)
        # broadcast along rows; below it, x as a row.  The dtype stays x's.
        k = builtins.abs(diagonal)
        line = (_pad(x.reshape(-1, 1), [(0, k, 0), (0, 0, 0)], 0) if diagonal >= 0 else
                _pad(x.reshape(1, -1), [(0, 0, 0), (0, k, 0)], 0))
        return where(eye_, expand(line, (n, n)), _operand(0, x.dtype))
    idx = np.arange(builtins.min(x.shape[0], x.shape[1] - diagonal) if diagonal >= 0
                    else builtins.min(x.shape[0] + diagonal, x.shape[1]))
    rows = idx + builtins.max(-diagonal, 0)
    cols = idx + builtins.max(diagonal, 0)
    return x.reshape(-1)[Tensor._wrap(rows * x.shape[1] + cols, dtypes.int64)]


def one_hot(tensor, num_classes=-1):
    if tensor.dtype != dtypes.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type int64")
    if num_classes == -1:
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    if is_concrete(tensor) and tensor.numel():
        if tensor._data.min() < 0:
            raise RuntimeError("one_hot: Class values must be non-negative.")
        if tensor._data.max() >= num_classes:
            raise RuntimeError(f"one_hot: Class values must be smaller than num_classes "
                               f"({num_classes}).")
    classes = Tensor._wrap(np.arange(num_classes, dtype=np.int64), dtypes.int64)
    return cast(unsqueeze(tensor, -1) == classes, dtypes.int64)
