"""The module paths and namespaces PyTorch programs import, under
``sys.modules["torch"] = graphc``: ``torch.utils.data`` as a package with lazy samplers,
``torch.backends.*`` flags, ``torch.cuda``/``torch.accelerator`` answering for this
machine, ``torch.nn.parallel``, ``torch.onnx``, and the global settings."""
import importlib
import itertools
import sys

import numpy as np
import pytest

import graphc


@pytest.fixture
def as_torch(monkeypatch):
    """graphc installed as ``torch`` (and its submodules under torch's names)."""
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", graphc)
    for name, mod in list(sys.modules.items()):
        if name.startswith("graphc."):
            monkeypatch.setitem(sys.modules, "torch" + name[len("graphc"):], mod)
    return graphc


@pytest.mark.parametrize("path", [
    "torch.utils.data.dataloader", "torch.utils.data.dataset", "torch.utils.data.sampler",
    "torch.backends.cudnn", "torch.backends.cuda", "torch.backends.mps", "torch.backends.cpu",
    "torch.nn.parallel", "torch.onnx", "torch.cuda", "torch.accelerator"])
def test_programs_import_these_paths(as_torch, path):
    assert importlib.import_module(path) is not None


def test_backends_flags_are_settable_and_read_back(as_torch):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.benchmark
    assert torch.backends.mps.is_available() is False
    assert torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX2", "DEFAULT")
    with torch.backends.cuda.sdp_kernel(enable_flash=False):
        assert not torch.backends.cuda.flash_sdp_enabled()
    assert torch.backends.cuda.flash_sdp_enabled()


def test_cuda_and_accelerator_answer_for_this_machine():
    available = graphc.cuda.is_available()
    assert graphc.accelerator.is_available() == available
    assert (graphc.accelerator.current_accelerator() is None) == (not available)
    graphc.cuda.manual_seed_all(0)
    graphc.cuda.empty_cache()
    if not available:
        assert graphc.cuda.device_count() == 0 and not graphc.cuda.is_bf16_supported()
        with pytest.raises(RuntimeError, match="CUDA"):
            graphc.cuda.current_device()
        with pytest.raises(RuntimeError, match="accelerator"):
            graphc.accelerator.current_device_index()


def test_random_sampler_with_replacement_draws_lazily():
    from graphc.utils.data import DataLoader, RandomSampler, TensorDataset
    ds = TensorDataset(graphc.arange(10.0))
    sampler = RandomSampler(ds, replacement=True, num_samples=int(1e10))
    assert len(sampler) == 10 ** 10
    first = list(itertools.islice(iter(sampler), 100))
    assert all(0 <= i < 10 for i in first) and len(set(first)) > 1
    batch, = next(iter(DataLoader(ds, sampler=sampler, batch_size=4)))
    assert batch.shape == (4,)


def test_random_sampler_without_replacement_covers_each_round():
    from graphc.utils.data import RandomSampler
    order = list(RandomSampler(range(4), num_samples=10,
                               generator=graphc.Generator().manual_seed(0)))
    assert sorted(order[:4]) == sorted(order[4:8]) == [0, 1, 2, 3] and len(order) == 10


def test_weighted_random_sampler():
    from graphc.utils.data import WeightedRandomSampler
    drawn = list(WeightedRandomSampler([0.0, 1.0, 3.0], 4000,
                                       generator=graphc.Generator().manual_seed(0)))
    counts = np.bincount(drawn, minlength=3)
    assert counts[0] == 0 and 2.6 < counts[2] / counts[1] < 3.4
    assert sorted(WeightedRandomSampler([1, 1, 1], 3, replacement=False)) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="without replacement"):
        list(WeightedRandomSampler([1.0, 0.0], 2, replacement=False))
    with pytest.raises(ValueError, match="num_samples"):
        WeightedRandomSampler([1.0], 0)


def test_iterable_dataset_batches_in_order():
    from graphc.utils.data import ChainDataset, DataLoader, IterableDataset

    class Count(IterableDataset):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(self.n))

        def __len__(self):
            return self.n

    assert [b.tolist() for b in DataLoader(Count(7), batch_size=3)] == \
        [[0, 1, 2], [3, 4, 5], [6]]
    assert len(DataLoader(Count(7), batch_size=3, drop_last=True)) == 2
    assert [b.tolist() for b in DataLoader(ChainDataset([Count(2), Count(1)]),
                                           batch_size=2)] == [[0, 1], [0]]
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Count(3), shuffle=True)
    assert graphc.utils.data.get_worker_info() is None


def test_data_parallel_is_the_module_with_prefixed_keys():
    lin = graphc.nn.Linear(3, 2)
    dp = graphc.nn.parallel.DataParallel(lin)
    x = graphc.randn(4, 3)
    assert np.array_equal(dp(x).detach().numpy(), lin(x).detach().numpy())
    assert list(dp.state_dict()) == ["module.weight", "module.bias"]


def test_default_dtype_and_global_settings():
    try:
        graphc.set_default_dtype(graphc.float64)
        assert graphc.tensor([1.0]).dtype == graphc.float64
        assert graphc.zeros(2).dtype == graphc.float64
    finally:
        graphc.set_default_dtype(graphc.float32)
    with pytest.raises(TypeError, match="floating-point"):
        graphc.set_default_dtype(graphc.int64)
    graphc.set_float32_matmul_precision("high")
    assert graphc.get_float32_matmul_precision() == "high"
    graphc.set_float32_matmul_precision("highest")
    graphc.use_deterministic_algorithms(True)
    assert graphc.are_deterministic_algorithms_enabled()
    graphc.use_deterministic_algorithms(False)
    state = graphc.get_rng_state()
    a = graphc.rand(3)
    graphc.set_rng_state(state)
    assert np.array_equal(a.numpy(), graphc.rand(3).numpy())


def test_tensorboard_summary_writer_takes_graphc_tensors(tmp_path):
    pytest.importorskip("tensorboardX")
    from graphc.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(tmp_path))
    writer.add_scalar("Loss/train", graphc.tensor(0.5), 1)
    writer.add_histogram("weights", graphc.randn(10), 1)
    writer.close()
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert events and b"Loss/train" in events[0].read_bytes()
    with pytest.raises(NotImplementedError, match="add_graph"):
        writer.add_graph(graphc.nn.Linear(1, 1))


def test_stack_dataset_tuples_and_dicts():
    from graphc.utils.data import DataLoader, StackDataset, TensorDataset
    a, b = TensorDataset(graphc.arange(4.0)), list(range(10, 14))
    sample = StackDataset(a, b)[1]
    assert sample[1] == 11 and sample[0][0].item() == 1.0
    batch = next(iter(DataLoader(StackDataset(x=a, y=b), batch_size=2)))
    assert batch["y"].tolist() == [10, 11] and batch["x"][0].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="Size mismatch"):
        StackDataset(a, [1])
