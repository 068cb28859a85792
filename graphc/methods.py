"""The one place ``Tensor`` gets its computing methods.

``graphc.tensor`` defines storage, metadata and autograd state; the math, views,
indexing, in-place ops, ``to``, ``backward`` and the operators are functions of the
front end's modules, attached here as methods (PyTorch's ``x.add(y)`` is
``functional.add(x, y)``).  Keeping every attachment in this module lets those modules
import ``Tensor`` without ``Tensor`` importing them back.
"""
from __future__ import annotations

import numpy as np

from graphc import autograd, composite, creation
from graphc import selection as S
from graphc.autograd import hooks
from graphc import functional as F
from graphc.indexing import (apply_inplace, copy_, fill_, getitem, normal_, setitem,
                             uniform_, zero_)
from graphc.tensor import Tensor
from graphc import blas, coo, linalg, pointwise, reductions, sampling, shapes


def _backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    autograd.backward(self, gradient, retain_graph, create_graph, inputs)


def _retain_grad(self):
    if not self._requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    autograd.retain(self)


def _new_tensor(self, data, dtype=None, requires_grad=False):
    return creation.tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)


def _inplace(name, fn):
    def method(self, *args, **kwargs):
        return apply_inplace(self, name, lambda s: fn(s, *args, **kwargs))
    method.__name__ = name
    return method


_METHODS = [
    F.add, F.sub, F.mul, F.div, F.floor_divide, F.remainder, F.pow, F.neg, F.maximum, F.minimum,
    F.exp, F.log, F.log2, F.log10, F.log1p, F.expm1, F.sqrt, F.rsqrt, F.sin, F.cos, F.tan,
    F.atan2, F.tanh, F.sigmoid, F.erf, F.floor, F.ceil, F.round, F.trunc, F.abs, F.sign, F.relu,
    F.clamp, F.eq, F.ne, F.lt, F.le, F.gt, F.ge, F.equal, F.logical_not, F.logical_and,
    F.logical_or, F.logical_xor, F.isnan, F.isinf, F.isfinite, F.sum, F.prod, F.mean, F.var,
    F.std, F.max, F.min, F.amax, F.amin, F.argmax, F.argmin, F.all, F.any, F.count_nonzero,
    F.logsumexp, F.cumsum, F.norm, F.matmul, F.mm, F.bmm, F.dot, F.mv, F.outer, F.reshape,
    F.view, F.view_as, F.reshape_as, F.flatten, F.unflatten, F.squeeze, F.unsqueeze, F.permute,
    F.transpose, F.t, F.movedim, F.expand, F.expand_as, F.broadcast_to, F.repeat, F.contiguous,
    F.clone, F.narrow, F.select, F.split, F.chunk, F.unbind, F.flip, F.index_select, F.gather,
    F.scatter_add, F.index_add, F.masked_fill, F.tril, F.triu, F.diag,
]
for _fn in _METHODS:
    setattr(Tensor, _fn.__name__, _fn)
# Aliases share their function object, so its __name__ is the original's.
for _name, _fn in [("true_divide", F.div), ("divide", F.div), ("negative", F.neg),
                   ("absolute", F.abs), ("clip", F.clamp), ("swapaxes", F.transpose)]:
    setattr(Tensor, _name, _fn)
Tensor.where = F._where_method
Tensor.softmax = composite.softmax
Tensor.log_softmax = composite.log_softmax
Tensor.logaddexp = composite.logaddexp
Tensor.T = property(F._T)
Tensor.mT = property(F._mT)
Tensor._slice = F._slice
Tensor._pad = F._pad
Tensor._conv2d = F._conv2d
Tensor._reduce = F._reduce
Tensor.__getitem__ = getitem
Tensor.__setitem__ = setitem
for _name, _fn in [("add_", F.add), ("sub_", F.sub), ("mul_", F.mul), ("div_", F.div),
                   ("pow_", F.pow), ("neg_", F.neg), ("clamp_", F.clamp), ("clip_", F.clamp),
                   ("exp_", F.exp), ("sqrt_", F.sqrt), ("abs_", F.abs), ("relu_", F.relu),
                   ("sigmoid_", F.sigmoid), ("tanh_", F.tanh), ("masked_fill_", F.masked_fill),
                   ("floor_", F.floor), ("t_", F.t), ("squeeze_", F.squeeze),
                   ("unsqueeze_", F.unsqueeze)]:
    setattr(Tensor, _name, _inplace(_name, _fn))
for _fn in [S.sort, S.argsort, S.msort, S.topk, S.kthvalue, S.median, S.nanmedian, S.mode,
            S.quantile, S.nanquantile,
            S.multinomial, S.scatter, S.scatter_reduce, S.index_copy, S.index_fill,
            S.index_put, S.index_put_, S.take, S.take_along_dim, S.masked_scatter, S.histc,
            S.nonzero, S.argwhere, S.masked_select, S.unique, S.unique_consecutive,
            S.bincount, S.repeat_interleave]:
    setattr(Tensor, _fn.__name__, _fn)
for _name, _fn in [("scatter_", S.scatter), ("scatter_reduce_", S.scatter_reduce),
                   ("scatter_add_", F.scatter_add), ("index_copy_", S.index_copy),
                   ("index_fill_", S.index_fill), ("index_add_", F.index_add),
                   ("masked_scatter_", S.masked_scatter)]:
    setattr(Tensor, _name, _inplace(_name, _fn))
# In-place forms of the functions above (the result is cast back to self's dtype where
# PyTorch allows it: x.gt_(0) on floats gives 0.0/1.0).
for _name, _fn in [("log_", F.log), ("log2_", F.log2), ("log10_", F.log10),
                   ("log1p_", F.log1p), ("expm1_", F.expm1), ("rsqrt_", F.rsqrt),
                   ("sin_", F.sin), ("cos_", F.cos), ("tan_", F.tan), ("erf_", F.erf),
                   ("ceil_", F.ceil), ("round_", F.round), ("trunc_", F.trunc),
                   ("sign_", F.sign), ("remainder_", F.remainder),
                   ("floor_divide_", F.floor_divide), ("true_divide_", F.div),
                   ("divide_", F.div), ("negative_", F.neg), ("absolute_", F.abs),
                   ("tril_", F.tril), ("triu_", F.triu), ("cumsum_", F.cumsum),
                   ("eq_", F.eq), ("ne_", F.ne), ("lt_", F.lt), ("le_", F.le), ("gt_", F.gt),
                   ("ge_", F.ge), ("logical_not_", F.logical_not),
                   ("logical_and_", F.logical_and), ("logical_or_", F.logical_or),
                   ("logical_xor_", F.logical_xor), ("multiply_", F.mul),
                   ("subtract_", F.sub), ("greater_", F.gt), ("greater_equal_", F.ge),
                   ("less_", F.lt), ("less_equal_", F.le), ("not_equal_", F.ne)]:
    setattr(Tensor, _name, _inplace(_name, _fn))
# PyTorch's other names for the same functions.
for _name, _fn in [("bitwise_not", F.bitwise_not), ("multiply", F.mul), ("subtract", F.sub), ("greater", F.gt),
                   ("greater_equal", F.ge), ("less", F.lt), ("less_equal", F.le),
                   ("not_equal", F.ne)]:
    setattr(Tensor, _name, _fn)
Tensor.ndimension = Tensor.dim
Tensor.type_as = lambda self, other: F.cast(self, other.dtype)
Tensor.is_same_size = lambda self, other: tuple(self.shape) == tuple(other.shape)
Tensor.bernoulli = sampling.bernoulli
Tensor.bernoulli_ = sampling.bernoulli_
Tensor.exponential_ = sampling.exponential_
Tensor.zero_ = zero_
Tensor.fill_ = fill_
Tensor.copy_ = copy_

_OPERATORS = {
    "__add__": F.add, "__radd__": lambda a, b: F.add(b, a),
    "__sub__": F.sub, "__rsub__": lambda a, b: F.sub(b, a),
    "__mul__": F.mul, "__rmul__": lambda a, b: F.mul(b, a),
    "__truediv__": F.div, "__rtruediv__": lambda a, b: F.div(b, a),
    "__floordiv__": F.floor_divide, "__rfloordiv__": lambda a, b: F.floor_divide(b, a),
    "__mod__": F.remainder, "__rmod__": lambda a, b: F.remainder(b, a),
    "__pow__": F.pow, "__rpow__": F._rpow,
    "__matmul__": F.matmul, "__rmatmul__": lambda a, b: F.matmul(b, a),
    "__neg__": F.neg, "__pos__": lambda a: a, "__abs__": F.abs,
    "__eq__": F.eq, "__ne__": F.ne, "__lt__": F.lt, "__le__": F.le, "__gt__": F.gt,
    "__ge__": F.ge, "__invert__": F.bitwise_not,
    "__and__": lambda a, b: F._bitwise("and", a, b),
    "__or__": lambda a, b: F._bitwise("or", a, b),
    "__xor__": lambda a, b: F._bitwise("xor", a, b),
    "__rand__": lambda a, b: F._bitwise("and", b, a),
    "__ror__": lambda a, b: F._bitwise("or", b, a),
    "__rxor__": lambda a, b: F._bitwise("xor", b, a),
    "__lshift__": F._shift("<<"), "__rlshift__": F._shift("<<"),
    "__rshift__": F._shift(">>"), "__rrshift__": F._shift(">>"),
    "__iadd__": _inplace("__iadd__", F.add), "__isub__": _inplace("__isub__", F.sub),
    "__imul__": _inplace("__imul__", F.mul), "__itruediv__": _inplace("__itruediv__", F.div),
}


def _operator(fn, operands=(Tensor,) + F._Number):
    """Binary dunders return NotImplemented for foreign operands, so Python can try the
    other side (and ``tensor == "a"`` is False rather than an error).  An ndarray's own
    reflected method then computes in numpy, and the result comes back as a tensor
    through ``Tensor.__array_wrap__`` (``t + np.ones(3)``), as in PyTorch."""
    def method(self, *other):
        if other and not isinstance(other[0], operands):
            return NotImplemented
        return fn(self, *other)
    method.__name__ = fn.__name__
    return method


def _eq_array(a, b):
    """``t == ndarray`` compares elementwise, as PyTorch's ``__eq__`` does (it reads the
    array as a tensor, so it works on a tensor that requires grad; ``!=`` does not)."""
    return F.eq(a, creation.as_tensor(b) if isinstance(b, np.ndarray) else b)


for _name, _fn in _OPERATORS.items():
    setattr(Tensor, _name, _operator(_fn))
# PyTorch's ``@`` takes tensors only: ``t @ 2.0`` is a TypeError.
Tensor.__matmul__ = _operator(F.matmul, (Tensor,))
Tensor.__rmatmul__ = _operator(lambda a, b: F.matmul(b, a), (Tensor,))
Tensor.__eq__ = _operator(_eq_array, (Tensor, np.ndarray) + F._Number)


Tensor.backward = _backward
Tensor.retain_grad = _retain_grad
Tensor.register_hook = hooks.register_hook
Tensor.register_post_accumulate_grad_hook = hooks.register_post_accumulate_grad_hook
Tensor.is_inference = hooks.is_inference
Tensor.to = F.to
Tensor.new_tensor = _new_tensor
Tensor.uniform_ = uniform_
Tensor.normal_ = normal_


# Pointwise math, scans, contractions and shape functions (graphc/pointwise.py,
# reductions.py, blas.py, shapes.py, linalg.py), with PyTorch's in-place forms.
_MATH_METHODS = {
    "asin": pointwise.asin, "acos": pointwise.acos, "atan": pointwise.atan,
    "sinh": pointwise.sinh, "cosh": pointwise.cosh, "asinh": pointwise.asinh,
    "acosh": pointwise.acosh, "atanh": pointwise.atanh, "arcsin": pointwise.asin,
    "arccos": pointwise.acos, "arctan": pointwise.atan, "arcsinh": pointwise.asinh,
    "arccosh": pointwise.acosh, "arctanh": pointwise.atanh, "arctan2": pointwise.arctan2,
    "deg2rad": pointwise.deg2rad, "rad2deg": pointwise.rad2deg,
    "reciprocal": pointwise.reciprocal, "square": pointwise.square, "exp2": pointwise.exp2,
    "float_power": pointwise.float_power, "xlogy": pointwise.xlogy, "logit": pointwise.logit,
    "erfc": pointwise.erfc, "erfinv": pointwise.erfinv, "sgn": pointwise.sgn,
    "copysign": pointwise.copysign, "fmod": pointwise.fmod, "frac": pointwise.frac,
    "heaviside": pointwise.heaviside, "hypot": pointwise.hypot,
    "nan_to_num": pointwise.nan_to_num, "clamp_min": pointwise.clamp_min,
    "clamp_max": pointwise.clamp_max, "lerp": pointwise.lerp, "addcmul": pointwise.addcmul,
    "addcdiv": pointwise.addcdiv, "fmax": pointwise.fmax, "fmin": pointwise.fmin,
    "isclose": pointwise.isclose, "allclose": pointwise.allclose,
    "cumprod": reductions.cumprod, "logcumsumexp": reductions.logcumsumexp,
    "cummax": reductions.cummax, "cummin": reductions.cummin, "diff": reductions.diff,
    "aminmax": reductions.aminmax, "nansum": reductions.nansum,
    "nanmean": reductions.nanmean, "dist": reductions.dist, "renorm": reductions.renorm,
    "diagonal": blas.diagonal, "diag_embed": blas.diag_embed, "trace": blas.trace,
    "kron": blas.kron, "addmm": blas.addmm, "addmv": blas.addmv, "addr": blas.addr,
    "baddbmm": blas.baddbmm, "addbmm": blas.addbmm, "cross": blas.cross,
    "roll": shapes.roll, "rot90": shapes.rot90, "tile": shapes.tile,
    "flipud": shapes.flipud, "fliplr": shapes.fliplr,
    "det": linalg.det, "inverse": linalg.inv, "lgamma": pointwise.lgamma,
    "digamma": pointwise.digamma, "atan2": F.atan2, "slogdet": linalg.slogdet,
    "matrix_power": linalg.matrix_power, "cholesky": linalg.cholesky,
    "sinc": pointwise.sinc, "signbit": pointwise.signbit, "logaddexp2": pointwise.logaddexp2,
    "ldexp": pointwise.ldexp, "fix": pointwise.fix, "isposinf": pointwise.isposinf,
    "isneginf": pointwise.isneginf, "isreal": pointwise.isreal, "positive": pointwise.positive,
    "mvlgamma": pointwise.mvlgamma, "ravel": shapes.ravel, "moveaxis": shapes.moveaxis,
    "swapdims": shapes.swapdims, "tensor_split": shapes.tensor_split, "hsplit": shapes.hsplit,
    "vsplit": shapes.vsplit, "dsplit": shapes.dsplit, "unfold": shapes.unfold,
    "diagflat": shapes.diagflat, "select_scatter": shapes.select_scatter,
    "slice_scatter": shapes.slice_scatter, "diagonal_scatter": shapes.diagonal_scatter,
    "inner": blas.inner, "ger": blas.ger, "vdot": blas.vdot, "logdet": linalg.logdet,
    "cholesky_solve": linalg.cholesky_solve, "cholesky_inverse": linalg.cholesky_inverse,
    "cov": reductions.cov, "corrcoef": reductions.corrcoef, "adjoint": shapes.adjoint,
}
for _name, _fn in _MATH_METHODS.items():
    setattr(Tensor, _name, _fn)
for _name in ["asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "arcsin",
              "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "arctan2", "deg2rad",
              "rad2deg", "reciprocal", "square", "exp2", "xlogy", "logit",
              "erfc", "erfinv", "sgn", "copysign", "fmod", "frac", "heaviside", "hypot",
              "nan_to_num", "clamp_min", "clamp_max", "lerp", "addcmul", "addcdiv",
              "cumprod", "renorm", "addmm", "addmv", "addr", "baddbmm", "addbmm", "lgamma",
              "digamma", "atan2", "sinc", "ldexp", "fix", "mvlgamma", "swapdims"]:
    setattr(Tensor, _name + "_", _inplace(_name + "_", _MATH_METHODS[_name]))
Tensor.float_power_ = pointwise.float_power_
Tensor.fill_diagonal_ = shapes.fill_diagonal_
Tensor.mH = property(shapes._mH)
Tensor.H = property(shapes._H)
Tensor.is_sparse = False
Tensor.to_sparse = coo.to_sparse
Tensor.to_dense = coo.dense_to_dense
