"""``nn.utils``: gradient clipping, as ``torch.nn.utils``."""
from __future__ import annotations

import math

from graphc.autograd import no_grad
from graphc.creation import tensor
from graphc.functional import stack


def _grads(parameters):
    if hasattr(parameters, "grad"):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their joint norm is at most ``max_norm``;
    returns the norm before clipping (a 0-dim tensor)."""
    grads = _grads(parameters)
    if not grads:
        return tensor(0.0)
    norm_type = float(norm_type)
    with no_grad():
        norms = stack([g.norm(norm_type) for g in grads])
        total = norms.amax() if math.isinf(norm_type) else norms.norm(norm_type)
        if error_if_nonfinite and not math.isfinite(float(total)):
            raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                               f"`parameters` is non-finite, so it cannot be clipped.")
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value]."""
    with no_grad():
        for g in _grads(parameters):
            g.clamp_(-clip_value, clip_value)
from graphc.nn.utils import rnn  # noqa: E402
