"""Numerics of generated code: regression tests for wrong results that differential fuzzing
against PyTorch found, on every backend (eager, the interpreter, and the ``backend``
fixture's code generators, fused and unfused) in float32 and float64.

- sin/cos/tan of large arguments (the cpu range reduction was too short);
- float32 sums (layer_norm of a constant row, means, softmax) added one element at a time;
- int64 ``//`` and ``%`` above 2**53 (computed through float64) and with negative operands;
- float ``%`` and ``//`` with large quotients and infinite divisors (PyTorch's semantics).
"""
import math

import numpy as np
import pytest

import graphc
import graphc.nn.functional as F

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

FLOATS = [np.float32, np.float64]


def results(fn, arrays, backend):
    """fn's result (as numpy) eagerly, on the interpreter, and compiled on ``backend``
    fused and unfused: {label: array}."""
    tensors = [graphc.tensor(a) for a in arrays]
    out = {"eager": fn(*tensors).numpy()}
    for name, fuse in (("interpreter", True), (backend, True), (backend, False)):
        compiled = graphc.compile(fn, backend=name, fuse=fuse)
        out[f"{name}{'' if fuse else ' unfused'}"] = compiled(*tensors).numpy()
    return out


def ulp_error(got, want64, dtype):
    """|got - want| in units of the last place of want rounded to dtype."""
    want = want64.astype(dtype)
    ulp = np.spacing(np.abs(want)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want64) / ulp


def assert_same_bits(got, want, label):
    """Equal values, equal signs of zeros, NaN where want is NaN."""
    assert got.dtype == want.dtype, label
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), (label, got, want)
    assert np.array_equal(got[~nan], want[~nan]), (label, got, want)
    assert np.array_equal(np.signbit(got[~nan]), np.signbit(want[~nan])), (label, got, want)


# ---- sin, cos, tan over the whole finite range ---------------------------------------------
def _trig_arguments(dtype, n=4000):
    rng = np.random.default_rng(11)
    top = math.log(float(np.finfo(dtype).max))
    huge = np.exp(rng.uniform(math.log(1e4), top, n)) * rng.choice([-1.0, 1.0], n)
    moderate = rng.uniform(-2e4, 2e4, n)
    # The arguments the fuzzer found: wrong from ~4e7 (float32) and ~1e16 (float64).
    found = [4e7, -4.3e7, 1e8, 3.3e9, 1e16, 1e22, 3e38, -3.4028235e38]
    if dtype == np.float64:
        found += [1e100, -1e200, 1.7976931348623157e308, 2.0 ** 1000 + 2.0 ** 960]
    return np.concatenate([huge, moderate, found]).astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_sin_cos_are_accurate_for_huge_arguments(backend, dtype):
    x = _trig_arguments(dtype)
    # Generated float32 code is computed in float64 and rounded once; numpy's own float32
    # sin/cos (eager, interpreter) are within 1.5 ulp; float64 within 2 ulp (measured).
    limit = 2.0
    for name in ("sin", "cos"):
        want = getattr(np, name)(x.astype(np.float64))
        for label, got in results(lambda t: getattr(t, name)(), [x], backend).items():
            worst = ulp_error(got, want, dtype).argmax()
            assert ulp_error(got, want, dtype)[worst] <= limit, \
                (name, label, x[worst], got[worst], want[worst])


@pytest.mark.slow
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_tan_of_huge_arguments_matches_pytorch(backend, dtype):
    torch = pytest.importorskip("torch")
    x = _trig_arguments(dtype, n=500)
    x = x[np.abs(np.cos(x.astype(np.float64))) > 0.1]       # away from the poles
    want = torch.tan(torch.from_numpy(x)).numpy()
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for label, got in results(lambda t: t.tan(), [x], backend).items():
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0, err_msg=label)


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_sin_cos_special_values(backend, dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(dtype).tiny,
                  -np.finfo(dtype).smallest_subnormal], dtype)
    for name in ("sin", "cos"):
        want = getattr(np, name)(x)
        for label, got in results(lambda t: getattr(t, name)(), [x], backend).items():
            assert_same_bits(got, want, (name, label))


# ---- sums ------------------------------------------------------------------------------------
def test_layer_norm_of_a_constant_row_is_zero(backend):
    """Found: -0.153 on the cpu for a float32 row of 2**20 (float32 partial sums drift);
    float32 sums now accumulate in float64, so the mean is exactly 3.7 as in PyTorch."""
    for n in (4096, 1 << 20):
        x = np.full((1, n), 3.7, np.float32)
        for label, got in results(lambda t: F.layer_norm(t, (n,)), [x], backend).items():
            assert np.all(got == 0), (n, label, np.abs(got).max())


@pytest.mark.slow
@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_sums_means_and_softmax_match_pytorch(backend, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 70000)) * 100 + 1000).astype(dtype)
    t = torch.from_numpy(x)
    wants = [t.sum(1), t.mean(), t.var(1), torch.softmax(t[:, :5000] / 1000, 1)]

    def fn(a):
        return [a.sum(1), a.mean(), a.var(1), graphc.softmax(a[:, :5000] / 1000, 1)]
    tensors = [graphc.tensor(x)]
    runs = {"eager": fn(*tensors)}
    for name, fuse in (("interpreter", True), (backend, True), (backend, False)):
        runs[f"{name} {fuse}"] = graphc.compile(fn, backend=name, fuse=fuse)(*tensors)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    for label, gots in runs.items():
        for got, want in zip(gots, wants):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=rtol, atol=0,
                                       err_msg=label)


def test_float32_sum_is_the_rounded_exact_sum(backend):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(1 << 20) * np.exp(rng.uniform(-8, 8, 1 << 20))).astype(np.float32)
    exact = math.fsum(x.astype(np.float64))
    for label, got in results(lambda t: t.sum(), [x], backend).items():
        assert ulp_error(np.atleast_1d(got), np.array([exact]), np.float32)[0] <= 1, label


def test_float64_sum_error_stays_small(backend):
    rng = np.random.default_rng(6)
    x = rng.uniform(0.5, 1.5, 1 << 21)      # one at a time: ~5e-14 relative
    exact = math.fsum(x)
    for label, got in results(lambda t: t.sum(), [x], backend).items():
        assert abs(float(got) - exact) <= 2e-14 * exact, (label, float(got) - exact)


# ---- integer // and % --------------------------------------------------------------------------
BIG = [2 ** 62 + 1, -(2 ** 62) - 1, 2 ** 53 + 1, -(2 ** 53) - 3, 9007199254740993,
       -7, 7, 0, -1, 2 ** 63 - 1, -(2 ** 63), 123456789012345678]
DIVISORS = [3, 7, 2, -2, -5, 11, -3, 13, 1, -1, 3, 1000003]


@pytest.mark.parametrize("dtype", [np.int64, np.int32], ids=["i64", "i32"])
def test_integer_floor_divide_and_remainder_are_exact(backend, dtype):
    torch = pytest.importorskip("torch")
    info = np.iinfo(dtype)
    a = np.array([v for v in BIG if info.min <= v <= info.max], dtype)
    b = np.resize(np.array(DIVISORS, dtype), a.shape)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    cases = {"//": (lambda x, y: x // y, ta // tb), "%": (lambda x, y: x % y, ta % tb),
             "// scalar": (lambda x, y: x // -3 + y * 0, ta // -3),
             "% scalar": (lambda x, y: x % 5 + y * 0, ta % 5),
             "div floor": (lambda x, y: x.div(y, rounding_mode="floor"),
                           ta.div(tb, rounding_mode="floor"))}
    for op, (fn, want) in cases.items():
        for label, got in results(fn, [a, b], backend).items():
            np.testing.assert_array_equal(got, want.numpy(), err_msg=f"{op} {label}")


def test_integer_floor_divide_broadcasts_a_column(backend):
    torch = pytest.importorskip("torch")
    a = np.array([[2 ** 60 + 7], [-(2 ** 60) - 7], [5]], np.int64)
    b = np.array([-4, 3, 2 ** 40 + 1], np.int64)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    for label, got in results(lambda x, y: x // y - x % y, [a, b], backend).items():
        np.testing.assert_array_equal(got, (ta // tb - ta % tb).numpy(), err_msg=label)


# ---- float % and // ------------------------------------------------------------------------------
FLOAT_A = [3.0, -3.0, 0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, 1e20, -1e20, 5.0, -5.0,
           1e300, 7.5e-310, 1.0, -1.0]
FLOAT_B = [np.inf, -np.inf, 3.0, 0.1, -0.1, 7.0, 2.0, 0.1, 3.0, 3.0, -np.inf, np.inf,
           1e-300, 3e-320, 0.0, 0.0]


@pytest.mark.parametrize("dtype", FLOATS, ids=["f32", "f64"])
def test_float_remainder_and_floor_divide_match_pytorch(backend, dtype):
    """PyTorch's % is fmod plus the divisor when their signs differ: x % inf is x for x >= 0
    and inf for x < 0, large quotients are exact (1e20 % 3.0), zeros keep fmod's sign;
    // is PyTorch's div_floor (1.0 // 0.1 is 9.0).  Every pair of (a, b) is checked."""
    torch = pytest.importorskip("torch")
    a = np.repeat(np.array(FLOAT_A, dtype), len(FLOAT_B))
    b = np.tile(np.array(FLOAT_B, dtype), len(FLOAT_A))

    def torch_pairwise(fn, *arrays):
        # One pair at a time: PyTorch's vectorised CPU kernel gives NaN where x / y
        # overflows (3.0 % 3e-320); its scalar kernel, like graphc, gives fmod's exact
        # remainder there, and agrees with the vectorised one everywhere else.
        return np.array([fn(*(torch.tensor([v]) for v in pair)).item()
                         for pair in zip(*arrays)], dtype)
    cases = {"%": (lambda x, y: x % y, torch_pairwise(lambda x, y: x % y, a, b)),
             "//": (lambda x, y: x // y, torch_pairwise(lambda x, y: x // y, a, b)),
             "% inf": (lambda x, y: x % math.inf, torch_pairwise(lambda x: x % math.inf, a)),
             "% scalar": (lambda x, y: x % -0.1, torch_pairwise(lambda x: x % -0.1, a))}
    for op, (fn, want) in cases.items():
        for label, got in results(fn, [a, b], backend).items():
            assert_same_bits(got, want, f"{op} {label}")


def test_remainder_gradient_matches_pytorch(backend):
    torch = pytest.importorskip("torch")
    a, b = np.array([5.5, -5.5, 1e10, 2.0]), np.array([3.0, 3.0, -7.0, 0.3])
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    (ta % tb * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)).sum().backward()
    weights = graphc.tensor([1.0, 2.0, 3.0, 4.0])

    def loss(x, y):
        return (x % y * weights).sum()
    for name in ("eager", backend):
        x, y = graphc.tensor(a, requires_grad=True), graphc.tensor(b, requires_grad=True)
        (loss if name == "eager" else graphc.compile(loss, backend=backend))(x, y).backward()
        np.testing.assert_allclose(x.grad.numpy(), ta.grad.numpy(), err_msg=name)
        np.testing.assert_allclose(y.grad.numpy(), tb.grad.numpy(), err_msg=name)
