"""Elementwise primitives: unary and binary math, comparisons, ``where`` and ``cast``.

Binary ops broadcast their operands (numpy rules); all operands of one op share a dtype,
because the front end promotes and casts before binding.  Each op lowers to one scalar
expression over the scalar ops (``graphc.ops.scalar``): by default the scalar op of the
same name, else the ``scalar`` rule given.
"""
from __future__ import annotations

import math

import numpy as np

from graphc import dtypes
from graphc.dtypes import TensorType
from graphc.ops.primitive import Primitive, broadcast_shapes, op_error, register, unbroadcast
from graphc.ops.scalar import scalar_op

_erf = np.frompyfunc(math.erf, 1, 1)


def _check_dtype(op, allowed, *types):
    for t in types:
        if t.dtype.category not in allowed:
            names = {0: "bool", 1: "integer", 2: "floating point"}
            raise op_error(op, f"expected {' or '.join(names[c] for c in allowed)} "
                               f"operands", *types)
    if any(t.dtype != types[0].dtype for t in types[1:]):
        raise op_error(op, "operands must share one dtype", *types)


def unary(name, impl, vjp=None, saves=(), allowed=(2,), out_dtype=None, scalar=None):
    def infer(x: TensorType) -> TensorType:
        _check_dtype(name, allowed, x)
        return TensorType(x.shape, out_dtype or x.dtype)
    return register(Primitive(name, "elementwise", infer, impl,
                              vjp=None if vjp is None else (vjp,), saves=saves,
                              scalar=scalar or scalar_op(name)))


def binary(name, impl, vjps=None, saves=(), allowed=(1, 2), out_dtype=None, scalar=None,
           divisor=None):
    def infer(x: TensorType, y: TensorType) -> TensorType:
        _check_dtype(name, allowed, x, y)
        return TensorType(broadcast_shapes(name, x, y), out_dtype or x.dtype)
    return register(Primitive(name, "elementwise", infer, impl, vjp=vjps, saves=saves,
                              scalar=scalar or scalar_op(name), divisor=divisor))


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _sign(x):
    """PyTorch's sign: 0 at nan (so abs's gradient there is 0 too), where numpy's is nan."""
    return np.where(x != x, np.zeros_like(x), np.sign(x))


def _rsqrt(x):
    return (1 / np.sqrt(x)).astype(x.dtype, copy=False)


# ---- unary math (floating point) -------------------------------------------------------
unary("neg", np.negative, lambda g, out, x: -g, allowed=(1, 2))
unary("exp", np.exp, lambda g, out, x: g * out, saves=("out",))
unary("log", np.log, lambda g, out, x: g / x, saves=(0,))
unary("sqrt", np.sqrt, lambda g, out, x: g / (2 * out), saves=("out",))
unary("rsqrt", _rsqrt, lambda g, out, x: g * (-0.5) * out * out * out,
      saves=("out",), scalar=lambda ops, x: ops.div(ops.const(1), ops.sqrt(x)))
unary("expm1", np.expm1, lambda g, out, x: g * (out + 1), saves=("out",))
unary("log1p", np.log1p, lambda g, out, x: g / (x + 1), saves=(0,))
unary("sin", np.sin, lambda g, out, x: g * x.cos(), saves=(0,))
unary("cos", np.cos, lambda g, out, x: -g * x.sin(), saves=(0,))
def _tanh(x):
    """numpy's float32 tanh is off by an ulp near saturation (tanh(-9.07) = -0.99999994);
    in float64, rounded once, it is -1.0, as PyTorch's: argmin and trunc see the difference."""
    return np.tanh(x.astype(np.float64)).astype(x.dtype) if x.dtype == np.float32 else np.tanh(x)


unary("tanh", _tanh, lambda g, out, x: g * (1 - out * out), saves=("out",))
unary("sigmoid", _sigmoid, lambda g, out, x: g * out * (1 - out), saves=("out",))
unary("erf", lambda x: np.asarray(_erf(x), dtype=x.dtype),   # 0-dim: frompyfunc gives a float
            lambda g, out, x: g * (2 / math.sqrt(math.pi)) * (-(x * x)).exp(), saves=(0,))
# floor and sign are piecewise constant: no VJP, so no cotangent flows on to what they
# read; the front end gives their PyTorch zero gradient (functional._zero_gradient).
unary("floor", np.floor)
unary("abs", np.abs, lambda g, out, x: g * x.sign(), saves=(0,), allowed=(1, 2))
unary("sign", _sign, allowed=(1, 2),
      scalar=lambda ops, x: ops.where(ops.ne(x, x), ops.const(0), ops.sign(x)))
unary("logical_not", np.logical_not, allowed=(0,))

# ---- binary arithmetic -------------------------------------------------------------------
binary("add", np.add, (lambda g, out, x, y: unbroadcast(g, x.shape),
                               lambda g, out, x, y: unbroadcast(g, y.shape)))
binary("sub", np.subtract, (lambda g, out, x, y: unbroadcast(g, x.shape),
                                    lambda g, out, x, y: unbroadcast(-g, y.shape)))
binary("mul", np.multiply, (lambda g, out, x, y: unbroadcast(g * y, x.shape),
                                    lambda g, out, x, y: unbroadcast(g * x, y.shape)),
       saves=(0, 1))
binary("div", np.divide,
             (lambda g, out, x, y: unbroadcast(g / y, x.shape),
              lambda g, out, x, y: unbroadcast(-g * out / y, y.shape)),
             saves=(1, "out"), allowed=(2,))


def _fmod_sign_fix(x, y):
    """PyTorch's floored remainder (``x % y``, the sign of y) and the fmod it starts
    from: fmod is exact, and adding y once when the signs differ is the only rounding.
    A zero remainder keeps fmod's sign (-4.0 % 2.0 is -0.0); x % inf is x for x >= 0
    and inf for x < 0; inf % y and x % 0 are NaN."""
    mod = np.fmod(x, y)
    fix = (mod != 0) & ((y < 0) != (mod < 0))
    return np.where(fix, mod + y, mod).astype(x.dtype, copy=False), mod, fix


def _remainder(x, y):
    """Floored remainder; integers exactly (numpy's integer % is Python's)."""
    if x.dtype.kind != "f":
        return np.remainder(x, y)
    return _fmod_sign_fix(x, y)[0]


def _floor_divide(x, y):
    """Floored quotient; integers exactly (numpy's // is Python's), floats as PyTorch's
    div_floor: (x - fmod(x, y)) / y, one less when the remainder's sign differs from
    y's, then floor (rounding up when the quotient was rounded just below an integer):
    1.0 // 0.1 is 9.0, where floor(1.0 / 0.1) is 10.0.  y == 0 gives x / y."""
    if x.dtype.kind != "f":
        return np.floor_divide(x, y)
    _, mod, fix = _fmod_sign_fix(x, y)
    div = (x - mod) / y - fix
    floored = np.floor(div)
    floored = floored + (div - floored > 0.5)
    q = np.where(div != 0, floored, np.copysign(np.zeros_like(div), x / y))
    return np.where(y == 0, x / y, q).astype(x.dtype, copy=False)


binary("floor_divide", _floor_divide,
       (lambda g, out, x, y: unbroadcast(g * 0, x.shape),
        lambda g, out, x, y: unbroadcast(g * 0, y.shape)), divisor=1)
binary("remainder", _remainder,
       (lambda g, out, x, y: unbroadcast(g, x.shape),
        lambda g, out, x, y: unbroadcast(-g * x.floor_divide(y), y.shape)),
       saves=(0, 1), divisor=1)


def _pow_grad_base(g, out, x, y):
    # PyTorch: the gradient is 0 where the exponent is 0 (even at x == 0, not 0 * inf).
    return unbroadcast((g * y * x ** (y - 1)).where(y != 0, 0), x.shape)


def _pow_grad_exponent(g, out, x, y):
    # d/dy x**y = x**y * log(x); PyTorch defines it as 0 where x == 0 and y >= 0.
    safe = (x == 0).logical_and(y >= 0)
    return unbroadcast((g * out * x.log()).where(safe.logical_not(), 0), y.shape)


def _pow_impl(x, y):
    """numpy's power, except an integer to a negative power (numpy raises): PyTorch's
    and the kernels' truncated quotient, 1 for x == 1, +-1 for x == -1, else 0."""
    if x.dtype.kind != "i" or not (np.asarray(y) < 0).any():
        return np.power(x, y)
    negative = y < 0
    inverse = np.where(x == 1, 1, np.where(x == -1, np.where(y % 2 == 1, -1, 1), 0))
    return np.where(negative, inverse, np.power(x, np.where(negative, 0, y))).astype(x.dtype)


binary("pow", _pow_impl, (_pow_grad_base, _pow_grad_exponent),
             saves=(0, 1, "out"), allowed=(1, 2))


def _atan2_grad(g, out, y, x, wrt_y):
    """d atan2(y, x) = (x dy - y dx) / (x^2 + y^2); 0 at the origin, as PyTorch."""
    r2 = x * x + y * y
    scale = (g / r2.where(r2 != 0, 1)).where(r2 != 0, 0)
    return unbroadcast(scale * x, y.shape) if wrt_y else unbroadcast(-scale * y, x.shape)


binary("atan2", np.arctan2, (lambda g, out, y, x: _atan2_grad(g, out, y, x, True),
                             lambda g, out, y, x: _atan2_grad(g, out, y, x, False)),
       saves=(0, 1), allowed=(2,))


def _max_grad(g, mine, other, losing):
    """Gradient of maximum/minimum, as PyTorch: the operand that does not lose takes
    it, ties split it, and at a NaN (nothing loses) both take it."""
    return g.where(mine != other, g * 0.5).where(losing.logical_not(), 0)


binary("maximum", np.maximum,
                 (lambda g, out, x, y: unbroadcast(_max_grad(g, x, y, x < y), x.shape),
                  lambda g, out, x, y: unbroadcast(_max_grad(g, y, x, y < x), y.shape)),
                 saves=(0, 1))
binary("minimum", np.minimum,
                 (lambda g, out, x, y: unbroadcast(_max_grad(g, x, y, x > y), x.shape),
                  lambda g, out, x, y: unbroadcast(_max_grad(g, y, x, y > x), y.shape)),
                 saves=(0, 1))

# ---- binary cross entropy ----------------------------------------------------------------
# A primitive for its PyTorch gradients, which no composition gives: the forward clamps
# each log at -100, but the input's gradient is (p - y) / max(p (1 - p), 1e-12) (finite
# at p = 0 or 1, where the clamped logs' rules give 0 * inf = nan) and the target's is
# -logit(p) (infinite there, where the clamped logs give a finite one).
def _bce(p, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((y - 1) * np.maximum(np.log1p(-p), -100)
                - y * np.maximum(np.log(p), -100)).astype(p.dtype, copy=False)


def _bce_scalar(ops, p, y):
    one, floor = ops.const(1), ops.const(-100)
    return ops.sub(ops.mul(ops.sub(y, one), ops.maximum(ops.log1p(ops.neg(p)), floor)),
                   ops.mul(y, ops.maximum(ops.log(p), floor)))


binary("binary_cross_entropy", _bce,
       (lambda g, out, p, y: unbroadcast(g * (p - y) / ((1 - p) * p).clamp(min=1e-12),
                                         p.shape),
        lambda g, out, p, y: unbroadcast(-g * (p / (1 - p)).log(), y.shape)),
       saves=(0, 1), allowed=(2,), scalar=_bce_scalar)


# ---- comparisons and logic (no gradient) -------------------------------------------------
binary("eq", np.equal, allowed=(0, 1, 2), out_dtype=dtypes.bool_)
binary("ne", np.not_equal, allowed=(0, 1, 2), out_dtype=dtypes.bool_)
binary("lt", np.less, allowed=(0, 1, 2), out_dtype=dtypes.bool_)
binary("le", np.less_equal, allowed=(0, 1, 2), out_dtype=dtypes.bool_)
binary("gt", np.greater, allowed=(0, 1, 2), out_dtype=dtypes.bool_)
binary("ge", np.greater_equal, allowed=(0, 1, 2), out_dtype=dtypes.bool_)
binary("logical_and", np.logical_and, allowed=(0,))
binary("logical_or", np.logical_or, allowed=(0,))


# ---- where and cast ----------------------------------------------------------------------
def _where_infer(c: TensorType, x: TensorType, y: TensorType) -> TensorType:
    if c.dtype != dtypes.bool_:
        raise op_error("where", "condition must be a bool tensor", c, x, y)
    if x.dtype != y.dtype:
        raise op_error("where", "the two branches must share one dtype", c, x, y)
    return TensorType(broadcast_shapes("where", c, x, y), x.dtype)


register(Primitive(
    "where", "elementwise", _where_infer, np.where,
    vjp=(None,
         lambda g, out, c, x, y: unbroadcast(g.where(c, 0), x.shape),
         lambda g, out, c, x, y: unbroadcast(g.where(c.logical_not(), 0), y.shape)),
    saves=(0,), scalar=scalar_op("where")))


def _cast_grad(g, out, x, dtype):
    return g.to(x.dtype) if x.dtype.is_floating_point else None


def _cast(x, dtype):
    """numpy's astype, with PyTorch's two detours: float64 reaches float16/bfloat16
    through float32 (two roundings, as c10's conversions), and floats reach the integer
    types narrower than 32 bits through int64, wrapping (300.7 -> uint8 44)."""
    if x.dtype == np.float64 and dtype in dtypes.HALF:
        x = x.astype(np.float32)
    elif x.dtype.kind == "f" and dtype.category == 1 and dtype.itemsize < 4:
        x = x.astype(np.int64)
    return x.astype(dtype.np)


register(Primitive(
    "cast", "elementwise",
    lambda x, dtype: TensorType(x.shape, dtype),
    _cast,
    vjp=(_cast_grad,), attrs=("dtype",), scalar=scalar_op("cast")))
