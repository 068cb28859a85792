"""``graphc.utils.data.dataloader``: ``DataLoader`` and PyTorch's default collate.

Loading runs in the calling process (``num_workers`` is accepted for compatibility, and
``get_worker_info()`` is None as in PyTorch's main process).  Batches of a
``TensorDataset`` (or a ``Subset`` of one) are cut from its tensors with one fancy index
per tensor instead of stacking samples one by one; the result is the same as
``default_collate`` would give.
"""
from __future__ import annotations

import collections.abc
import itertools
import re

import numpy as np

from graphc import creation, dtypes
from graphc.functional import stack
from graphc.tensor import Tensor
from graphc.utils.data.dataset import IterableDataset, Subset, TensorDataset
from graphc.utils.data.sampler import (BatchSampler, RandomSampler, SequentialSampler)


def get_worker_info():
    """None: samples are loaded in the calling process, never in worker processes."""
    return None


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
        if isinstance(dataset, IterableDataset):
            if shuffle not in (None, False) or sampler is not None or \
                    batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"shuffle, sampler and batch_sampler options, but got "
                                 f"shuffle={shuffle}, sampler={sampler}, "
                                 f"batch_sampler={batch_sampler}")
        elif sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else \
                SequentialSampler(dataset)
        if batch_sampler is not None:
            batch_size, drop_last = None, False
        elif batch_size is not None and sampler is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.generator = generator
        batched = batch_sampler is not None or batch_size is not None
        self.collate_fn = collate_fn or (default_collate if batched else default_convert)

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            return self._stream()
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

    def _stream(self):
        """Batches of an iterable dataset, in the order it yields samples."""
        samples = iter(self.dataset)
        if self.batch_size is None:
            yield from map(self.collate_fn, samples)
            return
        while batch := list(itertools.islice(samples, self.batch_size)):
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield self.collate_fn(batch)
