"""graphc.nn against PyTorch's behaviour: module bookkeeping, state dicts, reprs (the
expected strings were printed by PyTorch 2.13), each layer and loss against numpy
formulas, initialisation statistics, and model gradients against finite differences."""
import copy
import math
from collections import OrderedDict

import numpy as np
import pytest

import graphc
from graphc import nn
from graphc.nn import functional as F
from graphc.nn import init

RNG = np.random.default_rng(1234)


def t(array, dtype=None):
    return graphc.tensor(np.asarray(array), dtype=dtype)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def set_params(module, **arrays):
    with graphc.no_grad():
        for name, value in arrays.items():
            getattr(module, name).copy_(t(value))


def close(actual, expected, tol=1e-5):
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=tol, atol=tol)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(graphc.ones(1))
        self.register_buffer("steps", graphc.zeros(1))
        self.register_buffer("cache", graphc.zeros(2), persistent=False)
        self.body = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        self.norm = nn.BatchNorm1d(3)
        self.note = "not a member"

    def forward(self, x):
        return self.body(x) * self.scale


# ---- registration and naming -------------------------------------------------------------
def test_named_members_follow_registration_order():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias",
        "norm.weight", "norm.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "steps", "cache", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "body.2",
                                                   "norm"]
    assert [n for n, _ in net.named_children()] == ["body", "norm"]
    assert [n for n, _ in net.named_parameters(prefix="m", recurse=False)] == ["m.scale"]
    assert all(isinstance(p, nn.Parameter) for p in net.parameters())
    assert net.note == "not a member" and "note" not in net._parameters


def test_shared_modules_and_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    assert [n for n, _ in seq.named_modules(remove_duplicate=False)] == ["", "0", "1", "2"]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in seq.named_parameters(remove_duplicate=False)] == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(list(seq.children())) == 2
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_reassignment_moves_members_between_tables():
    net = Net()
    net.scale = None
    assert "scale" not in net.state_dict() and net.scale is None
    del net.body
    assert not hasattr(net, "body") and not any(k.startswith("body") for k in net.state_dict())
    net.steps = graphc.ones(3)
    assert net._buffers["steps"].shape == (3,)
    net.steps = nn.Parameter(graphc.ones(2))
    assert "steps" in net._parameters and "steps" not in net._buffers


@pytest.mark.parametrize("action, error, message", [
    (lambda m: setattr(m, "scale", graphc.zeros(1)), TypeError,
     "cannot assign 'graphc.FloatTensor' as parameter 'scale' (torch.nn.Parameter or None "
     "expected)"),
    (lambda m: setattr(m, "body", 3), TypeError,
     "cannot assign 'int' as child module 'body' (torch.nn.Module or None expected)"),
    (lambda m: setattr(m, "steps", 3), TypeError,
     "cannot assign 'int' as buffer 'steps' (torch.nn.Buffer, torch.Tensor or None "
     "expected)"),
    (lambda m: m.register_buffer("note", graphc.zeros(1)), KeyError,
     "attribute 'note' already exists"),
    (lambda m: m.register_buffer("a.b", graphc.zeros(1)), KeyError,
     'buffer name can\'t contain "."'),
    (lambda m: m.register_buffer("q", 5), TypeError,
     "cannot assign 'int' object to buffer 'q' (torch Tensor or None required)"),
    (lambda m: m.register_parameter("q", nn.Parameter(graphc.ones(1)) * 2), TypeError,
     "cannot assign 'graphc.FloatTensor' object to parameter 'q' (torch.nn.Parameter or "
     "None required)"),
    (lambda m: m.add_module("q", 5), TypeError, "int is not a Module subclass"),
    (lambda m: m.add_module("a.b", nn.ReLU()), KeyError,
     'module name can\'t contain ".", got: a.b'),
    (lambda m: m.missing, AttributeError, "'Net' object has no attribute 'missing'"),
    (lambda m: m.train("yes"), ValueError, "training mode is expected to be boolean"),
    (lambda m: m.to(graphc.int64), TypeError,
     "nn.Module.to only accepts floating point or complex dtypes, but got desired "
     "dtype=graphc.int64"),
])
def test_registration_errors_match_pytorch(action, error, message):
    with pytest.raises(error) as info:
        action(Net())
    text = info.value.args[0]
    assert text == message


def test_assignment_before_init_and_missing_forward():
    class Early(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"cannot assign module before Module.__init__"):
        Early()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


# ---- parameters --------------------------------------------------------------------------
def test_parameter_shares_data_and_is_a_leaf():
    data = graphc.tensor([1.0, 2.0])
    p = nn.Parameter(data)
    assert p.requires_grad and p.is_leaf and isinstance(p, graphc.Tensor)
    data.add_(1)
    assert p.tolist() == [2.0, 3.0]
    assert type(p * 2) is graphc.Tensor
    assert repr(p) == "Parameter containing:\ntensor([2., 3.], requires_grad=True)"
    assert repr(nn.Parameter(data, requires_grad=False)) == \
        "Parameter containing:\ntensor([2., 3.])"
    assert nn.Parameter().shape == (0,)
    with pytest.raises(TypeError, match="must be Tensor, not list"):
        nn.Parameter([1.0])


def test_parameter_of_computed_tensor_is_a_new_leaf():
    base = graphc.ones(2, requires_grad=True)
    p = nn.Parameter(base * 3)
    assert p.is_leaf and p.grad_fn is None
    (p * p).sum().backward()
    assert p.grad.tolist() == [6.0, 6.0] and base.grad is None


# ---- state dict --------------------------------------------------------------------------
def test_state_dict_is_detached_and_shares_storage():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["scale", "steps", "body.0.weight", "body.0.bias", "body.2.weight",
                        "body.2.bias", "norm.weight", "norm.bias", "norm.running_mean",
                        "norm.running_var", "norm.num_batches_tracked"]
    assert not sd["scale"].requires_grad and type(sd["scale"]) is graphc.Tensor
    with graphc.no_grad():
        net.body[0].bias.fill_(7.0)
    assert sd["body.0.bias"].tolist() == [7.0, 7.0, 7.0]
    assert net.state_dict(keep_vars=True)["scale"] is net.scale


def test_load_state_dict_copies_into_existing_parameters():
    src, dst = Net(), Net()
    with graphc.no_grad():
        src.norm.running_mean.fill_(0.5)
        src.norm.num_batches_tracked.fill_(4)
    weight = dst.body[0].weight
    holder = list(dst.parameters())                   # what an optimizer keeps
    result = dst.load_state_dict(src.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert dst.body[0].weight is weight and weight.requires_grad
    assert holder[1] is weight
    np.testing.assert_array_equal(holder[1].detach().numpy(),
                                  src.body[0].weight.detach().numpy())
    assert dst.norm.running_mean.tolist() == [0.5] * 3
    assert int(dst.norm.num_batches_tracked) == 4
    assert dst.cache.tolist() == [0.0, 0.0]           # non-persistent: untouched
    with graphc.no_grad():
        src.body[0].weight.fill_(9.0)                 # no aliasing after the copy
    assert float(dst.body[0].weight.sum()) != 9.0 * 6


def test_load_state_dict_strict_errors_list_every_problem():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    sd = dict(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).state_dict())
    del sd["2.bias"]
    sd["2.foo"] = graphc.zeros(1)
    sd["x.y"] = graphc.zeros(1)
    sd["0.weight"] = graphc.zeros(2, 2)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(sd)
    assert str(info.value) == (
        'Error(s) in loading state_dict for Sequential:\n'
        '\tMissing key(s) in state_dict: "2.bias". \n'
        '\tUnexpected key(s) in state_dict: "x.y", "2.foo". \n'
        '\tsize mismatch for 0.weight: copying a param with shape graphc.Size([2, 2]) from '
        'checkpoint, the shape in current model is graphc.Size([3, 2]).')
    del sd["0.weight"]
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["0.weight", "2.bias"]
    assert result.unexpected_keys == ["x.y", "2.foo"]
    with pytest.raises(RuntimeError, match='expected torch.Tensor or Tensor-like object from '
                                           "checkpoint but received <class 'int'>"):
        model.load_state_dict({**model.state_dict(), "0.bias": 3})


def test_deepcopy_makes_independent_parameters_and_buffers():
    net = Net()
    clone = copy.deepcopy(net)
    assert type(clone.scale) is nn.Parameter and clone.scale.requires_grad
    with graphc.no_grad():
        clone.body[0].weight.fill_(1.0)
        clone.norm.running_var.fill_(3.0)
    assert float(net.body[0].weight.sum()) != 6.0
    assert net.norm.running_var.tolist() == [1.0, 1.0, 1.0]
    snapshot = copy.deepcopy(net.state_dict())
    with graphc.no_grad():
        net.scale.fill_(5.0)
    assert snapshot["scale"].tolist() == [1.0]


# ---- modes, gradients, conversion --------------------------------------------------------
def test_train_eval_propagate_to_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.body.train(False)
    assert net.training and not net.body[2].training


def test_zero_grad_sets_none_by_default():
    net = Net()
    net(graphc.randn(4, 2)).sum().backward()
    grads = [p.grad for p in net.body.parameters()]
    assert all(g is not None for g in grads)
    net.zero_grad(set_to_none=False)
    assert net.body[0].weight.grad is grads[0]
    assert all(float(g.abs().sum()) == 0 for g in grads)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_apply_requires_grad_and_device_methods():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "BatchNorm1d", "Net"]
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    assert net.cpu() is net and net.to("cpu") is net
    if not graphc.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            net.cuda()


def test_to_dtype_converts_floating_members_in_place():
    net = Net()
    weight = net.body[0].weight
    net(graphc.randn(2, 2)).sum().backward()
    assert net.to(graphc.float64) is net
    assert net.body[0].weight is weight and weight.dtype == graphc.float64
    assert weight.grad.dtype == graphc.float64 and weight.requires_grad and weight.is_leaf
    assert net.norm.running_mean.dtype == graphc.float64
    assert net.norm.num_batches_tracked.dtype == graphc.int64
    out = net(graphc.randn(2, 2, dtype=graphc.float64))
    assert out.dtype == graphc.float64
    net.float()
    assert weight.dtype == graphc.float32 and net.steps.dtype == graphc.float32


# ---- containers --------------------------------------------------------------------------
def test_sequential_indexing_and_editing():
    layers = [nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 3), nn.Tanh()]
    seq = nn.Sequential(*layers)
    assert len(seq) == 4 and list(seq) == layers
    assert seq[-1] is layers[3]
    part = seq[1:3]
    assert type(part) is nn.Sequential and list(part._modules) == ["1", "2"]
    with pytest.raises(IndexError, match="index 4 is out of range"):
        seq[4]
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and seq[1] is layers[2]
    seq.append(nn.Sigmoid()).insert(0, nn.Identity())
    assert [type(m).__name__ for m in seq] == ["Identity", "Linear", "Linear", "Tanh",
                                               "Sigmoid"]
    seq[0] = nn.ReLU()
    assert type(seq[0]) is nn.ReLU
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    named.add_module("out", nn.Linear(2, 1))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias", "out.weight",
                                                        "out.bias"]
    assert named(graphc.ones(3, 2)).shape == (3, 1)


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    ml += [nn.Linear(2, 2)]
    ml.insert(1, nn.Sigmoid())
    assert [type(m).__name__ for m in ml] == ["ReLU", "Sigmoid", "Tanh", "Linear"]
    assert type(ml[1:]) is nn.ModuleList and len(ml[1:]) == 3
    assert [n for n, _ in ml.named_parameters()] == ["3.weight", "3.bias"]
    md = nn.ModuleDict({"a": nn.ReLU()})
    md["b"] = nn.Linear(1, 1)
    md.update([("c", nn.Tanh())])
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["b.weight", "b.bias"]
    assert type(md.pop("a")) is nn.ReLU and list(md.keys()) == ["b", "c"]


# ---- reprs (PyTorch 2.13's output) -------------------------------------------------------
class ReprNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 3, stride=2, padding=1, dilation=2, bias=False)
        self.drop = nn.Dropout(0.25)
        self.ln = nn.LayerNorm(10)
        self.ln2 = nn.LayerNorm([3, 4], eps=1e-6, elementwise_affine=False)
        self.bn = nn.BatchNorm2d(16)
        self.bn1 = nn.BatchNorm1d(8, momentum=None, affine=False, track_running_stats=False)
        self.emb = nn.Embedding(10, 3, padding_idx=0)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.flat = nn.Flatten()
        self.idn = nn.Identity()
        self.acts = nn.ModuleList([
            nn.GELU(), nn.GELU(approximate="tanh"), nn.LeakyReLU(0.2), nn.SiLU(), nn.ELU(),
            nn.Softplus(), nn.Sigmoid(), nn.ReLU(inplace=True), nn.LogSoftmax(dim=-1),
            nn.Softmax()])
        self.losses = nn.ModuleDict({"a": nn.MSELoss(), "b": nn.CrossEntropyLoss(),
                                     "c": nn.BCEWithLogitsLoss(), "d": nn.NLLLoss(),
                                     "e": nn.L1Loss(), "f": nn.BCELoss(reduction="sum")})
        self.x = 3


REPR_NET = """\
ReprNet(
  (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
  (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (conv2): Conv2d(6, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), \
bias=False)
  (drop): Dropout(p=0.25, inplace=False)
  (ln): LayerNorm((10,), eps=1e-05, elementwise_affine=True, bias=True)
  (ln2): LayerNorm((3, 4), eps=1e-06, elementwise_affine=False, bias=False)
  (bn): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, bias=True, \
track_running_stats=True)
  (bn1): BatchNorm1d(8, eps=1e-05, momentum=None, affine=False, bias=False, \
track_running_stats=False)
  (emb): Embedding(10, 3, padding_idx=0)
  (avg): AvgPool2d(kernel_size=3, stride=1, padding=1)
  (flat): Flatten(start_dim=1, end_dim=-1)
  (idn): Identity()
  (acts): ModuleList(
    (0): GELU(approximate='none')
    (1): GELU(approximate='tanh')
    (2): LeakyReLU(negative_slope=0.2)
    (3): SiLU()
    (4): ELU(alpha=1.0)
    (5): Softplus(beta=1.0, threshold=20.0)
    (6): Sigmoid()
    (7): ReLU(inplace=True)
    (8): LogSoftmax(dim=-1)
    (9): Softmax(dim=None)
  )
  (losses): ModuleDict(
    (a): MSELoss()
    (b): CrossEntropyLoss()
    (c): BCEWithLogitsLoss()
    (d): NLLLoss()
    (e): L1Loss()
    (f): BCELoss()
  )
)"""


@pytest.mark.parametrize("make, expected", [
    (ReprNet, REPR_NET),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(),
                           nn.Sequential(nn.Linear(3, 3, bias=False), nn.Tanh()),
                           nn.Softmax(dim=1)),
     "Sequential(\n"
     "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
     "  (1): ReLU()\n"
     "  (2): Sequential(\n"
     "    (0): Linear(in_features=3, out_features=3, bias=False)\n"
     "    (1): Tanh()\n"
     "  )\n"
     "  (3): Softmax(dim=1)\n"
     ")"),
    (lambda: nn.ModuleList([nn.Linear(2, 2) for _ in range(3)] + [nn.ReLU()]),
     "ModuleList(\n"
     "  (0-2): 3 x Linear(in_features=2, out_features=2, bias=True)\n"
     "  (3): ReLU()\n"
     ")"),
    (lambda: nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())])),
     "Sequential(\n"
     "  (fc): Linear(in_features=2, out_features=2, bias=True)\n"
     "  (act): ReLU()\n"
     ")"),
    (nn.Sequential, "Sequential()"),
    (nn.ModuleList, "ModuleList()"),
    (lambda: nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2)),
     "Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2))"),
    (lambda: nn.Conv2d(3, 8, 3, padding="same"),
     "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=same)"),
    (lambda: nn.MaxPool2d((2, 3)),
     "MaxPool2d(kernel_size=(2, 3), stride=(2, 3), padding=0, dilation=1, ceil_mode=False)"),
    (lambda: nn.AvgPool2d(3), "AvgPool2d(kernel_size=3, stride=3, padding=0)"),
    (lambda: nn.Embedding(5, 2, padding_idx=-1), "Embedding(5, 2, padding_idx=4)"),
    (lambda: nn.Embedding(10, 3), "Embedding(10, 3)"),
    (lambda: nn.LayerNorm(4, bias=False),
     "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=False)"),
    (lambda: nn.Flatten(0, 2), "Flatten(start_dim=0, end_dim=2)"),
    (nn.LeakyReLU, "LeakyReLU(negative_slope=0.01)"),
])
def test_repr_matches_pytorch(make, expected):
    assert repr(make()) == expected


def test_loss_weights_are_buffers():
    assert list(nn.CrossEntropyLoss(weight=graphc.ones(3)).state_dict()) == ["weight"]
    assert list(nn.BCEWithLogitsLoss(weight=graphc.ones(3),
                                     pos_weight=graphc.ones(3)).state_dict()) == [
        "weight", "pos_weight"]
    assert list(nn.BCEWithLogitsLoss().state_dict()) == []
    assert list(nn.BatchNorm1d(3, track_running_stats=False).state_dict()) == ["weight",
                                                                              "bias"]


# ---- layers against numpy ----------------------------------------------------------------
def test_linear_forward_and_default_init():
    graphc.manual_seed(0)
    fc = nn.Linear(50, 40)
    bound = 1 / math.sqrt(50)
    w, b = fc.weight.detach().numpy(), fc.bias.detach().numpy()
    assert w.shape == (40, 50) and np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    x = f32(3, 4, 50)
    close(fc(t(x)), x @ w.T + b)
    no_bias = nn.Linear(50, 40, bias=False)
    assert no_bias.bias is None and [n for n, _ in no_bias.named_parameters()] == ["weight"]
    assert nn.Linear(2, 3, dtype=graphc.float64).weight.dtype == graphc.float64


def numpy_conv2d(x, w, b, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x = np.pad(x, [(0, 0), (0, 0), (ph, ph), (pw, pw)])
    n, _, h, wd = x.shape
    o, c, kh, kw = w.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                      j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = np.einsum("nckl,ockl->no", patch, w)
    return out + (b.reshape(1, -1, 1, 1) if b is not None else 0)


@pytest.mark.parametrize("kernel, stride, padding, dilation, bias", [
    (3, 1, 0, 1, True), (3, 2, 1, 1, True), ((2, 3), (1, 2), (1, 0), 2, False),
])
def test_conv2d_matches_direct_loop(kernel, stride, padding, dilation, bias):
    conv = nn.Conv2d(3, 4, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    x = f32(2, 3, 9, 8)
    w = conv.weight.detach().numpy()
    b = conv.bias.detach().numpy() if bias else None
    expected = numpy_conv2d(x, w, b, conv.stride, conv.padding, conv.dilation)
    close(conv(t(x)), expected, 1e-4)
    close(conv(t(x[0])), expected[0], 1e-4)


def test_conv2d_same_padding_init_and_errors():
    conv = nn.Conv2d(2, 3, (2, 3), padding="same", dilation=2)
    x = f32(1, 2, 6, 5)
    # dilation*(k-1) = (2, 4): PyTorch pads (1 top, 1 bottom), (2 left, 2 right).
    expected = numpy_conv2d(np.pad(x, [(0, 0), (0, 0), (1, 1), (2, 2)]),
                            conv.weight.detach().numpy(), conv.bias.detach().numpy(),
                            (1, 1), (0, 0), (2, 2))
    close(conv(t(x)), expected, 1e-4)
    bound = 1 / math.sqrt(2 * 2 * 3)
    assert np.abs(conv.weight.detach().numpy()).max() <= bound
    assert np.abs(conv.bias.detach().numpy()).max() <= bound
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(RuntimeError, match=r"expected input\[1, 2, 5, 5\] to have 3 channels, "
                                           r"but got 2 channels instead"):
        nn.Conv2d(3, 2, 3)(graphc.zeros(1, 2, 5, 5))


def numpy_pool(x, k, s, p, reduce, pad_value):
    x = np.pad(x, [(0, 0), (0, 0), (p, p), (p, p)], constant_values=pad_value)
    oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    out = np.zeros(x.shape[:2] + (oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(x[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return out


@pytest.mark.parametrize("k, s, p", [(2, None, 0), (3, 2, 1), (3, 1, 1)])
def test_pools_match_numpy(k, s, p):
    x = f32(2, 3, 7, 6)
    stride = k if s is None else s
    close(nn.MaxPool2d(k, s, p)(t(x)), numpy_pool(x, k, stride, p, np.max, -np.inf))
    close(nn.AvgPool2d(k, s, p)(t(x)), numpy_pool(x, k, stride, p, np.mean, 0.0))


def test_hardswish_module():
    assert repr(nn.Hardswish()) == "Hardswish()"
    assert repr(nn.Hardswish(inplace=True)) == "Hardswish()"      # as PyTorch prints it
    x = graphc.tensor([-4.0, -1.0, 0.5, 3.5])
    np.testing.assert_allclose(nn.Hardswish()(x).numpy(), [0.0, -1 / 3, 0.5 * 3.5 / 6, 3.5],
                               rtol=1e-6)


def test_flatten_and_identity():
    x = t(f32(2, 3, 4, 5))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert F.flatten(x, 1, 2).shape == (2, 12, 5)
    assert nn.Identity(3, unused=True)(x) is x


def test_layer_norm_matches_formula():
    ln = nn.LayerNorm([4, 5], eps=1e-3)
    assert ln.weight.tolist() == np.ones((4, 5)).tolist()
    assert ln.bias.tolist() == np.zeros((4, 5)).tolist()
    w, b, x = f32(4, 5), f32(4, 5), f32(3, 4, 5)
    set_params(ln, weight=w, bias=b)
    mu = x.mean((1, 2), keepdims=True)
    var = x.var((1, 2), keepdims=True)
    close(ln(t(x)), (x - mu) / np.sqrt(var + 1e-3) * w + b)
    plain = nn.LayerNorm(5, elementwise_affine=False)
    assert list(plain.parameters()) == []
    close(plain(t(x)), (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True)
                                                                + 1e-5))


def test_batch_norm_train_updates_running_stats_with_unbiased_var():
    bn = nn.BatchNorm2d(3)
    w, b = f32(3), f32(3)
    set_params(bn, weight=w, bias=b)
    x1, x2 = f32(4, 3, 5, 2), 2 * f32(4, 3, 5, 2) + 1
    rm, rv = np.zeros(3), np.ones(3)
    for x in (x1, x2):
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
        shape = (1, 3, 1, 1)
        close(bn(t(x)), (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-5)
              * w.reshape(shape) + b.reshape(shape), 1e-4)
        rm = 0.9 * rm + 0.1 * mean
        rv = 0.9 * rv + 0.1 * x.var((0, 2, 3), ddof=1)
    close(bn.running_mean, rm)
    close(bn.running_var, rv)
    assert int(bn.num_batches_tracked) == 2
    bn.eval()
    x = f32(2, 3, 5, 2)
    shape = (1, 3, 1, 1)
    close(bn(t(x)), (x - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + 1e-5)
          * w.reshape(shape) + b.reshape(shape), 1e-4)
    assert int(bn.num_batches_tracked) == 2


def test_batch_norm1d_cumulative_average_and_untracked_stats():
    bn = nn.BatchNorm1d(3, momentum=None, affine=False)
    xs = [f32(6, 3), f32(6, 3) * 3, f32(6, 3) - 2]
    for x in xs:
        bn(t(x))
    close(bn.running_mean, np.mean([x.mean(0) for x in xs], 0))
    close(bn.running_var, np.mean([x.var(0, ddof=1) for x in xs], 0))
    free = nn.BatchNorm1d(3, track_running_stats=False).eval()
    x = f32(5, 3, 4)
    mean, var = x.mean((0, 2), keepdims=True), x.var((0, 2), keepdims=True)
    close(free(t(x)), (x - mean) / np.sqrt(var + 1e-5), 1e-4)
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        bn(graphc.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        bn.train()(graphc.zeros(1, 3))


def test_dropout_statistics_and_eval_identity():
    graphc.manual_seed(0)
    drop = nn.Dropout(0.3)
    x = graphc.ones(200, 100)
    out = drop(x).numpy()
    assert abs((out == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)
    drop.eval()
    assert np.array_equal(drop(x).numpy(), x.numpy())
    assert nn.Dropout(0.0)(x).tolist() == x.tolist()
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout(1.5)


def test_embedding_lookup_padding_and_init():
    graphc.manual_seed(0)
    big = nn.Embedding(1000, 20).weight.detach().numpy()
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1) < 0.02
    emb = nn.Embedding(5, 3, padding_idx=-4)
    assert emb.padding_idx == 1 and emb.weight[1].tolist() == [0.0, 0.0, 0.0]
    w = f32(5, 3)
    set_params(emb, weight=w)
    idx = np.array([[0, 1, 4], [1, 2, 2]])
    out = emb(t(idx))
    close(out, w[idx])
    g = f32(2, 3, 3)
    (out * t(g)).sum().backward()
    expected = np.zeros((5, 3), np.float32)
    np.add.at(expected, idx.reshape(-1), g.reshape(-1, 3))
    expected[1] = 0                                   # the padding row gets no gradient
    close(emb.weight.grad, expected)
    frozen = nn.Embedding.from_pretrained(t(w))
    assert not frozen.weight.requires_grad and frozen(t([3])).tolist() == [w[3].tolist()]


@pytest.mark.parametrize("module, formula", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Tanh(), np.tanh),
    (nn.GELU(), lambda x: x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (nn.GELU("tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    (nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.ELU(0.5), lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
    (nn.Softplus(2.0, 1.0), lambda x: np.where(2 * x > 1, x, np.log1p(np.exp(2 * x)) / 2)),
    (nn.Softmax(dim=0), lambda x: np.exp(x) / np.exp(x).sum(0)),
    (nn.LogSoftmax(dim=1), lambda x: x - np.log(np.exp(x).sum(1, keepdims=True))),
])
def test_activations_match_formulas(module, formula):
    x = (3 * f32(4, 5)).astype(np.float64)
    close(module(t(x)), formula(x), 1e-6)


def test_relu_propagates_nan_like_pytorch():
    x = graphc.tensor([math.nan, -1.0, 0.0, 2.0], requires_grad=True)
    out = nn.ReLU()(x)
    assert math.isnan(out[0].item()) and out[1:].tolist() == [0.0, 0.0, 2.0]
    out.sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0, 1.0]      # PyTorch's values, NaN included


# ---- losses against numpy ----------------------------------------------------------------
def reduce(values, reduction, denominator=None):
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    return values.sum() / (values.size if denominator is None else denominator)


def log_softmax(x):
    return x - np.log(np.exp(x).sum(1, keepdims=True))


REDUCTIONS = ["none", "mean", "sum"]
X, Y = f32(4, 5), f32(4, 5)
CLASSES = np.array([0, 3, 4, -100])
WEIGHT = RNG.uniform(0.5, 2, 5).astype(np.float32)
PROBS = RNG.uniform(0.01, 0.99, (4, 5)).astype(np.float32)
BITS = (RNG.uniform(size=(4, 5)) > 0.5).astype(np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses(reduction):
    d = X - Y
    close(nn.MSELoss(reduction=reduction)(t(X), t(Y)), reduce(d * d, reduction))
    close(nn.L1Loss(reduction=reduction)(t(X), t(Y)), reduce(np.abs(d), reduction))
    smooth = np.where(np.abs(d) < 0.5, d * d, np.abs(d) - 0.25)
    close(nn.SmoothL1Loss(reduction=reduction, beta=0.5)(t(X), t(Y)), reduce(smooth, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_and_nll(reduction):
    logp = log_softmax(X.astype(np.float64))
    valid = CLASSES != -100
    safe = np.where(valid, CLASSES, 0)
    w_i = WEIGHT[safe] * valid
    nll = -logp[np.arange(4), safe] * w_i
    expected = reduce(nll, reduction, w_i.sum())
    close(nn.CrossEntropyLoss(weight=t(WEIGHT), reduction=reduction)(t(X), t(CLASSES)),
          expected)
    close(nn.NLLLoss(weight=t(WEIGHT), reduction=reduction)(F.log_softmax(t(X), 1),
                                                             t(CLASSES)), expected)
    plain = -logp[np.arange(3), CLASSES[:3]]
    close(nn.CrossEntropyLoss(reduction=reduction)(t(X[:3]), t(CLASSES[:3])),
          reduce(plain, reduction))
    smooth = -(logp * WEIGHT).sum(1) / 5 * valid
    mixed = 0.8 * reduce(nll, reduction, w_i.sum()) + 0.2 * reduce(smooth, reduction,
                                                                   w_i.sum())
    close(nn.CrossEntropyLoss(weight=t(WEIGHT), reduction=reduction,
                              label_smoothing=0.2)(t(X), t(CLASSES)), mixed)
    target = PROBS / PROBS.sum(1, keepdims=True)
    close(nn.CrossEntropyLoss(reduction=reduction)(t(X), t(target)),
          reduce(-(logp * target).sum(1), reduction))


def test_cross_entropy_over_spatial_dims():
    x = f32(2, 3, 4)
    target = np.array([[0, 1, 2, 1], [2, 2, 0, 1]])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    picked = np.take_along_axis(logp, target[:, None], 1)[:, 0]
    close(nn.CrossEntropyLoss()(t(x), t(target)), -picked.mean())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_losses(reduction):
    bce = -(BITS * np.log(PROBS) + (1 - BITS) * np.log(1 - PROBS))
    close(nn.BCELoss(reduction=reduction)(t(PROBS), t(BITS)), reduce(bce, reduction))
    close(nn.BCELoss(weight=t(WEIGHT), reduction=reduction)(t(PROBS), t(BITS)),
          reduce(bce * WEIGHT, reduction))
    pos_weight = RNG.uniform(0.5, 2, 5).astype(np.float32)
    sig = 1 / (1 + np.exp(-X.astype(np.float64)))
    logits = -(pos_weight * BITS * np.log(sig) + (1 - BITS) * np.log(1 - sig)) * WEIGHT
    close(nn.BCEWithLogitsLoss(weight=t(WEIGHT), pos_weight=t(pos_weight),
                               reduction=reduction)(t(X), t(BITS)), reduce(logits, reduction))


def test_bce_clamps_log_at_minus_100_and_legacy_flags():
    out = nn.BCELoss(reduction="none")(t([0.0, 1.0, 0.5]), t([1.0, 0.0, 1.0]))
    close(out, [100.0, 100.0, math.log(2)])
    with pytest.warns(UserWarning, match="reduction='sum'"):
        legacy = nn.MSELoss(size_average=False)
    assert legacy.reduction == "sum"
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        nn.MSELoss(reduction="avg")(t(X), t(Y))


# ---- init --------------------------------------------------------------------------------
def test_calculate_gain_and_fans():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01 ** 2))
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)
    assert init._calculate_fan_in_and_fan_out(graphc.empty(6, 4, 3, 2)) == (24, 36)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(graphc.empty(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(graphc.empty(3, 3), mode="fan_avg")


def _uniform(bound):
    return {"low": -bound, "high": bound, "mean": 0.0, "std": bound / math.sqrt(3)}


@pytest.mark.parametrize("fill, expected", [
    (lambda w: init.uniform_(w, -0.5, 0.25),
     {"low": -0.5, "high": 0.25, "mean": -0.125, "std": 0.75 / math.sqrt(12)}),
    (lambda w: init.xavier_uniform_(w, gain=2.0), _uniform(2 * math.sqrt(6 / 500))),
    (lambda w: init.kaiming_uniform_(w, a=math.sqrt(5)), _uniform(1 / math.sqrt(200))),
    (lambda w: init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu"),
     _uniform(math.sqrt(6 / 300))),
    (lambda w: init.normal_(w, 0.5, 0.02), {"mean": 0.5, "std": 0.02}),
    (lambda w: init.xavier_normal_(w), {"mean": 0.0, "std": math.sqrt(2 / 500)}),
    (lambda w: init.kaiming_normal_(w, nonlinearity="relu"),
     {"mean": 0.0, "std": math.sqrt(2 / 200)}),
])
def test_random_init_statistics(fill, expected):
    w = nn.Parameter(graphc.empty(300, 200))
    version = w._version[0]
    assert fill(w) is w and w.requires_grad and w._version[0] > version
    values = w.detach().numpy().astype(np.float64)
    std = expected["std"]
    assert abs(values.std() - std) < 0.02 * std
    assert abs(values.mean() - expected["mean"]) < 0.02 * std
    if "low" in expected:
        span = expected["high"] - expected["low"]
        assert expected["low"] <= values.min() < expected["low"] + 0.001 * span
        assert expected["high"] - 0.001 * span < values.max() <= expected["high"]


def test_constant_inits_and_seeded_reproducibility():
    w = nn.Parameter(graphc.empty(2, 3))
    assert init.constant_(w, 0.5).tolist() == [[0.5] * 3] * 2
    assert init.ones_(w).tolist() == [[1.0] * 3] * 2
    assert init.zeros_(w).tolist() == [[0.0] * 3] * 2
    graphc.manual_seed(7)
    first = nn.Linear(4, 3).weight.tolist()
    graphc.manual_seed(7)
    assert nn.Linear(4, 3).weight.tolist() == first
    gen = graphc.Generator().manual_seed(3)
    a = init.normal_(graphc.empty(5), generator=gen).tolist()
    assert init.normal_(graphc.empty(5), generator=graphc.Generator().manual_seed(3)).tolist() \
        == a


# ---- gradients of a model against finite differences -------------------------------------
def test_model_gradients_match_finite_differences():
    graphc.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 2), nn.BatchNorm2d(3), nn.GELU(), nn.MaxPool2d(2, 1), nn.Flatten(),
        nn.Linear(3, 4), nn.LayerNorm(4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = graphc.tensor(RNG.standard_normal((3, 2, 3, 3)))
    y = graphc.tensor([0, 2, 1])
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(model(x), y).backward()
    eps = 1e-6
    for name, p in model.named_parameters():
        values = p.detach().numpy()
        numeric = np.zeros_like(values)
        for i in np.ndindex(values.shape):
            saved = values[i]
            with graphc.no_grad():
                values[i] = saved + eps
                hi = float(loss_fn(model(x), y))
                values[i] = saved - eps
                lo = float(loss_fn(model(x), y))
            values[i] = saved
            numeric[i] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(p.grad.numpy(), numeric, rtol=1e-5, atol=1e-7,
                                   err_msg=name)
