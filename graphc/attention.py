"""Scaled dot-product attention, with PyTorch's semantics, as a composite.

``scaled_dot_product_attention`` is ``softmax(q k^T * scale + bias) v``: a boolean mask
says which keys *take part* (True) and becomes a -inf bias where False; a float mask is
added.  A query row whose keys are all masked out gives zeros (PyTorch's "safe softmax"),
not NaN, and passes no gradient.  Compiled, it fuses into three kernels: ``q k^T`` with the
scale and mask as its epilogue, the softmax rows (max, sum, store), and ``p v``.
"""
from __future__ import annotations

import math

import numpy as np

from graphc import dtypes
from graphc import functional as F
from graphc.composite import dropout, softmax
from graphc.tensor import Tensor


def causal_mask(rows: int, cols: int) -> Tensor:
    """The boolean lower-triangular (top-left aligned) mask of ``is_causal``."""
    return Tensor._wrap(np.tril(np.ones((rows, cols), bool)), dtypes.bool_)


def apply_mask(scores, mask):
    """``scores`` with a mask applied: a boolean one (True = take part) puts -inf where it
    is False (a ``where`` on the scores, so it fuses into the ``q k^T`` kernel's epilogue),
    a float one is added."""
    if mask.dtype == dtypes.bool_:
        return F.where(mask, scores, F.scalar_tensor(-math.inf, scores.dtype))
    return scores + mask


def safe_softmax(scores, dim=-1):
    """softmax over ``dim`` that gives 0 (and no NaN gradient) on rows that are all -inf:
    the row max is taken as 0 there, so every exp is 0 and the sum is replaced by 1."""
    top = scores.amax(dim, keepdim=True).detach()
    top = F.where(F.isinf(top), F.scalar_tensor(0.0, top.dtype), top)
    e = (scores - top).exp()
    total = e.sum(dim, keepdim=True)
    return e / F.where(total == 0, F.scalar_tensor(1.0, total.dtype), total)


def _check_inputs(query, key, value):
    if not (query.dtype == key.dtype == value.dtype):
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got "
                           f"query.dtype: {query.dtype.name} key.dtype: {key.dtype.name} and "
                           f"value.dtype: {value.dtype.name} instead.")
    if not query.dtype.is_floating_point:
        raise RuntimeError(f"scaled_dot_product_attention: expected floating query, key and "
                           f"value, got {query.dtype.name}")
    if query.dim() < 2 or key.dim() < 2 or value.dim() < 2:
        raise RuntimeError(f"scaled_dot_product_attention: expected query, key and value of "
                           f"at least 2 dims, got {list(query.shape)}, {list(key.shape)}, "
                           f"{list(value.shape)}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"scaled_dot_product_attention: query {list(query.shape)}, key "
                           f"{list(key.shape)} and value {list(value.shape)} do not match "
                           f"(query and key need the same last dim, key and value the same "
                           f"sequence length)")


def _repeat_heads(x, groups):
    """Each head of ``x`` (dim -3) repeated ``groups`` times in place, as
    ``repeat_interleave(groups, -3)``."""
    shape = tuple(x.shape)
    x = F.expand(x.unsqueeze(-3), shape[:-3] + (shape[-3], groups) + shape[-2:])
    return x.reshape(shape[:-3] + (shape[-3] * groups,) + shape[-2:])


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """Attention of ``query`` (..., L, E) over ``key`` (..., S, E) and ``value`` (..., S, Ev),
    as ``torch.nn.functional.scaled_dot_product_attention``; dropout on the attention
    weights draws from graphc's generator."""
    _check_inputs(query, key, value)
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                           "set when is_causal=True")
    if enable_gqa and query.dim() >= 3 and key.shape[-3] != query.shape[-3]:
        if query.shape[-3] % key.shape[-3] or query.shape[-3] % value.shape[-3]:
            raise RuntimeError(f"scaled_dot_product_attention: number of heads in key/value "
                               f"({key.shape[-3]}, {value.shape[-3]}) must divide the "
                               f"number of heads in query ({query.shape[-3]})")
        key = _repeat_heads(key, query.shape[-3] // key.shape[-3])
        value = _repeat_heads(value, query.shape[-3] // value.shape[-3])
    rows, cols = query.shape[-2], key.shape[-2]
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = F.matmul(query, F.transpose(key, -2, -1)) * scale
    if is_causal:
        attn_mask = causal_mask(rows, cols)
    if attn_mask is not None:
        scores = apply_mask(scores, attn_mask)
        weights = safe_softmax(scores)
    else:
        weights = softmax(scores, -1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, True)
    return F.matmul(weights, value)
