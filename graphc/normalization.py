"""Normalization functions of ``torch.nn.functional`` besides ``layer_norm`` and
``batch_norm`` (which live in ``graphc.composite``): ``instance_norm``, ``group_norm``,
``rms_norm`` and ``local_response_norm``.

Each is a composite of tensor functions, with PyTorch's statistics (biased variance to
normalise, unbiased variance for running estimates) and PyTorch's error messages.
"""
from __future__ import annotations

import math

import numpy as np

from graphc import autograd
from graphc import functional as F


def _shape_text(shape) -> str:
    return f"torch.Size({list(shape)})"


def _affine(out, weight, bias, shape):
    """out * weight + bias, each reshaped to ``shape`` (a channel vector to (1, C, 1...))."""
    if weight is not None:
        out = out * weight.reshape(shape)
    return out + bias.reshape(shape) if bias is not None else out


def _normalise(input, axes, eps):
    """(x - mean) / sqrt(biased var + eps) over ``axes``, with the mean and variance."""
    mu = input.mean(axes, keepdim=True)
    centered = input - mu
    var = (centered * centered).mean(axes, keepdim=True)
    return centered * F.rsqrt(var + eps), mu, var


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Normalise each (sample, channel) over its spatial dims; with ``use_input_stats``
    and running statistics given, update them in place with the batch average of the
    instance means and unbiased variances."""
    channel_shape = (1, -1) + (1,) * (input.dim() - 2)
    axes = tuple(range(2, input.dim()))
    if not use_input_stats:
        if running_mean is None:
            raise RuntimeError("Expected running_mean and running_var to be defined when "
                               "use_input_stats is false")
        out = (input - running_mean.reshape(channel_shape)) * F.rsqrt(
            running_var.reshape(channel_shape) + eps)
        return _affine(out, weight, bias, channel_shape)
    n = math.prod(input.shape[2:])
    if n == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input "
                         f"size {_shape_text(input.shape)}")
    out, mu, var = _normalise(input, axes, eps)
    if running_mean is not None and n:
        with autograd.no_grad():
            batch_mean = mu.detach().reshape(input.shape[:2]).mean(0)
            batch_var = var.detach().reshape(input.shape[:2]).mean(0) * (n / (n - 1))
            running_mean.mul_(1 - momentum).add_(batch_mean * momentum)
            running_var.mul_(1 - momentum).add_(batch_var * momentum)
    return _affine(out, weight, bias, channel_shape)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise over each group of ``C / num_groups`` channels and the spatial dims."""
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{input.dim()}")
    n, c = input.shape[:2]
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(input.shape)} and "
                           f"num_groups={num_groups}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and (p.dim() != 1 or p.numel() != c):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number "
                               f"of channels in input, but got {name} of shape "
                               f"{list(p.shape)} and input of shape {list(input.shape)}")
    if n * c // num_groups * math.prod(input.shape[2:]) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {[n * c // num_groups, num_groups] + list(input.shape[2:])}")
    grouped = input.reshape(n, num_groups, c // num_groups * math.prod(input.shape[2:]))
    out = _normalise(grouped, (2,), eps)[0].reshape(input.shape)
    return _affine(out, weight, bias, (1, -1) + (1,) * (input.dim() - 2))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) over the trailing ``normalized_shape`` dims, times
    ``weight``; eps defaults to the dtype's machine epsilon."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) \
        else tuple(normalized_shape)
    if tuple(input.shape[input.dim() - len(shape):]) != shape or len(shape) > input.dim():
        raise RuntimeError(f"rms_norm: Given normalized_shape={list(shape)}, expected input "
                           f"with shape "
                           f"[*{', '.join(str(s) for s in shape)}], but got input of size"
                           f"{list(input.shape)}")
    if eps is None:
        eps = float(np.finfo(input.dtype.np).eps)
    axes = tuple(range(input.dim() - len(shape), input.dim()))
    out = input * F.rsqrt((input * input).mean(axes, keepdim=True) + eps)
    return out * weight if weight is not None else out


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha * mean of x^2 over ``size`` neighbouring channels)^beta, the window
    zero-padded by size // 2 channels before and (size - 1) // 2 after."""
    if input.dim() < 3:
        raise ValueError(f"Expected 3D or higher dimensionality                          "
                         f"input (got {input.dim()} dimensions)")
    if input.numel() == 0:
        return input
    channels = input.shape[1]
    widths = [(0, 0, 0)] * input.dim()
    widths[1] = (size // 2, (size - 1) // 2, 0)
    squares = F._pad(input * input, widths, 0.0)
    window = F.narrow(squares, 1, 0, channels)
    for i in range(1, size):
        window = window + F.narrow(squares, 1, i, channels)
    return input / ((window / size) * alpha + k) ** beta
