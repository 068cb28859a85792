"""The programs the report tests compile: a training step of the tutorial's quadrant
MLP (examples/quadrants.py), one of a small GPT (examples/gpt.py), and a function with
a graph break and two recompiles.  Each takes the report's folder, runs its program
with the report on and returns the compiled function (its ``reporter`` holds what the
report shows)."""
import warnings

import graphc as torch
from graphc import nn

from examples_loader import load_example


def compiled_step(loss_of, optimizer, directory):
    """A whole training step (zero_grad, loss, backward, step) compiled with the report
    on."""
    def step(x, y):
        optimizer.zero_grad()
        loss = loss_of(x, y)
        loss.backward()
        optimizer.step()
        return loss
    return torch.compile(step, report=directory)


def mlp_step(directory):
    """Three compiled SGD steps of the quadrant net; returns the compiled step."""
    quadrants = load_example("quadrants")
    torch.manual_seed(0)
    X, _, Y = quadrants.make_data(per_quadrant=16)
    model = quadrants.QuadrantNet()
    loss_fn = nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    step = compiled_step(lambda x, y: loss_fn(model(x), y), optimizer, directory)
    for _ in range(3):
        step(X, Y)
    return step


def gpt_step(directory):
    """Two compiled AdamW steps of a 1-layer GPT on random tokens."""
    gpt = load_example("gpt")
    torch.manual_seed(0)
    model = gpt.GPT(vocab=16, block_size=8, width=16, heads=2, layers=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 16, (2, 8))
    y = torch.randint(0, 16, (2, 8))
    step = compiled_step(lambda x, y: model(x, y)[1], optimizer, directory)
    for _ in range(2):
        step(x, y)
    return step


FACTOR = 2.0


def scale(x):
    y = x * FACTOR
    if FACTOR > 100:                    # needs a value: the graph breaks here
        return y.sum().item()
    return y.sum()


def breaking(directory):
    """``scale`` compiled and called as the global it reads changes: compiled, recompiled
    (its guard on ``FACTOR`` fails), recompiled again into a graph break."""
    global FACTOR
    compiled = torch.compile(scale, report=directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for FACTOR in (2.0, 3.0, 200.0):
            compiled(torch.ones(3))
    FACTOR = 2.0
    return compiled
