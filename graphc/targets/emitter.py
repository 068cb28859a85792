"""What the code generators share: walking loop IR expressions and rendering each node once.

An ``Emitter`` renders index and scalar expressions (``graphc.codegen.loops``) to some
target's values (LLVM registers, C expressions).  Rendered subexpressions are memoised by
object identity in nested scopes (a statement, a loop body, a C block), so a subtree shared
by an expression DAG is emitted once and a value is never reused outside the block that
defines it.  An elementwise op renders through its primitive's ``scalar`` rule, called on
the backend's scalar-op handler (one method per op of ``graphc.ops.SCALAR_OPS``), so a
backend spells each scalar op once and never dispatches on primitive names.

A backend subclasses ``Emitter`` and supplies the leaves: ``var``, ``iconst``,
``index_op``, ``checked``, ``constant``, ``acc``, ``load``, ``index_value``, ``uniform``,
``nonzero``, ``scalar_ops(dtype, out_dtype)`` and ``narrow(value, dtype)``.
"""
from __future__ import annotations

from contextlib import contextmanager

from graphc.codegen import loops as L
from graphc.ops import REGISTRY


class Emitter:
    def __init__(self):
        self.env: dict = {}          # loop variable -> the backend's value for it
        self.accs: dict = {}         # accumulator name -> what ``acc`` needs to read it
        self._scopes: list = [{}]

    @contextmanager
    def scope(self):
        self._scopes.append({})
        yield
        self._scopes.pop()

    def _memo(self, e, render):
        for scope in reversed(self._scopes):
            hit = scope.get(id(e))
            if hit is not None:
                return hit[1]
        value = render(e)
        self._scopes[-1][id(e)] = (e, value)      # e is kept alive: its id stays unique
        return value

    # ---- index expressions ----------------------------------------------------------------
    def index(self, e):
        if isinstance(e, L.Var):
            if e.name not in self.env:
                raise ValueError(f"loop variable {e.name!r} is not bound here")
            return self.var(e.name)
        if isinstance(e, L.IConst):
            return self.iconst(e.value)
        return self._memo(e, self._index_node)

    def _index_node(self, e):
        if isinstance(e, L.IOp):
            return self.index_op(e.op, self.index(e.a), self.index(e.b))
        if isinstance(e, L.CheckedIndex):
            return self.checked(e)
        raise TypeError(f"not a loop IR index expression: {e!r}")

    # ---- scalar expressions ---------------------------------------------------------------
    def scalar(self, e):
        if isinstance(e, L.Const):
            return self.constant(e.value, e.dtype)
        if isinstance(e, L.Acc):
            if e.name not in self.accs:
                raise ValueError(f"accumulator {e.name!r} is read before its Reduce")
            return self.acc(e)
        return self._memo(e, self._scalar_node)

    def _scalar_node(self, e):
        if isinstance(e, L.Load):
            return self.load(e)
        if isinstance(e, L.Op):
            return self.op(e)
        if isinstance(e, L.IndexValue):
            return self.index_value(e)
        if isinstance(e, L.Uniform):
            return self.uniform(e)
        if isinstance(e, L.NonZero):
            return self.nonzero(e)
        raise TypeError(f"not a loop IR scalar expression: {e!r}")

    def op(self, e: L.Op):
        """The primitive's scalar rule over the operands' rendered values, its result
        rounded or wrapped into the op's dtype (``narrow``: float16 and bfloat16 are
        computed in float and narrow integers in 32 bits, so a fused kernel rounds after
        each op exactly where the eager ops do)."""
        args = [self.scalar(a) for a in e.args]
        ops = self.scalar_ops(e.args[-1].dtype, e.dtype)     # where: its branches' dtype
        return self.narrow(REGISTRY[e.op].scalar(ops, *args), e.dtype)
