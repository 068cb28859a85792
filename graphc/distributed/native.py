"""What compiled programs need of the process group: ``World``, attached to
``graphc.ops.collective`` while a group exists (``init_process_group`` to
``destroy_process_group``).

The interpreter backend communicates through ``World.all_reduce`` and
``World.broadcast``.  The cpu backend's generated code calls the MPI library itself, so
``World`` also says where that library's functions are (``functions``: the addresses of
``MPI_Iallreduce``, ``MPI_Ibcast``, ``MPI_Wait`` and ``MPI_Test`` in the library mpi4py
loaded), gives the values of MPI's handles in a fixed
layout (``handles``: the communicator, then one datatype per ``collective.DTYPES``, then one
operation per ``collective.MPI_OPS``; the generated code reads them from a table at run
time, so it is the same in every process and cached on disk), and the sizes of the
handle, request and status types (``abi``), which differ between MPI libraries (MPICH's
handles are ints, Open MPI's pointers) and so are part of the generated code.

Before each call of a compiled program with collectives every rank checks, with one
small allgather, that all ranks run a program with the same collectives (``agree``): a
rank whose batch had another shape would otherwise reduce a different number of
elements, which MPI does not detect (a wrong result, a crash or a hang).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re

import numpy as np

from graphc import dtypes
from graphc.distributed import buffers
from graphc.distributed.work import Work
from graphc.ops import collective

_FUNCTIONS = ("MPI_Iallreduce", "MPI_Ibcast", "MPI_Wait", "MPI_Test")


class World:
    """The process group as compiled programs see it."""

    def __init__(self, group):
        self.group = group
        self.rank, self.size = group.rank, group.size
        MPI = group.MPI
        self.abi = (MPI._sizeof(MPI.Comm), MPI._sizeof(MPI.Request), MPI._sizeof(MPI.Status))
        self.handles = ([MPI._handleof(group.comm)]
                        + [MPI._handleof(getattr(MPI, buffers.MPI_NAMES[d.name]))
                           for d in collective.DTYPES]
                        + [MPI._handleof(getattr(MPI, name)) for name in collective.MPI_OPS])
        self._functions = None

    @property
    def functions(self) -> dict:
        """{MPI function name: its address}, looked up on first use."""
        if self._functions is None:
            library = _mpi_library()
            self._functions = {name: ctypes.cast(getattr(library, name), ctypes.c_void_p).value
                               for name in _FUNCTIONS}
        return self._functions

    def all_reduce(self, array: np.ndarray, op: str) -> np.ndarray:
        """``array`` reduced over the ranks (the interpreter's ``all_reduce``)."""
        dtype = dtypes.from_numpy(array.dtype)
        self.agree(f"all_reduce<{op}>({buffers.describe(dtype, array.shape)})")
        MPI = self.group.MPI
        send = array if array.flags.c_contiguous else array.copy()
        out = np.empty_like(send)
        request = self.group.comm.Iallreduce(
            send, out, op=getattr(MPI, collective.mpi_op(op, dtype)))
        Work(self.group, f"all_reduce({buffers.describe(dtype, array.shape)})", [request]).wait()
        return out

    def broadcast(self, array: np.ndarray, src: int) -> np.ndarray:
        """Rank ``src``'s ``array`` (the interpreter's ``broadcast``)."""
        dtype = dtypes.from_numpy(array.dtype)
        what = f"broadcast({buffers.describe(dtype, array.shape)}, src={src})"
        if src >= self.size:
            raise RuntimeError(f"{what}: src {src} is not a rank of a world of {self.size}")
        self.agree(what)
        out = array.copy()
        Work(self.group, what, [self.group.comm.Ibcast(out, root=src)]).wait()
        return out

    def agree(self, what: str) -> None:
        """Check that every rank is about to run ``what`` (a program's collectives), with
        one allgather of its hash; on a mismatch every rank raises, naming what rank 0 and
        the first differing rank run."""
        mine = np.frombuffer(hashlib.sha256(what.encode()).digest()[:8], np.int64).copy()
        every = np.empty(self.size, np.int64)
        request = self.group.comm.Iallgather(mine, every)
        Work(self.group, f"the agreement before {what}", [request]).wait()
        if (every == every[0]).all():
            return
        texts = self.group.comm.allgather(what)      # every rank saw the mismatch
        r = next(r for r in range(1, self.size) if every[r] != every[0])
        raise RuntimeError(f"Detected mismatch between collectives on ranks: rank {r} is "
                           f"running {texts[r]}, but rank 0 is running {texts[0]}")


def _mpi_library() -> ctypes.CDLL:
    """The MPI library mpi4py loaded (a shared object already mapped into this process
    that defines MPI_Iallreduce), opened without loading anything new."""
    with open("/proc/self/maps") as maps:
        paths = dict.fromkeys(re.findall(r"(/\S*mpi\S*\.so[.\d]*)$", maps.read(), re.M))
    for path in paths:
        try:
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError:
            continue
        if hasattr(library, "MPI_Iallreduce"):
            return library
    raise RuntimeError("compiled collectives need the MPI library mpi4py loaded, and no "
                       "library mapped into this process defines MPI_Iallreduce")
