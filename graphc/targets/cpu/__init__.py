"""The ``cpu`` backend: loop IR -> LLVM IR (llvmlite's IR builder) -> O3 for the host CPU
-> JIT, with the whole program behind one native entry point.

``compile_program(program)`` returns a callable from input arrays to output arrays;
its ``llvm_ir(optimized=False)`` gives the module's text for dumps (``.ll``).
"""
from graphc.targets.cpu.runtime import CompiledProgram, compile_program

__all__ = ["CompiledProgram", "compile_program"]
