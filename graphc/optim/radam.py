"""RAdam: Adam whose adaptive step is switched on, and rectified, only once the variance
of its second-moment estimate is tractable (Liu et al., 2019)."""
from __future__ import annotations

from graphc.functional import where
from graphc.optim.adam import _check_hyper
from graphc.optim.optimizer import (Optimizer, grad_of, hyper, increment, lerp_, scalar_for,
                                    step_count, zeros_state)
from graphc.optim.sgd import _check_not_differentiable


class RAdam(Optimizer):
    """``torch.optim.RAdam``: with ``rho_inf = 2 / (1 - beta2) - 1`` and
    ``rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)``, the step is
    ``lr * m_hat * r_t * sqrt(1 - beta2**t) / (sqrt(v) + eps)`` while ``rho_t > 5``
    (``r_t`` the rectification term), else plain momentum ``lr * m_hat``.  The choice
    depends on the step count, a tensor, so it is a ``where`` and the step traces.
    ``decoupled_weight_decay`` shrinks p by ``1 - lr * wd`` instead (RAdamW)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        _check_hyper(lr, betas, eps, weight_decay)
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
            foreach=foreach, capturable=capturable,
            decoupled_weight_decay=decoupled_weight_decay, differentiable=differentiable))

    def _update(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = step_count()
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
        g = grad_of(p, group)
        step = increment(state["step"])
        lr = hyper(group, "lr")
        beta1, beta2 = hyper(group, "betas", 0), hyper(group, "betas", 1)
        if group["weight_decay"] != 0 and group["decoupled_weight_decay"]:
            p.mul_(1 - lr * hyper(group, "weight_decay"))
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        lerp_(exp_avg, g, 1 - beta1)
        exp_avg_sq.mul_(beta2).add_(g * g * (1 - beta2))
        bias_correction2 = 1 - beta2 ** step
        momentum_step = exp_avg / scalar_for(p, 1 - beta1 ** step) * lr
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2 ** step / bias_correction2
        # abs: where rho_t <= 5 the term is unused, and would be the root of a negative.
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho_t)).abs().sqrt()
        adaptive = scalar_for(p, bias_correction2.sqrt()) / (exp_avg_sq.sqrt()
                                                             + hyper(group, "eps"))
        adaptive_step = momentum_step * adaptive * scalar_for(p, rect)
        p.sub_(where(rho_t > 5.0, adaptive_step, momentum_step))
