"""Float64 central-difference gradient checking, shared by the test modules.

``gradcheck(fn, *arrays)`` makes one float64 leaf per array, runs ``fn`` on them, and
compares the autograd gradients of ``sum(w * fn(...))`` (``w`` a fixed random weighting,
so every output element and its position matter) with central differences.  ``fn`` may
take views of its leaves (``x.t()``, ``x[::2]``, ``x.expand(...)``): that is how
non-contiguous inputs are checked.

Example::

    gradcheck(lambda x, y: (x * y).sum(0), np.random.randn(2, 3), np.random.randn(3))
"""
from __future__ import annotations

import numpy as np

import graphc


def _as_leaf(array, requires_grad):
    return graphc.tensor(np.asarray(array, np.float64), requires_grad=requires_grad)


def _weights(out_shape, seed):
    return np.random.default_rng(seed).uniform(0.5, 1.5, out_shape)


def _objective(fn, arrays, weights):
    with graphc.no_grad():
        out = fn(*[_as_leaf(a, False) for a in arrays])
    return float(np.sum(out.numpy().astype(np.float64) * weights))


def numeric_grads(fn, arrays, weights, eps=1e-6):
    """Central differences of ``sum(weights * fn(*arrays))`` for each array."""
    arrays = [np.array(a, np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            saved = a[i]
            a[i] = saved + eps
            hi = _objective(fn, arrays, weights)
            a[i] = saved - eps
            lo = _objective(fn, arrays, weights)
            a[i] = saved
            g[i] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


def analytic_grads(fn, arrays, weights):
    """Autograd's gradients of ``sum(weights * fn(*arrays))``, as numpy arrays."""
    leaves = [_as_leaf(a, True) for a in arrays]
    out = fn(*leaves)
    assert out.dtype == graphc.float64, f"gradcheck needs a float64 output, got {out.dtype}"
    (out * graphc.tensor(weights)).sum().backward()
    grads = []
    for leaf in leaves:
        if leaf.grad is None:             # unused input: finite differences must be 0
            grads.append(np.zeros(leaf.shape))
            continue
        assert leaf.grad.dtype == graphc.float64 and leaf.grad.shape == leaf.shape
        grads.append(leaf.grad.numpy())
    return grads


def gradcheck(fn, *arrays, eps=1e-6, rtol=1e-5, atol=1e-5, seed=0):
    """Assert autograd's gradients of ``fn`` at ``arrays`` match central differences."""
    with graphc.no_grad():
        out_shape = tuple(fn(*[_as_leaf(a, False) for a in arrays]).shape)
    weights = _weights(out_shape, seed)
    expected = numeric_grads(fn, arrays, weights, eps)
    actual = analytic_grads(fn, arrays, weights)
    for i, (got, want) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
