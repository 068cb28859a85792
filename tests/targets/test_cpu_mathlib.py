"""graphc.targets.cpu.mathlib: each function is emitted into a loop
``void kernel(T* in, T* out, i64 n)``, optimised at O3 for the host CPU, JIT-compiled and
compared with numpy's float64 results (math.erf for erf) on a million inputs across
ranges, plus the IEEE special values; and the optimised loops must be vectorized.

Run as a script for the speed of the f32 loops against numpy on 16M floats:
``PYTHONPATH=. python3 tests/targets/test_cpu_mathlib.py``.
"""
import ctypes
import math
import re
import time

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from graphc.targets.cpu import mathlib
from graphc.ops.elementwise import _sigmoid

DTYPES = (np.float32, np.float64)
_KERNELS = {}      # (name, dtype) -> (callable, engine); engines must outlive their code


def _target_machine():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=3)


TM = _target_machine()


ARITY = {"atan2": 2}       # the others take one operand


def loop_module(name, dtype):
    """``out[i] = name(in[i])`` (``name(in0[i], in1[i])`` for atan2) for i < n, as an
    llvmlite module."""
    ty = ir.FloatType() if dtype == np.float32 else ir.DoubleType()
    module = ir.Module(name=f"mathlib_{name}")
    module.triple = llvm.get_process_triple()
    i64 = ir.IntType(64)
    arity = ARITY.get(name, 1)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(),
                                             [ty.as_pointer()] * (arity + 1) + [i64]),
                     "kernel")
    *srcs, dst, n = fn.args
    for arg in srcs + [dst]:
        arg.add_attribute("noalias")
    entry, body, done = (fn.append_basic_block(b) for b in ("entry", "body", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, i64(0)), body, done)
    b.position_at_end(body)
    i = b.phi(i64)
    i.add_incoming(i64(0), entry)
    b.store(mathlib.emit(b, name, *[b.load(b.gep(src, [i])) for src in srcs]),
            b.gep(dst, [i]))
    following = b.add(i, i64(1))
    i.add_incoming(following, body)
    b.cbranch(b.icmp_signed("<", following, n), body, done)
    b.position_at_end(done)
    b.ret_void()
    return module


def optimised(name, dtype):
    """The loop module parsed, verified and run through the O3 pipeline with loop and SLP
    vectorization, as the cpu backend does."""
    parsed = llvm.parse_assembly(str(loop_module(name, dtype)))
    parsed.verify()
    tuning = llvm.PipelineTuningOptions(speed_level=3)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    passes = llvm.create_pass_builder(TM, tuning)
    passes.getModulePassManager().run(parsed, passes)
    return parsed


def kernel(name, dtype):
    """A numpy-array -> numpy-array function running the JIT-compiled loop (cached)."""
    key = (name, dtype)
    if key not in _KERNELS:
        engine = llvm.create_mcjit_compiler(optimised(name, dtype), TM)
        engine.finalize_object()
        address = engine.get_function_address("kernel")
        arity = ARITY.get(name, 1)
        native = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (arity + 1),
                                  ctypes.c_int64)(address)

        def run(*xs, out=None):
            xs = np.broadcast_arrays(*[np.ascontiguousarray(x, dtype=dtype) for x in xs])
            xs = [np.ascontiguousarray(x) for x in xs]
            out = np.empty_like(xs[0]) if out is None else out
            native(*[x.ctypes.data for x in xs], out.ctypes.data, xs[0].size)
            return out

        _KERNELS[key] = (run, engine)
    return _KERNELS[key][0]


# ---- references and error measures ---------------------------------------------------------
_erf = np.frompyfunc(math.erf, 1, 1)
REFERENCE = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "sin": np.sin, "cos": np.cos,
             "sigmoid": _sigmoid, "erf": lambda x: _erf(x).astype(np.float64),
             "expm1": np.expm1, "log1p": np.log1p, "atan2": np.arctan2}


def reference(name, *xs):
    """name(*xs) computed in float64 and rounded to the inputs' dtype."""
    with np.errstate(all="ignore"):
        return REFERENCE[name](*[x.astype(np.float64) for x in xs]).astype(xs[0].dtype)


def ordered(a):
    """Float bits mapped to integers that count representable numbers from 0 (so -0.0 and
    0.0 meet, and denormals are one unit apart)."""
    bits = a.view(np.int32 if a.dtype == np.float32 else np.int64).astype(np.int64)
    magnitude = bits & np.int64(np.iinfo(bits.dtype).max >> (64 - 8 * a.itemsize))
    return np.where(bits < 0, -magnitude, magnitude)


def ulp_error(got, want):
    """Units in the last place between got and want; NaN must meet NaN."""
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), "NaN where the reference has none (or back)"
    return np.abs(ordered(got[~nan]) - ordered(want[~nan]))


RNG = np.random.default_rng(20240611)


def inputs(name, dtype):
    """About a million inputs spread over the ranges where each function changes."""
    f32 = dtype == np.float32

    def u(lo, hi, n=300_000):
        return RNG.uniform(lo, hi, n)

    if name == "exp":
        parts = [u(-110, 95), u(-1, 1), u(-104, -87)] if f32 else \
            [u(-750, 715), u(-1, 1), u(-746, -708)]   # last: results in the denormals
    elif name == "log":
        parts = [2.0 ** u(-149, 128), u(0.5, 2.0), 2.0 ** u(-149, -126)] if f32 else \
            [2.0 ** u(-1074, 1024), u(0.5, 2.0), 2.0 ** u(-1074, -1022)]
    elif name in ("sin", "cos"):
        parts = [u(-1e4, 1e4), u(-4, 4)]
    elif name == "expm1":       # past +-40 it is exp(x) - 1; up to overflow
        parts = [u(-1, 1), u(-50, 89 if f32 else 710), u(-0.4, 0.4)]
    elif name == "log1p":       # from -1 up, and huge
        parts = [u(-1, 1), 2.0 ** u(-60, 100 if f32 else 1000), u(-1, -0.5)]
    else:
        tiny = 10.0 ** u(-30, 0)
        parts = [u(-12, 12), u(-1, 1), np.where(RNG.random(tiny.size) < 0.5, -tiny, tiny)]
    if name in ("expm1", "log1p"):   # and tiny magnitudes of either sign
        tiny = 10.0 ** u(-30 if f32 else -300, 0)
        parts.append(np.where(RNG.random(tiny.size) < 0.5, -tiny, tiny))
    if name == "erf":            # math.erf runs in Python: fewer points
        parts = [p[:70_000] for p in parts]
    with np.errstate(over="ignore"):
        return np.concatenate(parts).astype(dtype)


def atan2_inputs(dtype):
    """(y, x) pairs: every octant, magnitudes far apart and near each other."""
    n = 400_000
    angle = RNG.uniform(-np.pi, np.pi, n)
    radius = 10.0 ** RNG.uniform(-20, 20, n)
    y, x = radius * np.sin(angle), radius * np.cos(angle)
    spread = 10.0 ** RNG.uniform(-30, 30, (2, n)) * RNG.choice([-1, 1], (2, n))
    return (np.concatenate([y, spread[0]]).astype(dtype),
            np.concatenate([x, spread[1]]).astype(dtype))


# ---- accuracy ------------------------------------------------------------------------------
# Measured on x86-64 with FMA: exp, log, erf, log1p 1 ulp; tanh 2 (f64); expm1 2 (f64);
# sigmoid 3 (its formula rounds three times).  One ulp of slack for targets without FMA.
ULP_LIMIT = {"exp": 2, "log": 2, "erf": 2, "tanh": 3, "sigmoid": 4, "expm1": 3, "log1p": 2}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(ULP_LIMIT))
def test_ulp_error(name, dtype):
    x = inputs(name, dtype)
    errors = ulp_error(kernel(name, dtype)(x), reference(name, x))
    worst = int(errors.argmax())
    assert errors[worst] <= ULP_LIMIT[name], f"{name}({x[worst]!r}) is {errors[worst]} ulp off"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_atan2_ulp_error(dtype):
    y, x = atan2_inputs(dtype)
    errors = ulp_error(kernel("atan2", dtype)(y, x), reference("atan2", y, x))
    worst = int(errors.argmax())
    assert errors[worst] <= ATAN2_ULP_LIMIT, f"atan2({y[worst]!r}, {x[worst]!r}) is " \
                                             f"{errors[worst]} ulp off"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_expm1_and_log1p_are_exact_for_tiny_x(dtype):
    """Where exp(x) - 1 and log(1 + x) lose every digit, these keep them all."""
    x = np.array([1e-7, -1e-7, 1e-20, -3e-30, 2.0 ** -60], dtype)
    for name, ref in (("expm1", math.expm1), ("log1p", math.log1p)):
        want = np.array([ref(float(v)) for v in x], dtype)
        assert ulp_error(kernel(name, dtype)(x), want).max() <= 1, name


def test_sin_cos_f32_absolute_error_up_to_1e4():
    for name in ("sin", "cos"):
        x = inputs(name, np.float32)
        got = kernel(name, np.float32)(x).astype(np.float64)
        error = np.abs(got - REFERENCE[name](x.astype(np.float64)))
        assert error.max() <= 2.5e-7, (name, x[error.argmax()], error.max())


def test_sin_cos_f64_within_4_ulp_up_to_1e4():
    for name in ("sin", "cos"):
        x = inputs(name, np.float64)
        errors = ulp_error(kernel(name, np.float64)(x), reference(name, x))
        assert errors.max() <= 4, (name, x[errors.argmax()], errors.max())


def test_sigmoid_matches_graphc_formula_in_float32():
    """The eager float32 result (numpy in float32) and the compiled one agree closely."""
    x = inputs("sigmoid", np.float32)
    with np.errstate(all="ignore"):
        eager = _sigmoid(x)
    assert ulp_error(kernel("sigmoid", np.float32)(x), eager).max() <= 4


# ---- special values ------------------------------------------------------------------------
INF, NAN = math.inf, math.nan
SPECIAL = {
    # name: [(input, expected)] for both dtypes
    "exp": [(-INF, 0.0), (INF, INF), (NAN, NAN), (0.0, 1.0), (1e4, INF), (-1e4, 0.0)],
    "log": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (-INF, NAN), (INF, INF), (NAN, NAN),
            (1.0, 0.0)],
    "tanh": [(INF, 1.0), (-INF, -1.0), (NAN, NAN), (0.0, 0.0), (1e-30, 1e-30),
             (-1e-30, -1e-30), (50.0, 1.0), (-50.0, -1.0)],
    "sigmoid": [(INF, 1.0), (-INF, 0.0), (NAN, NAN), (0.0, 0.5), (1e4, 1.0), (-1e4, 0.0)],
    "erf": [(INF, 1.0), (-INF, -1.0), (NAN, NAN), (0.0, 0.0), (10.0, 1.0), (-10.0, -1.0)],
    "sin": [(INF, NAN), (-INF, NAN), (NAN, NAN), (0.0, 0.0)],
    "cos": [(INF, NAN), (-INF, NAN), (NAN, NAN), (0.0, 1.0)],
    "expm1": [(-INF, -1.0), (INF, INF), (NAN, NAN), (0.0, 0.0), (1e4, INF), (-1e4, -1.0)],
    "log1p": [(-1.0, -INF), (-2.0, NAN), (-INF, NAN), (INF, INF), (NAN, NAN), (0.0, 0.0)],
}
# atan2(y, x): (y, x, expected), as numpy (C99 Annex F)
ATAN2_SPECIAL = [
    (0.0, 0.0, 0.0), (-0.0, 0.0, -0.0), (0.0, -0.0, math.pi), (-0.0, -0.0, -math.pi),
    (0.0, -1.0, math.pi), (-0.0, -1.0, -math.pi), (1.0, 0.0, math.pi / 2),
    (-1.0, -0.0, -math.pi / 2), (INF, INF, math.pi / 4), (INF, -INF, 3 * math.pi / 4),
    (-INF, INF, -math.pi / 4), (-INF, -INF, -3 * math.pi / 4), (1.0, INF, 0.0),
    (1.0, -INF, math.pi), (-1.0, -INF, -math.pi), (INF, 5.0, math.pi / 2), (NAN, 1.0, NAN),
    (1.0, NAN, NAN), (1.0, 1.0, math.pi / 4), (-2.0, -2.0, -3 * math.pi / 4),
]
ATAN2_ULP_LIMIT = 4       # measured 3 (the reflections round twice); 1 of slack without FMA


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_values(name, dtype):
    x, want = (np.array(column, dtype) for column in zip(*SPECIAL[name]))
    np.testing.assert_array_equal(kernel(name, dtype)(x), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_atan2_special_values(dtype):
    y, x, want = (np.array(column, dtype) for column in zip(*ATAN2_SPECIAL))
    got = kernel("atan2", dtype)(y, x)
    np.testing.assert_array_equal(got, want)
    assert list(np.signbit(got)) == list(np.signbit(want))
    np.testing.assert_array_equal(want, reference("atan2", y, x))     # the table is numpy's


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_odd_functions_keep_the_sign_of_zero(dtype):
    for name in ("tanh", "erf", "sin", "expm1", "log1p"):
        got = kernel(name, dtype)(np.array([-0.0, 0.0], dtype))
        assert list(np.signbit(got)) == [True, False], name


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_overflow_and_denormal_edges(dtype):
    info = np.finfo(dtype)
    top = dtype(np.log(np.float64(info.max)))     # exp overflows between its neighbours
    x = np.array([np.nextafter(top, dtype(0)), np.nextafter(top, dtype(np.inf)),
                  np.log(np.float64(info.smallest_subnormal)) + 0.1], dtype)
    got = kernel("exp", dtype)(x)
    assert np.isfinite(got[0]) and got[1] == np.inf and 0 < got[2] < info.tiny
    assert ulp_error(got, reference("exp", x)).max() <= 1
    smallest = np.array([info.smallest_subnormal, info.tiny, info.max], dtype)
    assert ulp_error(kernel("log", dtype)(smallest), reference("log", smallest)).max() <= 1
    negative = np.array([-20.0, -80.0, -100.0, -700.0], dtype)   # e/(1+e) into denormals
    assert ulp_error(kernel("sigmoid", dtype)(negative), reference("sigmoid", negative)).max() \
        <= 1


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sin_cos_are_accurate_over_the_whole_finite_range(dtype):
    """Payne-Hanek reduction: float32 (computed in float64) within 1 ulp of the correctly
    rounded result, float64 within 2, up to the largest finite argument."""
    top = np.log2(np.finfo(dtype).max)
    x = (2.0 ** RNG.uniform(0, top, 300_000) * RNG.choice([-1, 1], 300_000)).astype(dtype)
    x = np.concatenate([x, np.array([np.finfo(dtype).max, 1e30, -3e38, 12345678.9,
                                     2.0 ** 60], dtype)])
    for name in ("sin", "cos"):
        errors = ulp_error(kernel(name, dtype)(x), reference(name, x))
        assert errors.max() <= (1 if dtype == np.float32 else 2), \
            (name, x[errors.argmax()], errors.max())


# ---- code shape ----------------------------------------------------------------------------
def test_helpers_are_defined_once_per_module_and_dtype():
    module = ir.Module()
    for ty in (ir.FloatType(), ir.DoubleType()):
        fn = ir.Function(module, ir.FunctionType(ty, [ty]), f"f{ty}")
        b = ir.IRBuilder(fn.append_basic_block())
        y = mathlib.emit(b, "sigmoid", mathlib.emit(b, "exp", fn.args[0]))
        b.ret(mathlib.emit(b, "exp", y))
    helpers = sorted(g.name for g in module.functions if g.name.startswith("graphc."))
    assert helpers == ["graphc.exp.f32", "graphc.exp.f64", "graphc.sigmoid.f32",
                       "graphc.sigmoid.f64"]
    assert all(module.get_global(h).linkage == "internal" for h in helpers)
    llvm.parse_assembly(str(module)).verify()


def test_unknown_name_and_type_are_rejected():
    fn = ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), [ir.IntType(32)]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    with pytest.raises(ValueError, match="unknown function 'gelu'"):
        mathlib.emit(b, "gelu", ir.Constant(ir.FloatType(), 1.0))
    with pytest.raises(TypeError, match="expected an f32 or f64 value, got i32"):
        mathlib.emit(b, "exp", fn.args[0])


@pytest.mark.parametrize("name", ["exp", "tanh", "erf", "log", "sin", "expm1", "log1p",
                                  "atan2"])
def test_f32_loops_are_vectorized_and_fully_inlined(name):
    module = optimised(name, np.float32)
    text = str(module)
    assert "graphc." not in text and re.search(r"<\d+ x float>", text)
    if not llvm.get_host_cpu_features().get("avx", False):
        pytest.skip("packed-register check is written for x86 with AVX")
    assembly = TM.emit_assembly(module)
    assert re.search(r"\bv\w+ps\s[^\n]*%[yz]mm", assembly), "no packed ymm/zmm instructions"


def test_names():
    assert mathlib.NAMES == {"exp", "log", "tanh", "sigmoid", "erf", "sin", "cos", "expm1",
                             "log1p", "atan2"}


# ---- speed (python3 tests/targets/test_cpu_mathlib.py) ------------------------------------
def _best_seconds(fn, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _report_speed(n=16 * 2 ** 20):
    x = RNG.uniform(-10, 10, n).astype(np.float32)
    out = np.empty_like(x)
    for name, numpy_fn in (("exp", np.exp), ("tanh", np.tanh), ("erf", None)):
        run = kernel(name, np.float32)
        ours = n / _best_seconds(lambda: run(x, out=out))
        line = f"f32 {name:5s} graphc {ours / 1e9:5.2f} Gelem/s"
        if numpy_fn is not None:
            theirs = n / _best_seconds(lambda: numpy_fn(x, out=out))
            line += f"   numpy {theirs / 1e9:5.2f} Gelem/s   graphc/numpy {ours / theirs:4.2f}"
        print(line)


if __name__ == "__main__":
    _report_speed()
