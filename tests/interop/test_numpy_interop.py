"""numpy beside graphc as beside PyTorch: each expression runs with real PyTorch and with
graphc, and must give the same kind of result (a tensor of the same dtype and values, or
the same exception type).  numpy defers its operators to tensors
(``Tensor.__array_priority__``), numpy scalars promote as Python numbers of their kind,
ufuncs compute in numpy and come back as tensors (``__array_wrap__``), and a tensor that
requires grad refuses to become an array."""
import warnings

import numpy as np
import pytest

import graphc

torch = pytest.importorskip("torch")


def _run(lib, expression):
    """The result of ``expression`` with ``lib`` as ``torch``: ("tensor", dtype name,
    values, has grad_fn), ("value", value) or ("raises", exception type)."""
    scope = {"np": np, "torch": lib,
             "v": lib.ones(3), "w": lib.ones(3, requires_grad=True),
             "vi": lib.ones(3, dtype=lib.int32), "vh": lib.ones(3, dtype=lib.float16),
             "vb": lib.ones(3, dtype=lib.bool), "s": lib.tensor(4.0), "si": lib.tensor(3)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # PyTorch's __array_wrap__
            r = eval(expression, scope)
    except Exception as e:              # the exception type is what is compared
        return "raises", type(e).__name__
    if isinstance(r, lib.Tensor):
        return "tensor", str(r.dtype).split(".")[1], r.tolist(), r.grad_fn is not None
    return "value", type(r).__name__, r


SAME_AS_PYTORCH = [
    # numpy scalars on either side keep autograd; PyTorch promotes them as Python
    # numbers of their kind (a numpy bool as a float)
    "np.float64(2) * w", "w * np.float32(2)", "np.sqrt(4.0) * w", "w + np.int64(1)",
    "np.float64(2) / w", "np.float64(2) - w", "np.float64(2) ** w", "w ** np.float64(2)",
    "np.float32(3) + w", "np.int64(2) * w", "np.float64(1) > w", "np.float64(2) == v",
    "vi * np.float64(2.5)", "vi + np.uint8(3)", "vi + np.float16(1)", "vh * np.float64(2)",
    "np.float64(2) * vh", "vh + np.float32(1e5)", "np.longlong(2) * vi",
    "np.int64(2) // vi", "np.int64(7) % vi", "np.int64(5) - vi", "vb * np.int64(2)",
    "np.bool_(True) * vi", "vi * np.bool_(True)", "np.bool_(True) + vb", "vh * np.bool_(True)",
    "vi == np.bool_(True)", "np.float64(2) * si", "np.float64(2) + s",
    "torch.full((2,), np.bool_(True))", "torch.add(vi, np.bool_(True))",
    # ndarrays: the tensor's operator declines, numpy computes and wraps the result;
    # an ndarray on the left is a TypeError; with requires_grad, a RuntimeError
    "v + np.ones(3)", "v * np.ones(3, np.float32)", "v + np.ones(3, np.int64)",
    "vi + np.ones(3)", "v * np.array(2.0)", "np.ones(3) + v", "np.array(2.0) * v",
    "np.ones(3, np.float32) * v", "np.ones(3) < v", "v < np.ones(3)",
    "w + np.ones(3)", "np.ones(3) + w", "w * np.array(2.0)",
    # == compares elementwise (even with requires_grad), != does not
    "v == np.ones(3)", "np.ones(3) == v", "w == np.ones(3)", "vi == np.ones(3)",
    "v == np.ones((2, 3))", "v == np.ones(2)", "v != np.ones(3)",
    # ufuncs compute in numpy and return tensors without history
    "np.sqrt(v)", "np.add(v, 1)", "np.multiply(v, 2)", "np.exp(vi)", "np.sqrt(s)",
    "np.add(w, 1)", "np.sqrt(w)",
    # conversions
    "np.asarray(w)", "np.array(w)", "np.asarray(v).dtype == np.float32",
    "np.asarray(v, dtype=np.float64).dtype == np.float64",
    "np.asarray(v, dtype=np.float64, copy=False)", "float(np.float64(2) * s)",
    # @ takes tensors only
    "v @ 2.0", "2.0 @ v", "np.float32(2) @ w", "v @ np.float64(2)",
]


@pytest.mark.parametrize("expression", SAME_AS_PYTORCH)
def test_same_as_pytorch(expression):
    assert _run(graphc, expression) == _run(torch, expression)


@pytest.mark.parametrize("scalar", [np.float64(2.5), np.float32(2.5), np.int64(3),
                                    np.float16(0.5)])
def test_gradients_flow_through_numpy_scalar_products(scalar):
    results = []
    for lib in (torch, graphc):
        w = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        y = (scalar * w * np.sqrt(4.0) + w * scalar - scalar / (w + 5) + scalar ** w).sum()
        y.backward()
        results.append((type(y).__module__.split(".")[0], w.grad.tolist(), y.item()))
    (tmod, tgrad, ty), (gmod, ggrad, gy) = results
    assert (tmod, gmod) == ("torch", "graphc")
    np.testing.assert_allclose(ggrad, tgrad, rtol=1e-6)
    np.testing.assert_allclose(gy, ty, rtol=1e-6)


def test_requires_grad_refuses_implicit_conversion_with_pytorchs_message():
    messages = []
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError) as e:
            np.asarray(lib.ones(2, requires_grad=True))
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert np.asarray(graphc.ones(2, requires_grad=True).detach()).tolist() == [1, 1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # PyTorch's __array__
def test_array_copy_semantics():
    """numpy 2: ``np.asarray`` shares (as with PyTorch), ``np.array`` copies (PyTorch
    too: numpy copies after its __array__), ``copy=False`` shares or raises."""
    for lib in (torch, graphc):
        t = lib.zeros(3)
        np.asarray(t)[0] = 1
        np.array(t)[1] = 1
        assert t.tolist() == [1, 0, 0]
    t = graphc.zeros(3)
    np.array(t, copy=False)[2] = 5          # PyTorch raises here: its __array__ has no copy
    assert t.tolist() == [0, 0, 5]
    t.__array__(copy=True)[0] = 7
    assert t.tolist() == [0, 0, 5]
    with pytest.raises(ValueError, match="Unable to avoid copy.*float32.*float64"):
        t.__array__(np.float64, copy=False)
    assert t.__array__(np.int64).dtype == np.int64


def test_ufunc_results_are_graphc_tensors_of_numpys_dtype():
    r = np.sqrt(graphc.tensor([4.0, 9.0]))
    assert type(r) is graphc.Tensor and r.dtype is graphc.float32 and r.tolist() == [2, 3]
    r = np.add(graphc.tensor([1, 2], dtype=graphc.int16), np.int8(1))
    assert r.dtype is graphc.int16 and r.tolist() == [2, 3]
    r = np.add(graphc.tensor([1, 2], dtype=graphc.uint8), np.uint16(1))   # uint16 in numpy
    assert r.dtype is graphc.int64 and r._data.dtype == np.int64 and r.tolist() == [2, 3]


def test_conversion_while_tracing_is_still_a_graph_break():
    def f(x):
        return graphc.from_numpy(np.asarray(x * 2) + 1).sum()
    compiled = graphc.compile(f, backend="interpreter")
    with pytest.warns(UserWarning, match="numpy array"):
        assert compiled(graphc.ones(3)).item() == 9.0


def test_numpy_scalars_trace_without_a_graph_break():
    def f(x):
        return (np.float64(2) * x * np.sqrt(4.0) + x ** np.float32(2)).sum()
    grads = []
    for lib, fn in ((torch, f), (graphc, graphc.compile(f, backend="interpreter"))):
        x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")            # a graph break would warn
            fn(x).backward()
        grads.append(x.grad.tolist())
    assert grads[1] == grads[0]
