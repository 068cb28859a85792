"""Handwritten digits on several processes: DistributedDataParallel and DistributedSampler.

The digits classifier of examples/digits.py (scikit-learn's bundled 8x8 images, nothing is
downloaded), trained data-parallel the way a PyTorch DDP program is written: every process
joins the group (``init_process_group``), holds a replica of the model wrapped in
``DistributedDataParallel`` (which averages the gradients across processes during
``backward``) and reads its own share of each epoch's shuffled training set
(``DistributedSampler``).  ``--batch-size`` is the global batch: each process takes
batch_size // world_size images per step.  Rank 0 shows the progress bar (with its own
batch's loss), prints each epoch's loss averaged over the ranks, evaluates the test
accuracy and prints a summary line; the other ranks print nothing.

    pip install -e '.[distributed,examples]'
    mpiexec -n 2 python examples/ddp_digits.py              # two processes
    mpiexec -n 2 python examples/ddp_digits.py --compile    # the training step compiled
    python examples/ddp_digits.py                           # one process: a world of 1
    mpiexec -n 2 python examples/ddp_digits.py --model cnn --epochs 5

With ``--compile`` the whole training step (zero_grad, forward, loss, backward, the
optimizer's step) goes to ``torch.compile``: one native call per step, whose generated
code starts the gradients' all-reduce as soon as the backward has computed them
(docs/distributed.md).

With the same seed, N processes (N dividing ``--batch-size``) train on the one-process
batches: DistributedSampler deals rank r the indices r, r + N, r + 2N, ... of one shuffled
order, so the N shares of a step together are that step's one-process batch, and DDP's
average of the ranks' gradients is the gradient of the batch's mean loss.  (The sampler
pads the order to a multiple of N; for a large N that padding can add one last batch.)
So ``-n 1`` and ``-n 2`` reach the same parameters up to float rounding, not bit for bit
(measured: largest difference 4e-6 after the default 10 epochs; same loss and accuracy).
"""
import argparse
import time

from tqdm import tqdm

import graphc as torch
import graphc.distributed as dist
from graphc import nn
from graphc.nn.parallel import DistributedDataParallel as DDP
from graphc.utils.data import DataLoader, TensorDataset
from graphc.utils.data.distributed import DistributedSampler

from digits import cnn, load_data, mlp      # the single-process example's data and models


def accuracy(model, data):
    images, labels = data
    model.eval()
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


def main(args):
    """Trains on this process's share; returns ``{"model", "loss", "seconds"}`` (and
    ``"accuracy"`` on rank 0), ``model`` being the trained replica (unwrapped)."""
    dist.init_process_group(backend="mpi")          # mpiexec -n N, or alone: a world of 1
    rank, world_size = dist.get_rank(), dist.get_world_size()
    local_batch = args.batch_size // world_size     # --batch-size is the global batch
    if local_batch == 0:
        raise SystemExit(f"--batch-size {args.batch_size} is the global batch: it needs at "
                         f"least one image for each of the {world_size} processes")
    show = rank == 0 and not args.quiet

    torch.manual_seed(args.seed)    # DDP broadcasts rank 0's weights to the others anyway
    train_set, test_set = load_data(args.seed)
    train_data = TensorDataset(*train_set)
    sampler = DistributedSampler(train_data, shuffle=True, seed=args.seed)
    # drop_last: every step has one batch shape, so a compiled step is compiled once.
    loader = DataLoader(train_data, batch_size=local_batch, sampler=sampler, drop_last=True)

    model = DDP({"mlp": mlp, "cnn": cnn}[args.model]())
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    def train_step(images, labels):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()                 # DDP averages the gradients over the ranks here
        optimizer.step()
        return loss

    step = torch.compile(train_step) if args.compile else train_step

    start = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)        # a new shuffle each epoch, the same on every rank
        batches = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not show,
                       leave=False)
        total = 0.0
        for images, labels in batches:
            loss = step(images, labels).item()
            total += loss
            batches.set_postfix(loss=f"{loss:.4f}", refresh=False)   # rank 0's own batch
        epoch_loss = torch.tensor(total / len(loader))
        dist.all_reduce(epoch_loss, op=dist.ReduceOp.AVG)      # the mean over the ranks
        if show:
            tqdm.write(f"epoch {epoch + 1}/{args.epochs}  loss {epoch_loss.item():.4f}")
    seconds = time.perf_counter() - start

    result = {"model": model.module, "loss": epoch_loss.item(), "seconds": seconds}
    if rank == 0:                       # model.module: rank 0 alone, no DDP forward
        result["accuracy"] = accuracy(model.module, test_set)
        epochs = f"{args.epochs} epoch" + ("s" if args.epochs != 1 else "")
        print(f"ddp_digits: world size {world_size}, {args.model}"
              f"{' compiled' if args.compile else ''}, {epochs}, batch {args.batch_size} "
              f"({local_batch} per rank), loss {result['loss']:.4f}, "
              f"test accuracy {result['accuracy']:.4f}, {seconds:.1f} s", flush=True)
    dist.destroy_process_group()
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="the global batch: each of the N processes takes "
                             "batch_size // N images per step (default 64)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true",
                        help="compile the whole training step with torch.compile")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar or epoch lines; the summary line only")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
