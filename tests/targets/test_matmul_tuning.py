"""The cpu backend's matmul plans: graphc's kernel at each candidate blocking and the
numpy-BLAS path give numpy's products on odd shapes, layouts and epilogues; the host
tuning is measured once and reused from the disk cache; without BLAS graphc's kernel
runs."""
import ctypes

import numpy as np
import pytest

import graphc
from graphc import dtypes
from graphc.targets.cpu import blas, compile_program, render, threads, tuning
from graphc.targets.cpu.kernel import new_module
from graphc.targets.cpu.matmul import MatmulRenderer, blas_layout
from graphc.codegen import loops as L
from matmul_kernels import product_kernel

f32, f64, b8 = dtypes.float32, dtypes.float64, dtypes.bool_
needs_blas = pytest.mark.skipif(blas.library() is None, reason="numpy has no cblas library")


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(params=["graphc", pytest.param("blas", marks=needs_blas)])
def mode(request, monkeypatch):
    monkeypatch.setenv("GRAPHC_MATMUL", request.param)
    return request.param


def run(kernel, inputs, outputs):
    """Compile and run the one-kernel program; (outputs, its LLVM IR text)."""
    buffers = {name: L.BufferInfo(name, dtypes.from_numpy(x.dtype), x.size, "input")
               for name, x in inputs.items()}
    buffers.update({name: L.BufferInfo(name, dtype, size, "output")
                    for name, (dtype, size) in outputs.items()})
    program = L.Program("test", buffers, [kernel], list(inputs), list(outputs), {})
    compiled = compile_program(program)
    return compiled([np.ascontiguousarray(x).reshape(-1) for x in inputs.values()]), \
        compiled.llvm_ir()


def calls_blas(ir_text, dtype) -> bool:
    library = blas.library()
    return library is not None and library.gemm[dtype.name] in ir_text


SIZES = [(1, 1, 1), (1, 7, 5), (5, 1, 9), (4, 6, 1), (13, 33, 17), (31, 67, 513),
         (0, 3, 4), (3, 0, 4), (3, 4, 0)]


@pytest.mark.parametrize("m,n,k", SIZES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_sizes_and_transposes(mode, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(m * 100 + n + k)
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    (c,), ir_text = run(*product_kernel(a, b, trans_a=trans_a, trans_b=trans_b))
    np.testing.assert_allclose(c.reshape(m, n), a @ b, rtol=1e-4, atol=1e-4)
    assert calls_blas(ir_text, f32) == (mode == "blas" and m * n * k > 0)


def test_batched_with_broadcast_operands_and_float64(mode):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 1, 7, 11))
    b = rng.normal(size=(4, 11, 5))
    (c,), ir_text = run(*product_kernel(a, b))
    np.testing.assert_allclose(c.reshape(3, 4, 7, 5), a @ b, rtol=1e-12, atol=1e-12)
    assert calls_blas(ir_text, f64) == (mode == "blas")


def test_epilogue_after_either_path(mode):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(2, 37, 300)).astype(np.float32)
    b = rng.normal(size=(2, 300, 45)).astype(np.float32)
    bias = rng.normal(size=45).astype(np.float32)
    acc = L.Acc("acc", f32)
    relu = L.Op("maximum", (L.Op("add", (acc, L.Load("bias", L.Var("j"), f32)), f32),
                            L.Const(0.0, f32)), f32)
    stores = [("relu", relu), ("positive", L.Op("gt", (acc, L.Const(0.0, f32)), b8))]
    (out, positive), ir_text = run(*product_kernel(a, b, stores=stores,
                                                   extra={"bias": bias}))
    product = a @ b
    np.testing.assert_allclose(out.reshape(product.shape), np.maximum(product + bias, 0),
                               rtol=1e-4, atol=1e-4)
    sure = np.abs(product) > 1e-3
    np.testing.assert_array_equal(positive.reshape(product.shape)[sure], (product > 0)[sure])
    assert calls_blas(ir_text, f32) == (mode == "blas")


def test_layouts_cblas_cannot_express_keep_graphcs_kernel(monkeypatch):
    monkeypatch.setenv("GRAPHC_MATMUL", "blas")
    a = np.arange(6, dtype=np.float32).reshape(1, 6)
    b = np.ones((6, 4), np.float32)
    kernel, inputs, outputs = product_kernel(np.broadcast_to(a, (5, 6)), b)
    kernel.a = L.Operand("a", (), 0, 1)                      # one row read five times
    inputs["a"] = a
    (c,), ir_text = run(kernel, inputs, outputs)
    np.testing.assert_array_equal(c.reshape(5, 4), np.broadcast_to(a @ b, (5, 4)))
    assert not calls_blas(ir_text, f32)
    assert blas_layout(kernel) is None
    assert "not expressible" in tuning.plan(kernel).reason
    ints, _, _ = product_kernel(np.ones((3, 3), np.int32), np.ones((3, 3), np.int32))
    assert blas_layout(ints) is None


def test_cblas_layouts_of_transposed_and_merged_operands():
    a = np.zeros((4, 6, 5), np.float32)            # batch dims merge into rows
    kernel, _, _ = product_kernel(a, np.zeros((5, 3), np.float32), trans_b=True)
    assert blas_layout(kernel) == ((blas.NO_TRANS, 5), (blas.TRANS, 5))
    kernel, _, _ = product_kernel(np.zeros((6, 5), np.float32), np.zeros((5, 3), np.float32),
                                  trans_a=True)
    assert blas_layout(kernel) == ((blas.TRANS, 6), (blas.NO_TRANS, 3))
    assert blas_layout(kernel, index_bits=3) is None        # sizes beyond 3-bit integers


@needs_blas
def test_blas_kernel_runs_any_range_of_rows():
    """A range [start, stop) that cuts through groups (as a thread's share would) still
    computes exactly its rows."""
    rng = np.random.default_rng(9)
    a = rng.normal(size=(3, 7, 10)).astype(np.float32)
    b = rng.normal(size=(3, 10, 6)).astype(np.float32)
    kernel, inputs, _ = product_kernel(a, b)
    module = new_module("ranges")
    name = MatmulRenderer(module, kernel, {"a": 0, "b": 1, "c": 2}, 1, None,
                          tuning.blocking(f32), blas.library()).render().name
    jit = tuning._Jit(module)
    fn = tuning._KERNEL(jit.engine.get_function_address(name))
    c = np.full(3 * 7 * 6, np.nan, np.float32)
    pointers = (ctypes.c_void_p * 3)(inputs["a"].ctypes.data, inputs["b"].ctypes.data,
                                     c.ctypes.data)
    flag = (ctypes.c_int64 * 2)()
    fn(pointers, 5, 17, flag)
    want = (a @ b).reshape(21, 6)
    got = c.reshape(21, 6)
    np.testing.assert_allclose(got[5:17], want[5:17], rtol=1e-5, atol=1e-5)
    assert np.isnan(got[:5]).all() and np.isnan(got[17:]).all()


@pytest.mark.parametrize("index", range(len(tuning.candidates(f32))))
def test_every_candidate_blocking_gives_the_product(monkeypatch, index):
    monkeypatch.setenv("GRAPHC_MATMUL", "graphc")
    chosen = tuning.candidates(f32)[index]
    monkeypatch.setattr(tuning, "blocking", lambda dtype: chosen)
    rng = np.random.default_rng(index)
    a = rng.normal(size=(2, 31, 600)).astype(np.float32)
    b = rng.normal(size=(600, 67)).astype(np.float32)
    (c,), _ = run(*product_kernel(a, b, trans_b=True))
    np.testing.assert_allclose(c.reshape(2, 31, 67), a @ b, rtol=1e-4, atol=1e-4)


def test_tuning_is_measured_once_and_reused_from_the_disk_cache(monkeypatch, tmp_path):
    searches = []
    search = tuning._search_blocking
    monkeypatch.setattr(tuning, "_search_blocking",
                        lambda dtype: searches.append(dtype) or search(dtype))
    monkeypatch.setattr(tuning, "_measured", {})
    first = tuning.blocking(f64)
    assert searches == [f64] and first in tuning.candidates(f64)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    monkeypatch.setattr(tuning, "_measured", {})              # as a new process would
    assert tuning.blocking(f64) == first
    assert searches == [f64]


@needs_blas
def test_blas_choice_is_measured_once_per_shape_class(monkeypatch, tmp_path):
    measured = []
    measure = tuning._measure_blas
    monkeypatch.setattr(tuning, "_measure_blas",
                        lambda dtype, shape: measured.append(shape) or measure(dtype, shape))
    monkeypatch.setattr(tuning, "_measured", {})
    monkeypatch.delenv("GRAPHC_MATMUL", raising=False)
    kernel, _, _ = product_kernel(np.zeros((30, 40), np.float32),
                                  np.zeros((40, 50), np.float32))
    same_class, _, _ = product_kernel(np.zeros((31, 33), np.float32),
                                      np.zeros((33, 60), np.float32))
    first = tuning.plan(kernel)
    assert measured == [(32, 64, 64, 1)] and "measured BLAS" in first.reason
    assert tuning.plan(same_class).blas == first.blas
    monkeypatch.setattr(tuning, "_measured", {})
    assert tuning.plan(kernel) == first
    assert measured == [(32, 64, 64, 1)]
    small, _, _ = product_kernel(np.zeros((2, 20, 9), np.float32),
                                 np.zeros((2, 9, 30), np.float32))
    assert tuning.plan(small).blas is None
    assert tuning.plan(small).reason == "small product (32x32x16 x2): not measured"
    assert measured == [(32, 64, 64, 1)]


def test_without_blas_graphcs_kernel_runs(monkeypatch):
    monkeypatch.setattr(blas, "library", lambda: None)
    monkeypatch.setenv("GRAPHC_MATMUL", "blas")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 30)).astype(np.float32)
    b = rng.normal(size=(30, 20)).astype(np.float32)
    kernel, inputs, outputs = product_kernel(a, b)
    assert tuning.plan(kernel).blas is None
    assert tuning.plan(kernel).reason == "no BLAS library loaded"
    (c,), ir_text = run(kernel, inputs, outputs)
    np.testing.assert_allclose(c.reshape(40, 20), a @ b, rtol=1e-4, atol=1e-4)
    assert "cblas" not in ir_text


@needs_blas
def test_blas_kernels_split_between_threads_and_restore_the_blas_setting(monkeypatch):
    """graphc's pool splits a BLAS kernel's rows; each call runs on its caller's thread
    alone and leaves that thread's OpenBLAS setting as it found it."""
    monkeypatch.setenv("GRAPHC_MATMUL", "blas")
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", {"loops": 1, "matmul": 1})
    rng = np.random.default_rng(4)
    a = rng.normal(size=(4, 9, 20)).astype(np.float32)
    b = rng.normal(size=(20, 7)).astype(np.float32)
    kernel, inputs, outputs = product_kernel(a, b)
    assert render.runs_threaded(kernel)
    setting = getattr(blas.library().handle, blas.LOCAL_THREADS)
    setting.argtypes, setting.restype = [ctypes.c_int], ctypes.c_int
    before = setting(3)
    try:
        (c,), ir_text = run(kernel, inputs, outputs)
        assert setting(before) == 3
    finally:
        setting(before)
    assert calls_blas(ir_text, f32)
    np.testing.assert_allclose(c.reshape(4, 9, 7), a @ b, rtol=1e-4, atol=1e-4)


def test_explain_names_each_matmuls_code(mode):
    x, w = graphc.randn(8, 16), graphc.randn(16, 4)
    report = graphc.explain(lambda x, w: (x @ w).relu(), x, w)
    line = next(line for line in report.splitlines() if line.startswith("matmul on cpu:"))
    assert "[8x4x16]" in line and f"GRAPHC_MATMUL={mode}" in line
    assert ("numpy BLAS" in line) == (mode == "blas")


def test_host_description():
    host = tuning.host()
    assert host.registers in (16, 32) and host.vector_bytes in (32, 64)
    assert min(host.l1, host.l2, host.l3) > 0
    assert tuning._count_cpus("0-3,8\n") == 5 and tuning._count_cpus("1") == 1
    for option in tuning.candidates(f32):
        assert option.mr * option.nv + option.nv + 1 <= host.registers
