"""The dataflow graph of one program for the page, in two views: *kernels* (one node per
fusion group, edges where a value crosses kernels) and *ops* (every op, fusion groups
as clusters, inline index maps outside them).  Graph inputs are not drawn: a training
step has hundreds (parameters, optimizer state) and the IR text lists them.

Layout is never done here: with Graphviz ``dot`` on the path each view is rendered to
SVG now; without it the page lays the same nodes out with the bundled dagre.  Either
way every node, cluster and kernel node carries an ``id`` that ``index`` describes
(search text, tooltip, fusion group), which is what the page's search and clicks use.
"""
from __future__ import annotations

import shutil
import subprocess

DOT_TIMEOUT_S = 300


def draw(graph, fusion, prefix: str) -> dict:
    """The two views of ``graph`` fused as ``fusion``; ids start with ``prefix``."""
    views = {"kernels": kernel_view(fusion, prefix), "ops": op_view(graph, fusion, prefix)}
    index = {}
    for view in views.values():
        for node in view["nodes"] + view["clusters"]:
            index[node["id"]] = {"text": node["text"], "group": node["group"]}
    drawing = {"engine": "dagre", "views": views, "index": index}
    dot = shutil.which("dot")
    if dot is not None:
        svgs = {name: render_dot(dot, view) for name, view in views.items()}
        if all(svgs.values()):
            drawing.update(engine="dot", svg=svgs, views=None)
    return drawing


def op_view(graph, fusion, prefix: str) -> dict:
    ids = {op.out: f"{prefix}-n{i}" for i, op in enumerate(graph.ops)}
    crossing = {(v, op.out): reason for v, op, reason in fusion.boundaries}
    nodes, edges = [], []
    for op in graph.ops:
        group = fusion.group_of.get(op.out)
        where = op.source or "no source line"
        nodes.append({"id": ids[op.out], "label": op.name,
                      "tooltip": f"%{op.out.name} = {op.name} : {op.out.type}\n{where}",
                      "text": f"{op.name} %{op.out.name} {where}",
                      "parent": f"{prefix}-k{group.index}" if group is not None else None,
                      "group": group.index if group is not None else None})
        for v in op.inputs:
            if v in ids:
                reason = crossing.get((v, op.out))
                edges.append({"from": ids[v], "to": ids[op.out], "unfused": reason is not None,
                              "tooltip": f"%{v.name}: {v.type}" +
                                         (f"\nunfused: {reason}" if reason else "")})
    clusters = [{"id": f"{prefix}-k{g.index}", "label": f"kernel {g.index}: {g.describe()}",
                 "text": _group_text(g), "group": g.index} for g in fusion.groups]
    return {"nodes": nodes, "edges": edges, "clusters": clusters}


def kernel_view(fusion, prefix: str) -> dict:
    nodes = [{"id": f"{prefix}-K{g.index}", "label": f"kernel {g.index}: {_op_names(g)}",
              "tooltip": f"kernel {g.index}: {g.describe()}\n" +
                         "\n".join(f"{op.name}  {op.source or ''}" for op in g.ops[:12]) +
                         ("\n..." if len(g.ops) > 12 else ""),
              "text": _group_text(g), "parent": None, "group": g.index}
             for g in fusion.groups]
    reasons: dict = {}
    for v, op, reason in fusion.boundaries:
        consumer = fusion.group_of.get(op.out)
        if consumer is not None:
            reasons.setdefault((fusion.group_of[v].index, consumer.index), []).append(
                f"%{v.name} -> {op.name}: {reason}")
    for g in fusion.groups:
        for op in g.ops:
            for v in fusion.sources(op):
                source = fusion.group_of.get(v)
                if source is not None and source is not g:
                    reasons.setdefault((source.index, g.index), [])
    edges = [{"from": f"{prefix}-K{a}", "to": f"{prefix}-K{b}", "unfused": True,
              "tooltip": "\n".join(why) or "a value computed there is read here"}
             for (a, b), why in reasons.items()]
    return {"nodes": nodes, "edges": edges, "clusters": []}


def _op_names(group) -> str:
    names = list(dict.fromkeys(op.name for op in group.ops))
    return " ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def _group_text(group) -> str:
    return " ".join(f"{op.name} %{op.out.name} {op.source or ''}" for op in group.ops)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_source(view: dict) -> str:
    lines = ["digraph G {", 'graph [rankdir=TB, fontname="Helvetica", fontsize=10, '
             'nodesep=0.2, ranksep=0.3];',
             'node [shape=box, style="rounded,filled", fillcolor="#ffffff", '
             'fontname="Helvetica", fontsize=10, height=0.25];', 'edge [arrowsize=0.5];']
    children: dict = {}
    for node in view["nodes"]:
        children.setdefault(node["parent"], []).append(node)

    def node_line(node):
        return (f'{_quote(node["id"])} [id={_quote(node["id"])}, label={_quote(node["label"])}, '
                f'tooltip={_quote(node["tooltip"])}, class="op"];')
    for cluster in view["clusters"]:
        lines.append(f'subgraph {_quote("cluster_" + cluster["id"])} {{ id={_quote(cluster["id"])}; '
                     f'class="kernel"; label={_quote(cluster["label"])}; style="rounded,filled"; '
                     f'fillcolor="#eef3fb"; tooltip={_quote(cluster["label"])};')
        lines.extend(node_line(n) for n in children.pop(cluster["id"], []))
        lines.append("}")
    for group in children.values():
        lines.extend(node_line(n) for n in group)
    for edge in view["edges"]:
        style = ', color="#c0392b"' if edge["unfused"] else ""
        lines.append(f'{_quote(edge["from"])} -> {_quote(edge["to"])} '
                     f'[tooltip={_quote(edge["tooltip"])}{style}];')
    lines.append("}")
    return "\n".join(lines)


def render_dot(dot: str, view: dict) -> str | None:
    """The view as an inline ``<svg>`` element, or None when ``dot`` fails (the page
    then lays it out itself)."""
    try:
        result = subprocess.run([dot, "-Tsvg"], input=dot_source(view), capture_output=True,
                                text=True, timeout=DOT_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    start = result.stdout.find("<svg")
    return result.stdout[start:] if start >= 0 else None
