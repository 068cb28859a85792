"""Property tests: generated shapes (with 0- and 1-sized dims), broadcast pairs, random
reduction dims, random slices, permutations and index keys; eager graphc == numpy, and
gradients of random chains of elementwise ops and reductions == finite differences."""
import math

import numpy as np
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import graphc
import graphc.composite as C

from gradcheck import gradcheck

DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64}
shapes = st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple)
nonempty_shapes = st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple)


def values(dtype, shape):
    if np.dtype(dtype).kind == "f":
        return hnp.arrays(dtype, shape, elements=st.floats(-10, 10, width=32))
    return hnp.arrays(dtype, shape, elements=st.integers(-10, 10))


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast: the second drops leading dims and sets some to 1."""
    a = draw(shapes)
    lead = draw(st.integers(0, len(a)))
    b = tuple(1 if draw(st.booleans()) else d for d in a[lead:])
    return (a, b) if draw(st.booleans()) else (b, a)


def assert_same(t, ref):
    ref = np.asarray(ref)
    assert tuple(t.shape) == ref.shape
    got = t.numpy()
    if ref.dtype.kind == "f":
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, ref)


BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum,
          "minimum": np.minimum, "lt": np.less, "eq": np.equal, "ge": np.greater_equal}


@given(st.data(), broadcast_pair(), st.sampled_from(sorted(BINARY)),
       st.sampled_from(sorted(DTYPES)))
def test_binary_broadcast_matches_numpy(data, pair, op, dtype):
    a = data.draw(values(DTYPES[dtype], pair[0]))
    b = data.draw(values(DTYPES[dtype], pair[1]))
    out = getattr(graphc, op)(graphc.tensor(a), graphc.tensor(b))
    want = BINARY[op](a, b)
    assert out.dtype.np == want.dtype
    assert_same(out, want)


UNARY = {"tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "sin": np.sin,
         "abs": np.abs, "neg": np.negative, "relu": lambda a: np.maximum(a, 0),
         "floor": np.floor, "exp": np.exp}


@given(st.data(), shapes, st.sampled_from(sorted(UNARY)), st.sampled_from(["float32",
                                                                           "float64"]))
def test_unary_matches_numpy(data, shape, op, dtype):
    a = data.draw(values(DTYPES[dtype], shape))
    with np.errstate(over="ignore"):
        want = UNARY[op](a.astype(np.float64)).astype(a.dtype)
    assert_same(getattr(graphc, op)(graphc.tensor(a)), want)


@st.composite
def reduction_dims(draw, shape):
    """A non-empty set of dims, each spelled positive or negative, in random order."""
    dims = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    return tuple(d - len(shape) if draw(st.booleans()) else d for d in dims)


@given(st.data(), shapes.filter(len), st.sampled_from(["sum", "mean", "prod", "amax",
                                                       "amin", "var"]), st.booleans())
def test_reductions_over_random_dims_match_numpy(data, shape, op, keepdim):
    a = data.draw(values(np.float64, shape))
    dims = data.draw(reduction_dims(shape))
    axes = tuple(d % len(shape) for d in dims)
    if op in ("amax", "amin"):
        assume(all(shape[d] for d in axes))
    numpy_fn = {"amax": np.max, "amin": np.min, "var": lambda x, **kw: np.var(x, ddof=1, **kw)
                }.get(op, getattr(np, op))
    with np.errstate(all="ignore"):
        want = numpy_fn(a, axis=axes, keepdims=keepdim)
    arg = dims if len(dims) > 1 else dims[0]
    assert_same(getattr(graphc.tensor(a), op)(arg, keepdim=keepdim), want)


@given(st.data(), nonempty_shapes, st.booleans())
def test_max_argmax_over_a_random_dim_match_numpy(data, shape, keepdim):
    a = data.draw(values(np.int64, shape))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    t = graphc.tensor(a)
    values_, indices = t.max(dim, keepdim=keepdim)
    assert_same(values_, np.max(a, axis=dim, keepdims=keepdim))
    assert_same(indices, np.argmax(a, axis=dim, keepdims=keepdim))
    assert_same(t.argmin(dim, keepdim=keepdim), np.argmin(a, axis=dim, keepdims=keepdim))


@st.composite
def slice_for(draw, size):
    bound = st.one_of(st.none(), st.integers(-size - 2, size + 2))
    return slice(draw(bound), draw(bound), draw(st.one_of(st.none(), st.integers(1, 3))))


@given(st.data(), shapes)
def test_random_slices_and_permutations_match_numpy(data, shape):
    a = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    key = tuple(data.draw(slice_for(d)) for d in shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    view = graphc.tensor(a)[key].permute(*perm) if shape else graphc.tensor(a)
    want = a[key].transpose(perm) if shape else a
    assert_same(view, want)
    assert_same(view * 2 + view.sum(), want * 2 + want.sum())       # math on the view
    if view.dim():
        assert_same(view.reshape(-1), want.reshape(-1))


@st.composite
def index_key(draw, shape):
    """A key of ints, slices, None, Ellipsis and integer lists, as numpy accepts."""
    key = []
    for size in shape:
        choice = draw(st.sampled_from(["int", "slice", "list", "none", "full"]))
        if choice == "int":
            key.append(draw(st.integers(-size, size - 1)))
        elif choice == "slice":
            key.append(draw(slice_for(size)))
        elif choice == "list":
            key.append(draw(st.lists(st.integers(-size, size - 1), min_size=1, max_size=3)))
        elif choice == "none":
            key += [None, slice(None)]
        else:
            key.append(slice(None))
    lists = [len(k) for k in key if isinstance(k, list)]
    assume(len(set(lists)) <= 1)                 # integer lists must broadcast together
    if key and draw(st.booleans()):
        cut = draw(st.integers(0, len(key) - 1))
        key = key[:cut] + [Ellipsis] + key[cut + 1:]
    return tuple(key)


@given(st.data(), nonempty_shapes)
def test_random_index_keys_match_numpy(data, shape):
    a = np.arange(math.prod(shape)).reshape(shape)
    key = data.draw(index_key(shape))
    assert_same(graphc.tensor(a)[key], a[key])


@given(st.data(), nonempty_shapes, st.booleans())
def test_random_index_writes_match_numpy(data, shape, scalar):
    a = np.zeros(shape)
    key = data.draw(index_key(shape))
    value = 7.0 if scalar else np.arange(a[key].size, dtype=np.float64).reshape(a[key].shape)
    t = graphc.tensor(a)
    t[key] = value if scalar else graphc.tensor(value)
    a[key] = value
    assert_same(t, a)


@given(st.data(), nonempty_shapes)
def test_boolean_masks_match_numpy(data, shape):
    a = data.draw(values(np.float64, shape))
    mask = data.draw(hnp.arrays(np.bool_, shape[:data.draw(st.integers(1, len(shape)))]))
    assert_same(graphc.tensor(a)[graphc.tensor(mask)], a[mask])


# ---- gradients of random chains ------------------------------------------------------------
SMOOTH_UNARY = {
    "tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(), "sin": lambda x: x.sin(),
    "square": lambda x: x * x, "exp_tanh": lambda x: x.tanh().exp(),
    "softplus": lambda x: C.softplus(x), "gelu": lambda x: C.gelu(x),
    "sqrt": lambda x: (x * x + 1).sqrt(),
}
SMOOTH_BINARY = {
    "add": lambda x, y: x + y, "sub": lambda x, y: y - x, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / (y * y + 1), "pow": lambda x, y: (x * x + 1) ** y.tanh(),
}
# keepdim, so that the chain's value still broadcasts against the second input
REDUCTIONS = {"sum": lambda x, d: x.sum(d, keepdim=True),
              "mean": lambda x, d: x.mean(d, keepdim=True),
              "logsumexp": lambda x, d: x.logsumexp(d, keepdim=True),
              "softmax": lambda x, d: C.softmax(x, d),
              "var": lambda x, d: x.var(d, keepdim=True)}


@st.composite
def chain(draw, ndim):
    """A list of steps: ("unary", name), ("binary", name) or ("reduce", name, dim)."""
    steps = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["unary", "binary", "reduce"]))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(sorted(SMOOTH_UNARY)))))
        elif kind == "binary":
            steps.append(("binary", draw(st.sampled_from(sorted(SMOOTH_BINARY)))))
        elif ndim:
            steps.append(("reduce", draw(st.sampled_from(sorted(REDUCTIONS))),
                          draw(st.integers(-ndim, ndim - 1))))
    return steps


def run_chain(steps, x, y):
    for step in steps:
        if step[0] == "unary":
            x = SMOOTH_UNARY[step[1]](x)
        elif step[0] == "binary":
            x = SMOOTH_BINARY[step[1]](x, y)
        elif x.dim() and (step[1] != "var" or x.shape[step[2] % x.dim()] > 1):
            x = REDUCTIONS[step[1]](x, step[2] % x.dim())
    return x


@settings(max_examples=20)
@given(st.data(), broadcast_pair().filter(lambda p: 0 not in p[0] + p[1]
                                          and math.prod(p[0]) * math.prod(p[1]) <= 24),
       st.booleans())
def test_random_chain_gradients_match_finite_differences(data, pair, transposed):
    x = data.draw(hnp.arrays(np.float64, pair[0], elements=st.floats(-2, 2)))
    y = data.draw(hnp.arrays(np.float64, pair[1], elements=st.floats(-2, 2)))
    steps = data.draw(chain(max(len(pair[0]), len(pair[1]))))

    def fn(a, b):
        if transposed and a.dim() >= 2:                 # go through a non-contiguous view
            a = a.transpose(0, -1).contiguous().transpose(0, -1)
        return run_chain(steps, a, b)
    gradcheck(fn, x, y, rtol=1e-4, atol=1e-6)
