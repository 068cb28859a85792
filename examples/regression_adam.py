"""A two-layer regression network in nn.Sequential, trained with Adam.

    python examples/regression_adam.py --steps 500
"""
import argparse

import graphc as torch
from graphc import nn

N, D_IN, H, D_OUT = 64, 1000, 100, 10


def main(steps=500, lr=1e-4, seed=0, quiet=False):
    """Fits random targets from random inputs; returns the loss of every step."""
    torch.manual_seed(seed)
    x = torch.randn(N, D_IN)
    y = torch.randn(N, D_OUT)
    model = nn.Sequential(
        nn.Linear(D_IN, H),
        nn.ReLU(),
        nn.Linear(H, D_OUT),
    )
    loss_fn = nn.MSELoss(reduction="sum")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        if not quiet and (step % 100 == 99 or step == 0):
            print(f"step {step + 1:4d}  loss {loss.item():.6g}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"losses": losses}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(steps=args.steps, lr=args.lr, seed=args.seed, quiet=args.quiet)
