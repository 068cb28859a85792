"""Averaged SGD (Polyak and Juditsky, 1992): SGD with a decaying step, which also keeps
the running average of the iterates (``ax``) from step ``t0`` on."""
from __future__ import annotations

from graphc.functional import where
from graphc.optim.optimizer import (Optimizer, grad_of, hyper, increment, scalar_for,
                                    step_count, zeros_state)
from graphc.optim.sgd import _check_not_differentiable


class ASGD(Optimizer):
    """``torch.optim.ASGD``: ``p = p * (1 - lambd * eta) - eta * g``;
    ``ax += (p - ax) * mu``; then ``eta = lr / (1 + lambd * lr * t)**alpha`` and
    ``mu = 1 / max(1, t - t0)``.  ``eta`` and ``mu`` are 0-dim float32 state tensors,
    as in PyTorch, so the compiled step reads and updates them."""

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0,
                 foreach=None, maximize=False, differentiable=False, capturable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
            foreach=foreach, maximize=maximize, differentiable=differentiable,
            capturable=capturable))

    def _update(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = step_count()
            state["eta"] = step_count().add_(group["lr"])
            state["mu"] = step_count().add_(1)
            state["ax"] = zeros_state(p)
        g = grad_of(p, group)
        step = increment(state["step"])
        lr, lambd = hyper(group, "lr"), hyper(group, "lambd")
        eta, mu, ax = state["eta"], state["mu"], state["ax"]
        p.mul_(scalar_for(p, 1 - lambd * eta.double()))
        p.add_(g * -scalar_for(p, eta))
        # mu == 1 copies p exactly, as PyTorch does, rather than adding p - ax to ax.
        ax.copy_(where(mu == 1, p, ax + (p - ax) * scalar_for(p, mu)))
        eta.copy_(lr / (1 + lambd * lr * step) ** hyper(group, "alpha"))
        mu.copy_(1 / (step - hyper(group, "t0")).clamp(min=1))
