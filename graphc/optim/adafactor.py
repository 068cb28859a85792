"""Adafactor (Shazeer and Stern, 2018): second moments of a matrix kept as row and
column factors (memory sublinear in the parameter), relative step sizes and update
clipping; PyTorch's variant, where ``lr`` caps the relative step and scales a decoupled
weight decay."""
from __future__ import annotations

import numpy as np

from graphc.functional import where
from graphc.optim.optimizer import (Optimizer, hyper, increment, lerp_, scalar_for,
                                    step_count, zeros_state)


class Adafactor(Optimizer):
    """``torch.optim.Adafactor``: with ``beta2_t = 1 - t**beta2_decay`` the squared
    gradient's running mean is kept per row and per column (a vector keeps it whole),
    the variance estimate is ``row @ col / mean(row)``; the update ``g / sqrt(v)`` is
    scaled down so that its RMS is at most ``d``, and steps are
    ``max(eps2, RMS(p)) * min(lr, 1/sqrt(t))``.  ``eps = (eps1, eps2)``; eps1 None means
    the machine epsilon of the parameter's dtype."""

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
                 weight_decay=0.0, *, foreach=None, maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        super().__init__(params, dict(
            lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
            foreach=foreach, maximize=maximize))

    def _update(self, p, group):
        g = -p.grad if group["maximize"] else p.grad
        state = self.state[p]
        if not state:
            state["step"] = step_count()
            if g.dim() > 1:
                state["row_var"] = g.new_full((*g.shape[:-1], 1), 0.0)
                state["col_var"] = g.new_full((*g.shape[:-2], 1, g.shape[-1]), 0.0)
            else:
                state["variance"] = zeros_state(p)
        eps1 = group["eps"][0]
        if eps1 is None:
            eps1 = float(np.finfo(p.dtype.np).eps)
        step = increment(state["step"])
        lr = hyper(group, "lr")
        one_minus_beta2 = step ** hyper(group, "beta2_decay")
        rho = where(step ** -0.5 < lr, step ** -0.5, lr)
        rms = p.norm(2).double() / p.numel() ** 0.5
        alpha = rms.clamp(min=group["eps"][1]) * rho
        if group["weight_decay"] != 0:
            p.mul_(1 - lr * hyper(group, "weight_decay"))
        if g.dim() > 1:
            row_var, col_var = state["row_var"], state["col_var"]
            lerp_(row_var, g.norm(dim=-1, keepdim=True) ** 2 / g.shape[-1],
                  scalar_for(p, one_minus_beta2))
            lerp_(col_var, g.norm(dim=-2, keepdim=True) ** 2 / g.shape[-2],
                  scalar_for(p, one_minus_beta2))
            estimate = row_var @ col_var / row_var.mean(dim=-2, keepdim=True).clamp(min=eps1)
        else:
            lerp_(state["variance"], g * g, scalar_for(p, one_minus_beta2))
            estimate = state["variance"]
        update = estimate.clamp(min=eps1 * eps1).rsqrt() * g
        clip = (update.norm(2).double() / (update.numel() ** 0.5 * hyper(group, "d"))).clamp(min=1.0)
        p.add_(update * scalar_for(p, -alpha / clip))
