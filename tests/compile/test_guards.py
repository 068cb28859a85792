"""Compiled code never silently differs from eager: guards on what a trace read
(globals, closures, module attributes and members, optimizers), recompiles you can see
(the ``recompiles`` log, the recompile limit), and values that change every call
(optimizer hyperparameters, number arguments) as runtime inputs."""
import enum
import gc
import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest

import graphc
from graphc import nn


def close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(a.detach().numpy() if isinstance(a, graphc.Tensor)
                                          else a),
                               np.asarray(b.detach().numpy() if isinstance(b, graphc.Tensor)
                                          else b), rtol=1e-5, atol=1e-6, **kw)


# ---- stale globals, closures, attributes, parameters -------------------------------------------
SCALE = 2.0
MODE = "relu"


class Act(enum.Enum):
    RELU = 1
    TANH = 2


ACT = Act.RELU


def test_a_changed_global_number_recompiles():
    global SCALE
    f = graphc.compile(lambda x: x * SCALE)
    x = graphc.ones(3)
    try:
        close(f(x), [2.0] * 3)
        SCALE = 5.0
        close(f(x), [5.0] * 3)
        assert f.compile_count == 2
        SCALE = 2.0
        close(f(x), [2.0] * 3)
        assert f.compile_count == 2            # the first program fits again
    finally:
        SCALE = 2.0


def test_changed_global_strings_and_enums_recompile():
    global MODE, ACT

    def g(x):
        y = x.relu() if MODE == "relu" else x.tanh()
        return y * 2 if ACT is Act.RELU else y * 3

    f = graphc.compile(g)
    x = graphc.tensor([-1.0, 0.5])
    try:
        close(f(x), g(x))
        MODE, ACT = "tanh", Act.TANH
        close(f(x), g(x))
        assert f.compile_count == 2
    finally:
        MODE, ACT = "relu", Act.RELU


HELPER_WEIGHT = None


def test_a_global_tensor_is_lifted_and_its_rebinding_recompiles():
    global HELPER_WEIGHT
    HELPER_WEIGHT = graphc.ones(3)
    f = graphc.compile(lambda x: x * HELPER_WEIGHT)
    x = graphc.full((3,), 2.0)
    close(f(x), [2.0] * 3)
    HELPER_WEIGHT.mul_(3)                       # in place: read afresh, no recompile
    close(f(x), [6.0] * 3)
    assert f.compile_count == 1
    HELPER_WEIGHT = graphc.zeros(3)             # a new object: recompile
    close(f(x), [0.0] * 3)
    assert f.compile_count == 2


def test_a_changed_closure_variable_recompiles():
    scale = 2.0

    def g(x):
        return x * scale

    f = graphc.compile(g)
    x = graphc.ones(2)
    close(f(x), [2.0, 2.0])
    scale = 7.0
    close(f(x), [7.0, 7.0])
    assert f.compile_count == 2


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.use_relu = True

    def forward(self, x):
        y = self.fc(x)
        return y.relu() if self.use_relu else y


def test_a_changed_module_attribute_recompiles():
    graphc.manual_seed(0)
    m = Gated()
    c = graphc.compile(m)
    x = graphc.randn(4, 3)
    close(c(x), m(x))
    m.use_relu = False
    close(c(x), m(x))
    assert (c(x).detach().numpy() < 0).any()
    assert c.compile_count == 2


class Flagged(nn.Module):
    """Sets a flag in forward and reads it afterwards, as DistributedDataParallel does
    for whether its backward averages."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.busy = False

    def forward(self, x):
        self.busy = True
        y = self.lin(x) * (2.0 if self.busy else 3.0)
        self.busy = False
        return y


def test_an_attribute_the_trace_sets_before_reading_it_is_not_guarded():
    graphc.manual_seed(0)
    m = Flagged()
    c = graphc.compile(m)
    x = graphc.randn(4, 3)
    for _ in range(3):
        close(c(x), m(x))
    assert c.compile_count == 1            # a guard on busy would see False -> recompile


def test_leaky_relu_negative_slope_change_recompiles():
    act = nn.LeakyReLU(0.1)
    c = graphc.compile(act)
    x = graphc.tensor([-1.0, 2.0])
    close(c(x), [-0.1, 2.0])
    act.negative_slope = 0.5
    close(c(x), [-0.5, 2.0])


def test_a_replaced_parameter_or_submodule_recompiles():
    graphc.manual_seed(0)
    m = nn.Linear(3, 2)
    c = graphc.compile(m)
    x = graphc.randn(4, 3)
    close(c(x), m(x))
    m.weight = nn.Parameter(graphc.zeros(2, 3))
    close(c(x), m.bias.expand(4, 2))
    assert c.compile_count == 2
    seq = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    cs = graphc.compile(seq)
    close(cs(x), seq(x))
    seq[1] = nn.Tanh()
    close(cs(x), seq(x))
    seq.append(nn.Linear(3, 1))
    assert cs(x).shape == (4, 1)
    assert cs.compile_count == 3


def test_an_unchanged_model_pays_no_module_guard_checks():
    m = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    c = graphc.compile(m)
    x = graphc.randn(2, 3)
    c(x)
    c(x)
    (entry,) = c._compiled.history
    assert len(entry.guards.on_modules) >= 1
    checked = entry.guards.passed_at
    c(x)
    assert entry.guards.passed_at == checked   # nothing changed: module guards skipped


# ---- BatchNorm in training mode, double backward -----------------------------------------------
def test_batchnorm_in_training_mode_compiles_with_a_backward():
    graphc.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    eager = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    eager.load_state_dict(m.state_dict())
    c = graphc.compile(m)
    x = graphc.randn(8, 4)
    out = c(x)
    assert out.grad_fn is not None
    out.sum().backward()
    eager(x).sum().backward()
    for p, q in zip(m.parameters(), eager.parameters()):
        close(p.grad, q.grad)
    close(m[1].running_mean, eager[1].running_mean)
    close(m[1].running_var, eager[1].running_var)
    assert int(m[1].num_batches_tracked) == 1


def test_double_backward_through_a_compiled_module_is_differentiable():
    graphc.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    c = graphc.compile(m)
    x = graphc.randn(4, 3, requires_grad=True)
    xe = x.detach().clone().requires_grad_()
    (g,) = graphc.autograd.grad(c(x).sum(), x, create_graph=True)
    (ge,) = graphc.autograd.grad(m(xe).sum(), xe, create_graph=True)
    assert g.requires_grad
    close(g, ge)
    (g2,) = graphc.autograd.grad((g ** 2).sum(), x)
    (g2e,) = graphc.autograd.grad((ge ** 2).sum(), xe)
    close(g2, g2e)


def test_detach_inside_compiled_code_stops_the_gradient():
    x = graphc.randn(3, requires_grad=True)
    graphc.compile(lambda x: x.detach() * x)(x).sum().backward()
    close(x.grad, x.detach())


# ---- values that change every step are inputs --------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("make_opt", [
    lambda ps: graphc.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
    lambda ps: graphc.optim.Adam(ps, lr=0.01),
    lambda ps: graphc.optim.AdamW(ps, lr=0.01),
    lambda ps: graphc.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: graphc.optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
], ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_a_learning_rate_scheduler_never_recompiles(make_opt):
    def run(compiled):
        graphc.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        opt = make_opt(model.parameters())
        sched = graphc.optim.lr_scheduler.StepLR(opt, 1, gamma=0.8)
        x, y = graphc.randn(16, 4), graphc.randn(16, 1)

        def step(x, y):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss

        step = graphc.compile(step) if compiled else step
        losses = []
        for _ in range(20):
            losses.append(float(step(x, y)))
            sched.step()
        return losses, model, step

    eager_losses, eager_model, _ = run(False)
    losses, model, step = run(True)
    assert step.compile_count <= 2
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-4, atol=1e-6)
    for p, q in zip(model.parameters(), eager_model.parameters()):
        close(p, q, )


def test_a_changing_float_argument_becomes_a_runtime_input():
    f = graphc.compile(lambda x, s: x * s + s)
    x = graphc.ones(3)
    for i in range(20):
        s = 0.5 + i
        close(f(x, s), [2 * s] * 3)
    assert f.compile_count == 2


def test_a_dynamic_number_promotes_like_a_python_number():
    f = graphc.compile(lambda x, s: x * s)
    ints = graphc.tensor([1, 2, 3])
    for s in (0.5, 1.5, 2.5):
        out = f(ints, s)
        assert out.dtype == graphc.float32       # int tensor * Python float: float32
        close(out, ints.numpy() * s)
    x64 = graphc.ones(2, dtype=graphc.float64)
    for s in (0.1, 0.2):
        out = f(x64, s)
        assert out.dtype == graphc.float64 and out.numpy()[0] == s   # full double precision


def test_a_number_used_as_a_python_value_stays_a_constant():
    def g(x, n):
        for _ in range(n):
            x = x * 2
        return x

    f = graphc.compile(g)
    x = graphc.ones(2)
    for n in (1, 2, 3):
        close(f(x, n), [2.0 ** n] * 2)
    assert f.compile_count == 3


def test_dynamic_false_specialises_every_value_and_true_never_does():
    f = graphc.compile(lambda x, s: x * s, dynamic=False)
    g = graphc.compile(lambda x, s: x * s, dynamic=True)
    x = graphc.ones(2)
    for s in (1.0, 2.0, 3.0):
        close(f(x, s), [s, s])
        close(g(x, s), [s, s])
    assert f.compile_count == 3 and g.compile_count == 1


# ---- arguments as PyTorch takes them -----------------------------------------------------------
def test_nested_containers_and_keyword_arguments():
    def g(pair, opts, *, mask=None, scale=1.0):
        a, (b, c) = pair
        out = (a + b * c + opts["bias"]) * scale
        return {"out": out if mask is None else out * mask, "parts": [a, b]}

    f = graphc.compile(g)
    a, b, c = graphc.randn(3), graphc.randn(3), graphc.randn(3)
    bias, mask = graphc.randn(3), graphc.tensor([1.0, 0.0, 1.0])
    for _ in range(3):
        got = f((a, [b, c]), {"bias": bias}, mask=mask, scale=2.0)
        want = g((a, [b, c]), {"bias": bias}, mask=mask, scale=2.0)
        close(got["out"], want["out"])
        assert isinstance(got["parts"], list)
    assert f.compile_count == 1
    close(f((a, [b, c]), {"bias": bias})["out"], g((a, [b, c]), {"bias": bias})["out"])
    assert f.compile_count == 2


def test_the_cache_never_keeps_argument_tensors_alive():
    import weakref
    f = graphc.compile(lambda pair: pair[0] + pair[1])
    refs = []
    for _ in range(20):
        a, b = graphc.randn(64), graphc.randn(64)
        f((a, b))
        refs.append(weakref.ref(a))
    del a, b
    gc.collect()
    assert all(r() is None for r in refs)
    assert f.compile_count == 1 and len(f.cache) == 1


def test_a_module_method_decorated_with_compile():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        @graphc.compile
        def forward(self, x, scale=1.0):
            return self.fc(x) * scale

    graphc.manual_seed(0)
    a, b = Net(), Net()
    x = graphc.randn(4, 3)
    close(a(x), a.fc(x))
    close(b(x, scale=3.0), b.fc(x) * 3)          # another instance: its own parameters
    out = a(x)
    out.sum().backward()
    assert a.fc.weight.grad is not None


def test_decorator_factory_and_pytorch_options():
    @graphc.compile(fullgraph=True, mode="max-autotune", dynamic=False)
    def f(x):
        return x.sin()

    close(f(graphc.zeros(2)), [0.0, 0.0])
    assert graphc.compile(f.fn, disable=True) is f.fn
    g = graphc.compile(lambda x: x + 1, options={"recompile_limit": 2, "fuse": False})
    assert g.recompile_limit == 2 and g.fuse is False
    with pytest.raises(RuntimeError, match="Unrecognized mode"):
        graphc.compile(lambda x: x, mode="fastest")
    with pytest.raises(RuntimeError, match="Unexpected optimization option"):
        graphc.compile(lambda x: x, options={"bogus": 1})


def test_fullgraph_raises_on_a_graph_break():
    @graphc.compile(fullgraph=True)
    def f(x):
        return x * 2 if x.sum() > 0 else x

    with pytest.raises(graphc.GraphBreak):
        f(graphc.ones(2))


# ---- visible recompiles ------------------------------------------------------------------------
def test_recompiles_log_names_the_failing_guard(caplog):
    global SCALE
    graphc.set_logs(recompiles=True)
    log = logging.getLogger("graphc.recompiles")
    log.addHandler(caplog.handler)
    try:
        f = graphc.compile(lambda x: x * SCALE)
        x = graphc.ones(2)
        f(x)
        SCALE = 3.0
        f(x)
        f(graphc.ones(3))
    finally:
        SCALE = 2.0
        log.removeHandler(caplog.handler)
        graphc.set_logs(recompiles=False)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "global SCALE: 2.0 -> 3.0" in messages[0]
    assert "args[0]" in messages[1] and "[2]" in messages[1] and "[3]" in messages[1]


@pytest.mark.slow
def test_graphc_logs_environment_prints_one_line_per_recompile():
    script = ("import graphc\n"
              "f = graphc.compile(lambda x: x * 2)\n"
              "for n in range(1, 4):\n"
              "    f(graphc.ones(n))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**__import__("os").environ, "GRAPHC_LOGS": "recompiles"},
                          timeout=120)
    lines = [l for l in done.stderr.splitlines() if l.startswith("[graphc.recompiles]")]
    assert len(lines) == 2, done.stderr
    assert "shape=[1]" in lines[0] and "shape=[2]" in lines[0]


def test_the_ninth_recompile_warns_once_and_runs_eagerly():
    f = graphc.compile(lambda x: x * 2, backend="interpreter")
    for n in range(1, 10):                      # one compile and eight recompiles
        f(graphc.ones(n))
    assert f.compile_count == 9
    with pytest.warns(UserWarning, match="recompile limit") as record:
        out = f(graphc.ones(10))
        f(graphc.ones(11))
    assert len(record) == 1 and "args[0]" in str(record[0].message)
    close(out, [2.0] * 10)
    assert f.compile_count == 9
    close(f(graphc.ones(3)), [2.0] * 3)          # cached programs still run


# ---- explain -----------------------------------------------------------------------------------
def test_explain_has_no_side_effects_and_covers_the_whole_step():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = graphc.optim.SGD(model.parameters(), lr=0.1)
    x, y = graphc.randn(16, 4), graphc.randn(16, 1)

    def step(x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    before = [p.detach().clone() for p in model.parameters()]
    report = graphc.explain(step, x, y)
    assert all(p.grad is None for p in model.parameters())
    for p, b in zip(model.parameters(), before):
        close(p, b)
    assert "kernels" in report and "guards" in report and "matmul" in report
    assert "param_groups[0]['lr'] != 0" in report
    step(x, y)                                   # eager still works afterwards
    assert all(p.grad is not None for p in model.parameters())


def test_explain_reports_a_graph_break_with_its_line():
    def f(x):
        return x * 2 if x.sum() > 0 else x

    report = graphc.explain(f, graphc.ones(2))
    assert "graph break" in report and "test_guards.py:" in report


def test_log_channels_guards_graph_breaks_and_output_code(caplog):
    channels = ("guards", "graph_breaks", "output_code")
    graphc.set_logs(**{c: True for c in channels})
    loggers = [logging.getLogger(f"graphc.{c}") for c in channels]
    for log in loggers:
        log.addHandler(caplog.handler)
    try:
        graphc.compile(lambda x: x * SCALE)(graphc.ones(2))
        with pytest.warns(UserWarning, match="running eagerly"):
            graphc.compile(lambda x: x if x.sum() > 0 else -x)(graphc.ones(2))
    finally:
        for log in loggers:
            log.removeHandler(caplog.handler)
        graphc.set_logs(**{c: False for c in channels})
    by_channel = {c: [r.getMessage() for r in caplog.records if r.name == f"graphc.{c}"]
                  for c in channels}
    assert any("global SCALE == 2.0" in m for m in by_channel["guards"])
    assert any("test_guards.py:" in m for m in by_channel["graph_breaks"])
    assert any("define" in m for m in by_channel["output_code"])    # LLVM IR
    with pytest.raises(ValueError, match="unknown graphc log channel"):
        graphc.set_logs(bogus=True)


def _called_after_the_compile():
    return 1


def test_compiling_under_cprofile_keeps_the_profiler():
    """The recorder of globals borrows the profile hook while it traces; cProfile's hook
    is a C profiler that ``sys.setprofile`` cannot take back, so it is re-enabled."""
    import cProfile
    import pstats
    f = graphc.compile(lambda x: (x * 2).sum())
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        assert f(graphc.ones(3)).item() == 6.0
        _called_after_the_compile()
    finally:
        profiler.disable()
    assert any(name == "_called_after_the_compile"
               for _, _, name in pstats.Stats(profiler).stats)
