"""Gradients: a walk over the primitive registry (fields, infer == impl, accurate
``saves``), finite-difference checks in float64 of every differentiable primitive and
composite (through views and broadcasting), and PyTorch's conventions at ties, kinks and
boundaries (values hard-coded from PyTorch 2)."""
import math

import numpy as np
import pytest

import graphc
import graphc.composite as C
import graphc.spatial as S
from graphc import dtypes
from graphc.dispatch import bind
from graphc.ops import ACCUMULATIONS, KINDS, REGISTRY, SCALAR_OPS

from gradcheck import gradcheck
from samples import COLLECTIVE_SAMPLES, GRAD_CASES, PRIMITIVE_SAMPLES, RNG


# ---- the registry walk ---------------------------------------------------------------------
# The sample calls (PRIMITIVE_SAMPLES) are in samples.py, shared with the backend tests.
def _wrap(a):
    return graphc.from_numpy(np.ascontiguousarray(a))


def _cases(name):
    return [(name, i) for i in range(len(PRIMITIVE_SAMPLES[name]))]


ALL_CASES = [c for name in sorted(PRIMITIVE_SAMPLES) for c in _cases(name)]


def test_every_primitive_has_samples_and_complete_fields():
    samples = {**PRIMITIVE_SAMPLES, **COLLECTIVE_SAMPLES}
    assert set(samples) == set(REGISTRY)
    for name, prim in REGISTRY.items():
        assert prim.name == name
        assert prim.kind in KINDS, name
        assert callable(prim.infer) and callable(prim.impl), name
        assert (prim.kind == "collective") == (name in COLLECTIVE_SAMPLES), name
        arrays, _ = samples[name][0]
        if prim.vjp is not None:
            assert isinstance(prim.vjp, tuple), name
            assert len(prim.vjp) == (1 if prim.variadic else len(arrays)), name
            assert all(rule is None or callable(rule) for rule in prim.vjp), name
        assert all(s == "out" or 0 <= s < len(arrays) for s in prim.saves), name
        assert set(prim.attrs) == set(samples[name][0][1]), name


# Inputs whose dtype is fixed by the op (indices, conditions, seeds): never converted.
FIXED_DTYPE_INPUTS = {("take", 1), ("gather", 1), ("index_add", 1), ("scatter_add", 1),
                      ("where", 0), ("uniform", 0)}


def _dtype_variants(name, arrays, attrs):
    """The sample at every dtype that infer accepts (floats of each width, ints, bools)."""
    out = []
    for dt in dtypes.ALL:
        converted = [a if (name, i) in FIXED_DTYPE_INPUTS else a.astype(dt.np)
                     for i, a in enumerate(arrays)]
        types = [dtypes.TensorType(a.shape, dtypes.from_numpy(a.dtype)) for a in converted]
        try:
            out_type = REGISTRY[name].infer(*types, **attrs)
        except RuntimeError:
            continue
        out.append((converted, out_type))
    return out


@pytest.mark.parametrize("name,case", ALL_CASES)
def test_impl_agrees_with_infer(name, case):
    arrays, attrs = PRIMITIVE_SAMPLES[name][case]
    variants = _dtype_variants(name, arrays, attrs)
    if REGISTRY[name].kind == "elementwise":       # numpy turns 0-dim results into scalars
        variants += _dtype_variants(name, [a.reshape(-1)[0].reshape(()) for a in arrays], attrs)
    assert variants, f"{name}: infer rejected every dtype"
    prim = REGISTRY[name]
    for converted, out_type in variants:
        # float16/bfloat16 operands reach impl as float32 (ops.primitive.run), except views
        half = not prim.view and any(dtypes.from_numpy(a.dtype) in dtypes.HALF
                                     for a in converted)
        if half:
            converted = [a.astype(np.float32) if dtypes.from_numpy(a.dtype) in dtypes.HALF
                         else a for a in converted]
        with np.errstate(all="ignore"):
            data = np.asarray(prim.impl(*converted, **attrs))   # keeps the dtype
        want = dtypes.compute_dtype(out_type.dtype) if half else out_type.dtype
        assert data.shape == tuple(out_type.shape), (name, data.shape, out_type)
        assert data.dtype == want.np, (name, data.dtype, out_type)


def _differentiable_inputs(name, arrays):
    prim = REGISTRY[name]
    if prim.vjp is None:
        return []
    return [i for i, a in enumerate(arrays) if a.dtype.kind == "f"
            and (prim.vjp[0] if prim.variadic else prim.vjp[i]) is not None]


def _output_dtype(name, case):
    arrays, attrs = PRIMITIVE_SAMPLES[name][case]
    return REGISTRY[name].impl(*arrays, **attrs).dtype


DIFF_CASES = [c for c in ALL_CASES if _output_dtype(*c).kind == "f"
              and _differentiable_inputs(c[0], PRIMITIVE_SAMPLES[c[0]][c[1]][0])]
FLOAT64_CASES = [c for c in DIFF_CASES if _output_dtype(*c) == np.float64]


def _garbage(a):
    if a.dtype.kind == "f":
        return RNG.uniform(-9, 9, a.shape).astype(a.dtype)
    if a.dtype.kind == "b":
        return RNG.random(a.shape) < 0.5
    return RNG.integers(0, 2, a.shape).astype(a.dtype)


def _run_vjps(name, arrays, attrs, g, out, keep):
    """Every VJP rule's result, with the inputs not in ``keep`` replaced by garbage."""
    prim = REGISTRY[name]
    inputs = [_wrap(a if i in keep else _garbage(a)) for i, a in enumerate(arrays)]
    out_t = _wrap(out if "out" in keep else _garbage(out))
    results = []
    with graphc.no_grad():
        for i in _differentiable_inputs(name, arrays):
            rule = prim.vjp[0] if prim.variadic else prim.vjp[i]
            extra = {"index": i} if prim.variadic else {}
            gi = rule(_wrap(g), out_t, *inputs, **extra, **attrs)
            assert tuple(gi.shape) == arrays[i].shape and gi.dtype == graphc.float64, name
            results.append(gi.numpy())
    return results


@pytest.mark.parametrize("name,case", DIFF_CASES)
def test_saves_lists_every_value_the_vjp_reads(name, case):
    """Autograd version-checks only the saved values, so a VJP must not read the values
    of anything else: replacing them by garbage must not change any gradient."""
    arrays, attrs = PRIMITIVE_SAMPLES[name][case]
    out = REGISTRY[name].impl(*arrays, **attrs)
    g = RNG.uniform(-1, 1, out.shape)
    everything = set(range(len(arrays))) | {"out"}
    want = _run_vjps(name, arrays, attrs, g, out, everything)
    got = _run_vjps(name, arrays, attrs, g, out, set(REGISTRY[name].saves))
    for w, o in zip(want, got):
        np.testing.assert_array_equal(o, w, err_msg=name)


@pytest.mark.parametrize("name,case", FLOAT64_CASES)
def test_primitive_vjp_matches_finite_differences(name, case):
    arrays, attrs = PRIMITIVE_SAMPLES[name][case]
    wrt = _differentiable_inputs(name, arrays)
    fixed = {i: _wrap(a) for i, a in enumerate(arrays) if i not in wrt}

    def fn(*leaves):
        it = iter(leaves)
        args = [fixed[i] if i in fixed else next(it) for i in range(len(arrays))]
        return bind(REGISTRY[name], *args, **attrs)
    gradcheck(fn, *[arrays[i] for i in wrt])


# ---- finite differences through the public API ------------------------------------------
# The cases (GRAD_CASES) are in samples.py, shared with the backend tests.
@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradients_match_finite_differences(name):
    fn, arrays = GRAD_CASES[name]
    gradcheck(fn, *arrays)


def test_second_order_gradient_of_tanh():
    x = graphc.tensor([0.3, -1.2], dtype=graphc.float64, requires_grad=True)
    (g,) = graphc.autograd.grad(x.tanh().sum(), x, create_graph=True)
    (h,) = graphc.autograd.grad(g.sum(), x)
    t = np.tanh([0.3, -1.2])
    np.testing.assert_allclose(h.numpy(), -2 * t * (1 - t * t), rtol=1e-12)


# ---- PyTorch's conventions at ties, kinks and boundaries (values from PyTorch 2) ---------
def _grad(fn, values):
    x = graphc.tensor(values, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy().tolist()


TIES = [[1.0, 3.0, 3.0], [2.0, 2.0, 1.0]]
KINKS = [-1.0, 0.0, 1.0, 2.0, 3.0]
CONVENTIONS = [
    ("max() splits ties", lambda x: x.max(), TIES, [[0, 0.5, 0.5], [0, 0, 0]]),
    ("min() splits ties", lambda x: x.min(), TIES, [[0.5, 0, 0], [0, 0, 0.5]]),
    ("max(dim) picks the first", lambda x: x.max(1).values, TIES, [[0, 1, 0], [1, 0, 0]]),
    ("min(dim) picks the first", lambda x: x.min(1).values, [[3.0, 1.0, 1.0]], [[0, 1, 0]]),
    ("amax splits ties", lambda x: x.amax(1), TIES, [[0, 0.5, 0.5], [0.5, 0.5, 0]]),
    ("maximum splits ties", lambda x: graphc.maximum(x, graphc.tensor(
        [[3.0, 3.0, 3.0], [2.0, 1.0, 1.0]])), TIES, [[0, 0.5, 0.5], [0.5, 1, 0.5]]),
    ("clamp passes at the bounds", lambda x: x.clamp(0.0, 2.0), KINKS, [0, 1, 1, 1, 0]),
    ("clamp(min) passes at the bound", lambda x: x.clamp(min=1.0), KINKS, [0, 0, 1, 1, 1]),
    ("hardtanh blocks at the bounds", lambda x: C.hardtanh(x, 0.0, 2.0), KINKS,
     [0, 0, 1, 0, 0]),
    ("relu is 0 at 0", C.relu, KINKS, [0, 0, 1, 1, 1]),
    ("hardswish at its kinks", lambda x: C.hardswish(x * 3), [-1.0, 0.0, 1.0, 2.0],
     [0.0, 1.5, 3.0, 3.0]),
    ("logaddexp splits ties", lambda x: graphc.logaddexp(x, graphc.tensor([1.0, 0.0])),
     [1.0, 2.0], [0.5, 0.8807970779778823]),
    ("leaky_relu is slope at 0", lambda x: C.leaky_relu(x), KINKS,
     [0.01, 0.01, 1, 1, 1]),
    ("abs is 0 at 0", lambda x: x.abs(), KINKS, [-1, 0, 1, 1, 1]),
    ("sqrt of clamp is 0 below", lambda x: x.clamp(min=0).sqrt(), KINKS,
     [0, math.inf, 0.5, 0.3535533905932738, 0.28867513459481287]),
    ("x ** 0 is 0 at 0", lambda x: x ** 0.0, [0.0, 2.0], [0, 0]),
    ("x ** 2.5 at 0", lambda x: x ** 2.5, [0.0, 2.0], [0, 7.0710678118654755]),
    ("0 ** x by the exponent", lambda x: graphc.tensor([0.0, 0.0]) ** x, [0.0, 2.0], [0, 0]),
    ("prod with one zero", lambda x: x.prod(), [2.0, 0.0, 3.0], [0, 6, 0]),
    ("prod with two zeros", lambda x: x.prod(), [2.0, 0.0, 0.0], [0, 0, 0]),
    ("max_pool2d ties go to the first", lambda x: S.max_pool2d(x, 2),
     [[[[1.0, 1.0], [1.0, 1.0]]]], [[[[1, 0], [0, 0]]]]),
]


@pytest.mark.parametrize("fn,values,want", [c[1:] for c in CONVENTIONS],
                         ids=[c[0] for c in CONVENTIONS])
def test_gradient_conventions_match_pytorch(fn, values, want):
    np.testing.assert_allclose(_grad(fn, values), want, rtol=1e-6)


class _ScalarOpsUsed:
    """An ops handler that records which scalar ops a primitive's scalar rule calls."""

    def __init__(self):
        self.used = []

    def const(self, value):
        return "const"

    def __getattr__(self, name):
        def op(*operands):
            self.used.append((name, len(operands)))
            return name
        return op


def test_every_primitive_carries_what_its_lowering_needs():
    for name, prim in REGISTRY.items():
        arrays, _ = {**PRIMITIVE_SAMPLES, **COLLECTIVE_SAMPLES}[name][0]
        if prim.kind == "elementwise":
            ops = _ScalarOpsUsed()
            prim.scalar(ops, *[f"x{i}" for i in range(len(arrays))])
            assert ops.used, name
            for op, arity in ops.used:
                assert SCALAR_OPS.get(op) == arity, (name, op)
        else:
            assert prim.scalar is None, name
        if prim.kind == "reduction":
            assert prim.accumulation in ACCUMULATIONS.values(), name
            for dt in dtypes.ALL:
                assert prim.accumulation.identity(dt) is not None, name
        if prim.kind == "movement":      # read through an index map, or a kernel of its own
            assert (prim.index_map is not None) != prim.scatter, name
        assert not prim.view or prim.index_map is not None, name


# Inputs whose dtype is fixed by the op (indices, conditions, seeds): never converted.
