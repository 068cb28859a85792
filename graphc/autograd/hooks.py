"""Gradient hooks, their handles, and inference mode: the small state the backward engine
consults besides the graph.

Tensor hooks live where the engine meets the gradient: a non-leaf's on its ``grad_fn``
(keyed by the output number), a leaf's on the tensor itself, so a hook sees the total
gradient of that tensor, as in PyTorch.  Inference tensors are recognised by their birth
serial: every tensor born while inference mode was on is one, with no per-tensor flag.
"""
from __future__ import annotations

import bisect
import functools
import contextlib
import itertools
import warnings
from collections import OrderedDict

from graphc import context
from graphc.tensor import Tensor

_handle_ids = itertools.count()


class RemovableHandle:
    """What ``register_*_hook`` returns (PyTorch's ``torch.utils.hooks.RemovableHandle``):
    ``remove()`` takes the hook out of every table it was put in; also a context
    manager that removes it on exit."""

    def __init__(self, *tables):
        self.id = next(_handle_ids)
        self.tables = tables

    def remove(self) -> None:
        for table in self.tables:
            table.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def add_hook(table: OrderedDict, hook, prepend: bool = False, *extra_tables) -> RemovableHandle:
    """Put ``hook`` in ``table`` (first when ``prepend``) and return its handle."""
    handle = RemovableHandle(table, *extra_tables)
    table[handle.id] = hook
    if prepend:
        table.move_to_end(handle.id, last=False)
    return handle


def apply_hooks(hooks, grad):
    """Run tensor hooks in order; one that returns a tensor replaces the gradient."""
    if not hooks or grad is None:
        return grad
    for hook in list(hooks.values()):
        result = hook(grad)
        if result is not None:
            grad = result
    return grad


def _check_requires_grad(tensor: Tensor) -> None:
    if not tensor._requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")


def register_hook(tensor: Tensor, hook) -> RemovableHandle:
    """``Tensor.register_hook``: ``hook(grad)`` runs when the gradient of ``tensor`` is
    computed and may return a replacement.  While tracing, the hooks of the tensor's
    value also go to the trace: the autodiff pass applies them when it traces the
    backward (so a hook's Python side effects happen once per trace)."""
    _check_requires_grad(tensor)
    node = tensor.grad_fn
    if node is None:
        table = tensor.__dict__.setdefault("_grad_hooks", OrderedDict())
    else:
        if getattr(node, "hooks", None) is None:
            node.hooks = {}
        table = node.hooks.setdefault(tensor._output_nr, OrderedDict())
    tr = context.active_trace()
    if tr is not None:
        tr.grad_hooks[tr.value_of(tensor)] = functools.partial(apply_hooks, table)
    return add_hook(table, hook)


def register_post_accumulate_grad_hook(tensor: Tensor, hook) -> RemovableHandle:
    """``hook(tensor)`` runs after backward has accumulated into ``tensor.grad``."""
    if tensor.grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                           "tensors")
    _check_requires_grad(tensor)
    return add_hook(tensor.__dict__.setdefault("_post_accumulate_hooks", OrderedDict()), hook)


def post_accumulate_hooks(tensor: Tensor) -> list:
    return list(tensor.__dict__.get("_post_accumulate_hooks", {}).values())


def leaf_hook_ids(tensor: Tensor) -> tuple:
    """Which hooks a leaf has (a compiled training step ran them while tracing, so it
    guards on them)."""
    return (tuple(tensor.__dict__.get("_grad_hooks", ())),
            tuple(tensor.__dict__.get("_post_accumulate_hooks", ())))


# ---- inference mode ------------------------------------------------------------------------
# Serial intervals [start, end) of tensors born in inference mode; the last may be open.
_inference_starts: list = []
_inference_ends: list = []
_inference_depth = 0

INFERENCE_SAVED = (
    "Inference tensors cannot be saved for backward. Please do not use Tensors created in "
    "inference mode in computation tracked by autograd. To work around this, you can make a "
    "clone to get a normal tensor and use it in autograd, or use `torch.no_grad()` instead "
    "of `torch.inference_mode()`.")


def is_inference_mode_enabled() -> bool:
    return _inference_depth > 0


def is_inference(tensor: Tensor) -> bool:
    """``Tensor.is_inference()``: the tensor, or the base it is a view of, was born inside
    ``inference_mode``."""
    if not _inference_starts:
        return False
    owner = tensor._base if tensor._base is not None else tensor
    i = bisect.bisect_right(_inference_starts, owner._serial) - 1
    return i >= 0 and (i >= len(_inference_ends) or owner._serial < _inference_ends[i])


def check_inplace_on_inference(tensor: Tensor) -> None:
    if _inference_starts and not _inference_depth and is_inference(tensor):
        raise RuntimeError("Inplace update to inference tensor outside InferenceMode is not "
                           "allowed.You can make a clone to get a normal tensor before doing "
                           "inplace update.See https://github.com/pytorch/rfcs/pull/17 for "
                           "more details.")


class inference_mode(contextlib.ContextDecorator):
    """``graphc.inference_mode(mode=True)``: no_grad, and tensors made inside are
    inference tensors, which autograd refuses to save later.  A context manager and a
    decorator (with or without parentheses)."""

    def __new__(cls, mode=True):
        if callable(mode):                       # @inference_mode without parentheses
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = bool(mode)

    def __enter__(self):
        global _inference_depth
        self.grad = context.grad_mode(not self.mode and context.grad_enabled)
        self.grad.__enter__()
        self.outer = _inference_depth
        if self.mode:
            if _inference_depth == 0:
                _inference_starts.append(Tensor._next_serial())
            _inference_depth += 1
        elif _inference_depth > 0:
            _inference_ends.append(Tensor._next_serial())
            _inference_depth = 0

    def __exit__(self, *exc):
        global _inference_depth
        if self.mode:
            _inference_depth -= 1
            if _inference_depth == 0:
                _inference_ends.append(Tensor._next_serial())
        elif self.outer > 0:
            _inference_starts.append(Tensor._next_serial())
            _inference_depth = self.outer
        self.grad.__exit__(*exc)
        return False

    def _recreate_cm(self):
        return type(self)(self.mode)


# ---- anomaly detection ---------------------------------------------------------------------
_anomaly = {"enabled": False, "check_nan": True}


def is_anomaly_enabled() -> bool:
    return _anomaly["enabled"]


def is_anomaly_check_nan_enabled() -> bool:
    return _anomaly["check_nan"]


class set_detect_anomaly:
    """Accepted for PyTorch programs; graphc's errors already name the op and the user's
    line, so the mode only records the flag (read by ``is_anomaly_enabled``)."""

    def __init__(self, mode: bool, check_nan: bool = True):
        self.prev = dict(_anomaly)
        _anomaly.update(enabled=bool(mode), check_nan=bool(check_nan))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _anomaly.update(self.prev)
        return False


class detect_anomaly(contextlib.ContextDecorator):
    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan

    def __enter__(self):
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the "
                      "runtime and should only be enabled for debugging.", stacklevel=2)
        self.mode = set_detect_anomaly(True, self.check_nan)
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)
