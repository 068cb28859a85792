"""Front-end semantics found by differential fuzzing against PyTorch, eagerly: each case
is a minimised regression, checked against PyTorch (values and gradients) where it is
installed, else against explicit values.

Cases: cat's promotion and empty pieces; binary_cross_entropy_with_logits at logits 0;
reductions and views over empty dims; contiguity after reductions and flip; diag's
dtype; integer powers and integer division by zero; norm, normalize and
cosine_similarity at large values; zero and NaN-free gradients of rounding division,
clamp, maximum and minimum.  Compiled versions: tests/compile/test_semantics_compiled.py.
"""
import math

import numpy as np
import pytest

import graphc
import graphc.nn.functional as GF

inf, nan = math.inf, math.nan


def _run(lib, fn, arrays, grad):
    """fn on lib's tensors made from arrays; (outputs, input gradients) as numpy."""
    xs = [lib.tensor(a, requires_grad=grad and np.asarray(a).dtype.kind == "f")
          for a in arrays]
    out = fn(lib, *xs)
    outs = out if isinstance(out, tuple) else (out,)
    if grad:
        sum(o.sum() for o in outs).backward()
    return ([o.detach().numpy() for o in outs],
            [x.grad.numpy() if grad and x.grad is not None else None for x in xs])


def same_as_torch(fn, *arrays, grad=True):
    """fn(lib, *tensors) gives PyTorch's values, dtypes and input gradients (NaN where
    PyTorch has NaN)."""
    torch = pytest.importorskip("torch")
    got, got_grads = _run(graphc, fn, arrays, grad)
    want, want_grads = _run(torch, fn, arrays, grad)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g, w)
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, equal_nan=True)
    for g, w in zip(got_grads, want_grads):
        assert (g is None) == (w is None)
        if w is not None:
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, equal_nan=True)
    return got, got_grads


F32 = np.float32


def f32(*values):
    return np.array(values, F32)


# ---- cat ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shapes, dim", [([(0, 3), (0, 3)], 0), ([(2, 0), (2, 0)], 1),
                                         ([(0,), (0,)], 0), ([(0,), (0, 3)], 0)])
def test_cat_of_empty_pieces(shapes, dim):
    same_as_torch(lambda lib, a, b: lib.cat([a, b], dim) * 2,
                  *[np.zeros(s, F32) for s in shapes])


@pytest.mark.parametrize("fn", [lambda lib, a, b: lib.hstack([a, b]),
                                lambda lib, a, b: lib.vstack([a, b])])
@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3)])
def test_hstack_vstack_of_empty_pieces(fn, shape):
    same_as_torch(fn, np.zeros(shape, F32), np.zeros(shape, F32))


def test_cat_promotes_over_every_piece_including_skipped_empty_ones():
    """A legacy (0,) piece is skipped for the shape check but still promotes the dtype,
    and gets its (empty) gradient."""
    got, grads = same_as_torch(lambda lib, a, b: lib.cat([a, b]),
                               np.zeros(0, np.float64), np.ones((2, 3), F32))
    assert got[0].dtype == np.float64 and grads[0].shape == (0,)
    same_as_torch(lambda lib, a, b, c: lib.cat([a, b, c], 1),
                  np.ones((2, 1), F32), np.zeros(0, np.int64), np.zeros((2, 2), np.int32))


def test_cat_of_one_tensor_is_a_copy():
    x = graphc.ones(3)
    y = graphc.cat([x])
    y[0] = 5
    assert x.tolist() == [1, 1, 1]


# ---- binary_cross_entropy_with_logits ----------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pos_weight", [None, f32(2.0, 3.0, 0.5, 1.0)])
def test_bce_with_logits_gradient_at_zero_logits(reduction, pos_weight):
    """A zero-initialised head: the gradient is sigmoid(0) - y = 0.5 - y, not 1 - y."""
    target = f32(1.0, 0.0, 0.3, 1.0)

    def fn(lib, x):
        pw = None if pos_weight is None else lib.tensor(pos_weight)
        return lib.nn.functional.binary_cross_entropy_with_logits(
            x, lib.tensor(target), reduction=reduction, pos_weight=pw)
    same_as_torch(fn, f32(0.0, 0.0, -0.0, 1.0))


def test_bce_with_logits_gradient_at_zero_is_half_minus_target():
    x = graphc.zeros(3, requires_grad=True)
    GF.binary_cross_entropy_with_logits(x, graphc.tensor([1.0, 0.0, 0.25]),
                                        reduction="sum").backward()
    assert x.grad.tolist() == [-0.5, 0.5, 0.25]


# ---- empty dims ----------------------------------------------------------------------------
EMPTY_SHAPES = [(0, 3), (3, 0), (2, 0, 3), (0,)]


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "flip"])
def test_dim_functions_over_empty_dims(shape, name):
    for dim in range(len(shape)):
        same_as_torch(lambda lib, x: getattr(x, name)(dim) * 1, np.zeros(shape, F32))


def test_logsumexp_over_an_empty_dim_is_minus_inf():
    assert graphc.zeros(0, 3).logsumexp(0).tolist() == [-inf] * 3
    assert graphc.zeros(2, 0).logsumexp((0, 1)).item() == -inf


@pytest.mark.parametrize("shape, start, end", [
    (shape, start, end) for shape in EMPTY_SHAPES + [(0, 0), (2, 3, 0)]
    for start, end in [(0, -1), (1, -1), (0, 0), (-1, -1)] if start < len(shape)])
def test_flatten_of_empty_tensors(shape, start, end):
    same_as_torch(lambda lib, x: x.flatten(start, end), np.zeros(shape, F32))


# ---- contiguity: view after reductions and flip -----------------------------------------
@pytest.mark.parametrize("op", [
    lambda x, d: x.sum(d), lambda x, d: x.mean(d), lambda x, d: x.amax(d),
    lambda x, d: x.amin(d), lambda x, d: x.prod(d), lambda x, d: x.argmax(d),
    lambda x, d: x.max(d)[0], lambda x, d: x.logsumexp(d), lambda x, d: x.var(d),
    lambda x, d: x.all(d), lambda x, d: x.sum(d, keepdim=True),
    lambda x, d: x.softmax(d), lambda x, d: x.log_softmax(d), lambda x, d: x.cumsum(d)])
def test_view_after_reduction_of_a_permuted_tensor(op):
    """PyTorch's reductions (and softmax, cumsum) give row-major results: view(-1)
    works even when the input was permuted."""
    x = np.arange(24, dtype=F32).reshape(2, 3, 4)
    for dim in range(3):
        same_as_torch(lambda lib, t: op(t.permute(2, 0, 1), dim).view(-1), x, grad=False)


def test_flip_keeps_a_permuted_layout_as_pytorch():
    """flip copies in x's layout: a flipped transpose still refuses view(-1)."""
    x = graphc.arange(6.0).reshape(2, 3).t()
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        x.flip(0).view(-1)
    assert graphc.arange(6.0).reshape(2, 3).flip(0, 1).view(-1).tolist() == [5, 4, 3, 2, 1, 0]


def test_flip_is_a_copy():
    x = graphc.arange(6.0).reshape(2, 3)
    y = x.flip(0)
    y[0, 0] = 100.0
    x[1, 1] = -1.0
    assert x.tolist() == [[0, 1, 2], [3, -1, 5]]
    assert y.tolist() == [[100, 4, 5], [0, 1, 2]]


# ---- diag ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.int64, np.float64])
@pytest.mark.parametrize("diagonal", [0, 1, -2])
def test_diag_of_a_vector_keeps_the_dtype(dtype, diagonal):
    same_as_torch(lambda lib, x: lib.diag(x, diagonal), np.array([1, 0, 1], dtype),
                  grad=False)


def test_diag_of_bool_is_bool():
    out = graphc.diag(graphc.tensor([True, False]), 1)
    assert out.dtype == graphc.bool
    assert out.tolist() == [[False, True, False], [False, False, False],
                            [False, False, False]]


def test_diag_gradient_and_empty():
    same_as_torch(lambda lib, x: lib.diag(x, -1) * 3, f32(1.0, 2.0))
    same_as_torch(lambda lib, x: lib.diag(x), np.zeros(0, F32))


# ---- integer semantics ---------------------------------------------------------------------
def test_integer_tensor_to_negative_tensor_powers():
    """PyTorch's truncated quotient: 1 for 1, +-1 for -1, else 0 (numpy raises)."""
    base = np.array([1, 2, -1, 3, -1, 0, 5])
    exponent = np.array([-1, 1, -3, -2, -4, 3, 0])
    same_as_torch(lambda lib, a, e: (a ** e, lib.pow(a, e), 2 ** e, a ** e[0]),
                  base, exponent, grad=False)
    same_as_torch(lambda lib, a, e: a ** e, base.astype(np.int32), exponent.astype(np.int32),
                  grad=False)
    got = graphc.tensor(base) ** graphc.tensor(exponent)
    assert got.tolist() == [1, 2, -1, 0, 1, 0, 1]


def test_integer_to_negative_python_power_raises():
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not "
                                           "allowed."):
        graphc.tensor([1, 2]) ** -1


@pytest.mark.parametrize("fn", [
    lambda a, b: a // b, lambda a, b: a % b, lambda a, b: graphc.floor_divide(a, b),
    lambda a, b: graphc.remainder(a, b),
    lambda a, b: graphc.div(a, b, rounding_mode="floor"),
    lambda a, b: graphc.div(a, b, rounding_mode="trunc")])
@pytest.mark.parametrize("divisor", [0, "tensor"])
@pytest.mark.parametrize("dtype", [graphc.int64, graphc.int32])
def test_integer_division_by_zero_raises(fn, divisor, dtype):
    a = graphc.tensor([7, -7, 3], dtype=dtype)
    b = graphc.tensor([2, 0, 1], dtype=dtype) if divisor == "tensor" else divisor
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        fn(a, b)


def test_integer_division_by_python_zero_raises_from_a_scalar_dividend():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        5 // graphc.tensor([1, 0])


def test_integer_true_division_by_zero_is_inf():
    same_as_torch(lambda lib, a: lib.div(a, 0), np.array([1, -2]), grad=False)


def test_unknown_rounding_mode():
    with pytest.raises(RuntimeError, match="rounding_mode"):
        graphc.div(graphc.ones(2), 2, rounding_mode="round")


# ---- overflow: norm, normalize, cosine_similarity ---------------------------------------
LARGE = [f32(1e20)[None, :], f32(1e20, 0.0)[None, :], f32(3e19, 4e19)[None, :],
         f32(1e30, 1.0)[None, :], np.array([[-2e20], [0.0]], F32), f32(1e-30)[None, :],
         f32(0.0, 0.0)[None, :], f32(1.0, 2.0, -3.0)[None, :]]


@pytest.mark.parametrize("x", LARGE, ids=str)
def test_norm_at_large_and_tiny_values(x):
    """PyTorch sums squares in float32 (inf from two 1e20s), but a single element's norm
    is its magnitude; a zero norm has gradient 0."""
    same_as_torch(lambda lib, t: t.norm(dim=1), x)
    same_as_torch(lambda lib, t: t.norm(), x)
    same_as_torch(lambda lib, t: lib.norm(t, 2, 0), x)


def test_single_element_norm_is_its_magnitude():
    assert graphc.tensor([-1e20]).norm().item() == pytest.approx(1e20, rel=1e-6)
    assert graphc.tensor([1e-30]).norm(p=3).item() == pytest.approx(1e-30, rel=1e-6)
    assert graphc.tensor([[1e20], [2e20]]).norm(dim=1).tolist() == pytest.approx(
        [1e20, 2e20], rel=1e-6)


def test_p_norm_of_zero_has_zero_gradient():
    same_as_torch(lambda lib, t: t.norm(p=3, dim=1), np.zeros((2, 3), F32))
    x = graphc.zeros(2, 3, requires_grad=True)
    x.norm(p=3, dim=1).sum().backward()
    assert x.grad.tolist() == [[0.0] * 3] * 2


def test_norm_p0_counts_nonzeros():
    same_as_torch(lambda lib, t: (t.norm(0), t.norm(0, dim=1)), f32(1, 0, 2, 0).reshape(2, 2),
                  grad=False)


@pytest.mark.parametrize("x", LARGE, ids=str)
def test_normalize_at_large_values(x):
    same_as_torch(lambda lib, t: lib.nn.functional.normalize(t), x)
    same_as_torch(lambda lib, t: lib.nn.functional.normalize(t, dim=0), x)


@pytest.mark.parametrize("x", LARGE, ids=str)
def test_cosine_similarity_at_large_values(x):
    """PyTorch divides each operand by its norm first: 0 at 1e20 (x / inf), not nan."""
    same_as_torch(lambda lib, a, b: lib.nn.functional.cosine_similarity(a, b), x, 2 * x)
    same_as_torch(lambda lib, a, b: lib.nn.functional.cosine_similarity(a, b, dim=0), x, -x)


def test_cosine_similarity_of_1e20_vectors_is_zero_not_nan():
    a = graphc.tensor([[1e20, 1e20]])
    assert GF.cosine_similarity(a, a).tolist() == [0.0]
    assert GF.cosine_similarity(graphc.tensor([[1e20]]), graphc.tensor([[3e20]])).tolist() \
        == [1.0]


def test_cosine_similarity_broadcasts_along_the_reduced_dim():
    same_as_torch(lambda lib, a, b: lib.nn.functional.cosine_similarity(a, b),
                  np.array([[1.0], [2.0]], F32), f32(1.0, 2.0, 3.0)[None, :])


# ---- gradients without NaN ----------------------------------------------------------------
EDGES = f32(-inf, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, inf, nan)
DIVISORS = f32(2.0, 0.0, -1.0, 1.0, 0.0, nan, 1.0, inf, inf, 0.0)


@pytest.mark.parametrize("mode", ["trunc", "floor"])
def test_rounding_division_has_zero_gradient(mode):
    """The gradient of div(rounding_mode=...) is 0 everywhere, never 0 / 0."""
    x = graphc.tensor(EDGES, requires_grad=True)
    y = graphc.tensor(DIVISORS, requires_grad=True)
    graphc.div(x, y, rounding_mode=mode).sum().backward()
    assert x.grad.tolist() == [0.0] * 10 and y.grad.tolist() == [0.0] * 10
    if mode == "trunc":     # floor's values at infinities are the numerics' business
        same_as_torch(lambda lib, a, b: lib.div(a, b, rounding_mode=mode), EDGES, DIVISORS)


def test_rounding_division_keeps_the_sign_of_zero():
    same_as_torch(lambda lib, a: (lib.div(a, 1.0, rounding_mode="trunc"), a.trunc()),
                  f32(-0.5, 0.5, -0.0, 2.5))


def test_trunc_gradient_is_zero_at_infinity():
    same_as_torch(lambda lib, a: a.trunc(), EDGES)


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (-inf, inf), (None, inf), (-inf, None),
                                       (0.5, None), (None, 0.5), (1.0, -1.0)])
def test_clamp_gradient_at_and_beyond_the_bounds(low, high):
    """x's gradient passes where low <= x <= high; NaN gets none (as PyTorch)."""
    same_as_torch(lambda lib, a: lib.clamp(a, low, high), EDGES)


def test_clamp_with_tensor_bounds():
    same_as_torch(lambda lib, a, lo, hi: lib.clamp(a, lo, hi), EDGES,
                  np.full(10, -1.0, F32), np.full(10, 1.0, F32))


def test_clamp_nan_gradient_is_zero():
    x = graphc.tensor([nan, 0.0], requires_grad=True)
    x.clamp(-1, 1).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_gradients_at_ties_and_nan(name):
    """Ties split the gradient 0.5/0.5; at a NaN both operands take it (as PyTorch)."""
    other = f32(-1.0, 0.0, -1.0, 1.0, 0.0, nan, 1.0, inf, inf, 0.0)
    same_as_torch(lambda lib, a, b: getattr(lib, name)(a, b), EDGES, other)
    x, y = graphc.tensor([1.0, nan], requires_grad=True), graphc.tensor([1.0, 0.0],
                                                                        requires_grad=True)
    getattr(graphc, name)(x, y).sum().backward()
    assert x.grad.tolist() == [0.5, 1.0] and y.grad.tolist() == [0.5, 1.0]


def test_maximum_gradient_broadcast_tie():
    same_as_torch(lambda lib, a, b: lib.maximum(a, b), f32(1.0, 2.0, 3.0),
                  np.array([[2.0], [3.0]], F32))
