"""Fusion: partition a graph's ops into groups, one kernel each.

Rules (a greedy pass in topological order; each op joins the group of one of its
producers when that is legal, else starts a group):

- Views and index maps (reshape, permute, expand, slice, pad, concat, take, gather) are
  not computed at all: every consumer reads through their index map.  They get a kernel
  only when they are a graph output (or with ``fuse=False``).
- Elementwise ops join a pointwise group of the same shape: a chain becomes one kernel.
- A reduction joins the pointwise group that computes its input (the producers become
  its prologue), or a reduction group over the same shape and axes (softmax's max and
  sum share one kernel).  Elementwise consumers of a reduction join it too, on the
  reduced shape or on the full shape with the result broadcast (the epilogue).
- Elementwise consumers of a matmul or conv2d of the same shape join it (bias,
  activation epilogues).  scatter_add / index_add are kernels of their own.
- Legality uses networkx: an op never joins a group from which another of its inputs'
  groups is reachable (that would make a cycle).  No op is ever computed in two
  kernels: a value used by another kernel is stored once and loaded there.
- A collective (``all_reduce``) is a group of its own, never fused: the program starts it
  and waits for it between kernels (``schedule_collectives`` first moves it, and what
  computes its operand, as early in the graph as the data allows).

Every cross-kernel edge gets a reason in the report (``Fusion.report()``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from graphc.ir import Graph, Op, Value
from graphc.ops import REGISTRY

INDEX_MAPS = frozenset(p.name for p in REGISTRY.values() if p.index_map is not None)
REDUCTIONS = frozenset(p.name for p in REGISTRY.values() if p.kind == "reduction")
# Between a reduction and an in-kernel consumer only these keep the reduced value at the
# current parallel index (they add/remove unit dims or broadcast).
_SAFE_AFTER_REDUCTION = frozenset({"reshape", "expand"})


@dataclass(eq=False)
class Group:
    """Ops computed by one kernel.  ``shape`` is the iteration space: the output shape
    (pointwise, matmul, conv2d, scatter) or the reduced input's shape (reduction, with
    ``axes`` reduced)."""
    index: int
    kind: str                      # pointwise, reduction, matmul, conv2d, scatter
    shape: tuple
    ops: list = field(default_factory=list)
    axes: tuple = ()

    @property
    def kept_size(self) -> int:
        return math.prod(d for i, d in enumerate(self.shape) if i not in self.axes)

    def describe(self) -> str:
        dims = "x".join(map(str, self.shape)) or "scalar"
        if self.kind == "reduction":
            return f"reduction over axes {self.axes} of [{dims}]"
        return f"{self.kind} [{dims}]"


@dataclass
class Fusion:
    graph: Graph
    groups: list
    group_of: dict            # Value -> Group that computes it
    inline: set               # values read through index maps, never stored
    boundaries: list          # (producer Value, consumer Op, reason)

    def materialized(self) -> set:
        """Values some kernel stores: graph outputs and values another kernel reads."""
        out = {v for v in self.graph.outputs if v in self.group_of}
        for op in self.graph.ops:
            g = self.group_of.get(op.out)
            for src in self.sources(op):
                if g is None or self.group_of.get(src) is not g:
                    if src in self.group_of:
                        out.add(src)
        return out

    def __post_init__(self):
        self.producer = self.graph.producers()

    def sources(self, op: Op) -> list:
        """The computed (non-inline) values op reads, looking through index maps."""
        found, stack = [], list(op.inputs)
        while stack:
            v = stack.pop()
            if v in self.inline:
                stack.extend(self.producer[v].inputs)
            else:
                found.append(v)
        return found

    def report(self) -> str:
        lines = [f"{len(self.groups)} kernels"]
        for g in self.groups:
            ops = ", ".join(f"%{op.out.name}={op.name}" for op in g.ops)
            lines.append(f"  kernel {g.index}: {g.describe()}: {ops}")
        if self.inline:
            names = ", ".join(f"%{v.name}" for v in sorted(self.inline, key=lambda v: v.name))
            lines.append(f"  index maps read in place (no kernel): {names}")
        if self.boundaries:
            lines.append("unfused edges:")
            for v, op, reason in self.boundaries:
                lines.append(f"  %{v.name} (kernel {self.group_of[v].index}) -> "
                             f"%{op.out.name}={op.name}: {reason}")
        return "\n".join(lines)


def _kind(op: Op) -> str:
    """The kind of kernel an op that starts a group makes: a contraction's own (matmul,
    conv2d), collective, reduction, scatter, or pointwise (elementwise, random, index
    maps)."""
    prim = REGISTRY[op.name]
    if prim.kind == "contraction":
        return op.name
    if prim.kind == "collective":
        return "collective"
    if prim.kind == "reduction":
        return "reduction"
    return "scatter" if prim.scatter else "pointwise"


class _Fuser:
    def __init__(self, graph: Graph, fuse: bool):
        self.graph = graph
        self.fuse = fuse
        self.producer = graph.producers()
        self.outputs = set(graph.outputs)
        self.groups: list = []
        self.group_of: dict = {}
        self.inline: set = set()
        self.dag = nx.DiGraph()        # group index -> group index, producer to consumer
        self.boundaries: list = []

    def run(self) -> Fusion:
        for op in self.graph.ops:
            if op.name == "constant":
                continue
            if self.fuse and op.name in INDEX_MAPS and op.out not in self.outputs:
                self.inline.add(op.out)
                continue
            self.place(op)
        return Fusion(self.graph, self.groups, self.group_of, self.inline, self.boundaries)

    def paths(self, v: Value, through=()):
        """(computed source value, index-map ops passed on the way) for each source."""
        if v in self.inline:
            op = self.producer[v]
            for u in op.inputs:
                yield from self.paths(u, through + (op.name,))
        elif v in self.group_of:
            yield v, through

    def place(self, op: Op):
        sources = [(v, via) for u in op.inputs for v, via in self.paths(u)]
        tried, reasons = [], {}
        if self.fuse:
            for v, _ in sources:
                g = self.group_of[v]
                if g in tried:
                    continue
                tried.append(g)
                reason = self.why_not(op, g, sources)
                if reason is None:
                    self.join(op, g, sources)
                    self.record_boundaries(op, g, sources, reasons)
                    return
                reasons[g] = reason
        g = Group(len(self.groups), _kind(op), self.space(op), axes=self.axes(op))
        self.groups.append(g)
        self.dag.add_node(g.index)
        self.join(op, g, sources)
        self.record_boundaries(op, g, sources, reasons)

    def record_boundaries(self, op, g, sources, reasons):
        for v, _ in sources:
            h = self.group_of[v]
            if h is not g:
                reason = reasons.get(h, "fusion is off (fuse=False)" if not self.fuse else
                                     "the op was fused with another of its producers instead")
                self.boundaries.append((v, op, reason))

    @staticmethod
    def space(op: Op) -> tuple:
        if op.name in REDUCTIONS:
            return op.inputs[0].shape
        return op.out.shape

    @staticmethod
    def axes(op: Op) -> tuple:
        if op.name not in REDUCTIONS:
            return ()
        if REGISTRY[op.name].accumulation.is_arg:
            return (op.attr_dict["axis"],)
        return tuple(op.attr_dict["axes"])

    def join(self, op: Op, g: Group, sources):
        g.ops.append(op)
        self.group_of[op.out] = g
        for v, _ in sources:
            h = self.group_of[v]
            if h is not g:
                self.dag.add_edge(h.index, g.index)

    def why_not(self, op: Op, g: Group, sources) -> str | None:
        """None when op may join g, else the reason it may not."""
        kind = _kind(op)
        shape = op.out.shape
        if g.kind in ("scatter", "collective") or kind in ("matmul", "conv2d", "scatter",
                                                           "collective"):
            return f"{op.name} and {g.kind} kernels are not fused"
        if kind == "reduction":
            if g.kind not in ("pointwise", "reduction"):
                return f"a reduction does not join a {g.kind} kernel"
            if op.inputs[0].shape != g.shape:
                return f"reduces shape {list(op.inputs[0].shape)}, kernel is {list(g.shape)}"
            if g.kind == "reduction" and self.axes(op) != g.axes:
                return f"reduces axes {self.axes(op)}, kernel reduces {g.axes}"
        elif g.kind == "reduction":
            if shape != g.shape and math.prod(shape) != g.kept_size:
                return f"shape {list(shape)} is neither the reduced nor the full shape"
        elif shape != g.shape:
            return f"shape {list(shape)} differs from the kernel's {list(g.shape)}"
        for v, via in sources:
            if self.group_of[v] is not g:
                continue
            if op.name in INDEX_MAPS:       # an index map kept as an output reads through itself
                via = via + (op.name,)
            if g.kind == "reduction" and math.prod(v.shape) != math.prod(g.shape):
                if any(name not in _SAFE_AFTER_REDUCTION for name in via):
                    return "reads the reduced value through a reordering index map"
                if shape == g.shape and not self.reads_kept_index(op, v, g):
                    return "broadcasts the reduced value along other axes than it kept"
            elif via and (g.kind != "reduction" or any(
                    name not in _SAFE_AFTER_REDUCTION for name in via)):
                return "reads a value of the kernel at another index (through an index map)"
        others = {self.group_of[v].index for v, _ in sources} - {g.index}
        if any(nx.has_path(self.dag, g.index, h) for h in others):
            return "fusing would create a cycle between kernels"
        if kind == "reduction" and g.kind == "pointwise":
            g.kind, g.axes = "reduction", self.axes(op)
        return None


    def reads_kept_index(self, op: Op, v: Value, g: Group) -> bool:
        """Whether ``op``, run at every index of the reduction kernel ``g``, reads the
        reduced value ``v`` at the index the kernel keeps (its non-reduced axes): the
        only place the fused kernel has it.  ``x.sum(1) - x`` on [n, n] broadcasts the
        sums along axis 0, not 1, and so may not fuse.  Checked by running the index
        maps between ``v`` and ``op`` on the kept positions themselves."""
        kept_shape = tuple(1 if a in g.axes else d for a, d in enumerate(g.shape))
        want = np.broadcast_to(np.arange(g.kept_size).reshape(kept_shape), g.shape)
        for u in op.inputs:
            for chain in self.chains(u, v):
                got = np.arange(math.prod(v.shape)).reshape(v.shape)
                for p in chain:
                    got = np.asarray(REGISTRY[p.name].impl(got, **p.attr_dict))
                got = np.broadcast_to(got.reshape((1,) * (len(g.shape) - got.ndim)
                                                  + got.shape), g.shape)
                if not np.array_equal(got, want):
                    return False
        return True

    def chains(self, u: Value, v: Value, chain=()):
        """The inline index-map ops from ``v`` to ``u`` (one tuple per path)."""
        if u is v:
            yield chain
        elif u in self.inline:
            p = self.producer[u]
            for w in p.inputs:
                yield from self.chains(w, v, (p,) + chain)

    def merge_into_consumers(self):
        """A pointwise kernel that started on its own (its inputs were all graph inputs,
        like ``sigmoid(x)`` in ``tanh(f(x)) * sigmoid(x)``) joins its only consumer
        kernel when that reads it directly at the same shape."""
        order = {op.out: i for i, op in enumerate(self.graph.ops)}
        for g in reversed(self.groups):
            if g.kind != "pointwise" or not g.ops:
                continue
            consumers = list(self.dag.successors(g.index))
            if len(consumers) != 1 or any(op.out in self.outputs for op in g.ops):
                continue
            c = self.groups[consumers[0]]
            if c.kind not in ("pointwise", "reduction") or c.shape != g.shape:
                continue
            direct = all(not via for op in c.ops for u in op.inputs
                         for v, via in self.paths(u) if self.group_of[v] is g)
            if not direct:
                continue
            for op in g.ops:
                self.group_of[op.out] = c
            c.ops = sorted(g.ops + c.ops, key=lambda op: order[op.out])
            g.ops = []
            for h in self.dag.predecessors(g.index):
                self.dag.add_edge(h, c.index)
            self.dag.remove_node(g.index)
            self.boundaries = [(v, op, r) for v, op, r in self.boundaries
                               if self.group_of[v] is not self.group_of[op.out]]

    def ordered_groups(self) -> list:
        """Groups in an order where every kernel runs after the kernels it reads."""
        order = nx.lexicographical_topological_sort(self.dag)
        groups = [self.groups[i] for i in order if self.groups[i].ops]
        for i, g in enumerate(groups):
            g.index = i
        return groups


def schedule_collectives(graph: Graph) -> Graph:
    """``graph`` with its ops reordered so that each collective, and every op its
    operand depends on, comes as soon as its inputs exist: the all-reduce of a bucket of
    gradients then starts right after the backward computes the bucket's last gradient,
    while the rest of the backward runs, instead of where the code asked for it (eager
    autograd runs gradient hooks after the whole backward pass).  Other ops keep their
    order; the graph has the same values."""
    producer = graph.producers()
    collectives = [op for op in graph.ops if REGISTRY.get(op.name) is not None
                   and REGISTRY[op.name].kind == "collective"]
    if not collectives:
        return graph
    # The cone of each collective, in order: an op goes with the first collective that
    # needs it, so the first bucket's ops come before the second's.
    cone: dict = {}                         # op -> (its first collective, graph position)
    position = {op: i for i, op in enumerate(graph.ops)}
    for first, c in enumerate(collectives):
        stack = [c]
        while stack:
            op = stack.pop()
            if op not in cone:
                cone[op] = (first, position[op])
                stack.extend(producer[v] for v in op.inputs if v in producer)
    users = graph.users()
    waiting = {op: len({v for v in op.inputs if v in producer}) for op in cone}
    ready = [op for op, n in waiting.items() if n == 0]
    order, placed = [], set()

    def place(op):
        order.append(op)
        placed.add(op)
        for user in dict.fromkeys(users.get(op.out, ())):
            if user in cone:
                waiting[user] -= 1
                if waiting[user] == 0:
                    ready.append(user)

    for op in graph.ops:
        while ready:                        # the cones' ready ops first
            ready.sort(key=cone.get)
            first = ready.pop(0)
            if first not in placed:
                place(first)
        if op not in placed:
            place(op)
    return Graph(graph.inputs, order, graph.outputs, graph.name)


def fuse(graph: Graph, fuse: bool = True) -> Fusion:
    """Partition ``graph`` into kernels (see the module docstring for the rules)."""
    fuser = _Fuser(schedule_collectives(graph), fuse)
    fusion = fuser.run()
    if fuse:
        fuser.merge_into_consumers()
    fusion.groups = fuser.ordered_groups()
    fusion.boundaries = fuser.boundaries
    return fusion

