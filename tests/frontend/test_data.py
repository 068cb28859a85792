"""graphc.utils.data: datasets, samplers, DataLoader batching and PyTorch's default_collate
(expected structures and dtypes as PyTorch 2.13 gives them)."""
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import graphc
from graphc.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset,
                               RandomSampler, SequentialSampler, Subset, SubsetRandomSampler,
                               TensorDataset, default_collate, random_split)


def _dataset(n=10):
    return TensorDataset(graphc.arange(n), graphc.arange(2.0 * n).reshape(n, 2))


class Squares(Dataset):
    """A map-style dataset with a custom __getitem__ (takes the generic, per-sample path)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.array([i, i * i], dtype=np.float32), "i": i, "name": f"s{i}"}


# ---- datasets ---------------------------------------------------------------------------
def test_tensor_dataset_items_and_len():
    ds = _dataset()
    x, y = ds[3]
    assert len(ds) == 10 and x.item() == 3 and y.tolist() == [6.0, 7.0]
    xs, ys = ds[2:4]
    assert xs.tolist() == [2, 3] and ys.shape == (2, 2)


def test_tensor_dataset_size_mismatch():
    with pytest.raises(ValueError, match=r"Size mismatch between tensors.*\[3, 4\]"):
        TensorDataset(graphc.zeros(3, 2), graphc.zeros(4))


def test_subset_and_concat():
    ds = _dataset()
    sub = Subset(ds, [7, 2])
    assert len(sub) == 2 and sub[0][0].item() == 7 and sub[1][0].item() == 2
    both = ds + Subset(ds, [0, 1])
    assert isinstance(both, ConcatDataset) and len(both) == 12
    assert [both[i][0].item() for i in (9, 10, 11, -1)] == [9, 0, 1, 1]


def test_random_split_lengths_and_fractions():
    ds = _dataset()
    a, b = random_split(ds, [7, 3], generator=graphc.Generator().manual_seed(0))
    assert (len(a), len(b)) == (7, 3)
    assert sorted(a.indices + b.indices) == list(range(10))
    c, d, e = random_split(ds, [0.5, 0.3, 0.2], generator=graphc.Generator().manual_seed(0))
    assert (len(c), len(d), len(e)) == (5, 3, 2)
    f, g = random_split(ds, [0.55, 0.45], generator=graphc.Generator().manual_seed(0))
    assert (len(f), len(g)) == (6, 4)      # floor 5 and 4, the remainder goes round robin
    again = random_split(ds, [7, 3], generator=graphc.Generator().manual_seed(0))
    assert again[0].indices == a.indices
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(ds, [5, 4])


# ---- samplers ---------------------------------------------------------------------------
def test_samplers():
    ds = _dataset(5)
    assert list(SequentialSampler(ds)) == [0, 1, 2, 3, 4]
    order = list(RandomSampler(ds, generator=graphc.Generator().manual_seed(1)))
    assert sorted(order) == [0, 1, 2, 3, 4] and len(RandomSampler(ds)) == 5
    drawn = list(RandomSampler(ds, replacement=True, num_samples=12,
                               generator=graphc.Generator().manual_seed(1)))
    assert len(drawn) == 12 and set(drawn) <= set(range(5))
    assert len(list(RandomSampler(ds, num_samples=7))) == 7
    assert sorted(SubsetRandomSampler([4, 8, 9])) == [4, 8, 9]
    assert list(BatchSampler(SequentialSampler(ds), 2, drop_last=False)) == [[0, 1], [2, 3],
                                                                              [4]]
    assert list(BatchSampler(range(5), 2, drop_last=True)) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler(ds, num_samples=0)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        BatchSampler(range(5), 0, False)


# ---- the loader -------------------------------------------------------------------------
def test_batches_in_order_with_dtypes():
    batches = list(DataLoader(_dataset(), batch_size=4))
    assert [b[0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x, y = batches[0]
    assert isinstance(batches[0], list)                 # default_collate of tuples: a list
    assert x.dtype == graphc.int64 and y.dtype == graphc.float32 and y.shape == (4, 2)
    assert y.tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]


def test_len_and_drop_last():
    ds = _dataset()
    assert len(DataLoader(ds, batch_size=4)) == 3
    loader = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(b[0]) for b in loader] == [4, 4]
    assert len(DataLoader(ds)) == 10 and len(DataLoader(ds, batch_size=10)) == 1


def test_fast_path_equals_per_sample_collate():
    """The TensorDataset fast path gives what stacking the samples one by one gives."""
    ds = _dataset()
    sampler = RandomSampler(ds, generator=graphc.Generator().manual_seed(3))
    indices = list(sampler)
    fast = list(DataLoader(Subset(ds, indices), batch_size=3))
    slow = [default_collate([ds[i] for i in indices[k:k + 3]]) for k in range(0, 10, 3)]
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert fx.dtype == sx.dtype and fy.dtype == sy.dtype
        np.testing.assert_array_equal(fx.numpy(), sx.numpy())
        np.testing.assert_array_equal(fy.numpy(), sy.numpy())


def test_shuffle_with_seeded_generator_is_reproducible_and_reshuffles():
    def epochs(seed):
        loader = DataLoader(_dataset(), batch_size=3, shuffle=True,
                            generator=graphc.Generator().manual_seed(seed))
        return [[x.tolist() for x, _ in loader] for _ in range(2)]

    first, second = epochs(0)
    assert sorted(sum(first, [])) == list(range(10))
    assert first != second                                   # a new order every epoch
    assert epochs(0) == [first, second]
    assert epochs(1) != [first, second]


def test_shuffle_without_generator_follows_manual_seed():
    def epoch():
        return [x.tolist() for x, _ in DataLoader(_dataset(), batch_size=5, shuffle=True)]

    graphc.manual_seed(7)
    a = epoch()
    graphc.manual_seed(7)
    assert epoch() == a and sorted(sum(a, [])) == list(range(10))


def test_rows_stay_paired_when_shuffled():
    for x, y in DataLoader(_dataset(), batch_size=4, shuffle=True):
        np.testing.assert_array_equal(y.numpy(), np.stack([2.0 * x.numpy(),
                                                           2.0 * x.numpy() + 1], 1))


def test_custom_dataset_collates_dicts_arrays_numbers_strings():
    loader = DataLoader(Squares(5), batch_size=2)
    batch = next(iter(loader))
    assert set(batch) == {"x", "i", "name"}
    assert batch["x"].dtype == graphc.float32 and batch["x"].tolist() == [[0, 0], [1, 1]]
    assert batch["i"].dtype == graphc.int64 and batch["i"].tolist() == [0, 1]
    assert batch["name"] == ["s0", "s1"]
    assert len(loader) == 3 and len(list(loader)[-1]["i"]) == 1


def test_batch_size_none_yields_converted_samples():
    items = list(DataLoader(Squares(2), batch_size=None))
    assert len(items) == 2 and items[1]["i"] == 1
    assert isinstance(items[1]["x"], graphc.Tensor) and items[1]["x"].tolist() == [1.0, 1.0]


def test_collate_fn_sampler_and_batch_sampler_options():
    ds = _dataset()
    loader = DataLoader(ds, batch_size=3, collate_fn=lambda samples: len(samples))
    assert list(loader) == [3, 3, 3, 1]
    picked = DataLoader(ds, batch_size=2, sampler=[9, 0, 4])
    assert [x.tolist() for x, _ in picked] == [[9, 0], [4]]
    custom = DataLoader(ds, batch_sampler=[[1, 2, 3], [5]], num_workers=2)
    assert [x.tolist() for x, _ in custom] == [[1, 2, 3], [5]] and len(custom) == 2
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0]])


def test_dataset_with_getitems_is_fetched_in_one_call():
    class Batched(Squares):
        calls = 0

        def __getitems__(self, indices):
            Batched.calls += 1
            return [self[i] for i in indices]

    batches = list(DataLoader(Batched(4), batch_size=2))
    assert Batched.calls == 2 and batches[1]["i"].tolist() == [2, 3]


# ---- default_collate --------------------------------------------------------------------
def test_collate_numbers():
    floats = default_collate([1.5, 2.0])
    assert floats.dtype == graphc.float64 and floats.tolist() == [1.5, 2.0]
    assert default_collate([1, 2]).dtype == graphc.int64
    bools = default_collate([True, False])
    assert bools.dtype == graphc.bool and bools.tolist() == [True, False]
    assert default_collate([np.float32(1), np.float32(2)]).dtype == graphc.float32
    assert default_collate([np.float64(1)]).dtype == graphc.float64
    assert default_collate([np.int32(1)]).dtype == graphc.int32


def test_collate_tuples_give_lists_and_namedtuples_keep_type():
    assert [t.tolist() for t in default_collate([(1, 2.0), (3, 4.0)])] == [[1, 3], [2.0, 4.0]]
    Point = namedtuple("Point", "x y")
    p = default_collate([Point(1, 2), Point(3, 4)])
    assert type(p) is Point and p.x.tolist() == [1, 3] and p.y.tolist() == [2, 4]
    assert [t.tolist() for t in default_collate([[1, 2], [3, 4]])] == [[1, 3], [2, 4]]
    od = default_collate([OrderedDict(b=1, a=2), OrderedDict(b=3, a=4)])
    assert type(od) is OrderedDict and list(od) == ["b", "a"]


def test_collate_tensors_stack_and_keep_autograd():
    stacked = default_collate([graphc.tensor(1), graphc.tensor(2)])
    assert stacked.tolist() == [1, 2] and stacked.dtype == graphc.int64
    w = graphc.ones(2, requires_grad=True)
    batch = default_collate([w * 2, w * 3])
    batch.sum().backward()
    assert w.grad.tolist() == [5.0, 5.0]


@pytest.mark.parametrize("batch,error,match", [
    ([[1, 2], [3]], RuntimeError, "each element in list of batch should be of equal size"),
    ([object()], TypeError, "batch must contain tensors, numpy arrays, numbers, dicts or "
                            "lists; found <class 'object'>"),
    ([np.array(["a"])], TypeError, "found <U1"),
    ([graphc.zeros(2), graphc.zeros(3)], RuntimeError, "stack expects each tensor to be "
                                                       "equal size"),
])
def test_collate_errors(batch, error, match):
    with pytest.raises(error, match=match):
        default_collate(batch)


def test_strings_stay_lists():
    assert default_collate(["a", "b"]) == ["a", "b"]
