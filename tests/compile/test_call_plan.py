"""The call plan of a compiled function (``graphc.compiler.compiled.CallPlan``): what
does not change between calls is worked out once, and a call that fits the plan runs
without the general lookup.  Every test checks the fast path was taken (or not) and that
it gives what eager gives: results, parameters, optimizer state, version counters,
``.grad``s, guards and recompiles."""
import math

import numpy as np
import pytest

import graphc
from graphc import nn
from graphc.compiler import compiled as compiled_module
from graphc.compiler.guards import Guard, Guards


def close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def array(t):
    return t.detach().numpy().copy()


def no_lookup(monkeypatch):
    """Make the general path fail, so a call that returns took the fast path."""
    def refuse(*args, **kwargs):
        raise AssertionError("the general lookup ran")
    monkeypatch.setattr(compiled_module.CompiledFunction, "_key", refuse)


# ---- a whole training step ------------------------------------------------------------------
def quadrant(seed=0):
    graphc.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 4), nn.Sigmoid())
    optimizer = graphc.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)

    def step(x, y):
        loss = nn.functional.binary_cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss
    return model, optimizer, step


def data(n=40):
    rng = np.random.default_rng(1)
    x = graphc.tensor(rng.standard_normal((n, 2)).astype(np.float32))
    y = graphc.tensor(np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)])
    return x, y


def warmed_pair():
    """The quadrant step compiled and an eager twin, both three steps in (the eager
    first step that makes momentum state, the trace, the plan): (x, y, compiled,
    (model, optimizer), (eager model, eager optimizer, eager step))."""
    x, y = data()
    model, optimizer, step = quadrant()
    eager_model, eager_optimizer, eager_step = quadrant()
    compiled = graphc.compile(step)
    for _ in range(3):
        compiled(x, y)
        eager_step(x, y)
    return x, y, compiled, (model, optimizer), (eager_model, eager_optimizer, eager_step)


def test_a_training_step_takes_the_fast_path_and_matches_eager(monkeypatch):
    x, y = data()
    model, optimizer, step = quadrant()
    eager_model, eager_optimizer, eager_step = quadrant()
    compiled = graphc.compile(step)
    for _ in range(3):                  # eager first step (momentum state), trace, plan
        close(compiled(x, y).item(), eager_step(x, y).item())
    plan = compiled._fast
    assert isinstance(plan, compiled_module.CallPlan)
    versions = [p._version[0] for p in model.parameters()]
    arrays = [p._array for p in model.parameters()]
    no_lookup(monkeypatch)
    for _ in range(3):
        close(compiled(x, y).item(), eager_step(x, y).item())
    assert compiled.compile_count == 1
    for p, q, a, v in zip(model.parameters(), eager_model.parameters(), arrays, versions):
        close(array(p), array(q))
        assert p._array is a                  # updated in its own array
        assert p._version[0] == v + 3
        assert p.grad is None and q.grad is None
    for p, q in zip(model.parameters(), eager_model.parameters()):
        close(array(optimizer.state[p]["momentum_buffer"]),
              array(eager_optimizer.state[q]["momentum_buffer"]))


def test_views_of_parameters_see_each_update():
    x, y = data()
    model, _, step = quadrant()
    compiled = graphc.compile(step)
    for _ in range(3):
        compiled(x, y)
    weight = model[0].weight
    held = weight.detach()                     # shares the parameter's array
    row = weight.detach()[1]                   # a view of one row
    before = array(weight)
    compiled(x, y)
    assert not np.allclose(array(weight), before)
    close(array(held), array(weight))
    close(array(row), array(weight)[1])


def test_a_replaced_parameter_array_binds_the_plan_again():
    x, y, compiled, (model, _), (eager_model, _, eager_step) = warmed_pair()
    plan = compiled._fast
    bound = plan.bound_call()
    new = np.full((3, 2), 0.25, np.float32)
    model[0].weight.data = graphc.from_numpy(new.copy())
    eager_model[0].weight.data = graphc.from_numpy(new.copy())
    close(compiled(x, y).item(), eager_step(x, y).item())
    assert compiled._fast is plan and plan.bound_call() is not bound
    assert compiled.compile_count == 1
    close(array(model[0].weight), array(eager_model[0].weight))


def test_a_non_contiguous_parameter_array_is_converted_on_each_call(monkeypatch):
    x, y, compiled, (model, _), (eager_model, _, eager_step) = warmed_pair()
    transposed = np.asfortranarray(np.full((3, 2), 0.5, np.float32))
    model[0].weight.data = graphc.from_numpy(transposed)
    eager_model[0].weight.data = graphc.from_numpy(transposed.copy())
    no_lookup(monkeypatch)
    for _ in range(2):
        close(compiled(x, y).item(), eager_step(x, y).item())
    close(array(model[0].weight), array(eager_model[0].weight))


def test_gradients_accumulate_through_the_fast_path(monkeypatch):
    """A step without zero_grad: the program sets .grad each call (a grad effect)."""
    def make():
        graphc.manual_seed(3)
        model = nn.Linear(3, 2)

        def step(x):
            model(x).sum().backward()
            return model.weight.grad
        return model, step
    x = graphc.randn(4, 3)
    model, step = make()
    eager_model, eager_step = make()
    compiled = graphc.compile(step)
    compiled(x)
    eager_step(x)
    compiled(x)
    eager_step(x)
    no_lookup(monkeypatch)
    g = compiled(x)
    eager_step(x)
    close(array(g), array(eager_model.weight.grad))
    close(array(model.bias.grad), array(eager_model.bias.grad))


# ---- functions of their arguments -------------------------------------------------------------
def test_a_new_shape_or_requires_grad_leaves_the_fast_path():
    f = graphc.compile(lambda x: (x * 2).sin())
    a, b = graphc.randn(5), graphc.randn(6)
    for x in (a, a, b, b, a):
        close(f(x).numpy(), np.sin(x.numpy() * 2))
    assert f.compile_count == 2
    assert f._fast.meta == (((5,), graphc.float32, False),)
    r = graphc.randn(5, requires_grad=True)
    out = f(r)
    assert f._fast.meta[0][2] is True and out.requires_grad
    out.sum().backward()
    close(r.grad.numpy(), 2 * np.cos(2 * r.detach().numpy()))


def test_the_backward_node_of_a_fast_call(monkeypatch):
    graphc.manual_seed(0)
    layer = nn.Linear(4, 3)
    f = graphc.compile(layer)
    x = graphc.randn(2, 4)
    f(x)
    f(x)
    no_lookup(monkeypatch)
    layer.zero_grad()
    f(x).square().sum().backward()
    got = array(layer.weight.grad)
    layer.zero_grad()
    layer(x).square().sum().backward()
    close(got, array(layer.weight.grad))


def test_non_tensor_arguments_and_keywords_take_the_general_path():
    f = graphc.compile(lambda x, k=1.0: x * k)
    x = graphc.ones(3)
    for _ in range(2):
        close(f(x, 2.0).numpy(), [2.0] * 3)
        close(f(x, k=3.0).numpy(), [3.0] * 3)
    assert f._fast is None
    f(x)
    f(x)
    assert f._fast is not None
    close(f(x).numpy(), [1.0] * 3)


# ---- folded guards ----------------------------------------------------------------------------
SCALE = 2.0
LIMIT = float("nan")


def test_a_global_that_changes_type_or_object_misses_the_fast_path():
    global SCALE
    f = graphc.compile(lambda x: x * SCALE)
    x = graphc.ones(2)
    try:
        f(x)
        f(x)
        SCALE = 2                           # equal, another type: traced anew
        close(f(x).numpy(), [2.0, 2.0])
        assert f.compile_count == 2
        SCALE = True
        close(f(x).numpy(), [1.0, 1.0])
        assert f.compile_count == 3
    finally:
        SCALE = 2.0


def test_a_nan_constant_guard_passes():
    f = graphc.compile(lambda x: x.clamp(max=LIMIT) if math.isnan(LIMIT) else x)
    x = graphc.ones(2)
    for _ in range(3):
        f(x)
    assert f.compile_count == 1


def test_folded_guards_keep_each_guards_meaning():
    box = {"a": 1, "b": float("nan"), "c": (1, 2), "obj": object()}
    obj = box["obj"]
    guards = Guards([Guard("a", lambda: box["a"], 1),
                     Guard("b", lambda: box["b"], float("nan")),
                     Guard("c", lambda: box["c"], (1, 2)),
                     Guard("obj", lambda: box["obj"], obj, identity=True)], [])
    assert guards.check()
    for key, value in [("a", 1.0), ("a", True), ("a", 2), ("b", 1.0), ("c", (1.0, 2)),
                       ("obj", object())]:
        old = box[key]
        box[key] = value
        assert not guards.check(), (key, value)
        box[key] = old
    assert guards.check()


def test_a_gradient_hook_on_a_parameter_recompiles():
    x, y = data()
    model, _, step = quadrant()
    compiled = graphc.compile(step)
    for _ in range(3):
        compiled(x, y)
    assert compiled.compile_count == 1
    seen = []
    model[0].bias.register_hook(lambda g: seen.append(1))
    compiled(x, y)
    assert compiled.compile_count == 2 and seen


@pytest.mark.parametrize("change", ["lr", "momentum"])
def test_optimizer_hyperparameters_still_guard(change):
    x, y, compiled, (model, optimizer), (eager_model, eager_optimizer, eager_step) = warmed_pair()
    for opt in (optimizer, eager_optimizer):
        opt.param_groups[0][change] = 0.0 if change == "momentum" else 0.1
    for _ in range(2):
        close(compiled(x, y).item(), eager_step(x, y).item())
    for p, q in zip(model.parameters(), eager_model.parameters()):
        close(array(p), array(q))


# ---- write-backs computed in place --------------------------------------------------------------
def test_parameters_and_optimizer_state_are_updated_in_place(monkeypatch):
    x, y = data()
    model, optimizer, step = quadrant()
    compiled = graphc.compile(step)
    for _ in range(3):
        compiled(x, y)
    program = compiled._fast.program.forward
    lifted = dict(zip(compiled._fast.lifted_positions, compiled._fast.lifted))
    updated = {id(lifted[i]) for _, i in program.in_place}
    params = list(model.parameters())
    assert {id(p) for p in params} <= updated
    assert {id(optimizer.state[p]["momentum_buffer"]) for p in params} <= updated
    copies = []
    monkeypatch.setattr(compiled_module.np, "copyto", lambda *a: copies.append(a))
    compiled(x, y)
    # Nothing is copied back after the call, but into an array the kernels cannot
    # write as it is (momentum cloned from a transposed gradient is not C-contiguous).
    strided = [lifted[i] for _, i in program.in_place
               if not lifted[i]._array.flags.c_contiguous]
    assert len(copies) == len(strided) and len(strided) < len(program.in_place)


def linear_step(lr=0.1):
    graphc.manual_seed(5)
    model = nn.Linear(3, 3)
    optimizer = graphc.optim.SGD(model.parameters(), lr=lr)

    def step(x):
        loss = model(x).square().sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss
    return model, step


@pytest.mark.parametrize("view", [False, True])
def test_an_argument_sharing_an_updated_arrays_memory_reads_its_old_value(view):
    """The argument is the lifted tensor's own array (or a view of it), which the step
    updates before a later kernel reads the argument: the compiled call reads the
    argument as it was before the call, as the interpreter (which copies write-backs
    after the call) does, although the cpu program updates the tensor in place."""
    def make(backend):
        w = graphc.arange(4.0)

        def step(x):
            w.mul_(3.0)
            return (x * 2).sum()
        return w, graphc.compile(step, backend=backend)
    (w, compiled), (w_ref, reference) = make("cpu"), make("interpreter")

    def argument(t):
        return t[None] if view else t
    for _ in range(3):
        close(compiled(argument(w)).item(), reference(argument(w_ref)).item())
        close(array(w), array(w_ref))
    plan = compiled._fast
    assert [a is w._array for a in plan.written] == [True]
    assert not plan.apart([argument(w)._array])
    assert plan.apart([np.zeros(4, np.float32)])


def test_an_error_in_a_step_leaves_the_parameters_as_they_were():
    graphc.manual_seed(2)
    model = nn.Linear(3, 4)
    optimizer = graphc.optim.SGD(model.parameters(), lr=0.1)

    def step(x, labels):
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss
    compiled = graphc.compile(step)
    x = graphc.randn(5, 3)
    good, bad = graphc.tensor([0, 1, 2, 3, 0]), graphc.tensor([0, 1, 2, 9, 0])
    for _ in range(3):
        compiled(x, good)
    assert compiled._fast.program.forward.in_place == []      # it can fail: no in place
    before = [array(p) for p in model.parameters()]
    with pytest.raises(RuntimeError, match="out of bounds"):
        compiled(x, bad)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(array(p), b)


def test_the_call_overhead_benchmark_splits_a_call():
    """``benchmarks/call_overhead.py --quick`` runs and prints one row per workload:
    four timings and the overhead, the compiled call minus the native entry."""
    import os
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, os.path.join(repo, "benchmarks", "call_overhead.py"),
                          "--quick", "--cpu-time"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=repo), timeout=300)
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]]
            for line in run.stdout.splitlines() if line.split()[:1] in (["chain10"],
                                                                          ["quadrant"])}
    assert set(rows) == {"chain10", "quadrant"}
    for compiled_call, general, bound, native, overhead in rows.values():
        assert min(compiled_call, general, bound, native) > 0
        assert overhead == pytest.approx(compiled_call - native, abs=0.02)


# ---- outputs reused when nobody holds them --------------------------------------------------------
def address(t):
    return t._array.__array_interface__["data"][0]


def test_an_output_nobody_holds_is_reused_and_a_held_one_is_not(monkeypatch):
    f = graphc.compile(lambda x: x * 2 + 1)
    x, y = graphc.arange(4.0), graphc.ones(4)
    f(x)
    f(x)
    no_lookup(monkeypatch)
    a = f(x)
    where = address(a)
    del a
    b = f(y)                                   # a's array, nobody held it
    assert address(b) == where
    close(b.numpy(), [3.0] * 4)
    c = f(x)                                   # b is held: a new array
    assert address(c) != where
    close(b.numpy(), [3.0] * 4)
    close(c.numpy(), [1.0, 3.0, 5.0, 7.0])
    view = f(y)[1:]                            # a view holds its base
    del b, c
    d = f(x)
    close(view.numpy(), [3.0] * 3)
    close(d.numpy(), [1.0, 3.0, 5.0, 7.0])


def test_a_converted_input_between_reused_outputs():
    """A strided argument takes the bound call's general path, which writes the output
    pointers too: the next plain call must not write into that call's output."""
    f = graphc.compile(lambda x: x + 1)
    x = graphc.zeros(4)
    strided = graphc.arange(8.0)[::2]
    for _ in range(2):
        f(x)
    first = f(strided)
    second = f(x)
    third = f(x)
    close(first.numpy(), [1.0, 3.0, 5.0, 7.0])
    close(second.numpy(), [1.0] * 4)
    close(third.numpy(), [1.0] * 4)


def test_double_backward_through_a_fast_call(monkeypatch):
    f = graphc.compile(lambda x: (x * x * x).sum())
    x = graphc.tensor([1.0, 2.0], requires_grad=True)
    f(x)
    f(x)
    no_lookup(monkeypatch)
    g, = graphc.autograd.grad(f(x), x, create_graph=True)
    h, = graphc.autograd.grad(g.sum(), x)
    close(array(g), [3.0, 12.0])
    close(array(h), [6.0, 12.0])
