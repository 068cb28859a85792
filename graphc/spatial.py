"""Spatial composites: convolution, pooling, padding, folding, resampling and shuffles
over (N, C, *spatial) tensors, with PyTorch's arguments, defaults, shapes and errors.

Everything here is built from tensor functions, so it gets eager execution, autograd,
tracing, fusion and every backend for free.  Three building blocks carry it:

- ``conv2d`` (the primitive; stride and dilation, no padding) for ungrouped
  convolution; 1-d convolution is 2-d with a height of 1, and transposed convolution
  is a convolution of the zero-interleaved (``pad`` with interior), padded input with
  the flipped, transposed weight.
- Windows: one strided slice per offset in the window (their gradients are pads),
  summed or stacked and reduced for pooling; adaptive pooling reshapes where windows
  tile a dim and gathers with a constant index matrix where they do not.  Grouped and
  3-d convolution are the stacked slices (im2col) times the weight in one batched
  ``matmul``; ``unfold`` is the same stack, ``fold`` its adjoint (``index_add``).
- Taps: resampling is a weighted sum of ``index_select``s with constant indices and
  weights, one spatial dim at a time.
"""
from __future__ import annotations

import functools
import itertools
import math
import warnings

import numpy as np

from graphc import creation, dtypes
from graphc import functional as F
from graphc.amp import cast_inputs, suspended
from graphc.composite import _rounded_once
from graphc.tensor import Tensor


def _tuple(value, n: int) -> tuple:
    """An int or a sequence as an n-tuple (a one-element sequence is repeated)."""
    if isinstance(value, (tuple, list)):
        return tuple(value) * n if len(value) == 1 else tuple(value)
    return (value,) * n


def _pair(value) -> tuple:
    return _tuple(value, 2)


def _shape_text(sizes) -> str:
    return " x ".join(str(s) for s in sizes)


def _constant(array: np.ndarray) -> Tensor:
    return creation.tensor(array)


def _pad_or_crop(x, widths, value=0):
    """``widths``: one (low, high, interior) per dim; negative low/high crop."""
    if any(lo > 0 or hi > 0 or inner for lo, hi, inner in widths):
        x = F._pad(x, [(max(lo, 0), max(hi, 0), inner) for lo, hi, inner in widths], value)
    if any(lo < 0 or hi < 0 for lo, hi, _ in widths):
        x = F._slice(x, [max(-lo, 0) for lo, _, _ in widths],
                     [d - max(-hi, 0) for d, (_, hi, _) in zip(x.shape, widths)],
                     [1] * x.dim())
    return x


def _pad_spatial(x, pads, value=0):
    """Pad the last len(pads) dims by (low, high) pairs, first dim first."""
    lead = [(0, 0, 0)] * (x.dim() - len(pads))
    return _pad_or_crop(x, lead + [(lo, hi, 0) for lo, hi in pads], value)


# ---- windows ---------------------------------------------------------------------------------
def _window_slices(x, windows):
    """One strided slice of x per offset in a regular window (row-major over the spatial
    dims), each shaped (..., *outputs); ``windows`` are (outputs, kernel, stride,
    dilation) per spatial dim.  A reduction over them is one pointwise kernel, and their
    gradients are pads."""
    lead = x.dim() - len(windows)
    steps = [1] * lead + [s for _, _, s, _ in windows]
    slices = []
    for offsets in itertools.product(*(range(k) for _, k, _, _ in windows)):
        starts = [0] * lead + [j * d for j, (_, _, _, d) in zip(offsets, windows)]
        stops = list(x.shape[:lead]) + [j * d + s * (out - 1) + 1 for j, (out, _, s, d)
                                        in zip(offsets, windows)]
        slices.append(F._slice(x, starts, stops, steps))
    return slices


def _tiled_windows(x, windows):
    """(..., *spatial) -> (..., *outputs, window size): the windows of ``_window_slices``
    (the same order) when they tile the dims (stride == kernel, dilation 1), by reshapes
    and a permute: their gradient is the same index map back, one load per element, not
    a sum of one padded tensor per window offset."""
    lead = x.dim() - len(windows)
    for i, (out, kernel, _, _) in enumerate(windows):
        dim = lead + 2 * i
        if x.shape[dim] != out * kernel:
            x = F.narrow(x, dim, 0, out * kernel)
        x = F.unflatten(x, dim, (out, kernel))
    spatial = range(lead, x.dim(), 2)
    x = x.permute(*range(lead), *spatial, *(d + 1 for d in spatial))
    return x.reshape(tuple(x.shape[:lead + len(windows)]) + (-1,))


def _adaptive_windows(x, windows):
    """(..., *spatial) -> (..., out1, k1, out2, k2, ...): a reshape where windows tile the
    dim (a regular window), a gather with the index matrix of irregular windows."""
    lead = x.dim() - len(windows)
    for i, window in enumerate(windows):
        dim = lead + 2 * i
        if isinstance(window, np.ndarray):
            picked = F.index_select(x, dim, _constant(window.reshape(-1).astype(np.int64)))
            x = F.unflatten(picked, dim, window.shape)
        else:
            out, kernel = window[:2]
            x = F.unflatten(F.narrow(x, dim, 0, out * kernel), dim, (out, kernel))
    return x


def _window_index(window) -> np.ndarray:
    """A window's index matrix (outputs, offsets)."""
    if isinstance(window, np.ndarray):
        return window
    out, kernel, stride, dilation = window
    return np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation


def _flat_window_index(sizes, indices) -> np.ndarray:
    """Each window element's flat position in the unpadded spatial dims (-1 in padding),
    shaped (*outputs, window size); ``indices`` index the padded dims, ``sizes`` are
    their (low padding, unpadded size)."""
    nd = len(indices)
    flat, valid = np.zeros((1,) * 2 * nd, np.int64), np.ones((1,) * 2 * nd, bool)
    for i, ((low, size), index) in enumerate(zip(sizes, indices)):
        shape = [1] * 2 * nd
        shape[i], shape[nd + i] = index.shape
        pos = (index - low).reshape(shape)
        flat, valid = flat * size + pos, valid & (pos >= 0) & (pos < size)
    return np.where(valid, flat, -1).reshape(*(ix.shape[0] for ix in indices), -1)


def _outer(counts) -> np.ndarray:
    """The product of per-dim window sizes over the output grid."""
    return functools.reduce(np.multiply.outer, counts)


# ---- padding ---------------------------------------------------------------------------------
_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _reflect_index(n, lo, hi, dim, shape):
    if max(lo, hi) >= n:
        raise RuntimeError(f"pad: Padding size should be less than the corresponding input "
                           f"dimension, but got: padding ({lo}, {hi}) at dimension {dim} of "
                           f"input {list(shape)}")
    pos = np.abs(np.arange(-lo, n + hi))
    return np.where(pos < n, pos, 2 * (n - 1) - pos)


def _replicate_index(n, lo, hi, dim, shape):
    if n == 0:
        raise RuntimeError(f"pad: cannot replicate the empty dimension {dim} of input "
                           f"{list(shape)}")
    return np.clip(np.arange(-lo, n + hi), 0, n - 1)


def _circular_index(n, lo, hi, dim, shape):
    """PyTorch crops (negative widths) first, then wraps the cropped dim (where its wrap
    would go round more than once PyTorch reads memory it never wrote: an error here)."""
    start, stop = max(-lo, 0), n - max(-hi, 0)
    if max(lo, hi) > stop - start:
        raise RuntimeError(f"pad: Padding value causes wrapping around more than once "
                           f"(padding ({lo}, {hi}) of dimension {dim} of input "
                           f"{list(shape)}).")
    return start + np.arange(-max(lo, 0), stop - start + max(hi, 0)) % max(stop - start, 1)


_SOURCE_INDEX = {"reflect": _reflect_index, "replicate": _replicate_index,
                 "circular": _circular_index}


def _pad_pairs(input, pad) -> list:
    """F.pad's flat (low, high) list, last dim first, as pairs for the padded dims in
    order."""
    pad = list(pad)
    if len(pad) % 2:
        raise RuntimeError(f"pad: Padding length must be divisible by 2, got {len(pad)}")
    if len(pad) // 2 > input.dim():
        raise RuntimeError(f"pad: Padding length should be less than or equal to two times "
                           f"the input dimension but got padding length {len(pad)} and input "
                           f"of dimension {input.dim()}")
    return [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)][::-1]


def _constant_pad(input, pairs, value):
    for i, (lo, hi) in enumerate(pairs):
        size = input.shape[input.dim() - len(pairs) + i]
        if min(size + lo + hi, size + min(lo, 0) + min(hi, 0)) < 0:   # crops come first
            raise RuntimeError(f"pad: the padding ({lo}, {hi}) makes dimension "
                               f"{input.dim() - len(pairs) + i} of input "
                               f"{list(input.shape)} negative")
    return _pad_spatial(input, pairs, value)


def constant_pad_nd(input, pad, value=0):
    """torch.constant_pad_nd: F.pad in constant mode."""
    return _constant_pad(input, _pad_pairs(input, pad), value)


def pad(input, pad, mode="constant", value=None):
    """F.pad: ``pad`` lists (low, high) pairs starting from the last dim; negative
    widths crop."""
    pairs = _pad_pairs(input, pad)
    if mode not in _PAD_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode == "constant":
        return _constant_pad(input, pairs, 0 if value is None else value)
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    spatial = len(pairs)
    if spatial > 3 or input.dim() not in (spatial + 1, spatial + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.dim()}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    # One gather per dim with the source index of every output position: chained pads
    # stay one index lookup each when later reads are fused through them.
    sizes = [size + lo + hi for size, (lo, hi) in zip(input.shape[-spatial:], pairs)]
    # PyTorch: reflect and replicate refuse when every padded dim would be empty.
    if min(sizes) < 0 or (mode != "circular" and max(sizes) < 1):
        raise RuntimeError(f"pad: input {list(input.shape)} is too small: padding {pad} in "
                           f"mode {mode} gives sizes {sizes}")
    out = input
    for i, (lo, hi) in enumerate(pairs):
        dim = input.dim() - spatial + i
        index = _SOURCE_INDEX[mode](input.shape[dim], lo, hi, dim, input.shape)
        out = F.index_select(out, dim, _constant(index.astype(np.int64)))
    return out


# ---- convolution -----------------------------------------------------------------------------
def _check_conv_input(op, nd, input, weight):
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"{op}: Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) "
                           f"input to {op}, but got input of size: {list(input.shape)}")
    if weight.dim() != nd + 2:
        raise RuntimeError(f"{op}: Expected {nd + 2}-dimensional weight, but got weight of "
                           f"size {list(weight.shape)}")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"{op}: expected scalar type {input.dtype.name} but found "
                           f"{weight.dtype.name} (input {list(input.shape)}, weight "
                           f"{list(weight.shape)})")
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"{op}: {input.dtype.name} input {list(input.shape)} is not "
                                  f"supported by graphc; convert input and weight to a "
                                  f"floating dtype")


def _check_bias(op, weight, bias, out_channels):
    if bias is not None and bias.dtype != weight.dtype:
        raise RuntimeError(f"{op}: Input type ({weight.dtype.name}) and bias type "
                           f"({bias.dtype.name}) should be the same")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != out_channels):
        raise RuntimeError(f"{op}: Given weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {out_channels} elements, but got bias of size "
                           f"{list(bias.shape)} instead")


def _check_stride_dilation(op, stride, dilation):
    if min(stride) <= 0:
        raise RuntimeError(f"{op}: non-positive stride is not supported, got stride={stride}")
    if min(dilation) <= 0:
        raise RuntimeError(f"{op}: dilation should be greater than zero, got dilation={dilation}")


def _conv_pads(op, padding, nd, kernel, stride, dilation):
    """(low, high) per spatial dim for an int/tuple/'same'/'valid' padding."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding != "same":
            raise RuntimeError(f"{op}: Invalid padding string: '{padding}'")
        if any(s != 1 for s in stride):
            raise RuntimeError(f"{op}: padding='same' is not supported for strided "
                               f"convolutions")
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return [(t // 2, t - t // 2) for t in totals]
    padding = _tuple(padding, nd)
    if min(padding) < 0:
        raise RuntimeError(f"{op}: negative padding is not supported, got padding={padding}")
    return [(p, p) for p in padding]


def _autocast(conv):
    """For ``conv(op, nd, input, weight, bias, ...)``: autocast's casts, then float16 and
    bfloat16 computed in float32 and rounded once, as PyTorch's CPU convolutions do (the
    bias included)."""
    @functools.wraps(conv)
    def run(op, nd, input, weight, bias, *rest):
        input, weight, bias = cast_inputs(op, input, weight, bias)
        if input.dtype not in dtypes.HALF:
            return conv(op, nd, input, weight, bias, *rest)
        with suspended():
            wide = [t if t is None else F.cast(t, dtypes.float32) for t in (input, weight, bias)]
            return F.cast(conv(op, nd, *wide, *rest), input.dtype)
    return run


@_autocast
def _conv(op, nd, input, weight, bias, stride, padding, dilation, groups):
    _check_conv_input(op, nd, input, weight)
    if input.dim() == nd + 1:
        return _conv(op, nd, input.unsqueeze(0), weight, bias, stride, padding, dilation,
                     groups).squeeze(0)
    stride, dilation = _tuple(stride, nd), _tuple(dilation, nd)
    _check_stride_dilation(op, stride, dilation)
    if groups <= 0:
        raise RuntimeError(f"{op}: non-positive groups is not supported, got groups={groups}")
    out_channels, kernel = weight.shape[0], tuple(weight.shape[2:])
    if out_channels % groups:
        raise RuntimeError(f"{op}: Given groups={groups}, expected weight to be divisible by "
                           f"{groups} at dimension 0, but got weight of size "
                           f"[{list(weight.shape)}] instead")
    if input.shape[1] != weight.shape[1] * groups:
        raise RuntimeError(f"{op}: Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{list(input.shape)} to have "
                           f"{weight.shape[1] * groups} channels, but got {input.shape[1]} "
                           f"channels instead")
    _check_bias(op, weight, bias, out_channels)
    pads = _conv_pads(op, padding, nd, kernel, stride, dilation)
    padded = [s + lo + hi for s, (lo, hi) in zip(input.shape[2:], pads)]
    reach = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    if any(p < r for p, r in zip(padded, reach)):
        raise RuntimeError(f"{op}: Calculated padded input size per channel: "
                           f"({_shape_text(padded)}). Kernel size: ({_shape_text(reach)}). "
                           f"Kernel size can't be greater than actual input size")
    x = _pad_spatial(input, pads)
    if nd == 1:
        x, w = x.unsqueeze(2), weight.unsqueeze(2)
        stride, dilation = (1,) + stride, (1,) + dilation
    else:
        w = weight
    out = F._conv2d(x, w, stride, dilation) if groups == 1 and nd < 3 \
        else _im2col_conv(x, w, stride, dilation, groups)
    if nd == 1:
        out = out.squeeze(2)
    return out + bias.reshape((1, -1) + (1,) * nd) if bias is not None else out


def _im2col_conv(x, weight, stride, dilation, groups):
    """Windows (N, G, C/G * K, L) times the weight (G, O/G, C/G * K): one batched matmul,
    whatever the number of groups or spatial dims (grouped and 3-d convolution)."""
    n, c = x.shape[:2]
    o, kernel = weight.shape[0], tuple(weight.shape[2:])
    outs = [(size - d * (k - 1) - 1) // s + 1
            for size, k, s, d in zip(x.shape[2:], kernel, stride, dilation)]
    cols = F.stack(_window_slices(x, list(zip(outs, kernel, stride, dilation))), 2)
    cols = cols.reshape(n, groups, (c // groups) * math.prod(kernel), math.prod(outs))
    out = F.matmul(weight.reshape(groups, o // groups, -1), cols)
    return out.reshape(n, o, *outs)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation (N, C, L) * (O, C/groups, K)."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation (N, C, H, W) * (O, C/groups, KH, KW)."""
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D cross-correlation (N, C, D, H, W) * (O, C/groups, KD, KH, KW)."""
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


@_autocast
def _conv_transpose(op, nd, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    _check_conv_input(op, nd, input, weight)
    if input.dim() == nd + 1:
        return _conv_transpose(op, nd, input.unsqueeze(0), weight, bias, stride, padding,
                               output_padding, groups, dilation).squeeze(0)
    stride, dilation = _tuple(stride, nd), _tuple(dilation, nd)
    padding, output_padding = _tuple(padding, nd), _tuple(output_padding, nd)
    _check_stride_dilation(op, stride, dilation)
    if min(padding) < 0:
        raise RuntimeError(f"{op}: negative padding is not supported, got padding={padding}")
    if min(output_padding) < 0:
        raise RuntimeError(f"{op}: negative output_padding is not supported, got "
                           f"output_padding={output_padding}")
    if any(op_ >= s and op_ >= d for op_, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeError(f"{op}: output padding must be smaller than either stride or dilation, "
                           f"but got output_padding={output_padding}, stride={stride}, "
                           f"dilation={dilation}")
    in_channels, kernel = weight.shape[0], tuple(weight.shape[2:])
    if groups <= 0 or in_channels % groups:
        raise RuntimeError(f"{op}: Given groups={groups}, expected weight to be divisible by "
                           f"{groups} at dimension 0, but got weight of size "
                           f"[{list(weight.shape)}] instead")
    if input.shape[1] != in_channels:
        raise RuntimeError(f"{op}: Given transposed=1, weight of size {list(weight.shape)}, "
                           f"expected input{list(input.shape)} to have {in_channels} "
                           f"channels, but got {input.shape[1]} channels instead")
    out_channels = weight.shape[1] * groups
    _check_bias(op, weight, bias, out_channels)
    sizes = input.shape[2:]
    outs = [(size - 1) * s - 2 * p + d * (k - 1) + op_ + 1 for size, s, p, d, k, op_
            in zip(sizes, stride, padding, dilation, kernel, output_padding)]
    if min(outs) < 1:
        raise RuntimeError(f"{op}: Given input size per channel: ({_shape_text(sizes)}). "
                           f"Calculated output size per channel: ({_shape_text(outs)}). "
                           f"Output size is too small")
    reach = [d * (k - 1) for d, k in zip(dilation, kernel)]
    x = _pad_or_crop(input, [(0, 0, 0), (0, 0, 0)] + [
        (r - p, r - p + op_, s - 1) for r, p, op_, s in zip(reach, padding, output_padding,
                                                           stride)])
    flipped = F.flip(weight, *range(2, nd + 2))
    w = flipped.reshape((groups, in_channels // groups, weight.shape[1]) + kernel)
    w = w.transpose(1, 2).reshape((out_channels, in_channels // groups) + kernel)
    return _conv(op, nd, x, w, bias, 1, 0, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """The gradient of conv1d with respect to its input, as a layer: (N, C, L) with a
    weight (C, O/groups, K)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """The gradient of conv2d with respect to its input, as a layer: (N, C, H, W) with a
    weight (C, O/groups, KH, KW)."""
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """The gradient of conv3d with respect to its input, as a layer: (N, C, D, H, W) with
    a weight (C, O/groups, KD, KH, KW)."""
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


# ---- pooling ---------------------------------------------------------------------------------
def _pool_output_size(size, kernel, stride, pad, dilation, ceil_mode) -> int:
    reach = dilation * (kernel - 1) + 1
    out = (size + 2 * pad - reach + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1           # the last window must start inside the input or left padding
    return out


def _pool_setup(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode):
    """Checks; the padded input's (low, high) pads and the windows."""
    if input.dim() not in (nd + 1, nd + 2) or input.numel() == 0:
        raise RuntimeError(f"{op}: non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor "
                           f"expected for input, got {input.dtype.name}{list(input.shape)}")
    kernel = _tuple(kernel_size, nd)
    stride = kernel if stride is None or stride == [] or stride == () else _tuple(stride, nd)
    padding, dilation = _tuple(padding, nd), _tuple(dilation, nd)
    if len(kernel) != nd or len(stride) != nd or len(padding) != nd or len(dilation) != nd:
        raise RuntimeError(f"{op}: kernel_size, stride, padding and dilation must be single "
                           f"ints or {nd}-tuples, got {kernel}, {stride}, {padding}, "
                           f"{dilation}")
    if min(kernel) <= 0:
        raise RuntimeError(f"{op}: kernel_size must be greater than zero, but got {kernel}")
    if min(stride) <= 0:
        raise RuntimeError(f"{op}: stride should not be zero, got {stride}")
    if min(dilation) <= 0:
        raise RuntimeError(f"{op}: dilation should be greater than zero, got {dilation}")
    for k, p, d in zip(kernel, padding, dilation):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"{op}: pad should be at most half of effective kernel size, "
                               f"but got pad={p}, kernel_size={k} and dilation={d}")
        if p > k // 2:
            raise RuntimeError(f"{op}: pad should be smaller than or equal to half of kernel "
                               f"size, but got pad={padding}, kernel_size={kernel}")
    sizes = input.shape[-nd:]
    outs = [_pool_output_size(*args, ceil_mode)
            for args in zip(sizes, kernel, stride, padding, dilation)]
    if min(outs) < 1:
        channels = input.shape[-nd - 1]
        raise RuntimeError(f"{op}: Given input size: ({'x'.join(map(str, (channels,) + sizes))}"
                           f"). Calculated output size: "
                           f"({'x'.join(map(str, [channels] + outs))}). Output size is too small")
    pads = [(p, max(p, (out - 1) * s + d * (k - 1) + 1 - size - p))
            for size, out, k, s, p, d in zip(sizes, outs, kernel, stride, padding, dilation)]
    return pads, list(zip(outs, kernel, stride, dilation)), (kernel, stride, padding, outs)


def _lowest(dtype):
    return -math.inf if dtype.is_floating_point else int(np.iinfo(dtype.np).min)


def _window_max(input, pads, windows, return_indices):
    """The maximum over the stacked window slices: the first maximum gets the gradient and
    gives the index, as in PyTorch's scan."""
    nd = len(windows)
    if all(pad == (0, 0) for pad in pads) and all(s == k and d == 1 for _, k, s, d in windows):
        stacked = _tiled_windows(input, windows)
    else:
        stacked = F.stack(_window_slices(_pad_spatial(input, pads, _lowest(input.dtype)),
                                         windows), -1)
    values, picked = stacked.max(-1)
    if not return_indices:
        return values
    sizes = [(lo, size) for (lo, _), size in zip(pads, input.shape[-nd:])]
    indices = [_window_index(w) for w in windows]
    return values, _window_argmax_index(picked, _flat_window_index(sizes, indices),
                                        _scan_starts(sizes, indices))


def _window_argmax_index(picked, flat, starts):
    """The flat input position of each window's picked element; where that is padding (a
    window whose values all equal the padding's, the lowest value), PyTorch's scan start:
    the window's first position at or after the input's start in every dim."""
    index = F.gather(F.expand(_constant(flat), tuple(picked.shape) + flat.shape[-1:]), -1,
                     picked.unsqueeze(-1)).squeeze(-1)
    return F.where(index >= 0, index, _constant(starts))


def _scan_starts(sizes, indices) -> np.ndarray:
    """Per window, the flat position of its first element at or after the start of the
    input in every dim (PyTorch's initial max index); ``indices`` index the padded dims,
    ``sizes`` are their (low padding, unpadded size)."""
    starts = np.zeros((1,) * len(indices), np.int64)
    for i, ((low, size), index) in enumerate(zip(sizes, indices)):
        pos = index - low
        first = np.where(pos >= 0, pos, np.iinfo(np.int64).max).min(-1)
        shape = [1] * len(indices)
        shape[i] = index.shape[0]
        starts = starts * size + first.reshape(shape)
    return starts


def _max_pool(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices):
    pads, windows, _ = _pool_setup(op, nd, input, kernel_size, stride, padding, dilation,
                                   ceil_mode)
    return _window_max(input, pads, windows, return_indices)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=False):
    """max_pool1d's (values, indices), whatever ``return_indices`` says (as PyTorch)."""
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=False):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=False):
    return max_pool3d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def _avg_divisor(size, out, kernel, stride, pad, count_include_pad) -> np.ndarray:
    """PyTorch's per-output window size along one dim: windows are clipped to the
    padded input (count_include_pad) or to the input itself."""
    start = np.arange(out) * stride - pad
    end = np.minimum(start + kernel, size + pad)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


def _avg_pool(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"{op}: not implemented for {input.dtype.name} input "
                                  f"{list(input.shape)}")
    return _avg_pool_float(input, op, nd, kernel_size, stride, padding, ceil_mode,
                           count_include_pad, divisor_override)


@_rounded_once
def _avg_pool_float(input, op, nd, kernel_size, stride, padding, ceil_mode,
                    count_include_pad, divisor_override):
    """float16 and bfloat16 are summed in float32 and rounded once, as PyTorch's kernel."""
    pads, windows, (kernel, stride, padding, outs) = _pool_setup(
        op, nd, input, kernel_size, stride, padding, 1, ceil_mode)
    sums = functools.reduce(F.add, _window_slices(_pad_spatial(input, pads), windows))
    if divisor_override is not None:
        if divisor_override == 0:
            raise RuntimeError(f"{op}: divisor must be not zero")
        return sums / divisor_override
    divisor = _outer([_avg_divisor(*args, count_include_pad) for args in
                      zip(input.shape[-nd:], outs, kernel, stride, padding)])
    return sums / _constant(divisor.astype(input.dtype.np))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def _lp_pool(nd, input, norm_type, kernel_size, stride, ceil_mode):
    """PyTorch's formula: (sum over the window of x^p)^(1/p) via the average pool."""
    pooled = _avg_pool(f"lp_pool{nd}d", nd, input.pow(norm_type), kernel_size, stride, 0,
                       ceil_mode, True, None)
    size = math.prod(_tuple(kernel_size, nd))
    return (F.sign(pooled) * F.relu(F.abs(pooled))).mul(size).pow(1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


def _adaptive_setup(op, nd, input, output_size):
    """The windows of adaptive pooling in an input padded by one element at the high end
    of each spatial dim (where the shorter of irregular windows point), and the window
    sizes.  Windows that tile the dim are regular."""
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"{op}(): Expected {nd + 1}D or {nd + 2}D tensor, but got "
                           f"{list(input.shape)}")
    sizes = input.shape[-nd:]
    if 0 in sizes:
        raise RuntimeError(f"{op}(): Expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {list(input.shape)}")
    outs = _tuple(output_size, nd)
    if len(outs) != nd:
        raise RuntimeError(f"{op}(): output_size must be {nd} ints, got {output_size}")
    outs = [size if out is None else out for size, out in zip(sizes, outs)]
    if min(outs) < 0:
        raise RuntimeError(f"{op}(): output_size must be non-negative, got {outs}")
    windows, counts = [], []
    for size, out in zip(sizes, outs):
        starts = np.arange(out) * size // out
        ends = ((np.arange(out) + 1) * size + out - 1) // out
        counts.append(ends - starts)
        if out and size % out == 0:
            windows.append((out, size // out, size // out, 1))
            continue
        k = int((ends - starts).max()) if out else 1
        index = starts[:, None] + np.arange(k)[None, :]
        windows.append(np.where(index < ends[:, None], index, size))
    return windows, counts


def _adaptive_avg_pool(op, nd, input, output_size):
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"{op}: not implemented for {input.dtype.name} input "
                                  f"{list(input.shape)}")
    windows, counts = _adaptive_setup(op, nd, input, output_size)
    grouped = _adaptive_windows(_pad_spatial(input, [(0, 1)] * nd), windows)
    sums = grouped.sum(tuple(range(grouped.dim() - 2 * nd + 1, grouped.dim(), 2)))
    return sums / _constant(_outer(counts).astype(input.dtype.np))


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool3d", 3, input, output_size)


def _adaptive_max_pool(op, nd, input, output_size, return_indices):
    windows, _ = _adaptive_setup(op, nd, input, output_size)
    grouped = _adaptive_windows(_pad_spatial(input, [(0, 1)] * nd, _lowest(input.dtype)),
                                windows)
    lead = grouped.dim() - 2 * nd
    perm = (list(range(lead)) + [lead + 2 * i for i in range(nd)]
            + [lead + 2 * i + 1 for i in range(nd)])
    values, picked = F.flatten(F.permute(grouped, perm), lead + nd).max(-1)
    if not return_indices:
        return values
    sizes = [(0, size) for size in input.shape[-nd:]]
    indices = [_window_index(w) for w in windows]
    return values, _window_argmax_index(picked, _flat_window_index(sizes, indices),
                                        _scan_starts(sizes, indices))


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool3d", 3, input, output_size, return_indices)


def _max_unpool(op, nd, input, indices, kernel_size, stride, padding, output_size):
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"{op}: Input to max_unpooling{nd}d should be a {nd + 1}d or "
                           f"{nd + 2}d Tensor, but got a tensor with {input.dim()} dimensions.")
    if tuple(indices.shape) != tuple(input.shape):
        raise RuntimeError(f"{op}: Expected shape of indices to be same as that of the input "
                           f"tensor ({list(input.shape)}) but got indices tensor with shape: "
                           f"{list(indices.shape)}")
    kernel = _tuple(kernel_size, nd)
    stride = kernel if stride is None else _tuple(stride, nd)
    padding = _tuple(padding, nd)
    sizes = [(size - 1) * s - 2 * p + k for size, k, s, p
             in zip(input.shape[-nd:], kernel, stride, padding)]
    if output_size is not None:
        requested = list(output_size)[-nd:] if len(output_size) == nd + 2 \
            else list(output_size)
        if len(requested) != nd:
            raise ValueError(f"{op}: output_size should be a sequence containing {nd} or "
                             f"{nd + 2} elements, but it has a length of '{len(output_size)}'")
        for d, (size, default, s) in enumerate(zip(requested, sizes, stride)):
            if not default - s < size < default + s:
                raise ValueError(f'{op}: invalid output_size "{tuple(output_size)}" (dim {d} '
                                 f'must be between {default - s} and {default + s})')
        sizes = requested
    total = math.prod(sizes)
    flat_index = indices.flatten(-nd)
    if F.is_concrete(flat_index) and flat_index.numel():
        bad = [int(v) for v in (flat_index.amin(), flat_index.amax()) if not 0 <= v < total]
        if bad:
            raise RuntimeError(f"{op}: Found an invalid max index: {bad[0]} (output volumes "
                               f"are of size {'x'.join(map(str, sizes))})")
    lead = tuple(input.shape[:-nd])
    values = input.flatten(-nd)
    summed = F.scatter_add(creation.zeros(*lead, total, dtype=input.dtype), -1, flat_index,
                           values)
    hits = F.scatter_add(creation.zeros(*lead, total, dtype=input.dtype), -1, flat_index,
                         creation.ones_like(values))
    # PyTorch writes each value to its index (max pooling repeats an element where windows
    # share their maximum): the value is the mean of the equal values sent there, and the
    # gradient of every input element is the output gradient at its index.
    written = (summed / F.clamp(hits, min=1)).detach()
    return (summed - summed.detach() + written).reshape(*lead, *sizes)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding,
                       output_size)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=False):
    """adaptive_max_pool1d's (values, indices), whatever ``return_indices`` says."""
    return adaptive_max_pool1d(input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=False):
    return adaptive_max_pool2d(input, output_size, True)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=False):
    return adaptive_max_pool3d(input, output_size, True)


# ---- unfold / fold ---------------------------------------------------------------------------
def _fold_settings(kernel_size, dilation, padding, stride):
    kernel, dilation = _pair(kernel_size), _pair(dilation)
    padding, stride = _pair(padding), _pair(stride)
    if min(kernel) <= 0 or min(dilation) <= 0 or min(stride) <= 0 or min(padding) < 0:
        raise RuntimeError(f"kernel_size, dilation and stride must be positive and padding "
                           f"non-negative, got kernel_size={kernel}, dilation={dilation}, "
                           f"padding={padding}, stride={stride}")
    return kernel, dilation, padding, stride


def _blocks(op, sizes, kernel, dilation, padding, stride):
    blocks = [(size + 2 * p - d * (k - 1) - 1) // s + 1
              for size, k, d, p, s in zip(sizes, kernel, dilation, padding, stride)]
    if min(blocks) < 1:
        raise RuntimeError(f"{op}: Given input with spatial size {tuple(sizes)}, kernel_size="
                           f"{kernel}, dilation={dilation}, padding={padding}, calculated "
                           f"shape of the array of sliding blocks as {tuple(blocks)}, but its "
                           f"components must be at least one.")
    return blocks


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding blocks (N, C, H, W) -> (N, C * KH * KW, L), channel-major."""
    if input.dim() not in (3, 4):
        raise RuntimeError(f"unfold: Input Error: Only 3D or 4D input Tensors are supported "
                           f"(got {input.dim()}D)")
    if input.dim() == 3:
        return unfold(input.unsqueeze(0), kernel_size, dilation, padding, stride).squeeze(0)
    kernel, dilation, padding, stride = _fold_settings(kernel_size, dilation, padding, stride)
    blocks = _blocks("unfold", input.shape[2:], kernel, dilation, padding, stride)
    cols = F.stack(_window_slices(_pad_spatial(input, [(p, p) for p in padding]),
                                  list(zip(blocks, kernel, stride, dilation))), 2)
    n, c = input.shape[:2]
    return cols.reshape(n, c * math.prod(kernel), math.prod(blocks))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold: blocks (N, C * KH * KW, L) summed into (N, C, H, W)."""
    if input.dim() not in (2, 3):
        raise RuntimeError(f"fold: Input Error: Only unbatched (2D) or batched (3D) input "
                           f"Tensors are supported (got {input.dim()}D)")
    if input.dim() == 2:
        return fold(input.unsqueeze(0), output_size, kernel_size, dilation, padding,
                    stride).squeeze(0)
    kernel, dilation, padding, stride = _fold_settings(kernel_size, dilation, padding, stride)
    sizes = _pair(output_size)
    k_total = math.prod(kernel)
    if input.shape[1] % k_total:
        raise RuntimeError(f"fold: Expected size of input's dimension 1 to be divisible by the "
                           f"product of kernel_size, but got input.size(1)={input.shape[1]} "
                           f"and kernel_size={kernel}.")
    blocks = _blocks("fold", sizes, kernel, dilation, padding, stride)
    if input.shape[2] != math.prod(blocks):
        raise RuntimeError(f"fold: Given output_size={sizes}, kernel_size={kernel}, dilation="
                           f"{dilation}, padding={padding}, stride={stride}, expected size of "
                           f"input's dimension 2 to match the calculated number of sliding "
                           f"blocks {blocks[0]} * {blocks[1]} = {math.prod(blocks)}, but got "
                           f"input.size(2)={input.shape[2]}.")
    n, c = input.shape[0], input.shape[1] // k_total
    padded = [size + 2 * p for size, p in zip(sizes, padding)]
    rows, cols = (_window_index(window) for window in zip(blocks, kernel, stride, dilation))
    # target[kh, kw, bh, bw] = flat position in the padded output
    target = rows.T[:, None, :, None] * padded[1] + cols.T[None, :, None, :]
    out = creation.zeros(n, c, padded[0] * padded[1], dtype=input.dtype)
    out = F.index_add(out, 2, _constant(target.reshape(-1).astype(np.int64)),
                      input.reshape(n, c, -1))
    out = out.reshape(n, c, *padded)
    return _pad_spatial(out, [(-p, -p) for p in padding])


# ---- resampling ------------------------------------------------------------------------------
_INTERPOLATE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_INTERPOLATE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area",
                      "nearest-exact")


def _output_sizes(input, nd, size, scale_factor, recompute_scale_factor):
    """Output sizes and the scales the kernels see (None where derived from the sizes)."""
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (tuple, list)) and len(size) != nd:
            raise ValueError(f"Input and output must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{list(input.shape[2:])} and output size of {size}. Please "
                             f"provide input tensor in (N, C, d1, d2, ...,dK) format and "
                             f"output size in (o1, o2, ...,oK) format.")
        if recompute_scale_factor is not None and recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        return list(_tuple(size, nd)), [None] * nd
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if isinstance(scale_factor, (tuple, list)) and len(scale_factor) != nd:
        raise ValueError(f"Input and scale_factor must have the same number of spatial "
                         f"dimensions, but got input with spatial dimensions of "
                         f"{list(input.shape[2:])} and scale_factor of shape {scale_factor}. "
                         f"Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                         f"scale_factor in (s1, s2, ...,sK) format.")
    scales = [float(s) for s in _tuple(scale_factor, nd)]
    sizes = [math.floor(float(d) * s) for d, s in zip(input.shape[2:], scales)]
    return sizes, ([None] * nd if recompute_scale_factor else scales)


def _nearest_index(size, out, scale, exact, real, shortcuts) -> np.ndarray:
    """PyTorch's nearest source index, computed in the input's precision as its cpu
    kernels do.  Its 2-d 'nearest' kernel copies when the size is unchanged and halves
    the index when it doubles, whatever the scale_factor; the 1-d and 3-d kernels apply
    the scale (1.3 that leaves a size of 2 unchanged still moves elements)."""
    if shortcuts and out == size:
        return np.arange(out)
    if shortcuts and out == 2 * size:
        return np.arange(out) >> 1
    step = real(1.0 / scale) if scale is not None and scale > 0 else real(size) / real(out)
    dst = np.arange(out).astype(real)
    pos = (dst + real(0.5)) * step if exact else dst * step
    return np.minimum(np.floor(pos).astype(np.int64), size - 1)


def _source_scale(size, out, align_corners, scale, real):
    if align_corners:
        return real((size - 1) / (out - 1)) if out > 1 else real(0)
    return real(1.0 / scale) if scale is not None and scale > 0 else real(size) / real(out)


def _linear_taps(size, out, align_corners, scale, real):
    """Two (indices, weights) taps per output position (PyTorch's linear kernel)."""
    dst = np.arange(out)
    if size == out:
        return [(dst, np.ones(out, real))]
    step = _source_scale(size, out, align_corners, scale, real)
    src = step * dst.astype(real) if align_corners \
        else np.maximum(step * (dst.astype(real) + real(0.5)) - real(0.5), real(0))
    i0 = src.astype(np.int64)
    i1 = i0 + (i0 < size - 1)
    w1 = np.clip(src - i0.astype(real), real(0), real(1)).astype(real)
    return [(i0, (real(1) - w1).astype(real)), (i1, w1)]


def _cubic_taps(size, out, align_corners, scale, real):
    """Four (indices, weights) taps per output position (PyTorch's bicubic, A = -0.75)."""
    dst = np.arange(out).astype(real)
    step = _source_scale(size, out, align_corners, scale, real)
    src = step * dst if align_corners else step * (dst + real(0.5)) - real(0.5)
    base = np.floor(src).astype(np.int64)
    t = (src - base.astype(real)).astype(real)
    a = real(-0.75)

    def near(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
    return [(np.clip(base - 1 + i, 0, size - 1), w.astype(real))
            for i, w in enumerate(weights)]


def _resample(x, dim, taps):
    """sum over taps of weight * x[index] along ``dim`` (one tap: a plain gather)."""
    if len(taps) == 1 and np.all(taps[0][1] == 1):
        return F.index_select(x, dim, _constant(taps[0][0].astype(np.int64)))
    shape = [1] * x.dim()
    shape[dim] = -1
    out = None
    for index, weight in taps:
        term = F.index_select(x, dim, _constant(index.astype(np.int64))) \
            * _constant(weight.reshape(shape))
        out = term if out is None else out + term
    return out


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resampling of (N, C, *spatial) input, one spatial dim at a time."""
    nd = input.dim() - 2
    if mode not in _INTERPOLATE_MODES or not 1 <= nd <= 3:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {input.dim()}D) for the modes: nearest | linear | "
                                  f"bilinear | bicubic | trilinear | area | nearest-exact "
                                  f"(got {mode})")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif _INTERPOLATE_DIMS[mode] != nd:
        raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode needs "
                                  f"{_INTERPOLATE_DIMS[mode] + 2}D input")
    if antialias and (mode not in ("bilinear", "bicubic") or nd != 2):
        raise ValueError("interpolate: Anti-alias option is restricted to bilinear, bicubic, "
                         "and lanczos modes and requires a 4-D tensor as input")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported by graphc; "
                                  "use antialias=False")
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not implemented for "
                                  f"{input.dtype.name} input {list(input.shape)}")
    sizes, scales = _output_sizes(input, nd, size, scale_factor, recompute_scale_factor)
    if mode == "area":
        return _adaptive_avg_pool("interpolate", nd, input, sizes)
    if min(sizes) <= 0 or min(input.shape[2:]) <= 0:
        raise RuntimeError(f"interpolate: Input and output sizes should be greater than 0, "
                           f"but got input {list(input.shape[2:])} output {sizes}")
    real = np.dtype(input.dtype.np).type
    out = input
    for i, (in_size, out_size, scale) in enumerate(zip(input.shape[2:], sizes, scales)):
        if mode in ("nearest", "nearest-exact"):
            taps = [(_nearest_index(in_size, out_size, scale, mode == "nearest-exact", real,
                                    shortcuts=mode == "nearest" and nd == 2),
                     np.ones(out_size))]
        elif mode == "bicubic":
            taps = _cubic_taps(in_size, out_size, bool(align_corners), scale, real)
        else:
            taps = _linear_taps(in_size, out_size, bool(align_corners), scale, real)
        out = _resample(out, 2 + i, taps)
    return out


def _deprecated(name):
    warnings.warn(f"`nn.functional.{name}` is deprecated. Use `nn.functional.interpolate` "
                  f"instead.", stacklevel=3)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    _deprecated("upsample")
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    _deprecated("upsample_nearest")
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    _deprecated("upsample_bilinear")
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ---- shuffles --------------------------------------------------------------------------------
def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    r = upscale_factor
    if input.dim() < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but "
                           f"got input with {input.dim()} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                           f"divisible by the square of upscale_factor, but input.size(-3)={c} "
                           f"is not divisible by {r * r}")
    n = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = F.permute(x, list(range(n)) + [n, n + 3, n + 1, n + 4, n + 2])
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""
    r = downscale_factor
    if input.dim() < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but "
                           f"got input with {input.dim()} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    *lead, c, h, w = input.shape
    for name, size, index in (("height", h, -2), ("width", w, -1)):
        if size % r:
            raise RuntimeError(f"pixel_unshuffle expects {name} to be divisible by "
                               f"downscale_factor, but input.size({index})={size} is not "
                               f"divisible by {r}")
    n = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = F.permute(x, list(range(n)) + [n, n + 2, n + 4, n + 1, n + 3])
    return x.reshape(*lead, c * r * r, h // r, w // r)


def channel_shuffle(input, groups):
    """(N, G * K, *) -> channels interleaved as (N, K * G, *)."""
    if input.dim() < 3:
        raise RuntimeError(f"channel_shuffle expects input to have at least 3 dimensions, but "
                           f"got input with sizes {list(input.shape)}")
    if groups <= 0:
        raise RuntimeError(f"channel_shuffle: Number of groups to divide channels in must be "
                           f"positive. Value of groups:{groups}")
    c = input.shape[1]
    if c % groups:
        raise RuntimeError(f"channel_shuffle: Number of channels must be divisible by groups. "
                           f"Got {c} channels and {groups} groups.")
    x = input.reshape(input.shape[0], groups, c // groups, *input.shape[2:])
    return F.contiguous(x.transpose(1, 2)).reshape(input.shape)


__all__ = [
    "pad", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d",
    "avg_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d", "max_pool1d_with_indices",
    "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d_with_indices", "adaptive_max_pool3d_with_indices", "constant_pad_nd",
    "unfold", "fold",
    "interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle",
    "pixel_unshuffle", "channel_shuffle",
]
