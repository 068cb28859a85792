"""What both CUDA runtimes (the GPU's and the emulator's) need to know about a program's
buffers: which are inputs, constants, temporaries (in one arena per dtype) and fresh
outputs, how an input array is checked, and how outputs are returned.

The protocol is the interpreter's: ``program(arrays) -> list of arrays``, one per graph
output, shaped as the graph says.
"""
from __future__ import annotations

import numpy as np

from graphc import dtypes
from graphc.codegen import loops as L
from graphc.ir import Graph


def arena_dtype(key) -> dtypes.DType:
    return key if isinstance(key, dtypes.DType) else dtypes.from_name(key)


def error_message(program: L.Program, code: int) -> str:
    return f"index out of bounds in CUDA kernel {program.kernels[code - 1].name}"


class BufferPlan:
    """The fixed facts of a program's buffers, computed once.

    ``fresh``: (output position, buffer name) written by kernels into a new array each
    call; ``copies``: (output position, buffer name, input position or None) for outputs
    that are an input, a constant or a repeated output, copied after the call."""

    def __init__(self, graph: Graph, program: L.Program):
        self.program = program
        self.name = program.name
        self.shapes = [tuple(v.shape) for v in graph.outputs]
        self.inputs = [(name, program.buffers[name].dtype.np, program.buffers[name].size)
                       for name in program.inputs]
        self.fresh, self.copies, seen = [], [], set()
        positions = {name: i for i, name in enumerate(program.inputs)}
        for position, name in enumerate(program.outputs):
            if program.buffers[name].kind == "output" and name not in seen \
                    and name not in positions:
                self.fresh.append((position, name))
            else:
                self.copies.append((position, name, positions.get(name)))
            seen.add(name)

    def check_inputs(self, arrays) -> list:
        """The inputs as contiguous arrays of their buffers' dtypes and sizes."""
        if len(arrays) != len(self.inputs):
            raise TypeError(f"compiled program {self.name} takes {len(self.inputs)} inputs, "
                            f"got {len(arrays)}")
        return [self.check_input(i, a) for i, a in enumerate(arrays)]

    def check_input(self, position: int, a) -> np.ndarray:
        name, dtype, size = self.inputs[position]
        a = np.ascontiguousarray(a, dtype=dtype)
        if a.size != size:
            raise ValueError(f"compiled program {self.name}: input {name} needs {size} "
                             f"elements of {dtype}, got an array of shape {a.shape}")
        return a

    def temporaries(self) -> list:
        """Buffers that are neither inputs nor fresh outputs nor constants: (name,
        arena dtype or None, element offset).  Those outside the memory plan get their
        own allocation (arena None)."""
        fresh = {name for _, name in self.fresh}
        out = []
        for name, info in self.program.buffers.items():
            if info.kind == "input" or name in fresh or name in self.program.constants:
                continue
            if name in self.program.arena:
                out.append((name, info.dtype, self.program.arena[name]))
            else:
                out.append((name, None, 0))
        return out

    def shaped(self, outputs: list) -> list:
        return [a if a.shape == shape else a.reshape(shape)
                for a, shape in zip(outputs, self.shapes)]
