"""autograd extension points against PyTorch: autograd.Function (eager, and traced with
the user's backward as the gradient rule), tensor hooks, module hooks, autograd.grad
options, inference_mode, autograd.functional."""
import functools
import warnings

import numpy as np
import pytest

import graphc
from harness import assert_close, check_function, check_module, to_numpy, torch

rng = np.random.default_rng(0)


# ---- Function classes, written once for both libraries -------------------------------------------
@functools.cache
def functions(lib):
    """Custom Functions defined with ``lib.autograd.Function``."""
    Function = lib.autograd.Function

    class RoundSTE(Function):
        """round() with a straight-through gradient clipped to [-0.5, 0.5]: not round's
        true (zero) derivative, so differentiating through forward would be wrong."""
        @staticmethod
        def forward(ctx, x):
            return x.round()

        @staticmethod
        def backward(ctx, g):
            return g.clamp(-0.5, 0.5)

    class ScaledExp(Function):
        """Saved tensors, a non-tensor argument, and a backward that uses both."""
        @staticmethod
        def forward(ctx, x, w, scale):
            y = (x * w).exp()
            ctx.save_for_backward(x, w, y)
            ctx.scale = scale
            return y * scale

        @staticmethod
        def backward(ctx, g):
            x, w, y = ctx.saved_tensors
            gy = g * y * ctx.scale
            gx = gy * w if ctx.needs_input_grad[0] else None
            gw = (gy * x).sum(0) if ctx.needs_input_grad[1] else None
            return gx, gw, None

    class SplitSin(Function):
        """Two outputs, new style (forward without ctx, setup_context)."""
        @staticmethod
        def forward(x):
            return x.sin(), x.cos()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, ga, gb):
            x, = ctx.saved_tensors
            return ga * x.cos() - gb * x.sin()

    class ClipGrad(Function):
        """Identity whose backward clips the gradient, and returns too many Nones."""
        @staticmethod
        def forward(ctx, x, bound):
            ctx.bound = bound
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g.clamp(-ctx.bound, ctx.bound), None, None

    return RoundSTE, ScaledExp, SplitSin, ClipGrad


def test_function_straight_through_matches_pytorch_eager_and_compiled_step():
    x = rng.standard_normal((3, 4)).astype(np.float32) * 3
    check_function(lambda lib, a: functions(lib)[0].apply(a * 2.0) ** 2, x)


def test_function_saved_tensors_and_non_tensor_arguments():
    x = rng.standard_normal((5, 3)).astype(np.float32) * 0.5
    w = rng.standard_normal(3).astype(np.float32) * 0.5
    check_function(lambda lib, a, b: functions(lib)[1].apply(a, b, 1.5), x, w)


def test_function_two_outputs_setup_context_and_clipping():
    x = rng.standard_normal((2, 3)).astype(np.float32)
    check_function(lambda lib, a: functions(lib)[2].apply(a), x)
    check_function(lambda lib, a: functions(lib)[3].apply(a * 10, 0.25), x)


def _grads_through_compiled_backward(lib, fn, *arrays):
    """Gradients when only the forward is compiled, so graphc's autodiff pass (not the
    eager engine) makes the backward graph; torch runs eagerly."""
    xs = [lib.tensor(a, requires_grad=True) for a in arrays]
    run = graphc.compile(fn, fullgraph=True) if lib is graphc else fn
    out = run(lib, *xs)
    if lib is graphc:
        assert out.grad_fn.name() == "CompiledFunctionBackward"
    (out * lib.tensor(np.linspace(-1, 2, out.numel(), dtype=np.float32)
                      .reshape(tuple(out.shape)))).sum().backward()
    return [to_numpy(out)] + [to_numpy(x.grad) for x in xs]


@pytest.mark.parametrize("case", ["ste", "saved", "two_outputs", "clip"])
def test_autodiff_pass_uses_the_users_backward(case):
    x = (rng.standard_normal((3, 4)) * 3).astype(np.float32)
    w = (rng.standard_normal(4) * 0.3).astype(np.float32)
    fns = {
        "ste": (lambda lib, a: functions(lib)[0].apply(a * 2.0).exp() * a, (x,)),
        "saved": (lambda lib, a, b: functions(lib)[1].apply(a * 0.1, b, 2.0).tanh(), (x, w)),
        "two_outputs": (lambda lib, a: (lambda s, c: s * c + s)(*functions(lib)[2].apply(a)),
                        (x,)),
        "clip": (lambda lib, a, b: functions(lib)[3].apply(a * b, 0.5).sum(1), (x, w)),
    }
    fn, arrays = fns[case]
    want = _grads_through_compiled_backward(torch, fn, *arrays)
    got = _grads_through_compiled_backward(graphc, fn, *arrays)
    for g, w_ in zip(got, want):
        assert_close(g, w_, 1e-5, 1e-5, case)


def test_function_node_is_ctx_and_reports_like_pytorch():
    for lib in (torch, graphc):
        RoundSTE, ScaledExp, _, _ = functions(lib)
        x = lib.ones(3, requires_grad=True)
        y = ScaledExp.apply(x, lib.ones(3), 2.0)
        assert y.grad_fn.name() == "ScaledExpBackward"
        assert y.grad_fn.scale == 2.0 and y.grad_fn.needs_input_grad == (True, False, False)
        assert len(y.grad_fn.saved_tensors) == 3
        assert not RoundSTE.apply(lib.ones(2)).requires_grad      # no input requires grad
        with lib.no_grad():
            assert RoundSTE.apply(x).grad_fn is None


def _error(fn):
    try:
        fn()
    except Exception as e:     # noqa: BLE001  (the type is compared)
        return type(e), str(e)
    return None


def test_function_errors_match_pytorch():
    def wrong(lib, kind):
        class Wrong(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, k):
                ctx.save_for_backward(x)
                return x * k

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return {"count": (g,), "shape": (g[:2], None), "ok": (g, None)}[kind]
        return Wrong

    for kind in ("count", "shape"):
        errors = []
        for lib in (torch, graphc):
            x = lib.ones(3, requires_grad=True)
            errors.append(_error(lambda: wrong(lib, kind).apply(x, 2.0).sum().backward()))
        assert errors[0] == errors[1], kind
    errors = []
    for lib in (torch, graphc):                 # saved input modified in place
        a = lib.ones(3, requires_grad=True) * 1
        y = wrong(lib, "ok").apply(a, 2.0)
        a.add_(1)
        errors.append(_error(lambda: y.sum().backward()))
    assert errors[1][0] is RuntimeError
    # The same text up to PyTorch's anomaly-mode hint, with graphc's type names.
    assert errors[1][1].replace("graphc.", "torch.") in errors[0][1]
    errors = []
    for lib in (torch, graphc):
        class NoBackward(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2
        x = lib.ones(3, requires_grad=True)
        errors.append(_error(lambda: NoBackward.apply(x).sum().backward()))
    assert errors[0] == errors[1]


def test_function_materialize_non_differentiable_and_dtype():
    seen = {}
    for lib in (torch, graphc):
        class Parts(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, materialize):
                ctx.set_materialize_grads(materialize)
                i = x.argmax()
                ctx.mark_non_differentiable(i)
                return x * 2, i, (x * 3).double()

            @staticmethod
            def backward(ctx, ga, gi, gb):
                seen[lib.__name__, ctx.materialize_grads if lib is graphc else None] = (
                    None if gb is None else to_numpy(gb).tolist())
                return ga.double() * 2, None      # cast back to the input's dtype

        x = lib.ones(3, requires_grad=True)
        a, i, b = Parts.apply(x, True)
        assert not i.requires_grad and b.requires_grad and b.dtype == lib.float64
        a.sum().backward()
        assert x.grad.dtype == lib.float32 and to_numpy(x.grad).tolist() == [2.0] * 3
        a, _, _ = Parts.apply(x, False)
        a.sum().backward()
    assert seen[("graphc", True)] == [0.0] * 3 and seen[("graphc", False)] is None


def test_once_differentiable_blocks_double_backward():
    results = []
    for lib in (torch, graphc):
        class Once(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            @lib.autograd.function.once_differentiable if lib is torch else \
                graphc.autograd.once_differentiable
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return 2 * x * g
        x = lib.ones(3, requires_grad=True)
        g, = lib.autograd.grad(Once.apply(x).sum(), x, create_graph=True)
        results.append((g.requires_grad, to_numpy(g).tolist()))
    assert results[0] == results[1]


# ---- tensor hooks --------------------------------------------------------------------------------
def _hook_run(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    handle = y.register_hook(lambda g: g * 10)
    log = []
    x.register_hook(lambda g: log.append(to_numpy(g).tolist()))
    x.register_hook(lambda g: g + 1)
    x.register_post_accumulate_grad_hook(lambda t: log.append(("post", to_numpy(t.grad).tolist())))
    (y * y).sum().backward(retain_graph=True)
    first = to_numpy(x.grad).tolist(), to_numpy(y.grad).tolist()
    # One input at a time: capturing y together with x gives y's gradient before its
    # hooks in PyTorch (its node must run for x), after them alone.
    captured = [to_numpy(lib.autograd.grad((y * y).sum(), [t], retain_graph=True)[0])
                .tolist() for t in (x, y)]
    handle.remove()
    x.grad = None
    (y * y).sum().backward()
    return first, captured, to_numpy(x.grad).tolist(), log


def test_tensor_hooks_match_pytorch():
    assert _hook_run(graphc) == _hook_run(torch)
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError, match="doesn't require gradient"):
            lib.ones(2).register_hook(lambda g: g)


def test_register_hook_inside_compiled_code():
    """Hooks registered while tracing shape the compiled backward, whether backward runs
    outside the compiled function (autodiff pass) or inside it (a training step)."""
    x = np.array([0.5, 1.0, -2.0], np.float32)
    w = np.array([1.0, 2.0, 3.0], np.float32)

    def f(a, b):
        y = a * b
        z = y.exp()
        y.register_hook(lambda g: g.clamp(-1, 1))
        return (z * y).sum()

    check_function(lambda lib, a, b: f(a, b), x, w)
    results = []
    for lib in (torch, graphc):
        a, b = lib.tensor(x, requires_grad=True), lib.tensor(w, requires_grad=True)
        out = (graphc.compile(f, fullgraph=True) if lib is graphc else f)(a, b)
        out.backward()
        results.append([to_numpy(t) for t in (out, a.grad, b.grad)])
    for g, w_ in zip(*results[::-1]):
        assert_close(g, w_, 1e-5, 1e-6, "hook inside compiled code")


# ---- module hooks --------------------------------------------------------------------------------
def _hooked_linear(lib):
    m = lib.nn.Linear(3, 2)
    m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] + 1,), kwargs),
                                with_kwargs=True, prepend=True)
    m.register_forward_hook(lambda mod, args, out: out * 3)
    m.register_forward_hook(lambda mod, args, kwargs, out: out.tanh(), with_kwargs=True)
    m.register_full_backward_pre_hook(lambda mod, grad_out: (grad_out[0] * 0.5,))
    m.register_full_backward_hook(lambda mod, grad_in, grad_out: (grad_in[0].clamp(-0.1, 0.1),))
    return m


def test_module_hooks_match_pytorch_eager_and_compiled_step():
    check_module(lambda lib: lib.nn.Sequential(_hooked_linear(lib), lib.nn.ReLU()),
                 rng.standard_normal((4, 3)).astype(np.float32))


def test_module_hooks_through_the_autodiff_pass():
    x = rng.standard_normal((4, 3)).astype(np.float32)
    results = []
    for lib in (torch, graphc):
        torch.manual_seed(0)
        m = _hooked_linear(lib)
        if lib is graphc:
            m.load_state_dict({k: graphc.tensor(to_numpy(v)) for k, v in tm.state_dict().items()})
        else:
            tm = m
        xs = lib.tensor(x, requires_grad=True)
        out = (graphc.compile(m, fullgraph=True) if lib is graphc else m)(xs)
        out.pow(2).sum().backward()
        results.append([to_numpy(t) for t in (out, xs.grad, m.weight.grad, m.bias.grad)])
    for g, w in zip(*reversed(results)):
        assert_close(g, w, 1e-5, 1e-6, "hooked module")


def test_module_hook_order_removal_and_errors_match_pytorch():
    def run(lib):
        log = []
        m = lib.nn.Linear(2, 2)
        h1 = m.register_forward_hook(lambda mod, a, o: log.append("f1"))
        m.register_forward_hook(lambda mod, a, o: log.append("f0"), prepend=True)
        m.register_forward_pre_hook(lambda mod, a: log.append("pre"))
        m(lib.ones(2))
        h1.remove()
        m(lib.ones(2))
        bad = lib.nn.Linear(2, 2)
        bad.register_forward_pre_hook(lambda mod, a, k: 3, with_kwargs=True)
        log.append(_error(lambda: bad(lib.ones(2))))
        failing = lib.nn.Linear(2, 2)
        failing.register_forward_hook(lambda mod, a, o: log.append(("always", o)),
                                      always_call=True)
        failing.register_forward_hook(lambda mod, a, o: log.append("never"))
        failing.register_forward_pre_hook(lambda mod, a: 1 / 0)
        log.append(_error(lambda: failing(lib.ones(2)))[0])
        two = lib.nn.Linear(2, 2)
        two.register_full_backward_hook(lambda mod, gi, go: (gi[0], gi[0]))
        x = lib.ones(2, requires_grad=True)
        log.append(_error(lambda: two(x).sum().backward()))
        return log

    assert run(graphc) == run(torch)


def test_backward_hook_arguments_match_pytorch():
    def run(lib):
        log = []

        class Two(lib.nn.Module):
            def forward(self, a, k, b):
                return a * k, b * 2, 5

        t = Two()
        t.register_full_backward_hook(lambda mod, gi, go: log.append(
            ([None if g is None else to_numpy(g).tolist() for g in gi],
             [None if g is None else to_numpy(g).tolist() for g in go])))
        a = lib.ones(2, requires_grad=True)
        b = lib.ones(3, requires_grad=True)
        out = t(a, 3.0, b[1:])                # a view passes the input hook too
        out[0].sum().backward()
        frozen = lib.nn.Linear(2, 1)
        frozen.register_full_backward_hook(lambda mod, gi, go: log.append(("frozen", gi)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frozen(lib.ones(1, 2)).sum().backward()
        return log

    assert run(graphc) == run(torch)


def test_adding_a_hook_after_compiling_recompiles():
    m = graphc.nn.Linear(2, 2)
    run = graphc.compile(m)
    x = graphc.ones(1, 2)
    before = to_numpy(run(x))
    handle = m.register_forward_hook(lambda mod, a, o: o * 0)
    assert to_numpy(run(x)).tolist() == [[0.0, 0.0]]
    handle.remove()
    np.testing.assert_array_equal(to_numpy(run(x)), before)


def test_module_members_and_state_dict_match_pytorch():
    def run(lib):
        m = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.BatchNorm1d(2))
        m[0].register_buffer("scratch", lib.zeros(2), persistent=False)
        out = [list(m.state_dict()), m.get_parameter("0.weight").shape == (2, 2),
               m.get_buffer("1.running_mean").shape == (2,), m.get_buffer("0.scratch").shape]
        for fn, arg in [(m.get_parameter, "0.nope"), (m.get_parameter, "1.running_mean"),
                        (m.get_buffer, "0.weight"), (m.get_buffer, "2.x")]:
            out.append(_error(lambda: fn(arg)))
        m.set_submodule("0", lib.nn.Tanh())
        out.append(repr(m).splitlines()[1])
        state = {k: v for k, v in m.state_dict().items() if k != "1.bias"}
        state["extra"] = lib.zeros(1)
        result = m.load_state_dict(state, strict=False)
        out.append((result.missing_keys, result.unexpected_keys))
        out.append(list(m.state_dict(prefix="model.", keep_vars=True))[:1])
        return [tuple(x) if isinstance(x, graphc.Size) else x for x in out]

    got, want = run(graphc), run(torch)
    assert got[3] == tuple(want[3])
    assert got[:3] + got[4:] == want[:3] + want[4:]


# ---- autograd.grad, inference mode, anomaly, functional -------------------------------------------
def test_grad_materialize_and_allow_unused_match_pytorch():
    out = []
    for lib in (torch, graphc):
        x = lib.ones(3, requires_grad=True)
        w = lib.ones(2, requires_grad=True)
        gs = lib.autograd.grad((x * 2).sum(), [x, w], materialize_grads=True)
        out.append([to_numpy(g).tolist() for g in gs])
        out.append(_error(lambda: lib.autograd.grad((x * 2).sum(), [x, w],
                                                    allow_unused=False,
                                                    materialize_grads=True)))
        out.append(lib.autograd.grad((x * 2).sum(), [x, w], allow_unused=True)[1])
    assert out[:3] == out[3:]


def test_inference_mode_matches_pytorch():
    def run(lib):
        log = []
        x = lib.ones(3, requires_grad=True)
        with lib.inference_mode():
            a = lib.ones(3)
            log.append((lib.is_grad_enabled(), lib.is_inference_mode_enabled()))
            with lib.inference_mode(False):
                log.append(lib.ones(1).is_inference())
            log.append(lib.ones(1).is_inference())
        log += [a.is_inference(), x.is_inference(), lib.is_inference_mode_enabled(),
                a[1:].is_inference(), a.reshape(3, 1).is_inference(), (a * 2).is_inference()]
        log.append(_error(lambda: (a * x).sum().backward()))
        log.append(to_numpy((a + x).sum()).tolist())
        log.append(_error(lambda: a.add_(1)))
        log.append(_error(lambda: a.__setitem__(0, 2.0)))
        log.append(a.clone().add_(1).is_inference())   # (PyTorch writes before it raises)

        @lib.inference_mode()
        def f(t):
            return t * 2

        @lib.inference_mode
        def g(t):
            return t * 2

        log += [f(x).is_inference(), f(x).requires_grad, g(x).is_inference()]
        return log

    assert run(graphc) == run(torch)


def test_detect_anomaly_is_accepted():
    for lib in (torch, graphc):
        lib.autograd.set_detect_anomaly(True)
        assert lib.is_anomaly_enabled()
        lib.autograd.set_detect_anomaly(False)
        with pytest.warns(UserWarning, match="Anomaly Detection"):
            with lib.autograd.detect_anomaly():
                pass
        assert not lib.is_anomaly_enabled()


def test_autograd_functional_matches_pytorch():
    x = rng.standard_normal(3).astype(np.float32)
    v = rng.standard_normal(3).astype(np.float32)

    def run(lib):
        af = lib.autograd.functional
        a, u = lib.tensor(x), lib.tensor(v)
        cube = lambda t: (t ** 3).sum() + (t[0] * t[1])       # noqa: E731
        out = [af.jacobian(lambda t: t.sin() * t[0], a),
               *af.vjp(lambda t: t.exp(), a, u), *af.jvp(lambda t: t.exp() * t[1], a, u),
               af.hessian(cube, a), *af.hvp(cube, a, u), *af.vhp(cube, a, u),
               *[j for js in af.jacobian(lambda p, q: (p * q, p + q.sum()), (a, u))
                 for j in js]]
        return [to_numpy(t) for t in out]

    for g, w in zip(run(graphc), run(torch)):
        assert_close(g, w, 1e-5, 1e-5, "functional")


def test_gradcheck_matches_pytorch():
    x = rng.standard_normal(3)

    def run(lib):
        class Wrong(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                return a.sin()

            @staticmethod
            def backward(ctx, g):
                return g

        a = lib.tensor(x, requires_grad=True)
        b = lib.tensor(x * 2, requires_grad=True)
        gc = lib.autograd.gradcheck
        out = [gc(lambda p: p.sin(), (a,)), gc(lambda p, q: (p * q, p.sum()), (a, b)),
               gc(Wrong.apply, (a,), raise_exception=False),
               lib.autograd.gradgradcheck(lambda p: p.sin() * p, (a,))]
        err = _error(lambda: gc(Wrong.apply, (a,)))
        return out, err[0].__name__, err[1].split("\n")[0]

    assert run(graphc) == run(torch)


# ---- more Function cases: parameters, in-place forward, global module hooks ----------------------
def _mul_weight_model(lib):
    class MulW(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x * w

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return (g * w).clamp(-0.1, 0.1), (g * x).sum(0)

    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = lib.nn.Parameter(lib.ones(3) * 0.5)
            self.fc = lib.nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(MulW.apply(x, self.w).tanh())

    return Model()


def test_function_on_a_parameter_in_a_module():
    """The parameter is lifted while tracing: the saved value is the graph's."""
    check_module(_mul_weight_model, rng.standard_normal((4, 3)).astype(np.float32))


def test_function_mark_dirty_matches_pytorch():
    def run(lib):
        class AddOne(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                x.add_(1)
                ctx.mark_dirty(x)
                return x

            @staticmethod
            def backward(ctx, g):
                return g * 3

        a = lib.ones(3, requires_grad=True)
        b = a * 2
        c = AddOne.apply(b)
        (c * c).sum().backward()
        return c is b, b.grad_fn.name(), to_numpy(c).tolist(), to_numpy(a.grad).tolist()

    assert run(graphc) == run(torch)


def test_global_module_forward_hook_matches_pytorch():
    def run(lib, register):
        log = []
        handle = register(lambda mod, args, out: log.append(type(mod).__name__))
        try:
            lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.ReLU())(lib.ones(1, 2))
        finally:
            handle.remove()
        lib.nn.Linear(2, 2)(lib.ones(1, 2))
        return log

    assert run(graphc, graphc.nn.hooks.register_module_forward_hook) == \
        run(torch, torch.nn.modules.module.register_module_forward_hook)


def test_leaf_hooks_in_a_compiled_training_step_and_added_later():
    def run(lib, compiled):
        m = lib.nn.Linear(3, 2)
        with lib.no_grad():
            m.weight.copy_(lib.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) / 10))
            m.bias.zero_()
        m.weight.register_hook(lambda g: g.clamp(-0.5, 0.5))

        def step(x):
            loss = m(x).pow(2).sum()
            loss.backward()
            return loss

        run_step = graphc.compile(step, fullgraph=True) if compiled else step
        grads = []
        for i in range(3):
            if i == 2:
                m.bias.register_hook(lambda g: g * 0 + 1)     # after compiling
            m.zero_grad()
            run_step(lib.ones(4, 3))
            grads.append([to_numpy(m.weight.grad).tolist(), to_numpy(m.bias.grad).tolist()])
        return grads

    want = run(torch, False)
    assert run(graphc, False) == want
    got = run(graphc, True)
    def flat(grads):
        return [np.concatenate([np.ravel(w), np.ravel(b)]) for w, b in grads]

    np.testing.assert_allclose(flat(got), flat(want), rtol=1e-6)


def test_function_double_backward_and_nesting_through_the_autodiff_pass():
    x = rng.standard_normal((2, 3)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)

    def fns(lib):
        _, ScaledExp, _, ClipGrad = functions(lib)

        class Matmul(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a, b):
                ctx.save_for_backward(a, b)
                return a @ b

            @staticmethod
            def backward(ctx, g):
                a, b = ctx.saved_tensors
                return g @ b.T, a.T @ g
        return ScaledExp, ClipGrad, Matmul

    def f(lib, a, b):
        ScaledExp, ClipGrad, Matmul = fns(lib)
        y = ScaledExp.apply(ClipGrad.apply(a, 0.3) * 0.2, a[0] * 0.1, 1.0)   # nested
        unused = Matmul.apply(a, b) * 2                                       # noqa: F841
        return Matmul.apply(y + a, b).tanh() * 3

    want = _grads_through_compiled_backward(torch, f, x, w)
    got = _grads_through_compiled_backward(graphc, f, x, w)
    for g, w_ in zip(got, want):
        assert_close(g, w_, 1e-5, 1e-5, "nested Functions")
    hessians = []
    for lib in (torch, graphc):
        _, _, Matmul = fns(lib)
        hessians.append(to_numpy(lib.autograd.functional.hessian(
            lambda a: Matmul.apply(a.reshape(2, 3), lib.tensor(w)).pow(3).sum(),
            lib.tensor(x.reshape(-1)))))
    assert_close(hessians[1], hessians[0], 1e-4, 1e-4, "hessian through a Function")


def test_state_dict_hooks_match_pytorch():
    def run(lib):
        log = []
        m = lib.nn.Sequential(lib.nn.Linear(2, 2))
        m[0].register_state_dict_pre_hook(lambda mod, prefix, keep: log.append((prefix, keep)))
        m[0].register_state_dict_post_hook(
            lambda mod, sd, prefix, meta: log.append((prefix, list(sd), meta)))
        m._register_state_dict_hook(
            lambda mod, sd, prefix, meta: {k.replace("weight", "W"): v for k, v in sd.items()})
        log.append(list(m.state_dict(prefix="p.")))
        handle = m.register_state_dict_post_hook(lambda mod, sd, prefix, meta: {})
        log.append(_error(m.state_dict))
        handle.remove()
        loaded = lib.nn.Sequential(lib.nn.Linear(2, 2))
        loaded[0].register_load_state_dict_post_hook(
            lambda mod, keys: keys.missing_keys.remove("0.bias"))
        log.append(repr(loaded.load_state_dict({"0.weight": lib.zeros(2, 2)})))
        return log

    assert run(graphc) == run(torch)


def test_gradient_reversal_layer_returning_a_view():
    """DANN's gradient reversal: forward returns ``x.view_as(x)``, backward negates."""
    def grl(lib):
        class GradReverse(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, alpha):
                ctx.alpha = alpha
                return x.view_as(x)

            @staticmethod
            def backward(ctx, grad):
                return grad.neg() * ctx.alpha, None
        return GradReverse

    x = rng.standard_normal((3, 2)).astype(np.float32)
    check_function(lambda lib, a: grl(lib).apply(a.tanh(), 0.7) * a, x)
    want = _grads_through_compiled_backward(torch, lambda lib, a: grl(lib).apply(a, 0.7) * a, x)
    got = _grads_through_compiled_backward(graphc, lambda lib, a: grl(lib).apply(a, 0.7) * a, x)
    for g, w in zip(got, want):
        assert_close(g, w, 1e-6, 1e-6, "gradient reversal")


def test_hooks_on_the_compiled_module_itself():
    m = graphc.nn.Linear(2, 2)
    compiled = graphc.compile(m)
    log = []
    handle = compiled.register_forward_hook(lambda mod, args, out: log.append(mod))
    compiled(graphc.ones(1, 2))
    compiled(graphc.ones(1, 2))
    handle.remove()
    compiled(graphc.ones(1, 2))
    assert log == [compiled, compiled] and m._hook_state == 0
