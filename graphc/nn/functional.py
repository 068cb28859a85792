"""``graphc.nn.functional`` (``import graphc.nn.functional as F``): PyTorch's names for
the composites in ``graphc.composite``, plus ``flatten``."""
from graphc.composite import (
    linear, dropout, layer_norm, batch_norm, relu,
    leaky_relu, elu, gelu, silu, softplus, hardtanh, hardswish, sigmoid, tanh, softmax, log_softmax,
    mse_loss, l1_loss, smooth_l1_loss, nll_loss, cross_entropy, binary_cross_entropy,
    binary_cross_entropy_with_logits, one_hot, embedding, normalize, cosine_similarity)
from graphc.spatial import (
    conv2d, max_pool2d, avg_pool2d, pad, conv1d, conv_transpose1d, conv_transpose2d,
    max_pool1d, avg_pool1d, lp_pool1d, lp_pool2d, adaptive_avg_pool1d, adaptive_avg_pool2d,
    adaptive_max_pool1d, adaptive_max_pool2d, unfold, fold, interpolate, upsample,
    upsample_nearest, upsample_bilinear, pixel_shuffle, pixel_unshuffle, channel_shuffle)
from graphc.spatial import (conv3d, conv_transpose3d, max_pool3d, avg_pool3d,
                            adaptive_avg_pool3d, adaptive_max_pool3d)
from graphc.spatial import max_unpool1d, max_unpool2d, max_unpool3d
from graphc.functional import flatten

__all__ = [
    "linear", "conv2d", "max_pool2d", "avg_pool2d", "dropout", "layer_norm", "batch_norm",
    "relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "hardtanh", "hardswish",
    "sigmoid", "tanh",
    "softmax", "log_softmax", "mse_loss", "l1_loss", "smooth_l1_loss", "nll_loss",
    "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "one_hot",
    "embedding", "pad", "normalize", "cosine_similarity", "flatten",
]
