"""The buffer plan every code-generating backend's runtime follows: what each of a
program's buffers is (an input, a constant, a temporary, a fresh output), where constants
and temporaries live, how an input array is checked and how outputs come back.

The protocol is the interpreter's: ``program(arrays) -> list of arrays``, one per graph
output, shaped as the graph says.  Temporaries share one arena per dtype at the element
offsets of the memory plan (``codegen/memory.py``); a buffer outside the plan gets its
own block.  A backend supplies only where memory comes from (``HostMemory`` here for the
cpu backend and the CUDA emulator, device allocations for the GPU) and keeps its call
path's per-call structures, derived once from the plan.
"""
from __future__ import annotations

import numpy as np

from graphc import dtypes
from graphc.codegen import loops as L


class HostMemory:
    """Memory as numpy arrays.  A block is zero-filled and exactly ``size`` elements long,
    its address valid even when ``size`` is 0; numpy aligns a block's start to 16 bytes,
    and the memory plan keeps offsets multiples of 16 elements, so every temporary is as
    aligned as the kernels' vector loads need."""

    @staticmethod
    def constant(array: np.ndarray) -> np.ndarray:
        return array

    @staticmethod
    def block(size: int, dtype: dtypes.DType) -> np.ndarray:
        return np.zeros(max(size, 1), dtype.np)[:size]

    @staticmethod
    def part(block: np.ndarray, offset: int, size: int, dtype: dtypes.DType) -> np.ndarray:
        return block[offset:offset + size]          # a view keeps its arena alive


class BufferPlan:
    """The fixed facts of a program's buffers, computed once per compiled program.

    ``inputs``: (buffer name, numpy dtype, size) in call order; ``in_place``: (output
    position, input position) for outputs computed into their input's array
    (``graphc.codegen.inplace``), which the call returns as that output;
    ``written_inputs``: the positions of the other inputs the kernels update in place;
    ``fresh``: (output position, buffer name) for outputs the kernels write into a new
    array each call; ``copies``: (output position, buffer name, input position or None)
    for outputs that are an input, a constant or a repeated output, copied after the
    call; ``shapes``: each output's shape (flat when not given: buffers have no shape)."""

    def __init__(self, program: L.Program, output_shapes=None, in_place=()):
        self.program = program
        self.name = program.name
        buffers = program.buffers
        self.shapes = ([tuple(shape) for shape in output_shapes] if output_shapes
                       else [(buffers[name].size,) for name in program.outputs])
        self.inputs = [(name, buffers[name].dtype.np, buffers[name].size)
                       for name in program.inputs]
        self.in_place = [tuple(pair) for pair in in_place]
        in_place_outputs = {out for out, _ in self.in_place}
        in_place_inputs = {inp for _, inp in self.in_place}
        written = {name for kernel in program.kernels for name in kernel.outputs}
        self.written_inputs = [i for i, name in enumerate(program.inputs)
                               if name in written and i not in in_place_inputs]
        self.fresh, self.copies, seen = [], [], set()
        positions = {name: i for i, name in enumerate(program.inputs)}
        for position, name in enumerate(program.outputs):
            if position not in in_place_outputs:
                if buffers[name].kind == "output" and name not in seen and \
                        name not in positions:
                    self.fresh.append((position, name))
                else:
                    self.copies.append((position, name, positions.get(name)))
            seen.add(name)

    # ---- inputs ---------------------------------------------------------------------------
    def check_count(self, arrays):
        if len(arrays) != len(self.inputs):
            raise TypeError(f"compiled program {self.name} takes {len(self.inputs)} inputs, "
                            f"got {len(arrays)}")

    def check_input(self, position: int, a) -> np.ndarray:
        """Input ``position`` as a contiguous array of its buffer's dtype and size."""
        name, dtype, size = self.inputs[position]
        a = np.ascontiguousarray(a, dtype=dtype)
        if a.size != size:
            raise ValueError(f"compiled program {self.name}: input {name} needs {size} "
                             f"elements of {dtype}, got an array of shape {a.shape}")
        return a

    def check_inputs(self, arrays) -> list:
        self.check_count(arrays)
        return [self.check_input(i, a) for i, a in enumerate(arrays)]

    # ---- memory ---------------------------------------------------------------------------
    def constant(self, name: str) -> np.ndarray:
        """A constant's value as a flat array of its buffer's dtype."""
        info = self.program.buffers[name]
        array = np.array(self.program.constants[name], dtype=info.dtype.np).reshape(-1)
        if array.size != info.size:
            raise ValueError(f"constant {name} has {array.size} elements, its buffer "
                             f"{info.size}")
        return array

    def place(self, memory) -> dict:
        """Memory for every buffer that is not an input or a fresh output, made once:
        {buffer name: what ``memory`` gave it}.  ``memory`` has ``constant(array)``,
        ``block(size, dtype)`` (zero-filled, with an address even when empty) and
        ``part(block, offset, size, dtype)``."""
        program = self.program
        placed = {name: memory.constant(self.constant(name)) for name in program.constants}
        fresh = {name for _, name in self.fresh}
        arenas = {}
        for name, info in program.buffers.items():
            if info.kind == "input" or name in fresh or name in placed:
                continue
            if name in program.arena:
                if info.dtype not in arenas:
                    arenas[info.dtype] = memory.block(program.arena_sizes[info.dtype.name],
                                                      info.dtype)
                placed[name] = memory.part(arenas[info.dtype], program.arena[name],
                                           info.size, info.dtype)
            else:
                placed[name] = memory.block(info.size, info.dtype)
        return placed

    # ---- outputs --------------------------------------------------------------------------
    def shaped(self, outputs: list) -> list:
        return [a if a.shape == shape else a.reshape(shape)
                for a, shape in zip(outputs, self.shapes)]
