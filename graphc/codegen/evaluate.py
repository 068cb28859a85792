"""A slow, obviously-correct evaluator of loop IR programs (scalar Python loops).

It gives the loop IR its meaning independently of any backend: tests run lowered
programs here and compare with the graph interpreter, so a lowering bug is told apart
from a code-generation bug.  Scalar ops use the registry's numpy implementations on
0-d arrays, so their semantics are the reference's by construction.
"""
from __future__ import annotations

import itertools

import numpy as np

from graphc.codegen import loops as L
from graphc.ops import ACCUMULATIONS, REGISTRY, collective
from graphc.ops.random import hash32

class _Kernel:
    def __init__(self, buffers, env, error):
        self.buffers = buffers
        self.env = env            # loop variables and accumulators
        self.error = error

    def index(self, e) -> int:
        if isinstance(e, L.Var):
            return self.env[e.name]
        if isinstance(e, L.IConst):
            return e.value
        if isinstance(e, L.IOp):
            return L.INDEX_OPS[e.op].fn(self.index(e.a), self.index(e.b))
        if isinstance(e, L.CheckedIndex):
            j = int(self.scalar(e.value))
            if not 0 <= j < e.size:
                self.error.append((e.site, j))
                return min(max(j, 0), e.size - 1)
            return j
        raise TypeError(f"not an index expression: {e!r}")

    def scalar(self, e):
        if isinstance(e, L.Load):
            return self.buffers[e.buffer][self.index(e.offset)]
        if isinstance(e, L.Const):
            return np.array(e.value, e.dtype.np)[()]
        if isinstance(e, L.IndexValue):
            return np.array(self.index(e.index)).astype(e.dtype.np)[()]
        if isinstance(e, L.Acc):
            return np.asarray(self.env[e.name]).astype(e.dtype.np)[()]
        if isinstance(e, L.NonZero):
            v = self.scalar(e.value)
            if v == 0:
                self.error.append((e.site, 0))
                return np.ones((), e.dtype.np)[()]
            return v
        if isinstance(e, L.Uniform):
            seed = int(self.scalar(e.seed)) & 0xFFFFFFFFFFFFFFFF
            key = hash32(np.uint32(seed & 0xFFFFFFFF) ^ hash32(np.uint32(seed >> 32)))
            bits = hash32(np.uint32(self.index(e.counter)) ^ key)
            return (np.float64(bits >> np.uint32(8)) * 2.0 ** -24).astype(e.dtype.np)
        if isinstance(e, L.Op):
            args = [np.asarray(self.scalar(a)) for a in e.args]
            if e.op == "cast":
                return args[0].astype(e.dtype.np)[()]
            return np.asarray(REGISTRY[e.op].impl(*args)).astype(e.dtype.np)[()]
        raise TypeError(f"not a scalar expression: {e!r}")

    def loop(self, loops):
        names = [n for n, _ in loops]
        for point in itertools.product(*[range(n) for _, n in loops]):
            self.env.update(zip(names, point))
            yield

    def statement(self, s):
        if isinstance(s, L.Store):
            buf = self.buffers[s.buffer]
            for _ in self.loop(s.loops):
                value = self.scalar(s.value)
                at = self.index(s.offset)
                buf[at] = buf[at] + value if s.accumulate else value
            return
        for acc in s.accumulators:
            accumulation = ACCUMULATIONS[acc.kind]
            best, best_index = None, 0
            for _ in self.loop(s.loops):
                v = self.scalar(acc.value)
                if best is None:
                    best, best_index = v, self.index(acc.index) if acc.index else 0
                elif not accumulation.is_arg:
                    best = REGISTRY[accumulation.combine].impl(best, v)
                elif _better(acc.kind, v, best):
                    best, best_index = v, self.index(acc.index)
            if best is None:       # an empty reduction: the identity
                best = np.array(accumulation.identity(acc.dtype), acc.dtype.np)[()]
            value = best_index if accumulation.is_arg else best
            self.env[acc.name] = np.asarray(value).astype(acc.dtype.np)[()]


def _better(kind, v, best) -> bool:
    """numpy's argmax/argmin: the first NaN wins, else the first extreme."""
    if np.isnan(best):
        return False
    if np.isnan(v):
        return True
    return v > best if kind == "argmax" else v < best


def run_kernel(kernel, buffers, error):
    if isinstance(kernel, L.Collective):        # blocking here; its Wait is a no-op
        send, world = buffers[kernel.send][:kernel.count], collective.world()
        buffers[kernel.recv][:kernel.count] = (
            world.all_reduce(send, kernel.op) if kernel.call == "all_reduce"
            else world.broadcast(send, kernel.root))
        return None
    if isinstance(kernel, L.Wait):
        return None
    if isinstance(kernel, L.MatmulKernel):
        return _run_matmul(kernel, buffers, error)
    k = _Kernel(buffers, {}, error)
    for _ in k.loop(kernel.parallel):
        for s in kernel.body:
            k.statement(s)


def _run_matmul(kernel, buffers, error):
    k = _Kernel(buffers, {}, error)
    batch = [(f"b{d}", n) for d, n in enumerate(kernel.batch)]
    a, b = buffers[kernel.a.buffer], buffers[kernel.b.buffer]
    for _ in k.loop(batch + [("i", kernel.m), ("j", kernel.n)]):
        bs = [k.env[f"b{d}"] for d in range(len(kernel.batch))]
        a0 = kernel.a.offset + sum(x * s for x, s in zip(bs, kernel.a.batch_strides))
        b0 = kernel.b.offset + sum(x * s for x, s in zip(bs, kernel.b.batch_strides))
        acc = np.zeros((), kernel.dtype.np)[()]
        for p in range(kernel.k):
            acc = acc + a[a0 + k.env["i"] * kernel.a.row_stride + p * kernel.a.col_stride] * \
                b[b0 + p * kernel.b.row_stride + k.env["j"] * kernel.b.col_stride]
        k.env["acc"] = acc
        at = k.env["i"] * kernel.n + k.env["j"]
        offset = 0
        for x, n in zip(bs, kernel.batch):
            offset = offset * n + x
        for name, value in kernel.stores:
            buffers[name][offset * kernel.m * kernel.n + at] = k.scalar(value)


def run_program(program: L.Program, inputs):
    """Run ``program`` on input arrays; returns the output arrays."""
    buffers = {}
    for name, info in program.buffers.items():
        buffers[name] = np.zeros(max(info.size, 1), info.dtype.np)
    for name, array in zip(program.inputs, inputs):
        buffers[name] = np.ascontiguousarray(array, program.buffers[name].dtype.np).reshape(-1)
    for name, array in program.constants.items():
        buffers[name] = np.ascontiguousarray(array).reshape(-1)
    error: list = []
    for kernel in program.kernels:
        run_kernel(kernel, buffers, error)
        if error:
            raise program.error(*error[0])
    return [buffers[name].copy() for name in program.outputs]
