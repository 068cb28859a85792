"""Constant folding and algebraic simplification.

Each rule has a before/after test on IR text: parse, run the pass, verify, compare the
printed text, and run both graphs in the interpreter on inputs full of NaN, inf and
signed zeros, which must agree bit for bit, NaN signs aside (the one documented
exception, ``x + 0.0``, is tested to differ exactly as documented).  Differential tests
trace random small programs and check that the pipeline changes no result, and that it
is a fixed point.
"""
import textwrap

import numpy as np
import pytest
from graph_checks import check_graph

import graphc
from graphc import ir
from graphc.targets.interpreter import compile_graph
from graphc.dtypes import TensorType
from graphc.ir import Constant, Graph, Op
from graphc.passes import run_pipeline
from graphc.tracing.autodiff import autodiff
from graphc.passes.dce import eliminate_dead_code
from graphc.passes.fold import SMALL_CONSTANT, fold_constants
from graphc.passes.simplify import RULES, simplify

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5, -3.0, 1e-30])


def sample(t: TensorType, rng) -> np.ndarray:
    """An array of type ``t``: floats drawn from SPECIAL, small ints, random bools."""
    if t.dtype.is_floating_point:
        return rng.choice(SPECIAL, size=t.shape).astype(t.dtype.np)
    if t.dtype.category == 1:
        return rng.integers(-3, 4, size=t.shape).astype(t.dtype.np)
    return rng.random(t.shape) < 0.5


def run(g: Graph, arrays) -> list:
    return compile_graph(g)([a.copy() for a in arrays])


def assert_bitwise_equal(a, b):
    """Same dtype, shape and values, with NaN equal to any NaN and -0.0 distinct from 0.0
    (NaN signs carry no meaning: the text form writes every NaN as ``nan``)."""
    assert (a.dtype, a.shape) == (b.dtype, b.shape)
    np.testing.assert_array_equal(a, b)
    if a.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(a) & ~np.isnan(a),
                                      np.signbit(b) & ~np.isnan(b))


def assert_same_results(before: Graph, after: Graph, seed=0, trials=3):
    """The interpreter gives bitwise equal results for ``before`` and ``after``."""
    rng = np.random.default_rng(seed)
    assert [v.type for v in after.outputs] == [v.type for v in before.outputs]
    for _ in range(trials):
        arrays = [sample(v.type, rng) for v in before.inputs]
        for a, b in zip(run(before, arrays), run(after, arrays), strict=True):
            assert_bitwise_equal(a, b)


def ir_text(text: str) -> str:
    return textwrap.dedent(text).strip()


def check_rewrite(before: str, after: str, passes=(simplify, eliminate_dead_code)):
    """Run ``passes`` on the parsed ``before`` (verifying after each), compare the printed
    result with ``after``, and compare both graphs' results in the interpreter."""
    g = ir.parse(ir_text(before))
    out = run_pipeline(g, passes=passes, check=True)
    assert str(out) == ir_text(after)
    check_graph(out)
    assert_same_results(g, out)
    return out


# ---- constant folding --------------------------------------------------------------------
def test_fold_computes_chains_of_constant_ops_and_keeps_names():
    check_rewrite("""
        graph g(%x: f32[2]) {
          %0 = constant(value=[1.5, -2.0]) : f32[2]
          %1 = constant(value=2.0) : f32[]
          %2 = mul(%0, %1) : f32[2]  # model.py:3
          %3 = exp(%2) : f32[2]
          %4 = add(%x, %3) : f32[2]
          return %4, %2
        }""", """
        graph g(%x: f32[2]) {
          %2 = constant(value=[3.0, -4.0]) : f32[2]  # model.py:3
          %3 = constant(value=[20.08553695678711, 0.018315639346837997]) : f32[2]
          %4 = add(%x, %3) : f32[2]
          return %4, %2
        }""", passes=(fold_constants, eliminate_dead_code))


def test_fold_gives_the_interpreters_dtypes_and_special_values():
    g = ir.parse(ir_text("""
        graph g() {
          %0 = constant(value=[0.0, -1.0, 4.0]) : f32[3]
          %1 = log(%0) : f32[3]
          %2 = constant(value=[3, 5]) : i32[2]
          %3 = sum(%2, axes=(0,), keepdim=False) : i64[]
          %4 = cast(%1, dtype=i64) : i64[3]
          return %1, %3
        }"""))
    out = eliminate_dead_code(fold_constants(g))
    assert [op.name for op in out.ops] == ["constant", "constant"]
    check_graph(out)
    assert_same_results(g, out)
    assert out.ops[0].attr_dict["value"].array.dtype == np.float32
    assert out.ops[1].attr_dict["value"].array.dtype == np.int64


def test_fold_keeps_broadcasts_that_would_make_big_constants():
    big = SMALL_CONSTANT + 1
    text = ir_text(f"""
        graph g() {{
          %0 = constant(value=1.0) : f32[]
          %1 = expand(%0, shape=(2, {big})) : f32[2,{big}]
          %2 = expand(%0, shape=({SMALL_CONSTANT},)) : f32[{SMALL_CONSTANT}]
          return %1, %2
        }}""")
    out = fold_constants(ir.parse(text))
    assert [op.name for op in out.ops] == ["constant", "expand", "constant"]
    assert_same_results(ir.parse(text), out)


def test_fold_leaves_random_ops_and_ops_that_fail_to_run_time():
    text = ir_text("""
        graph g() {
          %0 = constant(value=7) : i64[]
          %1 = uniform(%0, shape=(2,), dtype=f32) : f32[2]
          %2 = constant(value=[0.5, 1.5]) : f32[2]
          %3 = constant(value=5) : i64[1]
          %4 = take(%2, %3, axis=0) : f32[1]  # user.py:9
          return %1, %4
        }""")
    out = fold_constants(ir.parse(text))
    assert str(out) == text
    with pytest.raises(IndexError, match=r"take\(%2, %3.*user\.py:9.*index 5 is out of bounds"):
        compile_graph(out)([])


# ---- the rules, one before/after each ----------------------------------------------------
# (rule, before, after): the graph is written so that the simplified value feeds another
# op (``neg``), because a graph output is never replaced by a graph input (see below).
CASES = [
    ("mul_by_one", """
        graph g(%x: f32[2,3]) {
          %0 = constant(value=1.0) : f32[]
          %1 = mul(%x, %0) : f32[2,3]
          %2 = mul(%0, %1) : f32[2,3]
          %3 = neg(%2) : f32[2,3]
          return %3
        }""", """
        graph g(%x: f32[2,3]) {
          %3 = neg(%x) : f32[2,3]
          return %3
        }"""),
    ("mul_by_one broadcast: expand", """
        graph g(%x: f32[3]) {
          %0 = constant(value=1.0) : f32[2,3]
          %1 = mul(%x, %0) : f32[2,3]
          %2 = neg(%1) : f32[2,3]
          return %2
        }""", """
        graph g(%x: f32[3]) {
          %1 = expand(%x, shape=(2, 3)) : f32[2,3]
          %2 = neg(%1) : f32[2,3]
          return %2
        }"""),
    ("mul_by_one: not a splat", """
        graph g(%x: f32[2]) {
          %0 = constant(value=[1.0, 2.0]) : f32[2]
          %1 = mul(%x, %0) : f32[2]
          %2 = neg(%1) : f32[2]
          return %2
        }""", None),
    ("add_zero", """
        graph g(%x: i64[2]) {
          %0 = constant(value=0) : i64[]
          %1 = add(%0, %x) : i64[2]
          %2 = add(%1, %0) : i64[2]
          %3 = neg(%2) : i64[2]
          return %3
        }""", """
        graph g(%x: i64[2]) {
          %3 = neg(%x) : i64[2]
          return %3
        }"""),
    ("add_zero: -0.0 is exact", """
        graph g(%x: f32[2]) {
          %0 = constant(value=-0.0) : f32[]
          %1 = add(%x, %0) : f32[2]
          %2 = neg(%1) : f32[2]
          return %2
        }""", """
        graph g(%x: f32[2]) {
          %2 = neg(%x) : f32[2]
          return %2
        }"""),
    ("sub_zero", """
        graph g(%x: f32[2]) {
          %0 = constant(value=0.0) : f32[]
          %1 = sub(%x, %0) : f32[2]
          %2 = neg(%1) : f32[2]
          return %2
        }""", """
        graph g(%x: f32[2]) {
          %2 = neg(%x) : f32[2]
          return %2
        }"""),
    ("sub_zero: not x - (-0.0), not 0 - x", """
        graph g(%x: f32[2]) {
          %0 = constant(value=-0.0) : f32[]
          %1 = sub(%x, %0) : f32[2]
          %2 = constant(value=0.0) : f32[]
          %3 = sub(%2, %x) : f32[2]
          %4 = neg(%1) : f32[2]
          %5 = neg(%3) : f32[2]
          return %4, %5
        }""", None),
    ("div_by_one", """
        graph g(%x: f64[2]) {
          %0 = constant(value=1.0) : f64[]
          %1 = div(%x, %0) : f64[2]
          %2 = div(%0, %x) : f64[2]
          %3 = neg(%1) : f64[2]
          %4 = neg(%2) : f64[2]
          return %3, %4
        }""", """
        graph g(%x: f64[2]) {
          %0 = constant(value=1.0) : f64[]
          %2 = div(%0, %x) : f64[2]
          %3 = neg(%x) : f64[2]
          %4 = neg(%2) : f64[2]
          return %3, %4
        }"""),
    ("integer_mul_by_zero", """
        graph g(%x: i32[2,3]) {
          %0 = constant(value=0) : i32[]
          %1 = mul(%x, %0) : i32[2,3]
          return %1
        }""", """
        graph g(%x: i32[2,3]) {
          %1 = constant(value=0) : i32[2,3]
          return %1
        }"""),
    ("integer_mul_by_zero: big result stays a broadcast", """
        graph g(%x: i64[4,8]) {
          %0 = constant(value=0) : i64[]
          %1 = mul(%0, %x) : i64[4,8]
          return %1
        }""", """
        graph g(%x: i64[4,8]) {
          %0 = constant(value=0) : i64[]
          %1 = expand(%0, shape=(4, 8)) : i64[4,8]
          return %1
        }"""),
    ("integer_mul_by_zero: not for floats", """
        graph g(%x: f32[2]) {
          %0 = constant(value=0.0) : f32[]
          %1 = mul(%x, %0) : f32[2]
          return %1
        }""", None),
    ("integer_sub_self", """
        graph g(%x: i32[3]) {
          %0 = sub(%x, %x) : i32[3]
          return %0
        }""", """
        graph g(%x: i32[3]) {
          %0 = constant(value=0) : i32[3]
          return %0
        }"""),
    ("integer_sub_self: not for floats", """
        graph g(%x: f32[3]) {
          %0 = sub(%x, %x) : f32[3]
          return %0
        }""", None),
    ("neg_neg", """
        graph g(%x: i64[2]) {
          %0 = neg(%x) : i64[2]
          %1 = neg(%0) : i64[2]
          %2 = abs(%1) : i64[2]
          return %2
        }""", """
        graph g(%x: i64[2]) {
          %2 = abs(%x) : i64[2]
          return %2
        }"""),
    ("permute_permute: composed", """
        graph g(%x: f32[2,3,4]) {
          %0 = permute(%x, perm=(1, 2, 0)) : f32[3,4,2]
          %1 = permute(%0, perm=(0, 2, 1)) : f32[3,2,4]
          %2 = neg(%1) : f32[3,2,4]
          return %2
        }""", """
        graph g(%x: f32[2,3,4]) {
          %1 = permute(%x, perm=(1, 0, 2)) : f32[3,2,4]
          %2 = neg(%1) : f32[3,2,4]
          return %2
        }"""),
    ("permute_permute: identity", """
        graph g(%x: f32[2,3,4]) {
          %0 = permute(%x, perm=(1, 2, 0)) : f32[3,4,2]
          %1 = permute(%0, perm=(2, 0, 1)) : f32[2,3,4]
          %2 = permute(%1, perm=(0, 1, 2)) : f32[2,3,4]
          %3 = neg(%2) : f32[2,3,4]
          return %3
        }""", """
        graph g(%x: f32[2,3,4]) {
          %3 = neg(%x) : f32[2,3,4]
          return %3
        }"""),
    ("permute_permute: a square transpose is not the identity", """
        graph g(%x: f32[2,2]) {
          %0 = permute(%x, perm=(1, 0)) : f32[2,2]
          %1 = neg(%0) : f32[2,2]
          return %1
        }""", None),
    ("collapse_repeat+same_type_is_identity: reshape", """
        graph g(%x: f32[2,3]) {
          %0 = reshape(%x, shape=(6,)) : f32[6]
          %1 = reshape(%0, shape=(3, 2)) : f32[3,2]
          %2 = reshape(%1, shape=(1, 6)) : f32[1,6]
          %3 = reshape(%2, shape=(2, 3)) : f32[2,3]
          %4 = reshape(%3, shape=(2, 3)) : f32[2,3]
          %5 = neg(%4) : f32[2,3]
          %6 = neg(%2) : f32[1,6]
          return %5, %6
        }""", """
        graph g(%x: f32[2,3]) {
          %2 = reshape(%x, shape=(1, 6)) : f32[1,6]
          %5 = neg(%x) : f32[2,3]
          %6 = neg(%2) : f32[1,6]
          return %5, %6
        }"""),
    ("collapse_repeat+same_type_is_identity: expand", """
        graph g(%x: f32[3,1]) {
          %0 = expand(%x, shape=(3, 4)) : f32[3,4]
          %1 = expand(%0, shape=(2, 3, 4)) : f32[2,3,4]
          %2 = expand(%x, shape=(3, 1)) : f32[3,1]
          %3 = neg(%1) : f32[2,3,4]
          %4 = neg(%2) : f32[3,1]
          return %3, %4
        }""", """
        graph g(%x: f32[3,1]) {
          %1 = expand(%x, shape=(2, 3, 4)) : f32[2,3,4]
          %3 = neg(%1) : f32[2,3,4]
          %4 = neg(%x) : f32[3,1]
          return %3, %4
        }"""),
    ("cast_round_trip+same_type_is_identity: cast", """
        graph g(%x: f32[2], %b: b8[2]) {
          %0 = cast(%x, dtype=f32) : f32[2]
          %1 = cast(%0, dtype=f64) : f64[2]
          %2 = cast(%1, dtype=f32) : f32[2]
          %3 = neg(%2) : f32[2]
          %4 = cast(%b, dtype=i32) : i32[2]
          %5 = cast(%4, dtype=b8) : b8[2]
          %6 = logical_not(%5) : b8[2]
          return %3, %6
        }""", """
        graph g(%x: f32[2], %b: b8[2]) {
          %3 = neg(%x) : f32[2]
          %6 = logical_not(%b) : b8[2]
          return %3, %6
        }"""),
    ("cast_round_trip: rounding round trips stay", """
        graph g(%x: f64[2], %i: i64[2], %j: i32[2]) {
          %0 = cast(%x, dtype=f32) : f32[2]
          %1 = cast(%0, dtype=f64) : f64[2]
          %2 = cast(%i, dtype=f64) : f64[2]
          %3 = cast(%2, dtype=i64) : i64[2]
          %4 = cast(%j, dtype=f32) : f32[2]
          %5 = cast(%4, dtype=i32) : i32[2]
          %6 = neg(%1) : f64[2]
          %7 = neg(%3) : i64[2]
          %8 = neg(%5) : i32[2]
          return %6, %7, %8
        }""", None),
    ("slice_everything", """
        graph g(%x: f32[1,3]) {
          %0 = slice(%x, starts=(0, 0), stops=(1, 3), steps=(1, 1)) : f32[1,3]
          %1 = slice(%0, starts=(0, 0), stops=(-1, 3), steps=(-1, 1)) : f32[1,3]
          %2 = neg(%1) : f32[1,3]
          return %2
        }""", """
        graph g(%x: f32[1,3]) {
          %2 = neg(%x) : f32[1,3]
          return %2
        }"""),
    ("slice_everything: a reversal keeps its shape but is no identity", """
        graph g(%x: f32[3]) {
          %0 = slice(%x, starts=(2,), stops=(-1,), steps=(-1,)) : f32[3]
          %1 = neg(%0) : f32[3]
          return %1
        }""", None),
    ("sum_over_no_axes", """
        graph g(%x: f32[2], %i: i32[2]) {
          %0 = sum(%x, axes=(), keepdim=False) : f32[2]
          %1 = neg(%0) : f32[2]
          %2 = sum(%i, axes=(), keepdim=True) : i64[2]
          %3 = neg(%2) : i64[2]
          return %1, %3
        }""", """
        graph g(%x: f32[2], %i: i32[2]) {
          %1 = neg(%x) : f32[2]
          %2 = cast(%i, dtype=i64) : i64[2]
          %3 = neg(%2) : i64[2]
          return %1, %3
        }"""),
    ("where_same_branches", """
        graph g(%c: b8[2,3], %x: f32[3]) {
          %0 = where(%c, %x, %x) : f32[2,3]
          %1 = neg(%0) : f32[2,3]
          return %1
        }""", """
        graph g(%c: b8[2,3], %x: f32[3]) {
          %0 = expand(%x, shape=(2, 3)) : f32[2,3]
          %1 = neg(%0) : f32[2,3]
          return %1
        }"""),
    ("where_constant_condition", """
        graph g(%x: f32[3], %y: f32[2,3]) {
          %0 = constant(value=True) : b8[]
          %1 = where(%0, %x, %y) : f32[2,3]
          %2 = constant(value=False) : b8[]
          %3 = where(%2, %x, %y) : f32[2,3]
          %4 = add(%1, %3) : f32[2,3]
          return %4
        }""", """
        graph g(%x: f32[3], %y: f32[2,3]) {
          %1 = expand(%x, shape=(2, 3)) : f32[2,3]
          %4 = add(%1, %y) : f32[2,3]
          return %4
        }"""),
]


@pytest.mark.parametrize("name, before, after", CASES, ids=[c[0] for c in CASES])
def test_rule(name, before, after):
    """``after`` None: the rule must not fire."""
    check_rewrite(before, before if after is None else after)


def test_every_rule_has_a_case_that_fires():
    """A case's name starts with the rules it exercises: ``rule_a+rule_b: note``."""
    fired = {rule for name, _, after in CASES if after is not None
             for rule in name.split(":")[0].split(" ")[0].split("+")}
    assert fired == {r.__name__ for rules in RULES.values() for r in rules}


def test_add_zero_keeps_minus_zero_as_documented():
    """x + 0.0 -> x: the one rule that is not bitwise exact (IEEE: -0.0 + 0.0 = +0.0)."""
    g = ir.parse(ir_text("""
        graph g(%x: f32[2]) {
          %0 = constant(value=0.0) : f32[]
          %1 = add(%x, %0) : f32[2]
          %2 = neg(%1) : f32[2]
          return %2
        }"""))
    out = simplify(g)
    assert [op.name for op in eliminate_dead_code(out).ops] == ["neg"]
    x = np.array([-0.0, 1.0], np.float32)
    np.testing.assert_array_equal(np.signbit(run(g, [x])[0]), [True, True])
    np.testing.assert_array_equal(np.signbit(run(out, [x])[0]), [False, True])


def test_value_numbering_exposes_integer_x_minus_x():
    check_rewrite("""
        graph g(%x: i64[2]) {
          %0 = constant(value=1) : i64[]
          %1 = mul(%x, %0) : i64[2]
          %2 = abs(%x) : i64[2]
          %3 = abs(%1) : i64[2]
          %4 = sub(%2, %3) : i64[2]
          return %4
        }""", """
        graph g(%x: i64[2]) {
          %4 = constant(value=0) : i64[2]
          return %4
        }""")


def test_replaced_outputs_are_renamed():
    check_rewrite("""
        graph g(%x: f32[2]) {
          %0 = exp(%x) : f32[2]
          %1 = constant(value=1.0) : f32[]
          %2 = mul(%0, %1) : f32[2]
          %3 = neg(%2) : f32[2]
          return %2, %3
        }""", """
        graph g(%x: f32[2]) {
          %0 = exp(%x) : f32[2]
          %3 = neg(%0) : f32[2]
          return %0, %3
        }""")


def test_fresh_outputs_never_become_views_of_inputs():
    """``return x * 1`` stays a new array: replacing it by ``%x`` (or by a view of it)
    would hand the caller its own argument back.  A view stays a view."""
    check_rewrite("""
        graph g(%x: f32[3], %y: f32[3]) {
          %0 = constant(value=1.0) : f32[]
          %1 = mul(%x, %0) : f32[3]
          %2 = reshape(%y, shape=(3, 1)) : f32[3,1]
          %3 = constant(value=1.0) : f32[2,3,1]
          %4 = mul(%2, %3) : f32[2,3,1]
          %5 = reshape(%2, shape=(3,)) : f32[3]
          return %1, %4, %5
        }""", """
        graph g(%x: f32[3], %y: f32[3]) {
          %0 = constant(value=1.0) : f32[]
          %1 = mul(%x, %0) : f32[3]
          %2 = reshape(%y, shape=(3, 1)) : f32[3,1]
          %3 = constant(value=1.0) : f32[2,3,1]
          %4 = mul(%2, %3) : f32[2,3,1]
          return %1, %4, %y
        }""")


def test_compiled_function_returns_a_new_tensor_and_matches_eager():
    def f(x):
        return (x * 1 + 0) / 1, x.reshape(6).reshape(2, 3) - 0

    compiled = graphc.compile(f)
    x = graphc.randn(2, 3)
    got, want = compiled(x), f(x)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    got[0].add_(1)
    got[1].add_(1)
    np.testing.assert_array_equal(x.numpy(), want[0].numpy())
    forward = compiled.graphs()[0]["forward"]
    assert [op.name for op in forward.ops] == ["constant", "constant", "div", "sub"]


# ---- random programs ---------------------------------------------------------------------
def _broadcastable(a, b) -> bool:
    try:
        np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        return False
    return True


def _step(rng, pool):
    """One random statement of a program: an identity-heavy op on values of ``pool``."""
    a = pool[rng.integers(len(pool))]
    b = pool[rng.integers(len(pool))]
    floating = a.is_floating_point()
    perm = [int(p) for p in rng.permutation(a.dim())]
    choices = [
        lambda: a * 1, lambda: 1 * a, lambda: a + 0, lambda: 0 - -a, lambda: a - 0,
        lambda: a / 1, lambda: -(-a), lambda: a - a, lambda: a * 0,
        lambda: a.reshape(-1).reshape(tuple(a.shape)),
        lambda: a.reshape(tuple(reversed(a.shape))),
        lambda: a.permute(*perm).permute(*perm),
        lambda: a.expand(2, *a.shape).sum(0),
        lambda: a.expand(*a.shape) * graphc.ones(tuple(a.shape)),
        lambda: a.to(graphc.float64).to(a.dtype),
        lambda: graphc.where(a > 0, a, a),
        lambda: a.sum(dim=int(rng.integers(a.dim()))) if a.dim() else a.sum(),
        lambda: a[:] * 2,
    ]
    if floating:
        choices += [lambda: a.exp(), lambda: a * 0.5 + 1, lambda: a.int()]
    else:
        choices += [lambda: a.float(), lambda: a + 1]
    if _broadcastable(a, b):
        choices += [lambda: a + b, lambda: a * b, lambda: a - b, lambda: a / (b * b + 1)]
    return choices[rng.integers(len(choices))]()


def random_program(seed, steps=10):
    """A program over (f32[2,3], f32[3], i64[2,3]) making the same choices every run, so
    tracing and eager execution follow the same path."""
    def program(x, y, n):
        rng = np.random.default_rng(seed)
        pool = [x, y, n]
        for _ in range(steps):
            pool.append(_step(rng, pool))
        return pool[3:]
    return program


INPUTS = (TensorType((2, 3), graphc.float32), TensorType((3,), graphc.float32),
          TensorType((2, 3), graphc.int64))


@pytest.mark.parametrize("seed", range(40))
def test_pipeline_keeps_results_of_random_programs(seed):
    rng = np.random.default_rng(1000 + seed)
    arrays = [sample(t, rng) for t in INPUTS]
    program = random_program(seed)
    g = graphc.trace(program, *[graphc.tensor(a) for a in arrays])
    out = run_pipeline(g, check=True)
    check_graph(out)
    assert len(out.ops) <= len(g.ops)
    eager = [t.numpy() for t in program(*[graphc.tensor(a) for a in arrays])]
    for e, a, b in zip(eager, run(g, arrays), run(out, arrays), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(e, b)
        assert a.dtype == b.dtype == e.dtype
    assert str(run_pipeline(out)) == str(out), "the pipeline is not at a fixed point"


@pytest.mark.parametrize("seed", range(10))
def test_pipeline_keeps_results_of_backward_graphs(seed):
    """Backward graphs are rich in ``g * 1``-like ops and constants."""
    arrays = [sample(t, np.random.default_rng(seed)) for t in INPUTS]
    g = graphc.trace(random_program(seed), *[graphc.tensor(a) for a in arrays])
    floats = [v for v in g.outputs if v.type.dtype.is_floating_point]
    g = Graph(g.inputs, g.ops, floats or g.outputs[:1], g.name)
    bwd = autodiff(g, [0, 1]).graph
    out = run_pipeline(bwd, check=True)
    assert_same_results(bwd, out, seed)


@pytest.mark.parametrize("seed", range(10))
def test_a_graph_of_constants_folds_to_constants(seed):
    """Bind a random program's inputs to constants: every op folds (no broadcast here is
    large), and the constants are the interpreter's results."""
    rng = np.random.default_rng(seed)
    arrays = [sample(t, rng) for t in INPUTS]
    g = graphc.trace(random_program(seed), *[graphc.tensor(a) for a in arrays])
    bound = [Op("constant", (), (("value", Constant(a)),), v) for a, v in zip(arrays, g.inputs)]
    closed = Graph([], bound + g.ops, g.outputs, g.name)
    out = run_pipeline(closed, check=True)
    assert {op.name for op in out.ops} == {"constant"}
    for a, b in zip(run(g, arrays), run(out, []), strict=True):
        assert_bitwise_equal(a, b)


def test_transposed_matmul_results_are_computed_in_the_reader_layout():
    from graphc.passes.layout import matmul_in_reader_layout
    before = ir.parse("""graph g(%x: f32[5,4], %gr: f32[5,3]) {
  %0 = permute(%x, perm=(1, 0)) : f32[4,5]
  %1 = matmul(%0, %gr) : f32[4,3]
  %2 = permute(%1, perm=(1, 0)) : f32[3,4]
  return %2
}""")
    after = run_pipeline(matmul_in_reader_layout(before), check=True)
    assert [op.name for op in after.ops] == ["permute", "matmul"]
    mm = after.ops[-1]
    assert mm.out.name == "2" and mm.inputs[1].name == "x"     # (x^T g)^T = g^T x
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((5, 4)).astype(np.float32),
              rng.standard_normal((5, 3)).astype(np.float32)]
    np.testing.assert_allclose(compile_graph(after)(arrays)[0],
                               compile_graph(before)(arrays)[0], rtol=1e-6)


def test_a_matmul_with_another_use_is_not_computed_twice():
    from graphc.passes.layout import matmul_in_reader_layout
    g = ir.parse("""graph g(%a: f32[2,3], %b: f32[3,4]) {
  %0 = matmul(%a, %b) : f32[2,4]
  %1 = permute(%0, perm=(1, 0)) : f32[4,2]
  return %0, %1
}""")
    assert str(matmul_in_reader_layout(g)) == str(g)


def test_where_with_a_constant_condition_is_the_branch_it_picks():
    def f(x, y):
        return graphc.where(graphc.tensor(True), x, y) * 2 + graphc.where(
            graphc.zeros(3, dtype=graphc.bool), x, y)

    x, y = graphc.randn(3), graphc.randn(3)
    g = simplify(graphc.trace(f, x, y))
    assert "where" not in [op.name for op in g.ops]
    np.testing.assert_allclose(compile_graph(g)([x.numpy(), y.numpy()])[0],
                               f(x, y).numpy())


def test_a_rounding_division_leaves_no_where_after_the_passes():
    x = graphc.randn(4, requires_grad=True)
    compiled = graphc.compile(lambda x: graphc.div(x, 3, rounding_mode="floor") + x)
    compiled(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(4))
    (stages,) = compiled.graphs()
    for stage in ("forward",):
        assert "where" not in [op.name for op in stages[stage].ops]
