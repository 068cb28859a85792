"""Random draws shaped like a tensor: ``bernoulli`` and the in-place fills
``bernoulli_`` and ``exponential_``.

With the default generator they draw through ``F.uniform_noise``, so they trace: a
compiled program draws new numbers each call.  With an explicit ``generator`` they draw
eagerly from it (and, as every eager random draw, are a graph break when traced).
"""
from __future__ import annotations

from graphc import context, creation, dtypes
from graphc import functional as F
from graphc.indexing import apply_inplace
from graphc.tensor import Tensor


def _uniform(like: Tensor, generator) -> Tensor:
    dtype = like.dtype if like.dtype.is_floating_point else dtypes.default_float
    if generator is None:
        return F.uniform_noise(like.shape, dtype)
    return creation.rand(tuple(like.shape), generator=generator, dtype=dtype)


def bernoulli(input, p=None, *, generator=None):
    """1 with probability ``input`` (or ``p``) at each element, else 0; input's dtype."""
    prob = input if p is None else p
    if isinstance(prob, Tensor):
        # Checked eagerly only: compiled code does not check values (docs/compile.md).
        if context.active_trace() is None and bool(((prob < 0) | (prob > 1)).any()):
            raise RuntimeError(f"bernoulli: expected all probabilities in [0, 1], got "
                               f"{prob.dtype.name}{list(prob.shape)} outside it")
    elif not 0 <= prob <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={prob}")
    return F.cast(F.lt(_uniform(input, generator), prob), input.dtype)


def bernoulli_(self, p=0.5, *, generator=None):
    return apply_inplace(self, "bernoulli_", lambda s: bernoulli(s, p, generator=generator))


def exponential_(self, lambd=1.0, *, generator=None):
    """Fills with draws from Exp(``lambd``): -log(1 - U) / lambd."""
    if lambd <= 0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={lambd}")
    return apply_inplace(self, "exponential_", lambda s: F.cast(
        -F.log(1.0 - _uniform(s, generator)) / lambd, s.dtype))
