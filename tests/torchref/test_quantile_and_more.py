"""quantile/nanquantile and the small torch.* functions (logspace, scalar_tensor, isin,
result_type, can_cast, detach, half-precision default dtypes) against PyTorch."""
import numpy as np
import pytest

import graphc
from harness import check_function, torch

rng = np.random.default_rng(5)
X = rng.standard_normal((3, 7)).astype(np.float32)
WITH_NAN = X.copy()
WITH_NAN[1, 2] = np.nan


@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
def test_quantile_modes_dims_and_gradients(interpolation):
    q = np.array([0.0, 0.25, 0.5, 0.9, 1.0], np.float32)
    check_function(lambda lib, a: (
        lib.quantile(a, 0.3, dim=1, interpolation=interpolation),
        lib.quantile(a, lib.tensor(q), dim=0, keepdim=True, interpolation=interpolation),
        a.quantile(0.75, interpolation=interpolation),
        lib.quantile(a, lib.tensor(q), interpolation=interpolation)), X,
        modes=("interpreter",))


def test_quantile_nan_lanes_and_nanquantile():
    check_function(lambda lib, a: (lib.quantile(a, 0.5, dim=1), lib.nanquantile(a, 0.5, dim=1),
                                   lib.nanquantile(a, lib.tensor([0.1, 0.8]), dim=1,
                                                   keepdim=True)),
                   WITH_NAN, grad=False)


def test_quantile_errors():
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError, match="range"):
            lib.quantile(lib.tensor(X), 1.5)
        with pytest.raises(RuntimeError, match="float or double"):
            lib.quantile(lib.tensor([1, 2]), 0.5)
        with pytest.raises(RuntimeError, match="interpolation"):
            lib.quantile(lib.tensor(X), 0.5, interpolation="cubic")


def test_small_torch_functions():
    check_function(lambda lib: (lib.logspace(0, 2, 5), lib.logspace(-1, 1, 3, base=2),
                                lib.scalar_tensor(3), lib.scalar_tensor(2, dtype=lib.int64),
                                lib.isin(lib.tensor([1, 2, 3, 4]), lib.tensor([2, 4])),
                                lib.isin(lib.tensor([1.0, 5.0]), lib.tensor([5.0]),
                                         invert=True)), grad=False, modes=())
    for lib in (torch, graphc):
        assert str(lib.result_type(lib.ones(2, dtype=lib.int32), 2.5)).endswith("float32")
        assert not lib.can_cast(lib.float32, lib.int32) and lib.can_cast(lib.int32,
                                                                          lib.float64)
        assert not lib.detach(lib.ones(2, requires_grad=True) * 2).requires_grad
    try:
        graphc.set_default_dtype(graphc.float16)
        assert graphc.tensor([1.0]).dtype == graphc.float16
    finally:
        graphc.set_default_dtype(graphc.float32)


def test_invert_is_bitwise_not():
    check_function(lambda lib: (~lib.tensor([1, 6, -3]), ~lib.tensor([0, 255], dtype=lib.uint8),
                                ~lib.tensor([True, False]), lib.tensor([7]).bitwise_not(),
                                lib.bitwise_not(lib.tensor([2], dtype=lib.int8))),
                   grad=False, modes=())
    for lib in (torch, graphc):
        with pytest.raises(TypeError, match="invert"):
            ~lib.tensor([1.0])


def test_bool_operators_take_bool_scalars_on_either_side():
    check_function(lambda lib: (lib.tensor([True, False]) & True, True & lib.tensor([True, False]),
                                lib.tensor([True, False]) | False,
                                True ^ lib.tensor([True, False])),
                   grad=False, modes=("interpreter",))


def test_masked_fill_with_a_tensor_value_is_traced_and_differentiable():
    mask = np.array([[True, False, True], [False, False, True]])
    check_function(lambda lib, a, v: a.masked_fill(lib.tensor(mask), v),
                   X[:2, :3], np.array(2.5, np.float32))
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError, match="only supports a 0-dimensional value tensor"):
            lib.ones(3).masked_fill(lib.tensor([True, False, True]), lib.ones(3))


def test_integer_bitwise_and_shift_operators_are_refused_not_left_to_numpy():
    """graphc has no integer bitwise primitive: a TypeError naming the operands, never
    numpy's shift of the tensor turned into an ndarray."""
    t = graphc.tensor([1, 2])
    for op in (lambda: t << np.int64(1), lambda: t >> 1, lambda: 1 << t):
        with pytest.raises(TypeError, match="no (<<|>>) operator on tensors .*int64"):
            op()
    with pytest.raises(TypeError, match="bool tensors and Python bool scalars only .*int64, int"):
        t & 1


def test_inf_norms_of_empty_tensors_are_refused_as_pytorch():
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError, match="inf norm on an empty tensor"):
            lib.norm(lib.empty(0), float("inf"))
        with pytest.raises(RuntimeError, match="-inf norm on an empty tensor"):
            lib.linalg.vector_norm(lib.empty(0, 3), float("-inf"))
        assert lib.norm(lib.empty(2, 0), float("inf"), dim=0).shape == (0,)


def test_hardswish_at_the_extremes():
    """x * 0 below -3, as PyTorch's kernel: -0 for negative x and NaN at -inf; gradients
    0 and 1 at the infinities."""
    check_function(lambda lib, a: lib.nn.functional.hardswish(a),
                   np.array([-np.inf, -4.0, -3.0, -1.0, 3.0, 4.0, np.inf], np.float32))
    out = graphc.nn.functional.hardswish(graphc.tensor([-4.0])).numpy()
    assert np.signbit(out[0])
