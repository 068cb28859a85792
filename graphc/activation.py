"""The non-linear activations of ``torch.nn.functional`` that ``graphc.composite`` does
not already give, and the in-place spellings of all of them (``F.relu_``, ``elu_``...).

Each is a composite of tensor functions, so it runs eagerly, differentiates, traces
and compiles.  Where PyTorch's gradient at a kink differs from what the plain formula
would give, the docstring says which side PyTorch takes.  ``inplace=True`` writes the
result into the input (``composite._inplace_or``), as PyTorch does.
"""
from __future__ import annotations

import numpy as np

from graphc import composite, creation
from graphc import functional as F
from graphc.composite import _inplace_or

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _inside(input, low, high):
    """low < input < high: where clamps and shrinks pass gradient in PyTorch."""
    return (input > low).logical_and(input < high)


def threshold(input, threshold, value, inplace=False):
    """x where x > threshold, else ``value`` (gradient only where x > threshold)."""
    return _inplace_or(input, inplace, "threshold",
                      lambda x: F.where(x <= threshold, value, x))


def relu6(input, inplace=False):
    """min(max(x, 0), 6), with no gradient at 0 and at 6 (it is hardtanh(x, 0, 6))."""
    return composite.hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6; the gradient 1/6 only for -3 < x < 3."""
    def compute(x):
        out = F.clamp(x + 3, 0.0, 6.0) / 6
        return F.where(_inside(x, -3.0, 3.0), out, out.detach())
    return _inplace_or(input, inplace, "hardsigmoid", compute)


def hardshrink(input, lambd=0.5):
    """x where |x| > lambd, else 0 (nan stays nan)."""
    return F.where(F.abs(input) <= lambd, 0.0, input)


def softshrink(input, lambd=0.5):
    """x - lambd above lambd, x + lambd below -lambd, else 0 (0 * x: nan stays nan)."""
    if lambd < 0:
        top = float(np.finfo(input.dtype.np).max)
        raise RuntimeError(f"lambda must be in range [0, {top:g}] for input dtype "
                           f"{'Double' if input.dtype.np == np.float64 else 'Float'}, but "
                           f"found {lambd:g}")
    return F.where(input > lambd, input - lambd, F.where(input < -lambd, input + lambd,
                                                         input * 0))


def tanhshrink(input):
    return input - F.tanh(input)


def softsign(input):
    return input / (F.abs(input) + 1)


def selu(input, inplace=False):
    """scale * elu(x, alpha) with SELU's fixed constants."""
    return _inplace_or(input, inplace, "selu",
                      lambda x: composite.elu(x, SELU_ALPHA) * SELU_SCALE)


def celu(input, alpha=1.0, inplace=False):
    """max(0, x) + min(0, alpha (exp(x / alpha) - 1)): elu of x / alpha, scaled back."""
    return _inplace_or(input, inplace, "celu",
                      lambda x: F.where(x > 0, x, composite.elu(x / alpha) * alpha))


def mish(input, inplace=False):
    return _inplace_or(input, inplace, "mish",
                      lambda x: x * F.tanh(composite.softplus(x)))


def logsigmoid(input):
    """-softplus(-x), computed without overflow for large |x|."""
    return -composite.softplus(-input)


def glu(input, dim=-1):
    """a * sigmoid(b), with a and b the two halves of ``input`` along ``dim``."""
    if input.dim() == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    size = input.shape[dim]
    if size % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension "
                           f"{dim % input.dim()} is size {size}")
    a, b = F.narrow(input, dim, 0, size // 2), F.narrow(input, dim, size // 2, size // 2)
    return a * F.sigmoid(b)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return composite.softmax(-input, dim, dtype=dtype)


def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """Samples from the Gumbel-softmax distribution: ``softmax((logits + g) / tau)`` with
    g = -log(E), E ~ Exp(1) drawn from graphc's generator; ``hard`` gives the one-hot of
    the sample's argmax with the soft sample's gradient (straight-through)."""
    exponential = -F.log(1.0 - F.uniform_noise(logits.shape, logits.dtype))
    y_soft = composite.softmax((logits - F.log(exponential)) / tau, dim)
    if not hard:
        return y_soft
    index = y_soft.argmax(dim, keepdim=True)
    positions = creation.arange(y_soft.shape[dim]).reshape(
        [-1] + [1] * (y_soft.dim() - 1 - (dim % y_soft.dim())))
    y_hard = F.cast(F.eq(positions, index), y_soft.dtype)
    return y_hard - y_soft.detach() + y_soft


def softmax2d(input):
    """Softmax over the channel dim (-3) of (C, H, W) or (N, C, H, W) input."""
    if input.dim() not in (3, 4):
        raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {input.dim()}D "
                         f"instead")
    return composite.softmax(input, -3)


def prelu(input, weight):
    """x where x > 0, else weight * x; ``weight`` has one slope, or one per channel
    (dim 1, or dim 0 of a 1-D input)."""
    if weight.numel() != 1:
        channels = input.shape[1] if input.dim() >= 2 else (input.shape[0] if input.dim()
                                                            else 1)
        if input.dim() == 0 or weight.numel() != channels:
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {weight.numel()} and channel size = "
                               f"{channels}.")
        if input.dim() >= 2:
            weight = weight.reshape((-1,) + (1,) * (input.dim() - 2))
    else:
        weight = weight.reshape(())
    return F.where(input > 0, input, input * weight)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Leaky ReLU with a slope drawn from U(lower, upper) for each element in training
    (graphc's generator), and the mean slope (lower + upper) / 2 in eval."""
    if not training:
        return composite.leaky_relu(input, (lower + upper) / 2, inplace)

    def compute(x):
        u = F.uniform_noise(x.shape, x.dtype)
        return F.where(x > 0, x, x * (u * (upper - lower) + lower))
    return _inplace_or(input, inplace, "rrelu", compute)


def _inplace_form(name, fn):
    """``F.NAME_(input, *args)``: ``fn(input, *args, inplace=True)``."""
    def inplace(input, *args, **kwargs):
        return fn(input, *args, inplace=True, **kwargs)
    inplace.__name__ = name
    inplace.__doc__ = f"In-place {fn.__name__}: writes the result into ``input``."
    return inplace


relu_ = _inplace_form("relu_", composite.relu)
elu_ = _inplace_form("elu_", composite.elu)
leaky_relu_ = _inplace_form("leaky_relu_", composite.leaky_relu)
hardtanh_ = _inplace_form("hardtanh_", composite.hardtanh)
threshold_ = _inplace_form("threshold_", threshold)
selu_ = _inplace_form("selu_", selu)
celu_ = _inplace_form("celu_", celu)
rrelu_ = _inplace_form("rrelu_", rrelu)
