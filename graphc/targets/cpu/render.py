"""Render graphc's loop IR (``graphc.codegen.loops``) to LLVM IR with llvmlite's IR builder.

Every kernel becomes ``void NAME(ptr buffers, i64 start, i64 stop, ptr error_flag)``:
``buffers[slot]`` points at each buffer of the program and [start, stop) is a range of the
outer parallel loops, joined (``_ranged``; the flattened batch*m rows for a matmul), so
``entry`` can split a large kernel between the threads of libgomp's pool (``threads.py``:
as many as its work pays for, at most ``graphc_num_threads``, read on each call).  A
program becomes a module whose exported ``void entry(ptr buffers, ptr error_flag)`` runs
every kernel in order, each called with an array of its own buffers' pointers; a second
module's ``entry_profiled(ptr buffers, ptr error_flag, ptr times)`` does the same with
each kernel's time stored in ``times`` (``graphc.profiling``).

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
they are within float64 rounding of the exact sum before the one float32 rounding; their
loops ask for float32's vector width (``llvm.loop.vectorize.width``), else LLVM takes
the doubles' and the summands' math (a softmax's exp) runs on half-full vectors.  A
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
from graphc.targets.cpu.kernel import (I8, I32, I64, KERNEL_TYPE, PTR, VOID, KernelFunction,
                                        ScalarOps, cast, constant, create_target_machine, declare,
                                        for_range, host_features, i64, imin, new_module,
                                        target_machine, value_type, vector_bytes)
from graphc.targets.cpu import threads
from graphc.targets.cpu.blas import LOCAL_THREADS
from graphc.targets.cpu.collectives import MPICalls, uses_mpi
from graphc.targets.cpu.matmul import MatmulRenderer, uses_blas
from graphc.targets.cpu.tuning import plan as matmul_plan
from graphc.codegen import loops as L
from graphc.ops import ACCUMULATIONS
from graphc.ops.collective import world

__all__ = ["ENTRY", "ENTRY_PROFILED", "KernelModule", "RenderedProgram", "alias_scopes",
           "create_target_machine", "host_features", "kernel_extent", "kernel_identity",
           "kernel_module", "optimisation_level", "render_kernel", "render_loop_kernel",
           "render_program", "runs_threaded", "target_machine", "team_size_cap"]

ENTRY = "entry"
ENTRY_PROFILED = "entry_profiled"

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
            width = _widened_sum_width(accs)
            if width and not rest:
                _vectorize_width(b.module, i.incomings[-1][1].terminator, width)
        for a in accs:
            if a.blocked:
                total = b.load(into[a], typ=a.slot.allocated_type)
                b.store(b.fadd(total, b.load(partial[a], typ=a.slot.allocated_type)), into[a])


def _widened_sum_width(accs) -> int | None:
    """The vector width (elements) of the values of a loop whose float sums accumulate in
    a wider type (float32 into float64): LLVM vectorises such a loop at the width of the
    accumulator (8 doubles per 512-bit vector), so everything else in it, say the exp of
    a softmax's sum, runs on half-full vectors.  None when no sum widens."""
    widths = [vector_bytes() // a.acc.value.args[0].dtype.itemsize for a in accs
              if a.blocked and isinstance(a.acc.value, L.Op) and a.acc.value.op == "cast"
              and a.acc.value.args[0].dtype.itemsize < a.dtype.itemsize]
    return max(widths) if widths else None


def _vectorize_width(module, latch, width: int):
    """Ask the loop vectorizer for ``width`` lanes on the loop whose back edge is
    ``latch`` (``llvm.loop.vectorize.width``; the loop ID is a self-referencing node)."""
    hint = module.add_metadata(["llvm.loop.vectorize.width", ir.Constant(I32, width)])
    loop_id = ir.MDValue(module, [], name=str(len(module.metadata)))
    loop_id.operands = (loop_id, hint)
    latch.set_metadata("llvm.loop", loop_id)


# The [start, stop) range of a loop kernel joins parallel loops (as OpenMP's ``collapse``)
# until it has this many iterations, so a kernel over (2, 512, 512) has 1024 rows for the
# pool to share rather than 2.
COLLAPSED_RANGE = 256


def _ranged(kernel: L.LoopKernel) -> tuple[int, int]:
    """Which parallel loops ``d..e-1`` the [start, stop) range covers: from the outermost
    with an extent other than 1 (the loops outside it only see index 0), joined with the
    loops inside it until they have ``COLLAPSED_RANGE`` iterations; a body without loops
    of its own keeps its innermost parallel loop out of the range, for the vectorizer."""
    parallel = kernel.parallel or (("p", 1),)
    d = next((d for d, (_, extent) in enumerate(parallel) if extent != 1), 0)
    last = len(parallel) if any(stmt.loops for stmt in kernel.body) else len(parallel) - 1
    e, size = d + 1, parallel[d][1]
    while e < last and size < COLLAPSED_RANGE:
        size *= parallel[e][1]
        e += 1
    return d, e


def render_loop_kernel(module, kernel: L.LoopKernel, slots: dict, scopes=None) -> ir.Function:
    kf = KernelFunction(module, kernel.name, slots, scopes)
    parallel = kernel.parallel or (("p", 1),)
    d, e = _ranged(kernel)
    b = kf.b
    with ExitStack() as stack:
        for name, _ in parallel[:d]:
            stack.enter_context(kf.emit.bind(name, i64(0)))
        r = stack.enter_context(for_range(b, kf.start, kf.stop, name=parallel[d][0]))
        ranged = parallel[d:e]
        for i, (name, extent) in enumerate(ranged):      # r's digits, outermost first
            stride = math.prod(n for _, n in ranged[i + 1:])
            index = b.udiv(r, i64(stride)) if stride > 1 else r
            stack.enter_context(kf.emit.bind(name, b.urem(index, i64(extent)) if i else index))
        stack.enter_context(kf.emit.loops(parallel[e:]))
        for stmt in kernel.body:
            with kf.emit.scope():
                _render_statement(kf, stmt)
    return kf.finish()


# ---- the program ---------------------------------------------------------------------------------
def kernel_extent(kernel) -> int:
    """Size of the range [0, extent) a kernel's function is called over."""
    if isinstance(kernel, L.MatmulKernel):
        return math.prod(kernel.batch) * kernel.m
    d, e = _ranged(kernel)
    return math.prod(extent for _, extent in kernel.parallel[d:e])


def _kind(kernel) -> str | None:
    """The kernel's kind for threading (``threads.MIN_WORK_PER_THREAD``), None if serial."""
    if isinstance(kernel, L.MatmulKernel):
        return "matmul"
    return None if kernel.serial else "loops"


def team_size_cap(kernel) -> int:
    """The most threads a kernel may use (1: it runs on the calling thread)."""
    kind = _kind(kernel)
    if kind is None:
        return 1
    return threads.team_size_cap(kernel_extent(kernel), kernel.work, kind)


def runs_threaded(kernel) -> bool:
    """Whether ``entry`` may split the kernel's range between the threads of libgomp's
    pool: the one predicate deciding it (a kernel that threads itself answers False)."""
    return team_size_cap(kernel) >= 2 and threads.openmp() is not None


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
    ``entry``, which declares and calls the kernels), ``kernels``, each distinct kernel
    module once, in order of first use, and ``profiled``, the module defining
    ``entry_profiled``.  ``str()`` is the text of the modules a program runs (the entry's
    and the kernels'), for dumps."""
    entry: str
    kernels: tuple
    profiled: str

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
    """The modules of a whole program: one per distinct kernel, the entry module, whose
    ``entry(buffers, error_flag)`` calls each kernel over its whole range (large ones
    split between threads) with an array of the pointers of its buffers (``buffers`` has
    one pointer per ``program.buffers`` entry, in that order), and the profiled entry
    module, whose ``entry_profiled(buffers, error_flag, times)`` makes the same calls
    with the monotonic clock read around each (``_Clock``), for ``graphc.profiling``.
    Two modules, so ``entry`` has no profiling code at all and the profiled one is
    compiled only when profiling first runs the program (it would double the entry's
    compile time)."""
    scopes = alias_scopes(program)
    by_identity, kernels = {}, {}
    texts = []
    for timed in (False, True):
        module = new_module(program.name)
        _render_entry(module, program, scopes, by_identity, kernels, timed)
        texts.append(str(module))
    return RenderedProgram(texts[0], tuple(kernels.values()), texts[1])


def _render_entry(module, program: L.Program, scopes, by_identity: dict, kernels: dict,
                  timed: bool) -> None:
    """Add ``entry`` (or, ``timed``, ``entry_profiled``) to ``module``; ``by_identity``
    and ``kernels`` collect the kernel modules it calls (shared by both functions)."""
    slots = {name: i for i, name in enumerate(program.buffers)}
    params = [PTR, PTR, PTR] if timed else [PTR, PTR]
    entry = ir.Function(module, ir.FunctionType(VOID, params), ENTRY_PROFILED if timed else ENTRY)
    buffers, flag = entry.args[:2]
    allocas = ir.IRBuilder(entry.append_basic_block("allocas"))
    body = entry.append_basic_block("body")
    b = ir.IRBuilder(body)
    clock = _Clock(b, allocas, entry.args[2]) if timed else None
    # Kernels that call numpy's BLAS run it on one thread each (graphc's pool splits
    # them): OpenBLAS's setting is one process-wide value in numpy's wheels, so it is set
    # here, before any kernel runs, and restored after the last.
    blas_threads = None
    if any(isinstance(k, L.MatmulKernel) and uses_blas(k, matmul_plan(k).blas)
           for k in program.kernels):
        blas_threads = declare(module, LOCAL_THREADS, I32, [I32])
        blas_before = b.call(blas_threads, [ir.Constant(I32, 1)])
    mpi = (MPICalls(module, allocas, program, world().abi) if uses_mpi(program) else None)
    for position, kernel in enumerate(program.kernels):
        started = clock.read() if timed else None
        if isinstance(kernel, L.Collective):
            mpi.start(b, kernel, _pointer(b, buffers, slots[kernel.send]),
                      _pointer(b, buffers, slots[kernel.recv]), flag)
        elif isinstance(kernel, L.Wait):
            mpi.wait(b, kernel, flag)
        else:
            _call_kernel(b, allocas, buffers, flag, kernel, slots,
                         _kernel_symbol(kernel, scopes, by_identity, kernels))
        if timed:
            clock.record(position, started)
        if mpi is not None and not isinstance(kernel, (L.Collective, L.Wait)):
            mpi.progress(b)
    if blas_threads is not None:
        b.call(blas_threads, [blas_before])
    b.ret_void()
    allocas.branch(body)


def _kernel_symbol(kernel, scopes, by_identity: dict, kernels: dict) -> str:
    """The symbol of ``kernel``'s module, rendered once per identity."""
    identity = kernel_identity(kernel, scopes)
    if identity not in by_identity:
        by_identity[identity] = kernel_module(kernel, scopes)
    rendered = by_identity[identity]
    kernels.setdefault(rendered.symbol, rendered)
    return rendered.symbol


def _call_kernel(b, allocas, buffers, flag, kernel, slots: dict, symbol: str) -> None:
    """Call ``kernel`` over its whole range, on a team of threads when it is large."""
    fn = declare(b.module, symbol, VOID, KERNEL_TYPE.args)
    own = _own_buffers(b, allocas, buffers, [slots[n] for n in kernel_buffers(kernel)])
    extent = kernel_extent(kernel)
    if runs_threaded(kernel):
        _call_on_team(b, fn, own, flag, _team_args(allocas, b, own, flag), extent,
                      team_size_cap(kernel), CHUNKS_PER_THREAD[_kind(kernel)])
    else:
        b.call(fn, [own, i64(0), i64(extent), flag])


class _Clock:
    """The clock of ``entry_profiled``: libc's ``clock_gettime(CLOCK_MONOTONIC)``, read
    before and after each kernel, and the nanoseconds between stored in
    ``times[position]``.  A monotonic clock in nanoseconds needs no calibration (the
    cycle counter, ``llvm.readcyclecounter``, would need its frequency measured, and is
    not comparable between cores on every machine), and glibc serves it from the vDSO,
    without a system call: about 20 ns a read, next to kernels of microseconds."""

    def __init__(self, b, allocas, times):
        self.b, self.times = b, times
        self.gettime = declare(b.module, "clock_gettime", I32, [I32, PTR])
        self.spec = allocas.alloca(ir.LiteralStructType([I64, I64]), name="timespec")

    def read(self):
        """Now, in nanoseconds."""
        b = self.b
        b.call(self.gettime, [ir.Constant(I32, CLOCK_MONOTONIC), self.spec])
        seconds, nanoseconds = (
            b.load(b.gep(self.spec, [ir.Constant(I32, 0), ir.Constant(I32, i)], inbounds=True),
                   typ=I64) for i in range(2))
        return b.add(b.mul(seconds, i64(1_000_000_000)), nanoseconds)

    def record(self, position: int, started) -> None:
        """``times[position] = now - started``."""
        b = self.b
        b.store(b.sub(self.read(), started),
                b.gep(self.times, [i64(position)], inbounds=True, source_etype=I64))


CLOCK_MONOTONIC = 1             # Linux's clock id (<time.h>)


def _pointer(b, buffers, slot: int):
    """The pointer of the program's buffer ``slot``."""
    return b.load(b.gep(buffers, [i64(slot)], inbounds=True, source_etype=PTR), typ=PTR)


def _own_buffers(b, allocas, buffers, slots):
    """A kernel's array of pointers: those of the program's ``buffers[slots[i]]``."""
    own = allocas.alloca(ir.ArrayType(PTR, max(len(slots), 1)))
    for i, slot in enumerate(slots):
        b.store(_pointer(b, buffers, slot), b.gep(own, [i64(0), i64(i)], inbounds=True))
    return own


# ---- threads: libgomp's pool (see threads.py) -----------------------------------------------
_TEAM_ARGS = ir.LiteralStructType([PTR, PTR])          # {buffers, error_flag}


def _team_args(allocas, b, buffers, flag):
    """The struct a team function receives: the kernel's buffers and the error flag."""
    args = allocas.alloca(_TEAM_ARGS, name="team.args")
    for i, value in enumerate((buffers, flag)):
        b.store(value, b.gep(args, [ir.Constant(I32, 0), ir.Constant(I32, i)], inbounds=True))
    return args


def _call_on_team(b, fn, buffers, flag, args, extent: int, cap: int, chunks: int):
    """Call ``fn`` over [0, extent) on ``min(graphc_num_threads, cap)`` threads of
    libgomp's pool (``GOMP_parallel``; the calling thread is one of them), or directly
    when that is one thread."""
    module = b.module
    count = module.globals.get(threads.NUM_THREADS_SYMBOL)
    if count is None:
        count = ir.GlobalVariable(module, I32, threads.NUM_THREADS_SYMBOL)
    parallel = declare(module, "GOMP_parallel", VOID, [PTR, PTR, I32, I32])
    n = imin(b, b.load(count, typ=I32), ir.Constant(I32, cap))
    with b.if_else(b.icmp_signed(">", n, ir.Constant(I32, 1))) as (team, alone):
        with team:
            b.call(parallel, [_team_function(module, fn, extent, cap, chunks), args, n,
                              ir.Constant(I32, 0)])
        with alone:
            b.call(fn, [buffers, i64(0), i64(extent), flag])


# Each thread of a team takes chunks of the range from libgomp's dynamic schedule, about
# this many per thread (never more than the kernel's cap, so a chunk is worth a thread):
# on a shared machine a thread whose core is busy takes fewer chunks instead of making
# the whole team wait for its fixed share.  A matmul packs all of B for each chunk, so
# its chunks are one per thread.
CHUNKS_PER_THREAD = {"loops": 4, "matmul": 1}


def _team_function(module, fn, extent: int, cap: int, chunks_per_thread: int) -> ir.Function:
    """What each thread of the team runs: ``#pragma omp for schedule(dynamic, chunk)
    nowait`` over [0, extent), calling ``fn`` on each chunk it takes, with ``extent /
    min(chunks_per_thread * threads, cap)`` indices per chunk."""
    name = f"{fn.name}.team{extent}"
    if name in module.globals:                  # the same kernel, called again
        return module.globals[name]
    team = ir.Function(module, ir.FunctionType(VOID, [PTR]), name)
    team.linkage = "internal"
    b = ir.IRBuilder(team.append_basic_block("entry"))
    buffers, flag = (b.load(b.gep(team.args[0], [ir.Constant(I32, 0), ir.Constant(I32, i)],
                                  inbounds=True, source_etype=_TEAM_ARGS), typ=PTR)
                     for i in range(2))
    first, last = b.alloca(I64, name="chunk.start"), b.alloca(I64, name="chunk.stop")
    n = b.sext(b.call(declare(module, "omp_get_num_threads", I32, []), []), I64)
    chunks = imin(b, b.mul(n, i64(chunks_per_thread)), i64(cap))
    size = b.sdiv(b.add(i64(extent), b.sub(chunks, i64(1))), chunks)
    start = declare(module, "GOMP_loop_dynamic_start", I8, [I64] * 4 + [PTR, PTR])
    next_ = declare(module, "GOMP_loop_dynamic_next", I8, [PTR, PTR])
    taken = b.call(start, [i64(0), i64(extent), i64(1), size, first, last])
    loop, done = team.append_basic_block("chunk"), team.append_basic_block("done")
    b.cbranch(b.icmp_unsigned("!=", taken, ir.Constant(I8, 0)), loop, done)
    b.position_at_end(loop)
    b.call(fn, [buffers, b.load(first, typ=I64), b.load(last, typ=I64), flag])
    more = b.call(next_, [first, last])
    b.cbranch(b.icmp_unsigned("!=", more, ir.Constant(I8, 0)), loop, done)
    b.position_at_end(done)
    b.call(declare(module, "GOMP_loop_end_nowait", VOID, []), [])
    b.ret_void()
    return team
