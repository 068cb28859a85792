"""``graphc.distributed`` (``torch.distributed``) on MPI.

Processes are started by ``mpiexec -n N python train.py`` and form MPI's world; each calls
``init_process_group("mpi")`` (``"gloo"``, PyTorch's CPU backend, means MPI here too) and
then uses PyTorch's collectives on graphc tensors.  mpi4py and an MPI library come with
``pip install graphc[distributed]``; they are imported by ``init_process_group`` only, so
``import graphc`` never starts MPI, and without them ``is_available()`` is False and
single-process programs take their usual path.  docs/distributed.md has the details:
the launchers' environment, dtypes, and what happens when a rank fails.
"""
from graphc.distributed.collectives import (
    all_gather, all_gather_into_tensor, all_reduce, barrier, broadcast, irecv, isend, recv,
    reduce_scatter, reduce_scatter_tensor, send)
from graphc.distributed.faults import DistBackendError, DistError
from graphc.distributed.process_group import (
    destroy_process_group, get_backend, get_rank, get_world_size, init_process_group,
    is_available, is_initialized)
from graphc.distributed.ops import ReduceOp
from graphc.distributed.work import Work

__all__ = ["DistBackendError", "DistError", "ReduceOp", "Work", "all_gather",
           "all_gather_into_tensor", "all_reduce", "barrier", "broadcast",
           "destroy_process_group", "get_backend", "get_rank", "get_world_size",
           "init_process_group", "irecv", "is_available", "is_initialized", "isend", "recv", "reduce_scatter",
           "reduce_scatter_tensor", "send"]
