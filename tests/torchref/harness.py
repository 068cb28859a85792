"""The PyTorch-vs-graphc differential harness: one way to check a layer, a function, an
optimizer or a scheduler against real PyTorch, eagerly and through ``graphc.compile``.

Every check builds the same thing twice, once with ``torch`` and once with ``graphc``
(the test passes a function of the library: ``lambda lib: lib.nn.Conv1d(3, 4, 2)``),
gives both the same weights and inputs, and compares:

- ``check_module``: state_dict keys, forward outputs, a loss, the parameter and input
  gradients, and the parameters after a few optimizer steps; then the same training step
  through ``graphc.compile`` on each compiled mode (``cpu``, ``interpreter``).
- ``check_function``: outputs and input gradients of ``fn(lib, *tensors)``; eagerly and
  compiled.
- ``check_optimizer``: parameters and state_dict layout after steps of an optimizer (and
  scheduler) on a fixed loss; eagerly and with the step compiled.

PyTorch is a test-only dependency: importing this module skips the test module where it
is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc

torch = pytest.importorskip("torch")

COMPILED = ("cpu", "interpreter")
"""The compiled modes every check runs (``mode`` names a graphc backend).  Compiled with
``fullgraph=True``: a graph break fails the check instead of quietly running eagerly."""


# ---- conversions -------------------------------------------------------------------------------
def to_numpy(t) -> np.ndarray:
    """A torch or graphc tensor (or a number) as a numpy array."""
    if isinstance(t, (torch.Tensor, graphc.Tensor)):
        t = t.detach()
        if isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16:
            t = t.float()
        return np.array(t.numpy())
    return np.asarray(t)


def from_numpy(lib, a: np.ndarray, requires_grad=False):
    """A fresh tensor of ``lib`` holding a copy of ``a``."""
    t = lib.tensor(np.array(a))
    return t.requires_grad_(True) if requires_grad else t


def leaves(out) -> list:
    """The tensors of a (nested) output, in order: tuples, lists, dicts, named tuples."""
    if isinstance(out, (torch.Tensor, graphc.Tensor)):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in leaves(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in leaves(v)]
    return []


def assert_close(got, want, rtol, atol, what=""):
    """graphc's value ``got`` equals PyTorch's ``want``: shape, dtype and values (NaN where
    PyTorch has NaN)."""
    g, w = to_numpy(got), to_numpy(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != PyTorch's {w.shape}"
    if not (isinstance(want, torch.Tensor) and want.dtype == torch.bfloat16):
        assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} != PyTorch's {w.dtype}"
    if w.dtype == bool or w.dtype.kind in "iu":
        np.testing.assert_array_equal(g, w, err_msg=what)
    else:
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                   atol=atol, equal_nan=True, err_msg=what)


def _weights_for(lib, outs, seed=0) -> list[np.ndarray]:
    """Fixed random cotangents, one per floating output, so a loss reaches every element
    (drawn from the shapes alone, so a traced output gives the same ones)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(o.shape)).astype(
                np.float64 if o.dtype == lib.float64 else np.float32)
            if o.dtype.is_floating_point else None for o in outs]


def _loss(lib, outs, weights):
    terms = [(o * from_numpy(lib, w)).sum() for o, w in zip(outs, weights)
             if w is not None and o.requires_grad]
    return sum(terms[1:], terms[0]) if terms else None


def _inputs(lib, arrays, grad):
    return [from_numpy(lib, a, grad and np.asarray(a).dtype.kind == "f") for a in arrays]


# ---- modules ------------------------------------------------------------------------------------
def check_module(make, *inputs, modes=COMPILED, rtol=1e-5, atol=1e-6, steps=2, lr=0.1,
                 train=True, input_grads=True, forward=None, seed=0):
    """``make(lib)`` builds the module with ``lib`` = torch or graphc (same arguments).
    graphc's copy loads PyTorch's state_dict; both run ``forward(module, *tensors)``
    (default: ``module(*tensors)``) on ``inputs`` (numpy arrays; float ones require grad
    when ``input_grads``), and everything is compared; then ``steps`` SGD steps.  The same
    training step is compiled with ``graphc.compile`` on every mode in ``modes``."""
    forward = forward or (lambda m, *xs: m(*xs))
    torch.manual_seed(seed)
    tm = make(torch)
    tm.train(train)
    state = {k: to_numpy(v) for k, v in tm.state_dict().items()}
    ref = _train(torch, tm, forward, inputs, steps, lr, input_grads, seed)

    def fresh():
        gm = make(graphc)
        assert list(gm.state_dict()) == list(state), \
            f"state_dict keys {list(gm.state_dict())} != PyTorch's {list(state)}"
        gm.load_state_dict({k: graphc.tensor(v) for k, v in state.items()})
        gm.train(train)
        return gm

    _compare(_train(graphc, fresh(), forward, inputs, steps, lr, input_grads, seed), ref,
             rtol, atol, "eager")
    for mode in modes:
        got = _train(graphc, fresh(), forward, inputs, steps, lr, input_grads, seed,
                     compile_as=mode)
        _compare(got, ref, rtol, atol, f"compiled ({mode})")


def _train(lib, module, forward, arrays, steps, lr, input_grads, seed, compile_as=None):
    """Outputs, input and parameter gradients of the first step; parameters after
    ``steps`` SGD steps on the same inputs."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = lib.optim.SGD(params, lr=lr) if params else None
    xs = _inputs(lib, arrays, input_grads)
    weights = []

    def step(*xs):
        if opt is not None:
            opt.zero_grad()
        outs = leaves(forward(module, *xs))
        weights[:] = weights or _weights_for(lib, outs, seed)
        loss = _loss(lib, outs, weights)
        if loss is not None:
            loss.backward()
        if opt is not None:
            opt.step()
        return outs

    run = graphc.compile(step, backend=compile_as, fullgraph=True) if compile_as else step
    first_params = {n: to_numpy(p) for n, p in module.named_parameters()}
    outs = [to_numpy(o) for o in run(*xs)]
    result = {"outputs": outs,
              "input grads": [to_numpy(x.grad) if x.grad is not None else None for x in xs],
              "param grads": {n: to_numpy(p.grad) if p.grad is not None else None
                              for n, p in module.named_parameters()},
              "first params": first_params}
    for _ in range(steps - 1):
        run(*_inputs(lib, arrays, input_grads))
    result["params"] = {n: to_numpy(p) for n, p in module.named_parameters()}
    result["buffers"] = {n: to_numpy(b) for n, b in module.named_buffers()}
    return result


def _compare(got, want, rtol, atol, how):
    assert len(got["outputs"]) == len(want["outputs"]), \
        f"{how}: {len(got['outputs'])} outputs, PyTorch has {len(want['outputs'])}"
    for i, (g, w) in enumerate(zip(got["outputs"], want["outputs"])):
        assert_close(g, w, rtol, atol, f"{how}: output {i}")
    for i, (g, w) in enumerate(zip(got["input grads"], want["input grads"])):
        assert (g is None) == (w is None), f"{how}: input {i} gradient {g} vs {w}"
        if w is not None:
            assert_close(g, w, rtol, atol, f"{how}: gradient of input {i}")
    for key in ("param grads", "params", "buffers"):
        assert list(got[key]) == list(want[key]), f"{how}: {key} names differ"
        for name, w in want[key].items():
            g = got[key][name]
            assert (g is None) == (w is None), f"{how}: {key} {name}: {g} vs {w}"
            if w is not None:
                assert_close(g, w, rtol, atol, f"{how}: {key} {name}")


# ---- functions ----------------------------------------------------------------------------------
def check_function(fn, *inputs, modes=COMPILED, rtol=1e-5, atol=1e-6, grad=True, seed=0):
    """``fn(lib, *tensors)`` (``lib`` = torch or graphc) gives the same outputs and input
    gradients, eagerly and compiled on every mode in ``modes``.  ``inputs`` are numpy
    arrays (float ones require grad when ``grad``) or other values passed as they are."""
    want = _call(torch, fn, inputs, grad, seed)
    _compare_call(_call(graphc, fn, inputs, grad, seed), want, rtol, atol, "eager")
    for mode in modes:
        _compare_call(_call(graphc, fn, inputs, grad, seed, compile_as=mode), want, rtol,
                      atol, f"compiled ({mode})")
    return want


def _call(lib, fn, inputs, grad, seed, compile_as=None):
    arrays = [i for i in inputs if isinstance(i, np.ndarray)]
    xs = _inputs(lib, arrays, grad)
    it = iter(xs)
    args = [next(it) if isinstance(i, np.ndarray) else i for i in inputs]
    weights = []

    def run(*args):
        outs = leaves(fn(lib, *args))
        weights[:] = weights or _weights_for(lib, outs, seed)
        loss = _loss(lib, outs, weights) if grad else None
        if loss is not None:
            loss.backward()
        return outs

    if compile_as:
        run = graphc.compile(run, backend=compile_as, fullgraph=True)
    outs = [to_numpy(o) for o in run(*args)]
    return outs, [to_numpy(x.grad) if x.grad is not None else None for x in xs]


def _compare_call(got, want, rtol, atol, how):
    (go, gg), (wo, wg) = got, want
    assert len(go) == len(wo), f"{how}: {len(go)} outputs, PyTorch has {len(wo)}"
    for i, (g, w) in enumerate(zip(go, wo)):
        assert_close(g, w, rtol, atol, f"{how}: output {i}")
    for i, (g, w) in enumerate(zip(gg, wg)):
        assert (g is None) == (w is None), f"{how}: gradient of input {i}: {g} vs {w}"
        if w is not None:
            assert_close(g, w, rtol, atol, f"{how}: gradient of input {i}")


# ---- optimizers and schedulers ------------------------------------------------------------------
def check_optimizer(make_opt, *, make_sched=None, steps=5, modes=COMPILED, rtol=1e-5,
                    atol=1e-6, sched_step=None, groups=False):
    """``make_opt(lib, params)`` builds an optimizer over two float32 parameters (in two
    param groups when ``groups``: pass ``params`` straight to it, it is already the list
    of groups), ``make_sched(lib, opt)`` an optional scheduler stepped after each
    optimizer step (``sched_step(sched, loss)`` when it needs arguments, like
    ReduceLROnPlateau).  The loss is a fixed non-quadratic function of the parameters.
    Compares parameters and learning rates after every step, and the state_dict layout
    (keys of ``state`` and ``param_groups``) at the end; eagerly and compiled (the
    optimizer step compiled with ``graphc.compile``; the scheduler stays eager)."""
    want = _optimize(torch, make_opt, make_sched, steps, sched_step, groups)
    _compare_opt(_optimize(graphc, make_opt, make_sched, steps, sched_step, groups), want,
                 rtol, atol, "eager")
    for mode in modes:
        _compare_opt(_optimize(graphc, make_opt, make_sched, steps, sched_step, groups,
                               compile_as=mode), want, rtol, atol, f"compiled ({mode})")


def _optimize(lib, make_opt, make_sched, steps, sched_step, groups, compile_as=None):
    rng = np.random.default_rng(1)
    w = from_numpy(lib, rng.standard_normal((3, 4)).astype(np.float32), True)
    b = from_numpy(lib, rng.standard_normal(4).astype(np.float32), True)
    x = from_numpy(lib, rng.standard_normal((5, 3)).astype(np.float32))
    params = [{"params": [w]}, {"params": [b], "lr": 0.05}] if groups else [w, b]
    opt = make_opt(lib, params)
    sched = make_sched(lib, opt) if make_sched else None

    def closure():
        opt.zero_grad()
        loss = ((x @ w + b).tanh() ** 2).sum() + (w ** 4).sum() * 0.01
        loss.backward()
        return loss

    def step():
        loss = closure()
        opt.step()
        return loss

    if isinstance(opt, lib.optim.LBFGS if hasattr(lib.optim, "LBFGS") else ()):
        def step():   # noqa: F811  (LBFGS re-evaluates the loss through the closure)
            return opt.step(closure)
    run = graphc.compile(step, backend=compile_as, fullgraph=True) if compile_as else step
    history = []
    for _ in range(steps):
        loss = run()
        if sched is not None:
            sched_step(sched, float(loss)) if sched_step else sched.step()
        history.append({"w": to_numpy(w), "b": to_numpy(b), "loss": float(loss.detach()),
                        "lrs": [g["lr"] for g in opt.param_groups]})
    state = opt.state_dict()
    layout = {"state": {k: sorted(v) for k, v in state["state"].items()},
              "param_groups": [sorted(g) for g in state["param_groups"]]}
    if sched is not None:
        layout["scheduler"] = sorted(k for k in sched.state_dict() if not k.startswith("_"))
    return history, layout


def _compare_opt(got, want, rtol, atol, how):
    (gh, gl), (wh, wl) = got, want
    for i, (g, w) in enumerate(zip(gh, wh)):
        for key in ("w", "b"):
            assert_close(g[key], w[key], rtol, atol, f"{how}: {key} after step {i + 1}")
        np.testing.assert_allclose(g["loss"], w["loss"], rtol=rtol, atol=atol,
                                   err_msg=f"{how}: loss at step {i + 1}")
        np.testing.assert_allclose(g["lrs"], w["lrs"], rtol=1e-12,
                                   err_msg=f"{how}: learning rates after step {i + 1}")
    assert gl == wl, f"{how}: state_dict layout {gl} != PyTorch's {wl}"
