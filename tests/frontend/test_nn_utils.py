"""nn.utils gradient clipping against the formulas PyTorch documents."""
import numpy as np

import graphc as torch
from graphc import nn


def _model_with_grads(scale):
    torch.manual_seed(0)
    m = nn.Linear(3, 2)
    m(torch.randn(4, 3)).sum().mul(scale).backward()
    return m


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_old_norm():
    m = _model_with_grads(100.0)
    grads = [p.grad.numpy().copy() for p in m.parameters()]
    expected = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    total = nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    np.testing.assert_allclose(float(total), expected, rtol=1e-5)
    coef = 1.0 / (expected + 1e-6)
    for p, g in zip(m.parameters(), grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone():
    m = _model_with_grads(1e-3)
    grads = [p.grad.numpy().copy() for p in m.parameters()]
    nn.utils.clip_grad_norm_(m.parameters(), 10.0)
    for p, g in zip(m.parameters(), grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_clip_grad_value_clamps_each_element():
    m = _model_with_grads(100.0)
    nn.utils.clip_grad_value_(m.parameters(), 0.1)
    for p in m.parameters():
        assert float(p.grad.abs().max()) <= 0.1 + 1e-7
