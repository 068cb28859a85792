"""Render graphc's loop IR (``graphc.codegen.loops``) to LLVM IR with llvmlite's IR builder.

Every kernel becomes ``void NAME(ptr buffers, i64 start, i64 stop, ptr error_flag)``:
``buffers[slot]`` points at each buffer of the program and [start, stop) is a range of the
outer parallel loops, joined (``_ranged``; the flattened batch*m rows for a matmul), so
``entry`` can split a large kernel between the threads of libgomp's pool (``threads.py``:
as many as its work pays for, at most ``graphc_num_threads``, read on each call).  A
program becomes one module whose exported ``void entry(ptr buffers, ptr error_flag)``
runs every kernel in order.

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

import math
from contextlib import ExitStack

import llvmlite.ir as ir

from graphc import dtypes
from graphc.targets.cpu.kernel import (I8, I32, I64, PTR, VOID, KernelFunction, ScalarOps,
                                        cast, constant, create_target_machine, declare,
                                        for_range, host_features, i64, imin, new_module,
                                        target_machine, value_type, vector_bytes)
from graphc.targets.cpu import threads
from graphc.targets.cpu.matmul import MatmulRenderer
from graphc.targets.cpu.tuning import plan as matmul_plan
from graphc.codegen import loops as L
from graphc.ops import ACCUMULATIONS

__all__ = ["ENTRY", "alias_scopes", "create_target_machine", "host_features",
           "kernel_extent", "render_kernel", "render_loop_kernel", "render_program",
           "runs_threaded", "target_machine", "team_size_cap"]

ENTRY = "entry"

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


def render_program(program: L.Program) -> ir.Module:
    """The module of a whole program: its kernels and ``entry(buffers, error_flag)``,
    which calls each over its whole range, large ones split between threads.
    ``buffers`` has one pointer per ``program.buffers`` entry, in that order."""
    module = new_module(program.name)
    slots = {name: i for i, name in enumerate(program.buffers)}
    scopes = alias_scopes(program)
    entry = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR]), ENTRY)
    buffers, flag = entry.args
    b = ir.IRBuilder(entry.append_basic_block("body"))
    team_args = None
    for code, kernel in enumerate(program.kernels, 1):
        fn = render_kernel(module, kernel, slots, code, scopes)
        extent = kernel_extent(kernel)
        if runs_threaded(kernel):
            if team_args is None:
                team_args = _team_args(b, buffers, flag)
            _call_on_team(b, fn, buffers, flag, team_args, extent, team_size_cap(kernel),
                          CHUNKS_PER_THREAD[_kind(kernel)])
        else:
            b.call(fn, [buffers, i64(0), i64(extent), flag])
    b.ret_void()
    return module


# ---- threads: libgomp's pool (see threads.py) -----------------------------------------------
_TEAM_ARGS = ir.LiteralStructType([PTR, PTR])          # {buffers, error_flag}


def _team_args(b, buffers, flag):
    """The struct every team function receives: the program's buffers and error flag."""
    args = b.alloca(_TEAM_ARGS, name="team.args")
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
    team = ir.Function(module, ir.FunctionType(VOID, [PTR]), f"{fn.name}.team")
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
