"""ParameterList and ParameterDict against PyTorch: registration names, plain tensors
becoming Parameters, list and dict behaviour, and training through them (eager and
compiled)."""
import numpy as np
import pytest

import graphc
from harness import check_module, torch


def _model(lib):
    nn = lib.nn

    class Mixture(nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = nn.ParameterList([nn.Parameter(lib.ones(3) * (i + 1)) for i in range(2)])
            self.ws.append(lib.full((3,), 0.5))              # a plain tensor: wrapped
            self.scale = nn.ParameterDict({"a": nn.Parameter(lib.tensor(2.0))})
            self.scale["b"] = lib.tensor(-1.0)

        def forward(self, x):
            mixed = sum(w * x for w in self.ws)
            return mixed * self.scale["a"] + self.scale["b"]
    return Mixture()


def test_parameter_containers_train_like_pytorch():
    check_module(_model, np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))


@pytest.mark.parametrize("lib", [torch, graphc], ids=["torch", "graphc"])
def test_list_and_dict_behaviour(lib):
    nn = lib.nn
    plist = nn.ParameterList([lib.zeros(2), nn.Parameter(lib.ones(1))])
    assert isinstance(plist[0], nn.Parameter) and plist[0].requires_grad
    assert len(plist) == 2 and len(plist[0:1]) == 1 and plist[-1].shape == (1,)
    assert [n for n, _ in plist.named_parameters()] == ["0", "1"]
    plist[0] = lib.ones(4)
    assert plist[0].shape == (4,)
    with pytest.raises(IndexError):
        plist[2]
    pdict = nn.ParameterDict({"x": lib.zeros(1)})
    pdict.update({"y": lib.ones(2)})
    assert list(pdict.keys()) == ["x", "y"] and "y" in pdict and pdict.get("z") is None
    assert isinstance(pdict["y"], nn.Parameter)
    assert pdict.pop("x").shape == (1,) and list(pdict) == ["y"]
    with pytest.raises(RuntimeError):
        plist()


def test_gumbel_softmax_samples_the_categorical_and_passes_gradients_straight_through():
    F = graphc.nn.functional
    graphc.manual_seed(0)
    logits = graphc.tensor([[0.0, 1.0, 2.0]]).expand(20000, 3).clone().requires_grad_()
    soft = F.gumbel_softmax(logits, tau=0.5)
    assert np.allclose(soft.sum(-1).detach().numpy(), 1.0, atol=1e-5)
    hard = F.gumbel_softmax(logits, hard=True)
    counts = hard.detach().numpy().sum(0) / 20000
    want = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()   # argmax of logits + g
    np.testing.assert_allclose(counts, want, atol=0.015)
    assert set(np.unique(hard.detach().numpy())) == {0.0, 1.0}
    (hard * graphc.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert logits.grad is not None and np.abs(logits.grad.numpy()).sum() > 0
