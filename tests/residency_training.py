"""The training both residency test files run (targets/test_cuda_residency.py on the
stand-in driver, targets/test_cuda_gpu.py on a real GPU): a small model whose whole Adam
training step is compiled, and a history of everything the host sees when it reads and
writes the parameters between steps, to compare across backends.
"""
import numpy as np

import graphc
from graphc import nn


def make_model():
    graphc.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def batch(i):
    rng = np.random.default_rng(i)
    return (graphc.tensor(rng.standard_normal((10, 6)).astype(np.float32)),
            graphc.tensor(rng.integers(0, 3, 10)))


def training(backend):
    """A model, its Adam optimizer and the whole training step compiled."""
    model = make_model()
    opt = graphc.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, graphc.compile(step, backend=backend)


def train_with_host_interactions(backend) -> list:
    """Training steps with host reads and writes in between; returns everything the
    host saw, then the final parameters."""
    model, opt, step = training(backend)
    w = model[0].weight
    escaped = w.detach().numpy()          # handed out before training: kept current
    row = w.detach()[1]                   # a view made before training
    seen = []
    for i in range(7):
        loss = step(*batch(i))
        seen += [float(loss), escaped.copy(), row.numpy().copy()]
        if i == 2:
            seen.append(w.sum().item())                   # an eager read
        if i == 3:
            with graphc.no_grad():
                w.mul_(0.5)                               # an eager write
        if i == 4:
            model[2].bias.data = graphc.full((3,), 0.25)  # new storage
        if i == 5:
            seen.append(opt.state[w]["exp_avg"].abs().sum().item())
    return seen + [p.detach().numpy().copy() for p in model.parameters()]


def assert_same_history(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
