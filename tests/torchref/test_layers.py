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
    check_module(lambda lib: lib.nn.PReLU(), randn(5), modes=("interpreter",))
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


def test_top_level_activation_functions_match():
    check_function(lambda lib, x: [lib.selu(x), lib.celu(x, 0.5), lib.rrelu(x),
                                   lib.prelu(x, lib.tensor([0.2])), lib.threshold(x, 0.1, 2.0),
                                   lib.hardshrink(x, 0.3), lib.relu_(x * 1),
                                   lib.selu_(x * 1), lib.celu_(x * 1), lib.rrelu_(x * 1),
                                   lib.threshold_(x * 1, 0.0, -1.0)], randn(3, 4), modes=())


def test_activation_errors_match():
    for fn, exc in [(lambda lib: lib.nn.functional.glu(lib.ones(3, 5)), RuntimeError),
                    (lambda lib: lib.nn.functional.glu(lib.tensor(1.0)), RuntimeError),
                    (lambda lib: lib.nn.Softmax2d()(lib.ones(3, 5)), ValueError),
                    (lambda lib: lib.nn.functional.softshrink(lib.ones(3), -1.0),
                     RuntimeError),
                    (lambda lib: lib.nn.functional.relu_(lib.ones(3, requires_grad=True)),
                     RuntimeError),
                    (lambda lib: lib.nn.functional.gelu(lib.ones(2), approximate="x"),
                     RuntimeError),
                    (lambda lib: lib.nn.Hardtanh(1, 0), AssertionError)]:
        got, want = _raises_alike(fn, exc)
        assert got == want


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


# ---- normalization ---------------------------------------------------------------------------
def test_batch_norm_modules_match():
    """Train mode updates the running statistics (compared as buffers after two steps),
    momentum None is the cumulative average; eval mode uses them."""
    for train in (True, False):
        check_module(lambda lib: lib.nn.Sequential(
            lib.nn.BatchNorm1d(3), lib.nn.BatchNorm1d(3, momentum=None, affine=False),
            lib.nn.BatchNorm1d(3, track_running_stats=False, bias=False)),
            randn(4, 3, 2), train=train, atol=1e-5)
    check_module(lambda lib: lib.nn.BatchNorm2d(2, eps=1e-3, momentum=0.3), randn(3, 2, 2, 3),
                 atol=1e-5)
    check_module(lambda lib: lib.nn.BatchNorm3d(2), randn(2, 2, 2, 2, 3), atol=1e-5)


def test_instance_norm_modules_match():
    for train in (True, False):
        check_module(lambda lib: lib.nn.Sequential(
            lib.nn.InstanceNorm1d(3, affine=True, track_running_stats=True),
            lib.nn.InstanceNorm1d(3)), randn(2, 3, 5), train=train, atol=1e-5)
    check_module(lambda lib: lib.nn.InstanceNorm2d(2, affine=True, momentum=0.2,
                                                   track_running_stats=True),
                 randn(2, 2, 3, 3), atol=1e-5)
    check_module(lambda lib: lib.nn.InstanceNorm3d(2), randn(2, 2, 2, 3), atol=1e-5,
                 modes=())                                        # unbatched (C, D, H, W)
    check_module(lambda lib: lib.nn.InstanceNorm1d(3, affine=True), randn(3, 4),
                 modes=("interpreter",), atol=1e-5)                   # unbatched (C, L)


def test_layer_group_rms_lrn_modules_match():
    check_module(lambda lib: lib.nn.ModuleList([
        lib.nn.LayerNorm([3, 4]), lib.nn.LayerNorm(4, elementwise_affine=False),
        lib.nn.LayerNorm(4, bias=False, eps=1e-3), lib.nn.GroupNorm(2, 6),
        lib.nn.GroupNorm(3, 6, affine=False), lib.nn.RMSNorm([3, 4]),
        lib.nn.RMSNorm(4, eps=1e-3, elementwise_affine=False), lib.nn.LocalResponseNorm(3),
        lib.nn.LocalResponseNorm(2, alpha=0.1, beta=0.5, k=2.0)]),
        randn(2, 6, 3, 4), forward=lambda ms, x: [m(x[:, :3]) if i < 3 else m(x)
                                                  for i, m in enumerate(ms)],
        # The input gradient sums nine normalisations' float32 gradients: 3e-5 apart
        # from PyTorch's depending on the inputs drawn.
        rtol=1e-4, atol=5e-5)


def test_normalization_functions_match():
    def f(lib, x, w, b):
        F = lib.nn.functional
        rm, rv = lib.zeros(3), lib.ones(3)
        outs = [F.instance_norm(x, rm, rv, w, b, True, 0.2), F.group_norm(x, 3, w, b, 1e-3),
                F.group_norm(x, 1), F.rms_norm(x, (4,)), F.rms_norm(x, [3, 4], eps=1e-2),
                F.local_response_norm(x.unsqueeze(-1), 5, 0.5), F.layer_norm(x, (4,)),
                F.batch_norm(x, rm * 1, rv * 1, w, b, True, 0.5),
                F.batch_norm(x, rm, rv, w, b, False), F.normalize(x, 1.5, 2)]
        return outs + [rm, rv]
    check_function(f, randn(2, 3, 4), randn(3), randn(3), atol=1e-5)


def test_normalization_reprs_and_state_dicts_match():
    for make in [lambda nn: nn.BatchNorm3d(3), lambda nn: nn.InstanceNorm1d(3),
                 lambda nn: nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                 lambda nn: nn.InstanceNorm3d(4, bias=False, affine=True),
                 lambda nn: nn.GroupNorm(2, 4), lambda nn: nn.GroupNorm(2, 4, affine=False),
                 lambda nn: nn.RMSNorm(4), lambda nn: nn.RMSNorm([2, 3], 1e-3, False),
                 lambda nn: nn.LocalResponseNorm(3), lambda nn: nn.LayerNorm(4, bias=False),
                 lambda nn: nn.BatchNorm1d(3, momentum=None, affine=False)]:
        g, t = make(graphc.nn), make(torch.nn)
        assert repr(g) == repr(t)
        assert list(g.state_dict()) == list(t.state_dict())
        for k, v in t.state_dict().items():
            assert_close(g.state_dict()[k], v, 0, 0, k)


def _raises_alike(fn, exc):
    """graphc raises PyTorch's exception type; the two messages, for the caller to
    compare (graphc's may add the op, shapes and dtypes to PyTorch's text)."""
    with pytest.raises(exc) as want:
        fn(torch)
    with pytest.raises(exc) as got:
        fn(graphc)
    return str(got.value), str(want.value)


def test_normalization_errors_match():
    for fn, exc in [
            (lambda lib: lib.nn.functional.group_norm(lib.ones(2, 5, 3), 2), RuntimeError),
            (lambda lib: lib.nn.functional.rms_norm(lib.ones(2, 3), [4]), RuntimeError),
            (lambda lib: lib.nn.functional.instance_norm(lib.ones(2, 3, 1)), ValueError),
            (lambda lib: lib.nn.functional.group_norm(lib.ones(1, 2, 1), 2), ValueError),
            (lambda lib: lib.nn.BatchNorm3d(3)(lib.ones(2, 3, 4)), ValueError),
            (lambda lib: lib.nn.InstanceNorm1d(3, affine=True)(lib.ones(2, 4, 5)), ValueError),
            (lambda lib: lib.nn.InstanceNorm1d(3)(lib.ones(2, 4, 5, 6)), ValueError),
            (lambda lib: lib.nn.functional.local_response_norm(lib.ones(2, 3), 2), ValueError),
            (lambda lib: lib.nn.GroupNorm(2, 5), ValueError),
            (lambda lib: lib.nn.GroupNorm(2, 4)(lib.ones(2, 6, 3)), RuntimeError),
            (lambda lib: lib.nn.functional.layer_norm(lib.ones(2, 3), [4]), RuntimeError),
            (lambda lib: lib.nn.LayerNorm([2, 3])(lib.ones(3)), RuntimeError),
            (lambda lib: lib.nn.BatchNorm1d(3)(lib.ones(2, 4)), RuntimeError),
            (lambda lib: lib.nn.BatchNorm1d(3, track_running_stats=False)(lib.ones(2, 4)),
             RuntimeError)]:
        got, want = _raises_alike(fn, exc)
        assert want in got, (got, want)


def test_rms_norm_default_eps_is_the_dtypes():
    x = np.full((2, 3), 1e-5, np.float64)
    check_function(lambda lib, x: lib.nn.RMSNorm(3, dtype=lib.float64)(x), x, modes=())


# ---- dropout ---------------------------------------------------------------------------------
DROPOUTS = [lambda nn: nn.Dropout(0.3), lambda nn: nn.Dropout1d(0.3), lambda nn: nn.Dropout2d(),
            lambda nn: nn.Dropout3d(0.2), lambda nn: nn.AlphaDropout(0.4),
            lambda nn: nn.FeatureAlphaDropout(0.1)]


def test_dropout_eval_is_the_identity_and_p0_p1_match():
    x = randn(2, 3, 4, 5, 2)
    check_module(lambda lib: lib.nn.ModuleList([m(lib.nn) for m in DROPOUTS]), x,
                 train=False, forward=lambda ms, x: [ms[0](x), ms[1](x[:, :, 0, 0]),
                                                     ms[2](x[..., 0]), ms[3](x), ms[4](x),
                                                     ms[5](x)])
    for p in (0.0, 1.0):
        check_function(lambda lib, x: [
            lib.nn.functional.dropout(x, p), lib.nn.functional.dropout1d(x[0, :, 0], p),
            lib.nn.functional.dropout2d(x[..., 0], p), lib.nn.functional.dropout3d(x, p),
            lib.nn.functional.alpha_dropout(x, p, True),
            lib.nn.functional.feature_alpha_dropout(x, p, True)], x, modes=())


def test_dropout_reprs_and_errors_match():
    for make in DROPOUTS + [lambda nn: nn.Dropout(inplace=True)]:
        assert repr(make(graphc.nn)) == repr(make(torch.nn))
    for fn, exc in [(lambda lib: lib.nn.Dropout1d(1.5), ValueError),
                    (lambda lib: lib.nn.functional.dropout1d(lib.ones(2, 3, 4, 5)),
                     RuntimeError),
                    (lambda lib: lib.nn.functional.alpha_dropout(lib.ones(2), -0.1),
                     ValueError)]:
        got, want = _raises_alike(fn, exc)
        assert got == want
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        graphc.nn.functional.dropout2d(graphc.ones(2, 3, 4))


def test_dropout_statistics_with_graphcs_generator():
    """Train mode: masks from graphc's generator (reproducible with manual_seed), the
    right fraction kept, whole channels for the Nd forms, mean and variance kept by
    alpha dropout."""
    F = graphc.nn.functional
    x = graphc.ones(200, 100, 3)
    graphc.manual_seed(5)
    a = F.dropout1d(x, 0.3)
    graphc.manual_seed(5)
    assert np.array_equal(a.numpy(), graphc.nn.Dropout1d(0.3)(x).numpy())
    values = a.numpy()
    assert set(np.unique(values)) == {0.0, np.float32(1 / 0.7)}
    assert (values == values[:, :, :1]).all()                  # whole channels
    assert abs((values == 0).mean() - 0.3) < 0.01
    for fn, dims in [(F.dropout2d, 4), (F.dropout3d, 5), (F.feature_alpha_dropout, 4)]:
        y = fn(graphc.ones(*(50, 80) + (3,) * (dims - 2)), 0.4, True).numpy()
        assert (y == y[:, :, :1, :1]).all()
        assert abs((y[:, :, 0, 0] != y.max()).mean() - 0.4) < 0.02
    z = graphc.randn(400000)
    for p in (0.2, 0.5):
        out = F.alpha_dropout(z, p, training=True).numpy()
        assert abs(out.mean()) < 0.01 and abs(out.std() - 1) < 0.01
        alpha = 1.7580993408473766
        a = 1 / math.sqrt((alpha ** 2 * p + 1) * (1 - p))
        dropped = np.isclose(out, alpha * a * (p - 1), rtol=0, atol=1e-6)
        assert abs(dropped.mean() - p) < 0.005
    f = graphc.compile(lambda x: F.dropout(x, 0.5), backend="interpreter")
    first, second = f(x).numpy(), f(x).numpy()
    assert not np.array_equal(first, second) and abs((first == 0).mean() - 0.5) < 0.01


def test_dropout_inplace_writes_into_its_input():
    y = graphc.ones(4, 5)
    assert graphc.nn.functional.dropout(y, 0.5, True, inplace=True) is y
    assert set(np.unique(y.numpy())) <= {0.0, 2.0}
    z = graphc.ones(3, 4, 5)
    graphc.nn.Dropout1d(0.5, inplace=True)(z)
    assert (z.numpy() == z.numpy()[:, :, :1]).all() and set(np.unique(z.numpy())) <= {0.0, 2.0}


# ---- sparse ----------------------------------------------------------------------------------
def test_embedding_modules_match():
    idx = np.array([[1, 2, 4], [4, 3, 1]])
    check_module(lambda lib: lib.nn.Embedding(6, 3, padding_idx=4), idx)
    check_module(lambda lib: lib.nn.Embedding(6, 3, scale_grad_by_freq=True, padding_idx=-2),
                 idx)
    # max_norm renormalises the looked-up rows of the weight in place, before the lookup.
    check_module(lambda lib: lib.nn.Embedding(6, 4, max_norm=1.0), idx, lr=2.0)
    check_module(lambda lib: lib.nn.Embedding(6, 4, max_norm=1.5, norm_type=1.0), idx,
                 lr=2.0)


def test_embedding_from_pretrained_and_padding_init():
    w = randn(5, 3)
    for lib in (torch, graphc):
        e = lib.nn.Embedding.from_pretrained(lib.tensor(w))
        assert not e.weight.requires_grad
        assert lib.nn.Embedding.from_pretrained(lib.tensor(w), freeze=False).weight.requires_grad
        assert (lib.nn.Embedding(5, 3, padding_idx=2).weight[2] == 0).all()
    check_module(lambda lib: lib.nn.Embedding.from_pretrained(lib.tensor(w), freeze=False,
                                                               padding_idx=0),
                 np.array([0, 1, 0, 3]))
    for make in [lambda nn: nn.Embedding(5, 3, max_norm=2., norm_type=3.,
                                         scale_grad_by_freq=True, sparse=True, padding_idx=-1),
                 lambda nn: nn.EmbeddingBag(5, 3),
                 lambda nn: nn.EmbeddingBag(5, 3, max_norm=1.0, norm_type=1.0,
                                            scale_grad_by_freq=True, mode="max",
                                            padding_idx=2)]:
        assert repr(make(graphc.nn)) == repr(make(torch.nn))


def test_embedding_bag_matches():
    idx = np.array([1, 2, 4, 4, 3, 0, 2])
    offsets = np.array([0, 2, 2, 5])
    for mode in ("sum", "mean", "max"):
        check_module(lambda lib: lib.nn.EmbeddingBag(6, 3, mode=mode), idx, offsets)
        check_module(lambda lib: lib.nn.EmbeddingBag(6, 3, mode=mode, padding_idx=4), idx,
                     offsets, modes=("interpreter",))
        check_module(lambda lib: lib.nn.EmbeddingBag(6, 3, mode=mode), idx[:6].reshape(2, 3),
                     modes=("interpreter",))
    check_module(lambda lib: lib.nn.EmbeddingBag(6, 3, mode="sum", include_last_offset=True),
                 idx, np.array([0, 2, 2, 7]))
    check_module(lambda lib: lib.nn.EmbeddingBag(6, 3, mode="sum"), idx, offsets,
                 randn(7), forward=lambda m, i, o, w: m(i, o, per_sample_weights=w))
    check_module(lambda lib: lib.nn.EmbeddingBag(6, 4, max_norm=1.0, mode="mean"), idx,
                 offsets, lr=2.0, modes=("interpreter",))
    w = randn(6, 3)
    check_module(lambda lib: lib.nn.EmbeddingBag.from_pretrained(
        lib.tensor(w), freeze=False, mode="max", padding_idx=0), idx, offsets, modes=())
    for lib in (torch, graphc):
        assert not lib.nn.EmbeddingBag.from_pretrained(lib.tensor(w)).weight.requires_grad


def test_embedding_functions_match():
    def f(lib, w, psw):
        F = lib.nn.functional
        i = lib.tensor([[0, 3], [3, 3]])
        return [F.embedding(i, w, padding_idx=3), F.embedding(i, w, scale_grad_by_freq=True),
                F.embedding_bag(i.reshape(-1), w, lib.tensor([0, 1]), mode="sum",
                                per_sample_weights=psw, scale_grad_by_freq=True),
                F.embedding_bag(i, w, mode="max")]
    check_function(f, randn(4, 3), randn(4))


def test_embedding_errors_match():
    w = randn(5, 3)
    for fn, exc in [
            (lambda lib: lib.nn.functional.embedding(lib.tensor([1, 7]), lib.tensor(w)),
             IndexError),
            (lambda lib: lib.nn.functional.embedding(lib.tensor([1.0]), lib.tensor(w)),
             RuntimeError),
            (lambda lib: lib.nn.functional.embedding(lib.tensor([1]), lib.tensor(w), 5),
             AssertionError),
            (lambda lib: lib.nn.Embedding.from_pretrained(lib.ones(3)), AssertionError),
            (lambda lib: lib.nn.Embedding(3, 2, _weight=lib.ones(2, 2)), AssertionError),
            (lambda lib: lib.nn.functional.embedding_bag(
                lib.tensor([[1, 2]]), lib.tensor(w), lib.tensor([0])), ValueError),
            (lambda lib: lib.nn.functional.embedding_bag(lib.tensor([1]), lib.tensor(w)),
             ValueError),
            (lambda lib: lib.nn.functional.embedding_bag(
                lib.tensor([1]), lib.tensor(w), lib.tensor([0]), mode="x"), ValueError),
            (lambda lib: lib.nn.functional.embedding_bag(
                lib.tensor([1, 2]), lib.tensor(w), lib.tensor([1])), RuntimeError),
            (lambda lib: lib.nn.functional.embedding_bag(
                lib.tensor([1, 2]), lib.tensor(w), lib.tensor([0]), mode="mean",
                per_sample_weights=lib.ones(2)), NotImplementedError)]:
        got, want = _raises_alike(fn, exc)
        got = got.replace("graphc.tensor.", "torch.").replace("graphc.", "torch.")
        assert got.split(" (")[0] == want.splitlines()[0].split(" (")[0], (got, want)


# ---- linear, flatten -------------------------------------------------------------------------
def test_linear_bilinear_identity_flatten_match():
    check_module(lambda lib: lib.nn.Bilinear(3, 4, 5), randn(2, 6, 3), randn(2, 6, 4))
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.Identity(7, unused="x"), lib.nn.Linear(4, 6, bias=False),
        lib.nn.Unflatten(-1, (2, 3)), lib.nn.Flatten(0, 1), lib.nn.Unflatten(1, [2, 1]),
        lib.nn.Flatten()), randn(2, 3, 4))
    check_function(lambda lib, a, b, w, bias: [lib.nn.functional.bilinear(a, b, w, bias),
                                               lib.nn.functional.bilinear(a[0], b[0], w)],
                   randn(2, 3), randn(2, 4), randn(5, 3, 4), randn(5))
    for make in [lambda nn: nn.Bilinear(3, 4, 5), lambda nn: nn.Bilinear(3, 4, 5, bias=False),
                 lambda nn: nn.Unflatten(1, (2, 3)), lambda nn: nn.Unflatten(-1, [2, 3]),
                 lambda nn: nn.Flatten(0, 2), lambda nn: nn.Identity(3)]:
        assert repr(make(graphc.nn)) == repr(make(torch.nn))
    w = randn(5, 3, 4)
    for fn, exc in [
            (lambda lib: lib.nn.functional.bilinear(lib.ones(2, 3), lib.ones(3, 4),
                                                    lib.tensor(w)), RuntimeError),
            (lambda lib: lib.nn.functional.bilinear(lib.ones(2, 3), lib.ones(2, 5),
                                                    lib.tensor(w)), RuntimeError),
            (lambda lib: lib.nn.functional.bilinear(lib.ones(2, 3), lib.ones(2, 4),
                                                    lib.tensor(w), lib.ones(4)), RuntimeError),
            (lambda lib: lib.nn.functional.bilinear(lib.ones(2, 3), lib.ones(2, 1, 4),
                                                    lib.tensor(w)), RuntimeError),
            (lambda lib: lib.nn.Unflatten(1, (2, "a")), TypeError),
            (lambda lib: lib.nn.Unflatten(1, 3), TypeError)]:
        got, want = _raises_alike(fn, exc)
        assert got == want


def test_lazy_linear_becomes_a_linear_on_its_first_input():
    def make(lib):
        m = lib.nn.LazyLinear(5, bias=False)
        assert repr(m) == "LazyLinear(in_features=0, out_features=5, bias=False)"
        m(lib.ones(1, 3))
        assert type(m) is lib.nn.Linear and m.in_features == 3
        return m
    check_module(make, randn(2, 3), modes=())
    g = graphc.nn.LazyLinear(4)
    g(graphc.ones(2, 6))
    assert repr(g) == repr(torch.nn.Linear(6, 4))
    assert abs(g.weight.detach().numpy()).max() <= 1 / math.sqrt(6)


def test_bilinear_init_bound():
    w = graphc.nn.Bilinear(9, 4, 300).weight.detach().numpy()
    assert np.abs(w).max() <= 1 / 3 and np.abs(w).max() > 0.33 and abs(w.mean()) < 0.01


# ---- nn.init ---------------------------------------------------------------------------------
def test_init_deterministic_fills_match():
    for name, shape, args in [("eye_", (3, 5), ()), ("dirac_", (4, 2, 3), ()),
                              ("dirac_", (6, 3, 3, 2), (2,)), ("dirac_", (2, 2, 3, 3, 3), ()),
                              ("constant_", (2, 3), (0.3,)), ("ones_", (4,), ()),
                              ("zeros_", (2, 2), ())]:
        t, g = torch.empty(shape), graphc.empty(shape)
        assert getattr(graphc.nn.init, name)(g, *args) is g
        assert_close(g, getattr(torch.nn.init, name)(t, *args), 0, 0, name)
    for fn, exc in [(lambda lib: lib.nn.init.eye_(lib.ones(2, 2, 2)), ValueError),
                    (lambda lib: lib.nn.init.dirac_(lib.ones(2, 2)), ValueError),
                    (lambda lib: lib.nn.init.dirac_(lib.ones(3, 2, 2), 2), ValueError),
                    (lambda lib: lib.nn.init.orthogonal_(lib.ones(3)), ValueError),
                    (lambda lib: lib.nn.init.sparse_(lib.ones(3), 0.5), ValueError),
                    (lambda lib: lib.nn.init.xavier_uniform_(lib.ones(3)), ValueError),
                    (lambda lib: lib.nn.init.kaiming_normal_(lib.ones(3, 2), mode="fan"),
                     ValueError),
                    (lambda lib: lib.nn.init.calculate_gain("foo"), ValueError),
                    (lambda lib: lib.nn.init.calculate_gain("leaky_relu", True), ValueError)]:
        got, want = _raises_alike(fn, exc)
        assert got == want
    for args in [("linear",), ("conv_transpose2d",), ("sigmoid",), ("tanh",), ("relu",),
                 ("leaky_relu",), ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu",)]:
        assert graphc.nn.init.calculate_gain(*args) == torch.nn.init.calculate_gain(*args)


def test_init_deprecated_spellings_warn_and_fill():
    for lib in (torch, graphc):
        with pytest.warns(FutureWarning, match="`nn.init.constant` is now deprecated in "
                                               "favor of `nn.init.constant_`"):
            t = lib.nn.init.constant(lib.empty(2, 2), 0.5)
        assert (t == 0.5).all()
        with pytest.warns(FutureWarning):
            assert (lib.nn.init.eye(lib.empty(2, 2)) == lib.eye(2)).all()


def _moments_ok(x, mean, std, tol=0.02):
    assert abs(x.mean() - mean) < tol * max(std, 1) and abs(x.std() / std - 1) < tol, \
        (x.mean(), x.std(), mean, std)


def test_init_distributions_and_generators():
    init = graphc.nn.init
    big = lambda *s: graphc.empty(*s)                                   # noqa: E731
    w = init.uniform_(big(200, 300), -2.0, 3.0).numpy()
    assert -2 <= w.min() and w.max() <= 3
    _moments_ok(w, 0.5, 5 / math.sqrt(12))
    _moments_ok(init.normal_(big(200, 300), 1.0, 2.0).numpy(), 1.0, 2.0)
    fan_in, fan_out = 300, 200
    _moments_ok(init.xavier_uniform_(big(fan_out, fan_in), gain=2.0).numpy(), 0,
                2.0 * math.sqrt(2 / (fan_in + fan_out)))
    _moments_ok(init.xavier_normal_(big(fan_out, fan_in)).numpy(), 0,
                math.sqrt(2 / (fan_in + fan_out)))
    _moments_ok(init.kaiming_uniform_(big(fan_out, 30, 10), mode="fan_out",
                                      nonlinearity="relu").numpy(),
                0, math.sqrt(2) / math.sqrt(fan_out * 10))
    _moments_ok(init.kaiming_normal_(big(fan_out, fan_in), a=0.2).numpy(), 0,
                math.sqrt(2 / (1 + 0.04)) / math.sqrt(fan_in))
    # trunc_normal_: the moments of the truncated normal, both samplers.
    for mean, std, a, b in [(0.0, 1.0, -2.0, 2.0), (0.5, 2.0, 0.0, 1.0), (0.0, 1.0, 2.0, 3.0)]:
        x = init.trunc_normal_(big(300, 300), mean, std, a, b).numpy().astype(np.float64)
        assert a <= x.min() and x.max() <= b
        _moments_ok(x, *_truncated_normal_moments(mean, std, a, b))
    with pytest.warns(UserWarning, match="mean is more than 2 std"):
        init.trunc_normal_(big(3), 10.0, 1.0)
    q = init.orthogonal_(big(6, 2, 5), gain=3.0).numpy().reshape(6, 10)
    np.testing.assert_allclose(q @ q.T, 9 * np.eye(6), atol=1e-4)
    q = init.orthogonal_(big(10, 4)).numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    s = init.sparse_(big(10, 400), 0.35, std=0.5).numpy()
    assert ((s == 0).sum(0) == 4).all()
    _moments_ok(s[s != 0], 0, 0.5, 0.05)
    # The generator argument: same seed, same values; default generator untouched.
    for name, args in [("uniform_", ()), ("normal_", ()), ("xavier_uniform_", ()),
                       ("xavier_normal_", ()), ("kaiming_uniform_", ()),
                       ("kaiming_normal_", ()), ("trunc_normal_", ()), ("orthogonal_", ()),
                       ("sparse_", (0.5,))]:
        fill = getattr(init, name)
        a = fill(big(4, 5), *args, generator=graphc.Generator().manual_seed(7)).numpy()
        graphc.manual_seed(1)
        b = fill(big(4, 5), *args, generator=graphc.Generator().manual_seed(7)).numpy()
        after = graphc.rand(1).numpy()
        graphc.manual_seed(1)
        assert np.array_equal(a, b) and np.array_equal(after, graphc.rand(1).numpy()), name


def _truncated_normal_moments(mean, std, a, b):
    """Mean and standard deviation of N(mean, std^2) restricted to [a, b]."""
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)      # noqa: E731
    cdf = lambda z: (1 + math.erf(z / math.sqrt(2))) / 2                 # noqa: E731
    lo, hi = (a - mean) / std, (b - mean) / std
    mass = cdf(hi) - cdf(lo)
    shift = (pdf(lo) - pdf(hi)) / mass
    var = 1 + (lo * pdf(lo) - hi * pdf(hi)) / mass - shift ** 2
    return mean + std * shift, std * math.sqrt(var)


def test_inplace_activations_inside_a_network_match():
    """The common ``nn.ReLU(inplace=True)`` after a layer: the layer's output is
    overwritten, and autograd (eager and compiled) still gives PyTorch's gradients."""
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.Linear(4, 6), lib.nn.ReLU(inplace=True), lib.nn.Linear(6, 6),
        lib.nn.ELU(inplace=True), lib.nn.Dropout(0.0, inplace=True), lib.nn.Linear(6, 5),
        lib.nn.Hardtanh(-0.5, 0.5, inplace=True), lib.nn.Linear(5, 5),
        lib.nn.SiLU(inplace=True)), randn(3, 4))
