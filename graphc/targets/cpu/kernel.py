"""The LLVM building blocks of every cpu kernel (loop kernels in ``render.py``, the matmul
in ``matmul.py``): types, the target machine, builder helpers, the scalar ops, the
expression ``Emitter`` and ``KernelFunction``.

Every kernel is ``void NAME(ptr buffers, i64 start, i64 stop, ptr error_flag)``
(``KERNEL_TYPE``); see ``render.py`` for what the arguments mean.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager

import llvmlite.binding as llvm
import llvmlite.ir as ir

from graphc import dtypes
from graphc.targets.cpu import mathlib
from graphc.targets.emitter import Emitter as BaseEmitter

VOID = ir.VoidType()
I1, I8, I16, I32, I64 = (ir.IntType(w) for w in (1, 8, 16, 32, 64))
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
KERNEL_TYPE = ir.FunctionType(VOID, [PTR, I64, I64, PTR])

# Narrow dtypes live in registers widened (integers in i32, float16 and bfloat16 in
# float), where every op computes; ``narrow`` brings each op's result back into the
# dtype's range or precision (wrapping, or rounding to nearest even), so a fused kernel
# rounds after every op as PyTorch's eager ops do.
_VALUE_TYPES = {dtypes.bool_: I1, dtypes.uint8: I32, dtypes.int8: I32, dtypes.int16: I32,
                dtypes.int32: I32, dtypes.int64: I64, dtypes.float16: F32,
                dtypes.bfloat16: F32, dtypes.float32: F32, dtypes.float64: F64}
_STORAGE_TYPES = {dtypes.bool_: I8, dtypes.uint8: I8, dtypes.int8: I8, dtypes.int16: I16,
                  dtypes.float16: I16, dtypes.bfloat16: I16}


def value_type(dtype) -> ir.Type:
    """The type a scalar of ``dtype`` has in registers (bool is i1)."""
    return _VALUE_TYPES[dtype]


def storage_type(dtype) -> ir.Type:
    """The type of one element in memory (bool is one byte, as in numpy)."""
    return _STORAGE_TYPES.get(dtype) or _VALUE_TYPES[dtype]


def _u32(value):
    return ir.Constant(I32, value)


def float_to_half_bits(b, x):
    """float -> IEEE half bits (in an i32), rounding to nearest even, branch-free (F.
    Giesen's float_to_half_fast3_rtne): NaN is 0x7e00, overflow infinity, subnormals
    rounded by a float add of a magic number."""
    f = b.bitcast(x, I32)
    sign = b.and_(f, _u32(0x80000000))
    f = b.xor(f, sign)
    special = b.select(b.icmp_unsigned(">", f, _u32(0x7F800000)), _u32(0x7E00), _u32(0x7C00))
    magic = _u32(0x3F000000)                  # ((127 - 15) + (23 - 10) + 1) << 23
    small = b.sub(b.bitcast(b.fadd(b.bitcast(f, F32), b.bitcast(magic, F32)), I32), magic)
    odd = b.and_(b.lshr(f, _u32(13)), _u32(1))
    normal = b.lshr(b.add(b.add(f, _u32(((15 - 127) << 23) + 0xFFF)), odd), _u32(13))
    out = b.select(b.icmp_unsigned("<", f, _u32(0x38800000)), small, normal)
    out = b.select(b.icmp_unsigned(">=", f, _u32(0x47800000)), special, out)
    return b.or_(out, b.lshr(sign, _u32(16)))


def half_bits_to_float(b, h):
    """IEEE half bits (in an i32) -> float, exactly."""
    o = b.shl(b.and_(h, _u32(0x7FFF)), _u32(13))
    exp = b.and_(o, _u32(0x7C00 << 13))
    o = b.add(o, _u32((127 - 15) << 23))
    inf_nan = b.add(o, _u32((128 - 16) << 23))
    magic = ir.Constant(F32, 2.0 ** -14)          # 113 << 23
    subnormal = b.bitcast(b.fsub(b.bitcast(b.add(o, _u32(1 << 23)), F32), magic), I32)
    o = b.select(b.icmp_unsigned("==", exp, _u32(0x7C00 << 13)), inf_nan,
                 b.select(b.icmp_unsigned("==", exp, _u32(0)), subnormal, o))
    return b.bitcast(b.or_(o, b.shl(b.and_(h, _u32(0x8000)), _u32(16))), F32)


def float_to_bfloat16_bits(b, x):
    """float -> bfloat16 bits (in an i32), rounding to nearest even; NaN is 0x7fc0 (c10's)."""
    f = b.bitcast(x, I32)
    odd = b.and_(b.lshr(f, _u32(16)), _u32(1))
    rounded = b.lshr(b.add(f, b.add(_u32(0x7FFF), odd)), _u32(16))
    return b.select(b.fcmp_unordered("uno", x, x), _u32(0x7FC0), rounded)


def bfloat16_bits_to_float(b, h):
    return b.bitcast(b.shl(h, _u32(16)), F32)


def narrow(b, x, dtype):
    """A widened register value brought into ``dtype``: integers wrap to its width,
    float16 and bfloat16 round to nearest even; other dtypes are unchanged."""
    if dtype is dtypes.uint8:
        return b.and_(x, _u32(0xFF))
    if dtype in (dtypes.int8, dtypes.int16):
        shift = _u32(32 - dtype.bits)
        return b.ashr(b.shl(x, shift), shift)
    if dtype is dtypes.float16:
        return half_bits_to_float(b, float_to_half_bits(b, x))
    if dtype is dtypes.bfloat16:
        return bfloat16_bits_to_float(b, float_to_bfloat16_bits(b, x))
    return x


def i64(value) -> ir.Value:
    return value if isinstance(value, ir.Value) else ir.Constant(I64, value)


def constant(dtype, value) -> ir.Constant:
    if dtype.is_floating_point:
        return ir.Constant(value_type(dtype), float(dtype.np.type(value)))
    if dtype is dtypes.bool_:
        return ir.Constant(I1, int(bool(value)))
    return ir.Constant(value_type(dtype), int(value))


# ---- target --------------------------------------------------------------------------------
@functools.cache
def target_machine() -> llvm.TargetMachine:
    """The host CPU with all its features, optimising at O3 (shared: never give it to a
    JIT engine, which would own and free it)."""
    return create_target_machine()


def create_target_machine() -> llvm.TargetMachine:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=host_features(), opt=3)


@functools.cache
def host_features() -> str:
    return llvm.get_host_cpu_features().flatten()


def vector_bytes() -> int:
    """Width of the widest vector registers (64 with AVX-512, else 32)."""
    return 64 if "+avx512f" in host_features().split(",") else 32


def new_module(name: str) -> ir.Module:
    module = ir.Module(name)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(target_machine().target_data)
    return module


# ---- small builder helpers -------------------------------------------------------------------
@contextmanager
def for_range(b: ir.IRBuilder, start, stop, step=1, name="i"):
    """``for (i = start; i < stop; i += step)`` over i64, in the preheader / header /
    latch form the loop passes expect; yields ``i``."""
    fn = b.function
    header = fn.append_basic_block(f"{name}.header")
    body = fn.append_basic_block(f"{name}.body")
    done = fn.append_basic_block(f"{name}.done")
    pre = b.block
    b.branch(header)
    b.position_at_end(header)
    i = b.phi(I64, name=name)
    i.add_incoming(i64(start), pre)
    b.cbranch(b.icmp_signed("<", i, i64(stop)), body, done)
    b.position_at_end(body)
    yield i
    i.add_incoming(b.add(i, i64(step), name=f"{name}.next", flags=("nsw",)), b.block)
    b.branch(header)
    b.position_at_end(done)


def _suffix(ty) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_suffix(ty.element)}"
    if isinstance(ty, ir.FloatType):
        return "f32"
    if isinstance(ty, ir.DoubleType):
        return "f64"
    return f"i{ty.width}"


def declare(module, name, ret, args) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ir.FunctionType(ret, args), name)


def intrinsic(b, name, *args) -> ir.Value:
    """Call the overloaded intrinsic ``llvm.NAME`` on operands of one type."""
    ty = args[0].type
    fn = declare(b.module, f"llvm.{name}.{_suffix(ty)}", ty, [a.type for a in args])
    return b.call(fn, args)


def imin(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def imax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


def raise_flag(b, flag, code: int, value=None):
    """Record error ``code`` (and the i64 ``value`` it met) in the error record
    ``{i64 code, i64 value}`` unless an earlier error is already recorded."""
    swapped = b.extract_value(b.cmpxchg(flag, i64(0), i64(code), "monotonic", "monotonic"), 1)
    if value is not None:
        with b.if_then(swapped):
            b.store(value, b.gep(flag, [i64(1)], inbounds=True, source_etype=I64))


# ---- scalar ops ----------------------------------------------------------------------------
def _category(dtype) -> str:
    return "f" if dtype.is_floating_point else "b" if dtype is dtypes.bool_ else "i"


def cast(b, x, src, dst):
    """numpy's ``astype`` between register values: float -> int truncates, anything ->
    bool is ``!= 0``; a narrow ``dst`` is left widened (the caller ``narrow``s it)."""
    if src is dst:
        return x
    to, s, d = value_type(dst), _category(src), _category(dst)
    if d == "b":
        return (b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0)) if s == "f"
                else b.icmp_unsigned("!=", x, ir.Constant(x.type, 0)))
    if s == "b":
        return b.uitofp(x, to) if d == "f" else b.zext(x, to)
    if x.type == to:                           # float16 -> float32, int8 -> int32...
        return x
    if s == "f" and d == "f":                  # float64 -> float16 is through float32
        return b.fpext(x, to) if isinstance(to, ir.DoubleType) else b.fptrunc(x, to)
    if s == "f":
        # Out of range (and NaN) is poison for fptosi; numpy on x86 gives the minimum
        # integer there, so do that (the unselected poison is harmless).
        limit = float(2 ** (to.width - 1))
        inside = b.and_(b.fcmp_ordered(">=", x, ir.Constant(x.type, -limit)),
                        b.fcmp_ordered("<", x, ir.Constant(x.type, limit)))
        return b.select(inside, b.fptosi(x, to), ir.Constant(to, -int(limit)))
    if d == "f":
        return b.sitofp(x, to)
    return b.sext(x, to) if to.width > x.type.width else b.trunc(x, to)


def extremum(b, kind, x, y, dtype):
    """numpy's maximum/minimum: NaN propagates; for bool, or/and."""
    c = _category(dtype)
    if c == "f":
        return intrinsic(b, "maximum" if kind == "max" else "minimum", x, y)
    if c == "b":
        return b.or_(x, y) if kind == "max" else b.and_(x, y)
    return intrinsic(b, "smax" if kind == "max" else "smin", x, y)


def _sign(b, x, dtype):
    if dtype.is_floating_point:
        one = ir.Constant(x.type, 1.0)
        # +0.0 for either zero (as numpy), NaN stays NaN: both are x + 0.0.
        rest = b.select(b.fcmp_ordered("<", x, ir.Constant(x.type, 0.0)), b.fneg(one),
                        b.fadd(x, ir.Constant(x.type, 0.0)))
        return b.select(b.fcmp_ordered(">", x, ir.Constant(x.type, 0.0)), one, rest)
    zero = ir.Constant(x.type, 0)
    return b.sub(b.zext(b.icmp_signed(">", x, zero), x.type),
                 b.zext(b.icmp_signed("<", x, zero), x.type))


def _abs(b, x, dtype):
    if dtype.is_floating_point:
        return intrinsic(b, "fabs", x)
    return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), b.neg(x), x)


def _pow(b, x, y, dtype):
    if dtype.is_floating_point:
        return intrinsic(b, "pow", x, y)
    return b.call(_ipow_function(b.module, x.type), [x, y])


def _ipow_function(module, ty) -> ir.Function:
    """Integer power by squaring, wrapping like numpy.  A negative exponent (numpy
    raises) gives the truncated quotient: 1 for x == 1, +-1 for x == -1, else 0."""
    name = f"graphc.ipow.{_suffix(ty)}"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, ir.FunctionType(ty, [ty, ty]), name)
    fn.linkage = "internal"
    x, e = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    zero, one = ir.Constant(ty, 0), ir.Constant(ty, 1)
    negative = fn.append_basic_block("negative")
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    b.cbranch(b.icmp_signed("<", e, zero), negative, loop)
    b.position_at_end(negative)
    odd = b.trunc(e, I1)
    minus_one = b.select(odd, ir.Constant(ty, -1), one)
    b.ret(b.select(b.icmp_signed("==", x, one), one,
                   b.select(b.icmp_signed("==", x, ir.Constant(ty, -1)), minus_one, zero)))
    b.position_at_end(loop)
    result, base, rest = (b.phi(ty) for _ in range(3))
    result.add_incoming(one, fn.entry_basic_block)
    base.add_incoming(x, fn.entry_basic_block)
    rest.add_incoming(e, fn.entry_basic_block)
    step = b.select(b.trunc(rest, I1), b.mul(result, base), result)
    next_rest = b.lshr(rest, one)
    result.add_incoming(step, loop)
    base.add_incoming(b.mul(base, base), loop)
    rest.add_incoming(next_rest, loop)
    b.cbranch(b.icmp_signed("==", next_rest, zero), done, loop)
    b.position_at_end(done)
    b.ret(step)
    return fn


def _integer_division(b, x, y):
    """Truncated quotient and remainder of signed integers, defined for every divisor:
    y == -1 (where sdiv overflows on the minimum) and y == 0 (undefined; numpy gives 0)
    divide by 1 instead, and the caller patches the quotient.  An error for y == 0
    belongs here too: it is the one place integer division is emitted."""
    zero, minus_one = ir.Constant(x.type, 0), ir.Constant(x.type, -1)
    special = b.or_(b.icmp_signed("==", y, zero), b.icmp_signed("==", y, minus_one))
    d = b.select(special, ir.Constant(x.type, 1), y)
    return b.sdiv(x, d), b.srem(x, d)


def _floor_divide(b, x, y, dtype):
    """Python's and PyTorch's x // y: exact for integers (x // -1 wraps as numpy, x // 0
    is 0 as numpy); floats as PyTorch's div_floor (see ops/elementwise.py)."""
    if not dtype.is_floating_point:
        q, r = _integer_division(b, x, y)
        zero = ir.Constant(x.type, 0)
        q = b.sub(q, b.zext(_signs_differ(b, r, y, dtype), x.type))
        q = b.select(b.icmp_signed("==", y, ir.Constant(x.type, -1)), b.neg(x), q)
        return b.select(b.icmp_signed("==", y, zero), zero, q)
    zero, one = ir.Constant(x.type, 0.0), ir.Constant(x.type, 1.0)
    mod = b.frem(x, y)
    div = b.fdiv(b.fsub(x, mod), y)
    div = b.select(_signs_differ(b, mod, y, dtype), b.fsub(div, one), div)
    floored = intrinsic(b, "floor", div)
    up = b.fcmp_ordered(">", b.fsub(div, floored), ir.Constant(x.type, 0.5))
    floored = b.select(up, b.fadd(floored, one), floored)
    quotient = b.fdiv(x, y)
    q = b.select(b.fcmp_unordered("!=", div, zero), floored,
                 intrinsic(b, "copysign", zero, quotient))
    return b.select(b.fcmp_ordered("==", y, zero), quotient, q)


def _remainder(b, x, y, dtype):
    """PyTorch's x % y (the divisor's sign): the truncated remainder (srem; frem is C's
    fmod, exact) plus y when it is nonzero and its sign differs from y's.  A zero keeps
    fmod's sign; x % inf is x for x >= 0 and inf for x < 0, as PyTorch."""
    r = b.frem(x, y) if dtype.is_floating_point else _integer_division(b, x, y)[1]
    add = b.fadd if dtype.is_floating_point else b.add
    return b.select(_signs_differ(b, r, y, dtype), add(r, y), r)


def _signs_differ(b, r, y, dtype):
    """r != 0 and r, y on different sides of 0 (NaN: false)."""
    if dtype.is_floating_point:
        zero = ir.Constant(r.type, 0.0)
        return b.and_(b.fcmp_ordered("!=", r, zero),
                      b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", r, zero)))
    zero = ir.Constant(r.type, 0)
    return b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, y), zero))


_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class ScalarOps:
    """The scalar ops (``graphc.ops.SCALAR_OPS``) as instructions at the builder's position:
    operands are register values of ``dtype``, ``cast`` converts to ``out``.  The
    transcendental functions are built inline by the mathlib, so loops vectorize."""

    def __init__(self, b: ir.IRBuilder, dtype, out):
        self.b, self.dtype, self.out = b, dtype, out
        self.is_float = dtype.is_floating_point

    def const(self, value):
        return constant(self.dtype, value)

    def cast(self, x):
        return cast(self.b, x, self.dtype, self.out)

    def _math(self, name, *args):
        return mathlib.emit(self.b, name, *args)

    def exp(self, x):
        return self._math("exp", x)

    def expm1(self, x):
        return self._math("expm1", x)

    def log(self, x):
        return self._math("log", x)

    def log1p(self, x):
        return self._math("log1p", x)

    def sin(self, x):
        return self._math("sin", x)

    def cos(self, x):
        return self._math("cos", x)

    def tanh(self, x):
        return self._math("tanh", x)

    def sigmoid(self, x):
        return self._math("sigmoid", x)

    def erf(self, x):
        return self._math("erf", x)

    def atan2(self, y, x):
        return self._math("atan2", y, x)

    def sqrt(self, x):
        return intrinsic(self.b, "sqrt", x)

    def floor(self, x):
        return intrinsic(self.b, "floor", x)

    def neg(self, x):
        return self.b.fneg(x) if self.is_float else self.b.neg(x)

    def abs(self, x):
        return _abs(self.b, x, self.dtype)

    def sign(self, x):
        return _sign(self.b, x, self.dtype)

    def logical_not(self, x):
        return self.b.not_(x)

    def add(self, x, y):
        return self.b.fadd(x, y) if self.is_float else self.b.add(x, y)

    def sub(self, x, y):
        return self.b.fsub(x, y) if self.is_float else self.b.sub(x, y)

    def mul(self, x, y):
        return self.b.fmul(x, y) if self.is_float else self.b.mul(x, y)

    def div(self, x, y):
        return self.b.fdiv(x, y)

    def pow(self, x, y):
        return _pow(self.b, x, y, self.dtype)

    def floor_divide(self, x, y):
        return _floor_divide(self.b, x, y, self.dtype)

    def remainder(self, x, y):
        return _remainder(self.b, x, y, self.dtype)

    def maximum(self, x, y):
        return extremum(self.b, "max", x, y, self.dtype)

    def minimum(self, x, y):
        return extremum(self.b, "min", x, y, self.dtype)

    def logical_and(self, x, y):
        return self.b.and_(x, y)

    def logical_or(self, x, y):
        return self.b.or_(x, y)

    def _compare(self, op, x, y):
        b = self.b
        if self.is_float:           # numpy: NaN != anything is True, other tests False
            return (b.fcmp_unordered("!=", x, y) if op == "ne"
                    else b.fcmp_ordered(_COMPARE[op], x, y))
        if self.dtype is dtypes.bool_:
            return b.icmp_unsigned(_COMPARE[op], x, y)
        return b.icmp_signed(_COMPARE[op], x, y)

    def eq(self, x, y):
        return self._compare("eq", x, y)

    def ne(self, x, y):
        return self._compare("ne", x, y)

    def lt(self, x, y):
        return self._compare("lt", x, y)

    def le(self, x, y):
        return self._compare("le", x, y)

    def gt(self, x, y):
        return self._compare("gt", x, y)

    def ge(self, x, y):
        return self._compare("ge", x, y)

    def where(self, c, x, y):
        return self.b.select(c, x, y)


# The index ops (``loops.INDEX_OPS``) on i64 values.
INDEX_OPS = {
    "add": lambda b, x, y: b.add(x, y, flags=("nsw",)),
    "sub": lambda b, x, y: b.sub(x, y, flags=("nsw",)),
    "mul": lambda b, x, y: b.mul(x, y, flags=("nsw",)),
    "floordiv": lambda b, x, y: b.sdiv(x, y), "mod": lambda b, x, y: b.srem(x, y),
    "min": imin, "max": imax,
    "lt": lambda b, x, y: b.zext(b.icmp_signed("<", x, y), I64),
    "le": lambda b, x, y: b.zext(b.icmp_signed("<=", x, y), I64),
    "eq": lambda b, x, y: b.zext(b.icmp_signed("==", x, y), I64),
    "and": lambda b, x, y: b.zext(b.and_(b.icmp_signed("!=", x, i64(0)),
                                         b.icmp_signed("!=", y, i64(0))), I64),
}


def hash32(b, x):
    """lowbias32, as graphc.ops.random.hash32 (i32 arithmetic wraps like uint32)."""
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x846CA68B), (16, None)):
        x = b.xor(x, b.lshr(x, ir.Constant(I32, shift)))
        if multiplier is not None:
            x = b.mul(x, ir.Constant(I32, multiplier))
    return x


# ---- expressions -------------------------------------------------------------------------------
class Emitter(BaseEmitter):
    """Renders index expressions (i64) and scalar expressions (``value_type(dtype)``) at
    the builder's position (see ``graphc.targets.emitter``).

    ``pointer(name)`` gives a buffer's base pointer; ``env`` binds loop variables to
    i64 values and ``accs`` accumulator names to functions giving (value, dtype)."""

    def __init__(self, b: ir.IRBuilder, pointer, errors):
        super().__init__()
        self.b = b
        self.pointer = pointer
        self.errors = errors      # the KernelFunction: what each error site has met

    @contextmanager
    def bind(self, name, value):
        self.env[name] = value
        with self.scope():
            yield
        del self.env[name]

    @contextmanager
    def loops(self, loops):
        """Nested loops over ((var, extent), ...), outermost first."""
        if not loops:
            with self.scope():
                yield
            return
        (name, extent), rest = loops[0], loops[1:]
        with for_range(self.b, 0, extent, name=name) as i, self.bind(name, i), \
                self.loops(rest):
            yield

    # the leaves of expressions
    def var(self, name):
        return self.env[name]

    def iconst(self, value):
        return i64(value)

    def index_op(self, op, a, b):
        return INDEX_OPS[op](self.b, a, b)

    def checked(self, e):
        b = self.b
        v = cast(b, self.scalar(e.value), e.value.dtype, dtypes.int64)
        worst = self.errors.worst(e.site, e.size)   # an unsigned max reduction
        old = b.load(worst, typ=I64)
        b.store(b.select(b.icmp_unsigned(">", v, old), v, old), worst)
        if e.size == 0:                              # any index met is out of range
            b.store(ir.Constant(I1, 1), self.errors.met(e.site))
        return imin(b, imax(b, v, i64(0)), i64(max(e.size - 1, 0)))

    def nonzero(self, e):
        b = self.b
        v = self.scalar(e.value)
        zero = b.icmp_signed("==", v, ir.Constant(v.type, 0))
        met = self.errors.met(e.site)                # an or-reduction: it vectorizes
        b.store(b.or_(b.load(met, typ=I1), zero), met)
        return b.select(zero, ir.Constant(v.type, 1), v)

    def constant(self, value, dtype):
        return constant(dtype, value)

    def acc(self, e):
        value, dtype = self.accs[e.name]()
        return narrow(self.b, cast(self.b, value, dtype, e.dtype), e.dtype)

    def load(self, e):
        value = self.b.load(self.address(e.buffer, e.offset, e.dtype), typ=storage_type(e.dtype))
        return _from_storage(self.b, value, e.dtype)

    def index_value(self, e):
        return narrow(self.b, cast(self.b, self.index(e.index), dtypes.int64, e.dtype),
                      e.dtype)

    def narrow(self, value, dtype):
        return narrow(self.b, value, dtype)

    def scalar_ops(self, dtype, out) -> ScalarOps:
        return ScalarOps(self.b, dtype, out)

    def uniform(self, e):
        b = self.b
        seed = cast(b, self.scalar(e.seed), e.seed.dtype, dtypes.int64)
        low, high = b.trunc(seed, I32), b.trunc(b.lshr(seed, i64(32)), I32)
        key = hash32(b, b.xor(low, hash32(b, high)))
        bits = hash32(b, b.xor(b.trunc(self.index(e.counter), I32), key))
        mantissa = b.uitofp(b.lshr(bits, ir.Constant(I32, 8)), value_type(e.dtype))
        return narrow(b, b.fmul(mantissa, ir.Constant(value_type(e.dtype), 2.0 ** -24)),
                      e.dtype)

    def address(self, buffer, offset, dtype) -> ir.Value:
        """Pointer to element ``offset`` (a loop IR index or an i64 value)."""
        at = offset if isinstance(offset, ir.Value) else self.index(offset)
        return self.b.gep(self.pointer(buffer), [at], inbounds=True,
                          source_etype=storage_type(dtype))

    def store(self, value, buffer, offset, dtype, accumulate=False):
        b = self.b
        ptr = self.address(buffer, offset, dtype)
        if accumulate:
            old = _from_storage(b, b.load(ptr, typ=storage_type(dtype)), dtype)
            value = b.or_(old, value) if dtype is dtypes.bool_ else \
                ScalarOps(b, dtype, dtype).add(old, value)
        b.store(_to_storage(b, value, dtype), ptr)


def _from_storage(b, value, dtype):
    """A loaded element as a register value: any nonzero byte is True; narrow integers
    and half floats are widened."""
    if dtype is dtypes.bool_:
        return b.icmp_unsigned("!=", value, ir.Constant(I8, 0))
    if dtype is dtypes.uint8:
        return b.zext(value, I32)
    if dtype in (dtypes.int8, dtypes.int16):
        return b.sext(value, I32)
    if dtype is dtypes.float16:
        return half_bits_to_float(b, b.zext(value, I32))
    if dtype is dtypes.bfloat16:
        return bfloat16_bits_to_float(b, b.zext(value, I32))
    return value


def _to_storage(b, value, dtype):
    """A register value as the element stored: rounded (half floats) and truncated."""
    if dtype is dtypes.bool_:
        return b.zext(value, I8)
    if dtype is dtypes.float16:
        value = float_to_half_bits(b, value)
    elif dtype is dtypes.bfloat16:
        value = float_to_bfloat16_bits(b, value)
    to = storage_type(dtype)
    return b.trunc(value, to) if to != value.type else value


# ---- kernel functions ----------------------------------------------------------------------------
class KernelFunction:
    """A kernel's function: an entry block (allocas, and the pointer of each buffer the
    kernel uses, loaded once) that falls through to the body the builder ``b`` emits.
    ``scopes`` (from ``alias_scopes``) tags each buffer access with its scope."""

    def __init__(self, module, name, slots, scopes=None):
        if name in module.globals:        # kernel names need not be unique symbols
            name = f"{name}.{len(module.globals)}"
        self.fn = ir.Function(module, KERNEL_TYPE, name)
        self.fn.attributes.add("nounwind")
        # Kept out of ``entry``: inlining every kernel into one huge function makes the
        # optimiser superlinearly slow, and a call per kernel costs nothing.
        self.fn.attributes.add("noinline")
        self.buffers_arg, self.start, self.stop, self.flag = self.fn.args
        self.entry = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.body = self.fn.append_basic_block("body")
        self.b = ir.IRBuilder(self.body)
        self.slots, self.scopes, self._pointers = slots, scopes, {}
        self._worst = {}                    # index site -> (i64 alloca, size)
        self._met = {}                      # site -> i1 alloca
        self.emit = Emitter(self.b, self.pointer, self)

    def met(self, site: int):
        """The alloca that says whether ``site`` met an error: a zero divisor, or any
        index into a dimension of size 0."""
        if site not in self._met:
            self._met[site] = self.alloca(I1, name=f"met{site}")
            self.entry.store(ir.Constant(I1, 0), self._met[site])
        return self._met[site]

    def worst(self, site: int, size: int):
        """The alloca holding the greatest index met at ``site`` (a dimension of
        ``size``) read as unsigned, so a negative index is greater than any in range:
        it is out of range exactly when it is >= size.  It starts at 0 (for a size-0
        dimension, where 0 is out of range too, ``met`` says whether any was met)."""
        if site not in self._worst:
            self._worst[site] = self.alloca(I64, name=f"worst{site}"), size
            self.entry.store(i64(0), self._worst[site][0])
        return self._worst[site][0]

    def pointer(self, buffer: str) -> ir.Value:
        if buffer not in self._pointers:
            if buffer not in self.slots:
                raise ValueError(f"kernel {self.fn.name} uses {buffer!r}, which is not a "
                                 f"buffer of the program")
            slot = self.entry.gep(self.buffers_arg, [i64(self.slots[buffer])], inbounds=True,
                                  source_etype=PTR)
            # Named by slot, not by buffer: a kernel's text must not depend on the names
            # its program gave its buffers (render.kernel_module).
            self._pointers[buffer] = self.entry.load(slot, name=f"buffer{self.slots[buffer]}",
                                                     typ=PTR)
        return self._pointers[buffer]

    def alloca(self, ty, count=None, name="", align=None):
        slot = self.entry.alloca(ty, size=None if count is None else i64(count), name=name)
        slot.align = align
        return slot

    def finish(self) -> ir.Function:
        """Close the function; an index site that met an index outside [0, size)
        records itself and that index (the greatest, read as unsigned) in the error
        record, a divisor site that met a zero records itself."""
        b = self.b
        self.entry.branch(self.body)
        for site, (worst, size) in self._worst.items():
            bad = b.load(worst, typ=I64)
            outside = b.load(self.met(site), typ=I1) if size == 0 else \
                b.icmp_unsigned(">=", bad, i64(size))
            with b.if_then(outside, likely=False):
                raise_flag(b, self.flag, site, bad)
        for site, met in self._met.items():
            if site not in self._worst:                 # a zero divisor
                with b.if_then(b.load(met, typ=I1), likely=False):
                    raise_flag(b, self.flag, site, i64(0))
        b.ret_void()
        if self.scopes is not None:
            self._tag_accesses()
        return self.fn

    def _tag_accesses(self):
        """Give each load and store through a buffer pointer ``!alias.scope`` (its
        buffer's scope) and ``!noalias`` (the scopes of the kernel's other buffers).
        Other accesses (allocas, scratch memory, the error flag) stay untagged, which
        LLVM treats as possibly aliasing anything."""
        module = self.fn.module
        domain = module.add_metadata(["graphc.buffers"])
        buffer_of = {id(ptr): name for name, ptr in self._pointers.items()}
        keys = sorted({self.scopes[name] for name in self._pointers})
        scope = {key: module.add_metadata([f"graphc.buffer.{key}", domain]) for key in keys}
        for block in self.fn.blocks:
            for instr in block.instructions:
                name = _accessed_buffer(instr, buffer_of)
                if name is None:
                    continue
                key = self.scopes[name]
                instr.set_metadata("alias.scope", module.add_metadata([scope[key]]))
                others = [scope[k] for k in keys if k != key]
                if others:
                    instr.set_metadata("noalias", module.add_metadata(others))


def _accessed_buffer(instr, buffer_of: dict):
    """The buffer a load or store addresses through a GEP on its pointer, or None."""
    if isinstance(instr, ir.LoadInstr):
        ptr = instr.operands[0]
    elif isinstance(instr, ir.StoreInstr):
        ptr = instr.operands[1]
    else:
        return None
    base = ptr.pointer if isinstance(ptr, ir.GEPInstr) else ptr
    return buffer_of.get(id(base))

