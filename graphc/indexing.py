"""Indexing and in-place writes: ``x[key]`` reads, ``x[key] = v`` and ``x.add_(y)``.

Reads are built from primitives (a strided ``slice`` plus a ``reshape`` for basic keys,
``take`` on flattened dims for integer tensors and boolean masks), so they record
autograd and trace.  Writes go into the tensor's numpy storage with PyTorch's checks and
version counter; ``apply_inplace`` also rebases autograd history, and under tracing turns
a write to a lifted tensor into a new SSA value and a write-back.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from graphc import context, creation, dtypes
from graphc.autograd.hooks import check_inplace_on_inference
from graphc.context import GraphBreak, active_trace
from graphc.dispatch import bind
from graphc.functional import (_index_tensor, _operand, _slice, _zero_gradient, cast, expand,
                               is_concrete, permute, reshape, where)
from graphc.ops import REGISTRY as P
from graphc.tensor import Tensor


# ---- indexing --------------------------------------------------------------------------------
def _is_advanced(k) -> bool:
    return isinstance(k, (Tensor, list, np.ndarray)) and not isinstance(k, bool)


def _expand_key(x, key) -> list:
    """Normalise an index into a list with exactly one entry per input dimension (plus
    None entries), Ellipsis expanded and bool masks turned into integer tensors."""
    key = list(key) if isinstance(key, tuple) else [key]
    expanded = []
    pos = 0              # the input dim the next entry indexes; None once past an Ellipsis
    for k in key:
        if isinstance(k, Tensor) and k.dtype == dtypes.bool_ or \
                isinstance(k, np.ndarray) and k.dtype == bool or \
                isinstance(k, list) and len(k) and builtins.all(isinstance(v, bool) for v in k):
            mask = k._concrete("indexing with a boolean mask") if isinstance(k, Tensor) \
                else np.asarray(k, bool)
            if pos is not None:
                _check_mask(x, mask, pos)
                pos += mask.ndim
            # A boolean mask over m dims becomes m integer index tensors (data-dependent).
            expanded.extend(Tensor._wrap(ix.astype(np.int64), dtypes.int64)
                            for ix in np.nonzero(mask))
            if mask.ndim == 0:
                raise IndexError("indexing with a 0-dim boolean mask is not supported")
        elif k is True or k is False:
            raise IndexError("indexing with a Python bool is not supported")
        else:
            expanded.append(k)
            if k is Ellipsis:
                pos = None
            elif k is not None and pos is not None:
                pos += 1
    used = builtins.sum(1 for k in expanded if k is not None and k is not Ellipsis)
    if used > x.dim():
        raise IndexError(f"too many indices for tensor of dimension {x.dim()}")
    at = next((i for i, k in enumerate(expanded) if k is Ellipsis), None)
    if at is not None:
        expanded[at:at + 1] = [slice(None)] * (x.dim() - used)
    else:
        expanded += [slice(None)] * (x.dim() - used)
    return expanded


def _check_mask(x, mask, pos):
    """A mask must have the shape of the dims it indexes (PyTorch's error text)."""
    for j, n in enumerate(mask.shape):
        if pos + j < x.dim() and x.shape[pos + j] != n:
            raise IndexError(f"The shape of the mask {list(mask.shape)} at index {j} does not "
                             f"match the shape of the indexed tensor {list(x.shape)} at index "
                             f"{pos + j}")


def getitem(x, key):
    """x[key]: basic indexing is one strided slice plus a reshape (a view); integer
    tensors and bool masks use ``take`` on the flattened indexed dims, with numpy's
    placement rule for the result dims."""
    key = _expand_key(x, key)
    has_advanced = builtins.any(_is_advanced(k) for k in key)
    if has_advanced and builtins.any(k is None for k in key):
        # None inserts a size-1 dim: insert them all first, then index with full slices.
        sizes = iter(x.shape)
        x = reshape(x, tuple(1 if k is None else next(sizes) for k in key))
        key = [slice(None) if k is None else k for k in key]
    starts, stops, steps, out_shape, advanced = [], [], [], [], []
    dim = 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        size = x.shape[dim]
        if isinstance(k, slice):
            if k.step is not None and k.step <= 0:
                raise ValueError("step must be greater than zero")
            a, b, s = k.indices(size)
            b = builtins.max(a, b)
            starts.append(a), stops.append(b), steps.append(s)
            out_shape.append(len(range(a, b, s)))
        elif has_advanced:       # ints count as 0-dim index tensors here, as in numpy
            starts.append(0), stops.append(size), steps.append(1)
            if isinstance(k, Tensor) and k.dtype.is_floating_point:
                raise IndexError(f"index: tensors used as indices must be long, int, byte or "
                                 f"bool tensors (got {k.dtype.name}{list(k.shape)} indexing "
                                 f"{x.dtype.name}{list(x.shape)})")
            advanced.append((dim, _index_tensor(k, "index")))
        else:
            if not isinstance(k, (int, np.integer)):
                raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), None and "
                                 f"long or byte Variables are valid indices (got "
                                 f"{type(k).__name__})")
            i = int(k)
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for dimension {dim} with size "
                                 f"{size}")
            i %= size
            starts.append(i), stops.append(i + 1), steps.append(1)
        dim += 1
    out = x
    if (starts, stops, steps) != ([0] * x.dim(), list(x.shape), [1] * x.dim()):
        out = _slice(x, starts, stops, steps)
    if not has_advanced:
        return reshape(out, tuple(out_shape))
    return _advanced_index(out, advanced)


def _advanced_index(x, advanced):
    """Index dims ``advanced`` (pairs of dim and index tensor) of x: bring them together,
    flatten them into one dim, and take one broadcast flat index."""
    positions = [d for d, _ in advanced]
    shape = np.broadcast_shapes(*[tuple(ix.shape) for _, ix in advanced])
    # numpy's rule: adjacent advanced indices stay in place; separated ones go first.
    adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
    first = positions[0] if adjacent else 0
    order = [d for d in range(x.dim()) if d not in positions]
    order[first:first] = positions
    x = permute(x, order)
    flat = None
    for d, ix in advanced:
        size = x.shape[order.index(d)]
        bad = ix._data[(ix._data < -size) | (ix._data >= size)] if is_concrete(ix) else ()
        if len(bad):
            raise IndexError(f"index {bad.flat[0]} is out of bounds for dimension {d} with "
                             f"size {size}")
        ix = where(ix < 0, ix + size, ix)
        flat = ix if flat is None else flat * size + ix
    merged = math.prod(x.shape[first:first + len(positions)])    # not -1: sizes may be 0
    x = reshape(x, x.shape[:first] + (merged,) + x.shape[first + len(positions):])
    return bind(P["take"], x, expand(flat, shape), axis=first)


def _numpy_key(key):
    if isinstance(key, tuple):
        return tuple(_numpy_key(k) for k in key)
    if isinstance(key, Tensor):
        return key._data
    return key


def setitem(x, key, value):
    """x[key] = value, written into x's storage (and so into every view of it)."""
    x._concrete("index assignment (x[i] = v)")
    check_inplace_on_inference(x)
    value_t = value if isinstance(value, Tensor) else None
    if context.grad_enabled and (x._requires_grad or (value_t is not None
                                                           and value_t._requires_grad)):
        if x._requires_grad and x.grad_fn is None:
            raise RuntimeError("a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
        raise RuntimeError(f"index assignment into a tensor that takes part in autograd "
                           f"({x.dtype.name}{list(x.shape)}) is not supported by graphc; "
                           f"build the result out of place (where, masked_fill, cat)")
    src = value
    if value_t is not None:
        # PyTorch drops the value's leading size-1 dims, so a [1] value fills one element.
        lead = next((i for i, d in enumerate(value_t.shape) if d != 1), value_t.dim())
        src = value_t._data.reshape(value_t.shape[lead:])
    if value_t is not None and value_t.dtype != x.dtype and _is_index_put(key, value_t):
        raise RuntimeError(f"Index put requires the source and destination dtypes match, "
                           f"got {x.dtype.name} for the destination and "
                           f"{value_t.dtype.name} for the source.")
    try:
        x._data[_numpy_key(key)] = src
    except ValueError as e:
        if not x._data.flags.writeable:
            raise RuntimeError("unsupported operation: more than one element of the "
                               "written-to tensor refers to a single memory location. "
                               "Please clone() the tensor before performing the "
                               "operation.") from None
        raise RuntimeError(f"index assignment: {e}") from None
    except IndexError as e:
        raise IndexError(f"index assignment into {x.dtype.name}{list(x.shape)}: {e}") from None
    x._version[0] += 1


def _is_index_put(key, value) -> bool:
    """Whether PyTorch runs ``x[key] = value`` as index_put, which needs matching dtypes:
    any tensor or list index does, except a lone bool mask with a 0-dim value (a masked
    fill); basic indices copy the value with a cast."""
    keys = key if isinstance(key, tuple) else (key,)
    if not builtins.any(_is_advanced(k) for k in keys):
        return False
    lone_mask = len(keys) == 1 and isinstance(keys[0], Tensor) and \
        keys[0].dtype == dtypes.bool_
    return not (lone_mask and value.dim() == 0)


def can_cast(from_: dtypes.DType, to: dtypes.DType) -> bool:
    """PyTorch's casting rule for in-place results (``torch.can_cast``): never to a lower
    category (float to int, int to bool)."""
    return from_.category <= to.category


# ---- in-place ---------------------------------------------------------------------------------
def apply_inplace(x, name, compute):
    """Write ``compute(x)`` into x's storage, with PyTorch's checks and autograd rebase.

    Without autograd this writes into numpy storage directly.  With autograd the op is
    recorded on a snapshot of x (so the recorded node keeps the old value) and x takes
    over the new node as its history.
    """
    check_inplace_on_inference(x)
    recording = context.grad_enabled
    if recording and x._requires_grad and x.grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an "
                           "in-place operation.")
    concrete = is_concrete(x)
    tr = active_trace()
    if tr is not None and concrete and x._serial < tr.start_serial:
        # A pre-existing x (a buffer, optimizer state): lift it before anything reads it,
        # so the op reads x's value at run time (not a snapshot taken now) and the trace
        # records the write-back.
        tr.lift(x)
        concrete = False
    source = x
    if recording:
        # The recorded op must keep x's old value: snapshot it (same birth serial, so a
        # trace still sees a pre-existing tensor).
        source = Tensor._wrap(x._data.copy() if concrete else x._data, x.dtype)
        source._requires_grad, source.grad_fn = x._requires_grad, x.grad_fn
        source._serial = x._serial
    result = compute(source)
    if result.dtype != x.dtype:
        if not can_cast(result.dtype, x.dtype):
            raise RuntimeError(f"result type {result.dtype.name} can't be cast to the "
                               f"desired output type {x.dtype.name} (in {name})")
        result = cast(result, x.dtype)
    if recording and source._requires_grad and not result._requires_grad:
        # A result that does not depend differentiably on x (x.eq_(0), x.fill_(1)): x
        # keeps requiring grad, with PyTorch's zero gradient to its old history.
        result = _zero_gradient(result, source)
    if result.shape != x.shape:
        raise RuntimeError(f"{name}: output with shape {list(x.shape)} doesn't match the "
                           f"broadcast shape {list(result.shape)}")
    if recording and result._requires_grad and x._base is not None:
        raise RuntimeError(f"{name}: in-place operation on a view of a tensor that takes "
                           f"part in autograd is not supported by graphc "
                           f"({x.dtype.name}{list(x.shape)}); use the out-of-place form")
    if tr is not None and (not is_concrete(result) or not concrete):
        # Traced: x now names a new SSA value.
        if x._base is not None:
            raise GraphBreak(f"graphc cannot trace {name} on a view (the write would not "
                             f"reach the viewed tensor); use the out-of-place form")
        x._data = tr.value_of(result)
        owner = x.__dict__.get("_alias_of")
        while owner is not None:        # a write through .data / detach() reaches the owner
            owner._data = x._data
            owner = owner.__dict__.get("_alias_of")
    else:
        if not x._data.flags.writeable:
            raise RuntimeError("unsupported operation: more than one element of the "
                               "written-to tensor refers to a single memory location. "
                               "Please clone() the tensor before performing the operation.")
        np.copyto(x._data, result._data)
    x._version[0] += 1
    if result._requires_grad:
        x._requires_grad, x.grad_fn = True, result.grad_fn
    return x




def zero_(x):
    return fill_(x, 0)


def fill_(x, value):
    value = value.item() if isinstance(value, Tensor) else value
    return apply_inplace(x, "fill_", lambda s: expand(_operand(value, s.dtype), s.shape))


def copy_(x, src):
    return apply_inplace(x, "copy_", lambda s: expand(cast(src, s.dtype), s.shape)
                         if src.shape != s.shape else cast(src, s.dtype))


# ---- in-place random fills ------------------------------------------------------------------
def _fill_random_(x: Tensor, name: str, sample) -> Tensor:
    """In-place random fill (``uniform_``, ``normal_``) through the in-place machinery."""
    drawn = Tensor._wrap(np.asarray(sample(tuple(x.shape))), dtypes.float64)
    return apply_inplace(x, name, lambda s: cast(drawn, s.dtype))


def uniform_(x: Tensor, a=0.0, b=1.0, generator=None) -> Tensor:
    return _fill_random_(x, "uniform_", lambda shape: creation._rng(generator).uniform(a, b, shape))


def normal_(x: Tensor, mean=0.0, std=1.0, generator=None) -> Tensor:
    return _fill_random_(x, "normal_", lambda shape: creation._rng(generator).normal(mean, std, shape))


