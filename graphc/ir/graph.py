"""The SSA graph: typed values, ops, and a graph with explicit inputs and outputs.

Every ``Value`` is defined once (by one op, or as a graph input) and has a static type.
Ops are immutable and carry their attributes as plain, hashable data, so common
subexpressions, cache keys and guard keys fall out of them.  An op is a primitive from
the registry or ``constant``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graphc.dtypes import TensorType


@dataclass(frozen=True, eq=False)
class Value:
    """A value of the graph.  It quacks like an array's metadata (shape, ndim, size),
    which lets a tracer ``Tensor`` hold a Value where an eager one holds an ndarray."""
    name: str
    type: TensorType

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def ndim(self) -> int:
        return len(self.type.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.type.shape, dtype=np.int64))

    @property
    def dtype(self):
        return self.type.dtype.np

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Constant:
    """A constant's array, hashable by content (for CSE and cache keys)."""
    __slots__ = ("array", "_key")

    def __init__(self, array: np.ndarray):
        self.array = np.array(array, order="C")
        if self.array.dtype.kind == "f":
            # One NaN: the text form prints every NaN as ``nan`` (a sign bit would be lost).
            self.array[np.isnan(self.array)] = np.nan
        self.array.flags.writeable = False
        self._key = (self.array.dtype.str, self.array.shape, self.array.tobytes())

    def __eq__(self, other):
        return isinstance(other, Constant) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        """A scalar when every element is bitwise equal (a splat, e.g. zeros), else a flat
        list.  Bitwise, so [0.0, -0.0] stays a list and a nan splat prints as ``nan``."""
        flat = self.array.reshape(-1)
        if flat.size and flat.tobytes() == np.full_like(flat, flat[0]).tobytes():
            return repr(flat[0].item())
        return repr(flat.tolist())


@dataclass(frozen=True, eq=False)
class Op:
    """``out = name(*inputs, **attrs)``; ``source`` is the user's line that made it."""
    name: str
    inputs: tuple
    attrs: tuple          # ((key, value), ...) in the primitive's attribute order
    out: Value
    source: str | None = field(default=None, compare=False)

    @property
    def attr_dict(self) -> dict:
        return dict(self.attrs)

    def key(self) -> tuple:
        """Identity of the computation (not of its output name): the CSE key."""
        return (self.name, tuple(v.name for v in self.inputs), self.attrs)


@dataclass(eq=False)
class Graph:
    """A function from ``inputs`` to ``outputs``; ``ops`` are in definition order.

    Two graphs are equal when they have the same structure: the same name, input names
    and types, ops (primitive, operand names, attributes, result name and type) in the
    same order, and outputs.  Values themselves compare by identity (they are dict keys
    everywhere), so ``graphc.ir.parse(str(g)) == g`` holds although the parsed graph has
    new Value objects.  Source lines are not part of the structure.  ``str(g)`` is the
    text form (``graphc.ir.text``; it is attached in ``graphc.ir``).
    """
    inputs: list
    ops: list
    outputs: list
    name: str = "graph"

    def structure(self) -> tuple:
        """A hashable key that is equal for equal graphs (see the class docstring)."""
        return (self.name,
                tuple((v.name, v.type) for v in self.inputs),
                tuple((op.name, tuple(v.name for v in op.inputs), _attrs_key(op.attrs),
                       op.out.name, op.out.type) for op in self.ops),
                tuple(v.name for v in self.outputs))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return self.structure() == other.structure()

    __hash__ = None         # mutable: equal graphs may stop being equal

    def producers(self) -> dict:
        """Value -> the op that defines it."""
        return {op.out: op for op in self.ops}

    def users(self) -> dict:
        """Value -> the ops that read it (in order)."""
        uses: dict = {}
        for op in self.ops:
            for v in op.inputs:
                uses.setdefault(v, []).append(op)
        return uses

    def to_networkx(self):
        """A DiGraph with one node per value name and an edge producer -> user; each node
        carries ``op`` (None for graph inputs) and ``type``."""
        import networkx as nx
        g = nx.DiGraph()
        for v in self.inputs:
            g.add_node(v.name, op=None, type=v.type)
        for op in self.ops:
            g.add_node(op.out.name, op=op, type=op.out.type)
            for v in op.inputs:
                g.add_edge(v.name, op.out.name)
        return g

    def to_dot(self) -> str:
        """Graphviz text: inputs as boxes, ops as ellipses labelled with op and type."""
        lines = [f'digraph "{self.name}" {{', "  rankdir=TB;"]
        for v in self.inputs:
            lines.append(f'  "{v.name}" [shape=box, label="%{v.name}\\n{v.type}"];')
        for op in self.ops:
            lines.append(f'  "{op.out.name}" [label="{op.name}\\n%{op.out.name}: '
                         f'{op.out.type}"];')
            for v in op.inputs:
                lines.append(f'  "{v.name}" -> "{op.out.name}";')
        for i, v in enumerate(self.outputs):
            lines.append(f'  "out{i}" [shape=doublecircle, label="out{i}"];')
            lines.append(f'  "{v.name}" -> "out{i}";')
        lines.append("}")
        return "\n".join(lines)


def _attrs_key(attrs):
    """Attributes with every float NaN replaced by a marker: NaN != NaN, but two ops
    with a NaN attribute (``masked_fill(value=nan)``) are the same op."""
    if isinstance(attrs, tuple):
        return tuple(_attrs_key(a) for a in attrs)
    if isinstance(attrs, float) and attrs != attrs:
        return ("nan",)
    return attrs


class Namer:
    """Unique SSA names: names from the program (``fc1.weight``) kept as they are,
    deduplicated with a suffix; anonymous values numbered."""

    def __init__(self):
        self.taken: set = set()
        self.counter = 0

    def fresh(self, hint: str | None = None) -> str:
        if hint is None:
            while str(self.counter) in self.taken:
                self.counter += 1
            name = str(self.counter)
        else:
            name, k = hint, 1
            while name in self.taken:
                name, k = f"{hint}_{k}", k + 1
        self.taken.add(name)
        return name
