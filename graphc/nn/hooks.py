"""Module hooks, as in PyTorch: forward pre-hooks, forward hooks, full backward hooks and
backward pre-hooks, per module and global.

``Module.__call__`` sends a module with hooks through :func:`call_with_hooks`, which
follows PyTorch's ``_call_impl``.  Backward hooks need the gradients of the module's
outputs and inputs: as PyTorch's ``BackwardHook`` does, the inputs and outputs pass
through identity ``autograd.Function``\\ s whose backward runs the hooks.  Being
Functions, they also work under ``graphc.compile``: the hooks become the gradient rule
of their region and run when the backward graph is traced.  Python hooks run when the
code runs (eagerly) or is traced (compiled); their side effects happen once per trace.
Adding or removing a hook changes ``module._hook_state``, which compiled code guards on.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict

from graphc.autograd import Function, is_grad_enabled
from graphc.autograd.hooks import add_hook
from graphc.tensor import Tensor


class HookTable(OrderedDict):
    """One of a module's hook tables: every change tells the owner
    (``Module._hooks_changed``)."""

    def __init__(self, owner=None):
        super().__init__()
        self.owner = owner

    def _touch(self):
        if self.owner is not None:
            self.owner._hooks_changed()

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._touch()

    def pop(self, key, *default):
        self._touch()
        return super().pop(key, *default)


HOOK_TABLES = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_backward_pre_hooks", "_backward_hooks")

STATE_DICT_HOOK_TABLES = ("_state_dict_pre_hooks", "_state_dict_hooks",
                          "_load_state_dict_post_hooks")


def run_state_dict_pre_hooks(module, prefix, keep_vars) -> None:
    for hook in list(module._state_dict_pre_hooks.values()):
        hook(module, prefix, keep_vars)


def run_state_dict_post_hooks(module, destination, prefix):
    for hook, public in list(module._state_dict_hooks.values()):
        result = hook(module, destination, prefix, {"version": 1})
        if public and result is not None:
            raise RuntimeError("state_dict post-hook must return None")
        if result is not None:
            destination = result
    return destination


def run_load_state_dict_post_hooks(module, incompatible_keys) -> None:
    """Each module's hooks, children before parents, as PyTorch calls them."""
    for child in module._modules.values():
        if child is not None:
            run_load_state_dict_post_hooks(child, incompatible_keys)
    for hook in list(module._load_state_dict_post_hooks.values()):
        if hook(module, incompatible_keys) is not None:
            raise AssertionError("Hooks registered with ``register_load_state_dict_post_hook`` "
                                 "are not expected to return new values, if incompatible_keys "
                                 "need to be modified, it should be done inplace.")


# Global hooks (register_module_*): run before every module's own.
_global_forward_pre_hooks: OrderedDict = OrderedDict()
_global_forward_hooks: OrderedDict = OrderedDict()
_global_forward_hooks_always_called: OrderedDict = OrderedDict()
_global_forward_hooks_with_kwargs: OrderedDict = OrderedDict()
_global_backward_pre_hooks: OrderedDict = OrderedDict()
_global_backward_hooks: OrderedDict = OrderedDict()


def has_global_hooks() -> bool:
    return bool(_global_forward_pre_hooks or _global_forward_hooks
                or _global_backward_pre_hooks or _global_backward_hooks)


def register_module_forward_pre_hook(hook):
    return add_hook(_global_forward_pre_hooks, hook)


def register_module_forward_hook(hook, *, with_kwargs=False, always_call=False):
    handle = add_hook(_global_forward_hooks, hook, False, _global_forward_hooks_always_called,
                      _global_forward_hooks_with_kwargs)
    if with_kwargs:
        _global_forward_hooks_with_kwargs[handle.id] = True
    if always_call:
        _global_forward_hooks_always_called[handle.id] = True
    return handle


def register_module_full_backward_pre_hook(hook):
    return add_hook(_global_backward_pre_hooks, hook)


def register_module_full_backward_hook(hook):
    return add_hook(_global_backward_hooks, hook)


class ModuleHooks:
    """The hook registration methods ``Module`` inherits."""

    def _init_hooks(self):
        object.__setattr__(self, "_hook_state", 0)
        for name in HOOK_TABLES:
            object.__setattr__(self, name, HookTable(self))
        for name in STATE_DICT_HOOK_TABLES:
            object.__setattr__(self, name, OrderedDict())

    def register_state_dict_pre_hook(self, hook):
        """``hook(module, prefix, keep_vars)`` runs before ``state_dict`` collects this
        module."""
        return add_hook(self._state_dict_pre_hooks, hook)

    def register_state_dict_post_hook(self, hook):
        """``hook(module, state_dict, prefix, local_metadata)`` runs after; it may change
        ``state_dict`` in place and must return None."""
        return add_hook(self._state_dict_hooks, (hook, True))

    def _register_state_dict_hook(self, hook):
        """The older post hook: a dict it returns replaces the state_dict."""
        return add_hook(self._state_dict_hooks, (hook, False))

    def register_load_state_dict_post_hook(self, hook):
        """``hook(module, incompatible_keys)`` runs after ``load_state_dict`` loaded,
        before strict checking: it may edit the missing and unexpected key lists."""
        return add_hook(self._load_state_dict_post_hooks, hook)

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """``hook(module, args)`` (``hook(module, args, kwargs)`` with ``with_kwargs``)
        runs before ``forward`` and may return new args (args and kwargs)."""
        handle = add_hook(self._forward_pre_hooks, hook, prepend,
                          self._forward_pre_hooks_with_kwargs)
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs[handle.id] = True
        return handle

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False,
                              always_call=False):
        """``hook(module, args, output)`` (``hook(module, args, kwargs, output)``) runs
        after ``forward`` and may return a new output; ``always_call``: also when
        ``forward`` raised."""
        handle = add_hook(self._forward_hooks, hook, prepend,
                          self._forward_hooks_with_kwargs, self._forward_hooks_always_called)
        if with_kwargs:
            self._forward_hooks_with_kwargs[handle.id] = True
        if always_call:
            self._forward_hooks_always_called[handle.id] = True
        return handle

    def register_full_backward_pre_hook(self, hook, prepend=False):
        """``hook(module, grad_output)`` runs when the gradients of the outputs are known
        and may return new ones."""
        return add_hook(self._backward_pre_hooks, hook, prepend)

    def register_full_backward_hook(self, hook, prepend=False):
        """``hook(module, grad_input, grad_output)`` runs when the gradients of the inputs
        are known and may return new ones."""
        return add_hook(self._backward_hooks, hook, prepend)

    def register_backward_hook(self, hook):
        raise NotImplementedError("Module.register_backward_hook (the deprecated non-full "
                                  "backward hook) is not supported; use "
                                  "register_full_backward_hook")


def call_with_hooks(module, args, kwargs):
    """PyTorch's ``Module._call_impl`` for a module with hooks."""
    forward_hooks = [*_global_forward_hooks.items(), *module._forward_hooks.items()]
    always = {**_global_forward_hooks_always_called, **module._forward_hooks_always_called}
    called = set()
    result = None
    try:
        for hook_id, hook in [*_global_forward_pre_hooks.items(),
                              *module._forward_pre_hooks.items()]:
            if hook_id in module._forward_pre_hooks_with_kwargs:
                out = hook(module, args, kwargs)
                if out is not None:
                    if not (isinstance(out, tuple) and len(out) == 2):
                        raise RuntimeError(f"forward pre-hook must return None or a tuple "
                                           f"of (new_args, new_kwargs), but got {out}.")
                    args, kwargs = out
            else:
                out = hook(module, args)
                if out is not None:
                    args = out if isinstance(out, tuple) else (out,)
        backward_hooks = [*_global_backward_hooks.values(), *module._backward_hooks.values()]
        pre_hooks = [*_global_backward_pre_hooks.values(),
                     *module._backward_pre_hooks.values()]
        state = None
        if backward_hooks or pre_hooks:
            state = BackwardHookState(module, backward_hooks, pre_hooks)
            args = state.wrap_inputs(args)
        result = module.forward(*args, **kwargs)
        for hook_id, hook in forward_hooks:
            called.add(hook_id)
            out = _run_forward_hook(module, hook_id, hook, args, kwargs, result)
            if out is not None:
                result = out
        if state is not None:
            result = state.wrap_outputs(result)
        return result
    except Exception:
        for hook_id, hook in forward_hooks:
            if hook_id in always and hook_id not in called:
                try:
                    out = _run_forward_hook(module, hook_id, hook, args, kwargs, result)
                    if out is not None:
                        result = out
                except Exception as e:
                    warnings.warn("global module forward hook with ``always_call=True`` "
                                  f"raised an exception that was silenced as another error "
                                  f"was raised in forward: {e}")
        raise


def _run_forward_hook(module, hook_id, hook, args, kwargs, result):
    if hook_id in module._forward_hooks_with_kwargs or \
            hook_id in _global_forward_hooks_with_kwargs:
        return hook(module, args, kwargs, result)
    return hook(module, args, result)


class BackwardHookState:
    """One call's backward hooks: the gradients of its outputs, kept until the gradients
    of its inputs arrive (PyTorch's ``torch.utils.hooks.BackwardHook``)."""

    def __init__(self, module, hooks, pre_hooks):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs = None
        self.n_inputs = 0
        self.input_positions = None     # positions of the tensor inputs, when they need grad
        self.n_outputs = 0
        self.output_positions = None

    def wrap_inputs(self, args):
        self.n_inputs = len(args)
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        if not any(args[i].requires_grad for i in positions) or not is_grad_enabled():
            return args
        self.input_positions = positions
        new = _InputHook.apply(self, *[args[i] for i in positions])
        new = new if isinstance(new, tuple) else (new,)
        args = list(args)
        for i, t in zip(positions, new):
            args[i] = t
        return tuple(args)

    def wrap_outputs(self, result):
        is_tuple = isinstance(result, tuple)
        outputs = list(result) if is_tuple else [result]
        self.n_outputs = len(outputs)
        positions = [i for i, o in enumerate(outputs) if isinstance(o, Tensor)]
        if not any(outputs[i].requires_grad for i in positions) or not is_grad_enabled():
            return result
        self.output_positions = positions
        new = _OutputHook.apply(self, *[outputs[i] for i in positions])
        new = new if isinstance(new, tuple) else (new,)
        for i, t in zip(positions, new):
            outputs[i] = t
        return tuple(outputs) if is_tuple else outputs[0]

    def _pack(self, positions, grads, n):
        packed = [None] * n
        for i, g in zip(positions, grads):
            packed[i] = g
        return tuple(packed)

    def on_grad_outputs(self, grads):
        """The outputs' gradients: run the pre-hooks; when no input needs a gradient,
        the hooks too (their grad_input is all None)."""
        self.grad_outputs = self._pack(self.output_positions, grads, self.n_outputs)
        for hook in self.pre_hooks:
            out = hook(self.module, self.grad_outputs)
            if out is None:
                continue
            if len(out) != len(self.grad_outputs):
                raise RuntimeError(f"Backward pre hook returned an invalid number of "
                                   f"grad_output, got {len(out)}, but expected "
                                   f"{len(self.grad_outputs)}")
            self.grad_outputs = tuple(out)
        grad_outputs = self.grad_outputs
        if self.input_positions is None:
            if self.hooks:
                warnings.warn("Full backward hook is firing when gradients are computed with "
                              "respect to module outputs since no inputs require gradients. "
                              "See https://docs.pytorch.org/docs/main/generated/torch.nn."
                              "Module.html#torch.nn.Module.register_full_backward_hook for "
                              "more details.", stacklevel=2)
            grad_inputs = (None,) * self.n_inputs
            for hook in self.hooks:
                res = hook(self.module, grad_inputs, self.grad_outputs)
                if res is not None and not (isinstance(res, tuple) and
                                            all(el is None for el in res)):
                    raise RuntimeError("Backward hook for Modules where no input requires "
                                       "gradient should always return None or None for all "
                                       "gradients.")
            self.grad_outputs = None
        return tuple(grad_outputs[i] for i in self.output_positions)

    def on_grad_inputs(self, grads):
        if self.grad_outputs is None:
            return grads
        result = self._pack(self.input_positions, grads, self.n_inputs)
        for hook in self.hooks:
            out = hook(self.module, result, self.grad_outputs)
            if out is None:
                continue
            if len(out) != len(result):
                raise RuntimeError(f"Backward hook returned an invalid number of grad_input, "
                                   f"got {len(out)}, but expected {len(result)}")
            result = tuple(out)
        self.grad_outputs = None
        return tuple(result[i] for i in self.input_positions)


class _OutputHook(Function):
    """Identity on a module's outputs; its backward hands their gradients to the hooks."""

    @staticmethod
    def forward(ctx, state, *tensors):
        ctx.state = state
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(*[t for t in tensors if not t.requires_grad])
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        return (None, *ctx.state.on_grad_outputs(grads))


class _InputHook(Function):
    """Identity on a module's inputs; its backward runs the full backward hooks on the
    inputs' gradients."""

    @staticmethod
    def forward(ctx, state, *tensors):
        ctx.state = state
        ctx.mark_non_differentiable(*[t for t in tensors if not t.requires_grad])
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        return (None, *ctx.state.on_grad_inputs(grads))
