"""``graphc.explain``: what ``graphc.compile`` would make of a call, without running it.

The function is captured exactly as a compile would capture it (so nothing it touches
changes: parameters, ``.grad``, optimizer state are all restored), differentiated and
optimised; the report lists each program's kernels (a whole training step's forward,
backward and optimizer kernels are one program), why each unfused edge is a kernel
boundary, the peak bytes of intermediate buffers, how the cpu backend runs each matmul
(graphc's kernel with its tuned blocking, or numpy's BLAS, and the measurement that
chose it), a graph break with its source line, and the guards that would decide when
to recompile.
"""
from __future__ import annotations

from graphc import context
from graphc.codegen.lower import lower
from graphc.codegen.memory import peak_bytes
from graphc.compiler.build import differentiate, optimise
from graphc.compiler.capture import RetraceLater, capture, flatten_args
from graphc.context import GraphBreak
from graphc.codegen.loops import MatmulKernel
from graphc.targets.cpu.tuning import describe as describe_matmul


def explain(fn, *args, fuse=True, **kwargs) -> str:
    """A report of how ``fn(*args, **kwargs)`` compiles.  Example::

        print(graphc.explain(lambda x: x.softmax(1), graphc.randn(8, 16)))
    """
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", type(fn).__name__))
    leaves: list = []
    spec = flatten_args((args, kwargs), leaves)
    try:
        cap = capture(fn, args, kwargs, leaves, spec, set(), name)
    except RetraceLater as e:
        return (f"graphc.explain({name}): the first call runs eagerly ({e}); "
                f"explain it again after one step to see its kernels")
    except GraphBreak as e:
        return f"graphc.explain({name}): graph break: {e}\nthe call runs eagerly"
    diff = differentiate(cap, context.grad_enabled)
    sections = [f"graphc.explain({name}): no graph breaks"]
    programs = [("forward", diff.forward)]
    if diff.backward is not None:
        programs.append(("backward", diff.backward))
    for stage, graph in programs:
        program, fusion = lower(optimise(graph, lambda *_: None), fuse)
        matmuls = [describe_matmul(k) for k in program.kernels if isinstance(k, MatmulKernel)]
        sections.append(f"== {stage} ==\n{fusion.report()}\n"
                        f"peak intermediate bytes: {peak_bytes(program)}" +
                        "".join(f"\nmatmul on cpu: {line}" for line in matmuls))
    sections.append(f"== guards ({len(cap.guards)}) ==\n" +
                    "\n".join(f"  {g}" for g in cap.guards))
    return "\n".join(sections)
