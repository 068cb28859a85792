"""Lowerings of linear algebra, convolution, pooling, normalisation, and the recurrent
and attention kernels."""
from __future__ import annotations

import math

import graphc
import graphc.attention
import graphc.nn.functional as F
from graphc.dynamo.aten.registry import _float, _gradients, _ints, aten, lowering


# -------------------------------------------------------------------- linear algebra

for _name in ("mm", "bmm", "matmul", "mv", "dot"):
    lowering(getattr(aten, _name).default)(getattr(graphc, _name))


@lowering(aten.addmm.default)
def addmm(bias, a, b, *, beta=1, alpha=1):
    return graphc.addmm(bias, a, b, beta=beta, alpha=alpha)


@lowering(aten.baddbmm.default)
def baddbmm(bias, a, b, *, beta=1, alpha=1):
    return graphc.baddbmm(bias, a, b, beta=beta, alpha=alpha)


# ---------------------------------------------------------- convolution and pooling

def _convolve(x, weight, bias, stride, padding, dilation, transposed, output_padding,
              groups):
    n = weight.ndim - 2
    stride, padding, dilation = _ints(stride, n), _ints(padding, n), _ints(dilation, n)
    if transposed:
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
        return conv(x, weight, bias, stride, padding, _ints(output_padding, n), groups,
                    dilation)
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return conv(x, weight, bias, stride, padding, dilation, groups)


lowering(aten.convolution.default)(_convolve)


@lowering(aten.convolution_backward.default)
def convolution_backward(grad_output, x, weight, bias_sizes, stride, padding, dilation,
                         transposed, output_padding, groups, output_mask):
    def forward(x, weight):
        return _convolve(x, weight, None, stride, padding, dilation, transposed,
                         output_padding, groups)
    grad_x, grad_w = _gradients(forward, grad_output, (x, weight), output_mask[:2])
    grad_b = None
    if output_mask[2]:
        grad_b = grad_output.sum([0] + list(range(2, grad_output.ndim)))
    return grad_x, grad_w, grad_b


def _max_pool(n):
    """ATen's max_pool{n}d_with_indices: (values, flat index into each input plane)."""
    pool = (F.max_pool2d, F.max_pool3d)[n - 2]

    def lower(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
        return tuple(pool(x, _ints(kernel_size, n), _ints(stride or kernel_size, n),
                          _ints(padding, n), _ints(dilation, n), ceil_mode,
                          return_indices=True))
    return lower


def _scatter_to_indices(grad_output, x, indices, n):
    """Each output's gradient added at the input position its flat index (within its
    n-d plane) names: the backward of every max pooling that returns indices."""
    flat = graphc.zeros(*x.shape[:-n], math.prod(x.shape[-n:]), dtype=grad_output.dtype)
    flat = flat.scatter_add(-1, indices.flatten(-n), grad_output.flatten(-n))
    return flat.reshape(x.shape)


def _max_pool_backward(n):
    def lower(grad_output, x, kernel_size, stride, padding, dilation, ceil_mode, indices):
        return _scatter_to_indices(grad_output, x, indices, n)
    return lower


def _adaptive_max_pool(n):
    pool = (F.adaptive_max_pool2d, F.adaptive_max_pool3d)[n - 2]
    return lambda x, output_size: tuple(pool(x, tuple(output_size), return_indices=True))


def _adaptive_max_pool_backward(n):
    return lambda grad_output, x, indices: _scatter_to_indices(grad_output, x, indices, n)


def _avg_pool(n):
    pool = (F.avg_pool2d, F.avg_pool3d)[n - 2]

    def lower(x, kernel_size, stride=(), padding=0, ceil_mode=False,
              count_include_pad=True, divisor_override=None):
        return pool(x, _ints(kernel_size, n), _ints(stride or kernel_size, n),
                    _ints(padding, n), ceil_mode, count_include_pad, divisor_override)
    return lower


def _avg_pool_backward(n):
    def lower(grad_output, x, *pooling):
        return _gradients(lambda x: _avg_pool(n)(x, *pooling), grad_output, (x,), (True,))[0]
    return lower


def _adaptive_avg_pool(n):
    pool = (F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[n - 2]
    return lambda x, output_size: pool(x, tuple(output_size))


def _adaptive_avg_pool_backward(n):
    def lower(grad_output, x):
        def forward(x):
            return _adaptive_avg_pool(n)(x, grad_output.shape[-n:])
        return _gradients(forward, grad_output, (x,), (True,))[0]
    return lower


for _n, _ops in ((2, (aten.max_pool2d_with_indices, aten.max_pool2d_with_indices_backward,
                      aten.avg_pool2d, aten.avg_pool2d_backward, aten._adaptive_avg_pool2d,
                      aten._adaptive_avg_pool2d_backward, aten.adaptive_max_pool2d,
                      aten.adaptive_max_pool2d_backward)),
                 (3, (aten.max_pool3d_with_indices, aten.max_pool3d_with_indices_backward,
                      aten.avg_pool3d, aten.avg_pool3d_backward, aten._adaptive_avg_pool3d,
                      aten._adaptive_avg_pool3d_backward, aten.adaptive_max_pool3d,
                      aten.adaptive_max_pool3d_backward))):
    for _op, _make in zip(_ops, (_max_pool, _max_pool_backward, _avg_pool,
                                 _avg_pool_backward, _adaptive_avg_pool,
                                 _adaptive_avg_pool_backward, _adaptive_max_pool,
                                 _adaptive_max_pool_backward)):
        lowering(_op.default)(_make(_n))


@lowering(aten._cdist_forward.default)
def cdist(x1, x2, p, compute_mode=None):
    return graphc.cdist(x1, x2, p)


@lowering(aten._pdist_forward.default)
def pdist(x, p=2.0):
    return F.pdist(x, p)


@lowering(aten.upsample_nearest2d.vec)
def upsample_nearest2d(x, output_size, scale_factors):
    return F.interpolate(x, size=output_size and tuple(output_size),
                         scale_factor=scale_factors and tuple(scale_factors), mode="nearest")


@lowering(aten.upsample_bilinear2d.vec)
def upsample_bilinear2d(x, output_size, align_corners, scale_factors):
    return F.interpolate(x, size=output_size and tuple(output_size),
                         scale_factor=scale_factors and tuple(scale_factors),
                         mode="bilinear", align_corners=align_corners)


@lowering(aten.mkldnn_rnn_layer.default)
def mkldnn_rnn_layer(x, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, batch_sizes, mode,
                     hidden_size, num_layers, has_biases, bidirectional, batch_first,
                     train):
    """One LSTM layer over a (T, B, I) sequence: the op PyTorch's LSTM runs each layer
    as on the CPU in inference (it passes the sequence time-major whatever
    ``batch_first`` says).  Gates i, f, g, o as in PyTorch; the final states have the
    initial states' shapes, (B, H) or (1, B, H); the fourth output (oneDNN's workspace,
    read only by its own backward) is empty.  ``unsupported`` refuses other modes."""
    h, c = hx.reshape(hx.shape[-2:]), cx.reshape(cx.shape[-2:])
    projected = graphc.matmul(x, w_ih.t()) + (b_ih + b_hh)
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outputs = [None] * x.shape[0]
    for t in steps:
        i, f, g, o = (projected[t] + graphc.mm(h, w_hh.t())).chunk(4, 1)
        c = graphc.sigmoid(f) * c + graphc.sigmoid(i) * graphc.tanh(g)
        h = graphc.sigmoid(o) * graphc.tanh(c)
        outputs[t] = h
    return (graphc.stack(outputs), h.reshape(hx.shape), c.reshape(cx.shape),
            graphc.zeros(0, dtype=x.dtype))


@lowering(aten._transformer_encoder_layer_fwd.default)
def transformer_encoder_layer(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight,
                              proj_bias, use_gelu, norm_first, eps, norm_weight_1,
                              norm_bias_1, norm_weight_2, norm_bias_2, ffn_weight_1,
                              ffn_bias_1, ffn_weight_2, ffn_bias_2, mask=None,
                              mask_type=None):
    """nn.TransformerEncoderLayer's inference fast path (batch-first (B, T, E), no mask:
    ``unsupported`` refuses the rest) as graphc's attention, linear and layer norm."""
    batch, length = src.shape[:2]

    def attention(x):
        q, k, v = F.linear(x, qkv_weight, qkv_bias).reshape(
            batch, length, 3, num_heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        return F.linear(y.reshape(batch, length, embed_dim), proj_weight, proj_bias)

    def feed_forward(x):
        hidden = F.linear(x, ffn_weight_1, ffn_bias_1)
        return F.linear(F.gelu(hidden) if use_gelu else F.relu(hidden), ffn_weight_2,
                        ffn_bias_2)

    def norm_1(x):
        return F.layer_norm(x, [embed_dim], norm_weight_1, norm_bias_1, eps)

    def norm_2(x):
        return F.layer_norm(x, [embed_dim], norm_weight_2, norm_bias_2, eps)
    if norm_first:
        x = src + attention(norm_1(src))
        return x + feed_forward(norm_2(x))
    x = norm_1(src + attention(src))
    return norm_2(x + feed_forward(x))


# ------------------------------------------------------------------- normalisations


def _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """PyTorch's batch norm returning (out, mean, rstd, new running mean, new running var).

    ``mean``/``rstd`` are the batch's (what the backward reads) in training, empty in
    eval, as ATen's functional batch norm ops return them, in the running statistics'
    dtype (the input's without them).
    """
    stats = running_mean.dtype if running_mean is not None else x.dtype
    dims = [0] + list(range(2, x.ndim))
    shape = [1, -1] + [1] * (x.ndim - 2)
    xf = _float(x)
    if training:
        mean = xf.mean(dims)
        var = ((xf - mean.reshape(shape)) ** 2).mean(dims)
        rstd = graphc.rsqrt(var + eps)
        count = xf.numel() // xf.shape[1]
        if running_mean is not None:
            unbiased = var * (count / max(count - 1, 1))
            running_mean = (running_mean * (1 - momentum)
                            + mean.to(running_mean.dtype) * momentum)
            running_var = (running_var * (1 - momentum)
                           + unbiased.to(running_var.dtype) * momentum)
        centre, scale = mean, rstd
        mean, rstd = mean.to(stats), rstd.to(stats)
    else:
        centre, scale = _float(running_mean), graphc.rsqrt(_float(running_var) + eps)
        mean = rstd = graphc.zeros(0, dtype=stats)
    out = (xf - centre.reshape(shape)) * scale.reshape(shape)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out.to(x.dtype), mean, rstd, running_mean, running_var


@lowering(aten._native_batch_norm_legit_functional.default)
def native_batch_norm_functional(x, weight, bias, running_mean, running_var, training,
                                 momentum, eps):
    return _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)


@lowering(aten._native_batch_norm_legit_no_training.default)
def native_batch_norm_no_training(x, weight, bias, running_mean, running_var, momentum,
                                  eps):
    return _batch_norm(x, weight, bias, running_mean, running_var, False, momentum, eps)[:3]


@lowering(aten._native_batch_norm_legit.no_stats)
def native_batch_norm_no_stats(x, weight, bias, training, momentum, eps):
    return _batch_norm(x, weight, bias, None, None, True, momentum, eps)[:3]


@lowering(aten.native_layer_norm.default)
def native_layer_norm(x, normalized_shape, weight, bias, eps):
    """(layer_norm(x), mean, rstd): graphc's fused layer norm, and the statistics the
    backward reads, each of shape x.shape[:axis] + (1,)*k."""
    dims = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    xf = _float(x)
    mean = xf.mean(dims, keepdim=True)
    rstd = graphc.rsqrt(((xf - mean) ** 2).mean(dims, keepdim=True) + eps)
    return (F.layer_norm(x, list(normalized_shape), weight, bias, eps), mean.to(x.dtype),
            rstd.to(x.dtype))


@lowering(aten.native_group_norm.default)
def native_group_norm(x, weight, bias, n, c, hxw, group, eps):
    xf = _float(x).reshape(n, group, -1)
    mean = xf.mean(-1)
    rstd = graphc.rsqrt(xf.var(-1, correction=0) + eps)
    return F.group_norm(x, group, weight, bias, eps), mean.to(x.dtype), rstd.to(x.dtype)


@lowering(aten.native_group_norm_backward.default)
def native_group_norm_backward(grad_output, x, mean, rstd, weight, n, c, hxw, group,
                               output_mask):
    """Group norm's gradients from the saved statistics (PyTorch's formulas)."""
    xf = _float(x).reshape(n, group, -1)
    xhat = ((xf - mean.unsqueeze(-1)) * rstd.unsqueeze(-1)).reshape(x.shape)
    shape = [1, -1] + [1] * (x.ndim - 2)
    dims = [0] + list(range(2, x.ndim))
    grad_w = (grad_output * xhat).sum(dims) if output_mask[1] else None
    grad_b = grad_output.sum(dims) if output_mask[2] else None
    grad_x = None
    if output_mask[0]:
        g = grad_output * (weight.reshape(shape) if weight is not None else 1)
        g = g.reshape(n, group, -1)
        xh = xhat.reshape(n, group, -1)
        grad_x = (rstd.unsqueeze(-1) * (g - g.mean(-1, keepdim=True)
                                        - xh * (g * xh).mean(-1, keepdim=True)))
        grad_x = grad_x.reshape(x.shape).to(x.dtype)
    return grad_x, grad_w, grad_b


def _attention_mask(query, key, attn_mask, is_causal):
    """The kernel's mask and causal flag as one mask (PyTorch's public attention takes
    one or the other; its kernel takes both)."""
    causal = graphc.attention.causal_mask(query.shape[-2], key.shape[-2])
    if not is_causal or attn_mask is None:
        return causal if is_causal else attn_mask
    if attn_mask.dtype == graphc.bool:
        return attn_mask & causal
    return attn_mask.masked_fill(~causal, -math.inf)


@lowering(aten._scaled_dot_product_flash_attention_for_cpu.default)
def flash_attention(query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None,
                    scale=None):
    """PyTorch's CPU attention kernel: (output, logsumexp of each row of scores).

    Lowered whole, not decomposed: PyTorch 2.13's core table decomposes this forward to
    ops whose second output is not the logsumexp its kept backward kernel reads, so a
    training step compiled that way gets wrong gradients (in PyTorch too).
    """
    mask = _attention_mask(query, key, attn_mask, is_causal)
    out = F.scaled_dot_product_attention(query, key, value, mask, scale=scale)
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    scores = graphc.matmul(query, key.transpose(-2, -1)) * scale
    if mask is not None:
        scores = graphc.attention.apply_mask(scores, mask)
    return out, graphc.logsumexp(scores, -1).float()


@lowering(aten._scaled_dot_product_flash_attention_for_cpu_backward.default)
def flash_attention_backward(grad_out, query, key, value, out, logsumexp, dropout_p,
                             is_causal, *, attn_mask=None, scale=None):
    """graphc's gradient of its own attention (the forward is recomputed: graphc has no
    kernel that reads ``logsumexp``; ``unsupported`` refuses dropout, whose mask the
    kernel does not save)."""
    mask = _attention_mask(query, key, attn_mask, is_causal)

    def forward(query, key, value):
        return F.scaled_dot_product_attention(query, key, value, mask, scale=scale)
    return _gradients(forward, grad_out, (query, key, value), (True, True, True))
