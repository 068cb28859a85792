"""Render graphc's loop IR (``graphc.codegen.loops``) to LLVM IR with llvmlite's IR builder.

Every kernel becomes ``void NAME(ptr buffers, i64 start, i64 stop, ptr error_flag)``:
``buffers[slot]`` points at each buffer of the program and [start, stop) is a range of the
outermost parallel loop (outermost of extent > 1; the flattened batch*m rows for a
matmul), so ``entry`` can split a large kernel between two threads.  A program becomes
module whose exported ``void entry(ptr buffers, ptr error_flag)`` runs every kernel in
order, each called with an array of its own buffers' pointers.

Each kernel is rendered into a module of its own, in a canonical form that depends only on
the kernel (its buffers numbered in its own order, its alias scopes named by that order, its
function named after the hash of its text), so the same kernel in two programs, or twice in
one program (the layers of a model), has the same text: the runtime compiles and caches
object code per kernel module (``runtime.load_native``).  A kernel module also carries
the optimisation effort that fits the kernel (``optimisation_level``).

Numerics are numpy's, so there is no global fast-math: the only flag is ``reassoc`` on the
accumulation of float sum/prod reductions, which lets the loop vectorizer keep several
partial sums.  Float sums are added in blocks (``SUM_BLOCKS``): the vectorised loop sums
4096 elements into a fresh partial, partials are added in order into a partial per 2**20
elements, and those into the accumulator, so the error bound grows like 4096 / lanes +
256 + n / 2**20 additions instead of n / lanes (numpy's pairwise summation: 16 +
log2(n / 128)); float32 sums accumulate in float64 (lowering's ``accumulator_dtype``), so
they are within float64 rounding of the exact sum before the one float32 rounding.  A
smaller first block would be more accurate but LLVM then unrolls the block loop fully and
reassociates its partial sums into one dependent chain, which is latency bound (measured
1.5-2x slower).  The matmul accumulates with fused multiply-adds, as BLAS does.

Aliasing: every buffer of a program is its own allocation (inputs are the caller's arrays,
outputs fresh arrays, temporaries disjoint parts of an arena while live), so each is an
LLVM alias scope and every access through a buffer pointer says it aliases no other
buffer of its kernel.  Without that, LLVM must assume a store to one output may change
any other buffer (all pointers come from one array): loops with several outputs would not
vectorize and shared subexpressions would be recomputed after each store.

Errors: ``error_flag`` points at a record ``{i64 code, i64 value}``.  A kernel sets
``code`` (compare-and-swap from 0: the first error wins) to a CheckedIndex's site, with
the out-of-range index it met in ``value``, or to ``-code`` (its position) when it could
not allocate matmul scratch memory; ``loops.Program.error`` turns it into the exception.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import pickle
from contextlib import ExitStack
from dataclasses import dataclass

import llvmlite.ir as ir

from graphc import dtypes
from graphc.targets.cpu.kernel import (I32, I64, KERNEL_TYPE, PTR, VOID, KernelFunction,
                                        ScalarOps,
                                        cast, constant, create_target_machine, declare,
                                        for_range, host_features, i64, imin, new_module,
                                        target_machine, value_type)
from graphc.targets.cpu.matmul import MatmulRenderer
from graphc.targets.cpu.tuning import plan as matmul_plan
from graphc.codegen import loops as L
from graphc.ops import ACCUMULATIONS

__all__ = ["ENTRY", "PARALLEL_WORK", "KernelModule", "RenderedProgram", "alias_scopes",
           "create_target_machine", "host_features", "kernel_extent",
           "kernel_identity", "kernel_module", "optimisation_level", "render_kernel", "render_loop_kernel", "render_program",
           "runs_threaded", "target_machine"]

ENTRY = "entry"

# A kernel runs on two threads when its ``work`` is at least this.  Starting and joining
# a thread (and, for a matmul, its scratch memory) costs 20-50 us on a 2-core VM: two
# threads measured faster from ~400k iterations of an elementwise loop and from ~16M
# multiply-adds of a matmul (256^3).
PARALLEL_WORK = {"loops": 1 << 19, "matmul": 1 << 24}


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


class _Accumulator:
    """One accumulator's slot, initialised to its identity: ``update(into)`` folds the
    next value into ``into`` (its own slot, or a block's partial sum), ``value()`` reads
    the result."""

    def __init__(self, kf: KernelFunction, acc: L.Accumulator):
        b = kf.b
        self.kf, self.acc = kf, acc
        self.is_arg = acc.kind in ("argmax", "argmin")
        self.dtype = acc.value.dtype if self.is_arg else acc.dtype
        self.blocked = acc.kind == "sum" and self.dtype.is_floating_point
        self.slot = kf.alloca(value_type(self.dtype), name=acc.name)
        b.store(self.identity(), self.slot)
        if self.is_arg:
            self.index_slot = kf.alloca(I64, name=f"{acc.name}.index")
            b.store(i64(-1), self.index_slot)

    def identity(self):
        return constant(self.dtype, L.identity(self.acc.kind, self.dtype))

    def update(self, into):
        b, emit, acc, dtype = self.kf.b, self.kf.emit, self.acc, self.dtype
        v = emit.scalar(acc.value)
        best = b.load(into, typ=into.allocated_type)
        if not self.is_arg:
            v = cast(b, v, acc.value.dtype, dtype)
            b.store(_combine(b, acc.kind, best, v, dtype), into)
            return
        at = b.load(self.index_slot, typ=I64)
        take = b.or_(b.icmp_signed("<", at, i64(0)), _better(b, acc.kind, v, best, dtype))
        b.store(b.select(take, v, best), into)
        b.store(b.select(take, emit.index(acc.index), at), self.index_slot)

    def value(self):
        b = self.kf.b
        if self.is_arg:
            return b.load(self.index_slot, typ=I64), dtypes.int64
        return b.load(self.slot, typ=self.slot.allocated_type), self.dtype


def _combine(b, kind, acc, v, dtype):
    """The accumulation's combining scalar op.  Float sums and products carry
    ``reassoc``, which lets the loop vectorizer keep several partial results."""
    combine = ACCUMULATIONS[kind].combine
    if dtype.is_floating_point and combine in ("add", "mul"):
        return (b.fadd if combine == "add" else b.fmul)(acc, v, flags=("reassoc",))
    if dtype is dtypes.bool_ and combine in ("add", "mul"):      # any / all
        return b.or_(acc, v) if combine == "add" else b.and_(acc, v)
    return getattr(ScalarOps(b, dtype, dtype), combine)(acc, v)


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
    accs = [_Accumulator(kf, acc) for acc in stmt.accumulators]
    extents = [extent for _, extent in stmt.loops]
    d = next((d for d in reversed(range(len(extents)))
              if math.prod(extents[d:]) >= SUM_BLOCKS[0]), None)
    if d is None or not any(a.blocked for a in accs):
        with emit.loops(stmt.loops):
            for a in accs:
                a.update(a.slot)
    else:
        with emit.loops(stmt.loops[:d]):
            inner = math.prod(extents[d + 1:])
            steps = [max(1, -(-size // inner)) for size in reversed(SUM_BLOCKS)]
            _blocked_loop(kf, accs, stmt.loops[d], stmt.loops[d + 1:], 0, steps,
                          {a: a.slot for a in accs})
    for a in accs:
        emit.accs[a.acc.name] = a.value


# Float sums are added in blocks (sizes in elements, innermost first; see the module
# docstring): the vectorised loop sums SUM_BLOCKS[0] elements into a fresh partial
# (several partial sums, one per vector lane and unrolled copy: ``reassoc``), each
# partial is added in order to the next level's, and so on up to the accumulator.
SUM_BLOCKS = (4096, 1 << 20)


def _blocked_loop(kf, accs, loop, rest, start, steps, into):
    """Loop ``loop`` = (var, extent) from ``start`` in blocks of ``steps[0]`` iterations
    (``steps``: outermost level first), with the ``rest``
    of the reduction's loops inside; each block of a blocked (float sum) accumulator
    starts a partial from 0 and adds it to ``into[acc]`` when done."""
    b, emit = kf.b, kf.emit
    (name, extent), step = loop, steps[0]
    with for_range(b, start, extent, step=step, name=f"{name}.block{len(steps)}") as first:
        partial = {}
        for a in accs:
            if a.blocked:
                partial[a] = kf.alloca(a.slot.allocated_type, name=f"{a.acc.name}.block")
                b.store(a.identity(), partial[a])
            else:
                partial[a] = into[a]
        stop = imin(b, b.add(first, i64(step)), i64(extent))
        if len(steps) > 1:
            _blocked_loop(kf, accs, (name, stop), rest, first, steps[1:], partial)
        else:
            with for_range(b, first, stop, name=name) as i, emit.bind(name, i), \
                    emit.loops(rest):
                for a in accs:
                    a.update(partial[a])
        for a in accs:
            if a.blocked:
                total = b.load(into[a], typ=a.slot.allocated_type)
                b.store(b.fadd(total, b.load(partial[a], typ=a.slot.allocated_type)), into[a])


def _ranged(parallel) -> int:
    """Which parallel loop the [start, stop) range covers: the outermost one with an
    extent other than 1 (the loops outside it only see index 0)."""
    return next((d for d, (_, extent) in enumerate(parallel) if extent != 1), 0)


def render_loop_kernel(module, kernel: L.LoopKernel, slots: dict, scopes=None) -> ir.Function:
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
    return kf.finish()


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
        plan = matmul_plan(kernel)
        return MatmulRenderer(module, kernel, slots, code, scopes, plan.blocking,
                              plan.blas).render()
    return render_loop_kernel(module, kernel, slots, scopes)


@dataclass(frozen=True)
class KernelModule:
    """One kernel's own LLVM module: its ``text`` defines one exported function,
    ``symbol``, named after a hash of the text (so equal kernels are one symbol), to be
    optimised at ``level`` (``optimisation_level``)."""
    symbol: str
    text: str
    level: int


@dataclass(frozen=True)
class RenderedProgram:
    """A program as LLVM IR modules: ``entry`` (the text of the module defining
    ``entry``, which declares and calls the kernels) and ``kernels``, each distinct
    kernel module once, in order of first use.  ``str()`` is every module's text, for
    dumps."""
    entry: str
    kernels: tuple

    def __str__(self) -> str:
        return "\n".join([self.entry, *(k.text for k in self.kernels)])


# Loops of fewer iterations than this are compiled without the vectorizers (a vector
# loop needs a few trips of 8-16 lanes to pay for its prologue and remainder).  Loops of
# 800 and 1000 elements ran 2-4x slower without them (the quadrant step's kernels, a
# chain of 10 elementwise ops with sin and exp), so the bar is low.
VECTORIZE_WORK = 64
# A matmul whose depth or width is at most this is unrolled: its short loops, unrolled
# whole, run much faster.  A larger one blocks its loops itself: unrolling doubled its
# compile time and it ran no faster (sgemm 1024^3, the GPT step's matmuls).
SHORT_LOOP = 16


def optimisation_level(kernel) -> int:
    """The optimisation level (``runtime.PIPELINES``) that fits ``kernel``: 1 (O1) for
    tiny or serial loops, whose compile time would be most of their cost; 2 (O2 and the
    vectorizers, no unrolling) for matmuls of long loops; 3 (O3) for the other loops and
    matmuls (unrolled, the quadrant step's column sums over 800 rows ran 1.3x faster)."""
    if isinstance(kernel, L.MatmulKernel):
        return 3 if min(kernel.n, kernel.k) <= SHORT_LOOP else 2
    return 1 if kernel.work < VECTORIZE_WORK or kernel.serial else 3


def kernel_buffers(kernel) -> list:
    """The buffers a kernel reads and writes, in its own order (inputs, then outputs)."""
    return list(dict.fromkeys([*kernel.inputs, *kernel.outputs]))


# What a kernel that cannot allocate scratch memory records as its error code (negated):
# one code for every kernel, since a kernel's text may not depend on its position.
SCRATCH_ERROR = 1


def _kernel_scopes(kernel, scopes: dict) -> dict:
    """Each buffer of ``kernel`` -> its alias scope, numbered in the kernel's own order."""
    numbers = {}
    for name in kernel_buffers(kernel):
        numbers.setdefault(scopes[name], len(numbers))
    return {name: str(numbers[scopes[name]]) for name in kernel_buffers(kernel)}


class _Renamed(pickle.Pickler):
    """Pickles a kernel with the strings ``names`` maps (its buffers' and its own name)
    replaced by what they map to, so two kernels pickle alike when one is the other with
    its buffers renamed."""

    def __init__(self, file, names: dict):
        super().__init__(file, protocol=5)
        self.names = names

    def persistent_id(self, obj):
        return self.names.get(obj) if type(obj) is str else None


def kernel_identity(kernel, scopes: dict) -> tuple:
    """What ``kernel_module(kernel, scopes)`` depends on, without the names of the
    kernel and its buffers or its comment (the graph ops it implements, for dumps):
    kernels with equal identities render the same module (the layers of a model), so a
    program renders each once."""
    names = {name: i for i, name in enumerate(kernel_buffers(kernel))}
    names[kernel.name] = "kernel"
    data = io.BytesIO()
    _Renamed(data, names).dump(dataclasses.replace(kernel, comment=[]))
    return data.getvalue(), tuple(_kernel_scopes(kernel, scopes).values())


def kernel_module(kernel, scopes: dict) -> KernelModule:
    """``kernel`` alone in a module, in canonical form: buffer ``i`` of
    ``kernel_buffers(kernel)`` is ``buffers[i]``, alias scopes are numbered in that order
    and the function is named after the text's hash."""
    names = kernel_buffers(kernel)
    module = new_module("kernel")
    fn = render_kernel(module, kernel, {name: i for i, name in enumerate(names)}, SCRATCH_ERROR,
                       _kernel_scopes(kernel, scopes))
    text = str(module).replace(f'@"{fn.name}"', '@"kernel"')
    symbol = f"graphc.kernel.{hashlib.sha256(text.encode()).hexdigest()[:24]}"
    return KernelModule(symbol, text.replace('@"kernel"', f'@"{symbol}"'),
                        optimisation_level(kernel))


def render_program(program: L.Program) -> RenderedProgram:
    """The modules of a whole program: one per distinct kernel, and the entry module's
    ``entry(buffers, error_flag)``, which calls each kernel over its whole range (large
    ones on two threads) with an array of the pointers of its buffers.  ``buffers`` has
    one pointer per ``program.buffers`` entry, in that order."""
    module = new_module(program.name)
    slots = {name: i for i, name in enumerate(program.buffers)}
    scopes = alias_scopes(program)
    entry = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR]), ENTRY)
    buffers, flag = entry.args
    allocas = ir.IRBuilder(entry.append_basic_block("allocas"))
    body = entry.append_basic_block("body")
    b = ir.IRBuilder(body)
    kernels, by_identity = {}, {}
    for kernel in program.kernels:
        identity = kernel_identity(kernel, scopes)
        if identity not in by_identity:
            by_identity[identity] = kernel_module(kernel, scopes)
        rendered = by_identity[identity]
        kernels.setdefault(rendered.symbol, rendered)
        fn = declare(module, rendered.symbol, VOID, KERNEL_TYPE.args)
        own = _own_buffers(b, allocas, buffers, [slots[n] for n in kernel_buffers(kernel)])
        extent = kernel_extent(kernel)
        if runs_threaded(kernel):
            _call_on_two_threads(b, allocas, fn, own, flag, extent)
        else:
            b.call(fn, [own, i64(0), i64(extent), flag])
    b.ret_void()
    allocas.branch(body)
    return RenderedProgram(str(module), tuple(kernels.values()))


def _own_buffers(b, allocas, buffers, slots):
    """A kernel's array of pointers: those of the program's ``buffers[slots[i]]``."""
    own = allocas.alloca(ir.ArrayType(PTR, max(len(slots), 1)))
    for i, slot in enumerate(slots):
        pointer = b.load(b.gep(buffers, [i64(slot)], inbounds=True, source_etype=PTR), typ=PTR)
        b.store(pointer, b.gep(own, [i64(0), i64(i)], inbounds=True))
    return own


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
    """The thread start routine that calls ``fn`` with the arguments in a struct (one
    per kernel function: a program may call one kernel several times)."""
    if f"{fn.name}.worker" in module.globals:
        return module.globals[f"{fn.name}.worker"]
    worker = ir.Function(module, ir.FunctionType(PTR, [PTR]), f"{fn.name}.worker")
    worker.linkage = "internal"
    b = ir.IRBuilder(worker.append_basic_block("entry"))
    fields = [b.load(b.gep(worker.args[0], [ir.Constant(I32, 0), ir.Constant(I32, i)],
                           inbounds=True, source_etype=_WORKER_ARGS), typ=t)
              for i, t in enumerate(_WORKER_ARGS.elements)]
    b.call(fn, fields)
    b.ret(ir.Constant(PTR, None))
    return worker
