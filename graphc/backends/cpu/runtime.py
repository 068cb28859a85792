"""The cpu backend's runtime: optimise a program's LLVM module, JIT it, and call its one
native entry point from Python; object code is cached on disk.

A call costs a few microseconds: the pointers of constants and temporaries (one arena
per dtype, allocated once per program) are written once into a pointer array, and each
call only writes the inputs' and fresh outputs' pointers, then makes one ctypes call.

Cache: ``$GRAPHC_CACHE_DIR`` (default ``~/.cache/graphc``; empty disables it) holds one
file per module, named by the sha256 of the LLVM IR text, graphc's and LLVM's versions
and the host CPU with its features.  A file carries its key and a checksum of the object
code; an entry that is unreadable, corrupt or for another key is rebuilt and
overwritten, never trusted.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import threading

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from graphc import dtypes
from graphc.backends.cpu import render
from graphc.codegen import loops as L
from graphc.version import __version__

_MAGIC = b"graphc-object-1\n"
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
        # The engine owns the target machine it is given: a fresh one.
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                 render.create_target_machine())
        self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()
        self.address = self.engine.get_function_address(render.ENTRY)
        if not self.address:
            raise RuntimeError(f"object code has no {render.ENTRY!r} symbol")


# ---- disk cache --------------------------------------------------------------------------------
def cache_dir() -> str | None:
    directory = os.environ.get("GRAPHC_CACHE_DIR")
    if directory is None:
        return os.path.join(os.path.expanduser("~"), ".cache", "graphc")
    return directory or None


def cache_key(ir_text: str) -> str:
    """sha256 of the IR, graphc's and LLVM's versions and the host CPU."""
    h = hashlib.sha256()
    for part in (ir_text, __version__, llvmlite.__version__,
                 ".".join(map(str, llvm.llvm_version_info)), llvm.get_host_cpu_name(),
                 render.host_features()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _read_cache(path: str, key: str) -> bytes | None:
    """The object code in ``path`` if the file is intact and made for ``key``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    header = len(_MAGIC) + 2 * 65
    if len(data) < header or not data.startswith(_MAGIC):
        return None
    stored_key, checksum = data[len(_MAGIC):header].split(b"\n")[:2]
    obj = data[header:]
    if stored_key.decode(errors="replace") != key or \
            hashlib.sha256(obj).hexdigest().encode() != checksum:
        return None
    return obj


def _write_cache(path: str, key: str, obj: bytes):
    """Write atomically (a reader never sees half a file); a cache that cannot be
    written is skipped."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(_MAGIC + key.encode() + b"\n" + hashlib.sha256(obj).hexdigest().encode()
                    + b"\n" + obj)
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_native(ir_text: str) -> NativeCode:
    """Object code for ``ir_text`` from the cache, or compiled (and cached)."""
    directory = cache_dir()
    key = cache_key(ir_text)
    path = None if directory is None else os.path.join(directory, f"{key}.o")
    if path is not None:
        obj = _read_cache(path, key)
        if obj is not None:
            try:
                return NativeCode(obj)
            except RuntimeError:
                pass
    obj = compile_object(ir_text)
    native = NativeCode(obj)
    if path is not None:
        _write_cache(path, key, obj)
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
        # The shape each output array gets (flat when not given: buffers have no shape).
        self.output_shapes = output_shapes or [(program.buffers[name].size,)
                                               for name in program.outputs]
        self.program = program
        self.name = program.name
        self._ir_text = ir_text
        self._native = native                   # owns the code: keep it alive
        self._entry = _ENTRY_TYPE(native.address)
        self._slots = {name: i for i, name in enumerate(program.buffers)}
        self._pointers = (ctypes.c_void_p * max(len(self._slots), 1))()
        self._pointers_address = ctypes.addressof(self._pointers)
        self._error = ctypes.c_int32(0)
        self._error_address = ctypes.addressof(self._error)
        self._lock = threading.Lock()
        self._dummy = np.zeros(8, np.int64)     # what a zero-size buffer points at
        self._dummy_address = data_address(self._dummy)
        self._storage = {}                      # buffer name -> array held for the program
        self._inputs = [(self._slots[n], program.buffers[n].dtype.np, program.buffers[n].size,
                         n) for n in program.inputs]
        written = {name for kernel in program.kernels for name in kernel.outputs}
        self._written_inputs = [i for i, name in enumerate(program.inputs) if name in written]
        self._plan_outputs()
        self._place_constants()
        self._place_temporaries()

    # ---- set-up -------------------------------------------------------------------------------
    def _hold(self, name: str, array: np.ndarray, address: int | None = None):
        self._storage[name] = array
        size = self.program.buffers[name].size
        self._pointers[self._slots[name]] = (self._dummy_address if size == 0 else
                                             address if address is not None else
                                             data_address(array))

    def _place_constants(self):
        for name, value in self.program.constants.items():
            info = self.program.buffers[name]
            array = np.array(value, dtype=info.dtype.np).reshape(-1)
            if array.size != info.size:
                raise ValueError(f"constant {name} has {array.size} elements, its buffer "
                                 f"{info.size}")
            self._hold(name, array)

    def _place_temporaries(self):
        """Temporaries share one arena per dtype (the memory plan); any other buffer
        that is neither an input nor a fresh output gets its own array, once."""
        arenas = {dtypes.from_name(name): np.zeros(max(size, 1), dtypes.from_name(name).np)
                  for name, size in self.program.arena_sizes.items()}
        fresh = {self.program.outputs[position] for position, *_ in self._fresh}
        for name, info in self.program.buffers.items():
            if info.kind == "input" or name in fresh or name in self._storage:
                continue
            if name in self.program.arena:
                offset = self.program.arena[name]
                arena = arenas[info.dtype]      # a view keeps its arena alive
                self._hold(name, arena[offset:offset + info.size],
                           data_address(arena) + offset * arena.itemsize)
            else:
                self._hold(name, np.zeros(info.size, info.dtype.np))

    def _plan_outputs(self):
        """Each output is a fresh array the kernels write, or (an input, a constant, a
        repeated output) a copy of that buffer after the call."""
        self._fresh, self._copies, seen = [], [], set()
        inputs = {name: i for i, name in enumerate(self.program.inputs)}
        for position, name in enumerate(self.program.outputs):
            info = self.program.buffers[name]
            if info.kind == "output" and name not in seen and name not in inputs:
                self._fresh.append((position, self._slots[name], info.dtype.np,
                                    self.output_shapes[position]))
            else:
                self._copies.append((position, name, inputs.get(name)))
            seen.add(name)
        self._n_outputs = len(self.program.outputs)

    # ---- calls ----------------------------------------------------------------------------------
    def _input(self, a, dtype, size, name):
        a = np.ascontiguousarray(a, dtype=dtype)
        if a.size != size:
            raise ValueError(f"compiled program {self.name}: input {name} needs {size} "
                             f"elements of {dtype}, got an array of shape {a.shape}")
        return a

    def _check_writeable(self, given, used, name):
        """An input the program updates in place must be the caller's array itself."""
        if used is not given or not used.flags.writeable:
            raise ValueError(f"compiled program {self.name} updates input {name} in place: "
                             f"it must be a writeable, C-contiguous array of "
                             f"{used.dtype} (got {getattr(given, 'dtype', type(given))})")

    def __call__(self, arrays):
        if len(arrays) != len(self._inputs):
            raise TypeError(f"compiled program {self.name} takes {len(self._inputs)} inputs, "
                            f"got {len(arrays)}")
        inputs, outputs = [], [None] * self._n_outputs
        dummy = self._dummy_address
        with self._lock:
            pointers = self._pointers
            for a, (slot, dtype, size, name) in zip(arrays, self._inputs):
                if type(a) is not np.ndarray or a.dtype != dtype or a.size != size or \
                        not a.flags.c_contiguous:
                    a = self._input(a, dtype, size, name)
                pointers[slot] = data_address(a) if size else dummy
                inputs.append(a)
            for i in self._written_inputs:
                self._check_writeable(arrays[i], inputs[i], self._inputs[i][3])
            for position, slot, dtype, shape in self._fresh:
                out = outputs[position] = np.empty(shape, dtype)
                pointers[slot] = data_address(out) if out.size else dummy
            self._error.value = 0
            self._entry(self._pointers_address, self._error_address)
            code = self._error.value
            for position, name, input_index in self._copies:
                outputs[position] = self._copy_of(name, outputs, input_index, inputs).reshape(
                    self.output_shapes[position])
        if code:
            self._raise(code)
        return outputs

    def _copy_of(self, name, outputs, input_index, inputs):
        if input_index is not None:
            return inputs[input_index].reshape(-1).copy()
        if name in self._storage:
            return self._storage[name].copy()
        first = self.program.outputs.index(name)
        return outputs[first].copy()

    def _raise(self, code: int):
        kernel = self.program.kernels[abs(code) - 1].name
        if code > 0:
            raise IndexError(f"index out of bounds in compiled kernel {kernel}")
        raise MemoryError(f"compiled kernel {kernel} could not allocate its matmul scratch "
                          f"memory")

    # ---- inspection -----------------------------------------------------------------------------
    def llvm_ir(self, optimized: bool = False) -> str:
        """The module's LLVM IR text, as rendered or after the O3 pipeline."""
        return str(optimize(self._ir_text)) if optimized else self._ir_text

    def __repr__(self) -> str:
        return (f"<graphc cpu program {self.name}: {len(self.program.kernels)} kernels, "
                f"{len(self._inputs)} inputs, {self._n_outputs} outputs>")


def compile_program(program: L.Program, output_shapes=None) -> CompiledProgram:
    """Render, optimise and JIT ``program``; returns the callable (its outputs get
    ``output_shapes`` when given, else they are flat)."""
    ir_text = str(render.render_program(program))
    return CompiledProgram(program, ir_text, load_native(ir_text), output_shapes)
