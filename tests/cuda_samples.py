"""Sample programs and helpers the cuda tests share (targets/test_cuda.py on the CPU
emulator, targets/test_cuda_gpu.py on a real GPU, targets/test_cuda_residency.py).

``SAMPLES``: one program per kind of kernel and scalar op, name -> (fn, input tensors);
``traced``/``graph_inputs`` make a program's optimised graph and its input arrays;
``assert_same`` compares with the interpreter's result at float32/float64 tolerances;
``_train`` runs a few compiled SGD steps of a model and returns the losses and parameters.
"""
import numpy as np

import graphc
import graphc.composite as C
import graphc.spatial as S
from graphc import dtypes
from graphc.dispatch import bind
from graphc.ops import REGISTRY as P
from graphc.passes import run_pipeline

F32 = dict(rtol=1e-5, atol=1e-6)
F64 = dict(rtol=1e-11, atol=1e-12)
SEED = np.array(1234567890123, np.int64)


def tensor(values, dtype=None):
    return graphc.tensor(np.asarray(values, dtype=dtype))


def traced(fn, *inputs):
    return run_pipeline(graphc.trace(fn, *inputs))


def graph_inputs(graph, inputs) -> list:
    """The traced inputs' arrays, then a fixed seed for each random-seed input."""
    arrays = [t.numpy() for t in inputs]
    return arrays + [SEED] * (len(graph.inputs) - len(arrays))


def assert_same(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    if dtypes.from_numpy(expected.dtype) in dtypes.HALF:
        # float16/bfloat16 round once per op: libm and numpy's float32 results may round
        # to neighbouring half values (bit-exact arithmetic is tested in tests/torchref)
        ulp = float(graphc.finfo(dtypes.from_numpy(expected.dtype)).eps)
        np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32),
                                   rtol=ulp, atol=1e-6)
        return
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, **(F32 if expected.dtype == np.float32
                                                     else F64))
    else:
        np.testing.assert_array_equal(got, expected)


# ---- sample programs: one per kind of kernel and scalar op -----------------------------------
def _special(dtype):
    """Values with the edge cases of each dtype, shaped (4, 6)."""
    if dtype == np.bool_:
        return np.array([True, False] * 12).reshape(4, 6)
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        return np.array([info.max, info.min, 0, 1, -1, 7, -9, 12, 100, -100, 3, 5] * 2,
                        dtype).reshape(4, 6)
    return np.array([-2.5, -1, -0.0, 0, 0.3, 1, 2.7, 40, -100, np.nan, np.inf, -np.inf,
                     0.5, -0.5, 3, 1e-3, 88, -88, 1.5, 2, -3, 10, 0.1, 7], dtype).reshape(4, 6)


def _float_elementwise(arity):
    """Every elementwise primitive taking ``arity`` float operands (new ones included)."""
    t = dtypes.TensorType((1,), dtypes.float32)
    names = []
    for name, prim in sorted(P.items()):
        if prim.kind != "elementwise" or prim.attrs or name == "where":
            continue
        try:
            prim.infer(*[t] * arity)
        except (TypeError, RuntimeError):
            continue
        names.append(name)
    return names


def _float_ops(x, y):
    unary, binary = _float_elementwise(1), _float_elementwise(2)
    assert {"atan2", "log1p", "expm1", "exp", "add"} <= set(unary + binary)
    return tuple([bind(P[n], x) for n in unary] + [bind(P[n], x, y) for n in binary]
                 + [bind(P["where"], bind(P["lt"], x, y), x, y)])


def _int_ops(x, y):
    binary = ["add", "sub", "mul", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"]
    return tuple([bind(P[n], x) for n in ("neg", "abs", "sign")]
                 + [bind(P[n], x, y) for n in binary]
                 + [bind(P["pow"], x, bind(P["abs"], y))])      # numpy refuses x ** -1


def _bool_ops(a, b):
    return tuple([bind(P["logical_not"], a)]
                 + [bind(P[n], a, b) for n in ("logical_and", "logical_or", "eq", "ne", "lt",
                                               "ge")]
                 + [graphc.where(a, b.float(), graphc.tensor(2.5))])


def _casts(*xs):
    return tuple(bind(P["cast"], x, dtype=d) for x in xs for d in dtypes.ALL)


def _reductions(x):
    outs = []
    for name in ("sum", "prod", "amax", "amin"):
        outs += [bind(P[name], x, axes=(1,), keepdim=False),
                 bind(P[name], x, axes=(0,), keepdim=True)]
    for name in ("argmax", "argmin"):
        outs += [bind(P[name], x, axis=1, keepdim=False), bind(P[name], x, axis=0, keepdim=True)]
    return tuple(outs)


def _reduction_input(dtype, rng):
    """(5, 70): rows longer than an emulated block (64 threads), ties, NaNs."""
    if dtype == np.bool_:
        return rng.random((5, 70)) < 0.5
    if dtype.kind == "i":
        return rng.integers(-5, 6, (5, 70)).astype(dtype)
    x = rng.uniform(0.5, 1.5, (5, 70)).astype(dtype)
    x[1, 10] = x[1, 40] = 3.0                        # a tie: the first wins
    x[2, 20], x[2, 50] = np.nan, np.nan              # the first NaN wins
    x[3, 69] = -1.0
    return x


def samples() -> dict:
    """name -> (fn, input tensors)."""
    rng = np.random.default_rng(0)

    def randn(*shape, dtype=np.float32):
        return tensor(rng.standard_normal(shape), dtype)

    out = {
        "broadcast_transposed": (lambda x, y: ((x.t() * 2 + y).exp(), x.t() - y.t().t()),
                                 [randn(5, 3), randn(3, 1)]),
        "sliced": (lambda x: x[1:, ::2] * x[:-1, 1::2] + x[2, 1:4], [randn(4, 6)]),
        "softmax": (lambda x: (C.softmax(x, 1), C.log_softmax(x, 0)), [randn(6, 100)]),
        "layer_norm": (lambda x, w, b: C.layer_norm(x, (40,), w, b),
                       [randn(5, 40), randn(40), randn(40)]),
        "cross_entropy": (lambda x, t: C.cross_entropy(x, t),
                          [randn(8, 10), tensor(rng.integers(0, 10, 8), np.int64)]),
        "conv_pool": (lambda x, w, b: S.max_pool2d(C.relu(S.conv2d(x, w, b, padding=1)), 2),
                      [randn(2, 3, 8, 8), randn(4, 3, 3, 3), randn(4)]),
        "matmul_epilogue": (lambda x, w, b: C.relu(C.linear(x, w, b)),
                            [randn(2, 5, 19), randn(33, 19), randn(33)]),
        "matmul_batched": (lambda a, b: (a @ b.transpose(-1, -2), a.transpose(-1, -2) @ a),
                           [randn(2, 3, 17, 9), randn(3, 20, 9)]),
        "matmul_degenerate": (lambda a, b, c: (a @ b, b.t() @ a.t(), c @ c.t()),
                              [randn(1, 0), randn(0, 5), randn(3, 1)]),
        "gather_scatter": (
            lambda x, i, j: (x.gather(1, i), x.index_select(0, j),
                             graphc.zeros(4, 6).scatter_add(1, i, x[:, :3]),
                             graphc.zeros(5, 6).index_add(0, j, x)),
            [randn(4, 6), tensor(rng.integers(0, 6, (4, 3)), np.int64),
             tensor([3, 0, 3, 1], np.int64)]),
        "dropout": (lambda x: C.dropout(x, 0.3, True), [randn(16, 33)]),
        "uniform": (lambda x, s: (bind(P["uniform"], s, shape=(1000,),
                                       dtype=dtypes.float32) + x,
                                  bind(P["uniform"], s, shape=(7,), dtype=dtypes.float64)),
                    [randn(1), tensor(SEED)]),
        "zero_and_one_sized": (lambda x, y, z: ((x * 2).sum(0), (y.exp() + 1).sum(1),
                                                z.amax(0), x.t() + 1),
                               [randn(0, 3), randn(1, 3), randn(1, 1)]),
        # Elementwise kernels with vector loads and stores, a scalar tail (35 items),
        # 2 lanes where a buffer is 8 bytes wide, broadcast and strided loads beside them.
        "vectorised": (lambda x, y, b, d: ((x * 2 + b).exp(), x > y, x.double() * d,
                                           x.t() + y.t(), (x > 0).logical_not()),
                       [randn(5, 7), randn(5, 7), randn(7), randn(5, 7, dtype=np.float64)]),
        # Long reductions over few rows: two passes (codegen/split.py), on the GPU too.
        "long_reductions": (lambda x, i, b: (x.sum(), x.amax(1) + b, x.t().amin(1).sum(),
                                             (x > 0).sum(), (x > 3).any(), i.sum(),
                                             (x[:, :600] * 1e-3 + 1).prod()),
                            [randn(2, 9001), tensor(rng.integers(2 ** 30, 2 ** 31 - 1, 20000),
                                                    np.int32), randn(2)]),
        "constants_and_copies": (lambda x: (x + graphc.tensor([1.0, 2.0, 3.0]), x,
                                            graphc.tensor([4.0, 5.0]), x * 2, x * 2),
                                 [randn(2, 3)]),
        "float32_ops": (_float_ops, [tensor(_special(np.dtype(np.float32))),
                                     tensor(_special(np.dtype(np.float32))[1:2] * 0.7)]),
        "float64_ops": (_float_ops, [tensor(_special(np.dtype(np.float64))),
                                     tensor(_special(np.dtype(np.float64))[::-1] * 0.7)]),
        "bool_ops": (_bool_ops, [tensor(_special(np.dtype(np.bool_))),
                                 tensor(rng.random((4, 6)) < 0.5)]),
        "casts": (_casts, [tensor(rng.uniform(-1e4, 1e4, 12).round(1)),
                           tensor([-2.7, -0.5, 0.0, 0.4, 3.9, 1e4], np.float64),
                           tensor([-(2 ** 31), 2 ** 31 - 1, 0, -3], np.int32),
                           tensor([-(2 ** 40), 2 ** 35, 0, 2 ** 31], np.int64),
                           tensor([True, False])]),
        # NaN -> integer is left unspecified by numpy (the GPU gives 0)
        "nan_casts": (lambda x: tuple(bind(P["cast"], x, dtype=d) for d in
                                      (dtypes.bool_, dtypes.float32, dtypes.float64)),
                      [tensor([np.nan, 0.0, -0.0, 1.0, -np.inf], np.float32)]),
    }
    for dtype in (np.int32, np.int64, np.int16, np.int8):
        out[f"{np.dtype(dtype).name}_ops"] = (
            _int_ops, [tensor(_special(np.dtype(dtype))),
                       tensor(rng.integers(-3, 4, (4, 6)), dtype)])
    # uint8 wraps: neg, sub and mul of these go round
    out["uint8_ops"] = (_int_ops, [tensor(rng.integers(0, 256, (4, 6)), np.uint8),
                                   tensor(rng.integers(0, 4, (4, 6)), np.uint8)])
    for dt in (dtypes.float16, dtypes.bfloat16):   # computed in float, rounded per op
        out[f"{dt.name}_ops"] = (_float_ops, [
            tensor(_special(np.dtype(np.float32))).to(dt),
            tensor(_special(np.dtype(np.float32))[1:2] * 0.7).to(dt)])
    for dtype in (np.float32, np.float64, np.int32, np.int64, np.bool_):
        out[f"reductions_{np.dtype(dtype).name}"] = (
            _reductions, [tensor(_reduction_input(np.dtype(dtype), rng))])
    return out


SAMPLES = samples()


# ---- training through graphc.compile -------------------------------------------------------
def _train(make_model, x, target, backend, steps=3):
    graphc.manual_seed(0)
    model = make_model()
    compiled = graphc.compile(model, backend=backend)
    opt = graphc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = C.cross_entropy(compiled(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses, [p.detach().numpy() for p in model.parameters()]
