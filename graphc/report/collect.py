"""A recorded compile as plain data for the page: its guards, why it was compiled, the
IR after each stage with what each pass changed, and per program (forward, backward)
its kernels, the graph drawing and the memory plan."""
from __future__ import annotations

import difflib
import importlib
import importlib.util

from graphc.codegen import loops as L
from graphc.codegen.fusion import fuse
from graphc.codegen.loops import format_kernel
from graphc.ir import Graph
from graphc.report.drawing import draw
from graphc.report.memory import timeline


def collect(record, prefix: str, fuse_ops: bool = True) -> dict:
    """``record`` (a ``record.CompileRecord``) as JSON-able data; the ids of its drawings
    start with ``prefix``."""
    data = {"index": record.index, "reason": record.reason,
            "graph_break": record.graph_break, "guards": [], "stages": [],
            "programs": []}
    if record.graph_break is not None:
        return data
    program = record.entry.program
    data["guards"] = [str(g) for g in record.entry.guards]
    data["stages"] = ir_stages(record.stages)
    backward_graph = [g for name, g in record.stages.items()
                      if name.startswith("backward.pass") and isinstance(g, Graph)]
    parts = [("forward", program.graphs["forward"], program.forward)]
    if program.backward is not None and backward_graph:
        parts.append(("backward", backward_graph[-1], program.backward))
    for name, graph, native in parts:
        data["programs"].append(
            describe_program(name, graph, native, record.stages.get(f"{name}.fusion"),
                             fuse_ops, f"{prefix}{name[0]}"))
    return data


def ir_stages(stages: dict) -> list:
    """Every graph stage as text, each with the unified diff from the stage before it in
    its chain (traced -> forward passes; backward -> backward passes)."""
    out, previous = [], {}
    for name, graph in stages.items():
        if not isinstance(graph, Graph):
            continue
        chain = "backward" if name.startswith("backward") else "forward"
        text = str(graph)
        before = previous.get(chain)
        diff = summary = None
        if before is not None:
            diff = "\n".join(difflib.unified_diff(before[1].splitlines(), text.splitlines(),
                                                  before[0], name, lineterm="", n=1))
            summary = (f"{len(before[2].ops)} -> {len(graph.ops)} ops"
                       + ("" if diff else ", unchanged"))
        out.append({"name": name, "text": text, "diff": diff, "summary": summary,
                    "ops": len(graph.ops)})
        previous[chain] = (name, text, graph)
    return out


def describe_program(name: str, graph: Graph, native, fusion_report, fuse_ops,
                     prefix: str) -> dict:
    """One backend program: its fusion groups drawn over the graph, its kernels (loop
    IR, generated code, profile) and its memory plan."""
    loop_program = getattr(native, "program", None)
    # a backend without a loop program (the interpreter) runs op by op: no groups to draw
    fusion = fuse(graph, fuse_ops and isinstance(loop_program, L.Program))
    kernels = []
    if isinstance(loop_program, L.Program):
        profile = {row["name"]: row for row in profile_of(native)}
        codes = kernel_code(native, loop_program)
        for k, code in zip(loop_program.kernels, codes):
            kernels.append(describe_kernel(k, fusion, code, profile.get(k.name)))
    return {"name": name, "fusion_report": fusion_report, "kernels": kernels,
            "drawing": draw(graph, fusion, prefix),
            "memory": timeline(loop_program) if isinstance(loop_program, L.Program) else None,
            "profiled": any(k["profile"] for k in kernels)}


def group_index(kernel) -> int | None:
    """The fusion group a loop kernel computes, from its name (``k{group}_ops``)."""
    head = kernel.name.split("_", 1)[0]
    return int(head[1:]) if head[:1] == "k" and head[1:].isdigit() else None


def describe_kernel(kernel, fusion, code, profile) -> dict:
    index = group_index(kernel)
    group = fusion.groups[index] if index is not None and index < len(fusion.groups) else None
    into, out_of = [], []
    if group is not None:
        for v, op, reason in fusion.boundaries:
            edge = (f"%{v.name} (kernel {fusion.group_of[v].index}) -> "
                    f"%{op.out.name}={op.name}: {reason}")
            if fusion.group_of.get(op.out) is group:
                into.append(edge)
            elif fusion.group_of[v] is group:
                out_of.append(edge)
    return {"name": kernel.name, "kind": type(kernel).__name__, "group": index,
            "describe": group.describe() if group is not None else None,
            "ops": list(kernel.comment), "sources": sorted({op.source for op in group.ops
                                                            if op.source}) if group else [],
            "unfused_in": into, "unfused_out": out_of, "loops": format_kernel(kernel),
            "code": code[1] if code else None, "language": code[0] if code else None,
            "profile": profile}


def kernel_code(native, program) -> list:
    """(language, text) of each kernel's generated code, or None where it has none
    (a collective is a call in the entry): CUDA C from the rendered source, LLVM IR by
    rendering the kernel's own module as the cpu backend does."""
    source = getattr(native, "source", None)
    if source is not None and len(source.kernels) == len(program.kernels):
        return [("CUDA C", text) for text in source.kernels]
    if not hasattr(native, "llvm_ir"):
        return [None] * len(program.kernels)
    from graphc.targets.cpu import render
    scopes = render.alias_scopes(program)
    return [None if isinstance(k, (L.Collective, L.Wait)) else
            ("LLVM IR", render.kernel_module(k, scopes).text) for k in program.kernels]


def profile_of(native) -> list:
    """The per-kernel profile of a backend program (``graphc.profiling``), [] when not
    profiled or when this graphc has no profiler."""
    if importlib.util.find_spec("graphc.profiling") is None:
        return []
    return importlib.import_module("graphc.profiling").stats_of(native)
