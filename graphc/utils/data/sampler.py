"""``graphc.utils.data.sampler``: the orders in which a ``DataLoader`` visits a dataset.

Samplers draw lazily, as PyTorch's do: ``RandomSampler(ds, replacement=True,
num_samples=10**10)`` costs nothing until iterated.  Each built-in sampler also gives its
order as int64 chunks (``_index_chunks``), so ``BatchSampler`` cuts batches without a
Python loop over single indices.
"""
from __future__ import annotations

import itertools

import numpy as np

from graphc import creation, dtypes

_CHUNK = 1 << 16
"""Indices drawn at once by a sampler with replacement (bounded memory, few calls)."""


class Sampler:
    """Iterates over dataset indices; subclasses define ``__iter__`` and ``__len__``."""

    def __init__(self, data_source=None):
        self.data_source = data_source

    def __iter__(self):
        if not hasattr(self, "_index_chunks"):
            raise NotImplementedError(f"{type(self).__name__} must define __iter__")
        return itertools.chain.from_iterable(c.tolist() for c in self._index_chunks())


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def _index_chunks(self):
        n = len(self.data_source)
        return (np.arange(i, min(i + _CHUNK, n), dtype=np.int64) for i in range(0, n, _CHUNK))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random order each pass: whole permutations (the last one cut short) or,
    with ``replacement``, independent draws.  Without a ``generator`` the order is seeded
    from the global generator, so ``graphc.manual_seed`` makes it reproducible."""

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

    def _index_chunks(self):
        n = len(self.data_source)
        generator = self.generator or _seeded_from_global()
        left = self.num_samples
        while left > 0:
            if self.replacement:
                chunk = creation.randint(0, n, (min(left, _CHUNK),), generator=generator)._data
            else:
                chunk = creation.randperm(n, generator=generator)._data[:left]
            left -= len(chunk)
            yield chunk

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a fresh random order each pass."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def _index_chunks(self):
        perm = creation.randperm(len(self.indices), generator=self.generator)._data
        yield np.asarray(self.indices, dtype=np.int64)[perm]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights``
    (``graphc.multinomial``'s rule: with or without replacement)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or \
                num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got "
                             f"replacement={replacement}")
        self.weights = creation.as_tensor(weights, dtype=dtypes.float64)
        if self.weights.dim() != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                             f"{tuple(self.weights.shape)}")
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def _index_chunks(self):
        p = np.asarray(self.weights._data, dtype=np.float64)
        if (p < 0).any() or not np.isfinite(p).all() or p.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0, "
                               "or an entry negative, inf or nan)")
        if not self.replacement and self.num_samples > np.count_nonzero(p):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                               "replacement")
        rng = (self.generator or creation.default_generator)._rng
        yield rng.choice(len(p), size=self.num_samples, replace=self.replacement,
                         p=p / p.sum()).astype(np.int64)

    def __len__(self):
        return self.num_samples


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
        """The batches as int64 arrays: one pass of the sampler, cut from its chunks (or
        from its iterator, for a sampler of the user's)."""
        if type(self.sampler).__iter__ is Sampler.__iter__:
            chunks = self.sampler._index_chunks()
        else:
            chunks = _until_empty(iter(self.sampler))
        pending = np.empty(0, np.int64)
        for chunk in chunks:
            pending = np.concatenate([pending, chunk]) if len(pending) else chunk
            full = len(pending) - len(pending) % self.batch_size
            for i in range(0, full, self.batch_size):
                yield pending[i:i + self.batch_size]
            pending = pending[full:]
        if len(pending) and not self.drop_last:
            yield pending

    def __iter__(self):
        return (batch.tolist() for batch in self._index_batches())

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _until_empty(it):
    """Chunks of an index iterator, until it is exhausted."""
    while len(chunk := np.fromiter(itertools.islice(it, _CHUNK), dtype=np.int64)):
        yield chunk


def _seeded_from_global():
    """A generator for one pass, seeded by one draw from the global generator (as
    PyTorch's RandomSampler does)."""
    seed = int(creation.default_generator._rng.integers(0, 2 ** 63 - 1))
    return creation.Generator().manual_seed(seed)
