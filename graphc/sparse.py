"""``F.embedding_bag``: sums, means or maxima of bags of embedding rows, the bags given
by ``offsets`` into a flat index (or by the rows of a 2-D index).

A composite: bag membership is a (bags x lookups) matrix built by comparing positions
with the offsets, so the sum and mean are one matmul and the max one masked ``amax``;
it runs eagerly, differentiates, traces and compiles (offsets may be traced inputs).
``F.embedding`` itself is in ``graphc.composite``.
"""
from __future__ import annotations

import math

from graphc import creation, dtypes
from graphc import functional as F
from graphc.composite import embedding, embedding_renorm_
from graphc.tensor import Tensor

_MODES = ("sum", "mean", "max")


def _bag_offsets(input, offsets, per_sample_weights):
    """The flat index, the offsets and the flat per-sample weights, with PyTorch's
    checks: a 2-D index is a batch of equal bags and takes no offsets."""
    if input.dim() == 2:
        if offsets is not None:
            raise ValueError(f"if input is 2D, then offsets has to be None, as input is "
                             f"treated is a mini-batch of fixed length sequences. However, "
                             f"found offsets of type {type(offsets)}")
        offsets = creation.arange(0, input.numel(), input.shape[1]) if input.shape[1] \
            else creation.zeros(input.shape[0], dtype=dtypes.int64)
        input = input.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape(-1)
    elif input.dim() == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if offsets.dim() != 1:
            raise ValueError("offsets has to be a 1D Tensor")
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{input.dim()}")
    if F.is_concrete(offsets) and offsets.numel() and int(offsets[0]) != 0:
        raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the "
                           f"mini-batch has to start from position 0. However, got "
                           f"{int(offsets[0])}")
    return input, offsets, per_sample_weights


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2,
                  scale_grad_by_freq=False, mode="mean", sparse=False,
                  per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """One row per bag: the sum, mean or max of its embedding rows.  Bag b holds the
    lookups from offsets[b] up to offsets[b + 1] (the last to the end, or, with
    ``include_last_offset``, offsets has one entry more and ends the last bag).
    Lookups of ``padding_idx`` are left out (an empty bag gives zeros)."""
    if per_sample_weights is not None and tuple(input.shape) != tuple(
            per_sample_weights.shape):
        raise ValueError(f"embedding_bag: If per_sample_weights ({per_sample_weights.shape}) "
                         f"is not None, then it must have the same shape as the input "
                         f"({input.shape})")
    if weight.dim() != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension "
                         f"{weight.dim()}")
    input, offsets, per_sample_weights = _bag_offsets(input, offsets, per_sample_weights)
    if mode not in _MODES:
        raise ValueError("mode has to be one of sum, mean or max")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. "
                                  f"per_sample_weights is only supported for mode='sum' (got "
                                  f"mode='{mode}'). Please open a feature request on GitHub.")
    if max_norm is not None:
        embedding_renorm_(weight, input, max_norm, norm_type)
    rows = embedding(input, weight, None, None, norm_type, scale_grad_by_freq, sparse)
    if padding_idx is not None:
        if not -weight.shape[0] <= padding_idx < weight.shape[0]:
            raise AssertionError("padding_idx must be within the number of embeddings, -"
                                 f"{weight.shape[0]} through {weight.shape[0] - 1}, but got "
                                 f"{padding_idx}")
        padding_idx %= weight.shape[0]
    member = _membership(input, offsets, include_last_offset, padding_idx)
    bags = member.shape[0]
    if mode == "max":
        if input.shape[0] == 0:            # no lookups: every bag is empty, so zeros
            return creation.zeros((bags, weight.shape[1]), dtype=weight.dtype)
        picked = F.where(member.unsqueeze(2), rows.unsqueeze(0), -math.inf).amax(1)
        return F.where(member.any(1, keepdim=True), picked, 0.0)
    # Each lookup's row is added into its bag (an index_add, not a matmul with 0/1
    # coefficients, so rows outside every bag never meet the sum: 0 * inf would be nan).
    inside = member.any(0).unsqueeze(1)
    if per_sample_weights is not None:
        rows = rows * per_sample_weights.to(weight.dtype).unsqueeze(1)
    bag_of = member.to(dtypes.int64).argmax(0) if bags else input
    summed = F.index_add(creation.zeros((bags, weight.shape[1]), dtype=weight.dtype), 0, bag_of,
                         F.where(inside, rows, 0.0))
    if mode == "mean":
        counts = member.to(weight.dtype).sum(1, keepdim=True)
        summed = summed / F.where(counts > 0, counts, 1.0)
    return summed


def _membership(flat_index, offsets, include_last_offset, padding_idx) -> Tensor:
    """member[b, j]: lookup j belongs to bag b (and is not padding)."""
    n = flat_index.shape[0]
    offsets = offsets.to(dtypes.int64)
    bags = offsets.shape[0] - 1 if include_last_offset else offsets.shape[0]
    starts = offsets[:bags]
    ends = offsets[1:bags + 1] if include_last_offset else F.cat(
        [offsets[1:], creation.tensor([n], dtype=dtypes.int64)])
    positions = creation.arange(n).unsqueeze(0)
    member = (positions >= starts.unsqueeze(1)).logical_and(positions < ends.unsqueeze(1))
    if padding_idx is not None:
        member = member.logical_and((flat_index != padding_idx).unsqueeze(0))
    return member

# torch.sparse: COO sparse tensors (graphc/coo.py), so that graphc.sparse.mm is torch.sparse.mm.
from graphc.coo import SparseTensor, mm, sparse_coo_tensor  # noqa: E402,F401
