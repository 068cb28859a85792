"""RMSprop (Hinton's lecture 6e), optionally centered and with momentum."""
from __future__ import annotations

from graphc.optim.optimizer import (Optimizer, grad_of, hyper, increment, lerp_, step_count,
                                    zeros_state)
from graphc.optim.sgd import _check_not_differentiable


class RMSprop(Optimizer):
    """``torch.optim.RMSprop``: ``v = alpha * v + (1 - alpha) * g*g``; the step divides g
    by ``sqrt(v) + eps`` (centered: ``sqrt(v - mean(g)**2) + eps``), optionally through a
    momentum buffer ``b = momentum * b + g / denom`` with ``p -= lr * b``.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        for name, value in (("learning rate", lr), ("epsilon value", eps),
                            ("momentum value", momentum),
                            ("weight_decay value", weight_decay), ("alpha value", alpha)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name}: {value}")
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
            weight_decay=weight_decay, capturable=capturable, foreach=foreach,
            maximize=maximize, differentiable=differentiable))

    def _update(self, p, group):
        state = self.state[p]
        alpha = hyper(group, "alpha")
        if not state:
            state["step"] = step_count()
            state["square_avg"] = zeros_state(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = zeros_state(p)
            if group["centered"]:
                state["grad_avg"] = zeros_state(p)
        g = grad_of(p, group)
        increment(state["step"])
        v = state["square_avg"]
        v.mul_(alpha).add_(g * (1 - alpha) * g)
        if group["centered"]:
            mean = state["grad_avg"]
            lerp_(mean, g, 1 - alpha)
            avg = (v - mean * mean).sqrt()
        else:
            avg = v.sqrt()
        avg = avg + hyper(group, "eps")
        lr = hyper(group, "lr")
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf.mul_(hyper(group, "momentum")).add_(g / avg)
            p.add_(buf * -lr)
        else:
            p.add_(g / avg * -lr)
