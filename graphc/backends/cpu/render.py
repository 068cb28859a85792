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
from graphc.backends.cpu.kernel import (I32, I64, PTR, VOID, KernelFunction, ScalarOps,
                                        cast, constant, create_target_machine, declare,
                                        for_range, host_features, i64, new_module,
                                        target_machine, value_type)
from graphc.backends.cpu.matmul import MatmulRenderer
from graphc.codegen import loops as L
from graphc.ops import ACCUMULATIONS

__all__ = ["ENTRY", "PARALLEL_WORK", "alias_scopes", "create_target_machine", "host_features",
           "kernel_extent", "render_kernel", "render_loop_kernel", "render_program",
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
        return MatmulRenderer(module, kernel, slots, code, scopes).render()
    return render_loop_kernel(module, kernel, slots, scopes)


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
