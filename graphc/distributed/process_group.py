"""The default process group: MPI's world, checked against the launcher's environment.

MPI forms the world itself (``mpiexec`` starts the processes and tells each its rank), so
``init_process_group`` needs no address or store: it imports mpi4py (only then, so that
``import graphc`` never starts MPI), checks that every rank variable a launcher set agrees
with MPI's own numbering, and duplicates ``COMM_WORLD`` into two communicators: one for
the program's messages and one for fault notices (``faults``), so that a notice can never
be taken for data.
"""
from __future__ import annotations

import datetime
import importlib.util
import os

from graphc.distributed import faults, native
from graphc.ops import collective

NOT_INITIALIZED = collective.NOT_INITIALIZED
DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)     # PyTorch's default_pg_timeout

# Launcher variables: (who sets them, rank variable, size variable).
_LAUNCHERS = (("torchrun / the PyTorch launcher", "RANK", "WORLD_SIZE"),
              ("MPICH's mpiexec", "PMI_RANK", "PMI_SIZE"),
              ("Open MPI's mpiexec", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))


class ProcessGroup:
    """The state of an initialized world: MPI's module, the communicators, the timeout."""

    def __init__(self, MPI, timeout: datetime.timedelta):
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD.Dup()
        self.fault_comm = MPI.COMM_WORLD.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = timeout.total_seconds()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)     # the ranks on this machine
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        # Waits spin briefly before sleeping (work.py), unless this machine has more ranks
        # than cores: then a spinning rank takes the core a peer needs (3 ranks on 2
        # cores ran the collectives test 2.7 times slower).
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
        self.spin = 0.002 if self.local_size <= self.cores else 0.0

    def free(self):
        self.comm.Free()
        self.fault_comm.Free()


_group: ProcessGroup | None = None


def is_available() -> bool:
    """True when mpi4py is installed.  Only its package is looked up: loading
    ``mpi4py.MPI`` would start MPI, which only ``init_process_group`` should do."""
    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    return _group is not None


def default_group() -> ProcessGroup:
    """The initialized group, or PyTorch's ValueError for a call made before
    ``init_process_group``."""
    if _group is None:
        raise ValueError(NOT_INITIALIZED)
    return _group


def init_process_group(backend: str | None = None, init_method: str | None = None,
                       timeout: datetime.timedelta | None = None, world_size: int = -1,
                       rank: int = -1, store=None, group_name: str = "", pg_options=None,
                       device_id=None) -> None:
    """Join MPI's world.  ``backend`` is ``"mpi"``; ``"gloo"`` (PyTorch's CPU backend,
    what CPU programs ask for) is accepted and also means MPI here.  ``world_size`` and
    ``rank``, when given, must be MPI's; ``timeout`` bounds every wait on other ranks."""
    global _group
    if _group is not None:
        raise ValueError("trying to initialize the default process group twice!")
    if backend is not None and str(backend).lower() not in ("mpi", "gloo", "cpu:gloo",
                                                            "cpu:mpi"):
        raise RuntimeError(f"Distributed package doesn't have {str(backend).upper()} built "
                           f"in: graphc.distributed runs on MPI (backend='mpi', or 'gloo', "
                           f"which means MPI here)")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_method={init_method!r}: graphc.distributed takes its world "
                         f"from MPI (start the processes with mpiexec), so only None or "
                         f"'env://' is accepted")
    if store is not None:
        raise ValueError("graphc.distributed takes its world from MPI and needs no store")
    if timeout is not None and not isinstance(timeout, datetime.timedelta):
        raise TypeError(f"Expected timeout argument to be of type datetime.timedelta, got "
                        f"{type(timeout).__name__}")
    if not is_available():
        raise RuntimeError("graphc.distributed needs mpi4py and an MPI library: "
                           "pip install graphc[distributed]")
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as e:
        raise RuntimeError(f"mpi4py is installed but cannot load an MPI library ({e}): pip "
                           f"install graphc[distributed] brings MPICH's") from e
    group = ProcessGroup(MPI, timeout or DEFAULT_TIMEOUT)
    try:
        _check_launcher(group.rank, group.size, rank, world_size)
        _check_local_rank(group)
    except BaseException:
        group.free()
        raise
    _group = group
    faults.install(group)
    collective.attach(native.World(group))
    _share_cores(group)


def _share_cores(group: ProcessGroup) -> None:
    """Ranks on one machine share its cores: unless ``GRAPHC_NUM_THREADS`` or the program
    chose a thread count, each rank computes on ``cores // local ranks`` threads (torchrun
    likewise sets ``OMP_NUM_THREADS=1`` for several processes per machine).  Two ranks
    on two cores that each used both ran the GPT-style DDP step of
    ``benchmarks/distributed.py`` 1.1-1.2 times slower compiled and 16 times slower
    eagerly (numpy's BLAS threads of the two ranks fighting over the cores)."""
    from graphc import parallel
    if group.local_size > 1 and "GRAPHC_NUM_THREADS" not in os.environ \
            and parallel.get_num_threads() == group.cores:
        parallel.set_num_threads(max(1, group.cores // group.local_size))


def _check_launcher(mpi_rank: int, mpi_size: int, rank: int, world_size: int) -> None:
    """Every rank a launcher or the caller states must be MPI's.  A process started by
    torchrun (RANK and WORLD_SIZE set, no mpiexec) is a world of one to MPI, and would
    silently train alone: that is refused, naming both numbers."""
    stated = [("init_process_group(rank=..., world_size=...)", rank, world_size)]
    for who, rank_var, size_var in _LAUNCHERS:
        if rank_var in os.environ or size_var in os.environ:
            stated.append((f"{who} ({rank_var}, {size_var})",
                           int(os.environ.get(rank_var, -1)), int(os.environ.get(size_var, -1))))
    for who, r, n in stated:
        if (r != -1 and r != mpi_rank) or (n != -1 and n != mpi_size):
            says = ", ".join(([f"rank {r}"] if r != -1 else []) +
                             ([f"world size {n}"] if n != -1 else []))
            raise ValueError(f"{who} says {says}, but MPI has this process as rank "
                             f"{mpi_rank} of {mpi_size}: graphc.distributed forms its world "
                             f"with MPI, so start the processes with mpiexec -n N")


def _check_local_rank(group: ProcessGroup) -> None:
    """LOCAL_RANK (set by PyTorch's launchers, read by programs to pick a device) must be
    this process's rank among the ranks on its machine, as MPI counts them."""
    if "LOCAL_RANK" in os.environ and int(os.environ["LOCAL_RANK"]) != group.local_rank:
        raise ValueError(f"LOCAL_RANK is {os.environ['LOCAL_RANK']}, but MPI has this process "
                         f"as local rank {group.local_rank} on its machine")


def get_rank(group=None) -> int:
    return checked(group).rank


def get_world_size(group=None) -> int:
    return checked(group).size


def get_backend(group=None) -> str:
    checked(group)
    return "mpi"


def destroy_process_group(group=None) -> None:
    """Leave the group.  MPI itself stays initialized (it cannot be restarted in a
    process; mpi4py finalizes it at exit), so a later ``init_process_group`` works."""
    global _group
    g = checked(group)
    faults.uninstall()
    collective.attach(None)
    g.free()
    _group = None


def checked(group) -> ProcessGroup:
    """The default group; other groups (``new_group``) are not supported yet."""
    g = default_group()
    if group is not None and group is not g:
        raise ValueError("graphc.distributed has only the default process group (group=None)")
    return g
