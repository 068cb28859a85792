"""graphc.onnx.export: every primitive, the example models and the keywords, each
exported file checked by ``onnx.checker`` (full check, done by export) and run in
onnxruntime against graphc's eager answer."""
import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc import dtypes, nn
from graphc.dispatch import bind
from graphc.ops import REGISTRY
from graphc.tracing.trace import flatten_tensors
from examples_loader import load_example
from samples import GRAD_CASES, PRIMITIVE_SAMPLES

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run_onnx(model_bytes, *arrays):
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, arrays)))


def export_bytes(model, args, **kwargs):
    buf = io.BytesIO()
    graphc.onnx.export(model, args, buf, **kwargs)
    return buf.getvalue()


def check_matches(model, args, rtol=1e-5, atol=1e-6, **kwargs):
    """Export, run in onnxruntime, compare with graphc's eager outputs."""
    data = export_bytes(model, args, **kwargs)
    training = getattr(model, "training", False)
    with graphc.no_grad():
        expected = flatten_tensors(model.eval()(*args) if training else model(*args))
    if training:
        model.train()
    got = run_onnx(data, *[a.numpy() for a in args if isinstance(a, graphc.Tensor)])
    assert len(got) == len(expected)
    for g, want in zip(got, expected):
        want = want.numpy()
        assert g.dtype == want.dtype and g.shape == want.shape
        np.testing.assert_allclose(g, want, rtol=rtol, atol=atol)
    return data


# ---- every primitive --------------------------------------------------------------------
def _variants(name):
    """(arrays, attrs) per sample, float samples in float32 and float64."""
    for arrays, attrs in PRIMITIVE_SAMPLES[name]:
        floats = any(a.dtype == np.float64 for a in arrays)
        for dt in ((np.float32, np.float64) if floats else (None,)):
            yield [a.astype(dt) if dt and a.dtype == np.float64 else a for a in arrays], attrs


# Integer, bool and half variants: onnxruntime lacks kernels for several of them, and the
# export computes those in a wider dtype.
EXTRA = [
    ("add", [np.array([[100, -7]], np.int8), np.array([100, 3], np.int8)], {}),
    ("mul", [np.array([200, 3], np.uint8), np.array([2, 5], np.uint8)], {}),
    ("sub", [np.array([-30000, 4], np.int16), np.array([10000, 9], np.int16)], {}),
    ("maximum", [np.array([5, -3], np.int16), np.array([2, 7], np.int16)], {}),
    ("neg", [np.array([3, -128], np.int8)], {}),
    ("abs", [np.array([-3, 4], np.int32)], {}),
    ("sign", [np.array([-3, 0, 4], np.int64)], {}),
    ("lt", [np.array([True, False]), np.array([True, True])], {}),
    ("eq", [np.array([1, 2], np.uint8), np.array([1, 3], np.uint8)], {}),
    ("where", [np.array([True, False]), np.array([True, True]), np.array([False, False])], {}),
    ("where", [np.array([True, False]), np.array([1, 2], np.int16), np.array([3, 4], np.int16)],
     {}),
    ("exp", [np.array([0.5, -1.0], np.float16)], {}),
    ("add", [np.array([0.1, 2.5], np.float16), np.array([0.2, 1e-3], np.float16)], {}),
    ("pow", [np.array([2, -1, 3, 1, 5], np.int64), np.array([3, -3, -1, -2, 0], np.int64)], {}),
    ("floor_divide", [np.array([1.0, -1.0, 5.0, 3.0], np.float32),
                      np.array([0.1, 0.0, -2.0, 0.0], np.float32)], {}),
    ("remainder", [np.array([-4.0, 4.0, 5.5], np.float64), np.array([2.0, -3.0, 2.0])], {}),
    ("log1p", [np.array([1e-10, -0.5, 3.0, np.inf, -1.0], np.float32)], {}),
    ("expm1", [np.array([1e-10, -30.0, 2.0, np.inf, -np.inf], np.float32)], {}),
    ("atan2", [np.array([1.0, -1.0, 0.0, -0.0, 2.0, 0.0], np.float32),
               np.array([-1.0, -1.0, -1.0, -1.0, 0.0, 3.0], np.float32)], {}),
    ("sign", [np.array([np.nan, -2.0, 0.0], np.float32)], {}),
    ("maximum", [np.array([np.nan, 1.0], np.float32), np.array([0.0, np.nan], np.float32)], {}),
    ("amax", [np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 0.0]], np.float32)],
     {"axes": (1,), "keepdim": False}),
    ("argmax", [np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 0.0]], np.float32)],
     {"axis": 1, "keepdim": False}),
    ("amin", [np.array([[5, -3], [2, 7]], np.int8)], {"axes": (0,), "keepdim": True}),
    ("sum", [np.array([[True, False], [True, True]])], {"axes": (0,), "keepdim": False}),
    ("sum", [np.array([[0.5, 1.5]], np.float16)], {"axes": (1,), "keepdim": False}),
    ("prod", [np.array([[2, 3], [4, 5]], np.int32)], {"axes": (1,), "keepdim": False}),
    ("cast", [np.array([300.7, -1.5, np.nan, 2.0], np.float32)], {"dtype": dtypes.uint8}),
    ("cast", [np.array([1.0 + 2.0 ** -12], np.float64)], {"dtype": dtypes.float16}),
    ("cast", [np.array([3, 0], np.int64)], {"dtype": dtypes.bool_}),
    ("pad", [np.array([[1, 2], [3, 4]], np.int16)], {"widths": ((0, 1, 2), (1, 0, 0)),
                                                     "value": 7}),
    ("pad", [np.array([[0.5, 2.0]], np.float32)], {"widths": ((0, 0, 0), (2, 1, 1)),
                                                   "value": -np.inf}),
    ("slice", [np.arange(20.0).reshape(4, 5)], {"starts": (0, 4), "stops": (4, -1),
                                                "steps": (1, -2)}),
    ("gather", [np.arange(12.0).reshape(3, 4), np.array([[3, 0], [1, 1]])], {"axis": 1}),
    ("index_add", [np.zeros((2, 3), np.float16), np.array([1, 1]), np.ones((2, 2), np.float16)],
     {"axis": 1}),
]


# Movement ops copy any dtype: each of them at the dtypes onnxruntime is thin on.
for _dt in (np.float16, np.int16, np.int8, np.uint8, np.bool_):
    for _name in ("reshape", "permute", "expand", "slice", "pad", "concat", "take", "gather",
                  "index_add", "scatter_add", "where", "amax", "eq"):
        _arrays, _attrs = PRIMITIVE_SAMPLES[_name][0]
        EXTRA.append((_name, [a.astype(_dt) if a.dtype == np.float64 else a
                              for a in _arrays], _attrs))


def _cases():
    for name in sorted(REGISTRY):
        if REGISTRY[name].kind in ("random", "collective"):      # refused, tested below
            continue
        for k, (arrays, attrs) in enumerate(_variants(name)):
            yield pytest.param(name, arrays, attrs, id=f"{name}-{k}-{arrays[0].dtype}")
    for k, (name, arrays, attrs) in enumerate(EXTRA):
        yield pytest.param(name, arrays, attrs, id=f"{name}-extra{k}-{arrays[0].dtype}")


def test_the_table_covers_every_primitive():
    covered = {name for name in PRIMITIVE_SAMPLES} | {name for name, _, _ in EXTRA}
    assert {name for name, p in REGISTRY.items() if p.kind != "collective"} <= covered


@pytest.mark.parametrize("name, arrays, attrs", list(_cases()))
def test_primitive_matches_onnxruntime(name, arrays, attrs):
    prim = REGISTRY[name]
    tensors = [graphc.tensor(a) for a in arrays]
    expected = bind(prim, *tensors, **attrs).numpy()
    data = export_bytes(lambda *xs: bind(prim, *xs, **attrs), tuple(tensors),
                        do_constant_folding=False)
    got, = run_onnx(data, *arrays)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if expected.dtype.kind == "f":
        # Erf and Atan have float32 kernels only in onnxruntime.
        rtol = 1e-6 if expected.dtype == np.float32 or name in ("erf", "atan2") else 1e-12
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
    else:
        np.testing.assert_array_equal(got, expected)


def test_collectives_are_refused_naming_the_op():
    # bind, not graphc.distributed.all_reduce: the export traces, so no process group runs
    with pytest.raises(graphc.onnx.UnsupportedOperatorError, match="all_reduce.*test_onnx.py"):
        graphc.onnx.export(lambda x: bind(REGISTRY["all_reduce"], x * 2, op="sum"),
                           graphc.ones(3, 4), io.BytesIO())


def test_random_ops_are_refused_naming_the_op():
    drop = nn.Dropout(0.5)
    with pytest.raises(graphc.onnx.UnsupportedOperatorError, match="uniform.*test_onnx.py"):
        graphc.onnx.export(lambda x: graphc.nn.functional.dropout(x, 0.5, training=True),
                           graphc.ones(3, 4), io.BytesIO())
    # A Dropout module is exported in eval mode (as PyTorch), so it draws nothing.
    drop.train()
    x = graphc.ones(3, 4)
    got, = run_onnx(export_bytes(drop, (x,)), x.numpy())
    assert np.array_equal(got, x.numpy()) and drop.training


# ---- models -----------------------------------------------------------------------------
def test_two_layer_network_function_with_weights_as_inputs():
    example = load_example("two_layer_backprop")
    graphc.manual_seed(0)
    x, w1, w2 = graphc.randn(8, 20), graphc.randn(20, 6), graphc.randn(6, 3)
    check_matches(lambda x, w1, w2: example.forward(x, w1, w2)[2], (x, w1, w2), rtol=1e-5,
                  atol=1e-5)


def test_quadrants_classifiers():
    example = load_example("quadrants")
    graphc.manual_seed(0)
    x = graphc.randn(16, 2)
    for model in (example.QuadrantNet(), example.sequential_net()):
        check_matches(model, (x,))
    params = example.raw_parameters()
    check_matches(lambda x: example.raw_forward(params, x), (x,))


def test_mnist_cnn_with_dynamic_batch():
    example = load_example("mnist_cnn")
    graphc.manual_seed(0)
    model = example.Net()
    x = graphc.randn(2, 1, 8, 8)
    data = check_matches(model, (x,), rtol=1e-5, atol=1e-6,
                         dynamic_axes={"input0": {0: "batch"}, "output0": {0: "batch"}})
    proto = onnx.load_from_string(data)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {i.name for i in proto.graph.initializer} >= {"conv1.weight", "fc2.bias"}
    x5 = graphc.randn(5, 1, 8, 8)
    got, = run_onnx(data, x5.numpy())
    with graphc.no_grad():
        np.testing.assert_allclose(got, model.eval()(x5).numpy(), rtol=1e-5, atol=1e-6)


def test_cnn_with_batch_norm_and_pooling_in_eval_mode():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 2))
    model(graphc.randn(4, 3, 8, 8))                 # running statistics move
    model.train()
    check_matches(model.eval(), (graphc.randn(2, 3, 8, 8),))
    model.train()
    check_matches(model, (graphc.randn(2, 3, 8, 8),))   # exported in eval mode...
    assert model.training                                # ...and left as it was


def test_gpt_example():
    example = load_example("gpt")
    graphc.manual_seed(0)
    model = example.GPT(vocab=11, block_size=8, width=16, heads=2, layers=2)
    idx = graphc.randint(0, 11, (3, 8))
    data = check_matches(model, (idx,), rtol=1e-4, atol=1e-5,
                         dynamic_axes={"idx": {0: "batch"}},
                         input_names=["idx"], output_names=["logits"])
    idx5 = graphc.randint(0, 11, (5, 8))
    got, = run_onnx(data, idx5.numpy())
    with graphc.no_grad():
        np.testing.assert_allclose(got, model(idx5)[0].numpy(), rtol=1e-4, atol=1e-5)
    names = {i.name for i in onnx.load_from_string(data).graph.initializer}
    assert "tok.weight" in names and "blocks.1.attn.qkv.weight" in names


def test_lstm_example():
    example = load_example("char_lstm")
    graphc.manual_seed(0)
    model = example.CharLSTM(vocab=7, width=8, layers=2)
    # The zero initial state has the batch size: a constant expanded to the batch.
    data = check_matches(model, (graphc.randint(0, 7, (2, 5)),), rtol=1e-5, atol=1e-6,
                         dynamic_axes={"input0": {0: "batch"}})
    idx = graphc.randint(0, 7, (4, 5))
    got = run_onnx(data, idx.numpy())
    with graphc.no_grad():
        want = flatten_tensors(model(idx))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-6)


# ---- keywords, targets, refusals -------------------------------------------------------
def test_file_path_target_names_and_export_params(tmp_path):
    model = nn.Linear(3, 2)
    x = graphc.randn(4, 3)
    path = tmp_path / "linear.onnx"
    returned = graphc.onnx.export(model, x, str(path), input_names=["x"],
                                  output_names=["y"], opset_version=17)
    proto = onnx.load(str(path))
    assert proto == returned and proto.opset_import[0].version == 17
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["y"]
    session_out, = run_onnx(path.read_bytes(), x.numpy())
    np.testing.assert_allclose(session_out, model(x).detach().numpy(), rtol=1e-6)
    no_params = graphc.onnx.export(model, (x,), export_params=False)
    assert [i.name for i in no_params.graph.input] == ["input0", "weight", "bias"]
    assert not no_params.graph.initializer
    got, = run_onnx(no_params.SerializeToString(), x.numpy(), model.weight.detach().numpy(),
                    model.bias.detach().numpy())
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-6)


def test_opset_version_below_17_is_refused():
    with pytest.raises(ValueError, match="opset_version 13.*17"):
        graphc.onnx.export(nn.Linear(2, 2), graphc.randn(1, 2), opset_version=13)


def test_dynamic_axes_refusals():
    model = nn.Linear(3, 2)
    x = graphc.randn(4, 3)
    with pytest.raises(NotImplementedError, match="one dynamic dimension"):
        graphc.onnx.export(model, x, dynamic_axes={"input0": {0: "batch", 1: "width"}})
    with pytest.raises(ValueError, match="dimension 1 of output 'output0'"):
        graphc.onnx.export(model, x, dynamic_axes={
            "input0": [0], "output0": {1: "input0_dynamic_axes_1"}})
    # A value that depends on the batch size other than as a multiple of it.
    with pytest.raises(graphc.onnx.OnnxExporterError, match="depends on the dynamic"):
        graphc.onnx.export(lambda x: x / x.shape[0], x,
                           dynamic_axes={"input0": {0: "batch"}})


def test_no_constant_folding_and_verbose(capsys):
    model = nn.Sequential(nn.Linear(3, 3), nn.GELU(), nn.LayerNorm(3))
    check_matches(model, (graphc.randn(2, 3),), do_constant_folding=False, verbose=True)
    out = capsys.readouterr().out
    assert "graph Sequential" in out and "Identity" in out


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"graphc\[onnx\]"):
        graphc.onnx.export(nn.Linear(1, 1), graphc.randn(1, 1))


def test_is_in_onnx_export_is_true_only_while_exporting():
    seen = []

    def fn(x):
        seen.append(graphc.onnx.is_in_onnx_export())
        return x * 2
    graphc.onnx.export(fn, graphc.randn(2))
    assert seen == [True] and not graphc.onnx.is_in_onnx_export()


def test_stateful_forward_is_refused():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", graphc.zeros(1))

        def forward(self, x):
            self.calls += 1
            return x + self.calls
    with pytest.raises(graphc.onnx.OnnxExporterError, match="writes to 1 of its tensors"):
        graphc.onnx.export(Counter(), graphc.randn(2))


def test_math_constants_survive():
    check_matches(lambda x: (x * math.pi).sin(), (graphc.randn(3),))


# ---- composites: every gradient case of the samples, forward only -----------------------
# Cases whose constants are float64 run in float64; a boolean mask cannot be traced.
FLOAT64_CASES = {"gather_scatter"}
UNTRACEABLE = {"getitem_mask"}


@pytest.mark.parametrize("case", sorted(set(GRAD_CASES) - UNTRACEABLE))
def test_composite_matches_onnxruntime(case):
    fn, arrays = GRAD_CASES[case]
    cast = np.float64 if case in FLOAT64_CASES else np.float32
    args = tuple(graphc.tensor(a.astype(cast) if a.dtype == np.float64 else a)
                 for a in arrays)
    check_matches(fn, args, rtol=2e-5, atol=2e-6)


def test_value_dependent_code_is_refused_naming_the_line():
    fn, arrays = GRAD_CASES["getitem_mask"]
    with pytest.raises(graphc.onnx.OnnxExporterError, match="boolean mask.*samples.py"):
        graphc.onnx.export(fn, graphc.tensor(arrays[0]))


@pytest.mark.parametrize("opset", [17, 18, 21])
def test_reductions_at_each_opset(opset):
    """ReduceMax/Min/Prod take their axes as an attribute before opset 18."""
    data = check_matches(
        lambda x: (x.amax(1) + x.amin(0, keepdim=True).sum() + x.prod(1)
                   + x.argmin(1).float() + graphc.softmax(x, 1).sum(1)),
        (graphc.randn(3, 4),), opset_version=opset)
    assert onnx.load_from_string(data).opset_import[0].version == opset


def test_batch_of_one_example_with_dynamic_axes():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    data = check_matches(model, (graphc.randn(1, 3),), dynamic_axes={"input0": [0]})
    x = graphc.randn(6, 3)
    got, = run_onnx(data, x.numpy())
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_clashing_names_are_refused():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"\['weight'\]"):
        graphc.onnx.export(model, graphc.randn(1, 2), input_names=["weight"])
    with pytest.raises(ValueError, match="distinct"):
        graphc.onnx.export(lambda a, b: a + b, (graphc.randn(1), graphc.randn(1)),
                           input_names=["input1"])


@pytest.mark.slow
def test_benchmark_gpt_matches_graphc_and_pytorch():
    """The GPT of the benchmarks, built once with graphc and once with PyTorch from the
    same source and weights: the exported file gives graphc's logits and PyTorch's."""
    torch = pytest.importorskip("torch")
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.compiled import gpt_model
    sizes = (8, 16, 2, 2, 11)                  # context, width, heads, layers, vocabulary
    graphc.manual_seed(0)
    model, reference = gpt_model(graphc, *sizes), gpt_model(torch, *sizes)
    with torch.no_grad():
        for p, q in zip(model.parameters(), reference.parameters()):
            q.copy_(torch.from_numpy(p.detach().numpy().copy()))
    idx = graphc.randint(0, 11, (2, 8))
    data = check_matches(model, (idx,), rtol=1e-4, atol=1e-5,
                         dynamic_axes={"input0": {0: "batch"}})
    idx3 = np.random.default_rng(0).integers(0, 11, (3, 8))
    got, = run_onnx(data, idx3)
    with torch.no_grad():
        want = reference(torch.from_numpy(idx3)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_keyword_tensor_arguments_are_inputs_and_numbers_are_constants():
    def fn(x, power, scale=None):
        return x ** power * scale
    x, scale = graphc.randn(3), graphc.randn(3)
    proto = graphc.onnx.export(fn, (x, 2), kwargs={"scale": scale},
                               input_names=["x", "scale"])
    assert [i.name for i in proto.graph.input] == ["x", "scale"]
    got, = run_onnx(proto.SerializeToString(), x.numpy(), scale.numpy())
    np.testing.assert_allclose(got, fn(x, 2, scale=scale).numpy(), rtol=1e-6)


def test_compiled_module_exports_its_module():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
    compiled = graphc.compile(model, backend="interpreter")
    x = graphc.randn(2, 3)
    proto = graphc.onnx.export(compiled, (x,))
    assert [i.name for i in proto.graph.initializer][:2] == ["_orig_mod.0.weight",
                                                            "_orig_mod.0.bias"]
    got, = run_onnx(proto.SerializeToString(), x.numpy())
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-6, atol=1e-7)


def test_bfloat16_inside_a_float32_model():
    fn = lambda x: (x.bfloat16().exp() * 3 + x.bfloat16()).sum(1).float()  # noqa: E731
    check_matches(fn, (graphc.randn(4, 5),), rtol=0, atol=0)
