"""Split long reductions into two passes, for backends that run one block per parallel
iteration (``cuda``).

A kernel that reduces a few rows of many elements each (``x.sum()`` of a large tensor:
one row) would run on a few blocks while the rest of the GPU idles.  This pass rewrites
such a kernel into two:

- ``NAME_partial``: the parallel loops gain a ``split`` loop of S chunks; each chunk
  reduces its share of the flattened reduction loops into a partial buffer
  ``[rows, S]`` (positions past the end are clamped loads that contribute the
  reduction's identity);
- ``NAME``: per row, the S partials are combined with the same kind of reduction, then
  the original kernel's stores run unchanged (they read the accumulators as before).

Only kernels whose body is one ``Reduce`` of sum/prod/max/min accumulators followed by
per-row stores are split; arg-reductions and multi-stage kernels (softmax) keep one
pass.  Float sums are added in a different order than in one pass (as any parallel
reduction does).
"""
from __future__ import annotations

import dataclasses
import math

from graphc import dtypes
from graphc.codegen import loops as L
from graphc.codegen.lower import linear, unravel

SPLITTABLE = ("sum", "prod", "max", "min")


@dataclasses.dataclass(frozen=True)
class SplitPolicy:
    """When to split: a kernel with fewer than ``busy`` rows whose reduction has at least
    ``2 * chunk`` elements gets ``min(ceil(n / chunk), busy // rows)`` chunks per row
    (at least 2), balanced in size."""
    busy: int            # blocks that keep the device busy
    chunk: int           # fewest elements a chunk should reduce


def substitute(expr, mapping: dict, memo: dict | None = None):
    """``expr`` with loop variables replaced by index expressions (``mapping``: var name
    -> expression); shared subtrees stay shared."""
    memo = {} if memo is None else memo
    key = id(expr)
    if key in memo:
        return memo[key][1]
    e = expr
    if isinstance(e, L.Var):
        out = mapping.get(e.name, e)
    elif isinstance(e, L.IOp):
        out = L.IOp(e.op, substitute(e.a, mapping, memo), substitute(e.b, mapping, memo))
    elif isinstance(e, L.Load):
        out = L.Load(e.buffer, substitute(e.offset, mapping, memo), e.dtype)
    elif isinstance(e, L.Op):
        out = L.Op(e.op, tuple(substitute(a, mapping, memo) for a in e.args), e.dtype)
    elif isinstance(e, L.IndexValue):
        out = L.IndexValue(substitute(e.index, mapping, memo), e.dtype)
    elif isinstance(e, L.CheckedIndex):
        out = L.CheckedIndex(substitute(e.value, mapping, memo), e.size, e.site)
    elif isinstance(e, L.NonZero):
        out = L.NonZero(substitute(e.value, mapping, memo), e.site)
    elif isinstance(e, L.Uniform):
        out = L.Uniform(substitute(e.seed, mapping, memo),
                        substitute(e.counter, mapping, memo), e.dtype)
    elif isinstance(e, (L.IConst, L.Const, L.Acc)):
        out = e
    else:
        raise TypeError(f"not a loop IR expression: {e!r}")
    memo[key] = (expr, out)          # expr kept alive: its id stays unique
    return out


def _flat(loops):
    """The row-major position of ``loops``' variables, as an index expression."""
    return linear([L.Var(name) for name, _ in loops], [n for _, n in loops])


def _unflatten(position, loops) -> dict:
    """Each loop variable of ``loops`` at row-major ``position``."""
    return dict(zip((name for name, _ in loops), unravel(position, [n for _, n in loops])))


def _splittable(k) -> bool:
    return (isinstance(k, L.LoopKernel) and not k.serial and k.body
            and isinstance(k.body[0], L.Reduce)
            and all(a.kind in SPLITTABLE for a in k.body[0].accumulators)
            and all(isinstance(s, L.Store) and not s.loops for s in k.body[1:]))


def _fresh(name: str, taken) -> str:
    while name in taken:
        name += "_"
    return name


def split_kernel(k: L.LoopKernel, splits: int, buffers: dict):
    """``k`` as (first pass, second pass), adding the partial buffers to ``buffers``."""
    reduce = k.body[0]
    rows = math.prod(n for _, n in k.parallel)
    n = math.prod(e for _, e in reduce.loops)
    chunk = -(-n // splits)
    names = {v for v, _ in k.parallel} | {v for v, _ in reduce.loops}
    split, step = _fresh("split", names), _fresh("chunk", names)
    position = L.IOp("add", L.IOp("mul", L.Var(split), L.IConst(chunk)), L.Var(step))
    padded = chunk * splits != n
    inside = L.IOp("min", position, L.IConst(n - 1)) if padded else position
    mapping = _unflatten(inside, reduce.loops)
    at = _flat(k.parallel + ((split, splits),))        # the partial's place: [row, split]
    memo: dict = {}
    partial_accs, partial_stores, combine = [], [], []
    for acc in reduce.accumulators:
        part = _fresh(f"{k.name}_{acc.name}_partial", buffers)
        buffers[part] = L.BufferInfo(part, acc.dtype, rows * splits, "temp")
        value = substitute(acc.value, mapping, memo)
        if padded:
            dtype = acc.value.dtype
            keep = L.Op("lt", (L.IndexValue(position, dtypes.int64),
                               L.Const(n, dtypes.int64)), dtypes.bool_)
            value = L.Op("where", (keep, value, L.Const(L.identity(acc.kind, dtype), dtype)),
                         dtype)
        partial_accs.append(dataclasses.replace(acc, value=value))
        partial_stores.append(L.Store((), part, at, L.Acc(acc.name, acc.dtype)))
        combine.append(dataclasses.replace(acc, value=L.Load(part, at, acc.dtype)))
    parts = [s.buffer for s in partial_stores]
    first = L.LoopKernel(
        f"{k.name}_partial", k.parallel + ((split, splits),),
        [L.Reduce(((step, chunk),), tuple(partial_accs))] + partial_stores,
        list(k.inputs), parts,
        [f"first pass of {k.name}: {splits} chunks of {chunk} per row"] + list(k.comment))
    second = L.LoopKernel(
        k.name, k.parallel, [L.Reduce(((split, splits),), tuple(combine))] + k.body[1:],
        parts + list(k.inputs), list(k.outputs),
        [f"second pass: combines the {splits} partials of {k.name}_partial"]
        + list(k.comment))
    return first, second


def split_reductions(program: L.Program, policy: SplitPolicy) -> L.Program:
    """``program`` with each long, narrow reduction split in two passes (see above)."""
    kernels, buffers = [], dict(program.buffers)
    for k in program.kernels:
        if _splittable(k):
            rows = math.prod(n for _, n in k.parallel)
            n = math.prod(e for _, e in k.body[0].loops)
            if 0 < rows < policy.busy and n >= 2 * policy.chunk:
                splits = max(2, min(-(-n // policy.chunk), policy.busy // rows))
                kernels += split_kernel(k, splits, buffers)
                continue
        kernels.append(k)
    if len(kernels) == len(program.kernels):
        return program
    return dataclasses.replace(program, kernels=kernels, buffers=buffers)
