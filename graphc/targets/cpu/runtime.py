"""The cpu backend's runtime: optimise a program's LLVM module, JIT it, and call its one
native entry point from Python; object code is cached on disk.

A call costs a few microseconds: the pointers of constants and temporaries (one arena
per dtype, allocated once per program) are written once into a pointer array, and each
call only writes the inputs' and fresh outputs' pointers, then makes one ctypes call.

Object code is kept in graphc's disk cache (``graphc.targets.cache``), keyed by the LLVM
IR text, graphc's and LLVM's versions and the host CPU with its features.  Buffers follow
the shared plan (``graphc.targets.plan``) in host memory.
"""
from __future__ import annotations

import ctypes
import threading

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from graphc.targets import cache
from graphc.targets.cpu import render, threads
from graphc.targets.plan import BufferPlan, HostMemory
from graphc.codegen import loops as L
from graphc.codegen.split import split_reductions

_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


# ---- LLVM --------------------------------------------------------------------------------------
def optimize(ir_text: str) -> llvm.ModuleRef:
    """Parse, verify and optimise at O3 (loop and SLP vectorizers on) for the host."""
    module = llvm.parse_assembly(ir_text)
    module.verify()
    tuning = llvm.create_pipeline_tuning_options(speed_level=3)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    tuning.loop_unrolling = True
    passes = llvm.create_pass_builder(render.target_machine(), tuning)
    passes.getModulePassManager().run(module, passes)
    return module


def assembly(ir_text: str) -> str:
    return render.target_machine().emit_assembly(optimize(ir_text))


def compile_object(ir_text: str) -> bytes:
    return render.target_machine().emit_object(optimize(ir_text))


class NativeCode:
    """Object code loaded into its own JIT engine; ``address`` is the entry's."""

    def __init__(self, obj: bytes):
        threads.register_symbols()          # graphc_num_threads, libgomp's entry points
        # The engine owns the target machine it is given: a fresh one.
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                 render.create_target_machine())
        self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()
        self.address = self.engine.get_function_address(render.ENTRY)
        if not self.address:
            raise RuntimeError(f"object code has no {render.ENTRY!r} symbol")


# ---- disk cache --------------------------------------------------------------------------------
def cache_key(ir_text: str) -> str:
    """The cache key of the object code for ``ir_text``: the IR, LLVM's version and the
    host CPU with its features (and graphc's version, ``cache.key``)."""
    return cache.key(ir_text, llvmlite.__version__,
                     ".".join(map(str, llvm.llvm_version_info)), llvm.get_host_cpu_name(),
                     render.host_features())


def load_native(ir_text: str) -> NativeCode:
    """Object code for ``ir_text`` from the cache, or compiled (and cached)."""
    key = cache_key(ir_text)
    obj = cache.load(key, "o")
    if obj is not None:
        try:
            return NativeCode(obj)
        except RuntimeError:
            pass
    obj = compile_object(ir_text)
    native = NativeCode(obj)
    cache.store(key, "o", obj)
    return native


# ---- calling a program -------------------------------------------------------------------------
def _probe_data_offset() -> int | None:
    """Where numpy's PyArrayObject keeps its data pointer (right after the object
    header): reading it is ~8x faster than ``__array_interface__``.  None when this
    interpreter lays arrays out otherwise."""
    offset = object.__basicsize__
    probes = [np.arange(3.0), np.zeros(5, np.int32)[1:], np.ones(7, bool)]
    for a in probes:
        if ctypes.c_void_p.from_address(id(a) + offset).value != \
                a.__array_interface__["data"][0]:
            return None
    return offset


_DATA_OFFSET = _probe_data_offset()
_pointer_at = ctypes.c_void_p.from_address


def data_address(a: np.ndarray) -> int:
    """The address of an array's first element."""
    if _DATA_OFFSET is None:
        return a.__array_interface__["data"][0]
    return _pointer_at(id(a) + _DATA_OFFSET).value


class CompiledProgram:
    """A loop IR program compiled to native code: ``program(inputs) -> outputs``.

    Inputs must have the buffers' dtypes and sizes (any shape: buffers are flat);
    outputs are fresh flat arrays (reshape them to the graph's shapes).  Calls are
    serialised: the arenas of temporaries are shared between calls."""

    def __init__(self, program: L.Program, ir_text: str, native: NativeCode,
                 output_shapes=None):
        plan = BufferPlan(program, output_shapes)
        self.output_shapes = plan.shapes
        self.program = program
        self.name = program.name
        self._ir_text = ir_text
        self._native = native                   # owns the code: keep it alive
        self._entry = _ENTRY_TYPE(native.address)
        self._slots = {name: i for i, name in enumerate(program.buffers)}
        self._pointers = (ctypes.c_void_p * max(len(self._slots), 1))()
        self._pointers_address = ctypes.addressof(self._pointers)
        self._error = (ctypes.c_int64 * 2)()     # {code, value}: see cpu/render.py
        self._error_address = ctypes.addressof(self._error)
        self._lock = threading.Lock()
        self._dummy = np.zeros(8, np.int64)     # what a zero-size buffer points at
        self._dummy_address = data_address(self._dummy)
        # The call path's own records, derived once from the plan (see __call__).
        self._plan = plan
        self._inputs = [(self._slots[name], dtype, size, position)
                        for position, (name, dtype, size) in enumerate(plan.inputs)]
        self._written_inputs = plan.written_inputs
        self._fresh = [(position, self._slots[name], program.buffers[name].dtype.np,
                        plan.shapes[position]) for position, name in plan.fresh]
        self._copies = plan.copies
        self._n_outputs = len(program.outputs)
        self._storage = plan.place(HostMemory)  # buffer name -> array held for the program
        for name, array in self._storage.items():
            self._pointers[self._slots[name]] = (data_address(array) if array.size
                                                 else self._dummy_address)

    # ---- calls ----------------------------------------------------------------------------------
    def _check_writeable(self, given, used, name):
        """An input the program updates in place must be the caller's array itself."""
        if used is not given or not used.flags.writeable:
            raise ValueError(f"compiled program {self.name} updates input {name} in place: "
                             f"it must be a writeable, C-contiguous array of "
                             f"{used.dtype} (got {getattr(given, 'dtype', type(given))})")

    def __call__(self, arrays):
        if len(arrays) != len(self._inputs):
            self._plan.check_count(arrays)                  # raises, naming the counts
        inputs, outputs = [], [None] * self._n_outputs
        dummy = self._dummy_address
        with self._lock:
            pointers = self._pointers
            for a, (slot, dtype, size, position) in zip(arrays, self._inputs):
                if type(a) is not np.ndarray or a.dtype != dtype or a.size != size or \
                        not a.flags.c_contiguous:
                    a = self._plan.check_input(position, a)
                pointers[slot] = data_address(a) if size else dummy
                inputs.append(a)
            for i in self._written_inputs:
                self._check_writeable(arrays[i], inputs[i], self._plan.inputs[i][0])
            for position, slot, dtype, shape in self._fresh:
                out = outputs[position] = np.empty(shape, dtype)
                pointers[slot] = data_address(out) if out.size else dummy
            self._error[0] = 0
            self._entry(self._pointers_address, self._error_address)
            code = self._error[0]
            for position, name, input_index in self._copies:
                outputs[position] = self._copy_of(name, outputs, input_index, inputs).reshape(
                    self.output_shapes[position])
        if code:
            raise self.program.error(code, self._error[1])
        return outputs

    def _copy_of(self, name, outputs, input_index, inputs):
        if input_index is not None:
            return inputs[input_index].reshape(-1).copy()
        if name in self._storage:
            return self._storage[name].copy()
        first = self.program.outputs.index(name)
        return outputs[first].copy()

    # ---- inspection -----------------------------------------------------------------------------
    def llvm_ir(self, optimized: bool = False) -> str:
        """The module's LLVM IR text, as rendered or after the O3 pipeline."""
        return str(optimize(self._ir_text)) if optimized else self._ir_text

    def __repr__(self) -> str:
        return (f"<graphc cpu program {self.name}: {len(self.program.kernels)} kernels, "
                f"{len(self._inputs)} inputs, {self._n_outputs} outputs>")


def compile_program(program: L.Program, output_shapes=None) -> CompiledProgram:
    """Render, optimise and JIT ``program``; returns the callable (its outputs get
    ``output_shapes`` when given, else they are flat).  Long, narrow reductions are
    split in two passes first, so their work can be shared between threads."""
    program = split_reductions(program, threads.LONG_REDUCTIONS)
    ir_text = str(render.render_program(program))
    return CompiledProgram(program, ir_text, load_native(ir_text), output_shapes)
