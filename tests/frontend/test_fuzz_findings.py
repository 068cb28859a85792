"""Regression tests for what the differential fuzzer found: each compares graphc with
PyTorch (values and gradients), eagerly and compiled on every code-generating backend."""
import numpy as np
import pytest

import graphc
import graphc.nn.functional as GF

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _run(fn, arrays, backend=None):
    """``fn``'s value and the gradients of its sum for the floating point ``arrays``, in
    graphc (eager, or compiled on ``backend``) and in PyTorch (``fn`` takes the module)."""
    results = []
    for lib in (graphc, torch):
        xs = [lib.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
        run = (lambda *t: fn(graphc, *t)) if lib is torch or backend is None else \
            graphc.compile(lambda *t: fn(graphc, *t), backend=backend)
        out = fn(torch, *xs) if lib is torch else run(*xs)
        if out.requires_grad:
            out.sum().backward()
        results.append((out.detach().numpy(),
                        [x.grad.numpy() for x in xs if x.grad is not None]))
    return results


def _check(fn, *arrays, backend=None, rtol=1e-6):
    (value, grads), (expected, expected_grads) = _run(fn, arrays, backend)
    np.testing.assert_allclose(value, expected, rtol=rtol)
    assert value.dtype == expected.dtype and value.shape == expected.shape
    assert len(grads) == len(expected_grads)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=rtol)


@pytest.fixture(params=["eager", "interpreter", "codegen"])
def mode(request, backend):
    """Eager, compiled on the interpreter, compiled on ``backend``."""
    return {"eager": None, "interpreter": "interpreter", "codegen": backend}[request.param]


F32 = np.float32


def test_cumsum_inf_reaches_later_positions_only(mode):
    x = np.array([1, -np.inf, 1, 2], F32)
    _check(lambda m, t: m.cumsum(t, 0), x, backend=mode)
    _check(lambda m, t: m.cumsum(t, 1), np.array([[np.nan, 1, 2], [3, np.inf, 4]]),
           backend=mode)


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_losses_leave_ignored_rows_out(mode, reduction):
    """A row whose target is ignore_index adds nothing, even when it holds an inf."""
    x = np.array([[1, 2, 3], [np.inf, 0, 1], [0, -1, 2]], F32)
    target = np.array([0, -100, 2])
    _check(lambda m, t, y: m.nn.functional.cross_entropy(t, y, reduction=reduction),
           x, target, backend=mode, rtol=1e-5)
    _check(lambda m, t, y: m.nn.functional.cross_entropy(t, y, reduction=reduction,
                                                        label_smoothing=0.1),
           x, target, backend=mode, rtol=1e-5)
    _check(lambda m, t, y: m.nn.functional.nll_loss(t, y, reduction=reduction),
           x, target, backend=mode)


def test_sign_of_nan_is_zero(mode):
    """PyTorch's sign(nan) is 0, and so abs's gradient at nan is 0."""
    x = np.array([np.nan, -0.0, 0.0, -2.0, np.inf], F32)
    _check(lambda m, t: m.sign(t), x, backend=mode)
    _check(lambda m, t: m.abs(t), x, backend=mode)
    _check(lambda m, t: m.sign(t), np.array([-3, 0, 4]), backend=mode)


@pytest.mark.parametrize("name", ["std", "var"])
@pytest.mark.parametrize("kwargs", [dict(dim=0, unbiased=False), dict(dim=1), dict()])
def test_std_var_of_huge_float32_values(mode, name, kwargs):
    """float32 squares above 1.8e19 overflow; PyTorch accumulates in float64, so std is
    finite; a zero deviation has a zero gradient."""
    x = np.array([[1, -1e30, 2], [1, 1, 3e20]], F32)
    _check(lambda m, t: getattr(m, name)(t, **kwargs), x, backend=mode, rtol=1e-6)
    _check(lambda m, t: getattr(m, name)(t, **kwargs), np.ones((2, 3), F32), backend=mode)


@pytest.mark.parametrize("alpha", [2, 0, 1])
def test_index_add_of_bools_is_a_logical_or(mode, alpha):
    x, source, index = (np.array([True, False, False]), np.array([True, True, False]),
                        np.array([1, 1, 2]))
    _check(lambda m, t, s, i: m.index_add(t, 0, i, s, alpha=alpha), x, source, index,
           backend=mode)
    _check(lambda m, t, s, i: m.index_add(t, 0, i, s, alpha=alpha),
           np.array([1.0, 2, 3]), np.array([0.5, -1, 4]), index, backend=mode)


def test_index_add_with_another_dtype_names_both():
    with pytest.raises(RuntimeError, match=r"self \(bool\[1\]\) and source \(int64\[1\]\)"):
        graphc.index_add(graphc.tensor([True]), 0, graphc.tensor([0]), graphc.tensor([1]))


@pytest.mark.parametrize("diagonal", [0, -2, 3])
def test_diag_of_an_empty_vector_is_a_zero_matrix(mode, diagonal):
    _check(lambda m, t: m.diag(t, diagonal), np.zeros(0, F32), backend=mode)
    _check(lambda m, t: m.diag(t, diagonal), np.array([1.0, -2], F32), backend=mode)


def test_norm_gradient_at_a_zero_column_is_zero(mode):
    x = np.array([[0, 1, -2], [0, 2, 0.5]], F32)
    for p in (3, 2.5, 0.5):
        _check(lambda m, t: m.norm(t, p=p, dim=0), x, backend=mode, rtol=1e-5)


def test_mv_then_select_with_gradients(mode):
    """A value read by two matmuls (mv's forward and backward) gets one copy kernel."""
    rng = np.random.default_rng(0)
    _check(lambda m, a, b: m.mv(a, b).select(-1, 1), rng.standard_normal((2, 2)),
           rng.standard_normal(2), backend=mode)


def test_sum_of_negative_zero_is_positive_zero(mode):
    """Sums start from +0.0 (0.0 + -0.0 is +0.0), as PyTorch's: atan2 shows the sign."""
    x, y = np.array([-0.0], F32), np.array(-1.0, F32)
    _check(lambda m, t, u: m.atan2(m.sum(t), u), x, y, backend=mode)
    _check(lambda m, t, u: m.atan2(m.mean(t), u), x, y, backend=mode)
    _check(lambda m, t, u: m.atan2(t.sum(0, keepdim=True), u),
           np.array([[-0.0, -0.0]], F32), y, backend=mode)


@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_binary_cross_entropy_at_saturated_probabilities(mode, reduction):
    """sigmoid(19) is 1.0 in float32: PyTorch's forward clamps the logs at -100, its
    input gradient divides by max(p (1 - p), 1e-12) and its target gradient is -logit(p)."""
    x = np.array([1, 1, 19, -120, 0.5], F32)
    y = np.array([0.3, -2, 5, 1, 0], F32)
    _check(lambda m, a, b: m.nn.functional.binary_cross_entropy(
        m.sigmoid(a), m.sigmoid(b), reduction=reduction), x, y, backend=mode, rtol=1e-5)
    weight = np.linspace(0.5, 2, 5)       # PyTorch has no gradient for the weight
    _check(lambda m, a, b: m.nn.functional.binary_cross_entropy(
        m.sigmoid(a), m.sigmoid(b), m.tensor(weight), reduction=reduction),
        x.astype(np.float64), y.astype(np.float64), backend=mode)


def test_unflatten_infers_minus_one_from_the_dim_even_with_zero_sizes():
    torch = pytest.importorskip("torch")
    for shape, sizes in [((1, 0, 2), (-1,)), ((2, 6), (2, -1)), ((2, 0), (3, -1))]:
        assert tuple(graphc.zeros(*shape).unflatten(1, sizes).shape) == \
            tuple(torch.zeros(*shape).unflatten(1, sizes).shape)
    with pytest.raises(RuntimeError, match="unflatten"):
        graphc.zeros(2, 6).unflatten(1, (4, -1))


def test_norm_of_an_integer_tensor_raises_as_pytorch():
    with pytest.raises(RuntimeError, match="Expected a floating point"):
        graphc.norm(graphc.tensor([1, 2]))


def test_cross_entropy_with_probabilities_over_zero_classes_is_nan_as_pytorch():
    x = graphc.zeros(1, 0, 3)
    assert graphc.nn.functional.cross_entropy(x, x.softmax(1)).isnan().item()


@pytest.mark.parametrize("call", [
    lambda ns, b: b.floor(), lambda ns, b: b.trunc(), lambda ns, b: b.ceil(),
    lambda ns, b: b.round(), lambda ns, b: b.abs(), lambda ns, b: b.relu(),
    lambda ns, b: b - 1, lambda ns, b: 1 - b, lambda ns, b: b - b,
    lambda ns, b: ns.tensor([1, 2]) - b],
    ids=["floor", "trunc", "ceil", "round", "abs", "relu", "b-1", "1-b", "b-b", "i-b"])
def test_bool_tensors_are_refused_where_pytorch_refuses_them(call):
    with pytest.raises(Exception) as expected:
        call(torch, torch.tensor([True, False]))
    with pytest.raises(type(expected.value)):
        call(graphc, graphc.tensor([True, False]))


def test_atan2_gradient_at_the_origin_is_zero(backend):
    def fn(x):
        return graphc.atan2(x, x * 1)

    x = graphc.tensor([0.0, 1.0, -0.0], requires_grad=True)
    graphc.compile(fn, backend=backend)(x).sum().backward()
    xt = torch.tensor([0.0, 1.0, -0.0], requires_grad=True)
    torch.atan2(xt, xt * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())


def test_power_of_one_half_is_sqrt_as_pytorch(backend):
    vals = [-float("inf"), float("inf"), -0.0, 4.0, -4.0]
    got = graphc.compile(lambda x: (x ** 0.5, x ** -0.5), backend=backend)(graphc.tensor(vals))
    xt = torch.tensor(vals)
    for g, w in zip(got, (xt ** 0.5, xt ** -0.5)):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
        real = ~np.isnan(w.numpy())                       # the sign of -0.0 and -inf
        np.testing.assert_array_equal(np.signbit(g.numpy()[real]), np.signbit(w.numpy()[real]))


def test_logsumexp_of_integers_and_bools_is_float_as_pytorch():
    for values in ([True], [1, 2]):
        np.testing.assert_allclose(graphc.logsumexp(graphc.tensor(values), 0).numpy(),
                                   torch.logsumexp(torch.tensor(values), 0).numpy())


def test_argmax_and_argmin_refuse_bool_input_as_pytorch():
    for name in ("argmax", "argmin"):
        with pytest.raises(RuntimeError, match="does not support bool input"):
            getattr(torch, name)(torch.tensor(True))
        with pytest.raises(RuntimeError, match="does not support bool input"):
            getattr(graphc, name)(graphc.tensor(True))


def test_sign_of_bools_is_the_bools_as_pytorch():
    assert graphc.sign(graphc.tensor([True, False])).tolist() == \
        torch.sign(torch.tensor([True, False])).tolist()


def test_float32_tanh_is_correctly_rounded_near_saturation():
    # found as: argmin(tanh(x)): 2 != 0 (numpy's float32 tanh(-9.07) is -0.99999994)
    x = np.array([-9.072765350341797, 1.0, -20.84809684753418], np.float32)
    assert graphc.tanh(graphc.tensor(x)).argmin().item() == \
        torch.tanh(torch.tensor(x)).argmin().item()
    np.testing.assert_array_equal(graphc.tanh(graphc.tensor(x)).numpy(),
                                  torch.tanh(torch.tensor(x)).numpy())


def test_max_and_min_along_a_dim_take_bools_as_pytorch():
    x = [[True, False], [False, False]]
    for name in ("max", "min"):
        got = getattr(graphc, name)(graphc.tensor(x), dim=-1)
        want = getattr(torch, name)(torch.tensor(x), dim=-1)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
