"""``graphc.linalg``: PyTorch's ``torch.linalg`` names for the norms, products and the
small dense solvers graphc can compose.

``det``, ``inv`` and ``solve`` are Gaussian elimination with partial pivoting written
with tensor functions (the pivot row is chosen with ``argmax`` and moved with a
permutation built from comparisons), unrolled over the matrix size: exact to rounding,
differentiable, traceable, meant for the small matrices real programs invert."""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from graphc import dtypes
from graphc import functional as F
from graphc.blas import cross as _cross, diagonal, multi_dot
from graphc.tensor import Tensor, normalize_dim
from graphc.unsupported import refused

__all__ = ["norm", "vector_norm", "matrix_norm", "multi_dot", "cross", "det", "slogdet", "inv",
           "solve", "cholesky", "matrix_power", "vecdot", "matmul", "LinAlgError", "logdet",
           "cholesky_solve", "cholesky_inverse"]

_NEEDS_FACTORIZATIONS = ("svd", "svdvals", "eig", "eigvals", "eigh", "eigvalsh", "qr", "lstsq",
                         "pinv", "matrix_rank", "matrix_exp", "cond", "lu", "lu_factor",
                         "lu_solve", "ldl_factor", "ldl_solve", "householder_product",
                         "tensorinv", "tensorsolve")
"""torch.linalg functions that need an iterative factorization (SVD, eigen, QR) graphc
does not have: each is refused (``graphc.unsupported``), naming itself."""
for _name in _NEEDS_FACTORIZATIONS:
    globals()[_name] = refused(
        f"torch.linalg.{_name}", "it needs an SVD, eigen or QR factorization, which graphc "
        "does not compute", "graphc.linalg's det, slogdet, inv, solve, cholesky, "
        "matrix_power, and the 'fro', 1 and inf norms")


class LinAlgError(RuntimeError):
    """PyTorch's ``torch.linalg.LinAlgError``: a singular matrix (a RuntimeError)."""


def _check_floating(op, x):
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"linalg.{op}: Expected a floating point or complex tensor as "
                           f"input. Got {x.dtype.name}")


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    _check_floating("vector_norm", x)
    if dtype is not None:
        x = F.cast(x, dtype)
    if ord in (-math.inf, "-inf"):
        F._check_not_empty_for_inf_norm(x, dim, "-inf")
        return F.amin(F.abs(x), dim, keepdim)
    return F.norm(x, ord, dim, keepdim)


def _matrix_dims(A, dim):
    if A.dim() < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 "
                           f"dimensions. (got {A.dtype.name}{list(A.shape)})")
    d0, d1 = (normalize_dim(d, A.dim()) for d in dim)
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({d0}, {d1})")
    return d0, d1


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """Frobenius and the induced 1- and inf-norms (largest column / row sum of
    magnitudes, or the smallest for -1 / -inf); the spectral and nuclear norms need an
    SVD graphc does not have."""
    d0, d1 = _matrix_dims(A, dim)
    _check_floating("matrix_norm", A)
    if dtype is not None:
        A = F.cast(A, dtype)
    if ord == "fro":
        return F.norm(A, 2, (d0, d1), keepdim)
    if ord in (2, -2, "nuc"):
        raise NotImplementedError(f"linalg.matrix_norm(ord={ord!r}) needs singular values, "
                                  f"which graphc does not compute; use ord='fro', 1 or inf")
    if ord in (math.inf, -math.inf):
        d0, d1 = d1, d0                         # rows: sum along the columns
    elif ord not in (1, -1):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    sums = F.sum(F.abs(A), d0, keepdim=True)
    if sums.shape[d1] == 0:                  # no columns: PyTorch's norm is 0
        sums = F._pad(sums, [(0, 1 if a == d1 else 0, 0) for a in range(sums.dim())], 0)
    best = (F.amax if ord > 0 else F.amin)(sums, d1, keepdim=True)
    return best if keepdim else F.squeeze(F.squeeze(best, max(d0, d1)), min(d0, d1))


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """A vector norm over one dim (or over everything when ord is None), a matrix norm
    over two."""
    if dim is not None and not isinstance(dim, (tuple, list)):
        dim = (dim,)
    if ord is None:
        return vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if dim is None:
        if A.dim() not in (1, 2):
            raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input "
                               f"must be 1D or 2D. Got {A.dim()}D.")
        dim = tuple(range(A.dim()))
    if len(dim) == 2 or isinstance(ord, str):
        return matrix_norm(A, ord, dim if len(dim) == 2 else (-2, -1), keepdim, dtype=dtype)
    return vector_norm(A, ord, dim, keepdim, dtype=dtype)


def cross(input, other, *, dim=-1):
    return _cross(input, other, dim)


def vecdot(x, y, *, dim=-1):
    return F.sum(x * y, dim)


def matmul(input, other):
    return F.matmul(input, other)


# ---- Gaussian elimination -------------------------------------------------------------------
def _check_square(op, A):
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.{op}: A must be batches of square matrices, but they are "
                           f"{A.shape[-2] if A.dim() > 1 else A.shape[-1] if A.dim() else 1} "
                           f"by {A.shape[-1] if A.dim() else 1} matrices")
    if not A.dtype.is_floating_point:
        raise RuntimeError(f"linalg.{op}: Expected a floating point or complex tensor as "
                           f"input. Got {A.dtype.name}")


def _eliminate(A, B):
    """Forward elimination with partial pivoting of [A | B] (batched, (..., n, n) and
    (..., n, k)): the upper-triangular U, the transformed B, and the sign of the row
    permutation.  Row k's pivot is the largest magnitude at or below it in column k;
    the swap is a permutation matrix product, so it differentiates like any product."""
    n = A.shape[-1]
    sign = None
    rows = Tensor._wrap(np.arange(n), dtypes.int64)
    for k in range(n):
        column = F.abs(F.select(A, -1, k)).detach()
        below = F.where(rows >= k, column, F._operand(-1, column.dtype))
        pivot = F.unsqueeze(F.argmax(below, -1), -1)               # (..., 1)
        # Swap rows k and pivot: P[i, j] = 1 where (i, j) is (k, p), (p, k), or i == j
        # for every other row.
        is_k, is_p = rows == k, rows == pivot                       # (n,), (..., n)
        keep = F.logical_not(F.logical_or(is_k, is_p))
        perm = (F.unsqueeze(is_k, -1).logical_and(F.unsqueeze(is_p, -2))
                .logical_or(F.unsqueeze(is_p, -1).logical_and(F.unsqueeze(is_k, -2)))
                .logical_or(F.unsqueeze(keep, -1).logical_and(
                    F.eq(F.unsqueeze(rows, -1), F.unsqueeze(rows, -2)))))
        perm = F.cast(perm, A.dtype)
        A, B = F.matmul(perm, A), F.matmul(perm, B)
        swapped = F.ne(F.squeeze(pivot, -1), k)
        flip = F.where(swapped, -1.0, 1.0)
        sign = flip if sign is None else sign * flip
        # Eliminate below row k.
        pivot_row_a = F.narrow(A, -2, k, 1)
        pivot_row_b = F.narrow(B, -2, k, 1)
        pivot_value = F.narrow(pivot_row_a, -1, k, 1)
        singular = pivot_value == 0          # the column is zero from row k down
        factors = F.narrow(A, -1, k, 1) / F.where(singular, F._operand(1, A.dtype),
                                                  pivot_value)
        factors = F.where(F.unsqueeze(rows > k, -1), factors, F._operand(0, A.dtype))
        A = A - factors * pivot_row_a
        B = B - factors * pivot_row_b
    return A, B, sign


def det(A):
    _check_square("det", A)
    if A.shape[-1] == 0:
        return F.sum(A, (-2, -1)) + 1
    U, _, sign = _eliminate(A, F.narrow(A, -1, 0, 0))
    return F.prod(diagonal(U, 0, -2, -1), -1) * sign


def _back_substitute(U, Y):
    """X with U X = Y for upper-triangular U, from the last row up."""
    n = U.shape[-1]
    solved = [None] * n
    for i in reversed(range(n)):
        row = F.narrow(Y, -2, i, 1)
        for j in range(i + 1, n):
            row = row - F.narrow(F.narrow(U, -2, i, 1), -1, j, 1) * solved[j]
        solved[i] = row / F.narrow(F.narrow(U, -2, i, 1), -1, i, 1)
    return F.cat(solved, -2)


def solve(A, B, *, left=True, _op="solve"):
    """X with A X = B (B a matrix, or a vector when it has one dim fewer than A)."""
    if not left:
        raise NotImplementedError("linalg.solve(left=False) is not supported; solve the "
                                  "transposed system: linalg.solve(A.mT, B.mT).mT")
    _check_square("solve", A)
    vector = B.dim() == 1 or (B.dim() == A.dim() - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    Bm = F.unsqueeze(B, -1) if vector else B
    if Bm.shape[-2] != A.shape[-1]:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation "
                           f"AX = B ({A.shape[-2]}x{A.shape[-1]} and "
                           f"{Bm.shape[-2]}x{Bm.shape[-1]})")
    dtype = F.result_type(A, B)
    A, Bm = F.cast(A, dtype), F.cast(Bm, dtype)
    batch = tuple(np.broadcast_shapes(tuple(A.shape[:-2]), tuple(Bm.shape[:-2])))
    A = F.expand(A, batch + tuple(A.shape[-2:]))
    Bm = F.expand(Bm, batch + tuple(Bm.shape[-2:]))
    if A.shape[-1] == 0:
        return Bm * 1 if not vector else F.squeeze(Bm * 1, -1)
    U, Y, _ = _eliminate(A, Bm)
    _check_nonsingular(U, _op)
    X = _back_substitute(U, Y)
    return F.squeeze(X, -1) if vector else X


def _check_nonsingular(U, op):
    """PyTorch's LinAlgError for a zero pivot (eagerly; a traced solve gives inf/NaN)."""
    if not F.is_concrete(U):
        return
    pivots = diagonal(U, 0, -2, -1).detach().numpy().reshape(-1, U.shape[-1])
    zero = np.argwhere(pivots == 0)
    if len(zero):
        if op == "inv":
            raise LinAlgError(f"linalg.inv: The diagonal element {zero[0][1] + 1} is zero, "
                              f"the inversion could not be completed because the input "
                              f"matrix is singular.")
        raise LinAlgError("torch.linalg.solve: The solver failed because the input matrix is "
                          "singular.")


def inv(A):
    _check_square("inv", A)
    eye = Tensor._wrap(np.eye(A.shape[-1], dtype=A.dtype.np), A.dtype)
    return solve(A, F.expand(eye, tuple(A.shape)), _op="inv")


slogdet_result = namedtuple("linalg_slogdet", ["sign", "logabsdet"])


def slogdet(A):
    """The sign and log |det A| from the pivots of the elimination (sign 0 and -inf for
    a singular matrix)."""
    _check_square("slogdet", A)
    if A.shape[-1] == 0:
        one = F.sum(A, (-2, -1)) + 1
        return slogdet_result(one, one * 0)
    U, _, sign = _eliminate(A, F.narrow(A, -1, 0, 0))
    pivots = diagonal(U, 0, -2, -1)
    signs = F.prod(F.sign(pivots), -1) * sign
    return slogdet_result(signs, F.sum(F.log(F.abs(pivots)), -1))


def cholesky(A, *, upper=False):
    """L with L L^T = A (Cholesky-Banachiewicz, row by row, unrolled over the size);
    LinAlgError (eagerly) when A is not positive-definite."""
    _check_square("cholesky", A)
    n = A.shape[-1]
    # As PyTorch: the values come from the lower triangle, the gradient is symmetric
    # (that of (A + A^T) / 2), attached as ``S - S.detach()`` (exactly 0 in value).
    mirrored = F.tril(A) + F.transpose(F.tril(A, -1), -2, -1)
    symmetric = (A + F.transpose(A, -2, -1)) * 0.5
    A = mirrored.detach() + (symmetric - symmetric.detach())
    entries = [[None] * n for _ in range(n)]
    zero = F.zeros_like(F.select(F.select(A, -1, 0), -1, 0))
    for i in range(n):
        for j in range(i + 1):
            a_ij = F.select(F.select(A, -2, i), -1, j)
            partial = a_ij
            for k in range(j):
                partial = partial - entries[i][k] * entries[j][k]
            if i == j:
                if F.is_concrete(partial) and bool((partial.detach().numpy() <= 0).any()):
                    raise LinAlgError(f"linalg.cholesky: The factorization could not be "
                                      f"completed because the input is not positive-definite "
                                      f"(the leading minor of order {i + 1} is not "
                                      f"positive-definite).")
                entries[i][j] = F.sqrt(partial)
            else:
                entries[i][j] = partial / entries[j][j]
    rows = [F.stack([entries[i][j] if j <= i else zero for j in range(n)], -1)
            for i in range(n)]
    L = F.stack(rows, -2) if n else A * 1
    return F.transpose(L, -2, -1) if upper else L


def matrix_power(A, n):
    """A^n by repeated squaring; A^0 the identity, negative n through ``inv``."""
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.matrix_power: A must be batches of square matrices, but "
                           f"they are {A.shape[-2] if A.dim() > 1 else 1} by {A.shape[-1]} "
                           f"matrices")
    if n == 0:
        eye = Tensor._wrap(np.eye(A.shape[-1], dtype=A.dtype.np), A.dtype)
        return F.expand(eye, tuple(A.shape)) * 1
    if n < 0:
        A, n = inv(A), -n
    result, square = None, A
    while n:
        if n & 1:
            result = square if result is None else F.matmul(result, square)
        n >>= 1
        if n:
            square = F.matmul(square, square)
    return result


def logdet(A):
    """log det A: -inf for a singular matrix, NaN for a negative determinant."""
    sign, logabsdet = slogdet(A)
    return F.where(sign < 0, math.nan, logabsdet)


def cholesky_solve(B, L, upper=False):
    """X with A X = B for A = L L^T (or U^T U), given its Cholesky factor."""
    A = F.matmul(F.transpose(L, -2, -1), L) if upper else F.matmul(L, F.transpose(L, -2, -1))
    return solve(A, B)


def cholesky_inverse(L, upper=False):
    """A^-1 for A = L L^T (or U^T U), given its Cholesky factor."""
    A = F.matmul(F.transpose(L, -2, -1), L) if upper else F.matmul(L, F.transpose(L, -2, -1))
    return inv(A)
