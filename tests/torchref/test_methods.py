"""In-place and alias Tensor methods against PyTorch (values, dtypes, gradients through
the in-place op, eagerly and compiled), and the random fills' statistics."""
import numpy as np
import pytest

import graphc
from harness import check_function

rng = np.random.default_rng(3)
X = (rng.standard_normal((3, 4)) * 2).astype(np.float32)
POSITIVE = np.abs(X) + 0.5

UNARY_INPLACE = ["log_", "log2_", "log10_", "log1p_", "expm1_", "rsqrt_", "sin_", "cos_",
                 "tan_", "erf_", "ceil_", "round_", "trunc_", "sign_", "negative_",
                 "absolute_", "tril_", "triu_"]


@pytest.mark.parametrize("name", UNARY_INPLACE)
def test_unary_inplace_methods(name):
    data = POSITIVE if name.startswith(("log", "rsqrt")) else X
    check_function(lambda lib, a: getattr((a * 1.0), name)() * 2, data,
                   modes=("interpreter",))


@pytest.mark.parametrize("name, other", [
    ("remainder_", 1.5), ("true_divide_", 3.0), ("divide_", 3.0), ("multiply_", 2.0),
    ("subtract_", 1.0), ("eq_", 0.0), ("gt_", 0.0), ("le_", 0.5), ("greater_equal_", 0.0),
    ("not_equal_", 0.0)])
def test_binary_inplace_methods(name, other):
    check_function(lambda lib, a: getattr(a * 1.0, name)(other) + a, X,
                   modes=("interpreter",))


def test_inplace_methods_without_gradients():
    """(PyTorch has no derivative for floor_divide_, and passes logical_not_'s gradient
    through unchanged, which graphc does not copy.)"""
    check_function(lambda lib, a, b: (a.clone().floor_divide_(2.0), a.clone().logical_not_(),
                                      a.clone().logical_and_(b), a.clone().lt_(b)),
                   X, np.round(X), grad=False, modes=("interpreter",))


def test_cumsum_transpose_inplace_and_aliases():
    check_function(lambda lib, a: (a * 1.0).cumsum_(1) * lib.multiply(a, 2).sum(), X)
    check_function(lambda lib, a, b: (lib.greater(a, b), lib.less_equal(a, b),
                                      lib.not_equal(a, b), a.subtract(b), a.type_as(b)),
                   X, X.T.copy().reshape(3, 4), grad=False, modes=())
    for lib in (graphc,):
        t = lib.ones(2, 3)
        assert t.ndimension() == 2 and t.is_same_size(lib.zeros(2, 3))


def test_integer_inplace_division_is_refused_as_pytorch():
    with pytest.raises(RuntimeError, match="can't be cast"):
        graphc.tensor([1, 2]).div_(2)


def test_bernoulli_and_exponential_statistics_and_compiled_draws():
    graphc.manual_seed(0)
    assert abs(graphc.bernoulli(graphc.full((20000,), 0.3)).mean().item() - 0.3) < 0.015
    ones = graphc.ones(20000)
    assert abs(ones.bernoulli_(0.8).mean().item() - 0.8) < 0.015
    assert abs(graphc.empty(20000).exponential_(2.0).mean().item() - 0.5) < 0.02
    draw = graphc.compile(lambda p: graphc.bernoulli(p), fullgraph=True)
    p = graphc.full((500,), 0.5)
    a, b = draw(p), draw(p)
    assert set(np.unique(a.numpy())) == {0.0, 1.0} and not np.array_equal(a.numpy(), b.numpy())
    with pytest.raises(RuntimeError, match=r"\[0, 1\]"):
        graphc.bernoulli(graphc.tensor([1.5]))
    with pytest.raises(RuntimeError, match="lambda"):
        graphc.empty(2).exponential_(0.0)
