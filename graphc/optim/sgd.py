"""Stochastic gradient descent, with optional momentum, dampening and Nesterov momentum."""
from __future__ import annotations

from graphc.optim.optimizer import Optimizer, grad_of, hyper


class SGD(Optimizer):
    """``torch.optim.SGD``: with g the gradient (plus ``weight_decay * p``),
    ``b = momentum * b + (1 - dampening) * g`` (b = g on the first step), then
    ``p -= lr * (g + momentum * b if nesterov else b)``; without momentum ``p -= lr * g``.

    ``foreach``, ``fused`` and ``differentiable`` are accepted so that PyTorch programs
    and their printed optimizers look the same; graphc has one implementation.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize, foreach=foreach,
            differentiable=differentiable, fused=fused))

    def _update(self, p, group):
        g = grad_of(p, group)
        if group["momentum"] != 0:
            momentum = hyper(group, "momentum")
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.clone()
            else:
                buf.mul_(momentum).add_(g * (1 - hyper(group, "dampening")))
            g = g + buf * momentum if group["nesterov"] else buf
        p.add_(g * -hyper(group, "lr"))


def _check_not_differentiable(differentiable):
    """graphc's optimizers update storage directly, outside autograd."""
    if differentiable:
        raise ValueError("graphc optimizers do not support differentiable=True: their "
                         "updates are not recorded by autograd")
