"""Scans and reductions beyond the primitives: ``cumprod``, ``cummax``/``cummin`` (with
indices), ``logcumsumexp``, ``diff``, ``aminmax``, NaN-ignoring sums and means,
``var_mean``/``std_mean``, ``dist``, ``renorm``.

The scans are log-step (Hillis-Steele) scans like ``functional.cumsum``: each step
combines every position with the partial result ``shift`` places before it, so they
trace to a fixed graph, and their gradient is the exact gradient of the combining
function (a ``cumprod`` through zeros included)."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from graphc import dtypes
from graphc import functional as F
from graphc.composite import logaddexp
from graphc.pointwise import refuse_kernel
from graphc.tensor import Tensor, normalize_dim

cummax_result = namedtuple("cummax", ["values", "indices"])
cummin_result = namedtuple("cummin", ["values", "indices"])
aminmax_result = namedtuple("aminmax", ["min", "max"])


def _shifted(x, dim, shift):
    """x moved ``shift`` places forward along ``dim``, zeros coming in."""
    stops = list(x.shape)
    stops[dim] = x.shape[dim] - shift
    part = F._slice(x, [0] * x.dim(), stops, [1] * x.dim())
    return F._pad(part, [(shift if a == dim else 0, 0, 0) for a in range(x.dim())], 0)


def _scan(parts, dim, combine):
    """Inclusive scan of the tensors ``parts`` (one shape, at least 1-D) along ``dim``:
    ``combine(earlier, later)`` joins two partial results (tuples of tensors)."""
    n = parts[0].shape[dim]
    shape = [1] * parts[0].dim()
    shape[dim] = n
    position = Tensor._wrap(np.arange(n).reshape(shape), dtypes.int64)
    shift = 1
    while shift < n:
        earlier = tuple(_shifted(p, dim, shift) for p in parts)
        joined = combine(earlier, parts)
        has_earlier = position >= shift
        parts = tuple(F.where(has_earlier, j, p) for j, p in zip(joined, parts))
        shift *= 2
    return parts


def _scan_input(x, dim):
    """x as at least 1-D and ``dim`` normalised."""
    dim = normalize_dim(dim, x.dim())
    return (x.reshape(1) if x.dim() == 0 else x), dim


def cumprod(input, dim, *, dtype=None):
    if dtype is not None:
        input = F.cast(input, dtype)
    elif not input.dtype.is_floating_point:
        input = F.cast(input, dtypes.int64)       # as cumsum: integers and bools in int64
    x, dim = _scan_input(input, dim)
    (out,) = _scan((x,), dim, lambda e, l: (e[0] * l[0],))
    return out.reshape(input.shape) if x.shape[dim] > 1 else F.clone(input)


def logcumsumexp(input, dim):
    refuse_kernel("logcumsumexp_out_cpu", "logcumsumexp", input)
    x, dim = _scan_input(input, dim)
    (out,) = _scan((x,), dim, lambda e, l: (logaddexp(e[0], l[0]),))
    return out.reshape(input.shape) if x.shape[dim] > 1 else F.clone(input)


def _cumulative_extremum(input, dim, greater, result):
    """PyTorch's rule, position by position: take the new value when it is NaN, or when
    the running value is not NaN and the new one is at least as large (so the last of
    equal values wins).  The rule is associative, so segments join by it too."""
    x, dim = _scan_input(input, dim)
    shape = [1] * x.dim()
    shape[dim] = x.shape[dim]
    index = F.expand(Tensor._wrap(np.arange(x.shape[dim]).reshape(shape), dtypes.int64),
                     x.shape)
    floating = x.dtype.is_floating_point

    def combine(earlier, later):
        (v1, i1), (v2, i2) = earlier, later
        take = (v2 >= v1) if greater else (v2 <= v1)
        if floating:
            take = F.isnan(v2).logical_or(F.isnan(v1).logical_not().logical_and(take))
        return F.where(take, v2, v1), F.where(take, i2, i1)

    values, indices = _scan((x, index), dim, combine)
    if x.shape[dim] <= 1:
        values = F.clone(x)
    return result(values.reshape(input.shape), indices.reshape(input.shape))


def cummax(input, dim):
    return _cumulative_extremum(input, dim, True, cummax_result)


def cummin(input, dim):
    return _cumulative_extremum(input, dim, False, cummin_result)


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along dim, after joining ``prepend`` and ``append``;
    for bools, as PyTorch, the difference is the exclusive or."""
    if input.dim() == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    dim = normalize_dim(dim, input.dim())
    pieces = [p for p in (prepend, input, append) if p is not None]
    x = F.cat(pieces, dim) if len(pieces) > 1 else input
    for _ in range(n):
        size = x.shape[dim]
        if size == 0:
            break
        later = F.narrow(x, dim, 1, size - 1)
        earlier = F.narrow(x, dim, 0, size - 1)
        x = later.logical_xor(earlier) if x.dtype == dtypes.bool_ else later - earlier
    return x


def aminmax(input, *, dim=None, keepdim=False):
    if dim is None and input.numel() == 0:
        raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the "
                           "operation has no identity.")
    if dim is not None and input.dim() and input.shape[normalize_dim(dim, input.dim())] == 0:
        raise IndexError(f"aminmax: Expected reduction dim {dim} to have non-zero size.")
    if dim is None and keepdim and input.dim():
        lo, hi = F.amin(input), F.amax(input)
        shape = (1,) * input.dim()
        return aminmax_result(lo.reshape(shape), hi.reshape(shape))
    return aminmax_result(F.amin(input, dim, keepdim), F.amax(input, dim, keepdim))


def nansum(input, dim=None, keepdim=False, *, dtype=None):
    if input.dtype.is_floating_point:
        input = F.where(F.isnan(input), F._operand(0, input.dtype), input)
    return F.sum(input, dim, keepdim, dtype=dtype)


def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = F.cast(input, dtype)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"nanmean(): expected input to have floating point or complex "
                           f"dtype but got {input.dtype.name}")
    present = F.isnan(input).logical_not()
    return nansum(input, dim, keepdim) / F.sum(F.cast(present, input.dtype), dim, keepdim)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool) and unbiased is None:       # var_mean(x, False)
        dim, unbiased = None, dim
    return (F.var(input, dim, unbiased, keepdim, correction),
            F.mean(input, dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool) and unbiased is None:
        dim, unbiased = None, dim
    return (F.std(input, dim, unbiased, keepdim, correction),
            F.mean(input, dim, keepdim))


def dist(input, other, p=2):
    """The p-norm of input - other (broadcast), over every element."""
    return F.norm(input - other, p)


def renorm(input, p, dim, maxnorm):
    """Each slice along ``dim`` whose p-norm exceeds ``maxnorm`` scaled down to it
    (PyTorch's factor, maxnorm / (norm + 1e-7))."""
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"renorm: input needs to be a floating point tensor, got "
                           f"{input.dtype.name}")
    if p <= 0:
        raise RuntimeError(f"renorm: non-positive-norm not supported (p={p})")
    if input.dim() <= 1:
        raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {input.dim()} "
                           f"dimensions")
    dim = normalize_dim(dim, input.dim())
    axes = tuple(a for a in range(input.dim()) if a != dim)
    norms = F.norm(input, p, axes, keepdim=True)
    over = norms > maxnorm
    factor = F.where(over, maxnorm / (F.where(over, norms, 1.0) + 1e-7), 1.0)
    return input * factor


def _trapezoids(y, x, dx, dim):
    """The areas of the trapezoids between neighbours along dim."""
    dim = normalize_dim(dim, y.dim())
    n = y.shape[dim]
    if n == 0:
        return F.narrow(y, dim, 0, 0), dim
    mean_heights = (F.narrow(y, dim, 1, n - 1) + F.narrow(y, dim, 0, n - 1)) * 0.5
    if x is None:
        return mean_heights * (1 if dx is None else dx), dim
    if x.dim() == 1:
        shape = [1] * y.dim()
        shape[dim] = x.shape[0]
        x = F.reshape(x, tuple(shape))
    widths = F.narrow(x, dim, 1, n - 1) - F.narrow(x, dim, 0, n - 1)
    return mean_heights * widths, dim


def trapezoid(y, x=None, *, dx=None, dim=-1):
    if x is not None and dx is not None:
        raise RuntimeError("trapezoid: received both x and dx; pass one of them")
    areas, dim = _trapezoids(y, x, dx, dim)
    return F.sum(areas, dim)


def trapz(y, x=None, *, dx=None, dim=-1):
    return trapezoid(y, x, dx=dx, dim=dim)


def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    areas, dim = _trapezoids(y, x, dx, dim)
    return F.cumsum(areas, dim)


def cov(input, *, correction=1, fweights=None, aweights=None):
    """The covariance of the variables in the rows of ``input`` (observations in the
    columns), with integer frequency and real observation weights, as numpy's."""
    if input.dim() > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an "
                           f"input with {input.dim()} dimensions")
    x = input.reshape(1, -1) if input.dim() < 2 else input
    if not x.dtype.is_floating_point:
        x = F.cast(x, dtypes.default_float)
    n = x.shape[1]
    weights = None
    if fweights is not None:
        weights = F.cast(fweights, x.dtype)
    if aweights is not None:
        weights = F.cast(aweights, x.dtype) if weights is None else weights * aweights
    if weights is None:
        mean = F.mean(x, 1, keepdim=True)
        norm = n - correction
    else:
        total = F.sum(weights)
        mean = F.sum(x * weights, 1, keepdim=True) / total
        norm = total - (correction * F.sum(weights * aweights) / total if aweights is not None
                        else correction)
    centered = x - mean
    scaled = centered * weights if weights is not None else centered
    out = F.matmul(scaled, F.t(centered)) / F.clamp(F._operand(norm, x.dtype)
                                                    if not isinstance(norm, Tensor) else norm,
                                                    min=0)
    return out.reshape(()) if input.dim() < 2 else out


def corrcoef(input):
    """Pearson's correlation coefficients, clipped into [-1, 1] as numpy's."""
    c = cov(input)
    if c.dim() == 0:
        return c / c
    d = F.sqrt(F.diag(c))
    return F.clamp(c / F.unsqueeze(d, 1) / F.unsqueeze(d, 0), -1, 1)
