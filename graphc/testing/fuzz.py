"""A differential fuzzer: random straight-line programs over every primitive and
composite, run in PyTorch (when installed), graphc eager and ``graphc.compile`` on every
backend, fused and unfused; values and gradients are compared.

A program is Python source written once against a namespace ``ns`` (``torch`` or
``graphc``; ``F`` is ``ns.nn.functional``), so the same text runs everywhere and a failure
prints as a ready-to-paste regression test::

    def program(ns, F, x0, x1):
        v0 = ns.maximum(x0, x1)
        v1 = ns.sum(v0, dim=(0,), keepdim=False)
        return [v1]

Each step is drawn from ``OPS``, an op table whose entries know how to draw valid
arguments (broadcasting shapes, dims, index tensors) from the values so far; the
elementwise entries are derived from the primitive registry, and ``uncovered_primitives``
(a test) names any primitive no entry reaches.  Inputs have random shapes with 0- and
1-sized dims, dtypes float32/float64/int64/bool, non-contiguous layouts (transposed,
strided, expanded views made before the call) and special values (nan, +-inf, +-0,
huge, tiny).

Speed: compiling costs far more than running, so ``BATCH`` independent programs are
compiled as one function (disjoint inputs and outputs); each program's outputs and
gradients are still compared on their own, and a batch that raises is re-run program by
program.  A failure is minimised (steps cut, inputs simplified) and printed as a pytest
test.  Run ``python -m graphc.testing.fuzz --minutes 10``; see ``docs/fuzzing.md``.
"""
from __future__ import annotations

import argparse
import builtins
import inspect
import linecache
import re
import sys
import time
from dataclasses import dataclass, field, replace
from math import inf, nan

import numpy as np

import graphc
from graphc.ops import REGISTRY

FLOATS = ("float32", "float64")
INTS = ("int64",)
ALL = FLOATS + INTS + ("bool",)
NUMERIC = FLOATS + INTS
BACKENDS = ("interpreter", "cpu", "cuda-emulate")
BATCH = 12                      # programs compiled as one function
MAX_NUMEL = 64                  # keeps every input small
SPECIAL = (nan, inf, -inf, 0.0, -0.0, 1e30, -1e30, 1e-30, 3e-39, 1e300)
# Relative tolerance per dtype; the absolute one is that times the largest finite
# reference magnitude (at least 1), so cancellation in a sum is not a failure.
RTOL = {"float32": 1e-4, "float64": 1e-9}
GRAD_SCALE = 10                 # gradients chain more rounding: looser by this


def torch_or_none():
    """PyTorch when installed (a test-only dependency), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---- programs ----------------------------------------------------------------------------
@dataclass
class Input:
    """One argument: ``data`` is the leaf's array; the program receives ``layout`` of it
    (``plain``; ``t``: transposed; ``step``: every other row; ``expand``: size-1 dims
    expanded to ``shape``), so non-contiguous inputs reach the compiled code."""
    data: np.ndarray
    layout: str = "plain"
    shape: tuple | None = None      # the view's shape (derived unless ``expand``)
    grad: bool = False

    def __post_init__(self):
        if self.shape is None:
            s = self.data.shape
            self.shape = {"t": s[:-2] + s[-1:] + s[-2:-1],
                          "step": s[:1] and ((s[0] + 1) // 2,) + s[1:]}.get(self.layout, s)
        self.shape = tuple(self.shape)

    @property
    def dtype(self) -> str:
        return str(self.data.dtype)

    def make(self, ns):
        """(leaf, the view the program receives) as ``ns`` tensors."""
        leaf = ns.from_numpy(self.data.copy())
        if self.grad:
            leaf.requires_grad_(True)
        if self.layout == "t":
            return leaf, leaf.transpose(-1, -2)
        if self.layout == "step":
            return leaf, leaf[::2]
        if self.layout == "expand":
            return leaf, leaf.expand(*self.shape)
        return leaf, leaf

    def source(self) -> str:
        args = [f"np.array({self.data.tolist()!r}, dtype=np.{self.dtype})"
                f".reshape({self.data.shape})"]
        if self.layout != "plain":
            args.append(f"layout={self.layout!r}")
        if self.layout == "expand":
            args.append(f"shape={self.shape!r}")
        if self.grad:
            args.append("grad=True")
        return f"Input({', '.join(args)})"


def layout_data(data: np.ndarray, layout: str) -> np.ndarray:
    """The leaf array whose ``layout`` view equals ``data``."""
    if layout == "t":
        return np.ascontiguousarray(np.swapaxes(data, -1, -2))
    if layout == "step":
        leaf = np.zeros((2 * data.shape[0],) + data.shape[1:], data.dtype)
        leaf[::2] = data
        return leaf
    return data


@dataclass
class Step:
    op: str
    refs: tuple                 # names of the tensor operands
    params: dict = field(default_factory=dict)

    def expr(self, names) -> str:
        return OPS[self.op].render(list(names), self.params)


@dataclass
class Program:
    inputs: list                # Input
    steps: list                 # Step; step j defines v{j}
    outputs: list               # names returned

    def lines(self, prefix=""):
        rename = {f"x{i}": f"{prefix}x{i}" for i in range(len(self.inputs))}
        rename.update({f"v{j}": f"{prefix}v{j}" for j in range(len(self.steps))})
        body = [f"    {prefix}v{j} = {s.expr(rename[r] for r in s.refs)}"
                for j, s in enumerate(self.steps)]
        return [rename[f"x{i}"] for i in range(len(self.inputs))], body, \
            [rename[o] for o in self.outputs]

    def source(self) -> str:
        return batch_source([self])

    def __str__(self):
        shapes = ", ".join(f"{i.dtype}{list(i.shape)}" for i in self.inputs)
        return f"({shapes}) -> " + " -> ".join(s.op for s in self.steps)


def batch_source(programs) -> str:
    args, body, outs = [], [], []
    for k, p in enumerate(programs):
        a, b, o = p.lines(f"p{k}_" if len(programs) > 1 else "")
        args += a
        body += b
        outs += o
    return (f"def program(ns, F, {', '.join(args)}):\n" + "\n".join(body) +
            f"\n    return [{', '.join(outs)}]\n")


_counter = [0]


def make_function(source: str):
    """The function a program's source defines (registered with linecache, so
    tracebacks and graphc's source lines show the program's text)."""
    _counter[0] += 1
    filename = f"<fuzz-program-{_counter[0]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    env = {"inf": inf, "nan": nan}
    exec(compile(source, filename, "exec"), env)
    return env["program"]


# ---- the op table ------------------------------------------------------------------------
@dataclass
class Op:
    """A fuzz entry: ``template`` renders a call (``{0}``, ``{1}``: operands; ``{name}``:
    ``repr`` of a parameter), or is a function (names, params) -> source; ``draw(g)``
    returns the operand names and the parameters, drawn valid for the values in ``g``."""
    name: str
    template: object
    draw: object

    def render(self, names, params) -> str:
        if callable(self.template):
            return self.template(names, params)
        return self.template.format(*names, **{k: repr(v) for k, v in params.items()})


OPS: dict = {}


def op(name, template, draw):
    assert name not in OPS, name
    OPS[name] = Op(name, template, draw)


def _arity(prim) -> int:
    return len(inspect.signature(prim.infer).parameters)


# Elementwise primitives whose public function has the same name come from the registry:
# unary ones by what they accept, binary ones by operand dtypes.
_UNARY_DTYPES = {"neg": NUMERIC, "abs": NUMERIC, "sign": NUMERIC, "floor": NUMERIC,
                 "logical_not": ALL}
_BINARY_DTYPES = {"logical_and": ALL, "logical_or": ALL, "eq": ALL, "ne": ALL}


def _unary(dtypes):
    return lambda g: ([g.value(g.mix(dtypes))], {})


def _binary(dtypes):
    def draw(g):
        a = g.value(g.mix(dtypes))
        b = g.partner(g.shape(a), g.mix(dtypes))
        return ([a, b] if g.coin() else [b, a]), {}
    return draw


for _prim in REGISTRY.values():
    if _prim.kind == "elementwise" and hasattr(graphc, _prim.name) and _prim.name != "where":
        if _arity(_prim) == 1:
            op(_prim.name, f"ns.{_prim.name}({{0}})",
               _unary(_UNARY_DTYPES.get(_prim.name, FLOATS)))
        else:
            op(_prim.name, f"ns.{_prim.name}({{0}}, {{1}})",
               _binary(_BINARY_DTYPES.get(_prim.name, NUMERIC)))

for _name in ("log2", "log10", "tan", "isnan", "isinf", "isfinite"):
    op(_name, f"ns.{_name}({{0}})", _unary(FLOATS))
for _name in ("ceil", "round", "trunc", "relu"):
    op(_name, f"ns.{_name}({{0}})", _unary(NUMERIC))
for _name in ("floor_divide", "remainder", "true_divide"):
    if _name not in OPS:                         # a primitive of that name came first
        op(_name, f"ns.{_name}({{0}}, {{1}})", _binary(NUMERIC))
op("logical_xor", "ns.logical_xor({0}, {1})", _binary(ALL))
op("logaddexp", "ns.logaddexp({0}, {1})", _binary(FLOATS))
op("div_mode", "ns.div({0}, {1}, rounding_mode={mode})",
   lambda g: (_binary(NUMERIC)(g)[0], {"mode": g.choice(["floor", "trunc"])}))
op("add_alpha", "ns.add({0}, {1}, alpha={alpha})",
   lambda g: (_binary(FLOATS)(g)[0], {"alpha": g.choice([2, -0.5])}))
for _sym in ("+", "-", "*", "/", "**", "//", "%"):
    op(f"scalar{_sym}", f"({{0}} {_sym} {{s}})",
       lambda g: ([g.value(g.mix(NUMERIC))], {"s": g.choice([2, 3, -1, 0.5, -1.5, 0.0])}))
    op(f"rscalar{_sym}", f"({{s}} {_sym} {{0}})",
       lambda g: ([g.value(g.mix(NUMERIC))], {"s": g.choice([2, -1, 0.5, 2.5])}))
op("square", "({0} ** 2)", _unary(NUMERIC))
op("clone", "{0}.clone()", _unary(ALL))
op("detach", "{0}.detach()", _unary(ALL))
op("contiguous", "{0}.contiguous()", _unary(ALL))
op("cast", "{0}.to(getattr(ns, {dtype}))",
   lambda g: ([g.value(ALL)], {"dtype": g.choice(list(ALL))}))


def _where(g):
    c = g.value(("bool",))
    a = g.partner(g.shape(c), g.mix(NUMERIC))
    b = g.partner(g.broadcast(g.shape(c), g.shape(a)), g.mix(NUMERIC))
    return [c, a, b], {}


op("where", "ns.where({0}, {1}, {2})", _where)
op("where_scalar", "ns.where({0}, {1}, {s})",
   lambda g: (_where(g)[0][:2], {"s": g.choice([0.0, -1.5, 2])}))
op("clamp", "ns.clamp({0}, min={lo}, max={hi})",
   lambda g: ([g.value(NUMERIC)], g.choice([{"lo": -1, "hi": 1}, {"lo": None, "hi": 0.5},
                                            {"lo": 0.0, "hi": None}, {"lo": 1, "hi": -1}])))


def _masked_fill(g):
    x = g.value(g.mix(NUMERIC))
    mask = g.new_input(g.sub_shape(g.shape(x)), "bool")
    return [x, mask], {"s": g.choice([0.0, -2.0, inf])}


op("masked_fill", "{0}.masked_fill({1}, {s})", _masked_fill)


# ---- reductions --------------------------------------------------------------------------
def _reduce(dtypes, full=True, tuple_dims=True, empty_ok=True, keep=True):
    def draw(g):
        x = g.value(g.mix(dtypes), nonempty=not empty_ok)
        nd = len(g.shape(x))
        params = {}
        if nd == 0 or (full and g.coin(0.2)):
            params["dim"] = None if full else (g.choice([0, -1]) if nd == 0 else 0)
        elif tuple_dims and g.coin(0.4):
            params["dim"] = tuple(g.dims(nd))
        else:
            params["dim"] = g.dim(nd)
        if keep:
            params["keepdim"] = g.coin()
        return [x], params
    return draw


def _reduction_template(name):
    def render(names, params):
        if params["dim"] is None:
            return f"ns.{name}({names[0]})"
        return f"ns.{name}({names[0]}, dim={params['dim']!r}, keepdim={params['keepdim']!r})"
    return render


for _name in ("sum", "mean", "amax", "amin"):
    op(_name, _reduction_template(_name),
       _reduce(NUMERIC if _name != "mean" else FLOATS, empty_ok=_name in ("sum", "mean")))
op("sum_bool", _reduction_template("sum"), _reduce(("bool",)))
op("prod", _reduction_template("prod"), _reduce(NUMERIC, tuple_dims=False))
for _name in ("argmax", "argmin"):
    op(_name, _reduction_template(_name), _reduce(NUMERIC, tuple_dims=False, empty_ok=False))
for _name in ("all", "any"):
    op(_name, _reduction_template(_name), _reduce(ALL, tuple_dims=False))
op("count_nonzero", "ns.count_nonzero({0}, dim={dim})",
   _reduce(ALL, full=False, tuple_dims=False, keep=False))
op("logsumexp", "ns.logsumexp({0}, dim={dim}, keepdim={keepdim})", _reduce(FLOATS, full=False))
op("cumsum", "ns.cumsum({0}, dim={dim})", _reduce(NUMERIC, full=False, tuple_dims=False,
                                                  keep=False))
for _name in ("max", "min"):
    op(f"{_name}_dim", f"ns.{_name}({{0}}, dim={{dim}}, keepdim={{keepdim}})[{{which}}]",
       lambda g: (lambda r: (r[0], dict(r[1], which=g.choice([0, 1]))))(
           _reduce(NUMERIC, full=False, tuple_dims=False, empty_ok=False)(g)))
    op(f"{_name}_all", f"ns.{_name}({{0}})",
       lambda g: ([g.value(g.mix(NUMERIC), nonempty=True)], {}))
    op(f"{_name}_binary", f"ns.{_name}({{0}}, {{1}})", _binary(NUMERIC))
for _name in ("var", "std"):
    op(_name, f"ns.{_name}({{0}}, dim={{dim}}, unbiased={{unbiased}}, keepdim={{keepdim}})",
       lambda g: (lambda r: (r[0], dict(r[1], unbiased=g.coin())))(_reduce(FLOATS)(g)))
op("norm", "ns.norm({0}, p={p}, dim={dim}, keepdim={keepdim})",
   lambda g: (lambda r: (r[0], dict(r[1], p=g.choice([2, 1, inf, 3]))))(_reduce(FLOATS)(g)))


# ---- movement ----------------------------------------------------------------------------
def _reshape(g):
    x = g.value(ALL)
    shape = g.factor(int(np.prod(g.shape(x), dtype=np.int64)))
    return [x], {"shape": shape}


op("reshape", "{0}.reshape({shape})", _reshape)
op("view", "{0}.view({shape})", _reshape)


def _one_dim(extra=lambda g, shape, d: {}, min_ndim=1, nonempty_dim=False, dtypes=ALL):
    def draw(g):
        x = g.value(g.mix(dtypes), min_ndim=min_ndim)
        shape = g.shape(x)
        d = g.dim(len(shape))
        if nonempty_dim and shape[d] == 0:
            x = g.new_input(tuple(s or 1 for s in shape), g.dtype(x))
            shape = g.shape(x)
        return [x], dict(dim=d, **extra(g, shape, d))
    return draw


op("flatten", "ns.flatten({0}, start_dim={start}, end_dim={end})",
   lambda g: (lambda x: ([x], dict(zip(("start", "end"), sorted(
       [g.dim(max(1, len(g.shape(x)))), g.dim(max(1, len(g.shape(x))))])))))(g.value(ALL)))
op("unflatten", "ns.unflatten({0}, {dim}, {sizes})",
   _one_dim(lambda g, s, d: {"sizes": g.factor(s[d], allow_infer=s[d] > 0)}))
op("squeeze", "ns.squeeze({0}, {dim})", _one_dim(min_ndim=0))
op("squeeze_all", "ns.squeeze({0})", _unary(ALL))
op("unsqueeze", "ns.unsqueeze({0}, {d})",
   lambda g: (lambda x: ([x], {"d": g.dim(len(g.shape(x)) + 1)}))(g.value(ALL, max_ndim=3)))
op("permute", "{0}.permute({perm})",
   lambda g: (lambda x: ([x], {"perm": tuple(int(i) for i in g.rng.permutation(
       len(g.shape(x))))}))(g.value(ALL)))
op("transpose", "ns.transpose({0}, {a}, {b})",
   lambda g: (lambda x: ([x], {"a": g.dim(max(1, len(g.shape(x)))),
                               "b": g.dim(max(1, len(g.shape(x))))}))(g.value(ALL)))
op("t", "ns.t({0})", lambda g: ([g.value(ALL, max_ndim=2)], {}))
op("movedim", "ns.movedim({0}, {a}, {b})",
   _one_dim(lambda g, s, d: {"a": d, "b": g.dim(len(s))}))


def _expand(g):
    x = g.value(ALL, max_ndim=3)
    sizes = [g.choice([2, 3, 0]) if d == 1 and g.coin(0.7) else
             (-1 if g.coin(0.3) else d) for d in g.shape(x)]
    lead = [g.choice([1, 2])] if g.coin(0.3) else []
    return [x], {"sizes": tuple(lead + sizes)}


op("expand", "{0}.expand({sizes})", _expand)


def _broadcast_to(g):
    (x,), params = _expand(g)
    shape, sizes = g.shape(x), params["sizes"]
    lead = len(sizes) - len(shape)
    return [x], {"sizes": tuple(shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))}


op("broadcast_to", "ns.broadcast_to({0}, {sizes})", _broadcast_to)
op("repeat", "{0}.repeat({reps})",
   lambda g: (lambda x: ([x], {"reps": tuple(g.choice([1, 2, 0]) for _ in range(
       len(g.shape(x)) + g.choice([0, 1])))}))(g.value(ALL, max_ndim=3)))


def _narrow(g, s, d):
    start = g.int(0, s[d])
    return {"start": start, "length": g.int(0, s[d] - start)}


op("narrow", "ns.narrow({0}, {dim}, {start}, {length})", _one_dim(_narrow))
op("select", "ns.select({0}, {dim}, {index})",
   _one_dim(lambda g, s, d: {"index": g.int(-s[d], s[d] - 1)}, nonempty_dim=True))


def _getitem(g):
    x = g.value(ALL, min_ndim=1)
    index = []
    for d in g.shape(x):
        r = g.rng.random()
        if r < 0.4:
            index.append(slice(None))
        elif r < 0.55 and d:
            index.append(g.int(-d, d - 1))
        else:
            index.append(slice(g.choice([None, 1, -2]), g.choice([None, 3, -1]),
                               g.choice([None, 2, 3])))
    return [x], {"index": tuple(index)}


op("getitem", "{0}[{index}]", _getitem)
op("flip", "ns.flip({0}, {dims})",
   lambda g: (lambda x: ([x], {"dims": tuple(g.dims(len(g.shape(x))))}))(
       g.value(ALL, min_ndim=1)))
op("pad", "F.pad({0}, {pad}, value={value})",
   lambda g: (lambda x: ([x], {"pad": tuple(g.int(0, 2) for _ in range(
       2 * g.int(1, len(g.shape(x))))), "value": g.choice([0.0, -1.5])}))(
       g.value(FLOATS, min_ndim=1)))


def _pieces(g, stack=False):
    x = g.value(g.mix(ALL), min_ndim=0 if stack else 1)
    shape = g.shape(x)
    d = g.dim(len(shape) + (1 if stack else 0))
    refs = [x]
    for _ in range(g.int(0, 2)):
        s = list(shape)
        if not stack:
            s[d] = g.choice([0, 1, 2, 3])
        refs.append(g.value_of_shape(tuple(s), g.dtype(x) if g.coin(0.8) else g.choice(ALL)))
    return refs, {"dim": d}


def _list_call(fn):
    def render(names, params):
        rest = "".join(f", {k}={v!r}" for k, v in params.items())
        return f"{fn}([{', '.join(names)}]{rest})"
    return render


op("cat", _list_call("ns.cat"), _pieces)
op("stack", _list_call("ns.stack"), lambda g: _pieces(g, stack=True))
op("hstack", _list_call("ns.hstack"), lambda g: (_pieces(g)[0], {}))
op("vstack", _list_call("ns.vstack"), lambda g: (_pieces(g)[0], {}))


def _split(g, s, d):
    size = g.int(1, max(1, s[d]))
    return {"size": size, "which": g.int(0, max(0, -(-s[d] // size) - 1))}


op("split", "ns.split({0}, {size}, dim={dim})[{which}]",
   _one_dim(_split, nonempty_dim=True))
op("chunk", "ns.chunk({0}, {n}, dim={dim})[0]",
   _one_dim(lambda g, s, d: {"n": g.int(1, 4)}, nonempty_dim=True))
op("unbind", "ns.unbind({0}, dim={dim})[{which}]",
   _one_dim(lambda g, s, d: {"which": g.int(0, s[d] - 1)}, nonempty_dim=True))


def _index_select(g):
    x = g.value(g.mix(ALL), min_ndim=1)
    d = g.dim(len(g.shape(x)))
    n = g.shape(x)[d]
    return [x, g.index((g.int(0, 4),) if n else (0,), n)], {"dim": d}


op("index_select", "ns.index_select({0}, {dim}, {1})", _index_select)


def _gather(g):
    x = g.value(g.mix(NUMERIC), min_ndim=1)
    shape = g.shape(x)
    d = g.dim(len(shape))
    ishape = tuple(g.int(0, s) if i != d % len(shape) else g.int(0, 3) * (shape[d] > 0)
                   for i, s in enumerate(shape))
    return [x, g.index(ishape, shape[d])], {"dim": d}


op("gather", "ns.gather({0}, {dim}, {1})", _gather)


def _scatter_add(g):
    (x, index), params = _gather(g)
    src = g.new_input(tuple(i + g.int(0, 1) for i in g.shape(index)), g.dtype(x))
    return [x, index, src], params


op("scatter_add", "ns.scatter_add({0}, {dim}, {1}, {2})", _scatter_add)


def _index_add(g):
    (x, index), params = _index_select(g)
    shape = list(g.shape(x))
    shape[params["dim"]] = g.shape(index)[0]
    return [x, index, g.new_input(tuple(shape), g.dtype(x))], dict(
        params, alpha=g.choice([1, 2]))


op("index_add", "ns.index_add({0}, {dim}, {1}, {2}, alpha={alpha})", _index_add)
for _name in ("tril", "triu"):
    op(_name, f"ns.{_name}({{0}}, diagonal={{k}})",
       lambda g: ([g.value(g.mix(ALL), min_ndim=2)], {"k": g.int(-2, 2)}))
op("diag", "ns.diag({0}, {k})",
   lambda g: ([g.value(g.mix(ALL), min_ndim=1, max_ndim=2)], {"k": g.int(-2, 2)}))
op("one_hot", "F.one_hot({0}, {n})",
   lambda g: (lambda n: ([g.index(g.random_shape(0, 2), n)], {"n": n}))(g.int(1, 4)))


def _embedding(g):
    w = g.value(FLOATS, min_ndim=2, max_ndim=2)
    return [g.index(g.random_shape(0, 2), g.shape(w)[0]), w], {}


op("embedding", "F.embedding({0}, {1})", _embedding)


# ---- contractions ------------------------------------------------------------------------
def _matmul(g):
    dtype = g.choice(list(FLOATS))
    a = g.value((dtype,), min_ndim=1, max_ndim=3)
    sa = g.shape(a)
    k = sa[-1]
    if len(sa) == 1 or g.coin(0.3):
        sb = (k,) if g.coin(0.3) else (k, g.int(0, 3))
    else:
        sb = g.sub_shape(sa[:-2]) + (k, g.int(0, 3))
    b = g.value_of_shape(sb, dtype)
    return ([a, b] if len(sa) > 1 or len(sb) > 1 or g.coin() else [b, a]), {}


op("matmul", "ns.matmul({0}, {1})", _matmul)
op("matmul_op", "({0} @ {1})", _matmul)


def _two_d(g, rows, cols, dtype):
    return g.value_of_shape((rows, cols), dtype)


def _mm(g):
    dtype = g.choice(list(FLOATS))
    n, k, m = g.int(0, 3), g.int(0, 4), g.int(0, 3)
    return [_two_d(g, n, k, dtype), _two_d(g, k, m, dtype)], {}


op("mm", "ns.mm({0}, {1})", _mm)
op("bmm", "ns.bmm({0}, {1})", lambda g: (lambda b, n, k, m, dt: (
    [g.value_of_shape((b, n, k), dt), g.value_of_shape((b, k, m), dt)], {}))(
    g.int(0, 2), g.int(0, 3), g.int(0, 3), g.int(0, 3), g.choice(list(FLOATS))))
op("dot", "ns.dot({0}, {1})", lambda g: (lambda n, dt: (
    [g.value_of_shape((n,), dt), g.value_of_shape((n,), dt)], {}))(
    g.int(0, 5), g.choice(list(FLOATS))))
op("mv", "ns.mv({0}, {1})", lambda g: (lambda n, k, dt: (
    [g.value_of_shape((n, k), dt), g.value_of_shape((k,), dt)], {}))(
    g.int(0, 3), g.int(0, 4), g.choice(list(FLOATS))))
op("outer", "ns.outer({0}, {1})", lambda g: (lambda dt: (
    [g.value((dt,), min_ndim=1, max_ndim=1), g.value((dt,), min_ndim=1, max_ndim=1)], {}))(
    g.choice(list(FLOATS))))


def _linear(g):
    x = g.value(("float32",), min_ndim=1, max_ndim=3)
    k, out = g.shape(x)[-1], g.int(0, 3)
    refs = [x, g.value_of_shape((out, k), "float32")]
    if g.coin():
        refs.append(g.value_of_shape((out,), "float32"))
    return refs, {}


op("linear", lambda n, p: f"F.linear({', '.join(n)})", _linear)


def _conv2d(g):
    n, c, o = g.int(1, 2), g.int(1, 2), g.int(1, 3)
    kh, kw = g.int(1, 3), g.int(1, 3)
    params = {"stride": g.choice([1, 2]), "padding": g.choice([0, 1]),
              "dilation": g.choice([1, 1, 2])}
    h = g.int(0, 2) + params["dilation"] * (kh - 1) + 1 - 2 * params["padding"]
    w = g.int(0, 2) + params["dilation"] * (kw - 1) + 1 - 2 * params["padding"]
    refs = [g.value_of_shape((n, c, max(h, 1), max(w, 1)), "float32"),
            g.value_of_shape((o, c, kh, kw), "float32")]
    if g.coin():
        refs.append(g.value_of_shape((o,), "float32"))
    return refs, params


def _conv_template(names, params):
    rest = "".join(f", {k}={v!r}" for k, v in params.items())
    bias = names[2] if len(names) > 2 else "None"
    return f"F.conv2d({names[0]}, {names[1]}, {bias}{rest})"


op("conv2d", _conv_template, _conv2d)


def _pool(g):
    k = g.int(1, 3)
    shape = (g.int(1, 2), g.int(1, 2), g.int(k, 5), g.int(k, 5))
    return [g.value_of_shape(shape if g.coin(0.7) else shape[1:], "float32")], {
        "k": k, "stride": g.choice([None, 1, 2]), "padding": g.int(0, k // 2)}


op("max_pool2d", "F.max_pool2d({0}, {k}, stride={stride}, padding={padding})", _pool)
op("avg_pool2d", "F.avg_pool2d({0}, {k}, stride={stride}, padding={padding})", _pool)


# ---- composites --------------------------------------------------------------------------
for _name, _params in (("relu", {}), ("leaky_relu", {"negative_slope": [0.01, 0.2]}),
                       ("elu", {"alpha": [1.0, 0.5]}), ("gelu", {"approximate": ["none", "tanh"]}),
                       ("silu", {}), ("softplus", {"beta": [1.0, 2.0], "threshold": [20.0, 1.0]}),
                       ("hardtanh", {"min_val": [-1.0, -0.5], "max_val": [1.0, 2.0]}),
                       ("hardswish", {}), ("sigmoid", {}), ("tanh", {})):
    op(f"F.{_name}", f"F.{_name}({{0}}" + "".join(f", {k}={{{k}}}" for k in _params) + ")",
       lambda g, _params=_params: ([g.value(FLOATS)],
                                   {k: g.choice(v) for k, v in _params.items()}))
for _name in ("softmax", "log_softmax"):
    op(_name, f"ns.{_name}({{0}}, dim={{dim}})", _one_dim(min_ndim=0, dtypes=FLOATS))
# Random, so compared by a property: each element is dropped (0) or scaled by 1 / (1 - p).
op("dropout_random", "(lambda d: (d == 0) | (d == 2 * {0}) | ~ns.isfinite({0}))("
   "F.dropout({0}, p=0.5, training=True))", _unary(FLOATS))
op("dropout", "F.dropout({0}, p={p}, training={training})",
   lambda g: ([g.value(FLOATS)], g.choice([{"p": 0.0, "training": True},
                                            {"p": 1.0, "training": True},
                                            {"p": 0.5, "training": False}])))


def _layer_norm(g):
    x = g.value(FLOATS, min_ndim=1)
    shape = g.shape(x)[len(g.shape(x)) - g.int(1, len(g.shape(x))):]
    refs = [x]
    if g.coin():
        refs += [g.value_of_shape(shape, g.dtype(x)), g.value_of_shape(shape, g.dtype(x))]
    return refs, {"shape": shape}


op("layer_norm", lambda n, p: f"F.layer_norm({n[0]}, {p['shape']!r}" +
   (f", {n[1]}, {n[2]})" if len(n) > 1 else ")"), _layer_norm)


def _batch_norm(g):
    x = g.value(("float32",), min_ndim=2, max_ndim=4)
    c = g.shape(x)[1]
    training = g.coin()
    if training:    # weight and bias contiguous: PyTorch 2.13's backward misreads a strided
        return [x, g.new_input((c,), "float32", plain=True),     # weight (a PyTorch bug)
                g.new_input((c,), "float32", plain=True)], {"training": True}
    mean = g.new_input((c,), "float32", grad=False, plain=True)
    return [x, mean, g.new_input((c,), "float32", 0.1, False, True)], {"training": False}


op("batch_norm", lambda n, p: (
    f"F.batch_norm({n[0]}, None, None, {n[1]}, {n[2]}, training=True)" if p["training"]
    else f"F.batch_norm({n[0]}, {n[1]}, {n[2]}, training=False)"), _batch_norm)


def _pair_loss(g):
    x = g.value(FLOATS)
    return [x, g.value_of_shape(g.shape(x), g.dtype(x))], {
        "reduction": g.choice(["mean", "sum", "none"])}


for _name in ("mse_loss", "l1_loss", "smooth_l1_loss"):
    op(_name, f"F.{_name}({{0}}, {{1}}, reduction={{reduction}})", _pair_loss)
op("binary_cross_entropy",
   "F.binary_cross_entropy(ns.sigmoid({0}), ns.sigmoid({1}), reduction={reduction})",
   _pair_loss)
op("binary_cross_entropy_with_logits",
   "F.binary_cross_entropy_with_logits({0}, {1}, reduction={reduction})", _pair_loss)


def _class_loss(g):
    x = g.value(FLOATS, min_ndim=1, max_ndim=3, nonempty=True)
    shape = g.shape(x)
    classes = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    target = g.index(tshape, classes, ignore=-100 if g.coin(0.3) else None)
    return [x, target], {"reduction": g.choice(["mean", "sum", "none"])}


op("nll_loss", "F.nll_loss({0}, {1}, reduction={reduction})", _class_loss)
op("cross_entropy", "F.cross_entropy({0}, {1}, reduction={reduction}, "
   "label_smoothing={smoothing})",
   lambda g: (lambda r: (r[0], dict(r[1], smoothing=g.choice([0.0, 0.1]))))(_class_loss(g)))
op("cross_entropy_probs", "F.cross_entropy({0}, ns.softmax({1}, dim=-1 if {1}.dim() == 1 "
   "else 1), reduction={reduction})", _pair_loss)
op("normalize", "F.normalize({0}, p={p}, dim={dim})",
   _one_dim(dtypes=FLOATS, extra=lambda g, s, d: {"p": g.choice([2.0, 1.0])}))


def _cosine(g):
    x = g.value(FLOATS, min_ndim=1)
    return [x, g.value_of_shape(g.sub_shape(g.shape(x), keep_ndim=True), g.dtype(x))], {
        "dim": g.dim(len(g.shape(x)))}


op("cosine_similarity", "F.cosine_similarity({0}, {1}, dim={dim})", _cosine)


# ---- activations, norms, losses and attention of nn.functional ---------------------------
def _floats_choice(params):
    return lambda g: ([g.value(FLOATS)], {k: g.choice(v) for k, v in params.items()})


def _call(fn, names, params):
    """``fn(names..., k=v...)``, parameters in the order drawn."""
    return f"{fn}({', '.join(list(names) + [f'{k}={v!r}' for k, v in params.items()])})"


_ACTIVATIONS = {"relu6": {}, "selu": {}, "celu": {"alpha": [1.0, 0.5]}, "mish": {},
                "hardshrink": {"lambd": [0.5, 1.0]}, "softshrink": {"lambd": [0.5, 1.0]},
                "softsign": {}, "tanhshrink": {}, "logsigmoid": {},
                "threshold": {"threshold": [0.5, -1.0], "value": [0.0, 2.0]}}
for _name, _params in _ACTIVATIONS.items():
    op(f"F.{_name}", lambda n, p, _name=_name: _call(f"F.{_name}", n, p),
       _floats_choice(_params))
# float32 only: PyTorch's float64 hardsigmoid backward multiplies by a float32 1/6.
op("F.hardsigmoid", "F.hardsigmoid({0})", lambda g: ([g.value(("float32",))], {}))
# The in-place forms, on a copy: an input that requires grad cannot be written in place.
_INPLACE = {"relu_": {}, "elu_": {"alpha": [1.0, 0.5]}, "leaky_relu_": {
    "negative_slope": [0.01, 0.2]}, "hardtanh_": {"min_val": [-1.0, -0.5], "max_val": [1.0, 2.0]},
    "celu_": {"alpha": [1.0, 0.5]}, "selu_": {}, "threshold_": {"threshold": [0.5, -1.0],
                                                               "value": [0.0, 2.0]},
    "rrelu_": {"lower": [0.125, 0.2], "upper": [0.25, 1 / 3], "training": [False]}}
for _name, _params in _INPLACE.items():
    op(f"F.{_name}", lambda n, p, _name=_name: _call(f"F.{_name}", [f"{n[0]}.clone()"], p),
       _floats_choice(_params))
op("F.rrelu", lambda n, p: _call("F.rrelu", n, p),
   _floats_choice({"lower": [0.125, 0.2], "upper": [0.25, 1 / 3], "training": [False]}))
# Random in training: each negative x becomes a * x with a in [lower, upper], the rest stay.
op("rrelu_random", "(lambda d: (d == {0}) | ((d - 0.125 * {0}).abs() + (d - 0.5 * {0}).abs() "
   "<= 0.375 * {0}.abs() * 1.0001 + 1e-30) | ~ns.isfinite({0}))("
   "F.rrelu({0}, lower=0.125, upper=0.5, training=True))", _unary(FLOATS))
for _name in ("softmin",):
    op(_name, f"F.{_name}({{0}}, dim={{dim}})", _one_dim(min_ndim=0, dtypes=FLOATS))
# PyTorch has no F.softmax2d (graphc's backs nn.Softmax2d): reached through the module.
op("softmax2d", "ns.nn.Softmax2d()({0})", lambda g: ([g.value(FLOATS, min_ndim=3, max_ndim=4)], {}))


def _glu(g):
    x = g.value(FLOATS, min_ndim=1)
    shape = g.shape(x)
    d = g.dim(len(shape))
    if shape[d] % 2:
        x = g.new_input(shape[:d % len(shape)] + (2 * shape[d] or 2,) +
                        shape[d % len(shape) + 1:], g.dtype(x))
    return [x], {"dim": d}


op("glu", "F.glu({0}, dim={dim})", _glu)


def _prelu(g):
    x = g.value(FLOATS)
    shape = g.shape(x)
    n = shape[1] if len(shape) >= 2 and g.coin(0.7) else 1
    return [x, g.new_input((n,), g.dtype(x))], {}


op("prelu", "F.prelu({0}, {1})", _prelu)

# Dropouts are compared exactly where they are deterministic (not training, p = 0, p = 1),
# and in training with p = 0.5 by a property, as dropout is.
_DROPOUT_NDIM = {"dropout1d": (2, 3), "dropout2d": (3, 4), "dropout3d": (4, 5),
                 "alpha_dropout": (0, 4), "feature_alpha_dropout": (2, 5)}
for _name, (_lo, _hi) in _DROPOUT_NDIM.items():
    op(_name, f"F.{_name}({{0}}, p={{p}}, training={{training}})",
       lambda g, _lo=_lo, _hi=_hi: ([g.value(FLOATS, min_ndim=_lo, max_ndim=_hi)], g.choice(
           [{"p": 0.0, "training": True}, {"p": 1.0, "training": True},
            {"p": 0.5, "training": False}])))
for _name in ("dropout1d", "dropout2d", "dropout3d"):
    _lo, _hi = _DROPOUT_NDIM[_name]
    op(f"{_name}_random", "(lambda d: (d == 0) | (d == 2 * {0}) | ~ns.isfinite({0}))("
       f"F.{_name}({{0}}, p=0.5, training=True))",
       lambda g, _lo=_lo, _hi=_hi: ([g.value(FLOATS, min_ndim=_lo, max_ndim=_hi)], {}))
# PyTorch's alpha dropout keeps a * x + alpha * a * p and sets the rest to alpha * a * (p - 1),
# a = ((alpha^2 p + 1)(1 - p))^-1/2, alpha = 1.7580993408473766 (SELU's alpha * scale).
_ALPHA = 1.7580993408473766
_A = ((_ALPHA ** 2 * 0.5 + 1) * 0.5) ** -0.5
for _name, (_lo, _hi) in (("alpha_dropout", (0, 4)), ("feature_alpha_dropout", (2, 5))):
    op(f"{_name}_random",
       f"(lambda d: ns.isclose(d, {{0}} * {_A!r} + {_ALPHA * _A * 0.5!r}, rtol=1e-4, "
       f"atol=1e-5) | ns.isclose(d, d * 0 + {_ALPHA * _A * -0.5!r}, rtol=1e-4, atol=1e-5) | "
       f"~ns.isfinite({{0}}))(F.{_name}({{0}}, p=0.5, training=True))",
       lambda g, _lo=_lo, _hi=_hi: ([g.value(FLOATS, min_ndim=_lo, max_ndim=_hi)], {}))


def _channels_norm(g, min_ndim=2):
    """x of shape (N, C, ...), and maybe a weight and a bias of shape (C,)."""
    x = g.value(FLOATS, min_ndim=min_ndim, max_ndim=4)
    c = g.shape(x)[1]
    refs = [x]
    if g.coin():
        refs += [g.value_of_shape((c,), g.dtype(x)), g.value_of_shape((c,), g.dtype(x))]
    return refs, c


def _group_norm(g):
    refs, c = _channels_norm(g)
    return refs, {"groups": g.choice([d for d in range(1, c + 1) if c % d == 0] or [1])}


op("group_norm", lambda n, p: f"F.group_norm({n[0]}, {p['groups']}" +
   "".join(f", {r}" for r in n[1:]) + ")", _group_norm)


def _instance_norm(g):
    refs, c = _channels_norm(g, min_ndim=3)
    if g.coin(0.3):     # the running statistics instead of the input's
        refs = refs[:1] + [g.new_input((c,), "float32", grad=False, plain=True),
                           g.new_input((c,), "float32", 0.1, False, True)] + refs[1:]
        return refs, {"use_input_stats": False}
    return refs, {}


def _instance_norm_template(n, p):
    if p:
        stats = f"{n[1]}, {n[2]}"
        rest = f", {n[3]}, {n[4]}" if len(n) > 3 else ""
        return f"F.instance_norm({n[0]}, {stats}{rest}, use_input_stats=False)"
    wb = f", weight={n[1]}, bias={n[2]}" if len(n) > 1 else ""
    return f"F.instance_norm({n[0]}{wb})"


op("instance_norm", _instance_norm_template, _instance_norm)


def _rms_norm(g):
    refs, params = _layer_norm(g)
    return refs[:2], dict(params, eps=g.choice([None, 1e-3]))


op("rms_norm", lambda n, p: f"F.rms_norm({n[0]}, {p['shape']!r}" +
   (f", {n[1]}" if len(n) > 1 else "") + f", eps={p['eps']!r})", _rms_norm)
op("local_response_norm", lambda n, p: _call("F.local_response_norm", n, p),
   lambda g: ([g.value(FLOATS, min_ndim=3, max_ndim=4)],
              {"size": g.int(1, 4), "alpha": g.choice([1e-4, 0.5]),
               "beta": g.choice([0.75, 1.0]), "k": g.choice([1.0, 2.0])}))


def _bilinear(g):
    """in1, in2 >= 1: PyTorch fails its own internal reshape for empty features."""
    lead = g.random_shape(0, 2)
    i1, i2, out = g.int(1, 3), g.int(1, 3), g.int(0, 3)
    refs = [g.value_of_shape(lead + (i1,), "float32"), g.value_of_shape(lead + (i2,), "float32"),
            g.value_of_shape((out, i1, i2), "float32")]
    if g.coin():
        refs.append(g.value_of_shape((out,), "float32"))
    return refs, {}


op("bilinear", lambda n, p: f"F.bilinear({', '.join(n)})", _bilinear)


def _embedding_bag(g):
    """2-d bags (no offsets), or a 1-d index cut into bags by offsets (0 first, ascending)."""
    w = g.value(FLOATS, min_ndim=2, max_ndim=2, nonempty=True)
    rows = g.shape(w)[0]
    params = {"mode": g.choice(["mean", "sum", "max"]), "offsets": g.coin()}
    if params["offsets"]:
        n = g.int(0, 5)
        index = g.index((n,), rows)
        cuts = sorted(g.int(0, n) for _ in range(g.int(0, 2)))
        refs = [index, w, g._input(np.array([0] + cuts, np.int64), False)]
    else:
        index = g.index((g.int(1, 3), g.int(1, 3)), rows)
        refs = [index, w]
    params["weighted"] = params["mode"] == "sum" and g.coin(0.3)
    if params["weighted"]:
        refs.append(g.value_of_shape(g.shape(index), g.dtype(w)))
    if g.coin(0.3):
        params["padding_idx"] = g.int(0, rows - 1)
    return refs, params


def _embedding_bag_render(n, p):
    rest = {k: v for k, v in p.items() if k not in ("offsets", "weighted")}
    offsets = n[2] if p["offsets"] else "None"
    weights = f", per_sample_weights={n[-1]}" if p["weighted"] else ""
    return (f"F.embedding_bag({n[0]}, {n[1]}, {offsets}" +
            "".join(f", {k}={v!r}" for k, v in rest.items()) + weights + ")")


op("embedding_bag", _embedding_bag_render, _embedding_bag)


# embedding_renorm_ (PyTorch's torch.embedding_renorm_; graphc exposes it as the renorm of
# F.embedding's max_norm, which writes the weight in place outside autograd, as PyTorch does).
def _embedding_renorm(g):
    (index, w), _ = _embedding(g)
    return [index, w], {"max_norm": g.choice([1.0, 0.5, 3.0]), "norm_type": g.choice([2.0, 1.0])}


op("embedding_renorm_", "F.embedding({0}, {1}.detach().clone(), max_norm={max_norm}, "
   "norm_type={norm_type})", _embedding_renorm)


# ---- the losses of nn.functional ----------------------------------------------------------
_REDUCTIONS = ["mean", "sum", "none"]


def _with(draw, **choices):
    """``draw``, its parameters extended by one choice of each of ``choices``."""
    return lambda g: (lambda r: (r[0], dict(r[1], **{k: g.choice(v) for k, v in
                                                     choices.items()})))(draw(g))


op("kl_div", lambda n, p: _call("F.kl_div", [n[0], n[1] if p["log_target"]
                                             else f"ns.sigmoid({n[1]})"], p),
   _with(_pair_loss, reduction=["mean", "sum", "none", "batchmean"], log_target=[False, True]))
op("huber_loss", lambda n, p: _call("F.huber_loss", n, p), _with(_pair_loss, delta=[1.0, 0.5]))
def _fixed_target(g):
    """A target PyTorch has no derivative for: it must not require grad."""
    x = g.value(FLOATS)
    return [x, g.new_input(g.shape(x), g.dtype(x), grad=False)], {
        "reduction": g.choice(_REDUCTIONS)}


op("soft_margin_loss", lambda n, p: _call("F.soft_margin_loss", n, p), _fixed_target)


def _per_class(g):
    """x of shape (N, C) or (C,), the class count C."""
    x = g.value(FLOATS, min_ndim=1, max_ndim=2, nonempty=True)
    return x, g.shape(x)[-1]


def _multilabel_soft_margin(g):
    x, c = _per_class(g)
    refs = [x, g.new_input(g.shape(x), g.dtype(x), low=0.0)]
    if g.coin(0.3):
        refs.append(g.new_input((c,), g.dtype(x)))
    return refs, {"reduction": g.choice(_REDUCTIONS)}


op("multilabel_soft_margin_loss", lambda n, p: _call("F.multilabel_soft_margin_loss",
                                                     n[:2] + [f"weight={n[2]}"] * (len(n) > 2),
                                                     p), _multilabel_soft_margin)


def _multi_margin(g):
    x, c = _per_class(g)
    refs = [x, g.index(g.shape(x)[:-1], c)]
    if g.coin(0.3):     # positive and finite, as class weights are; PyTorch has no
        refs.append(g.new_input((c,), g.dtype(x), low=0.1, grad=False))  # derivative for it
    return refs, {"p": g.choice([1, 2]), "margin": g.choice([1.0, 0.5]),
                  "reduction": g.choice(_REDUCTIONS)}


op("multi_margin_loss", lambda n, p: _call("F.multi_margin_loss",
                                           n[:2] + [f"weight={n[2]}"] * (len(n) > 2), p),
   _multi_margin)


def _multilabel_margin(g):
    x, c = _per_class(g)
    target = g.rng.integers(-1, c, g.shape(x))      # -1 ends a row's labels
    return [x, g._input(target.astype(np.int64), False)], {"reduction": g.choice(_REDUCTIONS)}


op("multilabel_margin_loss", lambda n, p: _call("F.multilabel_margin_loss", n, p),
   _multilabel_margin)


def _signs(g, shape):
    """A float input of -1 and 1."""
    return g._input(g.rng.choice([-1.0, 1.0], shape).astype(np.float32), False)


def _margin_ranking(g):
    x = g.value(FLOATS)
    return [x, g.value_of_shape(g.shape(x), g.dtype(x)), _signs(g, g.shape(x))], {
        "margin": g.choice([0.0, 0.5]), "reduction": g.choice(_REDUCTIONS)}


op("margin_ranking_loss", lambda n, p: _call("F.margin_ranking_loss", n, p), _margin_ranking)
op("hinge_embedding_loss", lambda n, p: _call("F.hinge_embedding_loss", n, p),
   lambda g: (lambda x: ([x, _signs(g, g.shape(x))], {
       "margin": g.choice([1.0, 0.5]), "reduction": g.choice(_REDUCTIONS)}))(g.value(FLOATS)))


def _vectors(g, count):
    """``count`` values of one shape (N, D) or (D,)."""
    x = g.value(FLOATS, min_ndim=1, max_ndim=2)
    return [x] + [g.value_of_shape(g.shape(x), g.dtype(x)) for _ in range(count - 1)]


op("cosine_embedding_loss", lambda n, p: _call("F.cosine_embedding_loss", n, p),
   lambda g: (lambda v: (v + [_signs(g, g.shape(v[0])[:-1])], {
       "margin": g.choice([0.0, 0.5]), "reduction": g.choice(_REDUCTIONS)}))(_vectors(g, 2)))
op("triplet_margin_loss", lambda n, p: _call("F.triplet_margin_loss", n, p),
   lambda g: (_vectors(g, 3), {"margin": g.choice([1.0, 0.5]), "p": g.choice([2, 1]),
                               "swap": g.coin(), "reduction": g.choice(_REDUCTIONS)}))
_DISTANCES = {None: "None", "cosine": "lambda a, b: 1 - F.cosine_similarity(a, b)"}
op("triplet_margin_with_distance_loss", lambda n, p: (
    f"F.triplet_margin_with_distance_loss({', '.join(n)}, distance_function="
    f"{_DISTANCES[p['distance']]}, margin={p['margin']!r}, swap={p['swap']!r}, "
    f"reduction={p['reduction']!r})"),
   lambda g: (_vectors(g, 3), {"distance": g.choice([None, "cosine"]),
                               "margin": g.choice([1.0, 0.5]), "swap": g.coin(),
                               "reduction": g.choice(_REDUCTIONS)}))
op("poisson_nll_loss", lambda n, p: _call("F.poisson_nll_loss", [
    n[0] if p["log_input"] else f"{n[0]}.abs()", f"{n[1]}.abs()"], p),
   _with(_pair_loss, log_input=[True, False], full=[False, True]))


def _gaussian_nll(g):
    (x, target), params = _pair_loss(g)
    shape = g.shape(x)
    vshape = g.choice([shape, shape[:-1] + (1,)] if shape else [shape])
    return [x, target, g.new_input(vshape, g.dtype(x), low=0.01)], dict(
        params, full=g.coin())


op("gaussian_nll_loss", lambda n, p: _call("F.gaussian_nll_loss", n, p), _gaussian_nll)


def _ctc(g):
    """log_probs (T, N, C), targets (N, S) of classes 1..C-1 (0 is the blank), lengths up
    to T and S."""
    t, n, c, s = g.int(1, 5), g.int(1, 3), g.int(2, 4), g.int(1, 3)
    x = g.value_of_shape((t, n, c), g.choice(list(FLOATS)))
    targets = g._input(g.rng.integers(1, c, (n, s)).astype(np.int64), False)
    return [x, targets], {"input_lengths": tuple(g.int(1, t) for _ in range(n)),
                          "target_lengths": tuple(g.int(0, s) for _ in range(n)),
                          "reduction": g.choice(_REDUCTIONS), "zero_infinity": g.coin()}


op("ctc_loss", lambda n, p: _call("F.ctc_loss", [f"ns.log_softmax({n[0]}, 2)", n[1]], p), _ctc)


def _pairwise_distance(g):
    x = g.value(FLOATS, min_ndim=1, max_ndim=3)
    shape = g.shape(x)
    y = g.value_of_shape(g.sub_shape(shape[:-1]) + shape[-1:], g.dtype(x))
    return ([x, y] if g.coin() else [y, x]), {"p": g.choice([2.0, 1.0, 3.0]),
                                             "keepdim": g.coin()}


op("pairwise_distance", lambda n, p: _call("F.pairwise_distance", n, p), _pairwise_distance)
# Non-empty: PyTorch 2.13's pdist backward of zero rows is a segmentation fault.
op("pdist", "F.pdist({0}, p={p})", lambda g: (
    [g.value(FLOATS, min_ndim=2, max_ndim=2, nonempty=True)], {"p": g.choice([2.0, 1.0, 3.0])}))


# ---- attention ----------------------------------------------------------------------------
def _sdpa(g):
    dtype = g.choice(list(FLOATS))
    lead = g.random_shape(0, 2)
    lq, s, e, ev = g.int(1, 3), g.int(1, 3), g.int(1, 4), g.int(1, 3)
    refs = [g.value_of_shape(lead + (lq, e), dtype), g.value_of_shape(lead + (s, e), dtype),
            g.value_of_shape(lead + (s, ev), dtype)]
    params = {"is_causal": g.coin(0.3)}
    if not params["is_causal"] and g.coin(0.4):
        refs.append(g.new_input((lq, s), g.choice(["bool", dtype])))
    if g.coin(0.3):
        params["scale"] = g.choice([0.5, 2.0])
    return refs, params


op("scaled_dot_product_attention", lambda n, p: _call(
    "F.scaled_dot_product_attention", n[:3] + [f"attn_mask={n[3]}"] * (len(n) > 3), p), _sdpa)


def _mha(g):
    """multi_head_attention_forward as nn.MultiheadAttention calls it (no dropout)."""
    heads = g.choice([1, 2])
    e, lq, s = heads * g.int(1, 2), g.int(1, 3), g.int(1, 3)
    batch = (g.int(1, 2),) if g.coin(0.7) else ()
    q = g.value_of_shape((lq,) + batch + (e,), "float32")
    k = g.value_of_shape((s,) + batch + (e,), "float32")
    refs = [q, k, k if g.coin(0.3) else g.value_of_shape((s,) + batch + (e,), "float32"),
            g.new_input((3 * e, e), "float32"), g.new_input((3 * e,), "float32"),
            g.new_input((e, e), "float32"), g.new_input((e,), "float32")]
    params = {"heads": heads, "need_weights": g.coin(), "which": 0}
    params["which"] = g.choice([0, 1]) if params["need_weights"] else 0
    if g.coin(0.3):
        refs.append(g.new_input((lq, s), "bool"))
    return refs, params


op("multi_head_attention_forward", lambda n, p: (
    f"F.multi_head_attention_forward({n[0]}, {n[1]}, {n[2]}, {n[3]}.shape[1], {p['heads']}, "
    f"{n[3]}, {n[4]}, None, None, False, 0.0, {n[5]}, {n[6]}, training=False, "
    f"need_weights={p['need_weights']!r}" + (f", attn_mask={n[7]}" if len(n) > 7 else "") +
    f")[{p['which']}]"), _mha)


# ---- exclusions ----------------------------------------------------------------------------
# Steps whose comparison with PyTorch says nothing about graphc: a drawn step that may hit
# one is redrawn.  Each entry says why; a graphc bug found by the fuzzer is fixed (with a
# regression test in tests/fuzz/test_fuzz_regressions.py), never listed here.
def _has(t, pred) -> bool:
    a = t.numpy() if t.numel() else np.zeros(0)
    with np.errstate(all="ignore"):
        return bool(np.any(pred(a.astype(np.float64))))


def _huge(t, limit):
    return t.dtype != graphc.bool and _has(t, lambda a: ~(np.abs(a) <= limit))


def excluded(step: Step, args) -> str | None:
    """Why ``step`` on eager values ``args`` is not compared, else None."""
    name, p = step.op, step.params
    checks = {
        # PyTorch's gelu(inf) is nan (x * erf(inf) computed as inf - inf); graphc gives inf.
        "gelu(inf)": name == "F.gelu" and _has(args[0], np.isinf),
        # Huge terms that cancel give any result, depending on the summation order.
        "sums of huge terms": name in ("conv2d", "matmul", "matmul_op", "mm", "bmm", "dot",
                                       "mv", "linear", "F.avg_pool2d", "avg_pool2d",
                                       "bilinear", "scaled_dot_product_attention",
                                       "multi_head_attention_forward")
            and any(_huge(a, 1e15) for a in args),
        # PyTorch's own conv2d multiplies the zeros of padding by an infinite weight for
        # some kernel shapes (nan) and not for others: there is no reference to match.
        "conv2d padding or dilation times inf/nan": name == "conv2d"
            and (p["padding"] or p["dilation"] > 1) and any(_huge(a, 1e38) for a in args),
        # PyTorch checks that binary_cross_entropy's input lies in [0, 1] (nan fails);
        # graphc checks eagerly, but compiled code does not check values (open).
        "binary_cross_entropy of input outside [0, 1]": name == "binary_cross_entropy"
            and _has(args[0], lambda a: ~((a >= 0) & (a <= 1))),
        # PyTorch's fused layer_norm/batch_norm compute x * (w * rstd) + (b - mean * w *
        # rstd): when the variance overflows (rstd = 0) or w is infinite, that is
        # inf * 0 or inf - inf = nan where graphc's (x - mean) * rstd * w + b is not.
        "norms of values whose squares overflow, or inf/nan weights": name in (
            "layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm") and (
                _huge(args[0], 1e18) or any(_huge(a, 1e38) for a in args[1:])),
        # PyTorch's vectorised % gives nan when x / y overflows (3.0 % 3e-39 in a tensor
        # of many elements); its one-element path and graphc give fmod's exact result.
        "float % by a divisor so small the quotient overflows": name in (
            "remainder", "scalar%", "rscalar%") and builtins.any(
                a.dtype.is_floating_point and _has(a, lambda v: (v != 0) & (np.abs(v) < 1e-30))
                for a in args),
        # PyTorch's logsumexp backward is exp(x - result): when log(n) is below the
        # result's ulp (|x| > 1e7 in float32) that is 1, not 1/n; graphc's is softmax.
        "logsumexp of values too large to hold log(n)": name == "logsumexp"
            and _huge(args[0], 1e7),
        # Converting nan, inf or an out-of-range float to an integer is undefined in C:
        # PyTorch's CPU gives INT64_MIN, CUDA saturates, and so do graphc's backends.
        "cast of nan/inf/out-of-range floats to an integer": name == "cast"
            and p["dtype"] in ("int64", "int32") and args[0].dtype.is_floating_point
            and _huge(args[0], 2.0 ** 31),
        # PyTorch raises an internal IndexError ("select(): index 0 out of range") for a
        # batch_norm with zero channels and a weight (instance_norm: zero N * C, as it is a
        # batch_norm over N * C channels); the empty result is graphc's.
        "batch_norm with zero channels and a weight": args[0].dim() > 1 and (
            name == "batch_norm" and args[0].shape[1] == 0
            or name == "instance_norm" and args[0].shape[0] * args[0].shape[1] == 0),
        # A group of one element has variance 0, so rstd = 1/sqrt(eps) = 316, and PyTorch's
        # fused formula cancels x * (w * rstd) against mean * w * rstd: float32 noise of
        # 1e-3 where graphc's (x - mean) * rstd * w + b is exact.
        # PyTorch's ctc recursion never reads the log-probs of an impossible alignment
        # (target longer than input): its loss is inf (0 with zero_infinity) even where
        # they are nan; graphc's dense recursion reads them all (open).
        "ctc_loss of non-finite log-probs": name == "ctc_loss" and _huge(args[0], 1e30),
        "group_norm of one-element groups": name == "group_norm"
            and args[0].numel() == args[0].shape[0] * p["groups"],
        # Eager graphc results keep a transposed input's layout where PyTorch's may not,
        # so whether a later .view() succeeds can differ (open: see docs/fuzzing.md).
        "view of a non-contiguous eager result": name == "view"
            and not args[0].is_contiguous(),
    }
    return next((k for k, v in checks.items() if v), None)


# ---- drawing -----------------------------------------------------------------------------
class Drawer:
    """Draws one program, running each step eagerly in graphc (no grad) as it goes, so
    every step is drawn for shapes and dtypes that exist."""

    def __init__(self, rng, special=0.15):
        self.rng = rng
        self.special = special
        self.inputs = []
        self.values = {}          # name -> eager graphc tensor
        self.order = []

    # random helpers
    def coin(self, p=0.5) -> bool:
        return bool(self.rng.random() < p)

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def int(self, lo, hi) -> int:
        return int(self.rng.integers(lo, hi + 1)) if hi >= lo else lo

    def mix(self, dtypes):
        """``dtypes`` mostly, any dtype sometimes (promotion, or the error PyTorch gives)."""
        return ALL if self.coin(0.08) else dtypes

    def dim(self, ndim) -> int:
        d = self.int(0, max(ndim, 1) - 1)
        return d - max(ndim, 1) if self.coin(0.3) else d

    def dims(self, ndim) -> list:
        picked = [d for d in range(ndim) if self.coin()] or ([0] if ndim else [])
        return [d - ndim if self.coin(0.3) else d for d in picked]

    def shape(self, name) -> tuple:
        return tuple(self.values[name].shape)

    def dtype(self, name) -> str:
        return str(self.values[name].dtype).split(".")[-1]

    def random_shape(self, lo=0, hi=4, nonempty=False) -> tuple:
        sizes = [0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5]
        shape = [self.choice(sizes[1:] if nonempty else sizes)
                 for _ in range(self.int(lo, hi))]
        while int(np.prod(shape, dtype=np.int64)) > MAX_NUMEL:
            shape[int(np.argmax(shape))] -= 1
        return tuple(shape)

    def sub_shape(self, shape, keep_ndim=False) -> tuple:
        """A shape that broadcasts to ``shape``."""
        dims = tuple(d if self.coin(0.6) else 1 for d in shape)
        return dims if keep_ndim else dims[self.int(0, len(dims)):]

    @staticmethod
    def broadcast(a, b) -> tuple:
        return tuple(np.broadcast_shapes(a, b))

    def factor(self, n, allow_infer=True) -> tuple:
        """A random shape with ``n`` elements, sometimes with a -1."""
        shape, rest = [], n
        for _ in range(self.int(0, 3)):
            options = [d for d in range(1, max(rest, 1) + 1) if rest % d == 0] if rest else \
                [0, 1, 2]
            shape.append(self.choice(options))
            rest = rest // shape[-1] if shape[-1] else 0
        if rest != 1 or not shape or (n == 0 and 0 not in shape):
            shape.append(rest if n else 0)
        if allow_infer and n and self.coin(0.25):
            shape[self.int(0, len(shape) - 1)] = -1
        return tuple(shape)

    # values
    def _add(self, name, tensor):
        self.values[name] = tensor
        self.order.append(name)
        return name

    def new_input(self, shape, dtype, low=None, grad=True, plain=False) -> str:
        shape = tuple(shape)
        rng = self.rng
        if dtype in FLOATS:
            data = rng.uniform(-3, 3, shape) if self.coin(0.7) else rng.normal(0, 10, shape)
            if low is not None:
                data = np.abs(data) + low
            elif self.coin(self.special) and data.size:
                spots = rng.random(shape) < 0.3
                data[spots] = rng.choice(SPECIAL, size=int(spots.sum()))
            data = data.astype(dtype)
        elif dtype == "int64":
            data = rng.integers(-6, 7, shape)
            if self.coin(0.05) and data.size:
                data = data * (2 ** int(rng.integers(20, 60)))
        else:
            data = rng.random(shape) < 0.5
        return self._input(np.asarray(data), grad and dtype in FLOATS and self.coin(0.9), plain)

    def _input(self, data, grad, plain=False) -> str:
        """A new input holding ``data``, passed in a random layout (unless ``plain``)."""
        layouts = ["plain"] + ["t"] * (data.ndim >= 2) + ["step"] * (data.ndim >= 1) + \
            ["expand"] * any(d > 1 for d in data.shape)
        layout = "plain" if plain or self.coin(0.65) else self.choice(layouts)
        if layout == "expand":          # the leaf has size 1 where the view expands
            wide = [d for d, n in enumerate(data.shape) if n > 1]
            ones = [d for d in wide if self.coin()] or wide[:1]
            leaf = data[tuple(slice(0, 1) if d in ones else slice(None)
                              for d in range(data.ndim))]
            inp = Input(np.ascontiguousarray(leaf), "expand", data.shape, grad)
        else:
            inp = Input(layout_data(data, layout), layout, None, grad)
        self.inputs.append(inp)
        leaf, view = inp.make(graphc)
        return self._add(f"x{len(self.inputs) - 1}", view.detach())

    def index(self, shape, high, ignore=None) -> str:
        data = self.rng.integers(0, max(high, 1), shape) if high else np.zeros(shape, np.int64)
        if ignore is not None and data.size:
            data[self.rng.random(shape) < 0.3] = ignore
        return self._input(data.astype(np.int64), False)

    def value(self, dtypes, min_ndim=0, max_ndim=4, nonempty=False) -> str:
        """An earlier value of one of ``dtypes`` (mostly the latest), or a new input."""
        fits = [n for n in self.order if self.dtype(n) in dtypes
                and min_ndim <= len(self.shape(n)) <= max_ndim
                and not (nonempty and 0 in self.shape(n))]
        if fits and self.coin(0.8):
            return fits[-1] if self.coin(0.6) else self.choice(fits)
        dtype = "float32" if "float32" in dtypes and self.coin(0.6) else self.choice(list(dtypes))
        return self.new_input(self.random_shape(min_ndim, max_ndim, nonempty), dtype)

    def value_of_shape(self, shape, dtype) -> str:
        fits = [n for n in self.order if self.shape(n) == tuple(shape)
                and self.dtype(n) == dtype]
        if fits and self.coin(0.5):
            return self.choice(fits)
        return self.new_input(shape, dtype)

    def partner(self, shape, dtypes) -> str:
        """A value (earlier or new) whose shape broadcasts with ``shape``."""
        fits = [n for n in self.order if self.dtype(n) in dtypes and _broadcasts(
            shape, self.shape(n))]
        if fits and self.coin(0.5):
            return self.choice(fits)
        new = self.sub_shape(shape)
        if len(new) < 4 and self.coin(0.2) and _broadcasts(shape, (2,) + new):
            new = (2,) + new
        if self.coin(0.15):
            new = tuple(1 if d != 1 and self.coin() else d for d in shape)  # shape broadcasts
        return self.new_input(new, self.choice(list(dtypes)))


def _broadcasts(a, b) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _evaluate(ns, expr, env):
    return eval(expr, {"ns": ns, "F": ns.nn.functional, "inf": inf, "nan": nan, **env})


def draw_program(seed, index=0, ops=None, max_steps=8) -> Program:
    """Program ``index`` of the run with ``seed`` (the same program every time), of the
    entries ``ops`` (default: all)."""
    for attempt in range(50):
        program = _draw(np.random.default_rng([seed, index, attempt]), ops, max_steps)
        if program is not None:
            return program
    raise ValueError(f"no step of {sorted(ops or OPS)} could be drawn")


def _draw(rng, ops, max_steps):
    names = sorted(n for n in (ops or OPS) if OPS[n].draw is not None)
    g = Drawer(rng)
    steps, used = [], set()
    for _ in range(int(rng.integers(1, max_steps + 1))):
        for _attempt in range(20):
            name = names[int(rng.integers(len(names)))]
            try:
                refs, params = OPS[name].draw(g)
            except (ValueError, IndexError):
                continue                    # this entry cannot use the values drawn
            step = Step(name, tuple(refs), params)
            args = [g.values[r] for r in refs]
            if excluded(step, args):
                continue
            env = {f"a{i}": a for i, a in enumerate(args)}
            try:
                with graphc.no_grad():
                    out = _evaluate(graphc, step.expr(env), env)
            except Exception:               # invalid arguments drawn, or a graphc bug:
                out = _torch_meta(step, args)   # PyTorch decides
                if out is None:
                    continue
            if not isinstance(out, graphc.Tensor):
                continue
            steps.append(step)
            used.update(refs)
            g._add(f"v{len(steps) - 1}", out)
            break
    if not steps:
        return None
    outs = [f"v{j}" for j in range(len(steps)) if f"v{j}" not in used
            or j == len(steps) - 1]
    return Program(g.inputs, steps, outs)


def _torch_meta(step, args):
    """When graphc rejects a drawn step: PyTorch's result as a graphc tensor (a program
    graphc must run), or None when PyTorch rejects it too (the step is redrawn)."""
    torch = torch_or_none()
    if torch is None:
        return None
    env = {f"a{i}": torch.from_numpy(a.numpy().copy()) for i, a in enumerate(args)}
    try:
        with torch.no_grad():
            out = _evaluate(torch, step.expr(env), env)
    except Exception:
        return None
    return graphc.from_numpy(out.numpy().copy()) if isinstance(out, torch.Tensor) else None


# ---- running -----------------------------------------------------------------------------
@dataclass
class Result:
    """What one implementation gave for one program: an error (and where), or the
    outputs and the gradients of the inputs (None where no gradient reached)."""
    error: BaseException | None = None
    stage: str = ""
    outs: list = field(default_factory=list)
    grads: list = field(default_factory=list)


def _numpy(t):
    return None if t is None else t.detach().numpy().copy()


def output_weights(shape, k):
    """The fixed weights of output ``k`` in the loss whose gradients are compared."""
    return np.random.default_rng(k).uniform(0.5, 1.5, shape)


def run(ns, programs, backend=None, fuse=True) -> list:
    """Run ``programs`` in namespace ``ns`` (eagerly, or as one function compiled by
    graphc for ``backend``); one Result per program."""
    leaves, views = [], []
    for p in programs:
        made = [i.make(ns) for i in p.inputs]
        leaves.append([m[0] for m in made])
        views += [m[1] for m in made]
    fn = make_function(batch_source(programs))
    call = (lambda *a: fn(ns, ns.nn.functional, *a))
    if backend is not None:
        call = graphc.compile(call, backend=backend, fuse=fuse)
    try:
        outs = call(*views)
    except Exception as e:          # noqa: BLE001  (any error is a result to compare)
        return [Result(e, "forward") for _ in programs]
    results, k, loss = [], 0, None
    for p in programs:
        mine = outs[k:k + len(p.outputs)]
        for j, o in enumerate(mine):
            if o.requires_grad:
                term = (o * ns.from_numpy(output_weights(tuple(o.shape), j)).to(o.dtype)
                        ).sum()
                loss = term if loss is None else loss + term
        results.append(Result(outs=[_numpy(o) for o in mine]))
        k += len(p.outputs)
    if loss is not None:
        try:
            loss.backward()
        except Exception as e:      # noqa: BLE001
            return [Result(e, "backward", r.outs) for r in results]
    for r, mine in zip(results, leaves):
        r.grads = [_numpy(leaf.grad) for leaf in mine]
    return results


def configs(backends=BACKENDS):
    """(label, backend, fuse) of every graphc run compared with the reference."""
    out = [("eager", None, True)]
    for b in backends:
        out += [(f"{b}", b, True)] + ([(f"{b} unfused", b, False)] if b != "interpreter" else [])
    return out


# ---- comparing ---------------------------------------------------------------------------
def close(got, ref, rtol=0.0) -> str | None:
    """None when ``got`` matches ``ref`` (dtype, shape, values; nan equals nan), else why
    not.  The relative tolerance is the dtype's, or ``rtol`` when that is larger."""
    if got.dtype != ref.dtype:
        return f"dtype {got.dtype} != {ref.dtype}"
    if got.shape != ref.shape:
        return f"shape {got.shape} != {ref.shape}"
    if got.dtype.kind not in "fc":
        bad = got != ref
    else:
        rtol = max(RTOL.get(str(got.dtype), 1e-4), rtol)
        finite = np.isfinite(ref)
        scale = max(1.0, float(np.max(np.abs(ref[finite]), initial=0)))
        with np.errstate(all="ignore"):
            bad = ~((got == ref) | (np.isnan(got) & np.isnan(ref)) |
                    (np.abs(got - ref) <= rtol * (scale + np.abs(ref))))
    if not np.any(bad):
        return None
    i = tuple(int(x[0]) for x in np.nonzero(bad)) if got.ndim else ()
    return f"{int(np.sum(bad))} of {got.size} differ, at {list(i)}: {got[i]!r} != {ref[i]!r}"


def compare(got: Result, ref: Result, program: Program) -> str | None:
    """None when ``got`` agrees with ``ref`` on ``program``, else a one-line description
    of how not."""
    inputs = program.inputs
    if ref.error is not None and ref.stage == "backward":
        # PyTorch has no derivative (floor_divide, remainder): compare values only.
        ref = replace(ref, error=None, grads=[None] * len(inputs))
        got = replace(got, grads=[None] * len(inputs)) if got.error is None else got
    if ref.error is not None:
        if got.error is None:
            return f"no error, the reference raised {type(ref.error).__name__}: {ref.error}"
        if type(got.error) is not type(ref.error) and ref.stage == got.stage:
            return (f"raised {type(got.error).__name__}: {got.error}; the reference "
                    f"{type(ref.error).__name__}: {ref.error}")
        return None
    if got.error is not None:
        return f"crash in {got.stage}: {type(got.error).__name__}: {got.error}"
    if len(got.outs) != len(ref.outs):
        return f"{len(got.outs)} outputs != {len(ref.outs)}"
    # A float64 value computed from float32 ones is only float32-accurate.
    rtol = RTOL["float32"] if any(str(a.dtype) == "float32" for a in ref.outs) or \
        any(i.dtype == "float32" for i in inputs) else 0.0
    for j, (a, b) in enumerate(zip(got.outs, ref.outs)):
        why = close(a, b, rtol)
        if why:
            return f"output {j}: {why}"
    if not all(np.all(np.isfinite(o)) for o in ref.outs if o.dtype.kind == "f"):
        return None     # the derivative of an infinite loss: 0 * inf decides, not math
    for i, (a, b, inp) in enumerate(zip(got.grads, ref.grads, inputs)):
        if a is None and b is None:
            continue
        zeros = np.zeros(inp.data.shape, inp.data.dtype)
        a, b = (a if a is not None else zeros), (b if b is not None else zeros)
        if a.shape == b.shape:
            a = np.where(np.isnan(b), b, a)     # PyTorch's nan gradients (0 * inf) aside
        why = close(a, b, GRAD_SCALE * max(rtol, RTOL.get(inp.dtype, 0.0)))
        if why:
            return f"grad of x{i}: {why}"
    return None


# ---- one round: run, compare, isolate ----------------------------------------------------
@dataclass
class Failure:
    program: Program
    config: str
    why: str

    def kind(self) -> tuple:
        """What must stay the same while minimising: the config and the failure class."""
        return (self.config, re.sub(r"-?\d[\d.e+-]*", "#", re.sub(r"at \[.*?\]: ", "",
                                                               self.why))[:120])


def reference(programs, torch=None):
    """PyTorch's results when torch is given, else graphc eager's, per program."""
    if torch is not None:
        return [run(torch, [p])[0] for p in programs]
    return [run(graphc, [p])[0] for p in programs]


def check(programs, backends=BACKENDS, torch=None, batch=True, rotate=None) -> list:
    """Failures of ``programs`` (each compared on its own) in every config, or, with
    ``rotate=i``, in eager, the interpreter and the i-th code-generating config only."""
    refs = reference(programs, torch)
    failures = []
    chosen = configs(backends)
    if rotate is not None:
        native = [c for c in chosen if c[1] not in (None, "interpreter")]
        chosen = [c for c in chosen if c[1] in (None, "interpreter")] + \
            (native[rotate % len(native):][:1] if native else [])
    for label, backend, fuse in chosen:
        if backend is None and torch is None:
            continue                        # eager is the reference itself
        good = [(p, r) for p, r in zip(programs, refs) if r.error is None]
        groups = [good] if batch and backend is not None else [[x] for x in good]
        groups += [[(p, r)] for p, r in zip(programs, refs) if r.error is not None]
        for group in groups:
            if not group:
                continue
            results = run(graphc, [p for p, _ in group], backend, fuse)
            bad = [(p, r, why) for (p, r), got in zip(group, results)
                   if (why := compare(got, r, p))]
            if len(group) > 1 and bad and any(res.error is not None for res in results):
                bad = [(p, r, why) for p, r in group
                       if (why := compare(run(graphc, [p], backend, fuse)[0], r, p))]
            for p, _, why in bad:
                failures.append(Failure(p, label, why))
    if torch is None:
        failures += _finite_difference_failures([p for p, r in zip(programs, refs)
                                                 if r.error is None])
    return failures


def _finite_difference_failures(programs) -> list:
    """Without PyTorch: graphc eager's gradients of float64 inputs against central
    differences of the same loss (programs with nonsmooth steps are skipped)."""
    failures = []
    for p in programs:
        if any(s.op in NONSMOOTH for s in p.steps) or not any(
                i.grad and i.dtype == "float64" for i in p.inputs) or any(
                i.dtype in FLOATS and not np.all(np.abs(i.data) < 1e6) for i in p.inputs):
            continue        # differences of a huge loss lose the small terms

        ref = run(graphc, [p])[0]

        def loss(inputs):
            r = run(graphc, [replace(p, inputs=inputs)])[0]
            return sum(float(np.sum(o * output_weights(o.shape, j)))
                       for j, o in enumerate(r.outs) if o.dtype.kind == "f")
        for i, inp in enumerate(p.inputs):
            if not (inp.grad and inp.dtype == "float64"):
                continue
            fd = np.zeros(inp.data.shape)
            for idx in np.ndindex(inp.data.shape):
                plus, minus = inp.data.copy(), inp.data.copy()
                h = 1e-6 * max(1.0, abs(inp.data[idx]))
                plus[idx] += h
                minus[idx] -= h
                args = [replace(q, data=plus) if q is inp else q for q in p.inputs]
                args2 = [replace(q, data=minus) if q is inp else q for q in p.inputs]
                fd[idx] = (loss(args) - loss(args2)) / (2 * h)
            got = ref.grads[i] if ref.grads[i] is not None else np.zeros_like(fd)
            if np.all(np.isfinite(fd)) and not np.allclose(got, fd, rtol=1e-4, atol=1e-5):
                failures.append(Failure(p, "eager grad vs finite differences",
                                        f"grad of x{i}: {got.ravel()[:4]} vs {fd.ravel()[:4]}"))
    return failures


NONSMOOTH = {
    "floor", "ceil", "round", "trunc", "sign", "abs", "relu", "F.relu", "maximum", "minimum",
    "max_binary", "min_binary", "amax", "amin", "max_dim", "min_dim", "max_all", "min_all",
    "clamp", "F.hardtanh", "F.hardswish", "F.leaky_relu", "F.elu", "norm", "l1_loss",
    "smooth_l1_loss", "max_pool2d", "remainder", "floor_divide", "div_mode", "scalar//",
    "scalar%", "rscalar//", "rscalar%", "where", "where_scalar", "masked_fill", "normalize",
    "cast", "dropout", "dropout_random", "F.softplus"} | {n for n in OPS if "scalar" in n}


# ---- minimising --------------------------------------------------------------------------
def minimise(failure: Failure, backends=BACKENDS, torch=None, budget=60.0) -> Failure:
    """A smaller program failing the same way (``Failure.kind``) in the same config, found
    greedily within ``budget`` seconds: one output kept, a last step dropped (its operand
    returned), a step cut (its value becomes an input holding graphc eager's value),
    unused steps and inputs dropped, inputs made plain and without gradient, dims halved,
    values rounded or set to 0 or 1."""
    label = failure.config
    picked = [c for c in configs(backends) if c[0] == label]
    want = failure.kind()
    deadline = time.time() + budget

    def fails(p):
        if time.time() > deadline:
            return None
        try:
            ref = reference([p], torch)[0]
            if picked:
                _, backend, fuse = picked[0]
                why = compare(run(graphc, [p], backend, fuse)[0], ref, p)
            else:
                found = check([p], backends, torch, batch=False)
                why = found[0].why if found else None
        except Exception:               # noqa: BLE001  (a malformed candidate)
            return None
        return Failure(p, label, why) if why and Failure(p, label, why).kind() == want \
            else None

    best = fails(failure.program)
    if best is None:
        return replace(failure, why=failure.why + " (only when batched, or flaky)")
    progress = True
    while progress and time.time() < deadline:
        progress = False
        for candidate in _smaller(best.program):
            found = fails(candidate)
            if found:
                best, progress = found, True
                break
    return best


def _prune(p: Program) -> Program:
    """Drop steps no output needs and inputs no step reads; renumber."""
    need = set(p.outputs)
    keep = []
    for j in reversed(range(len(p.steps))):
        if f"v{j}" in need:
            keep.append(j)
            need.update(p.steps[j].refs)
    keep.reverse()
    inputs = [i for i in range(len(p.inputs)) if f"x{i}" in need]
    rename = {f"x{i}": f"x{k}" for k, i in enumerate(inputs)}
    rename.update({f"v{j}": f"v{k}" for k, j in enumerate(keep)})
    steps = [Step(p.steps[j].op, tuple(rename[r] for r in p.steps[j].refs), p.steps[j].params)
             for j in keep]
    return Program([p.inputs[i] for i in inputs], steps, [rename[o] for o in p.outputs])


def _smaller(p: Program):
    """Candidate simplifications of ``p``, biggest first."""
    for o in range(len(p.outputs)):                 # one output
        if len(p.outputs) > 1:
            yield _prune(replace(p, outputs=[p.outputs[o]]))
    for o, name in enumerate(p.outputs):            # drop a last step: return its operand
        step = p.steps[int(name[1:])] if name.startswith("v") else None
        for ref in (step.refs if step else ()):
            if ref not in p.outputs:
                yield _prune(replace(p, outputs=p.outputs[:o] + [ref] + p.outputs[o + 1:]))
    values = None
    for j in range(len(p.steps)):                   # cut a step: its value becomes an input
        if values is None:
            values = _eager_values(p)
        name = f"v{j}"
        if name not in values or name in p.outputs:
            continue
        data = values[name]
        inputs = p.inputs + [Input(data, "plain", data.shape, data.dtype.kind == "f")]
        new = f"x{len(p.inputs)}"
        steps = [Step(s.op, tuple(new if r == name else r for r in s.refs), s.params)
                 for s in p.steps]
        yield _prune(Program(inputs, steps, p.outputs))
    for i, inp in enumerate(p.inputs):              # simpler inputs
        view = _view_data(inp)
        options = []
        if inp.layout != "plain":
            options.append(Input(view.copy(), "plain", view.shape, inp.grad))
        if inp.grad:
            options.append(replace(inp, grad=False))
        if inp.layout == "plain":
            for d, n in enumerate(inp.data.shape):  # shrink a dim by half
                if n > 1:
                    half = inp.data[(slice(None),) * d + (slice(0, n // 2),)]
                    options.append(Input(half.copy(), "plain", None, inp.grad))
        if inp.dtype in FLOATS and inp.data.size:
            rounded = np.where(np.isfinite(inp.data), np.round(inp.data), inp.data)
            if not np.array_equal(rounded, inp.data, equal_nan=True):
                options.append(replace(inp, data=rounded.astype(inp.data.dtype)))
            for k in range(inp.data.size):
                flat = inp.data.ravel()
                if flat[k] not in (0.0, 1.0) and not np.isnan(flat[k]):
                    simple = flat.copy()
                    simple[k] = 0.0 if abs(flat[k]) < 1 else 1.0
                    options.append(replace(inp, data=simple.reshape(inp.data.shape)))
        for option in options:
            yield Program(p.inputs[:i] + [option] + p.inputs[i + 1:], p.steps, p.outputs)


def _view_data(inp: Input) -> np.ndarray:
    _, view = inp.make(graphc)
    return view.detach().numpy().copy()


def _eager_values(p: Program) -> dict:
    """Every step's value in graphc eager (for cutting steps)."""
    env = {f"x{i}": inp.make(graphc)[1].detach() for i, inp in enumerate(p.inputs)}
    out = {}
    with graphc.no_grad():
        for j, s in enumerate(p.steps):
            try:
                env[f"v{j}"] = _evaluate(graphc, s.expr(s.refs), env)
            except Exception:           # noqa: BLE001
                break
            out[f"v{j}"] = env[f"v{j}"].numpy().copy()
    return out


def regression_test(failure: Failure, name: str) -> str:
    """``failure`` as a pytest test for tests/fuzz/test_fuzz_regressions.py."""
    p = failure.program
    inputs = ",\n        ".join(i.source() for i in p.inputs)
    backend = [c for c in configs() if c[0] == failure.config]
    where = f"backends=[{backend[0][1]!r}], fuse={backend[0][2]}" if backend and \
        backend[0][1] else "backends=()"
    return (f"def test_{name}():\n"
            f"    # {failure.config}: {failure.why}\n"
            f"    program = parse_program('''\n{p.source()}''', [\n        {inputs}])\n"
            f"    assert_agrees(program, {where})\n")


# ---- the regression-test surface ---------------------------------------------------------
def parse_program(source: str, inputs) -> Program:
    """A Program from printed source (one step per line) and its inputs: regression
    tests keep the text; the steps run as written."""
    lines = [ln.strip() for ln in source.strip().splitlines()[1:]]
    steps = [Step("source", (), {"expr": ln.split(" = ", 1)[1]}) for ln in lines[:-1]]
    outs = [o.strip() for o in lines[-1][len("return ["):-1].split(",") if o.strip()]
    return Program(list(inputs), steps, outs)


op("source", lambda names, params: params["expr"], None)


def assert_agrees(program: Program, backends=BACKENDS, fuse=None):
    """Assert ``program`` gives the reference's values, gradients and errors in graphc
    eager and compiled on ``backends`` (``fuse`` None: fused and unfused)."""
    torch = torch_or_none()
    ref = reference([program], torch)[0]
    for label, backend, f in configs(backends):
        if (backend is None and torch is None) or (fuse is not None and backend and f != fuse):
            continue
        why = compare(run(graphc, [program], backend, f)[0], ref, program)
        assert why is None, f"{label}: {why}"


# ---- the command line --------------------------------------------------------------------
def fuzz(seed=0, programs=None, minutes=None, backends=BACKENDS, batch=BATCH, torch=None,
         rotate=True, out=sys.stdout, minimise_budget=30.0):
    """Draw and check programs until ``programs`` are done or ``minutes`` pass; print
    progress and each (minimised) failure; return the failures.  ``rotate``: each
    batch runs one code-generating config (in turn) besides eager and the interpreter."""
    start = time.time()
    failures, seen, done, failed = [], set(), 0, 0
    while (programs is None or done < programs) and \
            (minutes is None or time.time() - start < 60 * minutes):
        n = batch if programs is None else min(batch, programs - done)
        progs = [draw_program(seed, done + k) for k in range(n)]
        found = check(progs, backends, torch, rotate=done // batch if rotate else None)
        done += n
        by_program = {}
        for f in found:                     # configs come in order: eager first
            by_program.setdefault(id(f.program), []).append(f)
        failed += len(by_program)
        for fs in by_program.values():
            f = fs[0]
            index = done - n + next(k for k, q in enumerate(progs) if q is f.program)
            key = (f.kind(), frozenset(s.op for s in f.program.steps))
            if key in seen:
                continue
            seen.add(key)
            small = minimise(f, backends, torch, minimise_budget)
            key = (small.kind()[1], tuple(s.op for s in small.program.steps))
            if key in seen:
                print(f"\nFAIL seed={seed} program={index}: again {key}", file=out)
                continue
            seen.add(key)
            failures.append(small)
            print(f"\nFAIL seed={seed} program={index} [{', '.join(x.config for x in fs)}]"
                  f" {small.why}\n  original: {f.program}\n" +
                  regression_test(small, f"seed{seed}_{index}"), file=out, flush=True)
        elapsed = time.time() - start
        print(f"{done} programs, {failed} failed ({len(failures)} reported), "
              f"{elapsed:.0f} s ({elapsed / done:.3f} s/program)", file=out, flush=True)
    return failures


def uncovered_primitives(seeds=range(3)) -> set:
    """Registered primitives that no fuzz entry reaches (traced over a few draws).  The
    collectives are left out: the fuzzer runs one process against PyTorch, and they are
    tested on real MPI processes (tests/distributed)."""
    seen = set()
    for name in sorted(OPS):
        if OPS[name].draw is None:
            continue
        for seed in seeds:
            try:
                p = draw_program(seed, 0, ops=[name], max_steps=1)
            except ValueError:          # every draw hits an exclusion
                continue
            views = [i.make(graphc)[1].detach() for i in p.inputs]
            fn = make_function(p.source())
            try:
                g = graphc.trace(lambda *a: fn(graphc, graphc.nn.functional, *a), *views)
            except Exception:           # noqa: BLE001  (a program graphc rejects)
                continue
            seen.update(o.name for o in g.ops)
    return {name for name in set(REGISTRY) - seen if REGISTRY[name].kind != "collective"}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m graphc.testing.fuzz",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--programs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", action="append", choices=BACKENDS,
                        help="a backend to compare (repeatable; default: all)")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--all-configs", action="store_true",
                        help="compile every batch for every backend, fused and unfused "
                             "(default: one code-generating config per batch, in turn)")
    parser.add_argument("--no-torch", action="store_true",
                        help="compare with graphc eager and finite differences only")
    args = parser.parse_args(argv)
    if args.minutes is None and args.programs is None:
        args.minutes = 1.0
    torch = None if args.no_torch else torch_or_none()
    print(f"graphc fuzz: seed {args.seed}, backends {args.backend or list(BACKENDS)}, "
          f"reference {'torch ' + torch.__version__ if torch else 'graphc eager'}", flush=True)
    failures = fuzz(args.seed, args.programs, args.minutes, tuple(args.backend or BACKENDS),
                    args.batch, torch, rotate=not args.all_configs)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
