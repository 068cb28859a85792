"""Pointwise math PyTorch programs use beyond the primitives: inverse trigonometric and
hyperbolic functions, ``erfc``/``erfinv``, ``copysign``/``fmod``, ``lerp``, ``addcmul``,
``nan_to_num``...  Each is a composite of tensor functions (so it is eager,
differentiable, traceable and runs on every backend), written in the form that keeps
float32 accuracy where the textbook formula would lose it (``log1p`` for small
arguments, products instead of differences of squares)."""
from __future__ import annotations

import math

import numpy as np

from graphc import dtypes
from graphc import functional as F
from graphc.composite import logaddexp
from graphc.indexing import apply_inplace
from graphc.tensor import Tensor


def _floating(x):
    """x as a floating tensor: integer and bool inputs compute in the default float, as
    PyTorch's unary float ops do."""
    if not isinstance(x, Tensor):
        x = F.scalar_tensor(x, dtypes.scalar_dtype(x))
    return x if x.dtype.is_floating_point else F.cast(x, dtypes.default_float)


def _float_pair(a, b):
    """Both operands at their promoted dtype, made floating."""
    dtype = F.result_type(a, b)
    if not dtype.is_floating_point:
        dtype = dtypes.default_float
    return F._operand(a, dtype), F._operand(b, dtype)


_SCALAR_TYPE = {"float32": "Float", "float64": "Double", "float16": "Half",
                "bfloat16": "BFloat16", "int64": "Long", "int32": "Int", "int16": "Short",
                "int8": "Char", "uint8": "Byte", "bool": "Bool"}
"""PyTorch's C++ names of the dtypes, which its 'not implemented for' errors use."""


def refuse_kernel(kernel, op, *operands, floating=True):
    """PyTorch's NotImplementedError for a kernel without bool (and, when ``floating``,
    integer) versions, judged on the operands' promoted dtype."""
    dtype = F.result_type(*operands)
    if dtype == dtypes.bool_ or floating and not dtype.is_floating_point:
        shapes = ", ".join(f"{t.dtype.name}{list(t.shape)}" for t in operands
                           if isinstance(t, Tensor))
        raise NotImplementedError(f"\"{kernel}\" not implemented for "
                                  f"'{_SCALAR_TYPE.get(dtype.name, dtype.name)}' ({op} of "
                                  f"{shapes})")


def _safe(mask, x, value):
    """x where ``mask`` holds, else ``value``: the branch a ``where`` will not take is
    computed on harmless inputs, so its gradient (multiplied by 0) is not inf or nan."""
    return F.where(mask, x, value)


# ---- trigonometric and hyperbolic -----------------------------------------------------------
def _cos_of_asin(x):
    """sqrt(1 - x^2) as sqrt((1 - x)(1 + x)), which keeps its digits near |x| = 1."""
    return F.sqrt((1 - x) * (1 + x))


def asin(input):
    x = _floating(input)
    return F.atan2(x, _cos_of_asin(x))


def acos(input):
    x = _floating(input)
    return F.atan2(_cos_of_asin(x), x)


def atan(input):
    x = _floating(input)
    return F.atan2(x, F._operand(1.0, x.dtype))


_EXP_CUTOFF = 20.0
"""Beyond this magnitude e^-|x| is below float64's resolution of e^|x|, so sinh and cosh
are +-e^|x| / 2, computed as (h / 2) h with h = e^(|x|/2): finite up to float32's
largest sinh (89.4), where e^|x| itself overflows."""


def _half_exp(x):
    """e^|x| / 2 for |x| > _EXP_CUTOFF (harmless elsewhere, for the branch not taken)."""
    a = F.abs(x)
    h = F.exp(F.where(a > _EXP_CUTOFF, a, 0.0) * 0.5)
    return (h * 0.5) * h


def sinh(input):
    """(e^x - e^-x) / 2 through expm1, exact for tiny x."""
    x = _floating(input)
    big = F.abs(x) > _EXP_CUTOFF
    xs = _safe(big, 0.0, x)
    small = (F.expm1(xs) - F.expm1(-xs)) * 0.5
    return F.where(big, F.where(x < 0, -1.0, 1.0) * _half_exp(x), small)


def cosh(input):
    x = _floating(input)
    big = F.abs(x) > _EXP_CUTOFF
    xs = _safe(big, 0.0, x)
    return F.where(big, _half_exp(x), (F.exp(xs) + F.exp(-xs)) * 0.5)


_HUGE = 2.0 ** 28
"""Above this magnitude x^2 + 1 == x^2 even in float64, so asinh and acosh are
log(2|x|) (and squaring would overflow float32 past 1.8e19)."""


def asinh(input):
    """sign(x) log1p(|x| + x^2 / (1 + sqrt(1 + x^2))): exact for tiny x."""
    x = _floating(input)
    negative = x < 0
    a = F.where(negative, -x, x)        # |x| with slope 1 at 0 (abs' is 0 there)
    huge = a > _HUGE
    s = _safe(huge, 1.0, a)
    small = F.log1p(s + s * s / (1 + F.sqrt(1 + s * s)))
    magnitude = F.where(huge, F.log(_safe(huge, a, 1.0)) + math.log(2), small)
    return F.where(negative, -magnitude, magnitude)


def acosh(input):
    """log1p(t + sqrt(t (t + 2))) with t = x - 1: exact near x = 1."""
    x = _floating(input)
    huge = x > _HUGE
    t = _safe(huge, 0.0, x) - 1
    small = F.log1p(t + F.sqrt(t * (t + 2)))
    big = F.log(_safe(huge, x, 1.0)) + math.log(2)
    return F.where(x < 1, math.nan, F.where(huge, big, small))


def atanh(input):
    """log1p(2x / (1 - x)) / 2: exact for tiny x."""
    x = _floating(input)
    return F.log1p(2 * x / (1 - x)) * 0.5


arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh


def arctan2(input, other):
    return F.atan2(input, other)


def deg2rad(input):
    return _floating(input) * (math.pi / 180)


def rad2deg(input):
    return _floating(input) * (180 / math.pi)


# ---- powers, exponentials and logarithms ----------------------------------------------------
def reciprocal(input):
    x = _floating(input)
    return F._operand(1.0, x.dtype) / x


def square(input):
    """x * x; bools square to int64, as PyTorch."""
    if input.dtype == dtypes.bool_:
        input = F.cast(input, dtypes.int64)
    return input * input


def exp2(input):
    """2 ** x through pow, so integer powers of two are exact."""
    x = _floating(input)
    return F.pow(F._operand(2.0, x.dtype), x)


def float_power(input, exponent):
    """pow in float64, whatever the operands' dtypes."""
    return F.pow(F._operand(input, dtypes.float64), F._operand(exponent, dtypes.float64))


def float_power_(input, exponent):
    """In place only on a float64 tensor: the result is always float64."""
    if input.dtype != dtypes.float64:
        raise RuntimeError(f"the base given to float_power_ has dtype "
                           f"{_SCALAR_TYPE.get(input.dtype.name, input.dtype.name)} but the "
                           f"operation's result requires dtype Double")
    return apply_inplace(input, "float_power_", lambda x: float_power(x, exponent))


def xlogy(input, other):
    """x log(y), 0 where x == 0 (even for y == 0), NaN where y is NaN, with PyTorch's
    gradients: log(y) for x (0 at x == y == 0), x / y for y (NaN at x == y == 0).  At
    x == 0 the x-gradient for an infinite or negative y is 0 here (inf, NaN in PyTorch)."""
    x, y = _float_pair(input, other)
    at_zero = (x == 0).logical_and(F.isnan(y).logical_not())
    ordinary = (y > 0).logical_and(F.isfinite(y))
    zero_term = x * F.log(_safe(ordinary, y, 1.0))              # exactly 0 in value
    return F.where(at_zero, zero_term, _safe(at_zero, 1.0, x) * F.log(y))


def logit(input, eps=None):
    """log(x / (1 - x)), x first clamped into [eps, 1 - eps] when eps is given (the
    gradient is then 0 outside the bounds, as PyTorch's)."""
    x = _floating(input)
    if eps is not None:
        inside = (x >= eps).logical_and(x <= 1 - eps)
        clamped = F.clamp(x, eps, 1 - eps)
        x = F.where(inside, clamped, clamped.detach())
    return F.log(x / (1 - x))


# ---- error function -------------------------------------------------------------------------
_ERFC_COEFFICIENTS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
                      0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277)
"""Numerical Recipes' Chebyshev fit: erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2),
relative error below 1.2e-7 for every z >= 0."""


def erfc(input):
    """1 - erf(x) where that loses nothing (x < 0.5), else the Chebyshev fit, whose
    relative error stays below 1.2e-7 far into the tail (1 - erf(x) is 0 in float32
    from x = 4, where erfc is still 1.5e-8).  float32 accuracy; float64 gets the same
    1.2e-7 relative error in the tail."""
    x = _floating(input)
    tail = x >= 0.5
    z = _safe(tail, x, 1.0)
    t = 1 / (1 + 0.5 * z)
    poly = 0.0
    for c in reversed(_ERFC_COEFFICIENTS):
        poly = poly * t + c
    return F.where(tail, t * F.exp(-z * z + poly), 1 - F.erf(x))


def erfinv(input):
    """Giles' single-precision approximation, then Newton steps on erf (a primitive,
    accurate to the last digit), in float64: float32 results are exact to rounding,
    float64 ones to about 1e-10 relative up to |y| = 1 - 1e-8 (beyond, erf(x) rounds to
    within a few ulps of 1 and the step resolves less: 4e-2 relative at 1 - 1e-15).
    The value is computed without gradient; the gradient, sqrt(pi)/2 e^(x^2), is
    attached as ``(y - y.detach()) * slope`` (exactly 0 in value).  +-1 give +-inf,
    outside [-1, 1] NaN."""
    y = _floating(input)
    inside = F.abs(y) < 1
    ys = F.cast(_safe(inside, y, 0.0), dtypes.float64)
    flat = ys.detach()
    w = -F.log((1 - flat) * (1 + flat))
    central, tail = w - 2.5, F.sqrt(F.where(w < 5, 5.0, w)) - 3
    p_central = p_tail = 0.0
    for a, b in zip((2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                     0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941),
                    (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                     0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)):
        p_central = p_central * central + a
        p_tail = p_tail * tail + b
    x = F.where(w < 5, p_central, p_tail) * flat
    # The guess is good to about 1e-7, and each step squares the relative error: one
    # step is float32-exact, float64 takes two.
    for _ in range(1 if y.dtype == dtypes.float32 else 2):
        x = x - (F.erf(x) - flat) * F.exp(x * x) * (math.sqrt(math.pi) / 2)
    x = x + (ys - flat) * (F.exp(x * x) * (math.sqrt(math.pi) / 2))
    x = F.cast(x, y.dtype)
    edge = F.where(y > 0, math.inf, -math.inf)
    return F.where(inside, x, F.where(F.abs(y) == 1, edge, math.nan))


# ---- gamma functions -----------------------------------------------------------------------
_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012,
            9.9843695780195716e-6, 1.5056327351493116e-7)
"""Lanczos' coefficients for g = 7: log Gamma to about 1e-15 for arguments >= 1/2 (the
sum cancels, so it is evaluated in float64)."""


def _pi_turns(x):
    """sin(pi x) and cos(pi x) from x reduced into [0, 2) (exactly), so a large x loses
    nothing to the multiplication by pi."""
    r = x - 2 * F.floor(x * 0.5)
    return F.sin(r * math.pi), F.cos(r * math.pi)


def _reflected(x):
    """x in float64, whether it reflects (x < 1/2), 1 - x there (the argument the series
    see, always >= 1/2 and finite-safe), and whether x is a pole (an integer <= 0)."""
    x = F.cast(_floating(x), dtypes.float64)
    reflect = x < 0.5
    u = F.where(reflect, 1 - x, x)
    u = _safe(F.isinf(u), 1.0, u)
    pole = reflect.logical_and(F.floor(x) == x)
    return x, reflect, u, pole


def lgamma(input):
    """log |Gamma(x)|: Lanczos' series for x >= 1/2, the reflection formula
    log(pi / |sin(pi x)|) - lgamma(1 - x) below; +inf at the poles and at +-inf."""
    y = _floating(input)
    x, reflect, u, pole = _reflected(y)
    z = u - 1
    series = _LANCZOS[0]
    for i, c in enumerate(_LANCZOS[1:], 1):
        series = series + c / (z + i)
    t = z + 7.5
    log_gamma = 0.5 * math.log(2 * math.pi) + (z + 0.5) * F.log(t) - t + F.log(series)
    sin, _ = _pi_turns(x)
    usable = reflect.logical_and(pole.logical_not())
    reflected = math.log(math.pi) - F.log(F.abs(_safe(usable, sin, 1.0))) - log_gamma
    out = F.where(reflect, F.where(pole, math.inf, reflected), log_gamma)
    return F.cast(F.where(F.isinf(x), math.inf, out), y.dtype)


def digamma(input):
    """d/dx log Gamma(x): shifted by 10 (psi(x) = psi(x + 10) - sum 1/(x + k)) into the
    range where its asymptotic series is good to 1e-15, reflected below 1/2
    (psi(x) = psi(1 - x) - pi / tan(pi x)); at 0 -inf (+inf at -0.0), NaN at the
    negative integers, as PyTorch."""
    y = _floating(input)
    x, reflect, u, pole = _reflected(y)
    shift = 0.0
    for k in range(10):
        shift = shift + 1 / (u + k)
    v = u + 10
    w = 1 / (v * v)
    tail = w * (1 / 12 - w * (1 / 120 - w * (1 / 252 - w * (1 / 240 - w * (1 / 132)))))
    psi = F.log(v) - 0.5 / v - tail - shift
    sin, cos = _pi_turns(x)
    usable = reflect.logical_and(pole.logical_not())
    reflected = psi - math.pi * cos / _safe(usable, sin, 1.0)
    at_zero = F.where(_sign_bit(x), math.inf, -math.inf)
    pole_value = F.where(x == 0, at_zero, math.nan)
    out = F.where(reflect, F.where(pole, pole_value, reflected), psi)
    return F.cast(F.where(x == math.inf, math.inf, out), y.dtype)


# ---- signs, rounding and remainders ---------------------------------------------------------
def sgn(input):
    return F.sign(input)


def _sign_bit(x):
    """True for negative numbers and -0.0 (whose reciprocal is -inf)."""
    return (x < 0).logical_or((x == 0).logical_and(1 / x < 0))


def copysign(input, other):
    """|input| with the sign bit of ``other``; floats only, as PyTorch's."""
    a, b = _float_pair(input, other)
    return F._zero_gradient(F.where(_sign_bit(b.detach()), -F.abs(a), F.abs(a)), b)


def fmod(input, other):
    """C's fmod: the remainder of truncated division, with the sign of the dividend (``%``
    and ``remainder`` take the divisor's).  Computed as the floored remainder of the
    magnitudes (exact), given the dividend's sign."""
    refuse_kernel("fmod_cpu", "fmod", input, other, floating=False)
    dtype = F.result_type(input, other)
    a, b = F._operand(input, dtype), F._operand(other, dtype)
    if not dtype.is_floating_point:
        F._check_integer_divisor(b, "fmod")
    negative = a < 0
    r = F.remainder(F.where(negative, -a, a), F.abs(b))    # slope 1 in a, at 0 too
    return F.where(negative, -r, r)


def frac(input):
    """x - trunc(x), sign kept; the gradient is 1, as PyTorch's."""
    refuse_kernel("frac_cpu", "frac", input)
    return input - F.trunc(input).detach()


def heaviside(input, values):
    """0 below zero, 1 above, ``values`` at zero; PyTorch gives it no gradient."""
    if isinstance(values, Tensor) and values.dtype != input.dtype:
        raise RuntimeError(f"heaviside is not yet implemented for tensors with different "
                           f"dtypes ({input.dtype.name}{list(input.shape)} and "
                           f"{values.dtype.name}{list(values.shape)})")
    step = F.cast(input > 0, input.dtype)
    return F.where(input == 0, F._operand(values, input.dtype), step).detach()


def hypot(input, other):
    """sqrt(a^2 + b^2), scaled by the larger magnitude so that it overflows only when
    the result does; inf where either is infinite (even with a NaN), 0 at the origin
    (gradient 0 there, not NaN)."""
    refuse_kernel("hypot_cpu", "hypot", input, other)
    a, b = _float_pair(input, other)
    infinite = F.isinf(a).logical_or(F.isinf(b))
    big = F.maximum(F.abs(a), F.abs(b))
    usable = (big != 0).logical_and(infinite.logical_not())
    s = _safe(usable, big, 1.0)
    r = s * F.sqrt((a / s) * (a / s) + (b / s) * (b / s))
    return F.where(infinite, math.inf, F.where(big == 0, 0.0, r))


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced (by default with 0 and the dtype's largest and
    smallest finite values); integer tensors are returned as a copy."""
    if not input.dtype.is_floating_point:
        return F.clone(input)
    info = np.finfo(input.dtype.np)
    posinf = float(info.max) if posinf is None else posinf
    neginf = float(info.min) if neginf is None else neginf
    out = F.where(F.isnan(input), F._operand(nan, input.dtype), input)
    out = F.where(input == math.inf, F._operand(posinf, input.dtype), out)
    return F.where(input == -math.inf, F._operand(neginf, input.dtype), out)


def clamp_min(input, min):
    return F.clamp(input, min=min)


def clamp_max(input, max):
    return F.clamp(input, max=max)


# ---- fused arithmetic -----------------------------------------------------------------------
def lerp(input, end, weight):
    """start + w (end - start) for w < 0.5, else end - (end - start)(1 - w): PyTorch's two
    forms, exact at both ends."""
    if isinstance(end, Tensor) and end.dtype != input.dtype:
        raise RuntimeError(f"expected dtype {input.dtype.name} for `end` but got dtype "
                           f"{end.dtype.name}")
    refuse_kernel("lerp_kernel_scalar", "lerp", input)
    diff = end - input
    w = F._operand(weight, input.dtype)
    return F.where(F.abs(w) < 0.5, input + w * diff, end - diff * (1 - w))


def addcmul(input, tensor1, tensor2, value=1):
    return input + value * (tensor1 * tensor2) if value != 1 else input + tensor1 * tensor2


def addcdiv(input, tensor1, tensor2, value=1):
    if not (tensor1.dtype.is_floating_point or tensor2.dtype.is_floating_point):
        raise RuntimeError("Integer division with addcdiv is no longer supported, and in a "
                           "future release addcdiv will perform a true division of tensor1 "
                           "and tensor2. The historic addcdiv behavior can be implemented "
                           "as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) "
                           "for integer inputs and as (input + value * tensor1 / tensor2) for "
                           "float inputs. The future addcdiv behavior is just the latter "
                           "implementation: (input + value * tensor1 / tensor2), for all "
                           "dtypes.")
    return input + value * (tensor1 / tensor2) if value != 1 else input + tensor1 / tensor2


# ---- comparisons ----------------------------------------------------------------------------
def _nan_ignoring(input, other, keep_input):
    """fmax/fmin: the input where ``keep_input`` (ties included) or the other is NaN, else
    the other; the gradient goes to the operand taken, ties to the input, as PyTorch's."""
    dtype = F.result_type(input, other)
    a, b = F._operand(input, dtype), F._operand(other, dtype)
    take_input = keep_input(a, b)
    if dtype.is_floating_point:
        take_input = take_input.logical_or(F.isnan(b))
    return F.where(take_input, a, b)


def fmax(input, other):
    """maximum, except that a NaN loses to a number."""
    return _nan_ignoring(input, other, F.ge)


def fmin(input, other):
    """minimum, except that a NaN loses to a number."""
    return _nan_ignoring(input, other, F.le)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol |b|, equal infinities close, NaN close to NaN only with
    ``equal_nan``."""
    if isinstance(other, Tensor) and input.dtype != other.dtype:
        raise RuntimeError(f"{input.dtype.name} did not match {other.dtype.name}")
    if rtol < 0 or atol < 0:
        raise RuntimeError(f"isclose: rtol and atol must be non-negative, got rtol={rtol} "
                           f"and atol={atol}")
    equal = input == other
    if not input.dtype.is_floating_point:
        a = F.cast(input, dtypes.float64)
        b = F.cast(other, dtypes.float64) if isinstance(other, Tensor) else other
        return equal.logical_or(F.abs(a - b) <= atol + rtol * F.abs(b))
    if equal_nan:
        equal = equal.logical_or(F.isnan(input).logical_and(F.isnan(other)))
    finite = F.isfinite(input).logical_and(F.isfinite(other))
    close = F.abs(input - other) <= atol + rtol * F.abs(other)
    return equal.logical_or(finite.logical_and(close))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(F.all(isclose(input, other, rtol, atol, equal_nan)))


# ---- more pointwise -------------------------------------------------------------------------
def sinc(input):
    """sin(pi x) / (pi x), 1 at 0 (with gradient 0 there)."""
    x = _floating(input)
    zero = x == 0
    scaled = _safe(zero, 1.0, x) * math.pi
    return F.where(zero, 1.0, F.sin(scaled) / scaled)


def signbit(input):
    """True for negative numbers and -0.0.  A NaN counts as positive whatever its sign
    bit (no tensor function reads the bit; PyTorch's -nan gives True)."""
    if not input.dtype.is_floating_point:
        return input < 0
    return _sign_bit(input)


def logaddexp2(input, other):
    """log2(2^a + 2^b), through logaddexp in natural units."""
    refuse_kernel("logaddexp2_cpu", "logaddexp2", input, other)
    a, b = _float_pair(input, other)
    return logaddexp(a * math.log(2), b * math.log(2)) / math.log(2)


def ldexp(input, other):
    """input * 2^other, as a float."""
    x, e = _float_pair(input, other)
    return x * F.pow(F._operand(2.0, e.dtype), e)


def fix(input):
    return F.trunc(input)


def isposinf(input):
    if not input.dtype.is_floating_point:
        return F.zeros_like(input, dtypes.bool_)
    return input == math.inf


def isneginf(input):
    if not input.dtype.is_floating_point:
        return F.zeros_like(input, dtypes.bool_)
    return input == -math.inf


def isreal(input):
    """Every real tensor is real (graphc has no complex dtypes)."""
    return F.logical_not(F.zeros_like(input, dtypes.bool_))


def positive(input):
    if input.dtype == dtypes.bool_:
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return input


def mvlgamma(input, p):
    """The multivariate log-gamma: sum of lgamma(x - i/2) for i < p, plus
    p (p - 1) / 4 log(pi)."""
    if p < 1:
        raise RuntimeError(f"p has to be greater than or equal to 1 (got p={p})")
    x = _floating(input)
    out = lgamma(x)
    for i in range(1, p):
        out = out + lgamma(x - i / 2)
    return out + p * (p - 1) / 4 * math.log(math.pi)
