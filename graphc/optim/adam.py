"""Adam and AdamW (Adam with decoupled weight decay)."""
from __future__ import annotations

from graphc.functional import maximum
from graphc.optim.optimizer import (Optimizer, grad_of, hyper, increment, lerp_,
                                    scalar_for, step_count, zeros_state)
from graphc.optim.sgd import _check_not_differentiable


class Adam(Optimizer):
    """``torch.optim.Adam``: moving averages m (of g) and v (of g*g) with bias
    correction; ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``,
    where ``amsgrad`` uses the running maximum of v.  ``weight_decay`` is added to the
    gradient, or with ``decoupled_weight_decay`` (AdamW) shrinks p by ``1 - lr * wd``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        _check_hyper(lr, betas, eps, weight_decay)
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, betas=tuple(float(b) for b in betas), eps=eps, weight_decay=weight_decay,
            amsgrad=amsgrad, maximize=maximize, foreach=foreach, capturable=capturable,
            differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay))

    def _update(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = step_count()
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = zeros_state(p)
        g = grad_of(p, group)
        step = increment(state["step"])
        lr, eps = hyper(group, "lr"), hyper(group, "eps")
        beta1, beta2 = hyper(group, "betas", 0), hyper(group, "betas", 1)
        if group["weight_decay"] != 0 and group["decoupled_weight_decay"]:
            p.mul_(1 - lr * hyper(group, "weight_decay"))
        m, v = state["exp_avg"], state["exp_avg_sq"]
        lerp_(m, g, 1 - beta1)
        v.mul_(beta2).add_(g * (1 - beta2) * g)
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"].copy_(maximum(state["max_exp_avg_sq"], v))
        step_size = scalar_for(p, lr / (1 - beta1 ** step))
        bias_correction2_sqrt = scalar_for(p, (1 - beta2 ** step).sqrt())
        p.add_(m / (v.sqrt() / bias_correction2_sqrt + eps) * -step_size)


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam whose weight decay (default 0.01) shrinks the
    parameters directly instead of entering the moment estimates."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def _check_hyper(lr, betas, eps, weight_decay):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
