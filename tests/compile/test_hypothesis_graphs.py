"""Random programs: elementwise unary/binary ops with broadcasting, reductions over random
dims with keepdim, and views (reshape, permute, transpose, slicing, expand, squeeze,
select), over shapes with 0- and 1-sized dimensions.  Each program is compiled
(traced, optimised, run by the interpreter) and compared with eager execution, values
and gradients.
"""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
from conftest import CODEGEN_BACKENDS
from graph_checks import check_programs

import graphc
import graphc.nn.functional as F

MAX_NUMEL = 48          # keeps every intermediate small
# Seconds of code generation per backend for 100 programs: the interpreter runs in the fast tier.
SLOW_BACKENDS = [pytest.param(name, marks=pytest.mark.slow) for name in CODEGEN_BACKENDS]
TOL = dict(rtol=1e-5, atol=1e-6)

UNARY = {
    "neg": lambda x: -x,
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "sin": lambda x: x.sin(),
    "abs": lambda x: x.abs(),
    "relu": F.relu,
    "gauss": lambda x: (-(x * x)).exp(),
    "log1p_abs": lambda x: x.abs().log1p(),
    "hypot1": lambda x: (x * x + 1).sqrt(),
    "clamp": lambda x: x.clamp(-0.5, 0.75),
    "square": lambda x: x ** 2,
    "affine": lambda x: x * 0.5 - 1,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (1 + b * b),
    "maximum": graphc.maximum,
    "minimum": graphc.minimum,
    "where": lambda a, b: graphc.where(a > b, a, b * 2),
}
REDUCE = ["sum", "mean", "amax", "amin"]


def _numel(shape):
    return int(np.prod(shape, dtype=np.int64))


shapes = st.lists(st.sampled_from([0, 1, 1, 2, 3]), max_size=3).map(tuple)


class Program:
    """A straight-line program over inputs ``("in", i)`` and earlier values ``("v", j)``;
    built while running eagerly, so every step is drawn for shapes that exist."""

    def __init__(self, data, first_shape):
        self.data = data
        self.inputs = []            # float32 arrays
        self.steps = []             # (name, fn, refs)
        self.values = []            # eager results while drawing (no grad)
        self.current = self._new_input(first_shape)

    def _new_input(self, shape):
        seed = self.data.draw(st.integers(0, 2 ** 16), label="seed")
        self.inputs.append(np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32))
        return ("in", len(self.inputs) - 1)

    def _eager(self, ref):
        kind, i = ref
        return graphc.tensor(self.inputs[i]) if kind == "in" else self.values[i]

    def add(self, name, fn, *refs):
        out = fn(*[self._eager(r) for r in refs])
        self.steps.append((name, fn, refs))
        self.values.append(out)
        self.current = ("v", len(self.values) - 1)

    def __call__(self, *inputs):
        env = {"in": list(inputs), "v": []}
        for _, fn, refs in self.steps:
            env["v"].append(fn(*[env[k][i] for k, i in refs]))
        return env["v"][-1]

    def __repr__(self):
        return " -> ".join(name for name, _, _ in self.steps) + \
            f" on {[a.shape for a in self.inputs]}"

    # ---- drawing one step ------------------------------------------------------------
    def draw_step(self):
        kind = self.data.draw(st.sampled_from(["unary", "binary", "binary", "reduce", "view",
                                               "view"]), label="kind")
        shape = tuple(self._eager(self.current).shape)
        getattr(self, f"_draw_{kind}")(shape)

    def _draw_unary(self, shape):
        name = self.data.draw(st.sampled_from(sorted(UNARY)), label="unary")
        self.add(name, UNARY[name], self.current)

    def _draw_binary(self, shape):
        name = self.data.draw(st.sampled_from(sorted(BINARY)), label="binary")
        other = self._broadcast_partner(shape)
        refs = (self.current, other)
        if self.data.draw(st.booleans(), label="swap"):
            refs = refs[::-1]
        self.add(name, BINARY[name], *refs)

    def _broadcast_partner(self, shape):
        """An earlier value that broadcasts with ``shape``, or a new input that does."""
        candidates = [("v", j) for j, v in enumerate(self.values)
                      if _broadcasts(shape, tuple(v.shape))]
        if candidates and self.data.draw(st.booleans(), label="reuse"):
            return self.data.draw(st.sampled_from(candidates), label="partner")
        dims = [self.data.draw(st.sampled_from([d, 1]), label="dim") for d in shape]
        drop = self.data.draw(st.integers(0, len(dims)), label="drop")
        new = tuple(dims[drop:])
        if len(new) < 3 and _broadcasts(shape, (2,) + new) and \
                self.data.draw(st.booleans(), label="lead"):
            new = (2,) + new
        return self._new_input(new)

    def _draw_reduce(self, shape):
        op = self.data.draw(st.sampled_from(REDUCE), label="reduce")
        keepdim = self.data.draw(st.booleans(), label="keepdim")
        if shape:
            dims = self.data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                           max_size=len(shape), unique=True), label="dims")
            dim = tuple(d - len(shape) if self.data.draw(st.booleans(), label="neg") else d
                        for d in dims)
        else:
            dim = None
        reduced = [shape[d] for d in dim] if dim is not None else list(shape)
        if _numel(reduced) == 0 and op != "sum":
            op = "sum"              # amax/amin of nothing is an error, mean a nan
        if dim is None:
            self.add(f"{op}()", lambda x: getattr(x, op)(), self.current)
        else:
            self.add(f"{op}{dim}", lambda x: getattr(x, op)(dim=dim, keepdim=keepdim),
                     self.current)

    def _draw_view(self, shape):
        options = ["reshape", "unsqueeze", "slice"]
        if len(shape) >= 2:
            options += ["permute", "transpose"]
        if 1 in shape or len(shape) < 3:
            options.append("expand")
        if 1 in shape:
            options.append("squeeze")
        if any(shape):
            options.append("select")
        view = self.data.draw(st.sampled_from(options), label="view")
        getattr(self, f"_view_{view}")(shape)

    def _view_reshape(self, shape):
        n = _numel(shape)
        targets = [(n,), shape + (1,), (1,) + shape]
        targets += [(d, n // d) for d in range(1, n + 1) if n % d == 0]
        if n == 0:
            targets += [(0, 2), (3, 0)]
        target = self.data.draw(st.sampled_from(targets), label="reshape")
        if n and self.data.draw(st.booleans(), label="infer"):
            target = (-1,) + target[1:]
        self.add(f"reshape{target}", lambda x: x.reshape(target), self.current)

    def _view_unsqueeze(self, shape):
        dim = self.data.draw(st.integers(-len(shape) - 1, len(shape)), label="unsqueeze")
        self.add(f"unsqueeze({dim})", lambda x: x.unsqueeze(dim), self.current)

    def _view_squeeze(self, shape):
        dim = self.data.draw(st.sampled_from([d for d, s in enumerate(shape) if s == 1]),
                             label="squeeze")
        self.add(f"squeeze({dim})", lambda x: x.squeeze(dim), self.current)

    def _view_permute(self, shape):
        perm = tuple(self.data.draw(st.permutations(range(len(shape))), label="perm"))
        self.add(f"permute{perm}", lambda x: x.permute(*perm), self.current)

    def _view_transpose(self, shape):
        a, b = self.data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=2,
                                       max_size=2, unique=True), label="transpose")
        self.add(f"transpose({a},{b})", lambda x: x.transpose(a, b), self.current)

    def _view_slice(self, shape):
        if not shape:
            self.add("x[...]", lambda x: x[...], self.current)
            return
        dim = self.data.draw(st.integers(0, len(shape) - 1), label="slice_dim")
        start = self.data.draw(st.integers(0, shape[dim]), label="start")
        stop = self.data.draw(st.integers(start, shape[dim]), label="stop")
        step = self.data.draw(st.sampled_from([1, 2]), label="step")
        key = (slice(None),) * dim + (slice(start, stop, step),)
        self.add(f"[{dim}:{start}:{stop}:{step}]", lambda x: x[key], self.current)

    def _view_select(self, shape):
        dim = self.data.draw(st.sampled_from([d for d, s in enumerate(shape) if s]),
                             label="select_dim")
        index = self.data.draw(st.integers(-shape[dim], shape[dim] - 1), label="index")
        self.add(f"select({dim},{index})", lambda x: x.select(dim, index), self.current)

    def _view_expand(self, shape):
        sizes = [self.data.draw(st.sampled_from([1, 2, 3]), label="grow") if s == 1 else s
                 for s in shape]
        if len(shape) < 3 and self.data.draw(st.booleans(), label="lead"):
            sizes = [2] + sizes
        if _numel(sizes) > MAX_NUMEL:
            sizes = list(shape)
        sizes = [-1 if s == old and self.data.draw(st.booleans(), label="keep") else s
                 for s, old in zip(sizes, (None,) * (len(sizes) - len(shape)) + shape)]
        self.add(f"expand{tuple(sizes)}", lambda x: x.expand(*sizes), self.current)


def _broadcasts(a, b):
    try:
        return _numel(np.broadcast_shapes(a, b)) <= MAX_NUMEL
    except ValueError:
        return False


@st.composite
def programs(draw):
    data = draw(st.data())
    program = Program(data, draw(shapes))
    for _ in range(draw(st.integers(1, 6))):
        program.draw_step()
    return program


def _tensors(program, requires_grad=False):
    return [graphc.tensor(a, requires_grad=requires_grad) for a in program.inputs]


@pytest.mark.parametrize("backend", ["interpreter"] + SLOW_BACKENDS)
@settings(max_examples=100)
@given(programs())
def test_random_programs_compute_what_eager_computes(backend, program):
    compiled = graphc.compile(program, backend=backend)
    expected = program(*_tensors(program))
    for _ in range(2):
        got = compiled(*_tensors(program))
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_allclose(got.numpy(), expected.numpy(), **TOL)
    assert compiled.compile_count == 1
    check_programs(compiled)


@pytest.mark.parametrize("backend", ["interpreter"] + SLOW_BACKENDS)
@settings(max_examples=100)
@given(programs())
def test_random_programs_differentiate_like_eager(backend, program):
    shape = tuple(program.values[-1].shape)
    weights = graphc.tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32))

    def loss(*inputs):          # a weighted sum, so every output element has its own slope
        return (program(*inputs) * weights).sum()
    leaves = _tensors(program, requires_grad=True)
    expected = loss(*leaves)
    expected.backward()
    compiled_leaves = _tensors(program, requires_grad=True)
    compiled = graphc.compile(loss, backend=backend)
    got = compiled(*compiled_leaves)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), **TOL)
    got.backward()
    for a, b in zip(compiled_leaves, leaves, strict=True):
        assert (a.grad is None) == (b.grad is None)
        if b.grad is not None:
            assert a.grad.shape == b.grad.shape
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **TOL)
    (stages,) = check_programs(compiled)
    assert "backward" in stages
