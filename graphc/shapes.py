"""Shape functions beyond the primitives' views: ``roll``, ``rot90``, ``tile``,
``meshgrid``, ``cartesian_prod``, ``block_diag``, ``atleast_nd``, ``column_stack``,
``dstack``, ``flipud``/``fliplr``, ``vander``, ``cdist``, ``tril_indices``/``triu_indices``.
All are built from slices, concatenations, ``expand`` and ``reshape``."""
from __future__ import annotations

import itertools
import warnings

import numpy as np

from graphc import creation, dtypes
from graphc import functional as F
from graphc.blas import diag_embed, diagonal
from graphc.indexing import apply_inplace
from graphc.reductions import cumprod
from graphc.tensor import Size, Tensor, normalize_dim


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


# ---- splits, scatters into slices and friends ---------------------------------------------------
def ravel(input):
    return F.reshape(input, (-1,))


def moveaxis(input, source, destination):
    """movedim, for one dim or matching lists of dims."""
    if not isinstance(source, (tuple, list)):
        return F.movedim(input, source, destination)
    source = [normalize_dim(d, input.dim()) for d in source]
    destination = [normalize_dim(d, input.dim()) for d in destination]
    if len(source) != len(destination):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({source} "
                           f"dims) should contain the same number of dims as destination "
                           f"({destination} dims)")
    order = [None] * input.dim()
    for s, d in zip(source, destination):
        order[d] = s
    rest = iter(a for a in range(input.dim()) if a not in source)
    return F.permute(input, [a if a is not None else next(rest) for a in order])


def swapdims(input, dim0, dim1):
    return F.transpose(input, dim0, dim1)


def row_stack(tensors):
    return F.vstack(tensors)


def tensor_split(input, indices_or_sections, dim=0):
    """Pieces along dim: n nearly equal ones (the first n % size one longer), or cut at
    the given indices."""
    dim = normalize_dim(dim, input.dim())
    size = input.shape[dim]
    if isinstance(indices_or_sections, Tensor):
        indices_or_sections = indices_or_sections.tolist()
    if isinstance(indices_or_sections, int):
        n = indices_or_sections
        if n <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {n}")
        cuts, start = [], 0
        for i in range(n - 1):
            start += size // n + (1 if i < size % n else 0)
            cuts.append(start)
    else:
        cuts = list(indices_or_sections)
    bounds = [0] + [min(max(c if c >= 0 else c + size, 0), size) for c in cuts] + [size]
    return tuple(F.narrow(input, dim, lo, max(hi - lo, 0))
                 for lo, hi in zip(bounds, bounds[1:]))


def _split_along(name, input, sections, dim, min_dims):
    if input.dim() < min_dims:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {min_dims} "
                           f"dimension, but got a tensor with {input.dim()} dimensions!")
    if isinstance(sections, int) and (sections == 0 or input.shape[dim] % sections):
        raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the "
                           f"size of the dimension {input.shape[dim]} is not divisible by "
                           f"the split_size {sections}!")
    return tensor_split(input, sections, dim)


def hsplit(input, indices_or_sections):
    return _split_along("hsplit", input, indices_or_sections, 1 if input.dim() > 1 else 0, 1)


def vsplit(input, indices_or_sections):
    return _split_along("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input, indices_or_sections):
    return _split_along("dsplit", input, indices_or_sections, 2, 3)


def unfold(input, dimension, size, step):
    """``Tensor.unfold``: the windows of ``size`` elements every ``step`` along
    ``dimension``, as a new last dim (a copy; PyTorch's is a view)."""
    dim = normalize_dim(dimension, input.dim())
    length = input.shape[dim] if input.dim() else 1
    if size > length:
        raise RuntimeError(f"maximum size for tensor at dimension {dim} is {length} but size "
                           f"is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    x = input.reshape(1) if input.dim() == 0 else input
    count = (length - size) // step + 1
    windows = []
    for i in range(size):
        starts = [0] * x.dim()
        stops = list(x.shape)
        steps = [1] * x.dim()
        starts[dim], stops[dim], steps[dim] = i, i + step * (count - 1) + 1, step
        windows.append(F._slice(x, starts, stops, steps))
    out = F.stack(windows, -1)
    return out.reshape(size) if input.dim() == 0 else out


def diagflat(input, offset=0):
    return F.diag(F.flatten(input), offset)


def _broadcast(shapes) -> tuple:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise RuntimeError(f"shape mismatch: objects cannot be broadcast to a single shape "
                           f"({', '.join(str(list(s)) for s in shapes)})") from None


def broadcast_shapes(*shapes):
    return Size(_broadcast([tuple(s) if isinstance(s, (tuple, list)) else (s,)
                            for s in shapes]))


def broadcast_tensors(*tensors):
    tensors = _tensors(tensors)
    shape = _broadcast([tuple(t.shape) for t in tensors])
    return tuple(F.expand(t, shape) for t in tensors)


def combinations(input, r=2, with_replacement=False):
    """The r-element combinations of a 1-D tensor's elements, one per row."""
    if input.dim() != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {list(input.shape)}")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return F.narrow(input, 0, 0, 0)
    pick = itertools.combinations_with_replacement if with_replacement else \
        itertools.combinations
    rows = np.array(list(pick(range(input.shape[0]), r)), np.int64).reshape(-1, r)
    index = Tensor._wrap(rows.reshape(-1), dtypes.int64)
    return F.reshape(F.index_select(input, 0, index), (rows.shape[0], r))


def unravel_index(indices, shape):
    """The coordinates of flat (row-major) indices in ``shape``, one tensor per dim."""
    if not isinstance(indices, Tensor):
        indices = creation.tensor(indices)
    if indices.dtype.is_floating_point or indices.dtype == dtypes.bool_:
        raise TypeError(f"expected 'indices' to be integer dtype, but got {indices.dtype.name}")
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    coords, rest = [], indices
    for n in reversed(shape):
        coords.append(F.remainder(rest, n))
        rest = F.floor_divide(rest, n)
    return tuple(reversed(coords))


def _replaced(input, src, dim, positions):
    """input with the entries at ``positions`` along ``dim`` replaced by ``src``: the old
    values zeroed there, ``src`` added (so both take their gradient)."""
    index = Tensor._wrap(np.asarray(positions, np.int64), dtypes.int64)
    shape = [1] * input.dim()
    shape[dim] = input.shape[dim]
    written = np.zeros(input.shape[dim], bool)
    written[positions] = True
    mask = Tensor._wrap(written.reshape(shape), dtypes.bool_)
    kept = F.where(mask, F._operand(0, input.dtype), input)
    return F.index_add(kept, dim, index, F.cast(src, input.dtype))


def select_scatter(input, src, dim, index):
    dim = normalize_dim(dim, input.dim())
    size = input.shape[dim]
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of bounds for dimension {dim} with size {size}")
    return _replaced(input, F.unsqueeze(src, dim), dim, [index % size])


def slice_scatter(input, src, dim=0, start=None, end=None, step=1):
    dim = normalize_dim(dim, input.dim())
    positions = list(range(input.shape[dim]))[slice(start, end, step)]
    expected = list(input.shape)
    expected[dim] = len(positions)
    if list(src.shape) != expected:
        raise RuntimeError(f"Expected src to have a size equal to the slice of self. src size "
                           f"= {list(src.shape)}, slice size = {expected}")
    return _replaced(input, src, dim, positions)


def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):
    """input with its ``offset`` diagonal (dims dim1, dim2) replaced by ``src``."""
    nd = input.dim()
    d1, d2 = normalize_dim(dim1, nd), normalize_dim(dim2, nd)
    expected = tuple(diagonal(input, offset, d1, d2).shape)
    if tuple(src.shape) != expected:
        raise RuntimeError(f"diagonal_scatter: src must have shape {list(expected)}, got "
                           f"{list(src.shape)}")
    n, m = input.shape[d1], input.shape[d2]
    on = np.eye(n, m, k=offset, dtype=bool)
    lead = [a for a in range(nd) if a not in (d1, d2)]
    order = lead + [d1, d2]
    moved = F.permute(input, order)
    embedded = diag_embed(F.cast(src, input.dtype), offset)          # (..., N, N)
    big = embedded.shape[-1]
    embedded = F._pad(embedded, [(0, 0, 0)] * len(lead) + [(0, max(n - big, 0), 0),
                                                           (0, max(m - big, 0), 0)], 0)
    embedded = F.narrow(F.narrow(embedded, -2, 0, n), -1, 0, m)
    out = F.where(Tensor._wrap(on, dtypes.bool_), embedded, moved)
    return F.permute(out, list(np.argsort(order)))


def fill_diagonal_(input, fill_value, wrap=False):
    """The main diagonal (all dims equal, or a tall matrix, repeating every n+1 rows
    with ``wrap``) set to ``fill_value``, in place."""
    if input.dim() < 2:
        raise RuntimeError("dimensions must larger than 1")
    if input.dim() > 2 and len(set(input.shape)) != 1:
        raise RuntimeError("all dimensions of input must be of equal length")
    on = np.zeros(input.shape, bool)
    np.fill_diagonal(on, True, wrap=wrap)
    mask = Tensor._wrap(on, dtypes.bool_)
    return apply_inplace(input, "fill_diagonal_",
                         lambda x: F.where(mask, F._operand(fill_value, x.dtype), x))


def adjoint(input):
    """The conjugate transpose of the last two dims: their transpose (graphc is real)."""
    if input.dim() < 2:
        raise RuntimeError(f"tensor.adjoint() is only supported on matrices or batches of "
                           f"matrices. Got {input.dim()}-D tensor.")
    return F.transpose(input, -2, -1)


def _mH(input):
    if input.dim() < 2:
        raise RuntimeError(f"tensor.mH is only supported on matrices or batches of matrices. "
                           f"Got {input.dim()}-D tensor.")
    return F.transpose(input, -2, -1)


def _H(input):
    """``Tensor.H``: the transpose of a matrix; a 0-D tensor is its own (deprecated)."""
    if input.dim() == 0:
        warnings.warn("Tensor.H is deprecated on 0-D tensors. Consider using x.conj().",
                      UserWarning, stacklevel=2)
        return input
    if input.dim() != 2:
        raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got "
                           f"{input.dim()}-D tensor.")
    return F.transpose(input, 0, 1)
