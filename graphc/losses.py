"""The loss functions of ``torch.nn.functional`` beyond the classic ones in
``graphc.composite`` (margin, ranking, embedding, divergence and likelihood losses),
and the distances they use: ``pairwise_distance`` and ``pdist``.

Every one is a composite of tensor functions, written as PyTorch's kernels compute it
(same formula, same order of reductions), so it runs eagerly, differentiates, traces and
compiles.  ``size_average``/``reduce`` are PyTorch's deprecated spellings of
``reduction`` and are accepted where PyTorch accepts them.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from graphc import context, creation, dtypes
from graphc import functional as F
from graphc.activation import logsigmoid
from graphc.composite import _legacy_reduction, _reduce_loss
from graphc.tensor import Tensor

__all__ = ["kl_div", "huber_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
           "multi_margin_loss", "multilabel_margin_loss", "margin_ranking_loss",
           "hinge_embedding_loss", "cosine_embedding_loss", "triplet_margin_loss",
           "triplet_margin_with_distance_loss", "poisson_nll_loss", "gaussian_nll_loss",
           "ctc_loss", "pairwise_distance", "pdist"]


def _xlogy_self(x):
    """x * log(x), 0 at x = 0 (``torch.xlogy(x, x)``)."""
    zero = x == 0
    return F.where(zero, 0.0, x * F.log(F.where(zero, 1.0, x)))


# ---- distances ------------------------------------------------------------------------------
def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The p-norm of ``x1 - x2 + eps`` over the last dim (of the broadcast operands)."""
    dim = max(x1.dim(), x2.dim()) - 1
    return F.norm(x1 - x2 + eps, p, dim, keepdim)


def pdist(input, p=2):
    """The p-norm distance between each pair of rows of an (N, M) input, in the order of
    the upper triangle: (0, 1), (0, 2), ..., (N-2, N-1)."""
    if input.dim() != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.dim()}D")
    if p < 0:
        raise RuntimeError("pdist only supports non-negative p values")
    rows, cols = np.triu_indices(input.shape[0], 1)
    first = F.index_select(input, 0, creation.tensor(rows.astype(np.int64)))
    second = F.index_select(input, 0, creation.tensor(cols.astype(np.int64)))
    return F.norm(first - second, p, 1)


# ---- regression and divergence losses -------------------------------------------------------
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise: ``target * (log(target) - input)`` (the target
    given as log-probabilities with ``log_target``); ``batchmean`` divides the sum by the
    batch size, which is the true KL divergence."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, reduction)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and "
                      "the support size.'batchmean' divides only by the batch size, and "
                      "aligns with the KL div math definition.'mean' will be changed to "
                      "behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if log_target:
        loss = F.exp(target) * (target - input)
    else:
        loss = _xlogy_self(target) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.dim() != 0 else loss.sum()
    return _reduce_loss(loss, reduction, "kl_div")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Quadratic (``z**2 / 2``) below ``delta``, linear (``delta * (z - delta / 2)``)
    above, in ``z = |input - target|``."""
    _warn_if_broadcast(input, target)
    z = F.abs(input - target)
    loss = F.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))
    if weight is not None:
        if tuple(weight.shape) != tuple(input.shape):
            raise ValueError("Weights and input must have the same size.")
        loss = loss * weight
    return _reduce_loss(loss, reduction, "huber_loss")


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    """Negative log likelihood of ``target`` under Poisson(rate): ``exp(input) - target *
    input`` with ``log_input``, else ``input - target * log(input + eps)``; ``full`` adds
    Stirling's approximation of log(target!) where target > 1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not a valid value for reduction")
    if log_input:
        loss = F.exp(input) - target * input
    else:
        loss = input - target * F.log(input + eps)
    if full:
        big = target > 1
        safe = F.where(big, target, 2.0)
        stirling = safe * F.log(safe) - safe + 0.5 * F.log(2 * math.pi * safe)
        loss = loss + F.where(big, stirling, 0.0)
    return _reduce_loss(loss, reduction, "poisson_nll_loss")


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Negative log likelihood of ``target`` under N(input, var):
    ``(log(var) + (input - target)**2 / var) / 2`` (+ log(2 pi) / 2 with ``full``).
    ``var`` may omit the last dim, or have size 1 in one dim.  Values below ``eps`` are
    raised to it for the loss, but, as in PyTorch, not for the gradient, which flows to
    ``var`` unclamped."""
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = F.expand(creation.tensor(var, dtype=input.dtype), tuple(input.shape))
    elif F.is_concrete(var) and bool(F.any(var < 0)):
        raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = F.unsqueeze(var, -1)
        elif not (input.dim() == var.dim() and sum(
                v for i, v in zip(input.shape, var.shape) if i != v) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = var + (F.clamp(var, min=eps) - var).detach()
    loss = 0.5 * (F.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce_loss(loss, reduction, "gaussian_nll_loss")



# ---- classification margins ------------------------------------------------------------------
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Two-class logistic loss ``log(1 + exp(-target * input))``, targets +-1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _reduce_loss(F.log1p(F.exp(-target * input)), reduction, "soft_margin_loss")


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    """Per-class logistic loss against 0/1 targets, averaged over the classes (the last
    dim)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    class_dim = input.dim() - 1
    loss = loss.sum(class_dim) / input.shape[class_dim]
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    return _reduce_loss(loss, reduction, "multilabel_soft_margin_loss")


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean"):
    """Multi-class hinge loss: for each class i other than the target y,
    ``max(0, margin - x[y] + x[i]) ** p`` (times ``weight[y]``), averaged over the
    classes."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if p != 1 and p != 2:
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    if input.dim() > 2:
        raise RuntimeError(f"multi_margin_loss: Expected non-empty vector or matrix with "
                           f"optional 0-dim batch size, but got: {list(input.shape)}")
    batch = input if input.dim() == 2 else F.unsqueeze(input, 0)
    classes = batch.shape[1]
    y = F.reshape(target, (batch.shape[0],)).to(dtypes.int64)
    picked = F.gather(batch, 1, F.unsqueeze(y, 1))
    z = margin - picked + batch
    z = F.where(z > 0, z, 0.0)      # PyTorch's test: a nan term counts 0
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * F.unsqueeze(F.index_select(weight, 0, y), 1)
    others = F.one_hot(y, classes) == 0
    loss = F.where(others, z, 0.0).sum(1) / classes
    if input.dim() < 2:
        loss = F.reshape(loss, tuple(target.shape))
    return _reduce_loss(loss, reduction, "multi_margin_loss")


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Multi-label hinge loss: ``target`` lists each sample's classes, ended by the first
    -1; for every listed class j and every unlisted class i,
    ``max(0, 1 - (x[j] - x[i]))``, summed and divided by the number of classes."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise RuntimeError(f"multilabel_margin_loss: inconsistent target size: "
                           f"{list(target.shape)} for input of size: {list(input.shape)}")
    batch = input if input.dim() == 2 else F.reshape(input, (1, -1))
    labels = F.reshape(target, tuple(batch.shape)).to(dtypes.int64)
    classes = batch.shape[1]
    listed = F.cumsum((labels < 0).to(dtypes.int64), 1) == 0           # before the first -1
    safe = F.where(listed, labels, 0)
    is_target = (F.one_hot(safe, classes) * F.unsqueeze(listed, 2).to(dtypes.int64)).sum(1) > 0
    picked = F.gather(batch, 1, safe)                                   # x[j] per slot
    z = 1 - F.unsqueeze(picked, 2) + F.unsqueeze(batch, 1)      # slot j, class i
    z = F.where(z > 0, z, 0.0)      # PyTorch's test: a nan term counts 0
    pairs = F.logical_and(F.unsqueeze(listed, 2), F.unsqueeze(F.logical_not(is_target), 1))
    loss = F.where(pairs, z, 0.0).sum((1, 2)) / classes
    if input.dim() < 2:
        loss = F.reshape(loss, ())
    return _reduce_loss(loss, reduction, "multilabel_margin_loss")


# ---- ranking and embedding losses -----------------------------------------------------------
def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction="mean"):
    """``max(0, -target * (input1 - input2) + margin)``: input1 should rank above input2
    where target is 1, below where it is -1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same "
                           f"dimension but got sizes: input1: {input1.size()}, input2: "
                           f"{input2.size()}, target: {target.size()} ")
    loss = F.relu(-target * (input1 - input2) + margin)
    return _reduce_loss(loss, reduction, "margin_ranking_loss")


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean"):
    """``input`` (a distance) where target is 1, ``max(0, margin - input)`` where -1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    margin_part = F.where(target != 1, F.relu(margin - input), 0.0)
    self_part = F.where(target != -1, input, 0.0)
    return _reduce_loss(margin_part + self_part, reduction, "hinge_embedding_loss")


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                          reduction="mean"):
    """``1 - cos(x1, x2)`` where target is 1, ``max(0, cos - margin)`` where -1; the
    cosine as PyTorch's kernel computes it (squared norms plus 1e-12)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    dim = input1.dim()
    if dim != input2.dim():
        raise RuntimeError(f"cosine_embedding_loss : input1 and input2 should have the same "
                           f"number of dimensions, but got {dim} and {input2.dim()}")
    if target.dim() != dim - 1 or dim not in (1, 2):
        raise RuntimeError(f"cosine_embedding_loss : {dim}D target tensor expects {dim - 1}D "
                           f"input tensors, but found inputs with sizes {input1.size()} and "
                           f"{input2.size()}." if dim - 1 != target.dim() else
                           f"cosine_embedding_loss : expected 1D or 2D inputs, got {dim}D")
    last = dim - 1
    eps = 1e-12
    prod = (input1 * input2).sum(last)
    denom = F.sqrt(((input1 * input1).sum(last) + eps) * ((input2 * input2).sum(last) + eps))
    cos = prod / denom
    loss = F.where(target == 1, 1 - cos, 0.0) + F.where(target == -1, F.relu(cos - margin), 0.0)
    return _reduce_loss(loss, reduction, "cosine_embedding_loss")


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """``max(0, margin + d(a, p) - d(a, n))`` with the p-norm ``pairwise_distance``;
    ``swap`` uses ``min(d(a, n), d(p, n))`` as the negative distance."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    dims = (anchor.dim(), positive.dim(), negative.dim())
    if len(set(dims)) != 1:
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have "
                           f"the same number of dimensions, but got: anchor {dims[0]}D, "
                           f"positive {dims[1]}D, and negative {dims[2]}D inputs")
    return triplet_margin_with_distance_loss(
        anchor, positive, negative,
        distance_function=lambda a, b: pairwise_distance(a, b, p, eps), margin=margin,
        swap=swap, reduction=reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean"):
    """``triplet_margin_loss`` with any ``distance_function(x, y)`` (default
    ``pairwise_distance``)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    dims = (anchor.dim(), positive.dim(), negative.dim())
    if len(set(dims)) != 1:
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have "
                           f"the same number of dimensions, but got: anchor {dims[0]}D, "
                           f"positive {dims[1]}D, and negative {dims[2]}D inputs")
    distance = distance_function or pairwise_distance
    dist_pos = distance(anchor, positive)
    dist_neg = distance(anchor, negative)
    if swap:
        dist_neg = F.minimum(dist_neg, distance(positive, negative))
    loss = F.clamp(margin + dist_pos - dist_neg, min=0)
    return _reduce_loss(loss, reduction, "triplet_margin_with_distance_loss")


# ---- sequences ------------------------------------------------------------------------------
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """Connectionist temporal classification: -log of the total probability of every
    alignment of each target with its input, by the forward (alpha) recursion over the
    extended labels (blank, l1, blank, l2, ..., blank) in log space; a Python loop over
    time, so it traces to a graph unrolled over T.

    ``log_probs`` is (T, N, C) or unbatched (T, C); ``targets`` (N, S) padded, or 1-D:
    the targets concatenated (whose split needs concrete ``target_lengths``).  ``mean``
    divides each loss by its target length first.  The gradient is PyTorch's, which
    adds ``exp(log_probs)`` at each step inside the input (exact once ``log_probs`` come
    from ``log_softmax``, as CTC expects)."""
    unbatched = log_probs.dim() == 2
    if unbatched:
        log_probs = F.unsqueeze(log_probs, 1)
        targets = F.unsqueeze(targets, 0)
    steps, batch, classes = log_probs.shape
    in_lens = _ctc_lengths(input_lengths, batch, "input_lengths")
    tg_lens = _ctc_lengths(target_lengths, batch, "target_lengths")
    labels = _ctc_padded_targets(targets, tg_lens, batch).to(dtypes.int64)
    longest = labels.shape[1]
    blanks = creation.full((batch, longest), blank, dtype=dtypes.int64)
    extended = F.cat([F.reshape(F.stack([blanks, labels], 2), (batch, 2 * longest)),
                      creation.full((batch, 1), blank, dtype=dtypes.int64)], 1)
    width = 2 * longest + 1
    # A step may jump over the blank between two different labels (positions 3, 5, ...).
    if longest > 1:
        differs = labels[:, 1:] != labels[:, :-1]
        no = F.zeros_like(differs)
        skip = F.cat([creation.zeros(batch, 2, dtype=dtypes.bool_),
                      F.reshape(F.stack([no, differs], 2), (batch, 2 * longest - 2)),
                      creation.zeros(batch, 1, dtype=dtypes.bool_)], 1)
    else:
        skip = creation.zeros(batch, width, dtype=dtypes.bool_)
    position = F.unsqueeze(creation.arange(width), 0)
    ext_len = F.unsqueeze(2 * tg_lens + 1, 1)
    inside = position < ext_len
    emit = F.gather(F.permute(log_probs, (1, 0, 2)), 2,
                    F.expand(F.unsqueeze(extended, 1), (batch, steps, width)))
    starts = F.logical_or(position == 0,
                          F.logical_and(position == 1, F.unsqueeze(tg_lens > 0, 1)))
    neg_inf = -math.inf
    alpha = F.where(starts, emit[:, 0, :], neg_inf)
    for t in range(1, steps):
        one_back = F.cat([creation.full((batch, 1), neg_inf, dtype=alpha.dtype),
                          alpha[:, :-1]], 1)
        two_back = F.cat([creation.full((batch, 2), neg_inf, dtype=alpha.dtype),
                          alpha[:, :-2]], 1)
        new = _log_add_exp([alpha, one_back, F.where(skip, two_back, neg_inf)]) + emit[:, t, :]
        running = F.unsqueeze(t < in_lens, 1)
        alpha = F.where(running, F.where(inside, new, neg_inf), alpha)
    last = F.gather(alpha, 1, ext_len - 1)
    before = F.where(F.unsqueeze(tg_lens > 0, 1),
                     F.gather(alpha, 1, F.clamp(ext_len - 2, min=0)), neg_inf)
    nll = -F.reshape(_log_add_exp([last, before]), (batch,))
    # PyTorch's gradient has an extra exp(log_probs) inside each input (a zero here).
    probs = F.exp(log_probs)
    within = F.unsqueeze(F.unsqueeze(creation.arange(steps), 1) < F.unsqueeze(in_lens, 0), 2)
    nll = nll + F.where(within, probs - probs.detach(), 0.0).sum((0, 2))
    if zero_infinity:
        nll = F.where(F.isinf(nll), 0.0, nll)
    if reduction == "mean":
        return (nll / F.clamp(tg_lens, min=1).to(nll.dtype)).mean()
    if unbatched and reduction == "none":
        nll = F.reshape(nll, ())
    return _reduce_loss(nll, reduction, "ctc_loss")


def _log_add_exp(terms):
    """log(sum(exp(terms))) elementwise, shifted by the (constant) maximum; -inf, with a
    zero gradient, where every term is -inf (an unreachable CTC state)."""
    top = terms[0]
    for t in terms[1:]:
        top = F.maximum(top, t)
    shift = F.where(F.isinf(top), 0.0, top).detach()
    total = sum((F.exp(t - shift) for t in terms[1:]), F.exp(terms[0] - shift))
    empty = total == 0
    return F.where(empty, -math.inf, F.log(F.where(empty, 1.0, total)) + shift)


def _ctc_lengths(lengths, batch, name):
    """Lengths as an int64 tensor of shape (N,) (from a tensor, a sequence or a number)."""
    if not isinstance(lengths, Tensor):
        lengths = creation.tensor(lengths, dtype=dtypes.int64)
    lengths = F.reshape(lengths, (-1,)).to(dtypes.int64)
    if lengths.shape[0] != batch:
        raise RuntimeError(f"ctc_loss: expected {name} to have {batch} elements, got "
                           f"{lengths.shape[0]}")
    return lengths


def _ctc_padded_targets(targets, tg_lens, batch):
    """(N, S) targets; 1-D concatenated targets are split by the target lengths, which
    must be known (not traced)."""
    if targets.dim() == 2:
        return targets
    if not (F.is_concrete(targets) and F.is_concrete(tg_lens)):
        raise context.graph_break("ctc_loss with 1-D concatenated targets (how they split "
                                  "into sequences depends on target_lengths); pass (N, S) "
                                  "padded targets to compile it")
    lengths = tg_lens.numpy()
    flat = targets.numpy()
    padded = np.zeros((batch, int(lengths.max(initial=0))), np.int64)
    for i, start in enumerate(np.cumsum(lengths) - lengths):
        padded[i, :lengths[i]] = flat[start:start + lengths[i]]
    return creation.tensor(padded)


def _warn_if_broadcast(input, target):
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"Using a target size ({target.size()}) that is "
                      f"different to the input size ({input.size()}). This "
                      f"will likely lead to incorrect results due to broadcasting. Please "
                      f"ensure they have the same size.", stacklevel=3)
