"""Render graphc's loop IR (``graphc.codegen.loops``) to LLVM IR with llvmlite's IR builder.

Every kernel becomes ``void NAME(ptr buffers, i64 start, i64 stop, ptr error_flag)``:
``buffers[slot]`` points at each buffer of the program and [start, stop) is a range of the
outermost parallel loop (outermost of extent > 1; the flattened batch*m rows for a
matmul), so ``entry`` can split a large kernel between two threads.  A program becomes
one module whose exported ``void entry(ptr buffers, ptr error_flag)`` runs every kernel
in order.

Numerics are numpy's, so there is no global fast-math: the only flag is ``reassoc`` on the
accumulation of float sum/prod reductions, which lets the loop vectorizer keep several
partial sums.  Their order differs from numpy's pairwise summation, within float rounding;
the matmul accumulates with fused multiply-adds, as BLAS does.

Aliasing: every buffer of a program is its own allocation (inputs are the caller's arrays,
outputs fresh arrays, temporaries disjoint parts of an arena while live), so each is an
LLVM alias scope and every access through a buffer pointer says it aliases no other
buffer of its kernel.  Without that, LLVM must assume a store to one output may change
any other buffer (all pointers come from one array): loops with several outputs would not
vectorize and shared subexpressions would be recomputed after each store.

Errors: a kernel sets ``*error_flag`` (compare-and-swap from 0: the first error wins) to
its ``code`` when a CheckedIndex was out of range, or to ``-code`` when it could not
allocate matmul scratch memory.
"""
from __future__ import annotations

import functools
import math
from contextlib import ExitStack, contextmanager

import llvmlite.binding as llvm
import llvmlite.ir as ir

from graphc import dtypes
from graphc.backends.cpu import mathlib
from graphc.codegen import loops as L

ENTRY = "entry"

# A kernel runs on two threads when its ``work`` is at least this.  Starting and joining
# a thread (and, for a matmul, its scratch memory) costs 20-50 us on a 2-core VM: two
# threads measured faster from ~400k iterations of an elementwise loop and from ~16M
# multiply-adds of a matmul (256^3).
PARALLEL_WORK = {"loops": 1 << 19, "matmul": 1 << 24}

VOID = ir.VoidType()
I1, I8, I32, I64 = (ir.IntType(w) for w in (1, 8, 32, 64))
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
KERNEL_TYPE = ir.FunctionType(VOID, [PTR, I64, I64, PTR])

_VALUE_TYPES = {dtypes.bool_: I1, dtypes.int32: I32, dtypes.int64: I64,
                dtypes.float32: F32, dtypes.float64: F64}


def value_type(dtype) -> ir.Type:
    """The type a scalar of ``dtype`` has in registers (bool is i1)."""
    return _VALUE_TYPES[dtype]


def storage_type(dtype) -> ir.Type:
    """The type of one element in memory (bool is one byte, as in numpy)."""
    return I8 if dtype is dtypes.bool_ else _VALUE_TYPES[dtype]


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


def raise_flag(b, flag, code: int):
    """Record error ``code`` unless an earlier error is already recorded."""
    b.cmpxchg(flag, ir.Constant(I32, 0), ir.Constant(I32, code), "monotonic", "monotonic")


# ---- scalar ops ----------------------------------------------------------------------------
def _category(dtype) -> str:
    return "f" if dtype.is_floating_point else "b" if dtype is dtypes.bool_ else "i"


def cast(b, x, src, dst):
    """numpy's ``astype``: float -> int truncates, anything -> bool is ``!= 0``."""
    if src is dst:
        return x
    to, s, d = value_type(dst), _category(src), _category(dst)
    if d == "b":
        return (b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0)) if s == "f"
                else b.icmp_unsigned("!=", x, ir.Constant(x.type, 0)))
    if s == "b":
        return b.uitofp(x, to) if d == "f" else b.zext(x, to)
    if s == "f" and d == "f":
        return b.fpext(x, to) if dst.itemsize > src.itemsize else b.fptrunc(x, to)
    if s == "f":
        # Out of range (and NaN) is poison for fptosi; numpy on x86 gives the minimum
        # integer there, so do that (the unselected poison is harmless).
        limit = float(2 ** (8 * dst.itemsize - 1))
        inside = b.and_(b.fcmp_ordered(">=", x, ir.Constant(x.type, -limit)),
                        b.fcmp_ordered("<", x, ir.Constant(x.type, limit)))
        return b.select(inside, b.fptosi(x, to), ir.Constant(to, -int(limit)))
    if d == "f":
        return b.sitofp(x, to)
    return b.sext(x, to) if dst.itemsize > src.itemsize else b.trunc(x, to)


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


_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _comparison(op):
    def rule(b, x, y, dtype):
        if dtype.is_floating_point:   # numpy: NaN != anything is True, other tests False
            return (b.fcmp_unordered("!=", x, y) if op == "ne"
                    else b.fcmp_ordered(_COMPARE[op], x, y))
        if dtype is dtypes.bool_:
            return b.icmp_unsigned(_COMPARE[op], x, y)
        return b.icmp_signed(_COMPARE[op], x, y)
    return rule


def _arith(float_op, int_op):
    def rule(b, x, y, dtype):
        return getattr(b, float_op if dtype.is_floating_point else int_op)(x, y)
    return rule


def _unary_float(name):
    """A transcendental function, built inline by the mathlib so loops vectorize."""
    return lambda b, x, dtype: mathlib.emit(b, name, x)


def _sqrt(b, x, dtype):
    return intrinsic(b, "sqrt", x)


def _rsqrt(b, x, dtype):
    return b.fdiv(ir.Constant(x.type, 1.0), intrinsic(b, "sqrt", x))


def _neg(b, x, dtype):
    return b.fneg(x) if dtype.is_floating_point else b.neg(x)


# Scalar rules by primitive name: rule(builder, *operand values, operand dtype).
UNARY = {
    "neg": _neg, "exp": _unary_float("exp"), "log": _unary_float("log"), "sqrt": _sqrt,
    "rsqrt": _rsqrt, "sin": _unary_float("sin"), "cos": _unary_float("cos"),
    "tanh": _unary_float("tanh"), "sigmoid": _unary_float("sigmoid"),
    "erf": _unary_float("erf"), "floor": lambda b, x, dt: intrinsic(b, "floor", x),
    "abs": _abs, "sign": _sign, "logical_not": lambda b, x, dt: b.not_(x),
}
BINARY = {
    "add": _arith("fadd", "add"), "sub": _arith("fsub", "sub"), "mul": _arith("fmul", "mul"),
    "div": lambda b, x, y, dt: b.fdiv(x, y), "pow": _pow,
    "maximum": lambda b, x, y, dt: extremum(b, "max", x, y, dt),
    "minimum": lambda b, x, y, dt: extremum(b, "min", x, y, dt),
    "logical_and": lambda b, x, y, dt: b.and_(x, y),
    "logical_or": lambda b, x, y, dt: b.or_(x, y),
    **{op: _comparison(op) for op in _COMPARE},
}

_INDEX_OPS = {
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
class Emitter:
    """Renders index and scalar expressions at the builder's position.

    ``pointer(name)`` gives a buffer's base pointer; ``env`` binds loop variables to
    i64 values and ``accs`` accumulator names to functions giving (value, dtype).
    Rendered subexpressions are memoised by object identity in nested scopes (a
    statement, a loop body), so a subtree shared by an expression DAG is emitted once,
    and a value is never reused outside the block that defines it."""

    def __init__(self, b: ir.IRBuilder, pointer, error: ir.Value):
        self.b = b
        self.pointer = pointer
        self.error = error        # i1 alloca: an index was out of range
        self.env: dict = {}
        self.accs: dict = {}
        self._scopes = [{}]

    @contextmanager
    def scope(self):
        self._scopes.append({})
        yield
        self._scopes.pop()

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

    def _memo(self, e, render):
        for scope in reversed(self._scopes):
            hit = scope.get(id(e))
            if hit is not None:
                return hit[1]
        value = render(e)
        self._scopes[-1][id(e)] = (e, value)      # e is kept alive: its id stays unique
        return value

    # index expressions: i64
    def index(self, e) -> ir.Value:
        if isinstance(e, L.Var):
            if e.name not in self.env:
                raise ValueError(f"loop variable {e.name!r} is not bound here")
            return self.env[e.name]
        if isinstance(e, L.IConst):
            return i64(e.value)
        return self._memo(e, self._index_node)

    def _index_node(self, e):
        if isinstance(e, L.IOp):
            return _INDEX_OPS[e.op](self.b, self.index(e.a), self.index(e.b))
        if isinstance(e, L.CheckedIndex):
            return self._checked(e)
        raise TypeError(f"not a loop IR index expression: {e!r}")

    def _checked(self, e):
        b = self.b
        v = cast(b, self.scalar(e.value), e.value.dtype, dtypes.int64)
        outside = b.or_(b.icmp_signed("<", v, i64(0)), b.icmp_signed(">=", v, i64(e.size)))
        b.store(b.or_(b.load(self.error, typ=I1), outside), self.error)
        return imin(b, imax(b, v, i64(0)), i64(max(e.size - 1, 0)))

    # scalar expressions: value_type(dtype)
    def scalar(self, e) -> ir.Value:
        if isinstance(e, L.Const):
            return constant(e.dtype, e.value)
        if isinstance(e, L.Acc):
            if e.name not in self.accs:
                raise ValueError(f"accumulator {e.name!r} is read before its Reduce")
            value, dtype = self.accs[e.name]()
            return cast(self.b, value, dtype, e.dtype)
        return self._memo(e, self._scalar_node)

    def _scalar_node(self, e):
        b = self.b
        if isinstance(e, L.Load):
            value = b.load(self.address(e.buffer, e.offset, e.dtype), typ=storage_type(e.dtype))
            return _from_storage(b, value, e.dtype)
        if isinstance(e, L.Op):
            return self._op(e)
        if isinstance(e, L.IndexValue):
            return cast(b, self.index(e.index), dtypes.int64, e.dtype)
        if isinstance(e, L.Uniform):
            return self._uniform(e)
        raise TypeError(f"not a loop IR scalar expression: {e!r}")

    def _op(self, e):
        args = [self.scalar(a) for a in e.args]
        dtype = e.args[0].dtype
        if e.op == "cast":
            return cast(self.b, args[0], dtype, e.dtype)
        if e.op == "where":
            return self.b.select(*args)
        rules = UNARY if len(args) == 1 else BINARY
        if e.op not in rules:
            raise ValueError(f"cpu backend: no scalar rule for {e.op} with {len(args)} "
                             f"operands")
        return rules[e.op](self.b, *args, dtype)

    def _uniform(self, e):
        b = self.b
        seed = cast(b, self.scalar(e.seed), e.seed.dtype, dtypes.int64)
        low, high = b.trunc(seed, I32), b.trunc(b.lshr(seed, i64(32)), I32)
        key = hash32(b, b.xor(low, hash32(b, high)))
        bits = hash32(b, b.xor(b.trunc(self.index(e.counter), I32), key))
        mantissa = b.uitofp(b.lshr(bits, ir.Constant(I32, 8)), value_type(e.dtype))
        return b.fmul(mantissa, ir.Constant(value_type(e.dtype), 2.0 ** -24))

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
                BINARY["add"](b, old, value, dtype)
        b.store(b.zext(value, I8) if dtype is dtypes.bool_ else value, ptr)


def _from_storage(b, value, dtype):
    """A loaded element as a register value: any nonzero byte is True."""
    return b.icmp_unsigned("!=", value, ir.Constant(I8, 0)) if dtype is dtypes.bool_ else value


# ---- loop kernels --------------------------------------------------------------------------------
def alias_scopes(program: L.Program) -> dict:
    """Buffer name -> its alias scope's name.  Inputs share one scope when a kernel
    writes one of them: the caller may pass one array as two inputs, which is only
    harmless while both are read."""
    written = {name for kernel in program.kernels for name in kernel.outputs}
    shared = any(name in written for name in program.inputs)
    inputs = set(program.inputs)
    return {name: "inputs" if shared and name in inputs else name
            for name in program.buffers}


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
        self.error = self.alloca(I1, name="index_error")
        self.entry.store(ir.Constant(I1, 0), self.error)
        self.emit = Emitter(self.b, self.pointer, self.error)

    def pointer(self, buffer: str) -> ir.Value:
        if buffer not in self._pointers:
            if buffer not in self.slots:
                raise ValueError(f"kernel {self.fn.name} uses {buffer!r}, which is not a "
                                 f"buffer of the program")
            slot = self.entry.gep(self.buffers_arg, [i64(self.slots[buffer])], inbounds=True,
                                  source_etype=PTR)
            self._pointers[buffer] = self.entry.load(slot, name=buffer, typ=PTR)
        return self._pointers[buffer]

    def alloca(self, ty, count=None, name="", align=None):
        slot = self.entry.alloca(ty, size=None if count is None else i64(count), name=name)
        slot.align = align
        return slot

    def finish(self, code: int) -> ir.Function:
        b = self.b
        self.entry.branch(self.body)
        with b.if_then(b.load(self.error, typ=I1), likely=False):
            raise_flag(b, self.flag, code)
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


def _accumulator(kf: KernelFunction, acc: L.Accumulator):
    """Allocate and initialise one accumulator; returns (update(), value())."""
    b, emit = kf.b, kf.emit
    is_arg = acc.kind in ("argmax", "argmin")
    dtype = acc.value.dtype if is_arg else acc.dtype
    slot = kf.alloca(value_type(dtype), name=acc.name)
    b.store(constant(dtype, L.identity(acc.kind, dtype)), slot)
    if is_arg:
        index_slot = kf.alloca(I64, name=f"{acc.name}.index")
        b.store(i64(-1), index_slot)

        def update():
            v, best, at = emit.scalar(acc.value), b.load(slot, typ=slot.allocated_type), \
                b.load(index_slot, typ=I64)
            take = b.or_(b.icmp_signed("<", at, i64(0)), _better(b, acc.kind, v, best, dtype))
            b.store(b.select(take, v, best), slot)
            b.store(b.select(take, emit.index(acc.index), at), index_slot)
        return update, lambda: (b.load(index_slot, typ=I64), dtypes.int64)

    def update():
        v = emit.scalar(acc.value)
        v = cast(b, v, acc.value.dtype, dtype)
        b.store(_combine(b, acc.kind, b.load(slot, typ=slot.allocated_type), v, dtype), slot)
    return update, lambda: (b.load(slot, typ=slot.allocated_type), dtype)


def _combine(b, kind, acc, v, dtype):
    if kind in ("max", "min"):
        return extremum(b, kind, acc, v, dtype)
    if dtype.is_floating_point:     # reassoc: lets the vectorizer split the sum
        op = b.fadd if kind == "sum" else b.fmul
        return op(acc, v, flags=("reassoc",))
    if dtype is dtypes.bool_:
        return b.or_(acc, v) if kind == "sum" else b.and_(acc, v)
    return b.add(acc, v) if kind == "sum" else b.mul(acc, v)


def _better(b, kind, v, best, dtype):
    """numpy's argmax/argmin: the first NaN wins, else a strictly better value."""
    op = ">" if kind == "argmax" else "<"
    if dtype.is_floating_point:
        first_nan = b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", best, best))
        return b.or_(b.fcmp_ordered(op, v, best), first_nan)
    if dtype is dtypes.bool_:
        return b.icmp_unsigned(op, v, best)
    return b.icmp_signed(op, v, best)


def _render_statement(kf: KernelFunction, stmt):
    emit = kf.emit
    if isinstance(stmt, L.Store):
        with emit.loops(stmt.loops):
            emit.store(emit.scalar(stmt.value), stmt.buffer, stmt.offset, stmt.value.dtype,
                       stmt.accumulate)
        return
    accumulators = [(acc, _accumulator(kf, acc)) for acc in stmt.accumulators]
    with emit.loops(stmt.loops):
        for _, (update, _) in accumulators:
            update()
    for acc, (_, value) in accumulators:
        emit.accs[acc.name] = value


def _ranged(parallel) -> int:
    """Which parallel loop the [start, stop) range covers: the outermost one with an
    extent other than 1 (the loops outside it only see index 0)."""
    return next((d for d, (_, extent) in enumerate(parallel) if extent != 1), 0)


def render_loop_kernel(module, kernel: L.LoopKernel, slots: dict, code: int,
                       scopes=None) -> ir.Function:
    kf = KernelFunction(module, kernel.name, slots, scopes)
    parallel = kernel.parallel or (("p", 1),)
    d = _ranged(parallel)
    with ExitStack() as stack:
        for name, _ in parallel[:d]:
            stack.enter_context(kf.emit.bind(name, i64(0)))
        name = parallel[d][0]
        p = stack.enter_context(for_range(kf.b, kf.start, kf.stop, name=name))
        stack.enter_context(kf.emit.bind(name, p))
        stack.enter_context(kf.emit.loops(parallel[d + 1:]))
        for stmt in kernel.body:
            with kf.emit.scope():
                _render_statement(kf, stmt)
    return kf.finish(code)


# ---- the program ---------------------------------------------------------------------------------
_WORKER_ARGS = ir.LiteralStructType([PTR, I64, I64, PTR])


def kernel_extent(kernel) -> int:
    """Size of the range [0, extent) a kernel's function is called over."""
    if isinstance(kernel, L.MatmulKernel):
        return math.prod(kernel.batch) * kernel.m
    return kernel.parallel[_ranged(kernel.parallel)][1] if kernel.parallel else 1


def runs_threaded(kernel) -> bool:
    if isinstance(kernel, L.MatmulKernel):
        threshold = PARALLEL_WORK["matmul"]
    elif kernel.serial:
        return False
    else:
        threshold = PARALLEL_WORK["loops"]
    return kernel.work >= threshold and kernel_extent(kernel) >= 2


def render_kernel(module, kernel, slots: dict, code: int, scopes=None) -> ir.Function:
    if isinstance(kernel, L.MatmulKernel):
        from graphc.backends.cpu.matmul import MatmulRenderer   # it builds on this module
        return MatmulRenderer(module, kernel, slots, code, scopes).render()
    return render_loop_kernel(module, kernel, slots, code, scopes)


def render_program(program: L.Program) -> ir.Module:
    """The module of a whole program: its kernels and ``entry(buffers, error_flag)``,
    which calls each over its whole range, large ones on two threads.  ``buffers`` has
    one pointer per ``program.buffers`` entry, in that order."""
    module = new_module(program.name)
    slots = {name: i for i, name in enumerate(program.buffers)}
    scopes = alias_scopes(program)
    entry = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR]), ENTRY)
    buffers, flag = entry.args
    allocas = ir.IRBuilder(entry.append_basic_block("allocas"))
    body = entry.append_basic_block("body")
    b = ir.IRBuilder(body)
    for code, kernel in enumerate(program.kernels, 1):
        fn = render_kernel(module, kernel, slots, code, scopes)
        extent = kernel_extent(kernel)
        if runs_threaded(kernel):
            _call_on_two_threads(b, allocas, fn, buffers, flag, extent)
        else:
            b.call(fn, [buffers, i64(0), i64(extent), flag])
    b.ret_void()
    allocas.branch(body)
    return module


def _call_on_two_threads(b, allocas, fn, buffers, flag, extent):
    """Run the second half of the range on a new thread and the first half here; if no
    thread can be started, run both halves here."""
    module = b.module
    create = declare(module, "pthread_create", I32, [PTR, PTR, PTR, PTR])
    join = declare(module, "pthread_join", I32, [I64, PTR])
    args, thread = allocas.alloca(_WORKER_ARGS), allocas.alloca(I64)
    half = extent // 2
    for i, value in enumerate((buffers, i64(half), i64(extent), flag)):
        b.store(value, b.gep(args, [ir.Constant(I32, 0), ir.Constant(I32, i)], inbounds=True))
    status = b.call(create, [thread, ir.Constant(PTR, None), _worker(module, fn), args])
    b.call(fn, [buffers, i64(0), i64(half), flag])
    with b.if_else(b.icmp_signed("==", status, ir.Constant(I32, 0))) as (started, failed):
        with started:
            b.call(join, [b.load(thread, typ=I64), ir.Constant(PTR, None)])
        with failed:
            b.call(fn, [buffers, i64(half), i64(extent), flag])


def _worker(module, fn) -> ir.Function:
    """The thread start routine that calls ``fn`` with the arguments in a struct."""
    worker = ir.Function(module, ir.FunctionType(PTR, [PTR]), f"{fn.name}.worker")
    worker.linkage = "internal"
    b = ir.IRBuilder(worker.append_basic_block("entry"))
    fields = [b.load(b.gep(worker.args[0], [ir.Constant(I32, 0), ir.Constant(I32, i)],
                           inbounds=True, source_etype=_WORKER_ARGS), typ=t)
              for i, t in enumerate(_WORKER_ARGS.elements)]
    b.call(fn, fields)
    b.ret(ir.Constant(PTR, None))
    return worker
