"""Sorting, selection, and data-dependent and scatter-style tensor ops, as PyTorch's.

Everything here is a composite of existing tensor functions (``gather``, ``take``,
``scatter_add``, ``index_add``, ``where``, comparisons), so it gets autograd, tracing,
fusion and every backend without a primitive of its own:

- **Sorting** is a bitonic sorting network over (value, position) pairs: log2(n)^2 / 2
  compare-exchange stages, each a handful of elementwise ops on two strided halves, so
  a compiled sort has a static graph of O(n log^2 n) work at any size (not k rounds of
  argmax).  Ties are broken by position, which makes the network's order PyTorch's
  stable order; NaN is the largest value (last ascending, first descending).  Eagerly
  the positions come from numpy's stable argsort (same order, much faster); either
  way the values are ``gather(x, indices)``, so gradients flow as PyTorch's.  ``topk``,
  ``kthvalue``, ``median``, ``nanmedian``, ``mode`` and ``msort`` are sorts plus a pick.
- **Searching** (``searchsorted``, ``bucketize``) is a binary search of a fixed number of
  ``gather`` rounds; ``multinomial`` draws with the counter-based ``uniform`` primitive
  (a searchsorted over the cumulative sum, or the exponential-race top-k without
  replacement), so it compiles and ``manual_seed`` reproduces it.
- **Scatters** (``scatter``, ``scatter_reduce``, ``index_copy``, ``index_fill``,
  ``index_put_``, ``masked_scatter``, ``histc``) are ``scatter_add``/``index_add`` of the
  values and of a count of writes (of repeated writes the last wins, as in PyTorch's
  CPU loops: the last is found in a stable sort of the index); the products and
  extrema (which no primitive accumulates) compare every index with every position of
  the scattered dim.
- Ops whose **output shape depends on values** (``nonzero``, ``argwhere``,
  ``where(cond)``, ``masked_select``, ``unique``, ``unique_consecutive``, ``bincount``,
  ``repeat_interleave`` with tensor repeats and no ``output_size``) compute their
  indices with numpy and are graph breaks inside ``graphc.compile`` (they then run
  eagerly); the values still come from ``take``, so they keep their gradients.
"""
from __future__ import annotations

import builtins
import math
import warnings
from collections import namedtuple

import numpy as np

from graphc import context, creation, dtypes
from graphc import functional as F
from graphc.dispatch import bind
from graphc.functional import cast, gather, is_concrete, where
from graphc.indexing import apply_inplace
from graphc.ops import REGISTRY as P
from graphc.tensor import Tensor, normalize_dim


# The named results, named as PyTorch's (torch.return_types.sort...).
sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])
kthvalue_result = namedtuple("kthvalue", ["values", "indices"])
median_result = namedtuple("median", ["values", "indices"])
nanmedian_result = namedtuple("nanmedian", ["values", "indices"])
mode_result = namedtuple("mode", ["values", "indices"])


def _constant(array) -> Tensor:
    array = np.asarray(array)
    return Tensor._wrap(array, dtypes.from_numpy(array.dtype))


def _arange(n, dtype=dtypes.int64) -> Tensor:
    return Tensor._wrap(np.arange(n, dtype=dtype.np), dtype)


# PyTorch's C++ names of the dtypes, which its kernel errors spell.
_SCALAR_TYPES = {dtypes.bool_: "Bool", dtypes.int32: "Int", dtypes.int64: "Long",
                 dtypes.float32: "Float", dtypes.float64: "Double"}


def _describe(x) -> str:
    return f"{x.dtype.name}{list(x.shape)}"


def _values_of(x, what: str) -> np.ndarray:
    """x's array for an op whose output shape depends on x's values: a graph break
    naming the op and the user's line when x is traced."""
    if not is_concrete(x):
        raise context.graph_break(what)
    return x._data


# ---- sorting --------------------------------------------------------------------------------
def _sorting_network(x, descending):
    """Positions of the stable sort of x's last dim, by a bitonic network.

    Each element is a pair (key, rank) compared lexicographically, both ascending or
    the key descending: the rank is the position plus ``width`` times a class that
    breaks the ties the key cannot, so no two pairs are equal and the order is the
    stable one.  NaN takes the key +inf, ranked after a real +inf ascending (class 1)
    and before it descending (class -1); the padding up to a power of two takes the
    key that sorts last, ranked after everything (class 2)."""
    n = x.shape[-1]
    width = 1 << builtins.max(n - 1, 0).bit_length()
    lead = x.shape[:-1]
    keys = cast(x, dtypes.int64) if x.dtype == dtypes.bool_ else x
    rank = F.expand(_arange(n), lead + (n,))
    if keys.dtype.is_floating_point:
        fill = -math.inf if descending else math.inf
        nan = F.isnan(keys)
        rank = where(nan, rank + (-width if descending else width), rank)
        keys = where(nan, math.inf, keys)
    else:
        info = np.iinfo(keys.dtype.np)
        fill = int(info.min if descending else info.max)
    pad = [(0, 0, 0)] * len(lead) + [(0, width - n, 0)]
    keys = F._pad(keys, pad, fill)
    rank = where(F._pad(F.zeros_like(rank, dtypes.bool_), pad, True),
                 F.expand(_arange(width) + 2 * width, lead + (width,)), F._pad(rank, pad, 0))
    block = 2
    while block <= width:
        step = block // 2
        while step >= 1:
            keys, rank = _compare_exchange(keys, rank, lead, width, block, step, descending)
            step //= 2
        block *= 2
    return F.remainder(F.narrow(rank, -1, 0, n), width)


def _compare_exchange(keys, rank, lead, width, block, step, descending):
    """One network stage: element i meets i ^ step; blocks of ``block`` elements sort
    in alternating directions (the first block of each pair keeps the target order)."""
    pairs = width // (2 * step)
    split = lead + (pairs, 2, step)
    keys, rank = keys.reshape(split), rank.reshape(split)
    nd = len(split)
    lo = [0] * nd, list(split[:-2]) + [1, step], [1] * nd
    hi = [0] * (nd - 2) + [1, 0], list(split), [1] * nd
    k_lo, k_hi = F._slice(keys, *lo), F._slice(keys, *hi)
    r_lo, r_hi = F._slice(rank, *lo), F._slice(rank, *hi)
    reverse = _constant(((np.arange(pairs) * 2 * step) & block) != 0).reshape(pairs, 1, 1)
    hi_first = (k_hi > k_lo if descending else k_hi < k_lo).logical_or(
        (k_hi == k_lo).logical_and(r_hi < r_lo))
    swap = hi_first != reverse
    keys = F.cat([where(swap, k_hi, k_lo), where(swap, k_lo, k_hi)], -2)
    rank = F.cat([where(swap, r_hi, r_lo), where(swap, r_lo, r_hi)], -2)
    return keys.reshape(lead + (width,)), rank.reshape(lead + (width,))


def _sort_positions(x, dim, descending) -> Tensor:
    """int64 positions of the stable sort of x along ``dim`` (x has at least one dim)."""
    if is_concrete(x):
        a = np.moveaxis(x._data, dim, -1)
        if descending:      # stable descending: reverse, sort ascending, reverse back
            order = a.shape[-1] - 1 - np.argsort(a[..., ::-1], axis=-1, kind="stable")[..., ::-1]
        else:
            order = np.argsort(a, axis=-1, kind="stable")
        return _constant(np.ascontiguousarray(np.moveaxis(order, -1, dim)).astype(np.int64))
    moved = F.movedim(x.detach(), dim, -1)
    return F.movedim(_sorting_network(moved, descending), -1, dim)


def _sorted_along(x, dim, descending, result=sort_result):
    """(values, indices) of x sorted along ``dim``; a 0-dim x is its own sort."""
    if x.dim() == 0:
        normalize_dim(dim, 0)
        return result(F.clone(x), F.zeros_like(x, dtypes.int64))
    dim = normalize_dim(dim, x.dim())
    indices = _sort_positions(x, dim, descending)
    return result(gather(x, dim, indices), indices)


def sort(input, dim=-1, descending=False, *, stable=False):
    """Always stable (with ``stable=False`` PyTorch leaves the order of ties
    unspecified, so the stable order is one of its answers)."""
    return _sorted_along(input, dim, descending)


def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending).indices


def msort(input):
    return sort(input, 0).values


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The first k of a stable sort; PyTorch leaves the order of tied indices unspecified
    (its partial sort may list ties in another order)."""
    d = normalize_dim(dim, builtins.max(input.dim(), 1))
    size = input.shape[d] if input.dim() else 1
    if not 0 <= k <= size:
        raise RuntimeError(f"selected index k out of range (topk of k={k} along dim {dim} "
                           f"of {_describe(input)})")
    values, indices = _sorted_along(input, dim, largest)
    if input.dim():
        values, indices = F.narrow(values, d, 0, k), F.narrow(indices, d, 0, k)
    return topk_result(values, indices)


def _pick(values, indices, dim, position, keepdim, result):
    """The sorted values and indices at ``position`` (an int, or a tensor of one
    position per lane with a size-1 ``dim``)."""
    if isinstance(position, int):
        values = F.narrow(values, dim, position, 1)
        indices = F.narrow(indices, dim, position, 1)
    else:
        values, indices = gather(values, dim, position), gather(indices, dim, position)
    if not keepdim:
        values, indices = F.squeeze(values, dim), F.squeeze(indices, dim)
    return result(values, indices)


def kthvalue(input, k, dim=-1, keepdim=False):
    d = normalize_dim(dim, builtins.max(input.dim(), 1))
    size = input.shape[d] if input.dim() else 1
    if not 1 <= k <= size:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d} "
                           f"(k={k}, input {_describe(input)})")
    if input.dim() == 0:
        return kthvalue_result(F.clone(input), F.zeros_like(input, dtypes.int64))
    values, indices = _sorted_along(input, d, False)
    return _pick(values, indices, d, k - 1, keepdim, kthvalue_result)


def _median(input, dim, keepdim, ignore_nan, result):
    name = "nanmedian" if ignore_nan else "median"
    if dim is None:
        flat = input.reshape(-1)
        if flat.numel() == 0:       # NaN, or what PyTorch's NaN becomes in an integer
            empty = math.nan if input.dtype.is_floating_point else np.iinfo(input.dtype.np).min
            return Tensor._wrap(np.array(empty, input.dtype.np), input.dtype)
        return _spread_gradient(flat, _median(flat, 0, False, ignore_nan, result).values)
    if input.dim() == 0:
        normalize_dim(dim, 0)
        return result(F.clone(input), F.zeros_like(input, dtypes.int64))
    d = normalize_dim(dim, input.dim())
    if input.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size "
                         f"(input {_describe(input)})")
    values, indices = _sorted_along(input, d, False)
    n = input.shape[d]
    if not input.dtype.is_floating_point:
        return _pick(values, indices, d, (n - 1) // 2, keepdim, result)
    # NaNs sort last: median picks the first NaN of a lane that has one, nanmedian the
    # lower median of the numbers (the first NaN of a lane of NaNs).
    numbers = F.sum(F.logical_not(F.isnan(input)).to(dtypes.int64), d, keepdim=True)
    if ignore_nan:
        position = F.clamp(F.floor_divide(numbers - 1, 2), min=0)
    else:
        position = where(numbers < n, numbers, (n - 1) // 2)
    return _pick(values, indices, d, position, keepdim, result)


def _spread_gradient(x, value):
    """``value`` (a 0-dim pick of x) with PyTorch's gradient for a full median: split
    evenly among the elements equal to it (the NaNs when it is NaN).  The forward value
    stays the pick exactly: v + (S - S) / k, where S sums those k elements (S / k for an
    infinite or NaN v, where S - S would be NaN)."""
    if not (x._requires_grad and context.grad_enabled):
        return value
    v = value.detach()
    equal = where(F.isnan(v), F.isnan(x), x == v)
    count = F.sum(equal.to(x.dtype))
    total = F.sum(where(equal, x, 0.0))
    return where(F.isfinite(v), v + (total - total.detach()) / count, total / count)


def median(input, dim=None, keepdim=False):
    return _median(input, dim, keepdim, False, median_result)


def nanmedian(input, dim=None, keepdim=False):
    return _median(input, dim, keepdim, True, nanmedian_result)


def _quantile(input, q, dim, keepdim, interpolation, ignore_nan):
    name = "nanquantile" if ignore_nan else "quantile"
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{name}() input tensor must be either float or double dtype, "
                           f"got {_describe(input)}")
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise RuntimeError(f"{name}() interpolation must be one of linear, lower, higher, "
                           f"midpoint or nearest, but got {interpolation}")
    qs = q if isinstance(q, Tensor) else Tensor._wrap(np.asarray(q, input.dtype.np),
                                                       input.dtype)
    if qs.dim() > 1:
        raise RuntimeError(f"{name}() q must be a scalar or 1D tensor")
    if isinstance(q, Tensor) or np.ndim(q):
        q_values = None
    else:
        q_values = float(q)
        if not 0 <= q_values <= 1:
            raise RuntimeError(f"{name}() q must be in the range [0, 1] but got {q}")
    x = input.reshape(-1) if dim is None else input
    d = 0 if dim is None else normalize_dim(dim, x.dim())
    if x.shape[d] == 0:
        raise IndexError(f"{name}() input tensor must be non-empty")
    values = F.movedim(_sorted_along(x, d, False)[0], d, -1)                # (..., n)
    n = x.shape[d]
    numbers = F.sum(F.logical_not(F.isnan(values)).to(values.dtype), -1, keepdim=True)
    last = F.clamp(numbers - 1, min=0) if ignore_nan else max(n - 1, 0)
    rank = (qs.reshape(-1).to(values.dtype) * last).expand(*values.shape[:-1], qs.numel())
    lo, hi = F.floor(rank), F.ceil(rank)                                      # (..., Q)
    pick = {"lower": lo, "higher": hi, "nearest": F.round(rank)}.get(interpolation)
    if pick is not None:
        out = F.gather(values, -1, pick.to(dtypes.int64))
    else:
        below = F.gather(values, -1, lo.to(dtypes.int64))
        above = F.gather(values, -1, hi.to(dtypes.int64))
        weight = (rank - lo) if interpolation == "linear" else 0.5
        out = below + (above - below) * weight
    if not ignore_nan:                       # a NaN in the lane makes its quantiles NaN
        out = where(numbers < n, math.nan, out)
    out = F.movedim(out, -1, 0)                                              # (Q, ...)
    if keepdim:
        out = out.unsqueeze(d + 1) if dim is not None else \
            out.reshape((out.shape[0],) + (1,) * input.dim())
    return out[0] if q_values is not None else out


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The ``q``-quantiles (a number or 1-D tensor in [0, 1]) along ``dim``, or of all
    elements, with PyTorch's interpolation modes; NaN where a lane has a NaN."""
    return _quantile(input, q, dim, keepdim, interpolation, False)


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """``quantile`` of the numbers of each lane, ignoring NaNs."""
    return _quantile(input, q, dim, keepdim, interpolation, True)


def mode(input, dim=-1, keepdim=False):
    """The most frequent value of each lane (the smallest of equally frequent ones) and
    the index of its last occurrence: runs of the stable ascending sort, counted with a
    ``scatter_add`` of ones at each element's run number."""
    if input.dim() == 0:
        normalize_dim(dim, 0)
        return mode_result(F.clone(input), F.zeros_like(input, dtypes.int64))
    d = normalize_dim(dim, input.dim())
    n = input.shape[d]
    if n == 0:
        raise IndexError(f"mode(): Expected reduction dim {d} to have non-zero size "
                         f"(input {_describe(input)})")
    values, indices = _sorted_along(input, d, False)
    if n == 1:
        return _pick(values, indices, d, 0, keepdim, mode_result)
    s = values.detach()
    later, earlier = F.narrow(s, d, 1, n - 1), F.narrow(s, d, 0, n - 1)
    differs = later != earlier
    if s.dtype.is_floating_point:                # NaNs count as one value, as PyTorch's
        differs = differs.logical_and(F.isnan(later).logical_and(F.isnan(earlier))
                                      .logical_not())
    first = Tensor._wrap(np.ones(s.shape[:d] + (1,) + s.shape[d + 1:], bool), dtypes.bool_)
    run = F.cumsum(F.cat([first, differs], d).to(dtypes.int64), d) - 1
    counts = F.scatter_add(F.zeros_like(run), d, run, _int_ones(run.shape))
    best = F.argmax(counts, d, keepdim=True)
    last = gather(F.cumsum(counts, d), d, best) - 1
    return _pick(values, indices, d, last, keepdim, mode_result)


# ---- searching ------------------------------------------------------------------------------
def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None,
                 sorter=None):
    """A binary search of ceil(log2(M + 1)) ``gather`` rounds, with PyTorch's comparisons
    (``!(mid >= v)`` goes right, or ``!(mid > v)`` for ``right``), so NaNs land where
    PyTorch's do."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' "
                               f"but got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to "
                               "opposites, got side of left while right was True")
        right = side == "right"
    scalar = not isinstance(input, Tensor)
    values = F.scalar_tensor(input, F.result_type(sorted_sequence, input)) if scalar \
        else input
    if sorted_sequence.dim() == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should have positive "
                           "dimension, but got 0 dimension")
    if sorted_sequence.dim() > 1 and (scalar or sorted_sequence.shape[:-1]
                                      != values.shape[:-1]):
        raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension "
                           f"or the first N-1 dimensions of boundaries tensor and input "
                           f"value tensor must match, but we got boundaries tensor "
                           f"{list(sorted_sequence.shape)} and input value tensor "
                           f"{list(values.shape)}")
    if sorter is not None:
        if sorter.shape != sorted_sequence.shape or sorter.dtype != dtypes.int64:
            raise RuntimeError(f"torch.searchsorted(): sorter must be an int64 tensor of "
                               f"the boundaries' shape {list(sorted_sequence.shape)}, got "
                               f"{_describe(sorter)}")
        sorted_sequence = gather(sorted_sequence, -1, sorter)
    dtype = F.result_type(sorted_sequence, values)
    m = sorted_sequence.shape[-1]
    lanes = math.prod(sorted_sequence.shape[:-1])
    seq = cast(sorted_sequence, dtype).detach().reshape(lanes, m)
    v = cast(values, dtype).detach().reshape(lanes, values.numel() // builtins.max(lanes, 1))
    lo = F.zeros_like(v, dtypes.int64)
    if m == 0:
        return cast(lo.reshape(values.shape), dtypes.int32 if out_int32 else dtypes.int64)
    hi = lo + m
    for _ in range(m.bit_length()):
        active = lo < hi
        mid = F.floor_divide(lo + hi, 2)
        at = gather(seq, 1, F.clamp(mid, max=m - 1))
        right_of = F.logical_not(at > v if right else at >= v)
        lo = where(active.logical_and(right_of), mid + 1, lo)
        hi = where(active.logical_and(right_of.logical_not()), mid, hi)
    out = lo.reshape(values.shape)
    return cast(out, dtypes.int32) if out_int32 else out


def bucketize(input, boundaries, *, out_int32=False, right=False):
    if boundaries.dim() != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim("
                           f"{boundaries.dim()})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


# ---- sampling -------------------------------------------------------------------------------
def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draws from the counter-based ``uniform`` primitive (seeded from ``generator``, so
    ``manual_seed`` reproduces them, and a compiled program draws anew each call): with
    replacement, the category whose cumulative-probability interval holds the draw;
    without, the exponential race (the top ``num_samples`` of p / E, E ~ Exp(1))."""
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, "
                           f"got: {_SCALAR_TYPES[input.dtype]}")
    if input.dim() not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim (got {_describe(input)})")
    categories = input.shape[-1]
    if num_samples <= 0:
        raise RuntimeError(f"cannot sample n_sample <= 0 samples (got {num_samples})")
    if not replacement and num_samples > categories:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if is_concrete(input):
        p = input._data
        if not np.isfinite(p).all() or (p < 0).any():
            raise RuntimeError("probability tensor contains either `inf`, `nan` or "
                               "element < 0")
        if (p.sum(-1) <= 0).any():
            raise RuntimeError("invalid multinomial distribution (sum of probabilities "
                               "<= 0)")
    probs = input.detach().reshape(-1, categories)
    rows = probs.shape[0]
    seed = creation.next_seed(generator)
    if replacement:
        u = bind(P["uniform"], seed, shape=(rows, num_samples), dtype=dtypes.float64)
        cumulative = F.cumsum(cast(probs, dtypes.float64), 1)
        total = F.narrow(cumulative, 1, categories - 1, 1)
        picked = searchsorted(cumulative, u * total, right=True)
        # A draw rounding up to the total picks the last category with any probability.
        last = F.argmax(F.flip(probs > 0, 1).to(dtypes.int32), 1, keepdim=True)
        out = F.minimum(picked, (categories - 1) - last)
    else:
        u = bind(P["uniform"], seed, shape=(rows, categories), dtype=dtypes.float64)
        p = cast(probs, dtypes.float64)
        # Categories without probability race at 0: last, in order, as PyTorch's.
        race = where(p > 0, p / -F.log1p(-u), 0.0)
        out = topk(race, num_samples, 1).indices
    return out.reshape(input.shape[:-1] + (num_samples,))


# ---- scatters -------------------------------------------------------------------------------
def _int_ones(shape) -> Tensor:
    return Tensor._wrap(np.ones(shape, np.int64), dtypes.int64)


def _index(index, name) -> Tensor:
    if not isinstance(index, Tensor) or index.dtype.category != 1:
        got = index.dtype.name if isinstance(index, Tensor) else type(index).__name__
        raise RuntimeError(f"{name}(): Expected dtype int64 for index (got {got})")
    return cast(index, dtypes.int64)


def _blank(x) -> Tensor:
    """What scattered values are added onto: -0.0 for floats, so that a written -0.0
    stays -0.0 (0.0 + -0.0 would be 0.0)."""
    fill = -0.0 if x.dtype.is_floating_point else 0
    return Tensor._wrap(np.full(x.shape, fill, x.dtype.np), x.dtype)


def _scatter_writes(x, dim, index) -> Tensor:
    """How many index entries point at each element of x (int64, x's shape)."""
    return F.scatter_add(F.zeros_like(x, dtypes.int64), dim, index, _int_ones(index.shape))


def _source(x, index, src, value, name) -> Tensor:
    if src is None:
        if isinstance(value, Tensor):
            value = value.item()
        return Tensor._wrap(np.full(index.shape, value, x.dtype.np), x.dtype)
    if not isinstance(src, Tensor):
        return Tensor._wrap(np.full(index.shape, src, x.dtype.np), x.dtype)
    if src.dtype != x.dtype:
        raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype (self "
                           f"{_describe(x)}, src {_describe(src)})")
    return src


def _check_scatter_shapes(x, dim, index, src, name):
    if index.dim() != x.dim() or src.dim() != x.dim() and index.numel():
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions "
                           f"as self tensor (index {_describe(index)}, self {_describe(x)})")
    for a in range(x.dim()):
        if index.shape[a] > src.shape[a] or a != dim and index.shape[a] > x.shape[a]:
            raise RuntimeError(f"{name}(): Expected index {list(index.shape)} to be smaller "
                               f"than self {list(x.shape)} apart from dimension {dim} and to "
                               f"be smaller size than src {list(src.shape)}")


def _add_written(x, dim, index, src) -> Tensor:
    """scatter_add of src onto a blank x (bools as an or, through int64)."""
    if x.dtype == dtypes.bool_:
        return F.scatter_add(F.zeros_like(x, dtypes.int64), dim, index,
                             cast(src, dtypes.int64)) > 0
    return F.scatter_add(_blank(x), dim, index, src)


def _as_vectors(op):
    """A scatter of 0-dim tensors is the scatter of 1-element vectors, reshaped back."""
    def scatter_op(input, dim, index, src=None, *args, **kwargs):
        if input.dim() or index.dim():
            return op(input, dim, index, src, *args, **kwargs)
        normalize_dim(dim, 1)
        src = src.reshape(1) if isinstance(src, Tensor) else src
        return op(input.reshape(1), 0, index.reshape(1), src, *args, **kwargs).reshape(())
    scatter_op.__name__, scatter_op.__doc__ = op.__name__, op.__doc__
    return scatter_op


def _last_writes(index, dim) -> Tensor:
    """Whether each index entry is the last along ``dim`` to name its position (where
    several name one, the last write wins, as in PyTorch's CPU loops): in the stable
    sort of the index, the entries followed by another value or by nothing."""
    m = index.shape[dim]
    if m <= 1:
        return Tensor._wrap(np.ones(index.shape, bool), dtypes.bool_)
    order = _sort_positions(index.detach(), dim, False)
    ordered = gather(index, dim, order)
    differs = F.narrow(ordered, dim, 0, m - 1) != F.narrow(ordered, dim, 1, m - 1)
    end = Tensor._wrap(np.ones(index.shape[:dim] + (1,) + index.shape[dim + 1:], bool),
                       dtypes.bool_)
    last = F.cat([differs, end], dim).to(dtypes.int64)
    return F.scatter_add(F.zeros_like(index), dim, order, last) > 0


def _blank_value(x) -> Tensor:
    return F._operand(-0.0 if x.dtype.is_floating_point else 0, x.dtype)


@_as_vectors
def scatter(input, dim, index, src=None, value=None, *, reduce=None):
    """Written elements take the written value; where several entries write one
    element the last wins, as in PyTorch's CPU loops (the gradient goes to that one,
    where PyTorch's goes to each)."""
    dim = normalize_dim(dim, builtins.max(input.dim(), 1))
    index = _index(index, "scatter")
    src_given = src
    src = _source(input, index, src, value, "scatter")
    _check_scatter_shapes(input, dim, index, src, "scatter")
    if reduce is not None and isinstance(src_given, Tensor):
        warnings.warn("The reduce argument of torch.scatter with Tensor src is deprecated "
                      "and will be removed in a future PyTorch release. Use "
                      "torch.scatter_reduce instead for more reduction options.", UserWarning,
                      stacklevel=2)
    if reduce is None:
        written = _scatter_writes(input, dim, index) > 0
        if not isinstance(src_given, Tensor):      # one value: which write wins is moot
            fill = value if src_given is None else src_given
            fill = fill.item() if isinstance(fill, Tensor) else fill
            return where(written, F._operand(fill, input.dtype), input)
        kept = where(_last_writes(index, dim), _trim(src, index.shape), _blank_value(input))
        return where(written, _add_written(input, dim, index, kept), input)
    if reduce == "add":
        return F.scatter_add(input, dim, index, src)
    if reduce == "multiply":
        return _scatter_dense(input, dim, index, src, "prod", True)
    raise RuntimeError(f"reduce argument must be either add or multiply (got {reduce!r})")


@_as_vectors
def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    dim = normalize_dim(dim, builtins.max(input.dim(), 1))
    index = _index(index, "scatter_reduce")
    src = _source(input, index, src, None, "scatter_reduce")
    _check_scatter_shapes(input, dim, index, src, "scatter_reduce")
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, "
                           f"got {reduce}")
    if reduce in ("prod", "amax", "amin"):
        return _scatter_dense(input, dim, index, src, reduce, include_self)
    writes = _scatter_writes(input, dim, index)
    written = writes > 0
    base = input if include_self else where(written, F._operand(0, input.dtype), input)
    total = F.scatter_add(base, dim, index, _trim(src, index.shape))
    if reduce == "sum":
        return total
    count = writes + 1 if include_self else F.clamp(writes, min=1)
    mean = total / count.to(input.dtype) if input.dtype.is_floating_point \
        else F.floor_divide(total, count.to(input.dtype))
    return where(written, mean, input)


def _trim(src, shape) -> Tensor:
    """The leading ``shape`` block of src (the part a scatter reads)."""
    if tuple(src.shape) == tuple(shape):
        return src
    return F._slice(src, [0] * src.dim(), list(shape), [1] * src.dim())


def _identity(reduce, dtype):
    if reduce == "prod":
        return 1
    if dtype.is_floating_point:
        return -math.inf if reduce == "amax" else math.inf
    if dtype == dtypes.bool_:
        return reduce == "amin"
    info = np.iinfo(dtype.np)
    return int(info.min if reduce == "amax" else info.max)


def _scatter_dense(input, dim, index, src, reduce, include_self):
    """Products and extrema, which no primitive accumulates: every index entry is
    compared with every position of ``dim`` (an (m, n) match per lane), the matched
    sources reduced over the entries, with the input as one more entry when
    ``include_self``.  Ties share the gradient evenly, as PyTorch's amax/amin."""
    nd = input.dim()
    n = input.shape[dim]
    src = _trim(src, index.shape)
    positions = _arange(n).reshape((n,) + (1,) * (nd - dim - 1))
    match = F.unsqueeze(index, dim + 1) == positions
    ident = F._operand(_identity(reduce, input.dtype), input.dtype)
    entries = where(match, F.unsqueeze(src, dim + 1), ident)
    widths = [(0, 0 if a == dim else input.shape[a] - index.shape[a], 0) for a in range(nd)]
    widths.insert(dim + 1, (0, 0, 0))
    entries = F._pad(entries, widths, _identity(reduce, input.dtype))
    if include_self:
        entries = F.cat([F.unsqueeze(input, dim), entries], dim)
    reduced = {"prod": F.prod, "amax": F.amax, "amin": F.amin}[reduce](entries, dim)
    return where(_scatter_writes(input, dim, index) > 0, reduced, input)


def index_copy(input, dim, index, source):
    """Slices of ``source`` replace the slices of input at ``index``; of repeated
    indices the last wins, as in PyTorch's CPU loop."""
    dim = normalize_dim(dim, builtins.max(input.dim(), 1))
    index = _index(index, "index_copy")
    if source.dtype != input.dtype:
        raise RuntimeError(f"index_copy_(): self and source expected to have the same "
                           f"dtype, but got (self) {input.dtype.name} and (source) "
                           f"{source.dtype.name}")
    written = _index_written(input, dim, index)
    if index.numel() > 1:
        last = _last_writes(index.reshape(-1), 0)
        source = where(last.reshape((-1,) + (1,) * (source.dim() - dim - 1)), source,
                       _blank_value(source))
    if input.dtype == dtypes.bool_:
        placed = F.index_add(F.zeros_like(input, dtypes.int64), dim, index,
                             cast(source, dtypes.int64)) > 0
    else:
        placed = F.index_add(_blank(input), dim, index, source)
    return where(written, placed, input)


def _index_written(input, dim, index) -> Tensor:
    """Whether ``index`` names each position of ``dim``, shaped to broadcast on input."""
    n = input.shape[dim] if input.dim() else 1
    counts = F.index_add(F.zeros_like(_arange(n)), 0, index.reshape(-1),
                         _int_ones((index.numel(),)))
    return (counts > 0).reshape((n,) + (1,) * (input.dim() - dim - 1)) if input.dim() \
        else (counts > 0).reshape(())


def index_fill(input, dim, index, value):
    dim = normalize_dim(dim, builtins.max(input.dim(), 1))
    index = _index(index, "index_fill")
    if isinstance(value, Tensor):
        if value.dim():
            raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but "
                               f"got tensor with {value.dim()} dimension(s).")
        value = cast(value, input.dtype)
    else:
        value = F._operand(value, input.dtype)
    return where(_index_written(input, dim, index), value, input)


def index_put(input, indices, values, accumulate=False):
    """``input[indices] = values`` (or ``+=`` with ``accumulate``) out of place: the
    indexed leading dims are flattened into one, written with ``index_add``."""
    indices = list(indices)
    if len(indices) > input.dim():
        raise IndexError(f"too many indices for tensor of dimension {input.dim()} (got "
                         f"{len(indices)})")
    flat_ix = []
    for ix in indices:
        if ix.dtype == dtypes.bool_:
            flat_ix.extend(nonzero(ix, as_tuple=True))
        elif ix.dtype.category != 1:
            raise IndexError(f"tensors used as indices must be long, int, byte or bool "
                             f"tensors (got {_describe(ix)})")
        else:
            flat_ix.append(cast(ix, dtypes.int64))
    k = len(flat_ix)
    shape = np.broadcast_shapes(*[tuple(ix.shape) for ix in flat_ix])
    flat = None
    for d, ix in enumerate(flat_ix):
        size = input.shape[d]
        if is_concrete(ix) and ix.numel() and ((ix._data < -size) | (ix._data >= size)).any():
            bad = ix._data[(ix._data < -size) | (ix._data >= size)].flat[0]
            raise IndexError(f"index {bad} is out of bounds for dimension {d} with size "
                             f"{size}")
        ix = where(ix < 0, ix + size, ix)
        flat = ix if flat is None else flat * size + ix
    rest = input.shape[k:]
    if values.dtype != input.dtype:
        raise RuntimeError(f"Index put requires the source and destination dtypes match, "
                           f"got {input.dtype.name} for the destination and "
                           f"{values.dtype.name} for the source.")
    count = math.prod(shape)
    values = F.expand(values, tuple(shape) + tuple(rest)).reshape((count,) + tuple(rest))
    flat = F.expand(flat, tuple(shape)).reshape(count)
    lanes = input.reshape((math.prod(input.shape[:k]),) + tuple(rest))
    if accumulate:
        out = F.index_add(lanes, 0, flat, values)
    else:
        out = index_copy(lanes, 0, flat, values)
    return out.reshape(input.shape)


def index_put_(input, indices, values, accumulate=False):
    return apply_inplace(input, "index_put_",
                         lambda s: index_put(s, indices, values, accumulate))


def take(input, index):
    index = _index(index, "take")
    n = input.numel()
    if is_concrete(index) and index.numel():
        bad = index._data[(index._data < -n) | (index._data >= n)]
        if bad.size:
            raise IndexError(f"out of range: tried to access index {bad.flat[0]} on a tensor "
                             f"of {n} elements.")
    return bind(P["take"], input.reshape(-1), where(index < 0, index + n, index), axis=0)


def take_along_dim(input, indices, dim=None):
    indices = _index(indices, "take_along_dim")
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    if input.dim() != indices.dim():
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {input.dim()} dimensions for "
                           f"input, and {indices.dim()} dimensions for indices")
    dim = normalize_dim(dim, input.dim())
    shape = [builtins.max(a, b) for a, b in zip(input.shape, indices.shape)]
    in_shape, ix_shape = list(shape), list(shape)
    in_shape[dim], ix_shape[dim] = input.shape[dim], indices.shape[dim]
    return gather(F.expand(input, tuple(in_shape)), dim, F.expand(indices, tuple(ix_shape)))


def masked_scatter(input, mask, source):
    """Masked elements take source's elements in order: the k-th True takes
    ``source.flatten()[k]`` (a ``take`` at the running count of the mask)."""
    if mask.dtype != dtypes.bool_:
        raise RuntimeError(f"masked_scatter_ only supports boolean masks, but got mask "
                           f"with dtype {mask.dtype.name}")
    if source.dtype != input.dtype:
        raise RuntimeError(f"masked_scatter: expected self and source to have same dtypes "
                           f"but got {input.dtype.name} and {source.dtype.name}")
    mask = F.expand(mask, input.shape)
    count = F.cumsum(mask.reshape(-1), 0)
    if is_concrete(mask) and mask.numel() and int(count._data[-1]) > source.numel():
        raise RuntimeError("Number of elements of source < number of ones in mask")
    if source.numel() == 0:
        return F.clone(input)
    at = F.clamp(count - 1, 0, source.numel() - 1)
    picked = bind(P["take"], source.reshape(-1), at, axis=0).reshape(input.shape)
    return where(mask, picked, input)


def histc(input, bins=100, min=0, max=0):
    """Counts in ``bins`` equal bins over [min, max] (the data's range when both are 0),
    the last bin closed; elements outside (and NaNs) are not counted."""
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"\"histogram_cpu\" not implemented for "
                                  f"'{_SCALAR_TYPES[input.dtype]}'")
    if bins <= 0:
        raise RuntimeError(f"torch.histc: bins must be > 0, but got {bins} for dimension 0")
    if min > max:
        raise RuntimeError(f"torch.histc: max must be larger than min (got min={min}, "
                           f"max={max})")
    x = input.detach().reshape(-1)
    if min == max and x.numel():
        lo, hi = F.amin(x), F.amax(x)
    else:
        lo, hi = F._operand(min, x.dtype), F._operand(max, x.dtype)
    if is_concrete(lo) and is_concrete(hi) and not np.isfinite([lo._data, hi._data]).all():
        raise RuntimeError(f"torch.histc: range of [{lo.item():g}, {hi.item():g}] is not "
                           f"finite")
    same = lo == hi
    lo, hi = where(same, lo - 1, lo), where(same, hi + 1, hi)
    inside = (x >= lo).logical_and(x <= hi)
    position = F.floor((x - lo) * bins / (hi - lo)).to(dtypes.int64)
    position = where(inside, F.clamp(position, 0, bins - 1), 0)
    counts = Tensor._wrap(np.zeros(bins, x.dtype.np), x.dtype)
    return F.index_add(counts, 0, position, inside.to(x.dtype))


# ---- data-dependent output shapes (graph breaks when traced) -------------------------------
def nonzero(input, *, as_tuple=False):
    a = _values_of(input, "torch.nonzero")
    if as_tuple:
        return tuple(_constant(ix.astype(np.int64)) for ix in np.nonzero(np.atleast_1d(a)))
    return _constant(np.argwhere(a).astype(np.int64))


def argwhere(input):
    _values_of(input, "torch.argwhere")
    return nonzero(input)


def where(condition, input=None, other=None):
    """``where(condition)`` is ``nonzero(condition, as_tuple=True)``."""
    if input is None and other is None:
        _values_of(condition, "torch.where(condition)")
        return nonzero(condition, as_tuple=True)
    return F.where(condition, input, other)


def masked_select(input, mask):
    if mask.dtype != dtypes.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask (got "
                           f"{_describe(mask)})")
    m = _values_of(mask, "torch.masked_select")
    shape = np.broadcast_shapes(tuple(input.shape), tuple(mask.shape))
    picked = _constant(np.flatnonzero(np.broadcast_to(m, shape)).astype(np.int64))
    return bind(P["take"], F.expand(input, shape).reshape(-1), picked, axis=0)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """Sorted distinct values (or slices along ``dim``); NaNs are each distinct, as
    PyTorch's."""
    a = _values_of(input, "torch.unique")
    if dim is None:
        flat = a.reshape(-1)
        values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True,
                                            equal_nan=False)
        inverse = inverse.reshape(a.shape)
    else:
        dim = normalize_dim(dim, a.ndim)
        values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True,
                                            axis=dim)
        inverse = inverse.reshape(-1)
    out = [_constant(values.astype(a.dtype))]
    if return_inverse:
        out.append(_constant(inverse.astype(np.int64)))
    if return_counts:
        out.append(_constant(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    a = _values_of(input, "torch.unique_consecutive")
    if dim is None:
        lanes = a.reshape(-1, 1)
    else:
        dim = normalize_dim(dim, a.ndim)
        lanes = np.moveaxis(a, dim, 0).reshape(a.shape[dim], -1)
    starts = np.ones(len(lanes), bool)
    starts[1:] = (lanes[1:] != lanes[:-1]).any(axis=1)
    run = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    values = a.reshape(-1)[first] if dim is None else np.take(a, first, axis=dim)
    out = [_constant(np.ascontiguousarray(values))]
    if return_inverse:
        out.append(_constant(run.reshape(a.shape if dim is None else -1).astype(np.int64)))
    if return_counts:
        out.append(_constant(np.diff(np.append(first, len(lanes))).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input, weights=None, minlength=0):
    a = _values_of(input, "torch.bincount")
    if input.dim() != 1 or input.dtype.category != 1 or (a.size and a.min() < 0):
        raise RuntimeError(f"bincount only supports 1-d non-negative integral inputs. "
                           f"(got {_describe(input)})")
    if minlength < 0:
        raise RuntimeError(f"minlength should be >= 0 (got {minlength})")
    if weights is None:
        return _constant(np.bincount(a, minlength=minlength).astype(np.int64))
    if weights.shape != input.shape:
        raise RuntimeError(f"weights should be 1-d and have the same length as input "
                           f"(input {_describe(input)}, weights {_describe(weights)})")
    dtype = weights.dtype if weights.dtype.is_floating_point else dtypes.float64
    w = weights._concrete("torch.bincount")
    return _constant(np.bincount(a, weights=w, minlength=minlength).astype(dtype.np))


def _repeat_positions(repeats, output_size) -> Tensor:
    """The source position of each output element of a repeat by ``repeats`` (1-D):
    computed eagerly (a graph break when traced), or, given ``output_size``, as a
    ``searchsorted`` of the output positions in the running total (traceable)."""
    if repeats.dim() > 1 or repeats.dtype.category != 1:
        raise RuntimeError(f"repeat_interleave only accept 1D vector as repeat (got "
                           f"{_describe(repeats)})")
    if output_size is None:
        counts = _values_of(repeats, "torch.repeat_interleave")
    elif is_concrete(repeats):
        counts = repeats._data
    else:
        counts = None
    if counts is not None:
        if counts.size and counts.min() < 0:
            raise RuntimeError("repeats can not be negative")
        if output_size is not None and counts.sum() != output_size:
            raise RuntimeError("allocated size does not match required size")
    if output_size is None:
        return _constant(np.repeat(np.arange(counts.size), counts).astype(np.int64))
    ends = F.cumsum(cast(repeats.reshape(-1), dtypes.int64), 0)
    return searchsorted(ends, _arange(output_size), right=True)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Integer repeats are a broadcast and a reshape; tensor repeats pick their values
    with ``index_select`` at ``_repeat_positions`` (so they keep their gradients)."""
    if repeats is None:                      # repeat_interleave(repeats)
        return cast(_repeat_positions(input, output_size), input.dtype)
    if dim is None:
        input, dim = input.reshape(-1), 0
    dim = normalize_dim(dim, builtins.max(input.dim(), 1))
    if input.dim() == 0:
        input = input.reshape(1)
    n = input.shape[dim]
    if isinstance(repeats, Tensor) and repeats.dim() and repeats.numel() != 1:
        if repeats.dim() == 1 and repeats.shape[0] != n:
            raise RuntimeError(f"repeats must have the same size as input along dim, but got "
                               f"repeats.size(0) = {repeats.shape[0]} and input.size({dim}) "
                               f"= {n}")
        return F.index_select(input, dim, _repeat_positions(repeats, output_size))
    times = int(repeats.item() if isinstance(repeats, Tensor) else repeats)
    if times < 0:
        raise RuntimeError("repeats can not be negative")
    spread = F.unsqueeze(input, dim + 1)
    shape = list(spread.shape)
    shape[dim + 1] = times
    out_shape = list(input.shape)
    out_shape[dim] = n * times
    return F.expand(spread, tuple(shape)).reshape(tuple(out_shape))
