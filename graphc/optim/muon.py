"""Muon: momentum SGD for 2-D (hidden-layer) weights whose update is orthogonalized by
a few Newton-Schulz iterations (Keller Jordan, 2024)."""
from __future__ import annotations

import math

from graphc.optim.optimizer import Optimizer, hyper, lerp_, zeros_state

EPS = 1e-7
DEFAULT_A, DEFAULT_B, DEFAULT_C = 3.4445, -4.775, 2.0315
DEFAULT_NS_STEPS = 5


def _zeropower_via_newtonschulz(grad, ns_coefficients, ns_steps, eps):
    """An approximately orthogonal matrix with grad's singular vectors: the quintic
    iteration X = a X + (b G + c G G) X, G = X X^T, on the wide orientation of grad
    scaled to unit Frobenius norm.  PyTorch iterates in bfloat16; graphc has no
    bfloat16 and iterates in grad's dtype, so updates agree to bfloat16 precision."""
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if len(grad.shape) != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if len(ns_coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = ns_coefficients
    tall = grad.shape[0] > grad.shape[1]
    x = grad.T if tall else grad
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.T if tall else x


def _adjust_lr(lr, adjust_lr_fn, param_shape):
    """Scale lr so the orthogonalized update has a consistent RMS across shapes:
    ``sqrt(max(1, A / B))`` ("original") or ``0.2 * sqrt(max(A, B))`` (matching AdamW's
    RMS, "match_rms_adamw")."""
    rows, cols = param_shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, rows / cols))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(rows, cols))
    else:
        ratio = 1.0
    return lr * ratio


class Muon(Optimizer):
    """``torch.optim.Muon``: ``b = lerp(b, g, 1 - momentum)``; the update
    (``lerp(g, b, momentum)`` with ``nesterov``, else b) is orthogonalized, then
    ``p *= 1 - lr * weight_decay`` and ``p -= adjusted_lr * update``.  2-D parameters
    only; optimize biases and embeddings with e.g. AdamW."""

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=(DEFAULT_A, DEFAULT_B, DEFAULT_C), eps=EPS,
                 ns_steps=DEFAULT_NS_STEPS, adjust_lr_fn=None):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"momentum should be >= 0 but is: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
        if adjust_lr_fn is not None and adjust_lr_fn not in ["original", "match_rms_adamw"]:
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        super().__init__(params, dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn))
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon only supports 2D parameters whereas we found a "
                                     f"parameter with size: {p.size()}")

    def _update(self, p, group):
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = zeros_state(p)
        g = p.grad
        if g.ndim != 2:
            raise ValueError("Param gradient must be a 2D matrix")
        lr, momentum = hyper(group, "lr"), hyper(group, "momentum")
        buf = state["momentum_buffer"]
        lerp_(buf, g, 1 - momentum)
        update = g + (buf - g) * momentum if group["nesterov"] else buf
        update = _zeropower_via_newtonschulz(update, group["ns_coefficients"],
                                             group["ns_steps"], group["eps"])
        p.mul_(1 - lr * hyper(group, "weight_decay"))
        p.add_(update * -_adjust_lr(lr, group["adjust_lr_fn"], p.shape))
