"""``torch.sparse``'s COO sparse tensors, enough for the programs that build a sparse
matrix (an adjacency matrix, a bag of words) and multiply it by a dense one.

A ``SparseTensor`` holds ``indices`` (int64, ``(ndim, nnz)``) and ``values``
(``(nnz,)``) as ordinary tensors, so the values take part in autograd and tracing;
``to_dense`` and ``mm`` are index ops (``index_add``, ``index_select``), whose gradients
flow to the values and to the dense operand.  Duplicate indices add up, as in a
coalesced PyTorch tensor.  Building one from a dense tensor (``to_sparse``) depends on
the values, so it is eager only (a graph break under ``graphc.compile``)."""
from __future__ import annotations

import numpy as np

from graphc import creation, dtypes
from graphc import functional as F
from graphc.tensor import Size, Tensor


class SparseTensor:
    """A COO sparse tensor: ``shape``, ``indices()`` and ``values()``."""

    is_sparse = True

    def __init__(self, indices: Tensor, values: Tensor, shape):
        self._indices, self._values, self.shape = indices, values, Size(shape)

    @property
    def dtype(self):
        return self._values.dtype

    @property
    def requires_grad(self) -> bool:
        return self._values.requires_grad

    @property
    def layout(self) -> str:
        return "sparse_coo"

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return len(self.shape)

    def indices(self) -> Tensor:
        return self._indices

    def values(self) -> Tensor:
        return self._values

    def _nnz(self) -> int:
        return self._values.shape[0]

    def coalesce(self) -> "SparseTensor":
        """Sorted, unique indices with their values summed (eager: the number of unique
        indices depends on the values of ``indices``)."""
        flat = self._flat_index()._concrete("sparse coalesce")
        unique, position = np.unique(flat, return_inverse=True)
        summed = F.index_add(creation.zeros(len(unique), dtype=self.dtype), 0,
                             Tensor._wrap(position.reshape(-1), dtypes.int64), self._values)
        rows = np.stack(np.unravel_index(unique, self.shape)) if len(self.shape) else \
            np.zeros((0, len(unique)), np.int64)
        return SparseTensor(Tensor._wrap(rows.astype(np.int64), dtypes.int64), summed,
                            self.shape)

    def _flat_index(self) -> Tensor:
        """Row-major positions of the entries in the dense tensor."""
        flat = Tensor._wrap(np.zeros(self._nnz(), np.int64), dtypes.int64)
        for d in range(self.dim()):
            flat = flat * self.shape[d] + F.select(self._indices, 0, d)
        return flat

    def to_dense(self) -> Tensor:
        numel = int(np.prod(self.shape, dtype=np.int64))
        out = creation.zeros(numel, dtype=self.dtype)
        return F.index_add(out, 0, self._flat_index(), self._values).reshape(self.shape)

    def t(self) -> "SparseTensor":
        if self.dim() != 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                               f"{self.dim()}D")
        return SparseTensor(F.flip(self._indices, 0), self._values, self.shape[::-1])

    def __matmul__(self, other):
        return mm(self, other)

    def __repr__(self) -> str:
        return (f"tensor(indices={self._indices!r},\n       values={self._values!r},\n"
                f"       size={tuple(self.shape)}, nnz={self._nnz()}, layout=torch.sparse_coo)")


def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None,
                      requires_grad=False, check_invariants=None, is_coalesced=None):
    """A sparse tensor with ``values[k]`` at ``indices[:, k]``; ``size`` defaults to the
    smallest shape holding every index.  As in PyTorch, indices outside ``size`` are
    reported at construction only with ``check_invariants=True`` (else by ``to_dense``
    and ``mm``, as index errors)."""
    indices = indices if isinstance(indices, Tensor) else creation.tensor(indices)
    values = values if isinstance(values, Tensor) else creation.tensor(values, dtype=dtype)
    if dtype is not None:
        values = F.cast(values, dtype)
    if indices.dim() != 2:
        raise RuntimeError(f"indices must be sparse_dim x nnz, but got: "
                           f"{list(indices.shape)}")
    if indices.dtype != dtypes.int64:
        raise RuntimeError(f"indices must be an int64 tensor (got {indices.dtype.name})")
    if values.dim() != 1 or values.shape[0] != indices.shape[1]:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from indices: "
                           f"{indices.shape[1]}, nnz from values: "
                           f"{values.shape[0] if values.dim() else 1} (graphc supports "
                           f"scalar values only)")
    if size is None:
        found = indices._concrete("sparse_coo_tensor without size")
        size = tuple(int(m) + 1 for m in found.max(1)) if found.shape[1] else \
            (0,) * found.shape[0]
    size = tuple(size)
    if len(size) != indices.shape[0]:
        raise RuntimeError(f"number of dimensions must be sparse_dim ({indices.shape[0]}) + "
                           f"dense_dim (0), but got {len(size)}")
    if check_invariants and F.is_concrete(indices) and indices.shape[1]:
        found = indices._data
        for d, n in enumerate(size):
            if found[d].min() < 0 or found[d].max() >= n:
                raise RuntimeError(f"size is inconsistent with indices: for dim {d}, size is "
                                   f"{n} but found index {int(found[d].max())}")
    if requires_grad:
        values = values.detach().requires_grad_(True)
    return SparseTensor(indices, values, size)


def to_sparse(x: Tensor, sparse_dim=None) -> SparseTensor:
    """The nonzero entries of a dense tensor (their values keep x's gradient)."""
    if sparse_dim not in (None, x.dim()):
        raise NotImplementedError(f"graphc's sparse tensors have no dense dims: "
                                  f"to_sparse(sparse_dim={sparse_dim}) of a "
                                  f"{x.dim()}-D tensor; use to_sparse()")
    where = np.nonzero(x._concrete("to_sparse"))
    rows = np.stack(where).astype(np.int64).reshape(x.dim(), -1)
    flat = np.ravel_multi_index(where, x.shape) if x.dim() else np.zeros(int(x._data != 0),
                                                                        np.int64)
    values = F.index_select(x.reshape(-1), 0, Tensor._wrap(flat.astype(np.int64),
                                                          dtypes.int64))
    return SparseTensor(Tensor._wrap(rows, dtypes.int64), values, x.shape)


def mm(mat1, mat2):
    """sparse (n, m) @ dense (m, p): each entry's value times its row of ``mat2``, added
    into the entry's row of the result.  A dense ``mat1`` is a plain ``mm``."""
    if not isinstance(mat1, SparseTensor):
        return F.mm(mat1, mat2.to_dense() if isinstance(mat2, SparseTensor) else mat2)
    if isinstance(mat2, SparseTensor):
        mat2 = mat2.to_dense()
    if mat1.dim() != 2 or mat2.dim() != 2:
        raise RuntimeError(f"sparse.mm: expected 2-D operands, got a {mat1.dim()}-D sparse "
                           f"and a {mat2.dim()}-D dense tensor")
    if mat1.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({mat1.shape[0]}x"
                           f"{mat1.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})")
    if mat1.dtype != mat2.dtype:
        raise RuntimeError(f"expected mat1 and mat2 to have the same dtype, but got: "
                           f"{mat1.dtype.name} != {mat2.dtype.name}")
    rows, cols = F.select(mat1.indices(), 0, 0), F.select(mat1.indices(), 0, 1)
    contributions = F.index_select(mat2, 0, cols) * F.unsqueeze(mat1.values(), 1)
    out = creation.zeros(mat1.shape[0], mat2.shape[1], dtype=mat2.dtype)
    return F.index_add(out, 0, rows, contributions)


def dense_to_dense(x: Tensor) -> Tensor:
    """``Tensor.to_dense`` of a dense tensor: the tensor itself."""
    return x
