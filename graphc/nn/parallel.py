"""``graphc.nn.parallel`` (``torch.nn.parallel``): ``DataParallel`` over the devices
graphc computes on.

Eager graphc tensors live in host memory and one process computes on one device, so
``DataParallel`` has a single replica, exactly as PyTorch's does on a machine without
GPUs: it calls the wrapped module, and its state_dict keys carry the ``module.`` prefix
that checkpoints saved from a DataParallel model have.
"""
from __future__ import annotations

from graphc.nn.module import Module
from graphc.unsupported import refused


class DataParallel(Module):
    """``DataParallel(module, device_ids=None, output_device=None, dim=0)``."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.device_ids = [] if device_ids is None else list(device_ids)
        self.output_device = output_device
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0,
                  module_kwargs=None):
    """The functional form of ``DataParallel``: ``module(*inputs, **module_kwargs)``."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return module(*inputs, **(module_kwargs or {}))


DistributedDataParallel = refused(
    "torch.nn.parallel.DistributedDataParallel",
    "graphc has no multi-process training yet (graphc.distributed is planned on MPI)",
    "train in one process, or wrap the model in nn.parallel.DataParallel")
