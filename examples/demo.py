"""graphc in one minute: train a digits classifier eagerly, then compiled.

An MLP learns scikit-learn's bundled 8x8 digits with PyTorch-style code (``import graphc
as torch``).  The demo prints the loss of each epoch, the test accuracy and the time per
training step.  Then it trains the same network again, from the same initial weights on
the same batches, with the whole training step (forward, loss, backward, Adam's update)
compiled by ``torch.compile`` into one native program, and prints the speedup per step.

    python examples/demo.py
"""
import argparse
import statistics
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import graphc as torch
from graphc import nn
from graphc.utils.data import DataLoader, TensorDataset


def load_data(seed):
    """Train and test sets as (features N x 64 in [0, 1], labels N) tensor pairs."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=seed,
        stratify=digits.target)
    return ((torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train)),
            (torch.tensor(x_test, dtype=torch.float32), torch.tensor(y_test)))


def mlp(seed):
    torch.manual_seed(seed)             # both runs start from the same weights
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def train(model, compiled, train_set, epochs, seed, label, quiet):
    """Trains ``model``; with ``compiled``, its whole training step is compiled.

    Returns the mean loss of each epoch and the wall time of each step.  The batches
    have one fixed shape (``drop_last``) so the step is compiled once.
    """
    loader = DataLoader(TensorDataset(*train_set), batch_size=64, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(seed))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def step(images, labels):
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    run = torch.compile(step) if compiled else step
    epoch_losses, step_times = [], []
    for epoch in range(epochs):
        total = 0.0
        for images, labels in loader:
            start = time.perf_counter()
            loss = run(images, labels)
            step_times.append(time.perf_counter() - start)
            total += loss.item()
        epoch_losses.append(total / len(loader))
        if not quiet:
            print(f"{label:>8}  epoch {epoch + 1:2d}  loss {epoch_losses[-1]:.4f}")
    return epoch_losses, step_times


def evaluate(model, test_set):
    images, labels = test_set
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


def run(label, compiled, train_set, test_set, epochs, seed, quiet):
    """Trains one fresh MLP; returns its losses, test accuracy and step timings."""
    model = mlp(seed)
    losses, times = train(model, compiled, train_set, epochs, seed, label, quiet)
    result = {
        "losses": losses,
        "accuracy": evaluate(model, test_set),
        # Compiled, the first step runs eagerly while Adam creates its state and the
        # second traces and compiles; the median of all steps is not moved by two.
        "first_steps_s": sum(times[:2]),
        "ms_per_step": 1e3 * statistics.median(times),
    }
    if not quiet:
        print(f"{label:>8}  test accuracy {result['accuracy']:.4f}  "
              f"{result['ms_per_step']:.3f} ms/step  "
              f"(first two steps {1e3 * result['first_steps_s']:.1f} ms)")
    return result


def main(epochs=10, seed=0, quiet=False):
    """Returns ``{"eager": ..., "compiled": ..., "speedup": ...}``."""
    train_set, test_set = load_data(seed)
    results = {"eager": run("eager", False, train_set, test_set, epochs, seed, quiet),
               "compiled": run("compiled", True, train_set, test_set, epochs, seed, quiet)}
    results["speedup"] = results["eager"]["ms_per_step"] / results["compiled"]["ms_per_step"]
    if not quiet:
        print(f"time per training step: eager {results['eager']['ms_per_step']:.3f} ms, "
              f"compiled {results['compiled']['ms_per_step']:.3f} ms: "
              f"{results['speedup']:.1f}x faster compiled")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(epochs=args.epochs, seed=args.seed, quiet=args.quiet)
