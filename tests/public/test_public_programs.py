"""Public PyTorch programs, unchanged, on graphc: each model file is imported twice, once
with PyTorch and once with graphc standing in for ``torch``
(``graphc.testing.as_torch``); graphc's model loads PyTorch's state_dict (so the keys
must agree), and both train a few steps with the program's own optimizer on the same
batches.  Losses and parameters must match, eagerly and with the step compiled.

The programs are not part of this repository.  Clone them side by side and point
``GRAPHC_SUBJECTS`` at the folder (the tests skip otherwise):

    git clone https://github.com/karpathy/nanoGPT      $DIR/karpathy+nanoGPT
    git clone https://github.com/karpathy/minGPT       $DIR/karpathy+minGPT
    git clone https://github.com/karpathy/makemore     $DIR/karpathy+makemore
    git clone https://github.com/pytorch/examples      $DIR/pytorch+examples
    GRAPHC_SUBJECTS=$DIR pytest tests/public
"""
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc.testing import as_torch

torch = pytest.importorskip("torch")
SUBJECTS = Path(os.environ.get("GRAPHC_SUBJECTS", "/nonexistent"))
pytestmark = pytest.mark.skipif(not SUBJECTS.is_dir(), reason="GRAPHC_SUBJECTS not set")


def load(repo: str, file: str, lib: str):
    """The program's module ``file`` of ``repo``, imported with ``lib`` as torch."""
    root = SUBJECTS / repo
    if not (root / file).exists():
        pytest.skip(f"{repo} not cloned under GRAPHC_SUBJECTS")
    for name, mod in list(sys.modules.items()):      # the program's own modules, afresh
        if str(getattr(mod, "__file__", "") or "").startswith(str(root)):
            del sys.modules[name]
    sys.path.insert(0, str((root / file).parent))
    sys.path.insert(0, str(root))
    try:
        spec = importlib.util.spec_from_file_location(f"subject_{lib}_{Path(file).stem}",
                                                      root / file)
        module = importlib.util.module_from_spec(spec)
        if lib == "graphc":
            with as_torch.installed():
                spec.loader.exec_module(module)
        else:
            spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:2] = []


def to_np(t):
    return np.array(t.detach().numpy())


def train_both(build, make_opt, batches, loss_of, compiled=False, rtol=2e-4, atol=2e-5,
               train_mode=True):
    """``build(lib_module, lib)`` -> model; the step is zero_grad, loss, backward, step."""
    def run(lib):
        model = build(lib)
        model.train(train_mode)
        return model

    tm = run("torch")
    gm = run("graphc")
    assert list(gm.state_dict()) == list(tm.state_dict())
    gm.load_state_dict({k: graphc.tensor(to_np(v)) for k, v in tm.state_dict().items()})
    results = {}
    for lib, model, L in (("torch", tm, torch), ("graphc", gm, graphc)):
        opt = make_opt(L, model)

        def step(*batch):
            opt.zero_grad()
            loss = loss_of(L, model, *batch)
            loss.backward()
            opt.step()
            return loss

        if lib == "graphc" and compiled:
            step = graphc.compile(step)
        losses = [float(step(*[L.tensor(b) for b in batch]).item()) for batch in batches]
        results[lib] = losses, {k: to_np(v) for k, v in model.state_dict().items()}
    (gl, gs), (tl, ts) = results["graphc"], results["torch"]
    np.testing.assert_allclose(gl, tl, rtol=rtol, atol=atol)
    for k in ts:
        np.testing.assert_allclose(gs[k], ts[k], rtol=rtol * 10, atol=atol * 10, err_msg=k)
    return tl


def token_batches(vocab, batch, block, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, vocab, (batch, block)), rng.integers(0, vocab, (batch, block)))
            for _ in range(n)]


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_nanogpt(compiled, bias):
    mods = {lib: load("karpathy+nanoGPT", "model.py", lib) for lib in ("torch", "graphc")}

    def build(lib):
        m = mods[lib]
        return m.GPT(m.GPTConfig(block_size=16, vocab_size=64, n_layer=2, n_head=2,
                                 n_embd=32, dropout=0.0, bias=bias))

    train_both(build, lambda L, m: m.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu"),
               token_batches(64, 4, 16), lambda L, m, x, y: m(x, y)[1], compiled)


def test_nanogpt_generates_with_topk():
    m = load("karpathy+nanoGPT", "model.py", "graphc")
    graphc.manual_seed(0)
    gpt = m.GPT(m.GPTConfig(block_size=16, vocab_size=64, n_layer=1, n_head=2, n_embd=16,
                            dropout=0.0))
    out = gpt.generate(graphc.zeros((2, 3), dtype=graphc.long), 5, top_k=5)
    assert out.shape == (2, 8) and out.dtype == graphc.long


@pytest.mark.parametrize("compiled", [False, True])
def test_mingpt(compiled):
    mods = {lib: load("karpathy+minGPT", "mingpt/model.py", lib) for lib in ("torch", "graphc")}

    def build(lib):
        m = mods[lib]
        c = m.GPT.get_default_config()
        c.merge_from_dict(dict(model_type=None, n_layer=2, n_head=2, n_embd=32, vocab_size=64,
                               block_size=16, embd_pdrop=0.0, resid_pdrop=0.0,
                               attn_pdrop=0.0))
        return m.GPT(c)

    def make_opt(L, model):
        tc = type("C", (), dict(weight_decay=0.1, learning_rate=5e-4, betas=(0.9, 0.95)))
        return model.configure_optimizers(tc)

    train_both(build, make_opt, token_batches(64, 4, 16), lambda L, m, x, y: m(x, y)[1],
               compiled)


@pytest.mark.parametrize("kind", ["transformer", "bigram", "mlp", "rnn", "gru", "bow"])
def test_makemore(kind):
    pytest.importorskip("tensorboard")      # makemore.py imports SummaryWriter at the top
    mods = {lib: load("karpathy+makemore", "makemore.py", lib) for lib in ("torch", "graphc")}

    def build(lib):
        m = mods[lib]
        c = m.ModelConfig(vocab_size=27, block_size=8, n_layer=2, n_head=2, n_embd=16,
                          n_embd2=16)
        return {"transformer": lambda: m.Transformer(c), "bigram": lambda: m.Bigram(c),
                "mlp": lambda: m.MLP(c), "rnn": lambda: m.RNN(c, cell_type="rnn"),
                "gru": lambda: m.RNN(c, cell_type="gru"), "bow": lambda: m.BoW(c)}[kind]()

    train_both(build, lambda L, m: L.optim.AdamW(m.parameters(), lr=5e-4, weight_decay=0.01,
                                                 betas=(0.9, 0.99), eps=1e-8),
               token_batches(27, 4, 8), lambda L, m, x, y: m(x, y)[1])


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN_TANH", "Transformer"])
def test_word_language_model(rnn_type):
    mods = {lib: load("pytorch+examples", "word_language_model/model.py", lib)
            for lib in ("torch", "graphc")}

    def build(lib):
        m = mods[lib]
        if rnn_type == "Transformer":
            return m.TransformerModel(50, 16, 2, 32, 2, dropout=0.0)
        return m.RNNModel(rnn_type, 50, 16, 16, 2, dropout=0.0, tie_weights=True)

    def loss_of(L, model, x, y):
        if rnn_type == "Transformer":
            out = model(x)
        else:
            out, _ = model(x, model.init_hidden(x.size(1)))
        return L.nn.functional.nll_loss(out.view(-1, 50), y.view(-1))

    # TransformerModel leaves nn.Transformer's dropout at 0.1: compare in eval mode.
    train_both(build, lambda L, m: L.optim.SGD(m.parameters(), lr=1.0),
               token_batches(50, 6, 3), loss_of, train_mode=rnn_type != "Transformer")


def test_mnist_example_net_with_adadelta_and_steplr(monkeypatch):
    # main.py imports torchvision for its data only; the Net needs none of it.
    import types
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(datasets=None,
                                                                          transforms=None))
    mods = {lib: load("pytorch+examples", "mnist/main.py", lib) for lib in ("torch", "graphc")}
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((8, 1, 28, 28)).astype(np.float32),
                rng.integers(0, 10, 8)) for _ in range(3)]
    train_both(lambda lib: mods[lib].Net(), lambda L, m: L.optim.Adadelta(m.parameters(),
                                                                        lr=1.0),
               batches, lambda L, m, x, y: L.nn.functional.nll_loss(m(x), y),
               train_mode=False)


def test_time_sequence_prediction_with_lbfgs():
    pytest.importorskip("matplotlib")              # train.py imports it at the top
    mods = {lib: load("pytorch+examples", "time_sequence_prediction/train.py", lib)
            for lib in ("torch", "graphc")}
    rng = np.random.default_rng(0)
    x = np.sin(rng.uniform(0, 6, (3, 1)) + np.arange(20) / 3.0)
    results = {}
    for lib, L in (("torch", torch), ("graphc", graphc)):
        L.manual_seed(0)
        seq = mods[lib].Sequence()
        seq.double()
        if lib == "graphc":
            seq.load_state_dict({k: graphc.tensor(v) for k, v in results["torch"][1].items()})
        else:
            start = {k: to_np(v) for k, v in seq.state_dict().items()}
        opt = L.optim.LBFGS(seq.parameters(), lr=0.8)
        inp, target = L.tensor(x[:, :-1]), L.tensor(x[:, 1:])

        def closure():
            opt.zero_grad()
            loss = L.nn.functional.mse_loss(seq(inp), target)
            loss.backward()
            return loss
        losses = [float(opt.step(closure)) for _ in range(2)]
        results[lib] = (losses, start)
    np.testing.assert_allclose(results["graphc"][0], results["torch"][0], rtol=1e-6)
