"""Faults become errors on every rank instead of a hung job.

What MPICH does by itself (measured with its ``mpiexec``, MPICH 5.0.2): a rank killed by
a signal, or one that calls ``MPI_Abort``, brings the whole job down within a fraction of
a second; but a rank whose Python program raises, or exits with ``sys.exit(1)``, leaves
the others blocked in their next collective for ever (the job hangs).  So:

* ``init_process_group`` installs an excepthook: a rank with an unhandled exception
  prints it, sends a notice naming itself and the exception to every other rank, gives
  them a moment (``GRACE`` seconds, or less once all have failed too) to print their own
  error, and calls ``MPI_Abort``, which ends the job with exit status 1.
* Every wait on other ranks (``Work.wait``) polls its MPI requests and these notices, so
  a rank waiting on a peer that failed raises ``DistBackendError`` naming that rank, and
  a wait that outlives the group's timeout raises too.
* A rank that exits with the group still initialized (a return or ``sys.exit`` on one
  rank only) sends an "exited" notice from an exit handler; a peer still waiting, for
  longer than ``GRACE``, on a collective or on that rank then raises, naming it.

Notices travel on their own duplicate of ``COMM_WORLD``, so they never match the
program's own messages.
"""
from __future__ import annotations

import atexit
import sys
import time
import traceback

GRACE = 2.0          # seconds a failing rank waits for its peers to report before aborting
_TAG = 1

_group = None        # the initialized ProcessGroup, while the hooks are installed
_previous_hook = None
_sent = []           # notice requests: kept alive until the process ends
_exited: dict[int, tuple] = {}   # peer rank -> (when its "exited" notice arrived, its text)


class DistError(RuntimeError):
    """PyTorch's base class of distributed errors."""


class DistBackendError(DistError):
    """A failure of the communication backend (a failed peer, a timeout), as PyTorch's."""


class PeerFailed(DistBackendError):
    """Raised on a rank because another rank failed; its excepthook does not notify the
    peers again (the failing rank already did)."""


def install(group) -> None:
    global _group, _previous_hook
    _group = group
    _exited.clear()
    if group.size > 1:
        _previous_hook = sys.excepthook
        sys.excepthook = _excepthook


def uninstall() -> None:
    """Called by ``destroy_process_group``: peers still waiting on this rank learn that it
    left, and exceptions are Python's again."""
    global _group, _previous_hook
    if _group is not None and _group.size > 1:
        _notify(_group, "exited", "left the process group")
        sys.excepthook = _previous_hook
    _group = _previous_hook = None


@atexit.register
def _at_exit():
    # mpi4py finalizes MPI from a C-level exit function (Py_AtExit), which runs after
    # every atexit handler: MPI is still up here.
    if _group is not None and _group.size > 1:
        _notify(_group, "exited", "exited without destroy_process_group")


def _notify(group, kind: str, text: str) -> None:
    for peer in range(group.size):
        if peer != group.rank:
            _sent.append(group.fault_comm.isend((kind, text), dest=peer, tag=_TAG))


def _excepthook(exc_type, exc, tb):
    group = _group
    (_previous_hook or sys.__excepthook__)(exc_type, exc, tb)
    if group is None:
        return
    if not isinstance(exc, PeerFailed):
        line = traceback.format_exception_only(exc_type, exc)[-1].strip()
        _notify(group, "raised", line[:500])
    print(f"graphc.distributed: rank {group.rank} of {group.size} failed; aborting the job",
          file=sys.stderr, flush=True)
    barrier = group.fault_comm.Ibarrier()
    deadline = time.monotonic() + GRACE
    while not barrier.Test() and time.monotonic() < deadline:
        time.sleep(0.001)
    group.comm.Abort(1)


def check(group, peers) -> None:
    """Raise ``PeerFailed`` if a peer reported an exception, or if one of ``peers``
    (None: every rank) exited more than ``GRACE`` seconds ago.  Called while waiting."""
    MPI = group.MPI
    status = MPI.Status()
    while group.fault_comm.Iprobe(source=MPI.ANY_SOURCE, tag=_TAG, status=status):
        source = status.Get_source()
        kind, text = group.fault_comm.recv(source=source, tag=_TAG)
        if kind == "raised":
            raise PeerFailed(f"rank {source} failed: {text} (this is rank {group.rank})")
        _exited.setdefault(source, (time.monotonic(), text))
    now = time.monotonic()
    for source, (when, text) in _exited.items():
        if (peers is None or source in peers) and now - when > GRACE:
            raise PeerFailed(f"rank {source} {text} while rank {group.rank} still waits "
                             f"on it")
