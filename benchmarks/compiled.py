"""The compiled-graph benchmark suite: what ``graphc.compile`` buys, workload by workload.

Each workload runs, in the same process and in interleaved timing rounds, as:

- ``numpy``: a plain numpy function written by hand (for training steps: forward,
  backward and the optimizer update, with numpy's matmul; the GPT and CNN steps have
  none);
- ``eager``: the graphc program run op by op;
- ``unfused`` and ``fused``: the same program through ``graphc.compile(fuse=False|True)``
  (training steps are compiled whole: forward, loss, backward, update);
- ``torch`` and ``torch_compile``: the same program on PyTorch, where it is importable
  (it is not a dependency of graphc); a training step is given to ``torch.compile``
  whole, as to ``graphc.compile`` (``TORCH_COMPILE_NOTE`` says where Dynamo breaks it).

Every compiled (and numpy, and torch) result is checked against graphc eager before any
timing.  Bandwidth-bound workloads are put next to ``np.copyto`` of the same bytes, timed
in the same rounds.  Run it as ``python -m graphc bench`` (see ``graphc/bench.py``).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

import graphc
from benchmarks.common import copy_call, interleaved, machine

MODES = ("numpy", "eager", "unfused", "fused", "torch", "torch_compile")
GRAPHC_MODES = ("eager", "unfused", "fused")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Workload sizes: the shapes, and tiny ones for --quick (the test suite).
# gpt: batch, context, width, heads, layers, vocabulary; cnn: batch, image side.
FULL = dict(elements=1 << 24, rows=4096, cols=4096, gemm=1024, mlp=(256, 784, 256, 256, 10),
            regression=(64, 1000, 100, 10), quadrant=200, chain=1000,
            gpt=(8, 64, 128, 4, 2, 65), cnn=(64, 28))
QUICK = dict(elements=4096, rows=32, cols=48, gemm=32, mlp=(16, 32, 16, 16, 10),
             regression=(8, 20, 10, 4), quadrant=10, chain=1000,
             gpt=(2, 8, 16, 2, 1, 11), cnn=(4, 12))


@dataclass
class Case:
    """One workload, built and ready to time.

    ``calls`` maps each mode to a zero-argument call that runs the workload once;
    ``results`` maps each mode to a call that runs it as the correctness check does and
    returns the arrays to compare with eager's.
    """
    calls: dict
    results: dict
    bytes: int                      # bytes that must move: inputs read + outputs written
    flops: int = 0
    rtol: float = 1e-4
    atol: float = 1e-5


@dataclass
class Workload:
    name: str
    title: str
    build: object                   # (sizes, Context) -> Case
    goal: str = ""                  # the target, in words
    met: object = None              # row -> bool, whether the target is met
    unit: str = "ms"                # how the table shows its times


@dataclass
class Context:
    backend: str
    torch: object = None            # the torch module, or None


def as_array(x) -> np.ndarray:
    """A result (graphc tensor, torch tensor, numpy array or float) as a numpy array."""
    if isinstance(x, graphc.Tensor):
        return np.array(x.detach().numpy())
    if hasattr(x, "detach"):
        return np.array(x.detach().cpu().numpy())
    return np.array(x)


def graphc_calls(fn, ctx: Context) -> dict:
    """The graphc modes of ``fn``: eager, compiled unfused, compiled fused."""
    return {"eager": fn,
            "unfused": graphc.compile(fn, backend=ctx.backend, fuse=False),
            "fused": graphc.compile(fn, backend=ctx.backend, fuse=True)}


def torch_calls(fn, ctx: Context) -> dict:
    """PyTorch eager and torch.compile of ``fn``, where PyTorch is importable."""
    if ctx.torch is None:
        return {}
    return {"torch": fn, "torch_compile": ctx.torch.compile(fn)}


# ---- stateless workloads: one function of some arrays ---------------------------------------
def stateless_case(program, numpy_fn, arrays, ctx, nbytes, flops=0, rtol=1e-4,
                   atol=1e-5) -> Case:
    """A workload that maps input arrays to an output: ``program(lib)`` returns the
    function for graphc or torch (the same source serves both)."""
    fns = {"numpy": numpy_fn, **graphc_calls(program(graphc), ctx)}
    # graphc.tensor copies: an array shared with numpy (from_numpy) would never be kept
    # on a GPU, so the cuda backend would time uploads instead of kernels.
    inputs = {mode: [graphc.tensor(a) for a in arrays] for mode in fns}
    inputs["numpy"] = [a.copy() for a in arrays]
    if ctx.torch is not None:
        for mode, fn in torch_calls(program(ctx.torch), ctx).items():
            fns[mode] = fn
            inputs[mode] = [ctx.torch.from_numpy(a.copy()) for a in arrays]
    calls = {mode: _bind(fns[mode], inputs[mode]) for mode in fns}
    results = {mode: _one_result(call) for mode, call in calls.items()}
    return Case(calls, results, nbytes, flops, rtol, atol)


def _bind(fn, args):
    return lambda: fn(*args)


def _one_result(call):
    return lambda: [as_array(call())]


def gelu_chain(lib):
    F = lib.nn.functional
    return lambda x: F.gelu(x * 0.8 + 0.1, approximate="tanh") * lib.sigmoid(x)


def gelu_chain_numpy(x):
    u = x * 0.8 + 0.1
    inner = (u + u * u * u * 0.044715) * math.sqrt(2 / math.pi)
    return u * 0.5 * (np.tanh(inner) + 1) * (1 / (1 + np.exp(-x)))


A, B, C = 1.5, -0.25, 0.5         # relu_chain's Python scalars a, b, c


def relu_chain(lib):
    return lambda x: lib.relu(x * A + B) + C


def relu_chain_numpy(x):
    return np.maximum(x * A + B, 0) + C


def softmax_rows(lib):
    return lambda x: lib.softmax(x, dim=1)


def softmax_rows_numpy(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def layer_norm_rows(lib):
    F = lib.nn.functional
    return lambda x: F.layer_norm(x, (x.shape[1],))


def layer_norm_rows_numpy(x, eps=1e-5):
    centered = x - x.mean(axis=1, keepdims=True)
    return centered / np.sqrt((centered * centered).mean(axis=1, keepdims=True) + eps)


def matmul(lib):
    return lambda a, b: a @ b


def chain10(lib):
    """Ten elementwise ops on a small vector: what one compiled call costs."""
    def fn(x):
        y = x * 1.5 + 0.5
        y = lib.relu(y) * x
        y = lib.abs(y - 0.25) + 1.0
        return lib.sqrt(y) * 2.0 - x
    return fn


def chain10_numpy(x):
    y = x * 1.5 + 0.5
    y = np.maximum(y, 0) * x
    y = np.abs(y - 0.25) + 1.0
    return np.sqrt(y) * 2.0 - x


def randn(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def build_elementwise(program, numpy_fn):
    def build(sizes, ctx):
        x = randn(sizes["elements"])
        return stateless_case(program, numpy_fn, [x], ctx, 2 * x.nbytes)
    return build


def build_rows(program, numpy_fn):
    def build(sizes, ctx):
        x = randn(sizes["rows"], sizes["cols"])
        return stateless_case(program, numpy_fn, [x], ctx, 2 * x.nbytes)
    return build


def build_sgemm(sizes, ctx):
    n = sizes["gemm"]
    a, b = randn(n, n, seed=1), randn(n, n, seed=2)
    # Summing n products in another order moves the result by about sqrt(n) ulps.
    return stateless_case(matmul, np.matmul, [a, b], ctx, 3 * a.nbytes, flops=2 * n ** 3,
                          rtol=1e-4, atol=1e-4)


def build_chain10(sizes, ctx):
    x = randn(sizes["chain"])
    return stateless_case(chain10, chain10_numpy, [x], ctx, 2 * x.nbytes)


# ---- numpy training steps, written by hand --------------------------------------------------
ACTIVATIONS = {
    # name -> (f(z), df/dz from z and f(z))
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: z > 0),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, a: a * (1 - a)),
    None: (lambda z: z, None),
}


def numpy_forward(params, x, acts):
    """Dense layers ``act(a @ w.T + b)`` (weights stored (out, in), as nn.Linear);
    returns the output and the tape the backward pass reads."""
    tape, a = [], x
    for w, b, act in zip(params[0::2], params[1::2], acts):
        z = a @ w.T + b
        out = ACTIVATIONS[act][0](z)
        tape.append((a, z, out, act))
        a = out
    return a, tape


def numpy_backward(params, tape, grad_out):
    """Gradients of every weight and bias, from the gradient at the network's output
    (not the input's: nothing needs it, and autograd does not compute it either)."""
    grads, g = [], grad_out
    for i in reversed(range(len(tape))):
        a_in, z, out, act = tape[i]
        if act is not None:
            g = g * ACTIVATIONS[act][1](z, out)
        grads = [g.T @ a_in, g.sum(axis=0)] + grads
        if i:
            g = g @ params[2 * i]
    return grads


def cross_entropy_numpy(logits, labels):
    """Mean cross-entropy of integer labels and its gradient at the logits."""
    n = len(labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)
    loss = np.log(total[:, 0]).mean() - shifted[np.arange(n), labels].mean()
    grad = e / total
    grad[np.arange(n), labels] -= 1
    return loss, grad / n


def bce_numpy(p, y):
    """Mean binary cross-entropy (each log clamped at -100, as PyTorch) and its gradient."""
    loss = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))
    return loss.mean(), ((1 - y) / (1 - p) - y / p) / p.size


def mse_sum_numpy(pred, y):
    diff = pred - y
    return (diff * diff).sum(), 2 * diff


class NumpySGD:
    """``p -= lr * b`` with ``b = momentum * b + g`` (``b = g`` on the first step)."""

    def __init__(self, params, lr, momentum=0.0):
        self.params, self.lr, self.momentum = params, lr, momentum
        self.buffers = [None] * len(params)

    def step(self, grads):
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if self.momentum:
                b = self.buffers[i]
                g = self.buffers[i] = g.copy() if b is None else b * self.momentum + g
            p -= self.lr * g


class NumpyAdam:
    """torch.optim.Adam's update with bias correction."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.t)
        correction2 = math.sqrt(1 - beta2 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= step_size * m / (np.sqrt(v) / correction2 + self.eps)


class NumpyTrainStep:
    """A training step by hand: dense forward, loss, backward, optimizer update."""

    def __init__(self, params, acts, loss, optimizer):
        self.params = [p.copy() for p in params]
        self.acts, self.loss = acts, loss
        self.optimizer = optimizer(self.params)

    def __call__(self, x, y):
        out, tape = numpy_forward(self.params, x, self.acts)
        loss, grad = self.loss(out, y)
        self.optimizer.step(numpy_backward(self.params, tape, grad))
        return loss


def linear_init(sizes, seed=0) -> list:
    """Weights (out, in) and biases drawn as nn.Linear draws them: U(-1/sqrt(in), ...)."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        bound = 1 / math.sqrt(n_in)
        params.append(rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, n_out).astype(np.float32))
    return params


def load_params(lib, model, params):
    for p, a in zip(model.parameters(), params):
        p.data.copy_(lib.from_numpy(a.copy()))
    return model


# ---- graphc / torch training steps: the same source for both --------------------------------
def mlp_model(lib, sizes):
    nn, layers = lib.nn, []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def train_step_of(model, optimizer, loss_fn, forward=None):
    """The step every training workload compiles whole: forward, loss, backward, update,
    zero_grad.  ``forward(model, x)`` replaces ``model(x)`` where given."""
    def train_step(x, y):
        loss = loss_fn(model(x) if forward is None else forward(model, x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss
    return train_step


def mlp_step(lib, params, sizes, lr=0.01):
    model = load_params(lib, mlp_model(lib, sizes), params)
    optimizer = lib.optim.SGD(model.parameters(), lr=lr)
    return (train_step_of(model, optimizer, lib.nn.functional.cross_entropy),
            list(model.parameters()))


def quadrant_step(lib, params, lr=2.0, momentum=0.9):
    nn = lib.nn
    model = load_params(lib, nn.Sequential(
        nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 3), nn.Sigmoid(),
        nn.Linear(3, 4), nn.Sigmoid()), params)
    optimizer = lib.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return (train_step_of(model, optimizer, nn.functional.binary_cross_entropy),
            list(model.parameters()))


def regression_step(lib, params, sizes, lr=1e-4):
    nn = lib.nn
    model = load_params(lib, nn.Sequential(nn.Linear(*sizes[0:2]), nn.Linear(*sizes[1:3])),
                        params)
    optimizer = lib.optim.Adam(model.parameters(), lr=lr)

    def forward(model, x):
        return model[1](model[0](x).clamp(min=0))

    def loss_fn(y_pred, y):
        return nn.functional.mse_loss(y_pred, y, reduction="sum")
    return train_step_of(model, optimizer, loss_fn, forward), list(model.parameters())


def gpt_model(lib, context, width, heads, layers, vocab):
    """A GPT in nanoGPT's shape (as examples/gpt.py, without dropout): token and position
    embeddings, pre-norm blocks of causal self-attention and a GELU MLP, a head tied to
    the token embedding.  Built from ``lib`` so graphc and PyTorch run the same source."""
    nn, F = lib.nn, lib.nn.functional

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = (t.view(B, T, heads, C // heads).transpose(1, 2)
                       for t in self.qkv(x).split(C, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.attn = Attention()
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                     nn.Linear(4 * width, width))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, width)
            self.pos = nn.Embedding(context, width)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab, bias=False)
            self.head.weight = self.tok.weight

        def forward(self, idx):
            x = self.tok(idx) + self.pos(lib.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))
    return GPT()


def gpt_init(sizes, seed=0) -> list:
    """GPT-2's initialisation of ``gpt_model``'s parameters (in ``parameters()`` order):
    N(0, 0.02) for every matrix, graphc's own init (zero biases, unit norms) otherwise."""
    graphc.manual_seed(seed)
    rng = np.random.default_rng(seed)
    return [(0.02 * rng.standard_normal(p.shape)).astype(np.float32) if p.dim() == 2
            else np.array(p.detach().numpy())
            for p in gpt_model(graphc, *sizes).parameters()]


def gpt_step(lib, params, sizes, lr=3e-3):
    model = load_params(lib, gpt_model(lib, *sizes), params)
    optimizer = lib.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)

    def loss_fn(logits, y):
        return lib.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    return train_step_of(model, optimizer, loss_fn), list(model.parameters())


def cnn_model(lib, side):
    """PyTorch's MNIST example, smaller: two unpadded 3x3 convolutions (16 and 32
    channels), each followed by ReLU and 2x2 max pooling, then a linear head."""
    nn = lib.nn
    features = ((side - 2) // 2 - 2) // 2
    return nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * features * features, 10))


def cnn_init(side, seed=0) -> list:
    """graphc's default initialisation of ``cnn_model`` (PyTorch's), as arrays."""
    graphc.manual_seed(seed)
    return [np.array(p.detach().numpy()) for p in cnn_model(graphc, side).parameters()]


def cnn_step(lib, params, side, lr=0.01):
    model = load_params(lib, cnn_model(lib, side), params)
    optimizer = lib.optim.SGD(model.parameters(), lr=lr)
    return (train_step_of(model, optimizer, lib.nn.functional.cross_entropy),
            list(model.parameters()))


def training_case(make_step, numpy_step, data, ctx, nbytes, steps=3, rtol=1e-4,
                  atol=1e-5) -> Case:
    """Each mode trains its own copy of the same initial parameters (``numpy_step`` is
    None where there is no numpy step written by hand).  The check runs
    ``steps`` steps (an optimizer with state runs its first compiled step eagerly) and
    compares the last loss and every parameter with eager's."""
    steps_by_mode = {} if numpy_step is None else {"numpy": (numpy_step, numpy_step.params)}
    libs = {mode: graphc for mode in GRAPHC_MODES}
    if ctx.torch is not None:
        libs.update(torch=ctx.torch, torch_compile=ctx.torch)
    for mode, lib in libs.items():
        fn, params = make_step(lib)
        if mode == "torch_compile":
            fn = ctx.torch.compile(fn)
        elif mode in ("unfused", "fused"):
            fn = graphc.compile(fn, backend=ctx.backend, fuse=mode == "fused")
        steps_by_mode[mode] = (fn, params)
    calls, results = {}, {}
    for mode, (fn, params) in steps_by_mode.items():
        lib = {"numpy": np, "torch": ctx.torch, "torch_compile": ctx.torch}.get(mode, graphc)
        args = [a.copy() if lib is np else lib.tensor(a) for a in data]
        calls[mode] = _bind(fn, args)
        results[mode] = _trained(calls[mode], params, steps)
    return Case(calls, results, nbytes, rtol=rtol, atol=atol)


def _trained(call, params, steps):
    def run():
        for _ in range(steps):
            loss = call()
        return [as_array(loss)] + [as_array(p) for p in params]
    return run


def param_bytes(params) -> int:
    return sum(p.nbytes for p in params)


def build_mlp_train(sizes, ctx):
    batch, *layers = sizes["mlp"]
    params = linear_init(layers)
    x = randn(batch, layers[0], seed=1)
    y = np.random.default_rng(2).integers(0, layers[-1], batch)
    numpy_step = NumpyTrainStep(params, ["relu"] * (len(layers) - 2) + [None],
                                cross_entropy_numpy, lambda p: NumpySGD(p, lr=0.01))
    # Read x, y and the parameters; write the parameters back.
    nbytes = x.nbytes + y.nbytes + 2 * param_bytes(params)
    return training_case(lambda lib: mlp_step(lib, params, layers), numpy_step, [x, y], ctx,
                         nbytes)


def build_quadrant(sizes, ctx):
    per = sizes["quadrant"]
    centers = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float32)
    labels = np.repeat(np.arange(4), per)
    x = centers[labels] + 0.4 * randn(len(labels), 2, seed=1)
    y = np.eye(4, dtype=np.float32)[labels]
    params = linear_init([2, 3, 3, 4])
    numpy_step = NumpyTrainStep(params, ["sigmoid"] * 3, bce_numpy,
                                lambda p: NumpySGD(p, lr=2.0, momentum=0.9))
    # Read x, y, the parameters and momentum buffers; write both back.
    nbytes = x.nbytes + y.nbytes + 4 * param_bytes(params)
    return training_case(lambda lib: quadrant_step(lib, params), numpy_step, [x, y], ctx,
                         nbytes)


def build_regression(sizes, ctx):
    batch, *layers = sizes["regression"]
    params = linear_init(layers)
    x, y = randn(batch, layers[0], seed=1), randn(batch, layers[-1], seed=2)
    numpy_step = NumpyTrainStep(params, ["relu", None], mse_sum_numpy,
                                lambda p: NumpyAdam(p, lr=1e-4))
    # Read x, y, the parameters and both moments; write all three back.
    nbytes = x.nbytes + y.nbytes + 6 * param_bytes(params)
    return training_case(lambda lib: regression_step(lib, params, layers), numpy_step,
                         [x, y], ctx, nbytes, rtol=1e-3, atol=1e-4)


def build_gpt_train(sizes, ctx):
    batch, context, *rest = sizes["gpt"]
    vocab = rest[-1]
    params = gpt_init(sizes["gpt"][1:])
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, vocab, (batch, context)), rng.integers(0, vocab, (batch, context))
    # Read x, y, the parameters and both moments; write all three back.
    nbytes = x.nbytes + y.nbytes + 6 * param_bytes(params)
    return training_case(lambda lib: gpt_step(lib, params, sizes["gpt"][1:]), None, [x, y],
                         ctx, nbytes, rtol=1e-3, atol=1e-4)


def build_cnn_train(sizes, ctx):
    batch, side = sizes["cnn"]
    params = cnn_init(side)
    x = randn(batch, 1, side, side, seed=1)
    y = np.random.default_rng(2).integers(0, 10, batch)
    # Read x, y and the parameters; write the parameters back.
    nbytes = x.nbytes + y.nbytes + 2 * param_bytes(params)
    return training_case(lambda lib: cnn_step(lib, params, side), None, [x, y], ctx, nbytes,
                         rtol=1e-3, atol=1e-4)


def build_mlp_infer(sizes, ctx):
    batch, *layers = sizes["mlp"]
    params = linear_init(layers)
    x = randn(batch, layers[0], seed=1)
    acts = ["relu"] * (len(layers) - 2) + [None]

    def program(lib):
        model = load_params(lib, mlp_model(lib, layers), params).eval()

        def infer(x):
            return model(x)
        return infer

    def numpy_fn(x):
        return numpy_forward(params, x, acts)[0]
    case = stateless_case(program, numpy_fn, [x], ctx,
                          x.nbytes + param_bytes(params) + batch * layers[-1] * 4)
    case.calls = {mode: _without_grad(call, mode, ctx) for mode, call in case.calls.items()}
    case.results = {mode: _one_result(call) for mode, call in case.calls.items()}
    return case


def _without_grad(call, mode, ctx):
    if mode == "numpy":
        return call
    lib = graphc if mode in GRAPHC_MODES else ctx.torch

    def run():
        with lib.no_grad():
            return call()
    return run


# ---- compile time --------------------------------------------------------------------------
def probe_step(name: str, sizes: dict):
    """The graphc training step ``name`` of the ``compile`` row, and a batch for it."""
    if name == "mlp_train":
        batch, *layers = sizes["mlp"]
        fn, _ = mlp_step(graphc, linear_init(layers), layers)
        x = randn(batch, layers[0], seed=1)
        y = np.random.default_rng(2).integers(0, layers[-1], batch)
    elif name == "gpt_train":
        batch, context, *rest = sizes["gpt"]
        fn, _ = gpt_step(graphc, gpt_init(sizes["gpt"][1:]), sizes["gpt"][1:])
        x, y = np.random.default_rng(1).integers(0, rest[-1], (2, batch, context))
    else:
        batch, side = sizes["cnn"]
        fn, _ = cnn_step(graphc, cnn_init(side), side)
        x = randn(batch, 1, side, side, seed=1)
        y = np.random.default_rng(2).integers(0, 10, batch)
    return fn, graphc.from_numpy(x), graphc.from_numpy(y)


def compile_probe(name: str, backend: str, quick: bool) -> dict:
    """In a fresh process: seconds of the first call of the compiled training step
    ``name`` (trace, compile, run once) and of later calls.  One eager step runs first,
    so an optimizer with state has it (else the first compiled call would run eagerly
    to create it, and the compile would happen on the second)."""
    fn, x, y = probe_step(name, QUICK if quick else FULL)
    fn(x, y)
    step = graphc.compile(fn, backend=backend)
    start = time.perf_counter()
    step(x, y)
    first = time.perf_counter() - start
    later = []
    for _ in range(5):
        start = time.perf_counter()
        step(x, y)
        later.append(time.perf_counter() - start)
    return {"first_s": first, "run_s": statistics.median(later)}


def in_fresh_process(call: str, cache_dir: str, what: str, timeout=600):
    """What ``call`` (a dotted function call, ``module.function(args)``, its module
    imported first) returns, as JSON, in a new interpreter whose GRAPHC_CACHE_DIR is
    ``cache_dir``."""
    module = call.split("(", 1)[0].rsplit(".", 1)[0]
    code = f"import json, {module}; print(json.dumps({call}))"
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache_dir,
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_probe(name, backend, quick, cache_dir) -> float:
    """Compile seconds (first call minus a later call) of the probe in a new process."""
    probe = in_fresh_process(f"benchmarks.compiled.compile_probe({name!r}, {backend!r}, "
                             f"{quick!r})", cache_dir, f"compile probe of {name}")
    return probe["first_s"] - probe["run_s"]


def keep_host_tuning(cache_dir: str) -> None:
    """Empty a GRAPHC_CACHE_DIR but for the records of the host's matmul tuning (the
    ``.json`` entries, measured once per machine), so the next compile is a cold one on
    a machine graphc has run on before."""
    for name in os.listdir(cache_dir):
        if not name.endswith(".json"):
            os.remove(os.path.join(cache_dir, name))


def compile_times(name, backend, quick) -> dict:
    """Three processes sharing one GRAPHC_CACHE_DIR: ``first`` (empty: the host's
    matmul tuning is measured too, once per machine), ``cold`` (only the tuning records
    kept: every kernel compiles) and ``cached`` (everything from the disk cache)."""
    cache_dir = tempfile.mkdtemp(prefix="graphc-bench-cache-")
    try:
        first = run_probe(name, backend, quick, cache_dir)
        keep_host_tuning(cache_dir)
        cold = run_probe(name, backend, quick, cache_dir)
        cached = run_probe(name, backend, quick, cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return {"first": first, "cold": cold, "cached": cached}


# ---- the suite -----------------------------------------------------------------------------
def speedup(row, mode, base="numpy"):
    t = row["times_s"]
    return t[base] / t[mode] if mode in t and base in t else float("nan")


def at_least(row, ratio, mode="fused", base="numpy"):
    """Whether ``mode`` runs at least ``ratio`` times as fast as ``base``; None where
    either was not timed (no PyTorch, or no numpy step written by hand)."""
    s = speedup(row, mode, base)
    return None if math.isnan(s) else s >= ratio


def all_of(*met):
    """A target of several parts: None if any part could not be measured."""
    return None if None in met else all(met)


def near_copy(row):
    return row["gbps"]["fused"] >= 0.8 * row["copy_gbps"]


WORKLOADS = [
    Workload("gelu_chain", "gelu_tanh(x*0.8+0.1) * sigmoid(x), 16M f32",
             build_elementwise(gelu_chain, gelu_chain_numpy), "fused >= 5x numpy",
             lambda r: at_least(r, 5)),
    Workload("relu_chain", "relu(x*a+b) + c, 16M f32",
             build_elementwise(relu_chain, relu_chain_numpy), "fused >= 80% of copy GB/s",
             near_copy),
    Workload("softmax", "row softmax, 4096x4096 f32", build_rows(softmax_rows,
             softmax_rows_numpy), "fused >= 80% of copy GB/s", near_copy),
    Workload("layer_norm", "row layer norm (no affine), 4096x4096 f32",
             build_rows(layer_norm_rows, layer_norm_rows_numpy), "fused >= 80% of copy GB/s",
             near_copy),
    Workload("sgemm", "matmul 1024x1024x1024 f32", build_sgemm,
             "fused >= 90% of numpy GFLOPS", lambda r: at_least(r, 0.9)),
    Workload("mlp_train", "784-256-256-10 ReLU MLP train step, batch 256, CE, SGD",
             build_mlp_train, "fused faster than numpy and torch",
             lambda r: all_of(at_least(r, 1), at_least(r, 1, base="torch"))),
    Workload("mlp_infer", "784-256-256-10 ReLU MLP forward, batch 256", build_mlp_infer),
    Workload("regression", "1000-100-10 clamp MLP train step, batch 64, MSE sum, Adam",
             build_regression),
    Workload("quadrant", "2-3-3-4 sigmoid MLP whole train step, 800 points, BCE, SGD",
             build_quadrant, "fused <= 15 us per call",
             lambda r: r["times_s"]["fused"] <= 15e-6, unit="us"),
    Workload("chain10", "10 elementwise ops on 1000 f32 (call overhead)", build_chain10,
             "fused <= 3 us per call", lambda r: r["times_s"]["fused"] <= 3e-6, unit="us"),
    Workload("gpt_train", "GPT train step: 2 layers, width 128, 4 heads, batch 8 x 64 tokens, "
             "CE, AdamW", build_gpt_train, "fused >= 1.5x torch and >= 1x torch.comp",
             lambda r: all_of(at_least(r, 1.5, base="torch"),
                              at_least(r, 1, base="torch_compile"))),
    Workload("cnn_train", "CNN train step: conv3x3 16, pool, conv3x3 32, pool, linear; "
             "batch 64 of 28x28, CE, SGD", build_cnn_train, "fused >= 1x torch",
             lambda r: at_least(r, 1, base="torch")),
]
NAMES = [w.name for w in WORKLOADS] + ["compile"]
# The training steps whose compile time the ``compile`` row measures, with their targets
# (seconds; a cached target of None: none set).
COMPILE_STEPS = {"mlp_train": (2.0, 0.2), "gpt_train": (3.0, 0.3), "cnn_train": (2.0, None)}
# How ``torch.comp`` runs a training step: what the table's note says.
TORCH_COMPILE_NOTE = ("torch.comp of a training step is torch.compile of the whole step "
                      "function (default settings); Dynamo breaks the graph at loss.backward() "
                      "(AOTAutograd's compiled backward runs it), in optimizer.step and at "
                      "zero_grad")


def check(case: Case) -> tuple:
    """Every mode's result against graphc eager's: ({mode: {"ok", "max_abs_err"}},
    {mode: error}).  A PyTorch mode that raises is left out (PyTorch is only a point of
    comparison); a graphc or numpy mode that raises is a bug, and the error propagates."""
    expected = case.results["eager"]()
    out, left_out = {}, {}
    for mode, result in case.results.items():
        if mode == "eager":
            continue
        try:
            got = result()
        except Exception as e:
            if not mode.startswith("torch"):
                raise
            left_out[mode] = f"{type(e).__name__}: {e}"
            continue
        ok = all(g.shape == e.shape and np.allclose(g, e, rtol=case.rtol, atol=case.atol)
                 for g, e in zip(got, expected))
        err = max(float(np.max(np.abs(g.astype(np.float64) - e), initial=0))
                  if g.shape == e.shape else float("inf") for g, e in zip(got, expected))
        out[mode] = {"ok": ok, "max_abs_err": err}
    return out, left_out


def measure(workload: Workload, sizes, ctx, repeat, min_time, per_kernel=False) -> dict:
    """Time every mode of ``workload``; with ``per_kernel``, then run the fused mode
    ``repeat`` more times under ``graphc.profile()`` and keep its table (profiling stays
    out of the timed rounds)."""
    case = workload.build(sizes, ctx)
    checks, left_out = check(case)
    calls = {m: call for m, call in case.calls.items() if m not in left_out}
    copy, copied = copy_call(case.bytes // 2, on_gpu=ctx.backend == "cuda")
    times = interleaved({**calls, "copy": copy}, repeat, min_time)
    copy_s = times.pop("copy")
    row = {"name": workload.name, "title": workload.title, "unit": workload.unit,
           "bytes": case.bytes, "times_s": times, "checks": checks,
           "gbps": {m: case.bytes / t / 1e9 for m, t in times.items()},
           "copy_gbps": copied / copy_s / 1e9}
    if left_out:
        row["left_out"] = left_out
    if case.flops:
        row["gflops"] = {m: case.flops / t / 1e9 for m, t in times.items()}
    # Empty where there is no numpy step (JSON has no NaN to write instead).
    row["speedup_vs_numpy"] = {m: speedup(row, m) for m in times if "numpy" in times}
    row["fused_vs_unfused"] = speedup(row, "fused", "unfused")
    if per_kernel and "fused" in calls:
        with graphc.profile() as profile:
            for _ in range(repeat):
                calls["fused"]()
        row["per_kernel"] = profile.table()
    if workload.goal:
        met = workload.met(row)
        row["target"] = {"goal": workload.goal, "met": None if met is None else bool(met)}
    return row


def measure_compile(backend, quick) -> dict:
    steps = {}
    for name, (cold_goal, cached_goal) in COMPILE_STEPS.items():
        t = compile_times(name, backend, quick)
        goal = f"cold < {cold_goal:g} s" + (
            "" if cached_goal is None else f", cached < {cached_goal:g} s")
        met = t["cold"] < cold_goal and (cached_goal is None or t["cached"] < cached_goal)
        steps[name] = {**t, "goal": goal, "met": met}
    return {"name": "compile", "title": "train step compile time (first call - later)",
            "unit": "s", "compile_s": steps,
            "target": {"goal": "every step's", "met": all(s["met"] for s in steps.values())}}


def import_torch():
    """PyTorch if it is importable here (it is never a dependency of graphc).  Inductor
    compiles in this process: a pool of compile workers would go on competing with the
    timings on a two-core machine."""
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    try:
        import torch
    except ImportError:
        return None
    return torch


def run(names=None, backend="cpu", quick=False, repeat=None, min_time=None,
        use_torch=True, progress=None, per_kernel=False) -> dict:
    """Run the selected workloads; returns the report (what ``--json`` writes)."""
    unknown = set(names or ()) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown workload(s) {sorted(unknown)}; known: {', '.join(NAMES)}")
    repeat = repeat or (3 if quick else 7)
    min_time = min_time if min_time is not None else (0.002 if quick else 0.2)
    ctx = Context(backend, import_torch() if use_torch else None)
    sizes = QUICK if quick else FULL
    info = machine()            # the load average before the run; the end's is added below
    rows = []
    for w in WORKLOADS:
        if not names or w.name in names:
            rows.append(measure(w, sizes, ctx, repeat, min_time, per_kernel))
            if progress:
                progress(rows[-1])
    if not names or "compile" in names:
        rows.append(measure_compile(backend, quick))
        if progress:
            progress(rows[-1])
    modes = [m for m in MODES if any(m in r.get("times_s", {}) for r in rows)]
    info["load_average_end"] = machine().get("load_average")
    return {"machine": info, "backend": backend, "quick": quick, "repeat": repeat,
            "min_time_s": min_time, "modes": modes, "workloads": rows,
            "torch": None if ctx.torch is None else ctx.torch.__version__,
            "torch_threads": None if ctx.torch is None else ctx.torch.get_num_threads(),
            "torch_compile_note": None if ctx.torch is None else TORCH_COMPILE_NOTE}
