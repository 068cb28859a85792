"""ATen -> graphc: one lowering per ATen operator that graphc runs.

A lowering is a plain function called with the FX node's arguments, each ``fx.Node``
replaced by the graphc ``Tensor`` it computed (lists of nodes by lists of tensors), and
returns what the ATen op returns (a ``Tensor``, or a tuple of them).  Lowerings call
graphc's own PyTorch-spelled functions, so the same code runs eagerly, is traced into
graphc's IR by ``graphc.compile``, and is differentiated there if ever needed.
Non-tensor arguments arrive as PyTorch gave them: Python numbers, lists of ints, and
``torch.dtype``/``torch.device``/``torch.layout``/``torch.memory_format`` objects
(dtypes are converted by name with ``graphc_dtype``; devices, layouts and memory
formats do not change values, so they are read only by ``unsupported``).

``LOWERINGS`` maps each ``OpOverload`` to its lowering; ``lowering(*ops)`` registers one
function for several overloads (an ``OpOverloadPacket`` registers its tensor overloads).
``DECOMPOSITIONS`` is the table AOTAutograd traces with, and ``unsupported(node)`` says
why an FX node must stay in PyTorch.  This package imports PyTorch: only
``graphc.dynamo`` imports it.  docs/aten.md lists the ops and how to add one.
"""
from graphc.dynamo.aten.registry import LOWERINGS, SUPPORTED_DTYPES, graphc_dtype, lowering
# each family registers its lowerings on import; the decompositions come last, as the
# core table less every op lowered
from graphc.dynamo.aten import pointwise, tensors, shapes, nn  # noqa: F401
from graphc.dynamo.aten.unsupported import DECOMPOSITIONS, unsupported

__all__ = ["DECOMPOSITIONS", "LOWERINGS", "SUPPORTED_DTYPES", "graphc_dtype", "lowering",
           "unsupported"]
