"""graphc: a deep-learning graph compiler with a PyTorch-compatible eager front end.

``import graphc as torch`` runs programs written for PyTorch's introductory subset.
"""
from graphc import dtypes as _dtypes
from graphc.dtypes import DType as dtype
from graphc.tensor import (Tensor, Size, FloatTensor, DoubleTensor, LongTensor, IntTensor,
                           BoolTensor, typename)
from graphc import functional as _functional
from graphc.functional import (
    add, sub, mul, div, true_divide, divide, floor_divide, remainder, pow, neg, negative,
    maximum, minimum, exp, log, log2, log10, log1p, expm1, sqrt, rsqrt, sin, cos, tan, atan2,
    tanh, sigmoid, erf, floor, ceil, round, trunc, abs, absolute, sign, relu, clamp, clip, where,
    eq, ne, lt, le, gt, ge, equal, logical_not, logical_and, logical_or, logical_xor, isnan,
    isinf, isfinite, sum, prod, mean, var, std, max, min, amax, amin, argmax, argmin, all,
    any, count_nonzero, logsumexp, cumsum, norm, matmul, mm, bmm, dot, mv, outer, reshape,
    flatten, unflatten, squeeze, unsqueeze, permute, transpose, swapaxes, t, movedim,
    broadcast_to, contiguous, clone, narrow, select, split, chunk, unbind, flip,
    index_select, gather, scatter_add, index_add, masked_fill, tril, triu, diag, cat,
    concat, concatenate, stack, hstack, vstack)
from graphc.creation import (
    tensor, as_tensor, from_numpy, from_dlpack, to_dlpack, zeros, ones, empty, full,
    zeros_like, ones_like, empty_like, full_like, arange, linspace, logspace, scalar_tensor,
    eye, Generator, default_generator, manual_seed, seed, initial_seed, rand, randn,
    randint, randperm, rand_like, randn_like, randint_like, normal)
from graphc.composite import softmax, log_softmax, logaddexp
from graphc.functional import bitwise_not  # noqa: E402
from graphc.functional import (mul as multiply, sub as subtract, gt as greater,
                               ge as greater_equal, lt as less, le as less_equal,
                               ne as not_equal)
from graphc.sampling import bernoulli
from graphc.indexing import can_cast
from graphc.composite import cosine_similarity
from graphc.losses import pairwise_distance, pdist
from graphc.pointwise import (
    asin, acos, atan, sinh, cosh, asinh, acosh, atanh, arcsin, arccos, arctan, arcsinh,
    arccosh, arctanh, arctan2, deg2rad, rad2deg, reciprocal, square, exp2, float_power, xlogy,
    logit, erfc, erfinv, sgn, copysign, fmod, frac, heaviside, hypot, nan_to_num, clamp_min,
    clamp_max, lerp, addcmul, addcdiv, fmax, fmin, isclose, allclose, lgamma, digamma, sinc,
    signbit, logaddexp2, ldexp, fix, isposinf, isneginf, isreal, positive, mvlgamma)
from graphc.reductions import (
    cumprod, logcumsumexp, cummax, cummin, diff, aminmax, nansum, nanmean, var_mean,
    std_mean, dist, renorm, trapezoid, trapz, cumulative_trapezoid, cov, corrcoef)
from graphc.blas import (
    diagonal, diag_embed, einsum, tensordot, kron, addmm, addmv, addr, baddbmm,
    addbmm, chain_matmul, cross, inner, ger, vdot)
from graphc.shapes import (
    roll, rot90, tile, meshgrid, cartesian_prod, block_diag, atleast_1d, atleast_2d,
    atleast_3d, column_stack, dstack, flipud, fliplr, vander, cdist, tril_indices,
    triu_indices, ravel, moveaxis, swapdims, row_stack, tensor_split, hsplit, vsplit, dsplit,
    diagflat, broadcast_shapes, broadcast_tensors, combinations, unravel_index, select_scatter,
    slice_scatter, diagonal_scatter, adjoint)
from graphc import linalg
from graphc.linalg import (det, inv as inverse, slogdet, matrix_power, cholesky, logdet,
                           cholesky_solve, cholesky_inverse)
from graphc.coo import sparse_coo_tensor
from graphc.selection import (
    sort, argsort, msort, topk, kthvalue, median, nanmedian, mode, searchsorted, bucketize,
    multinomial, scatter, scatter_reduce, index_copy, index_fill, index_put, take,
    take_along_dim, masked_scatter, histc, nonzero, argwhere, where, masked_select, unique,
    unique_consecutive, bincount, repeat_interleave, quantile, nanquantile)
from graphc.activation import (selu, selu_, celu, celu_, rrelu, rrelu_, prelu, threshold,
                               threshold_, hardshrink, relu_)
from graphc.spatial import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,
                            conv_transpose3d, max_pool1d, max_pool2d, max_pool3d, avg_pool1d,
                            adaptive_avg_pool1d, pixel_shuffle, pixel_unshuffle, channel_shuffle)
from graphc.spatial import (max_pool1d_with_indices, constant_pad_nd,
                            adaptive_max_pool1d_with_indices as adaptive_max_pool1d)
from graphc import methods as _methods  # noqa: F401  (gives Tensor its methods)
from graphc.autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled
from graphc import autograd, cuda, backends, accelerator
from graphc.autograd import inference_mode, is_inference_mode_enabled
from graphc.autograd.hooks import is_anomaly_enabled, is_anomaly_check_nan_enabled
from graphc.cuda import device
from graphc.printing import set_printoptions, get_printoptions

float32 = float = _dtypes.float32
float64 = double = _dtypes.float64
int32 = int = _dtypes.int32
int64 = long = _dtypes.int64
bool = _dtypes.bool_
float16 = half = _dtypes.float16
bfloat16 = _dtypes.bfloat16
uint8 = _dtypes.uint8
int8 = _dtypes.int8
int16 = short = _dtypes.int16
from graphc.dtypes import finfo, iinfo, promote_types  # noqa: E402
from graphc.tensor import (HalfTensor, BFloat16Tensor, ByteTensor, CharTensor,  # noqa: E402
                           ShortTensor)

from graphc.version import __version__  # noqa: E402,F401


def get_default_dtype():
    return _dtypes.default_float


def set_default_dtype(d) -> None:
    """The dtype of float tensors made without one (and of Python floats in promotion)."""
    d = _dtypes.to_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, "
                        f"got {d}")
    _dtypes.default_float = d


_matmul_precision = ["highest"]


def set_float32_matmul_precision(precision: str) -> None:
    """Accepted for PyTorch programs: graphc's float32 matmuls always compute in float32
    ("highest"), on every backend."""
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"Invalid precision {precision!r}: expected 'highest', 'high' or "
                           f"'medium'")
    _matmul_precision[0] = precision


def get_float32_matmul_precision() -> str:
    return _matmul_precision[0]


_deterministic = [False]


def use_deterministic_algorithms(mode: "bool", *, warn_only: "bool" = False) -> None:
    """Accepted: every graphc kernel is deterministic already (fixed reduction orders,
    serial scatters), so nothing changes."""
    _deterministic[0] = True if mode else False   # (``bool`` is graphc.bool here)


def are_deterministic_algorithms_enabled() -> "bool":
    return _deterministic[0]


def result_type(tensor1, tensor2) -> dtype:
    """The dtype PyTorch's promotion gives ``tensor1 op tensor2`` (tensors or numbers)."""
    return _functional.result_type(tensor1, tensor2)


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """Whether each element of ``elements`` is among ``test_elements``."""
    test = test_elements if isinstance(test_elements, Tensor) else tensor(test_elements)
    elements = elements if isinstance(elements, Tensor) else tensor(elements)
    found = (elements.unsqueeze(-1) == test.reshape(-1)).any(-1)
    return found.logical_not() if invert else found


def detach(input):
    return input.detach()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    default_generator.set_state(new_state)


def is_tensor(obj) -> "bool":
    return isinstance(obj, Tensor)


def numel(x) -> "int":
    return x.numel()


def is_floating_point(x) -> "bool":
    return x.dtype.is_floating_point


from graphc import nn  # noqa: E402  (nn needs the tensor API above)
from graphc import ir  # noqa: E402
from graphc.context import GraphBreak  # noqa: E402
from graphc.compiler import compile, explain  # noqa: E402
from graphc import compiler as _compiler, blas as _blas  # noqa: E402


def trace(fn_or_input, *example_inputs, **kwargs):
    """Two meanings, told apart by the first argument: ``graphc.trace(matrix)`` is
    PyTorch's ``torch.trace`` (the sum of the main diagonal); ``graphc.trace(fn,
    *example_inputs)`` is graphc's compiler API, which records ``fn`` into an
    ``ir.Graph``.  A tensor is never a function, so neither shadows the other."""
    if isinstance(fn_or_input, Tensor):
        return _blas.trace(fn_or_input, *example_inputs, **kwargs)
    return _compiler.trace(fn_or_input, *example_inputs, **kwargs)
from graphc.logs import set_logs  # noqa: E402
from graphc import profiling  # noqa: E402
from graphc.profiling import profile  # noqa: E402
from graphc import optim  # noqa: E402
from graphc import utils  # noqa: E402
from graphc import onnx, distributed  # noqa: E402
import graphc.autograd.functional  # noqa: E402,F401  (graphc.autograd.functional.jacobian)
from graphc.serialization import save, load  # noqa: E402
from graphc import amp, cpu  # noqa: E402
from graphc.parallel import set_num_threads, get_num_threads  # noqa: E402
from graphc.amp import (autocast, is_autocast_available, is_autocast_enabled,  # noqa: E402
                        get_autocast_dtype)
cuda.amp = amp.cuda_amp
import sys as _sys  # noqa: E402
_sys.modules["graphc.cuda.amp"], _sys.modules["graphc.cpu.amp"] = amp.cuda_amp, amp.cpu_amp
