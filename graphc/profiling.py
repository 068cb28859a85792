"""Per-kernel profiling of compiled programs (a leaf).

While profiling is on (``GRAPHC_PROFILE=1`` for the whole run, or inside ``with
graphc.profile() as p:``), the native backends run each program through a second entry
point that times every kernel inside the one native call: ``entry_profiled`` of the cpu
backend (``targets/cpu/render.py``: the monotonic clock read around each kernel), the
emulator's ``run_profiled`` (``targets/cuda/emulate.py``), CUDA events around each launch
on a GPU (``targets/cuda/runtime.py``).  Off, they call their plain entry point: the only
cost is the check of ``enabled`` on each call.

Each program keeps a ``ProgramTimes`` (its ``kernel_times``): each kernel's cost on paper
(``codegen/costs.py``: bytes moved, FLOPs where known) and, per profiled call, every
kernel's nanoseconds and the program's own measured time (the native call, timed from
Python on another clock).  ``stats_of(program)`` summarises every profiled call of a
program; a ``Profile`` (what ``graphc.profile()`` returns) summarises those made inside
its block, so blocks nest (the outer one counts the inner one's calls too) and each new
block starts from zero.  ``Profile.table()`` (and ``print(p)``) is the table of its
programs; ``GRAPHC_PROFILE=1`` prints the table of the whole run to stderr at exit.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading

import numpy as np

_FROM_ENVIRONMENT = os.environ.get("GRAPHC_PROFILE", "") not in ("", "0")
enabled = _FROM_ENVIRONMENT          # read by the runtimes on every call
_open = 0                            # Profile blocks open
_records: list = []                  # every ProgramTimes with a call, in order of first call
_lock = threading.Lock()


class ProgramTimes:
    """The profile of one native program: ``costs`` (a ``codegen.costs.KernelCost`` per
    timed kernel, in order), ``backend``, and one array of kernel nanoseconds and one
    measured program time per profiled call."""

    def __init__(self, name: str, backend: str, costs: list):
        self.name, self.backend, self.costs = name, backend, list(costs)
        self.kernel_ns: list = []        # per call: int64 array, one entry per kernel
        self.call_ns: list = []          # per call: the whole program's nanoseconds

    def add(self, kernel_ns: np.ndarray, call_ns: int) -> None:
        """Record one call (``kernel_ns`` is kept: pass a copy)."""
        with _lock:
            if not self.call_ns:
                _records.append(self)
            self.kernel_ns.append(kernel_ns)
            self.call_ns.append(call_ns)

    def calls(self) -> int:
        return len(self.call_ns)

    def stats(self, first: int = 0, last: int | None = None) -> list:
        """One dict per kernel over calls [first, last): ``name kind calls total_s
        median_s bytes flops share`` (share: of the program's measured time)."""
        rows = self.kernel_ns[first:last]
        if not rows:
            return []
        ns = np.stack(rows)
        program_ns = sum(self.call_ns[first:last])
        totals, medians = ns.sum(axis=0), np.median(ns, axis=0)
        return [{"name": cost.name, "kind": cost.kind, "calls": len(rows),
                 "total_s": float(totals[k]) * 1e-9, "median_s": float(medians[k]) * 1e-9,
                 "bytes": cost.bytes, "flops": cost.flops,
                 "share": float(totals[k]) / program_ns if program_ns else 0.0}
                for k, cost in enumerate(self.costs)]

    def program_time(self, first: int = 0, last: int | None = None) -> dict:
        """The program's measured time over calls [first, last): ``calls total_s
        median_s`` and ``kernels_s``, the sum of its kernels' times."""
        calls = self.call_ns[first:last]
        return {"calls": len(calls), "total_s": sum(calls) * 1e-9,
                "median_s": float(np.median(calls)) * 1e-9 if calls else 0.0,
                "kernels_s": float(sum(int(r.sum()) for r in self.kernel_ns[first:last])) * 1e-9}


def stats_of(program) -> list:
    """Per-kernel statistics of every profiled call of a native program (a cpu
    ``CompiledProgram``, a cuda or emulated program): a list of dicts with keys ``name
    kind calls total_s median_s bytes flops share`` (``flops`` None where unknown), in the
    program's kernel order; [] when it was never called while profiling was on."""
    times = getattr(program, "kernel_times", None)
    return [] if times is None else times.stats()


def program_time_of(program) -> dict | None:
    """``ProgramTimes.program_time`` of every profiled call of ``program`` (None when it
    was never called while profiling was on)."""
    times = getattr(program, "kernel_times", None)
    return None if times is None or not times.calls() else times.program_time()


class Profile:
    """``with graphc.profile() as p:`` profiles every compiled program that runs in the
    block; ``p.stats(program)``, ``p.table()`` (and ``print(p)``) describe the calls
    made inside it."""

    def __init__(self):
        self._first: dict = {}
        self._last: dict | None = None

    def __enter__(self) -> "Profile":
        global enabled, _open
        with _lock:
            _open += 1
            enabled = True
            self._first = {r: r.calls() for r in _records}
            self._last = None
        return self

    def __exit__(self, *exc) -> None:
        global enabled, _open
        with _lock:
            self._last = {r: r.calls() for r in _records}
            _open -= 1
            enabled = _open > 0 or _FROM_ENVIRONMENT

    def _spans(self) -> list:
        """(record, first call, last call) of each program called in the block."""
        with _lock:
            last = self._last if self._last is not None else {r: r.calls() for r in _records}
        spans = [(r, self._first.get(r, 0), n) for r, n in last.items()]
        return [span for span in spans if span[2] > span[1]]

    def stats(self, program) -> list:
        """``stats_of(program)`` over the calls made in the block."""
        for record, first, last in self._spans():
            if record is getattr(program, "kernel_times", None):
                return record.stats(first, last)
        return []

    def table(self) -> str:
        return format_table(self._spans())

    def __str__(self) -> str:
        return self.table()


def profile() -> Profile:
    """A context manager that turns per-kernel profiling on inside its block (see
    ``Profile``)."""
    return Profile()


def _rate(amount, seconds: float, unit: float) -> str:
    return "-" if amount is None or seconds <= 0 else f"{amount / seconds / unit:.2f}"


def format_table(spans) -> str:
    """The table of (record, first call, last call) spans: per program its calls and
    measured time, then per kernel its calls, total and median time, share of the
    program's time, bytes moved, GB/s and GFLOP/s (both at the median time)."""
    if not spans:
        return "no compiled program ran while profiling was on"
    lines = []
    for record, first, last in spans:
        whole = record.program_time(first, last)
        lines += ["", f"program {record.name} ({record.backend}): {whole['calls']} calls, "
                      f"{whole['median_s'] * 1e3:.3f} ms median, {whole['total_s'] * 1e3:.1f} ms "
                      f"total; kernels {whole['kernels_s'] / whole['total_s']:.1%} of it",
                  f"  {'kernel':<28} {'kind':<10} {'calls':>6} {'total ms':>10} "
                  f"{'median us':>10} {'share':>7} {'MB':>9} {'GB/s':>8} {'GFLOP/s':>8}"]
        for row in record.stats(first, last):
            lines.append(
                f"  {row['name'][:28]:<28} {row['kind']:<10} {row['calls']:>6} "
                f"{row['total_s'] * 1e3:>10.3f} {row['median_s'] * 1e6:>10.1f} "
                f"{row['share']:>7.1%} {row['bytes'] / 1e6:>9.3f} "
                f"{_rate(row['bytes'], row['median_s'], 1e9):>8} "
                f"{_rate(row['flops'], row['median_s'], 1e9):>8}")
    return "\n".join(lines[1:])


def _print_at_exit() -> None:
    with _lock:
        spans = [(r, 0, r.calls()) for r in _records]
    if spans:
        print(format_table(spans), file=sys.stderr)


if _FROM_ENVIRONMENT:
    atexit.register(_print_at_exit)
