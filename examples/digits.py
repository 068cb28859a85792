"""Handwritten digits: an MLP and a small CNN on scikit-learn's bundled 8x8 images.

The 1797 images ship with scikit-learn (nothing is downloaded).  They are split into
train and test sets, batched by a shuffling DataLoader with a seeded generator, and
classified by an MLP and by a small convolutional network.

    python examples/digits.py --epochs 20 --cnn-epochs 10
"""
import argparse

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import graphc as torch
from graphc import nn
from graphc.utils.data import DataLoader, TensorDataset


def load_data(seed):
    """Train and test sets as (images N x 1 x 8 x 8 in [0, 1], labels N) tensor pairs."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images / 16.0, digits.target, test_size=0.25, random_state=seed,
        stratify=digits.target)

    def to_tensors(x, y):
        return torch.tensor(x, dtype=torch.float32).unsqueeze(1), torch.tensor(y)

    return to_tensors(x_train, y_train), to_tensors(x_test, y_test)


def mlp():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),                                    # 16 x 4 x 4
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


def fit(model, train, epochs, seed, name, quiet, batch_size=32, lr=1e-2):
    """Trains with Adam and cross-entropy on shuffled mini-batches."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(*train), batch_size=batch_size, shuffle=True,
                        generator=generator)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        batches = tqdm(loader, desc=f"{name} epoch {epoch + 1}/{epochs}", disable=quiet,
                       leave=False)
        for images, labels in batches:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batches.set_postfix(loss=f"{loss.item():.4f}", refresh=False)


def accuracy(model, data):
    images, labels = data
    model.eval()
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


def main(epochs=20, cnn_epochs=10, seed=0, quiet=False):
    """Trains both networks; returns their test accuracies (``cnn_epochs=0`` skips the
    CNN)."""
    torch.manual_seed(seed)
    train, test = load_data(seed)
    results = {}
    for name, make, n_epochs in [("mlp", mlp, epochs), ("cnn", cnn, cnn_epochs)]:
        if n_epochs == 0:
            continue
        model = make()
        fit(model, train, n_epochs, seed, name, quiet)
        results[name] = accuracy(model, test)
        if not quiet:
            print(f"{name}: test accuracy {results[name]:.4f} after {n_epochs} epochs")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="MLP epochs")
    parser.add_argument("--cnn-epochs", type=int, default=10, help="CNN epochs (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(epochs=args.epochs, cnn_epochs=args.cnn_epochs, seed=args.seed, quiet=args.quiet)
