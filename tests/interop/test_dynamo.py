"""``torch.compile(model, backend="graphc")`` against PyTorch eager, with real PyTorch.

Training runs compare losses and gradients step by step (rtol 1e-4) with the same model
trained eagerly, on the cpu backend and the interpreter; each also checks that graphc ran
the graphs (every ATen op lowered), so a fallback to PyTorch cannot pass for graphc.
"""
import copy
import importlib
import logging
import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

import graphc  # noqa: E402
import graphc.dynamo  # noqa: E402

BACKENDS = ["cpu", "interpreter"]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch (Dynamo's caches and counters are process-wide)."""
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def graphc_compile(fn, backend, **options):
    return torch.compile(fn, backend="graphc", options={"backend": backend, **options})


def assert_all_in_graphc():
    """Every ATen node of the compiled graphs ran in graphc (none left to PyTorch)."""
    ran = counters["graphc"]
    left = {k: v for k, v in ran.items() if k.startswith("pytorch ")}
    assert ran["graphc nodes"] > 0 and not left, dict(ran)


def train_both(make_model, batches, loss_fn, make_opt, backend, check_grads=True):
    """Train a model eagerly and a copy compiled with graphc on the same batches; every
    step's loss and gradients must agree.  Returns both models."""
    torch.manual_seed(0)
    eager = make_model()
    model = copy.deepcopy(eager)
    compiled = graphc_compile(lambda x, y: loss_fn(model(x), y), backend)
    opt_eager, opt = make_opt(eager.parameters()), make_opt(model.parameters())
    for step, (x, y) in enumerate(batches):
        losses = []
        for m, run, o in ((eager, lambda x, y: loss_fn(eager(x), y), opt_eager),
                          (model, compiled, opt)):
            o.zero_grad()
            loss = run(x, y)
            loss.backward()
            losses.append(loss.detach())
            o.step()
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-6,
                                   msg=lambda m: f"step {step}: {m}")
        if check_grads:
            for (name, p), q in zip(eager.named_parameters(), model.parameters()):
                torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6,
                                           msg=lambda m: f"step {step}, {name}.grad: {m}")
    assert_all_in_graphc()
    return eager, model


def classify_batches(shape, classes, steps=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(*shape, generator=g), torch.randint(0, classes, shape[:1], generator=g))
            for _ in range(steps)]


# ---- the introductory tutorial models ---------------------------------------------------------
class QuickstartNet(torch.nn.Module):
    """PyTorch's quickstart tutorial network, at a small size."""

    def __init__(self):
        super().__init__()
        self.flatten = torch.nn.Flatten()
        self.stack = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                         torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                         torch.nn.Linear(32, 10))

    def forward(self, x):
        return self.stack(self.flatten(x))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_quickstart_classifier_trains_as_eager(backend):
    train_both(QuickstartNet, classify_batches((16, 8, 8), 10), F.cross_entropy,
               lambda p: torch.optim.SGD(p, lr=0.1), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_adamw_step_updates_the_parameters_and_state_in_place(backend):
    """The optimizer's step compiled too: its updates of parameters and state stay in the
    graph (AOTAutograd's kept input mutations) and graphc writes them into PyTorch's own
    memory, giving eager AdamW's values."""
    torch.manual_seed(0)
    eager = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    model = copy.deepcopy(eager)
    opt_eager = torch.optim.AdamW(eager.parameters(), lr=1e-2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    step = graphc_compile(opt.step, backend)
    pointers = [p.data_ptr() for p in model.parameters()]
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        x, y = torch.randn(8, 6, generator=g), torch.randn(8, 2, generator=g)
        for m, update in ((eager, opt_eager.step), (model, step)):
            m.zero_grad()
            F.mse_loss(m(x), y).backward()
            update()
    for p, q in zip(eager.parameters(), model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(opt.state[q]["exp_avg_sq"], opt_eager.state[p]["exp_avg_sq"],
                                   rtol=1e-5, atol=1e-9)
    assert [p.data_ptr() for p in model.parameters()] == pointers
    assert_all_in_graphc()


@pytest.mark.parametrize("backend", BACKENDS)
def test_polynomial_regression_trains_as_eager(backend):
    """"Learning PyTorch with examples": a cubic fit to sin(x) with nn.Linear and Adam."""
    x = torch.linspace(-3.0, 3.0, 200).unsqueeze(-1)
    features = x.pow(torch.tensor([1, 2, 3]))
    batches = [(features, torch.sin(x))] * 20
    train_both(lambda: torch.nn.Linear(3, 1), batches, F.mse_loss,
               lambda p: torch.optim.Adam(p, lr=1e-2), backend)


# ---- a GPT-style transformer, trained with AdamW ----------------------------------------------
class Block(torch.nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv, self.proj = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(),
                                       torch.nn.Linear(4 * width, width))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=-1)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(torch.nn.Module):
    def __init__(self, vocab=32, context=16, width=32, heads=4, layers=2):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, width)
        self.positions = torch.nn.Embedding(context, width)
        self.blocks = torch.nn.Sequential(*(Block(width, heads) for _ in range(layers)))
        self.ln = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, vocab, bias=False)

    def forward(self, idx):
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1]))
        return self.head(self.ln(self.blocks(x)))


def lm_loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_gpt_training_with_adamw_matches_eager(backend):
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randint(0, 32, (4, 16), generator=g),
                torch.randint(0, 32, (4, 16), generator=g)) for _ in range(20)]
    train_both(GPT, batches, lm_loss, lambda p: torch.optim.AdamW(p, lr=1e-3), backend)


# ---- a small CNN with batch norm --------------------------------------------------------------
def small_cnn():
    """In float64: max pooling picks the larger of two near-equal values, so float32
    rounding differences (1e-7, from summing in another order) between two correct
    programs flip a choice within 20 steps and the gradients part (seen at step 17)."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 8, 3, bias=False),
        torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(8 * 2 * 2, 10)).double()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_cnn_with_batch_norm_trains_as_eager_and_updates_running_stats(backend):
    batches = [(x.double(), y) for x, y in classify_batches((8, 1, 8, 8), 10)]
    eager, model = train_both(small_cnn, batches, F.cross_entropy,
                              lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), backend)
    for (name, b), c in zip(eager.named_buffers(), model.buffers()):
        torch.testing.assert_close(c, b, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
    # Eval mode: the running statistics normalise, the outputs match eager's.
    eager.eval(), model.eval()
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(graphc_compile(model, backend)(x), eager(x),
                                   rtol=1e-4, atol=1e-5)
    assert_all_in_graphc()


# ---- calls: memory, dtypes, shapes ------------------------------------------------------------
def test_outputs_held_across_calls_stay_intact():
    """graphc's call plans reuse an output array nothing else refers to: the torch tensor
    over it must count as a reference, so earlier results are never overwritten."""
    f = graphc_compile(lambda x: torch.relu(x) * 2.0 + 1.0, "cpu")
    first_in, second_in = torch.randn(64), torch.randn(64)
    first = f(first_in)
    second = f(second_in)
    third = f(first_in)
    torch.testing.assert_close(first, torch.relu(first_in) * 2.0 + 1.0)
    torch.testing.assert_close(second, torch.relu(second_in) * 2.0 + 1.0)
    assert first.data_ptr() != second.data_ptr() != third.data_ptr()
    assert_all_in_graphc()


def test_inputs_are_not_copied():
    """The partition sees PyTorch's memory: graphc's view of an input is the tensor."""
    from graphc.dynamo.backend import to_graphc, to_torch
    t = torch.arange(6.0).reshape(2, 3)[:, 1:]          # a non-contiguous view
    g = to_graphc(t)
    assert g.numpy().__array_interface__["data"][0] == t.data_ptr()
    back = to_torch(graphc.ones(3))
    back[0] = 5.0
    assert back.tolist() == [5.0, 1.0, 1.0]
    b = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    assert to_torch(to_graphc(b)).data_ptr() == b.data_ptr()
    assert to_torch(to_graphc(b)).dtype == torch.bfloat16


@pytest.mark.parametrize("backend", BACKENDS)
def test_noncontiguous_0d_int64_and_bool_inputs(backend):
    def f(x, s, i, m):
        return torch.where(m, x * s, x + i.to(x.dtype)), (i * 2).sum()

    f_c = graphc_compile(f, backend)
    x = torch.randn(6, 4).t()                           # non-contiguous
    s, i, m = torch.tensor(3.0), torch.arange(6, dtype=torch.int64), torch.rand(4, 6) > 0.5
    got, want = f_c(x, s, i, m), f(x, s, i, m)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


def test_a_bfloat16_model_runs_in_graphc():
    """bfloat16 crosses as its bit pattern (numpy has no bfloat16) and comes back as is."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(),
                                torch.nn.Linear(8, 2)).to(torch.bfloat16)
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    with torch.no_grad():
        got, want = graphc_compile(model, "cpu")(x), model(x)
    assert got.dtype == torch.bfloat16
    # Within one bfloat16 step at the outputs' size (|y| < 1: 2**-8): graphc.addmm on
    # bfloat16 rounds the product before adding the bias, PyTorch's addmm once.
    torch.testing.assert_close(got, want, rtol=1.6e-2, atol=2 ** -8)
    assert_all_in_graphc()


def test_a_shape_change_recompiles_and_dynamic_sizes_are_specialised():
    """After a shape change Dynamo recompiles with symbolic sizes (automatic dynamic);
    graphc specialises each partition on the sizes it is called with."""
    def f(x):
        return (x * 2.0).reshape(-1, 2).sum(1)

    f_c = graphc_compile(f, "cpu")
    for n in (4, 6, 8, 6):
        x = torch.randn(n)
        torch.testing.assert_close(f_c(x), f(x))
    f_d = torch.compile(f, backend="graphc", dynamic=True)
    for n in (10, 12):
        x = torch.randn(n)
        torch.testing.assert_close(f_d(x), f(x))
    assert counters["stats"]["unique_graphs"] == 3      # static, automatic dynamic, dynamic
    assert_all_in_graphc()


@pytest.mark.slow
def test_batches_of_changing_size_train_as_eager():
    """A smaller batch makes Dynamo recompile with a symbolic batch size; graphc then
    compiles that graph (forward and backward) for each size it meets."""
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(n, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))
               for n in (16, 12, 16, 8, 12)]
    train_both(QuickstartNet, batches, F.cross_entropy, lambda p: torch.optim.SGD(p, lr=0.1),
               "interpreter")
    assert counters["stats"]["unique_graphs"] == 2      # static, then symbolic


# ---- the split: what graphc cannot run stays in PyTorch ---------------------------------------
def test_an_unsupported_op_runs_in_pytorch_and_is_named_once(monkeypatch, caplog):
    from graphc.dynamo import aten
    monkeypatch.delitem(aten.LOWERINGS, torch.ops.aten.sin.default)
    monkeypatch.setattr(importlib.import_module("graphc.dynamo.backend"), "_warned", set())

    def f(x):
        return torch.sin(torch.relu(x) * 3.0) + x

    x = torch.randn(5, requires_grad=True)
    with pytest.warns(UserWarning, match=r"graphc cannot run aten\.sin\.default") as record, \
            caplog.at_level(logging.DEBUG, logger="graphc.graph_breaks"):
        out = graphc_compile(f, "cpu")(x)
        graphc_compile(lambda x: torch.sin(x * 2.0), "interpreter")(x)     # a second graph
    out.sum().backward()
    torch.testing.assert_close(out, f(x))
    named = [w for w in record if "aten.sin.default" in str(w.message)]
    assert len(named) == 1          # a warning once per process; the log every time
    assert sum("graphc cannot run aten.sin.default" in r.getMessage()
               for r in caplog.records) == 2
    ran = counters["graphc"]
    assert ran["pytorch aten.sin.default"] >= 1 and ran["graphc nodes"] > 0, dict(ran)
    grad = x.grad.clone()
    x.grad = None
    f(x).sum().backward()
    torch.testing.assert_close(grad, x.grad)


# ---- options and the entry point --------------------------------------------------------------
def test_a_lowering_that_gets_the_dtype_wrong_fails_loudly(monkeypatch):
    from graphc.dynamo import aten
    monkeypatch.setitem(aten.LOWERINGS, torch.ops.aten.relu.default,
                        lambda x: graphc.relu(x).double())
    f = torch.compile(lambda x: torch.relu(x) * 2.0, backend="graphc")
    with pytest.raises(RuntimeError, match="lowering of aten.relu.default gave float64 "
                                           "where PyTorch gives torch.float32"):
        f(torch.randn(3))


def test_tensors_off_the_cpu_are_refused_clearly():
    f = torch.compile(lambda x: x * 2.0, backend="graphc")
    with pytest.raises(Exception, match="inputs on meta: graphc runs PyTorch's tensors in "
                                        "place only on the CPU"):
        f(torch.ones(3, device="meta"))


def test_the_entry_point_registers_graphc():
    assert "graphc" in torch._dynamo.list_backends()


def test_graphc_compile_is_a_dynamo_backend():
    f = torch.compile(lambda x: torch.tanh(x) * x, backend=graphc.compile)
    x = torch.randn(7)
    torch.testing.assert_close(f(x), torch.tanh(x) * x)
    assert_all_in_graphc()


def test_options_dump_and_fuse(tmp_path, monkeypatch):
    """Each partition dumps its own files: two partitions (split by an op left to
    PyTorch) write two programs."""
    from graphc.dynamo import aten
    monkeypatch.delitem(aten.LOWERINGS, torch.ops.aten.sin.default)
    x = torch.randn(16)
    for fuse in (True, False):
        folder = tmp_path / f"fuse-{fuse}"
        f = graphc_compile(lambda x: torch.sin(torch.exp(x) + 1.0) * 2.0, "cpu", fuse=fuse,
                           dump=str(folder))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.testing.assert_close(f(x), torch.sin(torch.exp(x) + 1.0) * 2.0)
        programs = sorted(p.name for p in folder.iterdir() if p.name.endswith(".ll"))
        assert [re.sub(r"graph\d+_", "", name) for name in programs] == \
            ["fused_0.0.forward.ll", "fused_1.0.forward.ll"], programs
        kernels = sum(int(report.read_text().split()[0])
                      for report in folder.glob("*.forward.fusion.txt"))
        assert kernels == (2 if fuse else 3)       # exp and add fuse or not; mul alone


def test_modes_are_accepted():
    f = torch.compile(lambda x: x * 3.0, backend="graphc", mode="max-autotune")
    torch.testing.assert_close(f(torch.ones(2)), torch.full((2,), 3.0))


def test_unknown_options_are_refused():
    f = torch.compile(lambda x: x + 1, backend="graphc", options={"fusion": False})
    with pytest.raises(Exception, match="unexpected option 'fusion'"):
        f(torch.randn(3))
    torch._dynamo.reset()
    f = torch.compile(lambda x: x + 1, backend="graphc", options={"backend": "tpu"})
    with pytest.raises(Exception, match="unknown backend 'tpu'"):
        f(torch.randn(3))


@pytest.mark.slow
def test_import_graphc_does_not_import_torch():
    import subprocess
    import sys
    code = "import graphc, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_graphc_compile_refuses_a_second_argument_that_is_not_dynamos():
    with pytest.raises(TypeError, match="TorchDynamo backend"):
        graphc.compile(lambda x: x, [np.ones(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert graphc.compile(lambda x: x)(graphc.ones(2)).tolist() == [1.0, 1.0]
