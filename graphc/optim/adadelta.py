"""Adadelta: steps scaled by the ratio of running RMS of past updates to that of the
gradients, so the step has the parameter's units and needs little tuning of ``lr``."""
from __future__ import annotations

from graphc.optim.optimizer import Optimizer, grad_of, hyper, increment, step_count, zeros_state
from graphc.optim.sgd import _check_not_differentiable


class Adadelta(Optimizer):
    """``torch.optim.Adadelta``: ``v = rho * v + (1 - rho) * g*g``;
    ``delta = sqrt(u + eps) / sqrt(v + eps) * g``; ``u = rho * u + (1 - rho) * delta**2``;
    ``p -= lr * delta`` (v is ``square_avg``, u is ``acc_delta``)."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
            capturable=capturable, foreach=foreach, differentiable=differentiable))

    def _update(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = step_count()
            state["square_avg"] = zeros_state(p)
            state["acc_delta"] = zeros_state(p)
        g = grad_of(p, group)
        increment(state["step"])
        rho, eps = hyper(group, "rho"), hyper(group, "eps")
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).add_(g * g * (1 - rho))
        delta = (acc_delta + eps).sqrt() / (square_avg + eps).sqrt() * g
        acc_delta.mul_(rho).add_(delta * delta * (1 - rho))
        p.add_(delta * -hyper(group, "lr"))
