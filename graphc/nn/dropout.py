"""Dropout layers: Dropout, Dropout1d/2d/3d (whole channels), AlphaDropout and
FeatureAlphaDropout (for SELU networks).  Each is the identity in eval mode and draws
its mask from graphc's generator in training mode."""
from __future__ import annotations

from graphc.nn import functional as F
from graphc.nn.module import Module


class _DropoutNd(Module):
    """A dropout layer: ``p`` and ``inplace``, and the functional form it calls."""
    _fn = None

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return type(self)._fn(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zeroes elements with probability p in training mode (scaling the rest by
    1/(1-p)); the identity in eval mode."""
    _fn = F.dropout


class Dropout1d(_DropoutNd):
    """Zeroes whole channels of (N, C, L) or (C, L) input."""
    _fn = F.dropout1d


class Dropout2d(_DropoutNd):
    """Zeroes whole channels of (N, C, H, W) input."""
    _fn = F.dropout2d


class Dropout3d(_DropoutNd):
    """Zeroes whole channels of (N, C, D, H, W) or (C, D, H, W) input."""
    _fn = F.dropout3d


class AlphaDropout(_DropoutNd):
    """Sets elements to SELU's saturation value and rescales, keeping mean 0 and
    variance 1."""
    _fn = F.alpha_dropout


class FeatureAlphaDropout(_DropoutNd):
    """Alpha dropout of whole channels."""
    _fn = F.feature_alpha_dropout
