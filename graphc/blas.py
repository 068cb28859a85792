"""Contractions beyond ``matmul``: ``einsum``, ``tensordot``, ``kron``, the BLAS-style
fused forms (``addmm``, ``baddbmm``...), ``multi_dot``, ``cross``, ``trace``,
``diagonal``/``diag_embed``.

Every contraction is reduced to ``permute``/``reshape``/``sum`` and one batched
``matmul`` per pair of operands, so it runs on the matmul kernels of every backend and
differentiates through them."""
from __future__ import annotations

import math
import string
import warnings

import numpy as np

from graphc import dtypes
from graphc import functional as F
from graphc.composite import _rounded_once
from graphc.tensor import Tensor, normalize_dim

_LETTERS = string.ascii_uppercase + string.ascii_lowercase
"""PyTorch numbers subscripts A-Z then a-z: the implicit output's order, and the letters
of the sublist form's integers."""


# ---- diagonals ------------------------------------------------------------------------------
def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal of dims (dim1, dim2) as the last dim: the two dims moved last and
    flattened, then every (m+1)-th element taken.  A copy, not a view."""
    nd = input.dim()
    d1, d2 = normalize_dim(dim1, nd), normalize_dim(dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    lead = [a for a in range(nd) if a not in (d1, d2)]
    x = F.permute(input, lead + [d1, d2])
    n, m = input.shape[d1], input.shape[d2]
    if offset >= 0:
        length, start = max(min(n, m - offset), 0), offset
    else:
        length, start = max(min(n + offset, m), 0), -offset * m
    lead_shape = [input.shape[a] for a in lead]
    flat = F.reshape(x, tuple(lead_shape) + (n * m,))
    if length == 0:
        start = stop = 0
    else:
        stop = start + (length - 1) * (m + 1) + 1
    return F._slice(flat, [0] * len(lead) + [start], lead_shape + [stop],
                    [1] * len(lead) + [m + 1])


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Matrices whose ``offset`` diagonal (in dims dim1, dim2 of the result) is the last
    dim of ``input``, zeros elsewhere."""
    nd = input.dim() + 1
    d1, d2 = normalize_dim(dim1, nd), normalize_dim(dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    k = abs(offset)
    n = (input.shape[-1] if input.dim() else 1) + k
    x = input.reshape(1) if input.dim() == 0 else input
    widths = [(0, 0, 0)] * (x.dim() - 1) + [(0, k, 0)]
    line = F._pad(x, widths, 0)
    # Above the diagonal the value depends on the row, below it on the column.
    line = F.unsqueeze(line, -1) if offset >= 0 else F.unsqueeze(line, -2)
    mask = Tensor._wrap(np.eye(n, k=offset, dtype=bool), dtypes.bool_)
    matrices = F.where(mask, line, F._operand(0, input.dtype))
    order, rest = [0] * nd, iter(range(nd - 2))
    for a in range(nd):
        order[a] = nd - 2 if a == d1 else nd - 1 if a == d2 else next(rest)
    return F.permute(matrices, order)


def trace(input):
    if input.dim() != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.dim()}")
    return F.sum(diagonal(input))


# ---- einsum ---------------------------------------------------------------------------------
def _sublist_equation(args):
    """einsum(op0, [0, 1], op1, [1, 2], [0, 2]) as an equation and operands."""
    def term(sub):
        return "".join("..." if s is Ellipsis else _LETTERS[s] for s in sub)
    pairs = len(args) // 2
    equation = ",".join(term(args[2 * i + 1]) for i in range(pairs))
    if len(args) % 2:
        equation += "->" + term(args[-1])
    return equation, [args[2 * i] for i in range(pairs)]


def _parse_term(term, where):
    """A term's subscripts: letters, and '...' at most once (kept as the string)."""
    labels, i = [], 0
    while i < len(term):
        if term.startswith("...", i):
            if "..." in labels:
                raise RuntimeError("einsum(): found '.' for operand that is not part of any "
                                   "ellipsis")
            labels.append("...")
            i += 3
            continue
        if term[i] not in _LETTERS:
            raise RuntimeError(f"einsum(): invalid subscript given at index {where + i} in "
                               f"the equation string, subscripts must be in [a-zA-Z]")
        labels.append(term[i])
        i += 1
    return labels


def _expand_ellipsis(labels, ndim, operand_index):
    """Replace '...' by one label per dim it covers, right-aligned across operands (the
    labels are ('...', k) with k counted from the last covered dim)."""
    letters = [s for s in labels if s != "..."]
    if "..." not in labels:
        if len(letters) != ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                               f"({len(letters)}) does not match the number of dimensions "
                               f"({ndim}) for operand {operand_index} and no ellipsis was "
                               f"given")
        return letters, 0
    covered = ndim - len(letters)
    if covered < 0:
        raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                           f"({len(letters)}) is more than the number of dimensions ({ndim}) "
                           f"for operand {operand_index}")
    at = labels.index("...")
    return (labels[:at] + [("...", covered - 1 - k) for k in range(covered)]
            + labels[at + 1:]), covered


def _take_repeated(x, labels, index):
    """An operand with a subscript repeated (``ii``) replaced by its diagonal."""
    labels = list(labels)
    while len(set(labels)) < len(labels):
        label = next(s for s in labels if labels.count(s) > 1)
        i = labels.index(label)
        j = labels.index(label, i + 1)
        if x.shape[i] != x.shape[j]:
            raise RuntimeError(f"einsum(): subscript {label} is repeated for operand {index} "
                               f"but the sizes don't match, {x.shape[j]} != {x.shape[i]}")
        x = diagonal(x, 0, i, j)
        labels = [s for a, s in enumerate(labels) if a not in (i, j)] + [label]
    return x, labels


def _sum_labels(x, labels, drop):
    axes = [a for a, s in enumerate(labels) if s in drop]
    if not axes:
        return x, labels
    return F.sum(x, axes), [s for s in labels if s not in drop]


def _contract(a, la, b, lb, keep):
    """a (labels la) times b (labels lb), summed over the shared labels not in ``keep``,
    as one batched matmul: (batch, left, shared) @ (batch, shared, right)."""
    batch = [s for s in la if s in lb and s in keep]
    shared = [s for s in la if s in lb and s not in keep]
    left = [s for s in la if s not in lb]
    right = [s for s in lb if s not in la]
    size = dict(zip(la, a.shape)) | dict(zip(lb, b.shape))

    def arranged(x, labels, order, groups):
        x = F.permute(x, [labels.index(s) for s in order])
        return F.reshape(x, tuple(math.prod(size[s] for s in g) for g in groups))

    a3 = arranged(a, la, batch + left + shared, (batch, left, shared))
    b3 = arranged(b, lb, batch + shared + right, (batch, shared, right))
    out = _batched_product(a3, b3)
    labels = batch + left + right
    return F.reshape(out, tuple(size[s] for s in labels)), labels


def _batched_product(a, b):
    """a @ b for (..., m, k) @ (..., k, n): the matmul primitive for floats, a
    broadcast product summed over k for integers (which it does not take)."""
    if a.dtype.is_floating_point:
        return F.matmul(a, b)
    if a.dtype != b.dtype:
        raise RuntimeError(f"expected scalar type {a.dtype.name} but found {b.dtype.name}")
    return F.sum(F.unsqueeze(a, -1) * F.unsqueeze(b, -3), -2)


def _parse_equation(equation, operands):
    """Each operand's subscripts (ellipsis dims as ('...', k)) and the output's."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) > len(operands):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the "
                           "equation")
    if len(terms) < len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the "
                           "equation")
    labels, ellipsis_dims, where = [], 0, 0
    for index, (term, x) in enumerate(zip(terms, operands)):
        expanded, covered = _expand_ellipsis(_parse_term(term, where), x.dim(), index)
        labels.append(expanded)
        ellipsis_dims = max(ellipsis_dims, covered)
        where += len(term) + 1
    ellipsis = [("...", k) for k in reversed(range(ellipsis_dims))]
    if not arrow:          # implicit: the subscripts seen once, A-Z then a-z
        counts = {}
        for ls in labels:
            for s in ls:
                counts[s] = counts.get(s, 0) + 1
        return labels, ellipsis + sorted((s for s, c in counts.items()
                                          if c == 1 and isinstance(s, str)),
                                         key=_LETTERS.index)
    output = []
    for s in _parse_term(rhs, len(lhs) + 2):
        if s == "...":
            output += ellipsis
        elif s in output:
            raise RuntimeError(f"einsum(): output subscript {s} appears more than once in "
                               f"the output")
        elif not any(s in ls for ls in labels):
            raise RuntimeError(f"einsum(): output subscript {s} does not appear in the "
                               f"equation for any input operand")
        else:
            output.append(s)
    return labels, output


def _label_sizes(labels, operands) -> dict:
    """Every subscript's size; a size-1 dim broadcasts against the others."""
    ellipsis_dims = max((s[1] + 1 for ls in labels for s in ls if isinstance(s, tuple)),
                        default=0)
    size = {}
    for index, (ls, x) in enumerate(zip(labels, operands)):
        for s, n in zip(ls, x.shape):
            seen = size.get(s, 1)
            if n != 1 and seen != 1 and n != seen:
                if isinstance(s, tuple):
                    raise RuntimeError(f"einsum(): dimension {ellipsis_dims - 1 - s[1]} "
                                       f"covered by ellipsis in operand {index}has size {n} "
                                       f"which does not broadcast with previously seen "
                                       f"ellipsis with size {seen} for the respective "
                                       f"dimension")
                raise RuntimeError(f"einsum(): subscript {s} has size {n} for operand "
                                   f"{index} which does not broadcast with previously seen "
                                   f"size {seen}")
            size[s] = n if n != 1 else seen
    return size


def einsum(*args):
    """PyTorch's einsum: ``einsum('ij,jk->ik', a, b)``, an implicit output, '...'
    broadcasting, repeated subscripts (diagonals), size-1 broadcasting, the sublist
    form.  Operands are contracted left to right, each subscript summed away as soon as
    nothing later needs it."""
    if args and not isinstance(args[0], str):
        equation, operands = _sublist_equation(args)
    else:
        equation, operands = args[0], list(args[1:])
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
    labels, output = _parse_equation(equation, operands)
    size = _label_sizes(labels, operands)
    prepared = []
    for index, (ls, x) in enumerate(zip(labels, operands)):
        x, ls = _take_repeated(x, ls, index)
        prepared.append((F.expand(x, tuple(size[s] for s in ls)), ls))
    result, result_labels = prepared[0]
    for i in range(len(prepared)):
        later = set(output).union(*(ls for _, ls in prepared[i + 1:]))
        if i:
            x, ls = prepared[i]
            x, ls = _sum_labels(x, ls, [s for s in ls if s not in later and s not in
                                        result_labels])
            result, result_labels = _contract(result, result_labels, x, ls, later)
        result, result_labels = _sum_labels(result, result_labels,
                                            [s for s in result_labels if s not in later])
    return F.permute(result, [result_labels.index(s) for s in output]) if output else result


# ---- tensordot and friends ------------------------------------------------------------------
def tensordot(a, b, dims=2, out=None):
    """Contract dims ``dims[0]`` of a with ``dims[1]`` of b (or a's last n with b's first
    n for an integer): permute, reshape to matrices, ``mm``."""
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        dims_a, dims_b = list(range(a.dim() - dims, a.dim())), list(range(dims))
    else:
        dims_a, dims_b = dims
        dims_a = [dims_a] if isinstance(dims_a, int) else list(dims_a)
        dims_b = [dims_b] if isinstance(dims_b, int) else list(dims_b)
    if len(dims_a) != len(dims_b):
        raise RuntimeError("both dimension lists should have same length")
    dims_a = [normalize_dim(d, a.dim()) for d in dims_a]
    dims_b = [normalize_dim(d, b.dim()) for d in dims_b]
    for da, db in zip(dims_a, dims_b):
        if a.shape[da] != b.shape[db]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size "
                               f"{a.shape[da]} in dim {da} and second has size "
                               f"{b.shape[db]} in dim {db}")
    free_a = [d for d in range(a.dim()) if d not in dims_a]
    free_b = [d for d in range(b.dim()) if d not in dims_b]
    k = math.prod(a.shape[d] for d in dims_a)
    shape_a, shape_b = [a.shape[d] for d in free_a], [b.shape[d] for d in free_b]
    a2 = F.reshape(F.permute(a, free_a + dims_a), (math.prod(shape_a), k))
    b2 = F.reshape(F.permute(b, dims_b + free_b), (k, math.prod(shape_b)))
    return F.reshape(_batched_product(a2, b2), tuple(shape_a + shape_b))


def kron(input, other):
    """The Kronecker product: dims paired up (the shorter shape padded with leading 1s),
    each pair (i, j) becoming one dim of size a_i b_i."""
    nd = max(input.dim(), other.dim())
    a_shape = (1,) * (nd - input.dim()) + tuple(input.shape)
    b_shape = (1,) * (nd - other.dim()) + tuple(other.shape)
    a = F.reshape(input, tuple(v for d in a_shape for v in (d, 1)))
    b = F.reshape(other, tuple(v for d in b_shape for v in (1, d)))
    return F.reshape(a * b, tuple(p * q for p, q in zip(a_shape, b_shape)))


def _scaled_sum(input, product, beta, alpha):
    """beta * input + alpha * product; with beta == 0 ``input`` is ignored (its NaNs
    too), as in BLAS, and gets a zero gradient, as in PyTorch."""
    if alpha != 1:
        product = product * alpha
    if beta == 0:
        true = F.scalar_tensor(True, dtypes.bool_)
        return product + F.where(true, F._operand(0, input.dtype), input)
    return (input * beta if beta != 1 else input) + product


def _check_dims(op, want, *tensors):
    for x, n in zip(tensors, want):
        if x.dim() != n:
            raise RuntimeError(f"{op}: expected {n}-D tensors, got "
                               f"{', '.join(f'{t.dtype.name}{list(t.shape)}' for t in tensors)}")


@_rounded_once
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    _check_dims("addmm", (2, 2), mat1, mat2)
    return _scaled_sum(input, F.mm(mat1, mat2), beta, alpha)


@_rounded_once
def addmv(input, mat, vec, *, beta=1, alpha=1):
    _check_dims("addmv", (2, 1), mat, vec)
    return _scaled_sum(input, F.mv(mat, vec), beta, alpha)


@_rounded_once
def addr(input, vec1, vec2, *, beta=1, alpha=1):
    _check_dims("addr", (1, 1), vec1, vec2)
    return _scaled_sum(input, F.outer(vec1, vec2), beta, alpha)


@_rounded_once
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    return _scaled_sum(input, F.bmm(batch1, batch2), beta, alpha)


@_rounded_once
def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    return _scaled_sum(input, F.sum(F.bmm(batch1, batch2), 0), beta, alpha)


def multi_dot(tensors):
    """The product of a chain of matrices (the first and last may be vectors), left to
    right."""
    tensors = list(tensors)
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got "
                           f"{len(tensors)}")
    for i, t in enumerate(tensors):
        allowed = (1, 2) if i in (0, len(tensors) - 1) else (2,)
        if t.dim() not in allowed:
            raise RuntimeError(f"multi_dot(): tensor {i} must be "
                               f"{'1D or 2D' if len(allowed) == 2 else '2D'} but got "
                               f"{t.dim()}D")
    out = tensors[0]
    for t in tensors[1:]:
        out = F.matmul(out, t)
    return out


def chain_matmul(*matrices):
    for i, m in enumerate(matrices):
        if m.dim() != 2:
            raise RuntimeError(f"Tensor dimension is {m.dim()}, expected 2 instead.")
    if len(matrices) == 1:
        return F.clone(matrices[0])
    return multi_dot(matrices)


def cross(input, other, dim=None):
    """The cross product along a dim of size 3 of the broadcast operands.  ``dim=None`` is
    the first dim of size 3 (``torch.cross``'s deprecated default)."""
    if input.dim() != other.dim():
        raise RuntimeError(f"linalg.cross: inputs must have the same number of dimensions "
                           f"(got {input.dtype.name}{list(input.shape)} and "
                           f"{other.dtype.name}{list(other.shape)})")
    shape = tuple(max(p, q) for p, q in zip(input.shape, other.shape))
    if dim is None:
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated.",
                      UserWarning, stacklevel=2)
        dim = next((a for a, n in enumerate(shape) if n == 3), None)
        if dim is None:
            raise RuntimeError(f"no dimension of size 3 in input (shape {list(shape)})")
    dim = normalize_dim(dim, input.dim())
    if input.shape[dim] != 3 or other.shape[dim] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got "
                           f"{input.shape[dim]} and {other.shape[dim]}")
    if input.dtype != other.dtype:
        raise RuntimeError(f"expected scalar type {input.dtype.name} but found "
                           f"{other.dtype.name}")
    a = [F.select(input, dim, i) for i in range(3)]
    b = [F.select(other, dim, i) for i in range(3)]
    parts = [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    return F.stack(parts, dim)


def inner(input, other):
    """Sum over the last dims of both (a product when either is a scalar)."""
    if input.dim() == 0 or other.dim() == 0:
        return input * other
    if input.shape[-1] != other.shape[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but "
                           f"got shapes {list(input.shape)} and {list(other.shape)}")
    return tensordot(input, other, ([-1], [-1]))


def ger(input, vec2):
    return F.outer(input, vec2)


def vdot(input, other):
    """The dot product of two 1-D tensors (graphc has no complex numbers to conjugate)."""
    if input.dim() != 1 or other.dim() != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.dim()}D and {other.dim()}D "
                           f"tensors")
    return F.dot(input, other)
