"""NAdam: Adam with Nesterov momentum (Dozat, 2016), its momentum warmed up by
``momentum_decay``."""
from __future__ import annotations

from graphc.optim.adam import _check_hyper
from graphc.optim.optimizer import (Optimizer, grad_of, hyper, increment, lerp_, scalar_for,
                                    step_count, zeros_state)
from graphc.optim.sgd import _check_not_differentiable


class NAdam(Optimizer):
    """``torch.optim.NAdam``: with ``mu_t = beta1 * (1 - 0.5 * 0.96**(t * momentum_decay))``
    and ``mu_product`` their running product, the step mixes the gradient and the first
    moment: ``p -= lr * ((1 - mu_t) / (1 - prod_t) * g
    + mu_{t+1} / (1 - prod_t * mu_{t+1}) * m) / (sqrt(v / (1 - beta2**t)) + eps)``.
    ``decoupled_weight_decay`` shrinks p by ``1 - lr * wd`` instead (NAdamW)."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        _check_hyper(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize, foreach=foreach, capturable=capturable,
            differentiable=differentiable))

    def _update(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = step_count()
            state["mu_product"] = step_count().add_(1)
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
        g = grad_of(p, group)
        step = increment(state["step"])
        lr, momentum_decay = hyper(group, "lr"), hyper(group, "momentum_decay")
        beta1, beta2 = hyper(group, "betas", 0), hyper(group, "betas", 1)
        if group["weight_decay"] != 0 and group["decoupled_weight_decay"]:
            p.mul_(1 - lr * hyper(group, "weight_decay"))
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        # PyTorch multiplies the (float32) product by mu rounded to the product's dtype.
        mu_product = state["mu_product"]
        mu_product = mu_product.mul_(mu.to(mu_product.dtype)).double()
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        lerp_(exp_avg, g, 1 - beta1)
        exp_avg_sq.mul_(beta2).add_(g * g * (1 - beta2))
        denom = (exp_avg_sq / scalar_for(p, 1 - beta2 ** step)).sqrt() + hyper(group, "eps")
        p.add_(g / denom * scalar_for(p, -lr * (1.0 - mu) / (1.0 - mu_product)))
        p.add_(exp_avg / denom * scalar_for(p, -lr * mu_next / (1.0 - mu_product * mu_next)))
