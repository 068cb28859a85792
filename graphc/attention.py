"""Scaled dot-product attention, with PyTorch's semantics, as a composite.

``scaled_dot_product_attention`` is ``softmax(q k^T * scale + bias) v``: a boolean mask
says which keys *take part* (True) and becomes a -inf bias where False; a float mask is
added.  A query row whose keys are all masked out gives zeros (PyTorch's "safe softmax"),
not NaN, and passes no gradient.  Compiled, it fuses into three kernels: ``q k^T`` with the
scale and mask as its epilogue, the softmax rows (max, sum, store), and ``p v``.

``multi_head_attention_forward`` is ``nn.MultiheadAttention``'s computation, following
PyTorch's slow path step by step; there a boolean mask is the other way round (True =
masked out).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from graphc import dtypes
from graphc import functional as F
from graphc.composite import dropout, linear, softmax
from graphc.tensor import Tensor


def causal_mask(rows: int, cols: int) -> Tensor:
    """The boolean lower-triangular (top-left aligned) mask of ``is_causal``."""
    return Tensor._wrap(np.tril(np.ones((rows, cols), bool)), dtypes.bool_)


def apply_mask(scores, mask):
    """``scores`` with a mask applied: a boolean one (True = take part) adds -inf where it
    is False, as PyTorch's bias of 0 and -inf does (a nan or +inf score gives nan there),
    written as a ``where`` on the scores, so it fuses into the ``q k^T`` kernel's
    epilogue; a float one is added."""
    if mask.dtype == dtypes.bool_:
        return F.where(mask, scores, scores - math.inf)
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


# ---- multi-head attention ----------------------------------------------------------------------
def canonical_mask(mask, name, dtype, other=None, other_name=""):
    """A MultiheadAttention/Transformer mask as a float bias of ``dtype``: a boolean one
    (True = masked out) becomes -inf there, 0 elsewhere; a float one is kept.  As
    PyTorch, warns when ``other`` (the other mask given) is of another dtype."""
    if mask is None:
        return None
    if mask.dtype != dtypes.bool_ and not mask.dtype.is_floating_point:
        raise AssertionError(f"only bool and floating types of {name} are supported")
    if other is not None and other.dtype != mask.dtype:
        warnings.warn(f"Support for mismatched {name} and {other_name} is deprecated. Use "
                      f"same type for both instead.", stacklevel=3)
    if mask.dtype == dtypes.bool_:
        return F.where(mask, F.scalar_tensor(-math.inf, dtype), F.scalar_tensor(0.0, dtype))
    return mask


def _check_mha_shapes(query, key, value, key_padding_mask, attn_mask, num_heads) -> bool:
    """PyTorch's ``_mha_shape_check``: whether the input is batched (3-D)."""
    if query.dim() not in (2, 3):
        raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received "
                             f"{query.dim()}-D query tensor")
    batched = query.dim() == 3
    kind = "batched (3-D)" if batched else "unbatched (2-D)"
    if key.dim() != query.dim() or value.dim() != query.dim():
        raise AssertionError(f"For {kind} `query`, expected `key` and `value` to be "
                             f"{query.dim()}-D but found {key.dim()}-D and {value.dim()}-D "
                             f"tensors respectively")
    if key_padding_mask is not None and key_padding_mask.dim() != query.dim() - 1:
        raise AssertionError(f"For {kind} `query`, expected `key_padding_mask` to be `None` or "
                             f"{query.dim() - 1}-D but found {key_padding_mask.dim()}-D tensor "
                             f"instead")
    if attn_mask is not None:
        if attn_mask.dim() not in (2, 3):
            raise AssertionError(f"For {kind} `query`, expected `attn_mask` to be `None`, 2-D "
                                 f"or 3-D but found {attn_mask.dim()}-D tensor instead")
        expected = (num_heads, query.shape[0], key.shape[0])
        if not batched and attn_mask.dim() == 3 and tuple(attn_mask.shape) != expected:
            raise AssertionError(f"Expected `attn_mask` shape to be {expected} but got "
                                 f"{tuple(attn_mask.shape)}")
    return batched


def _in_projection(query, key, value, embed_dim, in_proj_weight, in_proj_bias, separate):
    """q, k, v projections: one matmul for self-attention, two for a shared key and value,
    three otherwise (``separate`` = (q_proj_weight, k_proj_weight, v_proj_weight))."""
    biases = (None,) * 3 if in_proj_bias is None else F.chunk(in_proj_bias, 3)
    if separate is not None:
        return [linear(x, w, b) for x, w, b in zip((query, key, value), separate, biases)]
    if key is value and query is key:
        return list(F.chunk(linear(query, in_proj_weight, in_proj_bias), 3, -1))
    if key is value:
        w_q, w_kv = F.split(in_proj_weight, [embed_dim, 2 * embed_dim])
        b_q, b_kv = (None, None) if in_proj_bias is None else \
            F.split(in_proj_bias, [embed_dim, 2 * embed_dim])
        return [linear(query, w_q, b_q)] + list(F.chunk(linear(key, w_kv, b_kv), 2, -1))
    return [linear(x, w, b) for x, w, b in
            zip((query, key, value), F.chunk(in_proj_weight, 3), biases)]


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    """Multi-head attention over (L, N, E) query and (S, N, E) key/value (or unbatched
    (L, E), (S, E)); returns the output and, when ``need_weights``, the attention
    weights (averaged over heads when ``average_attn_weights``)."""
    batched = _check_mha_shapes(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", query.dtype,
                                      attn_mask, "attn_mask")
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                           "Transformer module method `generate_square_subsequent_mask` to "
                           "create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None
    else:
        attn_mask = canonical_mask(attn_mask, "attn_mask", query.dtype)
        if key_padding_mask is not None:
            is_causal = False
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but "
                             f"got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise AssertionError(f"key's sequence and batch dims {tuple(key.shape[:2])} do "
                                 f"not match value's {tuple(value.shape[:2])}")
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is True but q_proj_weight, "
                                 "k_proj_weight or v_proj_weight is None")
        separate = (q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        if tuple(key.shape) != tuple(value.shape):
            raise AssertionError(f"key shape {tuple(key.shape)} does not match value shape "
                                 f"{tuple(value.shape)}")
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        separate = None
    q, k, v = _in_projection(query, key, value, embed_dim, in_proj_weight, in_proj_bias,
                             separate)
    if attn_mask is not None:
        expected = (tgt_len, src_len) if attn_mask.dim() == 2 else \
            (bsz * num_heads, tgt_len, src_len)
        if attn_mask.dim() not in (2, 3):
            raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")
        if tuple(attn_mask.shape) != expected:
            raise RuntimeError(f"The shape of the {attn_mask.dim()}D attn_mask is "
                               f"{list(attn_mask.shape)}, but should be {expected}.")
        if attn_mask.dim() == 2:
            attn_mask = attn_mask.unsqueeze(0)
    if (bias_k is None) != (bias_v is None):
        raise AssertionError("bias_k and bias_v must be given together")
    if bias_k is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError("bias cannot be added to static key or value.")
        k = F.cat([k, F.expand(bias_k, (1, bsz, embed_dim))])
        v = F.cat([v, F.expand(bias_v, (1, bsz, embed_dim))])
        attn_mask = _pad_last(attn_mask)
        key_padding_mask = _pad_last(key_padding_mask)
    q = F.transpose(q.reshape(tgt_len, bsz * num_heads, head_dim), 0, 1)
    k = static_k if static_k is not None else \
        F.transpose(k.reshape(k.shape[0], bsz * num_heads, head_dim), 0, 1)
    v = static_v if static_v is not None else \
        F.transpose(v.reshape(v.shape[0], bsz * num_heads, head_dim), 0, 1)
    for name, static in (("static_k", static_k), ("static_v", static_v)):
        if static is not None and tuple(static.shape[::2]) != (bsz * num_heads, head_dim):
            raise AssertionError(f"expecting {name} of shape ({bsz * num_heads}, *, "
                                 f"{head_dim}), but got {list(static.shape)}")
    if add_zero_attn:
        k = F._pad(k, [(0, 0, 0), (0, 1, 0), (0, 0, 0)], 0)
        v = F._pad(v, [(0, 0, 0), (0, 1, 0), (0, 0, 0)], 0)
        attn_mask = _pad_last(attn_mask)
        key_padding_mask = _pad_last(key_padding_mask)
    src_len = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but "
                                 f"got {tuple(key_padding_mask.shape)}")
        key_padding_mask = F.expand(key_padding_mask.reshape(bsz, 1, 1, src_len),
                                    (bsz, num_heads, 1, src_len)
                                    ).reshape(bsz * num_heads, 1, src_len)
        attn_mask = key_padding_mask if attn_mask is None else attn_mask + key_padding_mask
    if not training:
        dropout_p = 0.0
    if need_weights:
        if is_causal and attn_mask is None:
            raise AssertionError("FIXME: is_causal not implemented for need_weights")
        scores = F.matmul(q * math.sqrt(1.0 / float(head_dim)), F.transpose(k, -2, -1))
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = softmax(scores, -1)
        if dropout_p > 0.0:
            weights = dropout(weights, dropout_p)
        out = F.transpose(F.matmul(weights, v), 0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            out, weights = out.squeeze(1), weights.squeeze(0)
        return out, weights
    if attn_mask is not None:
        attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else \
            attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = F.permute(out, 2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, -1)
    return (out if batched else out.squeeze(1)), None


def _pad_last(mask):
    """A mask with one more key column (of 0: the added key takes part)."""
    if mask is None:
        return None
    return F._pad(mask, [(0, 0, 0)] * (mask.dim() - 1) + [(0, 1, 0)], 0)
