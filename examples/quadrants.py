"""Which quadrant is a point in?  One small classifier, written three ways.

800 noisy 2-D points, 200 around each of (1, 1), (-1, 1), (-1, -1) and (1, -1), are
classified by a 2-3-3-4 sigmoid network trained on one-hot targets with binary
cross-entropy and SGD.  The same network is written as raw parameter tensors, as an
``nn.Module`` subclass and as an ``nn.Sequential``; all three must fit the data.

    python examples/quadrants.py --epochs 500
"""
import argparse

import graphc as torch
from graphc import nn

CENTERS = [[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]
SIZES = [2, 3, 3, 4]


def make_data(per_quadrant=200, noise=0.4):
    """Points ``X`` (N x 2), their quadrant ``labels`` (N) and one-hot targets (N x 4)."""
    n = per_quadrant * len(CENTERS)
    labels = torch.arange(n) // per_quadrant
    X = torch.tensor(CENTERS)[labels] + noise * torch.randn(n, 2)
    Y = torch.zeros(n, len(CENTERS))
    Y[torch.arange(n), labels] = 1
    return X, labels, Y


def raw_parameters():
    """Weights stored (in, out) so a layer is ``x @ w + b``; nn.Linear's init bounds."""
    params = []
    for n_in, n_out in zip(SIZES, SIZES[1:]):
        bound = 1 / n_in ** 0.5
        w = (torch.rand(n_in, n_out) * 2 - 1) * bound
        b = (torch.rand(n_out) * 2 - 1) * bound
        params += [w.requires_grad_(), b.requires_grad_()]
    return params


def raw_forward(params, x):
    for i in range(0, len(params), 2):
        x = torch.sigmoid(x @ params[i] + params[i + 1])
    return x


class QuadrantNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 3)
        self.fc2 = nn.Linear(3, 3)
        self.fc3 = nn.Linear(3, 4)

    def forward(self, x):
        x = torch.sigmoid(self.fc1(x))
        x = torch.sigmoid(self.fc2(x))
        return torch.sigmoid(self.fc3(x))


def sequential_net():
    return nn.Sequential(
        nn.Linear(2, 3), nn.Sigmoid(),
        nn.Linear(3, 3), nn.Sigmoid(),
        nn.Linear(3, 4), nn.Sigmoid(),
    )


def train(model, parameters, data, epochs, lr, momentum, name, quiet):
    """Full-batch training of ``model`` (any callable); returns its training accuracy."""
    X, labels, Y = data
    loss_fn = nn.BCELoss()
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum)
    for epoch in range(epochs):
        loss = loss_fn(model(X), Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if not quiet and epoch % 100 == 99:
            print(f"{name:>10}  epoch {epoch + 1:4d}  loss {loss.item():.4f}")
    with torch.no_grad():
        accuracy = (model(X).argmax(dim=1) == labels).float().mean().item()
    if not quiet:
        print(f"{name:>10}  training accuracy {accuracy:.3f}")
    return accuracy


def main(epochs=500, lr=2.0, momentum=0.9, seed=0, quiet=False):
    """Trains the three versions; returns their training accuracies by name."""
    torch.manual_seed(seed)
    data = make_data()
    params = raw_parameters()
    module_net = QuadrantNet()
    seq_net = sequential_net()
    hyper = dict(epochs=epochs, lr=lr, momentum=momentum, quiet=quiet)
    return {
        "raw": train(lambda x: raw_forward(params, x), params, data, name="raw", **hyper),
        "module": train(module_net, module_net.parameters(), data, name="module", **hyper),
        "sequential": train(seq_net, seq_net.parameters(), data, name="sequential",
                            **hyper),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(epochs=args.epochs, lr=args.lr, momentum=args.momentum, seed=args.seed,
         quiet=args.quiet)
