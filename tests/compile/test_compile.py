"""graphc.compile on the interpreter backend: example-like models (forward, compiled
backward, whole training steps) against eager, guards and recompilation, graph breaks,
dumps, write-backs and gradient effects, and the compiled module's API.

Every graph a compiled program holds (traced, forward, backward) goes through
``check_graph`` (verify + text round trip).
"""
import os
import warnings

import numpy as np
import pytest
from graph_checks import check_graph, check_programs

import graphc
import graphc.nn.functional as F
import graphc.optim
from graphc import ir, nn
from graphc.targets.interpreter import compile_graph
from graphc.passes import PIPELINE
from graphc.context import GraphBreak

HERE = os.path.basename(__file__)
# float32 agreement; the cpu backend sums in another order than numpy (vectorized
# accumulators), so values near zero get an absolute tolerance.
TOL = dict(rtol=1e-5, atol=1e-5)
STEPS_TOL = dict(rtol=1e-4, atol=1e-5)


def _array(t):
    return t.detach().numpy() if isinstance(t, graphc.Tensor) else np.asarray(t)


def assert_close(a, b):
    """float32 agreement (rtol 1e-5) of tensors or arrays."""
    np.testing.assert_allclose(_array(a), _array(b), **TOL)


# ---- example-like models --------------------------------------------------------------------
class _Regression(nn.Module):
    """The 1000-100-10 net of PyTorch's two-layer tutorial."""

    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(1000, 100)
        self.linear2 = nn.Linear(100, 10)

    def forward(self, x):
        return self.linear2(self.linear1(x).clamp(min=0))


def _one_hot_rows(labels, classes):
    t = graphc.zeros(len(labels), classes)
    t[graphc.arange(len(labels)), graphc.tensor(labels)] = 1
    return t


def _mlp():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    y = graphc.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    return model, graphc.randn(8, 4), lambda out: F.cross_entropy(out, y), 0.1


def _sigmoid_mlp():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 3), nn.Sigmoid(),
                          nn.Linear(3, 4), nn.Sigmoid())
    target = _one_hot_rows([0, 1, 2, 3, 1, 0], 4)
    return model, graphc.rand(6, 2), lambda out: nn.BCELoss()(out, target), 0.5


def _regression():
    y = graphc.randn(16, 10)
    return (_Regression(), graphc.randn(16, 1000),
            lambda out: nn.MSELoss(reduction="sum")(out, y), 1e-4)


def _cnn():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    y = graphc.tensor([2, 0, 1])
    return model, graphc.randn(3, 1, 8, 8), lambda out: F.cross_entropy(out, y), 0.05


def _norm_block():
    model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Dropout(0.3),
                          nn.Linear(8, 2))
    model.eval()
    y = graphc.randn(5, 2)
    # lr 0.03: at 0.1 the loss reaches ~1e-4 by step 40, where rounding differences
    # (another summation order) grow chaotically and no tolerance is meaningful.
    return model, graphc.randn(5, 6), lambda out: F.mse_loss(out, y), 0.03


MODELS = [_mlp, _sigmoid_mlp, _regression, _cnn, _norm_block]
IDS = [m.__name__.strip("_") for m in MODELS]


def make(factory):
    graphc.manual_seed(0)
    return factory()


def grads(model):
    return [p.grad.numpy().copy() for p in model.parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("factory", MODELS, ids=IDS)
def test_traced_forward_and_compiled_backward_match_eager(factory):
    model, x, loss_fn, _ = make(factory)
    eager_out = model(x)
    loss_fn(eager_out).backward()
    eager_grads = grads(model)
    model.zero_grad()

    traced = graphc.trace(model, x)
    check_graph(traced)
    arrays = [x._data] + [p._data for p in model.parameters()]
    assert_close(compile_graph(traced)(arrays)[0], eager_out)

    compiled = graphc.compile(model)
    out = compiled(x)
    assert out.requires_grad and out.grad_fn.name() == "CompiledFunctionBackward"
    assert_close(out, eager_out)
    loss = loss_fn(out)
    loss.backward()
    for got, want in zip(grads(model), eager_grads, strict=True):
        np.testing.assert_allclose(got, want, **TOL)
    assert compiled.compile_count == 1
    (stages,) = check_programs(compiled)
    assert set(stages) == {"traced", "backward", "forward"}


def _sgd_step(model, loss_fn, lr):
    def step(x):
        loss = loss_fn(model(x))
        loss.backward()
        with graphc.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        model.zero_grad()
        return loss
    return step


@pytest.mark.slow
@pytest.mark.parametrize("factory", MODELS, ids=IDS)
def test_fifty_compiled_training_steps_end_at_the_eager_parameters(factory):
    eager_model, x, loss_fn, lr = make(factory)
    eager_step = _sgd_step(eager_model, loss_fn, lr)
    eager_losses = [float(eager_step(x)) for _ in range(50)]

    model, x, loss_fn, lr = make(factory)
    step = graphc.compile(_sgd_step(model, loss_fn, lr))
    losses = [float(step(x)) for _ in range(50)]

    # 50 steps amplify summation-order differences: the tolerance is rtol 1e-4.
    np.testing.assert_allclose(losses, eager_losses, **STEPS_TOL)
    assert losses[-1] < losses[0]
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_allclose(_array(p), _array(q), **STEPS_TOL)
        assert p.grad is None
    assert step.compile_count == 1
    (stages,) = check_programs(step)
    assert "backward" not in stages            # the backward is inside the one program
    traced = str(stages["traced"])
    assert traced.count("\n") > 10 and "sub(%" in traced


@pytest.mark.slow
def test_compiled_module_sees_optimizer_updates_made_outside():
    eager_model, x, loss_fn, lr = make(_mlp)
    model, _, _, _ = make(_mlp)
    compiled = graphc.compile(model)
    for net, run in ((eager_model, eager_model), (model, compiled)):
        for _ in range(10):
            loss = loss_fn(run(x))
            net.zero_grad()
            loss.backward()
            with graphc.no_grad():
                for p in net.parameters():
                    p.add_(p.grad, alpha=-lr)
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        assert_close(p, q)
    assert compiled.compile_count == 1


@pytest.mark.slow
def test_train_mode_dropout_block_trains_like_eager_with_the_same_seed():
    def factory():
        model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Dropout(0.3),
                              nn.Linear(8, 2))
        y = graphc.randn(5, 2)
        return model, graphc.randn(5, 6), lambda out: F.mse_loss(out, y), 0.1
    eager_model, x, loss_fn, lr = make(factory)
    eager = [float(_sgd_step(eager_model, loss_fn, lr)(x)) for _ in range(10)]
    model, x, loss_fn, lr = make(factory)
    step = graphc.compile(_sgd_step(model, loss_fn, lr))
    compiled = [float(step(x)) for _ in range(10)]
    np.testing.assert_allclose(compiled, eager, **TOL)
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        assert_close(p, q)
    assert step.compile_count == 1


OPTIMIZERS = {
    "sgd": lambda ps: graphc.optim.SGD(ps, lr=0.1),
    "sgd_nesterov": lambda ps: graphc.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                                weight_decay=1e-3),
    "adam": lambda ps: graphc.optim.Adam(ps, lr=0.01),
    "adam_amsgrad": lambda ps: graphc.optim.Adam(ps, lr=0.01, amsgrad=True),
    "adamw": lambda ps: graphc.optim.AdamW(ps, lr=0.01),
    "rmsprop": lambda ps: graphc.optim.RMSprop(ps, lr=0.01),
    "adagrad": lambda ps: graphc.optim.Adagrad(ps, lr=0.1),
}


def _optimizer_run(factory, make_optimizer, compile_it, steps=15, scheduler=False):
    model, x, loss_fn, _ = make(factory)
    opt = make_optimizer(model.parameters())
    sched = graphc.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5) if scheduler \
        else None

    def step(x):
        opt.zero_grad()
        loss = loss_fn(model(x))
        loss.backward()
        opt.step()
        return loss
    fn = graphc.compile(step) if compile_it else step
    losses = []
    for _ in range(steps):
        losses.append(float(fn(x)))
        if sched is not None:
            sched.step()
    return model, losses, fn


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:graphc.compile")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("factory", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_compiled_optimizer_steps_match_eager(factory, name):
    eager, eager_losses, _ = _optimizer_run(factory, OPTIMIZERS[name], False)
    model, losses, step = _optimizer_run(factory, OPTIMIZERS[name], True)
    np.testing.assert_allclose(losses, eager_losses, **TOL)
    for p, q in zip(model.parameters(), eager.parameters(), strict=True):
        assert_close(p, q)
    # once without and once with gradients present (zero_grad runs inside the step);
    # an optimizer that makes its state on its first step runs that step eagerly
    assert step.compile_count in (1, 2)
    check_programs(step)
    for program in step.programs():              # the updates are in-place write-backs
        written = {id(t) for t, _ in program.capture.writebacks}
        assert {id(p) for p in model.parameters()} <= written


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:graphc.compile")
def test_learning_rate_schedule_changes_are_seen_without_recompiling():
    eager, eager_losses, _ = _optimizer_run(_mlp, OPTIMIZERS["adam"], False, scheduler=True)
    model, losses, step = _optimizer_run(_mlp, OPTIMIZERS["adam"], True, scheduler=True)
    np.testing.assert_allclose(losses, eager_losses, **TOL)
    for p, q in zip(model.parameters(), eager.parameters(), strict=True):
        assert_close(p, q)
    assert step.compile_count == 1                # lr is a runtime input of the program


# ---- guards ----------------------------------------------------------------------------------
def _dropout_net():
    graphc.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))


@pytest.mark.slow
def test_same_shapes_hit_the_cache_and_a_new_batch_size_recompiles():
    model = _dropout_net().eval()
    compiled = graphc.compile(model)
    x = graphc.randn(3, 4)
    for _ in range(3):
        assert_close(compiled(x), model(x))
    assert compiled.compile_count == 1
    x5 = graphc.randn(5, 4)
    assert_close(compiled(x5), model(x5))
    assert compiled.compile_count == 2
    compiled(x)
    compiled(graphc.randn(3, 4))
    assert compiled.compile_count == 2
    shapes = sorted(stages["traced"].inputs[0].shape for stages in check_programs(compiled))
    assert shapes == [(3, 4), (5, 4)]


@pytest.mark.slow
def test_train_and_eval_compile_separately():
    model = _dropout_net()
    compiled = graphc.compile(model)
    x = graphc.randn(3, 4)
    compiled.eval()
    assert not model.training and not model[2].training
    first, second = compiled(x), compiled(x)
    assert np.array_equal(first.detach().numpy(), second.detach().numpy())
    assert_close(first, model(x))
    compiled.train()
    assert model.training and compiled.compile_count == 1
    a, b = compiled(x), compiled(x)
    assert not np.array_equal(a.detach().numpy(), b.detach().numpy())
    assert compiled.compile_count == 2
    compiled.eval()
    assert_close(compiled(x), first)
    assert compiled.compile_count == 2


def test_train_mode_dropout_draws_a_fresh_mask_each_call_at_rate_p():
    compiled = graphc.compile(nn.Dropout(0.25))
    ones = graphc.ones(100, 100)
    graphc.manual_seed(7)
    outs = [compiled(ones).numpy() for _ in range(3)]
    for out in outs:
        assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}
        assert abs((out == 0).mean() - 0.25) < 0.02
    masks = [out == 0 for out in outs]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    graphc.manual_seed(7)
    eager = nn.Dropout(0.25)
    for out in outs:                             # same seeds, same counter-based draws
        np.testing.assert_array_equal(out, eager(ones).numpy())
    assert compiled.compile_count == 1


def test_requires_grad_and_grad_mode_changes_recompile():
    compiled = graphc.compile(lambda x: (x * x).sum())
    x = graphc.tensor([1.0, -2.0, 3.0])
    assert not compiled(x).requires_grad
    assert compiled.compile_count == 1
    xg = x.clone().requires_grad_()
    out = compiled(xg)
    assert compiled.compile_count == 2 and out.requires_grad
    out.backward()
    np.testing.assert_array_equal(xg.grad.numpy(), [2.0, -4.0, 6.0])
    with graphc.no_grad():
        assert not compiled(xg).requires_grad
    assert compiled.compile_count == 3
    compiled(x)
    compiled(xg)
    assert compiled.compile_count == 3
    programs = check_programs(compiled)
    assert sorted("backward" in stages for stages in programs) == [False, False, True]
    assert programs[0]["traced"].name == "_lambda_"


@pytest.mark.slow
def test_freezing_and_unfreezing_parameters_recompiles():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    compiled = graphc.compile(model)
    x = graphc.randn(4, 2)
    model[0].weight.requires_grad_(False)
    compiled(x).sum().backward()
    assert model[0].weight.grad is None and model[0].bias.grad is not None
    model[0].weight.requires_grad_(True)
    model.zero_grad()
    compiled(x).sum().backward()
    got = model[0].weight.grad.numpy().copy()
    model.zero_grad()
    model(x).sum().backward()
    np.testing.assert_allclose(got, model[0].weight.grad.numpy(), **TOL)
    assert compiled.compile_count == 2


def test_non_tensor_arguments_are_guarded_by_value():
    compiled = graphc.compile(lambda x, n, scale: x.pow(n) * scale)
    x = graphc.tensor([2.0, 3.0])
    np.testing.assert_array_equal(compiled(x, 2, 0.5).numpy(), [2.0, 4.5])
    np.testing.assert_array_equal(compiled(x, 3, 0.5).numpy(), [4.0, 13.5])
    np.testing.assert_array_equal(compiled(x, 2, 0.5).numpy(), [2.0, 4.5])
    assert compiled.compile_count == 2


def test_replacing_a_lifted_tensor_by_another_shape_recompiles():
    w = graphc.tensor([1.0, 2.0])
    compiled = graphc.compile(lambda x: x * w)
    np.testing.assert_array_equal(compiled(graphc.ones(2)).numpy(), [1.0, 2.0])
    w.data = graphc.tensor([[3.0], [4.0]])
    np.testing.assert_array_equal(compiled(graphc.ones(2)).numpy(), [[3.0, 3.0], [4.0, 4.0]])
    assert compiled.compile_count == 2


# ---- graph breaks ---------------------------------------------------------------------------
def _branch(x):
    if x.sum() > 0:
        return x * 2
    return x - 1


def _item(x):
    return x / x.abs().max().item()


def _to_numpy(x):
    return graphc.tensor(np.asarray(x) ** 2)


def _boolean_mask(x):
    return x[x > 0] * 3


def _no_primitive(x):
    return F.one_hot(x.argmax(dim=0, keepdim=True)).float()


BREAKS = [
    (_branch, "Python control flow on a tensor value (Tensor.__bool__"),
    (_item, "Tensor.item()"),
    (_to_numpy, "conversion of a tensor to a numpy array"),
    (_boolean_mask, "indexing with a boolean mask"),
    (_no_primitive, "Tensor.item()"),
]


def _line(fn):
    return f"{HERE}:{fn.__code__.co_firstlineno + 1}"


@pytest.mark.parametrize("fn, what", BREAKS, ids=[b[0].__name__ for b in BREAKS])
def test_fullgraph_graph_break_names_the_op_and_the_user_line(fn, what):
    compiled = graphc.compile(fn, fullgraph=True)
    with pytest.raises(GraphBreak) as info:
        compiled(graphc.tensor([1.0, -2.0, 3.0]))
    assert str(info.value).startswith(f"graphc cannot trace {what}")
    assert f"(at {_line(fn)})" in str(info.value)
    assert compiled.compile_count == 0


@pytest.mark.parametrize("fn, what", BREAKS, ids=[b[0].__name__ for b in BREAKS])
def test_graph_break_runs_eagerly_and_warns_once(fn, what):
    compiled = graphc.compile(fn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x in ([1.0, -2.0, 3.0], [-1.0, -2.0, 0.5], [1.0, -2.0, 3.0], [2.0, -1.0]):
            np.testing.assert_array_equal(compiled(graphc.tensor(x)).numpy(),
                                          fn(graphc.tensor(x)).numpy())
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith(f"graphc.compile({fn.__name__}): running eagerly: "
                              f"graphc cannot trace {what}")
    assert _line(fn) in message
    assert warning.filename == __file__             # points at the caller
    assert compiled.compile_count == 0


def test_random_draws_inside_compiled_code_run_eagerly():
    compiled = graphc.compile(lambda x: x + graphc.randn(3))
    with pytest.warns(UserWarning, match="cannot trace a random draw"):
        a = compiled(graphc.zeros(3))
    b = compiled(graphc.zeros(3))
    assert not np.array_equal(a.numpy(), b.numpy())


# ---- dumps -----------------------------------------------------------------------------------
def _check_dump(directory, name):
    files = sorted(os.listdir(directory))
    passes = [f"pass{i + 1}.{p.__name__}" for i, p in enumerate(PIPELINE)]
    expected = {f"{name}.0.{stage}.txt" for stage in
                ["traced", "backward"] + passes + [f"backward.{p}" for p in passes]}
    # The cpu backend's stages: fusion report, loop IR and LLVM IR, for both programs.
    backend = {f"{name}.0.{program}.{stage}" for program in ("forward", "backward")
               for stage in ("fusion.txt", "loops.txt", "ll")}
    assert set(files) == expected | backend
    for program in ("forward", "backward"):
        assert "kernel" in (directory / f"{name}.0.{program}.fusion.txt").read_text()
        assert "define" in (directory / f"{name}.0.{program}.ll").read_text()
    for f in sorted(expected):
        text = (directory / f).read_text()
        assert text.endswith("}\n")
        graph = ir.parse(text)
        assert str(graph) + "\n" == text
        check_graph(graph)
    return files


def test_dump_dir_writes_every_stage(tmp_path):
    model, x, loss_fn, _ = make(_mlp)
    compiled = graphc.compile(model, dump=str(tmp_path / "ir"))
    loss_fn(compiled(x)).backward()
    files = _check_dump(tmp_path / "ir", "Sequential")
    traced = ir.parse((tmp_path / "ir" / "Sequential.0.traced.txt").read_text())
    assert str(traced) == str(compiled._compiled.graphs()[0]["traced"])
    compiled(graphc.randn(2, 4))
    assert len(os.listdir(tmp_path / "ir")) == 2 * len(files)


def test_graphc_dump_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_DUMP", str(tmp_path))
    w = graphc.randn(3, requires_grad=True)

    def scaled(x):
        return (x * w).tanh().sum()
    graphc.compile(scaled)(graphc.randn(3)).backward()
    _check_dump(tmp_path, "scaled")


# ---- write-backs, gradient effects, the compiled backward -------------------------------------
def test_inplace_updates_of_pre_existing_tensors_are_written_back():
    total = graphc.zeros(2)
    count = graphc.tensor(0)

    def accumulate(x):
        total.add_(x)
        count.add_(1)
        return total * 1
    compiled = graphc.compile(accumulate)
    array = total._data
    for k in range(1, 4):
        np.testing.assert_array_equal(compiled(graphc.tensor([1.0, 2.0])).numpy(),
                                      [k, 2.0 * k])
    assert total._data is array and int(count) == 3
    assert compiled.compile_count == 1
    check_programs(compiled)


def test_inplace_writes_to_arguments_are_written_back():
    def scale_into(x, out):
        x.mul_(2)
        out.copy_(x + 1)
        return out.sum()
    compiled = graphc.compile(scale_into)
    for k in range(1, 3):
        x, out = graphc.ones(3), graphc.zeros(3)
        assert float(compiled(x, out)) == 9.0
        np.testing.assert_array_equal(x.numpy(), [2.0, 2.0, 2.0])
        np.testing.assert_array_equal(out.numpy(), [3.0, 3.0, 3.0])
        assert x._version[0] == 1
    assert compiled.compile_count == 1


def test_errors_in_traced_code_propagate_and_leave_state_intact():
    model = nn.Linear(3, 2)
    array = model.weight._data
    compiled = graphc.compile(model)
    with pytest.raises(RuntimeError, match=r"shapes cannot be multiplied \(4x5 and 3x2\)"):
        compiled(graphc.randn(4, 5))
    assert model.weight._data is array and compiled.compile_count == 0
    x = graphc.randn(4, 3)
    assert_close(compiled(x), model(x))


def test_batchnorm_running_stats_update_like_eager():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())
    eager = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())
    eager.load_state_dict(model.state_dict())
    compiled = graphc.compile(model)
    x = graphc.randn(8, 4)
    for _ in range(3):
        assert_close(compiled(x), eager(x))
    for (name, a), (_, b) in zip(model.state_dict().items(), eager.state_dict().items()):
        assert_close(a, b)
    assert int(model[1].num_batches_tracked) == 3
    compiled.eval()
    assert_close(compiled(x), eager.eval()(x))


def test_data_and_detach_read_current_values_and_write_through():
    model = nn.Linear(2, 2, bias=False)
    compiled = graphc.compile(lambda x: x @ model.weight.detach().t() + x @ model.weight.data)
    x = graphc.ones(1, 2)
    assert_close(compiled(x), x @ model.weight.detach().t() + x @ model.weight.data)
    with graphc.no_grad():
        model.weight.mul_(2)
    assert_close(compiled(x), x @ model.weight.detach().t() + x @ model.weight.data)

    def step(x):
        loss = model(x).pow(2).sum()
        loss.backward()
        for p in model.parameters():
            p.data.add_(p.grad.data, alpha=-0.1)
            p.grad = None
        return loss
    graphc.manual_seed(0)
    eager_model = nn.Linear(2, 2, bias=False)
    eager_model.load_state_dict(model.state_dict())
    compiled_step = graphc.compile(step)
    losses = [float(compiled_step(x)) for _ in range(3)]
    model = eager_model
    expected = [float(step(x)) for _ in range(3)]
    np.testing.assert_allclose(losses, expected, **TOL)
    assert losses[0] != losses[1]


def test_backward_inside_compiled_code_accumulates_like_eager():
    def run(compile_it):
        graphc.manual_seed(0)
        model = nn.Linear(3, 1)
        x = graphc.randn(4, 3)

        def step(x):
            loss = model(x).sum()
            loss.backward()                 # no zero_grad: gradients accumulate
            return loss
        fn = graphc.compile(step) if compile_it else step
        for _ in range(3):
            fn(x)
        return model, fn
    model, compiled = run(True)
    eager, _ = run(False)
    assert_close(model.weight.grad, eager.weight.grad)
    assert_close(model.bias.grad, graphc.tensor([12.0]))
    assert compiled.compile_count == 2            # once without grads, once with
    model.weight.grad.zero_()                     # the grads are ordinary, writable tensors


def test_only_used_inputs_receive_gradients():
    x = graphc.randn(3, requires_grad=True)
    y = graphc.randn(3, requires_grad=True)
    compiled = graphc.compile(lambda x, y: (x * 2).sum() + (y > 0).sum())
    compiled(x, y).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    assert y.grad is None


def test_compiled_backward_reaches_eager_layers_and_inputs():
    graphc.manual_seed(0)
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    z = graphc.randn(5, 3, requires_grad=True)
    compiled = graphc.compile(second)
    out = compiled(first(z).tanh())
    (out * out).sum().backward()
    got = [t.grad.numpy().copy() for t in (z, first.weight, first.bias, second.weight)]
    for t in (z, first.weight, first.bias, second.weight, second.bias):
        t.grad = None
    out = second(first(z).tanh())
    (out * out).sum().backward()
    for g, t in zip(got, (z, first.weight, first.bias, second.weight)):
        np.testing.assert_allclose(g, t.grad.numpy(), **TOL)


def test_multiple_outputs_and_python_structure():
    def f(x, w):
        h = x @ w
        return {"sum": h.sum(), "parts": (h.relu(), 3), "argmax": h.argmax(dim=1)}
    x, w = graphc.randn(2, 3), graphc.randn(3, 4, requires_grad=True)
    out = graphc.compile(f)(x, w)
    ref = f(x, w)
    assert out["parts"][1] == 3 and out["argmax"].dtype == graphc.int64
    assert_close(out["sum"], ref["sum"])
    np.testing.assert_array_equal(out["argmax"].numpy(), ref["argmax"].numpy())
    (out["sum"] + out["parts"][0].sum()).backward()
    got = w.grad.numpy().copy()
    w.grad = None
    (ref["sum"] + ref["parts"][0].sum()).backward()
    np.testing.assert_allclose(got, w.grad.numpy(), **TOL)


def test_a_value_returned_twice_gets_both_gradients():
    def twice(x):
        y = x * 2
        return y, y
    x = graphc.ones(3, requires_grad=True)
    a, b = graphc.compile(twice)(x)
    (a.sum() + 3 * b.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0, 8.0])
    x.grad = None
    a, _ = graphc.compile(twice)(x)
    a.sum().backward()                              # the other output takes no gradient
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_second_backward_needs_retain_graph():
    w = graphc.tensor([1.0, 2.0], requires_grad=True)
    compiled = graphc.compile(lambda x: (x * w).sum())
    out = compiled(graphc.tensor([3.0, 4.0]))
    out.backward(retain_graph=True)
    out.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [6.0, 8.0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.backward()


def test_inplace_change_between_forward_and_backward_is_caught():
    w = graphc.tensor([1.0, 2.0], requires_grad=True)
    out = graphc.compile(lambda x: (x * w).sum())(graphc.tensor([3.0, 4.0]))
    with graphc.no_grad():
        w.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


# ---- the compiled module's API -------------------------------------------------------------
def test_compiled_module_is_an_nn_module_around_the_original_as_in_pytorch():
    model, x, _, _ = make(_mlp)
    compiled = graphc.compile(model)
    assert isinstance(compiled, nn.Module) and compiled._orig_mod is model
    assert [id(p) for p in compiled.parameters()] == [id(p) for p in model.parameters()]
    # PyTorch's OptimizedModule registers the original as submodule ``_orig_mod``.
    assert [n for n, _ in compiled.named_parameters()] == [
        "_orig_mod.0.weight", "_orig_mod.0.bias", "_orig_mod.2.weight", "_orig_mod.2.bias"]
    state = compiled.state_dict()
    assert list(state) == ["_orig_mod." + k for k in model.state_dict()]
    for a, b in zip(state.values(), model.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())
    assert compiled.eval() is compiled and not model.training and not model[2].training
    assert not compiled.training
    assert compiled.train() is compiled and model.training and compiled.training
    assert compiled.to("cpu").float() is compiled
    assert list(compiled.modules())[1:] == list(model.modules())
    assert repr(compiled).startswith("OptimizedModule(\n  (_orig_mod): Sequential(")
    assert len(compiled) == 3 and compiled._orig_mod[0] is model[0]
    compiled.extra = 5
    assert model.extra == 5
    compiled(x)
    graphc.manual_seed(1)
    other = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    compiled._orig_mod.load_state_dict(other.state_dict())
    assert_close(compiled(x), other(x))
    assert compiled.compile_count == 1


def test_compiled_outputs_are_freed_without_the_garbage_collector():
    import gc
    import weakref
    f = graphc.compile(lambda x: x * 2 + 1)
    x = graphc.randn(8)
    f(x)
    gc.disable()
    try:
        out = f(x)
        ref = weakref.ref(out)
        del out
        assert ref() is None      # no reference cycle keeps a call's outputs alive
    finally:
        gc.enable()
