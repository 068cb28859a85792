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
  values and of a count of writes; the products and extrema (which no primitive
  accumulates) compare every index with every position of the scattered dim.
- Ops whose **output shape depends on values** (``nonzero``, ``argwhere``,
  ``where(cond)``, ``masked_select``, ``unique``, ``unique_consecutive``, ``bincount``,
  ``repeat_interleave`` with tensor repeats) compute their indices with numpy and are
  graph breaks inside ``graphc.compile`` (they then run eagerly); the values still come
  from ``take``, so they keep their gradients.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from graphc import context, creation, dtypes
from graphc import functional as F
from graphc.dispatch import bind
from graphc.functional import cast, gather, is_concrete, where
from graphc.indexing import apply_inplace
from graphc.ops import REGISTRY as P
from graphc.tensor import Tensor, normalize_dim


def _named(name, fields="values indices"):
    cls = namedtuple(name, fields.split())
    cls.__module__ = "graphc.return_types"
    return cls


sort_result = _named("sort")
topk_result = _named("topk")
kthvalue_result = _named("kthvalue")
median_result = _named("median")
nanmedian_result = _named("nanmedian")
mode_result = _named("mode")


def _constant(array) -> Tensor:
    array = np.asarray(array)
    return Tensor._wrap(array, dtypes.from_numpy(array.dtype))


def _arange(n, dtype=dtypes.int64) -> Tensor:
    return Tensor._wrap(np.arange(n, dtype=dtype.np), dtype)


def _describe(x) -> str:
    return f"{x.dtype.name}{list(x.shape)}"


def _values_of(x, what: str) -> np.ndarray:
    """x's array for an op whose output shape depends on x's values: a graph break
    naming the op and the user's line when x is traced."""
    if not is_concrete(x):
        raise context.graph_break(what)
    return x._data


# ---- sorting --------------------------------------------------------------------------------
def _before(a, ia, b, ib, descending):
    """Whether element (a, ia) comes before (b, ib): by value (NaN the largest), ties by
    position, so no two elements are equivalent and the order is the stable one."""
    strict = a > b if descending else a < b
    same = a == b
    if a.dtype.is_floating_point:
        a_nan, b_nan = a != a, b != b
        first_nan = a_nan.logical_and(b_nan.logical_not()) if descending else \
            b_nan.logical_and(a_nan.logical_not())
        strict = strict.logical_or(first_nan)
        same = same.logical_or(a_nan.logical_and(b_nan))
    return strict.logical_or(same.logical_and(ia < ib))


def _sorting_network(x, descending):
    """Positions of the stable sort of x's last dim, by a bitonic network over
    (value, position) pairs padded to a power of two with values that sort last."""
    n = x.shape[-1]
    width = 1 << builtins.max(n - 1, 0).bit_length()
    lead = x.shape[:-1]
    keys = cast(x, dtypes.int64) if x.dtype == dtypes.bool_ else x
    if keys.dtype.is_floating_point:
        fill = -math.inf if descending else math.nan
    else:
        info = np.iinfo(keys.dtype.np)
        fill = int(info.min if descending else info.max)
    keys = F._pad(keys, [(0, 0, 0)] * len(lead) + [(0, width - n, 0)], fill)
    pos = F.expand(_arange(width), lead + (width,))
    block = 2
    while block <= width:
        step = block // 2
        while step >= 1:
            keys, pos = _compare_exchange(keys, pos, lead, width, block, step, descending)
            step //= 2
        block *= 2
    return F.narrow(pos, -1, 0, n)


def _compare_exchange(keys, pos, lead, width, block, step, descending):
    """One network stage: element i meets i ^ step; blocks of ``block`` elements sort
    in alternating directions (the first block of each pair keeps the target order)."""
    pairs = width // (2 * step)
    split = lead + (pairs, 2, step)
    keys, pos = keys.reshape(split), pos.reshape(split)
    nd = len(split)
    lo = [0] * nd, list(split[:-2]) + [1, step], [1] * nd
    hi = [0] * (nd - 2) + [1, 0], list(split), [1] * nd
    k_lo, k_hi = F._slice(keys, *lo), F._slice(keys, *hi)
    p_lo, p_hi = F._slice(pos, *lo), F._slice(pos, *hi)
    reverse = _constant(((np.arange(pairs) * 2 * step) & block) != 0).reshape(pairs, 1, 1)
    swap = _before(k_hi, p_hi, k_lo, p_lo, descending) != reverse
    keys = F.cat([where(swap, k_hi, k_lo), where(swap, k_lo, k_hi)], -2)
    pos = F.cat([where(swap, p_hi, p_lo), where(swap, p_lo, p_hi)], -2)
    return keys.reshape(lead + (width,)), pos.reshape(lead + (width,))


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


def sort(input, dim=-1, descending=False, stable=False):
    """Always stable (PyTorch's CPU sort is, whatever ``stable`` says)."""
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
        if flat.numel() == 0:
            return Tensor._wrap(np.array(math.nan, input.dtype.np), input.dtype)
        return _median(flat, 0, False, ignore_nan, result).values
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


def median(input, dim=None, keepdim=False):
    return _median(input, dim, keepdim, False, median_result)


def nanmedian(input, dim=None, keepdim=False):
    return _median(input, dim, keepdim, True, nanmedian_result)


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
    counts = F.scatter_add(F.zeros_like(run), d, run, Tensor._wrap(np.ones(run.shape, np.int64),
                                                                  dtypes.int64))
    best = F.argmax(counts, d, keepdim=True)
    last = gather(F.cumsum(counts, d), d, best) - 1
    return _pick(values, indices, d, last, keepdim, mode_result)
