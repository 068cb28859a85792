"""The CPU emulation harness: the generated CUDA C, unchanged, compiled as C++ against
``shim.h`` into a shared library and run on numpy buffers.

The library is the ``.cu`` text (rendered with ``render.EMULATION`` launch limits: small
blocks, few of them, the same code paths) followed by a generated launcher:

- ``int launch_NAME(unsigned grid, unsigned block, void **params)`` per kernel, with
  ``params`` pointing at each argument as ``cuLaunchKernel`` takes them;
- ``int run(void **buffers, long long *error)``, which launches every kernel in order
  with its grid and block.  ``buffers[i]`` is the i-th buffer of ``program.buffers``;
  kernels record an out-of-range index in the error record ``{site, index}``.  It
  returns 0, or ``8 * kernel code + status`` for a launch the emulator could not finish
  (status 1: the block's threads deadlocked at barriers; 2: no memory for the threads'
  stacks);
- ``int run_profiled(void **buffers, long long *error, long long *times)``, the same with
  the nanoseconds of each launch (``CLOCK_MONOTONIC`` around it) in ``times``, which
  ``graphc.profiling`` calls while it is on.

Compiling takes a while, so libraries are kept in graphc's disk cache
(``graphc.targets.cache``) keyed by the full source, the shim, the compiler's version and
its flags.  Buffers follow the shared plan (``graphc.targets.plan``) in host memory.
"""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
import threading
import time

import numpy as np

from graphc import profiling
from graphc.codegen.costs import kernel_costs
from graphc.targets import cache
from graphc.targets.plan import BufferPlan, HostMemory
from graphc.targets.cuda.render import CudaSource, storage_type

SHIM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.h")
FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-fwrapv", "-fno-strict-aliasing", "-w")
LIBS = ("-lm",)
_STATUS = {1: "its threads deadlocked: they wait at barriers that can never complete",
           2: "there was no memory for its threads' stacks"}


def compiler() -> str:
    """The C++ compiler: ``$CXX``, else g++ or c++ from PATH."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError("the cuda-emulate backend needs a C++ compiler (g++); none found "
                           "(set CXX)")
    return cxx


def launcher(source: CudaSource) -> str:
    """C++ that launches each kernel of ``source`` on the emulator, in order."""
    program = source.program
    slots = {name: i for i, name in enumerate(program.buffers)}
    lines = ["", "// ---- emulation launcher (graphc.targets.cuda.emulate) ----"]
    for launch in source.launches:
        types = [storage_type(program.buffers[b].dtype) for b in launch.args]
        casts = [f"*({t} **)params[{i}]" for i, t in enumerate(types)]
        casts.append(f"*(long long **)params[{len(types)}]")
        lines += [f"static void body_{launch.kernel}(void *arg) {{",
                  "    void **params = (void **)arg;",
                  f"    {launch.kernel}({', '.join(casts)});",
                  "}",
                  f'extern "C" int launch_{launch.kernel}(unsigned grid, unsigned block, '
                  f"void **params) {{",
                  f"    return graphc_emu::launch(dim3(grid), dim3(block), "
                  f"body_{launch.kernel}, params);",
                  "}"]
    lines += ["#include <time.h>",
              "static long long graphc_now() {",
              "    timespec t;",
              "    clock_gettime(CLOCK_MONOTONIC, &t);",
              "    return t.tv_sec * 1000000000LL + t.tv_nsec;",
              "}"]
    for timed in (False, True):
        lines += _runner(source, slots, timed)
    return "\n".join(lines + [""])


def _runner(source: CudaSource, slots: dict, timed: bool) -> list:
    """The lines of ``run`` (or, ``timed``, ``run_profiled``)."""
    if timed:
        lines = ['extern "C" int run_profiled(void **buffers, long long *error, '
                 'long long *times) {']
    else:
        lines = ['extern "C" int run(void **buffers, long long *error) {']
    for code, launch in enumerate(source.launches, start=1):
        params = [f"&buffers[{slots[b]}]" for b in launch.args] + ["&error"]
        lines += [f"    {{  // {code}: {launch.kernel}",
                  f"        void *params[] = {{{', '.join(params)}}};"]
        if timed:
            lines.append("        long long start = graphc_now();")
        lines.append(f"        if (int status = launch_{launch.kernel}({launch.grid}, "
                     f"{launch.block}, params)) return 8 * {code} + status;")
        if timed:
            lines.append(f"        times[{code - 1}] = graphc_now() - start;")
        lines.append("    }")
    return lines + ["    return 0;", "}"]


def library_source(source: CudaSource) -> str:
    return source.text + launcher(source)


def _shim_text() -> str:
    with open(SHIM_PATH) as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def _compiler_version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return cxx


def compile_library(text: str, out_path: str, cxx: str):
    """Compile the library source ``text`` into ``out_path``."""
    with tempfile.TemporaryDirectory(prefix="graphc-emulate-") as tmp:
        src = os.path.join(tmp, "program.cpp")
        with open(src, "w") as f:
            f.write(text)
        cmd = [cxx, *FLAGS, "-include", SHIM_PATH, src, *LIBS, "-o", out_path]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"compiling the emulated CUDA program failed ({' '.join(cmd)}):"
                               f"\n{done.stderr[-4000:]}")


_build_lock = threading.Lock()
# The emulator's state lives in globals of each library: calls run one at a time.
_run_lock = threading.Lock()


def load_library(text: str) -> ctypes.CDLL:
    """The shared library for a library source, from the cache or compiled (and cached).
    It is loaded from a private copy of the checked bytes, never from the cache's file,
    which another process may replace meanwhile."""
    cxx = compiler()
    key = cache.key(text, _shim_text(), _compiler_version(cxx), " ".join(FLAGS + LIBS))
    with _build_lock, tempfile.TemporaryDirectory(prefix="graphc-emulate-") as tmp:
        path = os.path.join(tmp, "program.so")
        data = cache.load(key, "so")
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
            try:
                return ctypes.CDLL(path)         # stays mapped after the file is removed
            except OSError:
                pass
        compile_library(text, path, cxx)
        with open(path, "rb") as f:
            cache.store(key, "so", f.read())
        return ctypes.CDLL(path)


class EmulatedProgram:
    """A program running on the emulator: ``program(arrays) -> list of arrays`` (one per
    graph output, in the graph's shapes).  Temporaries live in one arena per dtype,
    allocated once; calls are serialised."""

    def __init__(self, graph, source: CudaSource, library: ctypes.CDLL):
        self.source = source
        self.program = source.program
        self.plan = BufferPlan(self.program, [v.shape for v in graph.outputs])
        self._library = library
        self._run = library.run
        self._run.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)]
        self._run.restype = ctypes.c_int
        self._run_profiled = library.run_profiled
        self._run_profiled.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64),
                                       ctypes.c_void_p]
        self._run_profiled.restype = ctypes.c_int
        self.kernel_times = profiling.ProgramTimes(self.program.name, "cuda-emulate",
                                                   kernel_costs(self.program))
        self._times = np.zeros(max(len(source.launches), 1), np.int64)
        self._slots = {name: i for i, name in enumerate(self.program.buffers)}
        self._pointers = (ctypes.c_void_p * max(len(self._slots), 1))()
        self._held: dict = {}
        for name, array in self.plan.place(HostMemory).items():
            self._place(name, array)

    def _place(self, name: str, array: np.ndarray):
        """Point the buffer's slot at ``array`` (at least one element, so a zero-size
        buffer still has a valid address)."""
        if array.size == 0:
            array = np.zeros(1, array.dtype)
        self._held[name] = array
        self._pointers[self._slots[name]] = array.ctypes.data

    def __call__(self, arrays) -> list:
        inputs = self.plan.check_inputs(arrays)
        outputs = [None] * len(self.program.outputs)
        with _run_lock:
            for (name, _, _), a in zip(self.plan.inputs, inputs):
                self._place(name, a)
            for position, name in self.plan.fresh:
                info = self.program.buffers[name]
                outputs[position] = np.empty(info.size, info.dtype.np)
                self._place(name, outputs[position])
            error = (ctypes.c_int64 * 2)()
            if profiling.enabled:
                status = self._profiled(error)
            else:
                status = self._run(self._pointers, error)
            for position, name, input_index in self.plan.copies:
                outputs[position] = (inputs[input_index] if input_index is not None
                                     else self._held[name][:self.program.buffers[name].size]
                                     ).reshape(-1).copy()
            for name in [n for n, _, _ in self.plan.inputs] + [n for _, n in self.plan.fresh]:
                self._held.pop(name, None)          # the caller's arrays, not ours to keep
        if status:
            code, reason = divmod(status, 8)
            raise RuntimeError(f"emulated CUDA kernel {self.program.kernels[code - 1].name} "
                               f"could not finish: {_STATUS[reason]}")
        if error[0]:
            raise self.program.error(error[0], error[1])
        return self.plan.shaped(outputs)

    def _profiled(self, error) -> int:
        """``run_profiled``, its launches' times and its own recorded."""
        start = time.perf_counter_ns()
        status = self._run_profiled(self._pointers, error, self._times.ctypes.data)
        elapsed = time.perf_counter_ns() - start
        self.kernel_times.add(self._times[:len(self.source.launches)].copy(), elapsed)
        return status

    def __repr__(self) -> str:
        return (f"<graphc cuda-emulate program {self.program.name}: "
                f"{len(self.program.kernels)} kernels>")


def build(graph, source: CudaSource) -> EmulatedProgram:
    return EmulatedProgram(graph, source, load_library(library_source(source)))
