"""Run under ``mpiexec -n N`` (N divides 24): DistributedDataParallel, eager and with the
whole step compiled (cpu backend and interpreter), and DistributedSampler.

Every rank also trains the reference, one process on the whole batch, locally: the data
of each step is seeded by the step, so every rank knows the whole batch and takes its
shard (rows ``rank::N`` would do as well; contiguous rows are used).  Prints
``rank R ok N checks`` and, on rank 0, whether DDP's parameters are bit-identical to the
reference's; any failure raises (and aborts the job)."""
import copy

import numpy as np

import graphc as torch
import graphc.distributed as dist
from graphc import nn
from graphc.nn.parallel import DistributedDataParallel as DDP
from graphc.utils.data.distributed import DistributedSampler

dist.init_process_group("mpi")
RANK, SIZE = dist.get_rank(), dist.get_world_size()
BATCH, STEPS = 24, 20
assert BATCH % SIZE == 0, "the shards must be equal for DDP's average to be the batch mean"
SHARD = slice(RANK * BATCH // SIZE, (RANK + 1) * BATCH // SIZE)
checks = 0
identical = {}
largest = [0.0]          # the largest difference from the one-process reference, per model


def close(got, want, what, rtol=1e-5, atol=1e-7):
    global checks
    got, want = np.asarray(got.detach()), np.asarray(want.detach())
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"rank {RANK} {what}")
    checks += 1
    if got.size:
        largest[0] = max(largest[0], float(np.max(np.abs(got - want))))
    return np.array_equal(got, want)


def same_on_every_rank(model, what):
    """The replicas stay bit-identical: every rank's parameters equal rank 0's exactly."""
    global checks
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    every = [torch.zeros_like(flat) for _ in range(SIZE)]
    dist.all_gather(every, flat)
    for r in range(1, SIZE):
        assert torch.equal(every[r], every[0]), f"rank {r}'s {what} differ from rank 0's"
    checks += 1


def batch(step):
    rng = np.random.default_rng(100 + step)
    x = torch.tensor(rng.standard_normal((BATCH, 8)).astype(np.float32))
    y = torch.tensor(rng.standard_normal((BATCH, 4)).astype(np.float32))
    return x, y


class WithBuffers(nn.Module):
    """A BatchNorm in eval mode (running statistics are buffers) and a registered buffer."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 4)
        self.register_buffer("scale", torch.rand(4) + 0.5)
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.randn(16) * 0.1)
            self.bn.running_var.copy_(torch.rand(16) + 0.5)

    def forward(self, x):
        return self.fc2(torch.tanh(self.bn(self.fc1(x)))) * self.scale


def mlp():
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 16), nn.Tanh(),
                         nn.Linear(16, 4))


def make(kind, seed):
    torch.manual_seed(seed)
    model = mlp() if kind == "mlp" else WithBuffers()
    return model.eval() if kind == "buffers" else model


def train(model, shard, steps=STEPS):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(steps):
        x, y = batch(step)
        if shard:
            x, y = x[SHARD], y[SHARD]
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model


# ---- 20 steps of DDP on N shards == one process on the whole batch ---------------------------
for kind in ("mlp", "buffers"):
    largest[0] = 0.0
    reference = train(make(kind, 0), shard=False)
    # Each rank starts from its own weights: DDP's broadcast makes them rank 0's.
    model = make(kind, 0 if RANK == 0 else 1000 + RANK)
    ddp = DDP(model)
    assert ddp.module is model and ddp.bucket_count == 1
    for (name, want), got in zip(make(kind, 0).state_dict().items(), model.state_dict().values()):
        close(got, want, f"{kind} {name} after the broadcast at construction")
    if kind == "buffers" and RANK != 0:
        with torch.no_grad():
            model.scale.mul_(3.0)       # the broadcast before each forward undoes this
    train(ddp, shard=True)
    same_on_every_rank(ddp, f"{kind} parameters")
    same = True
    for (name, want), got in zip(reference.state_dict().items(), ddp.state_dict().items()):
        assert got[0] == "module." + name, (got[0], name)
        same &= close(got[1], want, f"{kind} {name} after {STEPS} steps")
    identical[kind] = (same, largest[0])

# ---- the whole step compiled: one native call with the all-reduces inside --------------------
def train_compiled(model, backend, steps=STEPS):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    compiled = torch.compile(step, backend=backend, fullgraph=True)   # a graph break raises
    for i in range(steps):
        x, y = batch(i)
        compiled(x[SHARD], y[SHARD])
    return model


for kind, backend, cap in (("mlp", "cpu", 25), ("mlp", "cpu", 0.0002),
                           ("mlp", "interpreter", 0.0002), ("buffers", "cpu", 25)):
    reference = train(make(kind, 0), shard=False)
    model = make(kind, 0 if RANK == 0 else 1000 + RANK)
    ddp = DDP(model, bucket_cap_mb=cap)
    if kind == "buffers" and RANK != 0:
        with torch.no_grad():
            model.scale.mul_(3.0)       # the compiled broadcast before each forward undoes this
    train_compiled(ddp, backend)
    same_on_every_rank(ddp, f"parameters compiled with {backend}")
    for (name, want), got in zip(reference.state_dict().items(), ddp.module.state_dict().values()):
        close(got, want, f"compiled {kind} ({backend}, {ddp.bucket_count} buckets) {name} "
                         f"after {STEPS} steps")

# ``graphc.compile(ddp)``: the module's forward compiled, DDP's bookkeeping still run on
# every call (the buffers' broadcast too), so gradients are averaged on every step.
for kind in ("mlp", "buffers"):
    reference = train(make(kind, 0), shard=False)
    model = make(kind, 0 if RANK == 0 else 1000 + RANK)
    ddp = DDP(model)
    if kind == "buffers" and RANK != 0:
        with torch.no_grad():
            model.scale.mul_(3.0)
    compiled = torch.compile(ddp)
    train(compiled, shard=True)
    same_on_every_rank(ddp, f"{kind} parameters of graphc.compile(ddp)")
    for (name, want), got in zip(reference.state_dict().items(), model.state_dict().values()):
        close(got, want, f"graphc.compile(ddp) {kind} {name} after {STEPS} steps")
    assert list(compiled.state_dict())[0].startswith("_orig_mod.module."), \
        list(compiled.state_dict())

# ---- several buckets: the same parameters as one bucket, bit for bit -------------------------
one = train(DDP(make("mlp", 0)), shard=True)
tiny = DDP(make("mlp", 0), bucket_cap_mb=0.0002)       # 210 bytes: a bucket per layer
assert tiny.bucket_count >= 3, tiny.bucket_count
order = [p for b in tiny._buckets for p in b.params]
assert order == list(tiny.module.parameters())[::-1], "buckets hold the last layers first"
train(tiny, shard=True)
for (name, a), b in zip(one.state_dict().items(), tiny.state_dict().values()):
    assert np.array_equal(np.asarray(a), np.asarray(b)), f"rank {RANK} buckets change {name}"
    checks += 1

# ---- no_sync: local sums, then one average of them -------------------------------------------
def local_grads(model, rank, micro):
    """The gradients a plain copy accumulates over ``micro`` micro-batches of ``rank``."""
    plain = copy.deepcopy(model)
    for step in range(micro):
        x, y = batch(step)
        part = slice(rank * BATCH // SIZE, (rank + 1) * BATCH // SIZE)
        nn.functional.mse_loss(plain(x[part]), y[part]).backward()
    return [p.grad for p in plain.parameters()]


base = make("mlp", 0)
ddp = DDP(copy.deepcopy(base))
MICRO = 3
with ddp.no_sync():
    for step in range(MICRO - 1):
        x, y = batch(step)
        nn.functional.mse_loss(ddp(x[SHARD]), y[SHARD]).backward()
for got, want in zip(ddp.module.parameters(), local_grads(base, RANK, MICRO - 1)):
    close(got.grad, want, "no_sync: the unsynchronised local sum", rtol=0, atol=0)
x, y = batch(MICRO - 1)
nn.functional.mse_loss(ddp(x[SHARD]), y[SHARD]).backward()
every = [local_grads(base, r, MICRO) for r in range(SIZE)]
for i, got in enumerate(ddp.module.parameters()):
    close(got.grad, sum(g[i] for g in every) / SIZE, "after no_sync, the average of the sums")

# The wrapped module called directly (no wrapper forward) computes local gradients only.
ddp.module.zero_grad()
x, y = batch(0)
nn.functional.mse_loss(ddp.module(x[SHARD]), y[SHARD]).backward()
for got, want in zip(ddp.module.parameters(), local_grads(base, RANK, 1)):
    close(got.grad, want, "the module called directly: local gradients", rtol=0, atol=0)

# ---- parameters without a gradient -----------------------------------------------------------
class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(8, 4), nn.Linear(8, 4)

    def forward(self, x):
        return self.used(x)


x, y = batch(0)
strict = DDP(Unused())
try:
    nn.functional.mse_loss(strict(x[SHARD]), y[SHARD]).backward()
    raise AssertionError("an unused parameter went unnoticed")
except RuntimeError as e:
    assert "find_unused_parameters=True" in str(e), e
    assert f"Parameter indices which did not receive grad for rank {RANK}: 2 3" in str(e), e
torch.manual_seed(3)
plain = Unused()
lenient = DDP(copy.deepcopy(plain), find_unused_parameters=True)
for step in range(2):                      # the second step shows the state was reset
    lenient.zero_grad()
    nn.functional.mse_loss(lenient(x[SHARD]), y[SHARD]).backward()
    assert not lenient.module.unused.weight.grad.any()
    want = [local_grads(plain, r, 1) for r in range(SIZE)]
    close(lenient.module.used.weight.grad, sum(g[0] for g in want) / SIZE, "used, averaged")

# ---- DistributedSampler from the group: the ranks' shares partition the padded dataset -------
for n, drop_last in ((10, False), (10, True), (24, False), (5, False)):
    sampler = DistributedSampler(range(n), drop_last=drop_last)
    assert (sampler.num_replicas, sampler.rank) == (SIZE, RANK)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        mine = torch.tensor(list(sampler), dtype=torch.int64)
        assert len(mine) == len(sampler)
        shares = [torch.zeros(len(sampler), dtype=torch.int64) for _ in range(SIZE)]
        dist.all_gather(shares, mine)
        every = torch.stack(shares).t().reshape(-1).tolist()   # back in the padded order
        assert len(every) == sampler.total_size
        if drop_last:
            assert len(set(every)) == len(every) <= n
        else:
            assert sorted(set(every)) == list(range(n))
            assert every[n:] == every[:len(every) - n], "padding repeats from the start"
        checks += 1

print(f"rank {RANK} ok {checks} checks", flush=True)
if RANK == 0:
    print("bit-identical to one process (largest difference): " + ", ".join(
        f"{kind} {same} ({diff:.1e})" for kind, (same, diff) in identical.items()), flush=True)
dist.destroy_process_group()
