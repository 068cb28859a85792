"""Adagrad: per-coordinate steps shrinking with the accumulated squared gradients."""
from __future__ import annotations

from graphc.optim.optimizer import (Optimizer, grad_of, hyper, increment, scalar_for,
                                    step_count, zeros_state)
from graphc.optim.sgd import _check_not_differentiable


class Adagrad(Optimizer):
    """``torch.optim.Adagrad``: ``sum += g*g``;
    ``p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)``.

    As in PyTorch, the state of every parameter exists from construction (``sum`` starts
    at ``initial_accumulator_value``).
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None):
        for name, value in (("learning rate", lr), ("lr_decay value", lr_decay),
                            ("weight_decay value", weight_decay),
                            ("initial_accumulator_value value", initial_accumulator_value),
                            ("epsilon value", eps)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name}: {value}")
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, foreach=foreach,
            maximize=maximize, differentiable=differentiable, fused=fused))

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        for p in param_group["params"]:
            state = self.state[p]
            state["step"] = step_count()
            state["sum"] = zeros_state(p, float(param_group["initial_accumulator_value"]))

    def _update(self, p, group):
        state = self.state[p]
        g = grad_of(p, group)
        step = increment(state["step"])
        clr = scalar_for(p, hyper(group, "lr") / ((step - 1) * hyper(group, "lr_decay") + 1))
        acc = state["sum"]
        acc.add_(g * g)
        p.add_(g / (acc.sqrt() + hyper(group, "eps")) * -clr)
