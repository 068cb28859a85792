"""ATen -> graphc: one lowering per ATen operator that graphc runs.

A lowering is a plain function called with the FX node's arguments, each ``fx.Node``
replaced by the graphc ``Tensor`` it computed (lists of nodes by lists of tensors), and
returns what the ATen op returns (a ``Tensor``, or a tuple of them).  Lowerings call
graphc's own PyTorch-spelled functions, so the same code runs eagerly, is traced into
graphc's IR by ``graphc.compile``, and is differentiated there if ever needed.

``LOWERINGS`` maps each ``OpOverload`` to its lowering; ``lowering(*ops)`` registers one
function for several overloads (an ``OpOverloadPacket`` registers all its overloads).
This module imports PyTorch: only ``graphc.dynamo`` imports it.
"""
from __future__ import annotations

import torch

import graphc

aten = torch.ops.aten

LOWERINGS: dict = {}


def lowering(*ops):
    """Register the decorated function as the lowering of every overload in ``ops``."""
    def register(fn):
        for op in ops:
            if isinstance(op, torch._ops.OpOverloadPacket):
                for name in op.overloads():
                    LOWERINGS[getattr(op, name)] = fn
            else:
                LOWERINGS[op] = fn
        return fn
    return register


@lowering(aten.add.Tensor, aten.add.Scalar)
def add(a, b, alpha=1):
    return graphc.add(a, b, alpha=alpha)


@lowering(aten.mul.Tensor, aten.mul.Scalar)
def mul(a, b):
    return graphc.mul(a, b)


@lowering(aten.mm.default)
def mm(a, b):
    return graphc.mm(a, b)
