"""``graphc.nn.functional`` (``import graphc.nn.functional as F``): PyTorch's names for
the composites in ``graphc.composite``, plus ``flatten``."""
from graphc.composite import (
    linear, conv2d, max_pool2d, avg_pool2d, dropout, layer_norm, batch_norm, relu,
    leaky_relu, elu, gelu, silu, softplus, hardtanh, hardswish, sigmoid, tanh, softmax, log_softmax,
    mse_loss, l1_loss, smooth_l1_loss, nll_loss, cross_entropy, binary_cross_entropy,
    binary_cross_entropy_with_logits, one_hot, embedding, pad, normalize, cosine_similarity)
from graphc.functional import flatten
from graphc.losses import (
    kl_div, huber_loss, soft_margin_loss, multilabel_soft_margin_loss, multi_margin_loss,
    multilabel_margin_loss, margin_ranking_loss, hinge_embedding_loss, cosine_embedding_loss,
    triplet_margin_loss, triplet_margin_with_distance_loss, poisson_nll_loss,
    gaussian_nll_loss, ctc_loss, pairwise_distance, pdist)

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
]
