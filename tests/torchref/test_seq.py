"""Recurrent, attention and transformer layers against PyTorch (tests/torchref/harness.py):
state_dict layout, outputs, gradients and SGD steps, eagerly and compiled."""
import numpy as np
import pytest

import graphc
from harness import check_function, check_module

torch = pytest.importorskip("torch")
rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- scaled_dot_product_attention -------------------------------------------------------------
def test_sdpa_plain_and_scaled():
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(q, k, v),
                   randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 6))
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, scale=0.3), randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4), modes=())


def test_sdpa_causal_and_masks():
    q, k, v = randn(2, 2, 4, 3), randn(2, 2, 5, 3), randn(2, 2, 5, 3)
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True), q, k, v)
    keep = rng.random((4, 5)) > 0.4
    keep[2] = False                                   # a query row with no key: zeros
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=lib.tensor(keep)), q, k, v)
    bias = randn(2, 1, 4, 5)
    bias[0, 0, 1] = -np.inf
    check_function(lambda lib, q, k, v, b: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=b), q, k, v, bias, modes=("interpreter",))


def test_sdpa_gqa_and_errors():
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, enable_gqa=True), randn(1, 4, 3, 2), randn(1, 2, 5, 2), randn(1, 2, 5, 2),
        modes=())
    F = graphc.nn.functional
    q = graphc.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="Explicit attn_mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=graphc.ones(3, 3, dtype=graphc.bool),
                                       is_causal=True)
    with pytest.raises(RuntimeError, match="same dtype"):
        F.scaled_dot_product_attention(q, q.double(), q)


def test_sdpa_dropout_keeps_shape_and_scales():
    F = graphc.nn.functional
    graphc.manual_seed(0)
    q, k, v = graphc.randn(2, 3, 4), graphc.randn(2, 5, 4), graphc.ones(2, 5, 4)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    # each output row is (sum of the kept weights) / 0.5 times a row of ones
    values = out.numpy()
    assert values.shape == (2, 3, 4) and np.allclose(values, values[..., :1])
    assert not np.allclose(values, 1.0)


def test_sdpa_fuses_into_three_kernels():
    F = graphc.nn.functional
    q, k, v = graphc.randn(2, 3, 4), graphc.randn(2, 5, 4), graphc.randn(2, 5, 4)
    mask = graphc.tensor(rng.random((3, 5)) > 0.3)
    report = graphc.explain(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask), q, k, v)
    assert "\n3 kernels" in str(report), report
