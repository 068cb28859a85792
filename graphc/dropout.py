"""Channel and alpha dropout (``F.dropout1d/2d/3d``, ``alpha_dropout``,
``feature_alpha_dropout``); plain ``dropout`` lives in ``graphc.composite``.

Draws come from the counter-based ``uniform`` primitive seeded by graphc's generator, so
``graphc.manual_seed`` fixes the mask and a compiled program draws a new one each call.
The masks differ from PyTorch's; the distributions and the eval-mode identity do not.
"""
from __future__ import annotations

import warnings

from graphc import functional as F
from graphc.composite import _inplace_or

SELU_SATURATION = 1.7580993408473766
"""-SELU's limit at -infinity: scale * alpha, where alpha dropout sets dropped units."""


def _check_p(p):
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _dropout(input, p, training, inplace, name, feature, alpha, batched=True):
    """PyTorch's one dropout: keep each element (or each (sample, channel) when
    ``feature``) with probability 1 - p; scale kept ones by 1 / (1 - p), or for alpha
    dropout set dropped ones to -SELU_SATURATION and apply the affine map that keeps
    mean and variance.  Unbatched input (not ``batched``) is a batch of one."""
    _check_p(p)
    if not training or p == 0 or input.numel() == 0:
        return input

    def compute(x):
        if p == 1:
            return x * 0.0
        if not batched:
            x = x.unsqueeze(0)
        shape = tuple(x.shape[:2]) + (1,) * (x.dim() - 2) if feature else tuple(x.shape)
        u = F.uniform_noise(shape, x.dtype)
        keep = (u >= p).to(x.dtype)
        if alpha:
            a = 1.0 / ((SELU_SATURATION ** 2 * p + 1) * (1 - p)) ** 0.5
            out = x * (keep * a) + ((keep - 1) * (SELU_SATURATION * a)
                                    + SELU_SATURATION * a * p)
        else:
            out = x * (keep * (1.0 / (1 - p)))
        return out if batched else out.squeeze(0)
    return _inplace_or(input, inplace, name, compute)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) input."""
    _check_p(p)
    if input.dim() not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D input. Note "
            f"that dropout1d exists to provide channel-wise dropout on inputs with 1 spatial "
            f"dimension, a channel dimension, and an optional batch dimension (i.e. 2D or 3D "
            f"inputs).")
    return _dropout(input, p, training, inplace, "dropout1d", True, False, input.dim() == 3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, H, W) input; 3-D input is taken as (N, C, L), with
    PyTorch's warnings."""
    _check_p(p)
    if input.dim() not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {input.dim()}-D input to dropout2d, which is deprecated "
            f"and will result in an error in a future release. To retain the behavior and "
            f"silence this warning, please use dropout instead. Note that dropout2d exists to "
            f"provide channel-wise dropout on inputs with 2 spatial dimensions, a channel "
            f"dimension, and an optional batch dimension (i.e. 3D or 4D inputs).", stacklevel=2)
    if input.dim() == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C is "
            "the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2)
    return _dropout(input, p, training, inplace, "dropout2d", True, False)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input."""
    _check_p(p)
    if input.dim() not in (4, 5):
        warnings.warn(
            f"dropout3d: Received a {input.dim()}-D input to dropout3d, which is deprecated "
            f"and will result in an error in a future release. To retain the behavior and "
            f"silence this warning, please use dropout instead. Note that dropout3d exists to "
            f"provide channel-wise dropout on inputs with 3 spatial dimensions, a channel "
            f"dimension, and an optional batch dimension (i.e. 4D or 5D inputs).", stacklevel=2)
    return _dropout(input, p, training, inplace, "dropout3d", True, False, input.dim() == 5)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout for SELU networks: keeps zero mean and unit variance."""
    return _dropout(input, p, training, inplace, "alpha_dropout", False, True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Alpha dropout of whole channels."""
    return _dropout(input, p, training, inplace, "feature_alpha_dropout", True, True)
