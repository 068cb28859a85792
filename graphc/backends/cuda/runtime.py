"""The ``cuda`` backend's runtime: compile the generated CUDA C with nvcc (through
PyCUDA) for the GPU it runs on, and run a program's kernels there.

Device memory is set up once per compiled program: constants are uploaded once,
temporaries live in one arena per dtype (the memory plan), and every input and output
has its own device buffer.  A call uploads the inputs, launches every kernel in order on
the default stream, downloads the outputs into fresh arrays and reads the error flag.

Inputs that have not changed stay resident: ``program(arrays, versions)`` takes, per
input position, a version token (any value comparable with ``==``) or None.  An input
is not uploaded again when the same array object comes back at the same position with
an equal token; None (or no ``versions`` at all) always uploads.  The token must change
whenever the array's contents may have changed: a tensor's version counter is such a
token only if every write to the array bumps it.

Cubins are cached on disk (``cache.py``) keyed by the source, the nvcc version and the
device's compute capability.  PyCUDA is imported only here, when a program is built.
"""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager

import numpy as np

from graphc.backends.cuda import cache
from graphc.backends.cuda.plan import BufferPlan, arena_dtype, error_message
from graphc.backends.cuda.render import CudaSource

@functools.lru_cache(maxsize=1)
def device():
    """(device, its retained primary context, "sm_XY")."""
    import pycuda.driver as drv
    drv.init()
    dev = drv.Device(0)
    major, minor = dev.compute_capability()
    return dev, dev.retain_primary_context(), f"sm_{major}{minor}"


@contextmanager
def active():
    """The device's primary context, current on this thread while inside."""
    _, context, _ = device()
    context.push()
    try:
        yield
    finally:
        context.pop()


def _nvcc_version() -> str:
    from pycuda.compiler import get_nvcc_version
    try:
        return get_nvcc_version("nvcc") or ""
    except Exception:         # no nvcc on PATH: compile() below says so
        return ""


def cubin(text: str, arch: str) -> bytes:
    """Device code for ``text`` from the cache, or compiled by nvcc (and cached)."""
    from pycuda.compiler import compile as nvcc_compile
    key = cache.key_of(text, arch, _nvcc_version())
    path = cache.path_for(key, ".cubin")
    data = None if path is None else cache.read(path, key)
    if data is None:
        data = nvcc_compile(text, no_extern_c=True, arch=arch, cache_dir=False)
        if path is not None:
            cache.write(path, key, data)
    return data


class CudaProgram:
    """A program on the GPU: ``program(arrays, versions=None) -> list of arrays`` (one per
    graph output, in the graph's shapes).  Calls are serialised: device buffers are
    allocated once and reused."""

    def __init__(self, graph, source: CudaSource):
        import pycuda.driver as drv
        self.drv = drv
        self.source = source
        self.program = program = source.program
        self.plan = BufferPlan(graph, program)
        self._lock = threading.Lock()
        with active():
            self.module = drv.module_from_buffer(cubin(source.text, device()[2]))
            self._memory = []                 # every allocation, kept alive
            self._address: dict = {}          # buffer name -> device address
            self._place_constants()
            self._place_temporaries()
            for name in [n for n, _, _ in self.plan.inputs] + [n for _, n in self.plan.fresh]:
                self._address.setdefault(name, self._alloc(program.buffers[name].size,
                                                           program.buffers[name].dtype.np))
            self._error = self._alloc(1, np.int32)
            self._launches = []
            for launch in source.launches:
                function = self.module.get_function(launch.kernel)
                function.prepare("P" * (len(launch.args) + 1))
                args = [self._address[name] for name in launch.args] + [self._error]
                self._launches.append((function, (launch.grid, 1), (launch.block, 1, 1), args))
        self._resident: list = [None] * len(self.plan.inputs)   # (array, token) uploaded

    # ---- set-up --------------------------------------------------------------------------
    def _alloc(self, size: int, dtype) -> int:
        """A device block of ``size`` elements (at least one, so every buffer has an
        address); returns its address."""
        allocation = self.drv.mem_alloc(max(size, 1) * np.dtype(dtype).itemsize)
        self._memory.append(allocation)
        return int(allocation)

    def _place_constants(self):
        for name, value in self.program.constants.items():
            info = self.program.buffers[name]
            array = np.ascontiguousarray(np.asarray(value, dtype=info.dtype.np).reshape(-1))
            self._address[name] = self._alloc(info.size, info.dtype.np)
            if array.size:
                self.drv.memcpy_htod(self._address[name], array)

    def _place_temporaries(self):
        arenas = {arena_dtype(k): self._alloc(n, arena_dtype(k).np)
                  for k, n in self.program.arena_sizes.items()}
        for name, dtype, offset in self.plan.temporaries():
            info = self.program.buffers[name]
            if name in self._address:
                continue
            self._address[name] = (self._alloc(info.size, info.dtype.np) if dtype is None
                                   else arenas[dtype] + offset * info.dtype.itemsize)

    # ---- calls -----------------------------------------------------------------------------
    def __call__(self, arrays, versions=None) -> list:
        inputs = self.plan.check_inputs(arrays)
        if versions is not None and len(versions) != len(inputs):
            raise TypeError(f"compiled program {self.program.name}: {len(versions)} versions "
                            f"for {len(inputs)} inputs")
        drv = self.drv
        outputs = [None] * len(self.program.outputs)
        error = np.zeros(1, np.int32)
        with self._lock, active():
            for position, (a, original) in enumerate(zip(inputs, arrays)):
                token = None if versions is None else versions[position]
                self._upload(position, a, original, token)
            drv.memset_d32(self._error, 0, 1)
            for function, grid, block, args in self._launches:
                function.prepared_call(grid, block, *args)
            for position, name in self.plan.fresh:
                info = self.program.buffers[name]
                outputs[position] = np.empty(info.size, info.dtype.np)
                if info.size:
                    drv.memcpy_dtoh(outputs[position], self._address[name])
            drv.memcpy_dtoh(error, self._error)
        for position, name, input_index in self.plan.copies:
            outputs[position] = self._copy_of(name, inputs, input_index, outputs)
        if error[0]:
            raise IndexError(error_message(self.program, int(error[0])))
        return self.plan.shaped(outputs)

    def _upload(self, position: int, array: np.ndarray, original, token):
        name = self.plan.inputs[position][0]
        last = self._resident[position]
        if token is not None and last is not None and last[0] is original and last[1] == token:
            return
        if array.size:
            self.drv.memcpy_htod(self._address[name], array)
        # The original object is held, so its identity cannot pass to another array.
        self._resident[position] = None if token is None else (original, token)

    def _copy_of(self, name, inputs, input_index, outputs):
        if input_index is not None:
            return inputs[input_index].reshape(-1).copy()
        if name in self.program.constants:
            info = self.program.buffers[name]
            return np.array(self.program.constants[name], dtype=info.dtype.np).reshape(-1)
        return outputs[self.program.outputs.index(name)].copy()

    def invalidate(self):
        """Forget which inputs are resident: the next call uploads every input."""
        self._resident = [None] * len(self.plan.inputs)

    def __repr__(self) -> str:
        return f"<graphc cuda program {self.program.name}: {len(self.program.kernels)} kernels>"


def build(graph, source: CudaSource) -> CudaProgram:
    return CudaProgram(graph, source)
