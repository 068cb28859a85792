"""``graphc.utils.data``: datasets, samplers, ``DataLoader`` and PyTorch's default
collate, in PyTorch's submodules (``dataset``, ``sampler``, ``dataloader``,
``distributed``) so that ``import torch.utils.data.dataloader`` works under ``import graphc as torch``."""
from graphc.utils.data.dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset,
                                       StackDataset, Subset, TensorDataset, random_split)
from graphc.utils.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                                       SubsetRandomSampler, WeightedRandomSampler)
from graphc.utils.data.distributed import DistributedSampler
from graphc.utils.data.dataloader import (DataLoader, default_collate, default_convert,
                                          get_worker_info)

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset",
           "DistributedSampler", "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset",
           "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "default_collate",
           "default_convert", "get_worker_info", "random_split"]
