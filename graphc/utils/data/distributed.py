"""``graphc.utils.data.distributed`` (``torch.utils.data.distributed``): each rank's share
of a dataset.

``DistributedSampler`` is PyTorch's algorithm step for step: the (optionally shuffled)
indices are padded by repeating them from the start, or cut (``drop_last``), to a
multiple of ``num_replicas``, and rank r takes every ``num_replicas``-th index from r.  The
shuffle is ``randperm`` with a generator seeded ``seed + epoch``, identical on every rank
so the shares partition one permutation.  graphc's generator is numpy's (PCG64), not the
Mersenne twister behind ``torch.randperm``, so the shuffled order differs from PyTorch's; without shuffle the indices are PyTorch's exactly.
"""
from __future__ import annotations

import math

import numpy as np

from graphc import creation
from graphc.distributed import process_group
from graphc.utils.data.sampler import Sampler


class DistributedSampler(Sampler):
    """``DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
    drop_last=False)``; ``num_replicas`` and ``rank`` default to the process group's, and
    ``set_epoch(epoch)`` before each epoch gives it a new order."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None or rank is None:
            if not process_group.is_available():
                raise RuntimeError("Requires distributed package to be available")
            num_replicas = process_group.get_world_size() if num_replicas is None \
                else num_replicas
            rank = process_group.get_rank() if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        if drop_last and len(dataset) % num_replicas != 0:
            self.num_samples = math.ceil((len(dataset) - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(len(dataset) / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def _index_chunks(self):
        n = len(self.dataset)
        if self.shuffle:
            g = creation.Generator().manual_seed(self.seed + self.epoch)
            indices = creation.randperm(n, generator=g)._data.astype(np.int64)
        else:
            indices = np.arange(n, dtype=np.int64)
        if not self.drop_last:
            padding = self.total_size - n
            if padding:
                indices = np.concatenate([indices, np.resize(indices, padding)])
        else:
            indices = indices[:self.total_size]
        yield indices[self.rank:self.total_size:self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch number joins the seed, so every epoch has its own order (the same on
        every rank)."""
        self.epoch = epoch
