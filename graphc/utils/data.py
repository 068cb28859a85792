"""``graphc.utils.data``: datasets, samplers, ``DataLoader`` and PyTorch's default collate.

Loading runs in the calling process (``num_workers`` is accepted for compatibility).
Batches of a ``TensorDataset`` (or a ``Subset`` of one) are cut from its tensors with
one fancy index per tensor instead of stacking samples one by one; the result is the
same as ``default_collate`` would give.
"""
from __future__ import annotations

import bisect
import collections.abc
import itertools
import math
import re

import numpy as np

from graphc import creation, dtypes
from graphc.functional import stack
from graphc.tensor import Tensor


# ---- datasets ---------------------------------------------------------------------------
class Dataset:
    """A map-style dataset: subclasses define ``__getitem__`` (and usually ``__len__``)."""

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the rows of several tensors of equal first dimension:
    ``TensorDataset(X, y)[i] == (X[i], y[i])``."""

    def __init__(self, *tensors: Tensor):
        sizes = [t.size(0) for t in tensors]
        if any(s != sizes[0] for s in sizes):
            raise ValueError(f"Size mismatch between tensors: their first dimensions are "
                             f"{sizes}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].size(0)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after another (``ds1 + ds2``)."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][idx - start]


def random_split(dataset, lengths, generator=None) -> list:
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths, or
    of the given fractions of its length (the remainder spread one by one, round robin)."""
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input "
                         "dataset!")
    order = creation.randperm(n, generator=generator).tolist()
    offsets = itertools.accumulate(lengths)
    return [Subset(dataset, order[end - size:end]) for end, size in zip(offsets, lengths)]


# ---- samplers ---------------------------------------------------------------------------
class Sampler:
    """Iterates over dataset indices; subclasses define ``__iter__`` and ``__len__``."""

    def __init__(self, data_source=None):
        self.data_source = data_source


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def _index_array(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random order each pass.  Without a ``generator`` the order is seeded from
    the global generator, so ``graphc.manual_seed`` makes it reproducible."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got "
                            f"replacement={replacement}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _index_array(self) -> np.ndarray:
        n = len(self.data_source)
        generator = self.generator or _seeded_from_global()
        if self.replacement:
            return creation.randint(0, n, (self.num_samples,), generator=generator)._data
        rounds = -(-self.num_samples // n)
        perms = [creation.randperm(n, generator=generator)._data for _ in range(rounds)]
        return np.concatenate(perms)[:self.num_samples]

    def __iter__(self):
        return iter(self._index_array().tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a fresh random order each pass."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def _index_array(self) -> np.ndarray:
        perm = creation.randperm(len(self.indices), generator=self.generator)._data
        return np.asarray(self.indices, dtype=np.int64)[perm]

    def __iter__(self):
        return iter(self._index_array().tolist())

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def _index_batches(self):
        """The batches as int64 arrays: one pass of the sampler, cut without a Python loop
        over single indices where the sampler can give its order as an array."""
        if hasattr(self.sampler, "_index_array"):
            order = self.sampler._index_array()
        else:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        return (order[i:i + self.batch_size] for i in range(0, stop, self.batch_size))

    def __iter__(self):
        return (batch.tolist() for batch in self._index_batches())

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _seeded_from_global():
    """A generator for one pass, seeded by one draw from the global generator (as
    PyTorch's RandomSampler does)."""
    seed = int(creation.default_generator._rng.integers(0, 2 ** 63 - 1))
    return creation.Generator().manual_seed(seed)


# ---- collate ----------------------------------------------------------------------------
_STRING_ARRAY = re.compile(r"[SaUO]")
_COLLATE_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, "
                  "dicts or lists; found {}")


def default_collate(batch):
    """Merge a list of samples into a batch, as PyTorch's ``default_collate``: tensors
    and numpy arrays are stacked along a new first dimension, Python floats become a
    float64 tensor and ints an int64 tensor, strings stay a list, and mappings, named
    tuples and sequences are collated field by field (tuples and lists give lists)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (np.str_,
                                                                              np.bytes_)):
        if _STRING_ARRAY.search(np.asarray(elem).dtype.str):
            raise TypeError(_COLLATE_ERROR.format(np.asarray(elem).dtype))
        return creation.tensor(np.stack(batch) if isinstance(elem, np.ndarray)
                               else np.array(batch))
    if isinstance(elem, float):
        return creation.tensor(batch, dtype=dtypes.float64)
    if isinstance(elem, int):
        return creation.tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _same_mapping_type(elem, {key: default_collate([d[key] for d in batch])
                                         for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def _stack_tensors(batch) -> Tensor:
    """One ``np.stack`` when the samples agree in shape and dtype and none takes part
    in autograd; otherwise ``graphc.stack`` (which records autograd, promotes dtypes and
    raises PyTorch's size error)."""
    first = batch[0]
    if any(t._requires_grad or t.shape != first.shape or t.dtype != first.dtype
           for t in batch):
        return stack(batch)
    return Tensor._wrap(np.stack([t._data for t in batch]), first.dtype)


def _same_mapping_type(elem, collated: dict):
    """A dict subclass (OrderedDict, ...) is rebuilt as its own type when it can be."""
    try:
        return type(elem)(collated)
    except TypeError:
        return collated


def default_convert(data):
    """Without batching (``batch_size=None``): numpy arrays and numpy scalars inside a
    sample become tensors (tuples become lists, as in PyTorch); everything else is kept."""
    if isinstance(data, (np.ndarray, np.generic)) and not _STRING_ARRAY.search(
            np.asarray(data).dtype.str):
        return creation.tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _same_mapping_type(data, {k: default_convert(v) for k, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (tuple, list)):
        return [default_convert(d) for d in data]
    return data


def _tensor_rows(dataset):
    """``idx array -> collated batch`` for datasets whose samples are rows of tensors
    (a TensorDataset, possibly under Subsets), else None."""
    if type(dataset).__getitem__ is Subset.__getitem__:
        inner = _tensor_rows(dataset.dataset)
        if inner is None:
            return None
        indices = np.asarray(dataset.indices, dtype=np.int64)
        return lambda idx: inner(indices[idx])
    if type(dataset).__getitem__ is TensorDataset.__getitem__:
        return lambda idx: [_take_rows(t, idx) for t in dataset.tensors]
    return None


def _take_rows(t: Tensor, idx: np.ndarray) -> Tensor:
    if t._requires_grad:
        return t[Tensor._wrap(idx, dtypes.int64)]
    return Tensor._wrap(t._data[idx], t.dtype)


# ---- the loader -------------------------------------------------------------------------
class DataLoader:
    """Iterates over ``dataset`` in batches.

    >>> loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True,
    ...                     generator=graphc.Generator().manual_seed(0))
    >>> for xb, yb in loader: ...

    ``shuffle=True`` draws a new order every epoch; ``batch_size=None`` yields single
    samples.  ``num_workers`` and the other multiprocessing options are accepted and
    ignored: loading runs in this process.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False,
                 timeout=0, worker_init_fn=None, multiprocessing_context=None,
                 generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device=""):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use "
                             "num_workers=0 to disable multiprocessing.")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                             "shuffle, sampler, and drop_last")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else \
                SequentialSampler(dataset)
        if batch_sampler is not None:
            batch_size, drop_last = None, False
        elif batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.generator = generator
        self.collate_fn = collate_fn or (default_collate if batch_sampler is not None
                                         else default_convert)

    def __len__(self):
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self):
        if self.batch_sampler is None:
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        rows = _tensor_rows(self.dataset) if self.collate_fn is default_collate else None
        if rows is not None and isinstance(self.batch_sampler, BatchSampler):
            return (rows(idx) for idx in self.batch_sampler._index_batches())
        return (self.collate_fn(self._fetch(indices)) for indices in self.batch_sampler)

    def _fetch(self, indices):
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(indices)
        return [self.dataset[i] for i in indices]
