"""Forward numerics of every tensor function and composite, against numpy, exact formulas
or hard-coded PyTorch 2 reference values; across dtypes, broadcasting and
non-contiguous views; plus the error messages bad input gets."""
import math

import numpy as np
import pytest

import graphc
import graphc.composite as C

RNG = np.random.default_rng(1234)
FLOATS = (graphc.float32, graphc.float64)
INTS = (graphc.int32, graphc.int64)
ALL = (graphc.bool, graphc.int32, graphc.int64, graphc.float32, graphc.float64)


def T(data, dtype=None):
    return graphc.tensor(data, dtype=dtype)


def check(t, expected, dtype=None, rtol=None, atol=None):
    """Assert a graphc tensor equals a numpy array: shape, dtype (if given) and values."""
    expected = np.asarray(expected)
    assert isinstance(t, graphc.Tensor), type(t)
    assert tuple(t.shape) == expected.shape, (t.shape, expected.shape)
    if dtype is not None:
        assert t.dtype == dtype, (t.dtype, dtype)
    got = t.numpy()
    if got.dtype.kind in "biu" and expected.dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected)
        return
    default = 1e-12 if got.dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got, expected, rtol=default if rtol is None else rtol,
                               atol=default if atol is None else atol, equal_nan=True)


def sample(shape, dtype, low=-3.0, high=3.0):
    """Random values of a graphc dtype, as numpy (ints small, bools mixed)."""
    if dtype == graphc.bool:
        return RNG.random(shape) < 0.5
    if dtype in INTS:
        return RNG.integers(-5, 6, shape).astype(dtype.np)
    return RNG.uniform(low, high, shape).astype(dtype.np)


def variants(a):
    """(graphc tensor, numpy equivalent) pairs: contiguous, permuted, stepped, expanded."""
    out = [(T(a), a)]
    if a.ndim >= 2:
        rev = tuple(reversed(range(a.ndim)))
        out.append((T(np.ascontiguousarray(a.transpose(rev))).permute(rev), a))
    if a.ndim >= 1 and a.size:
        wide = np.repeat(a, 2, axis=-1)
        out.append((T(wide)[..., ::2], wide[..., ::2]))
        out.append((T(a[..., :1]).expand(a.shape), np.broadcast_to(a[..., :1], a.shape)))
    for t, _ in out[1:]:
        assert not t.is_contiguous()
    return out


# ---- type promotion ---------------------------------------------------------------------
# PyTorch 2: the dtype of tensor(rows) + tensor(cols); dimensioned, then 0-dim right side.
_NAMES = ["bool", "int32", "int64", "float32", "float64"]
ADD_DIMENSIONED = """
bool    int32   int64   float32 float64
int32   int32   int64   float32 float64
int64   int64   int64   float32 float64
float32 float32 float32 float32 float64
float64 float64 float64 float64 float64
"""
ADD_ZERO_DIM = """
bool    int32   int64   float32 float64
int32   int32   int32   float32 float64
int64   int64   int64   float32 float64
float32 float32 float32 float32 float32
float64 float64 float64 float64 float64
"""
# tensor + True, + 2, + 2.5
ADD_SCALAR = {"bool": ("bool", "int64", "float32"), "int32": ("int32", "int32", "float32"),
              "int64": ("int64", "int64", "float32"),
              "float32": ("float32", "float32", "float32"),
              "float64": ("float64", "float64", "float64")}


def _table(text):
    rows = [line.split() for line in text.strip().splitlines()]
    return {(a, b): rows[i][j] for i, a in enumerate(_NAMES) for j, b in enumerate(_NAMES)}


@pytest.mark.parametrize("zero_dim", [False, True])
def test_promotion_table_matches_pytorch(zero_dim):
    table = _table(ADD_ZERO_DIM if zero_dim else ADD_DIMENSIONED)
    for (a, b), want in table.items():
        x = graphc.ones(2, dtype=getattr(graphc, a))
        y = graphc.ones((), dtype=getattr(graphc, b)) if zero_dim else \
            graphc.ones(2, dtype=getattr(graphc, b))
        assert (x + y).dtype.name == want, (a, b)
        div_want = want if want.startswith("float") else "float32"
        assert (x / y).dtype.name == div_want, (a, b)


def test_promotion_with_python_scalars():
    for name, wants in ADD_SCALAR.items():
        x = graphc.ones(2, dtype=getattr(graphc, name))
        assert [(x + s).dtype.name for s in (True, 2, 2.5)] == list(wants), name
        assert [(s + x).dtype.name for s in (True, 2, 2.5)] == list(wants), name


def test_promotion_specific_rules():
    i = T([1, 2, 3])
    check(i / 2, [0.5, 1.0, 1.5], graphc.float32)
    check(i / T([2, 4, 4]), [0.5, 0.5, 0.75], graphc.float32)
    check(i + 2.5, [3.5, 4.5, 5.5], graphc.float32)
    f = T([1.0, 2.0])
    assert (f * T(3.0, graphc.float64)).dtype == graphc.float32
    assert (T(1.0) * T(3.0, graphc.float64)).dtype == graphc.float64
    assert (f * T([3.0], graphc.float64)).dtype == graphc.float64
    check(T([True, False]) + T([True, True]), [True, True], graphc.bool)
    check(T([True, False]) * T([True, True]), [True, False], graphc.bool)
    check(T([True, False]) + 1, [2, 1], graphc.int64)
    check(T([1, 2], graphc.int32) * 3, [3, 6], graphc.int32)
    check(T([2]) ** 3, [8], graphc.int64)
    check(2 ** T([3]), [8], graphc.int64)
    check(T([2]) ** 2.0, [4.0], graphc.float32)
    check(T([4, 9]) ** 0.5, [2.0, 3.0], graphc.float32)
    check(graphc.sqrt(T([4, 9])), [2.0, 3.0], graphc.float32)
    check(-T([3], graphc.int32), [-3], graphc.int32)
    check(graphc.abs(T([-3])), [3], graphc.int64)


def test_integer_division_and_remainder_follow_python_floor_semantics():
    a, b = T([-7, -3, 3, 7]), T([2, 2, -2, 3])
    check(a // b, np.array([-7, -3, 3, 7]) // np.array([2, 2, -2, 3]), graphc.int64)
    check(a % b, np.array([-7, -3, 3, 7]) % np.array([2, 2, -2, 3]), graphc.int64)
    check(graphc.div(a, b, rounding_mode="trunc"), [-3, -1, -1, 2], graphc.int64)
    x = T([-2.5, 2.5, 1.5, 0.5, -0.5])
    check(graphc.round(x), [-2.0, 2.0, 2.0, 0.0, -0.0])
    check(graphc.trunc(x), [-2.0, 2.0, 1.0, 0.0, -0.0])
    check(graphc.ceil(x), np.ceil(x.numpy()))
    check(T([5.0, -5.0]) % 3, [2.0, 1.0])


# ---- elementwise math ---------------------------------------------------------------------
def _np_erf(a):
    return np.vectorize(math.erf, otypes=[np.float64])(a)


UNARY_FLOAT = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda a: 1 / np.sqrt(a),
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "tanh": np.tanh,
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "erf": _np_erf, "log2": np.log2,
    "log10": np.log10, "log1p": np.log1p, "expm1": np.expm1,
}
POSITIVE_ONLY = {"log", "sqrt", "rsqrt", "log2", "log10", "log1p"}


@pytest.mark.parametrize("name", sorted(UNARY_FLOAT))
@pytest.mark.parametrize("dtype", ALL[1:], ids=lambda d: d.name)
def test_unary_float_functions(name, dtype):
    low = 0.1 if name in POSITIVE_ONLY else -3.0
    a = sample((3, 4), dtype, low=low) if dtype in FLOATS else RNG.integers(1, 6, (3, 4)) \
        .astype(dtype.np)
    want_dtype = dtype if dtype in FLOATS else graphc.float32
    for t, ref in variants(a):
        out = getattr(graphc, name)(t)
        check(out, UNARY_FLOAT[name](ref.astype(np.float64)), want_dtype, rtol=1e-5)
        check(getattr(t, name)(), out.numpy())


@pytest.mark.parametrize("dtype", ALL[1:], ids=lambda d: d.name)
def test_unary_dtype_preserving_functions(dtype):
    a = sample((2, 5), dtype)
    for t, ref in variants(a):
        check(-t, -ref, dtype)
        check(graphc.abs(t), np.abs(ref), dtype)
        check(graphc.sign(t), np.sign(ref), dtype)
        check(graphc.relu(t), np.maximum(ref, 0), dtype)
        check(graphc.floor(t), np.floor(ref), dtype)


def test_log1p_and_expm1_are_accurate_for_tiny_x():
    """Unlike log(x + 1) and exp(x) - 1, which lose every digit there."""
    for dtype in FLOATS:
        x = T([1e-7, -1e-7, 1e-30, 0.25], dtype)
        check(graphc.log1p(x), [math.log1p(v) for v in x.tolist()], dtype, rtol=1e-7)
        check(x.expm1(), [math.expm1(v) for v in x.tolist()], dtype, rtol=1e-7)
    assert abs(graphc.log1p(T([1e-7])).item() - math.log1p(1e-7)) < 1e-7 * 2 ** -23
    check(graphc.log1p(T([-1.0, -2.0, math.inf])), [-math.inf, math.nan, math.inf])
    check(graphc.expm1(T([-math.inf, math.inf, 100.0])), [-1.0, math.inf, math.inf])
    check(graphc.log1p(T([1, 3])), [math.log1p(1), math.log1p(3)], graphc.float32)


def test_atan2():
    pairs = [(1.0, 2.0), (-1.0, 2.0), (1.0, -2.0), (-1.0, -2.0), (3.0, 0.0), (0.0, -1.0),
             (-0.0, -1.0), (math.inf, -math.inf), (0.0, 0.0)]
    y, x = (T([p[i] for p in pairs], graphc.float64) for i in (0, 1))
    check(graphc.atan2(y, x), [math.atan2(a, b) for a, b in pairs], graphc.float64)
    check(y.atan2(x), [math.atan2(a, b) for a, b in pairs])
    check(graphc.atan2(T([1, -1]), T([1, 0])), [math.pi / 4, -math.pi / 2], graphc.float32)
    a, b = sample((2, 3), graphc.float32), sample((3,), graphc.float64)
    check(graphc.atan2(T(a), T(b)), np.arctan2(a.astype(np.float64), b), graphc.float64)
    for t, ref in variants(sample((3, 4), graphc.float32)):
        check(graphc.atan2(t, 0.5), np.arctan2(ref, np.float32(0.5)), graphc.float32)


def test_logaddexp():
    a, b = sample((3, 4), graphc.float64, -50, 50), sample((4,), graphc.float64, -50, 50)
    check(graphc.logaddexp(T(a), T(b)), np.logaddexp(a, b), graphc.float64)
    big = T([1000.0, -1000.0, 0.0])
    check(big.logaddexp(big), [1000.0 + math.log(2), -1000.0 + math.log(2), math.log(2)])
    inf = T([-math.inf, math.inf, -math.inf, math.inf, 1.0])
    other = T([-math.inf, math.inf, math.inf, -math.inf, -math.inf])
    check(graphc.logaddexp(inf, other), [-math.inf, math.inf, math.inf, math.inf, 1.0])
    check(graphc.logaddexp(T([1, 2]), T([3, 4])), np.logaddexp([1.0, 2.0], [3.0, 4.0]),
          graphc.float32)


def test_special_values_follow_ieee():
    check(graphc.log(T([0.0, -1.0])), [-np.inf, np.nan])
    check(graphc.sqrt(T([-1.0])), [np.nan])
    check(T([1.0, 0.0]) / T([0.0, 0.0]), [np.inf, np.nan])
    check(graphc.sigmoid(T([-1000.0, 1000.0])), [0.0, 1.0])
    check(graphc.exp(T([1000.0])), [np.inf])
    check(T([np.inf]) * 0, [np.nan])


BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum,
    "minimum": np.minimum, "eq": np.equal, "ne": np.not_equal, "lt": np.less,
    "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
}
BROADCAST_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)),
                   ((), (2, 3)), ((2, 0, 3), (1, 3)), ((4, 1), (1, 5))]


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
def test_binary_broadcasting(name, shapes):
    for dtype in (graphc.float32, graphc.int64, graphc.int32, graphc.bool):
        if dtype == graphc.bool and name == "sub":
            continue                                    # an error, tested below
        a, b = sample(shapes[0], dtype), sample(shapes[1], dtype)
        out = getattr(graphc, name)(T(a), T(b))
        want = BINARY[name](a, b)
        check(out, want, graphc.bool if want.dtype == bool else dtype)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "maximum", "minimum", "lt"])
def test_binary_on_non_contiguous_views(name):
    a, b = sample((3, 4), graphc.float64), sample((3, 4), graphc.float64)
    for (ta, ra), (tb, rb) in zip(variants(a), reversed(variants(b))):
        check(getattr(graphc, name)(ta, tb), BINARY[name](ra, rb))


def test_division_and_pow():
    a, b = sample((3, 4), graphc.float64), sample((4,), graphc.float64, low=0.5)
    check(T(a) / T(b), a / b)
    check(graphc.div(T(a), 2.0), a / 2)
    check(3 / T(b), 3 / b)
    check(T(b) ** T(a), b ** a)
    check(T(a) ** 3, a ** 3)
    check(2.0 ** T(a), 2.0 ** a)
    check(graphc.pow(T(b), 0.5), b ** 0.5)
    check(T(a).pow(2), a * a)


def test_bool_and_logical_ops():
    p, q = T([True, True, False, False]), T([True, False, True, False])
    check(p & q, [True, False, False, False], graphc.bool)
    check(p | q, [True, True, True, False], graphc.bool)
    check(p ^ q, [False, True, True, False], graphc.bool)
    check(~p, [False, False, True, True], graphc.bool)
    check(graphc.logical_and(T([1, 0, 2]), T([1.0, 1.0, 0.0])), [True, False, False])
    check(graphc.logical_not(T([0.0, 1.5])), [True, False])
    check(graphc.isnan(T([1.0, np.nan])), [False, True])
    check(graphc.isinf(T([np.inf, -np.inf, 1.0])), [True, True, False])
    check(graphc.isfinite(T([np.inf, np.nan, 1.0])), [False, False, True])


@pytest.mark.parametrize("dtype", ALL[1:], ids=lambda d: d.name)
def test_clamp(dtype):
    a = sample((4, 3), dtype)
    for t, ref in variants(a):
        check(graphc.clamp(t, -1, 2), np.clip(ref, -1, 2), dtype)
        check(t.clamp(min=0), np.maximum(ref, 0), dtype)
        check(t.clip(max=1), np.minimum(ref, 1), dtype)
    check(graphc.clamp(T([1, 5]), min=2.5), [2.5, 5.0], graphc.float32)
    lo, hi = T(a.min(1, keepdims=True)), T(a.max(0))
    check(graphc.clamp(T(a), lo, hi), np.minimum(np.maximum(a, a.min(1, keepdims=True)),
                                                 a.max(0)), dtype)


def test_where_and_masked_fill():
    c = RNG.random((3, 4)) < 0.5
    a, b = sample((3, 4), graphc.float32), sample((4,), graphc.float32)
    check(graphc.where(T(c), T(a), T(b)), np.where(c, a, b), graphc.float32)
    check(graphc.where(T(c), T(a), 0.0), np.where(c, a, 0), graphc.float32)
    check(graphc.where(T(c), T([1]), 2.5), np.where(c, 1, 2.5), graphc.float32)
    check(T(a).where(T(c), -1), np.where(c, a, -1))
    check(T(a).masked_fill(T(c[0]), 7.0), np.where(c[0], 7, a))
    check(T(a).t().masked_fill(T(c).t(), -2), np.where(c, -2, a).T)
    check(T([1, 2, 3]).masked_fill(T([True, False, True]), 9), [9, 2, 9], graphc.int64)


# ---- reductions ---------------------------------------------------------------------------
DIMS = [None, 0, 1, -1, (0, 2), (-1, 0), (), (2, 1, 0)]


def _np_axes(dim):
    return None if dim is None or dim == () else dim


@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean_prod_amax_amin(dim, keepdim):
    a = sample((2, 3, 4), graphc.float64)
    axis = _np_axes(dim)
    for t, ref in variants(a):
        kw = {} if dim is None else {"dim": dim}
        check(t.sum(keepdim=keepdim, **kw), ref.sum(axis=axis, keepdims=keepdim))
        check(t.mean(keepdim=keepdim, **kw), ref.mean(axis=axis, keepdims=keepdim))
        check(t.prod(keepdim=keepdim, **kw), ref.prod(axis=axis, keepdims=keepdim))
        if dim is not None:
            check(t.amax(dim, keepdim), ref.max(axis=axis, keepdims=keepdim))
            check(t.amin(dim, keepdim), ref.min(axis=axis, keepdims=keepdim))


@pytest.mark.parametrize("dtype", ALL, ids=lambda d: d.name)
def test_reduction_dtypes(dtype):
    a = sample((3, 4), dtype)
    total = graphc.float64 if dtype == graphc.float64 else \
        graphc.float32 if dtype == graphc.float32 else graphc.int64
    check(T(a).sum(), a.sum(dtype=total.np), total)
    check(T(a).sum(1), a.sum(1, dtype=total.np), total)
    check(T(a).prod(0), a.prod(0, dtype=total.np), total)
    if dtype != graphc.bool:                # PyTorch has no argmax of bools
        check(T(a).max(), a.max(), dtype)
        check(T(a).amin(0), a.min(0), dtype)
        check(T(a).argmax(), np.argmax(a), graphc.int64)
    check(graphc.all(T(a)), a.all(), graphc.bool)
    check(graphc.any(T(a), 1), a.any(1), graphc.bool)
    check(graphc.count_nonzero(T(a), 0), np.count_nonzero(a, 0), graphc.int64)


def test_prod_with_zeros_and_empty_reductions():
    a = np.array([[1.0, 0.0, 3.0], [2.0, 3.0, 4.0], [0.0, 0.0, 5.0]])
    check(T(a).prod(1), [0.0, 24.0, 0.0])
    check(T(a).prod(), 0.0)
    check(T([]).sum(), 0.0)
    check(T([]).prod(), 1.0)
    check(graphc.zeros(2, 0).sum(1), [0.0, 0.0])


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_with_dim_returns_values_and_indices(name):
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 1.0]])
    out = getattr(T(a), name)(1)
    values, indices = out
    assert out.values is values and out.indices is indices
    pick = np.argmax if name == "max" else np.argmin
    check(values, getattr(a, name)(1))
    check(indices, pick(a, 1), graphc.int64)       # first occurrence on ties
    kept = getattr(graphc, name)(T(a), -1, keepdim=True)
    check(kept.values, getattr(a, name)(1, keepdims=True))
    check(kept.indices, pick(a, 1)[:, None])
    check(getattr(T(a).t(), name)(0).indices, pick(a, 1))
    check(getattr(T(a), name)(), getattr(a, name)())
    check(getattr(graphc, name)(T(a), T([[2.0], [1.5]])),
          (np.maximum if name == "max" else np.minimum)(a, [[2.0], [1.5]]))


def test_argmax_argmin():
    a = sample((3, 4, 5), graphc.float32)
    check(graphc.argmax(T(a)), np.argmax(a), graphc.int64)
    check(graphc.argmin(T(a), 1), np.argmin(a, 1))
    check(T(a).argmax(-1, keepdim=True), np.argmax(a, -1)[..., None])
    check(T(a).argmax(keepdim=True), np.argmax(a).reshape(1, 1, 1))
    check(T(a).permute(2, 0, 1).argmin(0), np.argmin(a, 2))
    check(T([1, 3, 3]).argmax(), 1)
    check(T(5.0).argmax(0), 0)


def test_var_std_are_unbiased_by_default():
    a = sample((3, 5), graphc.float64)
    check(T(a).var(), a.var(ddof=1))
    check(T(a).std(), a.std(ddof=1))
    check(T(a).var(1), a.var(1, ddof=1))
    check(T(a).std(0, keepdim=True), a.std(0, ddof=1, keepdims=True))
    check(T(a).var(unbiased=False), a.var())
    check(T(a).var(-1, correction=0), a.var(-1))
    check(T(a).t().std((0, 1)), a.std(ddof=1))
    check(T([1.0, 2.0, 4.0]).var(), 7.0 / 3.0)
    check(graphc.std(T([1.0, 2.0, 4.0]), False), math.sqrt(14.0 / 9.0))
    assert math.isnan(T([1.0]).var().item())


def test_logsumexp_cumsum_norm():
    a = sample((3, 4), graphc.float64)
    check(T(a).logsumexp(1), np.log(np.exp(a).sum(1)))
    check(graphc.logsumexp(T(a) * 1000, 0, keepdim=True),
          (a * 1000).max(0, keepdims=True) + np.log(np.exp(a * 1000 - (a * 1000).max(0))
                                                    .sum(0, keepdims=True)))
    check(T(a).cumsum(1), a.cumsum(1))
    check(T(a).t().cumsum(0), a.T.cumsum(0))
    check(graphc.cumsum(T([1, 2, 3], graphc.int32), 0), [1, 3, 6], graphc.int64)
    check(graphc.cumsum(T([True, False, True]), 0), [1, 1, 2], graphc.int64)
    check(graphc.norm(T(a)), np.linalg.norm(a))
    check(T(a).norm(1, 1), np.abs(a).sum(1))
    check(T(a).norm(3, 0), (np.abs(a) ** 3).sum(0) ** (1 / 3))


# ---- contractions -------------------------------------------------------------------------
MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((3,), (5, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)),
                 ((5, 2, 3), (5, 3, 1)), ((0, 3), (3, 2)), ((2, 0), (0, 3))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_matmul(shapes, dtype):
    a, b = sample(shapes[0], dtype), sample(shapes[1], dtype)
    check(T(a) @ T(b), a @ b, dtype, rtol=1e-5, atol=1e-5)
    check(graphc.matmul(T(a), T(b)), a @ b, dtype, rtol=1e-5, atol=1e-5)


def test_mm_bmm_dot_mv_outer_and_transposed_operands():
    a, b = sample((4, 3), graphc.float64), sample((4, 5), graphc.float64)
    check(graphc.mm(T(a).t(), T(b)), a.T @ b)
    check(T(b).t() @ T(a), b.T @ a)
    c, d = sample((2, 3, 4), graphc.float64), sample((2, 5, 4), graphc.float64)
    check(graphc.bmm(T(c), T(d).transpose(1, 2)), c @ d.transpose(0, 2, 1))
    check(T(c).mT @ T(c), c.transpose(0, 2, 1) @ c)
    check(graphc.dot(T(a[:, 0]), T(a[:, 1])), a[:, 0] @ a[:, 1])
    check(graphc.mv(T(a), T(a[0])), a @ a[0])
    check(graphc.outer(T(a[0]), T(b[0])), np.outer(a[0], b[0]))
    check(T(a)[::2] @ T(b)[:3:2, ::2].t(), a[::2] @ b[:3:2, ::2].T)
    check(C.linear(T(c), T(b[:, :4]), T(b[0, :4])), c @ b[:, :4].T + b[0, :4])


def conv2d_reference(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """Direct loop over output positions."""
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r, s = i * stride[0], j * stride[1]
            patch = x[:, :, r:r + dilation[0] * (kh - 1) + 1:dilation[0],
                      s:s + dilation[1] * (kw - 1) + 1:dilation[1]]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return out if b is None else out + b[None, :, None, None]


CONV_CASES = [dict(), dict(stride=2), dict(padding=1), dict(dilation=2),
              dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)), dict(stride=3, padding=2)]


@pytest.mark.parametrize("kw", CONV_CASES, ids=str)
def test_conv2d_against_direct_loop(kw):
    x, w, b = sample((2, 3, 7, 6), graphc.float64), sample((4, 3, 3, 2), graphc.float64), \
        sample((4,), graphc.float64)
    pair = {k: v if isinstance(v, tuple) else (v, v) for k, v in kw.items()}
    want = conv2d_reference(x, w, b, **pair)
    check(C.conv2d(T(x), T(w), T(b), **kw), want)
    nchw = T(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).permute(0, 3, 1, 2)
    check(C.conv2d(nchw, T(w), T(b), **kw), want)


def test_conv2d_float32_single_image_and_same_padding():
    x, w = sample((3, 6, 5), graphc.float32), sample((2, 3, 3, 3), graphc.float32)
    check(C.conv2d(T(x), T(w)), conv2d_reference(x[None], w)[0], graphc.float32,
          rtol=1e-5, atol=1e-5)
    same = C.conv2d(T(x[None]), T(w), padding="same", dilation=2)
    check(same, conv2d_reference(x[None], w, padding=(2, 2), dilation=(2, 2)),
          rtol=1e-5, atol=1e-5)


def pool_reference(x, k, stride, padding, reduce, fill):
    x = np.pad(x, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2), constant_values=fill)
    oh, ow = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(x[:, :, i * stride:i * stride + k,
                                       j * stride:j * stride + k], axis=(2, 3))
    return out


@pytest.mark.parametrize("k,stride,padding", [(2, None, 0), (3, 1, 1), (3, 2, 1), (2, 3, 0)])
def test_pooling(k, stride, padding):
    x = sample((2, 3, 7, 6), graphc.float64)
    s = stride or k
    check(C.max_pool2d(T(x), k, stride, padding), pool_reference(x, k, s, padding, np.max,
                                                                   -np.inf))
    check(C.avg_pool2d(T(x), k, stride, padding), pool_reference(x, k, s, padding, np.mean,
                                                                   0.0))
    check(C.max_pool2d(T(x[0]), k, stride, padding),
          pool_reference(x[:1], k, s, padding, np.max, -np.inf)[0])


# ---- activations, normalisation and losses -----------------------------------------------
def _np_softmax(a, axis):
    e = np.exp(a - a.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_log_softmax(dim):
    a = sample((3, 4, 5), graphc.float64) * 10
    for t, ref in variants(a):
        check(C.softmax(t, dim), _np_softmax(ref, dim))
        check(graphc.log_softmax(t, dim), np.log(_np_softmax(ref, dim)))
    big = np.array([1000.0, 0.0, -1000.0])
    check(graphc.softmax(T(big), 0), [1.0, 0.0, 0.0])
    check(graphc.log_softmax(T(big), 0), [0.0, -1000.0, -2000.0])
    rounded = a.astype(np.float32).astype(np.float64)
    check(C.softmax(T(a, graphc.float32), dim, dtype=graphc.float64),
          _np_softmax(rounded, dim), graphc.float64)


def test_hardswish():
    x = T([-4.0, -3.0, -1.5, 0.0, 1.0, 3.0, 4.5])
    want = [v * min(max(v + 3, 0), 6) / 6 for v in x.tolist()]
    check(C.hardswish(x), want, graphc.float32)
    check(graphc.nn.functional.hardswish(T([-1, 2])), [-1 / 3, 5 / 3], graphc.float32)
    check(graphc.nn.Hardswish()(x), want)


def test_activations():
    x = np.array([-3.0, -0.5, 0.0, 0.7, 2.5, 30.0])
    erf = _np_erf(x / math.sqrt(2))
    check(C.gelu(T(x)), x * 0.5 * (1 + erf))
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    check(C.gelu(T(x), approximate="tanh"), tanh_form)
    torch_gelu = [-0.00404969409489031, -0.15426876936299344, 0.0, 0.5306254434438489,
                  2.4844758366855597]
    torch_tanh = [-0.0036373920817729943, -0.15428599017485606, 0.0, 0.5305701347051167,
                  2.484915733910001]
    check(C.gelu(T(x[:5])), torch_gelu)
    check(C.gelu(T(x[:5]), approximate="tanh"), torch_tanh)
    check(C.leaky_relu(T(x), 0.1), np.where(x > 0, x, 0.1 * x))
    check(C.elu(T(x)), np.where(x > 0, x, np.expm1(x)))
    check(C.silu(T(x)), x / (1 + np.exp(-x)))
    check(C.softplus(T(x)), np.where(x > 20, x, np.log1p(np.exp(x))))
    check(C.softplus(T(x), beta=2.0), np.where(2 * x > 20, x, np.log1p(np.exp(2 * x)) / 2))
    check(C.hardtanh(T(x)), np.clip(x, -1, 1))
    check(C.relu(T(x)), np.maximum(x, 0))
    check(C.sigmoid(T(x)), 1 / (1 + np.exp(-x)))
    check(C.tanh(T(x)), np.tanh(x))


def test_layer_norm_and_batch_norm():
    x = sample((4, 3, 5), graphc.float64)
    w, b = sample((3, 5), graphc.float64), sample((3, 5), graphc.float64)
    mu = x.mean((1, 2), keepdims=True)
    var = x.var((1, 2), keepdims=True)
    check(C.layer_norm(T(x), (3, 5), T(w), T(b)), (x - mu) / np.sqrt(var + 1e-5) * w + b)
    last = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    check(C.layer_norm(T(x).transpose(0, 1), 5, eps=1e-3), last.transpose(1, 0, 2))
    rm, rv = graphc.zeros(3, dtype=graphc.float64), graphc.ones(3, dtype=graphc.float64)
    out = C.batch_norm(T(x), rm, rv, training=True, momentum=0.1)
    bmu, bvar = x.mean((0, 2), keepdims=True), x.var((0, 2), keepdims=True)
    check(out, (x - bmu) / np.sqrt(bvar + 1e-5))
    check(rm, 0.1 * bmu.reshape(-1))
    check(rv, 0.9 + 0.1 * x.var((0, 2), ddof=1))
    check(C.batch_norm(T(x), rm, rv, T(w[:, 0]), T(b[:, 0])),
          (x - rm.numpy()[:, None]) / np.sqrt(rv.numpy()[:, None] + 1e-5) * w[:, :1]
          + b[:, :1])


LOGITS = np.array([[1.0, -2.0, 0.5, 3.0], [0.1, 0.2, -0.3, 0.4], [2.0, 1.0, 0.0, -1.0]])
TARGET = np.array([3, 0, 2])
CLASS_WEIGHT = np.array([1.0, 2.0, 0.5, 1.25])
# PyTorch 2 values of F.cross_entropy(LOGITS, TARGET, **kw) for reduction mean/sum/none.
CE_REFERENCE = [
    ({}, 1.35319798518959, 4.0595939555687695,
     [0.20225344767935172, 1.4171508093282223, 2.4401896985611953]),
    ({"weight": True}, 1.0509318066210944, 2.8900624682080096,
     [0.2528168095991896, 1.4171508093282223, 1.2200948492805976]),
    ({"ignore_index": 0}, 1.3212215731202734, 2.642443146240547,
     [0.20225344767935172, 0.0, 2.4401896985611953]),
    ({"weight": True, "ignore_index": 0}, 0.8416638050741642, 1.4729116588797873,
     [0.2528168095991896, 0.0, 1.2200948492805976]),
    ({"label_smoothing": 0.1}, 1.41569798518959, 4.2470939555687695,
     [0.43975344767935176, 1.4171508093282223, 2.3901896985611955]),
    ({"label_smoothing": 0.2, "weight": True}, 1.3754376505505421, 3.78245353901399,
     [0.9127886415031977, 1.4515439646780306, 1.4181209328327622]),
    ({"label_smoothing": 0.2, "weight": True, "ignore_index": 2}, 1.0508144916361015,
     2.3643326061812284, [0.9127886415031977, 1.4515439646780306, 0.0]),
]


@pytest.mark.parametrize("kw,mean,total,each", CE_REFERENCE, ids=lambda v: str(v)[:40])
def test_cross_entropy_matches_pytorch(kw, mean, total, each):
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = T(CLASS_WEIGHT)
    x, y = T(LOGITS), T(TARGET)
    check(C.cross_entropy(x, y, **kw), mean)
    check(C.cross_entropy(x, y, reduction="sum", **kw), total)
    check(C.cross_entropy(x, y, reduction="none", **kw), each)


def test_cross_entropy_with_probabilities_and_spatial_targets():
    probs = np.array([[0.1, 0.6, 0.3, 0.0], [0.25] * 4, [0.0, 0.0, 1.0, 0.0]])
    check(C.cross_entropy(T(LOGITS), T(probs)), 2.6698646518562565)
    check(C.cross_entropy(T(LOGITS), T(probs), label_smoothing=0.1, weight=T(CLASS_WEIGHT)),
          3.148310941089141)
    x = sample((2, 4, 3, 2), graphc.float64)
    y = RNG.integers(0, 4, (2, 3, 2))
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    picked = np.take_along_axis(logp, y[:, None], 1)[:, 0]
    check(C.cross_entropy(T(x), T(y)), -picked.mean())
    check(C.nll_loss(T(logp), T(y), reduction="none"), -picked)
    check(C.cross_entropy(T(LOGITS[0]), T(3)), CE_REFERENCE[0][3][0])


def test_nll_loss():
    logp = np.log(_np_softmax(LOGITS, 1))
    picked = logp[np.arange(3), TARGET]
    check(C.nll_loss(T(logp), T(TARGET)), -picked.mean())
    w = CLASS_WEIGHT[TARGET]
    check(C.nll_loss(T(logp), T(TARGET), weight=T(CLASS_WEIGHT)), -(picked * w).sum() / w.sum())
    check(C.nll_loss(T(logp), T(TARGET), ignore_index=3, reduction="sum"), -picked[1:].sum())
    check(C.nll_loss(T(logp), T(TARGET, graphc.int32)), -picked.mean())


def test_binary_cross_entropy_clamps_log_at_minus_100():
    p = T([0.0, 1.0, 0.5, 1.0, 0.0], graphc.float64)
    y = T([1.0, 0.0, 0.5, 1.0, 0.0], graphc.float64)
    check(C.binary_cross_entropy(p, y, reduction="none"), [100.0, 100.0, math.log(2), 0.0, 0.0])
    check(C.binary_cross_entropy(p, y), (200 + math.log(2)) / 5)
    check(C.binary_cross_entropy(p, y, weight=T([1.0, 0.5, 2.0, 1.0, 1.0], graphc.float64),
                                 reduction="sum"), 150 + 2 * math.log(2))


def test_bce_with_logits_and_regression_losses():
    x, y = sample((3, 4), graphc.float64) * 10, RNG.random((3, 4))
    # -log(sigmoid(x)) = log(1 + exp(-x)) and -log(1 - sigmoid(x)) = log(1 + exp(x))
    bce = y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)
    check(C.binary_cross_entropy_with_logits(T(x), T(y), reduction="none"), bce)
    pw = np.array([1.0, 2.0, 0.5, 3.0])
    weighted = pw * y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)
    check(C.binary_cross_entropy_with_logits(T(x), T(y), pos_weight=T(pw)), weighted.mean())
    check(C.binary_cross_entropy_with_logits(T([1000.0, -1000.0]), T([0.0, 1.0]),
                                             reduction="sum"), 2000.0)
    check(C.mse_loss(T(x), T(y)), ((x - y) ** 2).mean())
    check(C.mse_loss(T(x), T(y), reduction="sum"), ((x - y) ** 2).sum())
    check(C.l1_loss(T(x), T(y), reduction="none"), np.abs(x - y))
    d = np.abs(x - y)
    check(C.smooth_l1_loss(T(x), T(y), beta=2.0), np.where(d < 2, d * d / 4, d - 1).mean())


def test_embedding_pad_dropout_normalize():
    w = sample((5, 3), graphc.float64)
    idx = np.array([[0, 4], [4, 2]])
    check(C.embedding(T(idx), T(w)), w[idx])
    x = sample((2, 3, 4), graphc.float64)
    check(C.pad(T(x), (1, 2)), np.pad(x, ((0, 0), (0, 0), (1, 2))))
    check(C.pad(T(x), (0, 1, 2, 0), value=-1.0),
          np.pad(x, ((0, 0), (2, 0), (0, 1)), constant_values=-1))
    graphc.manual_seed(0)
    ones = graphc.ones(4000)
    dropped = C.dropout(ones, 0.25).numpy()
    assert set(np.unique(dropped)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((dropped == 0).mean() - 0.25) < 0.03
    assert C.dropout(ones, 0.25, training=False) is ones
    check(C.dropout(ones, 1.0), np.zeros(4000))
    check(C.normalize(T(x), dim=1), x / np.linalg.norm(x, axis=1, keepdims=True))
    cos = (x * x[::-1]).sum(2) / (np.linalg.norm(x, axis=2) * np.linalg.norm(x[::-1], axis=2))
    check(C.cosine_similarity(T(x), T(x[::-1].copy()), dim=2), cos)


# ---- indexing -----------------------------------------------------------------------------
X = np.arange(120).reshape(2, 3, 4, 5)
READ_KEYS = [
    1, -1, (0, 1), (slice(None), 0), (Ellipsis, 1), (None, 0), (0, None, slice(1, 3)),
    (slice(None, None, 2),), (slice(1, None, 2), Ellipsis, slice(None, None, 3)),
    (slice(1, 100), slice(-100, 2)), (slice(3, 1),), (Ellipsis,), (Ellipsis, None),
    (-1, -2, -3, -4), (slice(None), slice(None), 2),
    [1, 0], [[1, 0], [0, 0]], (slice(None), [0, 2]), ([0, 1], [1, 2]),
    ([0, 1], slice(None), [1, 2]), (slice(None), [0, 2], [1, 3]),
    ([[0], [1]], [0, 2]), ([-1, 0], slice(1, 3)), (0, [1, 2]),
    (slice(None), 0, slice(None), [1, 2]), (Ellipsis, [0, 4]), (1, slice(None), [3], [0, 1]),
    ([0, 1], None), (None, [1]), ([1], None, slice(None), [2]),
    ("mask4",), ("mask2",), (slice(None), "mask_dim1"), ("mask2", [0, 3]),
    ("tensor",), ("tensor", "tensor"), (slice(None), "tensor_int32"),
]


def _index_key(key):
    """Replace the string placeholders by (graphc key, numpy key) entries."""
    named = {"mask4": X % 7 == 0, "mask2": X[:, :, 0, 0] % 3 == 0,
             "mask_dim1": np.array([True, False, True]), "tensor": np.array([1, 0, 1]),
             "tensor_int32": np.array([[2, 0]], np.int32)}
    key = key if isinstance(key, tuple) else (key,)
    ours = tuple(T(named[k]) if isinstance(k, str) else k for k in key)
    theirs = tuple(named[k] if isinstance(k, str) else k for k in key)
    return ours, theirs


@pytest.mark.parametrize("key", READ_KEYS, ids=str)
def test_getitem_matches_numpy(key):
    ours, theirs = _index_key(key)
    for t, ref in variants(X)[:3]:
        check(t[ours], ref[theirs], graphc.int64)


def test_getitem_basic_indexing_is_a_view_and_advanced_is_a_copy():
    x = graphc.zeros(3, 4)
    x[1:, ::2][0, 1] = 5.0
    assert x[1, 2].item() == 5.0
    y = x[[1]]
    y[0, 0] = 7.0
    assert x[1, 0].item() == 0.0
    x.t()[3, 0] = 2.0
    assert x[0, 3].item() == 2.0


WRITE_KEYS = [(1,), (slice(None), 0), (0, slice(1, 3)), (Ellipsis, -1), (slice(None, None, 2),),
              ([0, 2], [1, 3]), ("mask",), (slice(None), [3, 0]), (1, [0, 0])]


@pytest.mark.parametrize("key", WRITE_KEYS, ids=str)
@pytest.mark.parametrize("value", ["scalar", "tensor"])
def test_setitem_matches_numpy(key, value):
    base = sample((3, 4), graphc.float32)
    mask = base > 0
    key = tuple(T(mask) if k == "mask" else k for k in key)
    np_key = tuple(mask if isinstance(k, graphc.Tensor) else k for k in key)
    ref = base.copy()
    shape = ref[np_key].shape
    v = 9.5 if value == "scalar" else np.arange(math.prod(shape), dtype=np.float32) \
        .reshape(shape)
    ref[np_key] = v
    x = T(base)
    x[key] = v if value == "scalar" else T(v)
    check(x, ref, graphc.float32)


def test_setitem_casts_and_broadcasts():
    x = graphc.zeros(2, 3, dtype=graphc.int64)
    x[0] = T([1, 2, 3], graphc.int32)
    x[:, 1] = 7
    x[1, 2] = True
    check(x, [[1, 7, 3], [0, 7, 1]], graphc.int64)
    y = graphc.zeros(2, 3)
    y[:] = T([1, 2, 3])
    y[T([True, False])] = 4.0
    check(y, [[4, 4, 4], [1, 2, 3]], graphc.float32)
    v = y.view(3, 2)
    y[1, 0] = -1.0
    assert v[1, 1].item() == -1.0


# ---- integer-index movement: gather / scatter_add / index_add / index_select -------------
def test_gather():
    x = sample((3, 4), graphc.float64)
    idx = np.array([[0, 3, 3], [1, 0, 2], [2, 2, 0]])
    check(graphc.gather(T(x), 1, T(idx)), np.take_along_axis(x, idx, 1))
    rows = idx[:2, :2] % 3
    check(T(x).gather(0, T(rows)),
          np.array([[x[rows[i, j], j] for j in range(2)] for i in range(2)]))
    cols = idx[:, :2] % 3
    check(T(x).t().gather(-1, T(cols)),
          np.array([[x[cols[i, j], i] for j in range(2)] for i in range(3)]))
    check(T(x).gather(1, T(idx, graphc.int32)), np.take_along_axis(x, idx, 1))


def test_scatter_add_and_index_add():
    x = sample((3, 4), graphc.float64)
    src = sample((2, 4), graphc.float64)
    idx = np.array([[0, 1, 2, 0], [2, 1, 1, 0]])
    want = x.copy()
    for i in range(2):
        for j in range(4):
            want[idx[i, j], j] += src[i, j]
    check(graphc.scatter_add(T(x), 0, T(idx), T(src)), want)
    # Along dim 1, with an index smaller than the source and a transposed source.
    small = idx[:, :3].T
    check(T(x).scatter_add(1, T(small), T(src).t()), _scatter_rows(x, small, src.T))
    rows = np.array([2, 0, 2])
    add = sample((3, 4), graphc.float64)
    want = x.copy()
    np.add.at(want, rows, add)
    check(graphc.index_add(T(x), 0, T(rows), T(add)), want)
    want = x.copy()
    np.add.at(want, (slice(None), rows[:2]), add[:, :2] * 2)
    check(T(x).index_add(1, T(rows[:2]), T(add[:, :2]), alpha=2), want)
    check(graphc.index_select(T(x), 1, T([3, 0, 3])), x[:, [3, 0, 3]])
    check(T(x).t().index_select(0, T([1], graphc.int32)), x.T[[1]])


def _scatter_rows(x, idx, src):
    out = x.copy()
    for i in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            out[i, idx[i, j]] += src[i, j]
    return out


# ---- joining and splitting -----------------------------------------------------------------
def test_cat_stack_hstack_vstack():
    a, b = sample((2, 3), graphc.float32), sample((4, 3), graphc.float32)
    check(graphc.cat([T(a), T(b)]), np.concatenate([a, b]))
    check(graphc.cat([T(a).t(), T(b).t()], dim=-1), np.concatenate([a.T, b.T], -1))
    check(graphc.cat([T(a), T([])]), a)
    check(graphc.cat([T(a), T(b, graphc.float64)]), np.concatenate([a, b]), graphc.float64)
    check(graphc.stack([T(a), T(a * 2)], 1), np.stack([a, a * 2], 1))
    check(graphc.stack([T(a), T(a)], -1), np.stack([a, a], -1))
    check(graphc.hstack([T(a), T(a)]), np.hstack([a, a]))
    check(graphc.hstack([T(a[0]), T(b[0])]), np.hstack([a[0], b[0]]))
    check(graphc.vstack([T(a[0]), T(b)]), np.vstack([a[0], b]))


def test_split_chunk_unbind():
    x = sample((7, 4), graphc.float64)
    parts = graphc.split(T(x), 3)
    assert [p.shape[0] for p in parts] == [3, 3, 1]
    for p, r in zip(parts, np.split(x, [3, 6])):
        check(p, r)
    parts = T(x).split([1, 4, 2])
    for p, r in zip(parts, np.split(x, [1, 5])):
        check(p, r)
    parts = T(x).chunk(3, dim=1)
    assert [p.shape[1] for p in parts] == [2, 2]
    check(parts[1], x[:, 2:])
    assert [p.shape[0] for p in graphc.chunk(T(x), 4)] == [2, 2, 2, 1]
    rows = graphc.unbind(T(x), 1)
    assert len(rows) == 4
    check(rows[2], x[:, 2])


def test_tril_triu_diag():
    x = sample((4, 5), graphc.float64)
    for k in (-2, -1, 0, 1, 3):
        check(graphc.tril(T(x), k), np.tril(x, k))
        check(T(x).triu(k), np.triu(x, k))
        check(graphc.diag(T(x), k), np.diag(x, k))
        check(graphc.diag(T(x[0]), k), np.diag(x[0], k))
    b = sample((2, 3, 3), graphc.int64)
    check(graphc.triu(T(b)), np.triu(b), graphc.int64)
    check(graphc.tril(T(b).transpose(1, 2), -1), np.tril(b.transpose(0, 2, 1), -1))


def test_one_hot():
    y = np.array([[0, 2], [1, 2]])
    check(C.one_hot(T(y)), np.eye(3, dtype=np.int64)[y], graphc.int64)
    check(C.one_hot(T(y), 5), np.eye(5, dtype=np.int64)[y], graphc.int64)
    check(C.one_hot(T(y).t()[0], 4), np.eye(4, dtype=np.int64)[y.T[0]])


# ---- views and shape functions ---------------------------------------------------------------
def test_shape_functions():
    x = np.arange(24.0).reshape(2, 3, 4)
    t = T(x)
    check(t.reshape(4, -1), x.reshape(4, -1))
    check(t.view(-1), x.reshape(-1))
    check(t.permute(2, 0, 1).reshape(4, 6), x.transpose(2, 0, 1).reshape(4, 6))
    check(t.flatten(1), x.reshape(2, 12))
    check(graphc.flatten(t, 0, 1), x.reshape(6, 4))
    check(t.unflatten(2, (2, 2)), x.reshape(2, 3, 2, 2))
    check(t[:, :1].squeeze(), x[:, 0])
    check(t.unsqueeze(-1), x[..., None])
    check(graphc.squeeze(t.unsqueeze(1), 1), x)
    check(t.transpose(0, 2), x.transpose(2, 1, 0))
    check(t.movedim(0, -1), np.moveaxis(x, 0, -1))
    check(t.T, x.transpose(2, 1, 0))
    check(t[0].t(), x[0].T)
    check(t[:1].expand(3, 2, 3, 4), np.broadcast_to(x[:1], (3, 2, 3, 4)))
    check(t[:, :, :1].expand(-1, -1, 5), np.broadcast_to(x[:, :, :1], (2, 3, 5)))
    check(t[0].repeat(2, 1, 3), np.tile(x[0], (2, 1, 3)))
    check(t.narrow(2, 1, 2), x[:, :, 1:3])
    check(t.select(1, -1), x[:, -1])
    check(graphc.flip(t, (0, 2)), x[::-1, :, ::-1])
    check(t.transpose(0, 1).contiguous(), x.transpose(1, 0, 2))
    assert t.transpose(0, 1).contiguous().is_contiguous()
    check(t.permute(1, 0, 2).reshape(3, 8), x.transpose(1, 0, 2).reshape(3, 8))


def test_view_shares_storage_only_where_strides_allow():
    x = graphc.zeros(2, 6)
    v = x.view(3, 4)
    v[0, 0] = 1.0
    assert x[0, 0].item() == 1.0
    y = graphc.zeros(4, 6).t()
    check(y.view(3, 2, 4), np.zeros((3, 2, 4)))
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        y.view(24)
    check(y.reshape(24), np.zeros(24))


# ---- error messages -------------------------------------------------------------------------
ERRORS = [
    (lambda: graphc.zeros(800, 2) @ graphc.zeros(3, 3), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(800x2 and 3x3\)"),
    (lambda: C.linear(graphc.zeros(800, 2), graphc.zeros(3, 3)), RuntimeError,
     r"mat1 and mat2 shapes cannot be multiplied \(800x2 and 3x3\)"),
    (lambda: graphc.zeros(2, 3) + graphc.zeros(4), RuntimeError,
     r"add: the size of tensor a \(3\) must match the size of tensor b \(4\) at "
     r"non-singleton dimension 1 \(operands: float32\[2, 3\], float32\[4\]\)"),
    (lambda: graphc.zeros(2, 3).reshape(4, 2), RuntimeError,
     r"shape '\[4, 2\]' is invalid for input of size 6"),
    (lambda: graphc.zeros(2, 3).view(4, -1), RuntimeError,
     r"shape '\[4, -1\]' is invalid for input of size 6"),
    (lambda: graphc.zeros(2, 3)[2], IndexError,
     r"index 2 is out of bounds for dimension 0 with size 2"),
    (lambda: graphc.zeros(2, 3)[:, [0, 3]], IndexError,
     r"index 3 is out of bounds for dimension 1 with size 3"),
    (lambda: graphc.zeros(2, 3)[0, 0, 0], IndexError, r"too many indices for tensor of "
                                                       r"dimension 2"),
    (lambda: graphc.cat([graphc.zeros(2, 3), graphc.zeros(2, 4)]), RuntimeError,
     r"concat: sizes of tensors must match except in dimension 0 "
     r"\(operands: float32\[2, 3\], float32\[2, 4\]\)"),
    (lambda: C.conv2d(graphc.zeros(1, 3, 5, 5), graphc.zeros(2, 4, 3, 3)), RuntimeError,
     r"conv2d: input has 3 channels but the weight expects 4 "
     r"\(operands: float32\[1, 3, 5, 5\], float32\[2, 4, 3, 3\]\)"),
    (lambda: C.conv2d(graphc.zeros(1, 3, 2, 2), graphc.zeros(2, 3, 3, 3)), RuntimeError,
     r"conv2d: kernel size can't be greater than the \(padded\) input size"),
    (lambda: T([True]) - T([False]), RuntimeError,
     r"Subtraction, the `-` operator, with two bool tensors is not supported"),
    (lambda: -T([True]), RuntimeError, r"Negation, the `-` operator, on a bool tensor"),
    (lambda: graphc.ones(2, requires_grad=True).add_(1), RuntimeError,
     r"a leaf Variable that requires grad is being used in an in-place operation"),
    (lambda: graphc.zeros(2).sum(2), IndexError,
     r"Dimension out of range \(expected to be in range of \[-1, 0\], but got 2\)"),
    (lambda: T([1, 2]).mean(), RuntimeError, r"mean\(\): could not infer output dtype"),
    (lambda: T([1, 2]).var(), RuntimeError, r"std and var only support floating point"),
    (lambda: T([2]) ** -1, RuntimeError, r"Integers to negative integer powers are not "
                                         r"allowed"),
    (lambda: graphc.zeros(3).gather(0, T([3])), RuntimeError,
     r"gather: index 3 is out of bounds for dimension 0 with size 3"),
    (lambda: graphc.zeros(3).index_select(0, T([0.0])), RuntimeError,
     r"index_select\(\): Expected dtype int64 for index, got float32"),
    (lambda: graphc.zeros(2, 3).expand(3, 3), RuntimeError,
     r"expand: the input cannot be expanded to size \[3, 3\] \(operands: float32\[2, 3\]\)"),
    (lambda: graphc.zeros(2, 3).permute(0, 0), RuntimeError, r"permute: \[0, 0\] is not a "
                                                              r"permutation"),
    (lambda: graphc.mm(graphc.zeros(2, 3), graphc.zeros(3)), RuntimeError,
     r"mm: expected 2-D tensors, got 2-D and 1-D"),
    (lambda: graphc.zeros(3) @ graphc.zeros(4), RuntimeError, r"size mismatch"),
    (lambda: graphc.zeros(2) @ graphc.zeros(2, dtype=graphc.float64), RuntimeError,
     r"expected m1 and m2 to have the same dtype, but got: float32 != float64"),
    (lambda: graphc.stack([graphc.zeros(2), graphc.zeros(3)]), RuntimeError,
     r"stack expects each tensor to be equal size"),
    (lambda: graphc.zeros(5).split([2, 2]), RuntimeError, r"split_with_sizes expects "
                                                          r"split_sizes to sum exactly to 5"),
    (lambda: graphc.where(T([1, 0]), 1.0, 0.0), RuntimeError,
     r"where expected condition to be a boolean tensor"),
    (lambda: C.cross_entropy(graphc.zeros(2, 3), T([0, 3])), IndexError,
     r"nll_loss: target 3 is out of bounds for 3 classes"),
    (lambda: C.binary_cross_entropy(T([1.5]), T([1.0])), RuntimeError,
     r"all elements of input should be between 0 and 1"),
    (lambda: C.binary_cross_entropy(graphc.zeros(2, 3), graphc.zeros(3)), ValueError,
     r"Using a target size \(\[3\]\) that is different to the input size \(\[2, 3\]\)"),
    (lambda: C.one_hot(T([0.0])), RuntimeError, r"one_hot is only applicable to index tensor"),
    (lambda: graphc.clamp(graphc.zeros(2)), RuntimeError, r"At least one of 'min' or 'max'"),
    (lambda: graphc.zeros(2)[1.5], IndexError, r"only integers, slices .* \(got float\)"),
    (lambda: graphc.zeros(4).split(0), RuntimeError, r"split expects split_size be "
                                                     r"non-negative"),
    (lambda: graphc.zeros(4).chunk(0), RuntimeError, r"chunk expects `chunks` to be greater "
                                                     r"than 0, got: 0"),
    (lambda: C.one_hot(T([-1]), 3), RuntimeError, r"Class values must be non-negative"),
    (lambda: C.one_hot(T([3]), 3), RuntimeError, r"Class values must be smaller than "
                                                 r"num_classes"),
    (lambda: graphc.zeros(3).index_add(0, T([0]), graphc.zeros(2)), RuntimeError,
     r"index_add: needs a 1-D index and a source of shape \[1\] "
     r"\(operands: float32\[3\], int64\[1\], float32\[2\]\)"),
    (lambda: graphc.zeros(2, 3)[T([True, False, True])], IndexError,
     r"The shape of the mask \[3\] at index 0 does not match the shape of the indexed tensor "
     r"\[2, 3\] at index 0"),
    (lambda: graphc.zeros(2, 3)[:, [True, False]], IndexError,
     r"The shape of the mask \[2\] at index 0 does not match the shape of the indexed tensor "
     r"\[2, 3\] at index 1"),
    (lambda: graphc.bmm(graphc.zeros(2, 2, 2), graphc.zeros(3, 2, 2)), RuntimeError,
     r"bmm: batch sizes differ \(2 and 3\)"),
    (lambda: C.layer_norm(graphc.zeros(2, 3), (4,)), RuntimeError,
     r"layer_norm: Given normalized_shape=\[4\], expected input with shape \[\*, 4\], but got input of "
     r"size\[2, 3\]"),
]


@pytest.mark.parametrize("fn,exc,pattern", ERRORS)
def test_error_messages(fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn()
