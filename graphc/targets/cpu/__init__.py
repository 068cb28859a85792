"""The ``cpu`` backend: loop IR -> LLVM IR (llvmlite's IR builder; a module per distinct
kernel) -> each module optimised for the host CPU at the level that fits it -> object
code (cached per module) linked in one JIT engine, the whole program behind one native
entry point.

``compile_program(program)`` returns a callable from input arrays to output arrays;
its ``llvm_ir(optimized=False)`` gives the modules' text for dumps (``.ll``).
"""
from graphc.targets.cpu.runtime import CompiledProgram, compile_program

__all__ = ["CompiledProgram", "compile_program"]
