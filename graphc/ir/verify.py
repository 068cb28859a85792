"""The IR verifier.  Invariants it checks, in order, for every op:

1. the op is known: a primitive of the registry, or ``constant``;
2. every input is defined before this op (by a graph input or an earlier op);
3. the output name is not defined anywhere else (SSA);
4. the output type equals what the primitive's shape/dtype rule gives for the input
   types and attributes (a constant's type equals its array's);
and every graph output is defined.  Run after every pass in tests, so a broken pass is
reported at the pass that broke it.  Errors name the line of the graph's printed form
(line 1 is the header, op i is on line i + 1, then the return).
"""
from __future__ import annotations

from graphc import dtypes
from graphc.ir.graph import Graph
from graphc.ir.text import format_op
from graphc.ops import REGISTRY


class IRVerifyError(ValueError):
    """The graph breaks an invariant; the message names the line and the op."""


def verify(g: Graph) -> Graph:
    defined = set()
    for v in g.inputs:
        if v.name in defined:
            raise IRVerifyError(f"line 1: graph input %{v.name} is defined twice")
        defined.add(v.name)
    for index, op in enumerate(g.ops):
        where = f"line {index + 2} ({format_op(op)}): "
        for v in op.inputs:
            if v.name not in defined:
                raise IRVerifyError(f"{where}use of undefined value %{v.name}")
        if op.out.name in defined:
            raise IRVerifyError(f"{where}%{op.out.name} is defined twice")
        defined.add(op.out.name)
        expected = _expected_type(op, where)
        if expected != op.out.type:
            raise IRVerifyError(f"{where}type mismatch: the op gives {expected}, the IR says "
                                f"{op.out.type}")
    for v in g.outputs:
        if v.name not in defined:
            raise IRVerifyError(f"line {len(g.ops) + 2}: graph output %{v.name} is not "
                                f"defined")
    return g


def _expected_type(op, where):
    if op.name == "constant":
        array = op.attr_dict["value"].array
        return dtypes.TensorType(tuple(array.shape), dtypes.from_numpy(array.dtype))
    prim = REGISTRY.get(op.name)
    if prim is None:
        raise IRVerifyError(f"{where}unknown op {op.name!r}")
    try:
        return prim.infer(*[v.type for v in op.inputs], **op.attr_dict)
    except (RuntimeError, TypeError, ValueError) as e:
        raise IRVerifyError(f"{where}{e}") from None
