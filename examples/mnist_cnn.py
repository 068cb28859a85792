"""PyTorch's MNIST example, on scikit-learn's bundled 8x8 digits: the same CNN (two 3x3
convolutions, max pooling, dropout, two linear layers, ``log_softmax``), trained with
``Adadelta`` and a ``StepLR`` schedule, eagerly and compiled.

The network and the optimizer settings are those of ``pytorch/examples/mnist/main.py``;
only the images are smaller (8x8 instead of 28x28, so the first linear layer takes
64 * 2 * 2 features).  Compiled, the whole training step (forward, ``nll_loss``,
backward, Adadelta) is one program; the schedule changes the learning rate every epoch
without recompiling.

    python examples/mnist_cnn.py            # eager, then compiled; test accuracy of each
"""
import argparse
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import graphc as torch
import graphc.nn.functional as F
from graphc import nn
from graphc.optim.lr_scheduler import StepLR
from graphc.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * 2 * 2, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def load_data(seed):
    """(images N x 1 x 8 x 8 normalised as MNIST's example does, labels) for train, test."""
    digits = load_digits()
    images = digits.images / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=seed, stratify=digits.target)
    mean, std = x_train.mean(), x_train.std()

    def to_tensors(x, y):
        return (torch.tensor((x - mean) / std, dtype=torch.float32).unsqueeze(1),
                torch.tensor(y))
    return to_tensors(x_train, y_train), to_tensors(x_test, y_test)


def train(model, train_set, epochs, seed, compiled, label, quiet, batch_size=64, lr=1.0,
          gamma=0.7):
    """Adadelta with StepLR(step_size=1); returns the mean loss of each epoch and the
    median step time."""
    optimizer = torch.optim.Adadelta(model.parameters(), lr=lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=gamma)
    loader = DataLoader(TensorDataset(*train_set), batch_size=batch_size, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(seed))

    def step(data, target):
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        return loss

    run = torch.compile(step) if compiled else step
    model.train()
    epoch_losses, times = [], []
    for epoch in range(epochs):
        bar = tqdm(loader, desc=f"{label} epoch {epoch + 1}/{epochs}", disable=quiet,
                   leave=False)
        total = 0.0
        for data, target in bar:
            start = time.perf_counter()
            loss = run(data, target).item()
            times.append(time.perf_counter() - start)
            total += loss
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        epoch_losses.append(total / len(loader))
        scheduler.step()
    later = sorted(times[1:] or times)
    return epoch_losses, later[len(later) // 2]


def test(model, test_set):
    """(mean loss, accuracy) on the test set, as the MNIST example reports them."""
    data, target = test_set
    model.eval()
    with torch.no_grad():
        output = model(data)
        loss = F.nll_loss(output, target, reduction="sum").item() / len(target)
        return loss, (output.argmax(dim=1) == target).float().mean().item()


def main(epochs=5, seed=1, modes=("eager", "compiled"), quiet=False):
    """Trains one network per mode from the same initial weights; returns per mode the
    epoch losses, the median step time and the test loss and accuracy."""
    train_set, test_set = load_data(seed)
    results = {}
    for mode in modes:
        torch.manual_seed(seed)
        model = Net()
        losses, step_s = train(model, train_set, epochs, seed, mode == "compiled", mode,
                               quiet)
        test_loss, accuracy = test(model, test_set)
        results[mode] = {"losses": losses, "step_s": step_s, "test_loss": test_loss,
                         "accuracy": accuracy}
        if not quiet:
            print(f"{mode:>8}: train loss {losses[0]:.3f} -> {losses[-1]:.3f}, test loss "
                  f"{test_loss:.4f}, accuracy {accuracy:.4f}, {step_s * 1e3:.1f} ms/step")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=["eager", "compiled", "both"], default="both")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(epochs=args.epochs, seed=args.seed, quiet=args.quiet,
         modes=("eager", "compiled") if args.mode == "both" else (args.mode,))
