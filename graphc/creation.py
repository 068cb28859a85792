"""Tensor creation functions and the global random generator.

Creation functions make leaf tensors from numpy directly (they are not primitives: a
traced program sees their results as constants).  Random draws come from a
``Generator`` (numpy's PCG64 underneath), seeded by ``manual_seed``; the draws differ
from PyTorch's, which the API contract allows.
"""
from __future__ import annotations

import math

import numpy as np

from graphc import context, dlpack, dtypes, residency
from graphc.cuda import check_device
from graphc.tensor import Tensor, _size_args, _to_numpy, foreign_array, is_foreign_tensor


def _make(data: np.ndarray, dtype, requires_grad=False) -> Tensor:
    t = Tensor._wrap(data, dtype)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _dtype(dtype, default=None):
    return dtypes.to_dtype(dtype) if dtype is not None else (default or dtypes.default_float)


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new leaf tensor holding a copy of ``data``."""
    _check_device(device)
    dtype = dtypes.to_dtype(dtype) if dtype is not None else None
    arr = _to_numpy(data, dtype)
    return _make(arr, dtype or dtypes.from_numpy(arr.dtype), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with a tensor or numpy array when it can."""
    _check_device(device)
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or
                                         dtypes.to_dtype(dtype).np == data.dtype):
        return from_numpy(data)
    if is_foreign_tensor(data):
        t = _from_array(foreign_array(data, "graphc.as_tensor"))
        return t if dtype is None else t.to(dtypes.to_dtype(dtype))
    return tensor(data, dtype)


def from_dlpack(ext) -> Tensor:
    """A tensor sharing memory with ``ext``: any object with ``__dlpack__`` (a PyTorch,
    numpy, JAX or graphc tensor) or a DLPack capsule (``torch.utils.dlpack.to_dlpack``).
    A numpy array is taken as it is (numpy's own export refuses bfloat16)."""
    if isinstance(ext, np.ndarray):
        return from_numpy(ext)
    return _from_array(dlpack.array_from(ext, "graphc.from_dlpack"))


def to_dlpack(tensor: Tensor):
    """``torch.to_dlpack``: a legacy ``"dltensor"`` capsule of ``tensor``'s memory (the
    kind older consumers take; new code passes the tensor to ``from_dlpack``)."""
    return tensor.__dlpack__()


def _from_array(array: np.ndarray, dtype=None) -> Tensor:
    """A tensor over ``array`` (of a dtype graphc has), which its producer may still
    write to."""
    residency.escape(array)
    return Tensor._wrap(array, dtype or dtypes.from_numpy(array.dtype))


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (writes are seen by both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dtype = dtypes.from_numpy(array.dtype)
    if array.dtype != dtype.np:
        raise TypeError(f"can't convert np.ndarray of type {array.dtype}; graphc supports "
                        f"{', '.join(d.name for d in dtypes.ALL)}")
    return _from_array(array, dtype)


def _check_device(device):
    if device is not None:
        check_device(device)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    _check_device(device)
    d = _dtype(dtype)
    return _make(np.zeros(_size_args(size), d.np), d, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    _check_device(device)
    d = _dtype(dtype)
    return _make(np.ones(_size_args(size), d.np), d, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    _check_device(device)
    d = _dtype(dtype, dtypes.scalar_dtype(fill_value))
    return _make(np.full(_size_args((size,)), fill_value, d.np), d, requires_grad)


def _like(fn, x, dtype, requires_grad, *args):
    return fn(x.shape, *args, dtype=dtype or x.dtype, requires_grad=requires_grad)


def zeros_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(zeros, x, dtype, requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(ones, x, dtype, requires_grad)


def empty_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(zeros, x, dtype, requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(full, x, dtype, requires_grad, fill_value)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    start, end, step = (v.item() if isinstance(v, Tensor) else v for v in (start, end, step))
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound and lower bound inconsistent with step sign "
                           f"(start={start}, end={end}, step={step})")
    is_float = any(isinstance(v, float) for v in (start, end, step))
    d = _dtype(dtype, dtypes.default_float if is_float else dtypes.int64)
    n = max(math.ceil((end - start) / step), 0)
    data = (start + np.arange(n, dtype=np.float64) * step) if is_float else \
        np.arange(start, end, step)
    return _make(data.astype(d.np), d, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    d = _dtype(dtype)
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    return _make(np.linspace(start, end, int(steps)).astype(d.np), d, requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None,
             requires_grad=False) -> Tensor:
    """``base ** linspace(start, end, steps)``."""
    d = _dtype(dtype)
    if steps < 0:
        raise RuntimeError(f"logspace: number of steps must be non-negative, got {steps}")
    return _make(np.logspace(start, end, int(steps), base=base).astype(d.np), d,
                 requires_grad)


def scalar_tensor(s, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A 0-d tensor of the number ``s`` (the default float dtype unless ``dtype``)."""
    d = _dtype(dtype)
    return _make(np.asarray(s, dtype=d.np), d, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    d = _dtype(dtype)
    for name, size in (("n", n), ("m", m)):
        if size is not None and size < 0:
            raise RuntimeError(f"eye: {name} must be greater or equal to 0, got {size}")
    return _make(np.eye(n, m, dtype=d.np), d, requires_grad)


# ---- random -----------------------------------------------------------------------------
class Generator:
    """A random number generator: ``graphc.Generator().manual_seed(0)``."""

    def __init__(self, device="cpu"):
        self._seed = 67280421310721
        self._rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        return self.manual_seed(int(np.random.SeedSequence().entropy % 2 ** 63))._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        return self._rng.bit_generator.state

    def set_state(self, state):
        self._rng.bit_generator.state = state


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def _rng(generator):
    """The generator's numpy RNG.  A draw made while tracing would be baked into the
    graph as a constant (the same numbers every call): that is a graph break."""
    if context.active_trace() is not None:
        raise context.GraphBreak(
            f"graphc cannot trace a random draw (rand, randn, randint, randperm, normal) "
            f"(at {context.user_source_line()}): it would be "
                         f"frozen into the graph, the same on every call")
    return (generator or default_generator)._rng


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    d = _dtype(dtype)
    return _make(_rng(generator).random(_size_args(size), dtype=np.float64).astype(d.np),
                 d, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    d = _dtype(dtype)
    return _make(_rng(generator).standard_normal(_size_args(size)).astype(d.np), d,
                 requires_grad)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None,
            requires_grad=False) -> Tensor:
    if size is None and isinstance(high, (tuple, list)):    # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    d = _dtype(dtype, dtypes.int64)
    return _make(_rng(generator).integers(low, high, _size_args((size,))).astype(d.np), d)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    d = _dtype(dtype, dtypes.int64)
    return _make(_rng(generator).permutation(n).astype(d.np), d)


def rand_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    return rand(x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad=False) -> Tensor:
    return randn(x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad)


def randint_like(x, low, high=None, dtype=None, device=None) -> Tensor:
    return randint(low, high, x.shape, dtype=dtype or x.dtype)


def normal(mean=0.0, std=1.0, size=None, generator=None) -> Tensor:
    if size is None:
        raise TypeError("graphc.normal needs a size when mean and std are numbers")
    return randn(size, generator=generator) * std + mean


def next_seed(generator=None) -> Tensor:
    """A fresh 0-dim int64 seed for the counter-based ``uniform`` primitive.  While
    tracing it is a graph input, so a compiled program draws new numbers each call."""
    tr = context.active_trace()
    if tr is not None:
        return tr.seed_input()
    return Tensor._wrap(np.array(_rng(generator).integers(0, 2 ** 62), np.int64),
                        dtypes.int64)
