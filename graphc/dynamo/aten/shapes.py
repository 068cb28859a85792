"""Lowerings of views, shape functions and indexing."""
from __future__ import annotations

import graphc
import graphc.nn.functional as F
from graphc.dynamo.aten.registry import _gradients, aten, lowering


# --------------------------------------------------------------------- views, shapes
# AOTAutograd's graphs are functional: a view's result is never written through, so
# every view lowers to the value it reads (``reshape`` where ATen says ``view``: graphc's
# layouts differ from PyTorch's, and the values are the same).

@lowering(aten.view.default, aten._unsafe_view.default, aten.reshape.default,
          aten.view_copy.default, aten._reshape_copy.default)
def view(x, size):
    return x.reshape(size)


@lowering(aten.alias.default, aten.detach.default, aten.lift_fresh_copy.default,
          aten.clone.default, aten.contiguous.default, aten.alias_copy.default,
          aten.detach_copy.default)
def clone(x, *, memory_format=None):
    return x.clone()


@lowering(aten.permute.default, aten.permute_copy.default)
def permute(x, dims):
    return x.permute(dims)


@lowering(aten.expand.default, aten.expand_copy.default)
def expand(x, size, *, implicit=False):
    return x.expand(size)


@lowering(aten.unsqueeze.default, aten.unsqueeze_copy.default)
def unsqueeze(x, dim):
    return x.unsqueeze(dim)


@lowering(aten.squeeze.default, aten.squeeze.dim, aten.squeeze.dims,
          aten.squeeze_copy.default, aten.squeeze_copy.dim, aten.squeeze_copy.dims)
def squeeze(x, dim=None):
    if dim is None:
        return x.squeeze()
    dims = {d % x.ndim for d in ([dim] if isinstance(dim, int) else dim)} if x.ndim else set()
    return x.reshape([s for d, s in enumerate(x.shape) if not (d in dims and s == 1)])


@lowering(aten.t.default, aten.t_copy.default)
def t(x):
    return x.t()


@lowering(aten.transpose.int, aten.transpose_copy.int)
def transpose(x, dim0, dim1):
    return x.transpose(dim0, dim1)


@lowering(aten.slice.Tensor, aten.slice_copy.Tensor)
def slice_tensor(x, dim=0, start=None, end=None, step=1):
    index = [slice(None)] * (dim % x.ndim) + [slice(start, end, step)]
    return x[tuple(index)]


@lowering(aten.select.int, aten.select_copy.int)
def select(x, dim, index):
    return x.select(dim, index)


@lowering(aten.narrow.default)
def narrow(x, dim, start, length):
    return x.narrow(dim, start, length)


@lowering(aten.diagonal.default, aten.diagonal_copy.default)
def diagonal(x, offset=0, dim1=0, dim2=1):
    return graphc.diagonal(x, offset, dim1, dim2)


@lowering(aten.cat.default)
def cat(tensors, dim=0):
    return graphc.cat(list(tensors), dim)


@lowering(aten.stack.default)
def stack(tensors, dim=0):
    return graphc.stack(list(tensors), dim)


@lowering(aten.split_with_sizes.default, aten.split.Tensor, aten.split.sizes,
          aten.split_with_sizes_copy.default, aten.split_copy.Tensor)
def split(x, split_size, dim=0):
    if isinstance(split_size, (list, tuple)):
        split_size = list(split_size)
    return tuple(graphc.split(x, split_size, dim))


@lowering(aten.unbind.int, aten.unbind_copy.int)
def unbind(x, dim=0):
    return tuple(graphc.unbind(x, dim))


@lowering(aten.flip.default)
def flip(x, dims):
    return graphc.flip(x, dims)


@lowering(aten.roll.default)
def roll(x, shifts, dims=()):
    return graphc.roll(x, tuple(shifts), tuple(dims) or None)


@lowering(aten.repeat.default)
def repeat(x, repeats):
    return x.repeat(*repeats)


@lowering(aten.constant_pad_nd.default)
def constant_pad_nd(x, pad, value=0):
    return graphc.constant_pad_nd(x, list(pad), value)


@lowering(aten.reflection_pad1d.default, aten.reflection_pad2d.default,
          aten.reflection_pad3d.default)
def reflection_pad(x, padding):
    return F.pad(x, list(padding), mode="reflect")


@lowering(aten.replication_pad1d.default, aten.replication_pad2d.default,
          aten.replication_pad3d.default)
def replication_pad(x, padding):
    return F.pad(x, list(padding), mode="replicate")


@lowering(aten.replication_pad1d_backward.default, aten.replication_pad2d_backward.default,
          aten.replication_pad3d_backward.default)
def replication_pad_backward(grad_output, x, padding):
    return _gradients(lambda x: replication_pad(x, padding), grad_output, (x,), (True,))[0]


@lowering(aten.tril.default)
def tril(x, diagonal=0):
    return graphc.tril(x, diagonal)


@lowering(aten.triu.default)
def triu(x, diagonal=0):
    return graphc.triu(x, diagonal)


# --------------------------------------------------------------------------- indexing

def _index_tuple(indices):
    """ATen's ``Tensor?[]`` index list as a Python index: None selects the whole dim."""
    return tuple(slice(None) if i is None else i for i in indices)


@lowering(aten.index.Tensor, aten._unsafe_index.Tensor)
def index(x, indices):
    return x[_index_tuple(indices)]


def _explicit_indices(x, indices):
    """ATen's ``Tensor?[]`` index list as index tensors only (graphc's ``index_put``
    takes no slices): each None (a whole dim) becomes an ``arange`` shaped to broadcast
    where PyTorch puts that dim in the result, before the indexed block when the index
    tensors are adjacent, after it when a None separates them."""
    indices = list(indices)
    while indices and indices[-1] is None:
        indices.pop()
    tensors = [d for d, i in enumerate(indices) if i is not None]
    wholes = [d for d, i in enumerate(indices) if i is None]
    block = graphc.broadcast_shapes(*(indices[d].shape for d in tensors))
    adjacent = all(d < tensors[0] for d in wholes)
    explicit = []
    for d, index in enumerate(indices):
        if index is None:
            j = wholes.index(d)
            after = (len(wholes) - 1 - j) + (len(block) if adjacent else 0)
            index = graphc.arange(x.shape[d]).reshape([-1] + [1] * after)
        elif not adjacent:
            index = index.reshape(list(index.shape) + [1] * len(wholes))
        explicit.append(index)
    return tuple(explicit)


@lowering(aten.index_put.default, aten._unsafe_index_put.default)
def index_put(x, indices, values, accumulate=False):
    return graphc.index_put(x, _explicit_indices(x, indices), values, accumulate)


@lowering(aten.index_select.default)
def index_select(x, dim, index):
    return graphc.index_select(x, dim, index)


@lowering(aten.index_add.default)
def index_add(x, dim, index, source, *, alpha=1):
    return graphc.index_add(x, dim, index, source, alpha=alpha)


@lowering(aten.index_copy.default)
def index_copy(x, dim, index, source):
    return graphc.index_copy(x, dim, index, source)


@lowering(aten.index_fill.int_Scalar, aten.index_fill.int_Tensor)
def index_fill(x, dim, index, value):
    return graphc.index_fill(x, dim, index, value)


@lowering(aten.gather.default)
def gather(x, dim, index, *, sparse_grad=False):
    return graphc.gather(x, dim, index)


@lowering(aten.scatter.src, aten.scatter.value)
def scatter(x, dim, index, src):
    return graphc.scatter(x, dim, index, src)


@lowering(aten.scatter.reduce, aten.scatter.value_reduce)
def scatter_reduce_legacy(x, dim, index, src, *, reduce):
    return graphc.scatter(x, dim, index, src, reduce=reduce)


@lowering(aten.scatter_add.default)
def scatter_add(x, dim, index, src):
    return graphc.scatter_add(x, dim, index, src)


@lowering(aten.scatter_reduce.two)
def scatter_reduce(x, dim, index, src, reduce, *, include_self=True):
    return graphc.scatter_reduce(x, dim, index, src, reduce, include_self=include_self)


@lowering(aten.slice_scatter.default)
def slice_scatter(x, src, dim=0, start=None, end=None, step=1):
    return graphc.slice_scatter(x, src, dim, start, end, step)


@lowering(aten.select_scatter.default)
def select_scatter(x, src, dim, index):
    return graphc.select_scatter(x, src, dim, index)


@lowering(aten.diagonal_scatter.default)
def diagonal_scatter(x, src, offset=0, dim1=0, dim2=1):
    return graphc.diagonal_scatter(x, src, offset, dim1, dim2)


@lowering(aten.masked_scatter.default)
def masked_scatter(x, mask, source):
    return graphc.masked_scatter(x, mask, source)


@lowering(aten.embedding.default)
def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    return F.embedding(indices, weight)


@lowering(aten.embedding_dense_backward.default)
def embedding_dense_backward(grad, indices, num_weights, padding_idx, scale_grad_by_freq):
    """The weight's gradient: each row of ``grad`` added into the row its index names."""
    rows = indices.reshape(-1)
    grad = grad.reshape(rows.shape[0], -1)
    if padding_idx >= 0:
        grad = grad * (rows != padding_idx).unsqueeze(1).to(grad.dtype)
    if scale_grad_by_freq:
        counts = graphc.zeros(num_weights, dtype=grad.dtype).index_add(
            0, rows, graphc.ones(rows.shape[0], dtype=grad.dtype))
        grad = grad / counts[rows].unsqueeze(1)
    return graphc.zeros(num_weights, grad.shape[1], dtype=grad.dtype).index_add(0, rows, grad)


@lowering(aten.topk.default)
def topk(x, k, dim=-1, largest=True, sorted=True):
    return tuple(graphc.topk(x, k, dim, largest, sorted))


@lowering(aten.sort.default, aten.sort.stable)
def sort(x, dim=-1, descending=False, *, stable=None):
    return tuple(graphc.sort(x, dim, descending, stable=bool(stable)))
