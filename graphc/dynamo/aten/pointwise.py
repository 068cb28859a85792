"""Lowerings of pointwise ops and activations."""
from __future__ import annotations

from torch._inductor import inductor_prims   # registers prims.fma, which Dynamo emits

import graphc
import graphc.nn.functional as F
from graphc.dynamo.aten.registry import aten, lowering


# ---------------------------------------------------------------- pointwise, one name

UNARY = """abs acos acosh asin asinh atan atanh ceil cos cosh erf erfc erfinv exp exp2 expm1
floor frac isfinite isinf isnan isneginf isposinf lgamma digamma log log10 log1p log2 neg
reciprocal relu round rsqrt sgn sigmoid sign signbit sin sinc sinh sqrt square tan tanh
trunc logical_not bitwise_not""".split()

BINARY = """atan2 maximum minimum fmod remainder eq ne lt le gt ge logical_and logical_or
logical_xor floor_divide copysign hypot fmax fmin xlogy heaviside""".split()

for _name in UNARY:
    lowering(getattr(aten, _name).default)(getattr(graphc, _name))
for _name in BINARY:  # every overload: Tensor, Scalar, Scalar_Tensor...
    lowering(getattr(aten, _name))(getattr(graphc, _name))


@lowering(aten.add.Tensor, aten.add.Scalar)
def add(a, b, alpha=1):
    return graphc.add(a, b, alpha=alpha)


@lowering(aten.sub.Tensor, aten.sub.Scalar)
def sub(a, b, alpha=1):
    return graphc.sub(a, b, alpha=alpha)


@lowering(aten.rsub.Tensor, aten.rsub.Scalar)
def rsub(a, b, alpha=1):
    return graphc.sub(b, a, alpha=alpha)


@lowering(aten.mul.Tensor, aten.mul.Scalar)
def mul(a, b):
    return graphc.mul(a, b)


@lowering(aten.div.Tensor, aten.div.Scalar, aten.div.Tensor_mode, aten.div.Scalar_mode)
def div(a, b, rounding_mode=None):
    return graphc.div(a, b, rounding_mode=rounding_mode)


@lowering(aten.pow.Tensor_Tensor, aten.pow.Tensor_Scalar, aten.pow.Scalar)
def power(a, b):
    return graphc.pow(a, b)


def _bitwise(logical):
    """ATen's bitwise and/or/xor; graphc has them for bool only (``unsupported`` checks),
    where they are its logical ones (a Python bool operand as a 0-d tensor)."""
    def lower(a, b):
        a, b = (x if isinstance(x, graphc.Tensor) else graphc.tensor(x) for x in (a, b))
        return logical(a, b)
    return lower


lowering(aten.bitwise_and)(_bitwise(graphc.logical_and))
lowering(aten.bitwise_or)(_bitwise(graphc.logical_or))
lowering(aten.bitwise_xor)(_bitwise(graphc.logical_xor))


@lowering(aten.clamp.default, aten.clamp.Tensor)
def clamp(x, min=None, max=None):
    return graphc.clamp(x, min, max)


@lowering(aten.clamp_min.default, aten.clamp_min.Tensor)
def clamp_min(x, min):
    return graphc.clamp_min(x, min)


@lowering(aten.clamp_max.default, aten.clamp_max.Tensor)
def clamp_max(x, max):
    return graphc.clamp_max(x, max)


@lowering(aten.where.self, aten.where.ScalarSelf, aten.where.ScalarOther, aten.where.Scalar)
def where(condition, a, b):
    return graphc.where(condition, a, b)


@lowering(aten.masked_fill.Scalar, aten.masked_fill.Tensor)
def masked_fill(x, mask, value):
    return graphc.masked_fill(x, mask, value)


@lowering(aten.lerp.Scalar, aten.lerp.Tensor)
def lerp(a, b, weight):
    return graphc.lerp(a, b, weight)


@lowering(aten.addcmul.default)
def addcmul(x, a, b, value=1):
    return graphc.addcmul(x, a, b, value=value)


@lowering(inductor_prims.fma)
def fma(a, b, c):
    """``a * b + c``: Dynamo writes ``addcmul_`` (AdamW's step) with it.  PyTorch's
    prim rounds once; graphc rounds the product too, as eager ``addcmul`` does."""
    return graphc.add(graphc.mul(a, b), c)


@lowering(aten.addcdiv.default)
def addcdiv(x, a, b, value=1):
    return graphc.addcdiv(x, a, b, value=value)


@lowering(aten.logit.default)
def logit(x, eps=None):
    return graphc.logit(x, eps)


@lowering(aten.nan_to_num.default)
def nan_to_num(x, nan=None, posinf=None, neginf=None):
    return graphc.nan_to_num(x, nan=0.0 if nan is None else nan, posinf=posinf, neginf=neginf)


# ------------------------------------------------------------------------ activations

@lowering(aten.gelu.default)
def gelu(x, approximate="none"):
    return F.gelu(x, approximate=approximate)


for _name in ("silu", "hardswish", "hardsigmoid", "mish"):
    lowering(getattr(aten, _name).default)(getattr(F, _name))


@lowering(aten.softplus.default)
def softplus(x, beta=1, threshold=20):
    return F.softplus(x, beta=beta, threshold=threshold)


@lowering(aten.elu.default)
def elu(x, alpha=1, scale=1, input_scale=1):
    if scale == 1 and input_scale == 1:
        return F.elu(x, alpha=alpha)
    # selu and celu reach ATen as elu with a scale and an input scale
    return graphc.where(x > 0, x * scale, (graphc.exp(x * input_scale) - 1) * (alpha * scale))


@lowering(aten.hardtanh.default)
def hardtanh(x, min_val=-1, max_val=1):
    return F.hardtanh(x, min_val, max_val)


@lowering(aten.leaky_relu.default)
def leaky_relu(x, negative_slope=0.01):
    return F.leaky_relu(x, negative_slope)


@lowering(aten._softmax.default)
def softmax(x, dim, half_to_float):
    return F.softmax(x, dim, dtype=graphc.float32 if half_to_float else None)


@lowering(aten._log_softmax.default)
def log_softmax(x, dim, half_to_float):
    return F.log_softmax(x, dim, dtype=graphc.float32 if half_to_float else None)
