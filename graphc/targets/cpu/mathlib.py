"""Transcendental functions as branch-free LLVM IR, so the loop vectorizer can widen them.

LLVM vectorizes a call to a libm function only when a vector math library is available,
so a kernel calling ``expf`` would run one element at a time.  Here every function is
built from operations that vectorize everywhere: float arithmetic, ``select``, bitcasts,
integer operations on exponent bits and the ``fabs``/``floor``/``copysign``/``fmuladd``
intrinsics.  Each function is defined once per module as an internal ``alwaysinline``
helper (``graphc.exp.f32``), which the optimiser inlines into the loop before
vectorizing it::

    y = mathlib.emit(builder, "tanh", x)      # x: an f32 or f64 ir.Value

``llvm.fmuladd`` fuses where the target has FMA and stays a multiply and an add where it
does not; every range reduction below splits its constant so that the products it needs
exactly are exact either way.

sin and cos reduce their argument exactly over the whole finite range: Cody-Waite with a
four-part pi/2 below 120, Payne-Hanek beyond (float64: exact products of the argument's
halves with 26-bit chunks of 2/pi, summed in double-double; float32: ARM's fixed-point
product with a 96-bit window of 2/pi), both computed and one selected, so the loop
stays branch-free; the polynomials run in float64, and float32 is rounded once.  That
costs about six times the old short reduction (measured per element, one thread: f32
2.6 ns instead of 0.44, f64 6.8 ns instead of 1.1), most of it the Payne-Hanek terms
and their table lookups (gathers).

Accuracy against correctly rounded results, measured over millions of inputs in both
precisions (tests/test_cpu_mathlib.py): exp, log and erf within 1 ulp, tanh within 2,
sigmoid within 3 (its formula rounds three times); sin/cos over the whole finite
range: f64 within 2 ulp (but for a few constructed arguments within 2**-45 of a
multiple of pi/2, see _reduce_pio2), f32 within 1 (computed in f64); expm1 within 2
ulp, log1p within 1 (exact for tiny x, where exp(x) - 1 and log(1 + x) lose every
digit); atan2 within 3.  Denormal inputs and results, overflow,
infinities, signed zeros and NaN follow numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from llvmlite import ir

I32 = ir.IntType(32)



@dataclass(frozen=True)
class _Format:
    """Bit layout of a float format and the few constants that depend only on it."""
    suffix: str
    bits: int
    mant_bits: int
    bias: int
    exp_max: float      # exp(x) overflows above this (clamping keeps 2**k representable)
    exp_min: float      # exp(x) rounds to 0 below this
    ln2_hi: float       # ln2 = ln2_hi + ln2_lo; k * ln2_hi is exact for every k exp uses
    ln2_lo: float


_F32 = _Format("f32", 32, 23, 127, 89.0, -104.0, 0.693359375, -2.12194440e-4)
_F64 = _Format("f64", 64, 52, 1023, 710.0, -746.0,
               6.93147180369123816490e-01, 1.90821492927058770002e-10)


class _Math:
    """An IRBuilder wrapper that reads like the scalar C it replaces: every operand may be
    a Python float (a constant of the working type) or an ir.Value."""

    def __init__(self, builder: ir.IRBuilder, fmt: _Format, ftype: ir.Type):
        self.b, self.fmt, self.ty = builder, fmt, ftype
        self.ity = ir.IntType(fmt.bits)

    def val(self, v):
        return v if isinstance(v, ir.Value) else ir.Constant(self.ty, v)

    def ival(self, v):
        return v if isinstance(v, ir.Value) else ir.Constant(self.ity, v)

    def intrinsic(self, name: str, *args):
        module = self.b.module
        full = f"{name}.{self.fmt.suffix}"
        fn = module.globals.get(full)
        if fn is None:
            fnty = ir.FunctionType(self.ty, [self.ty] * len(args))
            fn = ir.Function(module, fnty, full)
        return self.b.call(fn, [self.val(a) for a in args])

    # arithmetic ---------------------------------------------------------------------------
    def add(self, a, b):
        return self.b.fadd(self.val(a), self.val(b))

    def sub(self, a, b):
        return self.b.fsub(self.val(a), self.val(b))

    def mul(self, a, b):
        return self.b.fmul(self.val(a), self.val(b))

    def div(self, a, b):
        return self.b.fdiv(self.val(a), self.val(b))

    def fma(self, a, b, c):
        """a * b + c, fused where the target can."""
        return self.intrinsic("llvm.fmuladd", a, b, c)

    def poly(self, x, coeffs):
        """Horner's rule; ``coeffs`` from the constant term up."""
        acc = self.val(coeffs[-1])
        for c in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, c)
        return acc

    def fabs(self, x):
        return self.intrinsic("llvm.fabs", x)

    def floor(self, x):
        return self.intrinsic("llvm.floor", x)

    def copysign(self, mag, sign):
        return self.intrinsic("llvm.copysign", mag, sign)

    # comparisons and selects ----------------------------------------------------------------
    def cmp(self, op: str, a, b):
        """Ordered comparison: false when either side is NaN."""
        return self.b.fcmp_ordered(op, self.val(a), self.val(b))

    def select(self, cond, a, b):
        return self.b.select(cond, self.val(a), self.val(b))

    def is_nan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    # bits ----------------------------------------------------------------------------------
    def to_bits(self, x):
        return self.b.bitcast(self.val(x), self.ity)

    def from_bits(self, i):
        return self.b.bitcast(self.ival(i), self.ty)

    def pow2(self, k):
        """2**k as a float for an integer k with a normal result."""
        biased = self.b.add(k, self.ival(self.fmt.bias))
        return self.from_bits(self.b.shl(biased, self.ival(self.fmt.mant_bits)))


# ---- exp -----------------------------------------------------------------------------------
_EXP_POLY = {
    # Cephes expf: exp(r) = 1 + r + r^2 P(r) on |r| <= ln2/2, relative error ~1e-7.
    "f32": (1.0, 1.0, 5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3,
            1.3981999507e-3, 1.9875691500e-4),
    # Taylor series to degree 13: the truncation error on |r| <= ln2/2 is below 2**-60.
    "f64": tuple(1.0 / math.factorial(n) for n in range(14)),
}


def _exp_core(m: _Math, hi, lo=None, wide=True):
    """exp(hi + lo) for hi + lo within [exp_min, exp_max] (no special values).

    Cody-Waite reduction hi + lo = k ln2 + r with |r| <= ln2/2; ``lo`` (|lo| < 1) enters
    only after the exact subtraction of k ln2_hi, so callers can pass an argument that is
    more precise than one float (erf does).  With ``wide``, 2**k is applied in two halves
    so that results in the denormal range are rounded once and k = 128 (f32) does not
    overflow 2**k; callers whose result is a normal number pass ``wide=False``.
    """
    arg = hi if lo is None else m.add(hi, lo)
    k = m.floor(m.fma(arg, 1.4426950408889634, 0.5))
    neg_k = m.sub(0.0, k)
    r = m.fma(neg_k, m.fmt.ln2_hi, hi)
    r = m.fma(neg_k, m.fmt.ln2_lo, r)
    if lo is not None:
        r = m.add(r, lo)
    p = m.poly(r, _EXP_POLY[m.fmt.suffix])
    ki = m.b.fptosi(k, m.ity)
    if not wide:
        return m.mul(p, m.pow2(ki))
    k1 = m.b.ashr(ki, m.ival(1))
    return m.mul(m.mul(p, m.pow2(k1)), m.pow2(m.b.sub(ki, k1)))


def _exp(m: _Math, x):
    """exp with IEEE special values: +inf and overflow give inf, -inf and underflow 0,
    NaN stays NaN.  The clamps map NaN to exp_max, which is then replaced by x."""
    xc = m.select(m.cmp("<", x, m.fmt.exp_max), x, m.fmt.exp_max)
    xc = m.select(m.cmp(">", xc, m.fmt.exp_min), xc, m.fmt.exp_min)
    return m.select(m.is_nan(x), x, _exp_core(m, xc))


# ---- log -----------------------------------------------------------------------------------
_LOG = {
    # fdlibm (via musl): log(1+f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f).
    # Each entry: (min normal, denormal scale exponent, sqrt(1/2) bits, Lg1..Lgn).
    "f32": (2.0 ** -126, 25, 0x3F3504F3,
            (0.66666662693, 0.40000972152, 0.28498786688, 0.24279078841)),
    "f64": (2.0 ** -1022, 54, 0x3FE6A09E667F3BCD,
            (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
             2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
             1.479819860511658591e-01)),
}


def _log(m: _Math, x):
    """Split x = 2**k * (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)) by integer arithmetic on
    the bits (denormals are scaled up first), then the fdlibm kernel; the special values
    0, negatives, +inf and NaN are patched in with selects at the end."""
    fmt, b = m.fmt, m.b
    tiny, scale, sqrt_half, lg = _LOG[fmt.suffix]
    one_bits = fmt.bias << fmt.mant_bits
    is_tiny = m.cmp("<", x, tiny)
    xs = m.select(is_tiny, m.mul(x, 2.0 ** scale), x)
    k_adj = b.select(is_tiny, m.ival(-scale), m.ival(0))
    ix = b.add(m.to_bits(xs), m.ival(one_bits - sqrt_half))
    k = b.add(b.sub(b.lshr(ix, m.ival(fmt.mant_bits)), m.ival(fmt.bias)), k_adj)
    mant = b.add(b.and_(ix, m.ival((1 << fmt.mant_bits) - 1)), m.ival(sqrt_half))
    f = m.sub(m.from_bits(mant), 1.0)
    s = m.div(f, m.add(f, 2.0))
    z = m.mul(s, s)
    w = m.mul(z, z)
    t1 = m.mul(w, m.poly(w, lg[1::2]))
    t2 = m.mul(z, m.poly(w, lg[0::2]))
    hfsq = m.mul(m.mul(f, f), 0.5)
    dk = b.sitofp(k, m.ty)
    y = m.fma(s, m.add(hfsq, m.add(t2, t1)), m.mul(dk, fmt.ln2_lo))
    y = m.add(m.add(m.sub(y, hfsq), f), m.mul(dk, fmt.ln2_hi))
    y = m.select(m.cmp("==", x, float("inf")), x, y)
    y = m.select(m.cmp("==", x, 0.0), float("-inf"), y)
    return m.select(m.b.fcmp_unordered("<", x, m.val(0.0)), float("nan"), y)


# ---- tanh and sigmoid ----------------------------------------------------------------------
_TANH_SMALL = 0.625
_TANH_ONE = 20.0
_TANH_POLY = {
    # Cephes tanhf: tanh(x) = x + x z P(z), z = x^2, |x| < 0.625.
    "f32": (-3.33332819422e-1, 1.33314422036e-1, -5.37397155531e-2, 2.06390887954e-2,
            -5.70498872745e-3),
}
# Cephes tanh (f64): tanh(x) = x + x z P(z) / Q(z), Q monic.
_TANH_P64 = (-1.61468768441708447952e3, -9.92877231001918586564e1, -9.64399179425052238628e-1)
_TANH_Q64 = (4.84406305325125486048e3, 2.23548839060100448583e3, 1.12811678491632931402e2, 1.0)


def _tanh(m: _Math, x):
    """An odd polynomial (rational for f64) below 0.625, else 1 - 2 / (exp(2|x|) + 1) with
    |x| clamped to 20, where tanh is 1 to double precision; the sign is copied from x last
    so that -0.0 and tiny negative x keep theirs."""
    ax = m.fabs(x)
    z = m.mul(x, x)
    if m.fmt.suffix == "f32":
        ratio = m.poly(z, _TANH_POLY["f32"])
    else:
        ratio = m.div(m.poly(z, _TANH_P64), m.poly(z, _TANH_Q64))
    small = m.fma(m.mul(ax, z), ratio, ax)
    ac = m.select(m.cmp(">", ax, _TANH_ONE), _TANH_ONE, ax)       # keeps NaN
    e = _exp_core(m, m.mul(ac, 2.0), wide=False)
    large = m.sub(1.0, m.div(2.0, m.add(e, 1.0)))
    return m.copysign(m.select(m.cmp("<", ax, _TANH_SMALL), small, large), x)


def _sigmoid(m: _Math, x):
    """graphc's formula (ops/elementwise.py): e = exp(-|x|), then 1 / (1 + e) for x >= 0
    and e / (1 + e) otherwise, which never overflows."""
    e = _call(m, "exp", m.sub(0.0, m.fabs(x)))
    inv = m.div(1.0, m.add(e, 1.0))
    return m.select(m.cmp(">=", x, 0.0), inv, m.mul(e, inv))


# ---- erf -----------------------------------------------------------------------------------
# f32: two pieces fitted (near-minimax, Lawson's weighted least squares against mpmath):
#   |x| < 0.921875:  erf(x) = x + x P(x^2)          relative error 1.5e-8
#   |x| >= 0.921875: erf(x) = 1 - exp(Q(min(|x|, 4)))  absolute error 1.5e-9
_ERF32_SPLIT = 0.921875
_ERF32_P = (0.12837915165723193, -0.3761250570033169, 0.1128192734992935,
            -0.026770236537850683, 0.004998006649181958, -0.0006013418802181996)
_ERF32_Q = (-0.00020992051358510012, -1.1276154295159246, -0.6372858094363061,
            -0.10383885841835813, 0.022181373873356627, -0.0030315941302238377,
            0.00019473378325864977)


def _erf32(m: _Math, x):
    ax = m.fabs(x)
    small = m.fma(ax, m.poly(m.mul(x, x), _ERF32_P), ax)
    t = m.select(m.cmp(">", ax, 4.0), 4.0, ax)      # erfc(4) < 2**-25; keeps NaN
    large = m.sub(1.0, _exp_core(m, m.poly(t, _ERF32_Q), wide=False))
    return m.copysign(m.select(m.cmp("<", ax, _ERF32_SPLIT), small, large), x)


# f64: fdlibm's s_erf.c (via musl), four intervals of |x|, each a rational P(v) / Q(v):
#   [0, 0.84375)       v = x^2      erf = x + x P/Q
#   [0.84375, 1.25)    v = |x| - 1  erf = erx + P/Q
#   [1.25, 1/0.35)     v = 1/x^2    erf = 1 - exp(-x^2 - 0.5625 + P/Q) / |x|
#   [1/0.35, 6]        v = 1/x^2    same form, other coefficients; erf = 1 beyond 6.
# Branch-free: each coefficient is selected per lane, then one P/Q is evaluated.
_ERF64_BOUNDS = (0.84375, 1.25, 1 / 0.35)
_ERF64_ERX = 8.45062911510467529297e-01
_ERF64_P = (
    (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
     -5.77027029648944159157e-03, -2.37630166566501626084e-05),
    (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
     3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
     -2.16637559486879084300e-03),
    (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
     -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
     -8.12874355063065934246e+01, -9.81432934416914548592e+00),
    (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
     -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
     -4.83519191608651397019e+02),
)
_ERF64_Q = (
    (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
     1.32494738004321644526e-04, -3.96022827877536812320e-06),
    (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
     1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02),
    (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
     6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
     6.57024977031928170135e+00, -6.04244152148580987438e-02),
    (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
     3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
     -2.24409524465858183362e+01),
)


def _select_coeffs(m: _Math, in_interval, tables):
    """Per-lane coefficients: tables[i][j] where i is the first interval whose test holds
    (the last interval otherwise); shorter tables are padded with zeros."""
    width = max(len(t) for t in tables)
    padded = [t + (0.0,) * (width - len(t)) for t in tables]
    coeffs = []
    for j in range(width):
        c = m.val(padded[-1][j])
        for cond, table in reversed(list(zip(in_interval, padded))):
            c = m.select(cond, table[j], c)
        coeffs.append(c)
    return coeffs


def _erf64(m: _Math, x):
    ax = m.fabs(x)
    axc = m.select(m.cmp(">", ax, 6.0), 6.0, ax)      # erf = 1 beyond 6; keeps NaN
    in_interval = [m.cmp("<", ax, bound) for bound in _ERF64_BOUNDS]
    inv_sq = m.div(1.0, m.mul(axc, axc))
    v = m.select(in_interval[0], m.mul(x, x),
                 m.select(in_interval[1], m.sub(ax, 1.0), inv_sq))
    ratio = m.div(m.poly(v, _select_coeffs(m, in_interval, _ERF64_P)),
                  m.poly(v, _select_coeffs(m, in_interval, _ERF64_Q)))
    near_zero = m.fma(ax, ratio, ax)
    near_one = m.add(ratio, _ERF64_ERX)
    # -x^2 = -h^2 + (h - x)(h + x) with h = x cut to 21 mantissa bits, so h^2 is exact and
    # the exponent reaches exp with more than double precision.
    h = m.from_bits(m.b.and_(m.to_bits(axc), m.ival(-(1 << 32))))
    lo = m.fma(m.sub(h, axc), m.add(h, axc), ratio)
    e = _exp_core(m, m.sub(-0.5625, m.mul(h, h)), lo, wide=False)
    tail = m.sub(1.0, m.mul(e, m.mul(axc, inv_sq)))     # exp(..) / |x|, one division less
    y = m.select(in_interval[0], near_zero, m.select(in_interval[1], near_one, tail))
    return m.copysign(y, x)


def _erf(m: _Math, x):
    return (_erf32 if m.fmt.suffix == "f32" else _erf64)(m, x)


# ---- sin and cos ---------------------------------------------------------------------------
def _two_over_pi_bits(bits: int) -> int:
    """floor(2/pi * 2**bits): the first ``bits`` binary digits of 2/pi after the point
    (pi from Machin's formula in integer arithmetic, with guard bits)."""
    guard = bits + 64
    one = 1 << guard

    def arctan_inv(n):              # arctan(1/n) * 2**guard
        total, term, k, n2 = 0, one // n, 1, n * n
        while term:
            total += term // k if k % 4 == 1 else -(term // k)
            term //= n2
            k += 2
        return total
    pi = 16 * arctan_inv(5) - 4 * arctan_inv(239)
    return (2 << (guard + bits)) // pi


# float64 Payne-Hanek (_reduce_pio2): 2/pi in 26-bit chunks, enough for the largest
# double (2**1024 needs the chunks down to 2**-1100) and the 7 that follow.
_CHUNK, _NCHUNKS = 26, 52
_CHUNKS = tuple((_two_over_pi_bits(_CHUNK * _NCHUNKS) >> (_CHUNK * (_NCHUNKS - 1 - j)))
                & ((1 << _CHUNK) - 1) for j in range(_NCHUNKS))
# float32 (_reduce_pio2_f32): 32-bit windows of 2/pi ending at bit 8 (i + 1).
_WINDOWS = tuple((_two_over_pi_bits(8 * 24) >> (8 * (23 - i))) & 0xFFFFFFFF for i in range(24))
_PIO2 = (1.5707963267948966, 6.123233995736766e-17)     # pi/2 = hi + lo
# pi/2 in parts for Cody-Waite: the first three have 33 bits (fdlibm's), so n times each
# is exact for n < 2**20, and the sum carries pi/2 to about 2**-150.
_PIO2_CW = (1.5707963267341256, 6.077100506303966e-11, 2.0222662487111665e-21,
            8.4784276603689e-32)
_SIN_POLY = (-1.66666666666666324348e-01, 8.33333333332248946124e-03,   # fdlibm k_sin
             -1.98412698298579493134e-04, 2.75573137070700676789e-06,
             -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_COS_POLY = (4.16666666666666019037e-02, -1.38888888888741095749e-03,   # fdlibm k_cos
             2.48015872894767294178e-05, -2.75573143513906633035e-07,
             2.08757232129817482790e-09, -1.13596475577881948265e-11)


def _table(m: _Math, name: str, ty: ir.Type, values) -> ir.GlobalVariable:
    module = m.b.module
    table = module.globals.get(name)
    if table is None:
        aty = ir.ArrayType(ty, len(values))
        table = ir.GlobalVariable(module, aty, name)
        table.initializer = ir.Constant(aty, list(values))
        table.global_constant = True
        table.linkage = "internal"
    return table


def _lookup(m: _Math, table, index, ty):
    """table[index] (a gather once vectorised)."""
    at = m.b.gep(table, [ir.Constant(I32, 0), index], inbounds=True)
    return m.b.load(at, typ=ty)


def _two_sum(m: _Math, a, b):
    """a + b = s + err exactly (Knuth; no ordering of |a|, |b| needed, no FMA)."""
    s = m.add(a, b)
    bb = m.sub(s, a)
    return s, m.add(m.sub(a, m.sub(s, bb)), m.sub(b, bb))


def _mod4(m: _Math, t):
    """t - 4 floor(t / 4): exact for any double t."""
    return m.sub(t, m.mul(m.floor(m.mul(t, 0.25)), 4.0))


def _reduce_pio2(m: _Math, ax):
    """Payne-Hanek for float64: ax >= 0 (finite) as (n + f) pi/2 with n in 0..3 (a
    float) and |f| <= 1/2 + tiny; returns (n, f pi/2).

    ax = M 2**E with M an integer of at most 53 bits.  The chunk c_j = C_j 2**-26(j+1)
    of 2/pi gives ax c_j a multiple of 4 for every j < j0 = (E - 2) // 26, which leaves
    ax 2/pi mod 4 unchanged, so only the chunks j0 .. j0+6 are read (a table lookup),
    with ax scaled by 2**-26 j0 (exponent arithmetic: exact; the scaled ax is below
    2**80, so the chunks after those leave a tail below 2**-102).  ax is split into
    halves of 26 and 27 bits, so each product with a 26-bit chunk is an exact double;
    the products above 4 are reduced mod 4 (exact), and the terms are summed in
    double-double (two-sum: exact without FMA) while they matter at 2**-100.  f is
    then accurate to the last bit unless ax is within 2**-45 (relative) of a multiple
    of pi/2, which only a few constructed doubles are (there the error is at most
    2**-100 absolute)."""
    b = m.b
    bits = m.to_bits(ax)
    e = b.sub(b.lshr(bits, m.ival(52)), m.ival(1075))                  # ax = M 2**E
    # j0 = (E - 2) // 26 for E > 2, else 0, as a multiply-shift (exact for E < 2**11);
    # clamped so that inf and NaN (which the caller replaces) stay inside the table.
    j0 = b.lshr(b.mul(b.select(b.icmp_signed(">", e, m.ival(2)), b.sub(e, m.ival(2)),
                               m.ival(0)), m.ival(2521)), m.ival(16))
    last = m.ival(_NCHUNKS - 7)
    j0 = b.select(b.icmp_unsigned(">", j0, last), last, j0)
    scaled = m.from_bits(b.sub(bits, b.shl(b.mul(j0, m.ival(_CHUNK)), m.ival(52))))
    hi = m.from_bits(b.and_(m.to_bits(scaled), m.ival(-(1 << 27))))
    table = _table(m, "mathlib.two_over_pi.f64", m.ty, [float(c) for c in _CHUNKS])
    s, err = m.val(0.0), m.val(0.0)
    for k in range(7):
        chunk = m.mul(_lookup(m, table, b.add(j0, m.ival(k)), m.ty),
                      2.0 ** (-_CHUNK * (k + 1)))
        for half in (hi, m.sub(scaled, hi)):
            t = m.mul(half, chunk)                  # below 2**(80 - 26 k)
            if k < 3:
                t = _mod4(m, t)
            if k < 5:
                s, lost = _two_sum(m, s, t)
                err = m.add(err, lost)
            else:
                err = m.add(err, t)                 # below 2**-50: rounding is harmless
    s = _mod4(m, s)
    n = m.floor(m.add(s, 0.5))
    f, f_lost = _two_sum(m, m.sub(s, n), err)
    r = m.add(m.mul(f, _PIO2[0]), m.add(m.mul(f, _PIO2[1]), m.mul(f_lost, _PIO2[0])))
    return _mod4(m, n), r


def _reduce_pio2_f32(m: _Math, ax32):
    """Payne-Hanek for float32 (after ARM's optimized-routines sinf): ax32 >= 2 as
    (n + f) pi/2; returns (n, f pi/2) in float64.  The 24-bit
    mantissa, shifted by the exponent's low 3 bits, times a 96-bit window of 2/pi chosen
    by the exponent's high bits (three 32 x 32 -> 64-bit integer products) gives
    ax 2/pi mod 4 as an exact 2.62-bit fixed-point number; f keeps at least 33
    significant bits, 9 more than float32 needs."""
    b, i64 = m.b, m.ity
    xi = b.zext(b.bitcast(ax32, I32), i64)
    table = _table(m, "mathlib.two_over_pi.f32", i64, _WINDOWS)
    first = b.and_(b.lshr(xi, m.ival(26)), m.ival(15))
    mant = b.shl(b.or_(b.and_(xi, m.ival(0xFFFFFF)), m.ival(0x800000)),
                 b.and_(b.lshr(xi, m.ival(23)), m.ival(7)))
    w0, w4, w8 = (_lookup(m, table, b.add(first, m.ival(k)), i64) for k in (0, 4, 8))
    top = b.shl(b.mul(mant, w0), m.ival(32))          # only its low 32 bits survive
    fixed = b.add(b.or_(b.lshr(b.mul(mant, w8), m.ival(32)), top), b.mul(mant, w4))
    n = b.lshr(b.add(fixed, m.ival(1 << 61)), m.ival(62))
    fixed = b.sub(fixed, b.shl(n, m.ival(62)))
    return b.uitofp(n, m.ty), m.mul(b.sitofp(fixed, m.ty), math.pi / 2 * 2.0 ** -62)


def _reduce_pio2_small(m: _Math, ax):
    """Cody-Waite for ax < 120: ax - n pi/2, subtracting n times each part of pi/2
    (exact products, so cancellation near a multiple of pi/2 loses nothing);
    returns (n mod 4, r)."""
    n = m.floor(m.fma(ax, 2 / math.pi, 0.5))
    neg_n = m.sub(0.0, n)
    r = ax
    for part in _PIO2_CW:
        r = m.fma(neg_n, part, r)
    return _mod4(m, n), r


def _sincos(m: _Math, x, cosine: bool):
    """sin or cos of x (f32 or f64), computed in float64: |x| = n pi/2 + r with |r| <=
    pi/4 (Cody-Waite below 120, Payne-Hanek beyond: correct over the whole finite
    range); the quadrant (n, plus 1 for cos) picks sin(r) or cos(r) and the sign, and
    sin takes x's sign bit (so sin(-0.0) is -0.0).  float32 is rounded once at the end
    (correctly rounded but for float64's error, which the rounding hides).  Everything
    is computed and then selected, so loops vectorise; inf and NaN give NaN."""
    narrow = m.fmt.suffix == "f32"
    w = _Math(m.b, _F64, ir.DoubleType()) if narrow else m
    ax_in = m.fabs(x)
    ax = m.b.fpext(ax_in, w.ty) if narrow else ax_in
    n_small, r_small = _reduce_pio2_small(w, ax)
    n_big, r_big = _reduce_pio2_f32(w, ax_in) if narrow else _reduce_pio2(w, ax)
    small = w.cmp("<", ax, 120.0)
    r, q = w.select(small, r_small, r_big), w.select(small, n_small, n_big)
    z = w.mul(r, r)
    sin_r = w.fma(w.mul(r, z), w.poly(z, _SIN_POLY), r)
    cos_r = w.fma(w.mul(z, z), w.poly(z, _COS_POLY), w.fma(z, -0.5, 1.0))
    if cosine:
        q = w.add(q, 1.0)
        q = w.select(w.cmp("==", q, 4.0), 0.0, q)
    half = w.mul(q, 0.5)
    y = w.select(w.cmp("!=", w.floor(half), half), cos_r, sin_r)
    y = w.select(w.cmp(">=", q, 2.0), w.b.fneg(y), y)
    if narrow:
        y = m.b.fptrunc(y, m.ty)
    if not cosine:
        y = m.select(m.b.icmp_signed("<", m.to_bits(x), m.ival(0)), m.b.fneg(y), y)
    return m.select(m.cmp("<", ax_in, float("inf")), y, m.sub(x, x))      # inf, NaN: NaN


def _sin(m: _Math, x):
    return _sincos(m, x, cosine=False)


def _cos(m: _Math, x):
    return _sincos(m, x, cosine=True)


# ---- expm1 and log1p -------------------------------------------------------------------------
_EXPM1_RANGE = 40.0      # beyond, exp(x) - 1 rounds as well as expm1 does (or is -1)
_EXPM1_POLY = {   # expm1(r) = r + r^2 P(r), Taylor: below 2**-60 relative on |r| <= ln2/2
    "f32": tuple(1.0 / math.factorial(n) for n in range(2, 10)),
    "f64": tuple(1.0 / math.factorial(n) for n in range(2, 16)),
}


def _call(m: _Math, name: str, *args):
    """Another helper of this library (inlined like the caller)."""
    return m.b.call(_define(m.b.module, name, m.fmt, m.ty), list(args))


def _expm1(m: _Math, x):
    """x = k ln2 + r with |r| <= ln2/2 (as exp), then expm1(x) = 2**k expm1(r) + (2**k - 1)
    in one fused multiply-add: for k = 0 that is r + r^2 P(r) with nothing cancelling,
    so tiny x come out exact.  Past |x| = 40, exp(x) - 1 (which also overflows, and
    gives -1 and inf at the infinities); zeros keep their sign, NaN stays NaN."""
    xc = m.select(m.cmp("<", x, _EXPM1_RANGE), x, _EXPM1_RANGE)
    xc = m.select(m.cmp(">", xc, -_EXPM1_RANGE), xc, -_EXPM1_RANGE)
    k = m.floor(m.fma(xc, 1.4426950408889634, 0.5))
    neg_k = m.sub(0.0, k)
    r = m.fma(neg_k, m.fmt.ln2_hi, xc)
    r = m.fma(neg_k, m.fmt.ln2_lo, r)
    expm1_r = m.fma(m.mul(r, r), m.poly(r, _EXPM1_POLY[m.fmt.suffix]), r)
    two_k = m.pow2(m.b.fptosi(k, m.ity))
    inside = m.fma(two_k, expm1_r, m.sub(two_k, 1.0))
    y = m.select(m.cmp(">", m.fabs(x), _EXPM1_RANGE), m.sub(_call(m, "exp", x), 1.0), inside)
    y = m.select(m.cmp("==", x, 0.0), x, y)
    return m.select(m.is_nan(x), x, y)


def _log1p(m: _Math, x):
    """log(u) + (x - (u - 1)) / u with u = 1 + x rounded: the quotient is the first-order
    correction for what rounding u lost (Goldberg), and u == 1 (tiny x) gives x itself.
    -1 gives -inf, below it NaN, +inf stays."""
    u = m.add(x, 1.0)
    y = m.add(_call(m, "log", u), m.div(m.sub(x, m.sub(u, 1.0)), u))
    y = m.select(m.cmp("==", u, 1.0), x, y)
    y = m.select(m.cmp("==", x, -1.0), float("-inf"), y)
    return m.select(m.cmp("==", x, float("inf")), x, y)


# ---- atan2 ---------------------------------------------------------------------------------
_TAN_PI_8 = 0.41421356237309503
_ATAN_POLY = {
    # atan(z) = z + z^3 P(z^2) on |z| <= tan(pi/8); Chebyshev fits of the Taylor series
    # (relative error 2.6e-9 in f32, 5.7e-17 in f64).
    "f32": (-0.3333333182862901, 0.19999550984252945, -0.14264245870382447,
            0.10746357306198003, -0.06459413195655732),
    "f64": (-0.33333333333333365, 0.20000000000008725, -0.14285714286389, 0.11111111118652243,
            -0.09090907997711573, 0.0769225123841317, -0.06665360236262925,
            0.058648308194213385, -0.05117673022667821, 0.04010043912451621,
            -0.020179563703999304),
}


def _atan2(m: _Math, y, x):
    """The angle of (x, y): atan of t = min(|x|, |y|) / max(|x|, |y|) in [0, 1] (past
    tan(pi/8) as pi/4 + atan((t - 1) / (t + 1))), then reflected into the octant:
    pi/2 - a when |y| > |x|, pi - a when x is negative (-0.0 included), and the sign of
    y.  Two infinities count as equal magnitudes; two zeros give t = 0.  NaN in, NaN out."""
    b = m.b
    ay, ax = m.fabs(y), m.fabs(x)
    both_inf = b.and_(m.cmp("==", ay, float("inf")), m.cmp("==", ax, float("inf")))
    ay, ax = m.select(both_inf, 1.0, ay), m.select(both_inf, 1.0, ax)
    steep = m.cmp(">", ay, ax)
    low, high = m.select(steep, ax, ay), m.select(steep, ay, ax)
    t = m.select(m.cmp("==", high, 0.0), 0.0, m.div(low, high))
    past = m.cmp(">", t, _TAN_PI_8)
    z = m.select(past, m.div(m.sub(t, 1.0), m.add(t, 1.0)), t)
    s = m.mul(z, z)
    a = m.fma(m.mul(z, s), m.poly(s, _ATAN_POLY[m.fmt.suffix]), z)
    a = m.select(past, m.add(a, math.pi / 4), a)
    a = m.select(steep, m.sub(math.pi / 2, a), a)
    negative_x = b.icmp_signed("<", m.to_bits(x), m.ival(0))
    a = m.select(negative_x, m.sub(math.pi, a), a)
    return m.select(b.or_(m.is_nan(x), m.is_nan(y)), m.add(x, y), m.copysign(a, y))


# ---- definitions ---------------------------------------------------------------------------
_BODIES = {"exp": _exp, "log": _log, "tanh": _tanh, "sigmoid": _sigmoid, "sin": _sin,
           "cos": _cos, "erf": _erf, "expm1": _expm1, "log1p": _log1p, "atan2": _atan2}
NAMES = frozenset(_BODIES)


def _format_of(ty: ir.Type) -> _Format:
    if isinstance(ty, ir.FloatType):
        return _F32
    if isinstance(ty, ir.DoubleType):
        return _F64
    raise TypeError(f"graphc.mathlib: expected an f32 or f64 value, got {ty}")


def _define(module: ir.Module, name: str, fmt: _Format, ftype: ir.Type) -> ir.Function:
    """The helper ``graphc.<name>.<f32|f64>``, defined in ``module`` on first use."""
    symbol = f"graphc.{name}.{fmt.suffix}"
    fn = module.globals.get(symbol)
    if fn is not None:
        return fn
    body = _BODIES[name]
    arity = body.__code__.co_argcount - 1
    fn = ir.Function(module, ir.FunctionType(ftype, [ftype] * arity), symbol)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    builder.ret(body(_Math(builder, fmt, ftype), *fn.args))
    return fn


def emit(builder: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    """``name(*args)`` for f32 or f64 operands of one type, as a call to an
    always-inlined helper (``atan2(y, x)`` takes two, the others one)."""
    if name not in NAMES:
        raise ValueError(f"graphc.mathlib: unknown function {name!r}; "
                         f"available: {', '.join(sorted(NAMES))}")
    fmt = _format_of(args[0].type)
    return builder.call(_define(builder.module, name, fmt, args[0].type), list(args))
