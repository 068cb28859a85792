"""Lowerings of reductions, new tensors and random draws."""
from __future__ import annotations

import math

import graphc
from graphc.dynamo.aten.registry import _all_dims, _float, aten, graphc_dtype, lowering


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
