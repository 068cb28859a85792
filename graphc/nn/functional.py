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
from graphc.spatial import (max_pool1d_with_indices, max_pool2d_with_indices,
                            max_pool3d_with_indices, adaptive_max_pool1d_with_indices,
                            adaptive_max_pool2d_with_indices, adaptive_max_pool3d_with_indices)
from graphc.spatial import lp_pool3d
from graphc.functional import flatten
from graphc.losses import (
    kl_div, huber_loss, soft_margin_loss, multilabel_soft_margin_loss, multi_margin_loss,
    multilabel_margin_loss, margin_ranking_loss, hinge_embedding_loss, cosine_embedding_loss,
    triplet_margin_loss, triplet_margin_with_distance_loss, poisson_nll_loss,
    gaussian_nll_loss, ctc_loss, pairwise_distance, pdist)
from graphc.activation import (
    threshold, threshold_, relu6, hardsigmoid, hardshrink, softshrink, tanhshrink, softsign,
    selu, selu_, celu, celu_, mish, logsigmoid, glu, softmin, softmax2d, prelu, rrelu, rrelu_,
    relu_, elu_, leaky_relu_, hardtanh_, gumbel_softmax)
from graphc.normalization import instance_norm, group_norm, rms_norm, local_response_norm
from graphc.dropout import (dropout1d, dropout2d, dropout3d, alpha_dropout,
                            feature_alpha_dropout)
from graphc.sparse import embedding_bag
from graphc.linear import bilinear

__all__ = [
    "linear", "conv2d", "max_pool2d", "avg_pool2d", "dropout", "layer_norm", "batch_norm",
    "relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "hardtanh", "hardswish",
    "sigmoid", "tanh",
    "softmax", "log_softmax", "mse_loss", "l1_loss", "smooth_l1_loss", "nll_loss",
    "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "one_hot",
    "embedding", "pad", "normalize", "cosine_similarity", "flatten",
    "kl_div", "huber_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
    "multi_margin_loss", "multilabel_margin_loss", "margin_ranking_loss",
    "hinge_embedding_loss", "cosine_embedding_loss", "triplet_margin_loss",
    "triplet_margin_with_distance_loss", "poisson_nll_loss", "gaussian_nll_loss",
    "ctc_loss", "pairwise_distance", "pdist",
    "threshold", "threshold_", "relu6", "hardsigmoid", "hardshrink", "softshrink",
    "tanhshrink", "softsign", "selu", "selu_", "celu", "celu_", "mish", "logsigmoid", "glu",
    "softmin", "softmax2d", "prelu", "rrelu", "rrelu_", "relu_", "elu_", "leaky_relu_",
    "hardtanh_", "instance_norm", "group_norm", "rms_norm", "local_response_norm",
    "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "embedding_bag", "bilinear",
]
from graphc.attention import scaled_dot_product_attention  # noqa: E402

__all__ += ["scaled_dot_product_attention"]
from graphc.attention import multi_head_attention_forward  # noqa: E402

__all__ += ["multi_head_attention_forward"]
