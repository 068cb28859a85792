"""Rprop (resilient backpropagation): per-coordinate step sizes that grow while the
gradient keeps its sign and shrink when it flips; only the gradient's sign is used."""
from __future__ import annotations

from graphc.creation import ones_like
from graphc.functional import where
from graphc.optim.optimizer import Optimizer, grad_of, hyper, increment, step_count, zeros_state
from graphc.optim.sgd import _check_not_differentiable


class Rprop(Optimizer):
    """``torch.optim.Rprop``: where ``g * prev`` is positive the step size is multiplied
    by ``etaplus``, where negative by ``etaminus`` (and that coordinate's gradient is
    taken as 0 this step), then clamped to ``step_sizes``; ``p -= sign(g) * step_size``.
    Step sizes start at ``lr``."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        _check_not_differentiable(differentiable)
        super().__init__(params, dict(
            lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach, maximize=maximize,
            differentiable=differentiable, capturable=capturable))

    def _update(self, p, group):
        state = self.state[p]
        if not state:
            state["step"] = step_count()
            state["prev"] = zeros_state(p)
            state["step_size"] = zeros_state(p, float(group["lr"]))
        # lr only seeds the step sizes; reading it as a runtime input keeps a scheduler
        # that changes it from recompiling a compiled step.
        hyper(group, "lr")
        g = grad_of(p, group)
        increment(state["step"])
        prev, step_size = state["prev"], state["step_size"]
        sign = (g * prev).sign()
        factor = where(sign > 0, hyper(group, "etas", 1),
                       where(sign < 0, hyper(group, "etas", 0), ones_like(sign)))
        step_size.copy_((step_size * factor).clamp(*group["step_sizes"]))
        g = where(sign < 0, 0.0, g)
        p.add_(g.sign() * step_size * -1)
        prev.copy_(g)
