"""The ``Optimizer`` base class: parameter groups, per-parameter state, state dicts.

Semantics follow ``torch.optim.Optimizer``.  Update rules are written with in-place
tensor ops under ``no_grad`` (``p.add_(...)``, ``buf.mul_(...)``): the ``Parameter``
object and its storage stay the same, so anything holding them (a module, a compiled
program that lifted the parameters to inputs) sees the new values; each write bumps the
version counter, so autograd catches a step taken between a forward pass and its
``backward()``; and the same rule traces, so ``graphc.compile`` can compile a whole
training step with the update in it.  The step count is a 0-dim tensor for the same
reason: a Python counter would be frozen into the traced program.

A subclass sets its defaults and implements ``_update(p, group)`` for one parameter that
has a gradient; ``step`` loops over the groups.  A subclass written in PyTorch's style,
overriding ``step`` itself, works too: as in PyTorch, each class's ``step`` is wrapped
(once) to run the step hooks around it.
"""
from __future__ import annotations

import copy
import functools
import itertools
import warnings
from collections import OrderedDict, defaultdict

import numpy as np

from graphc import context, dtypes
from graphc.autograd import enable_grad, no_grad
from graphc.functional import where
from graphc.tensor import Tensor, typename
from graphc.autograd.hooks import RemovableHandle, add_hook

_global_optimizer_pre_hooks: OrderedDict = OrderedDict()
_global_optimizer_post_hooks: OrderedDict = OrderedDict()


def register_optimizer_step_pre_hook(hook) -> RemovableHandle:
    """``hook(optimizer, args, kwargs)`` before every optimizer's step; it may return
    new ``(args, kwargs)``."""
    return add_hook(_global_optimizer_pre_hooks, hook)


def register_optimizer_step_post_hook(hook) -> RemovableHandle:
    """``hook(optimizer, args, kwargs)`` after every optimizer's step."""
    return add_hook(_global_optimizer_post_hooks, hook)


def _hooked_step(step):
    """``step`` with the global and the optimizer's step hooks around it."""
    @functools.wraps(step)
    def wrapper(*args, **kwargs):
        self = args[0]
        for pre_hook in itertools.chain(_global_optimizer_pre_hooks.values(),
                                        self._optimizer_step_pre_hooks.values()):
            result = pre_hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(f"{step} must return None or a tuple of (new_args, "
                                       f"new_kwargs), but got {result}.")
                args, kwargs = result
        out = step(*args, **kwargs)
        for post_hook in itertools.chain(self._optimizer_step_post_hooks.values(),
                                         _global_optimizer_post_hooks.values()):
            post_hook(self, args, kwargs)
        return out
    wrapper.hooked = True
    return wrapper


class _RequiredParameter:
    """Marks a default that every parameter group must set (``optim.SGD`` in old PyTorch
    had ``lr=required``)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class of all optimizers.

    >>> opt = graphc.optim.SGD(model.parameters(), lr=0.1)
    >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable "
                            "of Tensors or dicts, but got " + typename(params))
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        if not getattr(type(self).step, "hooked", False):
            type(self).step = _hooked_step(type(self).step)
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"

    # ---- parameter groups --------------------------------------------------------------
    def add_param_group(self, param_group: dict):
        """Add a group of parameters (with its own options) to be optimized, e.g. layers
        unfrozen during fine-tuning.  Options it leaves out take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered "
                            "collections, but the ordering of tensors in sets will change "
                            "between runs. Please use a list instead.")
        params = list(params)
        named = [p for p in params if isinstance(p, tuple)]
        if named:
            if len(named) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some "
                                 "param names are missing")
            param_group["param_names"] = [name for name, _ in named]
            params = [p for _, p in named]
        param_group["params"] = params
        for p in params:
            _check_optimizable(p)
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            param_group.setdefault(name, default)
        if len({id(p) for p in params}) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        self._check_disjoint(param_group)
        self.param_groups.append(param_group)

    def _check_disjoint(self, param_group: dict):
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in param_group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        if any(("param_names" in g) != ("param_names" in param_group)
               for g in self.param_groups):
            raise ValueError("all optimizer param groups should be with/without names.")

    # ---- the update ----------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True):
        """Drop every parameter's ``.grad`` (the default), or zero it in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if p.grad.grad_fn is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                with no_grad():
                    p.grad.zero_()

    def step(self, closure=None):
        """One update of every parameter that has a gradient (others are skipped).

        ``closure`` re-evaluates the model and returns the loss; it runs with gradients
        enabled and its result is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, group)
        return loss

    # ---- hooks -------------------------------------------------------------------------------
    def register_step_pre_hook(self, hook) -> RemovableHandle:
        """``hook(optimizer, args, kwargs)`` before each ``step``; it may return new
        ``(args, kwargs)``."""
        return add_hook(self._optimizer_step_pre_hooks, hook)

    def register_step_post_hook(self, hook) -> RemovableHandle:
        """``hook(optimizer, args, kwargs)`` after each ``step``."""
        return add_hook(self._optimizer_step_post_hooks, hook)

    def register_state_dict_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer)`` before ``state_dict()`` builds the dict."""
        return add_hook(self._optimizer_state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer, state_dict)`` after; a dict it returns is returned instead."""
        return add_hook(self._optimizer_state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer, state_dict)`` before loading; a dict it returns is loaded."""
        return add_hook(self._optimizer_load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(self, hook, prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer)`` after loading."""
        return add_hook(self._optimizer_load_state_dict_post_hooks, hook, prepend)

    # ---- state dicts -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``.

        Parameters are replaced by their position across all groups.  As in PyTorch the
        state tensors are the live buffers, not copies: save the dict (or deep-copy it)
        to keep a snapshot.
        """
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        index_of = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index_of.setdefault(id(p), i)
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {(index_of[id(k)] if isinstance(k, Tensor) else k): v
                 for k, v in self.state.items()}
        state_dict = {"state": state, "param_groups": groups}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict):
        """Restore options and state saved by ``state_dict()`` into this optimizer's
        parameters (matched by position).  Floating state is cast to its parameter's
        dtype; a tensor already of that dtype is used as is, as PyTorch does."""
        state_dict = dict(state_dict)
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(self.param_groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"])
               for g, s in zip(self.param_groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't "
                             "match the size of optimizer's group")
        param_of = dict(zip(itertools.chain.from_iterable(s["params"] for s in saved_groups),
                            itertools.chain.from_iterable(g["params"]
                                                          for g in self.param_groups)))
        state = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key in param_of:
                state[param_of[key]] = _cast_state(param_of[key], value)
            else:
                state[key] = value
        for group, saved in zip(self.param_groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            for name, default in self.defaults.items():
                saved.setdefault(name, default)
        self.state = state
        self.param_groups = saved_groups
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)



def _check_optimizable(p):
    if not isinstance(p, Tensor):
        raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                        + typename(p))
    if not (p.is_leaf or p.retains_grad):
        raise ValueError("can't optimize a non-leaf Tensor")


def _cast_state(param: Tensor, value, key=None):
    """A copy of one parameter's state containers with tensors cast to the parameter's
    dtype (floating parameters only; ``step`` keeps its own dtype)."""
    if isinstance(value, Tensor):
        if key == "step" or not param.is_floating_point():
            return value
        return value.to(param.dtype)
    if isinstance(value, dict):
        return {k: _cast_state(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_state(param, v) for v in value)
    return value


# ---- helpers for the update rules (tensor ops, run under no_grad) ---------------------------
def hyper(group: dict, key: str, index: int | None = None):
    """``group[key]`` (or ``group[key][index]``) as the update's arithmetic should see
    it: the number, or while a compiled step is being traced, a runtime input of the
    program holding it, so that a learning-rate scheduler (or anything else that
    changes a hyperparameter) never recompiles.  Branch on ``group[key]`` itself: the
    compiled step is guarded on whether each such value is zero."""
    value = group[key] if index is None else group[key][index]
    trace = context.active_trace()
    if trace is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return trace.number_input((id(group), key, index), value,
                              lambda: group[key] if index is None else group[key][index],
                              key if index is None else f"{key}{index}")


def grad_of(p: Tensor, group: dict) -> Tensor:
    """The gradient an update rule sees: negated under ``maximize``, plus L2 weight decay
    (``grad + weight_decay * param``) unless the rule decouples it.  A new tensor when it
    has to change, so ``p.grad`` is left as it was."""
    g = p.grad
    if group.get("maximize"):
        g = -g
    if group.get("weight_decay", 0) != 0 and not group.get("decoupled_weight_decay"):
        g = g + p * hyper(group, "weight_decay")
    return g


def zeros_state(p: Tensor, fill: float = 0.0) -> Tensor:
    """A state buffer shaped and typed like ``p``."""
    return p.new_full(p.shape, fill)


def step_count() -> Tensor:
    """PyTorch keeps the step count as a 0-dim float32 tensor; so do we, for state dicts
    that look the same (and so a traced step counts)."""
    return Tensor._wrap(np.zeros((), np.float32), dtypes.float32)


def increment(step: Tensor) -> Tensor:
    """Count one step; returns the count as a float64 tensor for bias corrections, which
    PyTorch computes in double precision."""
    return step.add_(1).double()


def scalar_for(p: Tensor, value: Tensor) -> Tensor:
    """A float64 0-dim factor rounded to p's dtype, as PyTorch rounds a Python scalar
    when it multiplies a tensor."""
    return value.to(p.dtype)


def lerp_(a: Tensor, b: Tensor, weight):
    """``a.lerp_(b, weight)`` with PyTorch's two-sided formula, which is exact at both
    ends (weight 0 gives a, weight 1 gives b).  A tensor weight (a traced
    hyperparameter) selects the side per call instead of at trace time."""
    if isinstance(weight, Tensor):
        a.copy_(where(weight.abs() < 0.5, a + (b - a) * weight, b - (b - a) * (1 - weight)))
    elif abs(weight) < 0.5:
        a.add_((b - a) * weight)
    else:
        a.copy_(b - (b - a) * (1 - weight))

