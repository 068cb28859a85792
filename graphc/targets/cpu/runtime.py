"""The cpu backend's runtime: optimise a program's LLVM modules, JIT them, and call its one
native entry point from Python; object code and renderings are cached on disk.

A call costs a few microseconds: the pointers of constants and temporaries (one arena
per dtype, allocated once per program) are written once into a pointer array, and each
call only writes the inputs' and fresh outputs' pointers, then makes one ctypes call.
A caller that passes the same arrays call after call (``graphc.compile``'s parameters
and optimizer state) binds them once (``CompiledProgram.bind``: a ``BoundCall`` with a
pointer array of its own), and its calls write only the other inputs' pointers.

A program is several LLVM modules (``render.render_program``): the entry and one per
distinct kernel.  Each is optimised at its own level and compiled to an object file on
its own, kept in graphc's disk cache (``graphc.targets.cache``) keyed by the module's
text, its level, LLVM's version and the host CPU with its features, so a kernel shared
by several programs is compiled once; the objects are linked in one JIT engine.  The
rendering of a program is cached too (``rendered_program``), so a compile whose object
code is cached costs tracing, passes and lowering.  Buffers follow the shared plan
(``graphc.targets.plan``) in host memory.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import multiprocessing
import os
import pickle
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from graphc import profiling, progress
from graphc.targets import cache
from graphc.ops.collective import world
from graphc.targets.cpu import collectives, render, threads
from graphc.targets.cpu.tuning import plan as matmul_plan
from graphc.targets.plan import BufferPlan, HostMemory
from graphc.codegen import loops as L
from graphc.codegen.costs import kernel_costs
from graphc.codegen.split import split_reductions

_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_PROFILED_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


# ---- LLVM --------------------------------------------------------------------------------------
# The pipeline of each optimisation level a kernel module may ask for
# (``render.optimisation_level``): LLVM's speed level, and whether the vectorizers and
# loop unrolling run.  Level 3 is LLVM's O3, which long loops of transcendental math
# need (10% faster than O2 with the same vectorizers and unrolling: a GELU chain over
# 16M floats); a large matmul blocks its loops itself, and O2 without unrolling (level
# 2) compiles it in half the time of O3 and runs it as fast (sgemm 1024^3, the GPT
# step); O1 keeps the compile of a tiny or serial kernel short.
PIPELINES = {1: (1, False, False), 2: (2, True, False), 3: (3, True, True)}
ENTRY_LEVEL = 1          # the entry only calls kernels


def optimize(ir_text: str, level: int) -> llvm.ModuleRef:
    """Parse, verify and optimise one module at ``level`` (``PIPELINES``) for the host."""
    module = llvm.parse_assembly(ir_text)
    module.verify()
    speed, vectorize, unroll = PIPELINES[level]
    tuning = llvm.create_pipeline_tuning_options(speed_level=speed)
    tuning.loop_vectorization = tuning.slp_vectorization = vectorize
    tuning.loop_unrolling = unroll
    passes = llvm.create_pass_builder(render.target_machine(), tuning)
    passes.getModulePassManager().run(module, passes)
    return module


def assembly(ir_text: str, level: int) -> str:
    return render.target_machine().emit_assembly(optimize(ir_text, level))


def compile_object(ir_text: str, level: int) -> bytes:
    return render.target_machine().emit_object(optimize(ir_text, level))


class NativeCode:
    """Object files linked into one JIT engine; ``address`` is the entry's."""

    def __init__(self, objects, mpi: bool = False):
        threads.register_symbols()          # graphc_num_threads, libgomp's entry points
        if mpi:
            collectives.register_symbols(world())
        # The engine owns the target machine it is given: a fresh one.
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                 render.create_target_machine())
        for obj in objects:
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()
        self.address = self.engine.get_function_address(render.ENTRY)
        if not self.address:
            raise RuntimeError(f"object code has no {render.ENTRY!r} symbol")

    def add_profiled_entry(self, ir_text: str) -> int:
        """Link the profiled entry module (``render.RenderedProgram.profiled``: it calls
        the kernels already linked), from the cache or compiled; its address."""
        key = cache_key(ir_text, ENTRY_LEVEL)
        obj = cache.load(key, "o")
        if obj is None:
            obj = compile_object(ir_text, ENTRY_LEVEL)
            cache.store(key, "o", obj)
        self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()
        return self.engine.get_function_address(render.ENTRY_PROFILED)


# ---- disk cache --------------------------------------------------------------------------------
def cache_key(ir_text: str, level: int) -> str:
    """The cache key of the object code for one module's ``ir_text`` optimised at
    ``level``: the IR, the level's pipeline, llvmlite's and LLVM's versions and the host
    CPU with its features (and graphc's version, ``cache.key``)."""
    return cache.key(ir_text, repr(PIPELINES[level]), llvmlite.__version__,
                     ".".join(map(str, llvm.llvm_version_info)), llvm.get_host_cpu_name(),
                     render.host_features())


def _modules(rendered: render.RenderedProgram) -> list:
    """(IR text, level) of each module of a program: the entry, then each kernel."""
    return [(rendered.entry, ENTRY_LEVEL), *((k.text, k.level) for k in rendered.kernels)]


# Modules are compiled in worker processes when there are at least this many bytes of IR
# text to compile (about half a second of LLVM at O2), which pays for forking them.
PARALLEL_COMPILE_BYTES = 1 << 18


def _compile_in_worker(ir_text: str, level: int) -> bytes:
    """What a worker process runs (named here, so the pool pickles it by name)."""
    return compile_object(ir_text, level)


def compile_objects(modules: list) -> list:
    """The object code of each (IR text, level), in order, compiled in parallel when
    there is enough of it and more than one usable core.  llvmlite runs every LLVM call
    under one lock, so threads would not overlap: the workers are processes, forked
    (they need nothing but LLVM, which the fork inherits ready to use; a spawned
    interpreter would spend longer importing than compiling)."""
    workers = min(len(modules), len(os.sched_getaffinity(0)))
    if (workers < 2 or sum(len(text) for text, _ in modules) < PARALLEL_COMPILE_BYTES
            or "fork" not in multiprocessing.get_all_start_methods()):
        objects = []
        for text, level in modules:
            objects.append(compile_object(text, level))
            progress.advance("modules compiled", len(objects), len(modules))
        return objects
    # Longest first, so no worker is left with a long module at the end.
    order = sorted(range(len(modules)), key=lambda i: -len(modules[i][0]))
    objects = [None] * len(modules)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        # The workers fork at the first submit.  Holding llvmlite's lock (re-entrant: the
        # workers' one thread is this thread's copy) while they do keeps another thread
        # from being inside LLVM at that moment, which would leave them its lock, held.
        with getattr(llvm.ffi.lib, "_lock", contextlib.nullcontext()):
            futures = {pool.submit(_compile_in_worker, *modules[i]): i for i in order}
        for done, future in enumerate(as_completed(futures), 1):
            objects[futures[future]] = future.result()
            progress.advance("modules compiled", done, len(modules))
    return objects


def load_native(rendered: render.RenderedProgram, mpi: bool = False) -> NativeCode:
    """A program's object code, each module's from the cache or compiled (and cached),
    linked into one JIT engine: a kernel is compiled once however many programs use
    it.  If cached objects do not link, every module is compiled afresh.  ``mpi``: the
    program calls the MPI library (``collectives``)."""
    modules = _modules(rendered)
    with progress.stage("cache"):
        keys = [cache_key(text, level) for text, level in modules]
        objects = [cache.load(key, "o") for key in keys]
    missing = [i for i, obj in enumerate(objects) if obj is None]
    if missing:
        with progress.stage("llvm"):
            compiled = compile_objects([modules[i] for i in missing])
        with progress.stage("cache"):
            for i, obj in zip(missing, compiled):
                objects[i] = obj
            cache.store_many({keys[i]: objects[i] for i in missing}, "o")
    with progress.stage("link"):
        try:
            return NativeCode(objects, mpi)
        except RuntimeError:
            if len(missing) == len(modules):
                raise
    with progress.stage("llvm"):
        objects = compile_objects(modules)
    cache.store_many(dict(zip(keys, objects)), "o")
    return NativeCode(objects, mpi)


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


def _references(holder: list, i: int) -> int:
    """``sys.getrefcount`` of ``holder[i]``, read always the same way, so it can be
    compared with ``_ONLY_REFERENCE`` (whatever this interpreter counts on the way)."""
    return sys.getrefcount(holder[i])


_ONLY_REFERENCE = _references([object()], 0)      # an item only its list refers to


def _agreeing(entry, what: str):
    """``entry`` preceded, on each call, by every rank's agreement that it runs a
    program with the same collectives (``World.agree``)."""
    def call(*pointers):
        world().agree(what)
        entry(*pointers)
    return call


class CompiledProgram:
    """A loop IR program compiled to native code: ``program(inputs) -> outputs``.

    Inputs must have the buffers' dtypes and sizes (any shape: buffers are flat);
    outputs are fresh flat arrays (reshape them to the graph's shapes), except those
    computed in place (``in_place``: (output position, input position), see
    ``graphc.codegen.inplace``): such an output is its input's array, updated (or, when
    that array cannot be written as it is, a converted copy).  Calls are serialised: the
    arenas of temporaries are shared between calls."""

    def __init__(self, program: L.Program, rendered: render.RenderedProgram,
                 native: NativeCode, output_shapes=None, in_place=()):
        plan = BufferPlan(program, output_shapes, in_place)
        self.in_place = plan.in_place
        self._in_place_inputs = {inp for _, inp in plan.in_place}
        self.output_shapes = plan.shapes
        self.program = program
        self.name = program.name
        self._rendered = rendered
        self._native = native                   # owns the code: keep it alive
        self._entry = _ENTRY_TYPE(native.address)
        if collectives.uses_mpi(program):
            self._entry = _agreeing(self._entry, collectives.signature(program))
        # While ``profiling.enabled``, calls go through ``_run_profiled`` instead, which
        # links ``entry_profiled`` on its first call.
        self._entry_profiled = None
        self.kernel_times = profiling.ProgramTimes(self.name, "cpu", kernel_costs(program))
        self._times = (ctypes.c_int64 * max(len(program.kernels), 1))()
        self._times_address = ctypes.addressof(self._times)
        self._slots = {name: i for i, name in enumerate(program.buffers)}
        self._pointers = (ctypes.c_void_p * max(len(self._slots), 1))()
        self._pointers_address = ctypes.addressof(self._pointers)
        self._error = (ctypes.c_int64 * 2)()     # {code, value}: see cpu/render.py, _failed
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
                if position in self._in_place_inputs and not a.flags.writeable:
                    a = a.copy()
                pointers[slot] = data_address(a) if size else dummy
                inputs.append(a)
            for i in self._written_inputs:
                self._check_writeable(arrays[i], inputs[i], self._plan.inputs[i][0])
            for position, slot, dtype, shape in self._fresh:
                out = outputs[position] = np.empty(shape, dtype)
                pointers[slot] = data_address(out) if out.size else dummy
            if profiling.enabled:
                self._run_profiled(self._pointers_address)
            else:
                self._entry(self._pointers_address, self._error_address)
            code = self._error[0]
            if code:
                return self._failed(code)
            for position, name, input_index in self._copies:
                outputs[position] = self._copy_of(name, outputs, input_index, inputs).reshape(
                    self.output_shapes[position])
        self._give_in_place(inputs, outputs)
        return outputs

    def _run_profiled(self, pointers_address: int) -> None:
        """Run ``entry_profiled`` on the buffers at ``pointers_address`` and record its
        kernels' times and its own (the native call, timed here)."""
        if self._entry_profiled is None:
            self._entry_profiled = _PROFILED_TYPE(
                self._native.add_profiled_entry(self._rendered.profiled))
            if collectives.uses_mpi(self.program):
                self._entry_profiled = _agreeing(self._entry_profiled,
                                                 collectives.signature(self.program))
        start = time.perf_counter_ns()
        self._entry_profiled(pointers_address, self._error_address, self._times_address)
        elapsed = time.perf_counter_ns() - start
        self.kernel_times.add(np.frombuffer(self._times, np.int64,
                                            len(self.program.kernels)).copy(), elapsed)

    def _failed(self, code: int):
        """Raise the error a kernel recorded, and clear the record (it is 0 whenever a
        call starts, so calls need not clear it)."""
        value = self._error[1]
        self._error[0] = self._error[1] = 0
        raise self.program.error(code, value)

    def _give_in_place(self, inputs, outputs):
        """The in-place outputs: their inputs' arrays, in the outputs' shapes."""
        for out, inp in self.in_place:
            a, shape = inputs[inp], self.output_shapes[out]
            outputs[out] = a if a.shape == shape else a.reshape(shape)

    def bind(self, fixed: dict, private=()) -> "BoundCall":
        """A call plan with the inputs at the positions in ``fixed`` (position -> array)
        fixed: see ``BoundCall``.  An in-place input in ``private`` is copied on each
        call (its array shares memory with another input, which must not see it
        change during the call)."""
        return BoundCall(self, fixed, private)

    def _copy_of(self, name, outputs, input_index, inputs):
        if input_index is not None:
            return inputs[input_index].reshape(-1).copy()
        if name in self._storage:
            return self._storage[name].copy()
        first = self.program.outputs.index(name)
        return outputs[first].copy()

    # ---- inspection -----------------------------------------------------------------------------
    def llvm_ir(self, optimized: bool = False) -> str:
        """The LLVM IR text of the program's modules (the entry's, then each kernel's),
        as rendered or after each one's optimisation pipeline."""
        if not optimized:
            return str(self._rendered)
        return "\n".join(str(optimize(text, level)) for text, level in _modules(self._rendered))

    def __repr__(self) -> str:
        return (f"<graphc cpu program {self.name}: {len(self.program.kernels)} kernels, "
                f"{len(self._inputs)} inputs, {self._n_outputs} outputs>")


class BoundCall:
    """One caller's call plan of a ``CompiledProgram``: some inputs are fixed arrays (a
    compiled training step's parameters and optimizer state, the same arrays call after
    call), so their pointers are written once, into a pointer array of this plan's own;
    a call passes only the other inputs, in position order, and gets the program's
    outputs.  The caller keeps the fixed arrays' identity (it binds again when a tensor's
    array is replaced); the plan holds them, so their addresses stay valid.

    The outputs are writeable arrays, none of them another's: new ones, or the last
    call's when nothing else refers to them any more (``__call__``); an input-valued
    output is a copy, and an in-place output is its input's array (a fixed array, or its
    converted copy).  So the caller may hand each to a tensor as it is."""

    def __init__(self, program: CompiledProgram, fixed: dict, private=()):
        self.program = program
        self.fixed = dict(fixed)                 # position -> array, kept alive here
        self._lock = program._lock               # the arenas of temporaries are shared
        self._entry = program._entry
        self._error = program._error
        self._error_address = program._error_address
        self._pointers = type(program._pointers).from_buffer_copy(program._pointers)
        self._pointers_address = ctypes.addressof(self._pointers)
        # A fixed array the kernels cannot read as it is (not contiguous: an optimizer's
        # state cloned from a transposed gradient) is converted on every call, as an
        # input passed to ``CompiledProgram`` is.
        self._converted = []
        for slot, dtype, size, position in program._inputs:
            a = self.fixed.get(position)
            if a is None:
                continue
            written = position in program._written_inputs or \
                position in program._in_place_inputs
            if type(a) is not np.ndarray or a.dtype != dtype or a.size != size or \
                    not a.flags.c_contiguous or (written and not a.flags.writeable) or \
                    position in private:
                self._converted.append((slot, position, a))
            else:
                self._pointers[slot] = data_address(a) if size else program._dummy_address
        self._varying = [(slot, dtype, size, position, position in program._in_place_inputs)
                         for slot, dtype, size, position in program._inputs
                         if position not in self.fixed]
        self._written = [(k, position) for k, position in
                         enumerate(p for _, _, _, p, _ in self._varying)
                         if position in program._written_inputs]
        self._converted_positions = [position for _, position, _ in self._converted]
        self._varying_positions = [position for _, _, _, position, _ in self._varying]
        self._template = [self.fixed.get(p) for p in range(len(program._inputs))]
        self._fresh = program._fresh
        self._copies = program._copies
        self._in_place = program.in_place
        self._n_outputs = program._n_outputs
        # The plain case, one loop per kind of buffer: every output fresh (in order),
        # no fixed array converted, nothing written, nothing empty.
        self._plain = not (self._converted or self._written or self._copies or
                           self._in_place or program._written_inputs or
                           any(size == 0 for _, _, size, _, _ in self._varying) or
                           any(0 in shape for _, _, _, shape in self._fresh))
        self._plain_inputs = [(slot, dtype, size) for slot, dtype, size, _, _ in self._varying]
        self._plain_outputs = [(shape, dtype, slot) for _, slot, dtype, shape in self._fresh]
        # The plain path's last outputs, their pointers still in place (``_call``, which
        # writes those pointers too, empties it).
        self._recycled = [None] * len(self._fresh)

    def __call__(self, arrays) -> list:
        """Run with ``arrays``: the inputs not fixed, in position order."""
        if self._plain and len(arrays) == len(self._plain_inputs):
            for a, (_, dtype, size) in zip(arrays, self._plain_inputs):
                if type(a) is not np.ndarray or (a.dtype is not dtype and a.dtype != dtype) \
                        or a.size != size or not a.flags.c_contiguous:
                    return self._call(arrays)
            outputs = []
            pointers, recycled = self._pointers, self._recycled
            with self._lock:     # under it, ``recycled`` and the pointers agree
                for a, (slot, _, _) in zip(arrays, self._plain_inputs):
                    pointers[slot] = data_address(a)
                for i, (shape, dtype, slot) in enumerate(self._plain_outputs):
                    # The last call's output, when nothing but ``recycled`` refers to it
                    # any more, is reused: no allocation, no page faults, its pointer
                    # already in place.
                    if _references(recycled, i) != _ONLY_REFERENCE:
                        recycled[i] = np.empty(shape, dtype)
                        pointers[slot] = data_address(recycled[i])
                    outputs.append(recycled[i])
                if profiling.enabled:
                    self.program._run_profiled(self._pointers_address)
                else:
                    self._entry(self._pointers_address, self._error_address)
                if self._error[0]:
                    return self.program._failed(self._error[0])
            return outputs
        return self._call(arrays)

    def _call(self, arrays) -> list:
        """Any call: inputs converted where they must be, written inputs checked,
        copied and in-place outputs."""
        program = self.program
        if len(arrays) != len(self._varying):
            raise TypeError(f"compiled program {program.name}: this call plan takes "
                            f"{len(self._varying)} inputs, got {len(arrays)}")
        outputs = [None] * self._n_outputs
        inputs = list(arrays)
        dummy = program._dummy_address
        with self._lock:
            pointers = self._pointers
            for k, (a, (slot, dtype, size, position, in_place)) in \
                    enumerate(zip(arrays, self._varying)):
                if type(a) is not np.ndarray or (a.dtype is not dtype and a.dtype != dtype) \
                        or a.size != size or not a.flags.c_contiguous:
                    a = inputs[k] = program._plan.check_input(position, a)
                if in_place and not a.flags.writeable:
                    a = inputs[k] = a.copy()
                pointers[slot] = data_address(a) if size else dummy
            for k, position in self._written:
                program._check_writeable(arrays[k], inputs[k], program._plan.inputs[position][0])
            converted = []                       # alive until the call returns
            for slot, position, given in self._converted:
                a = program._plan.check_input(position, given)
                if position in program._written_inputs:
                    program._check_writeable(given, a, program._plan.inputs[position][0])
                elif position in program._in_place_inputs and a is given:
                    a = a.copy()                 # read-only or private: update a copy
                converted.append(a)
                pointers[slot] = data_address(a) if a.size else dummy
            for position, slot, dtype, shape in self._fresh:
                out = outputs[position] = np.empty(shape, dtype)
                pointers[slot] = data_address(out) if out.size else dummy
            self._recycled[:] = [None] * len(self._recycled)   # their pointers moved
            if profiling.enabled:
                program._run_profiled(self._pointers_address)
            else:
                self._entry(self._pointers_address, self._error_address)
            code = self._error[0]
            if code:
                return program._failed(code)
            if self._copies or self._in_place:
                used = self.all_inputs(inputs, converted)
                for position, name, input_index in self._copies:
                    outputs[position] = program._copy_of(
                        name, outputs, input_index, used).reshape(
                        program.output_shapes[position])
        if self._in_place:
            program._give_in_place(used, outputs)
        return outputs

    def all_inputs(self, varying, converted=()) -> list:
        """Every input in position order: the fixed arrays (or their ``converted``
        copies, in ``_converted`` order) and ``varying``."""
        used = self._template.copy()
        for position, a in zip(self._varying_positions, varying):
            used[position] = a
        for position, a in zip(self._converted_positions, converted):
            used[position] = a
        return used


@functools.cache
def _source_digest() -> str:
    """A hash of graphc's source files: a rendering cached by an older graphc (even one
    of the same version number, as in development) is never used."""
    h = hashlib.sha256()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()


def rendered_program(program: L.Program) -> render.RenderedProgram:
    """``render.render_program(program)``, from the disk cache when this graphc rendered
    the same program before (rendering is most of what a compile from cached object
    code would cost).  The key covers what rendering reads: the program without its
    constants' values, the renderer's settings, each matmul's plan (its blocking, and the
    BLAS function it calls, if any: ``tuning.plan``), the MPI library's type sizes when
    the program has collectives, and graphc's source."""
    plans = [world().abi] if collectives.uses_mpi(program) else []
    for kernel in program.kernels:
        if isinstance(kernel, L.MatmulKernel):
            plan = matmul_plan(kernel)
            plans.append((plan.blocking, None if plan.blas is None else (
                plan.blas.path, plan.blas.index_bits, plan.blas.gemm)))
    described = pickle.dumps((program.name, program.buffers, program.kernels, program.inputs,
                              program.outputs, threads.MIN_WORK_PER_THREAD,
                              threads.openmp() is not None, render.COLLAPSED_RANGE,
                              render.CHUNKS_PER_THREAD, render.VECTORIZE_WORK, plans),
                             protocol=5)
    key = cache.key(hashlib.sha256(described).hexdigest(), _source_digest(),
                    llvmlite.__version__, llvm.get_host_cpu_name(), render.host_features())
    stored = cache.load(key, "ll")
    if stored is not None:
        entry, profiled, *kernels = json.loads(stored)
        return render.RenderedProgram(entry, tuple(render.KernelModule(*k) for k in kernels),
                                      profiled)
    rendered = render.render_program(program)
    cache.store(key, "ll", json.dumps([rendered.entry, rendered.profiled, *(
        (k.symbol, k.text, k.level) for k in rendered.kernels)]).encode())
    return rendered


def compile_program(program: L.Program, output_shapes=None, in_place=()) -> CompiledProgram:
    """Render, optimise and JIT ``program``; returns the callable (its outputs get
    ``output_shapes`` when given, else they are flat; ``in_place``: the (output, input)
    positions ``graphc.codegen.inplace`` made in place).  Long, narrow reductions are
    split in two passes first, so their work can be shared between threads."""
    program = split_reductions(program, threads.LONG_REDUCTIONS)
    with progress.stage("render"):
        rendered = rendered_program(program)
    native = load_native(rendered, collectives.uses_mpi(program))
    return CompiledProgram(program, rendered, native, output_shapes, in_place)
