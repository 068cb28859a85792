"""The IR's text form: the printer and the parser, side by side, sharing one grammar.

    graph forward(%x: f32[64,1000], %fc1.weight: f32[100,1000]) {
      %0 = permute(%fc1.weight, perm=(1, 0)) : f32[1000,100]
      %1 = matmul(%x, %0) : f32[64,100]  # model.py:12
      return %1
    }

One op per line: ``%out = op(%inputs..., attr=literal...) : type``, with the user's source
line as an optional trailing comment.  Attribute values are Python literals, plus dtype
names (``f32``) and ``inf``/``nan``.  ``parse(str(g))`` gives a graph that prints the same.
"""
from __future__ import annotations

import ast
import math
import re

import numpy as np

from graphc import dtypes
from graphc.dtypes import DType, TensorType
from graphc.ir.graph import Constant, Graph, Op, Value

_NAME = r"%([A-Za-z0-9_.]+)"
_TYPE = r"([a-z0-9]+)\[([0-9,]*)\]"


class IRParseError(ValueError):
    """Malformed IR text; the message names the line."""


# ---- printer -----------------------------------------------------------------------------
def format_type(t: TensorType) -> str:
    return str(t)


def _format_attr(value) -> str:
    if isinstance(value, DType):
        return value.short
    if isinstance(value, Constant):
        return repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_format_attr(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def format_op(op: Op) -> str:
    args = [f"%{v.name}" for v in op.inputs] + [f"{k}={_format_attr(v)}" for k, v in op.attrs]
    line = f"%{op.out.name} = {op.name}({', '.join(args)}) : {op.out.type}"
    return line + (f"  # {op.source}" if op.source else "")


def print_graph(g: Graph) -> str:
    params = ", ".join(f"%{v.name}: {v.type}" for v in g.inputs)
    lines = [f"graph {g.name}({params}) {{"]
    lines += ["  " + format_op(op) for op in g.ops]
    lines.append("  return " + ", ".join(f"%{v.name}" for v in g.outputs))
    lines.append("}")
    return "\n".join(lines)


# ---- parser ------------------------------------------------------------------------------
def parse_type(text: str, where: str = "") -> TensorType:
    m = re.fullmatch(_TYPE, text.strip())
    if not m:
        raise IRParseError(f"{where}bad type {text.strip()!r} (expected e.g. f32[800,2])")
    try:
        dtype = dtypes.from_short(m.group(1))
    except KeyError:
        raise IRParseError(f"{where}unknown dtype {m.group(1)!r}") from None
    dims = tuple(int(d) for d in m.group(2).split(",") if d)
    return TensorType(dims, dtype)


def _literal(node, where):
    """A Python literal, a dtype name, or inf/nan."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e, where) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand, where)
    if isinstance(node, ast.Name):
        if node.id in ("inf", "nan"):
            return float(node.id)
        try:
            return dtypes.from_short(node.id)
        except KeyError:
            pass
    raise IRParseError(f"{where}bad attribute value {ast.unparse(node)!r}")


def _parse_op(line: str, env: dict, where: str) -> Op:
    body, _, source = line.partition("  # ")
    m = re.fullmatch(rf"\s*{_NAME}\s*=\s*([a-z_0-9]+)\((.*)\)\s*:\s*(\S+)\s*", body)
    if not m:
        raise IRParseError(f"{where}expected '%name = op(args) : type', got {line.strip()!r}")
    out_name, op_name, args, type_text = m.groups()
    out_type = parse_type(type_text, where)
    placeholders = {}

    def hold(match):
        key = f"__v{len(placeholders)}"
        placeholders[key] = match.group(1)
        return key

    try:
        call = ast.parse(f"f({re.sub(_NAME, hold, args)})", mode="eval").body
    except SyntaxError:
        raise IRParseError(f"{where}cannot parse the arguments {args!r}") from None
    inputs = []
    for a in call.args:
        if not (isinstance(a, ast.Name) and a.id in placeholders):
            raise IRParseError(f"{where}positional arguments must be values (%name)")
        name = placeholders[a.id]
        if name not in env:
            raise IRParseError(f"{where}use of undefined value %{name}")
        inputs.append(env[name])
    attrs = []
    for kw in call.keywords:
        value = _literal(kw.value, where)
        if op_name == "constant" and kw.arg == "value":
            array = np.array(value, dtype=out_type.dtype.np)
            array = np.full(out_type.shape, array) if array.ndim == 0 else \
                array.reshape(out_type.shape)
            value = Constant(array)
        attrs.append((kw.arg, value))
    return Op(op_name, tuple(inputs), tuple(attrs), Value(out_name, out_type),
              source or None)


def parse(text: str) -> Graph:
    """Parse the text form back into a Graph (and check SSA: each name defined once,
    each use after its definition).  Type checking is the verifier's job."""
    # (line number in the text, line) for the non-blank lines: errors name the real line.
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not lines:
        raise IRParseError("empty IR text")
    first = f"line {lines[0][0]}: "
    head = re.fullmatch(r"graph\s+([A-Za-z0-9_.]+)\((.*)\)\s*\{", lines[0][1].strip())
    if not head:
        raise IRParseError(f"{first}expected 'graph NAME(%in: type, ...) {{'")
    if lines[-1][1].strip() != "}":
        raise IRParseError(f"line {lines[-1][0]}: expected '}}' closing the graph")
    env: dict = {}
    inputs = []
    for part in filter(None, (p.strip() for p in _split_params(head.group(2)))):
        m = re.fullmatch(rf"{_NAME}\s*:\s*(\S+)", part)
        if not m:
            raise IRParseError(f"{first}bad graph input {part!r}")
        _define(env, Value(m.group(1), parse_type(m.group(2), first)), first)
        inputs.append(env[m.group(1)])
    ops, outputs = [], None
    for number, line in lines[1:-1]:
        where = f"line {number}: "
        stripped = line.strip()
        if stripped.startswith("return"):
            if outputs is not None:
                raise IRParseError(f"{where}second return")
            if not re.fullmatch(rf"return(\s+{_NAME}(\s*,\s*{_NAME})*)?", stripped):
                raise IRParseError(f"{where}expected 'return %a, %b, ...', got {stripped!r}")
            outputs = []
            for name in re.findall(_NAME, stripped):
                if name not in env:
                    raise IRParseError(f"{where}return of undefined value %{name}")
                outputs.append(env[name])
            continue
        if outputs is not None:
            raise IRParseError(f"{where}op after return")
        op = _parse_op(line, env, where)
        _define(env, op.out, where)
        ops.append(op)
    if outputs is None:
        raise IRParseError(f"line {lines[-1][0]}: missing return")
    return Graph(inputs, ops, outputs, head.group(1))


def _split_params(text: str) -> list:
    # Types contain commas inside brackets: split only at top level.
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def _define(env, value, where):
    if value.name in env:
        raise IRParseError(f"{where}%{value.name} is defined twice")
    env[value.name] = value
