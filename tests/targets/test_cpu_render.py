"""The cpu backend's renderer and runtime on hand-built loop IR programs, against numpy
and graphc's numpy reference implementations."""
import os

import numpy as np
import pytest
from matmul_kernels import product_kernel

from graphc import dtypes
from graphc.targets.cpu import compile_program, render, runtime, threads
from graphc.targets.cpu import matmul as matmul_renderer
from graphc.codegen import loops as L
from graphc.ops import REGISTRY
from graphc.ops.random import _uniform_impl

f32, f64, i32, i64, b8 = dtypes.float32, dtypes.float64, dtypes.int32, dtypes.int64, dtypes.bool_
P, Q = L.Var("p"), L.Var("q")


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))


# The error sites of the CheckedIndex expressions below (numbered from 1).
SITES = [L.Site("index_add", "model.py:7", 0, 5), L.Site("gather", "model.py:8", 0, 10),
         L.Site("take", "model.py:9", 0, 4)]


def program(kernels, inputs, outputs, temps=None, constants=None, arena=None):
    """``inputs``/``outputs``/``temps``: {name: (dtype, size)}; constants: {name: array}."""
    buffers = {}
    for kind, group in (("input", inputs), ("output", outputs), ("temp", temps or {})):
        for name, (dtype, size) in group.items():
            buffers[name] = L.BufferInfo(name, dtype, size, kind)
    for name, array in (constants or {}).items():
        buffers[name] = L.BufferInfo(name, dtypes.from_numpy(array.dtype), array.size,
                                     "constant")
    p = L.Program("test", buffers, kernels, list(inputs), list(outputs), constants or {},
                  sites=SITES)
    if arena:
        p.arena, p.arena_sizes = arena
    return p


def run(kernels, inputs: dict, outputs: dict, **kw):
    """Compile and run; ``inputs`` maps names to arrays."""
    spec = {name: (dtypes.from_numpy(a.dtype), a.size) for name, a in inputs.items()}
    compiled = compile_program(program(kernels, spec, outputs, **kw))
    return compiled(list(inputs.values()))


def elementwise(exprs: dict, n: int, inputs: dict):
    """out_name[p] = expr for p < n, one kernel; returns {name: output}."""
    body = [L.Store((), name, P, e) for name, e in exprs.items()]
    kernel = L.LoopKernel("ew", (("p", n),), body, list(inputs), list(exprs))
    outs = run([kernel], inputs, {name: (e.dtype, n) for name, e in exprs.items()})
    return dict(zip(exprs, outs))


def load(name, dtype, offset=P):
    return L.Load(name, offset, dtype)


SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -3.75, 10.0, -20.0, 88.0, -88.0, 1e-30,
           100.0, np.nan, np.inf, -np.inf]


def float_values(dtype):
    rng = np.random.default_rng(0)
    return np.concatenate([SPECIAL, rng.normal(0, 4, 200)]).astype(dtype.np)


# ---- elementwise -------------------------------------------------------------------------------
def test_broadcast_and_transposed_loads():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)       # read transposed: x[q, p]
    y = np.array([10, 20, 30], np.float32)                  # broadcast along p
    value = L.Op("add", (load("x", f32, L.IOp("add", L.IOp("mul", Q, L.IConst(4)), P)),
                         load("y", f32, Q)), f32)
    kernel = L.LoopKernel("t", (("p", 4), ("q", 3)),
                          [L.Store((), "out", L.IOp("add", L.IOp("mul", P, L.IConst(3)), Q),
                                   value)], ["x", "y"], ["out"])
    out, = run([kernel], {"x": x, "y": y}, {"out": (f32, 12)})
    np.testing.assert_array_equal(out.reshape(4, 3), x.T + y)


def test_elementwise_kernel_is_vectorized():
    value = L.Op("mul", (load("x", f32), L.Op("exp", (load("x", f32),), f32)), f32)
    kernel = L.LoopKernel("ew", (("p", 4096),), [L.Store((), "out", P, value)], ["x"], ["out"])
    rendered = render.render_program(program([kernel], {"x": (f32, 4096)},
                                             {"out": (f32, 4096)}))
    module, = rendered.kernels
    assert module.level == 3
    asm = runtime.assembly(module.text, module.level)
    assert "ymm" in asm or "zmm" in asm


UNARY_FLOAT = ["neg", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "erf",
               "floor", "abs", "sign", "log1p", "expm1"]
EXACT = {"neg", "sqrt", "rsqrt", "floor", "abs", "sign"}


@pytest.mark.parametrize("dtype", [f32, f64])
def test_unary_float_ops_match_numpy(dtype):
    x = float_values(dtype)
    if dtype is f32:      # mathlib's sin/cos accuracy holds for |x| <= 1e4
        x = x[np.isfinite(x) | np.isnan(x)]
    got = elementwise({op: L.Op(op, (load("x", dtype),), dtype) for op in UNARY_FLOAT},
                      x.size, {"x": x})
    tol = dict(rtol=2e-6, atol=1e-6) if dtype is f32 else dict(rtol=1e-13, atol=1e-14)
    for op in UNARY_FLOAT:
        want = np.asarray(REGISTRY[op].impl(x), dtype.np)
        if op in EXACT:
            np.testing.assert_array_equal(got[op], want, err_msg=op)
        else:
            np.testing.assert_allclose(got[op], want, err_msg=op, **tol)


BINARY_FLOAT = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2"]
COMPARE = ["eq", "ne", "lt", "le", "gt", "ge"]


@pytest.mark.parametrize("dtype", [f32, f64])
def test_binary_float_ops_match_numpy(dtype):
    base = float_values(dtype)[:60]
    x, y = np.repeat(base, base.size), np.tile(base, base.size)      # all pairs
    exprs = {op: L.Op(op, (load("x", dtype), load("y", dtype)), dtype) for op in BINARY_FLOAT}
    exprs.update({op: L.Op(op, (load("x", dtype), load("y", dtype)), b8) for op in COMPARE})
    got = elementwise(exprs, x.size, {"x": x, "y": y})
    for op in BINARY_FLOAT + COMPARE:
        want = np.asarray(REGISTRY[op].impl(x, y))
        if op in ("pow", "atan2"):      # libm's pow; mathlib's atan2 is within 3 ulp
            np.testing.assert_allclose(got[op], want, rtol=1e-6, err_msg=op)
        else:
            np.testing.assert_array_equal(got[op], want, err_msg=op)
        assert got[op].dtype == want.dtype, op


@pytest.mark.parametrize("dtype", [i32, i64])
def test_integer_ops_wrap_like_numpy(dtype):
    info = np.iinfo(dtype.np)
    base = np.array([0, 1, -1, 2, -3, 7, 100, -1000, 3 ** 15, info.max, info.min], dtype.np)
    x, y = np.repeat(base, base.size), np.tile(base, base.size)
    exprs = {op: L.Op(op, (load("x", dtype), load("y", dtype)), dtype)
             for op in ("add", "sub", "mul", "maximum", "minimum")}
    exprs.update({op: L.Op(op, (load("x", dtype), load("y", dtype)), b8) for op in COMPARE})
    exprs.update({op: L.Op(op, (load("x", dtype),), dtype) for op in ("neg", "abs", "sign")})
    exponent = np.abs(y) % 50
    exprs["pow"] = L.Op("pow", (load("x", dtype), load("e", dtype)), dtype)
    got = elementwise(exprs, x.size, {"x": x, "y": y, "e": exponent})
    with np.errstate(over="ignore"):
        for op, e in exprs.items():
            args = (x,) if len(e.args) == 1 else (x, exponent) if op == "pow" else (x, y)
            np.testing.assert_array_equal(got[op], REGISTRY[op].impl(*args), err_msg=op)


def test_integer_pow_with_negative_exponent_truncates():
    x = np.array([1, -1, -1, 2, 0, -5], np.int64)
    e = np.array([-3, -3, -2, -1, -2, -4], np.int64)
    got = elementwise({"out": L.Op("pow", (load("x", i64), load("e", i64)), i64)}, 6,
                      {"x": x, "e": e})
    np.testing.assert_array_equal(got["out"], [1, -1, 1, 0, 0, 0])


def test_bool_ops_and_where():
    base = np.array([False, True])
    x, y = np.repeat(base, 2), np.tile(base, 2)
    exprs = {op: L.Op(op, (load("x", b8), load("y", b8)), b8)
             for op in ("logical_and", "logical_or", *COMPARE)}
    exprs["logical_not"] = L.Op("logical_not", (load("x", b8),), b8)
    exprs["where"] = L.Op("where", (load("x", b8), L.Const(1.5, f32), L.Const(-2.0, f32)), f32)
    got = elementwise(exprs, 4, {"x": x, "y": y})
    for op, e in exprs.items():
        args = (x, np.float32(1.5), np.float32(-2.0)) if op == "where" else \
            (x,) if len(e.args) == 1 else (x, y)
        np.testing.assert_array_equal(got[op], REGISTRY[op].impl(*args), err_msg=op)
        assert got[op].dtype == np.asarray(REGISTRY[op].impl(*args)).dtype


def test_bool_loads_read_any_nonzero_byte_as_true():
    x = np.array([0, 1, 2, 255], np.uint8).view(np.bool_)
    got = elementwise({"out": L.Op("cast", (load("x", b8),), i32)}, 4, {"x": x})
    np.testing.assert_array_equal(got["out"], [0, 1, 1, 1])


@pytest.mark.parametrize("src", dtypes.ALL, ids=lambda d: d.name)
def test_casts_match_astype(src):
    values = np.array([0, 1, -1, 2.75, -2.75, 7.5, -0.0, 100.9, -128.5, 1e9], np.float64)
    if src.is_floating_point:
        values = np.concatenate([values, [np.nan, np.inf, -np.inf]])
    x = values.astype(src.np)
    exprs = {}
    for dst in dtypes.ALL:
        if not (src.is_floating_point and dst.category == 1):
            exprs[dst.name] = L.Op("cast", (load("x", src),), dst)
    got = elementwise(exprs, x.size, {"x": x})
    for name, e in exprs.items():
        np.testing.assert_array_equal(got[name], x.astype(e.dtype.np), err_msg=name)


@pytest.mark.parametrize("src", [f32, f64])
@pytest.mark.parametrize("dst", [i32, i64])
def test_float_to_int_cast_truncates_and_gives_min_when_out_of_range(src, dst):
    x = np.array([2.9, -2.9, 0.5, -0.5, 1e6 + 0.75, -7.0, 3e9, -3e9, 1e19, -1e19, 2.0 ** 63,
                  -2.0 ** 63, np.nan, np.inf, -np.inf], src.np)
    got = elementwise({"out": L.Op("cast", (load("x", src),), dst)}, x.size, {"x": x})
    with np.errstate(invalid="ignore"):
        want = x.astype(dst.np)              # numpy on x86: the minimum integer
    np.testing.assert_array_equal(got["out"], want)


def test_index_arithmetic_and_index_values():
    ops = ["add", "sub", "mul", "floordiv", "mod", "min", "max", "lt", "le", "eq", "and"]
    exprs = {op: L.IndexValue(L.IOp(op, P, L.IConst(3)), i64) for op in ops}
    exprs["as_float"] = L.IndexValue(P, f32)
    exprs["as_bool"] = L.IndexValue(L.IOp("mod", P, L.IConst(2)), b8)
    got = elementwise(exprs, 10, {})
    p = np.arange(10)
    want = {"add": p + 3, "sub": p - 3, "mul": p * 3, "floordiv": p // 3, "mod": p % 3,
            "min": np.minimum(p, 3), "max": np.maximum(p, 3), "lt": p < 3, "le": p <= 3,
            "eq": p == 3, "and": (p != 0) & True, "as_float": p, "as_bool": p % 2 == 1}
    for name, w in want.items():
        np.testing.assert_array_equal(got[name], np.asarray(w).astype(got[name].dtype),
                                      err_msg=name)


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("seed", [0, 1, 12345, -7, 2 ** 40 + 3, -(2 ** 63)])
def test_uniform_is_bit_exact(dtype, seed):
    shape = (3, 37)
    counter = L.IOp("add", L.IOp("mul", P, L.IConst(37)), Q)
    kernel = L.LoopKernel("rng", (("p", 3), ("q", 37)),
                          [L.Store((), "out", counter,
                                   L.Uniform(load("seed", i64, L.IConst(0)), counter, dtype))],
                          ["seed"], ["out"])
    out, = run([kernel], {"seed": np.array([seed], np.int64)}, {"out": (dtype, 111)})
    want = _uniform_impl(np.int64(seed), shape, dtype)
    assert out.tobytes() == want.reshape(-1).tobytes()


# ---- reductions --------------------------------------------------------------------------------
def reduce_rows(kind, x, acc_dtype, value=None):
    """One accumulator over the rows of a 2-d array x; returns the per-row result."""
    rows, cols = x.shape
    dtype = dtypes.from_numpy(x.dtype)
    value = value or load("x", dtype, L.IOp("add", L.IOp("mul", P, L.IConst(cols)), Q))
    index = Q if kind.startswith("arg") else None
    body = [L.Reduce((("q", cols),), (L.Accumulator("a", kind, value, acc_dtype, index),)),
            L.Store((), "out", P, L.Acc("a", acc_dtype))]
    kernel = L.LoopKernel("red", (("p", rows),), body, ["x"], ["out"])
    out, = run([kernel], {"x": x}, {"out": (acc_dtype, rows)})
    return out


@pytest.mark.parametrize("dtype", [f32, f64, i32, i64])
@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min"])
def test_reductions_match_numpy(kind, dtype):
    rng = np.random.default_rng(1)
    x = (rng.normal(0, 1, (5, 301)) if dtype.is_floating_point
         else rng.integers(-3, 4, (5, 301))).astype(dtype.np)
    if kind == "prod":
        x = (x[:, :40] * 0.5 + 1).astype(dtype.np) if dtype.is_floating_point else x[:, :40]
    impl = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}[kind]
    got = reduce_rows(kind, x, dtype)
    np.testing.assert_allclose(got, impl(x, axis=1), rtol=1e-5 if dtype is f32 else 1e-12)


def test_int32_sum_accumulates_in_int64():
    x = np.full((2, 3), 2 ** 30, np.int32)
    value = L.Op("cast", (load("x", i32, L.IOp("add", L.IOp("mul", P, L.IConst(3)), Q)),), i64)
    np.testing.assert_array_equal(reduce_rows("sum", x, i64, value), [3 * 2 ** 30] * 2)


def test_bool_max_and_min_are_any_and_all():
    x = np.array([[False, False], [False, True], [True, True]])
    np.testing.assert_array_equal(reduce_rows("max", x, b8), [False, True, True])
    np.testing.assert_array_equal(reduce_rows("min", x, b8), [False, False, True])


def test_max_and_min_propagate_nan():
    x = np.array([[1, np.nan, 3], [-np.inf, -np.inf, -np.inf], [2, 5, 1]], np.float32)
    np.testing.assert_array_equal(reduce_rows("max", x, f32), [np.nan, -np.inf, 5])
    np.testing.assert_array_equal(reduce_rows("min", x, f32), [np.nan, -np.inf, 1])


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
def test_arg_reductions_first_occurrence_and_nan(kind):
    x = np.array([[1, 3, 3, 2], [1, np.nan, 3, np.nan], [-np.inf] * 4, [np.inf] * 4,
                  [4, 0, 0, 4], [2, 2, 2, np.nan]], np.float64)
    impl = np.argmax if kind == "argmax" else np.argmin
    np.testing.assert_array_equal(reduce_rows(kind, x, i64), impl(x, axis=1))
    ints = np.array([[np.iinfo(np.int32).min] * 3, [np.iinfo(np.int32).max] * 3, [5, 9, 9]],
                    np.int32)
    np.testing.assert_array_equal(reduce_rows(kind, ints, i64), impl(ints, axis=1))


def test_empty_reductions_give_the_identity():
    x = np.zeros((3, 0), np.float32)
    np.testing.assert_array_equal(reduce_rows("sum", x, f32), [0, 0, 0])
    np.testing.assert_array_equal(reduce_rows("prod", x, f32), [1, 1, 1])


def test_softmax_like_kernel_with_three_phases():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3, (7, 129)).astype(np.float32)
    at = L.IOp("add", L.IOp("mul", P, L.IConst(129)), Q)
    shifted = L.Op("exp", (L.Op("sub", (load("x", f32, at), L.Acc("m", f32)), f32),), f32)
    body = [L.Reduce((("q", 129),), (L.Accumulator("m", "max", load("x", f32, at), f32),)),
            L.Reduce((("q", 129),), (L.Accumulator("s", "sum", shifted, f32),)),
            L.Store((("q", 129),), "out", at, L.Op("div", (shifted, L.Acc("s", f32)), f32))]
    kernel = L.LoopKernel("softmax", (("p", 7),), body, ["x"], ["out"])
    out, = run([kernel], {"x": x}, {"out": (f32, x.size)})
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out.reshape(x.shape), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-5)


def test_kernel_without_parallel_loops_reduces_everything():
    x = np.arange(1, 11, dtype=np.float64)
    body = [L.Reduce((("q", 10),), (L.Accumulator("s", "sum", load("x", f64, Q), f64),
                                    L.Accumulator("m", "argmax", load("x", f64, Q), i64, Q))),
            L.Store((), "total", L.IConst(0), L.Acc("s", f64)),
            L.Store((), "where", L.IConst(0), L.Acc("m", i64))]
    kernel = L.LoopKernel("all", (), body, ["x"], ["total", "where"])
    total, where = run([kernel], {"x": x}, {"total": (f64, 1), "where": (i64, 1)})
    assert total[0] == 55.0 and where[0] == 9


# ---- scatter, checked indices ------------------------------------------------------------------
def scatter_kernel(n, m):
    """out = x; out[idx[s]] += src[s] (a serial kernel, as the lowering makes it)."""
    copy = L.Store((("q", n),), "out", Q, load("x", f32, Q))
    add = L.Store((("s", m),), "out", L.CheckedIndex(load("idx", i64, L.Var("s")), n, 1),
                  load("src", f32, L.Var("s")), accumulate=True)
    return L.LoopKernel("scatter", (), [copy, add], ["x", "idx", "src"], ["out"], serial=True)


def test_accumulating_store_matches_add_at():
    x = np.arange(5, dtype=np.float32)
    idx = np.array([0, 4, 4, 1, 0, 4], np.int64)
    src = np.arange(1, 7, dtype=np.float32)
    out, = run([scatter_kernel(5, 6)], {"x": x, "idx": idx, "src": src}, {"out": (f32, 5)})
    want = x.copy()
    np.add.at(want, idx, src)
    np.testing.assert_array_equal(out, want)


def test_checked_index_raises_and_clamps():
    inputs = {"x": np.zeros(5, np.float32), "idx": np.array([1, 5], np.int64),
              "src": np.ones(2, np.float32)}
    spec = {name: (dtypes.from_numpy(a.dtype), a.size) for name, a in inputs.items()}
    compiled = compile_program(program([scatter_kernel(5, 2)], spec, {"out": (f32, 5)}))
    with pytest.raises(IndexError, match=r"^index_add: index 5 is out of bounds for dimension "
                                         r"0 with size 5 \(model.py:7\)$"):
        compiled(list(inputs.values()))
    inputs["idx"] = np.array([-1, 2], np.int64)
    with pytest.raises(IndexError, match="index -1 is out"):
        compiled(list(inputs.values()))
    inputs["idx"] = np.array([4, 2], np.int64)          # the flag is reset between calls
    np.testing.assert_array_equal(compiled(list(inputs.values()))[0], [0, 0, 1, 0, 1])


def test_checked_gather_in_a_vectorizable_loop():
    table = np.arange(10, dtype=np.float32) * 2
    idx = np.array([3, 9, 0, 12, 1] * 40, np.int32)
    value = load("t", f32, L.CheckedIndex(load("idx", i32), 10, 2))
    kernel = L.LoopKernel("gather", (("p", 200),), [L.Store((), "out", P, value)],
                          ["t", "idx"], ["out"])
    spec = {"t": (f32, 10), "idx": (i32, 200)}
    compiled = compile_program(program([kernel], spec, {"out": (f32, 200)}))
    with pytest.raises(RuntimeError, match=r"gather: index 12 .* size 10 \(model.py:8\)"):
        compiled([table, idx])
    idx[3::5] = 2
    np.testing.assert_array_equal(compiled([table, idx])[0], table[idx])


# ---- matmul ------------------------------------------------------------------------------------
def matmul(a, b, *, trans_a=False, trans_b=False, stores=None, extra=None, name="mm"):
    """a @ b for (batch..., m, k) @ (batch..., k, n) arrays (broadcasting batch dims),
    passing transposed operands as their transposes' contiguous buffers."""
    kernel, inputs, outputs = product_kernel(a, b, trans_a=trans_a, trans_b=trans_b,
                                             stores=stores, extra=extra, name=name)
    return run([kernel], inputs, outputs)


SIZES = [(1, 1, 1), (0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 7, 1), (5, 1, 9), (13, 33, 17),
         (25, 40, 300), (31, 67, 513)]


@pytest.mark.parametrize("m,n,k", SIZES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_matmul_sizes_and_transposes(m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(m * 100 + n + k)
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    c, = matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_allclose(c.reshape(m, n), a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("m,n,k", [(7, 5, 3), (13, 30, 40), (20, 70, 300)])
def test_matmul_with_avx2_tiles(monkeypatch, m, n, k):
    monkeypatch.setattr(matmul_renderer, "vector_bytes", lambda: 32)     # 6 x 16 tiles, ymm
    rng = np.random.default_rng(8)
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    c, = matmul(a, b, trans_b=True)
    np.testing.assert_allclose(c.reshape(m, n), a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64])
def test_matmul_dtypes(dtype):
    rng = np.random.default_rng(3)
    a = rng.integers(-5, 6, (19, 300)).astype(dtype)
    b = rng.integers(-5, 6, (300, 37)).astype(dtype)
    c, = matmul(a, b, trans_b=True)
    np.testing.assert_array_equal(c.reshape(19, 37), a @ b)


def test_batched_matmul_with_broadcast_operands():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(2, 3, 5, 20)).astype(np.float32)
    w = rng.normal(size=(20, 9)).astype(np.float32)          # shared by every batch
    c, = matmul(a, w)
    np.testing.assert_allclose(c.reshape(2, 3, 5, 9), a @ w, rtol=1e-5, atol=1e-5)
    a1 = rng.normal(size=(5, 20)).astype(np.float32)         # A broadcast, B batched
    bb = rng.normal(size=(4, 3, 20, 9)).astype(np.float32)
    c, = matmul(a1, bb, trans_a=True)
    np.testing.assert_allclose(c.reshape(4, 3, 5, 9), a1 @ bb, rtol=1e-5, atol=1e-5)
    a2 = rng.normal(size=(4, 1, 5, 20)).astype(np.float32)   # size-1 batch dims broadcast
    b2 = rng.normal(size=(1, 3, 20, 9)).astype(np.float32)
    c, = matmul(a2, b2, trans_b=True)
    np.testing.assert_allclose(c.reshape(4, 3, 5, 9), a2 @ b2, rtol=1e-5, atol=1e-5)


def test_matmul_epilogue_with_bias_relu_and_a_bool_output():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(2, 37, 300)).astype(np.float32)
    b = rng.normal(size=(2, 300, 45)).astype(np.float32)
    bias = rng.normal(size=45).astype(np.float32)
    acc = L.Acc("acc", f32)
    biased = L.Op("add", (acc, load("bias", f32, L.Var("j"))), f32)
    relu = L.Op("maximum", (biased, L.Const(0.0, f32)), f32)
    row = L.IndexValue(L.IOp("add", L.IOp("mul", L.Var("b0"), L.IConst(1000)), L.Var("i")), f32)
    stores = [("relu", relu), ("positive", L.Op("gt", (acc, L.Const(0.0, f32)), b8)),
              ("rows", L.Op("add", (row, L.Op("mul", (acc, L.Const(0.0, f32)), f32)), f32))]
    relu_out, positive, rows = matmul(a, b, stores=stores, extra={"bias": bias})
    product = a @ b
    np.testing.assert_allclose(relu_out.reshape(product.shape),
                               np.maximum(product + bias, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(positive.reshape(product.shape)[np.abs(product) > 1e-3],
                                  (product > 0)[np.abs(product) > 1e-3])
    want_rows = (np.arange(2)[:, None, None] * 1000 + np.arange(37)[None, :, None]
                 + np.zeros((1, 1, 45)))
    np.testing.assert_array_equal(rows.reshape(product.shape), want_rows)


def test_matmul_with_only_a_bool_output_keeps_the_whole_depth():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(9, 600)).astype(np.float32)
    b = rng.normal(size=(600, 20)).astype(np.float32)
    positive, = matmul(a, b, stores=[("p", L.Op("gt", (L.Acc("acc", f32),
                                                         L.Const(0.0, f32)), b8))])
    product = a @ b
    sure = np.abs(product) > 1e-3
    np.testing.assert_array_equal(positive.reshape(9, 20)[sure], (product > 0)[sure])


def test_matmul_with_zero_depth_runs_the_epilogue_on_zero():
    a, b = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    out, = matmul(a, b, stores=[("c", L.Op("add", (L.Acc("acc", f32), L.Const(2.0, f32)),
                                           f32))])
    np.testing.assert_array_equal(out, np.full(12, 2.0, np.float32))


# ---- threads -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_threaded_kernels_match_single_threaded(monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 513)).astype(np.float32)
    w = rng.normal(size=(513, 129)).astype(np.float32)
    at = L.IOp("add", L.IOp("mul", P, L.IConst(513)), Q)
    ew = L.LoopKernel("ew", (("unit", 1), ("p", 300), ("q", 513)),
                      [L.Store((), "y", at, L.Op("tanh", (load("x", f32, at),), f32))],
                      ["x"], ["y"])
    mm = L.MatmulKernel("mm", (), 300, 129, 513, L.Operand("y", (), 513, 1),
                        L.Operand("w", (), 129, 1), f32, [("c", L.Acc("acc", f32))],
                        ["y", "w"], ["c"])
    arg = L.LoopKernel("arg", (("p", 300),), [
        L.Reduce((("q", 513),), (L.Accumulator("a", "argmax", load("y", f32, at), i64, Q),)),
        L.Store((), "i", P, L.Acc("a", i64))], ["y"], ["i"])
    p = program([ew, mm, arg], {"x": (f32, x.size), "w": (f32, w.size)},
                {"c": (f32, 300 * 129), "i": (i64, 300)}, temps={"y": (f32, x.size)},
                arena=({"y": 0}, {"float32": x.size}))
    assert render.kernel_extent(ew) == 300
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", {"loops": 1, "matmul": 1})
    assert all(render.runs_threaded(k) for k in (ew, mm, arg))
    assert "GOMP_parallel" in str(render.render_program(p))
    compiled = compile_program(p)
    runs = {}
    for n in (1, 2, 7):                      # 7: more threads than most machines' cores
        monkeypatch.setattr(threads.NUM_THREADS, "value", n)
        runs[n] = compiled([x, w])
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", {"loops": 1 << 62, "matmul": 1 << 62})
    assert "GOMP_parallel" not in str(render.render_program(p))
    single = compile_program(p)([x, w])
    for threaded in runs.values():
        for t, s in zip(threaded, single):
            np.testing.assert_array_equal(t, s)
    np.testing.assert_allclose(single[0].reshape(300, 129), np.tanh(x) @ w, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_array_equal(single[1], np.tanh(x).argmax(axis=1))


def test_serial_kernels_never_run_threaded(monkeypatch):
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", {"loops": 1, "matmul": 1})
    serial = scatter_kernel(1000, 1000)
    serial.parallel = (("p", 1000),)
    assert not render.runs_threaded(serial)


def test_threaded_kernel_reports_index_errors(monkeypatch):
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", {"loops": 1, "matmul": 1})
    monkeypatch.setattr(threads.NUM_THREADS, "value", 3)
    value = load("t", f32, L.CheckedIndex(load("idx", i64), 4, 3))
    kernel = L.LoopKernel("gather", (("p", 100),), [L.Store((), "out", P, value)],
                          ["t", "idx"], ["out"])
    compiled = compile_program(program([kernel], {"t": (f32, 4), "idx": (i64, 100)},
                                       {"out": (f32, 100)}))
    idx = np.zeros(100, np.int64)
    idx[99] = 4                                        # in the last thread's chunk
    with pytest.raises(IndexError, match=r"take: index 4 .* size 4 \(model.py:9\)"):
        compiled([np.arange(4, dtype=np.float32), idx])


# ---- the runtime -------------------------------------------------------------------------------
def copy_kernel(n, src="x", dst="y", dtype=f32):
    return L.LoopKernel(f"copy_{dst}", (("p", n),), [L.Store((), dst, P, load(src, dtype))],
                        [src], [dst])


def test_outputs_that_are_inputs_or_constants_are_copies():
    const = np.array([1.5, 2.5], np.float32)
    p = program([copy_kernel(2)], {"x": (f32, 2)}, {"y": (f32, 2)},
                constants={"c": const})
    p.outputs = ["y", "x", "c", "y"]
    compiled = compile_program(p)
    x = np.array([3.0, 4.0], np.float32)
    y, x_out, c_out, y_again = compiled([x])
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(y_again, x)
    np.testing.assert_array_equal(c_out, const)
    assert x_out is not x and y_again is not y
    x_out[0] = c_out[0] = 0
    assert x[0] == 3.0 and compiled([x])[2][0] == 1.5


def test_fresh_outputs_and_checked_inputs():
    compiled = compile_program(program([copy_kernel(3)], {"x": (f32, 3)}, {"y": (f32, 3)}))
    first = compiled([np.ones(3, np.float32)])[0]
    second = compiled([np.arange(6, dtype=np.float64).reshape(2, 3)[:, 0].repeat(2)[:3]])[0]
    np.testing.assert_array_equal(first, [1, 1, 1])
    np.testing.assert_array_equal(second, [0, 0, 3])
    with pytest.raises(ValueError, match="input x needs 3 elements"):
        compiled([np.ones(4, np.float32)])
    with pytest.raises(TypeError, match="takes 1 inputs, got 2"):
        compiled([np.ones(3, np.float32)] * 2)


def test_inputs_updated_in_place():
    bump = L.LoopKernel("bump", (("p", 3),), [L.Store((), "x", P, L.Const(1.0, f32),
                                                      accumulate=True)], ["x"], ["x"])
    p = program([bump], {"x": (f32, 3)}, {})
    p.outputs = ["x"]
    compiled = compile_program(p)
    x = np.zeros(3, np.float32)
    out, = compiled([x])
    compiled([x])
    np.testing.assert_array_equal(x, [2, 2, 2])
    np.testing.assert_array_equal(out, [1, 1, 1])
    with pytest.raises(ValueError, match="updates input x in place"):
        compiled([np.zeros(3, np.float64)])
    x.setflags(write=False)
    with pytest.raises(ValueError, match="updates input x in place"):
        compiled([x])


def test_kernels_may_share_a_name():
    k1, k2 = copy_kernel(2, "x", "t"), copy_kernel(2, "t", "y")
    k1.name = k2.name = "entry"
    p = program([k1, k2], {"x": (f32, 2)}, {"y": (f32, 2)}, temps={"t": (f32, 2)})
    np.testing.assert_array_equal(compile_program(p)([np.ones(2, np.float32)])[0], [1, 1])


def test_zero_size_buffers():
    compiled = compile_program(program([copy_kernel(0)], {"x": (f32, 0)}, {"y": (f32, 0)}))
    assert compiled([np.zeros(0, np.float32)])[0].shape == (0,)


def test_temporaries_share_an_arena():
    k1 = copy_kernel(4, "x", "t1")
    k2 = L.LoopKernel("double", (("p", 4),), [L.Store((), "t2", P, L.Op(
        "add", (load("t1", f32), load("t1", f32)), f32))], ["t1"], ["t2"])
    k3 = copy_kernel(4, "t2", "y")
    p = program([k1, k2, k3], {"x": (f32, 4)}, {"y": (f32, 4)},
                temps={"t1": (f32, 4), "t2": (f32, 4)},
                arena=({"t1": 0, "t2": 4}, {"float32": 8}))
    out, = compile_program(p)([np.arange(4, dtype=np.float32)])
    np.testing.assert_array_equal(out, [0, 2, 4, 6])


def test_llvm_ir_before_and_after_optimisation():
    value = load("t", f32, L.CheckedIndex(load("idx", i64), 4, 3))   # allocas: extremes
    kernel = L.LoopKernel("gather", (("p", 8),), [L.Store((), "out", P, value)],
                          ["t", "idx"], ["out"])
    compiled = compile_program(program([kernel], {"t": (f32, 4), "idx": (i64, 8)},
                                       {"out": (f32, 8)}))
    before, after = compiled.llvm_ir(), compiled.llvm_ir(optimized=True)
    assert 'define void @"entry"' in before and "define void @entry" in after
    kernel_before = before[before.index('define void @"graphc.kernel.'):]
    kernel_after = after[after.index("define void @graphc.kernel."):]
    assert " = alloca " in kernel_before and " = alloca " not in kernel_after


# ---- the disk cache ----------------------------------------------------------------------------
def small_program():
    return program([copy_kernel(4)], {"x": (f32, 4)}, {"y": (f32, 4)})


def cache_files(kind="o"):
    """The cache's entries of one kind: object code (``o``), renderings (``ll``)."""
    directory = os.environ["GRAPHC_CACHE_DIR"]
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if f.endswith(f".{kind}"))


def kernel_cache_file(p):
    """The cache entry of the object code of the one kernel of program ``p``."""
    module, = render.render_program(p).kernels
    key = runtime.cache_key(module.text, module.level)
    return os.path.join(os.environ["GRAPHC_CACHE_DIR"], f"{key}.o")


def count_compiles(monkeypatch):
    calls = []
    original = runtime.compile_object
    monkeypatch.setattr(runtime, "compile_object",
                        lambda text, level: calls.append(text) or original(text, level))
    return calls


def test_cache_hit_skips_compilation(monkeypatch):
    calls = count_compiles(monkeypatch)
    compile_program(small_program())           # two modules: the entry and the kernel
    compiled = compile_program(small_program())
    assert len(calls) == 2 and len(cache_files()) == 2
    np.testing.assert_array_equal(compiled([np.arange(4, dtype=np.float32)])[0], [0, 1, 2, 3])


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "other_key"])
def test_corrupt_cache_entry_is_rebuilt(monkeypatch, damage):
    compile_program(small_program())
    path = kernel_cache_file(small_program())
    data = open(path, "rb").read()
    damaged = {"flip": data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:],
               "truncate": data[: len(data) // 2], "garbage": b"\x00" * 100,
               "other_key": data.replace(data[16:20], b"0000" if data[16:20] != b"0000"
                                         else b"1111", 1)}[damage]
    open(path, "wb").write(damaged)
    calls = count_compiles(monkeypatch)
    compiled = compile_program(small_program())
    assert len(calls) == 1 and open(path, "rb").read() == data
    np.testing.assert_array_equal(compiled([np.ones(4, np.float32)])[0], [1, 1, 1, 1])


def test_a_folder_in_place_of_a_cache_entry_is_rebuilt(monkeypatch):
    compile_program(small_program())
    path = kernel_cache_file(small_program())
    os.remove(path)
    os.mkdir(path)
    calls = count_compiles(monkeypatch)
    compiled = compile_program(small_program())
    assert len(calls) == 1 and os.path.isfile(path) and len(cache_files()) == 2
    np.testing.assert_array_equal(compiled([np.ones(4, np.float32)])[0], [1, 1, 1, 1])


def test_empty_cache_dir_disables_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)
    calls = count_compiles(monkeypatch)
    compile_program(small_program())
    compile_program(small_program())
    assert len(calls) == 4 and os.listdir(tmp_path) == []


def test_each_buffer_is_its_own_alias_scope():
    # Two outputs of one kernel: their stores are tagged so LLVM knows they do not alias
    # the input (which is what lets a fused multi-output kernel vectorize).
    two = L.LoopKernel("two", (("p", 8),), [
        L.Store((), "y", P, L.Op("exp", (L.Load("x", P, f32),), f32)),
        L.Store((), "z", P, L.Op("neg", (L.Load("x", P, f32),), f32))], ["x"], ["y", "z"])
    p = program([two], {"x": (f32, 8)}, {"y": (f32, 8), "z": (f32, 8)})
    assert render.alias_scopes(p) == {"x": "x", "y": "y", "z": "z"}
    text = str(render.render_program(p))
    assert "!alias.scope" in text and "!noalias" in text
    x = np.linspace(-1, 1, 8).astype(np.float32)
    y, z = compile_program(p)([x])
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-6)
    np.testing.assert_array_equal(z, -x)


def test_inputs_share_a_scope_when_a_kernel_writes_one():
    # The caller may pass one array as two inputs: fine to read, not to write.
    bump = L.LoopKernel("bump", (("p", 3),), [L.Store((), "x", P, L.Load("w", P, f32),
                                                      accumulate=True)], ["x", "w"], ["x"])
    p = program([bump], {"x": (f32, 3), "w": (f32, 3)}, {})
    scopes = render.alias_scopes(p)
    assert scopes["x"] == scopes["w"]
    a = np.ones(3, np.float32)
    compile_program(p)([a, a])
    np.testing.assert_array_equal(a, [2, 2, 2])
