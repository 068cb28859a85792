"""``gradcheck`` and ``gradgradcheck``: backward's Jacobian against central finite
differences, as PyTorch checks a custom ``Function`` (use float64 inputs)."""
from __future__ import annotations

import warnings

import numpy as np

from graphc.autograd.engine import grad
from graphc.context import no_grad
from graphc.creation import tensor
from graphc.tensor import Tensor


class GradcheckError(RuntimeError):
    """A Jacobian mismatch found by ``gradcheck`` (PyTorch's exception type)."""


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(func, inputs) -> list:
    return [o for o in _as_tuple(func(*inputs)) if isinstance(o, Tensor)]


def _numerical(func, inputs, index, eps) -> list:
    """d outputs / d inputs[index] by central differences: one matrix (input elements x
    output elements) per output."""
    x = inputs[index]
    base = np.array(x.detach().numpy(), dtype=x.dtype.np)
    columns = []
    for k in range(base.size):
        values = []
        for step in (eps, -eps):
            moved = base.copy()
            moved.reshape(-1)[k] += step
            args = list(inputs)
            args[index] = tensor(moved)
            with no_grad():
                values.append([np.array(o.detach().numpy(), dtype=np.float64).reshape(-1)
                               for o in _outputs(func, args)])
        columns.append([(p - m) / (2 * eps) for p, m in zip(*values)])
    n_outputs = len(columns[0]) if columns else len(_outputs(func, inputs))
    return [np.stack([c[i] for c in columns]) if columns else np.zeros((0, 0))
            for i in range(n_outputs)]


def _analytical(outputs, inputs, index) -> list:
    x = inputs[index]
    result = []
    for out in outputs:
        flat = out.reshape(-1)
        matrix = np.zeros((x.numel(), flat.numel()))
        if out.requires_grad and out.dtype.is_floating_point:
            for j in range(flat.numel()):
                g, = grad([flat[j]], [x], retain_graph=True, allow_unused=True)
                if g is not None:
                    matrix[:, j] = np.asarray(g.detach().numpy(), dtype=np.float64).reshape(-1)
        result.append(matrix)
    return result


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              nondet_tol=0.0, check_undefined_grad=True, check_grad_dtypes=False,
              check_batched_grad=False, check_batched_forward_grad=False,
              check_forward_ad=False, check_backward_ad=True, fast_mode=False, masked=None):
    """True when backward's Jacobian of ``func`` at ``inputs`` matches finite differences
    for every input that requires grad; otherwise raises ``GradcheckError`` (or returns
    False without ``raise_exception``)."""
    if check_batched_grad or check_forward_ad or check_batched_forward_grad:
        raise NotImplementedError("gradcheck: batched and forward-mode checks are not "
                                  "supported; use the defaults (check_backward_ad only)")
    inputs = _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype.name != "float64":
            warnings.warn(f"Input #{i} requires gradient and is not a double precision "
                          f"floating point or complex. This check will likely fail if all "
                          f"the inputs are not of double precision floating point or "
                          f"complex. ", stacklevel=2)
    outputs = _outputs(func, inputs)
    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        numerical = _numerical(func, inputs, i, eps)
        analytical = _analytical(outputs, inputs, i)
        for j, (n, a) in enumerate(zip(numerical, analytical)):
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                if not raise_exception:
                    return False
                raise GradcheckError(
                    f"Jacobian mismatch for output {j} with respect to input {i},\n"
                    f"numerical:{tensor(n.astype(x.dtype.np))}\n"
                    f"analytical:{tensor(a.astype(x.dtype.np))}\n")
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, nondet_tol=0.0,
                  check_undefined_grad=True, check_grad_dtypes=False,
                  check_batched_grad=False, check_fwd_over_rev=False,
                  check_rev_over_rev=True, fast_mode=False, masked=False):
    """``gradcheck`` of the gradient of ``func`` (backward of backward), at random
    ``grad_outputs`` unless given."""
    inputs = _as_tuple(inputs)
    outputs = _outputs(func, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(tensor(rng.standard_normal(tuple(o.shape)).astype(o.dtype.np),
                                    requires_grad=True) for o in outputs)
    grad_outputs = _as_tuple(grad_outputs)
    wrt = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    n = len(inputs)

    def first_gradients(*args):
        xs, gs = args[:n], args[n:]
        outs = _outputs(func, xs)
        diff = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        pairs = [(o, g) for o, g in zip(outs, gs) if o.requires_grad]
        result = grad([o for o, _ in pairs], diff, [g for _, g in pairs],
                      create_graph=True, allow_unused=True)
        return tuple(g for g in result if g is not None)

    if not wrt:
        return True
    return gradcheck(first_gradients, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)


__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]
