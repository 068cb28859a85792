"""Composite operations: everything neural networks use that is not a primitive.

Each composite is one function built from tensor functions only, so it gets eager
execution, autograd, tracing, fusion and every backend for free.  ``graphc.nn.functional``
re-exports these under PyTorch's names.
"""
from __future__ import annotations

import functools
import math
import warnings

from graphc import autograd, creation, dtypes
from graphc import functional as F
from graphc.dtypes import TensorType
from graphc.ops import REGISTRY as P
from graphc.ops.primitive import broadcast_shapes
from graphc.dispatch import bind
from graphc.amp import cast_inputs, suspended
from graphc.indexing import apply_inplace
from graphc.tensor import Tensor, normalize_dim

_REDUCTIONS = ("none", "mean", "sum")


def _reduce_loss(loss, reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: {reduction} is not a valid value for reduction")
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _legacy_reduction(size_average, reduce, reduction):
    """``reduction``, or the one meant by PyTorch's deprecated ``size_average``/``reduce``
    flags when either is given (with PyTorch's warning)."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", stacklevel=3)
    return reduction


def _weighted_loss(loss, weight, reduction, op):
    """PyTorch's elementwise ``weight`` of l1/mse losses: 'mean' divides by its sum."""
    if tuple(weight.shape) != tuple(loss.shape):
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / weight.sum()
    return _reduce_loss(loss, reduction, op)


def _check_same_shape(op, input, target):
    if input.shape != target.shape:
        raise ValueError(f"{op}: Using a target size ({list(target.shape)}) that is "
                         f"different to the input size ({list(input.shape)}) is not "
                         f"supported")


def _warn_if_broadcast(op, input, target):
    """PyTorch warns, then broadcasts (a RuntimeError when the shapes do not broadcast)."""
    if input.shape != target.shape:
        warnings.warn(f"{op}: Using a target size ({list(target.shape)}) that is different "
                      f"to the input size ({list(input.shape)}). This will likely lead to "
                      f"incorrect results due to broadcasting. Please ensure they have the "
                      f"same size.", UserWarning, stacklevel=3)


# ---- layers ------------------------------------------------------------------------------
def linear(input, weight, bias=None):
    """y = x W^T + b."""
    input, weight, bias = cast_inputs("linear", input, weight, bias)
    if input.dtype in dtypes.HALF:     # PyTorch adds the bias in float32 too: one rounding
        with suspended():
            return F.cast(linear(*_float32(input, weight, bias)), input.dtype)
    if input.shape[-1] != weight.shape[-1]:
        rows = math.prod(input.shape[:-1])
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x"
                           f"{input.shape[-1]} and {weight.shape[-1]}x{weight.shape[0]})")
    out = F.matmul(input, F.t(weight))
    return out + bias if bias is not None else out


def _float32(*tensors):
    return [t if t is None else F.cast(t, dtypes.float32) for t in tensors]


def _rounded_once(fn):
    """For a composite (or an in-place activation's ``compute``) PyTorch computes in one
    CPU kernel, which reads float16/bfloat16 operands in float32 and rounds its result
    once: graphc runs the composed ops in float32 and rounds at the end, so the result
    is PyTorch's bit for bit rather than rounded after every step."""
    def widened(v):
        return F.cast(v, dtypes.float32) if isinstance(v, Tensor) and \
            v.dtype in dtypes.HALF else v

    @functools.wraps(fn)
    def compute(input, *args, **kwargs):
        if not (isinstance(input, Tensor) and input.dtype in dtypes.HALF):
            return fn(input, *args, **kwargs)
        out = fn(widened(input), *map(widened, args),
                 **{k: widened(v) for k, v in kwargs.items()})
        return F.cast(out, input.dtype)
    return compute


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` at ``input``; lookups of ``padding_idx`` pass no gradient.
    With ``max_norm``, the looked-up rows of ``weight`` are first renormalised in place
    (PyTorch's ``embedding_renorm_``); ``scale_grad_by_freq`` divides each lookup's
    gradient by how often its index occurs in ``input``."""
    if sparse:
        raise NotImplementedError("graphc embedding: sparse=True (sparse gradients) is not "
                                  "supported; use sparse=False")
    if input.dtype.category != 1:
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {input.type()} "
                           f"instead (while checking arguments for embedding; indices "
                           f"{input.dtype.name}{list(input.shape)}, weight "
                           f"{weight.dtype.name}{list(weight.shape)})")
    rows = weight.shape[0]
    if padding_idx is not None:
        if not -rows <= padding_idx < rows:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= rows
    flat = input.reshape(-1)
    if F.is_concrete(flat) and flat.numel() and (int(flat.amin()) < 0
                                                 or int(flat.amax()) >= rows):
        bad = int(flat.amin()) if int(flat.amin()) < 0 else int(flat.amax())
        raise IndexError(f"index out of range in self (embedding: index {bad} is out of "
                         f"bounds for size {rows}; indices {flat.dtype.name}"
                         f"{list(input.shape)}, weight {weight.dtype.name}"
                         f"{list(weight.shape)})")
    if max_norm is not None:
        embedding_renorm_(weight, flat, max_norm, norm_type)
    out = F.index_select(weight, 0, flat)
    if scale_grad_by_freq:
        out = out.detach() + (out - out.detach()) / F.index_select(
            _index_counts(flat, rows), 0, flat).unsqueeze(1)
    out = out.reshape(tuple(input.shape) + (weight.shape[1],))
    if padding_idx is None:
        return out
    return F.where((input == padding_idx).unsqueeze(-1), out.detach(), out)


def _index_counts(flat_index, size):
    """How many times each of 0..size-1 occurs in ``flat_index`` (as floats)."""
    ones = creation.ones(flat_index.shape[0], dtype=dtypes.default_float)
    return F.index_add(creation.zeros(size, dtype=dtypes.default_float), 0, flat_index, ones)


def embedding_renorm_(weight, flat_index, max_norm, norm_type):
    """Scale each row of ``weight`` named in ``flat_index`` whose ``norm_type``-norm
    exceeds ``max_norm`` down to max_norm / (norm + 1e-7) of itself, in place and
    outside autograd, as PyTorch does before an embedding lookup."""
    with autograd.no_grad():
        def compute(w):
            norms = F.norm(w.detach(), norm_type, 1)
            used = _index_counts(flat_index, w.shape[0]) > 0
            scale = F.where(used.logical_and(norms > max_norm), max_norm / (norms + 1e-7), 1.0)
            return w * scale.to(w.dtype).unsqueeze(1)
        return apply_inplace(weight, "embedding_renorm_", compute)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0 or input.numel() == 0:    # PyTorch returns an empty input
        return input                                     # of any dtype as it is
    if p == 1:
        return _inplace_or(input, inplace, "dropout", lambda x: x * 0)

    def compute(x):
        noise = F.uniform_noise(x.shape, x.dtype)
        return F.where(noise >= p, x * (1.0 / (1 - p)), 0.0)
    return _inplace_or(input, inplace, "dropout", compute)


@_rounded_once
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) \
        else (normalized_shape,)
    if len(shape) > input.dim() or tuple(input.shape[input.dim() - len(shape):]) != shape:
        raise RuntimeError(f"layer_norm: Given normalized_shape={list(shape)}, expected input "
                           f"with shape "
                           f"[*, {', '.join(str(s) for s in shape)}], but got input of size"
                           f"{list(input.shape)}")
    axes = tuple(range(input.dim() - len(shape), input.dim()))
    mu = input.mean(axes, keepdim=True)
    centered = input - mu
    out = centered * F.rsqrt((centered * centered).mean(axes, keepdim=True) + eps)
    if weight is not None:
        out = out * weight
    return out + bias if bias is not None else out


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise over every dim but the channel dim (1); in training, update the
    running statistics in place with the unbiased batch variance."""
    axes = (0,) + tuple(range(2, input.dim()))
    shape = (1, -1) + (1,) * (input.dim() - 2)
    if training:
        n = math.prod(input.shape[a] for a in axes)
        if n == 1:                  # an empty batch is fine (PyTorch: nan statistics)
            raise ValueError(f"Expected more than 1 value per channel when training, got "
                             f"input size {list(input.shape)}")
        mu = input.mean(axes, keepdim=True)
        var = ((input - mu) ** 2).mean(axes, keepdim=True)
        if running_mean is not None and n:     # an empty batch leaves them as they are
            with autograd.no_grad():
                running_mean.mul_(1 - momentum).add_(mu.reshape(-1).detach() * momentum)
                running_var.mul_(1 - momentum).add_(
                    var.reshape(-1).detach() * (momentum * n / (n - 1)))
    else:
        mu, var = running_mean.reshape(shape), running_var.reshape(shape)
    out = (input - mu) * F.rsqrt(var + eps)
    if weight is not None:
        out = out * weight.reshape(shape)
    return out + bias.reshape(shape) if bias is not None else out


# ---- activations ----------------------------------------------------------------------------
def _inplace_or(input, inplace, name, compute):
    """``compute(input)``, written into ``input`` (and returning it) when ``inplace``, as
    PyTorch's ``inplace=True`` activations do."""
    return apply_inplace(input, name, compute) if inplace else compute(input)


def relu(input, inplace=False):
    return _inplace_or(input, inplace, "relu", F.relu)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _inplace_or(input, inplace, "leaky_relu",
                      lambda x: F.where(x > 0, x, x * negative_slope))


def elu(input, alpha=1.0, inplace=False):
    """The exponential sees only x <= 0: exp of a large x would be inf, and the gradient of
    the branch not taken 0 * inf = nan."""
    def compute(x):
        positive = x > 0
        return F.where(positive, x, (F.where(positive, 0.0, x).exp() - 1) * alpha)
    return _inplace_or(input, inplace, "elu", _rounded_once(compute))


@_rounded_once
def gelu(input, approximate="none"):
    """Exact erf GELU by default; ``approximate='tanh'`` for the tanh form."""
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2 / math.pi)
        return input * 0.5 * (F.tanh(inner) + 1)
    if approximate != "none":
        raise RuntimeError("approximate argument must be either none or tanh.")
    return input * 0.5 * (F.erf(input * (1 / math.sqrt(2))) + 1)


def silu(input, inplace=False):
    return _inplace_or(input, inplace, "silu", _rounded_once(lambda x: x * F.sigmoid(x)))


@_rounded_once
def softplus(input, beta=1.0, threshold=20.0):
    scaled = input * beta
    # log(1 + e^s) = m + log1p(e^(s - 2m)) with m = max(s, 0): the exponent is -|s| <= 0,
    # log1p keeps e^-22 (log(1 + e^-22) is 0 in float32), and the chain rule through m
    # gives sigmoid(s) everywhere, 1/2 at s = 0 (relu's gradient at 0 is 0).
    m = F.relu(scaled)
    soft = (m + F.log1p(F.exp(scaled - 2 * m))) / beta
    return F.where(scaled > threshold, input, soft)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6, as three pieces so that the gradient is PyTorch's at the
    kinks: 0 at x = -3, 1 at x = 3.  The low piece is x * 0, as PyTorch's: -0 for
    negative x, NaN at -inf."""
    if not input.dtype.is_floating_point:
        input = input.to(dtypes.default_float)
    def compute(x):
        middle = F.clamp(x, -3.0, 3.0)      # so that no inf reaches the middle piece's VJP
        return F.where(x <= -3, x * 0.0, F.where(x >= 3, x, middle * (middle + 3) / 6))
    return _inplace_or(input, inplace, "hardswish", _rounded_once(compute))


def logaddexp(input, other):
    """log(e^a + e^b) as max(a, b) + log1p(e^-|a - b|): no overflow, and no loss for a
    small term.  Where a == b the difference is taken as 0 (two equal infinities would
    give NaN): the result is a + log(2) (+-inf for infinities) and each side gets half
    the gradient, as in PyTorch.  Integer inputs give floats."""
    dtype = F.result_type(input, other)
    if not dtype.is_floating_point:
        dtype = dtypes.default_float
    a, b = input.to(dtype), other.to(dtype)
    diff = F.where(a == b, 0.0, a - b)
    return F.maximum(a, b) + F.log1p(F.exp(-F.abs(diff)))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clamp, except that (as PyTorch) no gradient passes at the boundaries."""
    def compute(x):
        clamped = F.clamp(x, min_val, max_val)
        inside = (x > min_val).logical_and(x < max_val)
        return F.where(inside, clamped, clamped.detach())
    return _inplace_or(input, inplace, "hardtanh", compute)


def sigmoid(input):
    return F.sigmoid(input)


def tanh(input):
    return F.tanh(input)


def softmax(input, dim=None, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype in dtypes.HALF:           # one PyTorch kernel: rounded once
        return F.cast(softmax(F.cast(input, dtypes.float32), dim), input.dtype)
    dim = _softmax_dim(input, dim)
    e = _shifted(input, dim).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax(input, dim=None, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype in dtypes.HALF:           # one PyTorch kernel: rounded once
        return F.cast(log_softmax(F.cast(input, dtypes.float32), dim), input.dtype)
    dim = _softmax_dim(input, dim)
    shifted = _shifted(input, dim)
    return shifted - shifted.exp().sum(dim, keepdim=True).log()


def _shifted(input, dim):
    """input - max along dim (so exp cannot overflow), row-major as PyTorch's softmax
    output; a dim of size 0 has no max, and nothing to shift."""
    input = F.contiguous(input)
    if input.dim() and input.shape[dim] == 0:
        return input
    return input - input.amax(dim, keepdim=True).detach()


def _softmax_dim(input, dim):
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f"softmax: not implemented for {input.dtype.name} input "
                                  f"{list(input.shape)}; pass dtype= a floating dtype")
    # PyTorch's legacy implicit dim: 0 for 0-, 1- and 3-D input, else 1.
    if dim is None:
        return 0 if input.dim() in (0, 1, 3) else 1
    return normalize_dim(dim, input.dim())


# ---- losses ---------------------------------------------------------------------------------
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    input, target = cast_inputs("mse_loss", input, target)
    _warn_if_broadcast("mse_loss", input, target)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    diff = input - target
    if weight is not None:
        return _weighted_loss(diff * diff, weight, reduction, "mse_loss")
    return _reduce_loss(diff * diff, reduction, "mse_loss")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    input, target = cast_inputs("l1_loss", input, target)
    _warn_if_broadcast("l1_loss", input, target)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if weight is not None:
        return _weighted_loss(F.abs(input - target), weight, reduction, "l1_loss")
    return _reduce_loss(F.abs(input - target), reduction, "l1_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    input, target = cast_inputs("smooth_l1_loss", input, target)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss does not support negative values for beta "
                           f"(got {beta})")
    diff = F.abs(input - target)
    if beta == 0:                                  # PyTorch: the l1 loss
        return _reduce_loss(diff, reduction, "smooth_l1_loss")
    loss = F.where(diff < beta, diff * diff * (0.5 / beta), diff - 0.5 * beta)
    return _reduce_loss(loss, reduction, "smooth_l1_loss")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log likelihood of class ``target`` under log-probabilities ``input``
    of shape (N, C) or (N, C, d1, ...)."""
    input, weight = cast_inputs("nll_loss", input, weight)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if target.dtype.category != 1:
        raise RuntimeError(f"nll_loss: expected target of an integer dtype, got "
                           f"{target.dtype.name}")
    if input.dim() == 1:
        return nll_loss(input.unsqueeze(0), target.reshape(1), weight,
                        ignore_index=ignore_index, reduction=reduction).reshape(())
    if target.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"nll_loss: expected target of shape "
                         f"{list(input.shape[:1] + input.shape[2:])}, got {list(target.shape)}")
    classes = input.shape[1]
    target = target.to(dtypes.int64)
    valid = target != ignore_index
    safe = F.where(valid, target, 0)
    if F.is_concrete(safe) and safe.numel() and (int(safe.amin()) < 0
                                                 or int(safe.amax()) >= classes):
        bad = int(safe.amax()) if int(safe.amax()) >= classes else int(safe.amin())
        raise IndexError(f"nll_loss: target {bad} is out of bounds for {classes} classes")
    picked = F.gather(input, 1, safe.unsqueeze(1)).squeeze(1)
    w = valid.to(input.dtype)
    if weight is not None:
        w = w * F.index_select(weight, 0, safe.reshape(-1)).reshape(safe.shape)
    # Ignored targets are left out (a where, not a zero weight: inf * 0 would be nan).
    loss = F.where(valid, -picked * w, 0)
    if reduction == "mean":
        return loss.sum() / w.sum()
    return _reduce_loss(loss, reduction, "nll_loss")


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """log_softmax over dim 1 then nll_loss; float targets are class probabilities."""
    input, target, weight = cast_inputs("cross_entropy", input, target, weight)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    dim = 0 if input.dim() == 1 else 1
    logp = log_softmax(input, dim)
    if target.dtype.is_floating_point:
        _check_same_shape("cross_entropy", input, target)
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / input.shape[dim]
        w = 1 if weight is None else weight.reshape((-1,) + (1,) * (input.dim() - 2))
        loss = -(logp * target * w).sum(dim)
        if reduction == "mean" and not input.shape[dim]:
            return loss.sum() * math.nan            # PyTorch: numel / classes = 0 / 0
        return _reduce_loss(loss, reduction, "cross_entropy")
    loss = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing:
        w = 1 if weight is None else weight.reshape((-1,) + (1,) * (input.dim() - 2))
        smooth = -(logp * w).sum(dim) / input.shape[dim]
        valid = (target != ignore_index).to(input.dtype)
        smooth = F.where(valid > 0, smooth, 0)
        if reduction == "mean":
            # Normalised like nll_loss: by the total weight of the valid targets.
            total = valid if weight is None else valid * F.index_select(
                weight, 0, F.where(valid > 0, target, 0).reshape(-1)).reshape(target.shape)
            smooth = smooth.sum() / total.sum()
        else:
            smooth = _reduce_loss(smooth, reduction, "cross_entropy")
        loss = loss * (1 - label_smoothing) + smooth * label_smoothing
    return loss


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-(y log p + (1-y) log(1-p)), each log clamped at -100, with PyTorch's gradients
    (the ``binary_cross_entropy`` primitive says why it is one)."""
    input, target, weight = cast_inputs("binary_cross_entropy", input, target, weight)
    _check_same_shape("binary_cross_entropy", input, target)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if F.is_concrete(input) and input.numel() and not (0 <= float(input.amin())
                                                       and float(input.amax()) <= 1):
        raise RuntimeError("all elements of input should be between 0 and 1")   # nan too
    dtype = F.result_type(input, target)
    loss = bind(P["binary_cross_entropy"], F.cast(input, dtype), F.cast(target, dtype))
    if weight is not None:
        loss = loss * weight
    return _reduce_loss(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """Numerically stable sigmoid + BCE: (1-y) x + (1+(pw-1) y) log(1+exp(-x)).
    log(1+exp(-x)) = log1p(exp(-|x|)) + max(-x, 0); at x = 0 the first term's gradient
    is 0 (abs'(0) = 0), so max's tie split (-1/2) gives sigmoid(0) = 1/2, as PyTorch."""
    input, target, weight, pos_weight = cast_inputs(
        "binary_cross_entropy_with_logits", input, target, weight, pos_weight)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    log_sig_neg = F.log1p(F.exp(-F.abs(input))) + F.maximum(-input, 0)
    scale = 1 if pos_weight is None else (pos_weight - 1) * target + 1
    loss = (1 - target) * input + scale * log_sig_neg
    if weight is not None:
        loss = loss * weight
    return _reduce_loss(loss, reduction, "binary_cross_entropy_with_logits")


def one_hot(tensor, num_classes=-1):
    return F.one_hot(tensor, num_classes)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    return input / F.clamp(F.norm(input, p, dim, keepdim=True), min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """PyTorch's formula: sum((x1 / |x1|) * (x2 / |x2|)), each norm at least eps, over
    the broadcast operands.  Dividing first keeps the product of two large norms from
    overflowing (x1 . x2 / (|x1| |x2|) is inf / inf = nan at 1e20 in float32)."""
    shape = broadcast_shapes("cosine_similarity", TensorType(x1.shape, x1.dtype),
                             TensorType(x2.shape, x2.dtype))
    x1, x2 = F.expand(x1, shape), F.expand(x2, shape)
    return ((x1 / F.clamp(F.norm(x1, 2, dim, keepdim=True), min=eps))
            * (x2 / F.clamp(F.norm(x2, 2, dim, keepdim=True), min=eps))).sum(dim)

