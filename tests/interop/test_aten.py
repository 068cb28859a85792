"""ATen lowerings (graphc/dynamo/aten/) against the ATen ops themselves.

Each sample calls one ATen overload on PyTorch tensors and its lowering on graphc
tensors holding the same values (non-contiguous where the sample says so), eagerly and
traced by ``graphc.compile(backend="interpreter")``; a model test captures the ATen
graphs PyTorch makes of the reference models (forward and backward, through our
decomposition table) and checks that graphc lowers every node, so coverage cannot
silently regress.
"""
import math
import operator
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import graphc  # noqa: E402
from graphc.dynamo import aten as lowered  # noqa: E402

aten = torch.ops.aten


def rand(*shape, dtype=torch.float32, low=-2.0, high=2.0):
    """Values in [low, high) of ``dtype`` (integers too), from a seeded generator."""
    g = torch.Generator().manual_seed(hash(shape) % 1000)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * (high - low) + low
    return x.round().to(dtype) if not dtype.is_floating_point else x.to(dtype)


def pos(*shape, dtype=torch.float32):
    return rand(*shape, dtype=dtype, low=0.5, high=3.0)


def ints(*shape, high=4):
    return rand(*shape, dtype=torch.int64, low=0, high=high - 0.51).clamp(0, high - 1)


def mask(*shape):
    return rand(*shape) > 0


def nc(*shape):
    """A non-contiguous float tensor: the transpose of a contiguous one."""
    return rand(*reversed(shape)).permute(*reversed(range(len(shape))))


def to_graphc(value):
    """PyTorch tensors (nested in lists) as graphc tensors with the same values and
    strides (numpy keeps the view's strides)."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
        import ml_dtypes
        return graphc.from_numpy(value.view(torch.int16).numpy().view(ml_dtypes.bfloat16))
    if isinstance(value, torch.Tensor):
        return graphc.from_numpy(value.numpy())
    if isinstance(value, (list, tuple)):
        return type(value)(to_graphc(v) for v in value)
    if isinstance(value, dict):
        return {k: to_graphc(v) for k, v in value.items()}
    return value


def check_same(got, want, op):
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), op
        for g, w in zip(got, want):
            check_same(g, w, op)
        return
    if want is None:
        assert got is None, op
        return
    assert isinstance(got, graphc.Tensor), (op, type(got))
    want = want.detach()
    assert str(got.dtype) == str(want.dtype).replace("torch.", "graphc."), \
        (op, got.dtype, want.dtype)
    assert tuple(got.shape) == tuple(want.shape), (op, got.shape, want.shape)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(want.dtype, 1e-5)
    np.testing.assert_allclose(got.numpy().astype(np.float64) if want.dtype.is_floating_point
                               else got.numpy(), want.to(torch.float64).numpy()
                               if want.dtype.is_floating_point else want.numpy(),
                               rtol=tol, atol=tol, equal_nan=True, err_msg=str(op))


# (op, args, kwargs): PyTorch values; each is one sample
SAMPLES = [
    # pointwise, broadcasting, scalars, integer and bool operands
    (aten.add.Tensor, (rand(3, 4), rand(4)), {"alpha": 2}),
    (aten.add.Tensor, (ints(3, 4), ints(3, 1)), {}),
    (aten.add.Tensor, (rand(2, 3), 1.5), {}),
    (aten.add.Scalar, (ints(3), 2.5), {}),
    (aten.sub.Tensor, (nc(3, 4), rand(3, 4)), {"alpha": 0.5}),
    (aten.rsub.Scalar, (rand(3, 4), 1.0), {}),
    (aten.mul.Tensor, (rand(0, 4), rand(4)), {}),
    (aten.mul.Tensor, (mask(3, 4), mask(3, 4)), {}),
    (aten.mul.Scalar, (rand(2, 3), 3), {}),
    (aten.div.Tensor, (rand(3, 4), pos(3, 4)), {}),
    (aten.div.Tensor, (ints(3, 4), ints(4) + 1), {}),
    (aten.div.Tensor_mode, (rand(3, 4) * 5, pos(3, 4)), {"rounding_mode": "floor"}),
    (aten.div.Tensor_mode, (ints(3, 4) - 2, ints(4) + 1), {"rounding_mode": "trunc"}),
    (aten.div.Scalar, (rand(3, 4), 4.0), {}),
    (aten.pow.Tensor_Scalar, (rand(3, 4), 2), {}),
    (aten.pow.Tensor_Tensor, (pos(3, 4), rand(3, 4)), {}),
    (aten.pow.Scalar, (2.0, rand(3, 4)), {}),
    (aten.maximum.default, (rand(3, 4), rand(3, 1)), {}),
    (aten.minimum.default, (ints(3, 4), ints(4)), {}),
    (aten.remainder.Scalar, (rand(3, 4) * 5, 1.5), {}),
    (aten.fmod.Tensor, (rand(3, 4) * 5, pos(3, 4)), {}),
    (aten.atan2.default, (rand(3, 4), rand(3, 4)), {}),
    (aten.eq.Scalar, (ints(3, 4), 1), {}),
    (aten.ne.Tensor, (ints(3, 4), ints(4)), {}),
    (aten.lt.Scalar, (rand(3, 4), 0.0), {}),
    (aten.le.Tensor, (rand(3, 4), rand(3, 4)), {}),
    (aten.gt.Scalar, (rand(2, 0), 0.0), {}),
    (aten.ge.Tensor, (nc(3, 4), rand(4)), {}),
    (aten.logical_and.default, (mask(3, 4), mask(4)), {}),
    (aten.logical_or.default, (mask(3, 4), rand(3, 4)), {}),
    (aten.logical_xor.default, (mask(3, 4), mask(3, 4)), {}),
    (aten.logical_not.default, (mask(3, 4),), {}),
    (aten.bitwise_and.Tensor, (mask(3, 4), mask(4)), {}),
    (aten.bitwise_or.Tensor, (mask(3, 4), mask(3, 4)), {}),
    (aten.bitwise_xor.Tensor, (mask(3, 4), mask(3, 4)), {}),
    (aten.bitwise_not.default, (mask(3, 4),), {}),
    (aten.bitwise_not.default, (ints(3, 4),), {}),
    (aten.where.self, (mask(3, 4), rand(3, 4), rand(4)), {}),
    (aten.where.self, (mask(3, 4), ints(3, 4), ints(3, 4)), {}),
    (aten.masked_fill.Scalar, (rand(3, 4), mask(3, 4), float("-inf")), {}),
    (aten.masked_fill.Tensor, (rand(3, 4), mask(4), torch.tensor(2.0)), {}),
    (aten.masked_fill.Tensor, (ints(4), mask(3, 4), torch.tensor(2.5)), {}),
    (aten.masked_fill.Scalar, (rand(4), mask(2, 4), 1), {}),
    (aten.clamp.default, (rand(3, 4), -0.5, 0.5), {}),
    (aten.clamp.default, (ints(3, 4), None, 2), {}),
    (aten.clamp.Tensor, (rand(3, 4), rand(4) - 1, None), {}),
    (aten.clamp_min.default, (rand(3, 4), 0.0), {}),
    (aten.lerp.Scalar, (rand(3, 4), rand(3, 4), 0.3), {}),
    (aten.addcmul.default, (rand(3, 4), rand(3, 4), rand(4)), {"value": 0.5}),
    (torch.ops.prims.fma.default, (rand(3, 4), rand(3, 4), rand(4)), {}),
    (aten.copy_.default, (rand(3, 4), rand(4).double()), {}),
    (aten.addcdiv.default, (rand(3, 4), rand(3, 4), pos(4)), {"value": 2}),
    (aten.isinf.default, (rand(3) / torch.tensor([0.0, 1.0, 0.0]),), {}),
    (aten.isnan.default, (torch.tensor([0.0, math.nan, 1.0]),), {}),
    *[(getattr(aten, name).default, (x,), {}) for name, x in [
        ("abs", rand(3, 4)), ("neg", ints(3, 4)), ("exp", rand(3, 4)), ("log", pos(3, 4)),
        ("log1p", pos(3, 4)), ("expm1", rand(3, 4)), ("sqrt", pos(3, 4)),
        ("rsqrt", pos(3, 4)), ("sin", rand(3, 4)), ("cos", nc(3, 4)), ("tan", rand(3, 4) / 2),
        ("tanh", rand(3, 4)), ("sigmoid", rand(3, 4)), ("erf", rand(3, 4)),
        ("erfinv", rand(3, 4) / 3), ("floor", rand(3, 4)), ("ceil", rand(3, 4)),
        ("round", rand(3, 4) * 3), ("trunc", rand(3, 4) * 3), ("sign", rand(3, 4)),
        ("reciprocal", pos(3, 4)), ("relu", rand(3, 4)), ("relu", ints(3, 4) - 1),
        ("asin", rand(3, 4) / 3), ("acos", rand(3, 4) / 3), ("atan", rand(3, 4)),
        ("sinh", rand(3, 4)), ("cosh", rand(3, 4)), ("asinh", rand(3, 4)),
        ("acosh", pos(3, 4) + 1), ("atanh", rand(3, 4) / 3), ("log2", pos(3, 4)),
        ("log10", pos(3, 4)), ("exp2", rand(3, 4)), ("exp", rand(2, 3, dtype=torch.float16)),
        ("sigmoid", rand(2, 3, dtype=torch.float64))]],
    # half precision: computed in float32, rounded once per op, as PyTorch's CPU kernels
    *[(op, args(dtype), {}) for dtype in (torch.float16, torch.bfloat16) for op, args in [
        (aten.add.Tensor, lambda d: (rand(3, 4, dtype=d), rand(4, dtype=d))),
        (aten.mul.Scalar, lambda d: (rand(3, 4, dtype=d), 0.1)),
        (aten.div.Tensor, lambda d: (rand(3, 4, dtype=d), pos(3, 4, dtype=d))),
        (aten.gelu.default, lambda d: (rand(3, 4, dtype=d),)),
        (aten._softmax.default, lambda d: (rand(3, 8, dtype=d), -1, False)),
        (aten.sum.dim_IntList, lambda d: (rand(3, 40, dtype=d), [1])),
        (aten.mm.default, lambda d: (rand(3, 8, dtype=d), rand(8, 5, dtype=d))),
        (aten.native_layer_norm.default,
         lambda d: (rand(2, 3, 8, dtype=d), [8], rand(8, dtype=d), rand(8, dtype=d), 1e-5)),
        (aten.native_group_norm.default,
         lambda d: (rand(2, 6, 3, 3, dtype=d), None, None, 2, 6, 9, 3, 1e-5)),
        (aten._native_batch_norm_legit_functional.default,
         lambda d: (rand(4, 3, 5, dtype=d), None, None, rand(3, dtype=d), pos(3, dtype=d), True,
                    0.1, 1e-5)),
        (aten._native_batch_norm_legit_no_training.default,
         lambda d: (rand(4, 3, 5, dtype=d), None, None, rand(3), pos(3), 0.1, 1e-5)),
        (aten._to_copy.default, lambda d: (rand(3, 4, dtype=d), )),
    ]],
    # the rest of the table: overloads and functional copies of the ops above
    (aten._reshape_copy.default, (nc(3, 4), [2, 6]), {}),
    (aten.reshape.default, (nc(3, 4), [12]), {}),
    (aten.view_copy.default, (rand(3, 4), [4, 3]), {}),
    (aten._unsafe_index.Tensor, (rand(5, 4), [None, ints(3)]), {}),
    (aten._unsafe_index_put.default, (rand(5, 4), [ints(3, high=5)], rand(4), True), {}),
    (aten.alias_copy.default, (rand(3),), {}),
    (aten.detach.default, (rand(3),), {}),
    (aten.detach_copy.default, (rand(3),), {}),
    (aten.lift_fresh_copy.default, (rand(3),), {}),
    (aten.contiguous.default, (nc(3, 4),), {}),
    (aten.expand_copy.default, (rand(3, 1), [3, 4]), {}),
    (aten.permute_copy.default, (rand(2, 3), [1, 0]), {}),
    (aten.t_copy.default, (rand(2, 3),), {}),
    (aten.transpose_copy.int, (rand(2, 3, 4), 1, 2), {}),
    (aten.unsqueeze_copy.default, (rand(2, 3), 0), {}),
    (aten.squeeze_copy.default, (rand(1, 3, 1),), {}),
    (aten.squeeze_copy.dim, (rand(1, 3), 0), {}),
    (aten.squeeze_copy.dims, (rand(1, 3, 1), [0, 2]), {}),
    (aten.select_copy.int, (rand(3, 4), 0, 2), {}),
    (aten.slice_copy.Tensor, (rand(5, 4), 1, 1, 3), {}),
    (aten.diagonal_copy.default, (rand(4, 4), -1), {}),
    (aten.split.sizes, (rand(5, 4), [1, 4]), {}),
    (aten.split_copy.Tensor, (rand(5, 4), 3), {}),
    (aten.split_with_sizes_copy.default, (rand(5, 4), [3, 1], 1), {}),
    (aten.unbind_copy.int, (rand(2, 3),), {}),
    (aten.diagonal_scatter.default, (rand(4, 4), rand(3), 1), {}),
    (aten.all.default, (mask(2, 3),), {}),
    (aten.all.dims, (mask(2, 3, 2), [0, 2]), {}),
    (aten.any.dims, (ints(2, 3, 2), [1], True), {}),
    (aten.arange.start, (2, 7), {}),
    (aten.bitwise_and.Scalar, (mask(3, 4), True), {}),
    (aten.bitwise_or.Scalar_Tensor, (False, mask(3, 4)), {}),
    (aten.bitwise_xor.Scalar, (mask(3, 4), True), {}),
    (aten.bitwise_or.Scalar, (mask(3, 4), False), {}),
    (aten.bitwise_and.Scalar_Tensor, (True, mask(3, 4)), {}),
    (aten.bitwise_xor.Scalar_Tensor, (True, mask(3, 4)), {}),
    (aten.clamp_max.default, (rand(3, 4), 0.5), {}),
    (aten.clamp_max.Tensor, (rand(3, 4), rand(4)), {}),
    (aten.clamp_min.Tensor, (ints(3, 4), ints(4)), {}),
    (aten.copysign.Tensor, (rand(3, 4), rand(4)), {}),
    (aten.copysign.Scalar, (rand(3, 4), -1.0), {}),
    (aten.cumprod.default, (rand(3, 4), 1), {}),
    (aten.digamma.default, (pos(3, 4),), {}),
    (aten.lgamma.default, (pos(3, 4),), {}),
    (aten.erfc.default, (rand(3, 4),), {}),
    (aten.div.Scalar_mode, (ints(3, 4) - 2, 2), {"rounding_mode": "floor"}),
    (aten.dot.default, (rand(5), rand(5)), {}),
    (aten.mv.default, (rand(3, 5), rand(5)), {}),
    (aten.matmul.default, (rand(2, 3, 4), rand(4)), {}),
    (aten.eq.Tensor, (ints(3, 4), ints(3, 4)), {}),
    (aten.gt.Tensor, (rand(3, 4), rand(4)), {}),
    (aten.lt.Tensor, (ints(3, 4), ints(4)), {}),
    (aten.ge.Scalar, (ints(3, 4), 2), {}),
    (aten.le.Scalar, (rand(3, 4), 0.5), {}),
    (aten.ne.Scalar, (mask(3, 4), True), {}),
    (aten.fill.Tensor, (rand(2, 3), torch.tensor(3)), {}),
    (aten.floor_divide.default, (rand(3, 4) * 4, pos(3, 4)), {}),
    (aten.floor_divide.Scalar, (ints(3, 4) - 2, 3), {}),
    (aten.fmax.default, (rand(3), torch.tensor([math.nan, 1.0, math.nan])), {}),
    (aten.fmin.default, (rand(3), torch.tensor([math.nan, 1.0, math.nan])), {}),
    (aten.fmod.Scalar, (ints(3, 4) - 2, 3), {}),
    (aten.remainder.Tensor, (rand(3, 4) * 4, pos(4)), {}),
    (aten.remainder.Scalar_Tensor, (5, ints(3, 4) + 1), {}),
    (aten.frac.default, (rand(3, 4) * 3,), {}),
    (aten.heaviside.default, (torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([0.5])), {}),
    (aten.hypot.default, (rand(3, 4), rand(3, 4)), {}),
    (aten.index_copy.default, (rand(5, 3), 0, torch.tensor([4, 0]), rand(2, 3)), {}),
    (aten.index_fill.int_Scalar, (rand(5, 3), 1, torch.tensor([0, 2]), -1.0), {}),
    (aten.index_fill.int_Tensor, (rand(5, 3), 0, torch.tensor([1]), torch.tensor(7.0)), {}),
    (aten.isfinite.default, (torch.tensor([1.0, math.inf, math.nan]),), {}),
    (aten.isneginf.default, (torch.tensor([1.0, -math.inf, math.inf]),), {}),
    (aten.isposinf.default, (torch.tensor([1.0, -math.inf, math.inf]),), {}),
    (aten.lerp.Tensor, (rand(3, 4), rand(3, 4), rand(4)), {}),
    (aten.logit.default, (pos(3, 4) / 4, 0.01), {}),
    (aten.masked_scatter.default,
     (rand(2, 3), torch.tensor([[True, False, True], [False, True, False]]), rand(5)), {}),
    (aten.min.default, (ints(3, 4),), {}),
    (aten.nan_to_num.default, (torch.tensor([math.nan, math.inf, -math.inf, 1.0]),), {}),
    (aten.nan_to_num.default,
     (torch.tensor([math.nan, math.inf, -math.inf]), 0.5, 9.0, -9.0), {}),
    (aten.new_ones.default, (ints(2), [2, 3]), {"dtype": torch.float64}),
    (aten.reflection_pad1d.default, (rand(2, 3, 5), [2, 1]), {}),
    (aten.reflection_pad3d.default, (rand(1, 1, 3, 4, 4), [1, 1, 1, 0, 0, 1]), {}),
    (aten.replication_pad1d.default, (rand(2, 3, 5), [2, 1]), {}),
    (aten.replication_pad3d.default, (rand(1, 1, 3, 4, 4), [1, 1, 1, 0, 0, 1]), {}),
    (aten.replication_pad3d_backward.default, (rand(1, 1, 4, 5, 6), rand(1, 1, 3, 4, 4),
                                               [1, 1, 1, 0, 0, 1]), {}),
    (aten.rsub.Tensor, (rand(3, 4), rand(4)), {"alpha": 2}),
    (aten.sub.Scalar, (ints(3, 4), 2), {}),
    (aten.scatter.reduce, (rand(3, 4), 1, ints(3, 2), rand(3, 2)), {"reduce": "add"}),
    (aten.scatter.value_reduce, (rand(3, 4), 1, ints(3, 2), 2.0), {"reduce": "multiply"}),
    (aten.sgn.default, (rand(3, 4),), {}),
    (aten.signbit.default, (rand(3, 4),), {}),
    (aten.sinc.default, (rand(3, 4),), {}),
    (aten.square.default, (ints(3, 4),), {}),
    (aten.sort.stable, (rand(3, 6),), {"stable": True, "dim": 0, "descending": True}),
    (aten.std.default, (rand(3, 4), False), {}),
    (aten.std.dim, (rand(3, 4), [1], False, True), {}),
    (aten.var.default, (rand(3, 4), False), {}),
    (aten.where.Scalar, (mask(3, 4), 1.0, 0.0), {}),
    (aten.where.ScalarOther, (mask(3, 4), rand(3, 4), 0.5), {}),
    (aten.where.ScalarSelf, (mask(3, 4), 2, ints(3, 4)), {}),
    (aten.xlogy.Tensor, (pos(3, 4), pos(3, 4)), {}),
    (aten.xlogy.Scalar_Other, (rand(3, 4), 2.0), {}),
    (aten.xlogy.Scalar_Self, (3.0, pos(3, 4)), {}),
    # activations and fused composites
    (aten.gelu.default, (rand(3, 4),), {}),
    (aten.gelu.default, (rand(3, 4),), {"approximate": "tanh"}),
    (aten.silu.default, (rand(3, 4),), {}),
    (aten.hardswish.default, (rand(3, 4) * 3,), {}),
    (aten.hardsigmoid.default, (rand(3, 4) * 3,), {}),
    (aten.mish.default, (rand(3, 4),), {}),
    (aten.softplus.default, (rand(3, 4), 2, 1), {}),
    (aten.elu.default, (rand(3, 4),), {}),
    (aten.elu.default, (rand(3, 4), 1.6732632423543772, 1.0507009873554805, 1), {}),
    (aten.hardtanh.default, (rand(3, 4), -0.5, 0.5), {}),
    (aten.leaky_relu.default, (rand(3, 4), 0.2), {}),
    (aten._softmax.default, (rand(2, 3, 4), -1, False), {}),
    (aten._softmax.default, (nc(3, 5), 0, False), {}),
    (aten._softmax.default, (rand(2, 5, dtype=torch.float16), 1, False), {}),
    (aten._log_softmax.default, (rand(2, 3, 4), 1, False), {}),
    # reductions, keepdim, dtype=, all dims as [] or None
    (aten.sum.dim_IntList, (rand(2, 3, 4), [1]), {}),
    (aten.sum.dim_IntList, (rand(2, 3, 4), [0, 2], True), {}),
    (aten.sum.dim_IntList, (rand(2, 3), []), {}),
    (aten.sum.dim_IntList, (ints(2, 3), None, True), {}),
    (aten.sum.dim_IntList, (mask(2, 3), [1]), {}),
    (aten.sum.dim_IntList, (rand(2, 3), [1]), {"dtype": torch.float64}),
    (aten.sum.default, (ints(2, 3),), {}),
    (aten.sum.dim_IntList, (rand(0, 3), [0]), {}),
    (aten.mean.dim, (rand(2, 3, 4), [-1], True), {}),
    (aten.mean.default, (nc(3, 4),), {}),
    (aten.prod.dim_int, (rand(2, 3), 1), {}),
    (aten.prod.default, (ints(2, 3),), {}),
    (aten.amax.default, (rand(2, 3, 4), [1, 2]), {}),
    (aten.amax.default, (ints(2, 3), [], True), {}),
    (aten.amin.default, (rand(2, 3), [0]), {}),
    (aten.max.dim, (rand(2, 3, 4), 1), {}),
    (aten.min.dim, (rand(2, 3, 4), -1, True), {}),
    (aten.max.default, (rand(2, 3),), {}),
    (aten.argmax.default, (rand(2, 3, 4), 2), {}),
    (aten.argmax.default, (rand(2, 3),), {}),
    (aten.argmin.default, (rand(2, 3), 0, True), {}),
    (aten.any.dim, (mask(2, 3), 1), {}),
    (aten.any.default, (mask(2, 3),), {}),
    (aten.all.dim, (mask(2, 3), 0, True), {}),
    (aten.var.correction, (rand(2, 3, 4), [1]), {"correction": 0}),
    (aten.var.correction, (rand(2, 3, 4), None), {"keepdim": True}),
    (aten.var.dim, (rand(2, 3), [1], False), {}),
    (aten.std.correction, (rand(3, 4), [0]), {"correction": 1}),
    (aten.cumsum.default, (rand(3, 4), 1), {}),
    (aten.cumsum.default, (ints(3, 4), 0), {"dtype": torch.float32}),
    (aten.logsumexp.default, (rand(3, 4), [1]), {}),
    (aten.linalg_vector_norm.default, (rand(3, 4),), {}),
    (aten.linalg_vector_norm.default, (rand(3, 4), 3, [1], True), {}),
    (aten.linalg_vector_norm.default, (rand(2, 3, 4), float("inf"), [0, 2]), {}),
    (aten.linalg_vector_norm.default, (rand(3, 4), 1, None), {"dtype": torch.float64}),
    # views and shapes
    (aten.view.default, (rand(2, 3, 4), [6, 4]), {}),
    (aten.view.default, (rand(2, 3, 4), [-1]), {}),
    (aten._unsafe_view.default, (rand(3, 4), [12]), {}),
    (aten.permute.default, (rand(2, 3, 4), [2, 0, 1]), {}),
    (aten.expand.default, (rand(3, 1), [2, 3, 4]), {}),
    (aten.expand.default, (rand(3, 1), [-1, 5]), {}),
    (aten.unsqueeze.default, (rand(3, 4), -1), {}),
    (aten.squeeze.dim, (rand(3, 1, 4), 1), {}),
    (aten.squeeze.dims, (rand(1, 3, 1, 4), [0, 2, 3]), {}),
    (aten.squeeze.default, (rand(1, 3, 1),), {}),
    (aten.t.default, (rand(3, 4),), {}),
    (aten.transpose.int, (rand(2, 3, 4), 0, 2), {}),
    (aten.clone.default, (nc(3, 4),), {"memory_format": torch.contiguous_format}),
    (aten.alias.default, (rand(3, 4),), {}),
    (aten.slice.Tensor, (rand(5, 4), 0, 1, 4), {}),
    (aten.slice.Tensor, (rand(5, 6), 1, 0, 9223372036854775807, 2), {}),
    (aten.slice.Tensor, (rand(5, 6), -1, -3), {}),
    (aten.select.int, (rand(3, 4), 1, -1), {}),
    (aten.narrow.default, (rand(5, 4), 0, 1, 2), {}),
    (aten.diagonal.default, (rand(3, 4), 1), {}),
    (aten.cat.default, ([rand(2, 3), rand(4, 3)],), {}),
    (aten.cat.default, ([rand(2, 3), rand(2, 1)], 1), {}),
    (aten.stack.default, ([rand(2, 3), rand(2, 3)], 1), {}),
    (aten.split_with_sizes.default, (rand(5, 4), [2, 3]), {}),
    (aten.split.Tensor, (rand(5, 4), 2, 0), {}),
    (aten.unbind.int, (rand(3, 4), 1), {}),
    (aten.flip.default, (rand(3, 4), [0, 1]), {}),
    (aten.roll.default, (rand(3, 4), [1], [1]), {}),
    (aten.repeat.default, (rand(2, 3), [2, 1, 2]), {}),
    (aten.constant_pad_nd.default, (rand(2, 3), [1, 2, 0, 1], 0.5), {}),
    (aten.reflection_pad2d.default, (rand(1, 2, 4, 5), [1, 1, 2, 0]), {}),
    (aten.replication_pad2d.default, (rand(1, 2, 4, 5), [1, 0, 2, 1]), {}),
    (aten.tril.default, (rand(4, 4),), {}),
    (aten.triu.default, (rand(3, 4), 1), {}),
    # indexing
    (aten.index.Tensor, (rand(5, 4), [ints(3, high=5)]), {}),
    (aten.index.Tensor, (rand(3, 5, 4), [None, ints(2, high=5), ints(2, high=4)]), {}),
    (aten.index_put.default, (rand(5, 4), [ints(3, high=5)], rand(3, 4)), {}),
    (aten.index_put.default, (rand(5, 4), [torch.tensor([1, 1, 3])], rand(3, 4), True), {}),
    (aten.index_put.default, (rand(3, 5), [None, torch.tensor([0, 2])], rand(3, 2)), {}),
    (aten.index_put.default, (rand(3, 5, 4, 2), [None, torch.tensor([0, 0]),
                                                 torch.tensor([1, 3]), None], rand(2), True),
     {}),
    (aten.index_put.default, (rand(3, 5, 4), [torch.tensor([[0], [2]]), None,
                                              torch.tensor([1, 3])], rand(2, 2, 5)), {}),
    (aten.index_select.default, (rand(5, 4), 0, ints(3, high=5)), {}),
    (aten.index_add.default, (rand(5, 4), 0, torch.tensor([0, 2, 0]), rand(3, 4)), {}),
    (aten.gather.default, (rand(3, 4), 1, ints(3, 2)), {}),
    (aten.scatter.src, (rand(3, 4), 1, torch.tensor([[0], [3], [1]]), rand(3, 1)), {}),
    (aten.scatter.value, (rand(3, 4), 1, torch.tensor([[0], [3], [1]]), 1.0), {}),
    (aten.scatter_add.default, (rand(3, 4), 1, ints(3, 3), rand(3, 3)), {}),
    (aten.scatter_reduce.two, (rand(3, 4), 1, ints(3, 3), rand(3, 3), "amax"), {}),
    (aten.scatter_reduce.two, (rand(3, 4), 1, ints(3, 3), rand(3, 3), "sum"),
     {"include_self": False}),
    (aten.slice_scatter.default, (rand(5, 4), rand(2, 4), 0, 1, 5, 2), {}),
    (aten.select_scatter.default, (rand(5, 4), rand(4), 0, 2), {}),
    (aten.embedding.default, (rand(6, 3), ints(2, 4, high=6)), {}),
    *[(aten.embedding_dense_backward.default,
       (rand(2, 4, 3), torch.tensor([[0, 1, 1, 5], [2, 5, 0, 0]]), 6, padding_idx, by_freq), {})
      for padding_idx, by_freq in ((-1, False), (0, True))],
    (aten.topk.default, (rand(3, 6), 2), {}),
    (aten.topk.default, (rand(3, 6), 3, 0, False), {}),
    (aten.sort.default, (rand(3, 6), 1, True), {}),
    # new tensors
    (aten.zeros.default, ([2, 3],), {"dtype": torch.int64}),
    (aten.ones.default, ([2, 3],), {"dtype": torch.float32, "device": torch.device("cpu")}),
    (aten.full.default, ([2, 3], 1.5), {"dtype": torch.float64, "layout": torch.strided,
                                         "pin_memory": False}),
    (aten.full.default, ([2, 0], True), {}),
    (aten.full.default, ([3], 7), {}),
    (aten.full_like.default, (rand(2, 3), 2), {"dtype": torch.int32}),
    (aten.zeros_like.default, (ints(2, 3),), {}),
    (aten.ones_like.default, (rand(2, 3),), {"memory_format": torch.preserve_format}),
    (aten.new_zeros.default, (rand(2, 3), [4]), {}),
    (aten.new_full.default, (ints(2, 3), [4], 3), {}),
    (aten.scalar_tensor.default, (2.5,), {"dtype": torch.float32}),
    (aten.scalar_tensor.default, (3,), {}),
    (aten.arange.start_step, (0, 10, 3), {"dtype": torch.int64}),
    (aten.arange.start_step, (0.5, 2.0, 0.25), {}),
    (aten.arange.default, (5,), {}),
    (aten.fill.Scalar, (rand(2, 3), 4), {}),
    (aten.copy.default, (rand(2, 3), ints(3)), {}),
    (aten._to_copy.default, (rand(2, 3),), {"dtype": torch.float16}),
    (aten._to_copy.default, (ints(2, 3),), {"dtype": torch.bool}),
    (aten._to_copy.default, (nc(2, 3),), {"device": torch.device("cpu")}),
    # linear algebra, convolution, pooling, normalisation
    (aten.mm.default, (rand(3, 4), nc(4, 5)), {}),
    (aten.mm.default, (rand(0, 4), rand(4, 2)), {}),
    (aten.bmm.default, (rand(2, 3, 4), rand(2, 4, 5)), {}),
    (aten.addmm.default, (rand(5), rand(3, 4), rand(4, 5)), {}),
    (aten.addmm.default, (rand(3, 5), rand(3, 4), rand(4, 5)), {"beta": 0.5, "alpha": 2}),
    (aten.baddbmm.default, (rand(2, 3, 5), rand(2, 3, 4), rand(2, 4, 5)), {"beta": 0.5}),
    (aten.convolution.default, (rand(2, 3, 6, 6), rand(4, 3, 3, 3), rand(4), [1, 1], [1, 1],
                                [1, 1], False, [0, 0], 1), {}),
    (aten.convolution.default, (rand(2, 4, 7, 7), rand(4, 2, 3, 3), None, [2, 2], [0, 0],
                                [1, 1], False, [0, 0], 2), {}),
    (aten.convolution.default, (rand(2, 3, 8), rand(4, 3, 3), rand(4), [1], [2], [2], False,
                                [0], 1), {}),
    (aten.convolution.default, (rand(2, 3, 4, 4), rand(3, 2, 3, 3), rand(2), [2, 2], [1, 1],
                                [1, 1], True, [1, 1], 1), {}),
    (aten.convolution.default, (rand(1, 4, 4, 4), rand(4, 3, 3, 3), rand(6), [2, 1], [1, 0],
                                [2, 1], True, [1, 0], 2), {}),
    (aten.convolution.default, (rand(1, 2, 4, 5, 5), rand(3, 2, 2, 3, 3), None, [1, 2, 1],
                                [0, 1, 1], [1, 1, 2], False, [0, 0, 0], 1), {}),
    (aten.convolution_backward.default, (rand(1, 6, 10, 6), rand(1, 4, 4, 4), rand(4, 3, 3, 3),
                                         [6], [2, 1], [1, 0], [2, 1], True, [1, 0], 2,
                                         [True, True, True]), {}),
    (aten.convolution_backward.default, (rand(2, 4, 6, 6), rand(2, 3, 6, 6), rand(4, 3, 3, 3),
                                         [4], [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                         [True, True, True]), {}),
    (aten.convolution_backward.default, (rand(2, 4, 2, 2), rand(2, 4, 5, 5), rand(4, 2, 3, 3),
                                         None, [2, 2], [0, 0], [1, 1], False, [0, 0], 2,
                                         [False, True, False]), {}),
    (aten.max_pool2d_with_indices.default, (rand(2, 3, 6, 6), [2, 2], [2, 2]), {}),
    (aten.max_pool2d_with_indices.default, (rand(2, 3, 7, 7), [3, 3], [2, 2], [1, 1]), {}),
    (aten.avg_pool2d.default, (rand(2, 3, 6, 6), [2, 2]), {}),
    (aten.avg_pool2d.default, (rand(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], False, False), {}),
    (aten.avg_pool2d_backward.default, (rand(2, 3, 3, 3), rand(2, 3, 6, 6), [2, 2], [2, 2],
                                        [0, 0], False, True, None), {}),
    (aten._adaptive_avg_pool2d.default, (rand(2, 3, 6, 6), [1, 1]), {}),
    (aten._adaptive_avg_pool2d.default, (rand(2, 3, 6, 6), [3, 2]), {}),
    (aten._adaptive_avg_pool2d_backward.default, (rand(2, 3, 3, 2), rand(2, 3, 6, 6)), {}),
    (aten.max_pool3d_with_indices.default, (rand(1, 2, 4, 5, 5), [2, 2, 2], [2, 1, 2]), {}),
    (aten.avg_pool3d.default, (rand(1, 2, 4, 5, 5), [2, 2, 2], [], [1, 0, 1]), {}),
    (aten.avg_pool3d_backward.default, (rand(1, 2, 2, 2, 2), rand(1, 2, 4, 4, 4), [2, 2, 2],
                                        [2, 2, 2], [0, 0, 0], False, True, None), {}),
    (aten._adaptive_avg_pool3d.default, (rand(1, 2, 4, 6, 6), [2, 3, 1]), {}),
    (aten._adaptive_avg_pool3d_backward.default, (rand(1, 2, 2, 3, 1), rand(1, 2, 4, 6, 6)),
     {}),
    (aten.adaptive_max_pool2d.default, (rand(2, 3, 5, 7), [2, 3]), {}),
    (aten.adaptive_max_pool3d.default, (rand(1, 2, 4, 5, 6), [2, 2, 3]), {}),
    (aten.replication_pad2d_backward.default,
     (rand(1, 2, 7, 6), rand(1, 2, 4, 5), [1, 0, 2, 1]), {}),
    (aten.replication_pad1d_backward.default, (rand(2, 3, 8), rand(2, 3, 5), [2, 1]), {}),
    (aten._cdist_forward.default, (rand(2, 4, 3), rand(2, 5, 3), 2.0, None), {}),
    (aten._cdist_forward.default, (rand(4, 3), rand(5, 3), 1.0, None), {}),
    (aten._pdist_forward.default, (rand(5, 3),), {}),
    (aten.upsample_nearest2d.vec, (rand(1, 2, 3, 3), [6, 6], None), {}),
    (aten.upsample_bilinear2d.vec, (rand(1, 2, 3, 3), None, False, [2.0, 2.0]), {}),
    (aten._native_batch_norm_legit_functional.default, (rand(4, 3, 5, 5), rand(3), rand(3),
                                                        rand(3), pos(3), True, 0.1, 1e-5), {}),
    (aten._native_batch_norm_legit_functional.default, (rand(4, 3), None, None, rand(3),
                                                        pos(3), True, 0.3, 1e-3), {}),
    (aten._native_batch_norm_legit_no_training.default, (rand(4, 3, 5, 5), rand(3), rand(3),
                                                         rand(3), pos(3), 0.1, 1e-5), {}),
    (aten._native_batch_norm_legit.no_stats, (rand(4, 3, 5), rand(3), rand(3), True, 0.1,
                                              1e-5), {}),
    *[(aten._transformer_encoder_layer_fwd.default,
       (rand(2, 5, 8), 8, 2, rand(24, 8) / 3, rand(24), rand(8, 8) / 3, rand(8), use_gelu,
        norm_first, 1e-5, rand(8), rand(8), rand(8), rand(8), rand(16, 8) / 3, rand(16),
        rand(8, 16) / 3, rand(8)), {})
      for use_gelu, norm_first in ((False, False), (True, True))],
    (aten.native_layer_norm.default, (rand(2, 3, 8), [8], rand(8), rand(8), 1e-5), {}),
    (aten.native_layer_norm.default, (rand(2, 3, 4), [3, 4], None, None, 1e-5), {}),
    (aten.native_group_norm.default, (rand(2, 6, 3, 3), rand(6), rand(6), 2, 6, 9, 3, 1e-5),
     {}),
]


def _gradient_samples():
    """Backward ops whose inputs must be consistent with a forward: made from one."""
    x, w = rand(2, 6, 3, 3), rand(6)
    out, mean, rstd = aten.native_group_norm(x, w, rand(6), 2, 6, 9, 3, 1e-5)
    q, k, v = rand(2, 2, 5, 4), rand(2, 2, 5, 4), rand(2, 2, 5, 4)
    o, lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, True)[:2]
    bias = rand(5, 5)
    masked_o, masked_lse = aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, True, attn_mask=bias)
    pool, indices = aten.max_pool2d_with_indices(rand(2, 3, 7, 7), [3, 3], [2, 2], [1, 1])
    pool3, indices3 = aten.max_pool3d_with_indices(rand(1, 2, 4, 5, 5), [2, 2, 2], [1, 2, 2])
    adaptive, adaptive_indices = aten.adaptive_max_pool2d(rand(2, 3, 5, 7), [2, 3])
    adaptive3, adaptive3_indices = aten.adaptive_max_pool3d(rand(1, 2, 4, 5, 6), [2, 2, 3])
    return [
        (aten.native_group_norm_backward.default, (rand(2, 6, 3, 3), x, mean, rstd, w, 2, 6,
                                                   9, 3, [True, True, True]), {}),
        (aten._scaled_dot_product_flash_attention_for_cpu_backward.default,
         (rand(2, 2, 5, 4), q, k, v, o, lse, 0.0, True), {}),
        (aten._scaled_dot_product_flash_attention_for_cpu_backward.default,
         (rand(2, 2, 5, 4), q, k, v, masked_o, masked_lse, 0.0, True), {"attn_mask": bias}),
        (aten._scaled_dot_product_flash_attention_for_cpu.default, (q, k, v, 0.0, True), {}),
        (aten._scaled_dot_product_flash_attention_for_cpu.default, (q, k, v),
         {"attn_mask": rand(5, 5), "scale": 0.3}),
        (aten._scaled_dot_product_flash_attention_for_cpu.default,
         (q, k[:, :, :3], v[:, :, :3], 0.0, True), {"attn_mask": rand(2, 1, 5, 3)}),
        (aten.max_pool2d_with_indices_backward.default,
         (rand(2, 3, 4, 4), rand(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], [1, 1], False, indices),
         {}),
        (aten.adaptive_max_pool2d_backward.default,
         (rand(*adaptive.shape), rand(2, 3, 5, 7), adaptive_indices), {}),
        (aten.adaptive_max_pool3d_backward.default,
         (rand(*adaptive3.shape), rand(1, 2, 4, 5, 6), adaptive3_indices), {}),
        (aten.max_pool3d_with_indices_backward.default,
         (rand(*pool3.shape), rand(1, 2, 4, 5, 5), [2, 2, 2], [1, 2, 2], [0, 0, 0], [1, 1, 1],
          False, indices3), {}),
    ]


SAMPLES += _gradient_samples()


def sample_id(sample):
    return str(sample[0]).removeprefix("aten.")


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
@pytest.mark.parametrize("sample", SAMPLES, ids=[sample_id(s) for s in SAMPLES])
def test_lowering_matches_aten_eagerly(sample):
    op, args, kwargs = sample
    want = op(*args, **kwargs)
    got = lowered.LOWERINGS[op](*to_graphc(args), **to_graphc(kwargs))
    check_same(got, want, op)


def _traced(op, args, kwargs):
    """The lowering compiled by graphc (interpreter backend), tensors as its inputs."""
    flat = []

    def mark(value):
        if isinstance(value, torch.Tensor):
            flat.append(value)
            return _Slot(len(flat) - 1)
        if isinstance(value, (list, tuple)):
            return type(value)(mark(v) for v in value)
        return value
    marked_args, marked_kwargs = mark(args), {k: mark(v) for k, v in kwargs.items()}

    def fill(value, tensors):
        if isinstance(value, _Slot):
            return tensors[value.index]
        if isinstance(value, (list, tuple)):
            return type(value)(fill(v, tensors) for v in value)
        return value

    def program(*tensors):
        return lowered.LOWERINGS[op](*fill(marked_args, tensors),
                                     **{k: fill(v, tensors) for k, v in marked_kwargs.items()})
    return graphc.compile(program, backend="interpreter", fullgraph=True)(*to_graphc(flat))


class _Slot:
    def __init__(self, index):
        self.index = index


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
@pytest.mark.parametrize("sample", SAMPLES, ids=[sample_id(s) for s in SAMPLES])
def test_lowering_matches_aten_traced(sample):
    op, args, kwargs = sample
    with graphc.no_grad():
        got = _traced(op, args, kwargs)
    check_same(got, op(*args, **kwargs), op)


# lowerings checked by a test of their own: random draws (distributions), empty tensors
# (no values), the LSTM layer (its workspace output), FX's getitem
CHECKED_ELSEWHERE = {aten.rand.default, aten.randn.default, aten.rand_like.default,
                     aten.randn_like.default, aten.randint.default, aten.randint.low,
                     aten.bernoulli.default, aten.bernoulli.p, aten.native_dropout.default,
                     aten.empty.memory_format, aten.empty_like.default,
                     aten.empty_strided.default, aten.new_empty.default,
                     aten.mkldnn_rnn_layer.default, operator.getitem}


def test_every_lowering_is_checked_against_aten():
    assert set(lowered.LOWERINGS) - {op for op, _, _ in SAMPLES} - CHECKED_ELSEWHERE == set()


def test_empty_tensors_have_atens_shape_and_dtype():
    for op, args, kwargs in [(aten.empty.memory_format, ([2, 3],), {"dtype": torch.int32}),
                             (aten.empty_like.default, (rand(2, 3),), {}),
                             (aten.empty_strided.default, ([2, 3], [1, 2]), {}),
                             (aten.new_empty.default, (ints(2), [4]), {})]:
        want, got = op(*args, **kwargs), lowered.LOWERINGS[op](*to_graphc(args), **kwargs)
        assert (tuple(got.shape), str(got.dtype)) == \
            (tuple(want.shape), str(want.dtype).replace("torch", "graphc"))


def test_random_ops_draw_from_graphc_with_pytorchs_distribution():
    x = torch.ones(200, 50)
    out, keep = lowered.LOWERINGS[aten.native_dropout.default](to_graphc(x), 0.25, True)
    assert str(keep.dtype) == "graphc.bool" and tuple(out.shape) == (200, 50)
    kept = keep.numpy()
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(out.numpy(), np.where(kept, 1 / 0.75, 0.0), rtol=1e-6)
    out, keep = lowered.LOWERINGS[aten.native_dropout.default](to_graphc(x), 0.25, False)
    assert keep.numpy().all() and (out.numpy() == 1).all()
    out, keep = lowered.LOWERINGS[aten.native_dropout.default](to_graphc(x), 1.0, True)
    assert not keep.numpy().any() and (out.numpy() == 0).all()
    u = lowered.LOWERINGS[aten.rand.default]([4000], dtype=torch.float64)
    assert str(u.dtype) == "graphc.float64" and 0 <= u.numpy().min() and u.numpy().max() < 1
    n = lowered.LOWERINGS[aten.randn_like.default](to_graphc(torch.zeros(4000)))
    assert abs(float(n.numpy().std()) - 1) < 0.1
    r = lowered.LOWERINGS[aten.randint.low](-3, 4, [4000])
    assert str(r.dtype) == "graphc.int64" and set(np.unique(r.numpy())) == set(range(-3, 4))
    r = lowered.LOWERINGS[aten.randint.default](5, [3, 2], dtype=torch.int32)
    assert str(r.dtype) == "graphc.int32" and tuple(r.shape) == (3, 2)
    b = lowered.LOWERINGS[aten.bernoulli.p](to_graphc(torch.zeros(4000)), 0.3)
    assert abs(float(b.numpy().mean()) - 0.3) < 0.05


def test_dropout_traced_draws_new_numbers_each_call():
    dropout = lowered.LOWERINGS[aten.native_dropout.default]
    drop = graphc.compile(lambda x: dropout(x, 0.5, True)[1], backend="interpreter",
                          fullgraph=True)
    x = graphc.ones(1000)
    assert not np.array_equal(drop(x).numpy(), drop(x).numpy())


@pytest.mark.parametrize("reverse, batch_first", [(False, False), (True, False), (False, True)])
def test_lstm_layer_matches_aten(reverse, batch_first):
    """The sequence is time-major whatever batch_first says; states (1, B, H) or (B, H)."""
    state = (3, 8) if batch_first else (1, 3, 8)
    x, hx, cx = rand(5, 3, 6), rand(*state), rand(*state)
    weights = [rand(32, 6) / 3, rand(32, 8) / 3, rand(32), rand(32)]
    args = (x, *weights, hx, cx, reverse, [], 2, 8, 1, True, False, batch_first, False)
    want = aten.mkldnn_rnn_layer(*args)[:3]
    got = lowered.LOWERINGS[aten.mkldnn_rnn_layer.default](*to_graphc(args))[:3]
    check_same(got, want, "mkldnn_rnn_layer")


def test_dtypes_convert_by_name():
    for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
                 "float32", "float64"):
        assert lowered.graphc_dtype(getattr(torch, name)) is getattr(graphc, name)
    assert lowered.graphc_dtype(None) is None
    with pytest.raises(TypeError, match="complex64"):
        lowered.graphc_dtype(torch.complex64)


def test_decompositions_keep_graphcs_fused_composites_whole():
    core = torch._decomp.core_aten_decompositions()
    for op in (aten._softmax_backward_data.default, aten.gelu_backward.default,
               aten.native_layer_norm_backward.default, aten.nll_loss_forward.default):
        assert op in lowered.DECOMPOSITIONS and op not in lowered.LOWERINGS
    for op in (aten.silu.default, aten.hardswish.default, aten.logsumexp.default):
        assert op in core and op not in lowered.DECOMPOSITIONS
    assert not set(lowered.DECOMPOSITIONS) & set(lowered.LOWERINGS)


def test_docs_list_every_lowered_op():
    """docs/aten.md's list of lowered ops is the table's."""
    from pathlib import Path
    text = (Path(__file__).parents[2] / "docs" / "aten.md").read_text()
    listed = set(text.split("<!-- lowered ops -->\n```\n")[1].split("```")[0].split())
    assert listed == {str(op).removeprefix("aten.") for op in lowered.LOWERINGS
                      if isinstance(op, torch._ops.OpOverload)}


# ------------------------------------------------------------------- unsupported


def _refusals(fn, *args):
    """The reasons ``unsupported`` gives for the nodes of ``fn``'s ATen graph."""
    from torch.fx.experimental.proxy_tensor import make_fx
    graph = make_fx(fn, tracing_mode="fake")(*args).graph
    return [r for r in map(lowered.unsupported, graph.nodes) if r is not None]


def test_unsupported_names_the_op_and_why():
    assert _refusals(lambda x: torch.relu(x) + 1, torch.ones(3)) == []
    (reason,) = _refusals(lambda x: x * 2, torch.ones(3, dtype=torch.complex64))
    assert "aten.mul.Tensor" in reason and "complex64" in reason
    (reason,) = _refusals(lambda x: x & 3, torch.ones(3, dtype=torch.int64))
    assert "bitwise_and" in reason and "bool" in reason
    (reason,) = _refusals(lambda x: torch.special.bessel_j0(x), torch.ones(3))
    assert reason == "aten.special_bessel_j0.default has no graphc lowering"
    (reason,) = _refusals(lambda x, m: x[m], torch.ones(3), torch.ones(3, dtype=torch.bool))
    assert "aten.index.Tensor" in reason and "boolean mask" in reason
    (reason,) = _refusals(lambda x: x.to(torch.uint16), torch.ones(3, dtype=torch.int32))
    assert "aten._to_copy.default" in reason and "uint16" in reason
    (reason, _) = _refusals(lambda x: x.to("meta") + 0, torch.ones(3))
    assert reason == "aten._to_copy.default on device meta: graphc runs on cpu and cuda"
    (reason,) = _refusals(lambda x: torch.bernoulli(x, generator=torch.Generator()),
                          torch.ones(3))
    assert "aten.bernoulli.default with a generator" in reason


def test_unsupported_refuses_arguments_a_lowering_cannot_honour():
    q = torch.ones(1, 1, 4, 2)
    (reason,) = _refusals(
        lambda g, q, o, lse: aten._scaled_dot_product_flash_attention_for_cpu_backward(
            g, q, q, q, o, lse, 0.5, False), q, q, q, torch.ones(1, 1, 4))
    assert "dropout_p=0.5" in reason
    x, w, h = torch.ones(2, 1, 3), torch.ones(12, 3), torch.ones(1, 1, 3)
    (reason,) = _refusals(lambda x, w, h: aten.mkldnn_rnn_layer(
        x, w, w[:, :3], w[:, 0], w[:, 0], h, h, False, [], 1, 3, 1, True, False, False,
        False), x, w, h)
    assert "mode=1" in reason
    (reason,) = _refusals(
        lambda x, w: aten.convolution(x, w, None, [1], [0], [1], False, [0], 1),
        torch.ones(1, 1, 4, dtype=torch.int64), torch.ones(1, 1, 2, dtype=torch.int64))
    assert "convolves float tensors only" in reason


def test_unsupported_refuses_a_move_between_devices():
    """A copy to the GPU inside a CPU graph (fake tensors: no GPU needed)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        on_cpu, on_gpu = torch.empty(3), torch.empty(3, device="cuda")
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = on_cpu
    copy = graph.call_function(aten._to_copy.default, (x,), {"device": torch.device("cuda")})
    copy.meta["val"] = on_gpu
    assert lowered.unsupported(copy) == \
        "aten._to_copy.default moves tensors between cpu and cuda:0"


def test_unsupported_refuses_symbolic_shapes():
    from torch.fx.experimental.proxy_tensor import make_fx
    gm = make_fx(lambda x: x.sum(0) * 2, tracing_mode="symbolic")(torch.ones(3, 4))
    reasons = [lowered.unsupported(n) for n in gm.graph.nodes if n.op == "call_function"]
    assert any(r and "symbolic" in r for r in reasons)


# -------------------------------------------------------------- the models' graphs

class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


class Block(torch.nn.Module):
    """A GPT block: LayerNorm, causal attention (PyTorch's kernel or written out with
    masked_fill/softmax), GELU MLP, dropout."""

    def __init__(self, manual, p, d=16, heads=2):
        super().__init__()
        nn = torch.nn
        self.ln1, self.ln2, self.qkv = nn.LayerNorm(d), nn.LayerNorm(d), nn.Linear(d, 3 * d)
        self.proj, self.fc, self.out = nn.Linear(d, d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.drop, self.manual, self.p, self.heads = nn.Dropout(p), manual, p, heads

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2)
                   for t in self.qkv(self.ln1(x)).split(C, dim=2))
        if self.manual:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
            att = self.drop(torch.softmax(att.masked_fill(~causal, float("-inf")), dim=-1))
            y = att @ v
        else:
            y = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.drop(self.out(torch.nn.functional.gelu(self.fc(self.ln2(x)))))


class GPT(torch.nn.Module):
    def __init__(self, manual, p):
        super().__init__()
        self.tok, self.pos = torch.nn.Embedding(32, 16), torch.nn.Embedding(8, 16)
        self.block, self.ln = Block(manual, p), torch.nn.LayerNorm(16)
        self.head = torch.nn.Linear(16, 32, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        return self.head(self.ln(self.block(x))).flatten(0, 1)


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.c1, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.pool = nn.Conv2d(8, 8, 3, stride=2, bias=False), nn.MaxPool2d(2)
        self.gap, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.c1(x))))
        return self.fc(torch.flatten(self.gap(torch.relu(self.c2(x))), 1))


class RNN(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.rnn = getattr(torch.nn, kind)(6, 8, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


def _graphs(model, args, loss, calls):
    """The ATen graphs AOTAutograd makes of ``loss(model(*args))`` with our
    decompositions (what the graphc backend receives): forward and backward, or the
    forward alone under no_grad; each graph's real inputs and outputs of the call are
    appended to ``calls``.  Dynamo inlines RNN modules only with ``allow_rnn``."""
    from torch._functorch.aot_autograd import aot_module_simplified
    from functorch.compile import make_boxed_func

    def keep(gm, _):
        def run(*args):
            inputs = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
            outputs = gm(*args)
            calls.append((gm, inputs, outputs))
            return outputs
        return make_boxed_func(run)

    def backend(gm, example_inputs):
        return aot_module_simplified(gm, example_inputs, fw_compiler=keep, bw_compiler=keep,
                                     decompositions=lowered.DECOMPOSITIONS)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = torch.compile(lambda *args: loss(model(*args)), backend=backend,
                               fullgraph=True)(*args)
        if result.requires_grad:
            result.backward()


def training_step(make, train=True):
    """A training step of ``cross_entropy(model(x), y)`` on a fresh model."""
    def capture(x, y, calls):
        model = make().train(train)
        _graphs(model, (x,), lambda out: torch.nn.functional.cross_entropy(out, y), calls)
    return capture


def inference(make):
    """A forward pass under no_grad of an eval-mode model."""
    def capture(x, y, calls):
        with torch.no_grad():
            _graphs(make().eval(), (x,), lambda out: out, calls)
    return capture


class Encoder(torch.nn.Module):
    """Embeddings and a TransformerEncoderLayer: in inference PyTorch runs the layer as
    one fused ATen op (its fast path)."""

    def __init__(self):
        super().__init__()
        self.tok = torch.nn.Embedding(32, 16)
        self.layer = torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)

    def forward(self, idx):
        return self.layer(self.tok(idx)).flatten(0, 1)


def _tokens():
    return torch.randint(0, 32, (2, 8)), torch.randint(0, 32, (16,))


def _images():
    return torch.randn(2, 3, 12, 12), torch.randint(0, 10, (2,))


def _sequences():
    return torch.randn(3, 5, 6), torch.randint(0, 3, (3,))


# name: (capture, inputs, deterministic); RNN modules: Dynamo inlines nn.GRU/nn.RNN with
# allow_rnn; nn.LSTM's training step fails inside PyTorch 2.13's AOTAutograd that way
# (it runs in PyTorch by default), so it is captured in inference, where PyTorch's CPU
# LSTM runs each layer as one mkldnn_rnn_layer op.
MODELS = {
    "mlp": (training_step(MLP), (torch.randn(5, 8), torch.randint(0, 4, (5,))), True),
    **{f"gpt-{'manual' if manual else 'sdpa'}-p{p}": (
        training_step(lambda manual=manual, p=p: GPT(manual, p)), _tokens(), p == 0)
       for manual in (False, True) for p in (0.0, 0.1)},
    "gpt-eval": (training_step(lambda: GPT(True, 0.1), train=False), _tokens(), True),
    "cnn-train": (training_step(CNN), _images(), True),
    "cnn-eval": (training_step(CNN, train=False), _images(), True),
    **{kind.lower(): (training_step(lambda kind=kind: RNN(kind)), _sequences(), True)
       for kind in ("GRU", "RNN")},
    "lstm-inference": (inference(lambda: RNN("LSTM")), _sequences(), True),
    "encoder-inference": (inference(lambda: Encoder()), _tokens(), True),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_every_op_of_the_models_graphs_is_lowered(name):
    capture, (x, y), _ = MODELS[name]
    calls = []
    capture(x, y, calls)
    assert calls
    reasons = {str(n.target): lowered.unsupported(n) for gm, _, _ in calls
               for n in gm.graph.nodes if n.op == "call_function"}
    assert {op: r for op, r in reasons.items() if r} == {}


def run_in_graphc(gm, inputs):
    """Interpret an ATen graph with the lowerings on graphc tensors ``inputs`` (what the
    backend does, without its partitioning)."""
    values = {}

    def read(arg):
        if isinstance(arg, torch.fx.Node):
            return values[arg]
        if isinstance(arg, (list, tuple)):
            return type(arg)(read(a) for a in arg)
        return arg
    placeholders = iter(inputs)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            values[node] = next(placeholders)
        elif node.op == "call_function":
            values[node] = lowered.LOWERINGS[node.target](*read(node.args), **read(node.kwargs))
        elif node.op == "output":
            return read(node.args[0])


@pytest.mark.slow
@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("name", [name for name, model in MODELS.items() if model[2]])
def test_models_graphs_run_in_graphc_as_in_pytorch(name, traced):
    """Every forward and backward graph of a training step (or an inference pass),
    interpreted with the lowerings on graphc tensors, eagerly or traced by
    graphc.compile, gives PyTorch's outputs (loss, activations saved for backward,
    gradients, new batch norm statistics)."""
    capture, (x, y), _ = MODELS[name]
    torch.manual_seed(0)
    calls = []
    capture(x, y, calls)
    for gm, inputs, want in calls:
        def run(*tensors, gm=gm):
            return run_in_graphc(gm, tensors)
        if traced:
            run = graphc.compile(run, backend="interpreter", fullgraph=True)
        check_same(run(*to_graphc(inputs)), list(want), name)
