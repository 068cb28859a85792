"""Where a compile spends its time, and word of what it is doing when it is slow (a leaf).

``compiling(name)`` brackets one compile (``graphc.compile``'s trace-to-native-code of
one program); inside it, each stage (tracing, graph passes, lowering, rendering, LLVM...)
is timed with ``stage(name)``, and a long stage reports how far it got with
``advance(done, total)``.  Once a compile has run for more than ``SLOW`` seconds, the
``compile`` log channel (``graphc.logs``) gets a line as each stage starts and at most
one a second of a stage's progress, and one line with every stage's seconds at the end:
a compile that takes a while says what it is doing.

``finished()`` gives the seconds per stage of the compiles that finished in this process
(the last ``KEPT``; what ``benchmarks/compile_time.py`` prints).  Stages outside any
compile are not timed.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager

from graphc.logs import logger

SLOW = 1.0                    # seconds after which a compile reports what it is doing

_log = logger("compile")
_local = threading.local()    # .compiles: the compiles under way in this thread
KEPT = 100
_finished: deque = deque(maxlen=KEPT)


class _Compile:
    def __init__(self, name: str):
        self.name = name
        self.start = time.perf_counter()
        self.seconds: dict = {}           # stage -> seconds, in the order they started
        self.reported = self.start        # when progress was last logged

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def slow(self) -> bool:
        return self.elapsed() > SLOW


def _current():
    compiles = getattr(_local, "compiles", None)
    return compiles[-1] if compiles else None


@contextmanager
def compiling(name: str):
    """Time one compile of ``name``; on exit its stages' seconds join ``finished()``."""
    compiles = _local.__dict__.setdefault("compiles", [])
    c = _Compile(name)
    compiles.append(c)
    try:
        yield c
    finally:
        compiles.pop()
        total = c.elapsed()
        _finished.append({"name": name, **c.seconds, "total": total})
        if total > SLOW:
            _log.info("%s: compiled in %.1f s (%s)", name, total,
                      ", ".join(f"{stage} {s:.2f} s" for stage, s in c.seconds.items()))


@contextmanager
def stage(name: str):
    """Time stage ``name`` of the compile under way (stages of one name add up)."""
    c = _current()
    if c is None:
        yield
        return
    if c.slow():
        _log.info("%s: %s (%.1f s so far)", c.name, name, c.elapsed())
    start = time.perf_counter()
    try:
        yield
    finally:
        c.seconds[name] = c.seconds.get(name, 0.0) + time.perf_counter() - start


def advance(what: str, done: int, total: int):
    """Progress inside a stage: ``done`` of ``total`` ``what`` (logged at most once a
    second, once the compile is slow)."""
    c = _current()
    if c is None or not c.slow() or time.perf_counter() - c.reported < 1.0:
        return
    c.reported = time.perf_counter()
    _log.info("%s: %d/%d %s (%.1f s so far)", c.name, done, total, what, c.elapsed())


def finished() -> list:
    """Per finished compile, oldest first: its ``name``, seconds per stage and ``total``."""
    return [dict(c) for c in _finished]
