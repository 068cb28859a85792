"""Tracing (graphc.trace, lifting, constants, graph breaks) and the autodiff pass.

The autodiff tests run the forward graph (plus the values it saves) and the backward
graph in the interpreter and compare with eager autograd on the same inputs.
"""
import collections
import os
import re

import numpy as np
import pytest
from graph_checks import check_graph

import graphc
import graphc.nn.functional as F
from graphc import nn
from graphc.targets.interpreter import compile_graph
from graphc.dtypes import TensorType
from graphc.ir import Graph
from graphc.context import GraphBreak, tracing
from graphc.tracing.autodiff import autodiff, differentiable_values
from graphc.tracing.trace import Trace, flatten_tensors, is_tracer, unflatten_tensors

HERE = os.path.basename(__file__)


def line_of(fn, offset):
    """``test_trace.py:N`` of the line ``offset`` lines below ``fn``'s ``def``."""
    return f"{HERE}:{fn.__code__.co_firstlineno + offset}"


def _scale_sum(x, y):
    z = x * y
    return z.sum(dim=1), z.argmax(dim=1)


def test_trace_records_one_op_per_primitive_with_source_lines():
    g = graphc.trace(_scale_sum, graphc.randn(2, 3), graphc.randn(1, 3))
    first, second = line_of(_scale_sum, 1), line_of(_scale_sum, 2)
    assert str(g) == (
        "graph _scale_sum(%input0: f32[2,3], %input1: f32[1,3]) {\n"
        f"  %0 = mul(%input0, %input1) : f32[2,3]  # {first}\n"
        f"  %1 = sum(%0, axes=(1,), keepdim=False) : f32[2]  # {second}\n"
        f"  %2 = argmax(%0, axis=1, keepdim=False) : i64[2]  # {second}\n"
        "  return %1, %2\n}")
    check_graph(g)


def _unrolled(x, n):
    for _ in range(n):
        x = x * 2
    if x.shape[0] > 2:          # shapes are static: ordinary Python control flow
        x = x.exp()
    return x


def test_python_control_flow_is_followed_at_trace_time():
    g = graphc.trace(_unrolled, graphc.randn(3), 4)
    assert [op.name for op in g.ops if op.name != "constant"] == ["mul"] * 4 + ["exp"]
    g = graphc.trace(_unrolled, graphc.randn(2), 1)
    assert [op.name for op in g.ops if op.name != "constant"] == ["mul"]
    check_graph(g)


def test_tensors_made_during_the_trace_are_constants_and_fold():
    def f(x):
        table = graphc.arange(6.0).reshape(2, 3) * 2 + 1       # constants only: folded
        return x + table
    g = graphc.trace(f, graphc.zeros(2, 3))
    assert [op.name for op in g.ops] == ["constant", "add"]
    assert "constant(value=[1.0, 3.0, 5.0, 7.0, 9.0, 11.0]) : f32[2,3]" in str(g)
    out = compile_graph(g)([np.zeros((2, 3), np.float32)])[0]
    np.testing.assert_array_equal(out, np.arange(6.0).reshape(2, 3) * 2 + 1)
    check_graph(g)


SCALE = graphc.tensor([1.0, 2.0, 3.0])


def test_pre_existing_tensors_are_lifted_and_restored():
    model = nn.Linear(3, 2)
    weight_array = model.weight._data
    g = graphc.trace(lambda x: model(x) * SCALE[:2], graphc.randn(4, 3))
    assert [(v.name, v.shape) for v in g.inputs] == [
        ("input0", (4, 3)), ("weight", (2, 3)), ("bias", (2,)), ("t", (3,))]
    assert model.weight._data is weight_array and type(SCALE._data) is np.ndarray
    check_graph(g)
    g = graphc.trace(model, graphc.randn(4, 3))
    assert [v.name for v in g.inputs] == ["input0", "weight", "bias"]
    g = graphc.trace(lambda x: (model.weight, x), graphc.randn(1))   # returned as it is
    assert [v.name for v in g.inputs] == ["input0", "weight"] and not g.ops
    assert [v.name for v in g.outputs] == ["weight", "input0"]
    check_graph(g)


def test_lifted_values_are_read_per_run_not_baked_in():
    w = graphc.tensor([2.0, -1.0])
    g = graphc.trace(lambda x: x * w, graphc.randn(2))
    run = compile_graph(g)
    x = np.array([1.0, 1.0], np.float32)
    np.testing.assert_array_equal(run([x, w._data])[0], [2.0, -1.0])
    np.testing.assert_array_equal(run([x, np.array([5.0, 6.0], np.float32)])[0], [5.0, 6.0])


def test_inplace_write_to_a_lifted_tensor_is_a_write_back():
    buf = graphc.zeros(3)
    before = buf._data
    tr = Trace("step")
    x = tr.input_tensor(TensorType((3,), graphc.float32), "x")
    with tracing(tr):
        buf.add_(x)
        buf.mul_(2)
    mutated = tr.restore()
    assert buf._data is before and not before.any()
    assert len(mutated) == 1 and mutated[0][0] is buf
    g = tr.graph([mutated[0][1]])
    assert [v.name for v in g.inputs] == ["x", "t"]       # buf lifted once, read at run time
    assert [op.name for op in g.ops if op.name != "constant"] == ["add", "mul"]
    out = compile_graph(g)([np.ones(3, np.float32), np.full(3, 5.0, np.float32)])[0]
    np.testing.assert_array_equal(out, [12.0, 12.0, 12.0])
    check_graph(g)


def test_trace_restores_lifted_tensors_when_the_function_raises():
    model = nn.Linear(2, 2)
    array = model.weight._data

    def broken(x):
        model(x)
        raise ValueError("user error")
    with pytest.raises(ValueError, match="user error"):
        graphc.trace(broken, graphc.randn(1, 2))
    assert model.weight._data is array
    assert graphc.trace(model, graphc.randn(1, 2)).inputs[1].name == "weight"


def _branch(x):
    if x.sum() > 0:
        return x
    return -x


def _item(x):
    return x * x.max().item()


def _to_numpy(x):
    return graphc.tensor(np.asarray(x) + 1)


def _mask(x):
    return x[x > 0]


def _numpy_method(x):
    return x.detach().numpy()


def _draw(x):
    return x + graphc.randn(3)


BREAKS = [
    (_branch, "Python control flow on a tensor value (Tensor.__bool__"),
    (_item, "Tensor.item()"),
    (_to_numpy, "conversion of a tensor to a numpy array"),
    (_mask, "indexing with a boolean mask"),
    (_numpy_method, "Tensor.numpy()"),
    (_draw, "a random draw (rand, randn, randint, randperm, normal)"),
]


@pytest.mark.parametrize("fn, what", BREAKS, ids=[b[0].__name__ for b in BREAKS])
def test_untraceable_code_raises_a_graph_break_naming_op_and_line(fn, what):
    with pytest.raises(GraphBreak) as info:
        graphc.trace(fn, graphc.randn(3))
    message = str(info.value)
    assert message.startswith(f"graphc cannot trace {what}")
    assert f"(at {line_of(fn, 1)})" in message


def test_is_tracer_and_tree_helpers():
    seen = []
    graphc.trace(lambda x: seen.append(is_tracer(x)) or x, graphc.randn(1))
    assert seen == [True] and not is_tracer(graphc.randn(1)) and not is_tracer(3)
    pair = collections.namedtuple("pair", "a b")
    a, b, c = graphc.randn(1), graphc.randn(2), graphc.randn(3)
    tree = {"k": [a, (b, 7)], "p": pair(c, "s")}
    assert flatten_tensors(tree) == [a, b, c]
    rebuilt = unflatten_tensors(tree, [c, a, b])
    assert rebuilt["k"][0] is c and rebuilt["k"][1] == (a, 7)
    assert isinstance(rebuilt["p"], pair) and rebuilt["p"].a is b and rebuilt["p"].b == "s"


# ---- autodiff pass ------------------------------------------------------------------------------
def _conv_block(x, w, b):
    y = F.conv2d(x, w, b, padding=1)
    return F.max_pool2d(y.relu(), 2).flatten(1).logsumexp(dim=1)


def _norm_block(x, w, b):
    return F.gelu(F.layer_norm(x, (4,), w, b)).softmax(dim=-1) * x.amax(dim=0)


def _movement(x, w, b):
    y = graphc.cat([x[:, 1:], w.t()[: x.shape[0]]], dim=1)
    z = F.pad(y, (1, 0)) + b.expand(x.shape[0], 3)[:, :1]
    idx = graphc.tensor([[0], [2], [1]])[: x.shape[0]]
    return z.gather(1, idx).squeeze(1) * y.permute(1, 0).sum(0), y.min(dim=1).values


def _elementwise(x, w, b):
    y = graphc.where(x > 0, x.abs().sqrt().clamp(max=1.1), (x * w[0, 0]).tanh())
    return (y / (1 + b.sigmoid()[:1] ** 2)).abs().log1p() - x.cos() * x.exp()


def _mlp_loss(x, w, b):
    h = (x @ w + b).sigmoid()
    return F.binary_cross_entropy(h, graphc.tensor([[1.0, 0.0, 1.0]]).expand(h.shape))


AUTODIFF = [
    (_conv_block, [(2, 1, 4, 4), (3, 1, 3, 3), (3,)]),
    (_norm_block, [(3, 4), (4,), (4,)]),
    (_movement, [(3, 4), (3, 3), (1, 1)]),
    (_elementwise, [(3, 4), (2, 2), (4,)]),
    (_mlp_loss, [(5, 4), (4, 3), (3,)]),
]


@pytest.mark.parametrize("fn, shapes", AUTODIFF, ids=[a[0].__name__ for a in AUTODIFF])
def test_autodiff_pass_matches_eager_autograd(fn, shapes):
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(-1.5, 1.5, s).astype(np.float32) for s in shapes]
    g = graphc.trace(fn, *[graphc.tensor(a, requires_grad=True) for a in arrays])
    floating = [i for i, v in enumerate(g.outputs) if v.type.dtype.is_floating_point]
    bwd = autodiff(g, range(len(g.inputs)))
    assert bwd.grad_outputs == floating and bwd.wrt == list(range(len(g.inputs)))
    check_graph(bwd.graph)
    fwd = Graph(g.inputs, g.ops, g.outputs + bwd.saved, g.name)
    check_graph(fwd)
    outs = compile_graph(fwd)(arrays)
    cotangents = [rng.standard_normal(g.outputs[i].shape).astype(np.float32)
                  for i in floating]
    grads = compile_graph(bwd.graph)(cotangents + outs[len(g.outputs):])

    leaves = [graphc.tensor(a, requires_grad=True) for a in arrays]
    eager = flatten_tensors(fn(*leaves))
    for out, ref in zip(outs, eager, strict=False):
        np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    expected = graphc.autograd.grad([eager[i] for i in floating], leaves,
                                    [graphc.tensor(c) for c in cotangents])
    for got, ref in zip(grads, expected, strict=True):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_backward_ops_point_at_their_forward_source_line():
    g = graphc.trace(_mlp_loss, graphc.randn(5, 4), graphc.randn(4, 3), graphc.randn(3))
    bwd = autodiff(g, [1])
    lines = {op.source for op in bwd.graph.ops}
    assert lines <= {line_of(_mlp_loss, 1), line_of(_mlp_loss, 2)}
    assert line_of(_mlp_loss, 1) in lines


def test_cheap_elementwise_values_are_recomputed_not_saved():
    def f(x):
        y = x * 3          # read by the VJP of y * y; made from an input: recomputed
        z = (y * y).exp()  # exp saves its output; its operand is not available: saved
        return z.sum()
    g = graphc.trace(f, graphc.randn(4))
    bwd = autodiff(g, [0])
    producers = g.producers()
    assert [producers[v].name if v in producers else v.name for v in bwd.saved] == \
        ["exp", "input0"]
    assert [op.name for op in bwd.graph.ops[:2]] == ["constant", "mul"]   # y, recomputed
    check_graph(bwd.graph)
    x = np.array([0.1, -0.2, 0.3, 0.05], np.float32)
    outs = compile_graph(Graph(g.inputs, g.ops, g.outputs + bwd.saved))([x])
    (grad,) = compile_graph(bwd.graph)([np.ones((), np.float32)] + outs[1:])
    np.testing.assert_allclose(grad, 18 * x * np.exp(9 * x * x), rtol=1e-5)


def test_only_inputs_the_outputs_depend_on_get_gradients():
    def f(x, y, n):
        return (x * 2).sum() + (y > 0).sum() + n.argmax()
    g = graphc.trace(f, graphc.randn(3), graphc.randn(3), graphc.randn(3))
    assert differentiable_values(g, [1]) == {g.inputs[1]}
    bwd = autodiff(g, [0, 1, 2])
    assert bwd.wrt == [0]
    assert len(bwd.graph.outputs) == 1
    assert re.search(r"%grad_\w+: f32\[\]", str(bwd.graph))
