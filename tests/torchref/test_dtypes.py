"""float16, bfloat16, uint8, int8, int16, autocast and GradScaler against PyTorch.

Arithmetic on float16/bfloat16 is compared bit for bit where PyTorch rounds once per op
(the basic arithmetic, sqrt, casts, comparisons, Python scalars read in float32), eagerly
and compiled: a fused kernel rounds after every op, as eager PyTorch does.  Functions
whose float32 results come from different libms (exp, tanh...) may round to a
neighbouring half value, so they are compared to within one unit in the last place.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import graphc
from graphc import dtypes

from harness import torch

NEW = ("float16", "bfloat16", "uint8", "int8", "int16")
ALL = tuple(d.name for d in dtypes.ALL)
HALF = ("float16", "bfloat16")
SMALL_INT = ("uint8", "int8", "int16")


def as_float(t) -> np.ndarray:
    """Values as float64 (exact for every dtype here), or the integers as int64."""
    lib = torch if isinstance(t, torch.Tensor) else graphc
    t = t.detach()
    return t.to(lib.float64 if t.dtype.is_floating_point else lib.int64).numpy()


def assert_bits(got, want, what=""):
    """The same dtype name and the same values, signed zeros and NaNs included (a NaN's
    sign is not compared)."""
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], what
    g, w = as_float(got), as_float(want)
    np.testing.assert_array_equal(g, w, err_msg=what)
    np.testing.assert_array_equal(np.signbit(g) & (g == g), np.signbit(w) & (w == w),
                                  err_msg=what)


def make(lib, values, dtype: str):
    return lib.tensor(np.asarray(values, np.float64)).to(getattr(lib, dtype))


# ---- dtype records, promotion, limits ---------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_dtype_attributes(name):
    g, t = getattr(graphc, name), getattr(torch, name)
    assert (g.itemsize, g.is_floating_point, g.is_signed, g.is_complex) == \
           (t.itemsize, t.is_floating_point, t.is_signed, t.is_complex)
    assert repr(g) == repr(t).replace("torch", "graphc")
    x = graphc.tensor([1]).to(g)
    assert x.element_size() == t.itemsize and x.is_signed() == t.is_signed


def test_aliases_and_legacy_types():
    assert graphc.half is graphc.float16 and graphc.short is graphc.int16
    for name, dt in (("HalfTensor", "float16"), ("BFloat16Tensor", "bfloat16"),
                     ("ByteTensor", "uint8"), ("CharTensor", "int8"),
                     ("ShortTensor", "int16")):
        x = getattr(graphc, name)([1, 2])
        assert x.dtype is getattr(graphc, dt) and isinstance(x, getattr(graphc, name))
        assert x.type() == f"graphc.{name}" and \
            graphc.zeros(2).type(f"torch.{name}").dtype is x.dtype


def test_promote_types_every_pair():
    for a in ALL:
        for b in ALL:
            want = torch.promote_types(getattr(torch, a), getattr(torch, b))
            got = graphc.promote_types(getattr(graphc, a), getattr(graphc, b))
            assert got.name == str(want).split(".")[1], (a, b)


def test_result_dtypes_with_zero_dim_tensors_and_python_scalars():
    """Dimensioned x 0-dim tensor and dimensioned x Python scalar, every dtype pair."""
    for a in ALL:
        for lib_b in ALL + ("int", "float", "bool"):
            got_want = []
            for lib in (torch, graphc):
                x = lib.ones(2, dtype=getattr(lib, a))
                other = {"int": 3, "float": 2.5, "bool": True}.get(lib_b)
                if other is None:
                    other = lib.ones((), dtype=getattr(lib, lib_b))
                got_want.append(str((x * other).dtype).split(".")[1])
            assert got_want[0] == got_want[1], (a, lib_b)


@pytest.mark.parametrize("name", ("float16", "bfloat16", "float32", "float64"))
def test_finfo(name):
    g, t = graphc.finfo(getattr(graphc, name)), torch.finfo(getattr(torch, name))
    for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution",
                  "dtype"):
        assert getattr(g, field) == getattr(t, field), field
    assert repr(g) == repr(t)


@pytest.mark.parametrize("name", ("uint8", "int8", "int16", "int32", "int64"))
def test_iinfo(name):
    g, t = graphc.iinfo(getattr(graphc, name)), torch.iinfo(getattr(torch, name))
    assert (g.bits, g.min, g.max, g.dtype) == (t.bits, t.min, t.max, t.dtype)
    assert repr(g) == repr(t)


def test_finfo_and_iinfo_refuse_the_other_kind():
    for lib in (torch, graphc):
        with pytest.raises(TypeError):
            lib.finfo(lib.int8)
        with pytest.raises(TypeError):
            lib.iinfo(lib.float16)
    assert graphc.finfo().dtype == "float32"


# ---- conversions, creation, printing, numpy, save/load ----------------------------------------
VALUES = [0.0, -0.0, 1.0, -1.5, 2.75, 0.1, 1 / 3, 65504.0, 65520.0, 1e5, -1e5, 6e-8, 3e-5,
          1e-40, 255.5, 300.7, -5.2, 127.9, -128.9, 3.0e38]


@pytest.mark.parametrize("src", ("float32", "float64"))
def test_casts_from_float_round_and_wrap_as_pytorch(src):
    values = VALUES + ([np.inf, -np.inf, np.nan] if src else [])
    # float64 -> half goes through float32 (two roundings, as c10): this one tells
    values += [1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -8 + 2 ** -40]
    for method in ("half", "bfloat16"):
        t = getattr(make(torch, values, src), method)()
        g = getattr(make(graphc, values, src), method)()
        assert_bits(g, t, method)
    small = [v for v in values if abs(v) < 1e4 and np.isfinite(v)]   # else C's UB
    for method in ("byte", "char", "short"):
        assert_bits(getattr(make(graphc, small, src), method)(),
                    getattr(make(torch, small, src), method)(), method)


def test_casts_between_every_pair_of_new_dtypes():
    values = [0, 1, -1, 2, 100, -100, 127, 200, 255, 1000, -3]
    for a in NEW:
        for b in ALL:
            t = make(torch, values, "int64").to(getattr(torch, a)).to(getattr(torch, b))
            g = make(graphc, values, "int64").to(getattr(graphc, a)).to(getattr(graphc, b))
            assert_bits(g, t, (a, b))


def test_creation_functions_take_every_new_dtype():
    for name in NEW:
        out = []
        for lib in (torch, graphc):
            d = getattr(lib, name)
            out.append([lib.zeros(2, 3, dtype=d), lib.ones(4, dtype=d), lib.full((2,), 3, dtype=d),
                        lib.arange(5, dtype=d), lib.tensor([[1, 2], [3, 4]], dtype=d),
                        lib.zeros_like(lib.ones(3), dtype=d), lib.eye(3, dtype=d)])
        for g, t in zip(*out):
            assert_bits(g, t, name)


@pytest.mark.parametrize("name", ("uint8", "int8", "int16"))
def test_randint_draws_in_range_with_the_dtype(name):
    low = 0 if name == "uint8" else -50
    x = graphc.randint(low, 100, (1000,), dtype=getattr(graphc, name))
    assert x.dtype is getattr(graphc, name) and x.shape == (1000,)
    assert low <= int(x.min()) and int(x.max()) < 100 and len(set(x.tolist())) > 50


@pytest.mark.parametrize("name", NEW)
def test_printing_matches_pytorch(name):
    values = [1.5, 2.25, 100.0, -3.0, 1e-3] if name in HALF else [1, 200, -3, 0]
    for data in (values, values[0], [[1e-5, 1e3]]):
        t, g = make(torch, data, "float64"), make(graphc, data, "float64")
        t, g = t.to(getattr(torch, name)), g.to(getattr(graphc, name))
        assert repr(g) == repr(t).replace("torch.", "graphc."), data


def test_numpy_conversion_both_ways():
    import ml_dtypes
    for name, np_dtype in (("float16", np.float16), ("bfloat16", ml_dtypes.bfloat16),
                           ("uint8", np.uint8), ("int8", np.int8), ("int16", np.int16)):
        a = np.array([1, 2, 3], np_dtype)
        x = graphc.from_numpy(a)
        assert x.dtype is getattr(graphc, name) and x.numpy().dtype == np_dtype
        a[0] = 7                                            # shared memory
        assert x.tolist()[0] == 7
        assert graphc.tensor(a).dtype is x.dtype
    assert graphc.from_numpy(np.array([1.5], np.float16)).numpy().dtype == \
        torch.from_numpy(np.array([1.5], np.float16)).numpy().dtype


def test_save_and_load_every_dtype():
    state = {name: make(graphc, [[1.5, -2.25, 100.1]], "float64").to(getattr(graphc, name)).t()
             for name in ALL}
    buffer = io.BytesIO()
    graphc.save(state, buffer)
    buffer.seek(0)
    loaded = graphc.load(buffer)
    for name, x in state.items():
        assert loaded[name].dtype is x.dtype and loaded[name].shape == x.shape
        assert_bits(loaded[name], x, name)


# ---- arithmetic ---------------------------------------------------------------------------------
def _float_inputs(lib, name):
    rng = np.random.default_rng(1)
    # 64 elements: whole vectors for PyTorch's kernels, whose scalar tail loop can round
    # differently (add with alpha rounds alpha * b there first)
    a = np.concatenate([rng.standard_normal(54) * 3, [0.0, -0.0, 65504, -65504, 1e-6, 7e-8,
                                                      np.inf, -np.inf, np.nan, 3.0]])
    b = np.concatenate([rng.standard_normal(54) * 2, [1.0, 3.0, 2.0, 0.5, -1e-3, 0.1, 2.0,
                                                      np.inf, 1.0, 0.0]])
    return make(lib, a, name), make(lib, b, name)


def _exact_float_ops(a, b):
    """Ops PyTorch's CPU kernels compute in float32 and round once (or exactly)."""
    return (a + b, a - b, a * b, a / b, -a, a.abs(), b.abs().sqrt(), a.maximum(b),
            a.minimum(b), a.floor(), a * 0.1, 0.3 * a, a / 0.7, a + 1.7, 2.5 - a, a < 0.1,
            a < b, a == b, b != b, a.add(b, alpha=-0.3), a.sub(b, alpha=1.7),
            (a * b + a) * 3 - b, a.where(a > b, b), (a > 0).to(a.dtype) * a)


def _near_float_ops(a, b):
    return (a.exp(), b.abs().log(), a.sin(), a.tanh(), a.sigmoid(), b.abs() ** 1.5,
            a.rsqrt(), a.sum(), a.mean())


@pytest.mark.parametrize("name", HALF)
def test_half_arithmetic_is_bit_exact_eagerly(name):
    got = _exact_float_ops(*_float_inputs(graphc, name))
    want = _exact_float_ops(*_float_inputs(torch, name))
    for i, (g, t) in enumerate(zip(got, want)):
        assert_bits(g, t, f"{name} op {i}")


@pytest.mark.parametrize("name", HALF)
def test_half_transcendentals_within_one_unit_in_the_last_place(name):
    got = _near_float_ops(*_float_inputs(graphc, name))
    want = _near_float_ops(*_float_inputs(torch, name))
    eps = graphc.finfo(getattr(graphc, name)).eps
    for i, (g, t) in enumerate(zip(got, want)):
        assert str(g.dtype).split(".")[1] == str(t.dtype).split(".")[1]
        np.testing.assert_allclose(as_float(g), as_float(t), rtol=eps, atol=1e-7,
                                   err_msg=f"{name} op {i}")


@pytest.mark.parametrize("backend", ("cpu", "interpreter"))
def test_half_arithmetic_is_bit_exact_compiled(backend):
    """One fused kernel per dtype: it rounds after every op, as eager PyTorch."""
    for name in HALF:
        want = _exact_float_ops(*_float_inputs(torch, name))
        got = graphc.compile(_exact_float_ops, backend=backend)(*_float_inputs(graphc, name))
        for i, (g, t) in enumerate(zip(got, want)):
            assert_bits(g, t, f"{backend} {name} op {i}")


def test_half_matmul_accumulates_in_float32_and_rounds_once():
    rng = np.random.default_rng(2)
    a, b = rng.integers(-8, 8, (5, 7)), rng.integers(-8, 8, (7, 3))    # exact sums
    c, d = rng.standard_normal((4, 16)), rng.standard_normal((16, 5))
    for name in HALF:
        assert_bits(make(graphc, a, name) @ make(graphc, b, name),
                    make(torch, a, name) @ make(torch, b, name), name)
        got = make(graphc, c, name) @ make(graphc, d, name)
        want = make(torch, c, name) @ make(torch, d, name)
        assert got.dtype is getattr(graphc, name)
        np.testing.assert_allclose(as_float(got), as_float(want),
                                   rtol=graphc.finfo(got.dtype).eps, atol=1e-3)


def _int_ops(a, b):
    return (a + b, a - b, a * b, -a, a.abs(), a // b, a % b, a.maximum(b), a < b,
            a * 3 + 1, a + 300, (a * b - a) * 7, b ** 2, a.sum(), a.cumsum(0),
            a.to(torch.float32 if isinstance(a, torch.Tensor) else graphc.float32) / 2)


def _int_inputs(lib, name):
    rng = np.random.default_rng(3)
    lo, hi = (0, 256) if name == "uint8" else (-128, 128) if name == "int8" else (-2 ** 15, 2 ** 15)
    a = np.concatenate([rng.integers(lo, hi, 30), [hi - 1, lo, 0, 1]])
    b = np.concatenate([rng.integers(1, min(hi, 100), 30), [1, 3, 7, 2]])
    return make(lib, a, "int64").to(getattr(lib, name)), make(lib, b, "int64").to(getattr(lib, name))


@pytest.mark.parametrize("name", SMALL_INT)
def test_small_integers_wrap_as_pytorch_eagerly_and_compiled(name):
    want = _int_ops(*_int_inputs(torch, name))
    eager = _int_ops(*_int_inputs(graphc, name))
    compiled = graphc.compile(_int_ops, backend="cpu")(*_int_inputs(graphc, name))
    for i, (e, c, t) in enumerate(zip(eager, compiled, want)):
        assert_bits(e, t, f"{name} op {i}")
        assert_bits(c, t, f"{name} compiled op {i}")


def test_overflow_examples():
    for lib in (torch, graphc):
        assert (lib.tensor([255], dtype=lib.uint8) + 1).tolist() == [0]
        assert (lib.tensor([0], dtype=lib.uint8) - 1).tolist() == [255]
        assert (lib.tensor([127], dtype=lib.int8) + 1).tolist() == [-128]
        assert (lib.tensor([300], dtype=lib.int16) * 300).tolist() == [24464]
        assert (lib.tensor([65504.0], dtype=lib.float16) * 2).isinf().all()


# ---- autocast ----------------------------------------------------------------------------------
def _autocast_model(lib, **region):
    rng = np.random.default_rng(4)
    x = lib.tensor(rng.standard_normal((4, 6)).astype(np.float32))
    fc1, fc2 = lib.nn.Linear(6, 8), lib.nn.Linear(8, 3, bias=False)
    with lib.no_grad():
        for p in (fc1.weight, fc1.bias, fc2.weight):
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    target = lib.tensor([0, 2, 1, 1])
    with lib.autocast("cpu", **region):
        h = fc1(x)
        a = lib.relu(h)
        o = fc2(a)
        shifted = o + lib.ones(3)                  # bfloat16 + float32: the widest
        loss = lib.nn.functional.cross_entropy(o, target)      # a float32 op
        mse = lib.nn.functional.mse_loss(o, o.detach() * 0.5)
        with lib.autocast("cpu", enabled=False):
            plain = fc2(a.float())
    (loss + mse).backward()
    return h, a, o, shifted, loss, mse, plain, fc1.weight.grad, fc2.weight.grad


@pytest.mark.parametrize("region", [{}, {"dtype": "float16"}])
def test_autocast_region_matches_pytorch(region):
    want = _autocast_model(torch, **{k: getattr(torch, v) for k, v in region.items()})
    got = _autocast_model(graphc, **{k: getattr(graphc, v) for k, v in region.items()})
    low = region.get("dtype", "bfloat16")
    assert [str(t.dtype).split(".")[1] for t in want] == \
        [low] * 3 + ["float32"] * 6
    for i, (g, t) in enumerate(zip(got, want)):
        if i == 6:       # float32 outside any region: only summation order differs
            np.testing.assert_allclose(as_float(g), as_float(t), rtol=1e-6, atol=1e-6)
        else:
            assert_bits(g, t, f"value {i}")


def test_autocast_nests_decorates_and_restores():
    w = graphc.ones(3, 3)

    @graphc.autocast("cpu")
    def product(x):
        return x @ w

    assert product(graphc.ones(2, 3)).dtype is graphc.bfloat16
    assert not graphc.is_autocast_enabled("cpu")
    with graphc.amp.autocast("cpu", dtype=graphc.float16):
        assert (w @ w).dtype is graphc.float16
        with graphc.autocast("cpu"):            # no dtype: the enclosing region's
            assert graphc.get_autocast_dtype("cpu") is graphc.float16
        with graphc.autocast("cpu", dtype=graphc.bfloat16):
            assert (w @ w).dtype is graphc.bfloat16
            assert (w.double() @ w.double()).dtype is graphc.float64    # never cast
        assert (w @ w).dtype is graphc.float16
    assert (w @ w).dtype is graphc.float32 and graphc.get_autocast_dtype("cpu") is \
        graphc.bfloat16


def test_autocast_warns_and_disables_as_pytorch():
    with pytest.warns(UserWarning, match="not supported"):
        with graphc.autocast("cpu", dtype=graphc.float64):
            assert (graphc.ones(2, 2) @ graphc.ones(2, 2)).dtype is graphc.float32
    if not graphc.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available"):
            with graphc.autocast("cuda"):
                assert not graphc.is_autocast_enabled("cuda")
    with pytest.raises(RuntimeError, match="unsupported autocast device_type"):
        graphc.autocast("tpu")
    with pytest.warns(FutureWarning, match="deprecated"):
        with graphc.cpu.amp.autocast():
            assert (graphc.ones(2, 2) @ graphc.ones(2, 2)).dtype is graphc.bfloat16
    import graphc.cuda.amp as cuda_amp
    assert cuda_amp.GradScaler is graphc.cuda.amp.GradScaler


@pytest.mark.parametrize("backend", ("cpu", "interpreter"))
def test_compiled_function_follows_the_autocast_region(backend):
    model = graphc.nn.Sequential(graphc.nn.Linear(6, 5), graphc.nn.Tanh(),
                                 graphc.nn.Linear(5, 2))
    x = graphc.randn(3, 6)
    f = graphc.compile(model, backend=backend)
    assert f(x).dtype is graphc.float32
    with graphc.autocast("cpu"):
        got, want = f(x), model(x)
    assert got.dtype is graphc.bfloat16
    assert_bits(got, want)
    assert f(x).dtype is graphc.float32


# ---- GradScaler ------------------------------------------------------------------------------
def _scaler_run(lib, poison_steps, **kwargs):
    """SGD steps through a GradScaler; the steps in ``poison_steps`` get an inf gradient."""
    rng = np.random.default_rng(5)
    model = lib.nn.Linear(4, 2)
    with lib.no_grad():
        model.weight.copy_(lib.tensor(rng.standard_normal((2, 4)).astype(np.float32)))
        model.bias.copy_(lib.tensor(rng.standard_normal(2).astype(np.float32)))
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    scaler = lib.amp.GradScaler("cpu", **kwargs)
    x = lib.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    history = []
    for step in range(6):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        if step in poison_steps:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        history.append((scaler.get_scale(), scaler.state_dict(),
                        model.weight.detach().numpy().copy()))
    return history


def test_grad_scaler_steps_skips_backs_off_and_grows_as_pytorch():
    kwargs = dict(init_scale=1024.0, growth_interval=2, growth_factor=4.0, backoff_factor=0.25)
    want = _scaler_run(torch, {1, 4}, **kwargs)
    got = _scaler_run(graphc, {1, 4}, **kwargs)
    for step, ((gs, gd, gw), (ts, td, tw)) in enumerate(zip(got, want)):
        assert gs == ts and gd == td, step
        np.testing.assert_allclose(gw, tw, rtol=1e-6, atol=1e-7, err_msg=str(step))


def test_grad_scaler_unscale_state_dict_and_errors():
    model = graphc.nn.Linear(2, 1)
    opt = graphc.optim.SGD(model.parameters(), lr=0.1)
    scaler = graphc.amp.GradScaler("cpu", init_scale=8.0)
    assert scaler.get_scale() == 8.0 and scaler.scale(graphc.tensor(1.5)).item() == 12.0
    scaler.scale(model(graphc.ones(1, 2)).sum()).backward()
    grad = model.weight.grad.clone()
    scaler.unscale_(opt)
    assert_bits(model.weight.grad, grad / 8)
    with pytest.raises(RuntimeError, match="already been called on this optimizer"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    scaler.update()
    other = graphc.amp.GradScaler("cpu")
    other.load_state_dict(scaler.state_dict())
    assert other.state_dict() == scaler.state_dict() == torch.amp.GradScaler(
        "cpu", init_scale=8.0).state_dict() | {"_growth_tracker": 1}
    with pytest.raises(AssertionError, match="No inf checks"):
        _update_without_step()
    disabled = graphc.amp.GradScaler("cpu", enabled=False)
    assert disabled.get_scale() == 1.0 and disabled.state_dict() == {}
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        graphc.amp.GradScaler("cpu").load_state_dict({})


def _update_without_step():
    scaler = graphc.amp.GradScaler("cpu")
    scaler.scale(graphc.tensor(1.0))
    scaler.update()


@pytest.mark.skipif(graphc.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_grad_scaler_without_a_gpu_warns_and_disables():
    with pytest.warns(UserWarning, match="CUDA is not available"):
        scaler = graphc.amp.GradScaler()
    loss = graphc.tensor(2.0)
    assert not scaler.is_enabled() and scaler.scale(loss) is loss
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not graphc.cuda.amp.GradScaler().is_enabled()


# ---- modules in half precision ------------------------------------------------------------------
@pytest.mark.parametrize("method", ("half", "bfloat16"))
def test_module_in_half_precision_matches_pytorch(method):
    """A Linear layer converted with ``.half()``/``.bfloat16()``: outputs and gradients."""
    rng = np.random.default_rng(6)
    w, b = rng.integers(-4, 4, (3, 5)) / 4, rng.integers(-4, 4, 3) / 8
    x = rng.integers(-8, 8, (2, 5)) / 8
    results = []
    for lib in (torch, graphc):
        layer = lib.nn.Linear(5, 3)
        with lib.no_grad():
            layer.weight.copy_(lib.tensor(w, dtype=lib.float32))
            layer.bias.copy_(lib.tensor(b, dtype=lib.float32))
        getattr(layer, method)()
        inp = getattr(lib.tensor(x, dtype=lib.float32), method)().requires_grad_()
        out = layer(inp)
        (out * out).sum().backward()
        results.append((out, inp.grad, layer.weight.grad, layer.bias.grad))
    for g, t in zip(*results[::-1]):
        assert_bits(g, t, method)


# ---- composites PyTorch computes in one kernel ------------------------------------------------
def _one_kernel_ops(lib, x, w, b):
    F = lib.nn.functional
    return (lib.softmax(x, 1), F.layer_norm(x, (16,), w, b), F.layer_norm(x, (16,)), F.silu(x),
            F.softplus(x), F.elu(x), F.leaky_relu(x, 0.1),
            F.mse_loss(x, x * 0.5), F.avg_pool2d(x.reshape(2, 2, 4, 4), 2),
            F.elu(x.clone(), inplace=True), F.silu(x.clone(), inplace=True))


def _near_one_kernel_ops(lib, x, w, b):
    F = lib.nn.functional
    return lib.log_softmax(x, 1), F.gelu(x), F.gelu(x, approximate="tanh"), F.hardswish(x)


@pytest.mark.parametrize("name", HALF)
def test_one_kernel_composites_round_once_as_pytorch(name):
    """softmax, layer_norm, the activations...: computed in float32, rounded at the end."""
    rng = np.random.default_rng(7)
    arrays = (rng.standard_normal((4, 16)) * 3, rng.standard_normal(16), rng.standard_normal(16))
    results = {}
    for fn in (_one_kernel_ops, _near_one_kernel_ops):
        results[fn] = [fn(lib, *[make(lib, a, name) for a in arrays]) for lib in (graphc, torch)]
    for i, (g, t) in enumerate(zip(*results[_one_kernel_ops])):
        assert_bits(g, t, f"{name} op {i}")
    eps = graphc.finfo(getattr(graphc, name)).eps
    for i, (g, t) in enumerate(zip(*results[_near_one_kernel_ops])):
        np.testing.assert_allclose(as_float(g), as_float(t), rtol=eps, atol=eps,
                                   err_msg=f"{name} op {i}")


def test_autocast_block_with_layer_norm_gelu_softmax_matches_pytorch():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((4, 6)), rng.standard_normal((8, 6))
    outs = []
    for lib in (torch, graphc):
        fc, norm = lib.nn.Linear(6, 8), lib.nn.LayerNorm(8)
        with lib.no_grad():
            fc.weight.copy_(make(lib, w, "float32"))
            fc.bias.zero_()
        with lib.autocast("cpu"):
            h = fc(make(lib, x, "float32"))
            y = norm(h)                      # bfloat16 input, float32 weight: bfloat16
            z = lib.nn.functional.gelu(y)
            outs.append((h, y, z, lib.softmax(z, 1)))
    for i, (t, g) in enumerate(zip(*outs)):
        assert_bits(g, t, f"value {i}")

