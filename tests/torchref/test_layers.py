"""torch.nn's activations, normalization, dropout, linear, sparse layers and nn.init,
checked against PyTorch with the differential harness (eager and compiled)."""
import math

import numpy as np
import pytest

import graphc
from harness import assert_close, check_function, check_module, torch

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ---- activations -----------------------------------------------------------------------------
ACTIVATION_MODULES = [
    lambda nn: nn.ELU(0.7), lambda nn: nn.Hardshrink(0.3), lambda nn: nn.Hardsigmoid(),
    lambda nn: nn.Hardtanh(-0.5, 0.8), lambda nn: nn.Hardswish(), lambda nn: nn.LeakyReLU(0.2),
    lambda nn: nn.LogSigmoid(), lambda nn: nn.ReLU(), lambda nn: nn.ReLU6(),
    lambda nn: nn.SELU(), lambda nn: nn.CELU(0.6), lambda nn: nn.GELU(),
    lambda nn: nn.GELU(approximate="tanh"), lambda nn: nn.Sigmoid(), lambda nn: nn.SiLU(),
    lambda nn: nn.Mish(), lambda nn: nn.Softplus(2.0, 3.0), lambda nn: nn.Softshrink(0.4),
    lambda nn: nn.Softsign(), lambda nn: nn.Tanh(), lambda nn: nn.Tanhshrink(),
    lambda nn: nn.Threshold(0.1, -2.0), lambda nn: nn.GLU(1), lambda nn: nn.Softmin(1),
    lambda nn: nn.Softmax(0), lambda nn: nn.Softmax2d(), lambda nn: nn.LogSoftmax(-1),
    lambda nn: nn.RReLU(0.1, 0.3),
]


def test_activation_modules_match():
    """Every activation, in one Sequential per group (values, gradients, compiled);
    RReLU in eval mode (its mean slope)."""
    x = randn(2, 4, 3, 3) * 3
    x.flat[:4] = [0.0, 3.0, -3.0, 6.0]           # kinks: PyTorch's side of each
    make = lambda lib: lib.nn.ModuleList([m(lib.nn) for m in ACTIVATION_MODULES])
    check_module(make, x, train=False,
                 forward=lambda ms, x: [m(x) for m in ms], atol=1e-5)


def test_activation_reprs_match():
    for make in ACTIVATION_MODULES + [
            lambda nn: nn.ReLU6(inplace=True), lambda nn: nn.Hardtanh(-2, 2, True),
            lambda nn: nn.ELU(inplace=True), lambda nn: nn.CELU(2.0, True),
            lambda nn: nn.SELU(True), lambda nn: nn.Threshold(0.1, 2, True),
            lambda nn: nn.RReLU(0.1, 0.3, True), lambda nn: nn.Hardsigmoid(True),
            lambda nn: nn.Mish(True), lambda nn: nn.Hardswish(True), lambda nn: nn.SiLU(True),
            lambda nn: nn.PReLU(3), lambda nn: nn.LeakyReLU(inplace=True)]:
        assert repr(make(graphc.nn)) == repr(make(torch.nn))


def test_prelu_matches():
    check_module(lambda lib: lib.nn.PReLU(3, init=0.1), randn(2, 3, 4))
    check_module(lambda lib: lib.nn.PReLU(), randn(5), modes=())
    with pytest.raises(RuntimeError, match="Mismatch of parameter numbers"):
        graphc.nn.PReLU(3)(graphc.randn(2, 4))


def test_functional_activations_and_inplace_forms_match():
    """F.* with inplace=True, and the trailing-underscore forms, write into their input
    (a non-leaf here) and return it."""
    names = [("relu", ()), ("relu6", ()), ("elu", (0.5,)), ("leaky_relu", (0.3,)),
             ("hardtanh", (-0.4, 0.6)), ("selu", ()), ("celu", (1.5,)), ("silu", ()),
             ("mish", ()), ("hardsigmoid", ()), ("hardswish", ()), ("threshold", (0.2, 5.0))]

    def f(lib, x):
        F = lib.nn.functional
        outs = []
        for name, args in names:
            y = x * 1
            out = getattr(F, name)(y, *args, inplace=True)
            assert out is y
            outs.append(y)
        for name in ("relu_", "elu_", "leaky_relu_", "hardtanh_", "selu_", "celu_"):
            y = x * 1
            assert getattr(F, name)(y) is y
            outs.append(y)
        y = x * 1
        outs.append(F.threshold_(y, 0.1, 3.0))
        y = x * 1
        outs.append(F.rrelu_(y, 0.2, 0.4))          # training=False: fixed slope
        outs += [F.glu(x, 0), F.softmin(x, 1, dtype=lib.float64), F.logsigmoid(x * 30),
                 F.softshrink(x, 0.2), F.hardshrink(x), F.tanhshrink(x), F.softsign(x),
                 F.prelu(x, lib.tensor([0.3, 0.1, 0.2]))]
        return outs
    check_function(f, randn(4, 3) * 3, atol=1e-5)


def test_activation_errors_match():
    for fn, exc in [(lambda lib: lib.nn.functional.glu(lib.ones(3, 5)), RuntimeError),
                    (lambda lib: lib.nn.functional.glu(lib.tensor(1.0)), RuntimeError),
                    (lambda lib: lib.nn.Softmax2d()(lib.ones(3, 5)), ValueError),
                    (lambda lib: lib.nn.functional.softshrink(lib.ones(3), -1.0),
                     RuntimeError),
                    (lambda lib: lib.nn.functional.relu_(lib.ones(3, requires_grad=True)),
                     RuntimeError)]:
        with pytest.raises(exc) as want:
            fn(torch)
        with pytest.raises(exc) as got:
            fn(graphc)
        print(got.value, "|", want.value)


def test_rrelu_training_draws_slopes_from_graphcs_generator():
    x = -graphc.ones(20000)
    graphc.manual_seed(3)
    a = graphc.nn.functional.rrelu(x, 0.1, 0.3, training=True)
    graphc.manual_seed(3)
    b = graphc.nn.RReLU(0.1, 0.3)(x)
    slopes = -a.numpy()
    assert np.array_equal(a.numpy(), b.numpy())
    assert 0.1 <= slopes.min() and slopes.max() <= 0.3
    assert abs(slopes.mean() - 0.2) < 0.003 and abs(slopes.std() - 0.2 / math.sqrt(12)) < 0.003
    pos = graphc.nn.functional.rrelu(graphc.ones(5), training=True)
    assert np.array_equal(pos.numpy(), np.ones(5, np.float32))
    # Compiled, each call draws new slopes.
    f = graphc.compile(lambda x: graphc.nn.functional.rrelu(x, training=True),
                       backend="interpreter")
    assert not np.array_equal(f(x).numpy(), f(x).numpy())
