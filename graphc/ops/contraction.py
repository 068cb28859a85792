"""Contraction primitives: batched ``matmul`` and ``conv2d``.

``conv2d`` takes no padding (the front end pads with the ``pad`` primitive) but has
stride and dilation.  Its weight gradient is again a ``conv2d`` (of permuted tensors);
its input gradient is col2im: one batched ``matmul`` of the weight and the gradient,
whose planes are padded into place and summed.
"""
from __future__ import annotations

import math

import numpy as np

from graphc.dtypes import HALF, TensorType
from graphc.ops.primitive import Primitive, broadcast_shapes, op_error, register, unbroadcast


def _matmul_infer(a: TensorType, b: TensorType) -> TensorType:
    if len(a.shape) < 2 or len(b.shape) < 2 or a.dtype != b.dtype \
            or not a.dtype.is_floating_point or a.dtype in HALF:
        raise op_error("matmul", "expects float32 or float64 operands of one dtype with at "
                                 "least 2 dimensions (the front end computes float16 and "
                                 "bfloat16 products in float32)", a, b)
    if a.shape[-1] != b.shape[-2]:
        raise op_error("matmul", f"mat1 and mat2 shapes cannot be multiplied "
                                 f"({'x'.join(map(str, a.shape))} and "
                                 f"{'x'.join(map(str, b.shape))})", a, b)
    batch = broadcast_shapes("matmul", TensorType(a.shape[:-2], a.dtype),
                             TensorType(b.shape[:-2], b.dtype), operands=(a, b))
    return TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)


def _shared_matrix(shape, g) -> bool:
    """Whether an operand of ``shape`` is one matrix broadcast over all of the batch
    dims of the gradient ``g`` (a linear layer's weight on a (batch, seq, features)
    input)."""
    return g.dim() > 2 and all(d == 1 for d in shape[:-2])


def _matmul_grad_a(g, out, a, b):
    if _shared_matrix(a.shape, g):
        # One product with the batch folded into the depth, not a batch of products
        # summed: sum_i g_i @ b_i^T = [g_1 ... g_n] @ [b_1 ... b_n]^T.
        m, n, k = g.shape[-2], g.shape[-1], b.shape[-2]
        depth = math.prod(g.shape[:-2]) * n
        rows = g.movedim(-2, 0).reshape(m, depth)
        cols = b.expand(*g.shape[:-2], k, n).transpose(-1, -2).reshape(depth, k)
        return rows.matmul(cols).reshape(a.shape)
    return unbroadcast(g.matmul(b.transpose(-1, -2)), a.shape)


def _matmul_grad_b(g, out, a, b):
    if _shared_matrix(b.shape, g):
        # sum_i a_i^T @ g_i = (a's rows stacked)^T @ (g's rows stacked).
        m, k, n = g.shape[-2], a.shape[-1], g.shape[-1]
        depth = math.prod(g.shape[:-2]) * m
        rows = a.expand(*g.shape[:-2], m, k).reshape(depth, k)
        return rows.transpose(-1, -2).matmul(g.reshape(depth, n)).reshape(b.shape)
    return unbroadcast(a.transpose(-1, -2).matmul(g), b.shape)


register(Primitive(
    "matmul", "contraction", _matmul_infer, np.matmul,
    vjp=(_matmul_grad_a, _matmul_grad_b), saves=(0, 1)))


def conv_out_size(size, kernel, stride, dilation) -> int:
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def _conv2d_infer(x: TensorType, w: TensorType, stride, dilation) -> TensorType:
    if len(x.shape) != 4 or len(w.shape) != 4 or x.dtype != w.dtype \
            or not x.dtype.is_floating_point or x.dtype in HALF:
        raise op_error("conv2d", "expects a 4-D input (N, C, H, W) and a 4-D weight "
                                 "(O, C, KH, KW) of one dtype, float32 or float64 (the front "
                                 "end computes float16 and bfloat16 in float32)", x, w)
    if x.shape[1] != w.shape[1]:
        raise op_error("conv2d", f"input has {x.shape[1]} channels but the weight expects "
                                 f"{w.shape[1]}", x, w)
    out_hw = [conv_out_size(x.shape[2 + i], w.shape[2 + i], stride[i], dilation[i])
              for i in range(2)]
    if min(out_hw) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise op_error("conv2d", "kernel size can't be greater than the (padded) input size",
                       x, w)
    return TensorType((x.shape[0], w.shape[0], *out_hw), x.dtype)


def _conv2d_impl(x, w, stride, dilation):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (conv_out_size(s, k, st, d) for s, k, st, d in
              zip((h, wd), (kh, kw), stride, dilation))
    sn, sc, sh, sw = x.strides
    windows = np.lib.stride_tricks.as_strided(
        x, (n, c, kh, kw, oh, ow),
        (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1]),
        writeable=False)
    out = np.tensordot(w, windows, axes=((1, 2, 3), (1, 2, 3)))   # (O, N, OH, OW)
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3))


def _conv2d_input_grad(g, out, x, w, stride, dilation):
    # col2im: the gradient of each window's columns is one batched product, w^T @ g
    # (N, C*KH*KW, P*Q); each kernel offset's plane is then placed where it was read
    # (a pad: every stride-th row from its offset) and the planes are summed.  Less
    # work than a convolution of the padded, zero-interleaved gradient, which
    # multiplies its borders and interleaved zeros too.
    n, o, p, q = g.shape
    _, c, kh, kw = w.shape
    cols = w.reshape(o, c * kh * kw).transpose(0, 1).matmul(g.reshape(n, o, p * q))
    cols = cols.reshape(n, c, kh, kw, p, q)
    dx = None
    for i in range(kh):
        for j in range(kw):
            plane = cols._slice([0, 0, i, j, 0, 0], [n, c, i + 1, j + 1, p, q],
                                [1] * 6).reshape(n, c, p, q)
            top, left = i * dilation[0], j * dilation[1]
            plane = plane._pad([(0, 0, 0), (0, 0, 0),
                                (top, x.shape[2] - top - (p - 1) * stride[0] - 1,
                                 stride[0] - 1),
                                (left, x.shape[3] - left - (q - 1) * stride[1] - 1,
                                 stride[1] - 1)], 0)
            dx = plane if dx is None else dx + plane
    return dx


def _conv2d_weight_grad(g, out, x, w, stride, dilation):
    # Correlate the input with the gradient: stride and dilation swap roles.
    dw = x.transpose(0, 1)._conv2d(g.transpose(0, 1), dilation, stride)   # (C, O, >=KH, >=KW)
    kh, kw = w.shape[2:]
    if dw.shape[2:] != (kh, kw):
        dw = dw._slice([0, 0, 0, 0], [dw.shape[0], dw.shape[1], kh, kw], [1, 1, 1, 1])
    return dw.transpose(0, 1)


register(Primitive(
    "conv2d", "contraction", _conv2d_infer, _conv2d_impl,
    vjp=(_conv2d_input_grad, _conv2d_weight_grad), saves=(0, 1),
    attrs=("stride", "dilation")))
