"""ATen -> graphc: one lowering per ATen operator that graphc runs.

A lowering is a plain function called with the FX node's arguments, each ``fx.Node``
replaced by the graphc ``Tensor`` it computed (lists of nodes by lists of tensors), and
returns what the ATen op returns (a ``Tensor``, or a tuple of them).  Lowerings call
graphc's own PyTorch-spelled functions, so the same code runs eagerly, is traced into
graphc's IR by ``graphc.compile``, and is differentiated there if ever needed.
Non-tensor arguments arrive as PyTorch gave them: Python numbers, lists of ints, and
``torch.dtype``/``torch.device``/``torch.layout``/``torch.memory_format`` objects
(dtypes are converted by name with ``graphc_dtype``; devices, layouts and memory
formats do not change values, so they are read only by ``unsupported``).

``LOWERINGS`` maps each ``OpOverload`` to its lowering; ``lowering(*ops)`` registers one
function for several overloads (an ``OpOverloadPacket`` registers its tensor overloads).
``DECOMPOSITIONS`` is the table AOTAutograd traces with, and ``unsupported(node)`` says
why an FX node must stay in PyTorch.  This module imports PyTorch: only
``graphc.dynamo`` imports it.  docs/aten.md lists the ops and how to add one.
"""
from __future__ import annotations

import math
import operator

import torch
import torch._decomp
from torch._inductor import inductor_prims   # registers prims.fma, which Dynamo emits

import graphc
import graphc.attention
import graphc.nn.functional as F

aten = torch.ops.aten

LOWERINGS: dict = {}


def lowering(*ops):
    """Register the decorated function as the lowering of every overload in ``ops``; a
    packet (``aten.eq``) stands for its tensor overloads (``_on_tensors``)."""
    def register(fn):
        for op in ops:
            if isinstance(op, torch._ops.OpOverloadPacket):
                for name in op.overloads():
                    if _on_tensors(getattr(op, name)):
                        LOWERINGS[getattr(op, name)] = fn
            else:
                LOWERINGS[op] = fn
        return fn
    return register


def _on_tensors(overload) -> bool:
    """Whether an overload computes tensors from a tensor operand without writing one:
    not an ``out=`` or in-place form, nor one on Python values (``eq.int``, ``eq.str``:
    TorchScript's, returning Python values)."""
    schema = overload._schema
    tensor = torch._C.TensorType.get()
    return (not schema.is_mutable and any(a.type == tensor for a in schema.arguments)
            and all(r.type == tensor for r in schema.returns))


# ---------------------------------------------------------------------------- dtypes

def graphc_dtype(dtype):
    """The graphc dtype of the same name as a ``torch.dtype`` (None stays None).

    graphc spells its dtypes as PyTorch does (``graphc.float32``...), so the name is the
    whole mapping; a dtype graphc lacks (complex, unsigned beyond uint8, float8) raises.
    """
    if dtype is None:
        return None
    name = str(dtype).removeprefix("torch.")
    found = getattr(graphc, name, None)
    if not isinstance(found, graphc.dtype):
        raise TypeError(f"graphc has no dtype {dtype}")
    return found


SUPPORTED_DTYPES = frozenset(d.name for d in graphc.dtypes.ALL)


def _all_dims(x, dim):
    """ATen's ``dim=None`` or ``[]`` (every dim) as an explicit tuple, so keepdim works."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return tuple(range(x.ndim)) or None
    return tuple(dim) if isinstance(dim, (list, tuple)) else dim


def _ints(value, n):
    """An ATen ``int[n]`` argument (one int or a list) as a tuple of n ints."""
    if not isinstance(value, (list, tuple)):
        return (value,) * n
    return tuple(value) * (n if len(value) == 1 else 1)


# ---------------------------------------------------------------- pointwise, one name

UNARY = """abs acos acosh asin asinh atan atanh ceil cos cosh erf erfc erfinv exp exp2 expm1
floor frac isfinite isinf isnan isneginf isposinf lgamma digamma log log10 log1p log2 neg
reciprocal relu round rsqrt sgn sigmoid sign signbit sin sinc sinh sqrt square tan tanh
trunc logical_not bitwise_not""".split()

BINARY = """atan2 maximum minimum fmod remainder eq ne lt le gt ge logical_and logical_or
logical_xor floor_divide copysign hypot fmax fmin xlogy heaviside""".split()

for _name in UNARY:
    lowering(getattr(aten, _name).default)(getattr(graphc, _name))
for _name in BINARY:  # every overload: Tensor, Scalar, Scalar_Tensor...
    lowering(getattr(aten, _name))(getattr(graphc, _name))


@lowering(aten.add.Tensor, aten.add.Scalar)
def add(a, b, alpha=1):
    return graphc.add(a, b, alpha=alpha)


@lowering(aten.sub.Tensor, aten.sub.Scalar)
def sub(a, b, alpha=1):
    return graphc.sub(a, b, alpha=alpha)


@lowering(aten.rsub.Tensor, aten.rsub.Scalar)
def rsub(a, b, alpha=1):
    return graphc.sub(b, a, alpha=alpha)


@lowering(aten.mul.Tensor, aten.mul.Scalar)
def mul(a, b):
    return graphc.mul(a, b)


@lowering(aten.div.Tensor, aten.div.Scalar, aten.div.Tensor_mode, aten.div.Scalar_mode)
def div(a, b, rounding_mode=None):
    return graphc.div(a, b, rounding_mode=rounding_mode)


@lowering(aten.pow.Tensor_Tensor, aten.pow.Tensor_Scalar, aten.pow.Scalar)
def power(a, b):
    return graphc.pow(a, b)


def _bitwise(logical):
    """ATen's bitwise and/or/xor; graphc has them for bool only (``unsupported`` checks),
    where they are its logical ones (a Python bool operand as a 0-d tensor)."""
    def lower(a, b):
        a, b = (x if isinstance(x, graphc.Tensor) else graphc.tensor(x) for x in (a, b))
        return logical(a, b)
    return lower


lowering(aten.bitwise_and)(_bitwise(graphc.logical_and))
lowering(aten.bitwise_or)(_bitwise(graphc.logical_or))
lowering(aten.bitwise_xor)(_bitwise(graphc.logical_xor))


@lowering(aten.clamp.default, aten.clamp.Tensor)
def clamp(x, min=None, max=None):
    return graphc.clamp(x, min, max)


@lowering(aten.clamp_min.default, aten.clamp_min.Tensor)
def clamp_min(x, min):
    return graphc.clamp_min(x, min)


@lowering(aten.clamp_max.default, aten.clamp_max.Tensor)
def clamp_max(x, max):
    return graphc.clamp_max(x, max)


@lowering(aten.where.self, aten.where.ScalarSelf, aten.where.ScalarOther, aten.where.Scalar)
def where(condition, a, b):
    return graphc.where(condition, a, b)


@lowering(aten.masked_fill.Scalar)
def masked_fill(x, mask, value):
    return graphc.masked_fill(x, mask, value)


@lowering(aten.masked_fill.Tensor)
def masked_fill_tensor(x, mask, value):
    """A 0-d ``value`` as a ``where`` operand (graphc's masked_fill reads its value, which
    tracing cannot), in x's dtype; x and the mask broadcast, as in PyTorch."""
    return graphc.where(mask, value.to(x.dtype), x)


@lowering(aten.lerp.Scalar, aten.lerp.Tensor)
def lerp(a, b, weight):
    return graphc.lerp(a, b, weight)


@lowering(aten.addcmul.default)
def addcmul(x, a, b, value=1):
    return graphc.addcmul(x, a, b, value=value)


@lowering(inductor_prims.fma)
def fma(a, b, c):
    """``a * b + c``: Dynamo writes ``addcmul_`` (AdamW's step) with it.  PyTorch's
    prim rounds once; graphc rounds the product too, as eager ``addcmul`` does."""
    return graphc.add(graphc.mul(a, b), c)


@lowering(aten.addcdiv.default)
def addcdiv(x, a, b, value=1):
    return graphc.addcdiv(x, a, b, value=value)


@lowering(aten.logit.default)
def logit(x, eps=None):
    return graphc.logit(x, eps)


@lowering(aten.nan_to_num.default)
def nan_to_num(x, nan=None, posinf=None, neginf=None):
    return graphc.nan_to_num(x, nan=0.0 if nan is None else nan, posinf=posinf, neginf=neginf)


# ------------------------------------------------------------------------ activations

@lowering(aten.gelu.default)
def gelu(x, approximate="none"):
    return F.gelu(x, approximate=approximate)


for _name in ("silu", "hardswish", "hardsigmoid", "mish"):
    lowering(getattr(aten, _name).default)(getattr(F, _name))


@lowering(aten.softplus.default)
def softplus(x, beta=1, threshold=20):
    return F.softplus(x, beta=beta, threshold=threshold)


@lowering(aten.elu.default)
def elu(x, alpha=1, scale=1, input_scale=1):
    if scale == 1 and input_scale == 1:
        return F.elu(x, alpha=alpha)
    # selu and celu reach ATen as elu with a scale and an input scale
    return graphc.where(x > 0, x * scale, (graphc.exp(x * input_scale) - 1) * (alpha * scale))


@lowering(aten.hardtanh.default)
def hardtanh(x, min_val=-1, max_val=1):
    return F.hardtanh(x, min_val, max_val)


@lowering(aten.leaky_relu.default)
def leaky_relu(x, negative_slope=0.01):
    return F.leaky_relu(x, negative_slope)


@lowering(aten._softmax.default)
def softmax(x, dim, half_to_float):
    return F.softmax(x, dim, dtype=graphc.float32 if half_to_float else None)


@lowering(aten._log_softmax.default)
def log_softmax(x, dim, half_to_float):
    return F.log_softmax(x, dim, dtype=graphc.float32 if half_to_float else None)


# ------------------------------------------------------------------------- reductions

@lowering(aten.sum.default, aten.sum.dim_IntList)
def reduce_sum(x, dim=None, keepdim=False, *, dtype=None):
    return graphc.sum(x, _all_dims(x, dim), keepdim=keepdim, dtype=graphc_dtype(dtype))


@lowering(aten.mean.default, aten.mean.dim)
def mean(x, dim=None, keepdim=False, *, dtype=None):
    return graphc.mean(x, _all_dims(x, dim), keepdim=keepdim, dtype=graphc_dtype(dtype))


@lowering(aten.prod.default, aten.prod.dim_int)
def prod(x, dim=None, keepdim=False, *, dtype=None):
    if dim is None:
        return graphc.prod(x, dtype=graphc_dtype(dtype))
    return graphc.prod(x, dim, keepdim=keepdim, dtype=graphc_dtype(dtype))


@lowering(aten.amax.default)
def amax(x, dim=(), keepdim=False):
    return graphc.amax(x, _all_dims(x, dim), keepdim=keepdim)


@lowering(aten.amin.default)
def amin(x, dim=(), keepdim=False):
    return graphc.amin(x, _all_dims(x, dim), keepdim=keepdim)


@lowering(aten.max.default)
def max_all(x):
    return graphc.amax(x)


@lowering(aten.min.default)
def min_all(x):
    return graphc.amin(x)


@lowering(aten.max.dim)
def max_dim(x, dim, keepdim=False):
    return tuple(graphc.max(x, dim, keepdim=keepdim))


@lowering(aten.min.dim)
def min_dim(x, dim, keepdim=False):
    return tuple(graphc.min(x, dim, keepdim=keepdim))


@lowering(aten.argmax.default)
def argmax(x, dim=None, keepdim=False):
    return graphc.argmax(x, dim, keepdim=keepdim)


@lowering(aten.argmin.default)
def argmin(x, dim=None, keepdim=False):
    return graphc.argmin(x, dim, keepdim=keepdim)


@lowering(aten.any.default, aten.any.dim, aten.any.dims)
def any_true(x, dim=None, keepdim=False):
    return graphc.any(x, _all_dims(x, dim), keepdim=keepdim)


@lowering(aten.all.default, aten.all.dim, aten.all.dims)
def all_true(x, dim=None, keepdim=False):
    return graphc.all(x, _all_dims(x, dim), keepdim=keepdim)


@lowering(aten.var.default)
def var_all(x, unbiased=True):
    return var(x, None, unbiased)


@lowering(aten.std.default)
def std_all(x, unbiased=True):
    return std(x, None, unbiased)


@lowering(aten.var.correction, aten.var.dim)
def var(x, dim=None, unbiased=True, keepdim=False, *, correction=None):
    if correction is None:
        correction = 1 if unbiased else 0
    return graphc.var(x, _all_dims(x, dim), correction=correction, keepdim=keepdim)


@lowering(aten.std.correction, aten.std.dim)
def std(x, dim=None, unbiased=True, keepdim=False, *, correction=None):
    return graphc.sqrt(var(x, dim, unbiased, keepdim, correction=correction))


@lowering(aten.cumsum.default)
def cumsum(x, dim, *, dtype=None):
    return graphc.cumsum(x if dtype is None else x.to(graphc_dtype(dtype)), dim)


@lowering(aten.cumprod.default)
def cumprod(x, dim, *, dtype=None):
    return graphc.cumprod(x if dtype is None else x.to(graphc_dtype(dtype)), dim)


@lowering(aten.linalg_vector_norm.default)
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    return graphc.linalg.vector_norm(x, ord, _all_dims(x, dim), keepdim,
                                     dtype=graphc_dtype(dtype))


@lowering(aten.logsumexp.default)
def logsumexp(x, dim, keepdim=False):
    return graphc.logsumexp(x, _all_dims(x, dim), keepdim=keepdim)


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


# --------------------------------------------------------------------- new tensors
# Devices and layouts never change values; ``unsupported`` refuses any graphc cannot
# honour, so here they are dropped.

def _new(make):
    """An ATen factory (``size, *, dtype, layout, device, pin_memory``) as graphc's."""
    def lower(size, *args, dtype=None, layout=None, device=None, pin_memory=None, **_):
        return make(list(size), *args, dtype=graphc_dtype(dtype))
    return lower


lowering(aten.zeros.default)(_new(lambda size, dtype: graphc.zeros(size, dtype=dtype)))
lowering(aten.ones.default)(_new(lambda size, dtype: graphc.ones(size, dtype=dtype)))
lowering(aten.empty.memory_format)(_new(lambda size, dtype: graphc.empty(size, dtype=dtype)))
lowering(aten.full.default)(
    _new(lambda size, fill, dtype: graphc.full(size, fill, dtype=dtype)))
lowering(aten.rand.default)(_new(lambda size, dtype: _uniform(size, dtype)))
lowering(aten.randn.default)(_new(lambda size, dtype: _normal(size, dtype)))


@lowering(aten.empty_strided.default)
def empty_strided(size, stride, *, dtype=None, layout=None, device=None, pin_memory=None):
    return graphc.empty(list(size), dtype=graphc_dtype(dtype))


@lowering(aten.scalar_tensor.default)
def scalar_tensor(value, *, dtype=None, layout=None, device=None, pin_memory=None):
    return graphc.scalar_tensor(value, dtype=graphc_dtype(dtype) or graphc.get_default_dtype())


@lowering(aten.arange.default, aten.arange.start, aten.arange.start_step)
def arange(*args, dtype=None, layout=None, device=None, pin_memory=None):
    return graphc.arange(*args, dtype=graphc_dtype(dtype))


def _like(make):
    """An ATen ``*_like`` factory: the input's shape, and its dtype unless one is given."""
    def lower(x, *args, dtype=None, layout=None, device=None, pin_memory=None,
              memory_format=None):
        return make(x.shape, *args, dtype=graphc_dtype(dtype) or x.dtype)
    return lower


lowering(aten.zeros_like.default)(_like(lambda shape, dtype: graphc.zeros(shape, dtype=dtype)))
lowering(aten.ones_like.default)(_like(lambda shape, dtype: graphc.ones(shape, dtype=dtype)))
lowering(aten.empty_like.default)(_like(lambda shape, dtype: graphc.empty(shape, dtype=dtype)))
lowering(aten.full_like.default)(
    _like(lambda shape, fill, dtype: graphc.full(shape, fill, dtype=dtype)))
lowering(aten.rand_like.default)(_like(lambda shape, dtype: _uniform(shape, dtype)))
lowering(aten.randn_like.default)(_like(lambda shape, dtype: _normal(shape, dtype)))


def _new_of(make):
    """An ATen ``new_*`` factory: a given shape, the input's dtype unless one is given."""
    def lower(x, size, *args, dtype=None, layout=None, device=None, pin_memory=None):
        return make(list(size), *args, dtype=graphc_dtype(dtype) or x.dtype)
    return lower


lowering(aten.new_zeros.default)(_new_of(lambda size, dtype: graphc.zeros(size, dtype=dtype)))
lowering(aten.new_ones.default)(_new_of(lambda size, dtype: graphc.ones(size, dtype=dtype)))
lowering(aten.new_empty.default)(_new_of(lambda size, dtype: graphc.empty(size, dtype=dtype)))
lowering(aten.new_full.default)(
    _new_of(lambda size, fill, dtype: graphc.full(size, fill, dtype=dtype)))


@lowering(aten.fill.Scalar, aten.fill.Tensor)
def fill(x, value):
    if isinstance(value, graphc.Tensor):
        return value.to(x.dtype).expand(x.shape).clone()
    return graphc.full(x.shape, value, dtype=x.dtype)


@lowering(aten.copy.default)
def copy(x, src, non_blocking=False):
    return src.to(x.dtype).expand(x.shape).clone()


@lowering(aten.copy_.default)
def copy_(x, src, non_blocking=False):
    """An input's update, left in the graph (``keep_inference_input_mutations``): graphc
    writes it into the input's own memory, which PyTorch's tensor shares."""
    return x.copy_(src)


@lowering(aten._to_copy.default)
def to_copy(x, *, dtype=None, layout=None, device=None, pin_memory=None,
            non_blocking=False, memory_format=None):
    return x.to(graphc_dtype(dtype) or x.dtype).clone()


# ------------------------------------------------------------------------ randomness
# graphc's own generator draws the numbers: the same distributions as PyTorch's, other
# numbers (docs/aten.md).  Every draw goes through ``functional.uniform_noise``, which
# traces to a ``uniform`` op on a fresh seed, so a compiled graph draws anew each call.

def _uniform(shape, dtype=None):
    return graphc.functional.uniform_noise(tuple(shape), dtype or graphc.get_default_dtype())


def _normal(shape, dtype=None):
    """Standard normal draws by Box-Muller over two uniform draws (1 - u is in (0, 1])."""
    dtype = dtype or graphc.get_default_dtype()
    compute = graphc.float64 if dtype == graphc.float64 else graphc.float32
    radius = graphc.sqrt(-2.0 * graphc.log1p(-_uniform(shape, compute)))
    return (radius * graphc.cos((2 * math.pi) * _uniform(shape, compute))).to(dtype)


@lowering(aten.randint.default, aten.randint.low)
def randint(*args, dtype=None, layout=None, device=None, pin_memory=None):
    """Integers uniform in [low, high): low + floor(u * (high - low)), u drawn in
    float64 so every integer of a wide range is reachable."""
    low, high, size = (0, *args) if len(args) == 2 else args
    u = _uniform(size, graphc.float64)
    return (graphc.floor(u * (high - low)) + low).to(graphc_dtype(dtype) or graphc.int64)


@lowering(aten.bernoulli.default)
def bernoulli(x, *, generator=None):
    return graphc.bernoulli(x)


@lowering(aten.bernoulli.p)
def bernoulli_p(x, p, *, generator=None):
    dtype = _float(x).dtype if x.is_floating_point() else None
    return (_uniform(x.shape, dtype) < p).to(x.dtype)


@lowering(aten.native_dropout.default)
def native_dropout(x, p, train):
    """(x * mask / (1 - p), mask), ``mask`` keeping each element with probability 1 - p."""
    if train is False or p == 0:
        return x.clone(), graphc.ones(x.shape, dtype=graphc.bool)
    if p == 1:
        return graphc.zeros_like(x), graphc.zeros(x.shape, dtype=graphc.bool)
    keep = _uniform(x.shape, _float(x).dtype) >= p
    return x * keep.to(x.dtype) * (1.0 / (1.0 - p)), keep


# -------------------------------------------------------------------- linear algebra

for _name in ("mm", "bmm", "matmul", "mv", "dot"):
    lowering(getattr(aten, _name).default)(getattr(graphc, _name))


@lowering(aten.addmm.default)
def addmm(bias, a, b, *, beta=1, alpha=1):
    return graphc.addmm(bias, a, b, beta=beta, alpha=alpha)


@lowering(aten.baddbmm.default)
def baddbmm(bias, a, b, *, beta=1, alpha=1):
    return graphc.baddbmm(bias, a, b, beta=beta, alpha=alpha)


# ---------------------------------------------------------- convolution and pooling

def _convolve(x, weight, bias, stride, padding, dilation, transposed, output_padding,
              groups):
    n = weight.ndim - 2
    stride, padding, dilation = _ints(stride, n), _ints(padding, n), _ints(dilation, n)
    if transposed:
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
        return conv(x, weight, bias, stride, padding, _ints(output_padding, n), groups,
                    dilation)
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return conv(x, weight, bias, stride, padding, dilation, groups)


lowering(aten.convolution.default)(_convolve)


def _gradients(forward, grad_output, inputs, wanted):
    """The gradients of ``forward(*inputs)`` for the inputs ``wanted`` marks (None else).

    ATen's backward ops are the vector-Jacobian products of forward ops graphc has as
    composites with autograd, so each is graphc's own gradient of its forward,
    recomputed on detached inputs (when compiled, the passes drop the unused forward).
    """
    with graphc.enable_grad():
        leaves = [x.detach().requires_grad_(w) if x is not None else None
                  for x, w in zip(inputs, wanted)]
        out = forward(*leaves)
        asked = [leaf for leaf, w in zip(leaves, wanted) if w and leaf is not None]
        grads = iter(graphc.autograd.grad(out, asked, grad_output, allow_unused=True))
    return tuple(next(grads) if w and leaf is not None else None
                 for leaf, w in zip(leaves, wanted))


@lowering(aten.convolution_backward.default)
def convolution_backward(grad_output, x, weight, bias_sizes, stride, padding, dilation,
                         transposed, output_padding, groups, output_mask):
    def forward(x, weight):
        return _convolve(x, weight, None, stride, padding, dilation, transposed,
                         output_padding, groups)
    grad_x, grad_w = _gradients(forward, grad_output, (x, weight), output_mask[:2])
    grad_b = None
    if output_mask[2]:
        grad_b = grad_output.sum([0] + list(range(2, grad_output.ndim)))
    return grad_x, grad_w, grad_b


def _max_pool(n):
    """ATen's max_pool{n}d_with_indices: (values, flat index into each input plane)."""
    pool = (F.max_pool2d, F.max_pool3d)[n - 2]

    def lower(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
        return tuple(pool(x, _ints(kernel_size, n), _ints(stride or kernel_size, n),
                          _ints(padding, n), _ints(dilation, n), ceil_mode,
                          return_indices=True))
    return lower


def _scatter_to_indices(grad_output, x, indices, n):
    """Each output's gradient added at the input position its flat index (within its
    n-d plane) names: the backward of every max pooling that returns indices."""
    flat = graphc.zeros(*x.shape[:-n], math.prod(x.shape[-n:]), dtype=grad_output.dtype)
    flat = flat.scatter_add(-1, indices.flatten(-n), grad_output.flatten(-n))
    return flat.reshape(x.shape)


def _max_pool_backward(n):
    def lower(grad_output, x, kernel_size, stride, padding, dilation, ceil_mode, indices):
        return _scatter_to_indices(grad_output, x, indices, n)
    return lower


def _adaptive_max_pool(n):
    pool = (F.adaptive_max_pool2d, F.adaptive_max_pool3d)[n - 2]
    return lambda x, output_size: tuple(pool(x, tuple(output_size), return_indices=True))


def _adaptive_max_pool_backward(n):
    return lambda grad_output, x, indices: _scatter_to_indices(grad_output, x, indices, n)


def _avg_pool(n):
    pool = (F.avg_pool2d, F.avg_pool3d)[n - 2]

    def lower(x, kernel_size, stride=(), padding=0, ceil_mode=False,
              count_include_pad=True, divisor_override=None):
        return pool(x, _ints(kernel_size, n), _ints(stride or kernel_size, n),
                    _ints(padding, n), ceil_mode, count_include_pad, divisor_override)
    return lower


def _avg_pool_backward(n):
    def lower(grad_output, x, *pooling):
        return _gradients(lambda x: _avg_pool(n)(x, *pooling), grad_output, (x,), (True,))[0]
    return lower


def _adaptive_avg_pool(n):
    pool = (F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[n - 2]
    return lambda x, output_size: pool(x, tuple(output_size))


def _adaptive_avg_pool_backward(n):
    def lower(grad_output, x):
        def forward(x):
            return _adaptive_avg_pool(n)(x, grad_output.shape[-n:])
        return _gradients(forward, grad_output, (x,), (True,))[0]
    return lower


for _n, _ops in ((2, (aten.max_pool2d_with_indices, aten.max_pool2d_with_indices_backward,
                      aten.avg_pool2d, aten.avg_pool2d_backward, aten._adaptive_avg_pool2d,
                      aten._adaptive_avg_pool2d_backward, aten.adaptive_max_pool2d,
                      aten.adaptive_max_pool2d_backward)),
                 (3, (aten.max_pool3d_with_indices, aten.max_pool3d_with_indices_backward,
                      aten.avg_pool3d, aten.avg_pool3d_backward, aten._adaptive_avg_pool3d,
                      aten._adaptive_avg_pool3d_backward, aten.adaptive_max_pool3d,
                      aten.adaptive_max_pool3d_backward))):
    for _op, _make in zip(_ops, (_max_pool, _max_pool_backward, _avg_pool,
                                 _avg_pool_backward, _adaptive_avg_pool,
                                 _adaptive_avg_pool_backward, _adaptive_max_pool,
                                 _adaptive_max_pool_backward)):
        lowering(_op.default)(_make(_n))


@lowering(aten._cdist_forward.default)
def cdist(x1, x2, p, compute_mode=None):
    return graphc.cdist(x1, x2, p)


@lowering(aten._pdist_forward.default)
def pdist(x, p=2.0):
    return F.pdist(x, p)


@lowering(aten.upsample_nearest2d.vec)
def upsample_nearest2d(x, output_size, scale_factors):
    return F.interpolate(x, size=output_size and tuple(output_size),
                         scale_factor=scale_factors and tuple(scale_factors), mode="nearest")


@lowering(aten.upsample_bilinear2d.vec)
def upsample_bilinear2d(x, output_size, align_corners, scale_factors):
    return F.interpolate(x, size=output_size and tuple(output_size),
                         scale_factor=scale_factors and tuple(scale_factors),
                         mode="bilinear", align_corners=align_corners)


@lowering(aten.mkldnn_rnn_layer.default)
def mkldnn_rnn_layer(x, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, batch_sizes, mode,
                     hidden_size, num_layers, has_biases, bidirectional, batch_first,
                     train):
    """One LSTM layer over a (T, B, I) sequence: the op PyTorch's LSTM runs each layer
    as on the CPU in inference (it passes the sequence time-major whatever
    ``batch_first`` says).  Gates i, f, g, o as in PyTorch; the final states have the
    initial states' shapes, (B, H) or (1, B, H); the fourth output (oneDNN's workspace,
    read only by its own backward) is empty.  ``unsupported`` refuses other modes."""
    h, c = hx.reshape(hx.shape[-2:]), cx.reshape(cx.shape[-2:])
    projected = graphc.matmul(x, w_ih.t()) + (b_ih + b_hh)
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outputs = [None] * x.shape[0]
    for t in steps:
        i, f, g, o = (projected[t] + graphc.mm(h, w_hh.t())).chunk(4, 1)
        c = graphc.sigmoid(f) * c + graphc.sigmoid(i) * graphc.tanh(g)
        h = graphc.sigmoid(o) * graphc.tanh(c)
        outputs[t] = h
    return (graphc.stack(outputs), h.reshape(hx.shape), c.reshape(cx.shape),
            graphc.zeros(0, dtype=x.dtype))


@lowering(aten._transformer_encoder_layer_fwd.default)
def transformer_encoder_layer(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight,
                              proj_bias, use_gelu, norm_first, eps, norm_weight_1,
                              norm_bias_1, norm_weight_2, norm_bias_2, ffn_weight_1,
                              ffn_bias_1, ffn_weight_2, ffn_bias_2, mask=None,
                              mask_type=None):
    """nn.TransformerEncoderLayer's inference fast path (batch-first (B, T, E), no mask:
    ``unsupported`` refuses the rest) as graphc's attention, linear and layer norm."""
    batch, length = src.shape[:2]

    def attention(x):
        q, k, v = F.linear(x, qkv_weight, qkv_bias).reshape(
            batch, length, 3, num_heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        return F.linear(y.reshape(batch, length, embed_dim), proj_weight, proj_bias)

    def feed_forward(x):
        hidden = F.linear(x, ffn_weight_1, ffn_bias_1)
        return F.linear(F.gelu(hidden) if use_gelu else F.relu(hidden), ffn_weight_2,
                        ffn_bias_2)

    def norm_1(x):
        return F.layer_norm(x, [embed_dim], norm_weight_1, norm_bias_1, eps)

    def norm_2(x):
        return F.layer_norm(x, [embed_dim], norm_weight_2, norm_bias_2, eps)
    if norm_first:
        x = src + attention(norm_1(src))
        return x + feed_forward(norm_2(x))
    x = norm_1(src + attention(src))
    return norm_2(x + feed_forward(x))


# ------------------------------------------------------------------- normalisations

def _float(x):
    """Half input as float32: normalisations compute in float32, as PyTorch's kernels
    do, and round their results (statistics included) to the input's dtype."""
    return x.float() if x.dtype in (graphc.float16, graphc.bfloat16) else x


def _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """PyTorch's batch norm returning (out, mean, rstd, new running mean, new running var).

    ``mean``/``rstd`` are the batch's (what the backward reads) in training, empty in
    eval, as ATen's functional batch norm ops return them, in the running statistics'
    dtype (the input's without them).
    """
    stats = running_mean.dtype if running_mean is not None else x.dtype
    dims = [0] + list(range(2, x.ndim))
    shape = [1, -1] + [1] * (x.ndim - 2)
    xf = _float(x)
    if training:
        mean = xf.mean(dims)
        var = ((xf - mean.reshape(shape)) ** 2).mean(dims)
        rstd = graphc.rsqrt(var + eps)
        count = xf.numel() // xf.shape[1]
        if running_mean is not None:
            unbiased = var * (count / max(count - 1, 1))
            running_mean = (running_mean * (1 - momentum)
                            + mean.to(running_mean.dtype) * momentum)
            running_var = (running_var * (1 - momentum)
                           + unbiased.to(running_var.dtype) * momentum)
        centre, scale = mean, rstd
        mean, rstd = mean.to(stats), rstd.to(stats)
    else:
        centre, scale = _float(running_mean), graphc.rsqrt(_float(running_var) + eps)
        mean = rstd = graphc.zeros(0, dtype=stats)
    out = (xf - centre.reshape(shape)) * scale.reshape(shape)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out.to(x.dtype), mean, rstd, running_mean, running_var


@lowering(aten._native_batch_norm_legit_functional.default)
def native_batch_norm_functional(x, weight, bias, running_mean, running_var, training,
                                 momentum, eps):
    return _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)


@lowering(aten._native_batch_norm_legit_no_training.default)
def native_batch_norm_no_training(x, weight, bias, running_mean, running_var, momentum,
                                  eps):
    return _batch_norm(x, weight, bias, running_mean, running_var, False, momentum, eps)[:3]


@lowering(aten._native_batch_norm_legit.no_stats)
def native_batch_norm_no_stats(x, weight, bias, training, momentum, eps):
    return _batch_norm(x, weight, bias, None, None, True, momentum, eps)[:3]


@lowering(aten.native_layer_norm.default)
def native_layer_norm(x, normalized_shape, weight, bias, eps):
    """(layer_norm(x), mean, rstd): graphc's fused layer norm, and the statistics the
    backward reads, each of shape x.shape[:axis] + (1,)*k."""
    dims = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    xf = _float(x)
    mean = xf.mean(dims, keepdim=True)
    rstd = graphc.rsqrt(((xf - mean) ** 2).mean(dims, keepdim=True) + eps)
    return (F.layer_norm(x, list(normalized_shape), weight, bias, eps), mean.to(x.dtype),
            rstd.to(x.dtype))


@lowering(aten.native_group_norm.default)
def native_group_norm(x, weight, bias, n, c, hxw, group, eps):
    xf = _float(x).reshape(n, group, -1)
    mean = xf.mean(-1)
    rstd = graphc.rsqrt(xf.var(-1, correction=0) + eps)
    return F.group_norm(x, group, weight, bias, eps), mean.to(x.dtype), rstd.to(x.dtype)


@lowering(aten.native_group_norm_backward.default)
def native_group_norm_backward(grad_output, x, mean, rstd, weight, n, c, hxw, group,
                               output_mask):
    """Group norm's gradients from the saved statistics (PyTorch's formulas)."""
    xf = _float(x).reshape(n, group, -1)
    xhat = ((xf - mean.unsqueeze(-1)) * rstd.unsqueeze(-1)).reshape(x.shape)
    shape = [1, -1] + [1] * (x.ndim - 2)
    dims = [0] + list(range(2, x.ndim))
    grad_w = (grad_output * xhat).sum(dims) if output_mask[1] else None
    grad_b = grad_output.sum(dims) if output_mask[2] else None
    grad_x = None
    if output_mask[0]:
        g = grad_output * (weight.reshape(shape) if weight is not None else 1)
        g = g.reshape(n, group, -1)
        xh = xhat.reshape(n, group, -1)
        grad_x = (rstd.unsqueeze(-1) * (g - g.mean(-1, keepdim=True)
                                        - xh * (g * xh).mean(-1, keepdim=True)))
        grad_x = grad_x.reshape(x.shape).to(x.dtype)
    return grad_x, grad_w, grad_b


def _attention_mask(query, key, attn_mask, is_causal):
    """The kernel's mask and causal flag as one mask (PyTorch's public attention takes
    one or the other; its kernel takes both)."""
    causal = graphc.attention.causal_mask(query.shape[-2], key.shape[-2])
    if not is_causal or attn_mask is None:
        return causal if is_causal else attn_mask
    if attn_mask.dtype == graphc.bool:
        return attn_mask & causal
    return attn_mask.masked_fill(~causal, -math.inf)


@lowering(aten._scaled_dot_product_flash_attention_for_cpu.default)
def flash_attention(query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None,
                    scale=None):
    """PyTorch's CPU attention kernel: (output, logsumexp of each row of scores).

    Lowered whole, not decomposed: PyTorch 2.13's core table decomposes this forward to
    ops whose second output is not the logsumexp its kept backward kernel reads, so a
    training step compiled that way gets wrong gradients (in PyTorch too).
    """
    mask = _attention_mask(query, key, attn_mask, is_causal)
    out = F.scaled_dot_product_attention(query, key, value, mask, scale=scale)
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    scores = graphc.matmul(query, key.transpose(-2, -1)) * scale
    if mask is not None:
        scores = graphc.attention.apply_mask(scores, mask)
    return out, graphc.logsumexp(scores, -1).float()


@lowering(aten._scaled_dot_product_flash_attention_for_cpu_backward.default)
def flash_attention_backward(grad_out, query, key, value, out, logsumexp, dropout_p,
                             is_causal, *, attn_mask=None, scale=None):
    """graphc's gradient of its own attention (the forward is recomputed: graphc has no
    kernel that reads ``logsumexp``; ``unsupported`` refuses dropout, whose mask the
    kernel does not save)."""
    mask = _attention_mask(query, key, attn_mask, is_causal)

    def forward(query, key, value):
        return F.scaled_dot_product_attention(query, key, value, mask, scale=scale)
    return _gradients(forward, grad_out, (query, key, value), (True, True, True))


# -------------------------------------------------------------------------- FX glue
# AOTAutograd's graphs unpack multi-output ops with ``operator.getitem``.
LOWERINGS[operator.getitem] = operator.getitem


# ------------------------------------------------------------------ decompositions

# PyTorch's core table, less every op graphc lowers itself: graphc's composites for
# them (softmax, log_softmax, layer_norm, gelu, silu, softplus, hardswish, elu,
# logsumexp, var...) are one fused kernel each, rounded once for half input like
# PyTorch's kernels (composite._rounded_once), where a decomposition is several ops
# rounded between them and more nodes to interpret.  Backward ops graphc has no
# lowering for (gelu_backward, native_layer_norm_backward, _softmax_backward_data...)
# stay decomposed.
DECOMPOSITIONS = {op: fn for op, fn in torch._decomp.core_aten_decompositions().items()
                  if op not in LOWERINGS}


# --------------------------------------------------------------------- unsupported

def _tensors(value):
    """The FakeTensors in a node's ``meta["val"]`` (one, a tuple of them, or none)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _tensors(item)]
    return []


def _integer_bitwise(node, args):
    """graphc's bitwise and/or/xor are its logical ones: bool operands only."""
    for arg in args:
        if isinstance(arg, torch.Tensor) and arg.dtype != torch.bool:
            return f"{node.target} on {arg.dtype}: graphc has bitwise ops for bool only"
        if isinstance(arg, int) and not isinstance(arg, bool):
            return f"{node.target} with the integer {arg}: graphc has them for bool only"
    return None


def _boolean_index(node, args):
    """A boolean mask index selects a number of elements that depends on its values:
    a read's shape depends on them, and graphc's traced writes take integer indices."""
    for index in args[1]:
        if isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8):
            return (f"{node.target} with a boolean mask index: how many elements it "
                    "selects depends on the values")
    return None


def _integer_convolution(node, args):
    if not args[1].dtype.is_floating_point:
        return f"{node.target} on {args[1].dtype}: graphc convolves float tensors only"
    return None


def _attention_dropout(node, args):
    """graphc's attention draws its own dropout mask, which the kernels' backward
    cannot see."""
    names = [argument.name for argument in node.target._schema.arguments]
    dropout_p = dict(zip(names, args)).get("dropout_p", node.kwargs.get("dropout_p", 0.0))
    if dropout_p:
        return (f"{node.target} with dropout_p={dropout_p}: graphc draws its own dropout "
                "mask, which the kernel's backward cannot see")
    return None


def _lstm_layer(node, args):
    mode, batch_sizes, bidirectional = args[9], args[8], args[13]
    if mode != 2 or batch_sizes or bidirectional:
        return (f"{node.target} with mode={mode}, batch_sizes={batch_sizes}, "
                f"bidirectional={bidirectional}: graphc lowers the one-direction LSTM "
                "layer (mode 2) of PyTorch's decomposition")
    return None


def _encoder_layer(node, args):
    if args[0].ndim != 3 or (len(args) > 18 and args[18] is not None) or \
            node.kwargs.get("mask") is not None:
        return (f"{node.target} with a mask or an unbatched input: graphc lowers the "
                "batch-first, unmasked layer")
    return None


ARGUMENT_CHECKS = {
    aten._transformer_encoder_layer_fwd.default: _encoder_layer,
    aten.mkldnn_rnn_layer.default: _lstm_layer,
    aten._scaled_dot_product_flash_attention_for_cpu.default: _attention_dropout,
    aten._scaled_dot_product_flash_attention_for_cpu_backward.default: _attention_dropout,
    **{getattr(packet, name): _integer_bitwise
       for packet in (aten.bitwise_and, aten.bitwise_or, aten.bitwise_xor)
       for name in packet.overloads()},
    aten.index.Tensor: _boolean_index,
    aten._unsafe_index.Tensor: _boolean_index,
    aten.index_put.default: _boolean_index,
    aten._unsafe_index_put.default: _boolean_index,
    aten.convolution.default: _integer_convolution,
}


def _meta(value):
    """An argument with every FX node replaced by its FakeTensor (``meta['val']``)."""
    if isinstance(value, torch.fx.Node):
        return value.meta.get("val")
    if isinstance(value, (list, tuple)):
        return type(value)(_meta(v) for v in value)
    return value


def _tensor_reason(target, tensor):
    """Why graphc cannot take or make this (fake) tensor, or None.  Dtypes, layouts and
    devices given as arguments show in the result's FakeTensor, so they are read there."""
    if str(tensor.dtype).removeprefix("torch.") not in SUPPORTED_DTYPES:
        return f"{target} on {tensor.dtype}: graphc has no such dtype"
    if tensor.layout != torch.strided:
        return f"{target} on a {tensor.layout} tensor: graphc tensors are strided"
    if not all(isinstance(size, int) for size in tensor.shape):
        return (f"{target} with symbolic shape {tuple(tensor.shape)}: graphc compiles "
                "static shapes")
    if tensor.device.type not in ("cpu", "cuda"):
        return f"{target} on device {tensor.device}: graphc runs on cpu and cuda"
    return None


def unsupported(node) -> str | None:
    """None when graphc runs this FX node, else why not (naming the op).

    Reasons: no lowering; a tensor of a dtype graphc lacks (complex...); a tensor whose
    shape is symbolic (graphc compiles static shapes); a device graphc does not run on,
    or a move between devices; a sparse or other non-strided layout; a PyTorch random
    generator; or an argument the lowering cannot honour.
    """
    if node.op != "call_function":
        return None
    target = node.target
    if target not in LOWERINGS:
        return f"{target} has no graphc lowering"
    args = _meta(list(node.args))
    kwargs = {k: _meta(v) for k, v in node.kwargs.items()}
    check = ARGUMENT_CHECKS.get(target)
    reason = check(node, args) if check else None
    if reason:
        return reason
    tensors = _tensors([node.meta.get("val"), args, list(kwargs.values())])
    for tensor in tensors:
        reason = _tensor_reason(target, tensor)
        if reason:
            return reason
    devices = {str(tensor.device) for tensor in tensors}
    if len(devices) > 1:
        return f"{target} moves tensors between {' and '.join(sorted(devices))}"
    if node.kwargs.get("generator") is not None:
        return f"{target} with a generator: graphc draws from its own"
    sizes = [v for value in [*args, *kwargs.values()]
             for v in (value if isinstance(value, (list, tuple)) else [value])]
    if any(isinstance(v, torch.SymInt) for v in sizes):
        return f"{target} with a symbolic size argument: graphc compiles static shapes"
    return None
