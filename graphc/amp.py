"""Automatic mixed precision: ``autocast`` regions and ``GradScaler``, with PyTorch's CPU
semantics.

Inside ``autocast(device_type, dtype)`` the front end asks ``cast_inputs(op, ...)`` before
the ops PyTorch lists: the lower-precision ops (``matmul``, ``linear``, ``conv2d``...) run
in the region's dtype (bfloat16 by default on 'cpu', float16 on 'cuda'), the float32 ops
(the losses, ``prod``...) in float32; every other op promotes to its widest input, as it
does anyway.  float64 tensors are never cast (PyTorch's eligibility rule).  The casts are
ordinary ``cast`` primitives, so autograd and tracing see them; a compiled program is
keyed on ``state()``, so entering a region compiles anew.  ``cache_enabled`` is accepted
and changes nothing: graphc does not cache the casts of weights, which only saves time.

graphc tensors live in host memory whatever their device, so a 'cuda' region applies
where CUDA is available; elsewhere it warns and is disabled, as PyTorch's.

This module sits just above ``dispatch`` (the front-end functions call ``cast_inputs``);
``GradScaler`` computes through tensor methods only, so it needs nothing higher.
"""
from __future__ import annotations

import contextlib
import functools
import math
import types
import warnings

import numpy as np

from graphc import cuda, dtypes
from graphc.autograd import no_grad
from graphc.dispatch import bind
from graphc.ops import REGISTRY
from graphc.tensor import Tensor

# PyTorch's CPU autocast lists (aten/src/ATen/autocast_mode.cpp), by graphc's names.
LOWER_PRECISION_OPS = frozenset({
    "conv1d", "conv2d", "conv3d", "bmm", "mm", "linalg_vecdot", "baddbmm", "addmm",
    "addbmm", "linear", "matmul", "conv_tbc", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "prelu", "scaled_dot_product_attention"})
FP32_OPS = frozenset({
    "avg_pool3d", "binary_cross_entropy", "grid_sampler", "polar", "prod", "quantile",
    "nanquantile", "stft", "cdist", "trace", "view_as_complex", "cholesky", "inverse",
    "pinverse", "max_pool3d", "max_unpool2d", "max_unpool3d", "adaptive_avg_pool3d",
    "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "mse_loss", "cosine_embedding_loss", "nll_loss", "nll_loss2d",
    "hinge_embedding_loss", "poisson_nll_loss", "smooth_l1_loss", "cross_entropy",
    "l1_loss", "huber_loss", "margin_ranking_loss", "soft_margin_loss",
    "triplet_margin_loss", "multi_margin_loss", "ctc_loss", "kl_div",
    "multilabel_margin_loss", "binary_cross_entropy_with_logits"})

_DEFAULT_DTYPE = {"cpu": dtypes.bfloat16, "cuda": dtypes.float16}
# device type -> [enabled, dtype, cache_enabled]
_state = {device: [False, dtype, True] for device, dtype in _DEFAULT_DTYPE.items()}


def is_autocast_available(device_type: str) -> bool:
    return device_type in _state


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    return _state[device_type][0]


def get_autocast_dtype(device_type: str):
    return _state[device_type][1]


def state() -> tuple:
    """Everything autocast changes about a traced program (a compiled-program key)."""
    return tuple((device, s[1]) for device, s in _state.items() if s[0])


def _active_dtype():
    """The dtype of the innermost enabled region: 'cpu' first, as tensors are on the cpu."""
    for device in ("cpu", "cuda"):
        if _state[device][0]:
            return _state[device][1]
    return None


def cast_inputs(op: str, *tensors):
    """``tensors`` (None passes) as autocast runs ``op``: eligible floating tensors
    (float64 never is) in the region's dtype for a lower-precision op, in float32 for a
    float32 op; unchanged outside a region and for every other op."""
    low = _active_dtype()
    if low is None or (op not in LOWER_PRECISION_OPS and op not in FP32_OPS):
        return tensors
    target = low if op in LOWER_PRECISION_OPS else dtypes.float32
    return tuple(
        bind(REGISTRY["cast"], t, dtype=target)
        if isinstance(t, Tensor) and t.dtype.is_floating_point
        and t.dtype is not dtypes.float64 and t.dtype is not target else t
        for t in tensors)


@contextlib.contextmanager
def suspended():
    """No region applies inside: an autocast op's own computation is not cast again (as
    PyTorch's autocast dispatch key excludes itself)."""
    saved = {device: list(s) for device, s in _state.items()}
    for s in _state.values():
        s[0] = False
    try:
        yield
    finally:
        for device, s in saved.items():
            _state[device][:] = s


class autocast:
    """``graphc.autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``: a
    context manager and decorator; regions nest, each restoring the state it found."""

    def __init__(self, device_type: str, dtype=None, enabled: bool = True,
                 cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: "
                             f"`{type(device_type)}`")
        if device_type not in _state:
            raise RuntimeError(f"User specified an unsupported autocast device_type "
                               f"'{device_type}'")
        self.device = device_type
        self.fast_dtype = dtypes.to_dtype(dtype) if dtype is not None else \
            _state[device_type][1]
        self._enabled = bool(enabled)
        self._cache_enabled = True if cache_enabled is None else bool(cache_enabled)
        if self._enabled and device_type == "cuda" and not cuda.is_available():
            warnings.warn("CUDA is not available or torch_xla is imported. Disabling "
                          "autocast.", UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled and device_type == "cpu" and self.fast_dtype not in dtypes.HALF:
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling "
                          "autocast.\nCPU Autocast only supports dtypes of graphc.bfloat16, "
                          "graphc.float16 currently.", UserWarning, stacklevel=2)
            self._enabled = False
        self._saved = []

    def __enter__(self):
        s = _state[self.device]
        self._saved.append(list(s))
        s[:] = [self._enabled, self.fast_dtype, self._cache_enabled]
        return self

    def __exit__(self, *exc):
        _state[self.device][:] = self._saved.pop()
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def in_region(*args, **kwargs):
            with self:
                return func(*args, **kwargs)
        return in_region


# ---- GradScaler -------------------------------------------------------------------------
_READY, _UNSCALED, _STEPPED = range(3)


def _float32(value) -> Tensor:
    return Tensor._wrap(np.array(value, np.float32), dtypes.float32)


class GradScaler:
    """``graphc.amp.GradScaler``: scales the loss so low-precision gradients do not
    underflow, unscales the gradients before the step, skips a step whose gradients hold
    inf or NaN, and grows or backs off the scale."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        self._device = device
        self._enabled = enabled
        if enabled and device == "cuda" and not cuda.is_available():
            warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not available. "
                          " Disabling.", UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
        self._init_scale = init_scale
        self._scale = None                 # a float32 0-dim tensor, made on first scale()
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._init_growth_tracker = 0
        self._growth_tracker = None
        self._per_optimizer = {}           # id(optimizer) -> {"stage", "found_inf"}

    def is_enabled(self) -> bool:
        return self._enabled

    def _lazy_init(self):
        self._scale = _float32(self._init_scale)
        self._growth_tracker = self._init_growth_tracker

    def _optimizer_state(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer),
                                              {"stage": _READY, "found_inf": None})

    def scale(self, outputs):
        """``outputs`` (a tensor, or nested lists and tuples of them) times the scale."""
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._lazy_init()
        if isinstance(outputs, Tensor):
            return outputs * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def unscale_(self, optimizer):
        """Divide the optimizer's gradients by the scale, in place, and record whether any
        is inf or NaN."""
        if not self._enabled:
            return
        if self._scale is None:
            raise AssertionError("Attempted unscale_ but _scale is None.  This may indicate "
                                 "your script did not use scaler.scale(loss or outputs) "
                                 "earlier in the iteration.")
        st = self._optimizer_state(optimizer)
        if st["stage"] is _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since "
                               "the last update().")
        if st["stage"] is _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = _float32(np.float32(1.0 / float(self._scale.item())))
        found_inf = False
        with no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.dtype is dtypes.float16:
                        raise ValueError("Attempting to unscale FP16 gradients.")
                    found_inf |= not bool(p.grad.isfinite().all())
                    p.grad.mul_(inv_scale)
        st["found_inf"] = found_inf
        st["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step()`` unless the unscaled gradients hold inf or NaN; returns
        what the step returned (None when skipped)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is "
                               "enabled.")
        st = self._optimizer_state(optimizer)
        if st["stage"] is _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if st["stage"] is _READY:
            self.unscale_(optimizer)
        result = None if st["found_inf"] else optimizer.step(*args, **kwargs)
        st["stage"] = _STEPPED
        return result

    def update(self, new_scale=None):
        """Back off the scale after a step that met inf/NaN, grow it after
        ``growth_interval`` clean steps in a row; or set it to ``new_scale``."""
        if not self._enabled:
            return
        if self._scale is None:
            raise AssertionError("Attempted update but _scale is None.  This may indicate "
                                 "your script did not use scaler.scale(loss or outputs) "
                                 "earlier in the iteration.")
        if new_scale is not None:
            self._scale = _float32(float(new_scale))
        else:
            found = [st["found_inf"] for st in self._per_optimizer.values()
                     if st["found_inf"] is not None]
            if not found:
                raise AssertionError("No inf checks were recorded prior to update.")
            scale = np.float32(self._scale.item())
            if any(found):
                scale = scale * np.float32(self._backoff_factor)
                self._growth_tracker = 0
            elif self._growth_tracker + 1 == self._growth_interval:
                grown = scale * np.float32(self._growth_factor)
                scale = grown if math.isfinite(grown) else scale
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
            self._scale = _float32(scale)
        self._per_optimizer = {}

    def get_scale(self) -> float:
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float):
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float):
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int):
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        return self._init_growth_tracker if self._growth_tracker is None \
            else self._growth_tracker

    def state_dict(self) -> dict:
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was "
                               "saved from a disabled instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale = _float32(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker = state_dict["_growth_tracker"]


# ---- the device-specific spellings: graphc.cpu.amp and graphc.cuda.amp ---------------------
def _deprecated(old: str, new: str):
    warnings.warn(f"`{old}(args...)` is deprecated. Please use `{new}` instead.",
                  FutureWarning, stacklevel=3)


class _CpuAutocast(autocast):
    def __init__(self, enabled=True, dtype=dtypes.bfloat16, cache_enabled=True):
        _deprecated("torch.cpu.amp.autocast", "torch.amp.autocast('cpu', args...)")
        super().__init__("cpu", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class _CudaAutocast(autocast):
    def __init__(self, enabled=True, dtype=dtypes.float16, cache_enabled=True):
        _deprecated("torch.cuda.amp.autocast", "torch.amp.autocast('cuda', args...)")
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class _CpuGradScaler(GradScaler):
    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        _deprecated("torch.cpu.amp.GradScaler", "torch.amp.GradScaler('cpu', args...)")
        super().__init__("cpu", init_scale, growth_factor, backoff_factor, growth_interval,
                         enabled)


class _CudaGradScaler(GradScaler):
    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        _deprecated("torch.cuda.amp.GradScaler", "torch.amp.GradScaler('cuda', args...)")
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval,
                         enabled)


def _namespace(name, autocast_class, scaler_class) -> types.ModuleType:
    module = types.ModuleType(name, f"``{name}``: PyTorch's deprecated device spellings.")
    module.autocast, module.GradScaler = autocast_class, scaler_class
    return module


cpu_amp = _namespace("graphc.cpu.amp", _CpuAutocast, _CpuGradScaler)
cuda_amp = _namespace("graphc.cuda.amp", _CudaAutocast, _CudaGradScaler)
