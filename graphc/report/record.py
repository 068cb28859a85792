"""What a compiled function tells the report, and the run's report files.

A ``CompiledFunction`` with a report directory owns a :class:`Recorder`: each compile
opens a :class:`CompileRecord` (``begin``, with the failing guard that made it a
recompile), every dumped stage goes into it (``stage``: graphs, the fusion report, the
loop IR, generated code), and ``end`` files it with its cache entry (guards, backend
programs) or the graph break that made it run eagerly.  The records of one directory
are written as one HTML file when the process exits, or by :func:`write`.
"""
from __future__ import annotations

import atexit
import os
import sys
import time
from dataclasses import dataclass, field


@dataclass
class CompileRecord:
    """One compile of a function: ``reason`` is None for the first, else the failing
    guard or changed argument; ``graph_break`` the message when it runs eagerly."""
    index: int
    reason: str | None
    stages: dict = field(default_factory=dict)    # stage name -> Graph or text
    entry: object = None                           # compiled.CacheEntry
    graph_break: str | None = None


class Recorder:
    """The report's view of one compiled function."""

    def __init__(self, name: str, backend: str, fuse: bool, where: str):
        self.name, self.backend, self.fuse, self.where = name, backend, fuse, where
        self.compiles: list = []
        self.pending: CompileRecord | None = None

    def begin(self, reason: str | None):
        self.pending = CompileRecord(len(self.compiles) + 1, reason)

    def stage(self, name: str, content):
        if self.pending is not None:
            self.pending.stages[name] = content

    def end(self, entry, graph_break: str | None = None):
        """File the pending compile; ``entry`` None drops it (a warm-up that retraces)."""
        record, self.pending = self.pending, None
        if record is not None and entry is not None:
            record.entry, record.graph_break = entry, graph_break
            self.compiles.append(record)


class Run:
    """The recorders writing to one directory, and the file they are written to."""

    def __init__(self, directory: str):
        script = os.path.splitext(os.path.basename(sys.argv[0]))[0].lstrip("-") or "python"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = os.path.join(directory, f"graphc-report-{script}-{stamp}-{os.getpid()}.html")
        self.recorders: list = []
        self.written = None         # the compile counts when last written

    def state(self) -> tuple:
        return tuple(len(r.compiles) for r in self.recorders)


_RUNS: dict = {}          # absolute directory -> Run


def recorder_for(name: str, backend: str, directory: str, fuse: bool = True,
                 where: str = "?") -> Recorder:
    """A new recorder for a function (defined at ``where``, ``file.py:LINE``), written
    with the others of ``directory``."""
    directory = os.path.abspath(directory)
    if not _RUNS:
        atexit.register(write, only_changed=True)
    run = _RUNS.get(directory)
    if run is None:
        run = _RUNS[directory] = Run(directory)
    recorder = Recorder(name, backend, fuse, where)
    run.recorders.append(recorder)
    return recorder


def write(only_changed: bool = False) -> list:
    """Write (or rewrite) every report file of this run; returns their paths.
    ``only_changed`` (at exit) skips a file written since its last compile."""
    from graphc.report.page import write_page
    paths = []
    for directory, run in _RUNS.items():
        if not (only_changed and run.written == run.state()):
            os.makedirs(directory, exist_ok=True)
            write_page(run.path, run.recorders)
            run.written = run.state()
        paths.append(run.path)
    return paths
