"""A stand-in for PyCUDA on machines without a GPU: device memory is host memory, a
"cubin" is the CUDA source, and its kernels run on the CPU emulator.  The ``fake_gpu``
fixture (``conftest.py``) installs it; it counts the bytes every transfer moves."""
import ctypes
import sys
import time
import types

import numpy as np

import graphc
from graphc.targets.cuda import emulate, render, runtime


class FakeDriver:
    """Just enough of pycuda.driver and pycuda.compiler for runtime.py: device memory
    is host memory and a "cubin" is the source, whose kernels run on the emulator."""

    def __init__(self, sources: dict):
        self.sources = sources              # CUDA text -> CudaSource (rendered so far)
        self.uploaded = self.downloaded = self.copied = 0      # bytes moved, each way
        self.synchronized = 0                                 # Context.synchronize calls
        self.memory = []

    def modules(self) -> dict:
        drv = types.SimpleNamespace(
            init=lambda: None, Device=_Device, mem_alloc=self.mem_alloc,
            memcpy_htod=self.htod, memcpy_dtoh=self.dtoh, memcpy_dtod=self.dtod,
            memset_d32=self.memset, module_from_buffer=self.module,
            Context=types.SimpleNamespace(synchronize=self.synchronize), Event=_Event)
        compiler = types.SimpleNamespace(compile=lambda text, **options: text.encode(),
                                         get_nvcc_version=lambda nvcc: "fake nvcc")
        return {"pycuda": types.SimpleNamespace(driver=drv, compiler=compiler),
                "pycuda.driver": drv, "pycuda.compiler": compiler}

    def mem_alloc(self, nbytes):
        block = np.zeros(nbytes, np.uint8)
        self.memory.append(block)
        return _Address(block.ctypes.data)

    def htod(self, dest, src):
        assert src.flags.c_contiguous
        self.uploaded += src.nbytes
        ctypes.memmove(int(dest), src.ctypes.data, src.nbytes)

    def dtoh(self, dest, src):
        assert dest.flags.c_contiguous
        self.downloaded += dest.nbytes
        ctypes.memmove(dest.ctypes.data, int(src), dest.nbytes)

    def synchronize(self):
        self.synchronized += 1

    def dtod(self, dest, src, nbytes):
        self.copied += nbytes
        ctypes.memmove(int(dest), int(src), nbytes)

    @staticmethod
    def memset(dest, value, count):
        ctypes.memmove(int(dest), np.full(count, value, np.int32).ctypes.data, 4 * count)

    def module(self, data):
        lib = emulate.load_library(emulate.library_source(self.sources[data.decode()]))
        return types.SimpleNamespace(get_function=lambda name: _FakeFunction(lib, name))


class _Device:
    def __init__(self, index):
        self.context = types.SimpleNamespace(push=lambda: None, pop=lambda: None)

    @staticmethod
    def count():
        return 1

    def compute_capability(self):
        return (8, 0)

    def retain_primary_context(self):
        return self.context


class _Event:
    """A CUDA event on a device whose launches finish before they return: ``record``
    reads the host's clock."""

    def record(self):
        self.ns = time.perf_counter_ns()

    def synchronize(self):
        pass

    def time_till(self, later) -> float:
        return (later.ns - self.ns) / 1e6          # milliseconds, as PyCUDA's


class _Address(int):
    """A device allocation: an int address (as PyCUDA's converts to)."""


class _FakeFunction:
    def __init__(self, lib, name):
        self.launch = getattr(lib, f"launch_{name}")
        self.launch.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]

    def prepare(self, formats):
        self.formats = formats

    def prepared_call(self, grid, block, *args):
        assert len(args) == len(self.formats) and grid[1:] == (1,) and block[1:] == (1, 1)
        values = [ctypes.c_void_p(int(a)) for a in args]
        params = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        assert self.launch(grid[0], block[0], params) == 0


def installed(monkeypatch):
    """Install the stand-in (undone by ``monkeypatch``); yields the driver."""
    sources = {}
    render_program = render.render_program

    def capture(program, limits=render.GPU):
        source = render_program(program, limits)
        sources[source.text] = source
        return source
    driver = FakeDriver(sources)
    for name, module in driver.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(render, "render_program", capture)
    monkeypatch.setattr(graphc.cuda, "unavailable_reason", lambda: None)
    runtime.device.cache_clear()
    yield driver
    runtime.device.cache_clear()
