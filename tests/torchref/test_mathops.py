"""Pointwise math, scans, contractions, shape functions and graphc.linalg against PyTorch:
values and input gradients eagerly and compiled (cpu, interpreter) through the harness;
dtypes, edge values, empty tensors and errors eagerly through ``same``."""
import math
import warnings

import numpy as np
import pytest

import graphc
from harness import assert_close, check_function, torch

rng = np.random.default_rng(0)


def normal(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def uniform(lo, hi, *shape, dtype=np.float32):
    return rng.uniform(lo, hi, shape).astype(dtype)


def same(fn, *arrays, rtol=1e-6, atol=1e-7):
    """``fn(lib, *tensors)`` gives the same values and dtypes with both libraries, or
    raises the same exception type."""
    results = []
    for lib in (torch, graphc):
        tensors = [lib.tensor(np.array(a)) for a in arrays]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results.append(fn(lib, *tensors))
        except Exception as e:                          # noqa: BLE001 (compared below)
            results.append(e)
    want, got = results
    if isinstance(want, Exception) or isinstance(got, Exception):
        # PyTorch's own exception classes (torch.linalg.LinAlgError) count as the builtin
        # class they derive from.
        builtin = next(c for c in type(want).__mro__ if c.__module__ == "builtins")
        assert isinstance(got, builtin), f"PyTorch: {want!r}, graphc: {got!r}"
        return
    wants, gots = _flat(want), _flat(got)
    assert len(gots) == len(wants), f"{len(gots)} results, PyTorch has {len(wants)}"
    for g, w in zip(gots, wants):
        if isinstance(w, torch.Tensor):
            assert_close(g, w, rtol, atol)
        else:
            assert g == w


def _flat(out) -> list:
    """The leaves of nested tuples, lists and named tuples."""
    if isinstance(out, (tuple, list)):
        return [leaf for item in out for leaf in _flat(item)]
    return [out]


def raises_like(error, fn, *arrays):
    """PyTorch raises ``error`` and so does graphc."""
    for lib in (torch, graphc):
        with pytest.raises(error):
            fn(lib, *[lib.tensor(np.array(a)) for a in arrays])


# ---- pointwise: values and gradients, eager and compiled ------------------------------------
def test_inverse_trigonometric_and_hyperbolic():
    check_function(lambda lib, a, b: (
        lib.asin(a), lib.acos(a), lib.atan(a), lib.atanh(a), lib.sinh(b), lib.cosh(b),
        lib.asinh(b), lib.acosh(b.abs() + 1.5), a.arcsin(), lib.arctan2(a, b),
        lib.deg2rad(b), lib.rad2deg(a)), uniform(-0.9, 0.9, 3, 4), normal(3, 4) * 3)


def test_powers_logs_and_special_functions():
    check_function(lambda lib, a, p: (
        lib.reciprocal(a), lib.square(a), lib.exp2(a), lib.float_power(a, 3),
        lib.xlogy(a, p), lib.logit(p / 4), lib.logit(p / 4, eps=0.3), lib.erfc(a * 3),
        lib.hypot(a, p)), normal(5), uniform(0.1, 3.9, 5))


ERROR_FUNCTIONS = (lambda lib, a: (lib.erfinv(lib.tanh(a)), lib.erfinv(a.double() / 3),
                                   lib.erfc(a.double() * 3)), normal(6))


def test_erfinv_and_erfc():
    check_function(*ERROR_FUNCTIONS, modes=("interpreter",))


@pytest.mark.slow
def test_erfinv_and_erfc_compiled_on_cpu():
    """Slow only because LLVM optimises the float64 kernels for a few seconds."""
    check_function(*ERROR_FUNCTIONS, modes=("cpu",))


GAMMA_FUNCTIONS = (lambda lib, a: (lib.lgamma(a), lib.digamma(a), a.lgamma(),
                                    lib.lgamma(a.double()), lib.digamma(a.double())),
                   np.array([-3.7, -0.4, 0.3, 1.0, 1.5, 2.0, 7.25, 40.0], np.float32))


def test_lgamma_and_digamma():
    check_function(*GAMMA_FUNCTIONS, modes=("interpreter",), rtol=1e-5, atol=1e-5)
    x = np.concatenate([[0.0, -0.0, -1.0, -2.5, 1.0, 2.0, np.inf, -np.inf, np.nan, 1e30, -1e30,
                         1e-30, 1.4616321449683622, 0.5, 171.5, 1e5],
                        np.linspace(-20.3, 50, 97)])
    same(lambda lib, t: (lib.lgamma(t), lib.digamma(t)), x, rtol=1e-13, atol=1e-13)
    same(lambda lib, t: (lib.lgamma(t), lib.digamma(t)), x.astype(np.float32), rtol=1e-6,
         atol=1e-6)
    same(lambda lib, t: (lib.lgamma(t), lib.digamma(t)), np.arange(-2, 5))
    same(lambda lib, t: t.digamma_(), np.arange(-2, 5))                   # refused
    same(lambda lib, t: (t.lgamma_(), t), np.arange(1.0, 5.0))


@pytest.mark.slow
def test_lgamma_and_digamma_compiled_on_cpu():
    check_function(*GAMMA_FUNCTIONS, modes=("cpu",), rtol=1e-5, atol=1e-5)


def test_signs_remainders_and_fused_arithmetic():
    check_function(lambda lib, a, b, w: (
        lib.copysign(a, b), lib.fmod(a * 5, b), lib.frac(a * 3), lib.sgn(a),
        lib.lerp(a, b, 0.3), lib.lerp(a, b, 0.8), lib.lerp(a, b, w),
        lib.addcmul(a, b, w, value=0.5), lib.addcdiv(a, b, w.abs() + 1, value=2),
        lib.clamp_min(a, 0.1), lib.clamp_max(a, 0.1), lib.fmax(a, b), lib.fmin(a, b),
        lib.nan_to_num(a / 0.0)), normal(3, 4), normal(3, 4), normal(4))


def test_gradients_at_the_awkward_points():
    """xlogy at x = 0, hypot at the origin, copysign at 0, erfinv near +-1."""
    x = np.array([0.0, 0.0, 1.5, -2.0], np.float32)
    y = np.array([0.0, 2.0, 0.5, -0.0], np.float32)
    check_function(lambda lib, a, b: (lib.xlogy(a, b.abs() + 0.5), lib.xlogy(a, 0.0),
                                      lib.hypot(a, b), lib.asinh(a), lib.fmod(a, 2.5),
                                      lib.copysign(a, b), lib.erfinv(lib.tanh(a * 3) * 0.999)),
                   x, y, modes=("interpreter",))


def test_fmax_fmin_nans_and_ties():
    a = np.array([1.0, 2.0, np.nan, np.nan, 3.0, -1.0], np.float32)
    b = np.array([1.0, 3.0, 1.0, np.nan, np.nan, -2.0], np.float32)
    check_function(lambda lib, x, y: (lib.fmax(x, y), lib.fmin(x, y), x.fmax(y)), a, b,
                   modes=("interpreter",))


def test_pointwise_dtypes_and_edge_values():
    ints = np.array([[3, -2, 0], [5, 7, -1]], np.int64)
    bools = np.array([True, False, True])
    special = np.array([-3.5, -0.0, 0.0, 2.5, np.inf, -np.inf, np.nan], np.float32)
    wide = np.array([-3.5, -1e-10, 1e-10, 2.5, 1e25, -1e25], np.float64)
    empty = np.zeros((0, 3), np.float32)
    for name in ["asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
                 "reciprocal", "square", "exp2", "erfc", "erfinv", "sgn", "frac", "deg2rad",
                 "rad2deg", "logit", "nan_to_num"]:
        for arr in (ints, bools, special, wide, empty):
            same(lambda lib, x: getattr(lib, name)(x), arr)
            same(lambda lib, x: getattr(x, name)(), arr)
    for name in ["xlogy", "hypot", "copysign", "fmod", "fmax", "fmin", "float_power",
                 "isclose", "heaviside"]:
        for a, b in [(ints, ints[0]), (special, special[::-1].copy()), (wide, wide[::-1].copy()),
                     (special[:3], ints[0]), (empty, empty[:, 0]), (bools, bools)]:
            same(lambda lib, x, y: getattr(lib, name)(x, y), a, b)


def test_accuracy_where_textbook_formulas_fail():
    same(lambda lib, x: lib.erfc(x), np.linspace(-6, 27, 60).astype(np.float32), rtol=3e-7)
    same(lambda lib, x: lib.erfinv(x),
         np.concatenate([1 - np.logspace(-7.2, -1, 20), np.linspace(-1, 1, 51)])
         .astype(np.float32))
    same(lambda lib, x: lib.erfinv(x), np.linspace(-0.999, 0.999, 41), rtol=1e-9)
    same(lambda lib, x: (lib.asinh(x), lib.sinh(x), lib.cosh(x)),
         np.array([1e-30, 1e-5, 1.0, 30, 89, -89, 1e10, 3e38], np.float32))
    same(lambda lib, x: lib.acosh(x),
         np.array([1, 1 + 1e-6, 2, 1e10, 3e38, 0.5, -1e25], np.float32))
    same(lambda lib, x: (lib.atanh(x), lib.asin(x), lib.acos(x)),
         np.array([1e-30, 1e-5, 0.5, 0.99999, 1, -1, 2], np.float32))
    same(lambda lib, x: lib.exp2(x), np.array([-150, -3, 0, 0.5, 127, 128], np.float32))
    same(lambda lib, a, b: lib.hypot(a, b), np.array([3e30, 0, 1e-30, np.inf, np.nan], np.float32),
         np.array([4e30, 0, 1e-30, np.nan, np.inf], np.float32))
    same(lambda lib, a, b: lib.xlogy(a, b), np.array([0, 0, 1, 2, np.nan, 0], np.float32),
         np.array([0, np.nan, 0, 3, 1, np.inf], np.float32))
    same(lambda lib, a: lib.fmod(a, -2.5), np.array([-7.5, -3.0, -0.0, 4.0, 1e20]))


def test_in_place_forms_and_their_dtype_rules():
    same(lambda lib, x: x.float_power_(2), np.arange(3.0, dtype=np.float32))   # refused
    same(lambda lib, x: x.float_power_(2), np.arange(3.0))
    same(lambda lib, x: x.asin_(), np.arange(3))                                # refused
    same(lambda lib, x: (x.reciprocal_(), x), np.arange(1.0, 4.0))
    same(lambda lib, x: x.fmod_(2), np.arange(-3, 4))
    same(lambda lib, x: x.lerp_(x * 2, 0.2), normal(4))
    same(lambda lib, x: x.addmm_(x * 2, x * 3), normal(2, 2), rtol=1e-5)
    same(lambda lib, x: x.clamp_min_(0), normal(4))
    for name in ["acos_", "atanh_", "arccosh_", "square_", "exp2_", "erfc_", "erfinv_",
                 "deg2rad_", "logit_", "sgn_", "frac_", "nan_to_num_", "cumprod_"]:
        fn = getattr(graphc.Tensor, name)
        assert callable(fn), name


def test_in_place_forms_differentiate_and_trace():
    def each_in_place(lib, x):
        outs = []
        for name, args in [("asin_", ()), ("lerp_", (x, 0.3)), ("addcmul_", (x, x)),
                           ("clamp_min_", (0.2,)), ("cumprod_", (1,)), ("addmm_", (x, x)),
                           ("xlogy_", (x,)), ("hypot_", (x,)), ("fmod_", (0.7,)),
                           ("erfinv_", ()), ("nan_to_num_", ()), ("lgamma_", ())]:
            y = x * 1
            getattr(y, name)(*args)
            outs.append(y)
        return outs
    check_function(each_in_place, uniform(0.1, 0.9, 3, 3), modes=("interpreter",))


def test_isclose_and_allclose():
    a = np.array([1.0, np.nan, np.inf, -np.inf, 1e-9, 100.0], np.float32)
    b = np.array([1.0 + 1e-6, np.nan, np.inf, np.inf, 0.0, 100.001], np.float32)
    for kwargs in ({}, {"equal_nan": True}, {"rtol": 0, "atol": 1e-3}):
        same(lambda lib, x, y: (lib.isclose(x, y, **kwargs), x.isclose(y, **kwargs),
                                lib.allclose(x, y, **kwargs)), a, b)
    same(lambda lib, x, y: lib.isclose(x, y), np.array([1, 2]), np.array([1, 3]))
    same(lambda lib, x, y: lib.isclose(x, y), np.array([1, 2]), np.array([1.0, 3.0]))


def test_pointwise_errors():
    raises_like(NotImplementedError, lambda lib, x: lib.frac(x), np.arange(3))
    raises_like(NotImplementedError, lambda lib, x: lib.hypot(x, x), np.arange(3))
    raises_like(NotImplementedError, lambda lib, x: lib.lerp(x, x, 0.5), np.arange(3))
    raises_like(RuntimeError, lambda lib, x: lib.fmod(x, 0), np.arange(3))
    raises_like(RuntimeError, lambda lib, x: lib.addcdiv(x, x, x), np.arange(3))
    raises_like(RuntimeError, lambda lib, x: lib.lerp(x, x.double(), 0.5), normal(3))
    raises_like(RuntimeError, lambda lib, x: lib.heaviside(x, x.double()), normal(3))
    raises_like(RuntimeError, lambda lib, x: lib.hypot(x, x[:2]), normal(3))


# ---- scans and reductions -------------------------------------------------------------------
def test_scans_and_reductions():
    check_function(lambda lib, a: (
        lib.cumprod(a, 1), lib.logcumsumexp(a, 0), *lib.cummax(a, 1), *lib.cummin(a, 0),
        lib.diff(a, 2, 1), lib.diff(a, 1, 0, prepend=a, append=a), lib.aminmax(a, dim=1).max,
        lib.nansum(a), lib.nanmean(a, 0), *lib.var_mean(a, 1), *lib.std_mean(a, 0),
        lib.dist(a, a * 2, 3), lib.renorm(a, 2, 0, 1.0)), normal(3, 5))


def test_cumprod_gradient_through_zeros_and_cummax_ties():
    zeros = np.array([[2.0, 0.0, 3.0, 0.0, 1.5], [0.5, 2.0, 0.0, 4.0, -1.0]], np.float32)
    ties = np.array([[1.0, 3.0, 3.0, 2.0, 3.0], [-1.0, -1.0, -2.0, -2.0, 5.0]], np.float32)
    check_function(lambda lib, z, t: (lib.cumprod(z, 1), lib.cumprod(z, 0),
                                      *lib.cummax(t, 1), *lib.cummin(t, 1), z.cumprod(-1)),
                   zeros, ties)


def test_nan_handling_of_scans_and_nan_reductions():
    f = np.array([[1.0, np.nan, 2.0, 2.0], [0.0, -1.0, -1.0, np.nan], [3, 3, np.inf, -np.inf]],
                 np.float32)
    check_function(lambda lib, a: (*lib.cummax(a, 1), *lib.cummin(a, 1), lib.nansum(a, 1),
                                   lib.nanmean(a, 1), lib.logcumsumexp(a[:2], 1)),
                   f, modes=("interpreter",))
    # Values at +-inf (PyTorch's gradient there is NaN).
    same(lambda lib, a: lib.logcumsumexp(a, 1), f)


def test_scan_and_reduction_dtypes_and_shapes():
    ints = np.array([[3, -2, 0], [5, 7, -1]], np.int64)
    bools = np.array([[True, False, True], [False, False, True]])
    empty = np.zeros((0, 3), np.float32)
    for arr in (ints, bools, empty, np.float32(2.0)):
        for d in (0, -1):
            for name in ["cumprod", "logcumsumexp", "cummax", "cummin"]:
                same(lambda lib, x: getattr(lib, name)(x, d), arr)
            same(lambda lib, x: lib.diff(x, dim=d), arr)
            same(lambda lib, x: lib.aminmax(x, dim=d, keepdim=True), arr)
            same(lambda lib, x: (lib.nansum(x, d), lib.nanmean(x, d)), arr)
            same(lambda lib, x: lib.var_mean(x, d, correction=0), arr)
        same(lambda lib, x: (lib.aminmax(x), lib.aminmax(x, keepdim=True)), arr)
        same(lambda lib, x: (lib.dist(x, x * 2), lib.dist(x, x * 2, 0)), arr)
        same(lambda lib, x: lib.renorm(x, 1, 1, 2.0), arr)
    same(lambda lib, x: lib.cumprod(x, 1, dtype=lib.float64), ints)
    raises_like(IndexError, lambda lib, x: lib.cummax(x, 2), ints)
    raises_like(RuntimeError, lambda lib, x: lib.diff(x, -1), ints)


def test_empty_and_integer_inputs_compiled():
    empty, ones = np.zeros((0, 3), np.float32), np.ones((3, 2), np.float32)
    ints = np.array([[3, -2, 0], [5, 7, -1]])
    check_function(lambda lib, e, w, i: (
        lib.cumprod(e, 0), lib.cumprod(e, 1), lib.einsum("ij,jk->ik", e, w),
        lib.logcumsumexp(e, 1), *lib.cummax(e, 1), lib.roll(i, 1), lib.diff(i), lib.kron(i, i),
        lib.square(i), lib.fmod(i, 3), lib.cumprod(i, 1), *lib.cummin(i, 1),
        lib.tensordot(i, i, ([1], [1])), lib.einsum("ij,kj", i, i), lib.rot90(i),
        lib.diagonal(i), lib.diag_embed(e), lib.cdist(e, w.T), lib.nansum(e, 0), lib.atan(i),
        lib.asinh(e), lib.tile(i, (2, 1))), empty, ones, ints)


# ---- contractions ---------------------------------------------------------------------------
def test_einsum_values_and_gradients():
    check_function(lambda lib, a, b, c: (
        lib.einsum("ij,jk->ik", a, b), lib.einsum("ij,jk", a, b), lib.einsum("ii", c),
        lib.einsum("ii->i", c), lib.einsum("...j,jk->...k", a, b),
        lib.einsum("bij,bjk->bik", a[None], b[None]), lib.einsum("i,j->ij", a[0], b[0]),
        lib.einsum("ij,ij->", a, c), lib.einsum("aB,Ba", c, c),
        lib.einsum("ij,jk,kl->il", c, c, a), lib.einsum(a, [0, 1], b, [1, 2], [0, 2]),
        lib.einsum("b...,...k->bk", a, b), lib.einsum("i j , j k -> i k", [c, a])),
        normal(3, 3), normal(3, 4), normal(3, 3), rtol=1e-5, atol=1e-5)


EINSUM_CASES = [
    ("bij,jk->bik", [(2, 3, 4), (4, 5)]), ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 3)]),
    ("iij->j", [(3, 3, 2)]), ("ijk->", [(2, 3, 4)]), ("i,i,i", [(3,), (3,), (3,)]),
    ("ij,jk->ik", [(1, 3), (3, 3)]), ("ij,jk->ik", [(3, 1), (4, 2)]),
    ("...,...", [(3, 3), (3,)]), ("i...->...", [(2, 3, 4)]), ("...->...", [()]),
    ("ij,->ij", [(3, 3), ()]), ("ij,jk->ik", [(0, 3), (3, 3)]), ("ij,jk->", [(3, 3), (3, 0)]),
    ("i...j,j...k->ik", [(2, 3, 4), (4, 5)]), ("...i,...i->...", [(2, 3, 4), (3, 4)]),
    ("bij,bkj->bik", [(2, 3, 4), (2, 3, 4)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES)
def test_einsum_forms(equation, shapes):
    same(lambda lib, *ops: lib.einsum(equation, *ops),
         *[normal(*s) for s in shapes], rtol=1e-5, atol=1e-6)


def test_einsum_integers_and_errors():
    ints = np.arange(12).reshape(3, 4)
    same(lambda lib, a: (lib.einsum("ij,kj", a, a), lib.tensordot(a, a, ([1], [1]))), ints)
    c, b = normal(3, 3), normal(3, 4)
    for equation, ops in [("ij,jk", (c, b.T.copy())), ("ij,jk->ii", (c, c)),
                          ("ij->k", (c,)), ("ij", (normal(2, 3, 4),)), ("ij,jk", (c,)),
                          ("i#", (c[0],)), ("ij,jk->ik", (c, c.astype(np.float64))),
                          ("ii", (b,)), ("...ij,...jk", (normal(2, 2, 3), normal(3, 3, 4))),
                          ("ij,jk->ik", (c, c, c))]:
        raises_like(RuntimeError, lambda lib, *xs: lib.einsum(equation, *xs), *ops)


def test_tensordot_kron_and_blas_forms():
    check_function(lambda lib, a, b, c, v: (
        lib.tensordot(a, b, 1), lib.tensordot(a, c, ([1], [0])), lib.tensordot(a, a, 2),
        lib.kron(a, c), lib.addmm(c, c, c, beta=0.5, alpha=2), lib.addmm(c[0], c, c),
        lib.addmm(c, c, c, beta=0), lib.addmv(v, b.t(), a[1]), lib.addr(c, a[0], a[1]),
        lib.baddbmm(c, c[None], c[None]),
        lib.addbmm(c, c[None].repeat(2, 1, 1), c[None].repeat(2, 1, 1)),
        lib.linalg.multi_dot([a[0], c, c, a[1]]),
        c.addmm(c, c)),
        normal(3, 3), normal(3, 4), normal(3, 3), normal(4), rtol=1e-5, atol=1e-5)


def test_blas_forms_round_half_precision_once_as_pytorch():
    """PyTorch's addmm family reads bfloat16/float16 in float32 and rounds the sum once."""
    rng = np.random.default_rng(3)
    c, a, b, v = (rng.standard_normal(s).astype(np.float32)
                  for s in [(16, 24), (16, 32), (32, 24), (16,)])
    for dtype in ("bfloat16", "float16"):
        got, want = (
            [x.float().numpy() for x in (
                lib.addmm(*ts[:3]), lib.addmm(*ts[:3], beta=0.5, alpha=2),
                lib.addmv(ts[3], ts[1], ts[2][:, 0]), lib.baddbmm(*(t[None] for t in ts[:3])))]
            for lib in (graphc, torch)
            for ts in [[lib.tensor(x).to(getattr(lib, dtype)) for x in (c, a, b, v)]])
        for g, w in zip(got, want):
            assert np.array_equal(g, w), (dtype, np.abs(g - w).max())


def test_contraction_shapes_and_errors():
    a, c = normal(2, 3, 4), normal(3, 3)
    for dims in (0, 1, 2, ([1], [0]), ([0, 1], [1, 0]), [[1, 2], [0, 1]], 3, ([0], [0])):
        same(lambda lib, x, y: lib.tensordot(x, y, dims), a, np.ones((4, 4, 2), np.float32),
             rtol=1e-5)
    for x, y in [(c, np.arange(12).reshape(3, 4)), (c[0], c), (np.float32(2), c),
                 (a, c), (np.zeros((0, 2), np.float32), c)]:
        same(lambda lib, p, q: lib.kron(p, q), x, y)
    same(lambda lib, x, y: lib.addmm(x, y, x), c, a[0])                # mismatch
    same(lambda lib, x: lib.addmm(x, x, x[0]), c)                      # not a matrix
    same(lambda lib, x: (lib.chain_matmul(x, x, x), lib.chain_matmul(x)), c, rtol=1e-5)
    same(lambda lib, x: lib.chain_matmul(x, x[0]), c)
    same(lambda lib, x: lib.linalg.multi_dot([x]), c)
    same(lambda lib, x, y: lib.baddbmm(x, y, y), c, a)


def test_diagonals_trace_and_cross():
    check_function(lambda lib, a, c: (
        lib.diagonal(c, 1), lib.diagonal(a, -1, 0, 2), a.diagonal(0, -1, 1),
        lib.diag_embed(a, -1), lib.diag_embed(c, 2, 0, 2), c.trace(),
        lib.cross(c, c * 2, dim=1), lib.linalg.cross(a[..., :3], a[..., 1:])),
        normal(2, 3, 4), normal(3, 3))
    a, c = normal(2, 3, 4), normal(3, 3)
    for off in (-4, -1, 0, 1, 5):
        same(lambda lib, x: (lib.diagonal(x, off), lib.diag_embed(x, off, 0, 2)), c)
        same(lambda lib, x: (lib.diagonal(x, off, -1, 1), lib.diag_embed(x, off, 3, 1)), a)
    same(lambda lib, x: lib.diagonal(x, 0, 1, 1), c)
    same(lambda lib, x: lib.diag_embed(x), np.float32(3))
    same(lambda lib, x: (x.trace(), x.diag_embed()), np.arange(9).reshape(3, 3))
    same(lambda lib, x: x.trace(), a)
    same(lambda lib, x, y: lib.cross(x, y), c, c[::-1].copy())
    same(lambda lib, x, y: lib.cross(x, y, dim=0), c, c[0])
    same(lambda lib, x, y: lib.cross(x, y, dim=1), c, np.arange(9).reshape(3, 3))
    same(lambda lib, x, y: lib.linalg.cross(x, y), c, np.arange(9).reshape(3, 3))
    same(lambda lib, x: lib.cross(x, x.flip(0), dim=1), a, atol=1e-6)


# ---- shape functions ------------------------------------------------------------------------
def test_shape_functions_values_and_gradients():
    check_function(lambda lib, a, v: (
        lib.roll(a, 1), lib.roll(a, (1, -1), (0, 1)), a.roll(-4, 0), lib.rot90(a),
        lib.rot90(a, 3, (1, 0)), lib.rot90(a, 2), lib.tile(a, (2,)), a.tile((2, 1, 1)),
        *lib.meshgrid(v, a[1], indexing="xy"), *lib.meshgrid(v, v[:2], indexing="ij"),
        lib.cartesian_prod(v, a[1]), lib.block_diag(a, v, a[0, 0]), lib.atleast_3d(v),
        lib.column_stack([v, a[0]]), lib.dstack([a, a]), lib.flipud(a), lib.fliplr(a),
        lib.cdist(a, a * 2), lib.cdist(a, a + 1, p=1), lib.cdist(a, a), lib.atleast_2d(v)),
        normal(3, 3), normal(3))


def test_shape_function_edges():
    for x in (normal(2, 3, 4), np.arange(12).reshape(3, 4), np.zeros((0, 3), np.float32),
              np.arange(4.0, dtype=np.float32), np.float32(3)):
        same(lambda lib, t: (lib.roll(t, 2), lib.roll(t, -7), lib.roll(t, 1, 0)), x)
        same(lambda lib, t: lib.roll(t, (1, -2), (0, -1)), x)
        for k in (-1, 0, 1, 2, 3, 5):
            same(lambda lib, t: (lib.rot90(t, k), lib.rot90(t, k, [1, 0])), x)
        same(lambda lib, t: (lib.tile(t, (2,)), lib.tile(t, (2, 1, 2, 1))), x)
        same(lambda lib, t: lib.tile(t, 2), x)
        same(lambda lib, t: (lib.atleast_1d(t), lib.atleast_2d(t), lib.atleast_3d(t),
                             lib.atleast_3d(t, t), lib.atleast_2d([t])), x)
        same(lambda lib, t: (lib.flipud(t), lib.fliplr(t)), x)
        same(lambda lib, t: lib.block_diag(t, t), x)
        same(lambda lib, t: (lib.column_stack([t, t]), lib.dstack([t, t])), x)
        same(lambda lib, t: (lib.cdist(t, t * 2), lib.cdist(t, t + 1, p=0),
                             lib.cdist(t, t + 1, p=float("inf"))), x)
        same(lambda lib, t: (lib.vander(t), lib.vander(t, 3, True), lib.vander(t, 0)), x)
    v, m = np.arange(4.0, dtype=np.float32), normal(3, 3)
    same(lambda lib, a, b: lib.meshgrid(a, b), v, np.arange(3))          # dtypes differ
    same(lambda lib, a, b: lib.meshgrid([a, b, a], indexing="xy"), v, v[:2].copy())
    same(lambda lib, a: lib.meshgrid(a, indexing="xy"), v)
    same(lambda lib, a: lib.meshgrid(a, a, indexing="ab"), v)
    same(lambda lib, a, b: lib.meshgrid(a, b), m, v)
    same(lambda lib, a: lib.cartesian_prod(a, a[:2], a), v)
    same(lambda lib, a, b: lib.block_diag(a, b, b[0]), m, np.arange(3))
    same(lambda lib, a, b: lib.cdist(a, b), normal(2, 3, 4), normal(2, 5, 4), rtol=1e-5)
    same(lambda lib, a, b: lib.cdist(a, b), m, normal(2, 4))
    same(lambda lib, a: lib.cdist(a, a), np.arange(9).reshape(3, 3))
    same(lambda lib, a: (lib.vander(a), lib.vander(a, 2)), np.arange(1, 4))
    for r, c, o in [(3, 4, 0), (4, 3, 1), (4, 3, -2), (0, 3, 0), (3, 3, 10), (3, 3, -10)]:
        same(lambda lib: (lib.tril_indices(r, c, o), lib.triu_indices(r, c, o)))
    same(lambda lib: lib.triu_indices(3, 3, dtype=lib.int32))


# ---- linalg ---------------------------------------------------------------------------------
LINALG = (lambda lib, a, b, m: (
    lib.linalg.norm(a), lib.linalg.vector_norm(a, 3, 1), lib.linalg.matrix_norm(a),
    lib.linalg.matrix_norm(a, 1), lib.linalg.norm(a, float("inf")),
    lib.linalg.matrix_norm(m, -1), lib.linalg.det(a), lib.linalg.det(m), lib.det(a),
    lib.linalg.inv(a), lib.linalg.inv(m), lib.inverse(a), a.inverse(),
    lib.linalg.solve(a, b), lib.linalg.solve(m, b[:, 0]), lib.linalg.vecdot(a, a)),
    normal(3, 3), normal(3, 2), normal(2, 3, 3) + 3 * np.eye(3, dtype=np.float32))


def test_linalg_values_and_gradients():
    check_function(*LINALG, modes=("interpreter",), rtol=1e-4, atol=1e-5)
    check_function(lambda lib, a, b: (lib.linalg.det(a), lib.linalg.solve(a, b)),
                   normal(2, 2), normal(2), modes=("cpu",), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_linalg_compiled_on_cpu():
    """Slow only because each 3x3 elimination unrolls into a long program."""
    check_function(*LINALG, modes=("cpu",), rtol=1e-4, atol=1e-5)


def test_linalg_pivoting_singular_matrices_and_errors():
    permuted = np.array([[0, 1, 0], [0, 0, 2], [3, 0, 0]], np.float64)    # needs pivoting
    same(lambda lib, a: (lib.linalg.det(a), lib.linalg.inv(a), lib.linalg.solve(a, a[0])),
         permuted, rtol=1e-12)
    singular = np.array([[1, 2], [2, 4]], np.float32)
    same(lambda lib, a: lib.linalg.det(a), singular)
    same(lambda lib, a: lib.linalg.det(a), np.zeros((0, 0), np.float32))
    same(lambda lib, a: lib.linalg.inv(a), np.zeros((0, 0), np.float32))
    for fn in (lambda lib, a: lib.linalg.inv(a), lambda lib, a: lib.linalg.solve(a, a)):
        raises_like(RuntimeError, fn, singular)
        raises_like(RuntimeError, fn, np.arange(6.0).reshape(2, 3))        # not square
        raises_like(RuntimeError, fn, np.eye(2, dtype=np.int64))           # not floating
    assert issubclass(graphc.linalg.LinAlgError, RuntimeError)
    raises_like(RuntimeError, lambda lib, a: lib.linalg.solve(a, a[:2]), normal(3, 3))
    same(lambda lib, a, b: lib.linalg.solve(a, b), normal(2, 3, 3), normal(3, 2), rtol=1e-4,
         atol=1e-5)
    for x in (normal(3, 3), normal(2, 3, 3, dtype=np.float64), np.arange(12).reshape(3, 4),
              np.arange(4.0, dtype=np.float32), np.zeros((0, 3), np.float32)):
        same(lambda lib, t: (lib.linalg.norm(t), lib.linalg.norm(t, 2, dim=-1),
                             lib.linalg.vector_norm(t), lib.linalg.vector_norm(t, 0.5, (0,))), x)
        same(lambda lib, t: (lib.linalg.norm(t, 1), lib.linalg.norm(t, "fro"),
                             lib.linalg.norm(t, float("inf"))), x)
        same(lambda lib, t: (lib.linalg.matrix_norm(t), lib.linalg.matrix_norm(t, -1),
                             lib.linalg.matrix_norm(t, float("inf"), keepdim=True),
                             lib.linalg.matrix_norm(t, 1, (1, 0))), x)
        same(lambda lib, t: lib.linalg.matrix_norm(t, 3), x)
        same(lambda lib, t: lib.linalg.vector_norm(t, 3, dtype=lib.float64), x)
    with pytest.raises(NotImplementedError, match="singular values"):
        graphc.linalg.matrix_norm(graphc.eye(2), 2)


def test_slogdet_cholesky_and_matrix_power():
    a = normal(3, 3)
    spd = (a @ a.T + 3 * np.eye(3)).astype(np.float32)
    check_function(lambda lib, a, s, m: (
        *lib.linalg.slogdet(a), *lib.linalg.slogdet(m), lib.linalg.cholesky(s),
        lib.linalg.cholesky(s, upper=True), lib.linalg.matrix_power(a, 3),
        lib.linalg.matrix_power(a, 0), lib.linalg.matrix_power(s, -2), a.matrix_power(5),
        lib.slogdet(a).logabsdet), a, spd, normal(2, 3, 3), modes=("interpreter",),
        rtol=1e-4, atol=1e-5)
    same(lambda lib, x: lib.linalg.slogdet(x), np.zeros((2, 2), np.float32))
    same(lambda lib, x: lib.linalg.slogdet(x), np.array([[0.0, 1.0], [1.0, 0.0]], np.float32))
    raises_like(RuntimeError, lambda lib, x: lib.linalg.cholesky(x),
                np.array([[1.0, 2.0], [2.0, 1.0]], np.float32))
    raises_like(RuntimeError, lambda lib, x: lib.linalg.matrix_power(x, 2), normal(2, 3))
    with pytest.raises(NotImplementedError, match="torch.linalg.svd.*Instead"):
        graphc.linalg.svd(graphc.eye(2))
    with pytest.raises(AttributeError):
        graphc.linalg.no_such_function


def test_compiled_solve_has_no_graph_break():
    """The pivot search is tensor code (argmax, comparisons), not Python control flow."""
    a = graphc.tensor(np.array([[0.0, 2.0], [1.0, 1.0]], np.float32))
    solve = graphc.compile(lambda m: graphc.linalg.solve(m, m[:, 0]), fullgraph=True)
    np.testing.assert_allclose(solve(a).numpy(), [1.0, 0.0], atol=1e-6)
    assert math.isclose(float(graphc.compile(graphc.linalg.det, fullgraph=True)(a)), -2.0)


# ---- sparse COO -----------------------------------------------------------------------------
COO_INDICES = np.array([[0, 1, 1, 2, 0], [2, 0, 2, 1, 2]])       # (0, 2) appears twice


def test_sparse_to_dense_and_mm_with_gradients():
    def products(lib, values, dense):
        s = lib.sparse_coo_tensor(lib.tensor(COO_INDICES), values, (3, 3))
        return (s.to_dense(), lib.sparse.mm(s, dense), s @ dense, s.t().to_dense(),
                lib.sparse.mm(s.t(), dense))
    check_function(products, normal(5), normal(3, 4))


def test_sparse_from_dense_and_coalesce():
    x = normal(3, 4)
    x[x < 0] = 0
    check_function(lambda lib, d: (d.to_sparse().values(), d.to_sparse().indices(),
                                   d.to_sparse().to_dense(), lib.sparse.mm(d.to_sparse(), d.t())),
                   x, modes=())
    for lib in (torch, graphc):
        s = lib.sparse_coo_tensor(lib.tensor(COO_INDICES), lib.arange(5.0))
        assert s.is_sparse and not lib.ones(1).is_sparse and s._nnz() == 5
        assert tuple(s.shape) == (3, 3) and s.to_dense().tolist()[0][2] == 4.0
        assert s.coalesce().indices().tolist() == [[0, 1, 1, 2], [2, 0, 2, 1]]
        assert s.coalesce().values().tolist() == [4.0, 1.0, 2.0, 3.0]
        assert lib.ones(2).to_dense().tolist() == [1.0, 1.0]


def test_sparse_errors_and_graph_break():
    raises_like(RuntimeError, lambda lib, i, v: lib.sparse_coo_tensor(i, v[:3]),
                COO_INDICES, normal(5))
    raises_like(RuntimeError, lambda lib, i, v: lib.sparse.mm(lib.sparse_coo_tensor(i, v),
                                                              lib.ones(4, 2)),
                COO_INDICES, normal(5))
    with pytest.raises(RuntimeError, match="size is inconsistent"):
        graphc.sparse_coo_tensor(graphc.tensor(COO_INDICES), graphc.ones(5), (2, 3),
                                 check_invariants=True)
    with pytest.raises(graphc.GraphBreak, match="to_sparse"):
        graphc.compile(lambda d: d.to_sparse().values(), fullgraph=True)(graphc.ones(2, 2))



# ---- more of torch's namespace: small pointwise, splits, scatters, statistics -------------------
def _more_functions(lib, a, c):
    return (lib.sinc(a), lib.logaddexp2(a, c[0, 0]), lib.ldexp(a, lib.tensor(2)), lib.fix(a * 3),
            *lib.tensor_split(a, 3, dim=1), *lib.hsplit(a, [1]), a.unfold(1, 2, 1),
            lib.moveaxis(a, 0, 1), lib.diagflat(a[0], 1), *lib.broadcast_tensors(a, c[0, :1]),
            lib.select_scatter(a, c[0, :2].sum() * a[1], 0, 2),
            lib.slice_scatter(a, a[:, ::2] * 3, 1, 0, None, 2),
            lib.diagonal_scatter(a, c[0] * 2, 1),
            lib.inner(a, a), lib.ger(c[0], c[1]), lib.vdot(c[0], c[1]), lib.trapezoid(a),
            lib.cumulative_trapezoid(a, dim=0), lib.cov(a), lib.corrcoef(a),
            lib.combinations(a[0], 2), lib.ravel(a), lib.row_stack([a, a]), a.mH, a.H,
            lib.adjoint(c))


def test_more_functions_values_and_gradients():
    check_function(_more_functions, normal(3, 4), normal(3, 3), rtol=1e-4, atol=1e-5)


def test_more_linalg_and_gamma():
    c = normal(3, 3)
    spd = (c @ c.T + 3 * np.eye(3)).astype(np.float32)
    check_function(lambda lib, a, c, s: (
        lib.mvlgamma(a.abs() + 2, 2), lib.logdet(s), lib.cholesky_solve(c, lib.linalg.cholesky(s)),
        lib.cholesky_inverse(lib.linalg.cholesky(s, upper=True), upper=True)),
        normal(3, 4), c, spd, modes=("interpreter",), rtol=1e-4, atol=1e-5)
    same(lambda lib, x: (lib.logdet(x), lib.logdet(x * 0)), c, rtol=1e-5)


def test_more_functions_edges():
    f = np.array([-3.5, -0.0, 0.0, 2.5, np.inf, -np.inf, np.nan, 0.5, 1.0], np.float32)
    ints, v = np.arange(12).reshape(3, 4), np.arange(10.0, dtype=np.float32)
    for x in (f, ints, np.array([True, False]), np.zeros((0, 2), np.float32)):
        for name in ["sinc", "signbit", "fix", "isposinf", "isneginf", "isreal", "positive",
                     "ravel"]:
            same(lambda lib, t: (getattr(lib, name)(t), getattr(t, name)()), x)
        same(lambda lib, t: lib.logaddexp2(t, t * 2), x)
        same(lambda lib, t: lib.ldexp(t, t), x)
        same(lambda lib, t: lib.mvlgamma(t.abs() + 2, 3), x, rtol=1e-5)
    for x in (normal(2, 3, 4), normal(3, 3), ints, v):
        for sections in (3, [1, 2], (0, 5, 2), [-1]):
            same(lambda lib, t: (lib.tensor_split(t, sections),
                                 lib.tensor_split(t, sections, -1)), x)
            same(lambda lib, t: lib.hsplit(t, sections), x)
            same(lambda lib, t: lib.vsplit(t, sections), x)
            same(lambda lib, t: lib.dsplit(t, sections), x)
        for args in ((0, 2, 1), (-1, 3, 2), (0, 1, 1), (-1, 5, 1), (0, 2, 0)):
            same(lambda lib, t: t.unfold(*args), x)
        same(lambda lib, t: (lib.moveaxis(t, 0, -1), lib.swapdims(t, 0, -1)), x)
        same(lambda lib, t: lib.moveaxis(t, (0, 1), (1, 0)), x)
        same(lambda lib, t: (lib.diagflat(t), lib.diagflat(t, -2)), x)
        same(lambda lib, t: lib.broadcast_tensors(t, t[:, None]), x)
        same(lambda lib, t: lib.select_scatter(t, t.select(-1, 0), -1, -1), x)
        same(lambda lib, t: lib.slice_scatter(t, t[::2] * 0, 0, 0, None, 2), x)
        same(lambda lib, t: lib.diagonal_scatter(t, lib.diagonal(t, 1, 0, -1) * 0 + 7, 1, 0, -1), x)
        same(lambda lib, t: (lib.inner(t, t[0]), lib.inner(t, t[0, 0])), x, rtol=1e-5)
        same(lambda lib, t: (lib.trapz(t, dx=0.5, dim=0), lib.trapezoid(t, t * 2)), x, rtol=1e-5)
        same(lambda lib, t: (lib.cov(t, correction=0), lib.corrcoef(t)), x, rtol=1e-5, atol=1e-6)
        same(lambda lib, t: lib.cov(t, fweights=lib.arange(t.shape[-1]) + 1,
                                    aweights=lib.arange(t.shape[-1]) * 0.5 + 1), x,
             rtol=1e-5, atol=1e-6)
        same(lambda lib, t: (t.fill_diagonal_(3.0), t.fill_diagonal_(3, wrap=True)), x)
    same(lambda lib, t: t.fill_diagonal_(3, wrap=True), np.zeros((7, 3), np.float32))
    same(lambda lib, t: t.fill_diagonal_(3), np.zeros((2, 2, 2)))
    same(lambda lib, t: (lib.combinations(t), lib.combinations(t, 0), lib.combinations(t, 1)), v)
    same(lambda lib, t: (lib.combinations(t, 3, True), lib.combinations(t, 5)), v[:3].copy())
    same(lambda lib, t: (lib.unravel_index(t, (3, 4)), lib.unravel_index(t, (12,))), ints)
    same(lambda lib: (lib.broadcast_shapes((2, 1), (3,), 1),
                      lib.unravel_index(lib.tensor(5), (2, 3))))
    same(lambda lib: lib.broadcast_shapes((2, 1), (3, 2)))
    same(lambda lib, t: lib.broadcast_tensors(t, t[:2]), v)
    for x in (normal(2, 3, 4), normal(3, 3), v, np.float32(2)):
        same(lambda lib, t: lib.adjoint(t), x)
        same(lambda lib, t: t.mH, x)
        same(lambda lib, t: t.H, x)
