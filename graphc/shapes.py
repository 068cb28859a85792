"""Shape functions beyond the primitives' views: ``roll``, ``rot90``, ``tile``,
``meshgrid``, ``cartesian_prod``, ``block_diag``, ``atleast_nd``, ``column_stack``,
``dstack``, ``flipud``/``fliplr``, ``vander``, ``cdist``, ``tril_indices``/``triu_indices``.
All are built from slices, concatenations, ``expand`` and ``reshape``."""
from __future__ import annotations

import warnings

import numpy as np

from graphc import creation, dtypes
from graphc import functional as F
from graphc.reductions import cumprod
from graphc.tensor import Tensor, normalize_dim


def _tensors(args):
    """f(a, b, c) and f([a, b, c]) alike."""
    return list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) \
        else list(args)


def roll(input, shifts, dims=None):
    """Elements shifted along dims (wrapping round); without dims, over the flattened
    tensor, the shape restored."""
    shifts = list(shifts) if isinstance(shifts, (tuple, list)) else [shifts]
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"roll: shifts {shifts} need dims of the same length")
        return F.reshape(roll(F.flatten(input), shifts, 0), input.shape)
    dims = list(dims) if isinstance(dims, (tuple, list)) else [dims]
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:"
                           f"{len(dims)}")
    if input.dim() == 0:
        raise IndexError(f"Dimension specified as {dims[0]} but tensor has no dimensions")
    out = input
    for shift, dim in zip(shifts, dims):
        dim = normalize_dim(dim, input.dim())
        n = input.shape[dim]
        if n == 0 or shift % n == 0:
            continue
        s = shift % n
        out = F.cat([F.narrow(out, dim, n - s, s), F.narrow(out, dim, 0, n - s)], dim)
    return out if out is not input else F.clone(input)


def rot90(input, k=1, dims=(0, 1)):
    """Rotation by 90 degrees k times, from the first of ``dims`` towards the second."""
    dims = list(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.dim() < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.dim()}")
    d0, d1 = normalize_dim(dims[0], input.dim()), normalize_dim(dims[1], input.dim())
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and "
                           f"dim1 = {d1}")
    k %= 4
    if k == 1:
        return F.transpose(F.flip(input, d1), d0, d1)
    if k == 2:
        return F.flip(input, d0, d1)
    if k == 3:
        return F.flip(F.transpose(input, d0, d1), d1)
    return F.clone(input)


def tile(input, dims):
    """repeat, with ``dims`` padded with leading 1s to the input's rank."""
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"tile(): argument 'dims' (position 2) must be tuple of ints, not "
                        f"{type(dims).__name__}")
    dims = (1,) * (input.dim() - len(dims)) + tuple(dims)
    return F.repeat(input, dims)


def meshgrid(*tensors, indexing=None):
    """Coordinate grids: with 'ij' the i-th input varies along dim i; 'xy' swaps the
    first two dims (Cartesian), as numpy's default."""
    tensors = _tensors(tensors)
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass "
                      "the indexing argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but "
                           f"received: {indexing}")
    for t in tensors:
        if t.dim() > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list "
                               f"but got: {t.dtype.name}{list(t.shape)}")
    if len({t.dtype for t in tensors}) > 1:
        raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    swap = indexing == "xy" and len(tensors) >= 2
    order = [1, 0] + list(range(2, len(tensors))) if swap else list(range(len(tensors)))
    sizes = [t.numel() for t in tensors]
    shape = tuple(sizes[i] for i in order)
    grids = []
    for i, t in enumerate(tensors):
        place = order.index(i)
        view = [1] * len(tensors)
        view[place] = sizes[i]
        grids.append(F.expand(F.reshape(t, tuple(view)), shape))
    return tuple(grids)


def cartesian_prod(*tensors):
    tensors = _tensors(tensors)
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return F.stack([F.flatten(g) for g in grids], 1)


def block_diag(*tensors):
    """Matrices (0-D and 1-D inputs as 1-row matrices) along the diagonal, zeros
    elsewhere, at the promoted dtype."""
    tensors = _tensors(tensors)
    if not tensors:
        return creation.empty(1, 0)
    mats = []
    for i, t in enumerate(tensors):
        if t.dim() > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer "
                               f"dimensions. Input {i} has {t.dim()} dimensions")
        mats.append(F.reshape(t, (1, t.numel())) if t.dim() < 2 else t)
    dtype = F.result_type(*tensors)
    width = sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        right = width - left - m.shape[1]
        rows.append(F._pad(F.cast(m, dtype), [(0, 0, 0), (left, right, 0)], 0))
        left += m.shape[1]
    return F.cat(rows, 0)


def atleast_1d(*tensors):
    out = [F.reshape(t, (1,)) if t.dim() == 0 else t for t in _tensors(tensors)]
    return out[0] if len(out) == 1 and isinstance(tensors[0], Tensor) else tuple(out)


def atleast_2d(*tensors):
    out = [F.reshape(t, (1,) * (2 - t.dim()) + tuple(t.shape)) if t.dim() < 2 else t
           for t in _tensors(tensors)]
    return out[0] if len(out) == 1 and isinstance(tensors[0], Tensor) else tuple(out)


def atleast_3d(*tensors):
    """0-D -> (1, 1, 1), 1-D (n) -> (1, n, 1), 2-D (m, n) -> (m, n, 1), as numpy."""
    def lift(t):
        if t.dim() == 0:
            return F.reshape(t, (1, 1, 1))
        if t.dim() == 1:
            return F.reshape(t, (1, t.shape[0], 1))
        if t.dim() == 2:
            return F.unsqueeze(t, -1)
        return t
    out = [lift(t) for t in _tensors(tensors)]
    return out[0] if len(out) == 1 and isinstance(tensors[0], Tensor) else tuple(out)


def column_stack(tensors):
    tensors = list(tensors)
    return F.hstack([F.reshape(t, (t.numel(), 1)) if t.dim() <= 1 else t for t in tensors])


def dstack(tensors):
    return F.cat([atleast_3d(t) for t in tensors], 2)


def flipud(input):
    if input.dim() < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return F.flip(input, 0)


def fliplr(input):
    if input.dim() < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return F.flip(input, 1)


def vander(x, N=None, increasing=False):
    """Columns x^0, x^1, ... x^(N-1) (reversed unless ``increasing``) as a cumulative
    product, so integer inputs stay exact."""
    if x.dim() != 1:
        raise RuntimeError("x must be a one-dimensional tensor.")
    n = x.shape[0] if N is None else N
    if n < 0:
        raise RuntimeError("N must be non-negative.")
    dtype = x.dtype if x.dtype.is_floating_point else dtypes.int64
    x = F.cast(x, dtype)
    if n == 0:
        return F.narrow(F.reshape(x, (x.shape[0], 1)), 1, 0, 0)
    ones = F.expand(F.reshape(F._operand(1, dtype), (1, 1)), (x.shape[0], 1))
    columns = [ones] + [F.reshape(x, (x.shape[0], 1))] * (n - 1)
    powers = cumprod(F.cat(columns, 1), 1)
    return powers if increasing else F.flip(powers, 1)


def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """Pairwise p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M),
    computed directly from the differences (exact; PyTorch's matrix-product shortcut for
    large p=2 inputs differs from it only by rounding)."""
    if x1.dim() < 2 or x2.dim() < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.dim()}D, "
                           f"X2 got: {x2.dim()}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: "
                           f"{x1.shape[-1]} X2: {x2.shape[-1]}")
    if not (x1.dtype.is_floating_point and x2.dtype.is_floating_point):
        raise RuntimeError(f"cdist only supports floating-point dtypes, X1 got: "
                           f"{x1.dtype.name}, X2 got: {x2.dtype.name}")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    diff = F.unsqueeze(x1, -2) - F.unsqueeze(x2, -3)
    return F.norm(diff, p, -1)


def _triangle_indices(row, col, offset, upper, dtype, name):
    if row < 0 or col < 0:
        raise RuntimeError(f"{name}: row and col must be non-negative, got {row}, {col}")
    mask = (np.triu if upper else np.tril)(np.ones((row, col), bool), offset)
    dtype = dtypes.to_dtype(dtype) if dtype is not None else dtypes.int64
    return Tensor._wrap(np.stack(np.nonzero(mask)).astype(dtype.np).reshape(2, -1), dtype)


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    return _triangle_indices(row, col, offset, False, dtype, "tril_indices")


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    return _triangle_indices(row, col, offset, True, dtype, "triu_indices")
