"""Adamax: Adam with the infinity norm of past gradients in place of their RMS."""
from __future__ import annotations

from graphc.functional import maximum
from graphc.optim.adam import _check_hyper
from graphc.optim.optimizer import (Optimizer, grad_of, hyper, increment, lerp_, scalar_for,
                                    step_count, zeros_state)
from graphc.optim.sgd import _check_not_differentiable


class Adamax(Optimizer):
    """``torch.optim.Adamax``: ``m = lerp(m, g, 1 - beta1)``;
    ``u = max(beta2 * u, |g| + eps)``; ``p -= lr / (1 - beta1**t) * m / u``."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        _check_hyper(lr, betas, eps, weight_decay)
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
            maximize=maximize, differentiable=differentiable, capturable=capturable))

    def _update(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = step_count()
            state["exp_avg"] = zeros_state(p)
            state["exp_inf"] = zeros_state(p)
        g = grad_of(p, group)
        step = increment(state["step"])
        beta1, beta2 = hyper(group, "betas", 0), hyper(group, "betas", 1)
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        lerp_(exp_avg, g, 1 - beta1)
        exp_inf.copy_(maximum(exp_inf * beta2, g.abs() + hyper(group, "eps")))
        clr = scalar_for(p, hyper(group, "lr") / (1 - beta1 ** step))
        p.add_(exp_avg / exp_inf * -clr)
