"""``Work``: the handle of an operation started on other ranks, and the one wait loop.

Every operation runs on MPI's nonblocking calls (``Iallreduce``, ``Isend``...), blocking
ones too: waiting is a poll of the requests that also reads fault notices and watches the
group's timeout, so a rank never blocks inside MPI where a failed peer would hang it.
"""
from __future__ import annotations

import datetime
import time

from graphc.distributed import faults


class Work:
    """What ``async_op=True`` returns (PyTorch's ``Work``).  ``then`` runs when the
    requests complete: it finishes the operation (writes results into the tensors) and
    may return ``(requests, then)`` for a next stage (a receive reads a header, then the
    data it announces)."""

    def __init__(self, group, what: str, requests, then=None, peers=None, result=()):
        self._group, self._what, self._peers = group, what, peers
        self._requests, self._then = list(requests), then
        self._result = list(result)
        self._done = False

    def is_completed(self) -> bool:
        """Whether the operation finished (this also moves it on, as MPI needs polls)."""
        while not self._done and self._group.MPI.Request.Testall(self._requests):
            self._advance()
        return self._done

    def wait(self, timeout: datetime.timedelta | None = None) -> bool:
        """Block until done; raise ``DistBackendError`` when a peer failed, or after
        ``timeout`` (default: the group's)."""
        limit = self._group.timeout if timeout is None else timeout.total_seconds()
        start = time.monotonic()
        next_check, pause = start, 0.0
        while not self.is_completed():
            now = time.monotonic()
            if now >= next_check:               # fault notices and the timeout, each ms
                faults.check(self._group, self._peers)
                if now - start > limit:
                    raise faults.DistBackendError(
                        f"rank {self._group.rank}: {self._what} timed out after {limit:g} s: "
                        f"a rank it needs has not joined it (still computing, or calling "
                        f"something else)")
                next_check = now + 0.001
            # Spin for the group's first few ms (a peer is usually microseconds away: a
            # sleep costs some 60 us), then back off to at most 0.2 ms per poll.
            if now - start > self._group.spin:
                time.sleep(pause)
                pause = min(0.0002, pause * 2 + 1e-5)
        return True

    def result(self) -> list:
        return self._result

    def _advance(self) -> None:
        step, self._then = self._then, None
        nxt = step() if step is not None else None
        if nxt is None:
            self._requests, self._done = [], True
        else:
            self._requests, self._then = list(nxt[0]), nxt[1]
