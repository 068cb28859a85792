"""The loop IR: what a fused kernel is, shared by every code-generating backend.

A kernel is loops over an index space with strided index arithmetic, loads, a scalar
expression tree, reduction accumulators and stores.  Backends render it (LLVM IR for
the CPU, CUDA C for GPUs); nothing here knows about either.

Conventions
-----------
- Buffers are flat, contiguous arrays named by strings; an offset is in *elements*.
- Index expressions are int64 trees of ``Var``, ``IConst`` and ``IOp``.
- Scalar expressions carry a ``DType``; their ``op`` names come from the primitive
  registry's elementwise ops (``exp``, ``add``, ``where``...), plus ``cast``.
- A ``LoopKernel`` runs ``for p in parallel: body``; the body is a sequence of
  ``Reduce`` and ``Store`` statements, each with its own inner loops.  After a
  ``Reduce``, its accumulators are readable (``Acc``) by later statements of the same
  parallel iteration.  Iterations of the parallel loops are independent (backends may
  split them across threads or blocks), unless ``kernel.serial`` is set.
- A ``MatmulKernel`` is a batched C = A @ B whose stores (the fused epilogue) are
  expressions over the accumulator (``Acc("acc")``) and the output indices.
- A ``Collective`` starts a reduction (or broadcast) across processes of one buffer into
  another without waiting for it; its ``Wait``, placed before the first kernel that reads the
  result, finishes it.  Kernels between the two run while the data travels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from graphc.dtypes import DType
from graphc.ops import ACCUMULATIONS
from graphc.ops.movement import out_of_bounds


# ---- index expressions (int64) ---------------------------------------------------------------
@dataclass(frozen=True)
class Var:
    """A loop variable."""
    name: str


@dataclass(frozen=True)
class IConst:
    value: int


@dataclass(frozen=True)
class IOp:
    """Index arithmetic: ``op`` is one of ``INDEX_OPS``."""
    op: str
    a: object
    b: object


@dataclass(frozen=True)
class IndexOp:
    """The meaning of an index op, defined once for every stage: ``fn``, its value on
    Python ints (folding, the loop IR evaluator), and ``infix``, its C operator (the
    printed loop IR, CUDA C; None: written as a call).  Operands are non-negative where
    floordiv and mod are used, so C's truncating ``/`` and ``%`` agree with Python's."""
    fn: Callable
    infix: str | None


INDEX_OPS = {
    "add": IndexOp(lambda a, b: a + b, "+"), "sub": IndexOp(lambda a, b: a - b, "-"),
    "mul": IndexOp(lambda a, b: a * b, "*"),
    "floordiv": IndexOp(lambda a, b: a // b if b else 0, "/"),
    "mod": IndexOp(lambda a, b: a % b if b else 0, "%"),
    "min": IndexOp(min, None), "max": IndexOp(max, None),
    "lt": IndexOp(lambda a, b: int(a < b), "<"), "le": IndexOp(lambda a, b: int(a <= b), "<="),
    "eq": IndexOp(lambda a, b: int(a == b), "=="),
    "and": IndexOp(lambda a, b: int(bool(a) and bool(b)), "&&"),
}


# ---- scalar expressions ----------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    """``buffer[offset]``."""
    buffer: str
    offset: object
    dtype: DType


@dataclass(frozen=True)
class Const:
    value: object
    dtype: DType


@dataclass(frozen=True)
class Op:
    """An elementwise primitive applied to scalar operands: ``op`` is the primitive's
    name (``add``, ``exp``, ``where``, ``lt``, ...) or ``cast``; ``dtype`` is the
    result's."""
    op: str
    args: tuple
    dtype: DType


@dataclass(frozen=True)
class IndexValue:
    """An index expression used as a scalar of ``dtype`` (iota-like values)."""
    index: object
    dtype: DType


@dataclass(frozen=True)
class Site:
    """Where generated code can fail at run time, so the runtime can say what PyTorch
    says plus graphc's op and the user's line: an index read from data (``axis``,
    ``size``) out of range, or (``size`` None) an integer divisor that is zero."""
    op: str
    source: str | None
    axis: int = 0
    size: int | None = None

    def error(self, value: int) -> Exception:
        """The exception for a run that met ``value`` here."""
        if self.size is None:
            where = f" ({self.source})" if self.source else ""
            return RuntimeError(f"ZeroDivisionError: {self.op}: integer division by "
                                f"zero{where}")
        return out_of_bounds(self.op, value, self.axis, self.size, self.source)


@dataclass(frozen=True)
class CheckedIndex:
    """A scalar integer ``value`` used as an index into a dimension of ``size``: it is
    clamped into [0, size) and an out-of-range value raises the kernel's error flag with
    ``site`` (a 1-based position in ``Program.sites``) and the value, so generated code
    never reads or writes out of bounds.  It is an index expression."""
    value: object
    size: int
    site: int


@dataclass(frozen=True)
class NonZero:
    """An integer divisor: its ``value``, except that a zero records ``site`` in the
    kernel's error record and becomes 1, so a division never traps.  A scalar
    expression."""
    value: object
    site: int

    @property
    def dtype(self):
        return self.value.dtype


@dataclass(frozen=True)
class Acc:
    """The result of accumulator ``name`` of an earlier ``Reduce`` in this kernel."""
    name: str
    dtype: DType


@dataclass(frozen=True)
class Uniform:
    """Counter-based uniform random number in [0, 1): hash of (seed, counter), exactly
    as ``graphc.ops.random`` computes it."""
    seed: object        # scalar int64 expression (a Load of the seed buffer)
    counter: object     # index expression
    dtype: DType


# ---- statements and kernels --------------------------------------------------------------------
@dataclass(frozen=True)
class Accumulator:
    """One reduction: ``kind`` is one of ``graphc.ops.ACCUMULATIONS`` (``sum``, ``prod``,
    ``max``, ``min``, ``argmax``, ``argmin``); ``value`` is evaluated for each point of the Reduce's loops.  For the
    arg kinds ``index`` is the candidate's index (first occurrence wins ties) and the
    accumulator's value (``Acc``) is that int64 index."""
    name: str
    kind: str
    value: object
    dtype: DType
    index: object = None


def identity(kind: str, dtype: DType):
    """The value an accumulator of ``kind`` starts from (and that leaves it unchanged),
    as a Python number of ``dtype``."""
    return ACCUMULATIONS[kind].identity(dtype)


@dataclass(frozen=True)
class Reduce:
    loops: tuple            # ((var name, extent), ...) outermost first
    accumulators: tuple


@dataclass(frozen=True)
class Store:
    """For each point of ``loops``: ``buffer[offset] = value`` (or ``+=`` when
    ``accumulate``; kernels with accumulating stores to overlapping places are serial)."""
    loops: tuple
    buffer: str
    offset: object
    value: object
    accumulate: bool = False


@dataclass
class LoopKernel:
    name: str
    parallel: tuple         # ((var name, extent), ...) outermost first
    body: list              # Reduce and Store statements, in order
    inputs: list            # buffer names read
    outputs: list           # buffer names written
    comment: list = field(default_factory=list)    # the IR ops this kernel implements
    serial: bool = False

    @property
    def work(self) -> int:
        """Rough number of scalar loop iterations (for threading decisions)."""
        n = 1
        for _, extent in self.parallel:
            n *= extent
        inner = sum(_loop_size(s.loops) for s in self.body) or 1
        return n * inner


@dataclass
class Operand:
    """A matmul operand: ``buffer`` viewed with ``batch_strides`` (one per batch dim of
    the output; 0 broadcasts) and the strides of its two matrix dims, all in elements."""
    buffer: str
    batch_strides: tuple
    row_stride: int
    col_stride: int
    offset: int = 0


@dataclass
class MatmulKernel:
    """``acc = sum_k a[b..., i, k] * b[b..., k, j]``, then for each ``(buffer, value)`` in
    ``stores``: ``buffer[b..., i, j] = value`` with the buffer contiguous of shape
    batch + (m, n).  A store's value (the fused epilogue) reads ``Acc("acc", dtype)`` and
    the loop variables ``b0, b1, ...``, ``i``, ``j``, and may load other buffers; the
    plain product is ``stores=[(out, Acc("acc", dtype))]``."""
    name: str
    batch: tuple
    m: int
    n: int
    k: int
    a: Operand
    b: Operand
    dtype: DType
    stores: list
    inputs: list
    outputs: list
    comment: list = field(default_factory=list)

    @property
    def work(self) -> int:
        n = self.m * self.n * self.k
        for d in self.batch:
            n *= d
        return n


@dataclass
class Collective:
    """Start ``recv = all_reduce(send)`` over the process group (``call`` "all_reduce",
    ``op``: one of ``graphc.ops.collective.REDUCTIONS``), or ``recv = broadcast(send)``
    from rank ``root`` (``call`` "broadcast"), on ``count`` elements of ``dtype``, as
    request ``slot`` of the program.  Until its ``Wait``, ``send`` must not change and
    ``recv`` not be read."""
    name: str
    call: str
    op: str | None
    root: int | None
    send: str
    recv: str
    count: int
    dtype: DType
    slot: int
    comment: list = field(default_factory=list)

    @property
    def what(self) -> str:
        """``all_reduce<sum>``, ``broadcast<src=0>``."""
        return f"{self.call}<{self.op if self.call == 'all_reduce' else f'src={self.root}'}>"

    def describe(self) -> str:
        """``all_reduce<sum>(f32[12])``: what ranks must agree on."""
        return f"{self.what}({self.dtype.short}[{self.count}])"

    @property
    def inputs(self) -> list:
        return [self.send]

    @property
    def outputs(self) -> list:
        return [self.recv]

    work = 0


@dataclass
class Wait:
    """Finish request ``slot`` (the ``Collective`` that is given): ``recv`` then holds
    the result, and ``send`` is free.  Both are its inputs, so the memory plan keeps
    them for the whole flight."""
    name: str
    collective: Collective

    @property
    def slot(self) -> int:
        return self.collective.slot

    @property
    def inputs(self) -> list:
        return [self.collective.send, self.collective.recv]

    outputs: tuple = ()
    comment: tuple = ()
    work = 0


def _loop_size(loops) -> int:
    n = 1
    for _, extent in loops:
        n *= extent
    return n


@dataclass
class BufferInfo:
    name: str
    dtype: DType
    size: int                # elements
    kind: str                # "input", "output", "constant", "temp"


MPI_ERROR = -2          # the error code of a failed MPI call (``Program.error``)


@dataclass
class Program:
    """A whole compiled graph: buffers and kernels in execution order.

    ``inputs``/``outputs`` list buffer names in the graph's order (an output may also be
    an input or a constant: the runtime copies it).  ``constants`` maps buffer names to
    arrays.  ``arena`` maps temporary buffers to element offsets in one scratch block per
    dtype (the memory plan); ``arena_sizes`` gives each block's size in elements.
    """
    name: str
    buffers: dict
    kernels: list
    inputs: list
    outputs: list
    constants: dict
    arena: dict = field(default_factory=dict)
    arena_sizes: dict = field(default_factory=dict)
    sites: list = field(default_factory=list)     # loops.Site of each CheckedIndex.site

    def error(self, code: int, value: int) -> Exception:
        """The exception for a kernel's error record: ``code`` > 0 is a site (and
        ``value`` what it met), ``MPI_ERROR`` an MPI call that failed (``value``: its
        error code), other codes < 0 a kernel that could not allocate scratch memory (not
        which: kernels are compiled and cached apart from their programs)."""
        if code > 0:
            return self.sites[code - 1].error(value)
        if code == MPI_ERROR:
            return RuntimeError(f"an MPI call of compiled program {self.name} failed with "
                                f"MPI error code {value}")
        return MemoryError(f"a kernel of compiled program {self.name} could not allocate "
                           f"its scratch memory")


# ---- printing ------------------------------------------------------------------------------------
def format_expr(e) -> str:
    """Readable C-like text of an index or scalar expression."""
    if isinstance(e, Var):
        return e.name
    if isinstance(e, IConst):
        return str(e.value)
    if isinstance(e, IOp):
        infix = INDEX_OPS[e.op].infix
        if infix is not None:
            return f"({format_expr(e.a)} {infix} {format_expr(e.b)})"
        return f"{e.op}({format_expr(e.a)}, {format_expr(e.b)})"
    if isinstance(e, Load):
        return f"{e.buffer}[{format_expr(e.offset)}]"
    if isinstance(e, Const):
        return repr(e.value)
    if isinstance(e, Op):
        args = ", ".join(format_expr(a) for a in e.args)
        return f"{e.op}<{e.dtype.short}>({args})" if e.op == "cast" else f"{e.op}({args})"
    if isinstance(e, IndexValue):
        return f"{e.dtype.short}({format_expr(e.index)})"
    if isinstance(e, CheckedIndex):
        return f"checked({format_expr(e.value)}, {e.size}, site={e.site})"
    if isinstance(e, NonZero):
        return f"nonzero({format_expr(e.value)}, site={e.site})"
    if isinstance(e, Acc):
        return e.name
    if isinstance(e, Uniform):
        return f"uniform({format_expr(e.seed)}, {format_expr(e.counter)})"
    raise TypeError(f"not a loop IR expression: {e!r}")


def _loop_lines(loops, indent):
    return [f"{'  ' * (indent + i)}for {name} in 0..{extent}:"
            for i, (name, extent) in enumerate(loops)]


def format_kernel(k) -> str:
    if isinstance(k, Collective):
        return (f"start {k.name}: {k.recv} = {k.what}({k.send}) "
                f"[{k.count} x {k.dtype.name}] as request {k.slot}")
    if isinstance(k, Wait):
        return f"wait {k.name}: request {k.slot} ({k.collective.recv} ready)"
    lines = [f"kernel {k.name}({', '.join(k.inputs)}) -> ({', '.join(k.outputs)})"]
    lines += [f"  # {c}" for c in k.comment]
    if isinstance(k, MatmulKernel):
        a, b = k.a, k.b
        lines.append(f"  matmul batch={k.batch} m={k.m} n={k.n} k={k.k}: "
                     f"acc = sum_p {a.buffer}[{a.offset} + i*{a.row_stride} + p*{a.col_stride}]"
                     f" * {b.buffer}[{b.offset} + p*{b.row_stride} + j*{b.col_stride}]")
        for name, value in k.stores:
            lines.append(f"    {name}[b, i, j] = {format_expr(value)}")
        return "\n".join(lines)
    lines += _loop_lines(k.parallel, 1)
    depth = 1 + len(k.parallel)
    if k.serial:
        lines.append("  (serial)")
    for s in k.body:
        lines += _loop_lines(s.loops, depth)
        pad = "  " * (depth + len(s.loops))
        if isinstance(s, Store):
            op = "+=" if s.accumulate else "="
            lines.append(f"{pad}{s.buffer}[{format_expr(s.offset)}] {op} {format_expr(s.value)}")
        else:
            for acc in s.accumulators:
                at = f" at {format_expr(acc.index)}" if acc.index is not None else ""
                lines.append(f"{pad}{acc.name} = {acc.kind}({format_expr(acc.value)}{at})")
    return "\n".join(lines)


def format_program(p: Program) -> str:
    head = [f"program {p.name}: inputs ({', '.join(p.inputs)}) outputs ({', '.join(p.outputs)})",
            f"  arena (elements per dtype): {p.arena_sizes}"]
    return "\n".join(head + [format_kernel(k) for k in p.kernels])
