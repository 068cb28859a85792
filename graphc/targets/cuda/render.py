"""Render graphc's loop IR (``graphc.codegen.loops``) to CUDA C.

Each kernel becomes one ``extern "C" __global__`` function named after it, preceded by
the IR ops it implements, taking its buffers as typed pointers (``float *``,
``double *``, ``int *``, ``long long *``, ``unsigned char *`` for bool) and then
``long long *error_flag`` (the error record ``{code, value}``).  Three shapes of kernel:

- elementwise (no ``Reduce``, every ``Store`` without inner loops): a grid-stride loop
  over the flattened parallel space; contiguous accesses index with ``item``, and when
  every store is one, each thread handles 2 or 4 items per step with 16-byte vector
  loads and stores;
- reducing (any inner loops, or ``serial``): one block per parallel iteration, the
  blocks grid-striding over the iterations.  The block's threads split each statement's
  inner loops; a ``Reduce`` ends in ``gc::block_reduce`` (warp shuffles, then shared
  memory across warps), which hands every thread the result, so later statements read
  ``Acc`` values as locals.  A ``serial`` kernel is one block whose accumulating stores
  run in order on thread 0, with a barrier between statements;
- matmul: shared-memory tiles of A and B (``tile`` x ``tile`` threads, bounds-checked
  for any m, n, k and strided or broadcast operands), then the fused epilogue per
  output element.

Before rendering, long reductions over few rows are split into two reducing kernels
(``codegen/split.py``), so they fill the GPU instead of a few blocks.

Scalars follow numpy through the helpers of ``prelude.cuh`` (pasted at the top of every
program) and CUDA's libm (``expf``... for f32, ``exp``... for f64).  Every subexpression
becomes a named ``const`` local, so the text reads like the loop IR it came from.  A
``CheckedIndex`` is clamped and, out of range, records its site (in ``program.sites``)
and the index it met in the error record, unless an earlier error is recorded
(``loops.Program.error`` turns the record into the exception).
"""
from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from graphc import dtypes
from graphc.targets.emitter import Emitter as BaseEmitter
from graphc.codegen import loops as L
from graphc.codegen.lower import linear
from graphc.codegen.split import SplitPolicy, split_reductions
from graphc.ops import ACCUMULATIONS

_HERE = os.path.dirname(os.path.abspath(__file__))
PRELUDE_PATH = os.path.join(_HERE, "prelude.cuh")
SHARED_SLOTS = 33          # block_reduce's scratch: one slot per warp, then the result


@dataclass(frozen=True)
class LaunchLimits:
    """How large launches may be: ``threads`` per block (a multiple of 32), the matmul
    ``tile`` edge (``tile * tile`` threads) and the most ``blocks`` of a grid (kernels
    grid-stride over the rest); ``split``: when a long reduction over few rows runs in
    two passes (``codegen/split.py``)."""
    threads: int = 256
    tile: int = 16
    blocks: int = 8192
    # 264 blocks: two per SM of an H100; a chunk is 32 elements per thread of a block.
    split: SplitPolicy = SplitPolicy(busy=264, chunk=8192)


GPU = LaunchLimits()
# The emulator runs every CUDA thread as a fiber: fewer of them keeps it quick while
# still covering several warps per block and several grid-stride steps per block (and
# two-pass reductions from a few hundred elements on).
EMULATION = LaunchLimits(threads=64, tile=8, blocks=4, split=SplitPolicy(busy=4, chunk=128))


@dataclass(frozen=True)
class Launch:
    """One kernel launch: a 1-D grid of 1-D blocks; ``args`` are the buffer names in
    parameter order (``error_flag`` follows them)."""
    kernel: str
    grid: int
    block: int
    args: tuple


@dataclass
class CudaSource:
    """A rendered program: the ``.cu`` text (the prelude, then ``kernels``, one text per
    kernel) and its launches in execution order."""
    program: L.Program
    text: str
    kernels: list
    launches: list
    limits: LaunchLimits


# Narrow dtypes compute widened (int, float) and are narrowed after each op (the
# prelude's narrow_*/round_*); float16 and bfloat16 buffers hold raw bits.
_VALUE = {dtypes.bool_: "bool", dtypes.uint8: "int", dtypes.int8: "int", dtypes.int16: "int",
          dtypes.int32: "int", dtypes.int64: "long long", dtypes.float16: "float",
          dtypes.bfloat16: "float", dtypes.float32: "float", dtypes.float64: "double"}
_STORAGE = {**_VALUE, dtypes.bool_: "unsigned char", dtypes.uint8: "unsigned char",
            dtypes.int8: "signed char", dtypes.int16: "short",
            dtypes.float16: "unsigned short", dtypes.bfloat16: "unsigned short"}
_NARROW = {dtypes.uint8: "gc::narrow_u8", dtypes.int8: "gc::narrow_i8",
           dtypes.int16: "gc::narrow_i16", dtypes.float16: "gc::round_f16",
           dtypes.bfloat16: "gc::round_bf16"}
_HALF_SHORT = {dtypes.float16: "f16", dtypes.bfloat16: "bf16"}


def value_type(dtype) -> str:
    return _VALUE[dtype]


def storage_type(dtype) -> str:
    """The C type of a buffer element (bool is one byte, as in numpy)."""
    return _STORAGE[dtype]


def narrow(text, dtype) -> str:
    """A widened value brought into ``dtype`` (wrapped, or rounded to nearest even)."""
    return f"{_NARROW[dtype]}({text})" if dtype in _NARROW else text


def prelude() -> str:
    with open(PRELUDE_PATH) as f:
        return f.read()


# ---- literals ----------------------------------------------------------------------------------
def literal(value, dtype) -> str:
    """A C literal of exactly ``dtype``'s value (float32 constants keep their rounding)."""
    if dtype is dtypes.bool_:
        return "true" if bool(value) else "false"
    if not dtype.is_floating_point:
        v = int(np.asarray(value).astype(dtype.np))
        suffix = "LL" if dtype is dtypes.int64 else ""
        if v == np.iinfo(dtype.np).min:
            return f"({v + 1}{suffix} - 1)"
        return f"{v}{suffix}" if v >= 0 else f"({v}{suffix})"
    x = dtype.np.type(value)
    if dtype in _HALF_SHORT:            # exactly its float32 value: computed in float
        x, dtype = np.float32(x), dtypes.float32
    f = "f" if dtype is dtypes.float32 else ""
    if np.isnan(x):
        return f'__builtin_nan{f}("")'
    if np.isinf(x):
        return f"(-__builtin_huge_val{f}())" if x < 0 else f"__builtin_huge_val{f}()"
    text = str(x) + f           # numpy prints the shortest text that reads back as x
    return f"({text})" if text.startswith("-") else text


def identity(kind, dtype) -> str:
    return literal(L.identity(kind, dtype), dtype)


# ---- scalar ops ----------------------------------------------------------------------------------
class ScalarOps:
    """The scalar ops (``graphc.ops.SCALAR_OPS``) as C expressions: operands are texts of
    ``dtype``, ``cast`` converts to ``out``.  Scalars follow numpy through the prelude's
    helpers and CUDA's libm (``expf``... for f32, ``exp``... for f64)."""

    def __init__(self, dtype, out):
        self.dtype, self.out = dtype, out
        self.is_float = dtype.is_floating_point

    def _f(self, name, *args):
        """A libm function: ``expf`` for float32 (and the half types), ``exp`` for
        float64."""
        return f"{name}{'f' if value_type(self.dtype) == 'float' else ''}({', '.join(args)})"

    def _infix(self, symbol, helper, a, b):
        """Float arithmetic as an operator; integers through the prelude's wrapping
        helper."""
        return f"({a} {symbol} {b})" if self.is_float else f"gc::{helper}({a}, {b})"

    def const(self, value):
        return literal(value, self.dtype)

    def cast(self, a):
        return cast(a, self.dtype, self.out)

    def exp(self, a):
        return self._f("exp", a)

    def expm1(self, a):
        return self._f("expm1", a)

    def log(self, a):
        return self._f("log", a)

    def log1p(self, a):
        return self._f("log1p", a)

    def sqrt(self, a):
        return self._f("sqrt", a)

    def sin(self, a):
        return self._f("sin", a)

    def cos(self, a):
        return self._f("cos", a)

    def tanh(self, a):
        return self._f("tanh", a)

    def erf(self, a):
        return self._f("erf", a)

    def floor(self, a):
        return self._f("floor", a)

    def atan2(self, y, x):
        return self._f("atan2", y, x)

    def sigmoid(self, a):
        return f"gc::sigmoid({a})"

    def neg(self, a):
        return f"(-{a})" if self.is_float else f"gc::neg({a})"

    def abs(self, a):
        return self._f("fabs", a) if self.is_float else f"gc::iabs({a})"

    def sign(self, a):
        return f"gc::sign({a})"

    def logical_not(self, a):
        return f"(!{a})"

    def add(self, a, b):
        return self._infix("+", "add", a, b)

    def sub(self, a, b):
        return self._infix("-", "sub", a, b)

    def mul(self, a, b):
        return self._infix("*", "mul", a, b)

    def div(self, a, b):
        return f"({a} / {b})"

    def pow(self, a, b):
        return self._f("pow", a, b) if self.is_float else f"gc::ipow({a}, {b})"

    def floor_divide(self, a, b):
        return f"gc::floor_divide({a}, {b})"

    def remainder(self, a, b):
        return f"gc::remainder({a}, {b})"

    def maximum(self, a, b):
        return f"gc::maximum({a}, {b})"

    def minimum(self, a, b):
        return f"gc::minimum({a}, {b})"

    def logical_and(self, a, b):
        return f"({a} && {b})"

    def logical_or(self, a, b):
        return f"({a} || {b})"

    def eq(self, a, b):
        return f"({a} == {b})"

    def ne(self, a, b):
        return f"({a} != {b})"

    def lt(self, a, b):
        return f"({a} < {b})"

    def le(self, a, b):
        return f"({a} <= {b})"

    def gt(self, a, b):
        return f"({a} > {b})"

    def ge(self, a, b):
        return f"({a} >= {b})"

    def where(self, c, a, b):
        return f"{c} ? {a} : {b}"


def cast(text, src, dst) -> str:
    """numpy's ``astype``: anything -> bool is ``!= 0`` (NaN is True); float -> int
    truncates (saturating, NaN -> 0)."""
    if src is dst:
        return text
    if dst is dtypes.bool_:
        return f"({text} != {literal(0, src)})"
    if src.is_floating_point and not dst.is_floating_point:
        return f"gc::to_{dst.short}({text})"
    return f"({value_type(dst)})({text})"


_COMBINE = {"sum": "gc::Sum()", "prod": "gc::Prod()", "max": "gc::Max()", "min": "gc::Min()",
            "argmax": "gc::ArgBest<true>()", "argmin": "gc::ArgBest<false>()"}


# ---- identifiers ---------------------------------------------------------------------------------
_RESERVED = {"item", "item4", "step", "tile", "tx", "ty", "k0", "depth", "partial", "batch",
             "a_tile", "b_tile", "a_base", "b_base", "error_flag", "gc", "p", "at", "i", "j",
             "acc"}


class Names:
    """C identifiers for loop IR names (buffers, variables, accumulators): non-word
    characters become ``_``; a clash with another name or a reserved one gets a suffix."""

    def __init__(self, reserved=()):
        self.map: dict = {}
        self.taken = set(_RESERVED) | set(reserved)

    def __call__(self, name: str) -> str:
        if name not in self.map:
            base = re.sub(r"\W", "_", name)
            base = base if base and not base[0].isdigit() else f"_{base}"
            c, k = base, 1
            while c in self.taken:
                c, k = f"{base}_{k}", k + 1
            self.taken.add(c)
            self.map[name] = c
        return self.map[name]


def _loop_size(loops) -> int:
    return math.prod(n for _, n in loops)


def unravel(flat: str, loops) -> list:
    """[(var, C expression)] of the loop variables at row-major position ``flat``."""
    out, stride = [], _loop_size(loops)
    if stride == 0:                             # the loop never runs
        return [(name, "0") for name, _ in loops]
    for k, (name, extent) in enumerate(loops):
        stride //= extent
        if extent == 1:
            out.append((name, "0"))
            continue
        q = flat if stride == 1 else f"{flat} / {stride}"
        out.append((name, q if k == 0 else f"{q} % {extent}"))
    return out


# ---- expressions ---------------------------------------------------------------------------------
class Emitter(BaseEmitter):
    """Writes one kernel's statements.  Subexpressions become ``const`` locals, memoised
    in nested scopes that follow the C blocks (see ``graphc.targets.emitter``), so a
    shared subtree is computed once and never used outside the block that defines it."""

    def __init__(self, names: Names, buffers: dict):
        super().__init__()
        self.names = names
        self.buffers = buffers                  # buffer name -> C name (the kernel's args)
        self.lines: list = []
        self.depth = 1
        self.used: set = set()                  # loop variables read so far
        self.flat: set = set()                  # ids of offsets that are the flat position
        self.flat_text = "item"                 # ... which is this C expression
        self.vectors: dict = {}                 # buffer -> vector local holding its lanes
        self.lane = None                        # that local's component ("x", "y", ...)
        self._count = 0

    def line(self, text: str = ""):
        self.lines.append("    " * self.depth + text if text else "")

    @contextmanager
    def block(self, head: str):
        self.line(f"{head} {{" if head else "{")
        self.depth += 1
        with self.scope():
            yield
        self.depth -= 1
        self.line("}")

    @contextmanager
    def bind(self, loops, flat: str):
        """Declare the loop variables of ``loops`` at position ``flat`` (only those the
        body reads: nvcc warns about unused locals)."""
        at = len(self.lines)
        names = {name: self.names(name) for name, _ in loops}
        saved = {name: self.env.get(name) for name in names}
        self.env.update(names)
        outer, self.used = self.used, set()
        yield
        decls = ["    " * self.depth + f"const long long {names[n]} = {expr};"
                 for n, expr in unravel(flat, loops) if n in self.used]
        self.lines[at:at] = decls
        self.used = outer | (self.used - set(names))
        for name, old in saved.items():
            if old is None:
                del self.env[name]
            else:
                self.env[name] = old

    def temp(self, ctype: str, text: str, prefix="v") -> str:
        name = f"{prefix}{self._count}"
        self._count += 1
        self.line(f"const {ctype} {name} = {text};")
        return name

    # index expressions: long long
    def index(self, e) -> str:
        if id(e) in self.flat:
            return self.flat_text
        return super().index(e)

    def var(self, name) -> str:
        self.used.add(name)
        return self.env[name]

    def iconst(self, value) -> str:
        return str(value) if value >= 0 else f"({value})"

    def index_op(self, op, a, b) -> str:
        infix = L.INDEX_OPS[op].infix
        if infix is None:
            text = f"({a} {'<' if op == 'min' else '>'} {b} ? {a} : {b})"
        else:
            text = f"({a} {infix} {b})"
        return self.temp("long long", text, "i") if len(text) > 60 else text

    def checked(self, e) -> str:
        value = cast(self.scalar(e.value), e.value.dtype, dtypes.int64)
        return self.temp("long long", f"gc::checked_index({value}, {e.size}LL, "
                                      f"error_flag, {e.site})", "i")

    # scalar expressions: value_type(dtype), each node a const local
    def _scalar_node(self, e) -> str:
        return self.temp(value_type(e.dtype), super()._scalar_node(e))

    def constant(self, value, dtype) -> str:
        return literal(value, dtype)

    def acc(self, e) -> str:
        name, dtype = self.accs[e.name]
        return narrow(cast(name, dtype, e.dtype), e.dtype)

    def load(self, e) -> str:
        if self.lane is not None and e.buffer in self.vectors and id(e.offset) in self.flat:
            ref = f"{self.vectors[e.buffer]}.{self.lane}"
        else:
            ref = f"{self.buffer(e.buffer)}[{self.index(e.offset)}]"
        if e.dtype in _HALF_SHORT:
            return f"gc::{_HALF_SHORT[e.dtype]}_to_float({ref})"
        return f"{ref} != 0" if e.dtype is dtypes.bool_ else ref

    def index_value(self, e) -> str:
        return narrow(cast(self.index(e.index), dtypes.int64, e.dtype), e.dtype)

    def narrow(self, value, dtype) -> str:
        return narrow(value, dtype)

    def nonzero(self, e) -> str:
        return f"gc::nonzero({self.scalar(e.value)}, error_flag, {e.site})"

    def uniform(self, e) -> str:
        seed = cast(self.scalar(e.seed), e.seed.dtype, dtypes.int64)
        kind = "f64" if e.dtype is dtypes.float64 else "f32"
        return narrow(f"gc::uniform_{kind}({seed}, {self.index(e.counter)})", e.dtype)

    def scalar_ops(self, dtype, out) -> ScalarOps:
        return ScalarOps(dtype, out)

    def buffer(self, name: str) -> str:
        if name not in self.buffers:
            raise ValueError(f"buffer {name!r} is not among the kernel's inputs/outputs")
        return self.buffers[name]

    def store(self, buffer: str, at: str, value, accumulate=False):
        """``buffer[at] = value`` (``+=`` when accumulating: or for bool)."""
        ref = f"{self.buffer(buffer)}[{at}]"
        v = self.scalar(value)
        dtype = value.dtype
        if dtype in _HALF_SHORT:
            short = _HALF_SHORT[dtype]
            if accumulate:
                v = f"{v} + gc::{short}_to_float({ref})"
            self.line(f"{ref} = gc::float_to_{short}({v});")
        elif not accumulate:
            self.line(f"{ref} = {v};")
        elif dtype.is_floating_point:
            self.line(f"{ref} += {v};")
        else:
            old = f"({ref} != 0)" if dtype is dtypes.bool_ else ref
            self.line(f"{ref} = gc::add({old}, {v});")


# ---- kernels -----------------------------------------------------------------------------------
def _expr_children(e):
    for attr in ("offset", "args", "a", "b", "value", "index", "seed", "counter"):
        child = getattr(e, attr, None)
        if isinstance(child, tuple):
            yield from child
        elif child is not None and not isinstance(child, (int, float, bool, str)):
            yield child


def loaded_buffers(expr, seen=None) -> set:
    """Names of the buffers an expression loads (walking each shared node once)."""
    return {load.buffer for load in loads_of(expr, set() if seen is None else seen)}


def loads_of(expr, seen: set) -> list:
    """The ``Load`` nodes of an expression not in ``seen`` (ids, updated), each once."""
    out, stack = [], [expr]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, L.Load):
            out.append(e)
        stack.extend(_expr_children(e))
    return out


def is_flat(offset, loops) -> bool:
    """Whether ``offset`` is the row-major position in ``loops`` (built as lowering builds
    a contiguous access in the loops' own shape): consecutive threads then touch
    consecutive elements, and ``item`` is the offset."""
    return offset == linear([L.Var(name) for name, _ in loops], [n for _, n in loops])


_VECTOR = {("float", 4): "float4", ("float", 2): "float2", ("int", 4): "int4",
           ("int", 2): "int2", ("double", 2): "double2", ("long long", 2): "longlong2",
           ("unsigned char", 4): "uchar4", ("unsigned char", 2): "uchar2"}
LANES = "xyzw"


def statement_reads(stmt) -> set:
    if isinstance(stmt, L.Store):
        reads = loaded_buffers(stmt.value) | loaded_buffers(stmt.offset)
        return reads | {stmt.buffer} if stmt.accumulate else reads
    reads = set()
    for acc in stmt.accumulators:
        reads |= loaded_buffers(acc.value)
        if acc.index is not None:
            reads |= loaded_buffers(acc.index)
    return reads


def kernel_buffers(kernel) -> list:
    """Buffers in parameter order: inputs, then outputs, then any other one the kernel
    loads or stores."""
    names = list(dict.fromkeys(kernel.inputs + kernel.outputs))
    extra = set()
    if isinstance(kernel, L.MatmulKernel):
        extra |= {kernel.a.buffer, kernel.b.buffer}
        for buffer, value in kernel.stores:
            extra |= {buffer} | loaded_buffers(value)
    else:
        for stmt in kernel.body:
            extra |= statement_reads(stmt)
            if isinstance(stmt, L.Store):
                extra.add(stmt.buffer)
    return names + sorted(extra - set(names))


def is_elementwise(kernel: L.LoopKernel) -> bool:
    return not kernel.serial and all(isinstance(s, L.Store) and not s.loops
                                     for s in kernel.body)


class KernelRenderer:
    """One kernel's function text and launch."""

    def __init__(self, kernel, program: L.Program, limits: LaunchLimits, c_name: str):
        self.k = kernel
        self.program = program
        self.limits = limits
        self.names = Names()
        self.args = kernel_buffers(kernel)
        self.c_name = c_name
        written = set(kernel.outputs)
        if isinstance(kernel, L.LoopKernel):
            written |= {s.buffer for s in kernel.body if isinstance(s, L.Store)}
        else:
            written |= {name for name, _ in kernel.stores}
        self.params = []
        buffers = {}
        for name in self.args:
            info = program.buffers[name]
            c = buffers[name] = self.names(name)
            const = "" if name in written else "const "
            self.params.append(f"{const}{storage_type(info.dtype)} *{c}")
        self.params.append("long long *error_flag")
        self.e = Emitter(self.names, buffers)
        self.shared: list = []

    def render(self) -> tuple:
        if isinstance(self.k, L.MatmulKernel):
            block, grid = self.matmul()
        elif is_elementwise(self.k):
            block, grid = self.elementwise()
        else:
            block, grid = self.reducing()
        head = [f"// {self.k.name}"] + [f"//   {_comment(c)}" for c in self.k.comment]
        signature = f'extern "C" __global__ void {self.c_name}({", ".join(self.params)})'
        shared = ["    " + s for s in self.shared]
        text = "\n".join(head + [signature + " {"] + shared + self.e.lines + ["}"])
        return text, Launch(self.c_name, grid, block, tuple(self.args))

    def grid(self, items: int) -> int:
        return max(1, min(items, self.limits.blocks))

    # ---- elementwise ------------------------------------------------------------------------
    def elementwise(self):
        """A grid-stride loop over the flattened parallel space.  Accesses at the flat
        position index with ``item`` (no division into loop variables); when every store
        is such an access, each thread handles ``lanes`` consecutive items per step with
        16-byte vector loads and stores (the buffers are aligned: own allocations, arena
        offsets in multiples of 16 elements), and a scalar loop takes the tail."""
        e, k = self.e, self.k
        total = _loop_size(k.parallel)
        seen: set = set()
        loads = [ld for s in k.body for ld in loads_of(s.value, seen) + loads_of(s.offset, seen)]
        e.flat = {id(x.offset) for x in list(k.body) + loads if is_flat(x.offset, k.parallel)}
        lanes = self.lanes(loads)
        step = "(long long)gridDim.x * blockDim.x"
        start = "blockIdx.x * (long long)blockDim.x + threadIdx.x"
        groups = total // lanes if lanes > 1 else 0      # steps of the vector loop
        tail = groups * lanes                            # where the scalar loop starts
        steps = max(groups, total - tail, 1)             # of the longer loop
        block = min(self.limits.threads, max(32, -(-steps // 32) * 32))
        if groups:
            self.vector_loop(groups, lanes, loads, start, step)
        first = f"{tail}LL + {start}" if tail else start
        if tail < total:
            with e.block(f"for (long long item = {first}; item < {total}LL; item += {step})"), \
                    e.bind(k.parallel, "item"):
                for stmt in k.body:
                    with e.scope():
                        e.store(stmt.buffer, e.index(stmt.offset), stmt.value, stmt.accumulate)
        return block, self.grid(-(-steps // block))

    def lanes(self, loads) -> int:
        """Items per thread and step: 16 bytes of the widest vectorised buffer's dtype (at
        most 4), or 1 where a store is not at the flat position or a stored buffer is
        also read."""
        k = self.k
        stored = {s.buffer for s in k.body}
        if any(s.accumulate or id(s.offset) not in self.e.flat for s in k.body) \
                or stored & {ld.buffer for ld in loads}:
            return 1
        vectorised = stored | {ld.buffer for ld in loads if id(ld.offset) in self.e.flat}
        lanes = min(4, 16 // max(self.program.buffers[b].dtype.itemsize for b in vectorised))
        if any((storage_type(self.program.buffers[b].dtype), lanes) not in _VECTOR
               for b in vectorised):        # the narrow dtypes have no vector types here
            return 1
        return lanes

    def vector_loop(self, groups: int, lanes: int, loads, start: str, step: str):
        e, k = self.e, self.k

        def vector_type(buffer):
            return _VECTOR[(storage_type(self.program.buffers[buffer].dtype), lanes)]
        with e.block(f"for (long long item4 = {start}; item4 < {groups}LL; item4 += {step})"):
            for buffer in dict.fromkeys(ld.buffer for ld in loads if id(ld.offset) in e.flat):
                vt = vector_type(buffer)
                e.vectors[buffer] = self.names(f"{buffer}.in")
                e.line(f"const {vt} {e.vectors[buffer]} = "
                       f"reinterpret_cast<const {vt} *>({e.buffer(buffer)})[item4];")
            out = {}
            for stmt in k.body:
                out.setdefault(stmt.buffer, self.names(f"{stmt.buffer}.out"))
            for buffer, name in out.items():
                e.line(f"{vector_type(buffer)} {name};")
            for lane in range(lanes):
                e.lane, e.flat_text = LANES[lane], f"(item4 * {lanes} + {lane})"
                with e.block(""), e.bind(k.parallel, e.flat_text):
                    for stmt in k.body:
                        with e.scope():
                            e.line(f"{out[stmt.buffer]}.{e.lane} = {e.scalar(stmt.value)};")
            e.lane, e.flat_text, e.vectors = None, "item", {}
            for buffer, name in out.items():
                e.line(f"reinterpret_cast<{vector_type(buffer)} *>({e.buffer(buffer)})[item4] = "
                       f"{name};")

    # ---- one block per parallel iteration -------------------------------------------------------
    def reducing(self):
        e, k = self.e, self.k
        total = _loop_size(k.parallel)
        widest = max([_loop_size(s.loops) for s in k.body] + [1])
        block = min(self.limits.threads, max(32, -(-widest // 32) * 32))
        written: set = set()
        with e.block(f"for (long long item = blockIdx.x; item < {total}LL; "
                     f"item += gridDim.x)"), e.bind(k.parallel, "item"):
            for n, stmt in enumerate(k.body):
                if k.serial and n or statement_reads(stmt) & written:
                    e.line("__syncthreads();")
                with e.scope():
                    self.statement(stmt, n)
                if isinstance(stmt, L.Store):
                    written.add(stmt.buffer)
            if k.serial:
                e.line("__syncthreads();")
        return block, 1 if k.serial else self.grid(total)

    def statement(self, stmt, n: int):
        e = self.e
        if isinstance(stmt, L.Reduce):
            return self.reduce(stmt, n)
        if stmt.accumulate and self.k.serial:     # in order, as the loop IR reads
            with e.block("if (threadIdx.x == 0)"):
                self.serial_store(stmt, list(stmt.loops))
            return
        if not stmt.loops:
            with e.block("if (threadIdx.x == 0)"):
                e.store(stmt.buffer, e.index(stmt.offset), stmt.value, stmt.accumulate)
            return
        with e.block(f"for (long long step = threadIdx.x; step < {_loop_size(stmt.loops)}LL; "
                     f"step += blockDim.x)"), e.bind(stmt.loops, "step"):
            e.store(stmt.buffer, e.index(stmt.offset), stmt.value, stmt.accumulate)

    def serial_store(self, stmt, loops):
        e = self.e
        if not loops:
            e.store(stmt.buffer, e.index(stmt.offset), stmt.value, stmt.accumulate)
            return
        (name, extent), rest = loops[0], loops[1:]
        var = self.names(name)
        with e.block(f"for (long long {var} = 0; {var} < {extent}LL; ++{var})"):
            e.env[name] = var
            self.serial_store(stmt, rest)
            del e.env[name]

    def reduce(self, stmt: L.Reduce, n: int):
        """Each thread folds its share of the loops into its own accumulators; the block
        then combines them and every thread gets the results."""
        e = self.e
        accs = []
        for acc in stmt.accumulators:
            c = self.names(acc.name)
            is_arg = acc.kind in ("argmax", "argmin")
            dtype = acc.value.dtype if is_arg else acc.dtype
            ty = f"gc::Arg<{value_type(dtype)}>" if is_arg else value_type(dtype)
            init = (f"{ty}{{{identity(acc.kind, dtype)}, -1LL}}" if is_arg
                    else identity(acc.kind, dtype))
            best = f"{c}_best" if is_arg else c
            e.line(f"// {acc.name} = {acc.kind} over {', '.join(v for v, _ in stmt.loops)}")
            e.line(f"{ty} {best} = {init};")
            accs.append((acc, best, ty, init, dtype))
        size = _loop_size(stmt.loops)
        with e.block(f"for (long long step = threadIdx.x; step < {size}LL; "
                     f"step += blockDim.x)"), e.bind(stmt.loops, "step"):
            for acc, best, _, _, dtype in accs:
                v = cast(e.scalar(acc.value), acc.value.dtype, dtype)
                if acc.kind in ("argmax", "argmin"):
                    e.line(f"{best} = gc::arg_step<{str(acc.kind == 'argmax').lower()}>"
                           f"({best}, {v}, step);")
                elif dtype.is_floating_point and acc.kind in ("sum", "prod"):
                    e.line(f"{best} {'+' if acc.kind == 'sum' else '*'}= {v};")
                else:
                    e.line(f"{best} = gc::{ACCUMULATIONS[acc.kind].combine}({best}, {v});")
        for k, (acc, best, ty, init, dtype) in enumerate(accs):
            scratch = f"scratch{n}_{k}"
            self.shared.append(f"__shared__ {ty} {scratch}[{SHARED_SLOTS}];")
            e.line(f"{best} = gc::block_reduce({best}, {_COMBINE[acc.kind]}, {init}, "
                   f"{scratch});")
            if acc.kind in ("argmax", "argmin"):
                self.arg_index(acc, best, stmt.loops)
                e.accs[acc.name] = (self.names(acc.name), dtypes.int64)
            else:
                e.accs[acc.name] = (best, dtype)

    def arg_index(self, acc, best, loops):
        """The winner's index: its loop variables (from its position), then the
        accumulator's index expression."""
        e = self.e
        c = self.names(acc.name)
        e.line(f"long long {c};")
        with e.block(""):
            e.line(f"const long long at = {best}.at < 0 ? 0 : {best}.at;")
            with e.bind(loops, "at"):
                e.line(f"{c} = {e.index(acc.index) if acc.index is not None else '0'};")

    # ---- matmul ------------------------------------------------------------------------------
    def matmul(self):
        e, k, t = self.e, self.k, self.limits.tile
        ty = value_type(k.dtype)
        a, b = (e.buffer(k.a.buffer), e.buffer(k.b.buffer))
        tiles_m, tiles_n = -(-k.m // t), -(-k.n // t)
        total = math.prod(k.batch) * tiles_m * tiles_n
        zero = literal(0, k.dtype)
        self.shared += [f"__shared__ {ty} a_tile[{t}][{t}];",
                        f"__shared__ {ty} b_tile[{t}][{t}];"]
        e.line(f"const long long ty = threadIdx.x / {t}, tx = threadIdx.x % {t};")
        with e.block(f"for (long long tile = blockIdx.x; tile < {total}LL; tile += gridDim.x)"):
            batch_vars = [(f"b{d}", n) for d, n in enumerate(k.batch)]
            e.line(f"const long long batch = tile / {tiles_m * tiles_n};")
            with e.bind(batch_vars, "batch"):
                e.env["i"], e.env["j"] = "i", "j"
                row = f"tile / {tiles_n}" if tiles_n > 1 else "tile"
                row = f"{row} % {tiles_m} * {t} + ty" if tiles_m > 1 else "ty"
                column = f"tile % {tiles_n} * {t} + tx" if tiles_n > 1 else "tx"
                e.line(f"const long long i = {row};")
                e.line(f"const long long j = {column};")
                e.line(f"const long long a_base = {self.base(k.a, batch_vars)};")
                e.line(f"const long long b_base = {self.base(k.b, batch_vars)};")
                e.line(f"{ty} acc = {zero};")
                with e.block(f"for (long long k0 = 0; k0 < {k.k}LL; k0 += {t})"):
                    e.line(f"a_tile[ty][tx] = i < {k.m} && k0 + tx < {k.k} ? "
                           f"{a}[a_base + i * {k.a.row_stride} + (k0 + tx) * "
                           f"{k.a.col_stride}] : {zero};")
                    e.line(f"b_tile[ty][tx] = k0 + ty < {k.k} && j < {k.n} ? "
                           f"{b}[b_base + (k0 + ty) * {k.b.row_stride} + j * "
                           f"{k.b.col_stride}] : {zero};")
                    e.line("__syncthreads();")
                    e.line(f"const long long depth = {k.k} - k0 < {t} ? {k.k} - k0 : {t};")
                    e.line(f"{ty} partial = {zero};        // summed per tile: rounds less")
                    e.line("for (long long p = 0; p < depth; ++p) "
                           "partial += a_tile[ty][p] * b_tile[p][tx];")
                    e.line("acc += partial;")
                    e.line("__syncthreads();")
                e.accs["acc"] = ("acc", k.dtype)
                with e.block(f"if (i < {k.m} && j < {k.n})"):
                    at = f"(batch * {k.m} + i) * {k.n} + j"
                    for buffer, value in k.stores:
                        e.store(buffer, at, value)
        return t * t, self.grid(total)

    def base(self, operand: L.Operand, batch_vars) -> str:
        terms = [str(operand.offset)] if operand.offset else []
        for (name, _), stride in zip(batch_vars, operand.batch_strides):
            if stride:
                terms.append(f"{self.e.index(L.Var(name))} * {stride}")
        return " + ".join(terms) or "0"


def _comment(text: str) -> str:
    """One IR op as a C++ line comment (a backslash would continue it)."""
    return text.replace("\\", "/")


def render_program(program: L.Program, limits: LaunchLimits = GPU) -> CudaSource:
    """The whole program as one ``.cu`` text, with its kernels' launches.  Long, narrow
    reductions are split in two passes first, so ``CudaSource.program`` may have more
    kernels and buffers than ``program``."""
    program = split_reductions(program, limits.split)
    head = [f"// graphc program {program.name}: CUDA C generated from its loop IR "
            f"({len(program.kernels)} kernels)", prelude()]
    names = Names(reserved=("run", "run_profiled", "graphc_now"))
    kernels, launches = [], []
    for kernel in program.kernels:
        text, launch = KernelRenderer(kernel, program, limits, names(kernel.name)).render()
        kernels.append(text)
        launches.append(launch)
    return CudaSource(program, "\n\n".join(head + kernels) + "\n", kernels, launches, limits)
