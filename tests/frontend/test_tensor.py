"""The eager ``Tensor`` API against PyTorch's behaviour, item by item.

Covers DESIGN.md's "Tensors", "Math", "Views and indexing" and "In-place" bullets and
the "details tutorials rely on".  Expected values and error texts were taken from
PyTorch 2.x (with "torch." spelled "graphc.").
"""
import re

import numpy as np
import pytest

import graphc

NAN = float("nan")


def assert_tensor(t, expected, dtype):
    """t has dtype ``dtype`` and exactly (or, for floats, closely) the values given."""
    assert isinstance(t, graphc.Tensor)
    assert t.dtype == dtype
    expected = np.asarray(expected)
    assert tuple(t.shape) == expected.shape
    if dtype.is_floating_point:
        np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(t.numpy(), expected)


# ---- creation and dtypes ---------------------------------------------------------------------
@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], graphc.float32),
    ([1, 2], graphc.int64),
    ([True, False], graphc.bool),
    ([[1, 2.5]], graphc.float32),
    ([], graphc.float32),
    (3, graphc.int64),
    (np.zeros(2), graphc.float64),
    (np.zeros(2, np.int32), graphc.int32),
    (np.float64(2.5), graphc.float64),
])
def test_tensor_infers_pytorch_dtypes(data, dtype):
    assert graphc.tensor(data).dtype == dtype


def test_tensor_copies_but_as_tensor_and_from_numpy_share_memory():
    a = np.zeros(3)
    copied, shared, from_np = graphc.tensor(a), graphc.as_tensor(a), graphc.from_numpy(a)
    a[0] = 1.0
    from_np[1] = 2.0                     # a write through the tensor reaches the array
    from_np.add_(1)
    assert copied.tolist() == [0.0, 0.0, 0.0]
    assert shared.tolist() == a.tolist() == [2.0, 3.0, 1.0]
    assert graphc.as_tensor(a, dtype=graphc.float32).dtype == graphc.float32


def test_numpy_shares_memory_with_the_tensor_both_ways():
    t = graphc.zeros(2)
    n = t.numpy()
    n[0] = 5.0
    t[1] = 7.0
    assert t.tolist() == [5.0, 7.0] and n.tolist() == [5.0, 7.0]


def test_numpy_of_a_tensor_that_requires_grad_raises():
    t = graphc.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=re.escape("Use tensor.detach().numpy() instead")):
        t.numpy()
    assert t.detach().numpy().tolist() == [1.0, 1.0]


def test_from_numpy_rejects_dtypes_graphc_lacks():
    with pytest.raises(TypeError, match="uint16"):
        graphc.from_numpy(np.zeros(2, np.uint16))


@pytest.mark.parametrize("make", [
    lambda: graphc.zeros(2, 3), lambda: graphc.zeros((2, 3)), lambda: graphc.zeros([2, 3]),
    lambda: graphc.zeros(graphc.Size([2, 3])), lambda: graphc.ones([2, 3]),
    lambda: graphc.empty(2, 3), lambda: graphc.rand([2, 3]), lambda: graphc.randn(2, 3),
])
def test_size_arguments_as_varargs_tuple_list_or_size(make):
    t = make()
    assert t.shape == (2, 3) and t.dtype == graphc.float32


def test_zeros_ones_full_and_like():
    assert_tensor(graphc.zeros([2, 2], dtype=graphc.int64), [[0, 0], [0, 0]], graphc.int64)
    assert_tensor(graphc.ones(2, dtype=graphc.float64), [1, 1], graphc.float64)
    assert_tensor(graphc.full((2,), 3), [3, 3], graphc.int64)
    assert_tensor(graphc.full((2,), 3.0), [3, 3], graphc.float32)
    assert_tensor(graphc.full((2,), True), [True, True], graphc.bool)
    ints = graphc.tensor([1, 2])
    assert_tensor(graphc.zeros_like(ints), [0, 0], graphc.int64)
    assert_tensor(graphc.ones_like(ints, dtype=graphc.float32), [1, 1], graphc.float32)
    assert_tensor(graphc.full_like(ints, 7), [7, 7], graphc.int64)


def test_arange_linspace_eye():
    assert_tensor(graphc.arange(5), [0, 1, 2, 3, 4], graphc.int64)
    assert_tensor(graphc.arange(5, 0, -2), [5, 3, 1], graphc.int64)
    assert_tensor(graphc.arange(1, 2.5, 0.5), [1.0, 1.5, 2.0], graphc.float32)
    assert graphc.arange(0, 1, 0.1).shape == (10,)
    assert graphc.arange(0.5, 3).dtype == graphc.float32
    assert graphc.arange(3, dtype=graphc.float64).dtype == graphc.float64
    assert_tensor(graphc.linspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1], graphc.float32)
    assert_tensor(graphc.linspace(-1, 1, steps=3), [-1, 0, 1], graphc.float32)
    assert_tensor(graphc.eye(2, 3), [[1, 0, 0], [0, 1, 0]], graphc.float32)
    assert_tensor(graphc.eye(2, dtype=graphc.int64), [[1, 0], [0, 1]], graphc.int64)


def test_random_shapes_ranges_and_dtypes():
    r = graphc.rand(1000)
    assert r.dtype == graphc.float32 and 0 <= r.min().item() and r.max().item() < 1
    n = graphc.randn(20000, dtype=graphc.float64)
    assert n.dtype == graphc.float64
    assert abs(n.mean().item()) < 0.05 and abs(n.std().item() - 1) < 0.05
    i = graphc.randint(3, 10, (50, 2))
    assert i.dtype == graphc.int64 and i.shape == (50, 2)
    assert 3 <= i.min().item() and i.max().item() <= 9
    assert graphc.randint(5, (4,)).shape == (4,)                 # randint(high, size)
    assert graphc.randint(0, 2, (3,), dtype=graphc.int32).dtype == graphc.int32
    p = graphc.randperm(7)
    assert p.dtype == graphc.int64 and sorted(p.tolist()) == list(range(7))
    assert graphc.randn_like(graphc.zeros(2, 3, dtype=graphc.float64)).dtype == graphc.float64


def test_manual_seed_and_generators_reproduce_draws():
    def draws():
        return [graphc.rand(3), graphc.randn(2, 2), graphc.randint(0, 100, (4,)),
                graphc.randperm(6)]
    graphc.manual_seed(3)
    first = draws()
    graphc.manual_seed(3)
    second = draws()
    for a, b in zip(first, second):
        assert graphc.equal(a, b)
    assert not graphc.equal(draws()[1], second[1])
    g1, g2 = graphc.Generator().manual_seed(1), graphc.Generator().manual_seed(1)
    assert graphc.equal(graphc.rand(5, generator=g1), graphc.rand(5, generator=g2))


def test_dtype_aliases_and_reprs():
    assert graphc.float is graphc.float32 and graphc.double is graphc.float64
    assert graphc.long is graphc.int64 and graphc.int is graphc.int32
    assert repr(graphc.float32) == "graphc.float32" and str(graphc.long) == "graphc.int64"
    assert graphc.bool.is_floating_point is False and graphc.float64.is_floating_point


def test_legacy_constructors_and_type():
    legacy = graphc.Tensor([[1, 0]])
    assert_tensor(legacy, [[1.0, 0.0]], graphc.float32)
    assert graphc.Tensor(2, 3).shape == (2, 3)
    assert_tensor(graphc.FloatTensor([1, 2]), [1.0, 2.0], graphc.float32)
    assert_tensor(graphc.LongTensor([1.7, 2]), [1, 2], graphc.int64)
    assert graphc.LongTensor(2, 3).shape == (2, 3)
    ints = graphc.tensor([1, 2])
    assert_tensor(ints.type(graphc.FloatTensor), [1.0, 2.0], graphc.float32)
    assert_tensor(ints.type("torch.FloatTensor"), [1.0, 2.0], graphc.float32)
    assert_tensor(ints.type(graphc.float64), [1.0, 2.0], graphc.float64)
    assert ints.type() == "graphc.LongTensor"
    assert graphc.zeros(1).type() == "graphc.FloatTensor"
    assert isinstance(graphc.zeros(1), graphc.FloatTensor)
    assert not isinstance(graphc.zeros(1), graphc.LongTensor)


def test_autograd_variable_is_a_tensor():
    v = graphc.autograd.Variable(graphc.tensor([1.0, 2.0]), requires_grad=True)
    assert isinstance(v, graphc.Tensor) and v.requires_grad and v.is_leaf


def test_conversion_methods():
    x = graphc.tensor([1.7, -1.7])
    assert_tensor(x.long(), [1, -1], graphc.int64)          # truncates toward zero
    assert_tensor(x.int(), [1, -1], graphc.int32)
    assert_tensor(x.double(), [1.7, -1.7], graphc.float64)
    assert_tensor(graphc.tensor([0.5, 0.0]).bool(), [True, False], graphc.bool)
    assert_tensor(graphc.tensor([1]).float(), [1.0], graphc.float32)


def test_python_scalars_from_one_element_tensors():
    assert int(graphc.tensor([3.7])) == 3 and float(graphc.tensor([[3]])) == 3.0
    assert float(graphc.tensor(True)) == 1.0
    one = graphc.tensor([[2.5]]).item()
    assert type(one) is float and one == 2.5
    assert type(graphc.tensor([2]).item()) is int and type(graphc.tensor(True).item()) is bool
    assert graphc.tensor([0.1]).item() == float(np.float32(0.1))    # float32, widened
    assert [10, 20, 30][graphc.tensor(1)] == 20 and list(range(graphc.tensor(3))) == [0, 1, 2]
    msg = "only one element tensors can be converted to Python scalars"
    with pytest.raises(ValueError, match=msg):
        int(graphc.tensor([3, 4]))
    with pytest.raises(ValueError, match=msg):
        float(graphc.zeros(2))
    with pytest.raises(RuntimeError, match="a Tensor with 2 elements cannot be converted"):
        graphc.tensor([2.5, 1.0]).item()


def test_tolist():
    assert graphc.tensor([[1, 2]]).tolist() == [[1, 2]]
    assert graphc.tensor(0.5).tolist() == 0.5
    assert graphc.tensor([True]).tolist() == [True]
    assert graphc.zeros(2, 0).tolist() == [[], []]


def test_to_dtype_device_and_cpu():
    x = graphc.tensor([1.5])
    assert_tensor(x.to(graphc.int64), [1], graphc.int64)
    assert x.to(graphc.float32) is x and x.to("cpu") is x and x.cpu() is x
    assert x.to(graphc.device("cpu")) is x
    assert x.to("cpu", graphc.float64).dtype == graphc.float64
    assert x.to(dtype=graphc.float64).dtype == graphc.float64
    assert x.to(graphc.zeros(1, dtype=graphc.float64)).dtype == graphc.float64
    assert x.device == graphc.device("cpu") and str(x.device) == "cpu"
    assert repr(graphc.device("cuda:1")) == "device(type='cuda', index=1)"


needs_no_cuda = pytest.mark.skipif(graphc.cuda.is_available(), reason="CUDA is available")


@needs_no_cuda
@pytest.mark.parametrize("move", [
    lambda: graphc.zeros(2).cuda(), lambda: graphc.zeros(2).to("cuda"),
    lambda: graphc.zeros(2).to(graphc.device("cuda:0")),
    lambda: graphc.zeros(2, device="cuda"), lambda: graphc.tensor([1.0], device="cuda"),
])
def test_cuda_requests_raise_a_clear_error_without_cuda(move):
    assert graphc.cuda.is_available() is False and graphc.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="Torch not compiled with CUDA enabled: graphc "
                                           "cannot use CUDA here because"):
        move()


# ---- math: PyTorch reference values ----------------------------------------------------------
def _operands():
    a = graphc.tensor([[0.5, -1.25, 2.0], [3.0, 0.25, -0.75]])
    b = graphc.tensor([1.5, -2.0, 0.5])
    i = graphc.tensor([[1, -2, 3], [4, 5, -6]])
    return {"graphc": graphc, "a": a, "b": b, "i": i}


# (expression, value printed by PyTorch for the same expression, result dtype or None for a
# non-tensor result).  Values are rounded to 7 significant digits.
MATH = [
    ('a + b', [[2., -3.25, 2.5], [4.5, -1.75, -0.25]], 'float32'),
    ('a - b', [[-1., 0.75, 1.5], [1.5, 2.25, -1.25]], 'float32'),
    ('2 - a', [[1.5, 3.25, 0.], [-1., 1.75, 2.75]], 'float32'),
    ('a * b', [[0.75, 2.5, 1.], [4.5, -0.5, -0.375]], 'float32'),
    ('a / b', [[0.3333333, 0.625, 4.], [2., -0.125, -1.5]], 'float32'),
    ('2 / b', [1.333333, -1., 4.], 'float32'),
    ('a ** 2', [[0.25, 1.5625, 4.], [9., 0.0625, 0.5625]], 'float32'),
    ('2 ** b', [2.828427, 0.25, 1.414214], 'float32'),
    ('b ** b.abs()', [1.837117, 4., 0.7071068], 'float32'),
    ('-a', [[-0.5, 1.25, -2.], [-3., -0.25, 0.75]], 'float32'),
    ('a @ b', [4.25, 3.625], 'float32'),
    ('a @ a.t()', [[5.8125, -0.3125], [-0.3125, 9.625]], 'float32'),
    ('i / 4', [[0.25, -0.5, 0.75], [1., 1.25, -1.5]], 'float32'),
    ('i // 4', [[0, -1, 0], [1, 1, -2]], 'int64'),
    ('i % 4', [[1, 2, 3], [0, 1, 2]], 'int64'),
    ('-i', [[-1, 2, -3], [-4, -5, 6]], 'int64'),
    ('i * 0.5', [[0.5, -1., 1.5], [2., 2.5, -3.]], 'float32'),
    ('i ** 2', [[1, 4, 9], [16, 25, 36]], 'int64'),
    ('a > b', [[False, True, True], [True, True, False]], 'bool'),
    ('a <= 0.5', [[True, True, False], [False, True, True]], 'bool'),
    ('a == a', [[True, True, True], [True, True, True]], 'bool'),
    ('a != b', [[True, True, True], [True, True, True]], 'bool'),
    ('a.exp()', [[1.648721, 0.2865048, 7.389056], [20.08554, 1.284025, 0.4723665]], 'float32'),
    ('a.abs().log()',
     [[-0.6931472, 0.2231435, 0.6931472], [1.098612, -1.386294, -0.2876821]], 'float32'),
    ('a.abs().sqrt()', [[0.7071068, 1.118034, 1.414214], [1.732051, 0.5, 0.8660254]], 'float32'),
    ('a.abs().rsqrt()', [[1.414214, 0.8944272, 0.7071068], [0.5773503, 2., 1.154701]], 'float32'),
    ('a.sin()', [[0.4794255, -0.9489846, 0.9092974], [0.14112, 0.247404, -0.6816388]], 'float32'),
    ('a.cos()',
     [[0.8775826, 0.3153224, -0.4161468], [-0.9899925, 0.9689124, 0.7316889]], 'float32'),
    ('a.tanh()',
     [[0.4621172, -0.8482836, 0.9640276], [0.9950548, 0.2449187, -0.6351489]], 'float32'),
    ('a.sigmoid()',
     [[0.6224594, 0.2227001, 0.880797], [0.9525741, 0.5621765, 0.3208213]], 'float32'),
    ('a.relu()', [[0.5, 0., 2.], [3., 0.25, 0.]], 'float32'),
    ('graphc.relu(a)', [[0.5, 0., 2.], [3., 0.25, 0.]], 'float32'),
    ('a.clamp(-1, 1)', [[0.5, -1., 1.], [1., 0.25, -0.75]], 'float32'),
    ('a.clamp(min=0)', [[0.5, 0., 2.], [3., 0.25, 0.]], 'float32'),
    ('a.clip(max=0.5)', [[0.5, -1.25, 0.5], [0.5, 0.25, -0.75]], 'float32'),
    ('graphc.maximum(a, b)', [[1.5, -1.25, 2.], [3., 0.25, 0.5]], 'float32'),
    ('graphc.minimum(a, b)', [[0.5, -2., 0.5], [1.5, -2., -0.75]], 'float32'),
    ('graphc.where(a > 0, a, b)', [[0.5, -2., 2.], [3., 0.25, 0.5]], 'float32'),
    ('a.pow(3)', [[0.125, -1.953125, 8.], [27., 0.015625, -0.421875]], 'float32'),
    ('graphc.pow(a, b)', [[0.3535534, 0.64, 1.414214], [5.196152, 16., NAN]], 'float32'),
    ('a.sum()', 3.75, 'float32'),
    ('a.sum(0)', [3.5, -1., 1.25], 'float32'),
    ('a.sum(dim=1, keepdim=True)', [[1.25], [2.5]], 'float32'),
    ('a.mean()', 0.625, 'float32'),
    ('a.mean(1)', [0.4166667, 0.8333333], 'float32'),
    ('a.max()', 3., 'float32'),
    ('a.min()', -1.25, 'float32'),
    ('a.max(1).values', [2., 3.], 'float32'),
    ('a.max(1).indices', [2, 0], 'int64'),
    ('a.max(dim=0)[1]', [1, 1, 0], 'int64'),
    ('a.min(1, keepdim=True).values', [[-1.25], [-0.75]], 'float32'),
    ('a.argmax()', 3, 'int64'),
    ('a.argmax(1)', [2, 0], 'int64'),
    ('a.argmin(0)', [0, 0, 1], 'int64'),
    ('a.prod()', 0.703125, 'float32'),
    ('a.prod(1)', [-1.25, -0.5625], 'float32'),
    ('a.var()', 2.61875, 'float32'),
    ('a.std()', 1.618255, 'float32'),
    ('a.var(1, unbiased=False)', [1.763889, 2.513889], 'float32'),
    ('a.std(0)', [1.767767, 1.06066, 1.944544], 'float32'),
    ('i.sum()', 5, 'int64'),
    ('i.max()', 5, 'int64'),
    ('i.argmax(1)', [2, 1], 'int64'),
    ('graphc.softmax(a, dim=1)',
     [[0.1768202, 0.03072674, 0.7924531], [0.9195862, 0.05878718, 0.0216266]], 'float32'),
    ('graphc.log_softmax(a, dim=0)',
     [[-2.57889, -1.701413, -0.06196762], [-0.07888975, -0.2014133, -2.811968]], 'float32'),
    ('a.softmax(1)',
     [[0.1768202, 0.03072674, 0.7924531], [0.9195862, 0.05878718, 0.0216266]], 'float32'),
    ('a.log_softmax(-1)',
     [[-1.732622, -3.482622, -0.232622], [-0.08383147, -2.833832, -3.833832]], 'float32'),
    ('graphc.matmul(a, b)', [4.25, 3.625], 'float32'),
    ('graphc.mm(a, a.t())', [[5.8125, -0.3125], [-0.3125, 9.625]], 'float32'),
    ('graphc.bmm(a.unsqueeze(0), a.t().unsqueeze(0))',
     [[[5.8125, -0.3125], [-0.3125, 9.625]]], 'float32'),
    ('a.t()', [[0.5, 3.], [-1.25, 0.25], [2., -0.75]], 'float32'),
    ('a.transpose(0, 1)', [[0.5, 3.], [-1.25, 0.25], [2., -0.75]], 'float32'),
    ('a.permute(1, 0)', [[0.5, 3.], [-1.25, 0.25], [2., -0.75]], 'float32'),
    ('a.T', [[0.5, 3.], [-1.25, 0.25], [2., -0.75]], 'float32'),
    ('a.view(3, 2)', [[0.5, -1.25], [2., 3.], [0.25, -0.75]], 'float32'),
    ('a.reshape(-1)', [0.5, -1.25, 2., 3., 0.25, -0.75], 'float32'),
    ('a.flatten()', [0.5, -1.25, 2., 3., 0.25, -0.75], 'float32'),
    ('a.unsqueeze(1).shape', [2, 1, 3], None),
    ('a.unsqueeze(0).squeeze()', [[0.5, -1.25, 2.], [3., 0.25, -0.75]], 'float32'),
    ('a.reshape(1, 2, 1, 3).squeeze(2).shape', [1, 2, 3], None),
    ('b.expand(2, 3)', [[1.5, -2., 0.5], [1.5, -2., 0.5]], 'float32'),
    ('b.unsqueeze(1).expand(-1, 2)', [[1.5, 1.5], [-2., -2.], [0.5, 0.5]], 'float32'),
    ('graphc.cat([a, a], 1)',
     [[0.5, -1.25, 2., 0.5, -1.25, 2.], [3., 0.25, -0.75, 3., 0.25, -0.75]], 'float32'),
    ('graphc.cat((a, b.unsqueeze(0)))',
     [[0.5, -1.25, 2.], [3., 0.25, -0.75], [1.5, -2., 0.5]], 'float32'),
    ('graphc.stack([b, b], 1)', [[1.5, 1.5], [-2., -2.], [0.5, 0.5]], 'float32'),
    ('graphc.hstack([b, b])', [1.5, -2., 0.5, 1.5, -2., 0.5], 'float32'),
    ('graphc.vstack([b, b])', [[1.5, -2., 0.5], [1.5, -2., 0.5]], 'float32'),
    ('a.split(2, 1)[1]', [[2.], [-0.75]], 'float32'),
    ('len(a.split([1, 2], 1))', 2, None),
    ('a.chunk(3, 1)[2]', [[2.], [-0.75]], 'float32'),
    ('graphc.chunk(b, 2)[0]', [1.5, -2.], 'float32'),
    ('a[1]', [3., 0.25, -0.75], 'float32'),
    ('a[:, 0]', [0.5, 3.], 'float32'),
    ('a[1, ::2]', [3., -0.75], 'float32'),
    ('a[-1, -1]', -0.75, 'float32'),
    ('a[[1, 0]]', [[3., 0.25, -0.75], [0.5, -1.25, 2.]], 'float32'),
    ('a[graphc.tensor([1, 1]), :]', [[3., 0.25, -0.75], [3., 0.25, -0.75]], 'float32'),
    ('a[a > 0]', [0.5, 2., 3., 0.25], 'float32'),
    ('a[:, [2, 0]]', [[2., 0.5], [-0.75, 3.]], 'float32'),
    ('a[..., 1]', [-1.25, 0.25], 'float32'),
    ('a[None].shape', [1, 2, 3], None),
    ('b[graphc.tensor([True, False, True])]', [1.5, 0.5], 'float32'),
    ('a.masked_fill(a < 0, 0.)', [[0.5, 0., 2.], [3., 0.25, 0.]], 'float32'),
    ('a.masked_fill(a > 1, -1)', [[0.5, -1.25, -1.], [-1., 0.25, -0.75]], 'float32'),
    ('graphc.tril(graphc.ones(3, 3))', [[1., 0., 0.], [1., 1., 0.], [1., 1., 1.]], 'float32'),
    ('graphc.triu(a)', [[0.5, -1.25, 2.], [0., 0.25, -0.75]], 'float32'),
    ('a.triu(1)', [[0., -1.25, 2.], [0., 0., -0.75]], 'float32'),
    ('a.gather(1, graphc.tensor([[2, 0], [1, 1]]))', [[2., 0.5], [0.25, 0.25]], 'float32'),
    ('graphc.nn.functional.one_hot(graphc.tensor([0, 2, 1]), 4)',
     [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]], 'int64'),
    ('graphc.nn.functional.one_hot(graphc.tensor([1, 3]))', [[0, 1, 0, 0], [0, 0, 0, 1]], 'int64'),
    ('a.dim()', 2, None),
    ('a.numel()', 6, None),
    ('a.size()', [2, 3], None),
    ('a.size(1)', 3, None),
    ('a.shape[0]', 2, None),
]


@pytest.mark.parametrize("expr, expected, dtype", MATH, ids=[m[0] for m in MATH])
def test_math_views_and_indexing_match_pytorch(expr, expected, dtype):
    result = eval(expr, _operands())
    if dtype is None:
        assert (list(result) if isinstance(result, tuple) else result) == expected
        return
    assert result.dtype == getattr(graphc, dtype)
    assert tuple(result.shape) == np.shape(expected)
    if result.dtype.is_floating_point:
        np.testing.assert_allclose(result.numpy(), expected, rtol=1e-6, atol=1e-7)
    else:
        assert result.tolist() == expected


def test_reductions_give_zero_dim_tensors_and_max_with_dim_a_named_pair():
    a = _operands()["a"]
    assert a.sum().shape == () and a.max().dim() == 0
    values, indices = a.max(1)
    assert values.tolist() == [2.0, 3.0] and indices.tolist() == [2, 0]
    assert graphc.max(a, 1).indices.tolist() == [2, 0]


# ---- type promotion --------------------------------------------------------------------------
@pytest.mark.parametrize("expr, dtype", [
    (lambda: graphc.tensor([3, 4]) / 2, graphc.float32),
    (lambda: graphc.tensor([3, 4]) / graphc.tensor([2, 2]), graphc.float32),
    (lambda: graphc.tensor([3, 4]) // 2, graphc.int64),
    (lambda: graphc.tensor([3, 4]) * 1.5, graphc.float32),
    (lambda: graphc.tensor([1], dtype=graphc.int32) + 5, graphc.int32),
    (lambda: graphc.tensor([1], dtype=graphc.int32) + 1.5, graphc.float32),
    (lambda: graphc.tensor([1, 2], dtype=graphc.int32) * graphc.tensor(2), graphc.int32),
    (lambda: graphc.tensor([1., 2.]) * graphc.tensor(2., dtype=graphc.float64), graphc.float32),
    (lambda: graphc.tensor([1., 2.]) * graphc.tensor([2.], dtype=graphc.float64),
     graphc.float64),
    (lambda: graphc.tensor([1]) + graphc.tensor(1., dtype=graphc.float64), graphc.float64),
    (lambda: graphc.tensor([1.], dtype=graphc.float64) + graphc.tensor(1.), graphc.float64),
    (lambda: graphc.tensor([True]) + graphc.tensor([True]), graphc.bool),
    (lambda: graphc.tensor([True]) + 1, graphc.int64),
    (lambda: graphc.tensor([True]) * 2.5, graphc.float32),
    (lambda: graphc.tensor([True, True]).sum(), graphc.int64),
])
def test_type_promotion_follows_pytorch(expr, dtype):
    assert expr().dtype == dtype


def test_int_tensor_divided_by_int_is_true_division():
    assert_tensor(graphc.tensor([3, 4]) / 2, [1.5, 2.0], graphc.float32)
    assert_tensor(graphc.tensor([5, -7]).div(2, rounding_mode="floor"), [2, -4], graphc.int64)
    assert_tensor(graphc.tensor([5, -7]).div(2, rounding_mode="trunc"), [2, -3], graphc.int64)


def test_mean_of_an_int_tensor_raises():
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        graphc.tensor([1, 2]).mean()


# ---- views share storage ---------------------------------------------------------------------
def test_writes_through_views_reach_the_base():
    base = graphc.zeros(3, 4)
    base.view(12)[5] = 1               # row 1, column 1
    base[:, 2].fill_(2)
    base.t()[0, 1] = 3                 # row 1, column 0
    base.reshape(2, 6)[1, 0] = 4       # row 1, column 2
    base.select(0, 2).add_(10)
    base.narrow(1, 3, 1).mul_(0)
    base.unsqueeze(0)[0, 0, 0] = 7
    base.flatten()[1] = 8
    base.T[3, 0] = 5
    base.detach()[2, 0] = -1
    base.data[0, 3] = 6
    assert base.tolist() == [[7, 8, 2, 6], [3, 1, 4, 0], [-1, 10, 12, 0]]


def test_views_see_writes_to_the_base():
    base = graphc.zeros(3, 1)
    expanded, column, row = base.expand(3, 4), base[:, 0], base.view(1, 3)
    base[1, 0] = 5
    assert expanded.tolist() == [[0] * 4, [5] * 4, [0] * 4]
    assert column.tolist() == [0, 5, 0] and row.tolist() == [[0, 5, 0]]


def test_iteration_yields_rows_that_are_views():
    x = graphc.zeros(2, 2)
    for row in x:
        row.add_(1)
    assert x.tolist() == [[1, 1], [1, 1]]
    assert [r.tolist() for r in graphc.tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]
    assert [v.item() for v in graphc.tensor([5, 6])] == [5, 6]


def test_writing_into_an_expanded_tensor_raises_pytorch_error():
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor "
                                           "refers to a single memory location"):
        graphc.zeros(2, 1).expand(2, 3).add_(1)


VIEW_ERROR = ("view size is not compatible with input tensor's size and stride (at least one "
              "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")


@pytest.mark.parametrize("make, shape", [
    (lambda: graphc.arange(6).reshape(2, 3).t(), (3, 2)),
    (lambda: graphc.arange(6).reshape(2, 3).t(), (3, 1, 2)),
    (lambda: graphc.arange(6).reshape(2, 3).t(), (-1, 2)),
    (lambda: graphc.arange(12).reshape(3, 4)[:, 1:3], (3, 2, 1)),
    (lambda: graphc.arange(24).reshape(2, 3, 4)[:, :, :2], (6, 2)),
    (lambda: graphc.arange(24).reshape(2, 3, 4).permute(1, 0, 2), (3, 2, 2, 2)),
    (lambda: graphc.arange(12)[::2], (2, 3)),
    (lambda: graphc.arange(12).reshape(3, 4)[:, ::2], (6,)),
    (lambda: graphc.arange(3).expand(2, 3), (2, 3, 1)),
])
def test_view_of_non_contiguous_tensors_where_strides_allow(make, shape):
    x = make()
    v = x.view(shape)
    np.testing.assert_array_equal(v.numpy(), x.numpy().reshape(shape))
    assert np.shares_memory(v.numpy(), x.numpy())


@pytest.mark.parametrize("make, shape", [
    (lambda: graphc.arange(6).reshape(2, 3).t(), (6,)),
    (lambda: graphc.arange(12).reshape(3, 4)[:, 1:3], (6,)),
    (lambda: graphc.arange(24).reshape(2, 3, 4).permute(1, 0, 2), (3, 8)),
    (lambda: graphc.arange(24).reshape(2, 3, 4)[:, :, :2], (12,)),
    (lambda: graphc.arange(3).expand(2, 3), (6,)),
])
def test_view_raises_pytorch_error_where_strides_do_not_allow(make, shape):
    x = make()
    with pytest.raises(RuntimeError, match=re.escape(VIEW_ERROR)):
        x.view(shape)
    np.testing.assert_array_equal(x.reshape(shape).numpy(), x.numpy().reshape(shape))


def test_view_size_errors():
    with pytest.raises(RuntimeError, match=re.escape("shape '[5, 2]' is invalid for input of "
                                                     "size 12")):
        graphc.arange(12).view(5, 2)
    with pytest.raises(RuntimeError, match=re.escape("shape '[-1, 4]' is invalid for input "
                                                     "of size 6")):
        graphc.arange(6).view(-1, 4)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        graphc.arange(6).view(-1, -1)


def test_contiguous_and_clone():
    x = graphc.arange(6.0).reshape(2, 3)
    assert x.is_contiguous() and x.contiguous() is x
    t = x.t()
    assert not t.is_contiguous() and t.stride() == (1, 3)
    c = t.contiguous()
    assert c.is_contiguous() and c.stride() == (2, 1)
    assert c.view(6).tolist() == [0, 3, 1, 4, 2, 5]         # the classic t().contiguous().view
    c[0, 0] = 100
    assert x[0, 0].item() == 0                             # a copy, not a view
    k = x.clone()
    k.add_(1)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]] and k.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert k._version_count == 1 and x._version_count == 0


# ---- in-place --------------------------------------------------------------------------------
def test_inplace_ops_write_into_the_same_object_and_storage():
    x = graphc.tensor([1.0, 5.0, -3.0])
    storage = x.numpy()
    assert x.add_(graphc.tensor([1.0, 1.0, 1.0]), alpha=2) is x
    assert x.tolist() == [3, 7, -1]
    x.sub_(graphc.tensor([1.0, 1.0, 1.0]), alpha=3)
    assert x.tolist() == [0, 4, -4]
    x.mul_(2).div_(4)
    assert x.tolist() == [0, 2, -2]
    x.clamp_(-1, 1)
    assert x.tolist() == [0, 1, -1]
    x.clamp_(min=0)
    assert x.tolist() == [0, 1, 0]
    x.fill_(3.5)
    assert x.tolist() == [3.5] * 3
    x.fill_(graphc.tensor(2.0))
    x.copy_(graphc.tensor([1, 2, 3]))                     # casts int64 -> float32
    assert x.tolist() == [1, 2, 3] and x.dtype == graphc.float32
    x.zero_()
    assert x.tolist() == [0, 0, 0]
    assert np.shares_memory(storage, x.numpy()) and storage.tolist() == [0, 0, 0]


def test_augmented_assignment_is_in_place():
    x = graphc.ones(2)
    alias, view = x, x[:1]
    x += 1
    x -= graphc.tensor([0.5, 0.0])
    x *= graphc.tensor([2.0, 3.0])
    x /= 4
    assert alias is x and x.tolist() == [0.75, 1.5] and view.tolist() == [0.75]


def test_copy_broadcasts_the_source():
    x = graphc.zeros(2, 2)
    x.copy_(graphc.tensor([1.0, 2.0]))
    assert x.tolist() == [[1, 2], [1, 2]]


@pytest.mark.parametrize("op, pattern", [
    (lambda: graphc.tensor([1, 5]).div_(2),
     "result type float32 can't be cast to the desired output type int64"),
    (lambda: graphc.tensor([1, 5]).add_(1.5),
     "result type float32 can't be cast to the desired output type int64"),
    (lambda: graphc.tensor([1.0, 5.0]).mul_(graphc.ones(2, 2)),
     re.escape("output with shape [2] doesn't match the broadcast shape [2, 2]")),
])
def test_inplace_errors(op, pattern):
    with pytest.raises(RuntimeError, match=pattern):
        op()


def test_version_counter_counts_inplace_writes_shared_by_views():
    x = graphc.zeros(3)
    assert x._version_count == 0
    x.add_(1)
    x += 1
    x[0] = 2
    assert x._version_count == 3
    y = x[1:]
    y.mul_(2)
    assert x._version_count == y._version_count == 4
    x.detach().zero_()
    assert x._version_count == 5
    x.data.add_(1)                     # writes through .data are invisible to autograd
    x.data[0] = 9
    assert x._version_count == 5 and x.tolist() == [9, 1, 1]


def test_out_of_place_ops_do_not_bump_the_version():
    x = graphc.zeros(3)
    results = [x + 1, x.view(3, 1), x.clone(), x[0], x.exp(), x.contiguous()]
    assert x._version_count == 0 and [r._version_count for r in results] == [0] * 6


# ---- index assignment ------------------------------------------------------------------------
def test_setitem_element_row_mask_and_index_lists():
    y = graphc.zeros(3, 3)
    y[0, 1] = 1
    y[1] = graphc.tensor([5.0, 6.0, 7.0])
    y[2, :2] = 4
    y[y > 5] = -1
    y[[0, 2], [2, 2]] = 8
    assert y.tolist() == [[0, 1, 8], [5, -1, -1], [4, 4, 8]]
    i, j = graphc.tensor(1), graphc.tensor(0)
    y[i, j] = 3
    assert y[1, 0].item() == 3


def test_setitem_casts_values_like_pytorch():
    ints = graphc.zeros(3, dtype=graphc.int64)
    ints[0] = 1.7                                          # Python float: truncated
    ints[1] = graphc.tensor(2.7)                           # basic index: copy with a cast
    ints[2:] = graphc.tensor([3.9])
    assert ints.tolist() == [1, 2, 3]
    ints[graphc.tensor([True, False, True])] = graphc.tensor(5.5)   # masked fill
    assert ints.tolist() == [5, 2, 5]
    ints[0] = graphc.tensor([6])                           # a [1] value fills one element
    assert ints.tolist() == [6, 2, 5]
    with pytest.raises(RuntimeError, match="Index put requires the source and destination "
                                           "dtypes match, got int64 for the destination and "
                                           "float32 for the source"):
        ints[graphc.tensor([0, 2])] = graphc.tensor([1.5, 2.5])


def test_setitem_through_a_view_reaches_the_base():
    base = graphc.zeros(2, 3)
    base[:, 1:][0, 0] = 1
    base.t()[2] = graphc.tensor([4.0, 5.0])
    assert base.tolist() == [[0, 1, 4], [0, 0, 5]]


# ---- Python protocol: len, bool, Size --------------------------------------------------------
def test_len_and_zero_dim_errors():
    assert len(graphc.zeros(4, 3)) == 4
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(graphc.tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(graphc.tensor(1.0))


def test_bool_of_tensors():
    assert bool(graphc.tensor([0.5])) and not bool(graphc.tensor(0))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value "
                                           "is ambiguous"):
        bool(graphc.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with no values is "
                                           "ambiguous"):
        bool(graphc.tensor([]))


def test_size_behaves_like_torch_size():
    s = graphc.zeros(2, 3, 4).shape
    assert repr(s) == str(s) == "graphc.Size([2, 3, 4])"
    assert repr(graphc.tensor(1.0).shape) == "graphc.Size([])"
    assert isinstance(s, tuple) and s == (2, 3, 4) and s == graphc.Size([2, 3, 4])
    assert s[1] == 3 and type(s[1]) is int
    assert repr(s[1:]) == "graphc.Size([3, 4])" and repr(s + (5,)) == "graphc.Size([2, 3, 4, 5])"
    assert s.numel() == 24 and graphc.zeros(2, 3).size() == s[:2]
    assert graphc.zeros(2, 3).size(-1) == 3 and graphc.zeros(2, 3).size(dim=0) == 2
    a, b, c = s
    assert (a, b, c) == (2, 3, 4)


def test_metadata():
    x = graphc.zeros(2, 3, dtype=graphc.float64)
    assert x.dim() == x.ndim == 2 and x.numel() == x.nelement() == 6
    assert x.element_size() == 8 and x.is_floating_point()
    assert not graphc.zeros(1, dtype=graphc.int32).is_floating_point()
    with pytest.raises(IndexError, match=re.escape("Dimension out of range (expected to be in "
                                                   "range of [-2, 1], but got 2)")):
        x.size(2)
