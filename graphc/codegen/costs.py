"""What each kernel of a loop IR program costs on paper: the bytes it moves and, where
they are known, its floating-point operations (``graphc.profiling`` divides them by the
measured times).

Bytes are the sizes of the buffers a kernel reads plus those it writes, times their
itemsize: each buffer counted once per direction, so a lower bound on its traffic when
a buffer is read several times (a matmul's operands are re-read per block from cache).
FLOPs are known for products (matmuls and the convolutions lowered to them):
2 * m * n * k per batch element; a loop kernel's count would depend on how each op is
computed (an ``exp`` is a polynomial of a dozen operations), so it is left unknown (None),
as are the collectives' (they move bytes; a wait moves none).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from graphc.codegen import loops as L


@dataclass(frozen=True)
class KernelCost:
    name: str
    kind: str               # "loops", "matmul", "collective" or "wait"
    bytes: int
    flops: int | None


def _kind(kernel) -> str:
    if isinstance(kernel, L.MatmulKernel):
        return "matmul"
    if isinstance(kernel, L.Collective):
        return "collective"
    if isinstance(kernel, L.Wait):
        return "wait"
    return "loops"


def _bytes(program: L.Program, names) -> int:
    return sum(program.buffers[n].size * program.buffers[n].dtype.itemsize
               for n in dict.fromkeys(names))


def kernel_cost(program: L.Program, kernel) -> KernelCost:
    """The cost of one of ``program``'s kernels."""
    moved = 0 if isinstance(kernel, L.Wait) else (
        _bytes(program, kernel.inputs) + _bytes(program, kernel.outputs))
    flops = None
    if isinstance(kernel, L.MatmulKernel):
        flops = 2 * kernel.m * kernel.n * kernel.k * math.prod(kernel.batch)
    return KernelCost(kernel.name, _kind(kernel), moved, flops)


def kernel_costs(program: L.Program) -> list:
    """The ``KernelCost`` of each kernel of ``program``, in order."""
    return [kernel_cost(program, k) for k in program.kernels]
