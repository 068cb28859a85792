"""The ``cuda`` backend's runtime: compile the generated CUDA C with nvcc (through
PyCUDA) for the GPU it runs on, and run a program's kernels there.

Device memory is set up once per compiled program: constants are uploaded once,
temporaries live in one arena per dtype (the memory plan), and every input and output
has its own device buffer.

Values stay on the device between calls (``graphc.residency``):

* an input whose array already has a device copy is not uploaded: if the copy is in
  this program's buffer for that input nothing moves, otherwise it is copied device to
  device; only an array with no device copy (a new batch) is uploaded;
* outputs are not downloaded: each is a host array whose value is pending in the
  output's device buffer, downloaded when the host reads it (``Tensor._data``);
* before a buffer is overwritten, the value pending there (an output of the last call
  still referenced, say) is downloaded.

So a compiled training step moves only its batch in, and whatever the host reads (the
loss) out: parameters and optimizer state are written back to their tensors as device
copies (``residency.assign``) and come back as the next call's inputs.

Buffers follow the shared plan (``graphc.targets.plan``), in device memory
(``DeviceMemory``).  Cubins are kept in graphc's disk cache (``graphc.targets.cache``)
keyed by the source, the nvcc version and the device's compute capability.  PyCUDA is
imported only here, when a program is built.

While ``graphc.profiling`` is on, a call records a CUDA event before the first launch
and after each, waits for the last, and records each launch's time (``time_till``
between its events) and the call's, host-timed to the end of that wait.  (Written
against PyCUDA's documented API and tested on tests/fake_cuda.py's stand-in; not yet
run on a GPU.)
"""
from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager

import numpy as np

from graphc import dtypes, profiling, residency
from graphc.codegen.costs import kernel_costs
from graphc.targets import cache
from graphc.targets.plan import BufferPlan
from graphc.targets.cuda.render import CudaSource


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
    key = cache.key(text, arch, _nvcc_version())
    data = cache.load(key, "cubin")
    if data is None:
        data = nvcc_compile(text, no_extern_c=True, arch=arch, cache_dir=False)
        cache.store(key, "cubin", data)
    return data


class DeviceMemory:
    """Where a GPU program's constants and temporaries live: device allocations (at least
    one element each, so every buffer has an address; cuMemAlloc aligns them to 256
    bytes), kept alive in ``allocations``; a buffer is its device address."""

    def __init__(self, drv):
        self.drv = drv
        self.allocations = []

    def _alloc(self, size: int, itemsize: int) -> int:
        allocation = self.drv.mem_alloc(max(size, 1) * itemsize)
        self.allocations.append(allocation)
        return int(allocation)

    def block(self, size: int, dtype) -> int:
        return self._alloc(size, dtype.itemsize)

    def constant(self, array: np.ndarray) -> int:
        address = self._alloc(array.size, array.itemsize)
        if array.size:
            self.drv.memcpy_htod(address, array)
        return address

    @staticmethod
    def part(block: int, offset: int, size: int, dtype) -> int:
        return block + offset * dtype.itemsize


class CudaProgram:
    """A program on the GPU: ``program(arrays) -> list of arrays`` (one per graph output,
    in the graph's shapes), like every backend's; ``program.call_resident(arrays)`` leaves
    the outputs' values on the device (pending, see the module docstring), for
    ``graphc.compile``.  Calls are serialised: device buffers are allocated once and
    reused."""

    def __init__(self, graph, source: CudaSource):
        import pycuda.driver as drv
        self.drv = drv
        self.source = source
        self.program = program = source.program
        self.plan = BufferPlan(program, [v.shape for v in graph.outputs])
        self._lock = threading.RLock()
        with active():
            self.module = drv.module_from_buffer(cubin(source.text, device()[2]))
            self._memory = DeviceMemory(drv)
            self._address = self.plan.place(self._memory)   # buffer name -> device address
            for name in [n for n, _, _ in self.plan.inputs] + [n for _, n in self.plan.fresh]:
                info = program.buffers[name]
                self._address.setdefault(name, self._memory.block(info.size, info.dtype))
            self._error = self._memory.block(2, dtypes.int64)    # {site, index}
            self._launches = []
            for launch in source.launches:
                function = self.module.get_function(launch.kernel)
                function.prepare("P" * (len(launch.args) + 1))
                args = [self._address[name] for name in launch.args] + [self._error]
                self._launches.append((function, (launch.grid, 1), (launch.block, 1, 1), args))
        self._outputs = {name for _, name in self.plan.fresh}
        self.kernel_times = profiling.ProgramTimes(program.name, "cuda", kernel_costs(program))
        self._events = None           # CUDA events around the launches, made when profiled
        self._occupant: dict = {}     # buffer name -> the DeviceCopy that lives there

    # ---- calls -----------------------------------------------------------------------------
    def __call__(self, arrays) -> list:
        outputs = self.call_resident(arrays)
        for a in outputs:
            residency.claim(a)
        return outputs

    def call_resident(self, arrays) -> list:
        self.plan.check_count(arrays)
        outputs = [None] * len(self.program.outputs)
        error = np.zeros(1, np.int64)          # the record's code; its value on error
        with self._lock, active():
            for position, array in enumerate(arrays):
                self._place_input(position, array)
            for name in self._outputs:
                self._vacate(name)
            self.drv.memset_d32(self._error, 0, 4)
            if profiling.enabled:
                self._launch_profiled()
            else:
                for function, grid, block, args in self._launches:
                    function.prepared_call(grid, block, *args)
            self.drv.memcpy_dtoh(error, self._error)
            if error[0]:
                record = np.zeros(2, np.int64)
                self.drv.memcpy_dtoh(record, self._error)
                raise self.program.error(int(record[0]), int(record[1]))
            for position, name in self.plan.fresh:
                outputs[position] = self._pending_output(name, self.plan.shapes[position])
            for position, name, input_index in self.plan.copies:
                outputs[position] = self._copy_of(name, arrays, input_index, outputs)
        return self.plan.shaped(outputs)

    def _launch_profiled(self) -> None:
        """Launch every kernel with an event recorded before the first and after each,
        and record their times (``profiling``)."""
        if self._events is None:
            self._events = [self.drv.Event() for _ in range(len(self._launches) + 1)]
        events = self._events
        start = time.perf_counter_ns()
        events[0].record()
        for (function, grid, block, args), after in zip(self._launches, events[1:]):
            function.prepared_call(grid, block, *args)
            after.record()
        events[-1].synchronize()
        elapsed = time.perf_counter_ns() - start
        kernel_ns = np.array([round(before.time_till(after) * 1e6)   # ms -> ns
                              for before, after in zip(events, events[1:])], np.int64)
        self.kernel_times.add(kernel_ns, elapsed)

    def _place_input(self, position: int, array):
        """Make the input buffer at ``position`` hold ``array``'s value, moving as little
        as its device copies allow."""
        name, dtype, size = self.plan.inputs[position]
        address = self._address[name]
        copy = residency.find(array)
        stays = (residency.can_stay_on_device(array) and array.dtype == dtype
                 and array.size == size)
        if copy is not None and stays:
            if copy.owner is self and copy.buffer == name:
                return                                          # already here
            self._vacate(name)
            if size:
                self.drv.memcpy_dtod(address, copy.address, array.nbytes)
            if copy.owner.holds_output(copy.buffer):           # about to be overwritten
                self._settle(array, name, copy.pending)
            return
        residency.claim(array)                     # the host holds the newest value
        array = self.plan.check_input(position, array)
        self._vacate(name)
        if size:
            self.drv.memcpy_htod(address, array)
        if stays:
            self._settle(array, name, pending=False)

    def _settle(self, array: np.ndarray, name: str, pending: bool):
        """Record buffer ``name`` as the device copy of ``array``."""
        copy = residency.DeviceCopy(self, name, self._address[name], pending)
        residency.place(array, copy)
        self._occupant[name] = copy

    def _vacate(self, name: str):
        """Buffer ``name`` is about to be overwritten: save the value pending there."""
        copy = self._occupant.pop(name, None)
        if copy is not None:
            residency.drop(copy)

    def _pending_output(self, name: str, shape) -> np.ndarray:
        """A host array for the output in buffer ``name``, its value left on the device."""
        array = np.empty(shape, self.program.buffers[name].dtype.np)
        if array.size:
            self._settle(array, name, pending=True)
        return array

    def holds_output(self, name: str) -> bool:
        return name in self._outputs

    def download(self, copy, array: np.ndarray):
        """Bring ``copy``'s value into ``array`` (called by ``graphc.residency``)."""
        with active():
            self.drv.memcpy_dtoh(array, copy.address)

    def _copy_of(self, name, inputs, input_index, outputs):
        """An output that is an input, a constant or an earlier output, as a new array."""
        if input_index is not None:
            residency.sync(inputs[input_index])
            return self.plan.check_input(input_index, inputs[input_index]).reshape(-1).copy()
        if name in self.program.constants:
            return self.plan.constant(name)
        first = outputs[self.program.outputs.index(name)]
        residency.sync(first)
        return first.copy()

    def __repr__(self) -> str:
        return f"<graphc cuda program {self.program.name}: {len(self.program.kernels)} kernels>"


def build(graph, source: CudaSource) -> CudaProgram:
    return CudaProgram(graph, source)
