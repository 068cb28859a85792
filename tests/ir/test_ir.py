"""The IR: text round trip, parser and verifier errors, graph views (networkx, dot),
naming, and the DCE/CSE passes.

``check_graph`` (in graph_checks.py) is the helper every IR-producing test calls: it
verifies a graph and checks that its text form parses back to a graph that prints the
same and has the same structure.
"""
import re

import networkx as nx
import numpy as np
import pytest

import graphc
import graphc.nn.functional as F
from graphc import dtypes, ir, nn
from graphc.targets.interpreter import compile_graph
from graphc.dtypes import TensorType
from graphc.ir import Constant, Graph, IRParseError, IRVerifyError, Namer, Op, Value
from graphc.passes import PIPELINE, run_pipeline
from graphc.passes.dce import eliminate_dead_code
from graphc.passes.simplify import simplify

from graph_checks import check_graph


def _constant(name, array, dtype) -> Op:
    array = np.asarray(array, dtype.np)
    return Op("constant", (), (("value", Constant(array)),),
              Value(name, TensorType(array.shape, dtype)))


CONSTANTS = [
    ("splat", np.full((2, 3), 0.5), dtypes.float32, "value=0.5) : f32[2,3]"),
    ("list", [[1.5, -2.0], [3.0, 4.25]], dtypes.float32, "value=[1.5, -2.0, 3.0, 4.25])"),
    ("nonfinite", [np.inf, -np.inf, np.nan], dtypes.float32, "value=[inf, -inf, nan])"),
    ("nan_splat", np.full((2, 2), np.nan), dtypes.float64, "value=nan) : f64[2,2]"),
    ("neg_inf", -np.inf, dtypes.float32, "value=-inf) : f32[]"),
    ("signed_zeros", [0.0, -0.0], dtypes.float32, "value=[0.0, -0.0]) : f32[2]"),
    ("bools", [True, False, True], dtypes.bool_, "value=[True, False, True]) : b8[3]"),
    ("bool_splat", np.ones((2, 1), bool), dtypes.bool_, "value=True) : b8[2,1]"),
    ("ints", [[1, -2], [3, 2 ** 40]], dtypes.int64, "value=[1, -2, 3, 1099511627776])"),
    ("int32", 7, dtypes.int32, "value=7) : i32[]"),
    ("empty", np.zeros((0, 3)), dtypes.float32, "value=[]) : f32[0,3]"),
    ("tenth", 0.1, dtypes.float32, "value=0.10000000149011612) : f32[]"),
]


def test_constants_round_trip_bit_exactly():
    ops = [_constant(name, array, dtype) for name, array, dtype, _ in CONSTANTS]
    g = Graph([], ops, [op.out for op in ops], "consts")
    text = str(g)
    for (name, _, _, printed), line in zip(CONSTANTS, text.splitlines()[1:], strict=False):
        assert line.startswith(f"  %{name} = constant(") and printed in line, line
    parsed = check_graph(g)
    for a, b in zip(g.ops, parsed.ops):
        x, y = a.attr_dict["value"].array, b.attr_dict["value"].array
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), a.out.name


def test_constants_hash_by_content():
    a = Constant(np.array([1.0, 2.0], np.float32))
    assert a == Constant(np.array([1.0, 2.0], np.float32))
    assert hash(a) == hash(Constant(np.array([1.0, 2.0], np.float32)))
    assert a != Constant(np.array([1.0, 2.0], np.float64))
    assert a != Constant(np.array([[1.0, 2.0]], np.float32))
    assert not a.array.flags.writeable


def _many_ops(x, i):
    """Touches attributes of every printed form: dtypes, tuples, 1-tuples, nested tuples,
    negative ints, bools, inf/nan scalars, variadic concat."""
    a = x.double().permute(1, 0).sum(dim=0, keepdim=True)
    b = x[1:, ::2]
    c = F.pad(x, (1, 2), value=float("-inf")).amax(dim=-1)
    d = graphc.cat([x, x * 2, x], dim=0)
    e = x.gather(1, i)
    h = x.masked_fill(x < 0, float("nan")).clamp(max=float("inf"))
    k = x.argmax(dim=1)
    return a, b, c, d, e, h, k, x.reshape(-1), x == 1, x.to(graphc.int32)


def test_traced_attributes_round_trip():
    g = graphc.trace(_many_ops, graphc.randn(3, 4), graphc.tensor([[0], [1], [3]]))
    text = str(g)
    for piece in ["cast(%input0, dtype=f64) : f64[3,4]", "perm=(1, 0)", "axes=(0,)",
                  "keepdim=True", "steps=(1, 2)", "value=-inf", "value=nan",
                  "concat(%input0, %", "axis=1", "gather(%input0, %input1, axis=1)",
                  "dtype=i32) : i32[3,4]", "b8[3,4]", "i64[3]"]:
        assert piece in text, piece
    check_graph(g)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.blocks = nn.Sequential(nn.Linear(4, 4), nn.Tanh())

    def forward(self, x):
        return self.blocks(self.fc1(x))


def test_names_with_dots_round_trip():
    g = graphc.trace(_Net(), graphc.randn(2, 3))
    assert [v.name for v in g.inputs] == ["input0", "fc1.weight", "fc1.bias",
                                          "blocks.0.weight", "blocks.0.bias"]
    assert str(g).startswith("graph _Net(%input0: f32[2,3], %fc1.weight: f32[4,3], "
                             "%fc1.bias: f32[4], %blocks.0.weight: f32[4,4], ")
    assert "permute(%blocks.0.weight, perm=(1, 0))" in str(g)
    check_graph(g)


def test_parse_accepts_blank_lines_and_spacing():
    text = ("\n\ngraph g(%x: f32[2], %y.z: f32[]) {\n\n"
            "  %0 = mul( %x ,  %y.z )   : f32[2]\n"
            "  %1 = constant(value=[1.0, 2.0]) : f32[2]  # model.py:3\n"
            "  %2 = add(%0, %1) : f32[2]\n"
            "  return %2, %0\n}\n")
    g = ir.verify(ir.parse(text))
    assert [op.name for op in g.ops] == ["mul", "constant", "add"]
    assert g.ops[1].source == "model.py:3" and g.ops[0].source is None
    assert [v.name for v in g.outputs] == ["2", "0"]
    out = compile_graph(g)([np.array([1.0, 2.0], np.float32), np.array(3.0, np.float32)])
    np.testing.assert_array_equal(out[0], [4.0, 8.0])
    check_graph(g)


GOOD = """graph g(%x: f32[2,3]) {
  %0 = exp(%x) : f32[2,3]
  %1 = sum(%0, axes=(1,), keepdim=False) : f32[2]
  return %1
}"""

PARSE_ERRORS = [
    ("undefined value", GOOD.replace("exp(%x)", "exp(%w)"), "line 2: use of undefined value %w"),
    ("duplicate", GOOD.replace("%1 = sum", "%0 = sum").replace("return %1", "return %0"),
     "line 3: %0 is defined twice"),
    ("duplicate input", GOOD.replace("(%x: f32[2,3])", "(%x: f32[2,3], %x: f32[1])"),
     "line 1: %x is defined twice"),
    ("input redefined", GOOD.replace("%0 = exp", "%x = exp"), "line 2: %x is defined twice"),
    ("bad type", GOOD.replace(": f32[2]\n", ": f32(2)\n"), "line 3: bad type 'f32(2)'"),
    ("unknown dtype", GOOD.replace("%x: f32[2,3]", "%x: q8[2,3]"),
     "line 1: unknown dtype 'q8'"),
    ("bad input type", GOOD.replace("%x: f32[2,3]", "%x: f32"), "line 1: bad type 'f32'"),
    ("missing return", GOOD.replace("  return %1\n", ""), "line 4: missing return"),
    ("return undefined", GOOD.replace("return %1", "return %7"),
     "line 4: return of undefined value %7"),
    ("bad return", GOOD.replace("return %1", "return %1 junk"), "line 4: expected 'return"),
    ("second return", GOOD.replace("  return %1\n", "  return %1\n  return %0\n"),
     "line 5: second return"),
    ("op after return", GOOD.replace("  %1 = sum(%0, axes=(1,), keepdim=False) : f32[2]\n"
                                     "  return %1\n", "  return %0\n  %1 = exp(%0) : f32[2,3]\n"),
     "line 4: op after return"),
    ("no type", GOOD.replace("exp(%x) : f32[2,3]", "exp(%x)"), "line 2: expected '%name"),
    ("bad attribute", GOOD.replace("keepdim=False", "keepdim=foo"),
     "line 3: bad attribute value 'foo'"),
    ("value as attribute", GOOD.replace("keepdim=False", "keepdim=%x"),
     "line 3: bad attribute value"),
    ("literal operand", GOOD.replace("exp(%x)", "exp(3)"),
     "line 2: positional arguments must be values"),
    ("bad header", GOOD.replace("graph g(", "grph g("), "line 1: expected 'graph NAME"),
    ("no closing brace", GOOD[:-1], "line 4: expected '}'"),
]


@pytest.mark.parametrize("case, text, message", PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parser_rejects_malformed_text(case, text, message):
    with pytest.raises(IRParseError, match=re.escape(message)):
        ir.parse(text)


def test_parse_error_line_counts_blank_lines():
    with pytest.raises(IRParseError, match="line 5: use of undefined value %w"):
        ir.parse("\n" + GOOD.replace("sum(%0", "sum(%w").replace("%0 = exp", "\n%0 = exp"))


VERIFY_ERRORS = [
    ("type mismatch", GOOD.replace("keepdim=False) : f32[2]", "keepdim=False) : f32[3]"),
     "line 3 (%1 = sum(%0, axes=(1,), keepdim=False) : f32[3]): type mismatch: "
     "the op gives f32[2], the IR says f32[3]"),
    ("dtype mismatch", GOOD.replace("exp(%x) : f32[2,3]", "exp(%x) : f64[2,3]"),
     "line 2 (%0 = exp(%x) : f64[2,3]): type mismatch: the op gives f32[2,3], the IR says "
     "f64[2,3]"),
    ("unknown op", GOOD.replace("exp(%x)", "frobnicate(%x)"),
     "line 2 (%0 = frobnicate(%x) : f32[2,3]): unknown op 'frobnicate'"),
    ("bad attribute for the op", GOOD.replace("axes=(1,)", "axes=(5,)"), "line 3 (%1 = sum("),
    ("wrong arity", GOOD.replace("exp(%x)", "exp(%x, %x)"), "line 2 (%0 = exp(%x, %x)"),
    ("constant type", GOOD.replace("%0 = exp(%x) : f32[2,3]",
                                   "%0 = constant(value=[1, 2]) : i64[2]"),
     "line 3 (%1 = sum(%0, axes=(1,), keepdim=False)"),
]


@pytest.mark.parametrize("case, text, message", VERIFY_ERRORS,
                         ids=[c[0] for c in VERIFY_ERRORS])
def test_verifier_rejects_ill_typed_text(case, text, message):
    g = ir.parse(text)          # well-formed text; the types are the verifier's job
    with pytest.raises(IRVerifyError, match=re.escape(message)):
        ir.verify(g)


def test_verifier_rejects_broken_ssa_built_in_code():
    x = Value("x", TensorType((2,), dtypes.float32))
    y = Value("y", TensorType((2,), dtypes.float32))
    use_before_def = Graph([x], [Op("add", (x, y), (), Value("z", y.type)),
                                 Op("neg", (x,), (), y)], [y])
    with pytest.raises(IRVerifyError, match=r"line 2 \(%z = add\(%x, %y\) : f32\[2\]\): "
                                            r"use of undefined value %y"):
        ir.verify(use_before_def)
    twice = Graph([x], [Op("neg", (x,), (), y), Op("exp", (x,), (), Value("y", y.type))], [y])
    with pytest.raises(IRVerifyError, match=r"line 3 .*%y is defined twice"):
        ir.verify(twice)
    shadow = Graph([x], [Op("neg", (x,), (), Value("x", x.type))], [x])
    with pytest.raises(IRVerifyError, match=r"line 2 .*%x is defined twice"):
        ir.verify(shadow)
    with pytest.raises(IRVerifyError, match="line 1: graph input %x is defined twice"):
        ir.verify(Graph([x, Value("x", x.type)], [], [x]))
    with pytest.raises(IRVerifyError, match="line 3: graph output %y is not defined"):
        ir.verify(Graph([x], [Op("neg", (x,), (), Value("n", x.type))], [y]))


def test_parse_type():
    assert ir.parse_type("f32[800,2]") == TensorType((800, 2), dtypes.float32)
    assert ir.parse_type(" b8[] ") == TensorType((), dtypes.bool_)
    assert ir.parse_type("i64[0,1]") == TensorType((0, 1), dtypes.int64)
    with pytest.raises(IRParseError, match="bad type 'f32'"):
        ir.parse_type("f32")


def _mlp_graph():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    return graphc.trace(lambda x: F.log_softmax(model(x), dim=1) * 2 + model(x),
                        graphc.randn(4, 3))


def test_to_networkx_is_a_dag_in_definition_order():
    g = _mlp_graph()
    d = g.to_networkx()
    assert isinstance(d, nx.DiGraph) and nx.is_directed_acyclic_graph(d)
    names = [v.name for v in g.inputs] + [op.out.name for op in g.ops]
    assert sorted(d.nodes) == sorted(names)
    edges = {(v.name, op.out.name) for op in g.ops for v in op.inputs}
    assert set(d.edges) == edges
    for v in g.inputs:
        assert d.nodes[v.name]["op"] is None and d.nodes[v.name]["type"] == v.type
    for op in g.ops:
        assert d.nodes[op.out.name]["op"] is op and d.nodes[op.out.name]["type"] == op.out.type
    position = {n: i for i, n in enumerate(names)}       # the graph's own order is topological
    assert all(position[a] < position[b] for a, b in d.edges)
    order = list(nx.topological_sort(d))
    assert sorted(order) == sorted(names)
    rank = {n: i for i, n in enumerate(order)}
    assert all(rank[a] < rank[b] for a, b in d.edges)
    # every op reaches an output or is an output's ancestor: the traced graph has no dead ops
    live = set().union(*(nx.ancestors(d, v.name) | {v.name} for v in g.outputs))
    assert {op.out.name for op in g.ops} <= live


def test_to_dot_lists_every_value_op_and_edge():
    g = _mlp_graph()
    dot = g.to_dot()
    lines = dot.splitlines()
    assert lines[0] == f'digraph "{g.name}" {{' and lines[-1] == "}"
    node = re.compile(r'  "[^"]+" \[(shape=\w+, )?label="[^"]*"\];')
    edge = re.compile(r'  "[^"]+" -> "[^"]+";')
    for line in lines[2:-1]:
        assert node.fullmatch(line) or edge.fullmatch(line), line
    for op in g.ops:
        assert f'  "{op.out.name}" [label="{op.name}\\n%{op.out.name}: {op.out.type}"];' in lines
        for v in op.inputs:
            assert f'  "{v.name}" -> "{op.out.name}";' in lines
    for v in g.inputs:
        assert f'  "{v.name}" [shape=box, label="%{v.name}\\n{v.type}"];' in lines
    assert f'  "{g.outputs[0].name}" -> "out0";' in lines
    assert dot.count("{") == dot.count("}")


def test_namer_keeps_program_names_and_numbers_the_rest():
    namer = Namer()
    namer.taken.update({"0", "2"})
    assert [namer.fresh(), namer.fresh(), namer.fresh("fc1.weight"), namer.fresh("fc1.weight"),
            namer.fresh("fc1.weight"), namer.fresh()] == \
        ["1", "3", "fc1.weight", "fc1.weight_1", "fc1.weight_2", "4"]


def test_value_metadata():
    v = Value("a", TensorType((2, 0, 3), dtypes.int32))
    assert (v.shape, v.ndim, v.size, v.dtype) == ((2, 0, 3), 3, 0, np.int32)
    assert repr(v) == "%a: i32[2,0,3]"


SHARED = """graph g(%x: f32[3]) {
  %0 = constant(value=2.0) : f32[]
  %1 = mul(%x, %0) : f32[3]
  %2 = constant(value=2.0) : f32[]
  %3 = mul(%x, %2) : f32[3]
  %4 = exp(%x) : f32[3]
  %5 = add(%1, %3) : f32[3]
  %6 = mul(%x, %0) : f32[3]
  return %5, %6
}"""


def test_simplify_merges_equal_ops_and_constants():
    """simplify value-numbers as it rewrites: it is the pipeline's CSE."""
    g = ir.parse(SHARED)
    out = simplify(g)
    check_graph(out)
    assert [(op.name, [v.name for v in op.inputs]) for op in out.ops] == [
        ("constant", []), ("mul", ["x", "0"]), ("exp", ["x"]), ("add", ["1", "1"])]
    assert [v.name for v in out.outputs] == ["5", "1"]


def test_dce_drops_only_unused_ops():
    out = eliminate_dead_code(ir.parse(SHARED))
    check_graph(out)
    assert [op.out.name for op in out.ops] == ["0", "1", "2", "3", "5", "6"]
    assert [v.name for v in out.inputs] == ["x"]


def test_pipeline_verifies_and_dumps_after_every_pass():
    seen = []
    g = ir.parse(SHARED)
    out = run_pipeline(g, dump=lambda stage, graph: seen.append((stage, str(graph))), check=True)
    assert [s for s, _ in seen] == [f"pass{i + 1}.{p.__name__}" for i, p in enumerate(PIPELINE)]
    assert seen[-1][1] == str(out)
    assert len(out.ops) < len(g.ops) and "exp" not in str(out)
    x = np.array([1.0, -2.0, 0.5], np.float32)
    before, after = compile_graph(g)([x]), compile_graph(out)([x])
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(after[0], 4 * x)


def test_interpreter_errors_name_the_op_and_its_source_line():
    g = ir.parse("graph g(%i: i64[2], %x: f32[3]) {\n"
                 "  %0 = take(%x, %i, axis=0) : f32[2]  # user.py:12\n"
                 "  return %0\n}")
    run = compile_graph(g)
    np.testing.assert_array_equal(run([np.array([2, 0]), np.arange(3, dtype=np.float32)])[0],
                                  [2.0, 0.0])
    with pytest.raises(IndexError, match=re.escape("while running %0 = take(%x, %i, axis=0) "
                                                   ": f32[2]  # user.py:12")):
        run([np.array([5, 0]), np.arange(3, dtype=np.float32)])
    with pytest.raises(TypeError, match="graph g takes 2 inputs, got 1"):
        run([np.arange(3, dtype=np.float32)])


def test_graphs_compare_by_structure():
    x = Value("x", TensorType((2,), dtypes.float32))
    y = Value("y", TensorType((2,), dtypes.float32))
    g = Graph([x], [Op("exp", (x,), (), y)], [y], "g")
    same = ir.parse(str(g))
    assert same == g and same is not g
    renamed = Graph([x], [Op("exp", (x,), (), y)], [y], "h")
    z = Value("y", TensorType((3,), dtypes.float32))
    retyped = Graph([x], [Op("exp", (x,), (), z)], [z], "g")
    other_op = Graph([x], [Op("neg", (x,), (), y)], [y], "g")
    for different in (renamed, retyped, other_op):
        assert different != g
    nan_fill = ir.parse("graph f(%x: f32[2]) {\n  %0 = pad(%x, widths=((1, 0, 0),), "
                        "value=nan) : f32[3]\n  return %0\n}")
    assert ir.parse(str(nan_fill)) == nan_fill
    with pytest.raises(TypeError):
        hash(g)
